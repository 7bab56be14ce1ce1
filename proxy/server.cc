// Server lifecycle; see server.h.
#include "proxy/server.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "audit/live_audit.h"
#include "proxy/metrics.h"
#include "proxy/wasted_queries.h"
#include "upstream/udp_forwarder.h"

namespace nodedns::proxy {

std::unique_ptr<HandoverClient> FindPredecessor(const ServeConfig& config) {
  if (config.handover_path.empty()) return nullptr;
  auto client = HandoverClient::Request(config.handover_path, config.handover_timeout_ms);
  if (client->outcome() == HandoverClient::Outcome::kFailed) {
    std::fprintf(stderr,
                 "nodedns: handover from the process at %s failed (%s); binding next to it\n",
                 config.handover_path.c_str(), client->error().c_str());
    std::fflush(stderr);
  }
  return client;
}

namespace {

// Upstreams the kernel has no route to start anyway (upstream::RouteMissing); said once here
// rather than by every worker's forwarder.
void WarnUnroutedUpstreams(const ServeConfig& c) {
  for (const ForwardZone& zone : c.zones) {
    for (const SocketAddress& a : zone.upstreams) {
      const int fd = socket(a.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      const int err = connect(fd, a.get(), a.length) == 0 ? 0 : errno;
      if (upstream::RouteMissing(err)) {
        std::fprintf(stderr,
                     "nodedns: upstream %s (zone %s): %s; its queries fail, and it is marked "
                     "down, until a route to it exists\n",
                     a.ToString().c_str(), zone.zone.c_str(), std::strerror(err));
      }
      close(fd);
    }
  }
}

}  // namespace

Server::Server(ServeConfig config)
    : config_(std::make_shared<const ServeConfig>(std::move(config))) {}

absl::StatusOr<std::unique_ptr<Server>> Server::Create(
    ServeConfig config, std::unique_ptr<HandoverClient> predecessor) {
  if (auto st = config.cache.Validate(); !st.ok()) return st;
  if (config.workers == 0) config.workers = std::max(1u, std::thread::hardware_concurrency());
  if (config.listen.empty()) {
    return absl::InvalidArgumentError("--listen: no address to listen on");
  }
  WarnUnroutedUpstreams(config);
  std::unique_ptr<Server> s(new Server(ServeConfig{}));
  if (config.coredns_metrics) {
    // Labels first: the listen addresses, zones and upstreams get their indices.
    if (auto st = s->labels_.SetServers(config.listen); !st.ok()) return st;
    if (auto st = s->AssignMetricsLabels(config); !st.ok()) return st;
  }
  s->ShareZoneCounts(config);
  s->config_ = std::make_shared<const ServeConfig>(std::move(config));
  const ServeConfig& c = *s->config_;
  s->coredns_metrics_ = c.coredns_metrics;
  s->cluster_domain_ = c.cluster_domain;
  s->cache_ = std::make_unique<cache::ResponseCache>(c.cache);
  if (c.search_rewrite) {
    auto rewrite = SharedSearchRewrite::Create(c.cluster_domain, c.node_search, c.search_pins);
    if (!rewrite.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("search rewrite (--cluster-domain, --node-search, --search-path): ",
                       rewrite.status().message()));
    }
    s->rewrite_ = *std::move(rewrite);
  }
  if (c.discover_pods) {
    SharedSearchRewrite* rewrite = s->rewrite_.get();
    const std::string zone = c.cluster_domain;
    const std::vector<std::string> node_search = c.node_search;
    s->discovery_ = std::make_unique<PodDiscovery>(
        PodDiscovery::Options{.proc = c.proc_root, .interval_ms = c.discover_pods_interval_ms},
        [rewrite, zone, node_search](const podscan::ScanResult& scan) {
          if (rewrite == nullptr) return;
          const auto clients = DiscoveredClients(scan, zone, node_search);
          if (absl::Status st = rewrite->SetDiscovered(clients); !st.ok()) {
            std::fprintf(stderr, "nodedns: --discover-pods: %s\n",
                         std::string(st.message()).c_str());
          }
        });
  }

