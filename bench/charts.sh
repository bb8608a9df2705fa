#!/bin/bash
# Turns the JSON of a compare.sh sitting into the PNG charts beside bench/RESULTS.md.
#   bench/charts.sh RESULTS_DIR [OUT_DIR]      (OUT_DIR defaults to bench/)
# Reads RESULTS_DIR/sweep-size-*.json (room-size sweep) and RESULTS_DIR/sweep-load-*.json (offered-load sweep),
# written by herald-bench compare --json. Python and matplotlib come from a local venv in bench/.venv (gitignored),
# created on first use.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=$here/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'matplotlib>=3.7,<4'
fi
exec "$venv/bin/python" "$here/charts.py" "$1" "${2:-$here}"
