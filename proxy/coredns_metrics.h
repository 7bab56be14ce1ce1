// CoreDNS's metric families, with its names, labels and histogram buckets, so that dashboards and
// alerts written for NodeLocal DNSCache (a CoreDNS build) keep working when nodedns replaces it
// (docs/deploy.md lists them). They sit next to the nodedns_* families on the same /metrics.
//
// Counting follows metrics.h: every cell has one writer, its worker, which increments with a
// relaxed load and store; a scrape sums the workers'. Label sets are fixed-size arrays indexed by
// small integers (listen address, zone, query type, rcode), so the hit path does no lookup, no
// allocation and no read-modify-write: about five counter increments and one clock read per reply
// when on (bench/compare measures it; docs/deploy.md has the figure). `nodedns serve` leaves them
// off (WorkerContext::coredns is null) and pays one predictable branch.
//
// Label values are registered by the server (MetricsLabels) and only ever grow, so that a reload
// that renames a zone never makes a worker's cell mean another zone.
#ifndef NODEDNS_PROXY_COREDNS_METRICS_H_
#define NODEDNS_PROXY_COREDNS_METRICS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/counter.h"
#include "dns/socket_address.h"

namespace nodedns::proxy {

inline constexpr size_t kMaxMetricServers = 8;     // listen addresses
inline constexpr size_t kMaxMetricZones = 16;      // zone names configured since start
inline constexpr size_t kMaxMetricUpstreams = 32;  // upstream addresses configured since start
// CoreDNS's TimeBuckets: 0.25 ms doubling 16 times (to ~8.2 s); the cells past the last bound
// count +Inf.
inline constexpr size_t kDurationBuckets = 16;
inline constexpr double kFirstBucketSeconds = 0.00025;
// The query types CoreDNS labels by name; all others are "other" (the last index).
inline constexpr size_t kQtypeLabels = 20;
// Header rcodes 0..15; CoreDNS names 0..11 (miekg/dns's names) and prints others as RCODEn.
inline constexpr size_t kRcodeLabels = 16;

// Which part of nodedns wrote a reply: the `plugin` label of coredns_dns_responses_total.
enum class ReplySource : uint8_t {
  kLocal,    // "" : errors and local answers, as CoreDNS's server writes them itself
  kCache,    // "cache"
  kForward,  // "forward"
  kRewrite,  // "rewrite": a search-path rewrite's synthesized answer
};
inline constexpr size_t kReplySources = 4;

// A Prometheus label value: backslash, double quote and newline escaped.
std::string PromLabelValue(std::string_view v);

// Index into the kQtypeLabels names for a query type.
size_t QtypeLabelIndex(uint16_t qtype);

// Bucket index (0..kDurationBuckets, the last one +Inf) of a duration: the first bound not below
// it, as Prometheus histograms count.
inline size_t DurationBucket(uint64_t ns) {
  constexpr uint64_t kFirst = 250'000;  // kFirstBucketSeconds in ns
  size_t b = 0;
  for (uint64_t bound = kFirst; b < kDurationBuckets && ns > bound; bound <<= 1) ++b;
  return b;
}

// A histogram's cells: non-cumulative bucket counts (cumulated when rendered) and the sum.
struct HistogramCells {
  std::array<Counter, kDurationBuckets + 1> buckets;
  Counter sum_ns;
  void Observe(uint64_t ns) {
    buckets[DurationBucket(ns)].Inc();
    sum_ns.Inc(ns);
  }
};

// One worker's cells. Allocated once (about 200 KiB), never resized.
class CoreDnsCounters {
 public:
  CoreDnsCounters();

  // Every reply sent to a client: requests_total, responses_total, request_duration_seconds.
  void Reply(size_t server, size_t zone, bool tcp, bool v6, uint16_t qtype, uint8_t rcode,
             ReplySource source, uint64_t duration_ns) {
    ReplyWithoutDuration(server, zone, tcp, v6, qtype, rcode, source);
    durations_[DurationCell(server, zone)].Observe(duration_ns);
  }
  // Reply() in two halves, for replies whose duration is observed later (DeferredDurations).
  void ReplyWithoutDuration(size_t server, size_t zone, bool tcp, bool v6, uint16_t qtype,
                            uint8_t rcode, ReplySource source) {
    requests_[(((server * kMaxMetricZones + zone) * 2 + tcp) * 2 + v6) * kQtypeLabels +
              QtypeLabelIndex(qtype)]
        .Inc();
    responses_[((server * kMaxMetricZones + zone) * kRcodeLabels + (rcode & 15)) * kReplySources +
               static_cast<size_t>(source)]
        .Inc();
  }
  static size_t DurationCell(size_t server, size_t zone) { return server * kMaxMetricZones + zone; }
  void ObserveDuration(size_t cell, uint64_t ns) { durations_[cell].Observe(ns); }
  void CacheHit(size_t server, size_t zone, bool denial) {
    cache_hits_[(server * kMaxMetricZones + zone) * 2 + denial].Inc();
  }
  void CacheMiss(size_t server, size_t zone) { Cell(cache_misses_, server, zone).Inc(); }
  void ServedStale(size_t server, size_t zone) { Cell(served_stale_, server, zone).Inc(); }
  void Prefetch(size_t server, size_t zone) { Cell(prefetches_, server, zone).Inc(); }
  // One upstream exchange that got a reply: coredns_proxy_request_duration_seconds.
  void UpstreamReply(size_t upstream, uint8_t rcode, uint64_t rtt_ns) {
    upstream_[upstream * kRcodeLabels + (rcode & 15)].Observe(rtt_ns);
  }
  void MaxConcurrentReject() { max_concurrent_rejects_.Inc(); }