  // Per listen address and kind, the sockets the predecessor served on: worker i takes every
  // one whose index is i modulo the worker count, so that none is left unread whatever the two
  // processes' worker counts; a worker with none of its own opens one next to them
  // (SO_REUSEPORT).
  std::vector<WorkerSockets> per_worker(c.workers);
  auto close_all = [&per_worker] {
    for (WorkerSockets& w : per_worker) {
      for (const ListenFd& l : w.udp) close(l.fd);
      for (const ListenFd& l : w.tcp) close(l.fd);
    }
  };
  for (size_t a = 0; a < c.listen.size(); ++a) {
    for (bool tcp : {false, true}) {
      std::vector<int> inherited;
      if (predecessor) inherited = predecessor->Take(c.listen[a], tcp);
      s->inherited_sockets_ += inherited.size();
      for (size_t j = 0; j < inherited.size(); ++j) {
        WorkerSockets& w = per_worker[j % c.workers];
        (tcp ? w.tcp : w.udp).push_back({inherited[j], static_cast<uint8_t>(a)});
      }
      for (size_t i = inherited.size(); i < c.workers; ++i) {
        auto fd = OpenSocket(c.listen[a], tcp);
        if (!fd.ok()) {
          close_all();
          return absl::Status(fd.status().code(),
                              absl::StrCat("--listen: ", fd.status().message()));
        }
        WorkerSockets& w = per_worker[i];
        (tcp ? w.tcp : w.udp).push_back({*fd, static_cast<uint8_t>(a)});
      }
    }
  }
  for (unsigned i = 0; i < c.workers; ++i) {
    s->workers_.push_back(std::make_unique<Worker>(static_cast<int>(i), s->config_, *s->cache_,
                                                   s->rewrite_.get(), std::move(per_worker[i])));
  }
  // The HTTP endpoints too are bound here, before anything runs: an unusable address exits 2
  // with one line, like an unusable --listen.
  for (const HttpEndpoint& e : c.http) {
    Server* self = s.get();
    s->http_.push_back(std::make_unique<HttpServer>(
        e.addr,
        [self, e](std::string_view method, std::string_view path) {
          return self->HandleHttp(e, method, path);
        },
        e.flag));
    std::vector<int> inherited;
    if (predecessor) inherited = predecessor->Take(e.addr, true);
    s->inherited_sockets_ += inherited.size();
    for (size_t j = 1; j < inherited.size(); ++j) close(inherited[j]);
    if (auto st = s->http_.back()->Listen(inherited.empty() ? -1 : inherited[0]); !st.ok()) {
      return st;
    }
  }
  if (predecessor) {
    if (predecessor->outcome() == HandoverClient::Outcome::kReceived) {
      const uint64_t import_start = internal::MonotonicMs();
      s->ImportSnapshot(*predecessor);
      s->handover_ms_ = internal::MonotonicMs() - import_start;
      s->predecessor_ = std::move(predecessor);
    } else {
      s->handover_failed_ = predecessor->outcome() == HandoverClient::Outcome::kFailed;
    }
  }
  return s;
}

Server::~Server() {
  for (auto& w : workers_) w->Join();
}

std::string Server::RenderMetrics() const {
  std::vector<const WorkerCounters*> counters;
  for (const auto& w : workers_) counters.push_back(&w->counters());
  const cache::CacheStats st = cache_->Stats();
  SharedSearchRewrite::Stats rw;
  if (rewrite_) rw = rewrite_->GetStats(uv_hrtime() / 1'000'000);
  const Gauge gauges[] = {
      {"nodedns_search_rewrite_learned_clients",
       "Clients whose search path (namespace) is currently known from their own queries",
       static_cast<double>(rw.learned_clients)},
      {"nodedns_search_rewrite_clients_learned_total",
       "Times a client's namespace was learned (a relearn counts again)",
       static_cast<double>(rw.counters.clients_learned), "counter"},
      {"nodedns_search_rewrite_clients_unlearned_total",
       "Learned clients dropped because their queries named another namespace",
       static_cast<double>(rw.counters.unlearned), "counter"},
      {"nodedns_search_rewrite_clients_quarantined_total",
       "Client addresses that changed namespace twice within the learning TTL (shared addresses)",
       static_cast<double>(rw.counters.quarantined), "counter"},
      {"nodedns_search_rewrite_discovered_clients",
       "Pod addresses whose namespace pod discovery read from the pod's resolv.conf",
       static_cast<double>(rw.discovered_clients)},
      {"nodedns_search_rewrite_discovery_conflicts_total",
       "Learning pairs that named another namespace than discovery (the address is quarantined)",
       static_cast<double>(rw.counters.discovery_conflicts), "counter"},
      {"nodedns_cache_entries", "Entries in the cache", static_cast<double>(st.entries)},
      {"nodedns_cache_bytes", "Accounted bytes in the cache (entries, keys, tables)",
       static_cast<double>(st.bytes)},
      {"nodedns_cache_capacity_bytes", "Configured cache capacity",
       static_cast<double>(st.capacity_bytes)},
      {"nodedns_cache_retired_bytes", "Bytes retired and waiting for a QSBR grace period",
       static_cast<double>(st.retired_bytes)},
      {"nodedns_cache_evictions", "Entries evicted to make room (since start)",
       static_cast<double>(st.evictions)},
      {"nodedns_cache_expired_evictions", "Expired entries removed (since start)",
       static_cast<double>(st.expired_evictions)},
      {"nodedns_workers", "Worker threads", static_cast<double>(workers_.size())},
      {"nodedns_reload_failures_total",
       "Configuration reloads that failed; the previous configuration kept serving",
       static_cast<double>(reload_failures()), "counter"},
      {"nodedns_handover_inherited_sockets",
       "Sockets this process took over from its predecessor at start (--handover)",
       static_cast<double>(inherited_sockets_)},
      {"nodedns_handover_inherited_cache_entries",
       "Cache entries loaded from the predecessor's snapshot at start (--handover)",
       static_cast<double>(inherited_cache_entries_)},
      {"nodedns_handover_fallback",
       "1 when a predecessor answered but the handover failed and this process bound its own "
       "sockets next to it",
       handover_failed_ ? 1.0 : 0.0},
      {"nodedns_handover_failures_total",
       "Handovers to a successor that failed (timeout, successor gone); this process kept serving",
       static_cast<double>(handovers_failed_.load(std::memory_order_relaxed)), "counter"},
  };
  std::string out = RenderPrometheus(counters, gauges);
  RenderPodMetrics(out);
  CoreDnsGauges g;
  RenderUpstreamHealth(out, coredns_metrics_ ? &g : nullptr);
  if (coredns_metrics_) {
    std::vector<const CoreDnsCounters*> cd;
    for (const auto& w : workers_) cd.push_back(w->coredns());
    g.cache_denial_entries = st.negative_entries;
    g.cache_success_entries = st.entries - st.negative_entries;
    g.reload_failed = reload_failures();
    for (size_t i = 0; i < setup_errors_.size(); ++i) {
      g.setup_errors[i] = setup_errors_[i].load(std::memory_order_relaxed);
    }
    out += RenderCoreDnsMetrics(cd, labels_.Get(), g);
  }
  return out;
}

HttpResponse Server::HandleHttp(const HttpEndpoint& e, std::string_view method,
                                std::string_view path) const {
  if (method != "GET") return HttpResponse{405, "text/plain; charset=utf-8", "GET only\n"};
  // CoreDNS's health and ready plugins answer "OK"; the workers run before the endpoints start.
  if ((e.health && path == "/health") || (e.ready && path == "/ready")) {
    return HttpResponse{200, "text/plain; charset=utf-8", "OK\n"};
  }
  if (e.audit && path == "/audit.txt") {
    std::vector<std::vector<WastedQueryTracker::ClientCount>> snaps;
    std::vector<std::vector<MissAdmission::ShedClient>> shed;
    for (const auto& w : workers_) {
      snaps.push_back(w->WastedSnapshot());
      shed.push_back(w->ShedSnapshot());
    }
    return HttpResponse{200, "text/plain; charset=utf-8",
                        RenderWastedQueriesTable(snaps, cluster_domain_) + RenderShedTable(shed)};
  }
  if (e.audit && path == "/audit") return HttpResponse{200, "application/json", AuditJson()};
  if (e.audit && path == "/audit/pods") {
    if (!discovery_) {
      return HttpResponse{404, "text/plain; charset=utf-8",
                          "GET /audit/pods needs serve --discover-pods on\n"};
    }
    std::optional<audit::NodeReport> report = PodReport();
    if (!report.has_value()) {
      return HttpResponse{503, "text/plain; charset=utf-8", "no scan of the node yet\n"};
    }
    std::ostringstream out;
    audit::RenderNodeJson(*report, out);
    return HttpResponse{200, "application/json", out.str()};
  }
  if (e.metrics && path == "/metrics") {
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", RenderMetrics()};
  }
  return HttpResponse{404, "text/plain; charset=utf-8", "not found\n"};
}

std::string Server::AuditJson() const {
  std::vector<std::vector<WastedQueryTracker::ClientCount>> snaps;
  std::vector<std::vector<WastedQueryTracker::ClientCount>> rewrites;
  std::vector<std::vector<MissAdmission::ShedClient>> shed;
  std::vector<std::vector<ClientQuerySampler::ClientCount>> queries;
  uint32_t query_sample = 0;
  for (const auto& w : workers_) {
    snaps.push_back(w->WastedSnapshot());
    rewrites.push_back(w->RewrittenSnapshot());
    queries.push_back(w->QueriesSnapshot());
    query_sample = w->query_sample();
    shed.push_back(w->ShedSnapshot());
  }
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
  return RenderWastedQueriesJson(
      snaps, cluster_domain_,
      absl::StrCat("\"uptime_seconds\":", uptime.count(), ",", RenderRewritesJson(rewrites), ",",
                   RenderClientQueriesJson(queries, query_sample), ",", RenderShedJson(shed)));
}

std::optional<audit::NodeReport> Server::PodReport() const {
  if (!discovery_) return std::nullopt;
  std::shared_ptr<const podscan::ScanResult> scan = discovery_->Last();
  if (!scan) return std::nullopt;
  // The document GET /audit serves, read back: one reader of the counts, not two.
  absl::StatusOr<audit::LiveAudit> live = audit::ParseLiveAudit(AuditJson(), "self");
  return audit::AuditNode(*scan, discovery_->options().proc, audit::DefaultSampleNames(),
                          live.ok() ? &*live : nullptr);
}

void Server::RenderPodMetrics(std::string& out) const {
  const PodDiscovery::Stats st = discovery_ ? discovery_->stats() : PodDiscovery::Stats{};
  absl::StrAppend(
      &out,
      "# HELP nodedns_pod_discovery_scans_total Scans of /proc for the node's pods "
      "(--discover-pods)\n# TYPE nodedns_pod_discovery_scans_total counter\n"
      "nodedns_pod_discovery_scans_total ",
      st.scans,
      "\n# HELP nodedns_pod_discovery_failures_total Scans that could not read the proc root\n"
      "# TYPE nodedns_pod_discovery_failures_total counter\n"
      "nodedns_pod_discovery_failures_total ",
      st.failures,
      "\n# HELP nodedns_pod_discovery_skipped_total /proc entries skipped by the scans: gone "
      "mid-scan or unreadable\n# TYPE nodedns_pod_discovery_skipped_total counter\n"
      "nodedns_pod_discovery_skipped_total{reason=\"vanished\"} ",
      st.vanished, "\nnodedns_pod_discovery_skipped_total{reason=\"denied\"} ", st.denied,
      "\n# HELP nodedns_pod_discovery_scan_seconds Duration of the last scan\n"
      "# TYPE nodedns_pod_discovery_scan_seconds gauge\nnodedns_pod_discovery_scan_seconds ",
      absl::StrFormat("%.6f", st.last_scan_seconds),
      "\n# HELP nodedns_pods_discovered Pods found by the last scan (hostNetwork pods excluded)\n"
      "# TYPE nodedns_pods_discovered gauge\nnodedns_pods_discovered ",
      st.pods,
      "\n# HELP nodedns_pods_with_finding Discovered pods by resolv.conf finding (docs/audit.md)\n"
      "# TYPE nodedns_pods_with_finding gauge\n");
  std::optional<audit::NodeReport> report = PodReport();
  std::vector<std::pair<uint64_t, std::string>> waste;
  if (report.has_value()) {
    for (const audit::PodReport& p : report->pods) {
      if (p.observed.has_value() && p.observed->wasted > 0) {
        std::string name = p.pod.name.empty() ? p.pod.cgroup.pod_uid : p.pod.name;
        const std::string ns = p.file.k8s.has_value() ? p.file.k8s->namespace_name : "";
        waste.emplace_back(p.observed->wasted,
                           absl::StrCat("pod=\"", PromLabelValue(name), "\",namespace=\"",
                                        PromLabelValue(ns), "\""));
      }
    }
    for (const audit::FindingPods& f : audit::PodsByFinding(*report)) {
      absl::StrAppend(&out, "nodedns_pods_with_finding{finding=\"", PromLabelValue(f.id), "\"} ",
                      f.pods.size(), "\n");
    }
  }
  // Top pods only: a series per pod would grow with the node's churn (bounded cardinality).
  std::sort(waste.begin(), waste.end(), [](const auto& a, const auto& b) { return a > b; });
  if (waste.size() > kTopWastefulPods) waste.resize(kTopWastefulPods);
  absl::StrAppend(&out,
                  "# HELP nodedns_pod_wasted_queries NXDOMAIN replies below the cluster "
                  "domain to a discovered pod, since start (the ",
                  kTopWastefulPods, " largest)\n# TYPE nodedns_pod_wasted_queries gauge\n");
  for (const auto& [n, labels] : waste) {
    absl::StrAppend(&out, "nodedns_pod_wasted_queries{", labels, "} ", n, "\n");
  }
}

void Server::RenderUpstreamHealth(std::string& out, CoreDnsGauges* coredns) const {
  std::lock_guard lock(health_mu_);
  for (size_t f = 0; f < std::size(kUpstreamHealthFamilies); ++f) {
    const HealthFamily& family = kUpstreamHealthFamilies[f];
    absl::StrAppend(&out, "# HELP ", family.metric, " ", family.help, "\n# TYPE ", family.metric,
                    " ", family.type, "\n");
    for (const HealthZone& z : health_zones_) {
      if (std::string_view(family.labels) == "zone") {  // nodedns_upstream_all_down_total
        absl::StrAppend(&out, family.metric, "{zone=\"", z.zone, "\"} ", z.health->all_down(),
                        "\n");
        continue;
      }
      for (size_t i = 0; i < z.upstreams.size(); ++i) {
        const upstream::UpstreamHealth::ServerStats st = z.health->Stats(i);
        const uint64_t values[] = {st.up, st.marked_down, st.probes, st.probe_failures};
        absl::StrAppend(&out, family.metric, "{zone=\"", z.zone, "\",upstream=\"",
                        z.upstreams[i].ToString(), "\"} ", values[f], "\n");
      }
    }
  }
  if (coredns == nullptr) return;
  for (const HealthZone& z : health_zones_) {
    coredns->healthcheck_broken += z.health->all_down();
    for (size_t i = 0; i < z.upstreams.size() && i < z.metrics_upstreams.size(); ++i) {
      const size_t to = z.metrics_upstreams[i];
      if (to >= coredns->healthcheck_failures.size()) {
        coredns->healthcheck_failures.resize(to + 1);
      }
      coredns->healthcheck_failures[to] += z.health->Stats(i).probe_failures;
    }
  }
}

void Server::ShareZoneCounts(ServeConfig& c) {
  for (ForwardZone& z : c.zones) {
    z.in_flight = z.max_concurrent != 0 ? std::make_shared<std::atomic<int64_t>>(0) : nullptr;
    // Upstream health is node-wide: one worker's timeouts spare the others theirs. A reload
    // keeps a zone's state (and its counters) while its upstreams and settings stay the same.
    const upstream::UpstreamHealth::Options opts = HealthOptions(c, z);
    std::string key =
        absl::StrCat(z.zone, " ", opts.max_fails, " ", opts.check_interval_ms, " ", opts.probe_rd,
                     " ", std::string(z.health_check_qname.begin(), z.health_check_qname.end()));
    for (const auto& u : z.upstreams) absl::StrAppend(&key, " ", u.ToString());
    std::lock_guard lock(health_mu_);
    auto& kept = health_[key];
    if (!kept) kept = std::make_shared<upstream::UpstreamHealth>(z.upstreams.size(), opts);
    z.health = kept;
  }
  std::lock_guard lock(health_mu_);
  // What the metrics show: the zones of this configuration only.
  std::erase_if(health_, [&c](const auto& kv) {
    for (const ForwardZone& z : c.zones) {
      if (z.health == kv.second) return false;
    }
    return true;
  });
  health_zones_.clear();
  for (const ForwardZone& z : c.zones) {
    health_zones_.push_back({z.zone, z.upstreams, z.metrics_upstreams, z.health});
  }
}

absl::Status Server::AssignMetricsLabels(ServeConfig& c) {
  for (ForwardZone& z : c.zones) {
    const std::string name = z.zone == "." ? "." : absl::StrCat(z.zone, ".");
    auto zi = labels_.Zone(name);
    if (!zi.ok()) return zi.status();
    z.metrics_zone = *zi;
    z.metrics_upstreams.clear();
    for (const auto& u : z.upstreams) {
      auto ui = labels_.Upstream(u);
      if (!ui.ok()) return ui.status();
      z.metrics_upstreams.push_back(*ui);
    }
  }
  return absl::OkStatus();
}

std::string RestartOnlyDifference(const ServeConfig& a, const ServeConfig& b) {
  auto addrs = [](const std::vector<SocketAddress>& v) {
    std::string out;
    for (const auto& x : v) absl::StrAppend(&out, x.ToString(), " ");
    return out;
  };
  auto endpoints = [](const std::vector<HttpEndpoint>& v) {
    std::string out;
    for (const auto& e : v) {
      absl::StrAppend(&out, e.ToString(), ";");
    }
    return out;
  };
  const cache::CacheSettings &ca = a.cache, &cb = b.cache;
  if (addrs(a.listen) != addrs(b.listen)) return "the listen addresses (bind, port)";
  if (endpoints(a.http) != endpoints(b.http)) return "the HTTP addresses (health, prometheus)";
  if (a.coredns_metrics != b.coredns_metrics) return "whether CoreDNS metrics are exported";
  if (ca.capacity_bytes != cb.capacity_bytes || ca.shards != cb.shards) {
    return "the cache's size (the sum of the cache blocks' capacities)";
  }
  if (ca.min_ttl != cb.min_ttl || ca.max_ttl != cb.max_ttl ||
      ca.max_negative_ttl != cb.max_negative_ttl || ca.servfail_ttl != cb.servfail_ttl ||
      ca.stale_ttl != cb.stale_ttl || ca.prefetch_min_hits != cb.prefetch_min_hits ||
      ca.prefetch_percent != cb.prefetch_percent) {
    return "the cache's default rules";
  }
  if (a.search_rewrite != b.search_rewrite || a.cluster_domain != b.cluster_domain ||
      a.node_search != b.node_search || a.search_pins != b.search_pins) {
    return "the search-path rewrite's settings";
  }
  if (a.discover_pods != b.discover_pods || a.proc_root != b.proc_root ||
      a.discover_pods_interval_ms != b.discover_pods_interval_ms) {
    return "pod discovery";
  }
  if (a.audit_query_sample != b.audit_query_sample) return "the audit's query sampling";
  if (a.tcp_idle_timeout_ms != b.tcp_idle_timeout_ms ||
      a.tcp_max_connections != b.tcp_max_connections || a.tcp_max_inflight != b.tcp_max_inflight) {
    return "the client TCP limits";
  }
  return "";
}

void Server::SetConfigSource(std::unique_ptr<ConfigSource> source) { source_ = std::move(source); }

absl::Status Server::Reload(ServeConfig next) {
  if (next.workers == 0) next.workers = config_->workers;
  if (next.workers != config_->workers) {
    return absl::FailedPreconditionError("the number of workers changed; it needs a restart");
  }
  // The cache is sized once. A Corefile's blocks add up to a new size when a stub domain comes or
  // goes; refusing such a reload would refuse the stub domain, so the size stays, said out loud.
  if (next.cache.capacity_bytes != config_->cache.capacity_bytes) {
    std::fprintf(stderr,
                 "nodedns: the cache stays at %zu MiB until a restart (the new configuration "
                 "asks for %zu MiB)\n",
                 config_->cache.capacity_bytes >> 20, next.cache.capacity_bytes >> 20);
    next.cache.capacity_bytes = config_->cache.capacity_bytes;
  }
  if (const std::string diff = RestartOnlyDifference(*config_, next); !diff.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(diff, " changed; that needs a restart"));
  }
  if (next.coredns_metrics) {
    if (auto st = AssignMetricsLabels(next); !st.ok()) return st;
  }
  WarnUnroutedUpstreams(next);
  // New counts: queries in flight on the old upstreams do not count against the new limit.
  ShareZoneCounts(next);
  config_ = std::make_shared<const ServeConfig>(std::move(next));
  for (auto& w : workers_) w->Reconfigure(config_);
  return absl::OkStatus();
}

