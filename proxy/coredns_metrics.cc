// CoreDNS's metric families; see coredns_metrics.h.
#include "proxy/coredns_metrics.h"

#include <uv.h>

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace nodedns::proxy {

namespace {

// CoreDNS's monitored query types (plugin/metrics/vars), then "other".
struct QtypeName {
  uint16_t type;
  const char* name;
};
constexpr QtypeName kQtypes[kQtypeLabels - 1] = {
    {1, "A"},      {2, "NS"},     {5, "CNAME"},   {6, "SOA"},    {12, "PTR"},
    {15, "MX"},    {16, "TXT"},   {28, "AAAA"},   {33, "SRV"},   {43, "DS"},
    {46, "RRSIG"}, {47, "NSEC"},  {48, "DNSKEY"}, {50, "NSEC3"}, {64, "SVCB"},
    {65, "HTTPS"}, {251, "IXFR"}, {252, "AXFR"},  {255, "ANY"},
};
constexpr size_t kOtherQtype = kQtypeLabels - 1;

// qtype (all monitored ones are below 256) → label index.
struct QtypeTable {
  uint8_t index[256];
  constexpr QtypeTable() : index() {
    for (auto& i : index) i = kOtherQtype;
    for (size_t i = 0; i < kQtypeLabels - 1; ++i) index[kQtypes[i].type] = static_cast<uint8_t>(i);
  }
};
constexpr QtypeTable kQtypeTable;

const char* QtypeLabel(size_t i) { return i < kOtherQtype ? kQtypes[i].name : "other"; }

std::string RcodeLabel(size_t rcode) {
  // miekg/dns's RcodeToString, which CoreDNS prints (plugin/pkg/rcode): 11 is RFC 8490's.
  static constexpr const char* kNames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                           "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
                                           "NXRRSET", "NOTAUTH", "NOTZONE",  "DSOTYPENI"};
  if (rcode < std::size(kNames)) return kNames[rcode];
  return absl::StrCat("RCODE", rcode);
}

constexpr const char* kSourceLabels[kReplySources] = {"", "cache", "forward", "rewrite"};

std::string Seconds(uint64_t ns) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(ns) / 1e9);
  return buf;
}

std::string BucketBound(size_t b) {
  if (b == kDurationBuckets) return "+Inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", kFirstBucketSeconds * static_cast<double>(uint64_t{1} << b));
  return buf;
}

void Header(std::string& out, const char* name, const char* help, const char* type) {
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

}  // namespace

// Prometheus label values escape backslash, double quote and newline.
std::string PromLabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

void DeferredDurations::Flush(CoreDnsCounters& c, uint64_t start_ns) {
  if (n_ == 0) return;
  const uint64_t now = uv_hrtime();
  const uint64_t ns = now > start_ns ? now - start_ns : 0;
  for (size_t i = 0; i < n_; ++i) c.ObserveDuration(cells_[i], ns);
  n_ = 0;
}

size_t QtypeLabelIndex(uint16_t qtype) {
  return qtype < 256 ? kQtypeTable.index[qtype] : kOtherQtype;
}

CoreDnsCounters::CoreDnsCounters()
    : requests_(kMaxMetricServers * kMaxMetricZones * 2 * 2 * kQtypeLabels),
      responses_(kMaxMetricServers * kMaxMetricZones * kRcodeLabels * kReplySources),
      durations_(kMaxMetricServers * kMaxMetricZones),
      cache_hits_(kMaxMetricServers * kMaxMetricZones * 2),
      cache_misses_(kMaxMetricServers * kMaxMetricZones),
      served_stale_(kMaxMetricServers * kMaxMetricZones),
      prefetches_(kMaxMetricServers * kMaxMetricZones),
      upstream_(kMaxMetricUpstreams * kRcodeLabels) {}

absl::Status MetricsLabels::SetServers(std::span<const dns::SocketAddress> listen) {
  if (listen.size() > kMaxMetricServers) {
    return absl::InvalidArgumentError(absl::StrCat(listen.size(), " listen addresses; at most ",
                                                   kMaxMetricServers, " with CoreDNS metrics"));
  }
  std::lock_guard lock(mu_);
  labels_.servers.clear();
  for (const auto& a : listen) labels_.servers.push_back(absl::StrCat("dns://", a.ToString()));
  return absl::OkStatus();
}

