#!/usr/bin/env bash
# Black-box interop suite: official Pusher libraries against the herald binary.
#
#   protocol-tests/run.sh                       # everything
#   protocol-tests/run.sh node/channels.test.js # one Node file (paths relative to protocol-tests/)
#   protocol-tests/run.sh python/test_rest.py   # one Python file (any pytest argument works)
#   protocol-tests/run.sh node/user.test.js --test-name-pattern=watchlist   # one Node test
#   PT_CLUSTER=1 protocol-tests/run.sh          # the same tests through a 3-node cluster
#
# Reads HERALD_BIN (default target/release/herald, relative to the repository root). Installs
# what it needs (npm ci, a venv from requirements.txt), starts herald with
# config/herald-test.toml on a free 127.0.0.1 port, runs `node --test` and `pytest`, and stops
# exactly the herald it started. Exits non-zero if anything failed. PT_KEEP_LOGS=1 keeps the
# shared herald's log (protocol-tests/.run/shared.*/herald.err) even when everything passed.
#
# PT_CLUSTER=1: instead of one herald, a cluster: redis-server (no persistence), three herald
# nodes with the same config plus [cluster] redis_url, and haproxy balancing each HTTP request
# and each WebSocket connection round-robin over them (the HTTP fallback's requests by session,
# as README.md says a balancer must), all on free 127.0.0.1 ports. HERALD_URL
# is the balancer, so the tests see one server. apt-get installs redis-server and haproxy when
# missing. Before the tests, six API calls and three WebSocket connections through the balancer
# must reach each node twice and once; after them, each node's share of both is printed. The
# logs are node1..3.err, redis.log and haproxy.err in the run directory.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
START=$(date +%s)
CLUSTER="${PT_CLUSTER:-0}"
case "$CLUSTER" in
  0|1) ;;
  *) echo "protocol-tests: PT_CLUSTER must be 0 or 1, got '$CLUSTER'" >&2; exit 2 ;;
esac
NODES=3

