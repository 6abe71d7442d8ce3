#!/usr/bin/env bash
# The debug console's cost: the fan-out benchmark (fanout-1000-flat) on herald with the console
# off, and with one console watching the app (a curl holding its live log, logged in with the
# token), alternating run by run. Writes bench/results/<UTC time>-console/ (herald-bench records
# per mode, the consoles' logs' sizes, the load at the start, summary.md).
#
#   bench/console.sh                      # 3 repetitions of each mode
#   REPS=1 DURATION=10 bench/console.sh
#   MODES="off idle watched" bench/console.sh   # idle: the console on, nobody watching
#
# Stops exactly the processes it started.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
REPS=${REPS:-3}
DURATION=${DURATION:-10}
MODES=${MODES:-"off watched"}
CASE=fanout-1000-flat
OUT=${OUT:-"$REPO/bench/results/$(date -u +%Y%m%dT%H%M%SZ)-console"}
RUN_DIR="$OUT/.run"
mkdir -p "$RUN_DIR"
export REPO RUN_DIR

# shellcheck source=peers/servers.sh
source "$REPO/bench/peers/servers.sh"
WATCHER_PID=
stop_watcher() {
  if [ -n "$WATCHER_PID" ]; then
    kill "$WATCHER_PID" 2>/dev/null || true
    wait "$WATCHER_PID" 2>/dev/null || true
  fi
  WATCHER_PID=
}
trap 'stop_watcher; stop_server' EXIT

if [ -z "${HERALD_BIN:-}" ]; then
  nice -n 19 cargo build --release -p herald --bin herald
  HERALD_BIN="$REPO/target/release/herald"
fi
nice -n 19 cargo build --release -p herald-bench
cp "$HERALD_BIN" "$RUN_DIR/herald"
cp "$REPO/target/release/herald-bench" "$RUN_DIR/herald-bench"
export HERALD_BIN="$RUN_DIR/herald"
BENCH="$RUN_DIR/herald-bench"
TOKEN="bench-console-token-$RANDOM$RANDOM"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
  echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "herald: $(git rev-parse --short HEAD)$(git diff --quiet -- src || echo ' +uncommitted src changes')"
  echo "case: $CASE, $DURATION s, modes: $MODES, repetitions: $REPS"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

# watch: logs in with the token and holds the app's live log open in the background.
watch() {
  local base="http://127.0.0.1:$CONSOLE_PORT" cookie
  cookie="$(curl -s -D - -o /dev/null -H 'content-type: application/json' \
    --data "{\"token\":\"$TOKEN\"}" "$base/api/login" |
    sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')"
  [ -n "$cookie" ] || { echo "console login failed" >&2; return 1; }
  curl -sN -H "cookie: $cookie" "$base/api/apps/$APP_ID/feed" > "$RUN_DIR/feed.log" &
  WATCHER_PID=$!
  sleep 0.5
}

read -r -a modes <<< "$MODES"
for rep in $(seq 1 "$REPS"); do
  n=${#modes[@]}
  for i in $(seq 0 $((n - 1))); do
    mode=${modes[$(( (i + rep - 1) % n ))]}
    CONSOLE_PORT=$(free_port)
    if [ "$mode" = off ]; then
      HERALD_CONSOLE=false start_server herald
    else
      HERALD_CONSOLE=true HERALD_CONSOLE_PORT=$CONSOLE_PORT HERALD_CONSOLE_TOKEN=$TOKEN \
        start_server herald
    fi
    if [ "$mode" = watched ]; then
      watch
    fi
    # shellcheck disable=SC2046
    "$BENCH" fanout --subscribers 1000 --duration "$DURATION" \
      --ws-url "ws://127.0.0.1:$SERVER_PORT" --api-url "http://127.0.0.1:$SERVER_PORT" \
      --server-pid "$SERVER_PID" --server-name "herald-console-$mode" --case "$CASE" \
      --out "$OUT/$CASE/herald-console-$mode-$rep.json" || echo "run failed: $mode $rep" >&2
    if [ "$mode" = watched ]; then
      stop_watcher
      echo "rep $rep: the console's log got $(grep -c '^data: ' "$RUN_DIR/feed.log" || true) entries, \
$(grep -c '"skipped"' "$RUN_DIR/feed.log" || true) 'skipped' notes" | tee -a "$OUT/machine.txt"
    fi
    stop_server
    sleep 1
  done
done

"$BENCH" compare "$OUT" | tee "$OUT/summary.md"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"
rm -rf "$RUN_DIR"
