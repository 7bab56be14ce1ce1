// `nodedns serve` and `nodedns node-cache`: owns the cache, the workers and the HTTP endpoints,
// and runs until SIGINT or SIGTERM (or Shutdown()). With a ConfigSource (node-cache's Corefile)
// it also reloads: on SIGUSR1 and when the source reports a change, the new configuration replaces
// the zones, upstreams and per-zone cache rules in every worker, while the cache, the sockets and
// the counters stay. A configuration that cannot be applied is logged, counted
// (coredns_reload_failed_total) and the old one keeps serving.
#ifndef NODEDNS_PROXY_SERVER_H_
#define NODEDNS_PROXY_SERVER_H_

#include <uv.h>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "audit/node_audit.h"
#include "cache/response_cache.h"
#include "proxy/config.h"
#include "proxy/coredns_metrics.h"
#include "proxy/handover.h"
#include "proxy/http_server.h"
#include "proxy/pod_discovery.h"
#include "proxy/search_path_learner.h"
#include "proxy/worker.h"

namespace nodedns::proxy {

// Where a reloadable configuration comes from. Called on the server's main loop only.
class ConfigSource {
 public:
  virtual ~ConfigSource() = default;
  // Polled every poll_interval_ms() (0: never; SIGUSR1 only): whether the inputs changed since
  // the last Load().
  virtual bool Changed() = 0;
  // The configuration the current inputs describe; errors are one line (FILE:LINE: message).
  virtual absl::StatusOr<ServeConfig> Load() = 0;
  virtual uint32_t poll_interval_ms() const = 0;
};

// The settings a reload cannot change (sockets, cache, threads): the first that differs between
// `a` and `b`, named for the log, or empty when a reload may replace `a` with `b`.
std::string RestartOnlyDifference(const ServeConfig& a, const ServeConfig& b);

// With config.handover_path: asks the process serving there for its sockets (HandoverClient).
// Null without a path; a failed exchange is logged here, and Create binds next to the old process.
std::unique_ptr<HandoverClient> FindPredecessor(const ServeConfig& config);

// Create/Run/Shutdown from the main thread (Shutdown also from a signal-free other thread).
class Server {
 public:
  // Validates the configuration, builds the cache and opens every socket (errors name the flag).
  // `predecessor`: what a handover received (HandoverClient::Request with config.handover_path);
  // its sockets are used where they match the listen and HTTP addresses, its cache snapshot is
  // loaded, and Run() confirms once serving, which lets the old process drain and exit.
  static absl::StatusOr<std::unique_ptr<Server>> Create(
      ServeConfig config, std::unique_ptr<HandoverClient> predecessor = nullptr);
  ~Server();

  // Reloads from `source` (SIGUSR1, and when it reports a change). Before Run().
  void SetConfigSource(std::unique_ptr<ConfigSource> source);
  // Runs `fn` on the main loop every `interval_ms` (at least 100) while Run() serves, first one
  // interval after it starts; node-cache re-checks its node setup with it. Before Run(); one
  // callback (a second call replaces the first). `fn` must not block: it delays reloads and
  // shutdown.
  void SetPeriodic(uint64_t interval_ms, std::function<void()> fn);
  // Runs `fn` on the main thread once the workers and HTTP endpoints run, before the first
  // callback; an error stops Run(), which returns it. node-cache drops its privileges there, so
  // that the serving threads, already started, lose them too (nodesetup/privileges.h).
  void SetOnServing(std::function<absl::Status()> fn) { on_serving_ = std::move(fn); }
  // Runs `fn` on the main thread when a successor confirmed it serves, before this process
  // drains: node-cache gives up its rules' table and leaves the rest of the node's setup to it.
  void SetOnHandedOver(std::function<void()> fn) { on_handed_over_ = std::move(fn); }

  // Starts the workers and the HTTP endpoints and blocks until a signal, Shutdown(), or the end of
  // the drain that follows a handover to a successor (then handed_over()).
  absl::Status Run();
  // A successor took the sockets over: what this process set up on the node is the successor's
  // now (node-cache leaves the addresses and rules in place).
  bool handed_over() const { return handed_over_; }
  void Shutdown();

  // Replaces the reloadable part of the configuration (main thread). On error nothing changed.
  absl::Status Reload(ServeConfig next);
  // Loads from the source and reloads; a failure is logged and counted (main thread).
  void ReloadFromSource();

  // node-cache's setup errors by type (kSetupErrorTypes), any thread.
  void CountSetupError(size_t type) { setup_errors_[type].fetch_add(1, std::memory_order_relaxed); }
  uint64_t reload_failures() const { return reload_failed_.load(std::memory_order_relaxed); }

