// Coalescing and completion of misses; see miss_table.h.
#include "proxy/miss_table.h"

#include "proxy/reply.h"

namespace nodedns::proxy {

namespace {

// A key's bytes as the pending table's key type.
absl::string_view PendingKey(const cache::CacheKey& key) {
  const auto kb = key.bytes();
  return {reinterpret_cast<const char*>(kb.data()), kb.size()};
}

}  // namespace

struct MissTable::Pending {
  MissTable* table;
  cache::CacheKey key;
  std::vector<MissWaiter> waiters;
  absl::string_view KeyView() const { return PendingKey(key); }
};

MissTable::MissTable(WorkerContext& ctx) : ctx_(ctx) {}
MissTable::~MissTable() = default;

absl::Status MissTable::Start() {
  const ServeConfig& config = ctx_.config;
  for (const auto& zone : config.zones) {
    auto t = upstream::TcpForwarder::Create(
        ctx_.loop, zone.upstreams,
        {.timeout_ms = config.upstream_timeout_ms, .tries = config.upstream_tries},
        &ctx_.counters.tcp_forwarders);
    if (!t.ok()) return t.status();
    tcp_.push_back(*std::move(t));
    std::unique_ptr<upstream::UdpForwarder> u;
    if (!zone.force_tcp) {
      auto made = upstream::UdpForwarder::Create(
          ctx_.loop, zone.upstreams,
          {.timeout_ms = config.upstream_timeout_ms, .tries = config.upstream_tries},
          tcp_.back().get(), &ctx_.counters.udp_forwarders);
      if (!made.ok()) return made.status();
      u = *std::move(made);
    }
    udp_.push_back(std::move(u));
  }
  return absl::OkStatus();
}

void MissTable::Shutdown() {
  for (auto& f : udp_) {
    if (f) f->Shutdown();
  }
  for (auto& f : tcp_) f->Shutdown();
  pending_.clear();
}

void MissTable::Flush() {
  for (auto& f : udp_) {
    if (f) f->Flush();
  }
}

void MissTable::Join(const cache::CacheKey& key, bool do_bit, bool cd_bit, MissWaiter&& waiter) {
  auto it = pending_.find(PendingKey(key));
  if (it != pending_.end()) {
    ctx_.counters.coalesced.Inc();
    it->second->waiters.push_back(std::move(waiter));
    return;
  }
  Pending* p = NewPending(key);
  p->waiters.push_back(std::move(waiter));
  // Sent only now, so that a synchronous failure finds the waiter in place.
  Send(key, do_bit, cd_bit, p);
}

void MissTable::Refresh(const cache::CacheKey& key, bool do_bit, bool cd_bit) {
  if (pending_.contains(PendingKey(key))) return;  // already on its way
  ctx_.counters.prefetches.Inc();
  Send(key, do_bit, cd_bit, NewPending(key));
}

MissTable::Pending* MissTable::NewPending(const cache::CacheKey& key) {
  std::unique_ptr<Pending> p;
  if (!pool_.empty()) {
    p = std::move(pool_.back());
    pool_.pop_back();
  } else {
    p = std::make_unique<Pending>();
  }
  p->table = this;
  p->key = key;
  Pending* raw = p.get();
  pending_.emplace(raw->KeyView(), std::move(p));
  return raw;
}

void MissTable::Send(const cache::CacheKey& key, bool do_bit, bool cd_bit, Pending* p) {
  const auto kb = key.bytes();
  const size_t qlen = key.qname_length();
  uint8_t query[dns::kHeaderSize + dns::kMaxNameWire + 4 + dns::kOptRecordSize];
  const size_t len = BuildUpstreamQuery(kb.first(qlen), dns::Get16(kb.data() + qlen),
                                        dns::Get16(kb.data() + qlen + 2), do_bit, cd_bit, query);
  ctx_.counters.upstream_queries.Inc();
  const size_t zone = MatchZone(ctx_.config.zones, kb.first(qlen));
  if (upstream::UdpForwarder* f = udp_[zone].get()) {
    f->Send({query, len}, &OnUpstreamReply, p);  // leaves with the batch's sendmmsg (Flush)
  } else {
    tcp_[zone]->Send({query, len}, &OnUpstreamReply, p);
  }
}

void MissTable::OnUpstreamReply(void* arg, upstream::ForwardStatus status,
                                std::span<const uint8_t> reply) {
  auto* p = static_cast<Pending*>(arg);
  p->table->Complete(p, status, reply);
}

void MissTable::Complete(Pending* p, upstream::ForwardStatus status,
                         std::span<const uint8_t> reply) {
  auto it = pending_.find(p->KeyView());
  if (it == pending_.end() || it->second.get() != p) return;
  std::unique_ptr<Pending> own = std::move(it->second);
  pending_.erase(it);
  // Back to the pool when done (after the waiters: they may start new misses meanwhile).
  struct Recycle {
    MissTable* t;
    std::unique_ptr<Pending>& p;
    ~Recycle() {
      p->waiters.clear();
      if (t->pool_.size() < 1024) t->pool_.push_back(std::move(p));
    }
  } recycle{this, own};
  if (ctx_.stopping || status == upstream::ForwardStatus::kShutdown) return;  // nobody to answer
  ctx_.EnsureOnline();
  const uint64_t now = ctx_.Now();
  const auto kb = p->key.bytes();
  const size_t qlen = p->key.qname_length();
  const bool ok = status == upstream::ForwardStatus::kOk &&
                  dns::ResponseMatchesQuestion(reply, kb.first(qlen), dns::Get16(kb.data() + qlen),
                                               dns::Get16(kb.data() + qlen + 2));
  if (ok) ctx_.cache.Insert(*ctx_.thread, p->key, reply, now);
  const bool failed = !ok || RcodeOf(reply.data()) == dns::rcode::kServFail;
  if (failed) ctx_.counters.upstream_errors.Inc();
  const MissOutcome outcome{.key = p->key,
                            .ok = ok,
                            .reply = ok ? reply : std::span<const uint8_t>(),
                            .failed = failed,
                            .now = now};
  for (MissWaiter& w : own->waiters) w.listener->OnMissDone(w, outcome);
}

}  // namespace nodedns::proxy
