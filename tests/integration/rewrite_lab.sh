# shellcheck shell=bash
# A small Kubernetes-node lab in network namespaces, for the search-path rewrite's integration
# test (tests/integration/search_rewrite_integration_test.sh) and benchmark
# (bench/search_rewrite_bench.sh). Sourced, not run. Needs root.
#
#   pod A (ns "default")  10.53.1.2 fd53:1::2 --veth--+
#                                                     +-- node: nodedns on 10.53.0.1:53
#   pod B (ns "otherns")  10.53.2.2 fd53:2::2 --veth--+         (lo), health 127.0.0.1:9153
#                                                     |
#   upstream: knotd on 10.53.9.2:53 ---------veth-----+   node side 10.53.9.1
#             (udp_delay_relay on 10.53.9.3:53 -> 10.53.9.2:53 when lab_upstream_delay asks)
#
# Each pod has its own source address, so nodedns tells the pods apart (what it learns is per
# client address). Pods get a ULA IPv6 address as well as IPv4 (nodedns itself is reached over
# IPv4), so that `getent ahosts` asks A and AAAA at every search step, like the musl client (which
# sets no AI_ADDRCONFIG). That is a choice: glibc's AI_ADDRCONFIG (which getent sets) asks AAAA
# whenever the host has a non-loopback IPv6 address, a link-local fe80:: one included; only with
# IPv6 disabled on the pod's interfaces does getent ask A alone (lab_pod_ipv6 off). musl's
# AI_ADDRCONFIG probes loopback addresses and keeps asking AAAA as long as ::1 exists. Clients
# run as
#   nsenter --net=POD unshare -m sh -c 'mount --bind RESOLV /etc/resolv.conf && exec CLIENT'
# with /etc/nsswitch.conf ("hosts: files dns") and /etc/hosts (localhost only) bind-mounted too,
# so the machine's own name-service setup does not leak into the pods.
#
# Functions return non-zero on failure and print why to stderr; the caller decides whether that
# is a skip or a failure. Every process and namespace they create is recorded and removed by
# lab_cleanup (call it from an EXIT trap).

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_REPO=$(cd "$LAB_DIR/../.." && pwd)

LAB_ZONE=cluster.local
LAB_DNS_ADDR=10.53.0.1
LAB_DNS_PORT=53
LAB_UPSTREAM_ADDR=10.53.9.2
LAB_RELAY_ADDR=10.53.9.3
LAB_HEALTH=127.0.0.1:9153
LAB_POD_A_ADDR=10.53.1.2
LAB_POD_B_ADDR=10.53.2.2

LAB_WORK=""
LAB_NETNS=()
LAB_PIDS=()
LAB_NODEDNS_PID=""
LAB_NODEDNS_LOG=""
LAB_NODEDNS_RUNS=0
LAB_UPSTREAM_TARGET="$LAB_UPSTREAM_ADDR:53"
LAB_DELAY_METHOD="none"

# Tools the lab needs; prints the missing ones.
lab_missing_tools() {
  local t missing=()
  for t in ip nsenter unshare mount sysctl timeout knotd knotc kdig curl cc musl-gcc getent awk sort; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  echo "${missing[*]}"
}

# lab_in NETNS CMD...: runs CMD in a network namespace. nsenter rather than `ip netns exec`, which
# also remounts /sys for every command: the test runs a few hundred commands.
lab_in() {
  local ns=$1
  shift
  nsenter --net="/run/netns/$ns" "$@"
}

# lab_init TAG: a fresh work directory and namespace names unique to this process.
lab_init() {
  local tag=$1
  LAB_WORK=$(mktemp -d "/tmp/nodedns-$tag.XXXXXX") || return 1
  LAB_NS_NODE="ndr-$tag-$$-node"
  LAB_NS_UP="ndr-$tag-$$-up"
  LAB_NS_A="ndr-$tag-$$-a"
  LAB_NS_B="ndr-$tag-$$-b"
}

