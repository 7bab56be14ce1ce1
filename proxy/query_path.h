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
#include "proxy/client_queries.h"
#include "proxy/miss_admission.h"
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
  uint8_t server = 0;  // index of the listen address it came to (the CoreDNS `server` label)
};

enum class Verdict : uint8_t {
  kReply,    // the reply is in `out`
  kPending,  // it will go to the request's sink (a miss or a rewrite)
  kDrop,     // nothing is sent (not a query, unreadable header)
};

class QueryPath : public MissListener, public ClientDelivery {
 public:
  QueryPath(WorkerContext& ctx, MissTable& misses, RewriteDriver& rewrite)
      : ctx_(ctx), misses_(misses), rewrite_(rewrite), queries_(ctx.config->audit_query_sample) {}
  QueryPath(const QueryPath&) = delete;
  QueryPath& operator=(const QueryPath&) = delete;

  // --chaos-text set: CH TXT identity queries get an answer.
  bool chaos_enabled() const { return !ctx_.config->chaos_text.empty(); }
  // Serves one query. On kReply, out[0, size) is the finished reply (at most the transport's
  // limit: 1232 bytes over UDP, truncated with TC=1 above it; `out` must hold 1536 bytes for
  // UDP, 64 KiB + 64 for TCP).
  Verdict Serve(const Request& r, std::span<uint8_t> out, size_t& size, uint64_t now);

  // A miss of a client completed: its reply from the fresh entry, a stale one, the upstream's
  // reply as is, or SERVFAIL; or, for an NXDOMAIN it may rewrite, the rewrite.
  void OnMissDone(MissWaiter& waiter, const MissOutcome& outcome) override;
  // The client response timer ran out (RFC 8767 §5): the stale answer, if the cache has one.
  bool OnMissSlow(MissWaiter& waiter, const MissOutcome& outcome) override;
  // A finished reply for a waiting client: the accounting, then its sink.
  void Deliver(const Client& client, std::span<const uint8_t> reply) override;

  // The search-path waste seen by this worker (GET /audit).
  WastedQueryTracker& wasted() { return wasted_; }
  const WastedQueryTracker& wasted() const { return wasted_; }
  // Lookups answered by the search rewrite, per client and name (GET /audit "rewrites"): what the
  // rewrite saved whom.
  WastedQueryTracker& rewritten() { return rewritten_; }
  const WastedQueryTracker& rewritten() const { return rewritten_; }
  // Queries per client, sampled (GET /audit "queries").
  ClientQuerySampler& queries() { return queries_; }
  const ClientQuerySampler& queries() const { return queries_; }
  // Clients waiting for upstream and the misses turned away (GET /audit).
  MissAdmission& admission() { return admission_; }
  const MissAdmission& admission() const { return admission_; }

 private:
  class RewriteGate;
  // Every reply's accounting: rcode counters, NXDOMAIN waste, the rewrite learner.
  void AfterReply(const sockaddr_storage& client, std::span<const uint8_t> qname, uint16_t qtype,
                  uint8_t rcode, uint64_t now, RewriteGate& gate);
  // The CoreDNS families of a reply (only when ctx_.coredns is set): out of line, so that the
  // hit path with them off pays a branch. `in_batch`: built while the front end serves a batch,
  // whose end observes the duration (WorkerContext::FlushDurations).
  void CountCoreDns(const sockaddr_storage& client, uint8_t server, bool tcp,
                    std::span<const uint8_t> qname, uint16_t qtype, const uint8_t* reply,
                    ReplySource source, uint64_t start_ns, bool cache_hit, bool in_batch);
  // The zone (index into config.zones) a name falls under.
  size_t ZoneOf(std::span<const uint8_t> qname) const {
    return MatchZone(ctx_.config->zones, qname);
  }
  // Serve's rare cases, out of line: errors and local answers; after the lookup, a rewrite to
  // start, a reply too large for the UDP slot, a miss.
  Verdict ServeLocal(const Request& r, std::span<uint8_t> out, size_t& size);
  Verdict ServeRest(const Request& r, const cache::LookupResult& hit, const NamespaceName& ns,
                    RewriteGate& gate, std::span<uint8_t> out, size_t& size, uint64_t now);
  // A miss over --max-waiting-queries or its client's --client-miss-share: SERVFAIL now.
  Verdict ShedMiss(const Request& r, MissAdmission::Verdict why, RewriteGate& gate,
                   std::span<uint8_t> out, size_t& size, uint64_t now);
  void NoteNxDomain(const sockaddr_storage& client, std::span<const uint8_t> qname);
  // A reply synthesized by the search rewrite (cached or fresh), for `rewritten_`.
  void NoteRewrite(const sockaddr_storage& client, std::span<const uint8_t> qname);
  // Answers `r` from the stale entry for its key (RFC 8767), with Extended DNS Error 3 for a
  // client that sent EDNS; false if the entry is gone (then it is a miss after all).
  bool ServeStale(const Request& r, RewriteGate& gate, std::span<uint8_t> out, size_t& size,
                  uint64_t now);
  void FillClient(const Request& r, Client& c) const;

