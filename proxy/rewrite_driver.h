// Drives the search-path rewrite on one worker (docs/search-rewrite.md): the first search step
// of a pod whose namespace is known is answered with a CNAME to the first later step that
// exists. This part finds that step: it looks the candidates up in the cache or asks them
// upstream in parallel through the miss table (as its listener), gives them a deadline, decides
// with the pure logic of search_rewrite.h, caches the synthesized answer under the private
// rewrite class, and hands the client its reply through a ClientDelivery.
#ifndef NODEDNS_PROXY_REWRITE_DRIVER_H_
#define NODEDNS_PROXY_REWRITE_DRIVER_H_

#include <uv.h>

#include <cstdint>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proxy/client.h"
#include "proxy/miss_table.h"
#include "proxy/search_path_learner.h"
#include "proxy/search_rewrite.h"
#include "proxy/worker_context.h"

namespace nodedns::proxy {

class RewriteDriver : public MissListener {
 public:
  // `rewrite` is shared by every worker; null when --search-rewrite is off (then nothing here
  // is ever called but Shutdown).
  RewriteDriver(WorkerContext& ctx, SharedSearchRewrite* rewrite, MissTable& misses,
                ClientDelivery& delivery)
      : ctx_(ctx), rewrite_(rewrite), misses_(misses), delivery_(delivery) {}
  RewriteDriver(const RewriteDriver&) = delete;
  RewriteDriver& operator=(const RewriteDriver&) = delete;

  SharedSearchRewrite* shared() const { return rewrite_; }
  // Is this question a search expansion of the client's own namespace (sets `ns`)?
  bool MayRewrite(const sockaddr_storage& client, std::span<const uint8_t> qname,
                  const dns::QueryInfo& q, uint64_t now, NamespaceName& ns);
  // A live rewritten answer for the question, copied into `body`; returns its size or 0.
  size_t LookupRewritten(std::span<const uint8_t> qname, uint16_t qtype, const NamespaceName& ns,
                         uint64_t now, std::span<uint8_t> body);
  // The client's question got NXDOMAIN (`original`): resolve the other search steps and reply.
  void Start(Client&& client, const NamespaceName& ns, std::span<const uint8_t> original);
  // Drops every rewrite in progress without replying (the worker is stopping).
  void Shutdown();
  // No rewrite in progress: nobody waits on one for an answer.
  bool Idle() const { return rewrites_.empty(); }

  // A candidate's upstream query completed.
  void OnMissDone(MissWaiter& waiter, const MissOutcome& outcome) override;

 private:
  struct Rewrite;
  // Looks up or sends candidates [r->started, end).
  void StartCandidates(Rewrite* r, size_t end);
  void Evaluate(Rewrite* r);
  void Finish(Rewrite* r, const Decision& d);

  WorkerContext& ctx_;
  SharedSearchRewrite* const rewrite_;
  MissTable& misses_;
  ClientDelivery& delivery_;
  absl::flat_hash_map<uint64_t, Rewrite*> rewrites_;  // deleted in their timer's close callback
  uint64_t next_id_ = 1;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_REWRITE_DRIVER_H_
