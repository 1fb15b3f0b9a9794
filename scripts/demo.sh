#!/usr/bin/env bash
# Installs everything and runs the portal with demo data on the embedded SQLite default.
source "$(dirname "$0")/_venv.sh"
venv_install
pdf_libs_ensure
"$VENV_PY" manage.py migrate --noinput
"$VENV_PY" manage.py seed_demo
echo "Portal: http://127.0.0.1:8000/  (admin: http://127.0.0.1:8000/admin/)"
exec "$VENV_PY" manage.py runserver 127.0.0.1:8000