  WorkerContext& ctx_;
  MissTable& misses_;
  RewriteDriver& rewrite_;
  WastedQueryTracker wasted_;
  WastedQueryTracker rewritten_;
  ClientQuerySampler queries_;
  MissAdmission admission_;
};

// ---------------------------------------------------------------------------------------------
// The hit path, inline in both front ends: with Serve out of line a hit cost ~60 instructions
// more (the call, the Request, the accounting call; callgrind, 1000 hits).

// Whether the search-path rewrite cares about a question, found at most once and only when the
// answer can matter: a rewrite needs some namespace known (a pin or a learned client); the learner
// needs an NXDOMAIN, or a reply within the pair window of one. Otherwise a hit pays two relaxed
// loads and no name compare.
class QueryPath::RewriteGate {
 public:
  RewriteGate(const SharedSearchRewrite* rewrite, std::span<const uint8_t> qname, uint16_t qtype)
      : rewrite_(rewrite), qname_(qname), qtype_(qtype) {}
  bool ForLookup() { return rewrite_ != nullptr && rewrite_->AnyNamespace() && Relevant(); }
  bool ForReply(uint8_t rcode, uint64_t now) {
    return rewrite_ != nullptr && rewrite_->WantsReply(rcode, now) && Relevant();
  }

 private:
  bool Relevant() {
    if (relevant_ < 0) relevant_ = rewrite_->Relevant(qname_.data(), qname_.size(), qtype_);
    return relevant_ == 1;
  }
  const SharedSearchRewrite* rewrite_;
  std::span<const uint8_t> qname_;
  uint16_t qtype_;
  int relevant_ = -1;
};

inline void QueryPath::AfterReply(const sockaddr_storage& client, std::span<const uint8_t> qname,
                                  uint16_t qtype, uint8_t rcode, uint64_t now, RewriteGate& gate) {
  ctx_.counters.CountRcode(rcode);
  if (rcode == dns::rcode::kNxDomain) NoteNxDomain(client, qname);
  if (gate.ForReply(rcode, now)) {
    rewrite_.shared()->Observe(AsSocketAddress(client), qname, qtype, rcode, now);
  }
}

[[gnu::always_inline]] inline Verdict QueryPath::Serve(const Request& r, std::span<uint8_t> out,
                                                       size_t& size, uint64_t now) {
  queries_.Count(r.from);
  if (r.status != dns::QueryStatus::kOk || r.local != LocalAnswer::kNone) [[unlikely]] {
    return ServeLocal(r, out, size);
  }
  const dns::QueryInfo& q = r.q;
  WorkerCounters& counters = ctx_.counters;
  const std::span<const uint8_t> qname = r.query.subspan(dns::kHeaderSize, q.qname_length);
  if (IsSearchExpansion(qname, ctx_.config->cluster_domain_wire)) counters.search_queries.Inc();
  // Leave room for the OPT record FinishReply may append.
  const std::span<uint8_t> body = out.first(out.size() - kReplyTrailerMax);
  RewriteGate gate(rewrite_.shared(), qname, q.qtype);
  NamespaceName ns;
  size_t rewritten = 0;
  if (gate.ForLookup() && rewrite_.MayRewrite(r.from, qname, q, now, ns)) {
    rewritten = rewrite_.LookupRewritten(qname, q.qtype, ns, now, body);
  }
  using cache::LookupResult;
  const LookupResult hit =
      rewritten != 0 ? LookupResult{.status = LookupResult::Status::kHit, .size = rewritten}
                     : ctx_.cache.Lookup(*ctx_.thread, r.key, now, body);
  if (hit.status != LookupResult::Status::kHit) [[unlikely]] {
    return ServeRest(r, hit, ns, gate, out, size, now);
  }
  counters.cache_hits.Inc();
  if (!ns.empty() && RcodeOf(out.data()) == dns::rcode::kNxDomain) [[unlikely]] {
    return ServeRest(r, hit, ns, gate, out, size, now);
  }
  if (rewritten != 0) [[unlikely]]
    NoteRewrite(r.from, qname);
  bool tc = false;
  size = FinishReply(out, hit.size, r.query, q, r.tcp ? dns::kMaxMessage : UdpLimit(q), &tc);
  if (tc && !r.tcp) counters.truncated.Inc();
  const bool refreshing = hit.refresh_wanted && misses_.Refresh(r.key, q.do_bit, q.cd());
  if (ctx_.coredns) [[unlikely]] {
    CountCoreDns(r.from, r.server, r.tcp, qname, q.qtype, out.data(),
                 rewritten != 0 ? ReplySource::kRewrite : ReplySource::kCache, ctx_.batch_ns, true,
                 true);
    if (refreshing) {
      ctx_.coredns->Prefetch(r.server, ctx_.config->zones[ZoneOf(qname)].metrics_zone);
    }
  }
  AfterReply(r.from, qname, q.qtype, RcodeOf(out.data()), now, gate);
  return Verdict::kReply;
}

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_QUERY_PATH_H_