void Server::ReloadFromSource() {
  if (!source_ || handed_over_) return;
  auto next = source_->Load();
  absl::Status st = next.ok() ? Reload(*std::move(next)) : next.status();
  if (!st.ok()) {
    reload_failed_.fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stderr, "nodedns: reload failed, still serving the previous configuration: %s\n",
                 std::string(st.message()).c_str());
  } else {
    std::fprintf(stderr, "nodedns: reloaded the configuration (%zu zones)\n",
                 config_->zones.size());
  }
  std::fflush(stderr);
}

void Server::SetPeriodic(uint64_t interval_ms, std::function<void()> fn) {
  periodic_ms_ = interval_ms;
  periodic_ = std::move(fn);
}

absl::Status Server::Run() {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &shutdown_, [](uv_async_t* h) { uv_stop(h->loop); });
  uv_signal_init(&loop_, &sigint_);
  uv_signal_init(&loop_, &sigterm_);
  auto on_signal = [](uv_signal_t* h, int) { uv_stop(h->loop); };
  uv_signal_start(&sigint_, on_signal, SIGINT);
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  // SIGUSR1 reloads (node-cache's -reloadwithsignal, and operators' habit); without a source it
  // is ignored rather than fatal.
  uv_signal_init(&loop_, &sigusr1_);
  sigusr1_.data = this;
  uv_signal_start(
      &sigusr1_, [](uv_signal_t* h, int) { static_cast<Server*>(h->data)->ReloadFromSource(); },
      SIGUSR1);
  uv_timer_init(&loop_, &poll_timer_);
  poll_timer_.data = this;
  if (source_ && source_->poll_interval_ms() != 0) {
    const uint64_t every = std::max<uint32_t>(100, source_->poll_interval_ms());
    uv_timer_start(
        &poll_timer_,
        [](uv_timer_t* h) {
          auto* self = static_cast<Server*>(h->data);
          if (self->source_->Changed()) self->ReloadFromSource();
        },
        every, every);
  }
  uv_timer_init(&loop_, &periodic_timer_);
  periodic_timer_.data = this;
  if (periodic_) {
    const uint64_t every = std::max<uint64_t>(100, periodic_ms_);
    uv_timer_start(
        &periodic_timer_, [](uv_timer_t* h) { static_cast<Server*>(h->data)->periodic_(); }, every,
        every);
  }
  // A client that goes away mid-reply must not kill the process.
  signal(SIGPIPE, SIG_IGN);

  absl::Status status;
  for (auto& w : workers_) {
    status = w->Start();
    if (!status.ok()) break;
  }
  for (auto& h : http_) {
    if (status.ok()) status = h->Start();
  }
  // The listener for the next process is bound before on_serving_ may drop root: PATH's
  // directory is the node's (a hostPath), writable by root only.
  if (status.ok() && !config_->handover_path.empty()) StartHandoverListener();
  if (status.ok() && on_serving_) status = on_serving_();
  if (status.ok() && discovery_) discovery_->Start();
  uv_timer_init(&loop_, &drain_timer_);
  drain_timer_.data = this;
  if (status.ok() && predecessor_) {
    // The workers read the inherited sockets: the predecessor may stop reading them.
    if (absl::Status st = predecessor_->Confirm(); !st.ok()) {
      std::fprintf(stderr, "nodedns: handover: could not tell the previous process: %s\n",
                   std::string(st.message()).c_str());
    }
    if (!config_->quiet) {
      std::fprintf(stderr,
                   "nodedns: took over %zu sockets and %zu cache entries from the previous "
                   "process (cache loaded in %llu ms)\n",
                   inherited_sockets_, inherited_cache_entries_,
                   static_cast<unsigned long long>(handover_ms_));
    }
    predecessor_.reset();
  }
  if (status.ok()) {
    std::string addrs;
    for (const auto& a : config_->listen)
      absl::StrAppend(&addrs, addrs.empty() ? "" : " ", a.ToString());
    // What the search rewrite will assume about pods' search paths, so that an operator can
    // check it against a pod's resolv.conf (docs/search-rewrite.md).
    const std::string rewrite =
        rewrite_
            ? absl::StrCat("on (", config_->cluster_domain, ", node search: ",
                           config_->node_search.empty() ? std::string("none")
                                                        : absl::StrJoin(config_->node_search, " "),
                           ", ", config_->search_pins.size(), " pins)")
            : std::string("off");
    if (!config_->quiet) {
      std::fprintf(stderr,
                   "nodedns: serving on %s (udp+tcp) with %zu workers, cache %zu MiB, search "
                   "rewrite %s\n",
                   addrs.c_str(), workers_.size(), config_->cache.capacity_bytes >> 20,
                   rewrite.c_str());
    }
    std::fflush(stderr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    std::fprintf(stderr, handed_over_ ? "nodedns: handed over to the next process; exiting\n"
                                      : "nodedns: shutting down\n");
  }
  CloseHandover();
  uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
  for (auto& h : http_) h->Stop();
  discovery_.reset();  // after the endpoints that read it
  for (auto& w : workers_) w->Stop();
  for (auto& w : workers_) w->Join();
  uv_close(reinterpret_cast<uv_handle_t*>(&shutdown_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigusr1_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&periodic_timer_), nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  return status;
}

void Server::Shutdown() { uv_async_send(&shutdown_); }

void Server::StartHandoverListener() {
  auto l = HandoverListener::Listen(config_->handover_path);
  if (!l.ok()) {
    // Serving matters more than the next upgrade: that one will bind next to this process.
    handovers_failed_.fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stderr,
                 "nodedns: --handover: %s; the next process will start without a handover\n",
                 std::string(l.status().message()).c_str());
    return;
  }
  handover_listener_ = *std::move(l);
  uv_poll_init(&loop_, &handover_poll_, handover_listener_->fd());
  handover_poll_.data = this;
  handover_poll_open_ = true;
  uv_poll_start(&handover_poll_, UV_READABLE, [](uv_poll_t* h, int status, int) {
    if (status == 0) static_cast<Server*>(h->data)->OnSuccessor();
  });
}

