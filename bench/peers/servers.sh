# Sourced by bench scripts: start and stop one server under test with the same app
# (app-id / app-key / app-secret), loopback only, no rate limits, high connection limits,
# client events on. Each start function sets SERVER_PID and SERVER_PORT and waits for
# the server to answer on its port; stop_server stops exactly that PID.
#
# Needs: REPO (repository root), RUN_DIR (scratch directory for configs and logs).
# Optional: SERVER_TAG, a suffix for the config and log file names, so that several servers
# (a cluster's nodes, see ../cluster.sh) can run at once; SOCKUDO_BIN, another sockudo binary.
# Variables set on the call (`HERALD_REDIS_URL=… start_herald`) reach the server.

APP_ID=app-id
APP_KEY=app-key
APP_SECRET=app-secret
PEERS="$REPO/bench/peers"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
  local port=$1 pid=$2
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "server exited during start-up; see its log in $RUN_DIR" >&2
      return 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "server did not open port $port" >&2
  return 1
}

start_herald() {
  SERVER_PORT=$(free_port)
  local config="$RUN_DIR/herald${SERVER_TAG:-}.toml"
  cat > "$config" <<TOML
[server]
host = "127.0.0.1"
port = $SERVER_PORT

[[apps]]
id = "$APP_ID"
key = "$APP_KEY"
secret = "$APP_SECRET"
client_events = true
max_connections = 0
max_client_events_per_second = 1000
TOML
  # Its metrics listener on a free port, as soketi's below; set in the environment, which a
  # herald from before the metrics ignores (its config file would refuse a [metrics] table).
  local metrics_port
  metrics_port=$(free_port)
  # HERALD_WRAP: an optional wrapper command (a profiler), word-split on purpose.
  # shellcheck disable=SC2086
  HERALD_METRICS_PORT=$metrics_port ${HERALD_WRAP:-} \
    "${HERALD_BIN:-$REPO/target/release/herald}" --config "$config" \
    > "$RUN_DIR/herald${SERVER_TAG:-}.log" 2>&1 &
  SERVER_PID=$!
  wait_port "$SERVER_PORT" "$SERVER_PID"
}

start_soketi() {
  SERVER_PORT=$(free_port)
  local metrics_port config="$RUN_DIR/soketi.json"
  metrics_port=$(free_port)
  cat > "$config" <<JSON
{
  "host": "127.0.0.1",
  "port": $SERVER_PORT,
  "metrics.host": "127.0.0.1",
  "metrics.port": $metrics_port,
  "cluster.hostname": "127.0.0.1",
  "cluster.broadcast": "127.0.0.1",
  "cluster.unicast": "127.0.0.1",
  "cluster.port": $(free_port),
  "appManager.array.apps": [{
    "id": "$APP_ID", "key": "$APP_KEY", "secret": "$APP_SECRET",
    "maxConnections": -1, "enableClientMessages": true, "enabled": true,
    "maxBackendEventsPerSecond": -1, "maxClientEventsPerSecond": 1000,
    "maxReadRequestsPerSecond": -1, "webhooks": []
  }]
}
JSON
  # Start node directly (not through npx) so that SERVER_PID is the server itself.
  node "$PEERS/soketi/node_modules/@soketi/soketi/bin/server.js" start --config="$config" \
    > "$RUN_DIR/soketi.log" 2>&1 &
  SERVER_PID=$!
  wait_port "$SERVER_PORT" "$SERVER_PID"
}

start_sockudo() {
  SERVER_PORT=$(free_port)
  # An empty working directory, so no stray config/config.{toml,json} is picked up.
  local dir="$RUN_DIR/sockudo-cwd"
  mkdir -p "$dir"
  (
    cd "$dir"
    exec env HOST=127.0.0.1 PORT="$SERVER_PORT" \
      METRICS_ENABLED=false METRICS_HOST=127.0.0.1 METRICS_PORT="$(free_port)" \
      RATE_LIMITER_ENABLED=false \
      SOCKUDO_MAX_CONNECTIONS=1000000 \
      SOCKUDO_DEFAULT_APP_ID="$APP_ID" SOCKUDO_DEFAULT_APP_KEY="$APP_KEY" \
      SOCKUDO_DEFAULT_APP_SECRET="$APP_SECRET" SOCKUDO_DEFAULT_APP_ENABLED=true \
      SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS=1000000 \
      SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND=100000000 \
      SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND=1000 \
      SOCKUDO_DEFAULT_APP_MAX_READ_REQUESTS_PER_SECOND=100000000 \
      SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=true \
      SOCKUDO_DEFAULT_APP_MAX_CHANNEL_NAME_LENGTH=200 \
      SOCKUDO_DEFAULT_APP_MAX_EVENT_NAME_LENGTH=200 \
      "${SOCKUDO_BIN:-$PEERS/.sockudo/bin/sockudo}"
  ) > "$RUN_DIR/sockudo${SERVER_TAG:-}.log" 2>&1 &
  SERVER_PID=$!
  wait_port "$SERVER_PORT" "$SERVER_PID"
}

# The yardstick, not a peer: herald-bench's floor-server, one blocking write per delivery
# (see bench/src/floor.rs). FLOOR_THREADS sets its fan-out threads (default 2); HERALD_WRAP
# wraps it as it wraps herald, to profile the yardstick the same way.
start_floor() {
  SERVER_PORT=$(free_port)
  ${HERALD_WRAP:-} "${BENCH:-$REPO/target/release/herald-bench}" floor-server --port "$SERVER_PORT" \
    --threads "${FLOOR_THREADS:-2}" > "$RUN_DIR/floor.log" 2>&1 &
  SERVER_PID=$!
  wait_port "$SERVER_PORT" "$SERVER_PID"
}

# start_server NAME: one of herald, soketi, sockudo, floor.
start_server() {
  "start_$1"
}

stop_server() {
  if [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
