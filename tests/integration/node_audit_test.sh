#!/usr/bin/env bash
# Integration test of `nodedns audit --node` (docs/audit.md, "Node mode") with real namespaces:
# the lab of tests/integration/rewrite_lab.sh (nodedns on a node namespace, Knot upstream, pod
# network namespaces A and B) plus long-lived "containers" made with unshare (a mount and a UTS
# namespace each, resolv.conf and /etc/hostname bind-mounted, the hostname set):
#
#   web-a    pod A's network namespace, ndots:5 and the cluster search path, in a cgroup named
#            like kubelet's (kubepods/besteffort/pod<uid>/<id>, in a named cgroup v1 hierarchy
#            the test mounts) so that the scan reads its pod UID from /proc/PID/cgroup
#   batch-b  pod B's network namespace, ndots:2
#   hostnet  the host's network namespace, its own mount namespace, a pod cgroup: a hostNetwork
#            pod, which the report must skip and name
#
# Real glibc (getent) and musl lookups of api.example.com run from pods A and B through the
# running `nodedns serve`; then `nodedns audit --node --live` (from the node namespace, scanning
# the host's /proc) must name both pods with their addresses, findings, fix, and the waste
# nodedns actually counted for pod A (the delta of nodedns_search_expansion_nxdomain_total over
# its lookups), none for pod B; and it must keep working while containers start and exit during
# the scan.
#
# Usage: node_audit_test.sh NODEDNS_BINARY. Needs root, the lab's tools and python3; exits 77
# (ctest SKIP_RETURN_CODE) when they are missing. Takes ~25 s.
set -uo pipefail

NODEDNS=${1:?usage: node_audit_test.sh NODEDNS_BINARY}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=rewrite_lab.sh
source "$HERE/rewrite_lab.sh"

skip() {
  echo "SKIP: $*"
  exit 77
}
FAILS=0
fail() {
  echo "FAIL: $*"
  FAILS=$((FAILS + 1))
}

[[ $(id -u) -eq 0 ]] || skip "needs root for namespaces, bind mounts and cgroups"
missing=$(lab_missing_tools)
command -v python3 >/dev/null || missing+=" python3"
[[ -z "${missing// /}" ]] || skip "missing tools: $missing"
[[ -x "$NODEDNS" ]] || { echo "FAIL: nodedns binary '$NODEDNS' is not executable"; exit 1; }

UID_A=0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
UID_H=5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f
CID_A=$(printf 'a%.0s' $(seq 64))
CID_H=$(printf 'b%.0s' $(seq 64))
CGROUP=""
CONTAINERS=()
CHURN_PID=""

cleanup() {
  local pid
  [[ -n "$CHURN_PID" ]] && kill "$CHURN_PID" 2>/dev/null && wait "$CHURN_PID" 2>/dev/null
  for pid in "${CONTAINERS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${CONTAINERS[@]}"; do wait "$pid" 2>/dev/null; done
  if [[ -n "$CGROUP" ]]; then
    # Leaf first; a cgroup with a process left would refuse rmdir, so move them to the root.
    local d
    while read -r d; do
      [[ -f "$d/cgroup.procs" ]] && while read -r pid; do
        echo "$pid" >"$CGROUP/cgroup.procs" 2>/dev/null
      done <"$d/cgroup.procs"
      rmdir "$d" 2>/dev/null
    done < <(find "$CGROUP" -mindepth 1 -type d | sort -r)
    umount "$CGROUP" 2>/dev/null
  fi
  lab_cleanup
}

lab_init nat
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
lab_netns_up
case $? in
  0) ;;
  2) skip "network namespaces with veth pairs are not possible here" ;;
  *) echo "FAIL: could not set up the namespaces"; exit 1 ;;
esac
lab_knot_start || { echo "FAIL: knotd"; exit 1; }
lab_build_clients || { echo "FAIL: building the getaddrinfo client"; exit 1; }

