#!/usr/bin/env bash
# SC2015: `[[ ... ]] && ok ... || fail ...` is meant, ok only echoes. SC2317: the traps' functions.
# shellcheck disable=SC2015,SC2317
# Test of the container image made by deploy/image/build.sh (deploy/image/README.md).
#
# Usage: image_test.sh --build-dir DIR [--image NAME]
#   --build-dir DIR  the CMake build directory whose proxy/nodedns and bench/nodedns-loadgen the
#                    image is built from (and compared with)
#   --image NAME     test this already-built image instead of building one (it is not removed);
#                    the image must have been built by build.sh from the binaries in DIR
#
# Builds the image with build.sh under a tag of its own, then checks, with podman:
#   1. config: entrypoint /usr/local/bin/nodedns, cmd node-cache, user root, OCI title and version
#      labels (the version is what the build's `nodedns --version` prints);
#   2. contents, read from `podman image mount`: exactly the two binaries, stripped, /etc/passwd,
#      /etc/group, and the shared objects ldd lists for the build's binaries (loader included),
#      each identical to the host's file; nothing else. /etc/passwd has nobody as 65534:65534 and
#      /etc/group has gid 65534;
#   3. the binaries run inside (so every object they load is there): `node-cache -localip ...
#      -version`, `--version` and `--help` of nodedns print what the build's binary prints, and
#      so does `--help` of nodedns-loadgen as the entrypoint, with --network none;
#   4. a DNS round trip: in a private network namespace (unshare -n, loopback only), knotd serves a
#      zone on 127.0.0.1, the container runs `nodedns serve` with --network host (the namespace's)
#      forwarding to it, and kdig gets the zone's address through nodedns, twice (the second from
#      the cache: nodedns_cache_hits_total on /metrics), and GET /health answers 200; `podman
#      stop` then ends nodedns with exit 0.
# Everything started is removed on every exit path (trap): the container, knotd, the mount, the
# image (unless --image), the temporary directory. Every command that could hang has a timeout.
#
# Needs root (podman image mount, unshare -n), podman, runc, knotd, kdig and curl; exits 77 (ctest
# SKIP_RETURN_CODE) without them. When CONTAINERS_CONF is not set it points podman at a
# containers.conf of its own: runc as the runtime and no default ulimits, because podman's
# defaults (nofile and nproc raised to 1048576 and more) fail where root lacks CAP_SYS_RESOURCE,
# e.g. inside another container. About 10 s.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
BUILD_SH="$SRC/deploy/image/build.sh"

# ---------------------------------------------------------------------------------------------
# The DNS round trip, run as `image_test.sh --netns-phase IMAGE WORK NAME` inside `unshare -n`.
if [[ ${1:-} == --netns-phase ]]; then
  IMAGE=$2 WORK=$3 NAME=$4
  fail() {
    echo "FAIL: $*"
    exit 1
  }
  knot_pid=""
  cleanup_inner() {
    timeout 20 podman rm -f -t 2 "$NAME" >/dev/null 2>&1
    if [[ -n $knot_pid ]]; then kill "$knot_pid" 2>/dev/null; wait "$knot_pid" 2>/dev/null; fi
  }
  trap cleanup_inner EXIT
  trap 'exit 143' TERM INT HUP
  ip link set lo up || fail "ip link set lo up"
  # Ports in a fresh namespace are free; random ones all the same, so that nothing in the test
  # depends on a fixed number.
  KNOT_PORT=$((20000 + RANDOM % 10000))
  DNS_PORT=$((KNOT_PORT + 1))
  HEALTH_PORT=$((KNOT_PORT + 2))
  mkdir -p "$WORK/knot/run" "$WORK/knot/db"
  cat >"$WORK/knot/image.test.zone" <<'EOF'
$ORIGIN image.test.
$TTL 300
@ SOA ns hostmaster 1 3600 600 86400 300
@ NS ns
ns A 192.0.2.1
www A 192.0.2.53
EOF
  cat >"$WORK/knot/knot.conf" <<EOF
server:
  listen: 127.0.0.1@$KNOT_PORT
  rundir: $WORK/knot/run
  background-workers: 1
  udp-workers: 1
  tcp-workers: 1
database:
  storage: $WORK/knot/db
log:
  - target: stderr
    any: warning
zone:
  - domain: image.test
    file: $WORK/knot/image.test.zone
    zonefile-sync: -1
    journal-content: none
