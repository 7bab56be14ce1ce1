// The transport-independent decision for one query; see query_path.h.
#include "proxy/query_path.h"

namespace nodedns::proxy {

using cache::LookupResult;

void QueryPath::FillClient(const Request& r, Client& c) {
  c.sink = r.sink;
  c.tcp = r.tcp;
  c.udp_fd = r.udp_fd;
  c.conn_id = r.conn_id;
  c.addr = r.from;
  c.addr_len = r.from_len;
  c.SetQuestion(r.query, r.q);
}

Verdict QueryPath::ServeLocal(const Request& r, std::span<uint8_t> out, size_t& size) {
  WorkerCounters& counters = ctx_.counters;
  if (r.status != dns::QueryStatus::kOk) {
    size = BuildErrorReply(r.query, r.q, r.status, ErrorRcode(r.status), out);
    if (size == 0) {
      counters.dropped.Inc();
      return Verdict::kDrop;
    }
  } else {
    size = BuildLocalReply(r.query, r.q, r.local, ctx_.config.chaos_text, out);
  }
  counters.CountRcode(RcodeOf(out.data()));
  return Verdict::kReply;
}

Verdict QueryPath::ServeRest(const Request& r, const cache::LookupResult& hit,
                             const NamespaceName& ns, RewriteGate& gate, std::span<uint8_t> out,
                             size_t& size, uint64_t now) {
  const dns::QueryInfo& q = r.q;
  WorkerCounters& counters = ctx_.counters;
  if (hit.status == LookupResult::Status::kHit) {  // an NXDOMAIN this client may have rewritten
    Client c;
    FillClient(r, c);
    rewrite_.Start(std::move(c), ns, out.first(hit.size));
    return Verdict::kPending;
  }
  if (hit.status == LookupResult::Status::kTooSmall) {  // only UDP's 1.5 KiB slots are too small
    counters.cache_hits.Inc();
    counters.truncated.Inc();
    size = BuildTruncatedReply(r.query, q, out);
    AfterReply(r.from, r.query.subspan(dns::kHeaderSize, q.qname_length), q.qtype,
               RcodeOf(out.data()), now, gate);
    return Verdict::kReply;
  }
  counters.cache_misses.Inc();
  MissWaiter w;
  w.listener = this;
  FillClient(r, w.client);  // in place: a Client is ~500 bytes
  w.client.rewrite_ns = ns;
  misses_.Join(r.key, q.do_bit, q.cd(), std::move(w));
  return Verdict::kPending;
}

void QueryPath::OnMissDone(MissWaiter& waiter, const MissOutcome& o) {
  Client& c = waiter.client;
  std::span<uint8_t> out(ctx_.scratch);
  const auto body = out.first(out.size() - dns::kOptRecordSize);
  size_t size = 0;
  const LookupResult r = ctx_.cache.Lookup(*ctx_.thread, o.key, o.now, body, o.failed);
  if (r.status == LookupResult::Status::kStale) {
    ctx_.counters.stale_served.Inc();  // RFC 8767: the upstream failed, the old answer helps
  }
  if (r.status == LookupResult::Status::kHit || r.status == LookupResult::Status::kStale) {
    size = r.size;
  } else if (o.ok) {
    // Not stored (too large for the cache, TTL 0, an rcode it does not keep): passed on with
    // the TTL limits the cache would have applied, so --max-ttl holds for every answer.
    size = CopyWithoutOpt(o.reply, body, &ttl_limits_);
  }
  if (size > 0 && !c.rewrite_ns.empty() && RcodeOf(body.data()) == dns::rcode::kNxDomain) {
    const NamespaceName ns = c.rewrite_ns;
    rewrite_.Start(std::move(c), ns, body.first(size));
    return;
  }
  if (size > 0) {
    bool tc = false;
    size = FinishReply(out, size, c.question(), c.q, c.Limit(), &tc);
    if (tc && !c.tcp) ctx_.counters.truncated.Inc();
  } else {
    size = BuildErrorReply(c.question(), c.q, dns::QueryStatus::kOk, dns::rcode::kServFail, out);
  }
  Deliver(c, out.first(size));
}

void QueryPath::Deliver(const Client& c, std::span<const uint8_t> reply) {
  RewriteGate gate(rewrite_.shared(), c.qname(), c.q.qtype);
  AfterReply(c.addr, c.qname(), c.q.qtype, RcodeOf(reply.data()), ctx_.Now(), gate);
  c.sink->SendReply(c, reply);
}

void QueryPath::NoteNxDomain(const sockaddr_storage& client, std::span<const uint8_t> qname) {
  size_t alternative = 0;
  const size_t base = SearchBaseLength(qname, ctx_.config.cluster_domain_wire, &alternative);
  if (base == 0) return;
  ctx_.counters.search_nxdomain.Inc();
  wasted_.Note(client, qname.first(base), qname.first(alternative));
}

}  // namespace nodedns::proxy
