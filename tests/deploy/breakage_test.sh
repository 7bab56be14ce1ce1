#!/usr/bin/env bash
# Shows that the checks catch what they are for: breaks a rendered manifest in one place at a
# time and expects validate.mjs (schema) or check_manifests.py (properties) to fail, naming
# the problem. A check that let one of these through would be a check that checks nothing.
# Usage: breakage_test.sh SOURCE_DIR RENDERED_DIR
set -euo pipefail
src=$1
rendered=$2
validate=$src/deploy/kubernetes/test/validate.mjs
props=$src/tests/deploy/check_manifests.py
ok=$rendered/overlays-iptables.yaml
localip=169.254.20.10,10.96.0.10
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
# expect NAME WANT_IN_OUTPUT SED_EXPRESSION CHECK...
expect() {
  local name=$1 want=$2 expr=$3
  shift 3
  sed -e "$expr" "$ok" >"$tmp/broken.yaml"
  if cmp -s "$ok" "$tmp/broken.yaml"; then
    echo "FAIL $name: the sed expression changed nothing"; failed=1; return
  fi
  local rc=0
  "$@" "$tmp/broken.yaml" >"$tmp/out" 2>&1 || rc=$?
  if [ "$rc" -ne 1 ] || ! grep -qF -- "$want" "$tmp/out"; then
    echo "FAIL $name: exit $rc, want 1 and '$want' in:"; sed 's/^/  /' "$tmp/out"; failed=1
  else
    echo "ok   $name: $(grep -F -- "$want" "$tmp/out" | head -1)"
  fi
}
schema() { node "$validate" "$@"; }
properties() { python3 "$props" daemonset "$1" --localip "$localip"; }
# The unbroken file passes both, or the rest means nothing.
schema "$ok" >/dev/null
properties "$ok" >/dev/null
expect misspelt-field "/spec/template/spec/hostNetwrok: not a field" \
  's/hostNetwork:/hostNetwrok:/' schema
expect misspelt-nested-field "/rollingUpdate/maxSurg: not a field" \
  's/maxSurge:/maxSurg:/' schema
expect port-wrong-type "/livenessProbe/httpGet/port must be" \
  's/port: 8080/port: [8080]/' schema
expect bool-wrong-type "/spec/template/spec/hostNetwork must be boolean" \
  's/hostNetwork: true/hostNetwork: "yes"/' schema
expect unknown-kind "unknown apiVersion/kind apps/v1/DaemonSett" \
  's/^kind: DaemonSet$/kind: DaemonSett/' schema
expect missing-required "must have required property containers" \
  's/^      containers:$/      containerz:/' schema
expect capacity-without-limit "memory limit 84Mi is not" \
  's/success 9984 30/success 20000 30/' properties
expect limit-without-capacity "memory limit 96Mi is not" \
  's/memory: 84Mi/memory: 96Mi/' properties
expect dns-policy "dnsPolicy is 'ClusterFirst'" \
  's/dnsPolicy: Default/dnsPolicy: ClusterFirst/' properties
expect host-network "hostNetwork is not true" \
  's/hostNetwork: true/hostNetwork: false/' properties
expect localip "-localip is '169.254.20.10,10.96.0.11'" \
  's/169.254.20.10,10.96.0.10/169.254.20.10,10.96.0.11/' properties
expect bind-not-localip "binds ['169.254.20.10']" \
  '0,/bind __PILLAR__LOCAL__DNS__ __PILLAR__DNS__SERVER__/s//bind 169.254.20.10/' properties
expect ready-port "does not match the Corefile's \`ready 169.254.20.10:8181\`" \
  's/port: 8181/port: 8182/' properties
expect host-port "declares ports" \
  's/^      - args:$/      - ports: [{containerPort: 53, hostPort: 53}]\n        args:/' properties
expect priority "priorityClassName is not system-node-critical" \
  's/system-node-critical/system-cluster-critical/' properties
expect no-surge "want RollingUpdate maxSurge 1 maxUnavailable 0" \
  's/maxSurge: 1/maxSurge: 0/' properties
expect unavailable "want RollingUpdate maxSurge 1 maxUnavailable 0" \
  's/maxUnavailable: 0/maxUnavailable: 1/' properties
expect handover-unmounted "hostPath /run/nodedns is mounted as nothing" \
  '/- mountPath: \/run\/nodedns$/{N;d}' properties
expect handover-not-hostpath "is not mounted from the node's '/run/nodedns'" \
  's|path: /run/nodedns$|path: /var/run/nodedns|' properties
expect handover-path "-handover is '/tmp/handover.sock'" \
  's|- /run/nodedns/handover.sock|- /tmp/handover.sock|' properties
exit "$failed"
