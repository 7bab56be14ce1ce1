// `nodedns serve` flags; see serve_command.h.
#include "proxy/serve_command.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "proxy/reply.h"
#include "resolvconf/resolv_conf.h"

namespace nodedns::proxy {

CLI::App* AddServeCommand(CLI::App& app, ServeFlags& f) {
  CLI::App* s = app.add_subcommand(
      "serve", "Run the caching DNS proxy: answer from the shared cache, forward misses upstream.");
  s->add_option(
       "--listen", f.listen,
       absl::StrCat("ADDR:PORT to serve on, UDP and TCP; repeatable; IPv6 as [ADDR]:PORT "
                    "(default ",
                    kDefaultListen, "; Kubernetes: 169.254.20.10:53 and the kube-dns ClusterIP)"))
      ->type_name("ADDR:PORT");
  s->add_option("--forward", f.forward,
                absl::StrCat("ZONE=UPSTREAM[,UPSTREAM...]: where to send misses for names in "
                             "ZONE; repeatable, the longest zone wins; an UPSTREAM is ADDR[:PORT] "
                             "or a resolv.conf path whose nameservers are used (default .=",
                             resolvconf::kDefaultPath, ")"))
      ->type_name("ZONE=UPSTREAMS");
  s->add_option("--force-tcp", f.force_tcp,
                "Reach this zone's upstreams over TCP only (as NodeLocal DNSCache does for "
                "CoreDNS); repeatable")
      ->type_name("ZONE");
  s->add_option("--workers", f.workers,
                "Worker threads, each with its own sockets (0: one per CPU)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 1024u));
  s->add_option("--cache-size", f.cache_size_mb,
                "Cache capacity in MiB; all memory of entries, keys and tables counted")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1024.0 * 1024));
  s->add_option("--cache-shards", f.cache_shards,
                "Cache shards, a power of two (0: chosen from the capacity, at most 64)")
      ->capture_default_str();
  s->add_option("--min-ttl", f.min_ttl, "Keep positive answers at least this many seconds")
      ->capture_default_str();
  s->add_option("--max-ttl", f.max_ttl, "Keep positive answers at most this many seconds")
      ->capture_default_str();
  s->add_option("--max-negative-ttl", f.max_negative_ttl,
                "Cap for NXDOMAIN/NODATA caching in seconds (RFC 2308)")
      ->capture_default_str();
  s->add_option("--servfail-ttl", f.servfail_ttl,
                "Seconds to cache SERVFAIL answers (0..300, RFC 2308 §7.1)")
      ->capture_default_str()
      ->check(CLI::Range(0, 300));
  s->add_option("--stale-ttl", f.stale_ttl,
                "Seconds past expiry an answer may still be served when upstream fails "
                "(RFC 8767; 0 disables)")
      ->capture_default_str();
  s->add_option("--stale-answer-client-timeout", f.stale_answer_client_timeout_ms,
                "Milliseconds a client waits for the upstream before it gets an expired answer "
                "the cache still holds, while the upstream query goes on (RFC 8767 §5; 0: only "
                "once the upstream failed)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 60000u));
  s->add_option("--stale-refresh-time", f.stale_refresh_time_s,
                "Seconds a name whose upstream query failed is answered stale at once, without "
                "asking upstream again (RFC 8767 §5; 0: ask every time)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 3600u));
  s->add_option(
       "--prefetch-hits", f.prefetch_hits,
       absl::StrCat("Refresh an entry in its last ", cache::CacheSettings{}.prefetch_percent,
                    "% of TTL once it was hit this many times (0: on every late hit)"))
      ->capture_default_str()
      ->check(CLI::Range(0, 255));
  s->add_option("--health", f.health,
                "ADDR:PORT for GET /health and GET /metrics (Prometheus); off when empty")
      ->type_name("ADDR:PORT");
  s->add_option("--upstream-timeout", f.upstream_timeout_ms,
                "Milliseconds before an upstream try times out")
      ->capture_default_str()
      ->check(CLI::Range(10u, 60000u));
  s->add_option("--upstream-tries", f.upstream_tries, "Tries per upstream query")
      ->capture_default_str()
      ->check(CLI::Range(1, 10));
  s->add_option("--overload-queue-delay", f.overload_queue_delay_ms,
                "Under overload, drop UDP queries unanswered that waited in the socket longer "
                "than this many ms, once every query did for --overload-interval (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 10000u));
  s->add_option("--overload-interval", f.overload_interval_ms,
                "Milliseconds a receive queue must stay above --overload-queue-delay before "
                "queries are dropped; a burst that drains sooner is answered whole (0: from "
                "the second batch read that all waited longer)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 10000u));
  s->add_option("--upstream-max-fails", f.upstream_max_fails,
                "Failed tries in a row (timeout, ICMP error, refused connection) that mark an "
                "upstream down for all workers; queries skip it while another is up (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  s->add_option("--upstream-health-check", f.upstream_health_check_ms,
                "Milliseconds between probes (. IN NS) of an upstream marked down; any reply "
                "brings it back")
      ->capture_default_str()
      ->check(CLI::Range(10u, 60000u));
  s->add_option("--tcp-idle-timeout", f.tcp_idle_timeout_s,
                "Seconds a client TCP connection may go without a whole query or a reply "
                "(RFC 7766 §6.2.3)")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  s->add_option("--tcp-max-connections", f.tcp_max_connections,
                "Client TCP connections per worker; past it the idlest is closed, or the new one "
                "when every connection has a query in flight")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  s->add_option("--tcp-max-inflight", f.tcp_max_inflight,
                "Queries per TCP connection waiting for upstream before reading pauses")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{65535}));
  s->add_option("--max-waiting-queries", f.max_waiting_queries,
                "Clients waiting for an upstream answer, per worker; over it a new miss gets "
                "SERVFAIL at once (cache hits are always served)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 24));
  s->add_option("--client-miss-share", f.client_miss_share,
                "Percent of --max-waiting-queries one client (an IPv4 address, an IPv6 /64) may "
                "hold; over it its new misses get SERVFAIL at once (100: no per-client limit)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 100u));
  s->add_option("--audit-query-sample", f.audit_query_sample,
                "Queries per client for GET /audit: one query in N, on average, is counted (for "
                "N); 1 counts every query (exact, a little slower), 0 none")
      ->capture_default_str()
      ->check(CLI::Range(0u, 65536u));
  s->add_option("--cluster-domain", f.cluster_domain,
                "The Kubernetes cluster domain; NXDOMAINs below it are counted as search-path "
                "waste (GET /audit on the health port)")
      ->capture_default_str();
  s->add_option("--search-rewrite", f.search_rewrite,
                "Answer a pod's first search-path expansion of a missing name with a CNAME to the "
                "first name of its search path that exists (docs/search-rewrite.md)")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  s->add_option("--node-search", f.node_search,
                "The node's search domains, which follow the cluster ones in a pod's search path; "
                "repeatable; 'none' for none (default: the search line of --resolv-conf)")
      ->type_name("DOMAIN");
  s->add_option("--search-path", f.search_path,
                "CIDR=NAMESPACE: pin the namespace of these clients instead of learning it; "
                "NAMESPACE '-' never rewrites for them (e.g. the node's own address); repeatable")
      ->type_name("CIDR=NS");
  s->add_option("--discover-pods", f.discover_pods,
                "Find the node's pods from /proc (needs hostPID and CAP_SYS_PTRACE): the search "
                "rewrite knows each pod's namespace from its resolv.conf before its first lookup, "
                "and GET /audit/pods on the health port reports per pod")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  s->add_option("--discover-pods-interval", f.discover_pods_interval_s,
                "Seconds between two scans of /proc for --discover-pods")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  s->add_option("--proc", f.proc, "The proc root --discover-pods scans")
      ->capture_default_str()
      ->type_name("DIR");
  s->add_option("--allow", f.allow,
                absl::StrCat("CIDR[,CIDR...]: the clients whose queries are answered; others get "
                             "REFUSED (UDP) or a closed connection (TCP); repeatable; 'any' for "
                             "everyone, 'default' for the default list (default ",
                             kDefaultAllow, ")"))
      ->type_name("CIDRS");
  s->add_option("--chaos-text", f.chaos_text,
                absl::StrCat("Answer CH TXT version.bind, version.server, id.server and "
                             "hostname.bind with this text (printable ASCII, at most ",
                             kMaxChaosText,
                             " bytes); empty: REFUSED. Other CH queries are always REFUSED, and no "
                             "CH query is forwarded"))
      ->type_name("TEXT");
  s->add_option("--coredns-metrics", f.coredns_metrics,
                "Also export CoreDNS's metric families (coredns_dns_requests_total & co., "
                "docs/deploy.md) on the --health port, labelled by listen address and --forward "
                "zone, for dashboards written for CoreDNS")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  s->add_option("--handover", f.handover,
                "Unix socket PATH for zero-loss upgrades: a new nodedns started with the same PATH "
                "takes this one's sockets and hottest cache entries over, and this one drains "
                "and exits (docs/operations.md)")
      ->type_name("PATH");
  s->add_option("--handover-timeout", f.handover_timeout_s,
                "Seconds the handover exchange may take before the new process binds its own "
                "sockets")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 60.0));
  s->add_option("--handover-cache-percent", f.handover_cache_percent,
                "Share of --cache-size whose hottest entries are passed on at a handover "
                "(0: the new process starts cold)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100));
  s->add_flag("--handover-linger", f.handover_linger,
              "After handing over and draining, stay idle until SIGTERM instead of exiting (for "
              "supervisors that restart a process that exits)");
  s->add_option("--resolv-conf", f.resolv_conf,
                "resolv.conf whose nameservers serve '.' when no --forward covers it")
      ->capture_default_str();
  return s;
}

absl::StatusOr<ServeConfig> BuildServeConfig(const ServeFlags& f) {
  ServeConfig c;
  const std::vector<std::string> listen =
      f.listen.empty() ? std::vector<std::string>{kDefaultListen} : f.listen;
  for (const auto& l : listen) {
    auto a = SocketAddress::Parse(l);
    if (!a.ok()) return absl::InvalidArgumentError(absl::StrCat("--listen ", a.status().message()));
    c.listen.push_back(*a);
  }
  bool have_root = false;
  for (const auto& spec : f.forward) {
    auto z = ParseForwardSpec(spec);
    if (!z.ok())
      return absl::InvalidArgumentError(absl::StrCat("--forward ", z.status().message()));
    have_root |= z->zone_wire.size() == 1;
    c.zones.push_back(*std::move(z));
  }
  if (!have_root) {
    auto z = ParseForwardSpec(absl::StrCat(".=", f.resolv_conf));
    if (!z.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--forward: no upstream for '.' given and ",
                                                     z.status().message(),
                                                     " (use --forward .=ADDR)"));
    }
    c.zones.push_back(*std::move(z));
  }
  if (auto st = FinishZones(c.zones, f.force_tcp); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--forward/--force-tcp: ", st.message()));
  }
  c.workers = f.workers;
  c.cache.capacity_bytes = static_cast<size_t>(std::llround(f.cache_size_mb * kBytesPerMiB));
  c.cache.shards = f.cache_shards;
  c.cache.min_ttl = f.min_ttl;
  c.cache.max_ttl = f.max_ttl;
  c.cache.max_negative_ttl = f.max_negative_ttl;
  c.cache.servfail_ttl = f.servfail_ttl;
  c.cache.stale_ttl = f.stale_ttl;
  c.cache.prefetch_min_hits = f.prefetch_hits;
  if (auto st = c.cache.Validate(); !st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache settings (--cache-size, --cache-shards, "
                     "--min-ttl, --max-ttl): ",
                     st.message()));
  }
  if (!f.health.empty()) {
    auto a = SocketAddress::Parse(f.health);
    if (!a.ok()) return absl::InvalidArgumentError(absl::StrCat("--health ", a.status().message()));
    c.http.push_back({.addr = *a});
  }
  c.upstream_timeout_ms = f.upstream_timeout_ms;
  c.stale_answer_client_timeout_ms = f.stale_answer_client_timeout_ms;
  c.stale_refresh_time_s = f.stale_refresh_time_s;
  c.overload_queue_delay_ms = f.overload_queue_delay_ms;
  c.overload_interval_ms = f.overload_interval_ms;
  c.upstream_tries = f.upstream_tries;
  c.upstream_max_fails = f.upstream_max_fails;
  c.upstream_health_check_ms = f.upstream_health_check_ms;
  c.tcp_idle_timeout_ms = static_cast<uint32_t>(f.tcp_idle_timeout_s * kMsPerSecond);
  c.tcp_max_connections = f.tcp_max_connections;
  c.tcp_max_inflight = f.tcp_max_inflight;
  c.max_waiting_queries = f.max_waiting_queries;
  c.client_miss_share = f.client_miss_share;
  c.audit_query_sample = f.audit_query_sample;
  auto zone = ZoneToWire(f.cluster_domain);
  if (!zone.ok() || zone->size() == 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cluster-domain '", f.cluster_domain, "' is not a domain name"));
  }
  c.cluster_domain = absl::AsciiStrToLower(f.cluster_domain);
  if (c.cluster_domain.back() == '.') c.cluster_domain.pop_back();
  c.cluster_domain_wire = *std::move(zone);
  c.search_rewrite = f.search_rewrite == "on";
  if (f.node_search.size() == 1 && f.node_search[0] == "none") {
    c.node_search.clear();
  } else if (!f.node_search.empty()) {
    c.node_search = f.node_search;
  } else if (c.search_rewrite) {
    auto search = resolvconf::ReadResolvConfSearch(f.resolv_conf);
    if (!search.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--node-search: not given and ", search.status().message(), " (use --node-search none)"));
    }
    c.node_search = *std::move(search);
  }
  c.search_pins = f.search_path;
  auto allow = AllowList::ParseAll(f.allow);
  if (!allow.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--allow ", allow.status().message()));
  }
  c.allow = *std::move(allow);
  if (f.chaos_text.size() > kMaxChaosText) {
    return absl::InvalidArgumentError(absl::StrCat("--chaos-text: ", f.chaos_text.size(),
                                                   " bytes, at most ", kMaxChaosText,
                                                   " (the CHAOS reply must fit 512 bytes)"));
  }
  for (size_t i = 0; i < f.chaos_text.size(); ++i) {
    const auto ch = static_cast<unsigned char>(f.chaos_text[i]);
    // What `dig` prints as is: no control bytes, no escapes for operators to puzzle over.
    if (ch < 0x20 || ch > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat("--chaos-text: byte ", i + 1, " (0x",
                                                     absl::Hex(ch, absl::kZeroPad2),
                                                     ") is not printable ASCII"));
    }
  }
  c.chaos_text = f.chaos_text;
  c.coredns_metrics = f.coredns_metrics == "on";
  // The listener binds PATH.PID before renaming it over PATH: both must fit sun_path.
  if (!f.handover.empty() && (f.handover.front() != '/' || f.handover.size() > 96)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--handover '", f.handover, "': an absolute path of at most 96 bytes is needed"));
  }
  c.handover_path = f.handover;
  c.handover_timeout_ms = static_cast<uint32_t>(std::llround(f.handover_timeout_s * kMsPerSecond));
  c.handover_cache_percent = f.handover_cache_percent;
  c.handover_linger = f.handover_linger;
  c.discover_pods = f.discover_pods == "on";
  c.discover_pods_interval_ms =
      static_cast<uint32_t>(std::llround(f.discover_pods_interval_s * kMsPerSecond));
  c.proc_root = f.proc;
  if (c.discover_pods && (c.proc_root.empty() || c.proc_root.front() != '/')) {
    return absl::InvalidArgumentError(
        absl::StrCat("--proc '", f.proc, "': an absolute path is needed"));
  }
  return c;
}

}  // namespace nodedns::proxy
