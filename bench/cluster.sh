#!/usr/bin/env bash
# The cluster benchmark: herald on one node, on one node with Redis configured, on 2 and on 3
# nodes sharing one Redis, against 3 sockudo nodes on its own Redis adapter, side by side in one
# run (configurations alternating, the order rotating every repetition; medians of REPS).
#
#   bench/cluster.sh                                   # both cases, 3 repetitions
#   REPS=1 DURATION=3 bench/cluster.sh                 # a smoke run
#   CONFIGS="herald-1node herald-3nodes" CASES=fanout-1000-rate50 bench/cluster.sh
#
# A private redis-server (Debian's package, installed when missing) listens on a free loopback
# port without persistence and is emptied (FLUSHALL) before every run. Subscribers are spread
# over the nodes (connection i on node i mod n: herald-bench's comma-separated --ws-url), the
# publishers trigger on node 1. Each run records, beside herald-bench's figures, what Redis
# spent while events were published and delivered (herald-bench's --on-publish-start and
# --on-publish-end hooks take the snapshots): its CPU (from /proc of its PID), network (INFO
# stats total_net_input_bytes / total_net_output_bytes) and commands (INFO commandstats), per
# published event (each is delivered to every subscriber), with the nodes' heartbeats in the
# same window; what subscribing cost Redis is kept apart in the record. Records go to
# bench/results/<UTC time>-cluster/<case>/<config>-<rep>.json, the 1-minute load before each
# run to load.txt; the medians (summary.md) and the targets (targets.md) are printed at the end.
#
# sockudo with Redis is a build of its own (`--features redis`), installed by
# bench/peers/install.sh into bench/peers/.sockudo-redis; SOCKUDO_REDIS_BIN=path uses another.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
REPS=${REPS:-3}
DURATION=${DURATION:-10}
ALL_CONFIGS="herald-1node herald-1node-redis herald-2nodes herald-3nodes sockudo-3nodes"
CONFIGS=${CONFIGS:-$ALL_CONFIGS}
CASES=${CASES:-"fanout-1000-flat fanout-1000-rate50"}
OUT=${OUT:-"$REPO/bench/results/$(date -u +%Y%m%dT%H%M%SZ)-cluster"}
RUN_DIR="$OUT/.run"
mkdir -p "$RUN_DIR"
export REPO RUN_DIR

# shellcheck source=peers/servers.sh
source "$REPO/bench/peers/servers.sh"

NODE_PIDS=()
NODE_PORTS=()
REDIS_PID=

# stop_nodes: stops every node of the configuration under test, each by its PID.
stop_nodes() {
  local pid
  for pid in "${NODE_PIDS[@]}"; do
    SERVER_PID=$pid stop_server
  done
  NODE_PIDS=()
  NODE_PORTS=()
}

stop_redis() {
  if [ -n "$REDIS_PID" ]; then
    SERVER_PID=$REDIS_PID stop_server
    REDIS_PID=
  fi
}

cleanup() {
  stop_nodes
  stop_redis
}
trap cleanup EXIT

# --- binaries ---------------------------------------------------------------------------
# HERALD_BIN=path skips building herald (e.g. to measure a saved binary).
if [ -z "${HERALD_BIN:-}" ]; then
  nice -n 19 cargo build --release -p herald --bin herald
  HERALD_BIN="$REPO/target/release/herald"
fi
nice -n 19 cargo build --release -p herald-bench
SOCKUDO_REDIS_BIN=${SOCKUDO_REDIS_BIN:-"$PEERS/.sockudo-redis/bin/sockudo"}
if [[ " $CONFIGS " == *" sockudo-"* ]] && [ ! -x "$SOCKUDO_REDIS_BIN" ]; then
  bash "$REPO/bench/peers/install.sh"
fi
if ! command -v redis-server >/dev/null; then
  apt-get update && apt-get install -y redis-server
fi
# Copies, so that a rebuild during the run cannot swap binaries.
cp "$HERALD_BIN" "$RUN_DIR/herald"
cp "$REPO/target/release/herald-bench" "$RUN_DIR/herald-bench"
export HERALD_BIN="$RUN_DIR/herald"
BENCH="$RUN_DIR/herald-bench"
if [[ " $CONFIGS " == *" sockudo-"* ]]; then
  cp "$SOCKUDO_REDIS_BIN" "$RUN_DIR/sockudo-redis"
  SOCKUDO_REDIS_BIN="$RUN_DIR/sockudo-redis"
fi

# --- Redis ------------------------------------------------------------------------------
REDIS_PORT=$(free_port)
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
mkdir -p "$RUN_DIR/redis"
# No persistence (no RDB snapshots, no AOF), loopback only.
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
  --dir "$RUN_DIR/redis" --daemonize no --loglevel warning \
  > "$RUN_DIR/redis.log" 2>&1 &
REDIS_PID=$!
wait_port "$REDIS_PORT" "$REDIS_PID"

redis() {
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"
}

