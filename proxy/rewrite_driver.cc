// The search-path rewrite's orchestration on a worker; see rewrite_driver.h.
#include "proxy/rewrite_driver.h"

#include <algorithm>
#include <cstring>

#include "proxy/reply.h"

namespace nodedns::proxy {

using cache::LookupResult;

namespace {

// A candidate waiter's tag: the rewrite's id, then the candidate's index.
constexpr int kIndexBits = 16;
uint64_t CandidateTag(uint64_t id, size_t index) { return id << kIndexBits | index; }

}  // namespace

// A search-path rewrite in progress: the client waiting, the candidates and their outcomes.
struct RewriteDriver::Rewrite {
  RewriteDriver* driver;
  uint64_t id;
  Client client;
  RewritePlan plan;
  std::vector<CandidateResult> results;
  std::vector<uint8_t> original;  // the NXDOMAIN for the client's question
  uv_timer_t deadline;
  bool starting = true;  // candidates are being registered: decide only afterwards
  size_t started = 0;    // candidates [0, started) were looked up or sent
};

bool RewriteDriver::MayRewrite(const sockaddr_storage& client, std::span<const uint8_t> qname,
                               const dns::QueryInfo& q, uint64_t now, NamespaceName& ns) {
  // The CNAME is ours and unsigned: a validating client (DO) or one that validates itself (CD)
  // gets the upstream's answer. Class IN only: the rewrite class is private.
  if (q.do_bit || q.cd() || q.qclass != dns::kClassIN || !rewrite_->AnyNamespace()) return false;
  return rewrite_->ExpansionNamespace(AsSocketAddress(client), qname, now, ns);
}

size_t RewriteDriver::LookupRewritten(std::span<const uint8_t> qname, uint16_t qtype,
                                      const NamespaceName& ns, uint64_t now,
                                      std::span<uint8_t> body) {
  const cache::CacheKey key(qname, qtype, kRewriteCacheClass, false, false);
  // Never stale and never refreshed: an expired rewrite is rebuilt from the candidates, and the
  // private class must not go upstream.
  const LookupResult r = ctx_.cache.Lookup(*ctx_.thread, key, now, body);
  if (r.status != LookupResult::Status::kHit) return 0;
  ctx_.counters.search_rewrites.Inc();
  // The steps skipped: the candidate the CNAME points to, plus one. Off the hit path proper
  // (only rewritten answers pay for the plan).
  const std::span<const uint8_t> msg = body.first(r.size);
  auto plan = PlanRewrite(qname, qtype, ns.view(), rewrite_->settings());
  // The first answer record is our CNAME, right after the question: owner, then type, class, TTL
  // and rdlength (10 bytes), then the target.
  const std::optional<size_t> owner_end = dns::SkipName(msg, dns::kHeaderSize + qname.size() + 4);
  uint8_t target[dns::kMaxNameWire];
  const std::optional<size_t> target_len =
      plan && owner_end ? dns::ExpandName(msg, *owner_end + 10, target) : std::nullopt;
  for (size_t i = 0; target_len && i < plan->candidates.size(); ++i) {
    const std::vector<uint8_t>& c = plan->candidates[i];
    if (c.size() == *target_len && dns::NameEqualsIgnoreCase(c.data(), target, c.size())) {
      ctx_.counters.search_rewrite_avoided.Inc(i + 1);
      break;
    }
  }
  return r.size;
}

void RewriteDriver::Start(Client&& client, const NamespaceName& ns,
                          std::span<const uint8_t> original) {
  const std::span<const uint8_t> qname = client.qname();
  const uint16_t qtype = client.q.qtype;
  std::optional<RewritePlan> plan = PlanRewrite(qname, qtype, ns.view(), rewrite_->settings());
  auto* r = new Rewrite;
  r->driver = this;
  r->id = next_id_++;
  r->client = std::move(client);
  r->original.assign(original.begin(), original.end());  // before the lookups reuse scratch
  uv_timer_init(ctx_.loop, &r->deadline);
  r->deadline.data = r;
  rewrites_.emplace(r->id, r);
  if (!plan || plan->candidates.empty()) {
    Finish(r, Decision{.kind = Decision::Kind::kNoRewrite});
    return;
  }
  ctx_.counters.search_rewrite_attempts.Inc();
  r->plan = *std::move(plan);
  r->results.resize(r->plan.candidates.size());
  // Names inside the cluster zone first; the others (node domains, N.) only once every cluster
  // candidate is NXDOMAIN. Otherwise a lookup of a service in another namespace (web.otherns)
  // would also send web.otherns.<node domain> and web.otherns. to the node's resolvers: names the
  // client never asks, leaked outside the cluster for every cold lookup.
  size_t cluster = 0;
  while (cluster < r->plan.candidates.size() &&
         internal::StemBefore(r->plan.candidates[cluster], rewrite_->settings().zone_wire)) {
    ++cluster;
  }
  StartCandidates(r, cluster == 0 ? r->plan.candidates.size() : cluster);
  r->starting = false;
  Evaluate(r);
  if (rewrites_.contains(r->id)) {
    uv_timer_start(
        &r->deadline,
        [](uv_timer_t* t) {
          auto* rw = static_cast<Rewrite*>(t->data);
          // Past the deadline a pending candidate counts as failed: the client is better off
          // walking its list itself than retrying its first query while we wait.
          for (CandidateResult& c : rw->results) {
            if (c.state == CandidateState::kPending) c.state = CandidateState::kFailed;
          }
          rw->driver->ctx_.counters.search_rewrite_timeouts.Inc();
          rw->driver->ctx_.EnsureOnline();
          rw->driver->Evaluate(rw);
        },
        ctx_.config->search_rewrite_deadline_ms, 0);
  }
}

void RewriteDriver::StartCandidates(Rewrite* r, size_t end) {
  const uint16_t qtype = r->client.q.qtype;
  const uint64_t now = ctx_.Now();
  const std::span<uint8_t> body(ctx_.scratch.data(), ctx_.scratch.size() - dns::kOptRecordSize);
  for (size_t i = r->started; i < end; ++i) {
    const cache::CacheKey key(r->plan.candidates[i], qtype, dns::kClassIN, false, false);
    const LookupResult hit = ctx_.cache.Lookup(*ctx_.thread, key, now, body);
    if (hit.status == LookupResult::Status::kHit) {
      r->results[i] = {ClassifyResponse(body.first(hit.size), r->plan.candidates[i], qtype),
                       {body.begin(), body.begin() + hit.size}};
      if (hit.refresh_wanted) misses_.Refresh(key, false, false);
      continue;
    }
    MissWaiter w;
    w.listener = this;
    w.tag = CandidateTag(r->id, i);
    misses_.Join(key, false, false, std::move(w));  // may complete at once (a send failure)
  }
  r->started = std::max(r->started, end);
}

void RewriteDriver::OnMissDone(MissWaiter& waiter, const MissOutcome& o) {
  auto it = rewrites_.find(waiter.tag >> kIndexBits);
  if (it == rewrites_.end()) return;  // decided already (or the deadline passed)
  Rewrite* r = it->second;
  const size_t index = waiter.tag & ((uint64_t{1} << kIndexBits) - 1);
  if (index >= r->results.size() || r->results[index].state != CandidateState::kPending) return;
  const auto kb = o.key.bytes();
  const size_t qlen = o.key.qname_length();
  const CandidateState state =
      o.ok ? ClassifyResponse(o.reply, kb.first(qlen), dns::Get16(kb.data() + qlen))
           : CandidateState::kFailed;
  r->results[index] = {state, {o.reply.begin(), o.reply.end()}};
  Evaluate(r);
}

void RewriteDriver::Evaluate(Rewrite* r) {
  if (r->starting) return;
  Decision d = Decide(r->results);
  if (d.kind == Decision::Kind::kWait && r->started < r->results.size()) {
    // Waiting on a candidate not started yet: every started one before it is NXDOMAIN.
    size_t first_pending = 0;
    while (r->results[first_pending].state != CandidateState::kPending) ++first_pending;
    if (first_pending >= r->started) {
      r->starting = true;
      StartCandidates(r, r->results.size());
      r->starting = false;
      d = Decide(r->results);
    }
  }
  if (d.kind != Decision::Kind::kWait) Finish(r, d);
}

void RewriteDriver::Finish(Rewrite* r, const Decision& d) {
  rewrites_.erase(r->id);
  uv_close(reinterpret_cast<uv_handle_t*>(&r->deadline),
           [](uv_handle_t* h) { delete static_cast<Rewrite*>(h->data); });
  Client& c = r->client;
  const std::span<const uint8_t> qname = c.qname();
  std::span<uint8_t> out(ctx_.scratch);
  const std::span<uint8_t> body = out.first(out.size() - dns::kOptRecordSize);
  size_t size = 0;
  if (d.kind == Decision::Kind::kUse) {
    const uint32_t cap = NegativeTtlCap(r->original, r->results, d.index);
    auto answer = SynthesizeAnswer(qname, c.q.qtype, r->plan.candidates[d.index],
                                   r->results[d.index].response, cap);
    if (answer.ok() && answer->size() <= body.size()) {
      // Cached under the private class: only clients in this namespace ever get it.
      ctx_.cache.Insert(*ctx_.thread,
                        cache::CacheKey(qname, c.q.qtype, kRewriteCacheClass, false, false),
                        *answer, ctx_.Now());
      std::memcpy(body.data(), answer->data(), answer->size());
      size = answer->size();
      c.source = ReplySource::kRewrite;
      ctx_.counters.search_rewrites.Inc();
      ctx_.counters.search_rewrite_avoided.Inc(d.index + 1);
    } else {
      ctx_.counters.search_rewrite_declined_failed.Inc();
    }
  } else if (d.kind == Decision::Kind::kAllNxDomain) {
    ctx_.counters.search_rewrite_declined_nxdomain.Inc();
  } else {
    ctx_.counters.search_rewrite_declined_failed.Inc();
  }
  if (size == 0) size = CopyWithoutOpt(r->original, body);  // the client's own NXDOMAIN
  if (size == 0) {
    size = BuildErrorReply(c.question(), c.q, dns::QueryStatus::kOk, dns::rcode::kServFail, out);
  } else {
    bool tc = false;
    size = FinishReply(out, size, c.question(), c.q, c.Limit(), &tc);
    if (tc) ctx_.counters.truncated.Inc();
  }
  delivery_.Deliver(c, out.first(size));
}

void RewriteDriver::Shutdown() {
  for (auto& [id, r] : rewrites_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&r->deadline),
             [](uv_handle_t* h) { delete static_cast<Rewrite*>(h->data); });
  }
  rewrites_.clear();
}

}  // namespace nodedns::proxy
