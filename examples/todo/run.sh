#!/usr/bin/env bash
# One command for the todo example: builds herald and herald-todo, installs the front-end's
# libraries, starts herald (examples/todo/herald.toml) and the example, and stops both on
# Ctrl-C. Extra arguments go to herald-todo, e.g. `--frontend DIR` for the 2011 front-end.
#
# Environment: HERALD_PORT (6001), TODO_PORT (3000), TODO_DB (examples/todo/todo.sqlite3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/release"
HERALD_PORT="${HERALD_PORT:-6001}"
TODO_PORT="${TODO_PORT:-3000}"
TODO_DB="${TODO_DB:-$HERE/todo.sqlite3}"

(cd "$HERE/frontend" && npm ci --no-audit --no-fund --loglevel=error)
(cd "$ROOT" && cargo build --release -p herald -p todo-example --bins)

PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

HERALD_PORT="$HERALD_PORT" "$BIN/herald" --config "$HERE/herald.toml" &
PIDS+=("$!")
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$HERALD_PORT") 2>/dev/null; then break; fi
  kill -0 "${PIDS[0]}" 2>/dev/null || { echo "herald did not start" >&2; exit 1; }
  sleep 0.1
done

"$BIN/herald-todo" --listen "127.0.0.1:$TODO_PORT" --db "$TODO_DB" \
  --herald-url "http://127.0.0.1:$HERALD_PORT" --node-modules "$HERE/frontend/node_modules" "$@" &
PIDS+=("$!")

echo
echo "todo example: open http://127.0.0.1:$TODO_PORT/ (twice, to see it live); Ctrl-C stops both"
wait -n "${PIDS[@]}"
