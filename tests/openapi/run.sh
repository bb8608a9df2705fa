#!/usr/bin/env bash
# Checks openapi.yaml against a live dev-mode server with schemathesis (PyPI), with every check it
# has: among them no 5xx, every status code documented, content types, headers and bodies as the
# schema says, schema-valid requests accepted and schema-violating ones rejected, auth not ignored.
# Then every documented status must have been reached: by schemathesis, by the targeted probes of
# probes.py (two more servers: shipped rate limits and a two-member room bound; a store that is
# down), by newman's run of the Postman collection, or by a test named in covered_elsewhere.txt
# (status_coverage.py).
#
#   tests/openapi/run.sh                                  # starts its own server from HERALD_BIN
#   HERALD_URL=http://127.0.0.1:8080 tests/openapi/run.sh # uses a running dev-mode server
#
# schemathesis is installed into tests/openapi/.venv (gitignored) on the first run. The run is
# bounded: SCHEMATHESIS_MAX_EXAMPLES cases per operation (default 40), a fixed seed
# (SCHEMATHESIS_SEED) so a failure reproduces, and SCHEMATHESIS_TIMEOUT seconds at most (default 240).
# Reports (JUnit) go to target/openapi/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$HERE/.venv"
SCHEMATHESIS_VERSION="4.32.5"
HERALD_BIN="${HERALD_BIN:-$ROOT/target/debug/herald}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-40}"
SEED="${SCHEMATHESIS_SEED:-20251114}"
TIME_LIMIT="${SCHEMATHESIS_TIMEOUT:-240}"
REPORTS="$ROOT/target/openapi"

fail() { printf 'tests/openapi/run.sh: %s\n' "$*" >&2; exit 2; }

if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]; then
  echo "run.sh: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" ||
    fail "pip install schemathesis failed"
fi

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  # The probes' extra servers (started inside command substitutions: their PIDs are in a file).
  if [ -f "$WORK/extra.pids" ]; then
    # shellcheck disable=SC2046
    kill -TERM $(cat "$WORK/extra.pids") 2>/dev/null || true
    sleep 0.5
    # shellcheck disable=SC2046
    kill -KILL $(cat "$WORK/extra.pids") 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

healthy() { curl -fsS "$1/health" >/dev/null 2>&1; }

if [ -z "${HERALD_URL:-}" ]; then
  if [ ! -x "$HERALD_BIN" ]; then
    echo "run.sh: building $HERALD_BIN"
    (cd "$ROOT" && cargo build --quiet --bin herald) || fail "cargo build failed"
  fi
  port="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  HERALD_URL="http://127.0.0.1:$port"
  # Rate limits out of the way, so that generated logins and direct notifications reach the logic
  # behind them instead of 429 (which stays documented and is tested in tests/http_api.rs).
  printf '%s\n' 'dev = true' '[auth]' 'login_per_ip_per_minute = 1000000' 'login_per_username_per_minute = 1000000' \
    '[notifications]' 'direct_per_sender_per_minute = 1000000' >"$WORK/herald.toml"
  HERALD_BIND="127.0.0.1:$port" HERALD_DATABASE_URL="sqlite://$WORK/herald.db" HERALD_DEV=1 HERALD_REACTORS=2 \
    RUST_LOG=warn "$HERALD_BIN" --config "$WORK/herald.toml" >"$WORK/herald.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    healthy "$HERALD_URL" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/herald.log" >&2; fail "herald exited at start"; }
    sleep 0.2
  done
fi
HERALD_URL="${HERALD_URL%/}"
healthy "$HERALD_URL" || fail "no Herald server answers at $HERALD_URL"

# A real access token for the operations that need one (testuser is seeded in dev mode).
TOKEN="$(curl -fsS -X POST "$HERALD_URL/auth/login" -H 'Content-Type: application/json' \
  -d '{"username":"testuser","password":"testpass"}' |
  "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["data"]["accessToken"])')" ||
  fail "could not log in as testuser at $HERALD_URL (is it in dev mode?)"

