#!/usr/bin/env bash
# Where does herald's memory per idle connection go? Runs herald under heaptrack, holds N
# idle subscribed connections with herald-bench, stops herald and prints the allocation
# sites that were still live at the peak.
#
#   bench/profile/idle-heap.sh [N]      (default 2000; needs Debian's heaptrack)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
N=${1:-2000}
RUN_DIR=$(mktemp -d)
export REPO RUN_DIR
command -v heaptrack >/dev/null || apt-get install -y heaptrack
nice -n 19 cargo build --release -p herald --bin herald -p herald-bench
cd "$RUN_DIR"
# shellcheck source=../peers/servers.sh
source "$REPO/bench/peers/servers.sh"
trap stop_server EXIT
export HERALD_WRAP="heaptrack -o $RUN_DIR/heap"
# heaptrack wraps the server: start_herald's PID is heaptrack's, the server is its child.
start_herald
sleep 2
# The herald process is the one started with this run's own config file.
server=$(pgrep -f -- "^$REPO/target/release/herald --config $RUN_DIR/herald.toml" | head -1 || true)
echo "heaptrack pid $SERVER_PID, herald pid ${server:-?}"
"$REPO/target/release/herald-bench" idle --connections "$N" --settle 3 --hold 1 \
  --ws-url "ws://127.0.0.1:$SERVER_PORT" --api-url "http://127.0.0.1:$SERVER_PORT" \
  ${server:+--server-pid "$server"} --server-name herald-heaptrack
# Stop herald itself (heaptrack then writes its data and exits), then the wrapper.
[ -n "$server" ] && kill -TERM "$server"
sleep 3
stop_server
heaptrack_print -f "$(ls "$RUN_DIR"/heap*.zst | head -1)" --print-peaks 1 --print-allocators 0 \
  --print-temporary 0 --print-leaks 0 --peak-limit 12 2>/dev/null | sed -n '1,200p'
echo "heaptrack data kept in $RUN_DIR"
