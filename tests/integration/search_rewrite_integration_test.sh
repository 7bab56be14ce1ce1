#!/usr/bin/env bash
# Integration test of the server-side search-path rewrite (docs/search-rewrite.md) with real stub
# resolvers: glibc (`getent ahosts`) and musl (tests/testing/getaddrinfo_client.c built with
# musl-gcc -static) in pod-like network namespaces, nodedns on a "node" namespace, Knot DNS as
# the upstream serving cluster.local, example.com, corp.example and the root
# (tests/integration/rewrite_lab.sh draws the topology).
#
# Usage: search_rewrite_integration_test.sh NODEDNS_BINARY
#
# For every case and client it asserts the addresses getaddrinfo returned and the number of
# queries nodedns received for that lookup (the delta of nodedns_queries_total). The expected
# values are not written down: a model of the stubs' search walk (ndots, search list, trailing
# dot, musl's "no search at >= ndots dots") and of the rewrite rule (first non-NXDOMAIN
# candidate of N.svc.<zone>, N.<zone>, N.<node domains>, N.) derives them from what Knot answers
# for each name. Runs, each with a fresh nodedns (cold cache, nothing learned):
#
#   on        --search-rewrite on  --node-search none          pods: 3 cluster search domains
#   off       --search-rewrite off --node-search none          same
#   on-node   --search-rewrite on  --node-search corp.example  pods: + corp.example
#   off-node  --search-rewrite off --node-search corp.example  same
#
# Each run starts by teaching nodedns both pods' namespaces with one external-name lookup per pod
# (learn-a.example.com, learn-b.example.com): that lookup is never rewritten (the client is not
# known yet) and teaches by its NXDOMAIN for N.<ns>.svc.<zone> followed by N.svc.<zone>. The test
# checks the learning metrics, then runs the cases (listed with BASIC_CASES below), then checks
# that nodedns_search_rewrite_lookups_total and ..._queries_avoided_total grew by what the model
# says. nodedns runs with 2 workers, so learning must work across SO_REUSEPORT workers (each
# search step comes from a new source port). Prints a PASS/FAIL table; takes 30-60 s.
#
# Needs root (ip netns, unshare -m and bind mounts over /etc/resolv.conf inside private mount
# namespaces only), knotd, kdig, curl, cc and musl-gcc; exits 77 (ctest SKIP_RETURN_CODE) when
# those are missing. Fails on any mismatch, on nodedns dying or exiting non-zero on SIGTERM, and on
# a sanitizer report in its stderr.
set -uo pipefail

NODEDNS=${1:?usage: search_rewrite_integration_test.sh NODEDNS_BINARY}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=rewrite_lab.sh
source "$HERE/rewrite_lab.sh"

skip() {
  echo "SKIP: $*"
  exit 77
}

[[ $(id -u) -eq 0 ]] || skip "needs root for ip netns and unshare -m"
missing=$(lab_missing_tools)
[[ -z "$missing" ]] || skip "missing tools: $missing"
[[ -x "$NODEDNS" ]] || { echo "FAIL: nodedns binary '$NODEDNS' is not executable"; exit 1; }

START=$SECONDS
lab_init srit
trap lab_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
lab_netns_up
case $? in
  0) ;;
  2) skip "network namespaces with veth pairs are not possible here" ;;
  *) echo "FAIL: could not set up the namespaces"; exit 1 ;;
esac
lab_knot_start || { echo "FAIL: knotd"; exit 1; }
lab_build_clients || { echo "FAIL: building the getaddrinfo client"; exit 1; }

# Read the whole help first: with pipefail, grep -q leaving early would SIGPIPE nodedns and fail
# the pipeline once the help outgrows one stdio buffer.
serve_help=$("$NODEDNS" serve --help 2>&1)
if ! grep -q -- '--search-rewrite' <<<"$serve_help"; then
  echo "FAIL: '$NODEDNS serve --help' does not mention --search-rewrite"
  exit 1
fi