void Server::OnSuccessor() {
  if (successor_conn_ >= 0 || handed_over_) {
    // One successor at a time: another one binds next to this process.
    const int conn = accept4(handover_listener_->fd(), nullptr, nullptr, SOCK_CLOEXEC);
    if (conn >= 0) close(conn);
    return;
  }
  std::vector<int> fds;
  for (const auto& w : workers_) {
    for (const ListenFd& l : w->sockets().udp) fds.push_back(l.fd);
    for (const ListenFd& l : w->sockets().tcp) fds.push_back(l.fd);
  }
  for (const auto& h : http_) {
    if (h->fd() >= 0) fds.push_back(h->fd());
  }
  // Streamed: the main thread reads the cache like a worker for this one walk, and holds one
  // chunk of it at a time.
  size_t exported = 0, bytes = 0;
  auto produce = [&](const HandoverListener::ChunkSink& sink) {
    if (config_->handover_cache_percent == 0) return;
    auto thread = cache_->RegisterThread();
    thread->Online();
    exported = cache_->Export(*thread, uv_hrtime() / 1'000'000,
                              config_->cache.capacity_bytes / 100 * config_->handover_cache_percent,
                              kMaxSnapshotChunk, [&](std::span<const uint8_t> chunk) {
                                bytes += chunk.size();
                                return sink(chunk);
                              });
  };
  auto conn = handover_listener_->Serve(fds, produce, config_->handover_timeout_ms);
  if (!conn.ok()) {
    handovers_failed_.fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stderr, "nodedns: handover to the next process failed, still serving: %s\n",
                 std::string(conn.status().message()).c_str());
    return;
  }
  if (!config_->quiet) {
    std::fprintf(stderr,
                 "nodedns: passed %zu sockets and %zu cache entries (%zu KiB) to the next "
                 "process\n",
                 fds.size(), exported, bytes >> 10);
  }
  successor_conn_ = *conn;
  uv_poll_init(&loop_, &successor_poll_, successor_conn_);
  successor_poll_.data = this;
  uv_poll_start(&successor_poll_, UV_READABLE | UV_DISCONNECT, [](uv_poll_t* h, int, int) {
    static_cast<Server*>(h->data)->OnSuccessorMessage();
  });
}

