#!/usr/bin/env bash
# How long finding the node's pods takes (podscan/, docs/audit.md "Node mode"), with N
# "containers" made here: each a process in its own mount, network and UTS namespaces (unshare),
# with a resolv.conf (ndots:5, the cluster search path of one of --namespaces Kubernetes
# namespaces, round robin) and a hostname bind-mounted and an address on its loopback, so that
# every file the scan reads is there. Measures, on the shipped build:
#   audit   wall time of `nodedns audit --node --format json` (scan + per-pod audit + JSON),
#           median of --runs runs;
#   scan    nodedns_pod_discovery_scan_seconds of a running `serve --discover-pods` (the scan
#           alone, as the DaemonSet runs it), median of --runs scans;
#   pods    wall time of GET /audit/pods and of GET /metrics (which has the pod gauges) on that
#           serve, median of --runs requests each.
# Prints one line per measurement; asserts nothing. Needs root; cleans up on every exit path.
#
# Usage: bench/podscan_bench.sh [--nodedns build-rel/proxy/nodedns] [--containers 300]
#                               [--namespaces 10] [--runs 5]
set -euo pipefail
cd "$(dirname "$0")/.."
NODEDNS=build-rel/proxy/nodedns
N=300
NAMESPACES=10
RUNS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --nodedns) NODEDNS=$2; shift 2 ;;
    --containers) N=$2; shift 2 ;;
    --namespaces) NAMESPACES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "usage: $0 [--nodedns BIN] [--containers N] [--namespaces N] [--runs N]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "podscan_bench: needs root (namespaces, bind mounts)" >&2; exit 2; }
[ -x "$NODEDNS" ] || { echo "podscan_bench: '$NODEDNS' is not executable" >&2; exit 2; }

WORK=$(mktemp -d /tmp/nodedns-podscan-bench.XXXXXX)
PIDS=()
SERVE=""
cleanup() {
  [ -n "$SERVE" ] && kill "$SERVE" 2>/dev/null && wait "$SERVE" 2>/dev/null
  [ ${#PIDS[@]} -gt 0 ] && kill "${PIDS[@]}" 2>/dev/null
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

for k in $(seq 0 $((NAMESPACES - 1))); do
  {
    echo "nameserver 169.254.20.10"
    echo "search ns-$k.svc.cluster.local svc.cluster.local cluster.local"
    echo "options ndots:5"
  } >"$WORK/resolv.conf.$k"
done
start=$(date +%s.%N)
for i in $(seq 1 "$N"); do
  echo "pod-$i" >"$WORK/hostname.$i"
  unshare -m -n -u sh -c '
    mount --make-rprivate / && mount --bind "$1" /etc/resolv.conf &&
    mount --bind "$2" /etc/hostname && hostname "$3" &&
    ip link set lo up && ip addr add "$4/32" dev lo || exit 125
    exec sleep 3600' sh "$WORK/resolv.conf.$((i % NAMESPACES))" "$WORK/hostname.$i" "pod-$i" \
    "10.77.$((i / 250)).$((i % 250 + 1))" &
  PIDS+=($!)
done
# Every container in place: its process is `sleep`.
for _ in $(seq 1 300); do
  ready=0
  for p in "${PIDS[@]}"; do [ "$(cat /proc/$p/comm 2>/dev/null)" = sleep ] && ready=$((ready + 1)); done
  [ "$ready" -eq "$N" ] && break
  sleep 0.1
done
[ "$ready" -eq "$N" ] || { echo "podscan_bench: only $ready of $N containers started" >&2; exit 1; }
echo "containers: $N made in $(echo "$(date +%s.%N) - $start" | bc) s"

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

times=()
for _ in $(seq 1 "$RUNS"); do
  t0=$(date +%s%N)
  "$NODEDNS" audit --node --format json >"$WORK/node.json" || [ $? -eq 1 ]
  times+=("$((($(date +%s%N) - t0) / 1000))")
done
found=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
print(sum(1 for p in d["pods"] if p["name"].startswith("pod-")), d["scan"]["processes"])' \
  "$WORK/node.json")
echo "audit: $(printf '%s\n' "${times[@]}" | median) us median of $RUNS runs" \
  "(pods found: ${found% *} of $N; processes scanned: ${found#* })"

port=$((20000 + RANDOM % 10000))
"$NODEDNS" serve --listen "127.0.0.1:$port" --forward ".=127.0.0.1:9" --node-search none \
  --health "127.0.0.1:$((port + 1))" --discover-pods on --discover-pods-interval 0.2 \
  >"$WORK/serve.log" 2>&1 &
SERVE=$!
scans=()
last=0
for _ in $(seq 1 200); do
  m=$(curl -sf --max-time 1 "http://127.0.0.1:$((port + 1))/metrics" || true)
  n=$(awk '$1 == "nodedns_pod_discovery_scans_total" { print $2 }' <<<"$m")
  if [ -n "$n" ] && [ "$n" -gt "$last" ]; then
    last=$n
    scans+=("$(awk '$1 == "nodedns_pod_discovery_scan_seconds" { print $2 * 1e6 }' <<<"$m")")
    [ ${#scans[@]} -ge "$RUNS" ] && break
  fi
  sleep 0.1
done
[ ${#scans[@]} -ge "$RUNS" ] || { echo "podscan_bench: serve did not scan:" >&2; cat "$WORK/serve.log" >&2; exit 1; }
echo "scan: $(printf '%s\n' "${scans[@]}" | median) us median of $RUNS scans" \
  "(serve --discover-pods, $(awk '$1 == "nodedns_pods_discovered" { print $2 }' <<<"$m") pods)"

# GET /audit/pods (the report, joined with GET /audit) and GET /metrics (the pod gauges).
for path in /audit/pods /metrics; do
  took=()
  for _ in $(seq 1 "$RUNS"); do
    took+=("$(curl -sf --max-time 10 -o /dev/null -w '%{time_total}' \
      "http://127.0.0.1:$((port + 1))$path" | awk '{ print $1 * 1e6 }')")
  done
  echo "GET $path: $(printf '%s\n' "${took[@]}" | median) us median of $RUNS requests"
done
