#!/usr/bin/env bash
# Builds the nodedns container image from this machine's own build, without a registry: a
# `FROM scratch` image holding the two stripped binaries, exactly the shared objects `ldd` says
# they load (the dynamic loader included), and an /etc/passwd and /etc/group with root and
# nobody (65534). Nothing else: no shell, no package manager, no CA certificates.
#
# Usage: deploy/image/build.sh [--build-dir DIR] [--tag NAME] [--output FILE.tar] [--source URL]
#   --build-dir DIR   a CMake build directory with proxy/nodedns and bench/nodedns-loadgen
#                     (default: build/ at the top of the source tree)
#   --tag NAME        the image's name (default: nodedns:dev)
#   --output FILE     also write the image as an OCI archive (podman save --format oci-archive)
#   --source URL      the org.opencontainers.image.source label (default: git's origin remote)
#
# The tree is rootfs.sh's: the library list is never written down but is what ldd reports for
# the binaries being packed, so a library the build starts linking (or stops linking) is in (or
# out of) the next image without a change here. Needs podman (root or rootless; a COPY-only build
# runs no container, so no runtime settings matter), ldd, strip and readelf. Prints the image's
# size. deploy/image/Containerfile builds an equivalent image from source on debian:12 for
# machines that can pull base images; deploy/image/README.md describes both.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
BUILD_DIR="$SRC/build"
TAG="nodedns:dev"
OUTPUT=""
SOURCE_URL=""

usage() {
  sed -n '/^# Usage:/,/^#   --source/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) [ $# -ge 2 ] || usage; BUILD_DIR=$2; shift 2 ;;
    --tag) [ $# -ge 2 ] || usage; TAG=$2; shift 2 ;;
    --output) [ $# -ge 2 ] || usage; OUTPUT=$2; shift 2 ;;
    --source) [ $# -ge 2 ] || usage; SOURCE_URL=$2; shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "build.sh: unknown argument '$1'" >&2; usage ;;
  esac
done

die() {
  echo "build.sh: $*" >&2
  exit 1
}
for tool in podman ldd strip readelf; do  # the last three for rootfs.sh
  command -v "$tool" >/dev/null || die "needs $tool (scripts/install-deps.sh installs it)"
done

NODEDNS="$BUILD_DIR/proxy/nodedns"
LOADGEN="$BUILD_DIR/bench/nodedns-loadgen"
[ -x "$NODEDNS" ] || die "no $NODEDNS: build it first (ninja -C $BUILD_DIR nodedns)"
[ -x "$LOADGEN" ] || die "no $LOADGEN: build it first (ninja -C $BUILD_DIR nodedns-loadgen;" \
  "needs -DNODEDNS_BUILD_BENCH=ON)"

# `nodedns --version` prints "nodedns X.Y.Z" (node-cache -version wants a -localip first).
VERSION=$("$NODEDNS" --version | awk '$1 == "nodedns" {print $2; exit}')
[ -n "$VERSION" ] || die "'$NODEDNS --version' printed no version"

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/nodedns-image.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
mkdir "$STAGE/root"
bash "$HERE/rootfs.sh" "$NODEDNS" "$LOADGEN" "$STAGE/root" >"$STAGE/libs" || die "rootfs.sh failed"
mapfile -t libs <"$STAGE/libs"

# OCI labels: the version as the binary reports it; the source from --source, else from the
# clone's origin remote, else none (no URL is made up).
labels=(--label "org.opencontainers.image.title=nodedns"
        --label "org.opencontainers.image.description=node-local DNS caching proxy for Kubernetes"
        --label "org.opencontainers.image.version=$VERSION")
if [ -z "$SOURCE_URL" ]; then
  SOURCE_URL=$(git -C "$SRC" remote get-url origin 2>/dev/null || true)
fi
if [ -n "$SOURCE_URL" ]; then labels+=(--label "org.opencontainers.image.source=$SOURCE_URL"); fi

# Starts as root: see deploy/image/README.md for why and how nodedns drops to 65534.
cat >"$STAGE/Containerfile" <<'EOF'
FROM scratch
COPY root/ /
USER 0:0
ENTRYPOINT ["/usr/local/bin/nodedns"]
CMD ["node-cache"]
EOF

echo "build.sh: $TAG from $BUILD_DIR (nodedns $VERSION, ${#libs[@]} shared objects)"
podman build --quiet --format oci "${labels[@]}" --tag "$TAG" --file "$STAGE/Containerfile" \
  "$STAGE" >/dev/null
if [ -n "$OUTPUT" ]; then
  rm -f "$OUTPUT"
  podman save --quiet --format oci-archive --output "$OUTPUT" "$TAG"
  echo "build.sh: wrote $OUTPUT ($(du -k "$OUTPUT" | cut -f1) KiB)"
fi
size=$(podman image inspect --format '{{.Size}}' "$TAG")
echo "build.sh: $TAG: $size bytes ($(( (size + 1023) / 1024 )) KiB)"
for lib in "${libs[@]}"; do echo "  $lib"; done
