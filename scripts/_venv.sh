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

# WeasyPrint (statement PDFs) needs Pango, HarfBuzz and a font from Debian: installed
# when missing and we are root, as the test script does for Chromium.
WEASYPRINT_DEBS="libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core"
pdf_libs_ensure() {
    if ldconfig -p | grep -q "libpangoft2-1.0.so.0" && [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
        return 0
    fi
    if [ "$(id -u)" = "0" ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $WEASYPRINT_DEBS >/dev/null
    else
        echo "WeasyPrint's libraries are missing: run 'sudo apt-get install -y $WEASYPRINT_DEBS'" >&2
        exit 1
    fi
}
