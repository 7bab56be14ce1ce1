#!/usr/bin/env bash
# What the search-path rewrite (docs/search-rewrite.md) saves a pod: getaddrinfo() latency and
# queries per lookup of external names, with the rewrite on and off, cold and warm cache, from a
# pod-like client (resolv.conf "search default.svc.cluster.local svc.cluster.local cluster.local",
# "options ndots:5") against an upstream that adds a fixed delay (1 ms by default).
#
#   bench/search_rewrite_bench.sh NODEDNS_BINARY [--runs N] [--lookups N] [--delay-us US]
#
# Uses the lab of the integration test (tests/integration/rewrite_lab.sh): nodedns in a "node"
# network namespace, Knot DNS in an "upstream" one, the client in pod A's. The upstream delay is
# `tc qdisc add dev up0 root netem delay` on the node's veth to the upstream when the kernel has
# sch_netem; otherwise a userspace UDP relay in the upstream namespace delays each request
# (tests/testing/udp_delay_relay.c). Either way it is one-way, on requests: each upstream round
# trip is DELAY longer. The script says which one it used.
#
# Each run starts a fresh nodedns per mode (cold cache, nothing learned), teaches it pod A's
# namespace with one lookup (the rewrite needs that; done in both modes alike), then, for each
# client (the musl-static and the glibc build of tests/testing/getaddrinfo_client.c, AF_UNSPEC, no
# AI_ADDRCONFIG: A and AAAA at every step), looks up N distinct names <i>.<run>.bench.example.com
# (a wildcard in the zone: each one new to the cache, "cold"), each followed at once by the same
# name again ("warm"). Per lookup: the getaddrinfo() call's duration measured by the client on
# CLOCK_MONOTONIC (--time), and the deltas of nodedns_queries_total (client queries) and
# nodedns_upstream_queries_total from /metrics. Prints a markdown table of medians over all lookups
# of all runs, and the command line. Needs root, knotd, kdig, curl, cc, musl-gcc.
set -uo pipefail

usage() {
  echo "usage: search_rewrite_bench.sh NODEDNS_BINARY [--runs N] [--lookups N] [--delay-us US]" >&2
  exit 2
}

NODEDNS=${1:-}
[[ -n "$NODEDNS" ]] || usage
shift
RUNS=3
LOOKUPS=20
DELAY_US=1000
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) RUNS=${2:?}; shift 2 ;;
    --lookups) LOOKUPS=${2:?}; shift 2 ;;
    --delay-us) DELAY_US=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ && $LOOKUPS =~ ^[1-9][0-9]*$ && $DELAY_US =~ ^[0-9]+$ ]] || usage
[[ -x "$NODEDNS" ]] || { echo "not executable: $NODEDNS" >&2; exit 2; }
NODEDNS=$(cd "$(dirname "$NODEDNS")" && pwd)/$(basename "$NODEDNS")
COMMAND="bench/search_rewrite_bench.sh $NODEDNS --runs $RUNS --lookups $LOOKUPS --delay-us $DELAY_US"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../tests/integration/rewrite_lab.sh
source "$HERE/../tests/integration/rewrite_lab.sh"

[[ $(id -u) -eq 0 ]] || { echo "needs root (ip netns, unshare -m)" >&2; exit 2; }
missing=$(lab_missing_tools)
[[ -z "$missing" ]] || { echo "missing tools: $missing" >&2; exit 2; }
"$NODEDNS" serve --help 2>&1 | grep -q -- '--search-rewrite' ||
  { echo "$NODEDNS has no --search-rewrite" >&2; exit 2; }

lab_init srbench
trap lab_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
die() {
  echo "error: $*" >&2
  exit 1
}
lab_netns_up || die "namespaces"
lab_knot_start || die "knotd"
lab_build_clients || die "clients"
lab_upstream_delay "$DELAY_US" || die "upstream delay"
# rtt ADDR: the median of 9 kdig round trips from the node to ADDR, in ms.
rtt() {
  local i
  for i in 1 2 3 4 5 6 7 8 9; do
    lab_in "$LAB_NS_NODE" timeout 3 kdig @"$1" +norec +time=1 +retry=0 "rtt$i.bench.example.com" A |
      awk '/^;; From / { for (i = 1; i <= NF; i++) if ($i == "in") print $(i + 1) }'
  done | sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "?" }'
}
RTT_DIRECT=$(rtt "$LAB_UPSTREAM_ADDR")
RTT_DELAYED=$(rtt "${LAB_UPSTREAM_TARGET%:*}")
RESOLV="$LAB_WORK/resolv.a"
lab_resolv_conf "$RESOLV" default

SAMPLES="$LAB_WORK/samples"  # mode cache client us client_queries upstream_queries
: >"$SAMPLES"
NOTES=()

