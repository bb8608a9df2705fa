#!/usr/bin/env bash
# Runs Herald's fuzz targets (fuzz/fuzz_targets/) one after another, each for a bounded time, and
# prints executions, coverage and findings per target. Not part of CI: scripts/test.sh does not
# call it.
#
#   scripts/fuzz.sh                 # every target, 60 s each
#   scripts/fuzz.sh 300             # every target, 5 minutes each
#   scripts/fuzz.sh 300 http_conn   # only the named targets
#
# How it runs on a stable toolchain: cargo-fuzz drives libFuzzer, which needs rustc's unstable
# `-Z sanitizer` / sancov flags. RUSTC_BOOTSTRAP=1 lets the installed stable rustc accept them
# (no nightly is needed or installed). The targets are built with optimizations and debug
# assertions (so integer overflow panics), under AddressSanitizer; FUZZ_SANITIZER=none runs
# without it (about twice the executions per second).
#
# Installs what is missing: cargo-fuzz from crates.io, and a C++ compiler (Debian g++) to build
# libFuzzer. The corpus each target grows stays in fuzz/corpus/<target> (not committed) and is
# reused by the next run; fuzz/seeds/<target> holds hand-written starting inputs; findings go to
# fuzz/artifacts/<target>/ and logs to fuzz/logs/<target>.log. Exits 1 when a target found
# anything.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SECONDS_EACH="${1:-60}"
shift || true
ALL_TARGETS=(stomp_frame stomp_decoder http_request http_conn cluster_envelope ws_inbound)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
SANITIZER="${FUZZ_SANITIZER:-address}"

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'scripts/fuzz.sh: %s\n' "$*" >&2; exit 2; }

case "$SECONDS_EACH" in '' | *[!0-9]*) fail "SECONDS must be a whole number, got '$SECONDS_EACH'" ;; esac
for t in "${TARGETS[@]}"; do
  [ -f "fuzz/fuzz_targets/$t.rs" ] || fail "no fuzz target '$t' (have: ${ALL_TARGETS[*]})"
done

command -v cargo >/dev/null 2>&1 || fail "missing cargo: install Rust with rustup (https://rustup.rs)"
if ! command -v c++ >/dev/null 2>&1; then
  say "installing g++ (libFuzzer is C++)"
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq g++
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
FUZZ_FLAGS=(--release --debug-assertions --sanitizer "$SANITIZER")
mkdir -p fuzz/logs
say "building ${TARGETS[*]} with $(cargo fuzz --version), $(rustc --version), RUSTC_BOOTSTRAP=1, sanitizer $SANITIZER"
for t in "${TARGETS[@]}"; do
  cargo fuzz build "${FUZZ_FLAGS[@]}" "$t"
done

dict_of() {
  case "$1" in
    http_*) echo fuzz/dicts/http.dict ;;
    stomp_*) echo fuzz/dicts/stomp.dict ;;
    ws_*) echo fuzz/dicts/ws_inbound.dict ;;
  esac
}

# Pulls one figure out of a libFuzzer log: the final-stats line, or the last status line.
stat_of() { sed -n "s/^stat::$2: *//p" "$1" | tail -1; }
last_status() { { grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$1" || true; } | tail -1; }
field_of() { sed -n "s/.* $2: \([^ ]*\).*/\1/p" <<<"$1"; }

SUMMARY=()
FOUND=0
for t in "${TARGETS[@]}"; do
  log="fuzz/logs/$t.log"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  dict="$(dict_of "$t")"
  say "fuzzing $t for ${SECONDS_EACH}s (corpus fuzz/corpus/$t + fuzz/seeds/$t, dictionary $dict, log $log)"
  # -timeout: an input that runs 10 s is reported as a hang (an infinite loop is a finding too).
  set +e
  cargo fuzz run "${FUZZ_FLAGS[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -dict="$dict" >"$log" 2>&1
  status=$?
  set -e
  line="$(last_status "$log")"
  runs="$(stat_of "$log" number_of_executed_units)"
  rate="$(stat_of "$log" average_exec_per_sec)"
  cov="$(field_of "$line" cov)"
  ft="$(field_of "$line" ft)"
  corp="$(field_of "$line" corp)"
  findings="$({ grep -oE '(crash|leak|timeout|oom|slow-unit)-[0-9a-f]+' "$log" || true; } | sort -u | sed "s|^|fuzz/artifacts/$t/|" | tr '\n' ' ')"
  if [ "$status" -ne 0 ] || [ -n "$findings" ]; then
    FOUND=1
    [ -n "$findings" ] || findings="(exit $status, see $log)"
    grep -m1 -A3 -E 'panicked at|ERROR: (libFuzzer|AddressSanitizer)' "$log" || true
  else
    findings="none"
  fi
  printf '%s: %s executions, %s exec/s, cov %s, features %s, corpus %s, findings: %s\n' \
    "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$findings"
  SUMMARY+=("$(printf '%-14s %12s %9s %6s %8s %14s  %s' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$findings")")
done

say "summary (${SECONDS_EACH}s per target, sanitizer $SANITIZER)"
printf '%-14s %12s %9s %6s %8s %14s  %s\n' target executions exec/s cov features corpus findings
printf '%s\n' "${SUMMARY[@]}"
exit "$FOUND"