void Server::OnSuccessorMessage() {
  uv_close(reinterpret_cast<uv_handle_t*>(&successor_poll_), nullptr);
  const bool serving = HandoverListener::ReadServing(successor_conn_);
  successor_conn_ = -1;
  if (!serving) {
    // It died or gave up before serving: its copies of the sockets are gone with it.
    handovers_failed_.fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stderr, "nodedns: the next process went away before serving; still serving\n");
    return;
  }
  BeginDrain();
}

void Server::BeginDrain() {
  handed_over_ = true;
  // PATH is the successor's listener now; the node's setup is the successor's to check, and so
  // is the configuration.
  handover_listener_->Release();
  uv_timer_stop(&periodic_timer_);
  uv_timer_stop(&poll_timer_);
  if (on_handed_over_) on_handed_over_();
  // The successor accepts on the same HTTP sockets; this process's copies close.
  for (auto& h : http_) h->Stop();
  for (auto& w : workers_) w->Drain();
  // Long enough for a miss that went through every upstream try (the forwarders double the
  // timeout each round), bounded so that a stuck client cannot keep the process alive.
  drain_deadline_ms_ =
      uv_now(&loop_) +
      2ull * config_->upstream_timeout_ms * static_cast<uint64_t>(config_->upstream_tries) + 1000;
  uv_timer_start(
      &drain_timer_,
      [](uv_timer_t* h) {
        auto* self = static_cast<Server*>(h->data);
        bool done = true;
        for (const auto& w : self->workers_) done = done && w->drained();
        if (!done && uv_now(h->loop) < self->drain_deadline_ms_) return;
        uv_timer_stop(h);
        if (!self->config_->handover_linger) {
          uv_stop(h->loop);
          return;
        }
        // Idle until the signal: the workers and the cache's memory go now.
        for (auto& w : self->workers_) w->Stop();
        for (auto& w : self->workers_) w->Join();
        // Nothing reads the cache any more (the HTTP endpoints stopped with the drain): its
        // memory goes back while the pod waits to be deleted.
        self->cache_.reset();
        std::fprintf(stderr, "nodedns: drained; idle until SIGTERM\n");
        std::fflush(stderr);
      },
      10, 10);
}

