#!/usr/bin/env bash
# Stalled subscribers beside healthy ones (hardening issue, item 1): for each server, a baseline
# with no stalled connections, then the same publishing with STALLED connections that subscribe
# and never read. Records go to bench/results/<UTC time>-stalled/, a table is printed at the end.
#
#   bash bench/stalled.sh                                   # herald as built here
#   HERALD_BIN=/path/to/older/herald LABEL=before bash bench/stalled.sh
#   SERVERS="herald soketi sockudo" bash bench/stalled.sh   # peers from bench/peers/install.sh
#
# Loopback only; every run is bounded (DURATION s of publishing, then at most 10 s of drain).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$REPO/bench/results/$STAMP-stalled${LABEL:+-$LABEL}"
RUN_DIR=$(mktemp -d)
mkdir -p "$OUT"
# shellcheck source=bench/peers/servers.sh
source "$REPO/bench/peers/servers.sh"
trap stop_server EXIT

SERVERS=${SERVERS:-herald}
STALLED=${STALLED:-2000}
HEALTHY=${HEALTHY:-10}
DURATION=${DURATION:-20}
PAYLOAD=${PAYLOAD:-1000}
BENCH=${BENCH:-$REPO/target/release/herald-bench}
[ -x "$BENCH" ] || (cd "$REPO" && cargo build --release -p herald-bench)
[ -n "${HERALD_BIN:-}" ] || (cd "$REPO" && cargo build --release -p herald)

{
  if [ -n "${HERALD_BIN:-}" ]; then
    echo "herald: a given binary (HERALD_BIN), sha256 $(sha256sum "$HERALD_BIN" | cut -c1-16)"
  else
    echo "herald: built here at $(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet HEAD -- src || echo '+uncommitted')"
  fi
  echo "label: ${LABEL:-}"
  uname -sr; nproc; ulimit -Hn
} > "$OUT/machine.txt"

for server in $SERVERS; do
  for stalled in 0 "$STALLED"; do
    case_name="stalled-$stalled"
    start_server "$server"
    "$BENCH" stalled --stalled "$stalled" --subscribers "$HEALTHY" --duration "$DURATION" \
      --payload-bytes "$PAYLOAD" \
      --ws-url "ws://127.0.0.1:$SERVER_PORT" --api-url "http://127.0.0.1:$SERVER_PORT" \
      --app-id "$APP_ID" --key "$APP_KEY" --secret "$APP_SECRET" \
      --server-pid "$SERVER_PID" --server-name "$server" --case "$case_name" \
      --out "$OUT/$server-$case_name.json"
    stop_server
  done
done
"$BENCH" compare "$OUT"
echo "records: $OUT"
