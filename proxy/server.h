// `nodedns serve`: owns the cache, the workers and the health endpoint, and runs until SIGINT or
// SIGTERM (or Shutdown()).
#ifndef NODEDNS_PROXY_SERVER_H_
#define NODEDNS_PROXY_SERVER_H_

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/response_cache.h"
#include "proxy/config.h"
#include "proxy/http_server.h"
#include "proxy/search_path_learner.h"
#include "proxy/worker.h"

namespace nodedns::proxy {

// Create/Run/Shutdown from the main thread (Shutdown also from a signal-free other thread).
class Server {
 public:
  // Validates the configuration, builds the cache and opens every socket (errors name the flag).
  static absl::StatusOr<std::unique_ptr<Server>> Create(ServeConfig config);
  ~Server();

  // Starts the workers and the health endpoint and blocks until a signal or Shutdown().
  absl::Status Run();
  void Shutdown();

  std::string RenderMetrics() const;
  const ServeConfig& config() const { return config_; }

 private:
  explicit Server(ServeConfig config);
  ServeConfig config_;
  std::unique_ptr<cache::ResponseCache> cache_;
  std::unique_ptr<SharedSearchRewrite> rewrite_;  // null with --search-rewrite off
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<HttpServer> health_;
  uv_loop_t loop_;
  uv_async_t shutdown_;
  uv_signal_t sigint_, sigterm_;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_SERVER_H_
