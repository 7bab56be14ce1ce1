// The `nodedns serve` subcommand's flags (CLI11) and their translation into a ServeConfig.
// Errors name the flag; main() turns them into one line on stderr and exit code 2.
#ifndef NODEDNS_PROXY_SERVE_COMMAND_H_
#define NODEDNS_PROXY_SERVE_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "proxy/config.h"

namespace nodedns::proxy {

struct ServeFlags {
  std::vector<std::string> listen;
  std::vector<std::string> forward;
  std::vector<std::string> force_tcp;
  unsigned workers = 0;
  double cache_size_mb = 256;
  size_t cache_shards = 0;
  uint32_t min_ttl = 0;
  uint32_t max_ttl = 86400;
  uint32_t max_negative_ttl = 3600;
  uint32_t servfail_ttl = 5;
  uint32_t stale_ttl = 3600;
  uint32_t prefetch_hits = 2;
  std::string health;
  uint32_t upstream_timeout_ms = 2000;
  int upstream_tries = 2;
  double tcp_idle_timeout_s = 10;
  size_t tcp_max_connections = 1024;
  size_t tcp_max_inflight = 32;
  std::string resolv_conf = "/etc/resolv.conf";
  std::string cluster_domain = "cluster.local";
  std::string search_rewrite = "on";
  std::vector<std::string> node_search;  // empty: the search line of resolv_conf
  std::vector<std::string> search_path;  // CIDR=ns pins
  std::string chaos_text;                // CH TXT version.bind & co.; empty: REFUSED
};

// Adds `serve` and its options (each documented in --help) to app; returns the subcommand.
CLI::App* AddServeCommand(CLI::App& app, ServeFlags& flags);

// Checks the flags together and builds the configuration (reading resolv.conf files).
absl::StatusOr<ServeConfig> BuildServeConfig(const ServeFlags& flags);

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_SERVE_COMMAND_H_