# $RUN_DIR/redis-snapshot FILE: Redis's CPU seconds so far (from /proc), INFO stats and
# commandstats, one "name value" per line. A script of its own, for herald-bench's hooks.
export REDIS_PORT REDIS_PID
cat > "$RUN_DIR/redis-snapshot" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
{
  # Time on CPU of all its threads, ns (schedstat's first field; /proc/PID/stat's utime and
  # stime count 10 ms ticks, too coarse for a few seconds of a mostly idle Redis).
  echo "cpu_s $(cat /proc/"$REDIS_PID"/task/*/schedstat | awk '{ns += $1} END {printf "%.6f", ns / 1e9}')"
  echo "time_s $(date +%s.%N)"
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" INFO stats | tr -d '\r' \
    | grep -E '^(total_net_input_bytes|total_net_output_bytes|total_commands_processed):' | tr ':' ' '
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" INFO commandstats | tr -d '\r' \
    | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/cmd_\1 \2/p'
} > "$1"
SH
chmod +x "$RUN_DIR/redis-snapshot"

# --- configurations -----------------------------------------------------------------------
# start_config NAME: starts its nodes (NODE_PIDS, NODE_PORTS; node 1 first).
start_config() {
  local kind=${1%%-*} rest=${1#*-} nodes i
  nodes=${rest%%node*}
  for i in $(seq 1 "$nodes"); do
    case "$1" in
      herald-1node)
        SERVER_TAG=-node$i start_herald ;;
      herald-*)
        SERVER_TAG=-node$i HERALD_REDIS_URL=$REDIS_URL start_herald ;;
      sockudo-*)
        SERVER_TAG=-node$i SOCKUDO_BIN=$SOCKUDO_REDIS_BIN ADAPTER_DRIVER=redis \
          CACHE_DRIVER=redis REDIS_URL=$REDIS_URL start_sockudo ;;
      *) echo "unknown configuration $1 ($kind)" >&2; return 1 ;;
    esac
    NODE_PIDS+=("$SERVER_PID")
    NODE_PORTS+=("$SERVER_PORT")
  done
}

# case_args CASE: the herald-bench arguments of one case.
case_args() {
  case "$1" in
    fanout-1000-flat)   echo "fanout --subscribers 1000 --duration $DURATION" ;;
    fanout-1000-rate50) echo "fanout --subscribers 1000 --rate 50 --publishers 2 --duration $DURATION" ;;
    *) echo "unknown case $1" >&2; return 1 ;;
  esac
}

{
  bash "$REPO/bench/machine.sh"
  if [[ " $CONFIGS " == *" sockudo-"* ]]; then
    echo "sockudo: $("$SOCKUDO_REDIS_BIN" --version 2>/dev/null | head -1) (--features redis)"
  fi
  echo "redis: $(redis-server --version | cut -d' ' -f3)"
  echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

read -r -a configs <<< "$CONFIGS"
for rep in $(seq 1 "$REPS"); do
  for case_name in $CASES; do
    n=${#configs[@]}
    for i in $(seq 0 $((n - 1))); do
      config=${configs[$(( (i + rep - 1 + n) % n ))]}
      redis FLUSHALL > /dev/null
      start_config "$config"
      # Give cluster nodes a heartbeat to find each other before subscribers arrive.
      sleep 1
      ws_urls=$(printf 'ws://127.0.0.1:%s,' "${NODE_PORTS[@]}")
      pids=$(IFS=,; echo "${NODE_PIDS[*]}")
      record="$OUT/$case_name/$config-$rep.json"
      echo "== $case_name $config (rep $rep): load $(cut -d' ' -f1-3 /proc/loadavg)" \
        | tee -a "$OUT/load.txt"
      snap="'$RUN_DIR/redis-snapshot' '$RUN_DIR/redis'"
      rm -f "$RUN_DIR"/redis.[012]
      "$RUN_DIR/redis-snapshot" "$RUN_DIR/redis.0"
      # shellcheck disable=SC2046
      if "$BENCH" $(case_args "$case_name") \
        --ws-url "${ws_urls%,}" --api-url "http://127.0.0.1:${NODE_PORTS[0]}" \
        --server-pid "$pids" --server-name "$config" --case "$case_name" --out "$record" \
        --on-publish-start "$snap.1" --on-publish-end "$snap.2"; then
        python3 "$REPO/bench/cluster_report.py" annotate "$RUN_DIR"/redis.{0,1,2} "$record"
      else
        echo "run failed: $case_name $config $rep" >&2
      fi
      stop_nodes
      sleep 1
    done
  done
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"

"$BENCH" compare "$OUT" --reference herald-3nodes | tee "$OUT/summary.md"

# The issue's three targets and the cost as nodes are added, from the medians.
python3 "$REPO/bench/cluster_report.py" summary "$OUT" | tee "$OUT/targets.md"

sha256sum "$HERALD_BIN" | cut -c1-16 | sed 's/^/herald binary sha256: /' >> "$OUT/machine.txt"
stop_redis
rm -rf "$RUN_DIR"
