#!/usr/bin/env bash
# A Kubernetes node simulated in network namespaces, end to end, with `nodedns node-cache` run as
# the DaemonSet runs it: the stock NodeLocal DNSCache Corefile and arguments (below, from
# kubernetes/kubernetes cluster/addons/dns/nodelocaldns/nodelocaldns.yaml, installed in iptables
# mode as its README says: sed of __PILLAR__LOCAL__DNS__, __PILLAR__DNS__SERVER__ and
# __PILLAR__DNS__DOMAIN__), as root in the node's network namespace with the node's resolv.conf.
#
#   pod A  10.53.1.2 --veth--+  resolv.conf: nameserver 10.96.0.10 (kube-dns ClusterIP)
#   pod B  10.53.2.2 --veth--+  resolv.conf: nameserver 169.254.20.10 (node-local address)
#                            |
#   node: nodedns node-cache -localip 169.254.20.10,10.96.0.10 on the `nodelocaldns` interface
#         (a bridge made beforehand: this kernel has no dummy driver); kube-proxy as nat DNAT
#         rules (iptables BACKEND: nft or legacy) for the kube-dns ClusterIP 10.96.0.10 and the
#         kube-dns-upstream ClusterIP 10.96.0.11 to "CoreDNS"; /etc/resolv.conf: 10.53.9.3.
#         A firewall as some node images have, in the same backend: filter INPUT policy DROP,
#         accepting only established packets and loopback.
#                            |
#   "CoreDNS": knotd on 10.53.9.2 (cluster.local); the node's resolver: knotd on 10.53.9.3
#   (example.com and the root), both in one upstream namespace.
#
# Checks, each printed PASS/FAIL:
#   - the rules (table inet nodedns; the accept rules in the backend's filter INPUT);
#   - from both pods, glibc getent, a static musl getaddrinfo client and kdig (UDP and TCP)
#     resolve a cluster name and an external name through nodedns (its query counter grows);
#   - conntrack holds no entry for the pods' queries to 10.96.0.10 or 169.254.20.10, while it
#     does hold nodedns's own TCP query to kube-dns-upstream (force_tcp through kube-proxy's
#     DNAT) and its UDP query to the node's resolver; CoreDNS saw TCP only;
#   - /health answers on 169.254.20.10:8080, and coredns_dns_requests_total/_responses_total on
#     the stock :9253 count exactly the queries sent to 169.254.20.10;
#   - BACKEND=nft: a firewall reload that flushes INPUT drops pod B's queries until nodedns puts
#     its accept rules back, within one -syncinterval (2 s here);
#   - a second nodedns exits 2 with a line naming the holder, the first keeps serving;
#   - after SIGKILL, pod A's queries to the ClusterIP are answered by CoreDNS through the DNAT
#     within a second (the rules went with the process), and a pod listing the ClusterIP after
#     169.254.20.10 resolves through it (glibc and musl; the time is printed); a restart on the
#     node as it was left serves again, out of conntrack;
#   - kill -9 and a restart under 2,000 queries/s from pod A to the ClusterIP (with LOADGEN):
#     the loadgen's table, with the queries lost, is printed;
#   - upgrades under load (with LOADGEN): N+1 times in a row (--upgrades N, default 2; 10 for the
#     figures), a new node-cache started with the same arguments (-handover, as the DaemonSet
#     has it) takes over from the running one while pod A sends 2,000 queries/s to the ClusterIP
#     (1,000 cluster and 1,000 external names, each asked once a second) and pod B 200/s to
#     169.254.20.10; once the old one logs "drained; idle until SIGTERM" it gets SIGTERM, as the
#     kubelet sends it once the new pod is ready. The Nth new process is given
#     -handover-cache-percent 0, so that the last one starts cold. Checked: no query lost and
#     every answer NOERROR (nodedns's: the lab's CoreDNS refuses external names), each old
#     process exits 0, a rules table (inet nodedns or inet nodedns_b) and 169.254.20.10 on
#     nodelocaldns at every 0.1 s sample, cache entries handed over (none to the last), the last
#     process healthy. Then the same load across N SIGTERM-and-restart cycles without -handover
#     (node-local-dns's way): their losses are printed, not checked. Each cycle prints the cache
#     hit ratio of the second before it and of the new process's first second, each load p99;
#   - SIGTERM: exit 0, no table, no accept rule, no address left on the interface.
#
#   - the bench Job (deploy/kubernetes/bench, rendered with kubectl kustomize): its command and
#     arguments, with its query ConfigMap, run in pod A as uid 65534 against both addresses
#     (shorter and slower than in a cluster: --duration 2 --rate 500), print the table with every
#     query answered, NOERROR or NXDOMAIN (absent.default), nothing refused or failed (when
#     LOADGEN is given and kubectl is on PATH);
#
#   - a ConfigMap change reloaded on SIGUSR1 rewrites the generated Corefile (-conf), as uid 65534.
#
# RUNNER "binary" runs the nodedns binary in the node namespace; "podman" runs the image
# deploy/image/build.sh makes from the binaries' build directory, in the node namespace
# (--network ns:), with the DaemonSet's security context: root, capabilities NET_ADMIN,
# NET_BIND_SERVICE, NET_RAW, SETUID and SETGID only, no_new_privs, a read-only root filesystem,
# the ConfigMaps mounted read-only, -conf in a 0777 directory as an emptyDir is, and the host's
# /run/xtables.lock.
#
# MANIFEST "stock" runs the stock nodelocaldns.yaml Corefile and arguments (iptables mode);
# "dual-stack" the arguments and Corefile of deploy/kubernetes/overlays/dual-stack as kubectl
# kustomize renders them (-localip 169.254.20.10,fd00:169:254:20::10,10.96.0.10,fd00:10:96::a):
# the node and CoreDNS get IPv6 addresses, kube-proxy an ip6tables DNAT for the IPv6 ClusterIP,
# and the checks repeat over IPv6 (kdig to both IPv6 addresses, glibc getent with an IPv6
# nameserver, no conntrack entry, the IPv6 ClusterIP answered by CoreDNS after SIGKILL).
#
# Usage: simulated_node_test.sh NODEDNS_BINARY [--backend nft|legacy] [--loadgen LOADGEN_BINARY]
#          [--runner binary|podman] [--manifest stock|dual-stack] [--upgrades N]
# Needs root, ip, nsenter, unshare, knotd, kdig, curl, cc, musl-gcc, nft, iptables-nft or
# iptables-legacy, conntrack; exits 77 (ctest SKIP_RETURN_CODE) when those are missing. Every
# namespace and process it makes is removed on exit. About 40 s (--upgrades 10: 80 s).
set -uo pipefail

