// CoreDNS's metric families as nodedns exports them: histogram buckets, query type and rcode
// labels, label registration, and the rendered text checked by a strict parser of the Prometheus
// text format 0.0.4, against the names, types and label sets of CoreDNS's own definitions
// (plugin/metrics/vars/vars.go, plugin/cache/metrics.go, plugin/forward/metrics.go,
// plugin/pkg/proxy/metrics.go, plugin/reload/metrics.go; node-cache's setup errors). Dashboards
// written for NodeLocal DNSCache read these names; a renamed label breaks them silently.
#include "proxy/coredns_metrics.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "dns/wire.h"

namespace nodedns::proxy {
namespace {

// ---------------------------------------------------------------------------------------------
// A strict reader of the text format
// (https://prometheus.io/docs/instrumenting/exposition_formats/): every line ends in '\n'; comments
// are "# HELP name text" and "# TYPE name type", both before the family's first sample and at most
// once per family; a sample is `name{label="value",...} value` or `name value`, with label names
// [a-zA-Z_][a-zA-Z0-9_]*, values escaping only \\, \" and \n, no label twice, no series twice, and
// its name the family's (for histograms: _bucket, _sum, _count). Errors are collected as strings,
// so that a test prints all of them.

using Labels = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

struct Family {
  std::string help;
  std::string type;
  std::vector<Sample> samples;
};

struct Exposition {
  std::map<std::string, Family> families;
  std::vector<std::string> errors;
  std::vector<std::string> order;  // family names as they appeared
};

bool IsMetricName(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_' || s[0] == ':'))
    return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':')) return false;
  }
  return true;
}

