#!/usr/bin/env bash
# Installs the peer servers from their registries:
#   soketi 1.6.1 from npm into peers/soketi/node_modules (uWebSockets.js comes from the npm
#   registry through the `overrides` entry in peers/soketi/package.json), and
#   sockudo from crates.io into peers/.sockudo (needs Debian's protobuf-compiler), and again
#   with its Redis adapter (`--features redis`, which the registry's default build leaves out)
#   into peers/.sockudo-redis, for the cluster benchmark (bench/cluster.sh).
# Heavy steps run under `nice -n 19`; already-installed peers are skipped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if [ ! -x "$here/soketi/node_modules/.bin/soketi" ]; then
  (cd "$here/soketi" && nice -n 19 npm ci --no-audit --no-fund)
fi

if [ ! -x "$here/.sockudo/bin/sockudo" ]; then
  if ! command -v protoc >/dev/null; then
    apt-get update && apt-get install -y protobuf-compiler
  fi
  nice -n 19 cargo install sockudo --version 5.2.0 --locked --root "$here/.sockudo"
fi
if [ ! -x "$here/.sockudo-redis/bin/sockudo" ]; then
  if ! command -v protoc >/dev/null; then
    apt-get update && apt-get install -y protobuf-compiler
  fi
  nice -n 19 cargo install sockudo --version 5.2.0 --locked --features redis --root "$here/.sockudo-redis"
fi
echo "peers installed: soketi $(node -p "require('$here/soketi/node_modules/@soketi/soketi/package.json').version"), $("$here/.sockudo/bin/sockudo" --version 2>/dev/null || echo 'sockudo ?')"
