#!/usr/bin/env bash
# Installs dependencies, builds nodedns (Release) and runs `nodedns serve` with its defaults:
# listening on 127.0.0.1:5053 (UDP and TCP), forwarding to the nameservers of /etc/resolv.conf.
# Extra arguments go to `serve`, e.g. scripts/run.sh --listen 169.254.20.10:53
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DNODEDNS_BUILD_BENCH=OFF >/dev/null
ninja -C build-release nodedns
exec build-release/proxy/nodedns serve "$@"
