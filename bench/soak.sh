#!/usr/bin/env bash
# The soak (hardening issue): herald under connection churn (public, private and presence
# channels), steady API triggers to healthy subscribers and a few slow readers, for DURATION
# seconds (default 1800). Records go to bench/results/<UTC time>-soak/; the curve of RSS,
# descriptors and threads is in the record's details.samples.
#
#   bash bench/soak.sh                  # 30 minutes
#   DURATION=120 WARMUP=30 bash bench/soak.sh
#
# Loopback only; the run stops by itself after DURATION s (plus at most 15 s of drain).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT="$REPO/bench/results/$(date -u +%Y%m%dT%H%M%SZ)-soak"
RUN_DIR=$(mktemp -d)
mkdir -p "$OUT"
# shellcheck source=bench/peers/servers.sh
source "$REPO/bench/peers/servers.sh"
trap stop_server EXIT
(cd "$REPO" && cargo build --release -p herald -p herald-bench)
{
  echo "herald: built here at $(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet HEAD -- src || echo '+uncommitted')"
  uname -sr; nproc
} > "$OUT/machine.txt"
start_server herald
"$REPO/target/release/herald-bench" soak --duration "${DURATION:-1800}" --warmup "${WARMUP:-120}" \
  --ws-url "ws://127.0.0.1:$SERVER_PORT" --api-url "http://127.0.0.1:$SERVER_PORT" \
  --app-id "$APP_ID" --key "$APP_KEY" --secret "$APP_SECRET" \
  --server-pid "$SERVER_PID" --server-name herald --case soak --out "$OUT/herald-soak.json"
stop_server
echo "record: $OUT/herald-soak.json"
