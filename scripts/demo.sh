#!/usr/bin/env bash
# Installs everything and runs the portal with demo data on the embedded SQLite default,
# with the task queue's worker beside it (it sends the alert e-mails, printed here by the
# console mail backend, and the webhook calls).
# PORT picks another port (default 8000): PORT=8080 ./scripts/demo.sh
PORT="${PORT:-8000}"
case "$PORT" in ''|*[!0-9]*) echo "PORT must be a number, not '$PORT'" >&2; exit 2 ;; esac
source "$(dirname "$0")/_venv.sh"
venv_install
pdf_libs_ensure
"$VENV_PY" manage.py migrate --noinput
"$VENV_PY" manage.py seed_demo
"$VENV_PY" manage.py db_worker --queue-name '*' --no-reload &
WORKER=$!
trap 'kill "$WORKER" 2>/dev/null || true' EXIT INT TERM
echo "Portal: http://127.0.0.1:$PORT/  (admin: http://127.0.0.1:$PORT/admin/)"
echo "Task worker: process $WORKER (manage.py db_worker)"
"$VENV_PY" manage.py runserver "127.0.0.1:$PORT"
