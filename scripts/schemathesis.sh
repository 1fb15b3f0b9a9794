#!/usr/bin/env bash
# Fuzz the JSON API with Schemathesis against gunicorn and a fresh PostgreSQL database, with
# every check (--checks all): no 5xx, every answer as documented, everything the schema calls
# valid accepted and everything it calls invalid refused; then the stateful phase follows the
# schema's links (POST /usage-events -> GET /usage-events -> its next page). A fixed seed, one
# worker: the same run every time. scripts/schemathesis_hooks.py gives schema-valid cases the
# facts a schema cannot hold (existing offices and services, fresh ids, a recent occurred_at).
#
#   bash scripts/schemathesis.sh
#
# PYTHON           the virtualenv's python (default: .venv/bin/python)
# DATABASE_URL     server and credentials to use; the database itself is always
#                  ucp_schemathesis (or SCHEMATHESIS_DB), dropped and created afresh
# SCHEMATHESIS_MAX_EXAMPLES, SCHEMATHESIS_SEED   size and seed of the run
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-.venv/bin/python}"
if [[ ! -x "$PY" ]]; then
    echo "No python at $PY; set PYTHON to the virtualenv's python." >&2
    exit 2
fi
BIN="$(cd "$(dirname "$PY")" && pwd)"
DB_NAME="${SCHEMATHESIS_DB:-ucp_schemathesis}"
SERVER_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# Same server and user as DATABASE_URL, but never its database: that one is dropped here.
DB_URL="$("$PY" -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$SERVER_URL" "$DB_NAME")"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-200}"
SEED="${SCHEMATHESIS_SEED:-20261126}"

export DATABASE_URL="$DB_URL"
export DJANGO_SETTINGS_MODULE=config.settings.local
export DEBUG=False
export PYTHONWARNINGS=ignore

echo "== fresh database $DB_NAME"
"$PY" - "$DB_URL" <<'PYEOF'
import sys
import urllib.parse

import psycopg

url = urllib.parse.urlsplit(sys.argv[1])
name = url.path.lstrip("/")
admin = urllib.parse.urlunsplit(url._replace(path="/postgres"))
with psycopg.connect(admin, autocommit=True) as conn:
    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.execute(f'CREATE DATABASE "{name}"')
PYEOF
"$PY" manage.py migrate --no-input -v 0

echo "== seed"
if "$PY" manage.py help seed_demo >/dev/null 2>&1; then
    "$PY" manage.py seed_demo >/dev/null
else
    "$PY" manage.py shell -v 0 -c '
from decimal import Decimal
from offices.models import CreditKind, Plan
from offices.services import company_create, office_create
from usage.models import Service
for code, unit, rate, kind in [
    ("sms", "message", "1", CreditKind.STANDARD),
    ("call_international", "minute", "0.25", CreditKind.STANDARD),
    ("ai_agent", "conversation", "2", CreditKind.AI_AGENT),
]:
    Service.objects.get_or_create(
        code=code, defaults=dict(name=code, unit=unit, rate=Decimal(rate), credit_kind=kind)
    )
plan = Plan.objects.create(code="basic", name="Basic", included_standard=100, included_ai_agent=10)
acme = company_create(
    name="Acme", slug="acme", primary_office_name="HQ", primary_office_slug="hq", plan=plan
)
for slug in ("austin", "berlin", "london"):
    office_create(company=acme, name=slug.title(), slug=slug, plan=plan)
'
fi
KEY="$("$PY" manage.py create_api_key --company acme --name schemathesis 2>/dev/null | tail -n 1)"
# The facts the hooks put into schema-valid cases: acme's offices, the active services, and
# the metadata size limit (which JSON Schema cannot express).
export SCHEMATHESIS_OFFICES SCHEMATHESIS_SERVICES SCHEMATHESIS_METADATA_MAX_BYTES
SCHEMATHESIS_METADATA_MAX_BYTES="$("$PY" manage.py shell -v 0 -c 'from usage.events import METADATA_MAX_BYTES; print(METADATA_MAX_BYTES)')"
SCHEMATHESIS_OFFICES="$("$PY" manage.py shell -v 0 -c 'from offices.models import Office; print(",".join(Office.objects.filter(company__slug="acme").order_by("slug").values_list("slug", flat=True)))')"
SCHEMATHESIS_SERVICES="$("$PY" manage.py shell -v 0 -c 'from usage.models import Service; print(",".join(Service.objects.filter(active=True).order_by("code").values_list("code", flat=True)))')"

PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
echo "== gunicorn on 127.0.0.1:$PORT"
# The server's log (thousands of expected 4xx lines) goes to a file, shown only on failure.
SERVER_LOG="$(mktemp -t ucp-schemathesis-XXXXXX.log)"
# Schemathesis keeps a cache in its working directory; keep it out of the repository.
SCRATCH="$(mktemp -d -t ucp-schemathesis-XXXXXX)"
HOOKS_DIR="$(pwd)/scripts"
"$PY" -m gunicorn config.wsgi:application --bind "127.0.0.1:$PORT" --workers 2 \
    --log-level warning --error-logfile - >"$SERVER_LOG" 2>&1 &
GUNICORN_PID=$!
cleanup() {
    kill "$GUNICORN_PID" 2>/dev/null || true
    wait "$GUNICORN_PID" 2>/dev/null || true
    rm -rf "$SERVER_LOG" "$SCRATCH"
}
trap cleanup EXIT

for _ in $(seq 1 60); do
    if "$PY" -c "import urllib.request as r; r.urlopen('http://127.0.0.1:$PORT/api/openapi.json', timeout=2)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$GUNICORN_PID" 2>/dev/null; then
        echo "gunicorn exited before serving:" >&2
        cat "$SERVER_LOG" >&2
        exit 1
    fi
    sleep 0.5
done

echo "== schemathesis (seed $SEED, at most $MAX_EXAMPLES examples per operation)"
status=0
(cd "$SCRATCH" && PYTHONPATH="$HOOKS_DIR" SCHEMATHESIS_HOOKS=schemathesis_hooks \
    "$BIN/schemathesis" run "http://127.0.0.1:$PORT/api/openapi.json" \
    --header "Authorization: Bearer $KEY" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --seed "$SEED" \
    --max-examples "$MAX_EXAMPLES" \
    --workers 1 \
    --generation-database none \
    --request-timeout 20 \
    --no-color) || status=$?
if [[ "$status" != 0 ]]; then
    echo "== server errors" >&2
    grep -B2 -A40 "Traceback" "$SERVER_LOG" | head -n 300 >&2 || true
fi
exit "$status"