bool IsLabelName(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

bool ParseValue(const std::string& s, double& v) {
  if (s == "+Inf") {
    v = INFINITY;
    return true;
  }
  if (s == "-Inf") {
    v = -INFINITY;
    return true;
  }
  if (s == "NaN") {
    v = NAN;
    return true;
  }
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  v = std::strtod(s.c_str(), &end);
  return errno == 0 && end == s.c_str() + s.size();
}

// The family a sample name belongs to, given the family declared last.
bool BelongsTo(const std::string& sample, const std::string& family, const std::string& type) {
  if (type == "histogram") {
    return sample == family + "_bucket" || sample == family + "_sum" || sample == family + "_count";
  }
  return sample == family;
}

Exposition ParseExposition(const std::string& text) {
  Exposition e;
  auto error = [&](size_t line_no, const std::string& line, const std::string& why) {
    e.errors.push_back("line " + std::to_string(line_no) + ": " + why + ": " + line);
  };
  if (!text.empty() && text.back() != '\n') e.errors.push_back("the text does not end in \\n");
  std::string current;  // the family whose samples may follow
  std::set<std::pair<std::string, Labels>> series;
  size_t line_no = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.empty()) {
      error(line_no, line, "empty line");
      continue;
    }
    if (line[0] == '#') {
      std::istringstream in(line);
      std::string hash, kind, name;
      in >> hash >> kind >> name;
      if (hash != "#" || (kind != "HELP" && kind != "TYPE") || !IsMetricName(name)) {
        error(line_no, line, "a comment that is neither HELP nor TYPE");
        continue;
      }
      std::string rest;
      std::getline(in, rest);
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      const bool known = e.families.contains(name);
      Family& f = e.families[name];
      if (!known) e.order.push_back(name);
      if (!f.samples.empty()) error(line_no, line, "HELP or TYPE after the family's samples");
      if (name != current && known) error(line_no, line, "the family appears twice");
      current = name;
      if (kind == "HELP") {
        if (!f.help.empty()) error(line_no, line, "a second HELP");
        if (rest.empty()) error(line_no, line, "an empty HELP");
        f.help = rest;
      } else {
        if (!f.type.empty()) error(line_no, line, "a second TYPE");
        if (rest != "counter" && rest != "gauge" && rest != "histogram" && rest != "summary" &&
            rest != "untyped") {
          error(line_no, line, "an unknown type");
        }
        f.type = rest;
      }
      continue;
    }
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!IsMetricName(s.name)) {
      error(line_no, line, "a bad metric name");
      continue;
    }
    bool ok = true;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (ok && i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) {
          ok = false;
          break;
        }
        const std::string label = line.substr(i, eq - i);
        if (!IsLabelName(label) || eq + 1 >= line.size() || line[eq + 1] != '"') {
          ok = false;
          break;
        }
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            if (j + 1 >= line.size()) {
              ok = false;
              break;
            }
            const char esc = line[++j];
            if (esc == 'n') {
              value.push_back('\n');
            } else if (esc == '\\' || esc == '"') {
              value.push_back(esc);
            } else {
              ok = false;
              break;
            }
          } else {
            value.push_back(line[j]);
          }
        }
        if (!ok || j >= line.size()) {
          ok = false;
          break;
        }
        if (!s.labels.emplace(label, value).second) {
          error(line_no, line, "label " + label + " twice");
        }
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (!ok || i >= line.size() || line[i] != '}') {
        error(line_no, line, "malformed labels");
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      error(line_no, line, "no single space before the value");
      continue;
    }
    const std::string value = line.substr(i + 1);
    if (value.find(' ') != std::string::npos) {
      error(line_no, line, "a timestamp or more than one value");
      continue;
    }
    if (!ParseValue(value, s.value)) {
      error(line_no, line, "a value that is not a float");
      continue;
    }
    if (current.empty() || e.families[current].type.empty() || e.families[current].help.empty()) {
      error(line_no, line, "a sample before its family's HELP and TYPE");
      continue;
    }
    if (!BelongsTo(s.name, current, e.families[current].type)) {
      error(line_no, line, "a sample of another family than " + current);
      continue;
    }
    if (!series.emplace(s.name, s.labels).second) error(line_no, line, "the same series twice");
    e.families[current].samples.push_back(std::move(s));
  }
  // Histograms: per label set (without le), buckets in increasing `le` with non-decreasing
  // counts, the last one +Inf, and _count equal to it; a _sum.
  for (const auto& [name, f] : e.families) {
    if (f.type != "histogram") continue;
    std::map<Labels, std::vector<std::pair<double, double>>> buckets;
    std::map<Labels, double> counts, sums;
    for (const Sample& s : f.samples) {
      Labels rest = s.labels;
      if (s.name == name + "_bucket") {
        const auto le = rest.find("le");
        double bound = 0;
        if (le == rest.end() || !ParseValue(le->second, bound)) {
          e.errors.push_back(name + ": a bucket without a numeric le");
          continue;
        }
        rest.erase("le");
        buckets[rest].emplace_back(bound, s.value);
      } else if (s.name == name + "_count") {
        counts[rest] = s.value;
      } else {
        sums[rest] = s.value;
      }
    }
    for (const auto& [labels, b] : buckets) {
      for (size_t k = 1; k < b.size(); ++k) {
        if (!(b[k].first > b[k - 1].first)) e.errors.push_back(name + ": le not increasing");
        if (b[k].second < b[k - 1].second) e.errors.push_back(name + ": bucket counts decrease");
      }
      if (b.empty() || !std::isinf(b.back().first)) {
        e.errors.push_back(name + ": the last bucket is not +Inf");
      }
      if (!counts.contains(labels) || b.empty() || counts[labels] != b.back().second) {
        e.errors.push_back(name + ": _count differs from the +Inf bucket");
      }
      if (!sums.contains(labels)) e.errors.push_back(name + ": no _sum");
    }
    if (counts.size() != buckets.size() || sums.size() != buckets.size()) {
      e.errors.push_back(name + ": _count or _sum without buckets");
    }
  }
  return e;
}

std::string Errors(const Exposition& e) {
  std::string out;
  for (const auto& s : e.errors) out += s + "\n";
  return out;
}

// The value of the one sample of `family` named `name` with exactly `labels`; -1 if none.
double Value(const Exposition& e, const std::string& family, const std::string& name,
             const Labels& labels) {
  const auto f = e.families.find(family);
  if (f == e.families.end()) return -1;
  for (const Sample& s : f->second.samples) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  return -1;
}
double Value(const Exposition& e, const std::string& family, const Labels& labels) {
  return Value(e, family, family, labels);
}

