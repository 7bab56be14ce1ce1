// The shared response cache; see response_cache.h and docs/architecture.md ("The cache").
#include "cache/response_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cache/slab.h"
#include "dns/wire.h"

namespace nodedns::cache {

namespace {

// Slot encoding: 0 = empty (ends a probe), 1 = tombstone (probe goes on), otherwise a 48-bit entry
// pointer with 16 tag bits of the key's hash on top, so that a probe rarely dereferences an entry
// that is not the one it looks for. x86-64 and AArch64 user-space pointers fit in 48 bits.
constexpr uint64_t kEmpty = 0;
constexpr uint64_t kTombstone = 1;
constexpr uint64_t kPtrMask = (uint64_t{1} << 48) - 1;
constexpr size_t kInitialSlots = 64;
// Slab pages relocated per Insert/Erase/PurgeExpired while some are draining (Drain).
constexpr int kDrainPagesPerCall = 2;
// How many live entries the CLOCK hand examines past its first candidate, looking for an expired
// entry to evict instead.
constexpr size_t kEvictLookahead = 32;

uint64_t TagOf(uint64_t hash) { return (hash >> 32) & 0xffff; }

}  // namespace

absl::Status CacheSettings::Validate() const {
  if (capacity_bytes < 64 * 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache capacity ", capacity_bytes, " bytes is below the 64 KiB minimum"));
  }
  if (shards != 0 && !std::has_single_bit(shards)) {
    return absl::InvalidArgumentError(absl::StrCat("shard count ", shards, " is not a power of 2"));
  }
  if (shards > 4096) return absl::InvalidArgumentError("shard count above 4096");
  if (min_ttl > max_ttl) {
    return absl::InvalidArgumentError(
        absl::StrCat("min TTL ", min_ttl, " is above max TTL ", max_ttl));
  }
  if (servfail_ttl > 300) {
    return absl::InvalidArgumentError(
        absl::StrCat("SERVFAIL TTL ", servfail_ttl, " s is above 300 s (RFC 2308 §7.1)"));
  }
  if (prefetch_min_hits > 255) return absl::InvalidArgumentError("prefetch hits above 255");
  if (prefetch_percent > 100) return absl::InvalidArgumentError("prefetch percent above 100");
  if (max_entry_bytes < 512 || max_entry_bytes > dns::kMaxMessage) {
    return absl::InvalidArgumentError("max entry size must be within 512..65535 bytes");
  }
  return absl::OkStatus();
}

// Immutable once published, except for the three relaxed hint fields. Followed in memory by the
// key bytes, the TTL offsets and the wire message.
struct ResponseCache::Entry {
  uint64_t hash;
  uint64_t stored_ms;
  uint64_t expires_ms;
  uint64_t stale_until_ms;
  uint32_t lifetime_ms;
  uint32_t charge;  // bytes accounted for this entry
  uint16_t key_size;
  uint16_t wire_size;
  uint16_t n_ttls;
  EntryKind kind;
  // CLOCK's "recently used" bit: set by readers only when clear, so hot entries are not written.
  std::atomic<uint8_t> referenced{0};
  // Saturating hit count for the prefetch threshold: a racy load+store, not a read-modify-write;
  // it stops being written once it reaches the threshold.
  std::atomic<uint8_t> hits{0};
  // Claimed with one exchange, by the one hit that reports "refresh wanted".
  std::atomic<uint8_t> prefetch_claimed{0};
  uint8_t prefetch_min_hits;  // the entry's EntryPolicy: zones may differ
  uint8_t prefetch_percent;
  // RFC 8767 §5's failure recheck: until stored_ms + this (0: never), an expired entry is served
  // stale without asking upstream again (NoteFailure). A relaxed store by the worker whose
  // upstream query failed, read only by lookups that found the entry expired.
  std::atomic<uint32_t> recheck_after_ms{0};

