// What the parts of one worker share: its configuration, the cache and the worker's handle on it,
// its counters, its loop and one 64 KiB buffer for replies built off the UDP batch. One thread.
#ifndef NODEDNS_PROXY_WORKER_CONTEXT_H_
#define NODEDNS_PROXY_WORKER_CONTEXT_H_

#include <uv.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "cache/response_cache.h"
#include "dns/wire.h"
#include "proxy/config.h"
#include "proxy/coredns_metrics.h"
#include "proxy/metrics.h"

namespace nodedns::proxy {

// A worker's listening socket and the index of the listen address it serves (CoreDNS metrics'
// `server` label). After a handover from a process with more workers, a worker may hold several
// sockets of one address (handover.h).
struct ListenFd {
  int fd = -1;
  uint8_t server = 0;
};

struct WorkerContext {
  WorkerContext(const ServeConfig& config, cache::ResponseCache& cache)
      : config(&config), cache(cache), scratch(dns::kMaxMessage + 64) {
    if (config.coredns_metrics) coredns = std::make_unique<CoreDnsCounters>();
  }

  uint64_t Now() const { return uv_now(loop); }
  // QSBR: the loop marks the thread offline before it may block (Worker); the first callback
  // that touches the cache after that marks it online again.
  void EnsureOnline() {
    if (!thread->qsbr().online()) thread->Online();
  }

  // Replaced by a reload (Worker::Reconfigure) between two callbacks, never during one; the parts
  // read it afresh each time. config_owner keeps it alive (null when the caller owns it: tests).
  const ServeConfig* config;
  std::shared_ptr<const ServeConfig> config_owner;
  cache::ResponseCache& cache;
  std::unique_ptr<cache::CacheThread> thread;  // registered on the worker's thread (Worker::Run)
  WorkerCounters counters;
  // CoreDNS's metric families; null unless config.coredns_metrics (coredns_metrics.h).
  std::unique_ptr<CoreDnsCounters> coredns;
  // When the front end read the queries being served (uv_hrtime, ns): the start of their
  // request duration. Set only while coredns is on.
  uint64_t batch_ns = 0;
  // Durations of replies built during the current batch; the front end flushes them when the
  // batch (or TCP query) is served.
  DeferredDurations deferred;
  void FlushDurations() {
    if (coredns) deferred.Flush(*coredns, batch_ns);
  }
  uv_loop_t* loop = nullptr;
  bool stopping = false;
  // Replies of up to 64 KiB built off the UDP batch (TCP, misses, rewrites), and TCP reads.
  std::vector<uint8_t> scratch;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_WORKER_CONTEXT_H_
