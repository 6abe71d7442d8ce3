#!/usr/bin/env bash
# Runs the fuzz targets one after another, each for SECONDS (default 600), niced, one job, and
# keeps each run's libFuzzer output in fuzz/logs/<target>.log (not committed).
# Usage: fuzz/run.sh [SECONDS] [TARGET...]   (default: every target)
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(client_message handshake api_signature event_body member_data config)
fi
mkdir -p logs
nice -n 19 cargo +nightly fuzz build --debug-assertions
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t: ${seconds}s"
    status=0
    nice -n 19 cargo +nightly fuzz run --debug-assertions "$t" "corpus/$t" "seeds/$t" -- \
        -jobs=1 -workers=1 -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"logs/$t.log" 2>&1 || status=$?
    grep -E '^#[0-9]+[[:space:]]+DONE|^Done|^stat::|ERROR|SUMMARY' "logs/$t.log" || true
    echo "exit $status; corpus/$t: $(ls "corpus/$t" | wc -l) files"
done