NDOTS=5
CLIENT_TIMEOUT=12  # s per lookup; glibc's own timeout is 5 s per try
LOOKUP_BUDGET=150  # s; no lookup starts later (a passing run takes 25-60 s)
FAILS=0
TIMEOUTS=0
RESULTS=()  # table rows

# ---------------------------------------------------------------------------------------------
# The model.

# The model's functions return through globals, not $(...), so that FACTS, the cache of what
# Knot answered, survives between calls.

# fact NAME: sets FACT to "nx", "nodata" or "addr ADDRESS..." for an absolute NAME, from Knot's
# answers to A and AAAA (anything else: "error ...").
declare -A FACTS
fact() {
  local name=$1 a aaaa
  if [[ -z "${FACTS[$name]+x}" ]]; then
    { read -r a; read -r aaaa; } < <(lab_kdig2 "$name")
    if [[ $a == NXDOMAIN && $aaaa == NXDOMAIN ]]; then
      FACTS[$name]="nx"
    elif [[ ${a%% *} == NOERROR && ${aaaa%% *} == NOERROR ]]; then
      local addrs="${a#NOERROR}${aaaa#NOERROR}"
      if [[ -n "${addrs// /}" ]]; then FACTS[$name]="addr$addrs"; else FACTS[$name]="nodata"; fi
    else
      FACTS[$name]="error A=[$a] AAAA=[$aaaa]"
    fi
  fi
  FACT=${FACTS[$name]}
}

# stub_names LIBC NAME SEARCH...: sets STUB_NAMES to the absolute names the stub tries, in order.
# glibc (res_search): a trailing dot means only the name itself; >= ndots dots: the name first,
# then the search list; else the search list, then the name. musl (name_from_dns_search): the
# same, except that >= ndots dots means the name alone, without the search list.
stub_names() {
  local libc=$1 name=$2 d dots
  shift 2
  STUB_NAMES=()
  if [[ $name == *. ]]; then
    STUB_NAMES=("$name")
    return
  fi
  dots=${name//[^.]/}
  dots=${#dots}
  if ((dots >= NDOTS)); then
    STUB_NAMES+=("$name.")
    [[ $libc == musl ]] && return
  fi
  for d in "$@"; do STUB_NAMES+=("$name.$d."); done
  ((dots < NDOTS)) && STUB_NAMES+=("$name.")
}

# rewrite_winner STEP NS NODE_DOMAINS...: if nodedns rewrites the reply to STEP for a client
# learned in namespace NS, sets WINNER and WINNER_INDEX (its index among the candidates, from 0);
# returns 1 if nodedns answers normally: STEP is not N.NS.svc.<zone>., or it exists, or every
# candidate is NXDOMAIN.
rewrite_winner() {
  local step=$1 ns=$2 suffix n c i=0
  shift 2
  suffix=".$ns.svc.$LAB_ZONE."
  [[ -n "$ns" && $step == *"$suffix" ]] || return 1
  n=${step%"$suffix"}
  [[ -n "$n" ]] || return 1
  fact "$step"
  [[ $FACT == nx ]] || return 1
  local -a cands=("$n.svc.$LAB_ZONE." "$n.$LAB_ZONE.")
  for c in "$@"; do cands+=("$n.$c."); done
  cands+=("$n.")
  local -A seen=(["$step"]=1)
  for c in "${cands[@]}"; do
    [[ -n "${seen[$c]+x}" ]] && continue
    seen[$c]=1
    fact "$c"
    if [[ $FACT != nx ]]; then
      WINNER=$c
      WINNER_INDEX=$i
      return 0
    fi
    i=$((i + 1))
  done
  return 1
}

# expect LIBC NAME NS TYPES SEARCH_LIST NODE_DOMAINS: the model's outcome of a lookup of NAME by a
# client whose resolv.conf has SEARCH_LIST (space-separated), learned by nodedns as NS ("" = not
# learned, or rewriting off). TYPES is "A AAAA" or "A" (what the client asks at each step); with
# "A", AAAA addresses are dropped from the result. Sets EXP_STEPS (search steps the client
# sends), EXP_REWRITTEN (1 if the reply to the last one is rewritten), EXP_AVOIDED (the winner's
# index + 1: the metric's "queries avoided" per rewritten reply), EXP_ADDRS (sorted) and
# EXP_ERROR (non-empty if the zone has a name the model does not cover).
expect() {
  local libc=$1 name=$2 ns=$3 types=$4 search=$5 node=$6 step
  local -a search_list node_list
  read -r -a search_list <<<"$search"
  read -r -a node_list <<<"$node"
  EXP_STEPS=0 EXP_REWRITTEN=0 EXP_AVOIDED=0 EXP_ADDRS="" EXP_ERROR=""
  stub_names "$libc" "$name" "${search_list[@]}"
  for step in "${STUB_NAMES[@]}"; do
    EXP_STEPS=$((EXP_STEPS + 1))
    if rewrite_winner "$step" "$ns" "${node_list[@]}"; then
      fact "$WINNER"
      EXP_REWRITTEN=1
      EXP_AVOIDED=$((WINNER_INDEX + 1))
      filter_addrs "$types" "${FACT#addr}"
      return
    fi
    fact "$step"
    case $FACT in
      nx) ;;
      addr*)
        filter_addrs "$types" "${FACT#addr}"
        return
        ;;
      *)
        # NODATA for both types (glibc walks on, musl stops) or an upstream error: the zone has
        # no such name on purpose.
        EXP_ERROR="$step is '$FACT'"
        return
        ;;
    esac
  done
}

