#!/usr/bin/env bash
# Integration test for the audit's walk simulation (audit/walk.h): runs real getaddrinfo() clients
# built against glibc (cc) and musl (musl-gcc -static) against a Knot DNS server in a private
# network namespace, counts the queries each sends with knotd's mod-stats, and compares the
# counts (A, AAAA, NXDOMAIN, NOERROR) with the simulation printed by walk_sim_tool.
#
# Usage: walk_integration_test.sh WALK_SIM_TOOL
# Needs root (ip netns, unshare -m, bind mounts over /etc/resolv.conf inside a private mount
# namespace only). Exits 77 (ctest SKIP_RETURN_CODE) when that is not possible.
set -uo pipefail

SIM=${1:?usage: walk_integration_test.sh WALK_SIM_TOOL}

skip() {
  echo "SKIP: $*"
  exit 77
}

[[ $(id -u) -eq 0 ]] || skip "needs root for ip netns and unshare -m"
for tool in knotd knotc ip unshare mount musl-gcc cc timeout; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed"
done
[[ -x "$SIM" ]] || { echo "FAIL: walk_sim_tool '$SIM' is not executable"; exit 1; }

NS="nodedns-audit-$$"
WORK=$(mktemp -d /tmp/nodedns-audit-it.XXXXXX)
KNOT_PID=""

cleanup() {
  if [[ -n "$KNOT_PID" ]]; then
    kill "$KNOT_PID" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$KNOT_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$KNOT_PID" 2>/dev/null
  fi
  ip netns del "$NS" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$NS" 2>/dev/null || skip "cannot create a network namespace here"
ip -n "$NS" link set lo up

# --- The zone: everything lives in one root zone so that every name gets an authoritative
# answer (NXDOMAIN rather than REFUSED). Names below must match FACTS.
mkdir -p "$WORK/run" "$WORK/db"
cat >"$WORK/root.zone" <<'EOF'
$ORIGIN .
$TTL 60
@ SOA ns.invalid. hostmaster.invalid. 1 3600 600 86400 60
@ NS ns.invalid.
kubernetes.default.svc.cluster.local. A 10.96.0.1
api.example.com. A 192.0.2.10
; exists without addresses: NOERROR with an empty answer (NODATA) for A and AAAA
nodatatest.default.svc.cluster.local. TXT "no address here"
nodatatest.svc.cluster.local. A 10.96.0.2
EOF
cat >"$WORK/facts" <<'EOF'
kubernetes.default.svc.cluster.local answer
api.example.com answer
nodatatest.default.svc.cluster.local nodata
nodatatest.svc.cluster.local answer
EOF
cat >"$WORK/knot.conf" <<EOF
server:
  rundir: $WORK/run
  listen: 127.0.0.1@53
log:
  - target: stderr
    any: error
database:
  storage: $WORK/db
mod-stats:
  - id: counts
    query-type: on
    response-code: on
template:
  - id: default
    storage: $WORK
    global-module: mod-stats/counts
zone:
  - domain: .
    file: root.zone
EOF

ip netns exec "$NS" knotd -c "$WORK/knot.conf" >"$WORK/knotd.log" 2>&1 &
KNOT_PID=$!
ready=0
for _ in $(seq 1 50); do
  if ip netns exec "$NS" knotc -s "$WORK/run/knot.sock" zone-status . >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
if [[ $ready -ne 1 ]]; then
  echo "FAIL: knotd did not start"
  cat "$WORK/knotd.log"
  exit 1
fi

# --- The clients: the same getaddrinfo(AF_UNSPEC) program (tests/testing/getaddrinfo_client.c)
# against each libc. No AI_ADDRCONFIG, so both always ask A and AAAA (getent ahosts sets
# AI_ADDRCONFIG, which drops AAAA in a namespace without a non-loopback IPv6 address).
CLIENT_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../testing" && pwd)/getaddrinfo_client.c"
cc -O1 -o "$WORK/client-glibc" "$CLIENT_SRC" || { echo "FAIL: cc"; exit 1; }
musl-gcc -static -O1 -o "$WORK/client-musl" "$CLIENT_SRC" || { echo "FAIL: musl-gcc"; exit 1; }
printf 'hosts: files dns\n' >"$WORK/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$WORK/hosts"

# Prints "A AAAA NXDOMAIN NOERROR" counters from mod-stats.
counters() {
  ip netns exec "$NS" knotc -s "$WORK/run/knot.sock" stats mod-stats | awk '
    /query-type\[A\] /     { a = $3 }
    /query-type\[AAAA\] /  { aaaa = $3 }
    /response-code\[NXDOMAIN\] / { nx = $3 }
    /response-code\[NOERROR\] /  { ok = $3 }
    END { printf "%d %d %d %d\n", a, aaaa, nx, ok }'
}

# Runs one client in the namespace with its own /etc/resolv.conf; prints the counter deltas as
# "total=N nxdomain=N noerror=N".
measure() {
  local client=$1 name=$2
  local a0 q0 nx0 ok0 a1 q1 nx1 ok1
  read -r a0 q0 nx0 ok0 < <(counters)
  ip netns exec "$NS" unshare -m sh -c "
    mount --make-rprivate / &&
    mount --bind '$WORK/resolv.conf' /etc/resolv.conf &&
    mount --bind '$WORK/nsswitch.conf' /etc/nsswitch.conf &&
    mount --bind '$WORK/hosts' /etc/hosts &&
    exec timeout 20 '$WORK/client-$client' '$name'" >"$WORK/client.out" 2>&1
  read -r a1 q1 nx1 ok1 < <(counters)
  echo "total=$(((a1 - a0) + (q1 - q0))) nxdomain=$((nx1 - nx0)) noerror=$((ok1 - ok0))"
}

K8S_SEARCH="search default.svc.cluster.local svc.cluster.local cluster.local"
pass=0
fail=0
# Each case: resolv.conf options line | name.
while IFS='|' read -r options name; do
  printf '%s\nnameserver 127.0.0.1\noptions %s\n' "$K8S_SEARCH" "$options" >"$WORK/resolv.conf"
  sim=$("$SIM" "$WORK/resolv.conf" "$WORK/facts" "$name") || { echo "FAIL: walk_sim_tool"; exit 1; }
  for libc in glibc musl; do
    expected=$(awk -v r="$libc" '$1 == r { print $2, $3, $4 }' <<<"$sim")
    walk=$(awk -v r="$libc" '$1 == r { print $5 }' <<<"$sim")
    actual=$(measure "$libc" "$name")
    if [[ "$expected" == "$actual" ]]; then
      pass=$((pass + 1))
      echo "ok   $libc options '$options' name '$name': $actual"
    else
      fail=$((fail + 1))
      echo "FAIL $libc options '$options' name '$name': simulated [$expected] ($walk)," \
        "measured [$actual], client said: $(cat "$WORK/client.out")"
    fi
  done
done <<'EOF'
ndots:5|kubernetes
ndots:5|kubernetes.default
ndots:5|api.example.com
ndots:5|api.example.com.
ndots:2|api.example.com
ndots:2|kubernetes.default.svc
ndots:5|nodatatest
ndots:5|doesnotexist
ndots:5 no-aaaa|api.example.com
ndots:5 single-request-reopen|api.example.com
ndots:30|kubernetes.default.svc.cluster.local
EOF

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
