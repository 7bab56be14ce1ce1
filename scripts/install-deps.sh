#!/usr/bin/env bash
# Installs everything nodedns needs to build, test and benchmark on Debian 12 (idempotent).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(
  build-essential cmake ninja-build pkg-config git
  libuv1-dev libldns-dev libabsl-dev libcli11-dev libnl-3-dev libnl-route-3-dev libnftables-dev libcap-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  knot knot-dnsutils ldnsutils dnsperf musl-tools iproute2 util-linux procps python3 curl
  nftables iptables conntrack
  dnsdist unbound dnsmasq-base pdns-recursor gnuplot-nox
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
