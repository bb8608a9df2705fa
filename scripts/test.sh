#!/usr/bin/env bash
# Runs every test suite of Herald: format, lints, Rust unit and integration tests on SQLite and on
# MariaDB/MySQL, the client suites against a real server on each backend: Node (@stomp/stompjs,
# eventsource, newman) and Python (stomp.py over WebSocket, installed into tests/python/.venv); then the
# web client in a real Chromium and schemathesis on openapi.yaml (each against servers of their own on SQLite).
#
#   scripts/test.sh            # what CI runs (.ci/run)
#
# MariaDB: uses HERALD_TEST_MYSQL_URL (default mysql://root@127.0.0.1:3306/test) and starts the local
# mariadbd when nothing answers. With CI=true a MariaDB that cannot be reached is a failure, and so
# is a stomp.py that cannot be installed (without CI the Python suite is then skipped, loudly).
# Chromium and python3-venv: installed with apt-get when missing; with CI=true, when that fails, a failure
# (otherwise the browser / OpenAPI step is skipped with a notice).
# Redis: the cluster tests start their own redis-server on free ports (never the one on 6379);
# the package is installed with apt-get when missing. With CI=true a missing redis-server fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export HERALD_TEST_MYSQL_URL="${HERALD_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || fail "missing '$1': $2"
}
need cargo "install Rust with rustup (https://rustup.rs)"
need python3 "install Python 3 with venv (Debian: apt-get install python3 python3-venv)"
need node "install Node.js 20+ (Debian: apt-get install nodejs npm)"
need npm "install npm (Debian: apt-get install npm)"

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

ensure_mariadb() {
  if port_open 127.0.0.1 3306; then return 0; fi
  if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
    say "MariaDB is not running: starting /usr/sbin/mariadbd"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
    for _ in $(seq 1 60); do port_open 127.0.0.1 3306 && return 0; sleep 0.5; done
  fi
  if [ "${CI:-}" = "true" ]; then
    fail "MariaDB is not reachable on 127.0.0.1:3306 and could not be started (CI=true: this is a failure)"
  fi
  printf '!! MariaDB not reachable: the MySQL suites will be SKIPPED (set CI=true to make this fatal)\n' >&2
  return 1
}

# The cluster tests (tests/cluster.rs) start redis-servers of their own on free ports; they only
# need the binary (Debian package redis-server).
ensure_redis_server() {
  if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then return 0; fi
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "redis-server is missing: apt-get install redis-server"
    apt-get install -y -q redis-server >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q redis-server >/dev/null 2>&1; } || true
  fi
  if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then return 0; fi
  if [ "${CI:-}" = "true" ]; then
    fail "redis-server is not installed and could not be (CI=true: this is a failure)"
  fi
  printf '!! redis-server not installed: the cluster tests will be SKIPPED (set CI=true to make this fatal)\n' >&2
}

say "services"
MYSQL_UP=1
ensure_mariadb || MYSQL_UP=0
ensure_redis_server

say "cargo fmt --check"
cargo fmt --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

say "cargo test (unit tests, store conformance, integration tests on SQLite and MariaDB, cluster tests)"
cargo test --quiet --all-targets

# The Node suites (@stomp/stompjs chat flow, eventsource replay, newman on the Postman collection)
# run against the real server binary, once per backend.
say "cargo build --bin herald (for the client suites)"
cargo build --quiet --bin herald
HERALD_BIN="$ROOT/target/debug/herald"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "${MYSQL_DB:-}" ]; then mysql_admin "DROP DATABASE IF EXISTS $MYSQL_DB" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mysql_admin() {
  # Uses the mariadb client when present, else python with no extra modules is not enough: require the client.
  if command -v mariadb >/dev/null 2>&1; then mariadb -h127.0.0.1 -uroot -e "$1";
  elif command -v mysql >/dev/null 2>&1; then mysql -h127.0.0.1 -uroot -e "$1";
  else fail "the mariadb (or mysql) command-line client is needed to create the test database (apt-get install mariadb-client)"; fi
}

run_client_suites() {
  local label="$1" url="$2" port
  port="$(free_port)"
  say "client suites on $label (herald on 127.0.0.1:$port)"
  HERALD_BIND="127.0.0.1:$port" HERALD_DATABASE_URL="$url" HERALD_DEV=1 HERALD_REACTORS=2 RUST_LOG=warn \
    "$HERALD_BIN" --config "$ROOT/config/herald.toml" >"$WORK/herald-$label.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/herald-$label.log"; fail "herald exited on $label"; }
    sleep 0.2
  done
  if ! HERALD_URL="http://127.0.0.1:$port" "$ROOT/tests/node/run.sh"; then
    echo "--- herald log ($label)"; tail -50 "$WORK/herald-$label.log"
    fail "client suites failed on $label"
  fi
  local py_status=0
  HERALD_URL="http://127.0.0.1:$port" "$ROOT/tests/python/run.sh" || py_status=$?
  if [ "$py_status" = 2 ] && [ "${CI:-}" != "true" ]; then
    printf '!! stomp.py could not be installed: the Python client suite is SKIPPED on %s (CI=true makes this a failure)\n' "$label" >&2
  elif [ "$py_status" != 0 ]; then
    echo "--- herald log ($label)"; tail -50 "$WORK/herald-$label.log"
    fail "stomp.py suite failed on $label (exit $py_status)"
  fi
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

need curl "apt-get install curl"
run_client_suites sqlite "sqlite://$WORK/herald.db"
if [ "$MYSQL_UP" = 1 ]; then
  MYSQL_DB="herald_node_$$"
  mysql_admin "CREATE DATABASE $MYSQL_DB"
  run_client_suites mariadb "mysql://root@127.0.0.1:3306/$MYSQL_DB"
fi

# Optional tools that apt-get can bring (as root): a missing one fails under CI=true, else skips its step.
apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing $* (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >"$WORK/apt.log" 2>&1 ||
      { tail -20 "$WORK/apt.log" >&2; return 1; }
  else
    return 1
  fi
}
missing_tool() {
  if [ "${CI:-}" = "true" ]; then fail "$1 (CI=true: this is a failure)"; fi
  printf '!! %s: that step is SKIPPED (set CI=true to make this fatal)\n' "$1" >&2
}

# The web client in a real Chromium: chat, mention, cut-and-recover, reload and refresh (tests/browser).
CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
[ -x "$CHROMIUM_PATH" ] || apt_install chromium || true
if [ -x "$CHROMIUM_PATH" ]; then
  say "browser suite (tests/browser/run.sh, Chromium, own servers on SQLite)"
  CHROMIUM_PATH="$CHROMIUM_PATH" HERALD_BIN="$HERALD_BIN" "$ROOT/tests/browser/run.sh" ||
    fail "browser suite failed (screenshots in target/browser/)"
else
  missing_tool "no Chromium at $CHROMIUM_PATH and it could not be installed (apt-get install chromium)"
fi

# openapi.yaml against a live server: no 5xx, documented statuses, conforming bodies (tests/openapi).
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv || true
if python3 -c 'import ensurepip, venv' 2>/dev/null; then
  say "schemathesis on openapi.yaml (tests/openapi/run.sh, own server on SQLite)"
  HERALD_BIN="$HERALD_BIN" "$ROOT/tests/openapi/run.sh" || fail "schemathesis found disagreements with openapi.yaml"
else
  missing_tool "python3 cannot make a venv for schemathesis (apt-get install python3-venv)"
fi

say "all suites passed"