# A named cgroup v1 hierarchy: only this test's processes go in it, and it works next to
# whatever the machine's own cgroup setup is.
CGROUP="$LAB_WORK/cgroup"
mkdir -p "$CGROUP"
if ! mount -t cgroup -o none,name=nodedns-test cgroup "$CGROUP"; then
  CGROUP=""
  echo "FAIL: cannot mount a named cgroup v1 hierarchy"
  exit 1
fi

# container NAME NETNS|host RESOLV_CONF [CGROUP_PATH]: a process in its own mount and UTS
# namespaces (and NETNS's network namespace), with RESOLV_CONF and a hostname file NAME
# bind-mounted; waits until it is in place. Sets CONTAINER_PID.
container() {
  local name=$1 ns=$2 resolv=$3 cg=${4:-} pid _ enter=()
  echo "$name" >"$LAB_WORK/hostname.$name"
  [[ $ns != host ]] && enter=(nsenter --net="/run/netns/$ns")
  "${enter[@]}" unshare -m -u sh -c '
    mount --make-rprivate / &&
    mount --bind "$1" /etc/resolv.conf &&
    mount --bind "$2" /etc/hostname &&
    hostname "$3" || exit 125
    exec sleep 600' sh "$resolv" "$LAB_WORK/hostname.$name" "$name" &
  pid=$!
  CONTAINERS+=("$pid")
  for _ in $(seq 1 50); do
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == sleep ]] && break
    sleep 0.1
  done
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == sleep ]] || { echo "FAIL: container $name"; exit 1; }
  if [[ -n "$cg" ]]; then
    mkdir -p "$CGROUP/$cg" && echo "$pid" >"$CGROUP/$cg/cgroup.procs" ||
      { echo "FAIL: cgroup $cg"; exit 1; }
  fi
  CONTAINER_PID=$pid
}

RESOLV_A="$LAB_WORK/resolv.a"
RESOLV_B="$LAB_WORK/resolv.b"
lab_resolv_conf "$RESOLV_A" default
{
  echo "nameserver $LAB_DNS_ADDR"
  echo "search otherns.svc.$LAB_ZONE svc.$LAB_ZONE $LAB_ZONE"
  echo "options ndots:2"
} >"$RESOLV_B"

# Every query counted per client (--audit-query-sample 1), so that a pod's total is exact.
lab_nodedns_start "$NODEDNS" --forward ".=$LAB_UPSTREAM_ADDR:53" --workers 2 \
  --cluster-domain "$LAB_ZONE" --audit-query-sample 1 || { echo "FAIL: nodedns serve"; exit 1; }

container web-a "$LAB_NS_A" "$RESOLV_A" "kubepods/besteffort/pod$UID_A/$CID_A"
container batch-b "$LAB_NS_B" "$RESOLV_B"
container hostnet host "$RESOLV_A" "kubepods/burstable/pod$UID_H/$CID_H"

# The lookups, each through a real stub: pod A with glibc and musl, pod B with glibc.
nx() { lab_metric_sum "$(lab_metrics)" nodedns_search_expansion_nxdomain_total; }
queries() { lab_metric_sum "$(lab_metrics)" nodedns_queries_total; }
rewrites() { lab_metric_sum "$(lab_metrics)" nodedns_search_rewrite_lookups_total; }
before=$(nx)
rw0=$(rewrites)
q0=$(queries)
k0=$(lab_knot_queries)
lab_pod_exec "$LAB_NS_A" "$RESOLV_A" 12 getent ahosts api.example.com >/dev/null ||
  fail "glibc lookup from pod A"
FIRST_CLIENT=$(($(queries) - q0))
FIRST_UPSTREAM=$(($(lab_knot_queries) - k0))
echo "without discovery, pod A's first lookup of api.example.com: $FIRST_CLIENT queries from" \
  "the client, $FIRST_UPSTREAM at the upstream"
((FIRST_CLIENT == 8)) || fail "the first lookup cost $FIRST_CLIENT queries without discovery, not 8"
lab_pod_exec "$LAB_NS_A" "$RESOLV_A" 12 "$LAB_WORK/gai-musl" api.example.com >/dev/null ||
  fail "musl lookup from pod A"
