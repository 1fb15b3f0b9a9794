# Sourced by the other scripts: a project virtualenv with the given extras installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
VENV_PY="$ROOT/.venv/bin/python"
venv_install() {  # venv_install [extra]
    local spec="."
    if [ -n "${1:-}" ]; then spec=".[$1]"; fi
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check "$spec"
}