NODEDNS=${1:?usage: simulated_node_test.sh NODEDNS_BINARY [--backend B] [--loadgen L] [--runner R] [--manifest M] [--upgrades N]}
shift
BACKEND=nft
LOADGEN=""
RUNNER=binary
MANIFEST=stock
UPGRADES=2
while [[ $# -gt 0 ]]; do
  case $1 in
    --backend) BACKEND=$2 ;;
    --loadgen) LOADGEN=$2 ;;
    --runner) RUNNER=$2 ;;
    --manifest) MANIFEST=$2 ;;
    --upgrades) UPGRADES=$2 ;;
    *) echo "FAIL: unknown argument '$1'"; exit 1 ;;
  esac
  shift 2 || { echo "FAIL: $1 needs a value"; exit 1; }
done
case $MANIFEST in stock | dual-stack) ;; *) echo "FAIL: manifest '$MANIFEST'"; exit 1 ;; esac
[[ $UPGRADES =~ ^[1-9][0-9]*$ ]] || { echo "FAIL: --upgrades '$UPGRADES' is not a count"; exit 1; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=rewrite_lab.sh
source "$HERE/rewrite_lab.sh"

skip() {
  echo "SKIP: $*"
  exit 77
}
case $BACKEND in nft | legacy) ;; *) echo "FAIL: backend '$BACKEND' is not nft or legacy"; exit 1 ;; esac
IPT=iptables-$BACKEND
[[ $(id -u) -eq 0 ]] || skip "needs root for ip netns and unshare -m"
missing=$(lab_missing_tools)
for t in nft "$IPT" conntrack; do command -v "$t" >/dev/null 2>&1 || missing+=" $t"; done
[[ -z "${missing// /}" ]] || skip "missing tools: $missing"
[[ -x "$NODEDNS" ]] || { echo "FAIL: nodedns binary '$NODEDNS' is not executable"; exit 1; }
case $RUNNER in
  binary) ;;
  podman)
    for t in podman runc; do command -v "$t" >/dev/null 2>&1 || skip "RUNNER=podman needs $t"; done
    [[ -x $LOADGEN ]] || { echo "FAIL: RUNNER=podman needs LOADGEN (the image holds it)"; exit 1; }
    ;;
  *) echo "FAIL: runner '$RUNNER' is not binary or podman"; exit 1 ;;
esac

LOCAL_DNS=169.254.20.10
CLUSTER_IP=10.96.0.10
UPSTREAM_SVC_IP=10.96.0.11
COREDNS_IP=10.53.9.2
RESOLVER_IP=10.53.9.3
SYNC=2
# dual-stack: the overlay's IPv6 addresses, and CoreDNS's IPv6 address.
LOCAL_DNS6=fd00:169:254:20::10
CLUSTER_IP6=fd00:10:96::a
COREDNS_IP6=fd53:9::2

NODE_PID=""
NODE_RUNS=0
KNOT_PIDS=()
FAILS=0
pass() { echo "PASS: $*"; }
fail() {
  echo "FAIL: $*"
  FAILS=$((FAILS + 1))
}

IMAGE=""
CONTAINERS=()
LOAD_PIDS=()
watcher=""
OLD_PID=""  # a node-cache handing over, until it exits
cleanup() {
  local p
  for p in "${LOAD_PIDS[@]}" $watcher $OLD_PID; do kill -KILL "$p" 2>/dev/null; done
  [[ -n "$NODE_PID" ]] && node_signal KILL
  local c
  for c in "${CONTAINERS[@]}"; do timeout 30 podman rm -f "$c" >/dev/null 2>&1; done
  [[ -n "$NODE_PID" ]] && wait "$NODE_PID" 2>/dev/null
  [[ -n $IMAGE ]] && timeout 30 podman rmi -f "$IMAGE" >/dev/null 2>&1
  lab_cleanup
}
lab_init "sn${BACKEND:0:3}${MANIFEST:0:1}${RUNNER:0:1}"
trap cleanup EXIT
[[ -n ${KEEP_LOGS:-} ]] && trap 'cp -r "$LAB_WORK" /tmp/simnode-keep; cleanup' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
chmod 755 "$LAB_WORK"  # the ConfigMap files are read after nodedns drops to uid 65534
lab_netns_up
case $? in
  0) ;;
  2) skip "network namespaces with veth pairs are not possible here" ;;
  *) echo "FAIL: could not set up the namespaces"; exit 1 ;;
esac
lab_build_clients || { echo "FAIL: could not build the getaddrinfo clients"; exit 1; }
node() { lab_in "$LAB_NS_NODE" "$@"; }

# --- the node ---
node ip link add nodelocaldns type bridge || { echo "FAIL: no bridge"; exit 1; }
node sysctl -qw net.ipv4.ip_forward=1
# A default route, as a node has: ClusterIPs are routed before kube-proxy's DNAT rewrites them.
node ip route add default via "$COREDNS_IP" || { echo "FAIL: default route"; exit 1; }
# kube-proxy (iptables mode): ClusterIP DNAT in PREROUTING (pods) and OUTPUT (the host network,
# nodedns's own queries to kube-dns-upstream included).
for chain in PREROUTING OUTPUT; do
  for vip in $CLUSTER_IP $UPSTREAM_SVC_IP; do
    for proto in udp tcp; do
      node "$IPT" -t nat -A "$chain" -d "$vip/32" -p "$proto" --dport 53 \
        -j DNAT --to-destination "$COREDNS_IP:53" || { echo "FAIL: $IPT DNAT"; exit 1; }
    done
  done
done
if [[ $MANIFEST == dual-stack ]]; then
  IPT6=ip6tables-$BACKEND
  node sysctl -qw net.ipv6.conf.all.forwarding=1
  node ip -6 addr add fd53:9::1/64 dev up0 nodad &&
    lab_in "$LAB_NS_UP" ip -6 addr add "$COREDNS_IP6/64" dev eth0 nodad &&
    lab_in "$LAB_NS_UP" ip -6 route add default via fd53:9::1 &&
    node ip -6 route add default via "$COREDNS_IP6" || { echo "FAIL: IPv6 plumbing"; exit 1; }
  for chain in PREROUTING OUTPUT; do
    for proto in udp tcp; do
      node "$IPT6" -t nat -A "$chain" -d "$CLUSTER_IP6/128" -p "$proto" --dport 53 \
        -j DNAT --to-destination "[$COREDNS_IP6]:53" || { echo "FAIL: $IPT6 DNAT"; exit 1; }
    done
  done
fi
firewall() {
  node "$IPT" -P INPUT DROP &&
    node "$IPT" -A INPUT -i lo -j ACCEPT &&
    node "$IPT" -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
}
firewall || { echo "FAIL: firewall rules"; exit 1; }
printf 'nameserver %s\n' "$RESOLVER_IP" >"$LAB_WORK/node-resolv.conf"

