#!/usr/bin/env bash
# Renders every kustomization under deploy/kubernetes that is meant to be applied, with the
# kubectl on PATH (kubectl kustomize works offline), into OUTDIR/NAME.yaml.
# Usage: render.sh SOURCE_DIR OUTDIR
set -euo pipefail
src=$1/deploy/kubernetes
out=$2
rm -rf "$out"
mkdir -p "$out"
for k in overlays/iptables overlays/ipvs overlays/dual-stack bench/node-local bench/kube-dns; do
  name=$(echo "$k" | tr / -)
  kubectl kustomize "$src/$k" >"$out/$name.yaml.tmp"
  mv "$out/$name.yaml.tmp" "$out/$name.yaml"
  echo "rendered $k: $(grep -c '^kind:' "$out/$name.yaml") objects"
done