lab_cleanup() {
  local pid i
  if [[ -n "$LAB_NODEDNS_PID" ]]; then lab_nodedns_stop >/dev/null 2>&1; fi
  for pid in "${LAB_PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${LAB_PIDS[@]}"; do
    for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  LAB_PIDS=()
  for i in "${LAB_NETNS[@]}"; do ip netns del "$i" 2>/dev/null; done
  LAB_NETNS=()
  [[ -n "$LAB_WORK" && -d "$LAB_WORK" ]] && rm -rf "$LAB_WORK"
  LAB_WORK=""
}

# lab_netns_up: the four namespaces and their links. Returns 2 if network namespaces or veth
# pairs cannot be made here at all, 1 on any other error.
lab_netns_up() {
  local ns
  for ns in "$LAB_NS_NODE" "$LAB_NS_UP" "$LAB_NS_A" "$LAB_NS_B"; do
    ip netns add "$ns" 2>/dev/null || { echo "cannot create network namespace $ns" >&2; return 2; }
    LAB_NETNS+=("$ns")
    ip -n "$ns" link set lo up || return 1
  done
  # The node: nodedns's address on lo, one veth per pod and one to the upstream.
  ip -n "$LAB_NS_NODE" addr add "$LAB_DNS_ADDR/32" dev lo || return 1
  ip -n "$LAB_NS_NODE" link add up0 type veth peer name eth0 netns "$LAB_NS_UP" ||
    { echo "cannot create veth pairs" >&2; return 2; }
  ip -n "$LAB_NS_NODE" link add poda type veth peer name eth0 netns "$LAB_NS_A" || return 1
  ip -n "$LAB_NS_NODE" link add podb type veth peer name eth0 netns "$LAB_NS_B" || return 1
  ip -n "$LAB_NS_NODE" addr add 10.53.9.1/24 dev up0
  ip -n "$LAB_NS_NODE" addr add 10.53.1.1/24 dev poda
  ip -n "$LAB_NS_NODE" addr add 10.53.2.1/24 dev podb
  ip -n "$LAB_NS_NODE" -6 addr add fd53:1::1/64 dev poda nodad
  ip -n "$LAB_NS_NODE" -6 addr add fd53:2::1/64 dev podb nodad
  ip -n "$LAB_NS_UP" addr add "$LAB_UPSTREAM_ADDR/24" dev eth0
  ip -n "$LAB_NS_UP" addr add "$LAB_RELAY_ADDR/24" dev eth0
  ip -n "$LAB_NS_A" addr add "$LAB_POD_A_ADDR/24" dev eth0
  ip -n "$LAB_NS_B" addr add "$LAB_POD_B_ADDR/24" dev eth0
  ip -n "$LAB_NS_A" -6 addr add fd53:1::2/64 dev eth0 nodad
  ip -n "$LAB_NS_B" -6 addr add fd53:2::2/64 dev eth0 nodad
  for ns in "$LAB_NS_NODE:up0" "$LAB_NS_NODE:poda" "$LAB_NS_NODE:podb" "$LAB_NS_UP:eth0" \
            "$LAB_NS_A:eth0" "$LAB_NS_B:eth0"; do
    ip -n "${ns%%:*}" link set "${ns#*:}" up || return 1
  done
  ip -n "$LAB_NS_UP" route add default via 10.53.9.1 || return 1
  ip -n "$LAB_NS_A" route add default via 10.53.1.1 || return 1
  ip -n "$LAB_NS_B" route add default via 10.53.2.1 || return 1
  ip -n "$LAB_NS_A" -6 route add default via fd53:1::1 || return 1
  ip -n "$LAB_NS_B" -6 route add default via fd53:2::1 || return 1
}