# filter_addrs TYPES ADDRESS...: sets EXP_ADDRS to the addresses of the asked types, sorted.
filter_addrs() {
  local types=$1 a
  local -a kept=()
  for a in $2; do
    if [[ $a == *:* && $types != *AAAA* ]]; then continue; fi
    kept+=("$a")
  done
  EXP_ADDRS=$(printf '%s\n' "${kept[@]}" | sed '/^$/d' | sort -u | tr '\n' ' ' | sed 's/ $//')
}

# ---------------------------------------------------------------------------------------------
# The clients.

# lookup POD_NETNS RESOLV CLIENT NAME: one lookup. Sets GOT_STATUS ("ok", "notfound" for getent's
# exit 2, an EAI_* name for musl, "timeout", "exit N"), GOT_ADDRS (sorted), GOT_QUERIES (the
# delta of nodedns_queries_total; GOT_TCP: of its transport="tcp" sample) and GOT_RAW. Nothing else queries nodedns between lookups, so
# the scrape after one lookup (LAST_METRICS) is the scrape before the next.
LAST_METRICS=""
lookup() {
  local netns=$1 resolv=$2 client=$3 name=$4 m0 m1 rc
  m0=$LAST_METRICS
  [[ -n "$m0" ]] || m0=$(lab_metrics) || m0=""
  case $client in
    getent)
      GOT_RAW=$(lab_pod_exec "$netns" "$resolv" "$CLIENT_TIMEOUT" getent ahosts "$name" 2>&1)
      rc=$?
      GOT_ADDRS=$(awk 'NF >= 2 { print $1 }' <<<"$GOT_RAW" | sort -u | tr '\n' ' ' | sed 's/ $//')
      case $rc in
        0) GOT_STATUS=ok ;;
        2) GOT_STATUS=notfound ;;
        124) GOT_STATUS=timeout ;;
        *) GOT_STATUS="exit $rc" ;;
      esac
      ;;
    musl)
      GOT_RAW=$(lab_pod_exec "$netns" "$resolv" "$CLIENT_TIMEOUT" "$LAB_WORK/gai-musl" "$name" 2>&1)
      rc=$?
      GOT_ADDRS=$(awk -v n="$name" '$1 == n { for (i = 3; i <= NF; i++) print $i }' <<<"$GOT_RAW" |
        sort -u | tr '\n' ' ' | sed 's/ $//')
      GOT_STATUS=$(awk -v n="$name" '$1 == n { print $2 }' <<<"$GOT_RAW")
      [[ $rc -eq 124 ]] && GOT_STATUS=timeout
      [[ -n "$GOT_STATUS" ]] || GOT_STATUS="exit $rc"
      ;;
  esac
  [[ $GOT_STATUS == timeout ]] && TIMEOUTS=$((TIMEOUTS + 1))
  m1=$(lab_metrics) || m1=""
  LAST_METRICS=$m1
  if [[ -z "$m0" || -z "$m1" ]]; then
    GOT_QUERIES="?"
    GOT_TCP="?"
  else
    GOT_QUERIES=$(($(lab_metric_sum "$m1" nodedns_queries_total) -
      $(lab_metric_sum "$m0" nodedns_queries_total)))
    GOT_TCP=$(($(lab_metric_sum "$m1" 'nodedns_queries_total{transport="tcp"}') -
      $(lab_metric_sum "$m0" 'nodedns_queries_total{transport="tcp"}')))
  fi
}

