#!/usr/bin/env bash
# Browser end-to-end test of examples/todo against the real herald binary.
#
# Starts herald (from $HERALD_BIN, default target/release/herald) with the example's app, then
# the example backend on a free port with a temporary SQLite file, and drives two pages in
# headless Debian Chromium through playwright-core (todo.test.mjs). Variants:
#   ours              our own front-end (always)
#   ours-legacy       the same, triggering through herald's legacy (2011 gem) endpoint
#   ours-fallback     the same with the pages' WebSocket failing: pusher-js falls back to HTTP
#   original          the unmodified 2011 front-end, when TODO_ORIGINAL_FRONTEND points at a
#                     folder holding pusher/backbone-todo-app's public/ files (else skipped)
#   original-pusher8  the same with its pusher.js 1.8.3 swapped for pusher-js 8 from npm
# Before the browser, shim.test.mjs checks the original page's pusher shim with stand-ins.
# Screenshots and results go to examples/todo/artifacts/ (or $ARTIFACTS).
# Stops exactly the processes it started. Last line: "N passed, N failed, N skipped".
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TODO_DIR="$(dirname "$HERE")"
ROOT="$(cd "$TODO_DIR/../.." && pwd)"
# shellcheck source=../../../scripts/e2e/paths.sh
source "$ROOT/scripts/e2e/paths.sh"
ARTIFACTS="${ARTIFACTS:-$TODO_DIR/artifacts}"
TODO_BIN="$TARGET_DIR/release/herald-todo"

PASSED=0
FAILED=0
SKIPPED=0
PIDS=()
WORK="$(mktemp -d "${TMPDIR:-/tmp}/herald-todo-e2e.XXXXXX")"

log() { echo "[todo-e2e] $*"; }

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Ends the run early: a setup step failed.
abort() {
  log "setup failed: $*"
  FAILED=$((FAILED + 1))
  echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
  exit 1
}

