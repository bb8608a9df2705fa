#!/usr/bin/env bash
# The stomp.py suite (Python's STOMP client over WebSocket) against a running Herald.
# Usage: HERALD_URL=http://127.0.0.1:8080 tests/python/run.sh
# Creates tests/python/.venv (gitignored) and installs requirements.txt into it on first use.
# Exit status: 0 passed; 1 failed; 2 the client could not be installed; 3 no server.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export HERALD_URL="${HERALD_URL:-http://127.0.0.1:8080}"
VENV="$HERE/.venv"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import stomp, websocket' 2>/dev/null; then
  echo "run.sh: installing stomp.py into $VENV"
  python3 -m venv "$VENV" || { echo "run.sh: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 2; }
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" \
    || { echo "run.sh: pip install -r requirements.txt failed" >&2; exit 2; }
fi

if ! curl -fsS "$HERALD_URL/health" >/dev/null 2>&1; then
  echo "run.sh: no Herald server reachable at $HERALD_URL" >&2
  exit 3
fi

echo "== stomp.py $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("stomp.py"))') (WSConnection) against $HERALD_URL"
"$VENV/bin/python" -W ignore::ResourceWarning "$HERE/test_stomp_py.py"