middle=$(nx)
REWRITES_A=$(($(rewrites) - rw0))
q1=$(queries)
QUERIES_A=$((q1 - q0))
lab_pod_exec "$LAB_NS_B" "$RESOLV_B" 12 getent ahosts api.example.com >/dev/null ||
  fail "glibc lookup from pod B"
after=$(nx)
QUERIES_B=$(($(queries) - q1))
WASTE_A=$((middle - before))
WASTE_B=$((after - middle))
echo "nodedns counted $WASTE_A NXDOMAINs below $LAB_ZONE for pod A's lookups, $WASTE_B for pod B's;" \
  "it rewrote $REWRITES_A replies to pod A"
# The glibc walk taught pod A's namespace: the musl lookup after it is rewritten (A and AAAA).
((REWRITES_A >= 2)) || fail "pod A's lookups got $REWRITES_A rewritten replies, expected at least 2"
# ndots:5 and three cluster domains: the first walk cannot be rewritten (nothing learned yet), so
# at least its 3 steps x (A, AAAA) failed.
((WASTE_A >= 6)) || fail "pod A's lookups wasted $WASTE_A queries, expected at least 6"
((WASTE_B == 0)) || fail "pod B's lookups wasted $WASTE_B queries, expected 0"
sleep 1.5  # workers publish GET /audit's counts every second

audit() {  # audit ARGS...: nodedns audit --node, from the node namespace (reaches the health port)
  lab_in "$LAB_NS_NODE" timeout 20 "$NODEDNS" audit --node --live "$LAB_HEALTH" "$@"
}
audit --format json >"$LAB_WORK/node.json" 2>"$LAB_WORK/node.err"
rc=$?
[[ $rc -eq 1 ]] || fail "audit --node exited $rc, expected 1 (warnings): $(cat "$LAB_WORK/node.err")"
audit >"$LAB_WORK/node.txt" 2>&1
grep -q "^== pod web-a" "$LAB_WORK/node.txt" || fail "the table does not name pod web-a"
grep -q "^== pod batch-b" "$LAB_WORK/node.txt" || fail "the table does not name pod batch-b"
grep -q "^  queries:     $QUERIES_A seen; " "$LAB_WORK/node.txt" ||
  fail "the table does not show pod web-a's $QUERIES_A queries and their share wasted"

args=("$LAB_WORK/node.json" "$WASTE_A" "$UID_A" "$CID_A" "$UID_H" "$REWRITES_A" "$QUERIES_A"
  "$QUERIES_B")
python3 - "${args[@]}" <<'EOF' || FAILS=$((FAILS + 1))
import json, sys
doc = json.load(open(sys.argv[1]))
waste_a, uid_a, cid_a, uid_h = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rewrites_a, queries_a, queries_b = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
errors = []
def check(cond, what):
    if not cond:
        errors.append(what)