record() {  # record RUN CASE POD CLIENT NAME EXPECTED GOT VERDICT
  RESULTS+=("$(printf '%-8s | %-34s | %s | %-6s | %-29s | %-36s | %-36s | %s' "$@")")
  [[ $8 == PASS ]] || FAILS=$((FAILS + 1))
}

check() {  # check RUN CASE POD CLIENT NAME EXPECTED GOT: PASS iff the two strings are equal
  local run=$1 case_id=$2 pod=$3 client=$4 name=$5 expected=$6 got=$7
  if [[ "$expected" == "$got" ]]; then
    record "$run" "$case_id" "$pod" "$client" "$name" "$expected" "$got" PASS
  else
    record "$run" "$case_id" "$pod" "$client" "$name" "$expected" "$got" FAIL
  fi
}

# ---------------------------------------------------------------------------------------------
# A run: one nodedns, warm-up, cases.

# run_case RUN CASE POD CLIENT NAME NS_FOR_MODEL TYPES SEARCH NODE: one lookup against the model.
# Adds the lookup's expected rewritten replies and avoided queries to RUN_REWRITES/RUN_AVOIDED.
run_case() {
  local run=$1 case_id=$2 pod=$3 client=$4 name=$5 ns=$6 types=$7 search=$8 node=$9
  local netns resolv libc steps rewritten avoided addrs ntypes status exp got variant=""
  [[ $case_id == *-tcp ]] && variant=.tcp
  [[ $case_id == *-edns0 ]] && variant=.edns0
  case $pod in
    A) netns=$LAB_NS_A resolv=$RESOLV_A$variant ;;
    B) netns=$LAB_NS_B resolv=$RESOLV_B$variant ;;
    R) netns=$LAB_NS_A resolv=$RESOLV_B$variant ;;  # pod A's address, otherns's resolv.conf
  esac
  libc=glibc
  [[ $client == musl ]] && libc=musl
  # Bound the test's time when nodedns stops answering (each failing lookup then takes seconds).
  if ((TIMEOUTS >= 2)); then
    record "$run" "$case_id" "$pod" "$client" "$name" "a lookup" "skipped: 2 client timeouts" FAIL
    return
  fi
  if ((SECONDS - START > LOOKUP_BUDGET)); then
    record "$run" "$case_id" "$pod" "$client" "$name" "a lookup" "skipped: over ${LOOKUP_BUDGET} s" FAIL
    return
  fi
  expect "$libc" "$name" "$ns" "$types" "$search" "$node"
  if [[ -n "$EXP_ERROR" ]]; then
    record "$run" "$case_id" "$pod" "$client" "$name" "model: $EXP_ERROR" "-" FAIL
    return
  fi
  steps=$EXP_STEPS rewritten=$EXP_REWRITTEN avoided=$EXP_AVOIDED addrs=$EXP_ADDRS
  ntypes=$(wc -w <<<"$types")
  if [[ -n "$addrs" ]]; then
    status=ok
  elif [[ $client == getent ]]; then
    status=notfound
  else
    status=EAI_NONAME
  fi
  lookup "$netns" "$resolv" "$client" "$name"
  exp="$status q=$((steps * ntypes)) [${addrs}]"
  got="$GOT_STATUS q=$GOT_QUERIES [${GOT_ADDRS}]"
  if [[ $variant == .tcp ]]; then  # every query over TCP
    exp+=" tcp=$((steps * ntypes))"
    got+=" tcp=$GOT_TCP"
  fi
  check "$run" "$case_id" "$pod" "$client" "$name" "$exp" "$got"
  [[ $exp == "$got" ]] || echo "  $run $case_id $client $name: client said: $(tr '\n' ' ' <<<"$GOT_RAW")"
  RUN_REWRITES=$((RUN_REWRITES + rewritten * ntypes))
  RUN_AVOIDED=$((RUN_AVOIDED + avoided * ntypes))
}

