#!/usr/bin/env bash
# Browser test of herald's debug console against the real herald binary.
#
# Starts herald (from $HERALD_BIN, default target/release/herald) with the console on, then
# drives the console page and a pusher-js page in headless Debian Chromium through
# playwright-core, and triggers with the Node SDK (console.test.mjs). Screenshots and results go
# to tests/console-e2e/artifacts/ (or $ARTIFACTS), which git ignores.
# Stops exactly the processes it started. Last line: "N passed, N failed".
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../../scripts/e2e/paths.sh
source "$ROOT/scripts/e2e/paths.sh"
ARTIFACTS="${ARTIFACTS:-$HERE/artifacts}"
TOKEN="console-e2e-token-$RANDOM$RANDOM"

PIDS=()
WORK="$(mktemp -d "${TMPDIR:-/tmp}/herald-console-e2e.XXXXXX")"
log() { echo "[console-e2e] $*"; }

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

abort() {
  log "setup failed: $*"
  echo "0 passed, 1 failed"
  exit 1
}

# --- what we need -------------------------------------------------------------------------
# shellcheck source=../../scripts/browser-deps.sh
source "$ROOT/scripts/browser-deps.sh"
need_browser || abort "could not install chromium or node"
(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) || abort "npm ci in tests/console-e2e/"
need_herald || abort "no herald: $HERALD_BIN"
mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/console-*.png "$ARTIFACTS"/console-results.json

# --- herald with the console on ------------------------------------------------------------
cat >"$WORK/herald.toml" <<TOML
[server]
host = "127.0.0.1"
port = 0

[metrics]
port = 0

[console]
enabled = true
port = 0
token = "$TOKEN"

[[apps]]
id = "e2e"
key = "e2e-key"
secret = "e2e-secret-never-shown"
TOML
"$HERALD_BIN" --config "$WORK/herald.toml" >"$WORK/herald.out" 2>"$WORK/herald.err" &
HERALD_PID=$!
PIDS+=("$HERALD_PID")
HERALD_URL="" CONSOLE_URL=""
for _ in $(seq 1 100); do
  HERALD_URL="$(grep -aoE 'herald listening on http://127\.0\.0\.1:[0-9]+' "$WORK/herald.out" | head -n1 | sed 's/^herald listening on //')"
  CONSOLE_URL="$(grep -aoE 'herald console on http://127\.0\.0\.1:[0-9]+/' "$WORK/herald.out" | head -n1 | sed 's/^herald console on //')"
  [ -n "$HERALD_URL" ] && [ -n "$CONSOLE_URL" ] && break
  kill -0 "$HERALD_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$HERALD_URL" ] || [ -z "$CONSOLE_URL" ]; then
  tail -n 20 "$WORK/herald.out" "$WORK/herald.err"
  abort "herald did not start"
fi
log "herald (pid $HERALD_PID) on $HERALD_URL, console on $CONSOLE_URL"

(cd "$HERE" && CONSOLE_URL="$CONSOLE_URL" HERALD_URL="$HERALD_URL" APP_ID=e2e APP_KEY=e2e-key \
  APP_SECRET=e2e-secret-never-shown CONSOLE_TOKEN="$TOKEN" ARTIFACTS="$ARTIFACTS" \
  CHROMIUM="$CHROMIUM" node console.test.mjs)
status=$?
counts="$(node -e 'const r=require(process.argv[1]);console.log(r.passed+" "+r.failed)' \
  "$ARTIFACTS/console-results.json" 2>/dev/null)" || counts="0 1"
passed=${counts% *}
failed=${counts#* }
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
log "screenshots and results in $ARTIFACTS"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