# --- CoreDNS and the node's resolver ---
lab_write_zones
# What a cluster's CoreDNS and the internet answer for the bench Job's queries.
cat >>"$LAB_WORK/cluster.local.zone" <<'EOF'
kube-dns.kube-system.svc A 10.96.0.10
kube-dns-upstream.kube-system.svc A 10.96.0.11
node-local-dns.kube-system.svc A 10.53.0.1
; the upgrade load's cluster names: any *.bench.svc
*.bench.svc A 10.244.9.9
EOF
cat >"$LAB_WORK/10.in-addr.arpa.zone" <<'EOF'
$ORIGIN 10.in-addr.arpa.
$TTL 300
@ SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 3600 600 86400 300
@ NS ns.dns.cluster.local.
10.0.96 PTR kube-dns.kube-system.svc.cluster.local.
1.0.96 PTR kubernetes.default.svc.cluster.local.
EOF
cat >"$LAB_WORK/kubernetes.io.zone" <<'EOF'
$ORIGIN kubernetes.io.
$TTL 300
@ SOA ns hostmaster 1 3600 600 86400 300
@ NS ns
@ A 192.0.2.80
ns A 192.0.2.53
EOF
if [[ $MANIFEST == dual-stack ]]; then
  coredns_listen="$COREDNS_IP@53, $COREDNS_IP6@53"
else
  coredns_listen="$COREDNS_IP@53"
fi
lab_knotd coredns "$coredns_listen" cluster.local 10.in-addr.arpa &&
  lab_knotd resolver "$RESOLVER_IP@53" . example.com kubernetes.io ||
  { echo "FAIL: knotd did not start"; exit 1; }
# protocol counts of one knotd: "udp N tcp N"
knot_protocols() {
  lab_in "$LAB_NS_UP" timeout 5 knotc -s "$LAB_WORK/$1-run/knot.sock" stats mod-stats 2>/dev/null |
    awk '/request-protocol\[udp/ { u += $3 } /request-protocol\[tcp/ { t += $3 }
         END { printf "udp %d tcp %d\n", u, t }'
}

# --- the stock ConfigMap and arguments ---
# The optional kube-dns ConfigMap, absent: kubelet mounts an empty directory.
mkdir -p "$LAB_WORK/coredns" "$LAB_WORK/etc" "$LAB_WORK/kube-dns"
if [[ $MANIFEST == stock ]]; then
  sed -e "s/__PILLAR__LOCAL__DNS__/$LOCAL_DNS/g" -e "s/__PILLAR__DNS__SERVER__/$CLUSTER_IP/g" \
    -e "s/__PILLAR__DNS__DOMAIN__/cluster.local/g" \
    "$LAB_REPO/tests/nodecache/testdata/stock/Corefile.base.unsubstituted" \
    >"$LAB_WORK/coredns/Corefile.base"
  # nodelocaldns.yaml's args, with -conf moved into the work directory.
  STOCK_ARGS=(-localip "$LOCAL_DNS,$CLUSTER_IP" -conf "$LAB_WORK/etc/Corefile"
    -upstreamsvc kube-dns-upstream)
else
  command -v kubectl >/dev/null || skip "the dual-stack overlay needs kubectl to render it"
  kubectl kustomize "$LAB_REPO/deploy/kubernetes/overlays/dual-stack" >"$LAB_WORK/overlay.yaml" ||
    { echo "FAIL: kubectl kustomize overlays/dual-stack"; exit 1; }
  python3 - "$LAB_WORK" <<'PY' || { echo "FAIL: cannot read the rendered overlay"; exit 1; }
import sys, yaml
work = sys.argv[1]
objs = [o for o in yaml.safe_load_all(open(work + "/overlay.yaml")) if o]
ds = next(o for o in objs if o["kind"] == "DaemonSet")
cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "node-local-dns")
open(work + "/coredns/Corefile.base", "w").write(cm["data"]["Corefile"])
args = ds["spec"]["template"]["spec"]["containers"][0]["args"]
# Without the two paths the runner sets (-conf, -basecorefile).
out, skip = [], False
for a in args:
    if skip:
        skip = False
        continue
    if a in ("-conf", "-basecorefile"):
        skip = True
        continue
    out.append(a)
open(work + "/overlay.args", "w").write("\n".join(out) + "\n")
PY
  mapfile -t STOCK_ARGS <"$LAB_WORK/overlay.args"
  STOCK_ARGS+=(-conf "$LAB_WORK/etc/Corefile")
fi
ARGS=("${STOCK_ARGS[@]}" -basecorefile "$LAB_WORK/coredns/Corefile.base"
  -kubednscm "$LAB_WORK/kube-dns" -syncinterval "${SYNC}s")
# In the container, the DaemonSet's paths (deploy/kubernetes/base/daemonset.yaml).
IN_POD_ARGS=(-conf /etc/nodedns/Corefile -basecorefile /etc/coredns/Corefile.base
  -syncinterval "${SYNC}s")
# -handover as the DaemonSet gives it, in a directory of the work dir (its hostPath /run/nodedns).
# node_run adds it unless USE_HANDOVER is 0.
mkdir -p "$LAB_WORK/run"
HANDOVER_ARGS=(-handover "$LAB_WORK/run/handover.sock")
IN_POD_HANDOVER_ARGS=(-handover /run/nodedns/handover.sock)
USE_HANDOVER=1
chmod 777 "$LAB_WORK/etc"  # an emptyDir's mode
if [[ $RUNNER == podman ]]; then
  if [[ -z ${CONTAINERS_CONF:-} ]]; then
    # podman's defaults raise nofile/nproc, which this machine's root may not; runc, not crun.
    printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n' \
      >"$LAB_WORK/containers.conf"
    export CONTAINERS_CONF="$LAB_WORK/containers.conf"
  fi
  touch /run/xtables.lock  # the DaemonSet's hostPath is FileOrCreate
  IMAGE="localhost/nodedns-simnode:$$"
  timeout 180 bash "$LAB_REPO/deploy/image/build.sh" \
    --build-dir "$(dirname "$(dirname "$NODEDNS")")" --tag "$IMAGE" >"$LAB_WORK/image.log" 2>&1 ||
    { echo "FAIL: deploy/image/build.sh:"; cat "$LAB_WORK/image.log"; IMAGE=""; exit 1; }
fi

