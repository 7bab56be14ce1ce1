// The transport-independent decision for one query; see query_path.h.
#include "proxy/query_path.h"

namespace nodedns::proxy {

using cache::LookupResult;

void QueryPath::FillClient(const Request& r, Client& c) const {
  c.sink = r.sink;
  c.tcp = r.tcp;
  c.udp_fd = r.udp_fd;
  c.conn_id = r.conn_id;
  c.addr = r.from;
  c.addr_len = r.from_len;
  c.SetQuestion(r.query, r.q);
  c.server = r.server;
  c.start_ns = ctx_.batch_ns;
  c.source = ReplySource::kForward;
}

void QueryPath::CountCoreDns(const sockaddr_storage& client, uint8_t server, bool tcp,
                             std::span<const uint8_t> qname, uint16_t qtype, const uint8_t* reply,
                             ReplySource source, uint64_t start_ns, bool cache_hit, bool in_batch) {
  const size_t zone = ctx_.config->zones[ZoneOf(qname)].metrics_zone;
  const uint8_t rcode = RcodeOf(reply);
  if (cache_hit) {
    const bool denial = rcode == dns::rcode::kNxDomain ||
                        (rcode == dns::rcode::kNoError && dns::Get16(reply + 6) == 0);
    ctx_.coredns->CacheHit(server, zone, denial);
  }
  const bool v6 = client.ss_family == AF_INET6;
  if (in_batch) {
    ctx_.coredns->ReplyWithoutDuration(server, zone, tcp, v6, qtype, rcode, source);
    ctx_.deferred.Add(*ctx_.coredns,
                      static_cast<uint16_t>(CoreDnsCounters::DurationCell(server, zone)),
                      ctx_.batch_ns);
    return;
  }
  const uint64_t now_ns = uv_hrtime();
  ctx_.coredns->Reply(server, zone, tcp, v6, qtype, rcode, source,
                      now_ns > start_ns ? now_ns - start_ns : 0);
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
    if (r.local == LocalAnswer::kNotAllowed) counters.not_allowed_udp.Inc();
    size = BuildLocalReply(r.query, r.q, r.local, ctx_.config->chaos_text, out);
    if (ctx_.coredns) {
      CountCoreDns(r.from, r.server, r.tcp, r.query.subspan(dns::kHeaderSize, r.q.qname_length),
                   r.q.qtype, out.data(), ReplySource::kLocal, ctx_.batch_ns, false, true);
    }
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
    if (ctx_.coredns) {
      CountCoreDns(r.from, r.server, r.tcp, r.query.subspan(dns::kHeaderSize, q.qname_length),
                   q.qtype, out.data(), ReplySource::kCache, ctx_.batch_ns, true, true);
    }
    AfterReply(r.from, r.query.subspan(dns::kHeaderSize, q.qname_length), q.qtype,
               RcodeOf(out.data()), now, gate);
    return Verdict::kReply;
  }
  if (hit.status == LookupResult::Status::kExpired && hit.upstream_failing &&
      ServeStale(r, gate, out, size, now)) {
    return Verdict::kReply;  // RFC 8767 §5: failed a moment ago, not asked again yet
  }
  counters.cache_misses.Inc();
  if (ctx_.coredns) {
    ctx_.coredns->CacheMiss(
        r.server,
        ctx_.config->zones[ZoneOf(r.query.subspan(dns::kHeaderSize, q.qname_length))].metrics_zone);
  }
  uint16_t slot = MissAdmission::kNoSlot;
  const MissAdmission::Verdict admit = admission_.Admit(r.from, ctx_.config->max_waiting_queries,
                                                        ctx_.config->client_miss_share, slot);
  if (admit != MissAdmission::Verdict::kAdmit) [[unlikely]] {
    return ShedMiss(r, admit, gate, out, size, now);
  }
  MissWaiter w;
  w.listener = this;
  FillClient(r, w.client);  // in place: a Client is ~500 bytes
  w.client.rewrite_ns = ns;
  w.client.miss_admitted = true;
  w.client.miss_slot = slot;
  // An expired answer can stand in if the upstream is slow. Not for a client whose NXDOMAIN
  // would start a rewrite: that needs the upstream's word on the name.
  w.stale_ok = hit.status == LookupResult::Status::kExpired && ns.empty();
  misses_.Join(r.key, q.do_bit, q.cd(), std::move(w));
  return Verdict::kPending;
}