# bench_lookup CLIENT NAME: one lookup from pod A; sets B_US, B_Q, B_UP. LAST_METRICS is the
# scrape before it (nothing else queries nodedns in between).
bench_lookup() {
  local client=$1 name=$2 out m1
  out=$(lab_pod_exec "$LAB_NS_A" "$RESOLV" 12 "$LAB_WORK/gai-$client" --time "$name")
  [[ $(awk '{ print $2 }' <<<"$out") == ok ]] || die "lookup of $name by $client: $out"
  B_US=$(awk '{ sub("us=", "", $3); print $3 }' <<<"$out")
  m1=$(lab_metrics) || die "metrics"
  B_Q=$(($(lab_metric_sum "$m1" nodedns_queries_total) -
    $(lab_metric_sum "$LAST_METRICS" nodedns_queries_total)))
  B_UP=$(($(lab_metric_sum "$m1" nodedns_upstream_queries_total) -
    $(lab_metric_sum "$LAST_METRICS" nodedns_upstream_queries_total)))
  LAST_METRICS=$m1
}

START=$SECONDS
for run in $(seq 1 "$RUNS"); do
  for mode in on off; do
    lab_nodedns_start "$NODEDNS" --forward ".=$LAB_UPSTREAM_TARGET" --workers 2 \
      --search-rewrite "$mode" --node-search none --cluster-domain "$LAB_ZONE" || die "nodedns"
    k0=$(lab_knot_queries)
    LAST_METRICS=$(lab_metrics) || die "metrics"
    bench_lookup musl "learn-a.example.com"  # teaches pod A's namespace (mode on)
    for client in musl glibc; do
      for i in $(seq 1 "$LOOKUPS"); do
        name="$client-$i.$run-$mode.bench.example.com"
        bench_lookup "$client" "$name"
        echo "$mode cold $client $B_US $B_Q $B_UP" >>"$SAMPLES"
        bench_lookup "$client" "$name"
        echo "$mode warm $client $B_US $B_Q $B_UP" >>"$SAMPLES"
      done
    done
    k1=$(lab_knot_queries)
    rewrites=$(lab_metric_sum "$LAST_METRICS" nodedns_search_rewrite_lookups_total)
    learned=$(lab_metric_sum "$LAST_METRICS" nodedns_search_rewrite_clients_learned_total)
    up=$(lab_metric_sum "$LAST_METRICS" nodedns_upstream_queries_total)
    NOTES+=("run $run, rewrite $mode: nodedns upstream queries $up (Knot received $((k1 - k0))), rewritten replies $rewrites, clients learned $learned")
    lab_nodedns_stop || die "nodedns did not stop cleanly"
  done
done
ELAPSED=$((SECONDS - START))

# stats MODE CACHE CLIENT: "n median_us p90_us median_q median_up mean_q mean_up"
stats() {
  awk -v m="$1" -v c="$2" -v cl="$3" '$1 == m && $2 == c && $3 == cl { print $4, $5, $6 }' \
    "$SAMPLES" | sort -n | awk '
      { us[NR] = $1; q[NR] = $2; up[NR] = $3; sq += $2; sup += $3 }
      function med(a, n,   b, i, j, t) {
        for (i = 1; i <= n; i++) b[i] = a[i]
        for (i = 2; i <= n; i++) { t = b[i]; for (j = i - 1; j >= 1 && b[j] > t; j--) b[j + 1] = b[j]; b[j + 1] = t }
        return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
      }
      END {
        n = NR
        p90 = us[int(0.9 * n + 0.999999)]
        printf "%d %.0f %.0f %g %g %.2f %.2f\n", n, med(us, n), p90, med(q, n), med(up, n), sq / n, sup / n
      }'
}

echo
echo "Command: \`$COMMAND\`"
echo
echo "| client | cache | rewrite | lookups | getaddrinfo median (µs) | p90 (µs) | client queries / lookup | upstream queries / lookup |"
echo "|---|---|---|---:|---:|---:|---:|---:|"
for client in musl glibc; do
  for cache in cold warm; do
    for mode in off on; do
      read -r n med p90 mq mup aq aup < <(stats "$mode" "$cache" "$client")
      printf '| %s | %s | %s | %d | %s | %s | %s (mean %s) | %s (mean %s) |\n' \
        "$client" "$cache" "$mode" "$n" "$med" "$p90" "$mq" "$aq" "$mup" "$aup"
    done
  done
done
echo
echo "- upstream delay: $LAB_DELAY_METHOD; upstream round trip from the node (kdig, median of 9): $RTT_DIRECT ms without the delay, $RTT_DELAYED ms with it"
echo "- $RUNS runs x 2 clients x $LOOKUPS names, each name looked up cold then warm; medians over all lookups of all runs; nodedns --workers 2"
echo "- glibc $(ldd --version | awk 'NR == 1 { print $NF }'), musl $(dpkg-query -W -f '${Version}' musl 2>/dev/null || echo '?'), kernel $(uname -r), $(nproc) CPUs, $ELAPSED s"
echo "- nodedns binary built $(date -u -r "$NODEDNS" '+%Y-%m-%d %H:%M UTC'); source tree now at $(git -C "$LAB_REPO" describe --always --dirty 2>/dev/null || echo '?')"
for note in "${NOTES[@]}"; do echo "- $note"; done