absl::StatusOr<size_t> MetricsLabels::Zone(const std::string& name) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < labels_.zones.size(); ++i) {
    if (labels_.zones[i] == name) return i;
  }
  if (labels_.zones.size() == kMaxMetricZones) {
    return absl::ResourceExhaustedError(
        absl::StrCat("zone ", name, ": more than ", kMaxMetricZones,
                     " distinct zones since start (their metrics are kept); restart to reset"));
  }
  labels_.zones.push_back(name);
  return labels_.zones.size() - 1;
}

absl::StatusOr<size_t> MetricsLabels::Upstream(const dns::SocketAddress& addr) {
  const std::string name = addr.ToString();
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < labels_.upstreams.size(); ++i) {
    if (labels_.upstreams[i] == name) return i;
  }
  if (labels_.upstreams.size() == kMaxMetricUpstreams) {
    return absl::ResourceExhaustedError(
        absl::StrCat("upstream ", name, ": more than ", kMaxMetricUpstreams,
                     " distinct upstreams since start (their metrics are kept); restart to reset"));
  }
  labels_.upstreams.push_back(name);
  return labels_.upstreams.size() - 1;
}

MetricsLabels::Snapshot MetricsLabels::Get() const {
  std::lock_guard lock(mu_);
  return labels_;
}

class CoreDnsMetricsRenderer {
 public:
  CoreDnsMetricsRenderer(std::span<const CoreDnsCounters* const> workers,
                         const MetricsLabels::Snapshot& labels)
      : w_(workers), l_(labels) {}