void Server::CloseHandover() {
  if (handover_poll_open_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&handover_poll_), nullptr);
    handover_poll_open_ = false;
  }
  if (successor_conn_ >= 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&successor_poll_), nullptr);
    close(successor_conn_);
    successor_conn_ = -1;
  }
  handover_listener_.reset();
}

void Server::ImportSnapshot(HandoverClient& predecessor) {
  auto thread = cache_->RegisterThread();
  thread->Online();
  const std::vector<ForwardZone>& zones = config_->zones;
  auto policy_for = [&zones](std::span<const uint8_t> qname) {
    const ForwardZone& z = zones[MatchZone(zones, qname)];
    return z.cache_policy ? &*z.cache_policy : nullptr;
  };
  absl::Status bad;
  const absl::Status st = predecessor.ReceiveSnapshot([&](std::span<const uint8_t> chunk) {
    auto r = cache_->Import(*thread, chunk, uv_hrtime() / 1'000'000, policy_for);
    if (r.ok()) {
      inherited_cache_entries_ += r->imported;
    } else if (bad.ok()) {
      bad = r.status();
    }
  });
  if (!st.ok() || !bad.ok()) {
    // The sockets came; only (part of) the cache did not.
    std::fprintf(stderr, "nodedns: handover: the previous process's cache was not all loaded: %s\n",
                 std::string((st.ok() ? bad : st).message()).c_str());
  }
}

}  // namespace nodedns::proxy