# node_run LOG EXTRA...: nodedns node-cache in the node's network namespace with the node's
# resolv.conf (dnsPolicy: Default), in the background; sets RUN_PID (and RUN_NAME, the container).
node_run() {
  local log=$1
  shift
  if [[ $RUNNER == podman ]]; then
    RUN_NAME="simnode-$$-$RANDOM"
    CONTAINERS+=("$RUN_NAME")
    podman run --rm --name "$RUN_NAME" --network "ns:/run/netns/$LAB_NS_NODE" \
      --cap-drop ALL --cap-add NET_ADMIN,NET_BIND_SERVICE,NET_RAW,SETUID,SETGID \
      -v /run/xtables.lock:/run/xtables.lock \
      --security-opt no-new-privileges --read-only \
      -v "$LAB_WORK/coredns:/etc/coredns:ro" -v "$LAB_WORK/kube-dns:/etc/kube-dns:ro" \
      -v "$LAB_WORK/etc:/etc/nodedns" -v "$LAB_WORK/node-resolv.conf:/etc/resolv.conf:ro" \
      -v "$LAB_WORK/run:/run/nodedns" \
      -e KUBE_DNS_UPSTREAM_SERVICE_HOST="$UPSTREAM_SVC_IP" \
      "$IMAGE" node-cache "${STOCK_ARGS[@]}" "${IN_POD_ARGS[@]}" \
      "${IN_POD_HANDOVER_ARGS[@]:0:$((USE_HANDOVER * 2))}" "$@" >"$log" 2>&1 &
    RUN_PID=$!
    return
  fi
  nsenter --net="/run/netns/$LAB_NS_NODE" unshare -m sh -c '
    mount --make-rprivate / && mount --bind "$1" /etc/resolv.conf || exit 125
    shift
    exec env KUBE_DNS_UPSTREAM_SERVICE_HOST='"$UPSTREAM_SVC_IP"' "$@"' sh \
    "$LAB_WORK/node-resolv.conf" "$NODEDNS" node-cache "${ARGS[@]}" \
    "${HANDOVER_ARGS[@]:0:$((USE_HANDOVER * 2))}" "$@" >"$log" 2>&1 &
  RUN_PID=$!
}
# node_signal SIG [PID NAME]: to the serving nodedns (or to the one PID/NAME, as node_run set them).
node_signal() {
  local pid=${2:-$NODE_PID} name=${3:-${NODE_NAME:-}}
  if [[ $RUNNER == podman ]]; then
    timeout 30 podman kill -s "$1" "$name" >/dev/null 2>&1
  else
    kill -s "$1" "$pid" 2>/dev/null
  fi
}
node_start() {
  NODE_RUNS=$((NODE_RUNS + 1))
  NODE_LOG="$LAB_WORK/nodedns.$NODE_RUNS.log"
  node_run "$NODE_LOG"
  NODE_PID=$RUN_PID
  NODE_NAME=${RUN_NAME:-}
  local _
  for _ in $(seq 1 100); do
    kill -0 "$NODE_PID" 2>/dev/null || { echo "nodedns exited at start:"; cat "$NODE_LOG"; NODE_PID=""; return 1; }
    node curl -sf --max-time 1 "http://$LOCAL_DNS:8080/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "nodedns did not answer /health within 10 s:"
  cat "$NODE_LOG"
  return 1
}
node_queries() {
  node curl -sf --max-time 2 "http://127.0.0.1:9353/metrics" |
    awk '$1 ~ /^nodedns_queries_total/ { s += $2 } END { print s + 0 }'
}
# conntrack entries (original direction) to ADDRESS, any protocol.
tracked_to() { node conntrack -L -d "$1" 2>/dev/null | grep -c "dst=$1 " ; }

# --- the pods ---
pod_resolv() {  # FILE NAMESERVER
  printf 'nameserver %s\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n' \
    "$2" >"$1"
}
pod_resolv "$LAB_WORK/resolv-a.conf" "$CLUSTER_IP"
printf 'kubernetes.default.svc.cluster.local A\nweb.default.svc.cluster.local A\n' \
  >"$LAB_WORK/crash.queries"
chmod 644 "$LAB_WORK/crash.queries"
pod_resolv "$LAB_WORK/resolv-b.conf" "$LOCAL_DNS"
pod() {  # A|B CMD...
  local ns resolv
  if [[ $1 == A ]]; then ns=$LAB_NS_A resolv=$LAB_WORK/resolv-a.conf; else ns=$LAB_NS_B resolv=$LAB_WORK/resolv-b.conf; fi
  shift
  lab_pod_exec "$ns" "$resolv" 10 "$@"
}
# The pod's nameserver.
ns_of() { [[ $1 == A ]] && echo "$CLUSTER_IP" || echo "$LOCAL_DNS"; }
# expect_addr WHAT WANT OUTPUT
expect_addr() {
  if grep -qw -- "$2" <<<"$3"; then pass "$1"; else fail "$1: want $2, got: ${3:-(nothing)}"; fi
}
lookups() {  # POD: every client, a cluster and an external name
  local p=$1 ns out
  ns=$(ns_of "$p")
  out=$(pod "$p" getent hosts kubernetes.default 2>&1)
  expect_addr "pod $p glibc getent kubernetes.default" 10.96.0.1 "$out"
  out=$(pod "$p" getent ahostsv4 api.example.com 2>&1)
  expect_addr "pod $p glibc getent api.example.com" 192.0.2.10 "$out"
  out=$(pod "$p" "$LAB_WORK/gai-musl" web.default 2>&1)
  expect_addr "pod $p musl getaddrinfo web.default" 10.244.1.5 "$out"
  out=$(pod "$p" "$LAB_WORK/gai-musl" api.example.com 2>&1)
  expect_addr "pod $p musl getaddrinfo api.example.com" 192.0.2.10 "$out"
  out=$(pod "$p" kdig @"$ns" +short +time=2 +retry=0 kubernetes.default.svc.cluster.local A 2>&1)
  expect_addr "pod $p kdig udp @$ns" 10.96.0.1 "$out"
  out=$(pod "$p" kdig @"$ns" +tcp +short +time=2 +retry=0 api.example.com A 2>&1)
  expect_addr "pod $p kdig tcp @$ns" 192.0.2.10 "$out"
}

echo "== kube-proxy backend: $BACKEND, nodedns run as: $RUNNER"
node_start || { echo "FAIL: nodedns did not start"; exit 1; }
grep -q "running as uid 65534" "$NODE_LOG" && pass "nodedns dropped to uid 65534" ||
  fail "no privilege drop in the log: $(cat "$NODE_LOG")"

rules=$(node nft list table inet nodedns 2>&1)
if grep -q "ip daddr { 10.96.0.10, 169.254.20.10 } meta l4proto { tcp, udp } th dport 53 notrack" <<<"$rules" &&
  grep -q "flags owner" <<<"$rules"; then
  pass "table inet nodedns holds the NOTRACK rules"
else
  fail "table inet nodedns: $rules"
fi
if [[ $MANIFEST == dual-stack ]]; then
  grep -q "ip6 daddr { $CLUSTER_IP6, $LOCAL_DNS6 } meta l4proto { tcp, udp } th dport 53 notrack" \
    <<<"$rules" && pass "IPv6 NOTRACK rules" || fail "no IPv6 NOTRACK rule: $rules"
fi
accept=$(node "$IPT" -S INPUT 2>&1)
if [[ $(grep -c 'comment "nodedns: node-local DNS" -j ACCEPT' <<<"$accept") -eq 4 ]]; then
  pass "accept rules first in $IPT INPUT"
else
  fail "$IPT INPUT: $accept"
fi

