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
  // Its zone's node-wide count (max_concurrent), decremented on completion; null: no limit.
  std::atomic<int64_t>* zone_in_flight = nullptr;
  uint64_t slow_serial = 0;  // its client response deadline's, while one is armed
  bool slow = false;         // that deadline passed: stale_ok waiters are answered stale
  absl::string_view KeyView() const { return PendingKey(key); }
};

MissTable::MissTable(WorkerContext& ctx) : ctx_(ctx) {}
MissTable::~MissTable() = default;

bool MissTable::Generation::Idle() const {
  for (const auto& f : udp) {
    if (f && f->in_flight() != 0) return false;
  }
  for (const auto& f : tcp) {
    if (f->in_flight() != 0) return false;
  }
  return true;
}

void MissTable::Generation::Shutdown() {
  if (shut_down) return;
  shut_down = true;
  for (auto& f : udp) {
    if (f) f->Shutdown();
  }
  for (auto& f : tcp) f->Shutdown();
}

absl::StatusOr<std::unique_ptr<MissTable::Generation>> MissTable::Build() {
  const ServeConfig& config = *ctx_.config;
  auto g = std::make_unique<Generation>();
  for (const auto& zone : config.zones) {
    // The count is shared by every worker (the server hands out one per zone), so the limit is
    // node-wide as in CoreDNS; a miss path's atomic add, never a hit's. Without the server's
    // (tests drive one worker's parts) the worker keeps its own.
    g->in_flight.push_back(zone.max_concurrent == 0 ? nullptr
                           : zone.in_flight         ? zone.in_flight
                                                    : std::make_shared<std::atomic<int64_t>>(0));
    g->limit.push_back(zone.max_concurrent);
    // Likewise the upstreams' health: the server's, shared, or the worker's own.
    g->health.push_back(zone.health ? zone.health
                                    : std::make_shared<upstream::UpstreamHealth>(
                                          zone.upstreams.size(), HealthOptions(config, zone)));
    g->metrics_upstream.push_back(zone.metrics_upstreams);
  }
  for (size_t i = 0; i < config.zones.size(); ++i) {
    const ForwardZone& zone = config.zones[i];
    upstream::ReplyObserver observer;
    if (ctx_.coredns && g->metrics_upstream[i].size() == zone.upstreams.size()) {
      g->observer_args.push_back(std::make_unique<ObserverArg>(
          ObserverArg{.table = this, .metrics_upstream = &g->metrics_upstream[i]}));
      observer = {.fn = &OnReplyObserved, .arg = g->observer_args.back().get()};
    }
    auto t = upstream::TcpForwarder::Create(ctx_.loop, zone.upstreams,
                                            {.timeout_ms = config.upstream_timeout_ms,
                                             .tries = config.upstream_tries,
                                             .observer = observer,
                                             .health = g->health[i].get(),
                                             // A UDP zone's TCP is its TC=1 fallback only.
                                             .health_reports = zone.force_tcp},
                                            &ctx_.counters.tcp_forwarders);
    if (!t.ok()) return t.status();
    g->tcp.push_back(*std::move(t));
    std::unique_ptr<upstream::UdpForwarder> u;
    if (!zone.force_tcp) {
      auto made =
          upstream::UdpForwarder::Create(ctx_.loop, zone.upstreams,
                                         {.timeout_ms = config.upstream_timeout_ms,
                                          .tries = config.upstream_tries,
                                          .observer = observer,
                                          .health = g->health[i].get()},
                                         g->tcp.back().get(), &ctx_.counters.udp_forwarders);
      if (!made.ok()) return made.status();
      u = *std::move(made);
    }
    g->udp.push_back(std::move(u));
  }
  return g;
}

void MissTable::OnReplyObserved(void* arg, size_t server, uint8_t rcode, uint64_t rtt_ns) {
  const auto* a = static_cast<const ObserverArg*>(arg);
  if (server < a->metrics_upstream->size()) {
    a->table->ctx_.coredns->UpstreamReply((*a->metrics_upstream)[server], rcode, rtt_ns);
  }
}