mkdir -p "$REPORTS"
echo "== schemathesis $SCHEMATHESIS_VERSION on openapi.yaml against $HERALD_URL (max $MAX_EXAMPLES examples per operation, seed $SEED)"
status=0
# /notifications/stream never ends and /ws/chat switches protocols: neither is a request/response
# pair a fuzzer can judge (tests/node and tests/browser cover them). It runs in the scratch directory,
# where it leaves its cache (hence the explicit --config-file: per-operation settings, see that file).
# One worker: with two threads, CPython 3.11's parser can fail inside
# hypothesis ("AST constructor recursion depth mismatch"), an error of the tool, not of Herald.
cd "$WORK"
timeout --signal=INT --kill-after=10 "$TIME_LIMIT" \
  "$VENV/bin/schemathesis" --config-file "$HERE/schemathesis.toml" run "$ROOT/openapi.yaml" \
  --url "$HERALD_URL" \
  --header "Authorization: Bearer $TOKEN" \
  --checks all \
  --exclude-path /notifications/stream \
  --exclude-path /ws/chat \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --workers 1 \
  --request-timeout 10 \
  --suppress-health-check all \
  --report junit,har --report-junit-path "$REPORTS/schemathesis.xml" --report-har-path "$REPORTS/schemathesis.har" \
  || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 130 ]; then
  echo "run.sh: schemathesis did not finish within ${TIME_LIMIT}s" >&2
fi
# Every documented status reached: targeted probes on two more servers of our own, the Postman
# collection, then the coverage check over everything this run saw.
if [ "$status" -eq 0 ]; then
  start_extra() { # start_extra NAME DATABASE_URL TOML_LINES...: a dev-mode server; prints its URL
    local name=$1 url=$2; shift 2
    local port; port="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    printf '%s\n' 'dev = true' "$@" >"$WORK/$name.toml"
    HERALD_BIND="127.0.0.1:$port" HERALD_DATABASE_URL="$url" HERALD_DEV=1 HERALD_REACTORS=1 RUST_LOG=error \
      "$HERALD_BIN" --config "$WORK/$name.toml" >"$WORK/$name.log" 2>&1 &
    echo "$!" >>"$WORK/extra.pids" # this runs in a subshell: a variable would not reach cleanup
    for _ in $(seq 1 100); do
      curl -s -o /dev/null "http://127.0.0.1:$port/health" && break
      sleep 0.1
    done
    echo "http://127.0.0.1:$port"
  }
  [ -x "$HERALD_BIN" ] || (cd "$ROOT" && cargo build --quiet --bin herald) || fail "cargo build failed"
  STRICT_URL="$(start_extra strict "sqlite://$WORK/strict.db" '[server]' 'trusted_proxies = ["127.0.0.1"]' '[rooms]' 'max_members = 2')"
  # Nothing listens on port 1: the store stays down, and the server answers 503 for what needs it.
  DOWN_URL="$(start_extra down "mysql://root@127.0.0.1:1/none")"
  for _ in $(seq 1 100); do curl -fsS "$STRICT_URL/health" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "== probes (status_coverage): main $HERALD_URL, strict $STRICT_URL, store down $DOWN_URL"
  "$VENV/bin/python" "$HERE/probes.py" --main "$HERALD_URL" --strict "$STRICT_URL" --down "$DOWN_URL" \
    --out "$REPORTS/probes.json" || status=1
  # shellcheck disable=SC2046
  kill -TERM $(cat "$WORK/extra.pids") 2>/dev/null || true
  coverage_reports=("$REPORTS/schemathesis.har" "$REPORTS/probes.json")
  NEWMAN="$ROOT/tests/node/node_modules/.bin/newman"
  if [ -x "$NEWMAN" ]; then
    "$NEWMAN" run "$ROOT/postman/herald.postman_collection.json" --env-var "baseUrl=$HERALD_URL" \
      --reporters json --reporter-json-export "$REPORTS/newman.json" >/dev/null 2>&1 || true
    [ -f "$REPORTS/newman.json" ] && coverage_reports+=("$REPORTS/newman.json")
  fi
  "$VENV/bin/python" "$HERE/status_coverage.py" "$ROOT/openapi.yaml" "$HERE/covered_elsewhere.txt" \
    "${coverage_reports[@]}" || status=1
fi
if [ "$status" -ne 0 ]; then
  if [ -f "$WORK/herald.log" ]; then echo "--- herald log"; tail -30 "$WORK/herald.log"; fi
  echo "run.sh: FAILED" >&2
fi
exit "$status"