pods = {p["name"]: p for p in doc["pods"]}
check("web-a" in pods and "batch-b" in pods, f"pods found: {sorted(pods)}")
if "web-a" in pods and "batch-b" in pods:
    a, b = pods["web-a"], pods["batch-b"]
    check(a["addresses"] == ["10.53.1.2", "fd53:1::2"], f"web-a addresses {a['addresses']}")
    check(a["uid"] == uid_a and a["qos"] == "besteffort", f"web-a uid/qos {a['uid']} {a['qos']}")
    check(cid_a in a["container_ids"], f"web-a container ids {a['container_ids']}")
    ids_a = [f["id"] for f in a["resolv_conf"]["findings"]]
    check("ndots-k8s-default" in ids_a and "search-path-waste" in ids_a, f"web-a findings {ids_a}")
    check(a["observed"]["wasted"] == waste_a,
          f"web-a observed waste {a['observed']['wasted']}, nodedns counted {waste_a}")
    # api.example.com.svc.<zone> also reads as api.example in namespace com; a worker that has not
    # seen the walk's first step reads it so (docs/audit.md, "What wasted counts").
    names = a["observed"]["names"]
    check(names and all(n["name"] in ("api.example.com", "api.example") for n in names)
          and sum(n["wasted"] for n in names) == waste_a, f"web-a names {names}")
    check(a["fix"] is not None and 'name: ndots' in a["fix"], f"web-a fix {a['fix']}")
    check(a["observed"]["rewritten"] == rewrites_a,
          f"web-a rewritten {a['observed']['rewritten']}, nodedns rewrote {rewrites_a}")
    check(b["observed"]["rewritten"] == 0, f"batch-b rewritten {b['observed']['rewritten']}")
    # Queries seen per pod: every query of its lookups, waste or not (nodedns_queries_total).
    check(a["observed"]["queries"] == queries_a and a["observed"]["query_sample"] == 1,
          f"web-a queries {a['observed']['queries']}, nodedns counted {queries_a}")
    check(b["observed"]["queries"] == queries_b,
          f"batch-b queries {b['observed']['queries']}, nodedns counted {queries_b}")
    check(a["resolv_conf"]["config"]["ndots"] == 5, "web-a ndots")
    check(b["addresses"] == ["10.53.2.2", "fd53:2::2"], f"batch-b addresses {b['addresses']}")
    ids_b = [f["id"] for f in b["resolv_conf"]["findings"]]
    check("ndots-k8s-default" not in ids_b and "search-path-waste" not in ids_b,
          f"batch-b findings {ids_b}")
    check(b["observed"]["wasted"] == 0 and b["fix"] is None, f"batch-b {b['observed']} {b['fix']}")
    check(b["uid"] == "", "batch-b has no pod cgroup")
check(any(h["uid"] == uid_h for h in doc["host_network_pods"]),
      f"hostNetwork pod not listed: {doc['host_network_pods']}")
check(all(p.get("uid") != uid_h for p in doc["pods"]), "the hostNetwork pod is listed as a pod")
check(doc["summary"]["wasted"] >= waste_a, f"summary wasted {doc['summary']['wasted']}")
check(doc["summary"]["queries"] == queries_a + queries_b,
      f"summary queries {doc['summary']['queries']}, want {queries_a + queries_b}")
check(any(f["id"] == "ndots-k8s-default" and "web-a" in f["pods"]
          for f in doc["summary"]["findings"]), "summary findings")
check(doc["scan"]["processes"] > 10, "processes scanned")
for e in errors:
    print("FAIL:", e)
sys.exit(1 if errors else 0)
EOF

# Containers starting and exiting while the node is scanned: every scan still succeeds and
# finds web-a. (The exact race, a process gone between two reads, is forced in the unit test.)
(
  for _ in $(seq 1 400); do
    lab_in "$LAB_NS_B" unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf; exit 0' sh \
      "$RESOLV_B" 2>/dev/null &
    sleep 0.005
  done
  wait
) &
CHURN_PID=$!
vanished=0
for i in $(seq 1 15); do
  audit --format json >"$LAB_WORK/churn.json" 2>"$LAB_WORK/churn.err"
  rc=$?
  if [[ $rc -ne 1 ]]; then
    fail "scan $i during churn exited $rc: $(cat "$LAB_WORK/churn.err")"
    continue
  fi
  n=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