# metric_check RUN WHAT EXPECTED ACTUAL
metric_check() {
  check "$1" "$2" "-" "-" "-" "$3" "$4"
}

# run MODE NAME NODE_DOMAIN CASES: MODE on|off; NODE_DOMAIN "" or a domain that is passed with
# --node-search and appended to the pods' search lists; CASES lines "case_id pod clients name"
# (clients: getent,musl). A case id ending in "-v4" runs with IPv6 disabled on the pod, so
# getent (AI_ADDRCONFIG) asks A only; "-tcp": the pod's resolv.conf has "options use-vc" (glibc
# asks over TCP; the test then also checks that every query came over TCP); "-edns0": it has
# "options edns0" (glibc adds an OPT record). With REUSE=1, ends with reuse_scenario.
run() {
  local mode=$1 run_name=$2 node=$3 cases=$4 reuse=${5:-0}
  local search="default.svc.$LAB_ZONE svc.$LAB_ZONE $LAB_ZONE${node:+ $node}"
  local search_b="otherns.svc.$LAB_ZONE svc.$LAB_ZONE $LAB_ZONE${node:+ $node}"
  RESOLV_A="$LAB_WORK/resolv.$run_name.a"
  RESOLV_B="$LAB_WORK/resolv.$run_name.b"
  local opts
  for opts in "" tcp:use-vc edns0:edns0; do
    # shellcheck disable=SC2086
    LAB_RESOLV_OPTIONS=${opts#*:} lab_resolv_conf "$RESOLV_A${opts:+.${opts%%:*}}" default $node
    # shellcheck disable=SC2086
    LAB_RESOLV_OPTIONS=${opts#*:} lab_resolv_conf "$RESOLV_B${opts:+.${opts%%:*}}" otherns $node
  done
  if ! lab_nodedns_start "$NODEDNS" --forward ".=$LAB_UPSTREAM_ADDR:53" --workers 2 \
      --search-rewrite "$mode" --node-search "${node:-none}" --cluster-domain "$LAB_ZONE"; then
    record "$run_name" "start" "-" "-" "-" "nodedns serves" "it did not" FAIL
    return
  fi
  local m
  m=$(lab_metrics)
  LAST_METRICS=$m
  for metric in nodedns_search_rewrite_lookups_total nodedns_search_rewrite_queries_avoided_total \
      nodedns_search_rewrite_clients_learned_total nodedns_search_rewrite_learned_clients; do
    lab_metric_has "$m" "$metric" || metric_check "$run_name" "metric ${metric#nodedns_}" present absent
  done

  # Warm-up: teaches pod A (with glibc) and pod B (with musl). Not rewritten: not learned yet.
  RUN_REWRITES=0
  RUN_AVOIDED=0
  local learned0 learned1 rw0 av0 rw1 av1
  learned0=$(lab_metric_sum "$m" nodedns_search_rewrite_clients_learned_total)
  run_case "$run_name" "learn (warm-up)" A getent learn-a.example.com "" "A AAAA" "$search" "$node"
  m=$LAST_METRICS
  learned1=$(lab_metric_sum "$m" nodedns_search_rewrite_clients_learned_total)
  if [[ $mode == on ]]; then
    metric_check "$run_name" "learned_total after pod A warm-up" "+1" "+$((learned1 - learned0))"
  fi
  run_case "$run_name" "learn (warm-up)" B musl learn-b.example.com "" "A AAAA" "$search_b" "$node"
  m=$LAST_METRICS
  learned1=$(lab_metric_sum "$m" nodedns_search_rewrite_clients_learned_total)
  rw0=$(lab_metric_sum "$m" nodedns_search_rewrite_lookups_total)
  av0=$(lab_metric_sum "$m" nodedns_search_rewrite_queries_avoided_total)
  if [[ $mode == on ]]; then
    metric_check "$run_name" "learned_total after pod B warm-up" "+2" "+$((learned1 - learned0))"
    metric_check "$run_name" "learned_clients gauge after warm-up" 2 \
      "$(lab_metric_sum "$m" nodedns_search_rewrite_learned_clients)"
  fi
  metric_check "$run_name" "rewrite_lookups_total in warm-up" 0 "$rw0"

  local ns_a="" ns_b=""
  if [[ $mode == on ]]; then ns_a=default ns_b=otherns; fi
  local case_id pod clients name client types
  while read -r case_id pod clients name; do
    [[ -n "$case_id" ]] || continue
    if ! lab_nodedns_alive; then
      record "$run_name" "$case_id" "$pod" "-" "$name" "nodedns running" "it died" FAIL
      continue
    fi
    types="A AAAA"
    if [[ $case_id == *-v4 ]]; then
      types="A"
      lab_pod_ipv6 "$([[ $pod == A ]] && echo "$LAB_NS_A" || echo "$LAB_NS_B")" off
    fi
    for client in ${clients//,/ }; do
      if [[ $pod == A ]]; then
        run_case "$run_name" "$case_id" A "$client" "$name" "$ns_a" "$types" "$search" "$node"
      else
        run_case "$run_name" "$case_id" B "$client" "$name" "$ns_b" "$types" "$search_b" "$node"
      fi
    done
    if [[ $case_id == *-v4 ]]; then
      lab_pod_ipv6 "$([[ $pod == A ]] && echo "$LAB_NS_A" || echo "$LAB_NS_B")" on
    fi
  done <<<"$cases"
  if ((reuse)) && lab_nodedns_alive; then reuse_scenario "$run_name" "$mode" "$search_b" "$node"; fi

  m=$(lab_metrics)
  LAST_METRICS=""
  rw1=$(lab_metric_sum "$m" nodedns_search_rewrite_lookups_total)
  av1=$(lab_metric_sum "$m" nodedns_search_rewrite_queries_avoided_total)
  metric_check "$run_name" "rewrite_lookups_total (cases)" "+$RUN_REWRITES" "+$((rw1 - rw0))"
  metric_check "$run_name" "queries_avoided_total (cases)" "+$RUN_AVOIDED" "+$((av1 - av0))"
  if [[ $mode == on ]]; then
    metric_check "$run_name" "learned_clients gauge at the end" 2 \
      "$(lab_metric_sum "$m" nodedns_search_rewrite_learned_clients)"
  fi
  local log=$LAB_NODEDNS_LOG
  if lab_nodedns_stop; then
    metric_check "$run_name" "exit 0 on SIGTERM, no sanitizer" ok ok
  else
    metric_check "$run_name" "exit 0 on SIGTERM, no sanitizer" ok "no (see $log above)"
    cat "$log"
  fi
}

# reuse_scenario RUN MODE SEARCH_B NODE: pod A's address is taken over by a pod in otherns (pod A's
# network namespace with pod B's resolv.conf). Its first walk is not rewritten (its expansions
# end in otherns.svc, not default.svc) and its pair contradicts "default": unlearned. Its second
# walk is not rewritten (nothing learned) and teaches otherns. Its third is rewritten.
reuse_scenario() {
  local run=$1 mode=$2 search=$3 node=$4 m u0 u1 l0 l1 ns1=default ns2="" ns3=otherns
  [[ $mode == on ]] || ns1="" ns3=""
  m=$LAST_METRICS
  u0=$(lab_metric_sum "$m" nodedns_search_rewrite_clients_unlearned_total)
  l0=$(lab_metric_sum "$m" nodedns_search_rewrite_clients_learned_total)
  run_case "$run" "ip-reuse 1 (unlearns)" R musl reuse1.bench.example.com "$ns1" "A AAAA" "$search" "$node"
  m=$LAST_METRICS
  u1=$(lab_metric_sum "$m" nodedns_search_rewrite_clients_unlearned_total)
  [[ $mode == on ]] && metric_check "$run" "clients_unlearned_total after 1" "+1" "+$((u1 - u0))"
  run_case "$run" "ip-reuse 2 (relearns)" R musl reuse2.bench.example.com "$ns2" "A AAAA" "$search" "$node"
  m=$LAST_METRICS
  l1=$(lab_metric_sum "$m" nodedns_search_rewrite_clients_learned_total)
  [[ $mode == on ]] && metric_check "$run" "clients_learned_total after 2" "+1" "+$((l1 - l0))"
  run_case "$run" "ip-reuse 3 (learned)" R musl reuse3.bench.example.com "$ns3" "A AAAA" "$search" "$node"
}

# The cases (from the issue). Expected addresses and query counts come from the model.
#   svc-short      a service in the pod's own namespace: exists, never rewritten
#   svc-other-ns   <svc>.<ns>: first step NXDOMAIN, rewritten to web.otherns.svc.cluster.local
#   ext            an external name without the trailing dot: 2 queries instead of 8 once learned
#   ext-dot        with the trailing dot: 2 either way
#   ext-v4         the same from a pod without IPv6: getent asks A only (1 instead of 4)
#   nowhere        exists nowhere: NXDOMAIN after the whole walk, from both pods
#   headless       a headless service's pod by its short name: exists, never rewritten
#   headless-ns    the same from the other namespace (pod-0.web.default): rewritten
#   literal-other  pod B (otherns) asks x.default.svc.cluster.local, with and without the dot:
#                  x.cluster.local exists, so a rewrite under another namespace would answer it.
#                  After literal-own and ext, so that pod A's rewritten answers for
#                  x.default.svc.cluster.local and api.example.com.default.svc.cluster.local are
#                  in the cache: pod B must not get them (they are cached apart from the plain key)
#   literal-own    pod A asks x.default.svc.cluster.local. absolutely: under its own first search
#                  element, so nodedns cannot tell it from an expansion and rewrites it
#                  (docs/search-rewrite.md, "A literal query mistaken for an expansion")
# and beyond the issue:
#   ext-case       mixed case (learning and the rewrite compare names case-insensitively)
#   ext-tcp        glibc over TCP (options use-vc): the rewrite on the TCP path
#   ext-edns0      glibc with an OPT record (options edns0), DO clear: still rewritten
#   ip-reuse       (reuse_scenario) a pod in another namespace gets pod A's address
BASIC_CASES='
svc-short      A getent,musl kubernetes
svc-other-ns   A getent,musl web.otherns
ext            A getent,musl api.example.com
ext-dot        A getent,musl api.example.com.
ext            B getent,musl api.example.com
ext-v4         A getent      api.example.com
nowhere        A getent,musl nosuchname
nowhere        B getent,musl nosuchname
headless       A getent,musl pod-0.web
headless-ns    B getent,musl pod-0.web.default
literal-own    A getent,musl x.default.svc.cluster.local.
literal-other  B getent,musl x.default.svc.cluster.local
literal-other  B getent,musl x.default.svc.cluster.local.
literal-other  B getent,musl api.example.com.default.svc.cluster.local.
ext-case       A getent,musl Api.Example.COM
ext-tcp        A getent      api.example.com
ext-edns0      A getent      api.example.com
'
#   intranet       exists only under the node's search domain corp.example
NODE_CASES='
intranet       A getent,musl intranet
ext            A getent,musl api.example.com
nowhere        A getent,musl nosuchname
'

run on on "" "$BASIC_CASES" 1
run off off "" "$BASIC_CASES" 1
run on on-node corp.example "$NODE_CASES"
run off off-node corp.example "$NODE_CASES"

echo
printf '%-8s | %-34s | %s | %-6s | %-29s | %-36s | %-36s | %s\n' run case pod client name \
  expected got verdict
printf '%s\n' "${RESULTS[@]}"
echo
echo "$(( ${#RESULTS[@]} - FAILS )) passed, $FAILS failed, $((SECONDS - START)) s"
[[ $FAILS -eq 0 ]]
