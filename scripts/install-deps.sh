#!/usr/bin/env bash
# Installs everything nodedns needs to build, test and benchmark on Debian 12 (idempotent).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(
  build-essential cmake ninja-build pkg-config git
  libuv1-dev libldns-dev libabsl-dev libcli11-dev libnl-3-dev libnl-route-3-dev libnftables-dev libcap-dev
  libip4tc-dev libip6tc-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  knot knot-dnsutils ldnsutils dnsperf musl-tools iproute2 util-linux procps python3 curl
  nftables iptables conntrack
  dnsdist unbound dnsmasq-base pdns-recursor gnuplot-nox
  yamllint nodejs python3-yaml
  # deploy/image/build.sh and tests/deploy/image_test.sh, as root: podman builds and runs the
  # image with runc (named, else apt picks crun); rootless extras (uidmap, slirp4netns,
  # fuse-overlayfs) and the buildah CLI are not needed.
  podman runc
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  # Debian starts some servers (knot) on install where an init system runs; nodedns's tests start
  # their own instances on other ports, so policy-rc.d keeps the packaged services from starting.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# npm: Debian's package, unless the installed nodejs brings its own (NodeSource's does, and
# conflicts with Debian's npm).
if ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm
fi
# The Kubernetes manifests' schema check (tests/deploy): kubernetes-models and yaml as
# deploy/kubernetes/test/package-lock.json pins them. npm ci starts from scratch each time, so
# it runs only when the lock file changed since the last install.
models="$(cd "$(dirname "$0")/.." && pwd)/deploy/kubernetes/test"
stamp="$models/node_modules/.nodedns-lock.sha256"
want=$(sha256sum "$models/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "npm ci in $models"
  (cd "$models" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
fi
# kubectl renders the manifests (kubectl kustomize, offline). Debian 12 has none recent enough:
# its kubernetes-client is 1.20, whose kustomize lacks `replacements`. Say so rather than fail.
if ! kubectl version --client 2>/dev/null | grep -Eq '^Kustomize Version: v([5-9]|[1-9][0-9])'; then
  echo "note: no kubectl >= 1.27 on PATH: the deploy tests (ctest -L deploy) need one" \
    "(https://kubernetes.io/docs/tasks/tools/); Debian's kubernetes-client is too old" >&2
fi
