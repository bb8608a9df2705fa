#!/usr/bin/env bash
# Drives Herald's web client in Debian's Chromium (playwright-core; never a downloaded browser).
#
#   tests/browser/run.sh                                  # starts its own servers from HERALD_BIN
#   HERALD_URL=http://127.0.0.1:8080 tests/browser/run.sh # uses a running dev-mode server
#
# The reload test needs a server with a short access-token lifetime; this script always starts that
# one itself (on a fresh SQLite file), from HERALD_BIN (default target/debug/herald, built when
# missing). Screenshots go to target/browser/. Needs /usr/bin/chromium (apt-get install chromium)
# or CHROMIUM_PATH.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
HERALD_BIN="${HERALD_BIN:-$ROOT/target/debug/herald}"
SHORT_TTL_SECS="${HERALD_SHORT_TTL_SECS:-5}"
export CHROMIUM_PATH HERALD_BIN
export HERALD_SCREENSHOTS="${HERALD_SCREENSHOTS:-$ROOT/target/browser}"
export HERALD_SHORT_TTL_SECS="$SHORT_TTL_SECS"

fail() { printf 'tests/browser/run.sh: %s\n' "$*" >&2; exit 2; }

[ -x "$CHROMIUM_PATH" ] || fail "no Chromium at $CHROMIUM_PATH (Debian: apt-get install -y chromium)"
command -v node >/dev/null 2>&1 || fail "node is needed (Node.js 20+)"
command -v curl >/dev/null 2>&1 || fail "curl is needed"

cd "$HERE"
if [ ! -d node_modules ]; then
  echo "run.sh: installing playwright-core (npm ci; no browser is downloaded)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund || fail "npm ci failed"
fi

if [ ! -x "$HERALD_BIN" ]; then
  echo "run.sh: building $HERALD_BIN"
  (cd "$ROOT" && cargo build --quiet --bin herald) || fail "cargo build failed"
fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# start_server NAME CONFIG_TEXT: a dev-mode herald on a fresh SQLite file; sets SERVER_URL.
# (Not run in a command substitution: the server's pid must reach PIDS in this shell for cleanup.)
start_server() {
  local name="$1" config="$2" port pid
  port="$(free_port)"
  printf '%s\n' "$config" >"$WORK/$name.toml"
  HERALD_BIND="127.0.0.1:$port" HERALD_DATABASE_URL="sqlite://$WORK/$name.db" HERALD_DEV=1 HERALD_REACTORS=2 \
    RUST_LOG=warn "$HERALD_BIN" --config "$WORK/$name.toml" >"$WORK/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
      SERVER_URL="http://127.0.0.1:$port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.log" >&2; fail "herald ($name) exited at start"; }
    sleep 0.2
  done
  fail "herald ($name) did not answer /health"
}

if [ -z "${HERALD_URL:-}" ]; then
  start_server main 'dev = true'
  HERALD_URL="$SERVER_URL"
fi
export HERALD_URL="${HERALD_URL%/}"
start_server short-ttl "$(printf 'dev = true\n[jwt]\naccess_ttl_secs = %s\n' "$SHORT_TTL_SECS")"
export HERALD_SHORT_TTL_URL="$SERVER_URL"

# Chromium's fresh profile directory (made by playwright's launch) lives in here and goes with it.
mkdir -p "$WORK/tmp" "$HERALD_SCREENSHOTS"
export TMPDIR="$WORK/tmp"

echo "== browser suite (Chromium: $("$CHROMIUM_PATH" --version 2>/dev/null | tail -1)) against $HERALD_URL and $HERALD_SHORT_TTL_URL"
status=0
node --test --test-reporter=spec --test-concurrency=1 web_client.test.mjs || status=$?
if [ "$status" -ne 0 ]; then
  for log in "$WORK"/*.log; do echo "--- $(basename "$log")"; tail -30 "$log"; done
  echo "run.sh: FAILED (screenshots in $HERALD_SCREENSHOTS)" >&2
fi
exit "$status"