absl::Status MissTable::Start() {
  auto g = Build();
  if (!g.ok()) return g.status();
  current_ = *std::move(g);
  uv_timer_init(ctx_.loop, &reap_timer_);
  reap_timer_.data = this;
  uv_timer_init(ctx_.loop, &slow_timer_);
  slow_timer_.data = this;
  reap_timer_started_ = true;
  return absl::OkStatus();
}

absl::Status MissTable::Reconfigure() {
  auto g = Build();
  if (!g.ok()) return g.status();
  retired_.push_back(std::move(current_));
  current_ = *std::move(g);
  // The retired forwarders' replies still land in the cache and with their waiters; a timer
  // closes them once idle (not from their own callbacks, which must not delete them).
  uv_timer_start(
      &reap_timer_, [](uv_timer_t* h) { static_cast<MissTable*>(h->data)->ReapRetired(); }, 1000,
      1000);
  return absl::OkStatus();
}

void MissTable::ReapRetired() {
  // Two steps: Shutdown() closes the handles, and the loop must run their close callbacks
  // before the forwarders are deleted, on a later tick.
  std::erase_if(retired_, [](const std::unique_ptr<Generation>& g) { return g->shut_down; });
  for (auto& g : retired_) {
    if (g->Idle()) g->Shutdown();
  }
  if (retired_.empty()) uv_timer_stop(&reap_timer_);
}

void MissTable::Shutdown() {
  if (current_) current_->Shutdown();
  for (auto& g : retired_) g->Shutdown();
  if (reap_timer_started_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&reap_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&slow_timer_), nullptr);
    reap_timer_started_ = false;
  }
  slow_deadlines_.clear();
  slow_armed_.clear();
  pending_.clear();
}

void MissTable::Flush() {
  for (auto& f : current_->udp) {
    if (f) f->Flush();
  }
}

void MissTable::Join(const cache::CacheKey& key, bool do_bit, bool cd_bit, MissWaiter&& waiter) {
  auto it = pending_.find(PendingKey(key));
  if (it != pending_.end()) {
    ctx_.counters.coalesced.Inc();
    Pending* p = it->second.get();
    if (waiter.stale_ok && p->slow) {
      // The upstream has kept earlier clients of this name waiting past the client response
      // timer already: this one is not made to wait again.
      const MissOutcome slow{
          .key = p->key, .ok = false, .reply = {}, .failed = true, .now = ctx_.Now()};
      if (waiter.listener->OnMissSlow(waiter, slow)) return;
    }
    p->waiters.push_back(std::move(waiter));
    if (p->waiters.back().stale_ok) ArmSlow(p);
    return;
  }
  const size_t zone = ZoneOfKey(key);
  if (AtLimit(zone)) {
    // Corefile `forward max_concurrent`: refused at once rather than queued behind the others.
    if (ctx_.coredns) ctx_.coredns->MaxConcurrentReject();
    const MissOutcome outcome{
        .key = key, .ok = false, .reply = {}, .failed = false, .now = ctx_.Now(), .rejected = true};
    waiter.listener->OnMissDone(waiter, outcome);
    return;
  }
  Pending* p = NewPending(key);
  p->waiters.push_back(std::move(waiter));
  if (p->waiters.back().stale_ok) ArmSlow(p);
  // Sent only now, so that a synchronous failure finds the waiter in place.
  Send(key, do_bit, cd_bit, p);
}

void MissTable::ArmSlow(Pending* p) {
  const uint32_t timeout = ctx_.config->stale_answer_client_timeout_ms;
  if (timeout == 0 || p->slow || p->slow_serial != 0) return;
  p->slow_serial = next_serial_++;
  slow_armed_.emplace(p->slow_serial, p);
  slow_deadlines_.push_back({.at_ms = ctx_.Now() + timeout, .serial = p->slow_serial});
  if (!slow_timer_running_) {
    slow_timer_running_ = true;
    uv_timer_start(
        &slow_timer_, [](uv_timer_t* h) { static_cast<MissTable*>(h->data)->OnSlowTimer(); },
        timeout, 0);
  }
}

