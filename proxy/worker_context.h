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
#include "proxy/metrics.h"

namespace nodedns::proxy {

struct WorkerContext {
  WorkerContext(const ServeConfig& config, cache::ResponseCache& cache)
      : config(config), cache(cache), scratch(dns::kMaxMessage + 64) {}

  uint64_t Now() const { return uv_now(loop); }
  // QSBR: the loop marks the thread offline before it may block (Worker); the first callback
  // that touches the cache after that marks it online again.
  void EnsureOnline() {
    if (!thread->qsbr().online()) thread->Online();
  }

  const ServeConfig& config;
  cache::ResponseCache& cache;
  std::unique_ptr<cache::CacheThread> thread;  // registered on the worker's thread (Worker::Run)
  WorkerCounters counters;
  uv_loop_t* loop = nullptr;
  bool stopping = false;
  // Replies of up to 64 KiB built off the UDP batch (TCP, misses, rewrites), and TCP reads.
  std::vector<uint8_t> scratch;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_WORKER_CONTEXT_H_
