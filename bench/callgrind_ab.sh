#!/usr/bin/env bash
# Instructions per query (user space, callgrind) of nodedns binaries on the same workload:
# 1000 hits (warmed first) and 1000 misses, against a Knot upstream with a wildcard zone, counted
# with callgrind_control -z/-d around each phase so that start-up and warm-up are left out. The
# counts depend a little on how the loadgen batches (window 10): compare binaries measured in one
# run, and the self cost of the batch functions (callgrind_annotate --inclusive=no) rather than
# totals.
#
# Usage: bench/callgrind_ab.sh OUT_DIR LOADGEN NAME=NODEDNS_BIN[,FLAG...] [NAME=...]
#   (flags after the binary, comma-separated, are added to `serve`'s: on=bin,--coredns-metrics,on)
#   e.g. bench/callgrind_ab.sh /tmp/cg build-rel/bench/nodedns-loadgen new=build-rel/proxy/nodedns \
#        old=../base/build-rel/proxy/nodedns
# then: grep summary: OUT_DIR/cg.*.1 (hits) OUT_DIR/cg.*.2 (misses); divide by 1000.
# Ports 5490 (nodedns) and 5491 (Knot) on 127.0.0.1. Needs valgrind and knotd.
set -euo pipefail
out=$1; LG=$2; shift 2
mkdir -p "$out"
cat > "$out/zone" <<Z
\$ORIGIN example.com.
\$TTL 3600
@ SOA ns hostmaster 1 3600 900 604800 300
@ NS ns
ns A 192.0.2.53
* A 192.0.2.1
Z
mkdir -p "$out/knot"
cat > "$out/knot.conf" <<K
server:
    listen: 127.0.0.1@5491
    rundir: "$out/knot"
database:
    storage: "$out/knot"
zone:
  - domain: example.com
    file: "$out/zone"
    journal-content: none
    zonefile-sync: -1
log:
  - target: stderr
    any: error
K
nd=""
knotd -c "$out/knot.conf" > "$out/knot.log" 2>&1 & knot=$!
trap 'kill $knot 2>/dev/null; [ -n "$nd" ] && kill $nd 2>/dev/null; true' EXIT
sleep 1
for i in $(seq 1 1000); do echo "h$i.example.com A"; done > "$out/hits.txt"
for i in $(seq 1 1000); do echo "m$i.example.com A"; done > "$out/miss.txt"
for tag in "$@"; do
  name=${tag%%=*}; spec=${tag#*=}
  IFS=, read -r -a words <<< "$spec"
  bin=${words[0]}; extra=("${words[@]:1}")
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$name.%p" "$bin" serve \
    --listen 127.0.0.1:5490 --forward .=127.0.0.1:5491 --workers 1 --search-rewrite off \
    "${extra[@]}" > "$out/$name.log" 2>&1 & nd=$!
  for _ in $(seq 1 100); do grep -q "serving on" "$out/$name.log" && break; sleep 0.2; done
  $LG -s 127.0.0.1:5490 -d "$out/hits.txt" -l 0 -n 1000 -q 10 -t 5 > /dev/null   # warm
  callgrind_control -z $nd > /dev/null
  $LG -s 127.0.0.1:5490 -d "$out/hits.txt" -l 0 -n 1000 -q 10 -t 5 --json > "$out/$name.hit.json"
  callgrind_control -d hit $nd > /dev/null
  callgrind_control -z $nd > /dev/null
  $LG -s 127.0.0.1:5490 -d "$out/miss.txt" -l 0 -n 1000 -q 10 -t 5 --json > "$out/$name.miss.json"
  callgrind_control -d miss $nd > /dev/null
  kill $nd; wait $nd 2>/dev/null || true
done
nd=""
kill $knot; wait $knot 2>/dev/null || true
trap - EXIT
echo "hits: $(for f in "$out"/cg.*.1; do echo -n "${f##*/cg.} $(sed -n 's/^summary: //p' "$f") "; done)"
echo "misses: $(for f in "$out"/cg.*.2; do echo -n "${f##*/cg.} $(sed -n 's/^summary: //p' "$f") "; done)"
