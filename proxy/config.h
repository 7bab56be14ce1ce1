// `nodedns serve` configuration: every setting in one struct with its default, and the parsing of
// the textual forms (addresses, forward zones) into it. absl::Status at this boundary.
#ifndef NODEDNS_PROXY_CONFIG_H_
#define NODEDNS_PROXY_CONFIG_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cache/response_cache.h"
#include "dns/socket_address.h"
#include "proxy/allow_list.h"
#include "upstream/health.h"

namespace nodedns::proxy {

using dns::SocketAddress;

// Upstreams for the names at or below one zone.
struct ForwardZone {
  std::string zone;                // presentation form, lowercase, "." for the root
  std::vector<uint8_t> zone_wire;  // wire form, lowercase
  std::vector<SocketAddress> upstreams;
  bool force_tcp = false;
  // A Corefile zone's `cache` block (nodecache/): the rules its answers are stored by in the one
  // shared cache. nullopt: the cache's own settings (`serve`'s flags).
  std::optional<cache::EntryPolicy> cache_policy;
  // Distinct upstream queries in flight for this zone, node-wide (Corefile `forward
  // max_concurrent`); over it a miss is REFUSED. 0: no limit but the forwarders' own
  // (upstream::kMaxInFlight). `in_flight` is the count all workers share, made by the server.
  size_t max_concurrent = 0;
  std::shared_ptr<std::atomic<int64_t>> in_flight;
  // Upstream health (upstream/health.h), a Corefile `forward`'s max_fails and health_check;
  // nullopt: --upstream-max-fails and --upstream-health-check. `health` is the state all workers
  // share, made by the server.
  std::optional<int> max_fails;
  std::optional<uint32_t> health_check_ms;
  std::vector<uint8_t> health_check_qname;  // wire, lowercase; empty: the root
  bool health_check_rd = true;
  std::shared_ptr<upstream::UpstreamHealth> health;
  // The `zone` label of the CoreDNS metric families (coredns_metrics.h), e.g. "cluster.local.".
  // Filled in by the server (MetricsLabels) when CoreDNS metrics are on.
  size_t metrics_zone = 0;
  std::vector<size_t> metrics_upstreams;  // the `to` label of each upstream, likewise
};

// An HTTP listener of the server and what it serves: GET /health, GET /metrics (nodedns_* and,
// when on, coredns_* families), GET /audit and /audit.txt, GET /ready.
struct HttpEndpoint {
  SocketAddress addr;
  bool health = true;
  bool metrics = true;
  bool audit = true;
  bool ready = false;             // GET /ready (a Corefile's `ready`): 200 once serving
  std::string flag = "--health";  // what error messages name (a flag, or FILE:LINE)
  // "ADDR:PORT health,metrics,audit,ready" (the roles it has, in that order): for logs, tests and
  // comparing two configurations.
  std::string ToString() const;
};

// The default of `listen`, which stays empty in ServeConfig{}: BuildServeConfig fills it in when
// no --listen is given. (The default resolv.conf is resolvconf::kDefaultPath.)
inline constexpr char kDefaultListen[] = "127.0.0.1:5053";

// The `serve` command's defaults. ServeFlags, and so `nodedns serve --help`, takes them from this
// struct and from cache::CacheSettings, so that each default is declared once.
struct ServeConfig {
  std::vector<SocketAddress> listen;  // BuildServeConfig: kDefaultListen when none is given
  std::vector<ForwardZone> zones;     // longest zone first; "." always present
  unsigned workers = 0;               // 0: one per CPU
  cache::CacheSettings cache;
  std::vector<HttpEndpoint> http;  // --health: one endpoint serving everything
  // The sources whose queries are answered (--allow); others get REFUSED over UDP, and their TCP
  // connections are closed at accept. Default: kDefaultAllow.
  AllowList allow;
  // Export CoreDNS's metric families next to nodedns's (nodecache/: the Corefile has a
  // `prometheus` directive), labelled per listen address and zone.
  bool coredns_metrics = false;
  // Per try in the first round over a zone's servers; the UDP and TCP forwarders double it on
  // each later round.
  uint32_t upstream_timeout_ms = 2000;
  int upstream_tries = 2;
  // Consecutive failed tries (timeout, ICMP error, refused or closed connection) that mark an
  // upstream down for every worker; 0: never. Down upstreams are probed this often.
  int upstream_max_fails = 2;
  uint32_t upstream_health_check_ms = 500;
  // RFC 8767 §5's timers, for names the cache holds expired but within their stale window
  // (--stale-ttl). The client response timer: a client that waited this long for the upstream
  // gets the stale answer while the upstream query goes on (0: only once it failed). 1.8 s is the
  // RFC's suggestion: below the 2 s many stub resolvers wait before they ask again.
  uint32_t stale_answer_client_timeout_ms = 1800;
  // The failure recheck timer: once an upstream query for such a name failed, the name is
  // answered stale at once for this many seconds, without asking upstream (0: ask every time).
  uint32_t stale_refresh_time_s = 30;
  // Overload (proxy/overload.h): once every UDP query read for `overload_interval_ms` had waited
  // in the socket more than `overload_queue_delay_ms`, queries that waited longer are dropped
  // unanswered until an interval passes without one; the queue drains and answers go to fresh
  // queries. 0: never (the kernel drops what overflows the 4 MiB receive queue). 10 ms: about
  // 2,000 queries of one worker's work, far above what a burst that drains leaves.
  uint32_t overload_queue_delay_ms = 10;
  uint32_t overload_interval_ms = 100;
  uint32_t tcp_idle_timeout_ms = 10'000;  // RFC 7766 §6.2.3 suggests seconds, not minutes
  size_t tcp_max_connections = 1024;      // per worker
  size_t tcp_max_inflight = 32;           // queries waiting for upstream, per connection
  // Clients waiting for an upstream answer, per worker (proxy/miss_admission.h); over it a new
  // miss gets SERVFAIL at once. A waiting client holds ~600 bytes (its Client in a miss waiter,
  // ~500, plus the waiter vector's share), so 10,000 bound that memory to ~6 MB per worker, and
  // still let each worker wait on 5,000 misses a second through a 2 s upstream timeout.
  size_t max_waiting_queries = 10'000;
  // The share of max_waiting_queries (percent) one client (an IPv4 address, an IPv6 /64) may hold;
  // over it its new misses get SERVFAIL at once. 100: no per-client limit.
  uint32_t client_miss_share = 25;
  // Queries per client for GET /audit (proxy/client_queries.h): one query in this many, on
  // average, is counted (for this many); 1 counts every query, 0 none.
  uint32_t audit_query_sample = 16;
  // How often worker 0 sweeps a slice of the cache for expired entries; the other workers do not
  // sweep. One sweeper suffices because all workers share the cache.
  uint32_t purge_interval_ms = 1000;
  std::string cluster_domain = "cluster.local";
  std::vector<uint8_t> cluster_domain_wire;  // lowercase wire form of cluster_domain
  // Search-path rewriting (docs/search-rewrite.md).
  bool search_rewrite = true;
  std::vector<std::string> node_search;        // the node's search domains, in order
  std::vector<std::string> search_pins;        // "CIDR=ns" (--search-path)
  uint32_t search_rewrite_deadline_ms = 1500;  // below glibc's 5 s: no client retry meanwhile
  // The answer to CH TXT version.bind, version.server, id.server and hostname.bind; empty: those
  // are REFUSED like every other CH query. Printable ASCII, at most proxy::kMaxChaosText bytes.
  std::string chaos_text;
  // No start-up line on stderr (CoreDNS's -quiet, for node-cache); errors are still logged.
  bool quiet = false;
  // Zero-loss upgrades (proxy/handover.h): the Unix socket where a running nodedns hands its
  // sockets and cache over to the next one, and where this one waits for its own successor.
  // Empty: no handover.
  std::string handover_path;
  // The whole exchange, on either side; past it the new process binds its own sockets.
  uint32_t handover_timeout_ms = 5000;
  // The share of --cache-size whose hottest entries are passed on (0: start cold). The snapshot
  // crosses in chunks of kMaxSnapshotChunk; neither process holds more than one at a time.
  uint32_t handover_cache_percent = 25;
  // After handing over and draining: wait for SIGTERM instead of exiting. Under a kubelet a
  // container that exits is restarted, and the restarted old version would take the sockets back
  // from its successor; node-cache (the DaemonSet) therefore lingers, idle, until the old pod is
  // deleted.
  bool handover_linger = false;
  // The node's pods from /proc every interval (proxy/pod_discovery.h): the search rewrite knows a
  // pod's namespace before its first lookup, and GET /audit/pods reports per pod.
  bool discover_pods = false;
  std::string proc_root = "/proc";
  uint32_t discover_pods_interval_ms = 5000;
};

// Parses "ZONE=UPSTREAM[,UPSTREAM...]" where an upstream is ADDR[:PORT] or the path of a
// resolv.conf (starts with '/'), whose nameservers are taken
// (resolvconf::ReadResolvConfNameservers).
absl::StatusOr<ForwardZone> ParseForwardSpec(absl::string_view spec);

// Lowercase wire form of a presentation-format zone name; error if it is not a valid name.
absl::StatusOr<std::vector<uint8_t>> ZoneToWire(absl::string_view zone);

// Index into `zones` (sorted longest first) of the zone that `qname` (wire, any case) falls under.
size_t MatchZone(std::span<const ForwardZone> zones, std::span<const uint8_t> qname);

// Sorts zones longest first, merges --force-tcp and checks that "." exists.
absl::Status FinishZones(std::vector<ForwardZone>& zones, std::span<const std::string> force_tcp);

// The health settings of `zone`: its own, else the config's.
upstream::UpstreamHealth::Options HealthOptions(const ServeConfig& config, const ForwardZone& zone);

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_CONFIG_H_