EOF
  knotd -c "$WORK/knot/knot.conf" >"$WORK/knotd.log" 2>&1 &
  knot_pid=$!
  echo "$knot_pid" >"$WORK/knotd.pid"
  ask() {  # ask PORT: the A records of www.image.test from 127.0.0.1:PORT, one try of 2 s
    timeout 5 kdig +short +timeout=2 +retry=0 @127.0.0.1 -p "$1" www.image.test A 2>/dev/null
  }
  for _ in $(seq 50); do
    [[ $(ask "$KNOT_PORT") == 192.0.2.53 ]] && break
    kill -0 "$knot_pid" 2>/dev/null || { cat "$WORK/knotd.log"; fail "knotd exited"; }
    sleep 0.2
  done
  if [[ $(ask "$KNOT_PORT") != 192.0.2.53 ]]; then
    cat "$WORK/knotd.log"
    fail "knotd does not answer"
  fi

  timeout 60 podman run -d --name "$NAME" --network host "$IMAGE" serve \
    --listen "127.0.0.1:$DNS_PORT" --forward ".=127.0.0.1:$KNOT_PORT" --workers 1 \
    --health "127.0.0.1:$HEALTH_PORT" >/dev/null || fail "podman run -d ... serve"
  got=""
  for _ in $(seq 50); do
    got=$(ask "$DNS_PORT")
    [[ $got == 192.0.2.53 ]] && break
    [[ $(podman inspect --format '{{.State.Running}}' "$NAME" 2>/dev/null) == true ]] || break
    sleep 0.2
  done
  if [[ $got != 192.0.2.53 ]]; then
    timeout 10 podman logs "$NAME" 2>&1 | tail -20
    fail "www.image.test through nodedns in the container: got '$got', want 192.0.2.53"
  fi
  echo "ok: www.image.test A 192.0.2.53 through nodedns in the container"
  got=$(ask "$DNS_PORT")
  [[ $got == 192.0.2.53 ]] || fail "second query: got '$got', want 192.0.2.53"
  echo "ok: second query answered"
  code=$(timeout 10 curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HEALTH_PORT/health")
  [[ $code == 200 ]] || fail "GET /health: HTTP '$code', want 200"
  echo "ok: GET /health 200"
  hits=$(timeout 10 curl -s "http://127.0.0.1:$HEALTH_PORT/metrics" |
    awk '$1 == "nodedns_cache_hits_total" {print $2}')
  [[ $hits =~ ^[0-9]+$ && $hits -ge 1 ]] || fail "nodedns_cache_hits_total is '$hits', want >= 1"
  echo "ok: the second answer came from the cache (nodedns_cache_hits_total $hits)"
  timeout 30 podman stop -t 10 "$NAME" >/dev/null || fail "podman stop"
  rc=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
  if [[ $rc != 0 ]]; then
    timeout 10 podman logs "$NAME" 2>&1 | tail -20
    fail "nodedns exit $rc on SIGTERM"
  fi
  echo "ok: nodedns exited 0 on podman stop"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
BUILD_DIR="" IMAGE=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    --image) IMAGE=$2; shift 2 ;;
    *) echo "usage: image_test.sh --build-dir DIR [--image NAME]"; exit 2 ;;
  esac
done
[[ -n $BUILD_DIR ]] || { echo "usage: image_test.sh --build-dir DIR [--image NAME]"; exit 2; }

skip() {
  echo "SKIP: $*"
  exit 77
}
[[ $(id -u) -eq 0 ]] || skip "needs root (podman image mount, unshare -n)"
for t in podman runc knotd kdig curl unshare ip ldd readelf strip timeout; do
  command -v "$t" >/dev/null || skip "missing $t (scripts/install-deps.sh installs it)"
done
NODEDNS="$BUILD_DIR/proxy/nodedns"
LOADGEN="$BUILD_DIR/bench/nodedns-loadgen"
[[ -x $NODEDNS && -x $LOADGEN ]] || { echo "FAIL: no $NODEDNS or $LOADGEN"; exit 1; }