# lab_pod_ipv6 NETNS on|off: IPv6 on the pod's interface (and its ULA address and route back) or
# disabled, which makes glibc's AI_ADDRCONFIG drop AAAA.
lab_pod_ipv6() {
  local ns=$1 mode=$2 n
  case "$ns" in
    "$LAB_NS_A") n=1 ;;
    "$LAB_NS_B") n=2 ;;
    *) return 1 ;;
  esac
  if [[ $mode == off ]]; then
    lab_in "$ns" sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1
  else
    lab_in "$ns" sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0 &&
      ip -n "$ns" -6 addr replace "fd53:$n::2/64" dev eth0 nodad &&
      ip -n "$ns" -6 route replace default via "fd53:$n::1"
  fi
}

# The zones. Every name a case uses is listed here; the test derives its expectations by asking
# knotd, never from a copy of this data. TTLs and negative TTLs (SOA minimum) are 300 s, longer
# than any run, so nothing expires mid-test.
lab_write_zones() {
  cat >"$LAB_WORK/root.zone" <<'EOF'
$ORIGIN .
$TTL 300
@ SOA ns.invalid. hostmaster.invalid. 1 3600 600 86400 300
@ NS ns.invalid.
EOF
  cat >"$LAB_WORK/cluster.local.zone" <<'EOF'
$ORIGIN cluster.local.
$TTL 300
@ SOA ns.dns hostmaster 1 3600 600 86400 300
@ NS ns.dns
ns.dns A 10.96.0.10
; services
kubernetes.default.svc A 10.96.0.1
web.otherns.svc A 10.96.1.2
; a headless service "web" in default, and one of its pods
web.default.svc A 10.244.1.5
web.default.svc AAAA fd00:244:1::5
pod-0.web.default.svc A 10.244.1.5
pod-0.web.default.svc AAAA fd00:244:1::5
; a name under the cluster domain itself: the short name "x" exists at x.cluster.local, so a
; wrong rewrite of x.default.svc.cluster.local would answer 10.0.0.99
x A 10.0.0.99
EOF
  cat >"$LAB_WORK/example.com.zone" <<'EOF'
$ORIGIN example.com.
$TTL 300
@ SOA ns hostmaster 1 3600 600 86400 300
@ NS ns
ns A 192.0.2.53
api A 192.0.2.10
api AAAA 2001:db8::10
learn-a A 192.0.2.21
learn-a AAAA 2001:db8::21
learn-b A 192.0.2.22
learn-b AAAA 2001:db8::22
; the benchmark's external names: any *.bench.example.com, each one a cold name
*.bench A 192.0.2.100
*.bench AAAA 2001:db8::100
EOF
  cat >"$LAB_WORK/corp.example.zone" <<'EOF'
$ORIGIN corp.example.
$TTL 300
@ SOA ns hostmaster 1 3600 600 86400 300
@ NS ns
ns A 192.0.2.153
intranet A 10.10.0.1
intranet AAAA fd00:10::1
EOF
}

# lab_knotd NAME "ADDRESS@PORT[, ADDRESS@PORT]" ZONE...: a knotd in the upstream namespace,
# authoritative for each ZONE from $LAB_WORK/ZONE.zone (root.zone for "."), with mod-stats
# counting what it receives; its socket is $LAB_WORK/NAME-run/knot.sock. Waits until every zone
# is loaded; returns 1, printing knotd's log, when they are not within 5 s.
lab_knotd() {
  local name=$1 listen=$2 z
  shift 2
  mkdir -p "$LAB_WORK/$name-run" "$LAB_WORK/$name-db"
  {
    printf 'server:\n  rundir: %s\n  listen: [ %s ]\n' "$LAB_WORK/$name-run" "$listen"
    printf 'log:\n  - target: stderr\n    any: error\n'
    printf 'database:\n  storage: %s\n' "$LAB_WORK/$name-db"
    printf 'mod-stats:\n  - id: counts\n    request-protocol: on\n    query-type: on\n'
    printf '    response-code: on\n'
    printf 'template:\n  - id: default\n    storage: %s\n    global-module: mod-stats/counts\n' \
      "$LAB_WORK"
    printf 'zone:\n'
    for z in "$@"; do
      printf '  - domain: %s\n    file: %s.zone\n' "$z" "$([[ $z == . ]] && echo root || echo "$z")"
    done
  } >"$LAB_WORK/$name.conf"
  nsenter --net="/run/netns/$LAB_NS_UP" knotd -c "$LAB_WORK/$name.conf" >"$LAB_WORK/$name.log" 2>&1 &
  LAB_PIDS+=($!)
  local _ ok
  for _ in $(seq 1 50); do
    ok=1
    for z in "$@"; do
      lab_in "$LAB_NS_UP" timeout 5 knotc -s "$LAB_WORK/$name-run/knot.sock" zone-status "$z" \
        >/dev/null 2>&1 || { ok=0; break; }
    done
    [[ $ok -eq 1 ]] && return 0
    sleep 0.1
  done
  echo "knotd $name did not start:" >&2
  cat "$LAB_WORK/$name.log" >&2
  return 1
}

