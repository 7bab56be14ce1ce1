// A worker: one thread, one libuv loop, its own SO_REUSEPORT UDP and TCP sockets on every listen
// address, its own upstream forwarders and its own table of misses in flight. No query crosses
// threads; the only shared state is the cache (and the search-path learner).
//
// The worker owns the loop, its timers and the thread's QSBR state; the work is done by its
// parts, each with one job (docs/architecture.md walks a hit and a miss through them):
//   UdpFrontend, TcpFrontend  frame bytes: recvmmsg/sendmmsg; RFC 7766 framing and limits
//   QueryPath                 decides for one query: error, local answer, hit, miss, rewrite
//   RewriteDriver             the search-path rewrite's candidates, deadline and answer
//   MissTable                 misses in flight: coalescing, upstream, completion into the cache
//   upstream/                 UDP and TCP forwarders
#ifndef NODEDNS_PROXY_WORKER_H_
#define NODEDNS_PROXY_WORKER_H_

#include <uv.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/response_cache.h"
#include "proxy/client_queries.h"
#include "proxy/config.h"
#include "proxy/metrics.h"
#include "proxy/miss_table.h"
#include "proxy/query_path.h"
#include "proxy/rewrite_driver.h"
#include "proxy/search_path_learner.h"
#include "proxy/tcp_frontend.h"
#include "proxy/udp_frontend.h"
#include "proxy/wasted_queries.h"
#include "proxy/worker_context.h"

namespace nodedns::proxy {

// Sockets opened (or inherited, handover.h) by the main thread for one worker, so that bind
// errors surface before start: at least one per listen address of each kind.
struct WorkerSockets {
  std::vector<ListenFd> udp;
  std::vector<ListenFd> tcp;  // listening
};

// Opens a non-blocking socket bound with SO_REUSEPORT to `addr`: UDP, or TCP and listening.
absl::StatusOr<int> OpenSocket(const SocketAddress& addr, bool tcp);

// Public methods other than the constructor are thread-safe as noted; everything else runs on the
// worker's own thread.
class Worker {
 public:
  // `rewrite` is shared by all workers; null when --search-rewrite is off.
  Worker(int index, std::shared_ptr<const ServeConfig> config, cache::ResponseCache& cache,
         SharedSearchRewrite* rewrite, WorkerSockets sockets);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the thread (main thread). Fails if the loop or the upstreams cannot be set up.
  absl::Status Start();
  // Any thread: a successor serves the same sockets now. The worker stops reading them, answers
  // what it has in flight (UDP and TCP) and closes its TCP connections cleanly; drained() turns
  // true when nothing is left. Stop() then finishes the loop.
  void Drain();
  bool drained() const { return drained_.load(std::memory_order_acquire); }
  // The sockets the worker serves on (main thread, after Start): what a handover passes on.
  const WorkerSockets& sockets() const { return sockets_; }
  // Asks the loop to finish (any thread); Join() waits for it (main thread).
  void Stop();
  void Join();
  // Any thread: hands the worker a reloaded configuration (the same listen addresses and cache;
  // Server::Reload checks). The loop takes it between two callbacks; `done` runs on the worker's
  // thread with the outcome.
  void Reconfigure(std::shared_ptr<const ServeConfig> next);
  // Any thread.
  const WorkerCounters& counters() const { return ctx_.counters; }
  // Null unless CoreDNS metrics are on.
  const CoreDnsCounters* coredns() const { return ctx_.coredns.get(); }
  // Any thread: the worker's last published top-K of search-path waste (updated every second).
  std::vector<WastedQueryTracker::ClientCount> WastedSnapshot() const {
    return path_.wasted().Snapshot();
  }
  // Any thread: the worker's last published top-K of lookups answered by the search rewrite.
  std::vector<WastedQueryTracker::ClientCount> RewrittenSnapshot() const {
    return path_.rewritten().Snapshot();
  }
  // Any thread: the worker's last published sample of queries per client, and its rate.
  std::vector<ClientQuerySampler::ClientCount> QueriesSnapshot() const {
    return path_.queries().Snapshot();
  }
  uint32_t query_sample() const { return path_.queries().every(); }
  std::vector<MissAdmission::ShedClient> ShedSnapshot() const {
    return path_.admission().Snapshot();
  }

 private:
  void Run();
  void OnStop();
  void OnReconfigure();
  void OnDrain();

  const int index_;
  WorkerSockets sockets_;
  WorkerContext ctx_;
  MissTable misses_;
  QueryPath path_;
  RewriteDriver rewrite_;
  UdpFrontend udp_;
  TcpFrontend tcp_;
  uv_async_t stop_async_;
  uv_async_t reconfigure_async_;
  uv_async_t drain_async_;
  uv_timer_t drain_timer_;  // polls for the end of the drain
  std::atomic<bool> drained_{false};
  std::mutex next_mu_;
  std::shared_ptr<const ServeConfig> next_;  // guarded by next_mu_
  uv_prepare_t prepare_;
  uv_timer_t purge_timer_;
  uv_timer_t publish_timer_;
  bool ran_ = false;  // Start() got as far as the thread
  std::thread os_thread_;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_WORKER_H_