  std::string RenderMetrics() const;
  const ServeConfig& config() const { return *config_; }

 private:
  explicit Server(ServeConfig config);
  // Registers the CoreDNS label values of `c`'s zones and upstreams and writes their indices in.
  absl::Status AssignMetricsLabels(ServeConfig& c);
  // One in-flight count per zone with a max_concurrent, and each zone's upstream health, shared
  // by every worker.
  void ShareZoneCounts(ServeConfig& c);
  // The upstream health lines of /metrics (nodedns_upstream_* and, with CoreDNS metrics on, the
  // forward plugin's health check families).
  // `coredns`: also adds up the health check counters of CoreDNS's families into it.
  void RenderUpstreamHealth(std::string& out, CoreDnsGauges* coredns) const;
  // The GET /audit document: the workers' waste, rewrites and shed clients, merged.
  std::string AuditJson() const;
  // The last discovery scan joined with the workers' GET /audit counts (audit/node_audit.h);
  // nullopt before the first scan or without --discover-pods.
  std::optional<audit::NodeReport> PodReport() const;
  // The pod discovery lines of /metrics (docs/operations.md): scalar families always, the
  // labelled ones (findings, top pods by waste) with a scan.
  void RenderPodMetrics(std::string& out) const;
  HttpResponse HandleHttp(const HttpEndpoint& endpoint, std::string_view method,
                          std::string_view path) const;
  // Handover, old side (main loop): a successor connected; it confirmed (or went away).
  void StartHandoverListener();
  void OnSuccessor();
  void OnSuccessorMessage();
  void BeginDrain();
  void CloseHandover();
  // Handover, new side: loads the predecessor's cache snapshot as it streams in (Create).
  void ImportSnapshot(HandoverClient& predecessor);

  std::shared_ptr<const ServeConfig> config_;  // the current one; replaced by Reload (main thread)
  // What the HTTP thread needs of the configuration: settings a reload cannot change
  // (RestartOnlyDifference), copied at Create so that it never reads config_.
  bool coredns_metrics_ = false;
  std::string cluster_domain_;
  std::unique_ptr<cache::ResponseCache> cache_;
  std::unique_ptr<SharedSearchRewrite> rewrite_;  // null with --search-rewrite off
  // With --discover-pods; started once serving (after on_serving_, so that its thread has the
  // capabilities the privilege drop keeps), stopped after the HTTP endpoints that read it.
  std::unique_ptr<PodDiscovery> discovery_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<HttpServer>> http_;
  MetricsLabels labels_;
  // Upstream health by zone and settings (ShareZoneCounts, main thread), and what the HTTP
  // thread renders of it: the current configuration's zones.
  struct HealthZone {
    std::string zone;
    std::vector<SocketAddress> upstreams;
    std::vector<size_t> metrics_upstreams;
    std::shared_ptr<upstream::UpstreamHealth> health;
  };
  mutable std::mutex health_mu_;
  std::map<std::string, std::shared_ptr<upstream::UpstreamHealth>> health_;
  std::vector<HealthZone> health_zones_;
  std::unique_ptr<ConfigSource> source_;
  std::atomic<uint64_t> reload_failed_{0};
  std::array<std::atomic<uint64_t>, std::size(kSetupErrorTypes)> setup_errors_{};
  uv_loop_t loop_;
  uv_async_t shutdown_;
  uv_signal_t sigint_, sigterm_, sigusr1_;
  uv_timer_t poll_timer_;
  uint64_t periodic_ms_ = 0;
  std::function<void()> periodic_;
  std::function<absl::Status()> on_serving_;
  std::function<void()> on_handed_over_;
  uv_timer_t periodic_timer_;

  // Handover (handover.h). New side: the predecessor until Run() confirms, and what came.
  std::unique_ptr<HandoverClient> predecessor_;
  bool handover_failed_ = false;  // a predecessor answered but the exchange failed
  size_t inherited_sockets_ = 0;
  // GET /audit's uptime_seconds: counts start with the process, so a rate needs it.
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  size_t inherited_cache_entries_ = 0;
  uint64_t handover_ms_ = 0;  // how long loading the predecessor's cache snapshot took
  // Old side: the listener, the successor's connection until it confirms, the drain.
  std::unique_ptr<HandoverListener> handover_listener_;
  uv_poll_t handover_poll_;
  bool handover_poll_open_ = false;
  int successor_conn_ = -1;
  uv_poll_t successor_poll_;
  std::atomic<uint64_t> handovers_failed_{0};  // successors that went away or timed out
  bool handed_over_ = false;
  uint64_t drain_deadline_ms_ = 0;
  uv_timer_t drain_timer_;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_SERVER_H_
