// The shared DNS response cache: sharded, lock-free lookups, byte-bounded, TTL decay, negative
// caching (RFC 2308), serve-stale (RFC 8767) and prefetch signals.
//
// Entries are upstream responses kept as wire bytes (without their OPT record, which the proxy
// writes per client), with the offsets of every TTL field precomputed at insert. A hit copies the
// bytes into the caller's buffer and ages the TTLs in place; the caller patches ID and qname case.
//
// Thread model: any number of threads call Lookup() and Insert() concurrently, each with its own
// CacheThread from RegisterThread(). Lookup() takes no lock and performs no atomic
// read-modify-write on shared data; Insert() takes one shard's mutex. Memory of replaced entries is
// reclaimed by QSBR: each thread calls CacheThread::Quiescent() between batches of work.
#ifndef NODEDNS_CACHE_RESPONSE_CACHE_H_
#define NODEDNS_CACHE_RESPONSE_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "cache/cache_key.h"
#include "cache/qsbr.h"
#include "cache/slab.h"
#include "cache/snapshot.h"
#include "dns/wire.h"

namespace nodedns::cache {

// The rules one entry is stored by: its TTL bounds, how long it may serve stale, when a hit asks
// for a refresh. The cache's own come from CacheSettings (Policy()); a caller may pass another
// per insert, e.g. a Corefile zone's `cache` block (nodecache/), so that zones keep their limits
// in the one shared cache. The prefetch rule travels with the entry, so lookups need no policy.
struct EntryPolicy {
  uint32_t min_ttl = 0;
  uint32_t max_ttl = 86400;
  uint32_t min_negative_ttl = 0;
  uint32_t max_negative_ttl = 3600;
  uint32_t servfail_ttl = 5;
  uint32_t stale_ttl = 3600;
  uint8_t prefetch_min_hits = 2;
  uint8_t prefetch_percent = 10;  // 0: never prefetched
};

// All cache settings with their defaults. Times are in seconds.
struct CacheSettings {
  size_t capacity_bytes = size_t{256} << 20;  // everything counted: entries, keys, tables
  // Number of shards, a power of two; 0 picks one from the capacity (see docs/architecture.md).
  size_t shards = 0;
  uint32_t min_ttl = 0;      // positive answers are kept at least this long (served TTLs raised)
  uint32_t max_ttl = 86400;  // and at most this long (served TTLs lowered)
  uint32_t max_negative_ttl = 3600;  // cap for NXDOMAIN/NODATA (RFC 2308 §5 suggests 1-3 h)
  uint32_t servfail_ttl = 5;         // RFC 2308 §7.1: at most 5 minutes
  uint32_t stale_ttl = 3600;         // how long past expiry an entry may be served stale
  uint32_t stale_answer_ttl = 30;    // TTL written into stale answers (RFC 8767 §4)
  uint32_t prefetch_min_hits = 2;    // hits before a late hit asks for a refresh
  uint32_t prefetch_percent = 10;    // "late": in the last this-many percent of the lifetime
  size_t max_entry_bytes = 65535;

  absl::Status Validate() const;
  // These settings as the default per-entry policy.
  EntryPolicy Policy() const {
    return {.min_ttl = min_ttl,
            .max_ttl = max_ttl,
            .min_negative_ttl = 0,
            .max_negative_ttl = max_negative_ttl,
            .servfail_ttl = servfail_ttl,
            .stale_ttl = stale_ttl,
            .prefetch_min_hits = static_cast<uint8_t>(prefetch_min_hits),
            .prefetch_percent = static_cast<uint8_t>(prefetch_percent)};
  }
};

enum class EntryKind : uint8_t { kAnswer, kNxDomain, kNoData, kServFail };

// Why Insert() did or did not store a response.
enum class InsertResult : uint8_t {
  kInserted,
  kReplaced,
  kMalformed,     // not a parseable response
  kNotCacheable,  // TC set, an rcode other than NOERROR/NXDOMAIN/SERVFAIL, extended rcode, …
  kNoTtl,         // zero lifetime, or a negative answer without SOA (RFC 2308 §5)
  kTooLarge,      // bigger than max_entry_bytes or than a shard's budget
  kKeptExisting,  // a SERVFAIL does not displace an entry that can still be served stale
};

// Per-thread handle: QSBR registration plus nothing else. Owned and used by one thread.
class CacheThread {
 public:
  explicit CacheThread(std::unique_ptr<QsbrThread> qsbr) : qsbr_(std::move(qsbr)) {}
  // Call between batches of work: no pointer into the cache survives it (there are none outside
  // Lookup/Insert anyway), and memory retired by this thread is freed when safe.
  void Quiescent() {
    qsbr_->Quiescent();
    relocations_left = kRelocationsPerQuiescent;
  }
  void Offline() { qsbr_->Offline(); }
  void Online() { qsbr_->Online(); }
  QsbrThread& qsbr() { return *qsbr_; }

