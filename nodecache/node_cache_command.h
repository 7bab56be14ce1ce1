// `nodedns node-cache`: NodeLocal DNSCache's command line (kubernetes/dns cmd/node-cache), so that
// its DaemonSet runs nodedns by changing the image. It reads the same inputs node-cache does (the
// base Corefile of the node-local-dns ConfigMap, the kube-dns ConfigMap's stubDomains and
// upstreamNameservers, the -upstreamsvc service's IP from the environment), writes the generated
// Corefile where node-cache would (-conf), and serves it with nodedns's cache and search-path
// rewrite. Changes to those inputs are picked up as CoreDNS's `reload` (or -reloadwithsignal)
// would.
#ifndef NODEDNS_NODECACHE_NODE_CACHE_COMMAND_H_
#define NODEDNS_NODECACHE_NODE_CACHE_COMMAND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "nodecache/node_cache_flags.h"
#include "nodecache/serve_config.h"
#include "proxy/server.h"

namespace nodedns::nodecache {

// node-cache's own period for re-reading its ConfigMap directories.
inline constexpr uint32_t kConfigSyncMs = 10'000;

// Builds the configuration from the inputs the flags name: generate the Corefile, write it to
// -conf, parse and translate it. One call per (re)load.
class NodeCacheSource : public proxy::ConfigSource {
 public:
  using Getenv = std::function<const char*(const char*)>;
  NodeCacheSource(NodeCacheFlags flags, Getenv getenv);

  // The first load, at start; also remembers the inputs for Changed().
  absl::StatusOr<NodeCacheConfig> LoadFull();
  // Counts configmap setup errors here from now on (null: not counted).
  void set_server(proxy::Server* server) { server_ = server; }

  bool Changed() override;
  absl::StatusOr<proxy::ServeConfig> Load() override;
  uint32_t poll_interval_ms() const override { return poll_ms_; }
  void set_poll_interval_ms(uint32_t ms) { poll_ms_ = ms; }

 private:
  // The bytes of every input file, for change detection.
  std::string Fingerprint() const;
  std::string KubeDnsDir() const;

  NodeCacheFlags flags_;
  Getenv getenv_;
  proxy::Server* server_ = nullptr;
  std::string last_inputs_;
  uint32_t poll_ms_ = kConfigSyncMs;
};

// Runs the command; returns the process's exit code (2: bad flags or configuration, one line on
// stderr; 0 after a clean shutdown or --help).
int RunNodeCacheCommand(std::span<const std::string> args);

}  // namespace nodedns::nodecache

#endif  // NODEDNS_NODECACHE_NODE_CACHE_COMMAND_H_