# lab_knot_start: knotd in the upstream namespace on $LAB_UPSTREAM_ADDR:53, authoritative for the
# root (so that every name gets NXDOMAIN rather than REFUSED), cluster.local, example.com and
# corp.example. mod-stats counts what it receives (lab_knot_queries).
lab_knot_start() {
  lab_write_zones
  lab_knotd knot "$LAB_UPSTREAM_ADDR@53" . cluster.local example.com corp.example || return 1
  local _
  for _ in $(seq 1 50); do
    lab_kdig api.example.com A >/dev/null && return 0
    sleep 0.1
  done
  echo "knotd does not answer on $LAB_UPSTREAM_ADDR:53" >&2
  return 1
}

# lab_kdig NAME TYPE: asks knotd directly (from the node). Prints "RCODE ADDRESS...", where the
# addresses are the A/AAAA records of the answer section (of NAME or along its CNAME chain).
lab_kdig() {
  lab_in "$LAB_NS_NODE" timeout 5 kdig @"$LAB_UPSTREAM_ADDR" +norec +time=2 +retry=0 \
    "$1" "$2" 2>/dev/null | awk '
      /->>HEADER<<-/ { for (i = 1; i <= NF; i++) if ($i == "status:") { s = $(i + 1); sub(/[;,]$/, "", s) } }
      /^;; ANSWER SECTION:/ { ans = 1; next }
      /^;; / { ans = 0 }
      ans && ($4 == "A" || $4 == "AAAA") { a = a " " $5 }
      END { if (s == "") exit 1; print s a }'
}

# lab_kdig2 NAME: two lines, "RCODE ADDRESS..." for A and then for AAAA, in one kdig run.
lab_kdig2() {
  lab_in "$LAB_NS_NODE" timeout 5 kdig @"$LAB_UPSTREAM_ADDR" +norec +time=2 +retry=0 \
    "$1" A "$1" AAAA 2>/dev/null | awk '
      /->>HEADER<<-/ {
        if (n++) print s a
        s = ""; a = ""
        for (i = 1; i <= NF; i++) if ($i == "status:") { s = $(i + 1); sub(/[;,]$/, "", s) }
      }
      /^;; ANSWER SECTION:/ { ans = 1; next }
      /^;; / { ans = 0 }
      ans && ($4 == "A" || $4 == "AAAA") { a = a " " $5 }
      END { if (n) print s a }'
}

# lab_knot_queries: the number of queries knotd has received (all protocols).
lab_knot_queries() {
  lab_in "$LAB_NS_UP" timeout 5 knotc -s "$LAB_WORK/knot-run/knot.sock" stats mod-stats 2>/dev/null |
    awk '/request-protocol\[/ { s += $3 } END { print s + 0 }'
}

# lab_build_clients: the getaddrinfo client, against musl (static) and glibc.
lab_build_clients() {
  local src="$LAB_REPO/tests/testing/getaddrinfo_client.c"
  musl-gcc -static -O2 -o "$LAB_WORK/gai-musl" "$src" || { echo "musl-gcc failed" >&2; return 1; }
  cc -O2 -o "$LAB_WORK/gai-glibc" "$src" || { echo "cc failed" >&2; return 1; }
  printf 'hosts: files dns\n' >"$LAB_WORK/nsswitch.conf"
  printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' >"$LAB_WORK/hosts"
}