node conntrack -F >/dev/null 2>&1
before=$(node_queries)
lookups A
lookups B
after=$(node_queries)
# glibc asks A and AAAA per step; the search walks and rewrites vary the count, but at least one
# query per lookup (12) must have reached nodedns.
if ((after - before >= 12)); then pass "nodedns answered the pods ($((after - before)) queries)"; else
  fail "nodedns saw $((after - before)) queries from 12 lookups"; fi
for vip in $CLUSTER_IP $LOCAL_DNS; do
  n=$(tracked_to "$vip")
  [[ $n -eq 0 ]] && pass "no conntrack entry for queries to $vip" ||
    fail "$n conntrack entries to $vip: $(node conntrack -L -d "$vip" 2>&1)"
done
if [[ $MANIFEST == dual-stack ]]; then
  pod_resolv "$LAB_WORK/resolv-a6.conf" "$CLUSTER_IP6"
  out=$(lab_pod_exec "$LAB_NS_A" "$LAB_WORK/resolv-a6.conf" 10 getent hosts kubernetes.default 2>&1)
  expect_addr "pod A glibc getent kubernetes.default with nameserver $CLUSTER_IP6" 10.96.0.1 "$out"
  for p in A:$CLUSTER_IP6 B:$LOCAL_DNS6; do
    for t in +notcp +tcp; do
      out=$(pod "${p%%:*}" kdig @"${p#*:}" "$t" +short +time=2 +retry=0 \
        kubernetes.default.svc.cluster.local A 2>&1)
      expect_addr "pod ${p%%:*} kdig $t @${p#*:}" 10.96.0.1 "$out"
    done
  done
  for vip in $CLUSTER_IP6 $LOCAL_DNS6; do
    n=$(node conntrack -L -f ipv6 -d "$vip" 2>/dev/null | grep -c "dst=$vip ")
    [[ $n -eq 0 ]] && pass "no conntrack entry for queries to $vip" ||
      fail "$n conntrack entries to $vip"
  done
fi
if node conntrack -L -p tcp -d "$UPSTREAM_SVC_IP" --dport 53 2>/dev/null | grep -q "src=$COREDNS_IP"; then
  pass "cluster names went over TCP to kube-dns-upstream, through the DNAT"
else
  fail "no TCP flow to $UPSTREAM_SVC_IP:53 DNATed to $COREDNS_IP: $(node conntrack -L 2>&1)"
fi
if node conntrack -L -p udp -d "$RESOLVER_IP" --dport 53 2>/dev/null | grep -q "dst=$RESOLVER_IP"; then
  pass "external names went to the node's resolv.conf nameserver"
else
  fail "no UDP flow to $RESOLVER_IP:53: $(node conntrack -L 2>&1)"
fi
read -r _ udp _ tcp <<<"$(knot_protocols coredns)"
if [[ $udp -eq 0 && $tcp -gt 0 ]]; then pass "CoreDNS was asked over TCP only ($tcp)"; else
  fail "CoreDNS saw udp $udp tcp $tcp (force_tcp)"; fi

# /health and the CoreDNS-named metrics on the stock ports, counting exactly what was sent.
coredns_count() {  # FAMILY SERVER: the sum of FAMILY's samples whose server label is SERVER
  node curl -sf --max-time 2 "http://127.0.0.1:9253/metrics" |
    awk -v f="$1" -v srv="server=\"$2\"" 'index($1, f "{") == 1 && index($1, srv) { s += $2 }
      END { print s + 0 }'
}
health=$(node curl -s --max-time 2 -w '%{http_code}' "http://$LOCAL_DNS:8080/health" | tr '\n' ' ')
[[ $health == "OK 200" ]] && pass "GET /health on $LOCAL_DNS:8080: $health" || fail "/health: $health"
srv="dns://$LOCAL_DNS:53"
req0=$(coredns_count coredns_dns_requests_total "$srv")
resp0=$(coredns_count coredns_dns_responses_total "$srv")
for i in 1 2 3 4 5; do
  pod B kdig @"$LOCAL_DNS" +short +time=2 +retry=0 "kubernetes.default.svc.cluster.local" A >/dev/null 2>&1
done
req1=$(coredns_count coredns_dns_requests_total "$srv")
resp1=$(coredns_count coredns_dns_responses_total "$srv")
if [[ $((req1 - req0)) -eq 5 && $((resp1 - resp0)) -eq 5 ]]; then
  pass "coredns_dns_requests_total and _responses_total{server=\"$srv\"} on :9253 counted the 5 queries sent"
else
  fail "5 queries sent to $srv: requests +$((req1 - req0)), responses +$((resp1 - resp0))"
fi

# The bench Job's command, as the rendered Job runs it, from pod A.
bench() {  # VARIANT ADDRESS
  local variant=$1 want=$2 out
  kubectl kustomize "$LAB_REPO/deploy/kubernetes/bench/$variant" >"$LAB_WORK/bench-$variant.yaml" \
    2>&1 || { fail "kubectl kustomize bench/$variant: $(cat "$LAB_WORK/bench-$variant.yaml")"; return; }
  # One argument a line: the command, then its args with the query file moved to the work dir.
  python3 - "$LAB_WORK/bench-$variant" <<'PY' || { fail "bench/$variant: cannot read the Job"; return; }
import sys, yaml
out = sys.argv[1]
objs = [o for o in yaml.safe_load_all(open(out + ".yaml")) if o]
job = next(o for o in objs if o["kind"] == "Job")
cm = next(o for o in objs if o["kind"] == "ConfigMap")
c = job["spec"]["template"]["spec"]["containers"][0]
mount = next(m["mountPath"] for m in c["volumeMounts"])
(name, data), = cm["data"].items()
open(out + ".queries", "w").write(data)
args = [a.replace(mount + "/" + name, out + ".queries") for a in c["command"] + c["args"]]
for flag, value in (("--duration", "2"), ("--rate", "500")):
    args[args.index(flag) + 1] = value
open(out + ".args", "w").write("\n".join(args) + "\n")
PY
  local -a argv
  mapfile -t argv <"$LAB_WORK/bench-$variant.args"
  argv[0]=$LOADGEN  # the image's /usr/local/bin/nodedns-loadgen
  out=$(pod A setpriv --reuid 65534 --regid 65534 --clear-groups "${argv[@]}" 2>&1)
  echo "$out" | sed "s/^/  bench $variant: /"
  if grep -q "^server $want:53, open loop at 500 qps" <<<"$out" &&
    grep -Eq "sent ([1-9][0-9]*), answered \1, lost 0 " <<<"$out" &&
    grep -Eq "rcodes: NOERROR=[0-9]+ NXDOMAIN=[0-9]+$" <<<"$out"; then
    pass "bench Job $variant: every query answered by $want"
  else
    fail "bench Job $variant: $out"
  fi
}
if [[ -z $LOADGEN ]]; then
  echo "SKIP bench Job: no nodedns-loadgen given"
elif ! command -v kubectl >/dev/null; then
  echo "SKIP bench Job: no kubectl to render it"
