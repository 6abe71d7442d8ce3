#!/usr/bin/env bash
# Prints what a benchmark record needs to say about this machine and the herald under test
# (the first lines of a results directory's machine.txt), without paths. Run from the
# repository root.
set -euo pipefail
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "kernel: $(uname -sr)"
echo "open files (hard): $(ulimit -Hn)"
echo "herald: $(git rev-parse --short HEAD)$(git diff --quiet -- src || echo ' +uncommitted src changes')"
echo "rustc: $(rustc --version)"
