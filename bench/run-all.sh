#!/usr/bin/env bash
# Benchmarks herald against soketi and sockudo on this machine, side by side in one run,
# with herald-bench's floor-server as a yardstick in the fixed-rate fanout cases (the least
# work per delivery; not a peer, see BENCHMARKS.md).
#
#   bench/run-all.sh                   # all scenarios, 3 repetitions
#   REPS=1 SCENARIOS="fanout-1000-flat api" bench/run-all.sh
#   SERVERS=herald SCENARIOS="fanout-1000-flat fanout-1000-flat-xhr" bench/run-all.sh
#                                      # WebSocket vs HTTP streaming fallback, herald alone
#
# Each (scenario, server) run starts a fresh server with the same app, loopback only, no rate
# limits and high connection limits (see peers/servers.sh), runs herald-bench against it and
# stops exactly that server. Servers alternate run by run (the order rotates every
# repetition) so that background load on the machine is spread over all of them. Records go
# to bench/results/<UTC time>/<case>/<server>-<rep>.json; the medians and herald/best-peer
# ratios are printed at the end and saved as summary.md beside them.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
REPS=${REPS:-3}
SERVERS=${SERVERS:-"herald soketi sockudo floor"}
DURATION=${DURATION:-10}
ALL_SCENARIOS="fanout-1000-flat fanout-5000-flat fanout-5000-open fanout-1000-rate50 fanout-1000-rate100 fanout-1000-rate150 channels-1000 idle-5000 api presence client-events fanout-1000-flat-xhr fanout-1000-rate50-xhr idle-5000-xhr"
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}
OUT=${OUT:-"$REPO/bench/results/$(date -u +%Y%m%dT%H%M%SZ)"}
RUN_DIR="$OUT/.run"
mkdir -p "$RUN_DIR"
export REPO RUN_DIR

# shellcheck source=peers/servers.sh
source "$REPO/bench/peers/servers.sh"
trap stop_server EXIT

# HERALD_BIN=path skips building herald (e.g. to measure a saved binary).
if [ -z "${HERALD_BIN:-}" ]; then
  nice -n 19 cargo build --release -p herald --bin herald
  HERALD_BIN="$REPO/target/release/herald"
fi
nice -n 19 cargo build --release -p herald-bench
# The peers only when they run (SERVERS=herald: herald's cases alone, e.g. the -xhr ones).
if [[ " $SERVERS " == *" soketi "* || " $SERVERS " == *" sockudo "* ]]; then
  bash "$REPO/bench/peers/install.sh"
fi
# Copies, so that a rebuild in the shared target/ during the run cannot swap binaries.
cp "$HERALD_BIN" "$RUN_DIR/herald"
cp "$REPO/target/release/herald-bench" "$RUN_DIR/herald-bench"
export HERALD_BIN="$RUN_DIR/herald"
BENCH="$RUN_DIR/herald-bench"

{
  bash "$REPO/bench/machine.sh"
  echo "soketi: $(node -p "require('$PEERS/soketi/node_modules/@soketi/soketi/package.json').version" 2>/dev/null || echo 'not installed') on node $(node --version)"
  echo "sockudo: $("$PEERS/.sockudo/bin/sockudo" --version 2>/dev/null | head -1)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

# scenario_args CASE: the herald-bench arguments of one case.
scenario_args() {
  case "$1" in
    fanout-1000-flat)   echo "fanout --subscribers 1000 --duration $DURATION" ;;
    fanout-5000-flat)   echo "fanout --subscribers 5000 --duration $DURATION" ;;
    fanout-5000-open)   echo "fanout --subscribers 5000 --window 0 --duration $DURATION" ;;
    fanout-1000-rate50) echo "fanout --subscribers 1000 --rate 50 --publishers 2 --duration $DURATION" ;;
    fanout-1000-rate100) echo "fanout --subscribers 1000 --rate 100 --publishers 2 --duration $DURATION" ;;
    fanout-1000-rate150) echo "fanout --subscribers 1000 --rate 150 --publishers 2 --duration $DURATION" ;;
    channels-1000)      echo "channels --connections 1000 --duration $DURATION" ;;
    idle-5000)          echo "idle --connections 5000 --connect-concurrency 100" ;;
    api)                echo "api --publishers 4 --duration $DURATION" ;;
    presence)           echo "presence --observers 10 --churners 20 --duration $DURATION" ;;
    client-events)      echo "client-events --pairs 100 --rate 50 --duration $DURATION" ;;
    # pusher-js's HTTP streaming fallback (herald only: the peers do not serve it).
    fanout-1000-flat-xhr)   echo "fanout --subscribers 1000 --duration $DURATION --transport xhr-streaming" ;;
    fanout-1000-rate50-xhr) echo "fanout --subscribers 1000 --rate 50 --publishers 2 --duration $DURATION --transport xhr-streaming" ;;
    idle-5000-xhr)          echo "idle --connections 5000 --connect-concurrency 100 --transport xhr-streaming" ;;
    *) echo "unknown case $1" >&2; return 1 ;;
  esac
}

read -r -a servers <<< "$SERVERS"
for rep in $(seq 1 "$REPS"); do
  for case_name in $SCENARIOS; do
    n=${#servers[@]}
    for i in $(seq 0 $((n - 1))); do
      server=${servers[$(( (i + rep - 1 + n) % n ))]}
      # The floor yardstick is a latency bound at a fixed rate; flat out it is no bound (it
      # writes every event separately, where a server may batch), so it runs only there.
      if [ "$server" = floor ] && [[ $case_name != fanout-*-rate* ]]; then continue; fi
      # Only herald serves pusher-js's HTTP fallback transports.
      if [[ $case_name == *-xhr ]] && [ "$server" != herald ]; then continue; fi
      start_server "$server"
      # shellcheck disable=SC2046
      "$BENCH" $(scenario_args "$case_name") \
        --ws-url "ws://127.0.0.1:$SERVER_PORT" --api-url "http://127.0.0.1:$SERVER_PORT" \
        --server-pid "$SERVER_PID" --server-name "$server" --case "$case_name" \
        --out "$OUT/$case_name/$server-$rep.json" || echo "run failed: $case_name $server $rep" >&2
      stop_server
      sleep 1
    done
  done
done

"$BENCH" compare "$OUT" | tee "$OUT/summary.md"
sha256sum "$HERALD_BIN" | cut -c1-16 | sed 's/^/herald binary sha256: /' >> "$OUT/machine.txt"
rm -rf "$RUN_DIR"