else
  chmod 644 "$LAB_WORK"/*.conf 2>/dev/null
  bench node-local "$LOCAL_DNS"
  bench kube-dns "$CLUSTER_IP"
fi

# A firewall reload: INPUT flushed and its own rules put back, nodedns's gone. Pod B's query must
# then be dropped; if nodedns's sync put the rules back before it was sent, try again.
dropped=""
for _ in 1 2 3; do
  node "$IPT" -F INPUT && firewall
  out=$(pod B kdig @"$LOCAL_DNS" +short +time=1 +retry=0 kubernetes.default.svc.cluster.local A 2>&1)
  if ! grep -qw 10.96.0.1 <<<"$out"; then dropped=1; break; fi
  [[ $(node "$IPT" -S INPUT | grep -c nodedns) -eq 0 ]] && break  # answered without the rules
done
[[ -n $dropped ]] && pass "the firewall drops untracked queries without the accept rules" ||
  fail "pod B answered with the accept rules gone (the firewall drops nothing?)"
restored=""
for _ in $(seq 1 $((SYNC * 20 + 10))); do
  if [[ $(node "$IPT" -S INPUT | grep -c nodedns) -eq 4 ]]; then restored=1; break; fi
  sleep 0.1
done
[[ -n $restored ]] && pass "accept rules back within a sync interval" ||
  fail "accept rules not back after $((SYNC + 1)) s: $(node "$IPT" -S INPUT)"
out=$(pod B kdig @"$LOCAL_DNS" +short +time=2 +retry=0 kubernetes.default.svc.cluster.local A 2>&1)
expect_addr "pod B answered again" 10.96.0.1 "$out"
want_line="rules had changed; restored $([[ $BACKEND == nft ]] && echo ip || echo iptables-legacy) filter INPUT"
grep -q "$want_line" "$NODE_LOG" && pass "the repair is logged" ||
  fail "no repair line in the log"

# A second instance (without -handover: with it, it would take over).
USE_HANDOVER=0 node_run "$LAB_WORK/second.log" -metrics-listen-address 127.0.0.1:9354
second=$RUN_PID
for _ in $(seq 1 100); do kill -0 "$second" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$second" 2>/dev/null; then
  kill -9 "$second"
  fail "a second nodedns is still running"
else
  wait "$second"
  rc=$?
  if [[ $rc -eq 2 ]] && grep -q "table inet nodedns is held by another running process" "$LAB_WORK/second.log"; then
    pass "a second nodedns exits 2: $(head -1 "$LAB_WORK/second.log")"
  else
    fail "second nodedns: exit $rc, $(cat "$LAB_WORK/second.log")"
  fi
fi
out=$(pod A kdig @"$CLUSTER_IP" +short +time=2 +retry=0 kubernetes.default.svc.cluster.local A 2>&1)
expect_addr "the first keeps serving" 10.96.0.1 "$out"

# A ConfigMap change, reloaded on SIGUSR1: the generated Corefile is rewritten by uid 65534.
printf '# changed %s\n' "$$" >>"$LAB_WORK/coredns/Corefile.base"
node_signal USR1
for _ in $(seq 1 50); do grep -q "# changed $$" "$LAB_WORK/etc/Corefile" 2>/dev/null && break; sleep 0.1; done
if grep -q "# changed $$" "$LAB_WORK/etc/Corefile" 2>/dev/null; then
  pass "a reload rewrote -conf ($(stat -c '%U' "$LAB_WORK/etc/Corefile") owns it)"
else
  fail "-conf not rewritten by the reload: $(tail -3 "$NODE_LOG")"
fi

# SIGKILL: the rules go with the process; the ClusterIP falls back to kube-proxy.
node_signal KILL
wait "$NODE_PID" 2>/dev/null
NODE_PID=""
node conntrack -F >/dev/null 2>&1
t0=$(date +%s%N)
out=$(pod A kdig @"$CLUSTER_IP" +short +time=1 +retry=0 kubernetes.default.svc.cluster.local A 2>&1)
ms=$((($(date +%s%N) - t0) / 1000000))
expect_addr "after SIGKILL pod A's query to the ClusterIP is answered (${ms} ms)" 10.96.0.1 "$out"
[[ $(tracked_to "$CLUSTER_IP") -ge 1 ]] && pass "... by CoreDNS through kube-proxy's DNAT" ||
  fail "no conntrack entry to $CLUSTER_IP after SIGKILL"
node nft list table inet nodedns >/dev/null 2>&1 && fail "table inet nodedns outlived SIGKILL" ||
  pass "no table after SIGKILL"
# The link-local address has nothing behind it now: a pod that lists the ClusterIP second (what
# `nodedns audit` asks for) moves to it at once, on the ICMP port unreachable.
printf 'nameserver %s\nnameserver %s\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n' \
  "$LOCAL_DNS" "$CLUSTER_IP" >"$LAB_WORK/resolv-fallback.conf"
for client in "getent hosts" "$LAB_WORK/gai-musl"; do
  t0=$(date +%s%N)
  out=$(lab_pod_exec "$LAB_NS_B" "$LAB_WORK/resolv-fallback.conf" 10 $client kubernetes.default 2>&1)
  ms=$((($(date +%s%N) - t0) / 1000000))
  expect_addr "after SIGKILL pod B's ${client##*/} falls back to the second nameserver (${ms} ms)" \
    10.96.0.1 "$out"
done
if [[ $MANIFEST == dual-stack ]]; then
  out=$(pod A kdig @"$CLUSTER_IP6" +short +time=1 +retry=0 kubernetes.default.svc.cluster.local A 2>&1)
  expect_addr "after SIGKILL the IPv6 ClusterIP is answered (by CoreDNS, through the DNAT)" \
    10.96.0.1 "$out"
fi

# Restart on the node as the unclean exit left it (addresses still there).
node_start || fail "restart after SIGKILL"
node conntrack -F >/dev/null 2>&1
out=$(pod A kdig @"$CLUSTER_IP" +short +time=2 +retry=0 kubernetes.default.svc.cluster.local A 2>&1)
expect_addr "restarted nodedns answers pod A" 10.96.0.1 "$out"
[[ $(tracked_to "$CLUSTER_IP") -eq 0 ]] && pass "and the query is out of conntrack again" ||
  fail "tracked after restart"

