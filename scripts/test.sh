#!/usr/bin/env bash
# Installs everything (Python packages; Debian's Chromium and WeasyPrint's libraries when
# missing and we are root) and runs the whole test suite on PostgreSQL, in parallel. Extra
# arguments go to pytest.
source "$(dirname "$0")/_venv.sh"
venv_install dev
pdf_libs_ensure
if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
    if [ "$(id -u)" = "0" ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "Chromium is missing: run 'sudo apt-get install -y chromium'" >&2
        exit 1
    fi
fi
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/credit_pooling}"
# In parallel by default (pytest-xdist, one worker per core); `-n 0` runs in one process.
case " $* " in
    *" -n "* | *" -n="* | *" --numprocesses"*) exec "$VENV_PY" -m pytest "$@" ;;
    *) exec "$VENV_PY" -m pytest -n "${PYTEST_WORKERS:-auto}" "$@" ;;
esac