// The parser itself must reject what it is meant to catch, or the checks below prove nothing.
TEST(PrometheusTextParserTest, RejectsMalformedExpositions) {
  const std::string good =
      "# HELP x_total Things.\n# TYPE x_total counter\nx_total{a=\"1\",b=\"q\\\"\\n\"} 3\n";
  EXPECT_TRUE(ParseExposition(good).errors.empty()) << Errors(ParseExposition(good));
  for (const std::string bad : std::vector<std::string>{
           "x_total 3\n",                                                        // no HELP/TYPE
           "# TYPE x_total counter\nx_total 3\n",                                // no HELP
           "# HELP x_total T.\n# TYPE x_total counter\nx_total{a=1} 3\n",        // unquoted
           "# HELP x_total T.\n# TYPE x_total counter\nx_total{a=\"1\"}  3\n",   // two spaces
           "# HELP x_total T.\n# TYPE x_total counter\nx_total{a=\"\\t\"} 3\n",  // bad escape
           "# HELP x_total T.\n# TYPE x_total counter\ny_total 3\n",             // other family
           "# HELP x_total T.\n# TYPE x_total counter\nx_total 3\nx_total 4\n",  // twice
           "# HELP x_total T.\n# TYPE x_total counter\nx_total{a=\"1\",a=\"2\"} 3\n",
           "# HELP x_total T.\n# TYPE x_total counter\nx_total three\n",
           "# HELP h T.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
           "h_sum 1\nh_count 1\n",  // decreasing buckets
           "# HELP h T.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
           "h_sum 1\nh_count 3\n",  // _count is not the +Inf bucket
           "# HELP h T.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
       }) {
    EXPECT_FALSE(ParseExposition(bad).errors.empty()) << "accepted:\n" << bad;
  }
}

// ---------------------------------------------------------------------------------------------