  std::string Render(const CoreDnsGauges& g) {
    std::string out;
    const size_t servers = l_.servers.size(), zones = l_.zones.size();
    auto server_zone = [&](size_t s, size_t z) {
      return absl::StrCat("server=\"", PromLabelValue(l_.servers[s]), "\",zone=\"",
                          PromLabelValue(l_.zones[z]), "\",view=\"\"");
    };
    Header(out, "coredns_dns_requests_total",
           "Counter of DNS requests made per zone, protocol and family.", "counter");
    for (size_t s = 0; s < servers; ++s) {
      for (size_t z = 0; z < zones; ++z) {
        for (size_t tcp = 0; tcp < 2; ++tcp) {
          for (size_t v6 = 0; v6 < 2; ++v6) {
            for (size_t t = 0; t < kQtypeLabels; ++t) {
              const size_t i = (((s * kMaxMetricZones + z) * 2 + tcp) * 2 + v6) * kQtypeLabels + t;
              const uint64_t n = Sum(&CoreDnsCounters::requests_, i);
              if (n == 0) continue;
              absl::StrAppend(&out, "coredns_dns_requests_total{", server_zone(s, z), ",proto=\"",
                              tcp ? "tcp" : "udp", "\",family=\"", v6 ? "2" : "1", "\",type=\"",
                              QtypeLabel(t), "\"} ", n, "\n");
            }
          }
        }
      }
    }
    Header(out, "coredns_dns_responses_total", "Counter of response status codes.", "counter");
    for (size_t s = 0; s < servers; ++s) {
      for (size_t z = 0; z < zones; ++z) {
        for (size_t rc = 0; rc < kRcodeLabels; ++rc) {
          for (size_t src = 0; src < kReplySources; ++src) {
            const size_t i = ((s * kMaxMetricZones + z) * kRcodeLabels + rc) * kReplySources + src;
            const uint64_t n = Sum(&CoreDnsCounters::responses_, i);
            if (n == 0) continue;
            absl::StrAppend(&out, "coredns_dns_responses_total{", server_zone(s, z), ",rcode=\"",
                            RcodeLabel(rc), "\",plugin=\"", kSourceLabels[src], "\"} ", n, "\n");
          }
        }
      }
    }
    Header(out, "coredns_dns_request_duration_seconds",
           "Histogram of the time (in seconds) each request took per zone.", "histogram");
    for (size_t s = 0; s < servers; ++s) {
      for (size_t z = 0; z < zones; ++z) {
        Histogram(out, "coredns_dns_request_duration_seconds", server_zone(s, z),
                  &CoreDnsCounters::durations_, s * kMaxMetricZones + z);
      }
    }
    auto server_zones = [&](size_t s, size_t z) {
      return absl::StrCat("server=\"", PromLabelValue(l_.servers[s]), "\",zones=\"",
                          PromLabelValue(l_.zones[z]), "\",view=\"\"");
    };
    Header(out, "coredns_cache_entries", "The number of elements in the cache.", "gauge");
    // One cache for all zones and listen addresses (docs/deploy.md): its entries carry empty
    // server and zones labels, so that a sum over them counts each entry once.
    absl::StrAppend(&out,
                    "coredns_cache_entries{server=\"\",type=\"success\",zones=\"\",view=\"\"} ",
                    g.cache_success_entries, "\n");
    absl::StrAppend(&out,
                    "coredns_cache_entries{server=\"\",type=\"denial\",zones=\"\",view=\"\"} ",
                    g.cache_denial_entries, "\n");
    Header(out, "coredns_cache_hits_total", "The count of cache hits.", "counter");
    for (size_t s = 0; s < servers; ++s) {
      for (size_t z = 0; z < zones; ++z) {
        for (size_t d = 0; d < 2; ++d) {
          const uint64_t n = Sum(&CoreDnsCounters::cache_hits_, (s * kMaxMetricZones + z) * 2 + d);
          if (n == 0) continue;
          absl::StrAppend(&out, "coredns_cache_hits_total{server=\"", PromLabelValue(l_.servers[s]),
                          "\",type=\"", d ? "denial" : "success", "\",zones=\"",
                          PromLabelValue(l_.zones[z]), "\",view=\"\"} ", n, "\n");
        }
      }
    }
    // requests = hits + misses, as CoreDNS counts them; dashboards derive misses from it.
    Header(out, "coredns_cache_requests_total", "The count of cache requests.", "counter");
    for (size_t s = 0; s < servers; ++s) {
      for (size_t z = 0; z < zones; ++z) {
        const size_t cell = s * kMaxMetricZones + z;
        const uint64_t n = Sum(&CoreDnsCounters::cache_hits_, cell * 2) +
                           Sum(&CoreDnsCounters::cache_hits_, cell * 2 + 1) +
                           Sum(&CoreDnsCounters::cache_misses_, cell);
        if (n == 0) continue;
        absl::StrAppend(&out, "coredns_cache_requests_total{", server_zones(s, z), "} ", n, "\n");
      }
    }
    PerServerZone(out, "coredns_cache_misses_total",
                  "The count of cache misses. Deprecated, derive misses from cache hits/requests "
                  "counters.",
                  &CoreDnsCounters::cache_misses_, server_zones);
    PerServerZone(out, "coredns_cache_served_stale_total",
                  "The number of requests served from stale cache entries.",
                  &CoreDnsCounters::served_stale_, server_zones);
    PerServerZone(out, "coredns_cache_prefetch_total",
                  "The number of times the cache has prefetched a cached item.",
                  &CoreDnsCounters::prefetches_, server_zones);
    Header(out, "coredns_proxy_request_duration_seconds",
           "Histogram of the time each request took.", "histogram");
    for (size_t u = 0; u < l_.upstreams.size(); ++u) {
      for (size_t rc = 0; rc < kRcodeLabels; ++rc) {
        Histogram(out, "coredns_proxy_request_duration_seconds",
                  absl::StrCat("proxy_name=\"forward\",to=\"", PromLabelValue(l_.upstreams[u]),
                               "\",rcode=\"", RcodeLabel(rc), "\""),
                  &CoreDnsCounters::upstream_, u * kRcodeLabels + rc);
      }
    }
    Header(out, "coredns_forward_max_concurrent_rejects_total",
           "Counter of the number of queries rejected because the concurrent queries were at "
           "maximum.",
           "counter");
    uint64_t rejects = 0;
    for (const CoreDnsCounters* w : w_) rejects += w->max_concurrent_rejects_.Get();
    absl::StrAppend(&out, "coredns_forward_max_concurrent_rejects_total ", rejects, "\n");
    // CoreDNS 1.11 moved the per-upstream count to the proxy package (proxy_name, to) and kept
    // the all-down count under forward, which is what the request durations above follow.
    Header(out, "coredns_proxy_healthcheck_failures_total",
           "Counter of the number of failed healthchecks.", "counter");
    for (size_t u = 0; u < g.healthcheck_failures.size() && u < l_.upstreams.size(); ++u) {
      if (g.healthcheck_failures[u] == 0) continue;
      absl::StrAppend(&out, "coredns_proxy_healthcheck_failures_total{proxy_name=\"forward\",to=\"",
                      PromLabelValue(l_.upstreams[u]), "\"} ", g.healthcheck_failures[u], "\n");
    }
    Header(out, "coredns_forward_healthcheck_broken_total",
           "Counter of the number of complete failures of the healthchecks.", "counter");
    absl::StrAppend(&out, "coredns_forward_healthcheck_broken_total ", g.healthcheck_broken, "\n");
    Header(out, "coredns_reload_failed_total", "Counter of the number of failed reload attempts.",
           "counter");
    absl::StrAppend(&out, "coredns_reload_failed_total ", g.reload_failed, "\n");
    Header(out, "coredns_nodecache_setup_errors_total",
           "The number of errors during periodic network setup for node-cache", "counter");
    for (size_t i = 0; i < std::size(kSetupErrorTypes); ++i) {
      absl::StrAppend(&out, "coredns_nodecache_setup_errors_total{errortype=\"",
                      kSetupErrorTypes[i], "\"} ", g.setup_errors[i], "\n");
    }
    return out;
  }

