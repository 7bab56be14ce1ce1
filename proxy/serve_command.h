// The `nodedns serve` subcommand's flags (CLI11) and their translation into a ServeConfig.
// Errors name the flag; main() turns them into one line on stderr and exit code 2.
#ifndef NODEDNS_PROXY_SERVE_COMMAND_H_
#define NODEDNS_PROXY_SERVE_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "cache/response_cache.h"
#include "proxy/config.h"
#include "resolvconf/resolv_conf.h"

namespace nodedns::proxy {

// The flags' units where they differ from the config's: MiB for the cache's bytes, seconds for the
// TCP idle timeout's milliseconds. Both directions use these, so a default converted to the flag's
// unit converts back to the same config value.
inline constexpr double kBytesPerMiB = 1024.0 * 1024;
inline constexpr double kMsPerSecond = 1000;

// Every default comes from ServeConfig or cache::CacheSettings, where it is declared once;
// ServeFlagsTest.DefaultsAreTheConfigDefaults pins them together.
struct ServeFlags {
  std::vector<std::string> listen;  // empty: kDefaultListen
  std::vector<std::string> forward;
  std::vector<std::string> force_tcp;
  unsigned workers = ServeConfig{}.workers;
  double cache_size_mb = cache::CacheSettings{}.capacity_bytes / kBytesPerMiB;
  size_t cache_shards = cache::CacheSettings{}.shards;
  uint32_t min_ttl = cache::CacheSettings{}.min_ttl;
  uint32_t max_ttl = cache::CacheSettings{}.max_ttl;
  uint32_t max_negative_ttl = cache::CacheSettings{}.max_negative_ttl;
  uint32_t servfail_ttl = cache::CacheSettings{}.servfail_ttl;
  uint32_t stale_ttl = cache::CacheSettings{}.stale_ttl;
  uint32_t prefetch_hits = cache::CacheSettings{}.prefetch_min_hits;
  std::string health;
  uint32_t upstream_timeout_ms = ServeConfig{}.upstream_timeout_ms;
  uint32_t stale_answer_client_timeout_ms = ServeConfig{}.stale_answer_client_timeout_ms;
  uint32_t stale_refresh_time_s = ServeConfig{}.stale_refresh_time_s;
  uint32_t overload_queue_delay_ms = ServeConfig{}.overload_queue_delay_ms;
  uint32_t overload_interval_ms = ServeConfig{}.overload_interval_ms;
  int upstream_tries = ServeConfig{}.upstream_tries;
  int upstream_max_fails = ServeConfig{}.upstream_max_fails;
  uint32_t upstream_health_check_ms = ServeConfig{}.upstream_health_check_ms;
  double tcp_idle_timeout_s = ServeConfig{}.tcp_idle_timeout_ms / kMsPerSecond;
  size_t tcp_max_connections = ServeConfig{}.tcp_max_connections;
  size_t tcp_max_inflight = ServeConfig{}.tcp_max_inflight;
  size_t max_waiting_queries = ServeConfig{}.max_waiting_queries;
  uint32_t client_miss_share = ServeConfig{}.client_miss_share;
  uint32_t audit_query_sample = ServeConfig{}.audit_query_sample;
  std::string resolv_conf = resolvconf::kDefaultPath;
  std::string cluster_domain = ServeConfig{}.cluster_domain;
  std::string search_rewrite = ServeConfig{}.search_rewrite ? "on" : "off";
  std::vector<std::string> node_search;  // empty: the search line of resolv_conf
  std::vector<std::string> search_path;  // CIDR=ns pins
  std::vector<std::string> allow;        // empty: kDefaultAllow
  std::string chaos_text;                // CH TXT version.bind & co.; empty: REFUSED
  std::string coredns_metrics = ServeConfig{}.coredns_metrics ? "on" : "off";
  std::string handover;  // the Unix socket of zero-loss upgrades; empty: none
  double handover_timeout_s = ServeConfig{}.handover_timeout_ms / kMsPerSecond;
  uint32_t handover_cache_percent = ServeConfig{}.handover_cache_percent;
  bool handover_linger = ServeConfig{}.handover_linger;
  std::string discover_pods = ServeConfig{}.discover_pods ? "on" : "off";
  double discover_pods_interval_s = ServeConfig{}.discover_pods_interval_ms / kMsPerSecond;
  std::string proc = ServeConfig{}.proc_root;
};

// Adds `serve` and its options (each documented in --help) to app; returns the subcommand.
CLI::App* AddServeCommand(CLI::App& app, ServeFlags& flags);

// Checks the flags together and builds the configuration (reading resolv.conf files).
absl::StatusOr<ServeConfig> BuildServeConfig(const ServeFlags& flags);

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_SERVE_COMMAND_H_
