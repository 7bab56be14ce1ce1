#!/usr/bin/env bash
# Runs the nodedns binary with a rendered DaemonSet's arguments and ConfigMap, the way the pod
# would, as root in a private network namespace (unshare --net): the node-local-dns ConfigMap's
# Corefile as -basecorefile, an empty
# directory for the optional kube-dns ConfigMap, KUBE_DNS_UPSTREAM_SERVICE_HOST as kubelet sets
# it. Then checks that nodedns started, put the -localip addresses on the nodelocaldns interface
# (-setupinterface, as in the DaemonSet) and NOTRACK rules for each in table inet nodedns
# (-setupiptables), dropped to uid 65534, listens on each of them on port 53 (UDP and TCP),
# answers the liveness and readiness probes' URLs, generated a Corefile whose every bind lists
# exactly the -localip addresses, sized its cache as check_manifests.py computes, and exits 0 on
# SIGTERM; listens for the next pod at -handover (a socket there).
# Changed from the DaemonSet: -conf, -basecorefile and -handover's directory point into a
# temporary directory.
# The interface is created beforehand as a bridge: this kernel has no dummy driver.
# Usage: nodedns_rendered_args_test.sh NODEDNS RENDERED.yaml
set -euo pipefail
nodedns=$1
rendered=$2
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "skip: needs root (a network namespace, and a real uid 65534 to drop to)"
  exit 77
fi
if [ "${NODEDNS_IN_NETNS:-}" != 1 ]; then
  exec env NODEDNS_IN_NETNS=1 unshare --net -- "$0" "$@"
fi
tmp=$(mktemp -d)
chmod 755 "$tmp"  # ConfigMap volumes are world-readable; nodedns reads them as uid 65534
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$tmp/log" ] && sed 's/^/nodedns: /' "$tmp/log" >&2; exit 1; }

mkdir -p "$tmp/coredns" "$tmp/kube-dns" "$tmp/conf" "$tmp/run"
# The DaemonSet's args (one a line) and the ConfigMap's Corefile, from the rendered output.
python3 - "$rendered" "$tmp" <<'PY'
import sys, yaml
rendered, tmp = sys.argv[1:]
objs = [o for o in yaml.safe_load_all(open(rendered)) if o]
ds = next(o for o in objs if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "node-local-dns")
cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "node-local-dns")
c = ds["spec"]["template"]["spec"]["containers"][0]
assert c["command"][1:] == ["node-cache"], c["command"]
open(f"{tmp}/args", "w").write("\n".join(c["args"]) + "\n")
open(f"{tmp}/coredns/Corefile.base", "w").write(cm["data"]["Corefile"])
PY
args=()
localip=
handover=
prev=
while IFS= read -r a; do
  case "$prev" in
    -conf) a=$tmp/conf/Corefile ;;
    -basecorefile) a=$tmp/coredns/Corefile.base ;;
    -handover) handover=$tmp/run/${a##*/} a=$handover ;;
    -localip) localip=$a ;;
  esac
  args+=("$a")
  prev=$a
done <"$tmp/args"
[ -n "$localip" ] || fail "no -localip in the rendered args"
[ -n "$handover" ] || fail "no -handover in the rendered args"
args+=(-kubednscm "$tmp/kube-dns")

ip link set lo up
ip link add nodelocaldns type bridge
# Routes for the upstreams (10.96.0.11, /etc/resolv.conf's), so that they start as reachable
# upstreams rather than unrouted ones (docs/reliability.md, "Upstream failure"). Nothing answers
# there; the probes and the listening sockets do not need it.
ip route add default dev lo
ip -6 route add default dev lo 2>/dev/null || true
KUBE_DNS_UPSTREAM_SERVICE_HOST=10.96.0.11 "$nodedns" node-cache "${args[@]}" >"$tmp/log" 2>&1 &
pid=$!
ready=
for _ in $(seq 100); do
  kill -0 "$pid" 2>/dev/null || { wait "$pid" || true; fail "nodedns exited at start"; }
  if curl -sf -o /dev/null --max-time 1 http://169.254.20.10:8181/ready; then ready=1; break; fi
  sleep 0.1
done
[ -n "$ready" ] || fail "GET http://169.254.20.10:8181/ready never answered 200"
curl -sf -o /dev/null --max-time 2 http://169.254.20.10:8080/health ||
  fail "GET http://169.254.20.10:8080/health is not 200"

IFS=, read -r -a ips <<<"$localip"
rules=$(nft list table inet nodedns)
uid=$(awk '/^Uid:/ {print $2 $3 $4 $5}' "/proc/$pid/status")
[ "$uid" = 65534655346553465534 ] || fail "nodedns runs as uid '$uid', not 65534"
# Whole outputs first: `cmd | grep -q` under pipefail fails when grep quits before cmd ends.
addrs=$(ip -o addr show dev nodelocaldns | awk '{print $4}')
udp=$(ss -Hlnu | awk '{print $4}')
tcp=$(ss -Hlnt | awk '{print $4}')
for a in "${ips[@]}"; do
  case "$a" in *:*) p=128 b="[$a]:53" ;; *) p=32 b="$a:53" ;; esac
  grep -qxF -- "$a/$p" <<<"$addrs" || fail "$a/$p not on nodelocaldns: $addrs"
  grep -qF -- "$a" <<<"$rules" || fail "no NOTRACK rule for $a: $rules"
  grep -qxF -- "$b" <<<"$udp" || fail "no UDP socket on $b"
  grep -qxF -- "$b" <<<"$tcp" || fail "no TCP socket on $b"
done
want=$(printf '%s\n' "${ips[@]}" | sort | tr '\n' ' ')
n=0
while read -r -a words; do
  got=$(printf '%s\n' "${words[@]:1}" | sort | tr '\n' ' ')
  [ "$got" = "$want" ] || fail "generated Corefile: 'bind ${words[*]:1}', want -localip $localip"
  n=$((n + 1))
done < <(grep -E '^\s*bind\s' "$tmp/conf/Corefile")
[ "$n" -ge 4 ] || fail "generated Corefile has $n bind lines"

# The cache size nodedns derived from the Corefile, against check_manifests.py's formula.
budget=$(python3 "$here/check_manifests.py" daemonset "$rendered" --localip "$localip" |
  sed -n 's/.*budget \([0-9]*\) B.*/\1/p')
metrics=$(curl -sf --max-time 2 http://127.0.0.1:9253/metrics)
capacity=$(awk '$1 == "nodedns_cache_capacity_bytes" {print $2}' <<<"$metrics")
[ -n "$budget" ] && [ "$capacity" = "$budget" ] ||
  fail "nodedns_cache_capacity_bytes is '$capacity', check_manifests.py computes '$budget'"

rss=$(awk '/^VmRSS:/ {print $2 " " $3}' "/proc/$pid/status")
# The handover listener for the next pod, bound before the drop to uid 65534, and counted as
# no failure.
[ -S "$handover" ] || fail "no handover socket at $handover (-handover)"
failures=$(awk '$1 == "nodedns_handover_failures_total" {print $2}' <<<"$metrics")
[ "$failures" = 0 ] || fail "nodedns_handover_failures_total is '$failures'"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" -eq 0 ] || fail "nodedns exited $rc on SIGTERM"
! nft list table inet nodedns >/dev/null 2>&1 || fail "table inet nodedns is left after SIGTERM"
echo "ok: nodedns node-cache ${args[*]}"
echo "ok: listening on $localip, cache $capacity bytes, idle RSS $rss"