# kill -9 and a restart under a steady load to the ClusterIP from pod A: every query is counted
# (answered, or lost after 1 s); the losses are reported, as the figure of a crash's cost.
if [[ -n $LOADGEN ]]; then
  lab_in "$LAB_NS_A" setpriv --reuid 65534 --regid 65534 --clear-groups "$LOADGEN" \
    --server "$CLUSTER_IP:53" --queries "$LAB_WORK/crash.queries" --rate 2000 --duration 4 \
    --timeout 1 >"$LAB_WORK/crash.out" 2>&1 &
  load=$!
  sleep 1
  node_signal KILL
  wait "$NODE_PID" 2>/dev/null
  NODE_PID=""
  sleep 1
  node_start || fail "restart under load"
  wait "$load"
  crash=$(cat "$LAB_WORK/crash.out")
  echo "$crash" | sed 's/^/  kill -9 under load: /'
  if grep -Eq "sent ([0-9]+), answered ([0-9]+), lost ([0-9]+) " <<<"$crash"; then
    pass "kill -9 and restart under 2000 qps to the ClusterIP: $(grep -Eo "sent [0-9]+, answered [0-9]+, lost [0-9]+" <<<"$crash")"
  else
    fail "the load under kill -9 did not report: $crash"
  fi
  out=$(pod A kdig @"$CLUSTER_IP" +short +time=2 +retry=0 kubernetes.default.svc.cluster.local A 2>&1)
  expect_addr "nodedns answers after the restart under load" 10.96.0.1 "$out"
fi

