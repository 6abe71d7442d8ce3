#!/usr/bin/env bash
# Black-box interop suite: official Pusher libraries against the herald binary.
#
#   protocol-tests/run.sh                       # everything
#   protocol-tests/run.sh node/channels.test.js # one Node file (paths relative to protocol-tests/)
#   protocol-tests/run.sh python/test_rest.py   # one Python file (any pytest argument works)
#   protocol-tests/run.sh node/user.test.js --test-name-pattern=watchlist   # one Node test
#
# Reads HERALD_BIN (default target/release/herald, relative to the repository root). Installs
# what it needs (npm ci, a venv from requirements.txt), starts herald with
# config/herald-test.toml on a free 127.0.0.1 port, runs `node --test` and `pytest`, and stops
# exactly the herald it started. Exits non-zero if anything failed. PT_KEEP_LOGS=1 keeps the
# shared herald's log (protocol-tests/.run/shared.*/herald.err) even when everything passed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
START=$(date +%s)

HERALD_BIN="${HERALD_BIN:-target/release/herald}"
case "$HERALD_BIN" in
  /*) ;;
  *) HERALD_BIN="$ROOT/$HERALD_BIN" ;;
esac
if [ ! -x "$HERALD_BIN" ]; then
  echo "protocol-tests: herald binary not found at $HERALD_BIN (cargo build --release --bin herald)" >&2
  exit 1
fi
export HERALD_BIN

cd "$HERE"

# --- dependencies -----------------------------------------------------------------------------
need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# node/tls.test.js makes its self-signed certificate with openssl.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "protocol-tests: installing ${need_apt[*]} with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! cmp -s package-lock.json node_modules/.protocol-tests-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.protocol-tests-lock
fi

VENV="$HERE/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    echo "protocol-tests: installing python3-venv with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
fi
if ! cmp -s requirements.txt "$VENV/.requirements.installed" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt "$VENV/.requirements.installed"
fi

# --- herald -----------------------------------------------------------------------------------
# Scratch space inside protocol-tests/ (git-ignored), so no one else's /tmp clean-up touches it.
mkdir -p "$HERE/.run"
# logs of failed runs are kept for an hour
find "$HERE/.run" -mindepth 1 -maxdepth 1 -mmin +60 -exec rm -rf {} + 2>/dev/null || true
WORK="$(mktemp -d "$HERE/.run/shared.XXXXXX")"
export PT_RUN_DIR="$HERE/.run"
HERALD_PID=""
cleanup() {
  local rc=$?
  if [ -n "$HERALD_PID" ] && kill -0 "$HERALD_PID" 2>/dev/null; then
    kill -TERM "$HERALD_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$HERALD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$HERALD_PID" 2>/dev/null || true
    wait "$HERALD_PID" 2>/dev/null || true
  fi
  if [ -n "${PT_KEEP_LOGS:-}" ]; then
    echo "protocol-tests: herald logs kept in $WORK"
  elif [ "$rc" -ne 0 ] && [ -d "$WORK" ]; then
    echo "--- last lines of the shared herald's output ($WORK/herald.out, herald.err) ---" >&2
    tail -n 40 "$WORK/herald.out" >&2 || true
    tail -n 40 "$WORK/herald.err" >&2 || true
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp config/herald-test.toml "$WORK/herald.toml"
: >"$WORK/herald.out"
: >"$WORK/herald.err"
# Only the file configures the test herald.
env -u HERALD_HOST -u HERALD_PORT -u HERALD_APP_ID -u HERALD_APP_KEY -u HERALD_APP_SECRET \
  RUST_LOG="${RUST_LOG:-info}" \
  "$HERALD_BIN" --config "$WORK/herald.toml" >"$WORK/herald.out" 2>"$WORK/herald.err" &
HERALD_PID=$!

PORT=""
for _ in $(seq 1 100); do
  PORT="$(sed -n 's#.*herald listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*#\1#p' "$WORK/herald.out" 2>/dev/null | head -n 1 || true)"
  [ -n "$PORT" ] && break
  if ! kill -0 "$HERALD_PID" 2>/dev/null; then
    echo "protocol-tests: herald exited during start-up" >&2
    cat "$WORK/herald.out" "$WORK/herald.err" >&2 || true
    exit 1
  fi
  sleep 0.1
done
if [ -z "$PORT" ]; then
  echo "protocol-tests: herald did not print its listening address within 10 s" >&2
  exit 1
fi
export HERALD_URL="http://127.0.0.1:$PORT"
echo "protocol-tests: herald (pid $HERALD_PID) on $HERALD_URL"

# --- tests ------------------------------------------------------------------------------------
node_files=()
node_opts=()
py_args=()
for a in "$@"; do
  case "$a" in
    node/*|*.js) node_files+=("$a") ;;
    --test-*) node_opts+=("$a") ;;
    *) py_args+=("$a") ;;
  esac
done
run_node=1
run_py=1
if [ $# -gt 0 ]; then
  [ ${#node_files[@]} -gt 0 ] || [ ${#node_opts[@]} -gt 0 ] || run_node=0
  [ ${#py_args[@]} -gt 0 ] || run_py=0
fi
[ ${#node_files[@]} -gt 0 ] || node_files=(node/*.test.js)
[ ${#py_args[@]} -gt 0 ] || py_args=(python)

node_rc=0
py_rc=0
if [ "$run_node" = 1 ]; then
  echo "protocol-tests: node --test (pusher-js $(node -p 'require("pusher-js/package.json").version'), pusher $(node -p 'require("pusher/package.json").version'))"
  node --test --test-concurrency=2 --test-force-exit --test-timeout=90000 --test-reporter=spec \
    ${node_opts[@]+"${node_opts[@]}"} "${node_files[@]}" || node_rc=$?
fi
if [ "$run_py" = 1 ]; then
  echo "protocol-tests: pytest"
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${py_args[@]}" || py_rc=$?
fi

herald_rc=0
if ! kill -0 "$HERALD_PID" 2>/dev/null; then
  echo "protocol-tests: the shared herald died during the run" >&2
  herald_rc=1
fi
echo "protocol-tests: node exit $node_rc, pytest exit $py_rc, $(( $(date +%s) - START )) s"
[ "$node_rc" -eq 0 ] && [ "$py_rc" -eq 0 ] && [ "$herald_rc" -eq 0 ]