# lab_resolv_conf FILE NAMESPACE [EXTRA_SEARCH...]: a ClusterFirst pod's resolv.conf. Its
# options line is "ndots:5", plus $LAB_RESOLV_OPTIONS if set (e.g. "use-vc", "edns0").
lab_resolv_conf() {
  local file=$1 ns=$2
  shift 2
  {
    echo "nameserver $LAB_DNS_ADDR"
    echo "search $ns.svc.$LAB_ZONE svc.$LAB_ZONE $LAB_ZONE${*:+ $*}"
    echo "options ndots:5${LAB_RESOLV_OPTIONS:+ $LAB_RESOLV_OPTIONS}"
  } >"$file"
}

# lab_pod_exec NETNS RESOLV_CONF TIMEOUT_S CMD...: runs CMD in the pod namespace with RESOLV_CONF
# as /etc/resolv.conf (in a private mount namespace), killed after TIMEOUT_S (exit 124).
lab_pod_exec() {
  local ns=$1 resolv=$2 limit=$3
  shift 3
  lab_in "$ns" unshare -m sh -c '
    mount --make-rprivate / &&
    mount --bind "$1" /etc/resolv.conf &&
    mount --bind "$2" /etc/nsswitch.conf &&
    mount --bind "$3" /etc/hosts || exit 125
    shift 3
    exec "$@"' sh "$resolv" "$LAB_WORK/nsswitch.conf" "$LAB_WORK/hosts" timeout "$limit" "$@"
}

# lab_nodedns_start BINARY ARGS...: `BINARY serve --listen ... --forward ... --health ... ARGS`
# in the node namespace; waits until /health answers. Its stderr goes to a log of its own
# ($LAB_NODEDNS_LOG) that lab_nodedns_stop checks for sanitizer reports.
lab_nodedns_start() {
  local bin=$1
  shift
  LAB_NODEDNS_RUNS=$((LAB_NODEDNS_RUNS + 1))
  LAB_NODEDNS_LOG="$LAB_WORK/nodedns.$LAB_NODEDNS_RUNS.log"
  {
    printf '+ nodedns serve'
    printf ' %q' "$@"
    printf '\n'
  } >"$LAB_NODEDNS_LOG"
  nsenter --net="/run/netns/$LAB_NS_NODE" "$bin" serve --listen "$LAB_DNS_ADDR:$LAB_DNS_PORT" \
    --health "$LAB_HEALTH" "$@" >>"$LAB_NODEDNS_LOG" 2>&1 &
  LAB_NODEDNS_PID=$!
  local _
  for _ in $(seq 1 100); do
    if ! kill -0 "$LAB_NODEDNS_PID" 2>/dev/null; then
      wait "$LAB_NODEDNS_PID" 2>/dev/null
      LAB_NODEDNS_PID=""
      echo "nodedns exited at startup:" >&2
      cat "$LAB_NODEDNS_LOG" >&2
      return 1
    fi
    if lab_in "$LAB_NS_NODE" curl -sf --max-time 1 "http://$LAB_HEALTH/health" \
        >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "nodedns did not become healthy in 10 s:" >&2
  cat "$LAB_NODEDNS_LOG" >&2
  return 1
}

# lab_nodedns_alive: is the current nodedns still running?
lab_nodedns_alive() {
  [[ -n "$LAB_NODEDNS_PID" ]] && kill -0 "$LAB_NODEDNS_PID" 2>/dev/null
}

