# Sourced by the browser tests' runners (examples/todo/e2e/run.sh, tests/console-e2e/run.sh)
# once they have set ROOT: where the build is (TARGET_DIR), which herald to run (HERALD_BIN,
# HERALD_BIN_GIVEN=yes when the caller named one) and the browser (CHROMIUM); need_herald.
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
HERALD_BIN_GIVEN="${HERALD_BIN:+yes}"
HERALD_BIN="${HERALD_BIN:-$TARGET_DIR/release/herald}"
case "$HERALD_BIN" in /*) ;; *) HERALD_BIN="$ROOT/$HERALD_BIN" ;; esac
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

# need_herald: builds herald when HERALD_BIN was not given and is missing; non-zero if there is
# still no executable HERALD_BIN.
need_herald() {
  if [ ! -x "$HERALD_BIN" ] && [ -z "$HERALD_BIN_GIVEN" ]; then
    (cd "$ROOT" && cargo build --release --bin herald) || return 1
  fi
  [ -x "$HERALD_BIN" ]
}