# Upgrades under load: node-cache's -handover against node-local-dns's SIGTERM and restart.
if [[ -n $LOADGEN ]]; then
  for i in $(seq 1 1000); do
    printf 'n%d.bench.example.com A\ns%d.bench.svc.cluster.local A\n' "$i" "$i"
  done >"$LAB_WORK/upgrade.queries"
  chmod 644 "$LAB_WORK/upgrade.queries"
  # metric NAME: the serving process's sample of NAME (summed over its labels).
  metric() {
    node curl -sf --max-time 2 "http://127.0.0.1:9353/metrics" |
      awk -v f="$1" '$1 == f || index($1, f "{") == 1 { s += $2 } END { print s + 0 }'
  }
  hits_misses() { echo "$(metric nodedns_cache_hits_total) $(metric nodedns_cache_misses_total)"; }
  # ratio H0 M0 H1 M1: the hit ratio between two samples, in percent.
  ratio() {
    awk -v h="$(($3 - $1))" -v m="$(($4 - $2))" \
      'BEGIN { if (h + m == 0) print "n/a"; else printf "%.1f%%\n", 100 * h / (h + m) }'
  }
  # wait_log FILE TEXT SECONDS [PID]: until FILE holds TEXT (false after SECONDS, or once PID
  # has exited).
  wait_log() {
    local _
    for _ in $(seq 1 $(($3 * 20))); do
      grep -q "$2" "$1" 2>/dev/null && return 0
      [[ -n ${4:-} ]] && ! kill -0 "$4" 2>/dev/null && return 1
      sleep 0.05
    done
    return 1
  }
  # load_start NAME: pod A at 2,000 qps to the ClusterIP and pod B at 200 qps to 169.254.20.10,
  # until load_stop NAME (SIGTERM: the loadgen stops sending and waits out its 1 s timeout).
  load_start() {
    LOAD_PIDS=()
    local p
    for p in "A $LAB_NS_A $CLUSTER_IP 2000 upgrade" "B $LAB_NS_B $LOCAL_DNS 200 crash"; do
      set -- $p
      nsenter --net="/run/netns/$2" setpriv --reuid 65534 --regid 65534 --clear-groups \
        "$LOADGEN" --server "$3:53" --queries "$LAB_WORK/$5.queries" --rate "$4" \
        --duration 600 --timeout 1 >"$LAB_WORK/load-$NAME-$1.out" 2>&1 &
      LOAD_PIDS+=($!)
    done
  }
  load_stop() {  # checks nothing; prints the tables
    local p
    for p in "${LOAD_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${LOAD_PIDS[@]}"; do wait "$p"; done
    LOAD_PIDS=()
    for p in A B; do sed "s/^/  $NAME, pod $p: /" "$LAB_WORK/load-$NAME-$p.out"; done
  }
  lost_of() { grep -Eo "sent [0-9]+, answered [0-9]+, lost [0-9]+" "$LAB_WORK/load-$NAME-$1.out"; }
  p99_of() { grep -Eo "p99 [0-9]+" "$LAB_WORK/load-$NAME-$1.out" | awk '{ print $2 / 1000 " ms" }'; }
  # The node's setup sampled every 0.1 s while the upgrades run: a line per gap.
  watch_node() {
    while :; do
      tables=$(node nft list tables 2>&1)
      grep -qE "table inet nodedns(_b)?$" <<<"$tables" || echo "$(date +%T.%N) no rules table: $tables"
      addrs=$(node ip -o addr show dev nodelocaldns 2>&1)
      grep -q " $LOCAL_DNS/" <<<"$addrs" || echo "$(date +%T.%N) $LOCAL_DNS not on nodelocaldns: $addrs"
      sleep 0.1
    done
  }
  # upgrade I EXTRA...: a new node-cache takes over from the serving one; the old one gets
  # SIGTERM once it has drained.
  upgrade() {
    local i=$1 h0 m0 h1 m1 h2 m2 old_pid=$NODE_PID old_name=${NODE_NAME:-} old_log=$NODE_LOG rc
    shift
    read -r h0 m0 <<<"$(hits_misses)"
    sleep 1
    read -r h1 m1 <<<"$(hits_misses)"
    NODE_RUNS=$((NODE_RUNS + 1))
    NODE_LOG="$LAB_WORK/nodedns.$NODE_RUNS.log"
    OLD_PID=$old_pid
    node_run "$NODE_LOG" "$@"
    NODE_PID=$RUN_PID
    NODE_NAME=${RUN_NAME:-}
    if ! wait_log "$NODE_LOG" "nodedns: serving on" 20 "$NODE_PID"; then
      fail "$NAME $i: the new node-cache does not serve: $(tail -5 "$NODE_LOG")"
      node_signal KILL
      wait "$NODE_PID"
      NODE_PID=$old_pid NODE_NAME=$old_name NODE_LOG=$old_log OLD_PID=""
      return 1
    fi
    local entries=none h3 m3
    if grep -q "took over" "$NODE_LOG"; then
      # The old one stops serving HTTP as it starts its drain; wait for that, so that the
      # metrics below are the new process's: its first second.
      wait_log "$old_log" "drained; idle until SIGTERM" 20 ||
        fail "$NAME $i: the old node-cache did not drain: $(tail -5 "$old_log")"
      read -r h3 m3 <<<"$(hits_misses)"
      sleep 1
      read -r h2 m2 <<<"$(hits_misses)"
      entries=$(metric nodedns_handover_inherited_cache_entries)
      echo "  $(date +%T.%N) $NAME $i: $(grep -o "took over.*" "$NODE_LOG"); hit ratio $(ratio "$h0" "$m0" "$h1" "$m1") the second before, $(ratio "$h3" "$m3" "$h2" "$m2") in the new process's first second"
    else
      # Serving without the handover (next to the old one): the kubelet stops the old pod all
      # the same once the new one is ready.
      fail "$NAME $i: the new node-cache took nothing over: $(tail -5 "$NODE_LOG")"
      sleep 1
    fi
    HANDED_ENTRIES+=("$entries")
    # The kubelet's SIGTERM once the new pod is ready.
    echo "  $(date +%T.%N) SIGTERM to the old node-cache"
    node_signal TERM "$old_pid" "$old_name"
    wait "$old_pid"
    rc=$?
    OLD_PID=""
    [[ $rc -eq 0 ]] || fail "$NAME $i: the old node-cache exited $rc on SIGTERM: $(tail -5 "$old_log")"
    [[ $entries == none ]] || grep -q "handed over to the next process" "$old_log" ||
      fail "$NAME $i: the old node-cache did not log the handover: $(tail -5 "$old_log")"
  }
  # restart I: node-local-dns's way: SIGTERM, then a new process, without -handover.
  restart() {
    local i=$1 h0 m0 h1 m1 h2 m2 rc
    read -r h0 m0 <<<"$(hits_misses)"
    sleep 1
    read -r h1 m1 <<<"$(hits_misses)"
    local t_stop=$(date +%s%N)
    node_signal TERM
    wait "$NODE_PID"
    NODE_PID=""
    NODE_RUNS=$((NODE_RUNS + 1))
    NODE_LOG="$LAB_WORK/nodedns.$NODE_RUNS.log"
    USE_HANDOVER=0 node_run "$NODE_LOG"
    NODE_PID=$RUN_PID
    NODE_NAME=${RUN_NAME:-}
    wait_log "$NODE_LOG" "nodedns: serving on" 20 "$NODE_PID" ||
      { fail "$NAME $i: restart: $(tail -5 "$NODE_LOG")"; return 1; }
    local t0=$(date +%s%N) h3 m3
    read -r h3 m3 <<<"$(hits_misses)"
    sleep 1
    read -r h2 m2 <<<"$(hits_misses)"
    echo "  $NAME $i: serving again $(((t0 - t_stop) / 1000000)) ms after the SIGTERM; hit ratio $(ratio "$h0" "$m0" "$h1" "$m1") the second before, $(ratio "$h3" "$m3" "$h2" "$m2") in the new process's first second"
  }

  watch_node >"$LAB_WORK/watch.out" 2>&1 &
  watcher=$!
  # N upgrades, the last one to a process that passes no cache on (-handover-cache-percent 0),
  # and one more from it: the cold start's hit ratio.
  NAME=upgrades
  load_start
  sleep 2  # the cache warm: every name asked
  HANDED_ENTRIES=()
  for i in $(seq 1 "$((UPGRADES + 1))"); do
    if ((i < UPGRADES)); then upgrade "$i" || break; else upgrade "$i" -handover-cache-percent 0 || break; fi
  done
  sleep 1
  load_stop
  for p in A B; do
    # Every query answered, and by nodedns: the lab's CoreDNS would refuse the external names.
    if grep -Eq "sent ([1-9][0-9]*), answered \1, lost 0 \(late 0, mismatched 0, errors 0\)" \
      "$LAB_WORK/load-$NAME-$p.out" && grep -Eq "rcodes: NOERROR=[0-9]+$" "$LAB_WORK/load-$NAME-$p.out"; then
      pass "${#HANDED_ENTRIES[@]} upgrades: no query lost from pod $p ($(lost_of $p), p99 $(p99_of $p))"
    else
      fail "${#HANDED_ENTRIES[@]} upgrades: queries lost from pod $p: $(cat "$LAB_WORK/load-$NAME-$p.out")"
    fi
  done
  want=$(printf '%s\n' "${HANDED_ENTRIES[@]}" | head -n "$UPGRADES" | grep -cE '^[1-9][0-9]*$')
  [[ ${#HANDED_ENTRIES[@]} -eq $((UPGRADES + 1)) && $want -eq $UPGRADES && ${HANDED_ENTRIES[-1]} == 0 ]] &&
    pass "each new node-cache loaded its predecessor's cache, the last none (-handover-cache-percent 0 before it): nodedns_handover_inherited_cache_entries ${HANDED_ENTRIES[*]}" ||
    fail "nodedns_handover_inherited_cache_entries after the upgrades: ${HANDED_ENTRIES[*]}"
  kill "$watcher" 2>/dev/null
  wait "$watcher" 2>/dev/null
  watcher=""
  [[ ! -s $LAB_WORK/watch.out ]] &&
    pass "a rules table and $LOCAL_DNS on nodelocaldns throughout the upgrades" ||
    fail "the node's setup had gaps during the upgrades: $(head -5 "$LAB_WORK/watch.out")"
  health=$(node curl -s --max-time 2 -w '%{http_code}' "http://$LOCAL_DNS:8080/health" | tr '\n' ' ')
  out=$(pod A kdig @"$CLUSTER_IP" +short +time=2 +retry=0 kubernetes.default.svc.cluster.local A 2>&1)
  [[ $health == "OK 200" ]] && grep -qw 10.96.0.1 <<<"$out" &&
    [[ $(metric nodedns_handover_failures_total) == 0 && $(metric nodedns_handover_fallback) == 0 ]] &&
    pass "the last node-cache is healthy (/health: $health, answers pod A, no handover failure)" ||
    fail "the last node-cache: /health '$health', pod A got '$out', handover failures $(metric nodedns_handover_failures_total)"

  NAME=restarts
  load_start
  sleep 2
  for i in $(seq 1 "$UPGRADES"); do restart "$i" || break; done
  sleep 1
  load_stop
  for p in A B; do
    echo "  $UPGRADES restarts without -handover, pod $p: $(lost_of $p), p99 $(p99_of $p), $(grep -Eo "rcodes:.*" "$LAB_WORK/load-$NAME-$p.out")"
  done
fi

# SIGTERM: everything it added goes.
node_signal TERM
wait "$NODE_PID"
rc=$?
NODE_PID=""
[[ $rc -eq 0 ]] && pass "exit 0 on SIGTERM" || fail "exit $rc on SIGTERM: $(tail -5 "$NODE_LOG")"
node nft list table inet nodedns >/dev/null 2>&1 && fail "table left after SIGTERM" || pass "no table after SIGTERM"
node "$IPT" -S | grep -q nodedns && fail "accept rules left: $(node "$IPT" -S)" ||
  pass "no accept rule after SIGTERM"
addrs=$(node ip -o addr show dev nodelocaldns)
grep -q -e "$LOCAL_DNS" -e "$CLUSTER_IP" <<<"$addrs" && fail "addresses left: $addrs" ||
  pass "no address left on nodelocaldns"
lab_sanitizer_report "$LAB_WORK/nodedns.1.log" && fail "sanitizer report: $(cat "$LAB_WORK/nodedns.1.log")"

if ((FAILS > 0)); then
  echo "== $FAILS check(s) failed; nodedns logs:"
  tail -n 20 "$LAB_WORK"/nodedns.*.log "$LAB_WORK"/second.log
  exit 1
fi
echo "== all checks passed"
