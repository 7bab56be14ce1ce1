#!/usr/bin/env bash
# Installs dependencies, builds nodedns three ways and runs every test:
#   build/       RelWithDebInfo: all unit, integration and harness tests
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer: all tests, integration included
#   build-tsan/  ThreadSanitizer: cache, QSBR and the proxy, with the integration tests driving a
#                TSan-built nodedns (several workers sharing the cache)
# Usage: scripts/test.sh [--quick]   (--quick: only the plain build)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
run() {  # run DIR CMAKE_ARGS... -- CTEST_ARGS...
  local dir=$1; shift
  local cargs=() targs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do cargs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  targs=("$@")
  echo "=== $dir: configure ${cargs[*]}"
  cmake -S . -B "$dir" -G Ninja "${cargs[@]}" >/dev/null
  echo "=== $dir: build"
  ninja -C "$dir" -j "$jobs"
  echo "=== $dir: test"
  (cd "$dir" && ctest --output-on-failure -j "$jobs" "${targs[@]}")
}
run build -DCMAKE_BUILD_TYPE=RelWithDebInfo
# The side-by-side harness end to end (no speed is asserted: it proves the harness works).
if [ -e ../shared/lab/gen_zones.py ] || [ -e /work/shared/lab/gen_zones.py ]; then
  echo "=== bench/compare --quick"
  bench/compare --quick --nodedns build/proxy/nodedns --build-dir build --results build/compare-quick
else
  echo "=== bench/compare --quick skipped: no shared/lab/gen_zones.py beside the checkout"
fi
if [ "${1:-}" != "--quick" ]; then
  run build-asan -DCMAKE_BUILD_TYPE=Debug -DNODEDNS_ASAN=ON -DNODEDNS_BUILD_BENCH=OFF
  run build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNODEDNS_TSAN=ON -DNODEDNS_BUILD_BENCH=OFF \
    -- -L 'cache|dns|proxy|integration'
fi