 private:
  uint64_t Sum(std::vector<Counter> CoreDnsCounters::*cells, size_t i) const {
    uint64_t n = 0;
    for (const CoreDnsCounters* w : w_) n += (w->*cells)[i].Get();
    return n;
  }

  void Histogram(std::string& out, const char* name, const std::string& labels,
                 std::vector<HistogramCells> CoreDnsCounters::*cells, size_t i) const {
    std::array<uint64_t, kDurationBuckets + 1> counts{};
    uint64_t sum_ns = 0;
    for (const CoreDnsCounters* w : w_) {
      const HistogramCells& h = (w->*cells)[i];
      for (size_t b = 0; b <= kDurationBuckets; ++b) counts[b] += h.buckets[b].Get();
      sum_ns += h.sum_ns.Get();
    }
    uint64_t total = 0;
    for (uint64_t c : counts) total += c;
    if (total == 0) return;
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kDurationBuckets; ++b) {
      cumulative += counts[b];
      absl::StrAppend(&out, name, "_bucket{", labels, ",le=\"", BucketBound(b), "\"} ", cumulative,
                      "\n");
    }
    absl::StrAppend(&out, name, "_sum{", labels, "} ", Seconds(sum_ns), "\n");
    absl::StrAppend(&out, name, "_count{", labels, "} ", total, "\n");
  }

  template <typename LabelFn>
  void PerServerZone(std::string& out, const char* name, const char* help,
                     std::vector<Counter> CoreDnsCounters::*cells, LabelFn labels) const {
    Header(out, name, help, "counter");
    for (size_t s = 0; s < l_.servers.size(); ++s) {
      for (size_t z = 0; z < l_.zones.size(); ++z) {
        const uint64_t n = Sum(cells, s * kMaxMetricZones + z);
        if (n == 0) continue;
        absl::StrAppend(&out, name, "{", labels(s, z), "} ", n, "\n");
      }
    }
  }

  std::span<const CoreDnsCounters* const> w_;
  const MetricsLabels::Snapshot& l_;
};

std::string RenderCoreDnsMetrics(std::span<const CoreDnsCounters* const> workers,
                                 const MetricsLabels::Snapshot& labels,
                                 const CoreDnsGauges& gauges) {
  return CoreDnsMetricsRenderer(workers, labels).Render(gauges);
}

}  // namespace nodedns::proxy