  // Bytes of entries this thread may still move out of draining slab pages before its next
  // quiescent point (ResponseCache::Drain). A moved entry's old copy is freed only after that
  // point, so the copies outstanding, and the memory they hold twice, stay bounded however many
  // inserts come between two quiescent points (a worker's burst of upstream replies).
  static constexpr size_t kRelocationsPerQuiescent = size_t{1} << 20;
  size_t relocations_left = kRelocationsPerQuiescent;

 private:
  std::unique_ptr<QsbrThread> qsbr_;
};

struct LookupResult {
  enum class Status : uint8_t {
    kMiss,
    kHit,
    kStale,     // served from the stale window (only with allow_stale)
    kExpired,   // present but expired and allow_stale was false: the caller may fall back to it
    kTooSmall,  // the caller's buffer is smaller than `size`; nothing was copied
  };
  Status status = Status::kMiss;
  EntryKind kind = EntryKind::kAnswer;
  bool refresh_wanted = false;  // prefetch: true once per entry, for one caller
  // kExpired only: an upstream query for it failed within the failure-recheck window
  // (NoteFailure), so the caller answers stale at once instead of asking again (RFC 8767 §5).
  bool upstream_failing = false;
  size_t size = 0;   // bytes written (or needed, for kTooSmall)
  uint32_t ttl = 0;  // smallest TTL in the served message after aging
};

struct CacheStats {
  size_t entries = 0;
  size_t negative_entries = 0;  // of them NXDOMAIN or NODATA
  size_t bytes = 0;             // accounted: entries + keys + slot tables
  size_t capacity_bytes = 0;
  size_t retired_bytes = 0;  // retired, waiting for a grace period
  // Memory the entries occupy: slab pages in use (metadata included) and kept empty, and large
  // blocks (cache/slab.h). At most bytes + ~2 pages per size class + the kept pages + retired.
  size_t mapped_bytes = 0;
  size_t shards = 0;
  uint64_t evictions = 0;
  uint64_t expired_evictions = 0;
};

// See the file comment for the thread model.
class ResponseCache {
 public:
  explicit ResponseCache(const CacheSettings& settings);
  ~ResponseCache();
  ResponseCache(const ResponseCache&) = delete;
  ResponseCache& operator=(const ResponseCache&) = delete;

  // Every thread that calls Lookup/Insert needs one; it must be destroyed before the cache.
  std::unique_ptr<CacheThread> RegisterThread();

  // Copies the entry for `key` into `out` with its TTLs aged to `now_ms` (a monotonic clock in
  // milliseconds, the same for all callers). Lock-free; no allocation.
  LookupResult Lookup(CacheThread& t, const CacheKey& key, uint64_t now_ms, std::span<uint8_t> out,
                      bool allow_stale = false);

  // Latency hiding for batches (the proxy handles up to 64 queries per recvmmsg): call
  // PrefetchSlot() for every key of a batch, then PrefetchEntry() for every key, then Lookup().
  // The cache misses of a batch then overlap instead of being paid one after another. Pure hints:
  // they read the table like Lookup() does and write nothing.
  void PrefetchSlot(const CacheKey& key);
  void PrefetchEntry(const CacheKey& key);

  // Stores `response` (wire form, as received from upstream) under `key`, replacing any older
  // entry. The response's OPT record, if any, is not stored. `policy`: the entry's rules; null
  // for the settings' own (CacheSettings::Policy()).
  InsertResult Insert(CacheThread& t, const CacheKey& key, std::span<const uint8_t> response,
                      uint64_t now_ms, const EntryPolicy* policy = nullptr);

  // RFC 8767 §5's failure recheck timer: an upstream query for `key` failed at `now_ms`, so for
  // the next `recheck_ms` (at most to the end of its stale window) a lookup that finds the entry
  // expired says so (LookupResult::upstream_failing) and the caller serves it stale without
  // asking upstream again. Only an entry that is expired and still within its stale window is
  // marked; whether one was. Lock-free: one relaxed store into the entry, from any thread. A new
  // answer for the key (Insert) replaces the entry and with it the mark.
  bool NoteFailure(CacheThread& t, const CacheKey& key, uint64_t now_ms, uint32_t recheck_ms);

  // Removes the entry for `key`, if any. Returns whether one was removed.
  bool Erase(CacheThread& t, const CacheKey& key);

  // Frees entries past their stale window, looking at up to `max_slots` slots per shard from where
  // the last call stopped. Meant for a periodic timer.
  size_t PurgeExpired(CacheThread& t, uint64_t now_ms, size_t max_slots);

