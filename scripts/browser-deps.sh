# Sourced by the browser tests (examples/todo/e2e/run.sh, tests/console-e2e/run.sh): makes sure
# Debian's chromium and node/npm are there, installing them with apt-get when missing.
#
# need_browser: sets CHROMIUM (default /usr/bin/chromium); returns non-zero if an install failed.
need_browser() {
  CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
  if [ ! -x "$CHROMIUM" ]; then
    echo "no $CHROMIUM: installing Debian's chromium with apt-get"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) ||
      return 1
    CHROMIUM=/usr/bin/chromium
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "no node/npm: installing Debian's nodejs and npm with apt-get"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm) ||
      return 1
  fi
}
