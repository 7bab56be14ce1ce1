#!/usr/bin/env bash
# Installs dependencies, builds nodedns three ways and runs every test:
#   build/       RelWithDebInfo: all unit, integration and harness tests
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer: all tests, integration included
#   build-tsan/  ThreadSanitizer: cache, QSBR, resolv.conf reading and the proxy, with the
#                integration tests driving a TSan-built nodedns (several workers sharing the cache)
# A test that skips (no Knot, kdig, musl-gcc, root or network namespaces) fails the run unless
# tests/expected_skips.txt lists it: ctest counts skips as passed, and a green run must mean that
# every test ran.
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
  rm -f "$dir/ctest-junit.xml"
  (cd "$dir" && ctest --output-on-failure --output-junit "$PWD/ctest-junit.xml" -j "$jobs" \
    "${targs[@]}")
  python3 scripts/check-skips.py "$dir/ctest-junit.xml" tests/expected_skips.txt "$dir"
}
run build -DCMAKE_BUILD_TYPE=RelWithDebInfo
# The side-by-side harness end to end (no speed is asserted: it proves the harness works). It
# needs the shared lab (shared/lab/gen_zones.py and the peers' setups) beside the checkout, which
# is not part of this repository: without it the step is an expected skip, except where
# NODEDNS_REQUIRE_LAB=1 says the lab must be there (.ci/run sets it: CI always has ../shared).
lab=shared/lab/gen_zones.py
if [ -e "../$lab" ] || [ -e "/work/$lab" ]; then
  echo "=== bench/compare --quick"
  bench/compare --quick --nodedns build/proxy/nodedns --build-dir build \
    --results build/compare-quick
elif [ "${NODEDNS_REQUIRE_LAB:-0}" = 1 ]; then
  echo "=== bench/compare --quick: FAILED: NODEDNS_REQUIRE_LAB=1 and no ../$lab" >&2
  exit 1
else
  echo "=== bench/compare --quick: expected skip: no ../$lab beside the checkout" \
    "(CI has it and sets NODEDNS_REQUIRE_LAB=1, which makes its absence fail)"
fi
if [ "${1:-}" != "--quick" ]; then
  run build-asan -DCMAKE_BUILD_TYPE=Debug -DNODEDNS_ASAN=ON -DNODEDNS_BUILD_BENCH=OFF
  # MemoryBoundTest is single-threaded (nothing for TSan to see) and its longest test: 89 s.
  run build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNODEDNS_TSAN=ON -DNODEDNS_BUILD_BENCH=OFF \
    -- -L 'cache|dns|resolvconf|upstream|proxy|integration' -E '^MemoryBoundTest\.'
fi
