#!/usr/bin/env bash
# A throwaway PostgreSQL primary + streaming standby on 127.0.0.1, for the replica tests.
#
#   scripts/pg_replica.sh start          initdb a primary, pg_basebackup a standby from it,
#                                        start both on free ports; prints the URLs
#   scripts/pg_replica.sh env            the URLs as `export` lines (eval "$(… env)")
#   scripts/pg_replica.sh stop           stop both and remove the directory
#   scripts/pg_replica.sh standby-stop   stop / start only the standby (tests of the
#   scripts/pg_replica.sh standby-start  portal with its replica down)
#
# Everything lives in one directory ($UCP_PG_REPLICA_DIR, default a /tmp directory named
# after this checkout), owned by the `postgres` system user when run as root. The server
# on 5432 and its configuration are never touched. Debian's PostgreSQL binaries are used
# ($PG_BIN, default the newest /usr/lib/postgresql/*/bin).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${UCP_PG_REPLICA_DIR:-/tmp/ucp-pg-replica.$(printf %s "$ROOT" | md5sum | cut -c1-8)}"
DB_NAME="${UCP_PG_REPLICA_DB:-ucp_replica}"
if [ -z "${PG_BIN:-}" ]; then
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
fi
if [ ! -x "${PG_BIN:-}/initdb" ]; then
    echo "pg_replica: no initdb in '${PG_BIN:-}' (install Debian's postgresql or set PG_BIN)" >&2
    exit 1
fi

as_pg() {  # run a command as the cluster's owner
    if [ "$(id -u)" = "0" ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

server_opts() {  # server_opts PORT: settings given on the command line, not in the files
    # fsync off: a test cluster that is thrown away never needs to survive a crash.
    printf -- "-c port=%s -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s" "$1" "$DIR"
    printf -- " -c fsync=off -c shared_buffers=32MB -c max_connections=60"
    printf -- " -c wal_level=replica -c max_wal_senders=4 -c hot_standby=on"
    # Replay waits at most this long for a standby query it conflicts with (e.g. a
    # TRUNCATE between tests while a read is running), then cancels that query.
    printf -- " -c max_standby_streaming_delay=5s"
}

pg_start() {  # pg_start NAME PORT
    as_pg "$PG_BIN/pg_ctl" -D "$DIR/$1" -l "$DIR/$1.log" -o "$(server_opts "$2")" -w -t 60 start >/dev/null
}

pg_stop() {  # pg_stop NAME
    if [ -f "$DIR/$1/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$DIR/$1" -m fast -w -t 60 stop >/dev/null || true
    fi
}

psql_at() {  # psql_at PORT SQL
    "$PG_BIN/psql" -h 127.0.0.1 -p "$1" -U postgres -d postgres -XAtqc "$2"
}

start() {
    if [ -f "$DIR/env" ]; then
        echo "pg_replica: already started in $DIR (stop it first)" >&2
        exit 1
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    chmod 700 "$DIR"
    if [ "$(id -u)" = "0" ]; then chown postgres: "$DIR"; fi
    trap 'echo "pg_replica: start failed; logs:" >&2; tail -n 20 "$DIR"/*.log >&2 || true; stop' ERR

    local primary_port standby_port
    primary_port="$(free_port)"
    standby_port="$(free_port)"
    while [ "$standby_port" = "$primary_port" ]; do standby_port="$(free_port)"; done

    # The primary: trust authentication on loopback (initdb's default host lines cover
    # replication connections too), the same locale as Debian's default cluster.
    as_pg "$PG_BIN/initdb" -D "$DIR/primary" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 >"$DIR/initdb.log"
    pg_start primary "$primary_port"
    psql_at "$primary_port" "CREATE DATABASE $DB_NAME" >/dev/null

    # The standby: a base backup of the running primary; -R writes standby.signal and
    # primary_conninfo, so it starts streaming from the primary.
    as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres \
        -D "$DIR/standby" -R -X stream -c fast >"$DIR/basebackup.log" 2>&1
    pg_start standby "$standby_port"

    local streaming=""
    for _ in $(seq 100); do
        streaming="$(psql_at "$primary_port" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")"
        [ "$streaming" = "1" ] && break
        sleep 0.1
    done
    if [ "$streaming" != "1" ] || [ "$(psql_at "$standby_port" "SELECT pg_is_in_recovery()")" != "t" ]; then
        echo "pg_replica: the standby did not start streaming" >&2
        false
    fi
    trap - ERR

    cat >"$DIR/env" <<EOF
export UCP_PG_REPLICA_DIR=$DIR
export DATABASE_URL=postgres://postgres@127.0.0.1:$primary_port/$DB_NAME
export DATABASE_REPLICA_URL=postgres://postgres@127.0.0.1:$standby_port/$DB_NAME
EOF
    echo "$primary_port" >"$DIR/primary.port"
    echo "$standby_port" >"$DIR/standby.port"
    echo "primary: 127.0.0.1:$primary_port, standby: 127.0.0.1:$standby_port (streaming), in $DIR"
    cat "$DIR/env"
}

stop() {
    pg_stop standby
    pg_stop primary
    rm -rf "$DIR"
}

need_started() {
    if [ ! -f "$DIR/env" ]; then
        echo "pg_replica: not started (no $DIR/env); run: $0 start" >&2
        exit 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) need_started; cat "$DIR/env" ;;
    standby-stop) need_started; pg_stop standby ;;
    standby-start) need_started; pg_start standby "$(cat "$DIR/standby.port")" ;;
    *)
        echo "usage: $0 start|stop|env|standby-stop|standby-start" >&2
        exit 2
        ;;
esac