 private:
  friend class CoreDnsMetricsRenderer;
  static Counter& Cell(std::vector<Counter>& v, size_t server, size_t zone) {
    return v[server * kMaxMetricZones + zone];
  }
  std::vector<Counter> requests_;          // [server][zone][proto][family][qtype]
  std::vector<Counter> responses_;         // [server][zone][rcode][source]
  std::vector<HistogramCells> durations_;  // [server][zone]
  std::vector<Counter> cache_hits_;        // [server][zone][success, denial]
  std::vector<Counter> cache_misses_;      // [server][zone]
  std::vector<Counter> served_stale_;
  std::vector<Counter> prefetches_;
  std::vector<HistogramCells> upstream_;  // [upstream][rcode]
  Counter max_concurrent_rejects_;
};

// The request durations of the replies a front end builds while serving one batch of queries
// (hits, local answers): observed once the batch is served, with one clock read for all of them
// rather than one per reply. The duration each gets, from the batch's receipt to the end of its
// serving, is an upper bound of its own. A clock read was ~70 instructions of a ~1000-instruction
// hit (callgrind, bench/callgrind_ab.sh).
class DeferredDurations {
 public:
  static constexpr size_t kCapacity = 64;  // a UDP batch; a full list is flushed early
  void Add(CoreDnsCounters& c, uint16_t cell, uint64_t start_ns) {
    if (n_ == kCapacity) Flush(c, start_ns);
    cells_[n_++] = cell;
  }
  void Flush(CoreDnsCounters& c, uint64_t start_ns);

 private:
  uint16_t cells_[kCapacity];
  size_t n_ = 0;
};

// The label values behind the indices, registered by the server's main thread and read by the
// scrape thread (under a mutex: neither is on the data path). Indices are stable for the
// process's life.
class MetricsLabels {
 public:
  // The `server` label of each listen address, in order: "dns://ADDR:PORT" as CoreDNS writes it.
  absl::Status SetServers(std::span<const dns::SocketAddress> listen);
  // Index of a zone name ("cluster.local."), registering it if new; error past kMaxMetricZones.
  absl::StatusOr<size_t> Zone(const std::string& name);
  // Index of an upstream address ("10.96.0.10:53"), registering it if new.
  absl::StatusOr<size_t> Upstream(const dns::SocketAddress& addr);

  struct Snapshot {
    std::vector<std::string> servers, zones, upstreams;
  };
  Snapshot Get() const;

 private:
  mutable std::mutex mu_;
  Snapshot labels_;
};

// Gauges that are not per-worker counters, filled in by the server at scrape time.
struct CoreDnsGauges {
  uint64_t cache_success_entries = 0;
  uint64_t cache_denial_entries = 0;
  uint64_t reload_failed = 0;
  std::array<uint64_t, 5> setup_errors{};  // by SetupErrorType
  // Upstream health (upstream/health.h): failed probes by upstream label index, summed over
  // zones; times all of a zone's upstreams were down.
  std::vector<uint64_t> healthcheck_failures;
  uint64_t healthcheck_broken = 0;
};

// coredns_nodecache_setup_errors_total's `errortype` values, as node-cache exports them (all five
// are always present, at zero until counted).
inline constexpr const char* kSetupErrorTypes[5] = {"iptables", "iptables_lock", "interface_add",
                                                    "interface_check", "configmap"};
// Indices into kSetupErrorTypes.
inline constexpr size_t kSetupErrorIptables = 0;  // -setupiptables had to restore rules, or failed
inline constexpr size_t kSetupErrorInterfaceAdd = 2;    // -setupinterface had to add something
inline constexpr size_t kSetupErrorInterfaceCheck = 3;  // the interface could not be checked
inline constexpr size_t kSetupErrorConfigMap = 4;

// Prometheus text format 0.0.4 of every coredns_* family: the workers' cells summed, series
// whose count is zero left out (as CoreDNS's client library does for unseen label sets).
std::string RenderCoreDnsMetrics(std::span<const CoreDnsCounters* const> workers,
                                 const MetricsLabels::Snapshot& labels,
                                 const CoreDnsGauges& gauges);

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_COREDNS_METRICS_H_