  // Snapshots for a handover (snapshot.h). Export hands the live entries (not expired, not
  // SERVFAIL), hottest first, to `sink` in chunks of at most `chunk_bytes`, each a snapshot of its
  // own (header and whole records), until `max_bytes` are written or `sink` returns false, and
  // returns how many entries it wrote. No copy of the cache is built: the walk holds one chunk.
  // "Hottest" in four passes over the tables, eviction order read the other way round: hit since
  // the CLOCK hand last passed (the referenced bit) and hit before, referenced only, hit only,
  // the rest. A bit that changes during the walk may list an entry twice (the importer replaces
  // it) or skip it. Lock-free like Lookup; `t` stays online throughout and the walk writes nothing.
  size_t Export(CacheThread& t, uint64_t now_ms, size_t max_bytes, size_t chunk_bytes,
                const std::function<bool(std::span<const uint8_t>)>& sink);
  struct ImportResult {
    size_t imported = 0;
    size_t refused = 0;  // Insert() did not store it (expired meanwhile, too large, …)
    // No key could be rebuilt: no single plain question, or a flag this build does not know (it
    // would split the cache in a way this build cannot reproduce). Skipped; the rest is read.
    size_t bad = 0;
  };
  // Inserts every record of `snapshot` as if it had just come from upstream: lifetimes are the
  // remaining ones carried in the TTLs, under `policy_for(qname)`'s rules (null: the default's;
  // a min_ttl may lengthen what remained). `policy_for` maps a wire qname (as in the record, case
  // kept) to a `const EntryPolicy*`. An unreadable header or a record cut short is an error; the
  // records before it stay.
  template <typename PolicyFor>
  absl::StatusOr<ImportResult> Import(CacheThread& t, std::span<const uint8_t> snapshot,
                                      uint64_t now_ms, PolicyFor policy_for);

  CacheStats Stats() const;
  const CacheSettings& settings() const { return settings_; }
  const EntryPolicy& default_policy() const { return default_policy_; }

 private:
  struct Entry;
  struct Table;
  struct Shard;

  static void FreeEntry(void* p);
  static void FreeTable(void* p);
  Entry* BuildEntry(const CacheKey& key, std::span<const uint8_t> response, uint64_t now_ms,
                    const EntryPolicy& policy, InsertResult& why) const;
  void EvictOne(CacheThread& t, Shard& s, uint64_t now_ms);
  enum class Removal : uint8_t { kEvicted, kExpired, kErased };
  void RemoveAt(CacheThread& t, Shard& s, size_t slot, Removal why);
  bool EnsureRoom(CacheThread& t, Shard& s, size_t bytes, uint64_t now_ms);
  void Rebuild(CacheThread& t, Shard& s, size_t new_capacity);
  Shard& ShardFor(uint64_t hash);
  Entry* Find(const CacheKey& key);
  // Moves the live entries of slab pages being drained (cache/slab.h) to other pages.
  void Drain(CacheThread& t);

  const CacheSettings settings_;
  const EntryPolicy default_policy_;
  size_t shard_count_;
  unsigned shard_shift_;
  size_t shard_budget_;
  std::unique_ptr<Shard[]> shards_;
  // Entry memory. Before qsbr_: the domain frees its orphans into it when destroyed.
  mutable internal::Slab slab_;
  QsbrDomain qsbr_;
};

template <typename PolicyFor>
absl::StatusOr<ResponseCache::ImportResult> ResponseCache::Import(CacheThread& t,
                                                                  std::span<const uint8_t> snapshot,
                                                                  uint64_t now_ms,
                                                                  PolicyFor policy_for) {
  auto reader = SnapshotReader::Open(snapshot);
  if (!reader.ok()) return reader.status();
  ImportResult r;
  SnapshotRecord rec;
  for (;;) {
    auto more = reader->Next(rec);
    if (!more.ok()) return more.status();
    if (!*more) break;
    const auto qlen = dns::PlainNameLength(rec.wire, dns::kHeaderSize);
    if (rec.wire.size() < dns::kHeaderSize || dns::QdCount(rec.wire) != 1 || !qlen ||
        rec.wire.size() < dns::kHeaderSize + *qlen + 4 ||
        (rec.flags & ~(CacheKey::kDoBit | CacheKey::kCdBit)) != 0) {
      ++r.bad;
      continue;
    }
    const auto qname = rec.wire.subspan(dns::kHeaderSize, *qlen);
    const uint8_t* q = rec.wire.data() + dns::kHeaderSize + *qlen;
    const CacheKey key(qname, dns::Get16(q), dns::Get16(q + 2), rec.flags & CacheKey::kDoBit,
                       rec.flags & CacheKey::kCdBit);
    const InsertResult why = Insert(t, key, rec.wire, now_ms, policy_for(qname));
    (why == InsertResult::kInserted || why == InsertResult::kReplaced ? r.imported : r.refused)++;
  }
  return r;
}

}  // namespace nodedns::cache

#endif  // NODEDNS_CACHE_RESPONSE_CACHE_H_