FAILS=0
fail() {
  echo "FAIL: $*"
  FAILS=$((FAILS + 1))
}
ok() { echo "ok: $*"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nodedns-image-test.XXXXXX")
OWN_IMAGE=0
NAME="nodedns-image-test-$$"
MOUNTED=0
cleanup() {
  timeout 20 podman rm -f -t 2 "$NAME" >/dev/null 2>&1
  if [[ -f $WORK/knotd.pid ]]; then kill "$(cat "$WORK/knotd.pid")" 2>/dev/null; fi
  if [[ $MOUNTED -eq 1 ]]; then timeout 20 podman image unmount "$IMAGE" >/dev/null 2>&1; fi
  if [[ $OWN_IMAGE -eq 1 ]]; then timeout 30 podman rmi -f "$IMAGE" >/dev/null 2>&1; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

if [[ -z ${CONTAINERS_CONF:-} ]]; then
  cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
EOF
  export CONTAINERS_CONF="$WORK/containers.conf"
fi

START=$SECONDS
if [[ -z $IMAGE ]]; then
  IMAGE="localhost/nodedns-image-test:$$"
  OWN_IMAGE=1
  timeout 120 bash "$BUILD_SH" --build-dir "$BUILD_DIR" --tag "$IMAGE" ||
    { echo "FAIL: build.sh"; exit 1; }
fi

# 1. Config and labels.
# node-cache checks -localip before it looks at -version, as NodeLocal DNSCache does.
want_nc_version=$("$NODEDNS" node-cache -localip 169.254.20.10 -version)
want_version_line=$("$NODEDNS" --version)
want_version=$(awk '$1 == "nodedns" {print $2; exit}' <<<"$want_version_line")
inspect() { timeout 20 podman image inspect --format "$1" "$IMAGE"; }
[[ $(inspect '{{json .Config.Entrypoint}}') == '["/usr/local/bin/nodedns"]' ]] &&
  ok "entrypoint" || fail "entrypoint is $(inspect '{{json .Config.Entrypoint}}')"
[[ $(inspect '{{json .Config.Cmd}}') == '["node-cache"]' ]] &&
  ok "cmd" || fail "cmd is $(inspect '{{json .Config.Cmd}}')"
user=$(inspect '{{.Config.User}}')
[[ -z $user || $user == 0 || $user == 0:0 || $user == root ]] &&
  ok "starts as root ('$user')" || fail "user is '$user', want root"
[[ $(inspect '{{index .Labels "org.opencontainers.image.title"}}') == nodedns ]] &&
  ok "title label" || fail "title label"
got=$(inspect '{{index .Labels "org.opencontainers.image.version"}}')
[[ -n $want_version && $got == "$want_version" ]] &&
  ok "version label $got" || fail "version label '$got', want '$want_version'"

# 2. Contents.
expected() {
  printf '%s\n' usr/local/bin/nodedns usr/local/bin/nodedns-loadgen etc/passwd etc/group
  for bin in "$NODEDNS" "$LOADGEN"; do
    ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
      sed 's|^/||'
  done
}
expected | sort -u >"$WORK/expected"
if ! MNT=$(timeout 30 podman image mount "$IMAGE") || [[ ! -d $MNT ]]; then
  fail "podman image mount $IMAGE"
else
  MOUNTED=1
  (cd "$MNT" && find . -mindepth 1 ! -type d -printf '%P\n' | sort) >"$WORK/actual"
  if diff -u "$WORK/expected" "$WORK/actual" >"$WORK/files.diff"; then
    ok "exactly $(wc -l <"$WORK/actual") files: the binaries, passwd, group, ldd's objects"
  else
    fail "the image's files differ from the expected list (- expected, + in the image):"
    sed -n '3,$p' "$WORK/files.diff" | grep '^[-+]'
  fi
  (cd "$MNT" && find . -mindepth 1 ! -type d ! -type f -printf '%P\n') >"$WORK/nonregular"
  [[ -s $WORK/nonregular ]] && fail "not regular files: $(tr '\n' ' ' <"$WORK/nonregular")"
  while read -r f; do
    case $f in usr/local/bin/* | etc/*) continue ;; esac
    [[ -f $MNT/$f ]] || continue
    cmp -s "/$f" "$MNT/$f" || fail "/$f differs from the host's"
  done <"$WORK/expected"
  for b in nodedns nodedns-loadgen; do
    f="$MNT/usr/local/bin/$b"
    if [[ ! -x $f ]]; then
      fail "/usr/local/bin/$b missing or not executable"
    elif readelf -S "$f" | grep -qE '\.(symtab|debug_info)'; then
      fail "/usr/local/bin/$b is not stripped"
    fi
  done
  grep -qx 'nobody:x:65534:65534:[^:]*:[^:]*:[^:]*' "$MNT/etc/passwd" &&
    ok "/etc/passwd: nobody 65534:65534" || fail "/etc/passwd has no nobody 65534:65534"
  grep -qx 'root:x:0:0:[^:]*:[^:]*:[^:]*' "$MNT/etc/passwd" || fail "/etc/passwd has no root"
  grep -qE '^[a-z]+:x:65534:' "$MNT/etc/group" && ok "/etc/group: gid 65534" ||
    fail "/etc/group has no gid 65534"
  timeout 20 podman image unmount "$IMAGE" >/dev/null && MOUNTED=0
fi

# 3. The binaries run inside: every object they load is in the image.
run() { timeout 60 podman run --rm --network none "$@" 2>&1; }
out=$(run "$IMAGE" node-cache -localip 169.254.20.10 -version)
[[ $out == "$want_nc_version" ]] && ok "node-cache -version: $out" ||
  fail "node-cache -version printed '$out', want '$want_nc_version'"
out=$(run "$IMAGE" --version)
[[ $out == "$want_version_line" ]] && ok "--version: $out" ||
  fail "--version printed '$out', want '$want_version_line'"
out=$(run "$IMAGE" --help)
[[ $? -eq 0 && $out == *serve* && $out == *node-cache* ]] && ok "nodedns --help" ||
  fail "nodedns --help: $(head -5 <<<"$out")"
out=$(run --entrypoint /usr/local/bin/nodedns-loadgen "$IMAGE" --help)
[[ $? -eq 0 && $out == *Usage* ]] && ok "nodedns-loadgen --help" ||
  fail "nodedns-loadgen --help: $(head -5 <<<"$out")"

# 4. DNS round trip in a private network namespace.
if ! timeout -k 5 90 unshare --net -- \
  bash "${BASH_SOURCE[0]}" --netns-phase "$IMAGE" "$WORK" "$NAME"; then
  fail "DNS round trip (see above)"
fi

echo "image test: $FAILS failure(s), $((SECONDS - START)) s"
[[ $FAILS -eq 0 ]]