print(d["scan"]["vanished"] if any(p["name"] == "web-a" for p in d["pods"]) else -1)' \
    "$LAB_WORK/churn.json")
  [[ $n -ge 0 ]] || fail "scan $i during churn lost web-a"
  vanished=$((vanished + ${n#-}))
done
wait "$CHURN_PID" 2>/dev/null
CHURN_PID=""
echo "15 scans during container churn: $vanished processes gone mid-scan, skipped"

lab_nodedns_alive || fail "nodedns died"
lab_nodedns_stop || fail "nodedns did not stop cleanly"

# With --discover-pods, a fresh nodedns (cold cache, nothing learned) knows pod A's namespace from
# its resolv.conf before its first lookup: that lookup costs 2 queries, not 8.
lab_nodedns_start "$NODEDNS" --forward ".=$LAB_UPSTREAM_ADDR:53" --workers 2 \
  --cluster-domain "$LAB_ZONE" --discover-pods on --discover-pods-interval 0.5 ||
  { echo "FAIL: nodedns serve --discover-pods"; exit 1; }
discovered=0
for _ in $(seq 1 100); do
  discovered=$(lab_metric_sum "$(lab_metrics)" nodedns_search_rewrite_discovered_clients)
  ((discovered >= 4)) && break
  sleep 0.1
done
# web-a and batch-b, an IPv4 and an IPv6 address each (other pods of the machine may add more).
((discovered >= 4)) || fail "nodedns_search_rewrite_discovered_clients is $discovered, want >= 4"
# What leaves pod A's namespace for port 53, counted by netfilter there.
lab_in "$LAB_NS_A" nft -f - <<'NFT' || fail "nft counter in pod A's namespace"
table inet nodedns_test {
  counter dns_out {}
  chain out { type filter hook output priority 0; meta l4proto { udp, tcp } th dport 53 counter name dns_out; }
}
NFT
sent() {
  lab_in "$LAB_NS_A" nft list counter inet nodedns_test dns_out 2>/dev/null |
    awk '/packets/ { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }'
}
for client in getent musl; do
  name=first-$client.bench.example.com
  [[ $client == getent ]] && cmd=(getent ahosts "$name") || cmd=("$LAB_WORK/gai-musl" "$name")
  q0=$(queries)
  k0=$(lab_knot_queries)
  p0=$(sent)
  out=$(lab_pod_exec "$LAB_NS_A" "$RESOLV_A" 12 "${cmd[@]}") || fail "$client lookup of $name"
  grep -q 192.0.2.100 <<<"$out" || fail "$client lookup of $name: no 192.0.2.100 in '$out'"
  c=$(($(queries) - q0))
  p=$(($(sent) - p0))
  u=$(($(lab_knot_queries) - k0))
  echo "with discovery, pod A's first lookup of $name ($client): $p packets left the pod," \
    "nodedns received $c queries and asked the upstream $u (cold cache)"
  ((c == 2)) || fail "$client: nodedns received $c queries for the first lookup, not 2"
  ((p == 2)) || fail "$client: $p DNS packets left pod A for the first lookup, not 2"
done
sleep 1.5
lab_in "$LAB_NS_NODE" curl -sf --max-time 5 "http://$LAB_HEALTH/audit/pods" \
  >"$LAB_WORK/pods.json" || fail "GET /audit/pods"
python3 - "$UID_A" "$LAB_WORK/pods.json" <<'EOF2' || FAILS=$((FAILS + 1))
import json, sys
doc = json.load(open(sys.argv[2]))
pods = {p["name"]: p for p in doc["pods"]}
errors = []
if "web-a" not in pods or "batch-b" not in pods:
    errors.append(f"GET /audit/pods lists {sorted(pods)}")
else:
    a = pods["web-a"]
    if a["uid"] != sys.argv[1]:
        errors.append(f"web-a uid {a['uid']}")
    ids = [f["id"] for f in a["resolv_conf"]["findings"]]
    if "ndots-k8s-default" not in ids:
        errors.append(f"web-a findings {ids}")
    # The two first lookups, each answered by the rewrite for A and AAAA.
    if a["observed"]["rewritten"] < 4:
        errors.append(f"web-a rewritten {a['observed']['rewritten']} in GET /audit/pods, want >= 4")
for e in errors:
    print("FAIL:", e)
sys.exit(1 if errors else 0)
EOF2
m=$(lab_metrics)
ndots_pods=$(lab_metric_sum "$m" 'nodedns_pods_with_finding{finding="ndots-k8s-default"}')
((ndots_pods >= 1)) ||
  fail "nodedns_pods_with_finding{finding=\"ndots-k8s-default\"} is $ndots_pods"
(($(lab_metric_sum "$m" nodedns_pods_discovered) >= 2)) || fail "nodedns_pods_discovered < 2"
lab_nodedns_alive || fail "nodedns --discover-pods died"
lab_nodedns_stop || fail "nodedns --discover-pods did not stop cleanly"
if [[ $FAILS -ne 0 ]]; then
  echo "== report"
  cat "$LAB_WORK/node.txt"
  echo "FAILED: $FAILS check(s)"
  exit 1
fi
echo "PASS"