void MissTable::OnSlowTimer() {
  slow_timer_running_ = false;
  ctx_.EnsureOnline();
  const uint64_t now = ctx_.Now();
  while (!slow_deadlines_.empty() && slow_deadlines_.front().at_ms <= now) {
    const uint64_t serial = slow_deadlines_.front().serial;
    slow_deadlines_.pop_front();
    auto it = slow_armed_.find(serial);
    if (it == slow_armed_.end()) continue;  // answered before its deadline
    Pending* p = it->second;
    slow_armed_.erase(it);
    p->slow_serial = 0;
    p->slow = true;
    // Taken out first: a listener replies from its callback, and nothing it does may reach
    // into this vector meanwhile. The waiters not answered stale go back to wait for upstream.
    std::vector<MissWaiter> waiting;
    waiting.swap(p->waiters);
    const MissOutcome slow{.key = p->key, .ok = false, .reply = {}, .failed = true, .now = now};
    for (MissWaiter& w : waiting) {
      if (!w.stale_ok || !w.listener->OnMissSlow(w, slow)) p->waiters.push_back(std::move(w));
    }
  }
  if (!slow_deadlines_.empty()) {
    slow_timer_running_ = true;
    uv_timer_start(
        &slow_timer_, [](uv_timer_t* h) { static_cast<MissTable*>(h->data)->OnSlowTimer(); },
        slow_deadlines_.front().at_ms - now, 0);
  }
}

size_t MissTable::ZoneOfKey(const cache::CacheKey& key) const {
  return MatchZone(ctx_.config->zones, key.bytes().first(key.qname_length()));
}

bool MissTable::AtLimit(size_t zone) const {
  const size_t limit = current_->limit[zone];
  return limit != 0 &&
         current_->in_flight[zone]->load(std::memory_order_relaxed) >= static_cast<int64_t>(limit);
}

bool MissTable::Refresh(const cache::CacheKey& key, bool do_bit, bool cd_bit) {
  if (pending_.contains(PendingKey(key))) return false;  // already on its way
  if (AtLimit(ZoneOfKey(key))) return false;             // a prefetch can wait for the next hit
  ctx_.counters.prefetches.Inc();
  Send(key, do_bit, cd_bit, NewPending(key));
  return true;
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
  p->slow_serial = 0;
  p->slow = false;
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
  const size_t zone = MatchZone(ctx_.config->zones, kb.first(qlen));
  p->zone_in_flight = current_->in_flight[zone].get();
  if (p->zone_in_flight != nullptr) p->zone_in_flight->fetch_add(1, std::memory_order_relaxed);
  if (upstream::UdpForwarder* f = current_->udp[zone].get()) {
    f->Send({query, len}, &OnUpstreamReply, p);  // leaves with the batch's sendmmsg (Flush)
  } else {
    current_->tcp[zone]->Send({query, len}, &OnUpstreamReply, p);
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
  if (p->zone_in_flight != nullptr) {
    p->zone_in_flight->fetch_sub(1, std::memory_order_relaxed);
    p->zone_in_flight = nullptr;
  }
  if (p->slow_serial != 0) {
    slow_armed_.erase(p->slow_serial);
    p->slow_serial = 0;
  }
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
  if (ok) {
    // The zone's rules (a Corefile `cache` block) in the shared cache; null: the cache's own.
    const ForwardZone& zone = ctx_.config->zones[ZoneOfKey(p->key)];
    ctx_.cache.Insert(*ctx_.thread, p->key, reply, now,
                      zone.cache_policy ? &*zone.cache_policy : nullptr);
  }
  const bool failed = !ok || RcodeOf(reply.data()) == dns::rcode::kServFail;
  if (failed) {
    ctx_.counters.upstream_errors.Inc();
    // RFC 8767 §5: a name with a stale answer is not asked upstream again for a while; every
    // worker sees the mark, which lives in the shared cache entry.
    if (ctx_.config->stale_refresh_time_s != 0) {
      ctx_.cache.NoteFailure(*ctx_.thread, p->key, now, ctx_.config->stale_refresh_time_s * 1000);
    }
  }
  const MissOutcome outcome{.key = p->key,
                            .ok = ok,
                            .reply = ok ? reply : std::span<const uint8_t>(),
                            .failed = failed,
                            .now = now};
  for (MissWaiter& w : own->waiters) w.listener->OnMissDone(w, outcome);
}

}  // namespace nodedns::proxy