HERALD_BIN="${HERALD_BIN:-target/release/herald}"
case "$HERALD_BIN" in
  /*) ;;
  *) HERALD_BIN="$ROOT/$HERALD_BIN" ;;
esac
if [ ! -x "$HERALD_BIN" ]; then
  echo "protocol-tests: herald binary not found at $HERALD_BIN (cargo build --release --bin herald)" >&2
  exit 1
fi
export HERALD_BIN

cd "$HERE"

# --- dependencies -----------------------------------------------------------------------------
need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if [ "$CLUSTER" = 1 ]; then
  command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
  command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
fi
# node/tls.test.js makes its self-signed certificate with openssl.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "protocol-tests: installing ${need_apt[*]} with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! cmp -s package-lock.json node_modules/.protocol-tests-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.protocol-tests-lock
fi

VENV="$HERE/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    echo "protocol-tests: installing python3-venv with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
fi
if ! cmp -s requirements.txt "$VENV/.requirements.installed" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt "$VENV/.requirements.installed"
fi

# --- processes --------------------------------------------------------------------------------
# Scratch space inside protocol-tests/ (git-ignored), so no one else's /tmp clean-up touches it.
mkdir -p "$HERE/.run"
# logs of failed runs are kept for an hour
find "$HERE/.run" -mindepth 1 -maxdepth 1 -mmin +60 -exec rm -rf {} + 2>/dev/null || true
WORK="$(mktemp -d "$HERE/.run/shared.XXXXXX")"
export PT_RUN_DIR="$HERE/.run"

# What this script started, by PID, in groups stopped in this order: the balancer first (no
# new traffic), then the heralds (they leave the cluster through Redis), then Redis.
BALANCER_PIDS=()
HERALD_PIDS=()
REDIS_PIDS=()
LOGS=()   # shown (last lines) when the run failed

# stop_group PID...: SIGTERM to each, up to 5 s for all of them to exit, then SIGKILL.
stop_group() {
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "$@"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

cleanup() {
  local rc=$?
  stop_group ${BALANCER_PIDS[@]+"${BALANCER_PIDS[@]}"}
  stop_group ${HERALD_PIDS[@]+"${HERALD_PIDS[@]}"}
  stop_group ${REDIS_PIDS[@]+"${REDIS_PIDS[@]}"}
  if [ -n "${PT_KEEP_LOGS:-}" ]; then
    echo "protocol-tests: logs kept in $WORK"
  elif [ "$rc" -ne 0 ] && [ -d "$WORK" ]; then
    local log
    for log in ${LOGS[@]+"${LOGS[@]}"}; do
      echo "--- last lines of $log ---" >&2
      tail -n 40 "$log" >&2 || true
    done
    echo "protocol-tests: logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free port on 127.0.0.1 for the programs that cannot pick one themselves (redis, haproxy).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_get PORT PATH: prints the response (status line, headers, body) of a GET to
# 127.0.0.1:PORT over a new connection; fails if it cannot connect. Needs nothing but bash.
http_get() {
  local port=$1 path=$2
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$path" "$port" >&3
  timeout 5 cat <&3 || true
  exec 3<&-
}

# http_status PORT PATH: the status code only ("" if there is no answer).
http_status() {
  http_get "$1" "$2" 2>/dev/null | sed -n '1s#^HTTP/1\.[01] \([0-9]*\).*#\1#p' | tr -d '\r'
}

# start_herald NAME CONFIG: starts herald with CONFIG (its output in $WORK/NAME.out, .err) and
# waits for its listening line. Sets HERALD_PORT and METRICS_PORT.
start_herald() {
  local name=$1 config=$2
  local out="$WORK/$name.out" err="$WORK/$name.err"
  : >"$out"
  : >"$err"
  LOGS+=("$out" "$err")
  # Only the file configures the test herald: no HERALD_* variable from the caller's shell.
  local unset_env=() var
  for var in $(compgen -e); do
    case "$var" in HERALD_*) unset_env+=(-u "$var") ;; esac
  done
  env ${unset_env[@]+"${unset_env[@]}"} RUST_LOG="${RUST_LOG:-info}" \
    "$HERALD_BIN" --config "$config" >"$out" 2>"$err" &
  local pid=$!
  HERALD_PIDS+=("$pid")
  HERALD_PORT=""
  METRICS_PORT=""
  for _ in $(seq 1 100); do
    HERALD_PORT="$(sed -n 's#.*herald listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*#\1#p' "$out" 2>/dev/null | head -n 1 || true)"
    [ -n "$HERALD_PORT" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "protocol-tests: $name exited during start-up" >&2
      cat "$out" "$err" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  if [ -z "$HERALD_PORT" ]; then
    echo "protocol-tests: $name did not print its listening address within 10 s" >&2
    exit 1
  fi
  METRICS_PORT="$(sed -n 's#.*metrics on http://127\.0\.0\.1:\([0-9][0-9]*\)/metrics.*#\1#p' "$err" | head -n 1 || true)"
  echo "protocol-tests: $name (pid $pid) on http://127.0.0.1:$HERALD_PORT"
}

# on_free_port NAME START READY: runs `START PORT` in the background on a free port and waits up
# to 5 s for `READY PORT` to succeed; three ports are tried, as another process may take one
# first. START must exec the program, so that PID is the program itself. Sets PORT and PID.
on_free_port() {
  local name=$1 start=$2 ready=$3 attempt
  for attempt in 1 2 3; do
    PORT="$(free_port)"
    "$start" "$PORT" &
    PID=$!
    for _ in $(seq 1 50); do
      "$ready" "$PORT" && return 0
      kill -0 "$PID" 2>/dev/null || break
      sleep 0.1
    done
    stop_group "$PID"
    echo "protocol-tests: $name did not start on port $PORT (attempt $attempt)" >&2
  done
  return 1
}

# redis-server on port $1, without persistence.
redis_start() {
  exec redis-server --bind 127.0.0.1 --port "$1" --save "" --appendonly no \
    --protected-mode yes --dir "$WORK" --logfile "$WORK/redis.log" >/dev/null 2>&1
}

redis_answers() {
  { exec 4<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&4
  local reply=""
  read -r -t 2 reply <&4 || true
  exec 4<&-
  [ "${reply%$'\r'}" = "+PONG" ]
}

# haproxy on port $1, round-robin over the nodes ($NODE_PORTS); the HTTP fallback's requests by
# session.
balancer_start() {
  local cfg="$WORK/haproxy.cfg" i=0 port
  {
    cat <<EOF
global
    maxconn 4096

defaults
    mode http
    # Each HTTP request is balanced on its own: the connection to the node closes after the
    # response, while the client's connection to haproxy may stay open.
    option http-server-close
    timeout connect 5s
    # Longer than any request the tests hold open (slow bodies are answered by herald at 10 s).
    timeout client 60s
    timeout server 60s
    timeout http-request 30s
    timeout http-keep-alive 30s
    # A WebSocket, once upgraded, is a tunnel: only this timeout applies to it. Idle sockets
    # are kept alive by herald's pings (activity_timeout 2 s), so an hour never cuts one.
    timeout tunnel 1h
    timeout client-fin 5s
    timeout server-fin 5s

frontend pt
    bind 127.0.0.1:$1
    # pusher-js's HTTP fallback transports: a session lives on one node, so every request of a
    # session goes to the node its path (/pusher/app/{key}/{server}/{session}) hashes to.
    use_backend sessions if { path_beg /pusher/app/ }
    default_backend herald

backend herald
    balance roundrobin
EOF
    for port in "${NODE_PORTS[@]}"; do
      i=$((i + 1))
      echo "    server node$i 127.0.0.1:$port"
    done
    printf '\nbackend sessions\n    balance uri depth 5\n'
    i=0
    for port in "${NODE_PORTS[@]}"; do
      i=$((i + 1))
      echo "    server node$i 127.0.0.1:$port"
    done
  } >"$cfg"
  haproxy -c -q -f "$cfg" >&2 || { echo "protocol-tests: bad haproxy config $cfg" >&2; exit 1; }
  # -db: in the foreground (no daemon), so this process is haproxy itself.
  exec haproxy -db -f "$cfg" >"$WORK/haproxy.out" 2>"$WORK/haproxy.err"
}

balancer_answers() {
  [ -n "$(http_status "$1" /up)" ]
}

# metric_sum PORT NAME: the sum of a metric's samples for app 1001 on the metrics listener PORT.
metric_sum() {
  http_get "$1" /metrics | tr -d '\r' |
    awk -v name="$2" '$1 ~ "^" name "\\{" && $1 ~ /app_id="1001"/ { n += $2 } END { printf "%d\n", n }'
}

cp config/herald-test.toml "$WORK/herald.toml"
if [ "$CLUSTER" = 0 ]; then
  start_herald herald "$WORK/herald.toml"
  export HERALD_URL="http://127.0.0.1:$HERALD_PORT"
else
  LOGS+=("$WORK/redis.log")
  on_free_port redis-server redis_start redis_answers || exit 1
  REDIS_PIDS+=("$PID")
  REDIS_PORT="$PORT"
  echo "protocol-tests: redis-server (pid $PID) on 127.0.0.1:$REDIS_PORT"
  {
    cat config/herald-test.toml
    printf '\n[cluster]\nredis_url = "redis://127.0.0.1:%s"\n' "$REDIS_PORT"
  } >"$WORK/node.toml"
  NODE_PORTS=()
  NODE_METRICS=()
  for n in $(seq 1 "$NODES"); do
    start_herald "node$n" "$WORK/node.toml"
    NODE_PORTS+=("$HERALD_PORT")
    NODE_METRICS+=("$METRICS_PORT")
  done
  for n in $(seq 1 "$NODES"); do
    port="${NODE_PORTS[$((n - 1))]}"
    for _ in $(seq 1 100); do
      [ "$(http_status "$port" /ready)" = 200 ] && break
      sleep 0.1
    done
    if [ "$(http_status "$port" /ready)" != 200 ]; then
      echo "protocol-tests: node$n is not ready: $(http_get "$port" /ready | tail -n 1)" >&2
      exit 1
    fi
  done
  LOGS+=("$WORK/haproxy.cfg" "$WORK/haproxy.err")
  on_free_port haproxy balancer_start balancer_answers || exit 1
  BALANCER_PIDS+=("$PID")
  BALANCER_PORT="$PORT"
  echo "protocol-tests: haproxy (pid $PID) on http://127.0.0.1:$BALANCER_PORT, round-robin over $NODES nodes"
  export HERALD_URL="http://127.0.0.1:$BALANCER_PORT"

  # The balancing really alternates, for API calls and for WebSockets: six unsigned API calls
  # (answered 401, counted for the app their auth_key names) and three WebSocket connections
  # through the balancer must be counted twice and once by each node.
  for _ in $(seq 1 $((2 * NODES))); do
    status="$(http_status "$BALANCER_PORT" "/apps/1001/channels?auth_key=pt-main-key")"
    if [ "$status" != 401 ]; then
      echo "protocol-tests: an unsigned API call through the balancer was answered '$status', not 401" >&2
      exit 1
    fi
  done
  BALANCER_PORT="$BALANCER_PORT" NODES="$NODES" node -e '
    const WebSocket = require("ws");
    const url = `ws://127.0.0.1:${process.env.BALANCER_PORT}/app/pt-main-key?protocol=7&client=js&version=8.6.0`;
    const once = () => new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const timer = setTimeout(() => reject(new Error("no connection_established within 5 s")), 5000);
      ws.on("error", reject);
      ws.on("message", (m) => {
        if (JSON.parse(m).event !== "pusher:connection_established") return;
        clearTimeout(timer);
        ws.once("close", resolve);
        ws.close();
      });
    });
    (async () => { for (let i = 0; i < Number(process.env.NODES); i += 1) await once(); })()
      .catch((e) => { console.error(`protocol-tests: WebSocket through the balancer: ${e.message}`); process.exit(1); });
  '
  calls=()
  sockets=()
  for n in $(seq 1 "$NODES"); do
    calls+=("$(metric_sum "${NODE_METRICS[$((n - 1))]}" herald_http_calls_received_total)")
    sockets+=("$(metric_sum "${NODE_METRICS[$((n - 1))]}" herald_new_connections_total)")
  done
  echo "protocol-tests: through the balancer, per node: API calls ${calls[*]}, WebSocket connections ${sockets[*]}"
  for n in $(seq 0 $((NODES - 1))); do
    if [ "${calls[$n]}" != 2 ] || [ "${sockets[$n]}" != 1 ]; then
      echo "protocol-tests: the balancer does not alternate over the nodes (expected 2 API calls and 1 connection each)" >&2
      exit 1
    fi
  done
fi
export PT_CLUSTER="$CLUSTER"
echo "protocol-tests: HERALD_URL=$HERALD_URL"

# --- tests ------------------------------------------------------------------------------------
node_files=()
node_opts=()
py_args=()
for a in "$@"; do
  case "$a" in
    node/*|*.js) node_files+=("$a") ;;
    --test-*) node_opts+=("$a") ;;
    *) py_args+=("$a") ;;
  esac
done
run_node=1
run_py=1
if [ $# -gt 0 ]; then
  [ ${#node_files[@]} -gt 0 ] || [ ${#node_opts[@]} -gt 0 ] || run_node=0
  [ ${#py_args[@]} -gt 0 ] || run_py=0
fi
[ ${#node_files[@]} -gt 0 ] || node_files=(node/*.test.js)
[ ${#py_args[@]} -gt 0 ] || py_args=(python)

node_rc=0
py_rc=0
if [ "$run_node" = 1 ]; then
  echo "protocol-tests: node --test (pusher-js $(node -p 'require("pusher-js/package.json").version'), pusher $(node -p 'require("pusher/package.json").version'))"
  node --test --test-concurrency=2 --test-force-exit --test-timeout=90000 --test-reporter=spec \
    ${node_opts[@]+"${node_opts[@]}"} "${node_files[@]}" || node_rc=$?
fi
if [ "$run_py" = 1 ]; then
  echo "protocol-tests: pytest"
  "$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider "${py_args[@]}" || py_rc=$?
fi

herald_rc=0
for pid in "${HERALD_PIDS[@]}"; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "protocol-tests: herald (pid $pid) died during the run" >&2
    herald_rc=1
  fi
done
if [ "$CLUSTER" = 1 ]; then
  for n in $(seq 1 "$NODES"); do
    m="${NODE_METRICS[$((n - 1))]}"
    echo "protocol-tests: node$n served $(metric_sum "$m" herald_new_connections_total) WebSocket connections and $(metric_sum "$m" herald_http_calls_received_total) API calls of app 1001"
  done
fi
mode="one herald"
[ "$CLUSTER" = 1 ] && mode="$NODES nodes behind haproxy"
echo "protocol-tests ($mode): node exit $node_rc, pytest exit $py_rc, $(( $(date +%s) - START )) s"
[ "$node_rc" -eq 0 ] && [ "$py_rc" -eq 0 ] && [ "$herald_rc" -eq 0 ]