TEST(CoreDnsMetricsTest, DurationBucketBoundsAreInclusiveAsPrometheusLe) {
  EXPECT_EQ(DurationBucket(0), 0u);
  EXPECT_EQ(DurationBucket(250'000), 0u);  // exactly 0.25 ms: le="0.00025"
  EXPECT_EQ(DurationBucket(250'001), 1u);
  EXPECT_EQ(DurationBucket(500'000), 1u);
  EXPECT_EQ(DurationBucket(500'001), 2u);
  EXPECT_EQ(DurationBucket(8'192'000'000), kDurationBuckets - 1);  // the last bound, 8.192 s
  EXPECT_EQ(DurationBucket(8'192'000'001), kDurationBuckets);      // +Inf
  EXPECT_EQ(DurationBucket(uint64_t{1} << 62), kDurationBuckets);
  EXPECT_EQ(DurationBucket(UINT64_MAX), kDurationBuckets);
}

TEST(CoreDnsMetricsTest, QtypeLabelIndexKnowsCoreDnsMonitoredTypesAndElseOther) {
  const size_t other = kQtypeLabels - 1;
  // CoreDNS's monitorType (plugin/metrics/vars/monitor.go): each has its own label.
  const uint16_t monitored[] = {
      dns::type::kA, 2,   5,  6, 12, 15, 16, dns::type::kAAAA, 33, 43, 46, 47, 48, 50, 64, 65,
      251,           252, 255};
  std::set<size_t> seen;
  for (uint16_t t : monitored) {
    const size_t i = QtypeLabelIndex(t);
    EXPECT_LT(i, other) << "type " << t;
    seen.insert(i);
  }
  EXPECT_EQ(seen.size(), std::size(monitored)) << "two types share a label";
  for (uint16_t t : {0, 3, 41, 99, 250, 256, 257, 32768, 65535}) {
    EXPECT_EQ(QtypeLabelIndex(static_cast<uint16_t>(t)), other) << "type " << t;
  }
}

TEST(MetricsLabelsTest, ServerLabelIsCoreDnsListenAddressForm) {
  MetricsLabels labels;
  const std::vector<dns::SocketAddress> listen = {*dns::SocketAddress::Parse("127.0.0.1:53"),
                                                  *dns::SocketAddress::Parse("[::1]:53"),
                                                  *dns::SocketAddress::Parse("169.254.20.10:5353")};
  ASSERT_TRUE(labels.SetServers(listen).ok());
  EXPECT_EQ(labels.Get().servers, (std::vector<std::string>{"dns://127.0.0.1:53", "dns://[::1]:53",
                                                            "dns://169.254.20.10:5353"}));
  std::vector<dns::SocketAddress> too_many(kMaxMetricServers + 1, listen[0]);
  EXPECT_FALSE(labels.SetServers(too_many).ok());
}

TEST(MetricsLabelsTest, ZoneAndUpstreamIndicesAreStableAndReused) {
  MetricsLabels labels;
  EXPECT_EQ(*labels.Zone("cluster.local."), 0u);
  EXPECT_EQ(*labels.Zone("."), 1u);
  EXPECT_EQ(*labels.Zone("cluster.local."), 0u);
  EXPECT_EQ(*labels.Zone("in-addr.arpa."), 2u);
  EXPECT_EQ(labels.Get().zones, (std::vector<std::string>{"cluster.local.", ".", "in-addr.arpa."}));
  const auto a = *dns::SocketAddress::Parse("10.96.0.10:53");
  const auto b = *dns::SocketAddress::Parse("[2001:db8::53]:53");
  EXPECT_EQ(*labels.Upstream(a), 0u);
  EXPECT_EQ(*labels.Upstream(b), 1u);
  EXPECT_EQ(*labels.Upstream(a), 0u);
  EXPECT_EQ(labels.Get().upstreams,
            (std::vector<std::string>{"10.96.0.10:53", "[2001:db8::53]:53"}));
}

TEST(MetricsLabelsTest, ZonesAndUpstreamsPastTheLimitAreErrorsAndKeepTheOthers) {
  MetricsLabels labels;
  for (size_t i = 0; i < kMaxMetricZones; ++i) {
    ASSERT_EQ(*labels.Zone("z" + std::to_string(i) + "."), i);
  }
  const auto over = labels.Zone("one-too-many.");
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(*labels.Zone("z3."), 3u) << "a known zone is still found at the limit";
  EXPECT_EQ(labels.Get().zones.size(), kMaxMetricZones);
  for (size_t i = 0; i < kMaxMetricUpstreams; ++i) {
    ASSERT_EQ(*labels.Upstream(*dns::SocketAddress::Parse("10.0.0." + std::to_string(i) + ":53")),
              i);
  }
  EXPECT_EQ(labels.Upstream(*dns::SocketAddress::Parse("10.0.1.1:53")).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// ---------------------------------------------------------------------------------------------

class RenderCoreDnsMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(labels_
                    .SetServers(std::vector<dns::SocketAddress>{
                        *dns::SocketAddress::Parse("169.254.20.10:53"),
                        *dns::SocketAddress::Parse("[::1]:53")})
                    .ok());
    ASSERT_EQ(*labels_.Zone("cluster.local."), 0u);
    ASSERT_EQ(*labels_.Zone("."), 1u);
    ASSERT_EQ(*labels_.Upstream(*dns::SocketAddress::Parse("10.96.0.10:53")), 0u);
    ASSERT_EQ(*labels_.Upstream(*dns::SocketAddress::Parse("[2001:db8::53]:53")), 1u);
  }
  std::string Render(const CoreDnsGauges& g = {}) {
    const CoreDnsCounters* ws[] = {a_.get(), b_.get()};
    return RenderCoreDnsMetrics(ws, labels_.Get(), g);
  }
  Exposition Parsed(const CoreDnsGauges& g = {}) {
    const std::string text = Render(g);
    Exposition e = ParseExposition(text);
    EXPECT_TRUE(e.errors.empty()) << Errors(e) << "\n" << text;
    return e;
  }
  static Labels ServerZone(const std::string& server, const std::string& zone) {
    return {{"server", server}, {"zone", zone}, {"view", ""}};
  }

  MetricsLabels labels_;
  // Two workers: every cell is summed over them. About 200 KiB each: on the heap.
  std::unique_ptr<CoreDnsCounters> a_ = std::make_unique<CoreDnsCounters>();
  std::unique_ptr<CoreDnsCounters> b_ = std::make_unique<CoreDnsCounters>();
};

// The names, types and label names of CoreDNS's families (the files named at the top): what
// dashboards select on. A histogram's series add `le` to its buckets.
TEST_F(RenderCoreDnsMetricsTest, FamiliesHaveCoreDnsNamesTypesAndLabelSets) {
  // Make every family have a sample.
  a_->Reply(0, 0, false, false, dns::type::kA, 0, ReplySource::kCache, 1000);
  a_->CacheHit(0, 0, false);
  a_->CacheMiss(0, 0);
  a_->ServedStale(0, 0);
  a_->Prefetch(0, 0);
  a_->UpstreamReply(0, 0, 1000);
  a_->MaxConcurrentReject();
  CoreDnsGauges g;
  g.healthcheck_failures = {1};
  const Exposition e = Parsed(g);
  using Names = std::set<std::string>;
  const std::map<std::string, std::pair<std::string, Names>> want = {
      // plugin/metrics/vars/vars.go
      {"coredns_dns_requests_total",
       {"counter", {"server", "zone", "view", "proto", "family", "type"}}},
      {"coredns_dns_responses_total", {"counter", {"server", "zone", "view", "rcode", "plugin"}}},
      {"coredns_dns_request_duration_seconds", {"histogram", {"server", "zone", "view"}}},
      // plugin/cache/metrics.go
      {"coredns_cache_entries", {"gauge", {"server", "type", "zones", "view"}}},
      {"coredns_cache_hits_total", {"counter", {"server", "type", "zones", "view"}}},
      {"coredns_cache_misses_total", {"counter", {"server", "zones", "view"}}},
      {"coredns_cache_requests_total", {"counter", {"server", "zones", "view"}}},
      {"coredns_cache_served_stale_total", {"counter", {"server", "zones", "view"}}},
      {"coredns_cache_prefetch_total", {"counter", {"server", "zones", "view"}}},
      // plugin/pkg/proxy/metrics.go
      {"coredns_proxy_request_duration_seconds", {"histogram", {"proxy_name", "to", "rcode"}}},
      {"coredns_proxy_healthcheck_failures_total", {"counter", {"proxy_name", "to"}}},
      // plugin/forward/metrics.go, plugin/reload/metrics.go
      {"coredns_forward_max_concurrent_rejects_total", {"counter", {}}},
      {"coredns_forward_healthcheck_broken_total", {"counter", {}}},
      {"coredns_reload_failed_total", {"counter", {}}},
      // k8s.io/dns cmd/node-cache
      {"coredns_nodecache_setup_errors_total", {"counter", {"errortype"}}},
  };
  for (const auto& [name, type_labels] : want) {
    SCOPED_TRACE(name);
    const auto f = e.families.find(name);
    ASSERT_NE(f, e.families.end()) << "missing";
    EXPECT_EQ(f->second.type, type_labels.first);
    ASSERT_FALSE(f->second.samples.empty());
    for (const Sample& s : f->second.samples) {
      Names got;
      for (const auto& [k, v] : s.labels) {
        if (k != "le") got.insert(k);
      }
      EXPECT_EQ(got, type_labels.second) << s.name;
      EXPECT_EQ(s.labels.contains("le"), s.name.ends_with("_bucket")) << s.name;
    }
  }
  for (const auto& [name, f] : e.families) {
    EXPECT_TRUE(want.contains(name)) << "a family CoreDNS does not have: " << name;
  }
}

TEST_F(RenderCoreDnsMetricsTest, RequestsAndResponsesAreSummedOverWorkersAndZeroSeriesOmitted) {
  a_->Reply(0, 0, false, false, dns::type::kA, dns::rcode::kNoError, ReplySource::kCache, 1000);
  b_->Reply(0, 0, false, false, dns::type::kA, dns::rcode::kNoError, ReplySource::kCache, 1000);
  b_->Reply(0, 0, false, false, dns::type::kA, dns::rcode::kNoError, ReplySource::kCache, 1000);
  a_->Reply(1, 1, true, true, dns::type::kAAAA, dns::rcode::kNxDomain, ReplySource::kForward, 1000);
  const Exposition e = Parsed();
  EXPECT_EQ(Value(e, "coredns_dns_requests_total",
                  {{"server", "dns://169.254.20.10:53"},
                   {"zone", "cluster.local."},
                   {"view", ""},
                   {"proto", "udp"},
                   {"family", "1"},
                   {"type", "A"}}),
            3);
  EXPECT_EQ(Value(e, "coredns_dns_requests_total",
                  {{"server", "dns://[::1]:53"},
                   {"zone", "."},
                   {"view", ""},
                   {"proto", "tcp"},
                   {"family", "2"},
                   {"type", "AAAA"}}),
            1);
  Labels cache_ok = ServerZone("dns://169.254.20.10:53", "cluster.local.");
  cache_ok.insert({{"rcode", "NOERROR"}, {"plugin", "cache"}});
  EXPECT_EQ(Value(e, "coredns_dns_responses_total", cache_ok), 3);
  Labels forward_nx = ServerZone("dns://[::1]:53", ".");
  forward_nx.insert({{"rcode", "NXDOMAIN"}, {"plugin", "forward"}});
  EXPECT_EQ(Value(e, "coredns_dns_responses_total", forward_nx), 1);
  // Only the series that counted something: CoreDNS's client library never shows a label set
  // nothing was observed with.
  EXPECT_EQ(e.families.at("coredns_dns_requests_total").samples.size(), 2u);
  EXPECT_EQ(e.families.at("coredns_dns_responses_total").samples.size(), 2u);
  EXPECT_EQ(e.families.at("coredns_dns_request_duration_seconds").samples.size(),
            2 * (kDurationBuckets + 1 + 2));
  EXPECT_TRUE(e.families.at("coredns_cache_hits_total").samples.empty());
  EXPECT_TRUE(e.families.at("coredns_proxy_request_duration_seconds").samples.empty());
}

TEST_F(RenderCoreDnsMetricsTest, DurationHistogramIsCumulativeWithCoreDnsBucketsInSeconds) {
  a_->Reply(0, 0, false, false, 1, 0, ReplySource::kCache, 100'000);         // 0.1 ms
  b_->Reply(0, 0, false, false, 1, 0, ReplySource::kCache, 250'000);         // on the first bound
  b_->Reply(0, 0, false, false, 1, 0, ReplySource::kCache, 300'000);         // 0.3 ms
  a_->Reply(0, 0, false, false, 1, 0, ReplySource::kCache, 10'000'000'000);  // 10 s: +Inf only
  const Exposition e = Parsed();
  const std::string h = "coredns_dns_request_duration_seconds";
  const Labels base = ServerZone("dns://169.254.20.10:53", "cluster.local.");
  std::vector<std::string> les;
  std::vector<double> counts;
  for (const Sample& s : e.families.at(h).samples) {
    if (s.name != h + "_bucket") continue;
    EXPECT_EQ(s.labels.size(), base.size() + 1);
    les.push_back(s.labels.at("le"));
    counts.push_back(s.value);
  }
  // CoreDNS's plugin.TimeBuckets: ExponentialBuckets(0.00025, 2, 16), as Go prints them.
  EXPECT_EQ(les, (std::vector<std::string>{"0.00025", "0.0005", "0.001", "0.002", "0.004", "0.008",
                                           "0.016", "0.032", "0.064", "0.128", "0.256", "0.512",
                                           "1.024", "2.048", "4.096", "8.192", "+Inf"}));
  std::vector<double> want(kDurationBuckets + 1, 3);
  want[0] = 2;
  want[kDurationBuckets] = 4;
  EXPECT_EQ(counts, want);
  EXPECT_DOUBLE_EQ(Value(e, h, h + "_sum", base), 10.00065);
  EXPECT_EQ(Value(e, h, h + "_count", base), 4);
}

TEST_F(RenderCoreDnsMetricsTest, RcodeLabelsAreMiekgDnsNames) {
  for (uint8_t rc = 0; rc < 16; ++rc) {
    (rc % 2 ? a_ : b_)->Reply(0, 0, false, false, 1, rc, ReplySource::kForward, 1000);
    a_->UpstreamReply(1, rc, 1000);
  }
  const Exposition e = Parsed();
  // CoreDNS prints rcode.ToString(rc): miekg/dns's RcodeToString, else "RCODE" and the number.
  // 11 is RFC 8490's DSOTYPENI there (miekg/dns v1.1.72, CoreDNS's go.mod).
  const char* names[16] = {"NOERROR",  "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",  "REFUSED",
                           "YXDOMAIN", "YXRRSET", "NXRRSET",  "NOTAUTH",  "NOTZONE", "DSOTYPENI",
                           "RCODE12",  "RCODE13", "RCODE14",  "RCODE15"};
  for (const char* name : names) {
    Labels l = ServerZone("dns://169.254.20.10:53", "cluster.local.");
    l.insert({{"rcode", name}, {"plugin", "forward"}});
    EXPECT_EQ(Value(e, "coredns_dns_responses_total", l), 1) << name;
    const std::string h = "coredns_proxy_request_duration_seconds";
    EXPECT_EQ(Value(e, h, h + "_count",
                    {{"proxy_name", "forward"}, {"to", "[2001:db8::53]:53"}, {"rcode", name}}),
              1)
        << name;
  }
  EXPECT_EQ(e.families.at("coredns_dns_responses_total").samples.size(), 16u);
}

TEST_F(RenderCoreDnsMetricsTest, PluginLabelNamesWhatWroteTheReply) {
  const std::pair<ReplySource, const char*> sources[] = {{ReplySource::kLocal, ""},
                                                         {ReplySource::kCache, "cache"},
                                                         {ReplySource::kForward, "forward"},
                                                         {ReplySource::kRewrite, "rewrite"}};
  for (size_t i = 0; i < std::size(sources); ++i) {
    for (size_t n = 0; n <= i; ++n) a_->Reply(0, 1, false, false, 1, 0, sources[i].first, 1000);
  }
  const Exposition e = Parsed();
  for (size_t i = 0; i < std::size(sources); ++i) {
    Labels l = ServerZone("dns://169.254.20.10:53", ".");
    l.insert({{"rcode", "NOERROR"}, {"plugin", sources[i].second}});
    EXPECT_EQ(Value(e, "coredns_dns_responses_total", l), static_cast<double>(i + 1))
        << "plugin=\"" << sources[i].second << "\"";
  }
}

TEST_F(RenderCoreDnsMetricsTest, QueryTypesAreLabelledByNameOrOther) {
  const std::pair<uint16_t, const char*> types[] = {
      {dns::type::kA, "A"}, {dns::type::kAAAA, "AAAA"},
      {65, "HTTPS"},        {64, "SVCB"},
      {255, "ANY"},         {33, "SRV"},
      {12, "PTR"},          {256, "other"},
      {99, "other"},        {41, "other"}};
  for (const auto& [t, name] : types) a_->Reply(0, 0, false, false, t, 0, ReplySource::kCache, 1);
  const Exposition e = Parsed();
  auto requests = [&](const char* type) {
    Labels l = ServerZone("dns://169.254.20.10:53", "cluster.local.");
    l.insert({{"proto", "udp"}, {"family", "1"}, {"type", type}});
    return Value(e, "coredns_dns_requests_total", l);
  };
  for (const char* name : {"A", "AAAA", "HTTPS", "SVCB", "ANY", "SRV", "PTR"}) {
    EXPECT_EQ(requests(name), 1) << name;
  }
  EXPECT_EQ(requests("other"), 3);
}

TEST_F(RenderCoreDnsMetricsTest, CacheFamiliesCountPerServerAndZone) {
  a_->CacheHit(0, 0, false);
  b_->CacheHit(0, 0, false);
  b_->CacheHit(0, 0, true);
  a_->CacheMiss(1, 1);
  b_->CacheMiss(1, 1);
  b_->ServedStale(0, 1);
  a_->Prefetch(0, 0);
  CoreDnsGauges g;
  g.cache_success_entries = 42;
  g.cache_denial_entries = 7;
  const Exposition e = Parsed(g);
  auto zones = [](const std::string& server, const std::string& zone) {
    return Labels{{"server", server}, {"zones", zone}, {"view", ""}};
  };
  Labels success = zones("dns://169.254.20.10:53", "cluster.local.");
  success["type"] = "success";
  Labels denial = success;
  denial["type"] = "denial";
  EXPECT_EQ(Value(e, "coredns_cache_hits_total", success), 2);
  EXPECT_EQ(Value(e, "coredns_cache_hits_total", denial), 1);
  EXPECT_EQ(Value(e, "coredns_cache_misses_total", zones("dns://[::1]:53", ".")), 2);
  EXPECT_EQ(Value(e, "coredns_cache_served_stale_total", zones("dns://169.254.20.10:53", ".")), 1);
  EXPECT_EQ(
      Value(e, "coredns_cache_prefetch_total", zones("dns://169.254.20.10:53", "cluster.local.")),
      1);
  EXPECT_EQ(e.families.at("coredns_cache_misses_total").samples.size(), 1u);
  // requests = hits of both types + misses, per server and zone.
  EXPECT_EQ(
      Value(e, "coredns_cache_requests_total", zones("dns://169.254.20.10:53", "cluster.local.")),
      3);
  EXPECT_EQ(Value(e, "coredns_cache_requests_total", zones("dns://[::1]:53", ".")), 2);
  EXPECT_EQ(e.families.at("coredns_cache_requests_total").samples.size(), 2u);
  EXPECT_EQ(Value(e, "coredns_cache_entries",
                  {{"server", ""}, {"type", "success"}, {"zones", ""}, {"view", ""}}),
            42);
  EXPECT_EQ(Value(e, "coredns_cache_entries",
                  {{"server", ""}, {"type", "denial"}, {"zones", ""}, {"view", ""}}),
            7);
}

TEST_F(RenderCoreDnsMetricsTest, UpstreamRepliesFormTheProxyHistogramPerUpstreamAndRcode) {
  a_->UpstreamReply(0, dns::rcode::kNoError, 1'000'000);  // 1 ms
  b_->UpstreamReply(0, dns::rcode::kNoError, 3'000'000);  // 3 ms
  b_->UpstreamReply(1, dns::rcode::kServFail, 100'000);
  const Exposition e = Parsed();
  const std::string h = "coredns_proxy_request_duration_seconds";
  const Labels ok{{"proxy_name", "forward"}, {"to", "10.96.0.10:53"}, {"rcode", "NOERROR"}};
  EXPECT_EQ(Value(e, h, h + "_count", ok), 2);
  EXPECT_DOUBLE_EQ(Value(e, h, h + "_sum", ok), 0.004);
  Labels le = ok;
  le["le"] = "0.001";
  EXPECT_EQ(Value(e, h, h + "_bucket", le), 1);
  le["le"] = "0.004";
  EXPECT_EQ(Value(e, h, h + "_bucket", le), 2);
  EXPECT_EQ(Value(e, h, h + "_count",
                  {{"proxy_name", "forward"}, {"to", "[2001:db8::53]:53"}, {"rcode", "SERVFAIL"}}),
            1);
  // Two label sets, each with 17 buckets, a sum and a count.
  EXPECT_EQ(e.families.at(h).samples.size(), 2 * (kDurationBuckets + 1 + 2));
}

TEST_F(RenderCoreDnsMetricsTest, UnlabelledCountersAndSetupErrorsAreAlwaysPresent) {
  CoreDnsGauges g;
  g.reload_failed = 3;
  g.setup_errors[kSetupErrorConfigMap] = 2;
  Exposition e = Parsed(g);
  EXPECT_EQ(Value(e, "coredns_forward_max_concurrent_rejects_total", {}), 0);
  EXPECT_EQ(Value(e, "coredns_reload_failed_total", {}), 3);
  for (const char* type :
       {"iptables", "iptables_lock", "interface_add", "interface_check", "configmap"}) {
    EXPECT_EQ(Value(e, "coredns_nodecache_setup_errors_total", {{"errortype", type}}),
              std::string(type) == "configmap" ? 2 : 0)
        << type;
  }
  a_->MaxConcurrentReject();
  b_->MaxConcurrentReject();
  b_->MaxConcurrentReject();
  e = Parsed(g);
  EXPECT_EQ(Value(e, "coredns_forward_max_concurrent_rejects_total", {}), 3);
}

TEST_F(RenderCoreDnsMetricsTest, HealthcheckFailuresPerUpstreamAndBrokenCount) {
  CoreDnsGauges g;
  g.healthcheck_failures = {0, 4};  // by upstream label index
  g.healthcheck_broken = 2;
  const Exposition e = Parsed(g);
  const std::string f = "coredns_proxy_healthcheck_failures_total";
  EXPECT_EQ(Value(e, f, {{"proxy_name", "forward"}, {"to", "[2001:db8::53]:53"}}), 4);
  EXPECT_EQ(e.families.at(f).samples.size(), 1u) << "an upstream without failures is shown";
  EXPECT_EQ(Value(e, "coredns_forward_healthcheck_broken_total", {}), 2);
}

// Zone names come from a Corefile: a quote or backslash in one must not break the exposition.
TEST_F(RenderCoreDnsMetricsTest, LabelValuesAreEscaped) {
  const std::string odd = "we\"ird\\zone\n.";
  ASSERT_EQ(*labels_.Zone(odd), 2u);
  a_->CacheMiss(0, 2);
  const Exposition e = Parsed();
  EXPECT_EQ(Value(e, "coredns_cache_misses_total",
                  {{"server", "dns://169.254.20.10:53"}, {"zones", odd}, {"view", ""}}),
            1);
}

TEST_F(RenderCoreDnsMetricsTest, EmptyLabelRegistryRendersOnlyUnlabelledFamilies) {
  MetricsLabels none;
  a_->Reply(0, 0, false, false, 1, 0, ReplySource::kCache, 1000);
  const CoreDnsCounters* ws[] = {a_.get(), b_.get()};
  const std::string text = RenderCoreDnsMetrics(ws, none.Get(), {});
  const Exposition e = ParseExposition(text);
  EXPECT_TRUE(e.errors.empty()) << Errors(e) << text;
  EXPECT_TRUE(e.families.at("coredns_dns_requests_total").samples.empty());
  EXPECT_EQ(Value(e, "coredns_reload_failed_total", {}), 0);
}

// Every family the renderer writes has its row in docs/deploy.md, so that the guide operators
// build dashboards from cannot fall behind the code.
TEST(CoreDnsMetricsDocsTest, EveryFamilyIsInTheDeployGuide) {
  std::ifstream in(NODEDNS_SOURCE_DIR "/docs/deploy.md");
  ASSERT_TRUE(in) << "docs/deploy.md is missing";
  std::stringstream doc;
  doc << in.rdbuf();
  MetricsLabels labels;
  ASSERT_TRUE(labels.SetServers({}).ok());
  const std::string out = RenderCoreDnsMetrics({}, labels.Get(), CoreDnsGauges{});
  std::istringstream lines(out);
  std::string line;
  int families = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    const std::string name = line.substr(7, line.find(' ', 7) - 7);
    ++families;
    EXPECT_NE(doc.str().find("`" + name + "`"), std::string::npos)
        << name << " is not in docs/deploy.md";
  }
  EXPECT_GE(families, 13);
}

}  // namespace
}  // namespace nodedns::proxy