bool QueryPath::ServeStale(const Request& r, RewriteGate& gate, std::span<uint8_t> out,
                           size_t& size, uint64_t now) {
  const dns::QueryInfo& q = r.q;
  const LookupResult s =
      ctx_.cache.Lookup(*ctx_.thread, r.key, now, out.first(out.size() - kReplyTrailerMax), true);
  if (s.status != LookupResult::Status::kStale) return false;  // gone, or too large for the slot
  WorkerCounters& counters = ctx_.counters;
  counters.cache_hits.Inc();
  counters.stale_recheck.Inc();
  bool tc = false;
  size = FinishReply(out, s.size, r.query, q, r.tcp ? dns::kMaxMessage : UdpLimit(q), &tc,
                     kEdeStaleAnswer);
  if (tc && !r.tcp) counters.truncated.Inc();
  const std::span<const uint8_t> qname = r.query.subspan(dns::kHeaderSize, q.qname_length);
  if (ctx_.coredns) {
    ctx_.coredns->ServedStale(r.server, ctx_.config->zones[ZoneOf(qname)].metrics_zone);
    CountCoreDns(r.from, r.server, r.tcp, qname, q.qtype, out.data(), ReplySource::kCache,
                 ctx_.batch_ns, true, true);
  }
  AfterReply(r.from, qname, q.qtype, RcodeOf(out.data()), now, gate);
  return true;
}

bool QueryPath::OnMissSlow(MissWaiter& waiter, const MissOutcome& o) {
  Client& c = waiter.client;
  std::span<uint8_t> out(ctx_.scratch);
  const LookupResult r =
      ctx_.cache.Lookup(*ctx_.thread, o.key, o.now, out.first(out.size() - kReplyTrailerMax), true);
  // kHit: another worker's query brought a fresh answer meanwhile.
  if (r.status != LookupResult::Status::kStale && r.status != LookupResult::Status::kHit) {
    return false;
  }
  c.source = ReplySource::kCache;
  uint16_t ede = kNoEde;
  if (r.status == LookupResult::Status::kStale) {
    ede = kEdeStaleAnswer;
    ctx_.counters.stale_client_timeout.Inc();
    if (ctx_.coredns)
      ctx_.coredns->ServedStale(c.server, ctx_.config->zones[ZoneOf(c.qname())].metrics_zone);
  }
  bool tc = false;
  const size_t size = FinishReply(out, r.size, c.question(), c.q, c.Limit(), &tc, ede);
  if (tc && !c.tcp) ctx_.counters.truncated.Inc();
  Deliver(c, out.first(size));
  return true;
}

void QueryPath::OnMissDone(MissWaiter& waiter, const MissOutcome& o) {
  Client& c = waiter.client;
  std::span<uint8_t> out(ctx_.scratch);
  const auto body = out.first(out.size() - kReplyTrailerMax);
  size_t size = 0;
  const LookupResult r = ctx_.cache.Lookup(*ctx_.thread, o.key, o.now, body, o.failed);
  const ForwardZone& zone = ctx_.config->zones[ZoneOf(c.qname())];
  if (r.status == LookupResult::Status::kStale) {
    ctx_.counters.stale_served.Inc();  // RFC 8767: the upstream failed, the old answer helps
    c.source = ReplySource::kCache;
    if (ctx_.coredns) ctx_.coredns->ServedStale(c.server, zone.metrics_zone);
  }
  if (r.status == LookupResult::Status::kHit || r.status == LookupResult::Status::kStale) {
    size = r.size;
  } else if (o.ok) {
    // Not stored (too large for the cache, TTL 0, an rcode it does not keep): passed on with
    // the TTL limits the cache would have applied, so --max-ttl holds for every answer.
    const cache::EntryPolicy& p =
        zone.cache_policy ? *zone.cache_policy : ctx_.cache.default_policy();
    const TtlLimits limits{.max_ttl = p.max_ttl, .max_negative_ttl = p.max_negative_ttl};
    size = CopyWithoutOpt(o.reply, body, &limits);
  }
  if (size > 0 && !c.rewrite_ns.empty() && RcodeOf(body.data()) == dns::rcode::kNxDomain) {
    const NamespaceName ns = c.rewrite_ns;
    rewrite_.Start(std::move(c), ns, body.first(size));
    return;
  }
  if (size > 0) {
    bool tc = false;
    size = FinishReply(out, size, c.question(), c.q, c.Limit(), &tc,
                       r.status == LookupResult::Status::kStale ? kEdeStaleAnswer : kNoEde);
    if (tc && !c.tcp) ctx_.counters.truncated.Inc();
  } else if (o.rejected) {
    // CoreDNS's forward returns REFUSED without writing it; the server writes it, so its
    // responses_total carries plugin="", not "forward".
    c.source = ReplySource::kLocal;
    size = BuildErrorReply(c.question(), c.q, dns::QueryStatus::kOk, dns::rcode::kRefused, out);
  } else {
    size = BuildErrorReply(c.question(), c.q, dns::QueryStatus::kOk, dns::rcode::kServFail, out);
  }
  Deliver(c, out.first(size));
}

