#!/usr/bin/env bash
# Client-side contract suites for Herald: STOMP chat flow, SSE replay (node:test) and the Postman collection (newman).
# Usage: HERALD_URL=http://127.0.0.1:8080 tests/node/run.sh
# The server must already be running (dev mode, so testuser/alice/bob are seeded).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export HERALD_URL="${HERALD_URL:-http://127.0.0.1:8080}"
HERALD_URL="${HERALD_URL%/}"
cd "$HERE"

if [ ! -d node_modules ]; then
  echo "run.sh: installing client test dependencies (npm ci)"
  npm ci --no-audit --no-fund || { echo "run.sh: npm ci failed" >&2; exit 2; }
fi

# Fail fast with a clear message when no server is listening.
if ! node -e "fetch(process.env.HERALD_URL + '/health').then(() => process.exit(0), () => process.exit(1))"; then
  echo "run.sh: no Herald server reachable at $HERALD_URL" >&2
  exit 3
fi

status=0

echo "== node --test (chat_flow, sse_replay, stomp_semantics) against $HERALD_URL"
node --test --test-reporter=spec chat_flow.test.mjs sse_replay.test.mjs stomp_semantics.test.mjs || status=1

echo "== newman (postman/herald.postman_collection.json) against $HERALD_URL"
"$HERE/node_modules/.bin/newman" run "$ROOT/postman/herald.postman_collection.json" \
  --env-var "baseUrl=$HERALD_URL" \
  --color off --timeout-request 15000 || status=1

if [ "$status" -ne 0 ]; then
  echo "run.sh: FAILED" >&2
else
  echo "run.sh: all client suites passed"
fi
exit "$status"
