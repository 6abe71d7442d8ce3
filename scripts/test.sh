#!/usr/bin/env bash
# The one test command (README): installs what the tests need, then runs every suite —
# formatting, clippy, the Rust unit and integration tests, a release build, the interop suite
# with the official Pusher libraries (against one herald, then through a 3-node cluster), and the
# todo example in a real browser.
# Each suite runs even when an earlier one failed; the exit status is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

passed=0
failed=0
failures=()

run() {
  local name=$1
  shift
  echo
  echo "=== $name: $*"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "=== $name: ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "=== $name: FAILED ($((SECONDS - start)) s)"
  fi
}

if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
  rustup component add clippy rustfmt
fi

# The cluster engine's tests (src/cluster) start their own redis-server (Debian's package).
if ! command -v redis-server >/dev/null 2>&1; then
  echo "test.sh: installing redis-server with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

run "rustfmt" cargo fmt --all -- --check
run "clippy" cargo clippy --workspace --all-targets -- -D warnings
run "cargo test" cargo test --workspace
run "release build" cargo build --release --workspace

export HERALD_BIN="$root/target/release/herald"
# suite NAME SCRIPT [VAR=VALUE...]: runs SCRIPT with those variables; a missing SCRIPT fails.
suite() {
  local name=$1 script=$2
  shift 2
  if [ -f "$script" ]; then
    run "$name" env "$@" bash "$script"
  else
    echo "=== $name: missing"
    failed=$((failed + 1))
    failures+=("$name (missing)")
  fi
}
# The interop suite twice: against one herald, then through three cluster nodes on one
# redis-server behind a round-robin haproxy (its runner installs haproxy).
suite "protocol-tests/run.sh" protocol-tests/run.sh PT_CLUSTER=0
suite "PT_CLUSTER=1 protocol-tests/run.sh" protocol-tests/run.sh PT_CLUSTER=1
suite "examples/todo/e2e/run.sh" examples/todo/e2e/run.sh
# The debug console in headless Chromium, with a pusher-js page and the Node SDK (~15 s).
suite "tests/console-e2e/run.sh" tests/console-e2e/run.sh

echo
if [ "$failed" -gt 0 ]; then
  list="$(printf '%s, ' "${failures[@]}")"
  echo "failed suites: ${list%, }"
fi
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
