#!/usr/bin/env bash
# PgBouncer in transaction pooling mode in front of a PostgreSQL server, on a free port.
#
#   scripts/pgbouncer.sh start    install Debian's pgbouncer when missing (as root), write
#                                 its configuration to a directory of its own, start it
#   scripts/pgbouncer.sh env      PGBOUNCER_URL (no database: add /<name>) as `export` lines
#   scripts/pgbouncer.sh stop     stop it and remove the directory
#
# Every database of the upstream server is reachable through it (wildcard entry), as
# user postgres with trust authentication: for local testing only. Upstream: the server
# of $PGBOUNCER_UPSTREAM (default postgres://postgres@127.0.0.1:5432); only connected to,
# never configured. Run the portal behind it with DATABASE_POOLER=pgbouncer (see
# config/settings/base.py and docs/scaling.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${UCP_PGBOUNCER_DIR:-/tmp/ucp-pgbouncer.$(printf %s "$ROOT" | md5sum | cut -c1-8)}"
UPSTREAM="${PGBOUNCER_UPSTREAM:-postgres://postgres@127.0.0.1:5432}"
POOL_SIZE="${PGBOUNCER_POOL_SIZE:-4}"

as_pg() {  # pgbouncer refuses to run as root
    if [ "$(id -u)" = "0" ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

find_pgbouncer() {
    command -v pgbouncer 2>/dev/null || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; } || true
}

install_pgbouncer() {
    if [ -n "$(find_pgbouncer)" ]; then
        return
    fi
    if [ "$(id -u)" != "0" ]; then
        echo "pgbouncer is missing: run 'sudo apt-get install -y pgbouncer'" >&2
        exit 1
    fi
    apt-get update -qq
    # The package's own service (port 6432) is not wanted: keep it from starting.
    local policy=/usr/sbin/policy-rc.d restore=""
    if [ -e "$policy" ]; then restore="$(mktemp)"; cp -p "$policy" "$restore"; fi
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null || status=$?
    if [ -n "$restore" ]; then mv "$restore" "$policy"; else rm -f "$policy"; fi
    if [ "${status:-0}" != 0 ]; then exit "$status"; fi
}

start() {
    if [ -f "$DIR/env" ]; then
        echo "pgbouncer.sh: already started in $DIR (stop it first)" >&2
        exit 1
    fi
    install_pgbouncer
    local bin port host upstream_port
    bin="$(find_pgbouncer)"
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    host="$(python3 -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).hostname or "127.0.0.1")' "$UPSTREAM")"
    upstream_port="$(python3 -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).port or 5432)' "$UPSTREAM")"

    rm -rf "$DIR"
    mkdir -p "$DIR"
    chmod 700 "$DIR"
    cat >"$DIR/pgbouncer.ini" <<EOF
[databases]
* = host=$host port=$upstream_port user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = 500
auth_type = trust
auth_file = $DIR/userlist.txt
admin_users = postgres
stats_users = postgres
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
EOF
    echo '"postgres" ""' >"$DIR/userlist.txt"
    if [ "$(id -u)" = "0" ]; then chown -R postgres: "$DIR"; fi
    as_pg "$bin" -d "$DIR/pgbouncer.ini"

    for _ in $(seq 50); do
        if pg_isready -h 127.0.0.1 -p "$port" -q 2>/dev/null; then break; fi
        sleep 0.1
    done
    if ! psql -h 127.0.0.1 -p "$port" -U postgres -d pgbouncer -XAtqc "SHOW VERSION" >/dev/null; then
        echo "pgbouncer.sh: pgbouncer did not start; its log:" >&2
        tail -n 20 "$DIR/pgbouncer.log" >&2 || true
        stop
        exit 1
    fi
    cat >"$DIR/env" <<EOF
export UCP_PGBOUNCER_DIR=$DIR
export PGBOUNCER_URL=postgres://postgres@127.0.0.1:$port
EOF
    echo "pgbouncer (transaction pooling, $POOL_SIZE server connections per database) on 127.0.0.1:$port -> $host:$upstream_port, in $DIR"
    cat "$DIR/env"
}

stop() {
    if [ -f "$DIR/pgbouncer.pid" ]; then
        local pid
        pid="$(cat "$DIR/pgbouncer.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$DIR"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env)
        if [ ! -f "$DIR/env" ]; then echo "pgbouncer.sh: not started; run: $0 start" >&2; exit 1; fi
        cat "$DIR/env"
        ;;
    *)
        echo "usage: $0 start|stop|env" >&2
        exit 2
        ;;
esac