# lab_nodedns_stop: SIGTERM, wait up to 10 s (then SIGKILL). Returns 1 if it did not exit with 0
# or its log has a sanitizer report (which is then printed).
lab_nodedns_stop() {
  local pid=$LAB_NODEDNS_PID rc=0 status _
  [[ -n "$pid" ]] || return 0
  LAB_NODEDNS_PID=""
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "nodedns did not exit within 10 s of SIGTERM" >&2
    kill -KILL "$pid" 2>/dev/null
    rc=1
  fi
  wait "$pid" 2>/dev/null
  status=$?
  if [[ $status -ne 0 ]]; then
    echo "nodedns exited with status $status" >&2
    rc=1
  fi
  if lab_sanitizer_report "$LAB_NODEDNS_LOG"; then
    echo "nodedns reported a sanitizer error (log: $LAB_NODEDNS_LOG):" >&2
    grep -n -A20 -E 'ERROR: AddressSanitizer|runtime error:|ThreadSanitizer' "$LAB_NODEDNS_LOG" |
      head -60 >&2
    rc=1
  fi
  return $rc
}

# lab_sanitizer_report LOG: true if LOG has an ASan, UBSan or TSan report.
lab_sanitizer_report() {
  grep -q -E 'ERROR: AddressSanitizer|runtime error:|ThreadSanitizer' "$1" 2>/dev/null
}

# lab_metrics: the current nodedns's /metrics text.
lab_metrics() {
  lab_in "$LAB_NS_NODE" curl -sf --max-time 2 "http://$LAB_HEALTH/metrics"
}

# lab_metric_sum TEXT NAME: the sum of NAME's samples in TEXT, over all label sets (0 if absent).
lab_metric_sum() {
  awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%d\n", s }' <<<"$1"
}

# lab_metric_has TEXT NAME: true if TEXT has a sample of NAME.
lab_metric_has() {
  awk -v n="$2" '$1 == n || index($1, n "{") == 1 { f = 1 } END { exit !f }' <<<"$1"
}

# lab_upstream_delay US: makes the upstream answer US microseconds later. With sch_netem (tc
# qdisc netem on the node's veth to the upstream, egress: the requests) when the kernel has it;
# otherwise with tests/testing/udp_delay_relay.c on $LAB_RELAY_ADDR:53, which delays requests
# the same way (UDP only). Sets LAB_UPSTREAM_TARGET to the address:port nodedns must forward to
# and LAB_DELAY_METHOD to a sentence saying how. Not in a subshell: it records a process.
lab_upstream_delay() {
  local us=$1
  if lab_in "$LAB_NS_NODE" tc qdisc add dev up0 root netem delay "${us}us" 2>/dev/null; then
    LAB_DELAY_METHOD="tc netem delay ${us}us on the node's veth to the upstream (requests only)"
    LAB_UPSTREAM_TARGET="$LAB_UPSTREAM_ADDR:53"
    return 0
  fi
  cc -O2 -o "$LAB_WORK/udp_delay_relay" "$LAB_REPO/tests/testing/udp_delay_relay.c" ||
    { echo "cc udp_delay_relay failed" >&2; return 1; }
  nsenter --net="/run/netns/$LAB_NS_UP" "$LAB_WORK/udp_delay_relay" "$LAB_RELAY_ADDR:53" \
    "$LAB_UPSTREAM_ADDR:53" "$us" >"$LAB_WORK/relay.log" 2>&1 &
  LAB_PIDS+=($!)
  local _
  for _ in $(seq 1 50); do
    if lab_in "$LAB_NS_NODE" timeout 3 kdig @"$LAB_RELAY_ADDR" +norec +time=1 +retry=0 \
        api.example.com A 2>/dev/null | grep -q 'status: NOERROR'; then
      LAB_DELAY_METHOD="no sch_netem in this kernel: a userspace UDP relay"
      LAB_DELAY_METHOD+=" (tests/testing/udp_delay_relay.c) delays each request by ${us} us"
      LAB_UPSTREAM_TARGET="$LAB_RELAY_ADDR:53"
      return 0
    fi
    sleep 0.1
  done
  echo "udp_delay_relay did not start:" >&2
  cat "$LAB_WORK/relay.log" >&2
  return 1
}
