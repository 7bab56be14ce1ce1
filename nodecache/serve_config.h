// How a Corefile's server blocks become nodedns's one configuration (docs/deploy.md has the
// operator's view of the same rules).
//
// CoreDNS gives every server block its own plugin chain, cache included; nodedns has one zone
// table for all listen addresses and one shared cache. So:
//   - listen addresses: every (bind address, port) of every block; a block without `bind` listens
//     on 0.0.0.0. Every listen address must serve the same zones (one zone table), and each zone
//     is served by one block.
//   - zones: each block key's zone forwards to its block's `forward` upstreams (resolv.conf paths
//     read now), with force_tcp, max_concurrent, max_fails and health_check (upstream/health.h);
//     a root zone "." is required.
//   - cache: each zone keeps its block's TTL bounds, serve_stale window and prefetch rule per
//     entry (cache::EntryPolicy) in the shared cache, whose size is the sum of all blocks'
//     success and denial capacities times kBytesPerCacheEntry. A block without `cache` caches
//     nothing.
//   - health, ready, prometheus: HTTP endpoints; `prometheus` turns on CoreDNS's metric families.
//   - reload: the interval at which the inputs are checked for changes.
//   - loop: a forward to one of nodedns's own listen addresses is an error at start.
//   - errors: nodedns logs its errors regardless; log: query logging is not implemented, warned.
// What is accepted but behaves differently (forward's policy, expire,
// failfast_all_unhealthy_upstreams; serve_stale's immediate mode) is listed in docs/deploy.md.
#ifndef NODEDNS_NODECACHE_SERVE_CONFIG_H_
#define NODEDNS_NODECACHE_SERVE_CONFIG_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "corefile/config.h"
#include "proxy/config.h"

namespace nodedns::nodecache {

// The cache budget per entry CoreDNS's capacities count: an A or AAAA answer with a 20–40 byte
// name is charged 200–300 bytes in nodedns's cache (entry, key, TTL offsets, table slot); 512
// leaves room for CNAME chains and SRV sets, so that a capacity in entries is not undersold.
inline constexpr size_t kBytesPerCacheEntry = 512;
// Without any `cache` block nodedns still needs a table: the smallest cache that does not refuse
// ordinary answers.
inline constexpr size_t kMinCacheBytes = size_t{4} << 20;

struct NodeCacheConfig {
  proxy::ServeConfig serve;
  // "FILE:LINE: ..." for directives that were accepted but are not honoured as CoreDNS would.
  std::vector<std::string> warnings;
  uint32_t reload_interval_ms = 0;  // 0: no `reload` directive
};

struct TranslateOptions {
  std::string filename;  // for FILE:LINE messages
  // The nameservers of a resolv.conf named as a forward target.
  std::function<absl::StatusOr<std::vector<dns::SocketAddress>>(const std::string& path)>
      read_nameservers;
  // The node's search domains (for the search-path rewrite), from its resolv.conf.
  std::vector<std::string> node_search;
};

absl::StatusOr<NodeCacheConfig> TranslateCorefile(
    std::span<const corefile::ServerBlockConfig> blocks, const TranslateOptions& options);

// The entry rules of one block's `cache` (none: nothing cached).
cache::EntryPolicy CachePolicy(const corefile::CacheConfig* cache);

// A CoreDNS listen address ("host:port", host possibly empty; "localhost" allowed) as a socket
// address: empty host is 0.0.0.0, localhost is 127.0.0.1.
absl::StatusOr<dns::SocketAddress> ParseHostPort(const std::string& text);

}  // namespace nodedns::nodecache

#endif  // NODEDNS_NODECACHE_SERVE_CONFIG_H_
