#!/usr/bin/env bash
# Lays out the nodedns image's whole file tree in an empty directory: the two binaries, stripped,
# in /usr/local/bin; exactly the shared objects `ldd` says they load, the dynamic loader included,
# each at the path the loader resolved it to; an /etc/passwd and /etc/group with root and nobody
# (65534). Used by build.sh (on this machine) and by the Containerfile's build stage, so that both
# images hold the same tree.
#
# Usage: deploy/image/rootfs.sh NODEDNS NODEDNS_LOADGEN OUTDIR
# Prints the shared objects it copied, one per line. Needs ldd, strip and readelf.
#
# No library is named here: a library the build starts linking (or stops linking) is in (or out
# of) the next tree without a change. Nothing is dlopen'ed at run time: nodedns resolves no names
# through NSS (no getaddrinfo, getpwnam...; its upstreams are addresses), and glibc >= 2.34 has
# the "files" and "dns" NSS backends built in anyway, so getpwnam() on the /etc/passwd below works
# without an nsswitch.conf or a libnss_*.so. libgcc_s, which glibc loads for unwinding, is linked
# by libstdc++ and so in ldd's list.
set -euo pipefail

die() {
  echo "rootfs.sh: $*" >&2
  exit 1
}
[ $# -eq 3 ] || die "usage: rootfs.sh NODEDNS NODEDNS_LOADGEN OUTDIR"
NODEDNS=$1 LOADGEN=$2 ROOT=$3
for tool in ldd strip readelf; do
  command -v "$tool" >/dev/null || die "needs $tool"
done
[ -x "$NODEDNS" ] || die "$NODEDNS is not an executable"
[ -x "$LOADGEN" ] || die "$LOADGEN is not an executable"
if [ ! -d "$ROOT" ] || [ -n "$(ls -A "$ROOT")" ]; then die "$ROOT must be an empty directory"; fi

umask 022
mkdir -p "$ROOT/usr/local/bin" "$ROOT/etc"

# The binaries without their symbols (a RelWithDebInfo nodedns is mostly DWARF).
strip --strip-unneeded -o "$ROOT/usr/local/bin/nodedns" "$NODEDNS"
strip --strip-unneeded -o "$ROOT/usr/local/bin/nodedns-loadgen" "$LOADGEN"

# ldd lists the whole closure (libraries of libraries) at the paths the loader resolved them to,
# and the loader by the path written in the binary (PT_INTERP, also read with readelf in case ldd
# words it differently). Each file is copied to that same path, dereferenced, so the loader finds
# it in the image through its built-in search path (Debian's includes /lib/<multiarch>) without
# an ld.so.cache. linux-vdso has no file; "not found" is an error here rather than a container
# that cannot start.
libs=()
for bin in "$NODEDNS" "$LOADGEN"; do
  out=$(ldd "$bin") || die "ldd $bin failed"
  if grep -q 'not found' <<<"$out"; then
    die "ldd $bin: a library is missing on this machine:"$'\n'"$out"
  fi
  while read -r path; do libs+=("$path"); done < <(
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out")
  interp=$(readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
  [ -n "$interp" ] || die "$bin has no program interpreter (not dynamically linked?)"
  libs+=("$interp")
done
mapfile -t libs < <(printf '%s\n' "${libs[@]}" | sort -u)
for lib in "${libs[@]}"; do
  mkdir -p "$ROOT$(dirname "$lib")"
  cp -L "$lib" "$ROOT$lib"
  echo "$lib"
done

# root, which the container starts as (node setup needs CAP_NET_ADMIN), and nobody, which nodedns
# drops to once its sockets are bound and the node is set up.
cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
