// One query's way through a worker, whatever its transport: an error or local answer, a cache
// hit (rewritten or not), or a miss that joins the miss table (or a search-path rewrite) and is
// answered later through the client's ReplySink. The UDP and TCP front ends only frame bytes and
// call Serve(); every reply, now or later, gets the same accounting here (rcode counters,
// search-path waste, the rewrite learner, prefetch).
//
// Serve() is on the UDP hit path: no allocation, no lock (but the learner's, docs/
// search-rewrite.md), no virtual call; the front end has parsed the query, classified it and
// prefetched its cache slot already (the three passes of udp_frontend.cc).
#ifndef NODEDNS_PROXY_QUERY_PATH_H_
#define NODEDNS_PROXY_QUERY_PATH_H_

#include <sys/socket.h>

#include <cstdint>
#include <span>
#include <vector>

#include "cache/cache_key.h"
#include "dns/wire.h"
#include "proxy/client.h"
#include "proxy/miss_table.h"
#include "proxy/reply.h"
#include "proxy/rewrite_driver.h"
#include "proxy/wasted_queries.h"
#include "proxy/worker_context.h"

namespace nodedns::proxy {

// One query as a front end hands it over.
struct Request {
  std::span<const uint8_t> query;  // the whole message
  const dns::QueryInfo& q;
  dns::QueryStatus status;
  LocalAnswer local;           // ClassifyQuery's verdict when status is kOk
  const cache::CacheKey& key;  // filled when status is kOk and local is kNone
  const sockaddr_storage& from;
  socklen_t from_len;
  ReplySink* sink;  // where a later reply goes
  bool tcp;
  int udp_fd;
  uint64_t conn_id;
};

enum class Verdict : uint8_t {
  kReply,    // the reply is in `out`
  kPending,  // it will go to the request's sink (a miss or a rewrite)
  kDrop,     // nothing is sent (not a query, unreadable header)
};

class QueryPath : public MissListener, public ClientDelivery {
 public:
  QueryPath(WorkerContext& ctx, MissTable& misses, RewriteDriver& rewrite)
      : ctx_(ctx),
        misses_(misses),
        rewrite_(rewrite),
        chaos_enabled_(!ctx.config.chaos_text.empty()),
        ttl_limits_{.max_ttl = ctx.config.cache.max_ttl,
                    .max_negative_ttl = ctx.config.cache.max_negative_ttl} {}
  QueryPath(const QueryPath&) = delete;
  QueryPath& operator=(const QueryPath&) = delete;

  bool chaos_enabled() const { return chaos_enabled_; }
  // Serves one query. On kReply, out[0, size) is the finished reply (at most the transport's
  // limit: 1232 bytes over UDP, truncated with TC=1 above it; `out` must hold 1536 bytes for
  // UDP, 64 KiB + 64 for TCP).
  Verdict Serve(const Request& r, std::span<uint8_t> out, size_t& size, uint64_t now);

  // A miss of a client completed: its reply from the fresh entry, a stale one, the upstream's
  // reply as is, or SERVFAIL; or, for an NXDOMAIN it may rewrite, the rewrite.
  void OnMissDone(MissWaiter& waiter, const MissOutcome& outcome) override;
  // A finished reply for a waiting client: the accounting, then its sink.
  void Deliver(const Client& client, std::span<const uint8_t> reply) override;

  // The search-path waste seen by this worker (GET /audit).
  WastedQueryTracker& wasted() { return wasted_; }
  const WastedQueryTracker& wasted() const { return wasted_; }

 private:
  class RewriteGate;
  // Every reply's accounting: rcode counters, NXDOMAIN waste, the rewrite learner.
  void AfterReply(const sockaddr_storage& client, std::span<const uint8_t> qname, uint16_t qtype,
                  uint8_t rcode, uint64_t now, RewriteGate& gate);
  void NoteNxDomain(const sockaddr_storage& client, std::span<const uint8_t> qname);
  static void FillClient(const Request& r, Client& c);

  WorkerContext& ctx_;
  MissTable& misses_;
  RewriteDriver& rewrite_;
  const bool chaos_enabled_;  // --chaos-text set: CH TXT identity queries get an answer
  const TtlLimits ttl_limits_;
  WastedQueryTracker wasted_;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_QUERY_PATH_H_