# wait_for_url PID LOGFILE: prints the http://127.0.0.1:PORT the process announced on stdout.
wait_for_url() {
  local pid="$1" logfile="$2" url="" i
  for i in $(seq 1 200); do
    url="$(grep -aoE 'listening on http://127\.0\.0\.1:[0-9]+' "$logfile" 2>/dev/null | head -n1 | sed 's/^listening on //')"
    if [ -n "$url" ]; then
      echo "$url"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# add_counts RESULTS_JSON EXIT_STATUS: adds a suite's {passed, failed} to the totals.
add_counts() {
  local counts
  counts="$(node -e 'const r=require(process.argv[1]);console.log(r.passed+" "+r.failed)' \
    "$1" 2>/dev/null)" || counts="0 1"
  PASSED=$((PASSED + ${counts% *}))
  FAILED=$((FAILED + ${counts#* }))
  if [ "$2" -ne 0 ] && [ "${counts#* }" -eq 0 ]; then FAILED=$((FAILED + 1)); fi
}

stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# --- what we need -------------------------------------------------------------------------
# shellcheck source=../../../scripts/browser-deps.sh
source "$ROOT/scripts/browser-deps.sh"
need_browser || abort "could not install chromium or node"
(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) || abort "npm ci in e2e/"
(cd "$TODO_DIR/frontend" && npm ci --no-audit --no-fund --loglevel=error) || abort "npm ci in frontend/"
(cd "$ROOT" && cargo build --release -p todo-example) || abort "cargo build -p todo-example"
need_herald || abort "no herald: $HERALD_BIN"
mkdir -p "$ARTIFACTS"

# --- the pusher shim of the original page, without a browser -------------------------------
rm -f "$ARTIFACTS"/*-results.json "$ARTIFACTS"/*.png
(cd "$HERE" && ARTIFACTS="$ARTIFACTS" node shim.test.mjs)
add_counts "$ARTIFACTS/shim-results.json" $?

# --- herald, configured with the demo app ---------------------------------------------------
cat >"$WORK/herald.toml" <<'TOML'
[server]
host = "127.0.0.1"
port = 0
# Short liveness rounds, so the test's idle check spans several: the 2011 pusher.js never
# answers pusher:ping and must not be dropped for it.
activity_timeout = "1s"
pong_timeout = "2s"

[metrics]
port = 0

[[apps]]
id = "5493"
key = "511a5abb7486107ce643"
secret = "012e3a040f1f7c25ef24"
TOML
"$HERALD_BIN" --config "$WORK/herald.toml" >"$WORK/herald.out" 2>"$WORK/herald.err" &
HERALD_PID=$!
PIDS+=("$HERALD_PID")
HERALD_URL="$(wait_for_url "$HERALD_PID" "$WORK/herald.out")" || {
  tail -n 20 "$WORK/herald.out" "$WORK/herald.err"
  abort "herald did not start"
}
log "herald (pid $HERALD_PID) on $HERALD_URL"

# run_variant NAME EXPECT_EXCLUSION [herald-todo flags...]
run_variant() {
  local name="$1" expect="$2"
  shift 2
  "$TODO_BIN" --listen 127.0.0.1:0 --db "$WORK/$name.sqlite3" --herald-url "$HERALD_URL" \
    --node-modules "$TODO_DIR/frontend/node_modules" "$@" \
    >"$WORK/$name.out" 2>"$WORK/$name.err" &
  local pid=$!
  PIDS+=("$pid")
  local url
  url="$(wait_for_url "$pid" "$WORK/$name.out")" || {
    tail -n 20 "$WORK/$name.err"
    log "$name: herald-todo did not start"
    FAILED=$((FAILED + 1))
    return
  }
  log "$name: herald-todo (pid $pid) on $url $*"
  (cd "$HERE" && TODO_URL="$url" TODO_VARIANT="$name" TODO_TRANSPORT="${TODO_TRANSPORT:-}" ARTIFACTS="$ARTIFACTS" CHROMIUM="$CHROMIUM" \
    EXPECT_EXCLUSION="$expect" node todo.test.mjs)
  local status=$?
  add_counts "$ARTIFACTS/$name-results.json" "$status"
  if [ "$status" -ne 0 ]; then
    log "$name: failed; backend log tail:"
    tail -n 15 "$WORK/$name.err"
  fi
  stop "$pid"
}

run_variant ours 1
# The same through the gem-era endpoint, POST /apps/{id}/channels/{channel}/events.
run_variant ours-legacy 1 --trigger-api legacy
# WebSockets blocked in the pages: pusher-js falls back to its HTTP transports, served by herald.
TODO_TRANSPORT=fallback run_variant ours-fallback 1

if [ -n "${TODO_ORIGINAL_FRONTEND:-}" ]; then
  PUBLIC="$TODO_ORIGINAL_FRONTEND"
  [ -f "$PUBLIC/javascripts/application.js" ] || PUBLIC="$TODO_ORIGINAL_FRONTEND/public"
  if [ ! -f "$PUBLIC/javascripts/application.js" ]; then
    log "TODO_ORIGINAL_FRONTEND=$TODO_ORIGINAL_FRONTEND holds no javascripts/application.js"
    FAILED=$((FAILED + 1))
  else
    # The 2011 stack as it was: pusher.js 1.8.3 and the gem-era trigger endpoint.
    run_variant original 1 --frontend "$PUBLIC" --trigger-api legacy
    # pusher-js 8 instead of 1.8.3. backpusher 0.0.1 reads pusher.socket_id, which pusher-js
    # >= 1.9 no longer has, so only the 0.0.2 (header) version can get exclusion there.
    cp -r "$PUBLIC" "$WORK/original-pusher8"
    cp "$TODO_DIR/frontend/node_modules/pusher-js/dist/web/pusher.js" \
      "$WORK/original-pusher8/javascripts/pusher.js"
    expect=0
    grep -q 'X-Pusher-Socket-ID' "$PUBLIC/javascripts/backpusher.js" && expect=1
    run_variant original-pusher8 "$expect" --frontend "$WORK/original-pusher8"
  fi
else
  SKIPPED=$((SKIPPED + 2))
  log "skipped: the original 2011 front-end variants (set TODO_ORIGINAL_FRONTEND to a folder"
  log "  holding pusher/backbone-todo-app's public/ files; see examples/todo/README.md)"
fi

log "screenshots and results in $ARTIFACTS"
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]