Verdict QueryPath::ShedMiss(const Request& r, MissAdmission::Verdict why, RewriteGate& gate,
                            std::span<uint8_t> out, size_t& size, uint64_t now) {
  // SERVFAIL, not REFUSED: the condition is this server's and passes (RFC 1035 §4.1.1, "server
  // failure"), so a stub tries its next server or asks again later, and a forwarder in front
  // caches it for seconds at most (RFC 2308 §7.1); REFUSED is policy, here --allow's answer and
  // max_concurrent's (CoreDNS's). glibc moves to the next nameserver on either; musl retries a
  // SERVFAIL within its timeout and gives up on REFUSED.
  (why == MissAdmission::Verdict::kClientShare ? ctx_.counters.shed_client_share
                                               : ctx_.counters.shed_max_waiting)
      .Inc();
  admission_.NoteShed(r.from, why);
  size = BuildErrorReply(r.query, r.q, dns::QueryStatus::kOk, dns::rcode::kServFail, out);
  const std::span<const uint8_t> qname = r.query.subspan(dns::kHeaderSize, r.q.qname_length);
  if (ctx_.coredns) {
    CountCoreDns(r.from, r.server, r.tcp, qname, r.q.qtype, out.data(), ReplySource::kLocal,
                 ctx_.batch_ns, false, true);
  }
  AfterReply(r.from, qname, r.q.qtype, dns::rcode::kServFail, now, gate);
  return Verdict::kReply;
}

void QueryPath::Deliver(const Client& c, std::span<const uint8_t> reply) {
  if (c.miss_admitted) admission_.Release(c.miss_slot);
  if (ctx_.coredns) {
    CountCoreDns(c.addr, c.server, c.tcp, c.qname(), c.q.qtype, reply.data(), c.source, c.start_ns,
                 false, false);
  }
  RewriteGate gate(rewrite_.shared(), c.qname(), c.q.qtype);
  AfterReply(c.addr, c.qname(), c.q.qtype, RcodeOf(reply.data()), ctx_.Now(), gate);
  if (c.source == ReplySource::kRewrite) NoteRewrite(c.addr, c.qname());
  c.sink->SendReply(c, reply);
}

void QueryPath::NoteNxDomain(const sockaddr_storage& client, std::span<const uint8_t> qname) {
  size_t alternative = 0;
  const size_t base = SearchBaseLength(qname, ctx_.config->cluster_domain_wire, &alternative);
  if (base == 0) return;
  ctx_.counters.search_nxdomain.Inc();
  wasted_.Note(client, qname.first(base), qname.first(alternative));
}

void QueryPath::NoteRewrite(const sockaddr_storage& client, std::span<const uint8_t> qname) {
  // A rewritten question is N.<ns>.svc.<zone>: the name the client typed is N, the first reading.
  const size_t base = SearchBaseLength(qname, ctx_.config->cluster_domain_wire);
  if (base != 0) rewritten_.Note(client, qname.first(base));
}

}  // namespace nodedns::proxy