  uint8_t* key() { return reinterpret_cast<uint8_t*>(this + 1); }
  uint16_t* ttl_offsets() {
    return reinterpret_cast<uint16_t*>(key() + ((key_size + 1) & ~size_t{1}));
  }
  uint8_t* wire() { return reinterpret_cast<uint8_t*>(ttl_offsets() + n_ttls); }
  static size_t AllocSize(size_t key_size, size_t n_ttls, size_t wire_size) {
    return sizeof(Entry) + ((key_size + 1) & ~size_t{1}) + 2 * n_ttls + wire_size;
  }
};

struct ResponseCache::Table {
  size_t mask;
  std::atomic<uint64_t>* slots() { return reinterpret_cast<std::atomic<uint64_t>*>(this + 1); }
  // Tables of 4 KiB and more are mapped on their own (whole pages, given back when freed): from
  // malloc, tables of changing sizes left free chunks in the heap that no budget counted. Smaller
  // ones (one per shard at start) come from malloc, with its 16-byte overhead counted.
  static size_t Raw(size_t capacity) {
    return sizeof(Table) + capacity * sizeof(std::atomic<uint64_t>);
  }
  static bool Mapped(size_t capacity) { return Raw(capacity) >= 4096; }
  static size_t Bytes(size_t capacity) {
    return Mapped(capacity) ? (Raw(capacity) + 4095) & ~size_t{4095} : Raw(capacity) + 16;
  }
  static Table* Create(size_t capacity) {
    void* mem = Mapped(capacity) ? mmap(nullptr, Bytes(capacity), PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                                 : ::operator new(Raw(capacity));
    if (mem == MAP_FAILED) throw std::bad_alloc();
    auto* t = new (mem) Table{capacity - 1};
    for (size_t i = 0; i < capacity; ++i) new (&t->slots()[i]) std::atomic<uint64_t>(kEmpty);
    return t;
  }
};

namespace {
constexpr uint32_t kMaxLifetimeS = 30 * 86400;
size_t IsNegative(EntryKind k) { return k == EntryKind::kNxDomain || k == EntryKind::kNoData; }
}  // namespace

struct ResponseCache::Shard {
  // Read by every lookup: alone on its cache line so that writers' bookkeeping does not bounce it.
  alignas(64) std::atomic<Table*> table{nullptr};
  alignas(64) std::mutex mu;
  size_t live = 0;        // guarded by mu
  size_t negative = 0;    // of them NXDOMAIN or NODATA, guarded by mu
  size_t tombstones = 0;  // guarded by mu
  size_t hand = 0;        // CLOCK hand, guarded by mu
  size_t purge_hand = 0;  // guarded by mu
  // Written under mu, read without it by Stats().
  std::atomic<size_t> bytes{0};
  std::atomic<uint64_t> evictions{0};
  std::atomic<uint64_t> expired_evictions{0};
};

ResponseCache::Shard& ResponseCache::ShardFor(uint64_t hash) {
  // Two shifts so that a single shard (shift 64 in one step, undefined) maps everything to 0.
  return shards_[(hash >> 32) >> shard_shift_];
}

void ResponseCache::FreeEntry(void* p) {
  auto* e = static_cast<Entry*>(p);
  const size_t bytes = Entry::AllocSize(e->key_size, e->n_ttls, e->wire_size);
  e->~Entry();
  internal::Slab::Free(e, bytes);
}

void ResponseCache::FreeTable(void* p) {
  auto* t = static_cast<Table*>(p);
  const size_t capacity = t->mask + 1;
  if (Table::Mapped(capacity)) {
    munmap(t, Table::Bytes(capacity));
  } else {
    ::operator delete(t);
  }
}

ResponseCache::ResponseCache(const CacheSettings& settings)
    : settings_(settings), default_policy_(settings.Policy()) {
  // recheck_after_ms fills what alignment would pad anyway (docs/architecture.md).
  static_assert(sizeof(Entry) == 56);
  size_t n = settings.shards;
  if (n == 0) {
    // At least 4 MiB per shard so that per-shard budgets do not fragment a small cache, and 64
    // shards at most: with W writer threads, a writer finds its shard busy with probability about
    // W/64 per insert, and inserts are a minority of operations (see docs/architecture.md).
    n = std::bit_floor(std::max<size_t>(1, settings.capacity_bytes / (size_t{4} << 20)));
    n = std::min<size_t>(n, 64);
  }
  shard_count_ = n;
  shard_shift_ = 32 - static_cast<unsigned>(std::countr_zero(n));
  shard_budget_ = settings.capacity_bytes / n;
  shards_.reset(new Shard[n]);
  for (size_t i = 0; i < n; ++i) {
    shards_[i].table.store(Table::Create(kInitialSlots), std::memory_order_relaxed);
    shards_[i].bytes.store(Table::Bytes(kInitialSlots), std::memory_order_relaxed);
  }
}

ResponseCache::~ResponseCache() {
  for (size_t i = 0; i < shard_count_; ++i) {
    Table* t = shards_[i].table.load(std::memory_order_relaxed);
    for (size_t j = 0; j <= t->mask; ++j) {
      const uint64_t v = t->slots()[j].load(std::memory_order_relaxed);
      if (v != kEmpty && v != kTombstone) FreeEntry(reinterpret_cast<Entry*>(v & kPtrMask));
    }
    FreeTable(t);
  }
}

std::unique_ptr<CacheThread> ResponseCache::RegisterThread() {
  auto q = qsbr_.Register();
  if (!q) return nullptr;
  return std::make_unique<CacheThread>(std::move(q));
}

// The live entry for `key`, or null. Lock-free: the caller is online (QSBR), so the entry stays
// readable until its next quiescent point.
[[gnu::always_inline]] inline ResponseCache::Entry* ResponseCache::Find(const CacheKey& key) {
  const uint64_t h = key.hash();
  const auto kb = key.bytes();
  Table* table = ShardFor(h).table.load(std::memory_order_acquire);
  const uint64_t tag = TagOf(h);
  const size_t mask = table->mask;
  std::atomic<uint64_t>* slots = table->slots();
  for (size_t i = h & mask, n = 0; n <= mask; ++n, i = (i + 1) & mask) {
    const uint64_t v = slots[i].load(std::memory_order_acquire);
    if (v == kEmpty) return nullptr;
    if (v == kTombstone || (v >> 48) != tag) continue;
    Entry* c = reinterpret_cast<Entry*>(v & kPtrMask);
    if (c->hash == h && c->key_size == kb.size() &&
        std::memcmp(c->key(), kb.data(), kb.size()) == 0) {
      return c;
    }
  }
  return nullptr;
}

LookupResult ResponseCache::Lookup(CacheThread& /*t: its online state is the caller's promise*/,
                                   const CacheKey& key, uint64_t now_ms, std::span<uint8_t> out,
                                   bool allow_stale) {
  LookupResult r;
  Entry* e = Find(key);
  if (e == nullptr) return r;

  r.kind = e->kind;
  r.size = e->wire_size;
  bool stale = false;
  if (now_ms >= e->expires_ms) {
    if (now_ms >= e->stale_until_ms) return r;  // dead: a miss
    if (!allow_stale) {
      r.status = LookupResult::Status::kExpired;
      const uint32_t recheck = e->recheck_after_ms.load(std::memory_order_relaxed);
      r.upstream_failing = recheck != 0 && now_ms < e->stored_ms + recheck;
      return r;
    }
    stale = true;
  }
  if (out.size() < e->wire_size) {
    r.status = LookupResult::Status::kTooSmall;
    return r;
  }
  std::memcpy(out.data(), e->wire(), e->wire_size);
  const uint16_t* offs = e->ttl_offsets();
  const uint8_t* wire = e->wire();
  if (stale) {
    r.status = LookupResult::Status::kStale;
    r.ttl = settings_.stale_answer_ttl;
    for (size_t i = 0; i < e->n_ttls; ++i) dns::Put32(out.data() + offs[i], r.ttl);
    return r;
  }
  r.status = LookupResult::Status::kHit;
  // Whole seconds elapsed: TTLs count down in seconds and never below zero (RFC 1035 §3.2.1).
  const uint32_t elapsed = static_cast<uint32_t>((now_ms - e->stored_ms) / 1000);
  uint32_t min_ttl = UINT32_MAX;
  for (size_t i = 0; i < e->n_ttls; ++i) {
    const uint32_t ttl = dns::Get32(wire + offs[i]);
    const uint32_t aged = ttl > elapsed ? ttl - elapsed : 0;
    dns::Put32(out.data() + offs[i], aged);
    min_ttl = std::min(min_ttl, aged);
  }
  r.ttl = e->n_ttls ? min_ttl : static_cast<uint32_t>((e->expires_ms - now_ms) / 1000);

  if (e->referenced.load(std::memory_order_relaxed) == 0) {
    e->referenced.store(1, std::memory_order_relaxed);
  }
  const uint32_t threshold = e->prefetch_min_hits;
  uint8_t hits = e->hits.load(std::memory_order_relaxed);
  if (hits < threshold && hits < 255) {
    e->hits.store(++hits, std::memory_order_relaxed);
  }
  if (hits >= threshold && e->prefetch_percent > 0) {
    const uint64_t remaining = e->expires_ms - now_ms;
    if (remaining * 100 < uint64_t{e->lifetime_ms} * e->prefetch_percent &&
        e->prefetch_claimed.load(std::memory_order_relaxed) == 0 &&
        e->prefetch_claimed.exchange(1, std::memory_order_relaxed) == 0) {
      r.refresh_wanted = true;
    }
  }
  return r;
}

bool ResponseCache::NoteFailure(CacheThread& /*t*/, const CacheKey& key, uint64_t now_ms,
                                uint32_t recheck_ms) {
  Entry* e = Find(key);
  // Only an entry that is expired and can still serve stale: a fresh one is answered anyway,
  // and past the stale window there is nothing to serve.
  if (e == nullptr || now_ms < e->expires_ms || now_ms >= e->stale_until_ms) return false;
  const uint64_t until = std::min(now_ms + recheck_ms, e->stale_until_ms) - e->stored_ms;
  e->recheck_after_ms.store(static_cast<uint32_t>(std::min<uint64_t>(until, UINT32_MAX)),
                            std::memory_order_relaxed);
  return true;
}

void ResponseCache::PrefetchSlot(const CacheKey& key) {
  const uint64_t h = key.hash();
  Table* table = ShardFor(h).table.load(std::memory_order_acquire);
  __builtin_prefetch(&table->slots()[h & table->mask]);
}

void ResponseCache::PrefetchEntry(const CacheKey& key) {
  const uint64_t h = key.hash();
  Table* table = ShardFor(h).table.load(std::memory_order_acquire);
  const uint64_t v = table->slots()[h & table->mask].load(std::memory_order_relaxed);
  if (v == kEmpty || v == kTombstone || (v >> 48) != TagOf(h)) return;
  // Header and key, TTL offsets, and the start of the message: three lines cover a typical answer.
  // A prefetch of memory freed meanwhile is harmless: prefetches never fault.
  const char* e = reinterpret_cast<const char*>(v & kPtrMask);
  __builtin_prefetch(e);
  __builtin_prefetch(e + 64);
  __builtin_prefetch(e + 128);
}

ResponseCache::Entry* ResponseCache::BuildEntry(const CacheKey& key,
                                                std::span<const uint8_t> response, uint64_t now_ms,
                                                const EntryPolicy& policy,
                                                InsertResult& why) const {
  dns::ResponseLayout layout;
  if (dns::ParseResponseLayout(response, layout) != dns::LayoutStatus::kOk ||
      !(layout.flags & dns::flag::kQR)) {
    why = InsertResult::kMalformed;
    return nullptr;
  }
  // A truncated answer is incomplete; an extended rcode (e.g. BADVERS) is about that exchange; an
  // OPT record that is not last cannot be cut out without breaking compression pointers behind it.
  if ((layout.flags & dns::flag::kTC) || (layout.opt_offset && (layout.opt_ttl >> 24) != 0) ||
      (layout.opt_offset && layout.opt_end != layout.end)) {
    why = InsertResult::kNotCacheable;
    return nullptr;
  }
  EntryKind kind;
  switch (layout.rcode) {
    case dns::rcode::kNoError:
      kind = layout.ancount > 0 ? EntryKind::kAnswer : EntryKind::kNoData;
      break;
    case dns::rcode::kNxDomain:
      kind = EntryKind::kNxDomain;
      break;
    case dns::rcode::kServFail:
      kind = EntryKind::kServFail;
      break;
    default:
      why = InsertResult::kNotCacheable;
      return nullptr;
  }
  const bool negative = kind == EntryKind::kNxDomain || kind == EntryKind::kNoData;
  if (negative && layout.soa_ttl_offset == 0) {
    // RFC 2308 §5: without an SOA there is no negative TTL; such answers are not cached.
    why = InsertResult::kNoTtl;
    return nullptr;
  }
  const size_t wire_size = layout.opt_offset ? layout.opt_offset : layout.end;
  if (wire_size > settings_.max_entry_bytes) {
    why = InsertResult::kTooLarge;
    return nullptr;
  }
  const auto kb = key.bytes();
  const size_t alloc = Entry::AllocSize(kb.size(), layout.n_ttls, wire_size);
  void* mem = slab_.Allocate(alloc);
  auto* e = new (mem) Entry;
  e->hash = key.hash();
  e->key_size = static_cast<uint16_t>(kb.size());
  e->wire_size = static_cast<uint16_t>(wire_size);
  e->n_ttls = layout.n_ttls;
  e->kind = kind;
  e->charge = static_cast<uint32_t>(internal::Slab::Charge(alloc));
  std::memcpy(e->key(), kb.data(), kb.size());
  std::memcpy(e->ttl_offsets(), layout.ttl_offsets, 2 * size_t{layout.n_ttls});
  uint8_t* wire = e->wire();
  std::memcpy(wire, response.data(), wire_size);
  if (layout.opt_offset) dns::Put16(wire + 10, layout.arcount - 1);

  uint32_t lifetime = UINT32_MAX;
  for (size_t i = 0; i < layout.n_ttls; ++i) {
    uint8_t* p = wire + layout.ttl_offsets[i];
    uint32_t ttl = dns::Get32(p);
    if (ttl > INT32_MAX) ttl = 0;  // RFC 2181 §8: a TTL with the top bit set means zero
    if (negative && layout.ttl_offsets[i] == layout.soa_ttl_offset) {
      // RFC 2308 §5: the negative TTL is the lesser of the SOA's TTL and its MINIMUM field.
      ttl = std::min(std::max(std::min(ttl, layout.soa_minimum), policy.min_negative_ttl),
                     policy.max_negative_ttl);
    } else if (negative) {
      ttl = std::min(std::max(ttl, policy.min_negative_ttl), policy.max_negative_ttl);
    } else if (kind == EntryKind::kServFail) {
      ttl = std::min(ttl, policy.servfail_ttl);
    } else {
      ttl = std::min(std::max(ttl, policy.min_ttl), policy.max_ttl);
    }
    dns::Put32(p, ttl);
    lifetime = std::min(lifetime, ttl);
  }
  if (kind == EntryKind::kServFail) lifetime = policy.servfail_ttl;
  if (lifetime == 0 || lifetime == UINT32_MAX) {
    FreeEntry(e);
    why = InsertResult::kNoTtl;
    return nullptr;
  }
  // lifetime_ms is 32 bits: about 49 days. Longer TTLs (RFC 2181 allows 68 years) are served as
  // they are but the entry is refreshed after kMaxLifetimeS.
  e->lifetime_ms = std::min(lifetime, kMaxLifetimeS) * 1000;
  e->stored_ms = now_ms;
  e->expires_ms = now_ms + e->lifetime_ms;
  // A stale SERVFAIL is worth nothing: it leaves with its TTL.
  e->stale_until_ms =
      e->expires_ms + (kind == EntryKind::kServFail ? 0 : uint64_t{policy.stale_ttl} * 1000);
  e->prefetch_min_hits = policy.prefetch_min_hits;
  e->prefetch_percent = policy.prefetch_percent;
  return e;
}

void ResponseCache::RemoveAt(CacheThread& t, Shard& s, size_t slot, Removal why) {
  Table* table = s.table.load(std::memory_order_relaxed);
  const uint64_t v = table->slots()[slot].load(std::memory_order_relaxed);
  Entry* e = reinterpret_cast<Entry*>(v & kPtrMask);
  table->slots()[slot].store(kTombstone, std::memory_order_release);
  --s.live;
  s.negative -= IsNegative(e->kind);
  ++s.tombstones;
  s.bytes.store(s.bytes.load(std::memory_order_relaxed) - e->charge, std::memory_order_relaxed);
  if (why != Removal::kErased) {
    auto& counter = why == Removal::kExpired ? s.expired_evictions : s.evictions;
    counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  t.qsbr().Retire(e, &FreeEntry, e->charge);
}

void ResponseCache::EvictOne(CacheThread& t, Shard& s, uint64_t now_ms) {
  Table* table = s.table.load(std::memory_order_relaxed);
  const size_t mask = table->mask;
  std::atomic<uint64_t>* slots = table->slots();
  size_t candidate = SIZE_MAX;
  size_t examined_after = 0;
  // Two full turns clear every reference bit at worst; the lookahead adds a little more.
  for (size_t step = 0; step < 2 * (mask + 1) + kEvictLookahead; ++step) {
    const size_t i = s.hand;
    s.hand = (s.hand + 1) & mask;
    const uint64_t v = slots[i].load(std::memory_order_relaxed);
    if (v == kEmpty || v == kTombstone) continue;
    Entry* e = reinterpret_cast<Entry*>(v & kPtrMask);
    if (now_ms >= e->expires_ms) {  // expired entries go first
      RemoveAt(t, s, i, Removal::kExpired);
      return;
    }
    if (candidate != SIZE_MAX) {
      if (++examined_after >= kEvictLookahead) break;
      continue;
    }
    if (e->referenced.load(std::memory_order_relaxed)) {
      e->referenced.store(0, std::memory_order_relaxed);  // second chance
    } else {
      candidate = i;
    }
  }
  if (candidate == SIZE_MAX) return;
  RemoveAt(t, s, candidate, Removal::kEvicted);
  // Entries looked at past the candidate keep their place in the next sweep.
  s.hand = (candidate + 1) & mask;
}

bool ResponseCache::EnsureRoom(CacheThread& t, Shard& s, size_t bytes, uint64_t now_ms) {
  while (s.bytes.load(std::memory_order_relaxed) + bytes > shard_budget_) {
    if (s.live == 0) return false;
    EvictOne(t, s, now_ms);
  }
  return true;
}

void ResponseCache::Rebuild(CacheThread& t, Shard& s, size_t new_capacity) {
  Table* old = s.table.load(std::memory_order_relaxed);
  Table* fresh = Table::Create(new_capacity);
  const size_t mask = fresh->mask;
  for (size_t i = 0; i <= old->mask; ++i) {
    const uint64_t v = old->slots()[i].load(std::memory_order_relaxed);
    if (v == kEmpty || v == kTombstone) continue;
    const uint64_t h = reinterpret_cast<Entry*>(v & kPtrMask)->hash;
    size_t j = h & mask;
    while (fresh->slots()[j].load(std::memory_order_relaxed) != kEmpty) j = (j + 1) & mask;
    fresh->slots()[j].store(v, std::memory_order_relaxed);
  }
  // Readers that loaded the old table keep using it until their next quiescent point; entries in
  // both tables are the same objects, retired only when removed from the new one.
  s.table.store(fresh, std::memory_order_release);
  s.tombstones = 0;
  s.hand = 0;
  s.purge_hand = 0;
  s.bytes.store(s.bytes.load(std::memory_order_relaxed) - Table::Bytes(old->mask + 1) +
                    Table::Bytes(new_capacity),
                std::memory_order_relaxed);
  t.qsbr().Retire(old, &FreeTable, Table::Bytes(old->mask + 1));
}

InsertResult ResponseCache::Insert(CacheThread& t, const CacheKey& key,
                                   std::span<const uint8_t> response, uint64_t now_ms,
                                   const EntryPolicy* policy) {
  if (slab_.drain_pending()) Drain(t);
  InsertResult result = InsertResult::kInserted;
  // Parse and copy before taking the lock: the critical section is only the table update.
  Entry* e = BuildEntry(key, response, now_ms, policy ? *policy : default_policy_, result);
  if (e == nullptr) return result;
  const uint64_t h = e->hash;
  const uint64_t encoded = (TagOf(h) << 48) | reinterpret_cast<uint64_t>(e);
  const auto kb = key.bytes();
  Shard& s = ShardFor(h);
  std::lock_guard lock(s.mu);

  auto find = [&](Table* table) -> size_t {
    const size_t mask = table->mask;
    for (size_t i = h & mask, n = 0; n <= mask; ++n, i = (i + 1) & mask) {
      const uint64_t v = table->slots()[i].load(std::memory_order_relaxed);
      if (v == kEmpty) return SIZE_MAX;
      if (v == kTombstone) continue;
      Entry* c = reinterpret_cast<Entry*>(v & kPtrMask);
      if (c->hash == h && c->key_size == kb.size() &&
          std::memcmp(c->key(), kb.data(), kb.size()) == 0) {
        return i;
      }
    }
    return SIZE_MAX;
  };

  Table* table = s.table.load(std::memory_order_relaxed);
  if (const size_t at = find(table); at != SIZE_MAX) {
    Entry* old =
        reinterpret_cast<Entry*>(table->slots()[at].load(std::memory_order_relaxed) & kPtrMask);
    if (e->kind == EntryKind::kServFail && old->kind != EntryKind::kServFail &&
        now_ms < old->stale_until_ms) {
      FreeEntry(e);
      return InsertResult::kKeptExisting;
    }
    const size_t bytes = s.bytes.load(std::memory_order_relaxed);
    if (bytes - old->charge + e->charge <= shard_budget_) {
      // Swap in place: readers see the old or the new entry, never a miss.
      table->slots()[at].store(encoded, std::memory_order_release);
      s.negative += IsNegative(e->kind) - IsNegative(old->kind);
      s.bytes.store(bytes - old->charge + e->charge, std::memory_order_relaxed);
      t.qsbr().Retire(old, &FreeEntry, old->charge);
      return InsertResult::kReplaced;
    }
    RemoveAt(t, s, at, Removal::kErased);
    result = InsertResult::kReplaced;
  }

  // Keep the load (live + tombstones) at most 3/4 so probes stay short and always end.
  size_t capacity = table->mask + 1;
  if ((s.live + s.tombstones + 1) * 4 > capacity * 3) {
    size_t new_capacity = (s.live + 1) * 2 > capacity ? capacity * 2 : capacity;
    if (new_capacity > capacity &&
        !EnsureRoom(t, s, e->charge + Table::Bytes(new_capacity) - Table::Bytes(capacity),
                    now_ms)) {
      new_capacity = capacity;  // the budget cannot pay for a bigger table: evict instead
    }
    if (new_capacity == capacity && (s.live + 1) * 4 > capacity * 3) {
      // Make room for an eighth of the table before the next rebuild, so rebuilds stay amortized.
      while ((s.live + 1) * 8 > capacity * 5 && s.live > 0) EvictOne(t, s, now_ms);
    }
    Rebuild(t, s, new_capacity);
    table = s.table.load(std::memory_order_relaxed);
  }
  if (!EnsureRoom(t, s, e->charge, now_ms)) {
    FreeEntry(e);
    return InsertResult::kTooLarge;
  }
  const size_t mask = table->mask;
  size_t i = h & mask;
  for (;;) {
    const uint64_t v = table->slots()[i].load(std::memory_order_relaxed);
    if (v == kEmpty || v == kTombstone) break;
    i = (i + 1) & mask;
  }
  if (table->slots()[i].load(std::memory_order_relaxed) == kTombstone) --s.tombstones;
  table->slots()[i].store(encoded, std::memory_order_release);
  ++s.live;
  s.negative += IsNegative(e->kind);
  s.bytes.store(s.bytes.load(std::memory_order_relaxed) + e->charge, std::memory_order_relaxed);
  return result;
}

bool ResponseCache::Erase(CacheThread& t, const CacheKey& key) {
  if (slab_.drain_pending()) Drain(t);
  const uint64_t h = key.hash();
  const auto kb = key.bytes();
  Shard& s = ShardFor(h);
  std::lock_guard lock(s.mu);
  Table* table = s.table.load(std::memory_order_relaxed);
  const size_t mask = table->mask;
  for (size_t i = h & mask, n = 0; n <= mask; ++n, i = (i + 1) & mask) {
    const uint64_t v = table->slots()[i].load(std::memory_order_relaxed);
    if (v == kEmpty) return false;
    if (v == kTombstone) continue;
    Entry* c = reinterpret_cast<Entry*>(v & kPtrMask);
    if (c->hash == h && c->key_size == kb.size() &&
        std::memcmp(c->key(), kb.data(), kb.size()) == 0) {
      RemoveAt(t, s, i, Removal::kErased);
      return true;
    }
  }
  return false;
}

size_t ResponseCache::PurgeExpired(CacheThread& t, uint64_t now_ms, size_t max_slots) {
  if (slab_.drain_pending()) Drain(t);
  size_t purged = 0;
  for (size_t k = 0; k < shard_count_; ++k) {
    Shard& s = shards_[k];
    std::unique_lock lock(s.mu, std::try_to_lock);
    if (!lock.owns_lock()) continue;  // a writer is busy here; the next round will come back
    Table* table = s.table.load(std::memory_order_relaxed);
    const size_t mask = table->mask;
    for (size_t n = 0; n < max_slots && n <= mask; ++n) {
      const size_t i = s.purge_hand;
      s.purge_hand = (s.purge_hand + 1) & mask;
      const uint64_t v = table->slots()[i].load(std::memory_order_relaxed);
      if (v == kEmpty || v == kTombstone) continue;
      if (now_ms >= reinterpret_cast<Entry*>(v & kPtrMask)->stale_until_ms) {
        RemoveAt(t, s, i, Removal::kExpired);
        ++purged;
      }
    }
  }
  return purged;
}

void ResponseCache::Drain(CacheThread& t) {
  thread_local std::vector<internal::Slab::Candidate> work;
  // A few pages per call, and at most CacheThread::kRelocationsPerQuiescent bytes moved between
  // two quiescent points: a copy is made before its original goes (after the grace period), so
  // relocating every draining page at once, or a page per insert through a burst of inserts,
  // held much of the cache twice for a moment (a running nodedns at a 32 MiB budget: RSS 26 MiB
  // over it when the cache first filled). Blocks left wait for a later call; the page is looked
  // at again (Slab::TakeDrainWork).
  for (int pages = 0;
       pages < kDrainPagesPerCall && t.relocations_left > 0 && slab_.TakeDrainWork(work) != 0;
       ++pages) {
    for (const auto& c : work) {
      // c.first_word is the entry's hash if the block holds a published entry; anything else (a
      // retired entry, one being built) is not found in the table under that hash and stays put.
      const uint64_t h = c.first_word;
      Shard& s = ShardFor(h);
      std::lock_guard lock(s.mu);
      Table* table = s.table.load(std::memory_order_relaxed);
      const size_t mask = table->mask;
      for (size_t i = h & mask, n = 0; n <= mask; ++n, i = (i + 1) & mask) {
        const uint64_t v = table->slots()[i].load(std::memory_order_relaxed);
        if (v == kEmpty) break;
        if ((v & kPtrMask) != reinterpret_cast<uint64_t>(c.p)) continue;
        // Found: a live entry. Copy it into another page (the draining one takes no allocations);
        // readers see the old or the new copy, as with a replacement.
        Entry* old = static_cast<Entry*>(c.p);
        const size_t bytes = Entry::AllocSize(old->key_size, old->n_ttls, old->wire_size);
        auto* e = new (slab_.Allocate(bytes)) Entry;
        e->hash = old->hash;
        e->stored_ms = old->stored_ms;
        e->expires_ms = old->expires_ms;
        e->stale_until_ms = old->stale_until_ms;
        e->lifetime_ms = old->lifetime_ms;
        e->charge = old->charge;
        e->key_size = old->key_size;
        e->wire_size = old->wire_size;
        e->n_ttls = old->n_ttls;
        e->kind = old->kind;
        e->referenced.store(old->referenced.load(std::memory_order_relaxed),
                            std::memory_order_relaxed);
        e->hits.store(old->hits.load(std::memory_order_relaxed), std::memory_order_relaxed);
        e->prefetch_claimed.store(old->prefetch_claimed.load(std::memory_order_relaxed),
                                  std::memory_order_relaxed);
        e->prefetch_min_hits = old->prefetch_min_hits;
        e->prefetch_percent = old->prefetch_percent;
        e->recheck_after_ms.store(old->recheck_after_ms.load(std::memory_order_relaxed),
                                  std::memory_order_relaxed);
        std::memcpy(e->key(), old->key(), bytes - sizeof(Entry));
        table->slots()[i].store((v & ~kPtrMask) | reinterpret_cast<uint64_t>(e),
                                std::memory_order_release);
        t.qsbr().Retire(old, &FreeEntry, old->charge);
        t.relocations_left -= std::min(t.relocations_left, bytes);
        break;
      }
      if (t.relocations_left == 0) break;
    }
  }
}

CacheStats ResponseCache::Stats() const {
  CacheStats st;
  st.shards = shard_count_;
  st.capacity_bytes = settings_.capacity_bytes;
  st.retired_bytes = qsbr_.pending_bytes();
  st.mapped_bytes = slab_.mapped_bytes();
  for (size_t i = 0; i < shard_count_; ++i) {
    const Shard& s = shards_[i];
    st.bytes += s.bytes.load(std::memory_order_relaxed);
    st.evictions += s.evictions.load(std::memory_order_relaxed);
    st.expired_evictions += s.expired_evictions.load(std::memory_order_relaxed);
  }
  // The live count is writer state: read it under each shard's lock (Stats is off the data path).
  for (size_t i = 0; i < shard_count_; ++i) {
    Shard& s = shards_[i];
    std::lock_guard lock(s.mu);
    st.entries += s.live;
    st.negative_entries += s.negative;
  }
  return st;
}

size_t ResponseCache::Export(CacheThread& t, uint64_t now_ms, size_t max_bytes, size_t chunk_bytes,
                             const std::function<bool(std::span<const uint8_t>)>& sink) {
  (void)t;  // the walk only reads; `t` being online keeps every entry it sees alive
  auto bucket = [](const Entry* e) {
    return (e->referenced.load(std::memory_order_relaxed) ? 0 : 2) +
           (e->hits.load(std::memory_order_relaxed) > 0 ? 0 : 1);
  };
  std::string chunk;
  size_t total = 0, written = 0;
  bool stop = false;
  auto flush = [&] {
    if (chunk.size() > kSnapshotHeaderSize) {
      total += chunk.size();
      stop = !sink({reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size()});
    }
    chunk.clear();
  };
  std::vector<uint8_t> wire;
  for (int pass = 0; pass < 4 && !stop; ++pass) {
    for (size_t i = 0; i < shard_count_ && !stop; ++i) {
      Table* table = shards_[i].table.load(std::memory_order_acquire);
      for (size_t j = 0; j <= table->mask && !stop; ++j) {
        const uint64_t v = table->slots()[j].load(std::memory_order_acquire);
        if (v == kEmpty || v == kTombstone) continue;
        Entry* e = reinterpret_cast<Entry*>(v & kPtrMask);
        if (now_ms >= e->expires_ms || e->kind == EntryKind::kServFail || bucket(e) != pass) {
          continue;
        }
        const size_t need = kSnapshotRecordOverhead + e->wire_size;
        if (kSnapshotHeaderSize + need > chunk_bytes) continue;  // cannot travel in one chunk
        if (!chunk.empty() && chunk.size() + need > chunk_bytes) flush();
        if (stop) break;
        if (total + (chunk.empty() ? kSnapshotHeaderSize : chunk.size()) + need > max_bytes) {
          stop = true;
          break;
        }
        if (chunk.empty()) AppendSnapshotHeader(&chunk);
        // Aged as a hit serves it: the remaining lifetime travels in the TTLs.
        wire.assign(e->wire(), e->wire() + e->wire_size);
        const uint32_t elapsed = static_cast<uint32_t>((now_ms - e->stored_ms) / 1000);
        const uint16_t* offs = e->ttl_offsets();
        for (size_t k = 0; k < e->n_ttls; ++k) {
          const uint32_t ttl = dns::Get32(e->wire() + offs[k]);
          dns::Put32(wire.data() + offs[k], ttl > elapsed ? ttl - elapsed : 0);
        }
        const uint8_t flags = e->key()[e->key_size - 1] & (CacheKey::kDoBit | CacheKey::kCdBit);
        AppendSnapshotRecord(&chunk, flags, wire);
        ++written;
      }
    }
  }
  if (!stop) flush();
  if (stop && chunk.size() > kSnapshotHeaderSize) {
    // Stopped by the byte bound: what fits is still worth sending.
    const bool over = total + chunk.size() > max_bytes;
    if (!over) flush();
  }
  return written;
}

}  // namespace nodedns::cache
