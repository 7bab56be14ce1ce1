// Micro-benchmarks of the shared response cache against a mutex-protected absl::flat_hash_map
// doing the same work (copy the wire message out, age its TTLs). Every operation includes building
// the key from a wire qname (lowercasing and hashing), as the proxy does for each query.
//
//   build/bench/nodedns_cache_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only
//
// Results and the exact command are in docs/benchmarks.md.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "cache/response_cache.h"
#include "dns/wire.h"

namespace nodedns::cache {
namespace {

constexpr uint64_t kNow = 1'000'000;

// Wire names "h<i>.bench.example.", written on the fly into the caller's buffer: a table of 1M
// precomputed names would add a cache miss per operation that the proxy (whose query sits in a
// hot receive buffer) does not pay.
class NamePool {
 public:
  NamePool(size_t first, size_t n) : first_(first), n_(n) {}
  size_t size() const { return n_; }
  std::span<const uint8_t> Name(size_t i, uint8_t (&buf)[64]) const {
    char digits[24];
    size_t nd = 0;
    for (size_t v = first_ + i; nd == 0 || v != 0; v /= 10)
      digits[nd++] = static_cast<char>('0' + v % 10);
    size_t n = 0;
    buf[n++] = static_cast<uint8_t>(nd + 1);
    buf[n++] = 'h';
    while (nd > 0) buf[n++] = static_cast<uint8_t>(digits[--nd]);
    static constexpr uint8_t kSuffix[] = {5,   'b', 'e', 'n', 'c', 'h', 7, 'e',
                                          'x', 'a', 'm', 'p', 'l', 'e', 0};
    std::memcpy(buf + n, kSuffix, sizeof kSuffix);
    return {buf, n + sizeof kSuffix};
  }
  CacheKey Key(size_t i) const {
    uint8_t buf[64];
    return CacheKey(Name(i, buf), dns::type::kA, dns::kClassIN, false, false);
  }

 private:
  size_t first_, n_;
};

// A NOERROR answer with one A record, the shape of most cluster lookups.
size_t BuildResponse(std::span<const uint8_t> qname, uint32_t addr, uint8_t* out) {
  std::memset(out, 0, 12);
  dns::Put16(out + 2, dns::flag::kQR | dns::flag::kRD | dns::flag::kRA);
  dns::Put16(out + 4, 1);
  dns::Put16(out + 6, 1);
  size_t n = 12;
  std::memcpy(out + n, qname.data(), qname.size());
  n += qname.size();
  const uint8_t tail[] = {0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4};
  std::memcpy(out + n, tail, sizeof tail);
  n += sizeof tail;
  dns::Put32(out + n, addr);
  return n + 4;
}

uint64_t Next(uint64_t& s) {  // xorshift64*: cheap enough not to show in the figures
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 2685821657736338717ull;
}

// The baseline: one map, one mutex, the same copy-and-age work.
class MutexMapCache {
 public:
  struct Value {
    std::string wire;
    std::vector<uint16_t> ttl_offsets;
    uint64_t stored_ms;
  };
  size_t Lookup(const CacheKey& key, uint64_t now, std::span<uint8_t> out) {
    absl::MutexLock lock(&mu_);
    auto kb = key.bytes();
    auto it = map_.find(absl::string_view(reinterpret_cast<const char*>(kb.data()), kb.size()));
    if (it == map_.end()) return 0;
    const Value& v = it->second;
    std::memcpy(out.data(), v.wire.data(), v.wire.size());
    const uint32_t elapsed = static_cast<uint32_t>((now - v.stored_ms) / 1000);
    for (uint16_t off : v.ttl_offsets) {
      const uint32_t ttl = dns::Get32(out.data() + off);
      dns::Put32(out.data() + off, ttl > elapsed ? ttl - elapsed : 0);
    }
    return v.wire.size();
  }
  void Insert(const CacheKey& key, std::span<const uint8_t> wire, uint64_t now) {
    dns::ResponseLayout layout;
    dns::ParseResponseLayout(wire, layout);
    Value v{std::string(reinterpret_cast<const char*>(wire.data()), wire.size()),
            std::vector<uint16_t>(layout.ttl_offsets, layout.ttl_offsets + layout.n_ttls), now};
    auto kb = key.bytes();
    std::string k(reinterpret_cast<const char*>(kb.data()), kb.size());
    absl::MutexLock lock(&mu_);
    map_.insert_or_assign(std::move(k), std::move(v));
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Value> map_;
};

struct Fixture {
  explicit Fixture(size_t n) : present(0, n), absent(n, 1 << 20) {
    CacheSettings s;
    s.capacity_bytes = n > 100'000 ? size_t{1} << 30 : size_t{64} << 20;
    cache = std::make_unique<ResponseCache>(s);
    auto t = cache->RegisterThread();
    uint8_t buf[512];
    for (size_t i = 0; i < n; ++i) {
      uint8_t name[64];
      const size_t len = BuildResponse(present.Name(i, name), static_cast<uint32_t>(i), buf);
      cache->Insert(*t, present.Key(i), {buf, len}, kNow);
      baseline.Insert(present.Key(i), {buf, len}, kNow);
    }
  }
  NamePool present;
  NamePool absent;
  std::unique_ptr<ResponseCache> cache;
  MutexMapCache baseline;
};

Fixture& GetFixture(size_t n) {
  static std::mutex mu;
  static std::unique_ptr<Fixture> small, large;
  std::lock_guard lock(mu);
  auto& f = n > 100'000 ? large : small;
  if (!f) f = std::make_unique<Fixture>(n);
  return *f;
}

enum class Op { kHit, kMiss, kInsert, kMixed };

template <Op kOp, bool kBaseline>
void BM_Cache(benchmark::State& state) {
  Fixture& f = GetFixture(static_cast<size_t>(state.range(0)));
  std::unique_ptr<CacheThread> t;
  if (!kBaseline) t = f.cache->RegisterThread();
  uint64_t rng = 0x9e3779b97f4a7c15ull * (state.thread_index() + 1);
  uint8_t out[1024];
  uint8_t resp[512];
  const size_t n = f.present.size();
  uint64_t hits = 0;
  uint32_t ops = 0;
  for (auto _ : state) {
    const uint64_t r = Next(rng);
    bool insert = kOp == Op::kInsert || (kOp == Op::kMixed && r % 10 == 0);
    if (insert) {
      const size_t i = (r >> 8) % n;
      const CacheKey key = f.present.Key(i);
      uint8_t name[64];
      const size_t len = BuildResponse(f.present.Name(i, name), static_cast<uint32_t>(r), resp);
      if constexpr (kBaseline) {
        f.baseline.Insert(key, {resp, len}, kNow);
      } else {
        f.cache->Insert(*t, key, {resp, len}, kNow);
      }
    } else {
      const CacheKey key =
          kOp == Op::kMiss ? f.absent.Key((r >> 8) % f.absent.size()) : f.present.Key((r >> 8) % n);
      if constexpr (kBaseline) {
        hits += f.baseline.Lookup(key, kNow + 1500, out) > 0;
      } else {
        hits += f.cache->Lookup(*t, key, kNow + 1500, out).status == LookupResult::Status::kHit;
      }
    }
    benchmark::DoNotOptimize(out);
    if (!kBaseline && ++ops % 32 == 0) t->Quiescent();  // a worker's batch boundary
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["hit_ratio"] =
      benchmark::Counter(static_cast<double>(hits) / static_cast<double>(state.iterations()),
                         benchmark::Counter::kAvgThreads);
  if (t) t->Offline();
}

// Hits in batches of 32, as the proxy serves a recvmmsg batch: keys built, slots prefetched,
// entries prefetched, then looked up. Items are lookups, so items_per_second compares with
// BM_CacheHit.
void BM_CacheHitBatch32(benchmark::State& state) {
  Fixture& f = GetFixture(static_cast<size_t>(state.range(0)));
  auto t = f.cache->RegisterThread();
  uint64_t rng = 0x9e3779b97f4a7c15ull * (state.thread_index() + 1);
  constexpr int kBatch = 32;
  std::vector<CacheKey> keys(kBatch);
  uint8_t out[1024];
  uint64_t hits = 0;
  const size_t n = f.present.size();
  for (auto _ : state) {
    for (auto& k : keys) k = f.present.Key((Next(rng) >> 8) % n);
    for (auto& k : keys) f.cache->PrefetchSlot(k);
    for (auto& k : keys) f.cache->PrefetchEntry(k);
    for (auto& k : keys) {
      hits += f.cache->Lookup(*t, k, kNow + 1500, out).status == LookupResult::Status::kHit;
      benchmark::DoNotOptimize(out);
    }
    t->Quiescent();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["hit_ratio"] = benchmark::Counter(
      static_cast<double>(hits) / static_cast<double>(state.iterations() * kBatch),
      benchmark::Counter::kAvgThreads);
  t->Offline();
}

// Popularity as resolvers see it: a few names take most queries. Ranks drawn from a Zipf(0.9)
// law over the fixture's names (the continuous approximation's inverse CDF), precomputed into a
// 256 KiB table so that drawing one costs a load that stays in L2, not two pow() calls. Rank r is
// spread over the shards by a multiplicative permutation (odd, not a multiple of 5: a bijection
// modulo 10^k).
class ZipfIndexes {
 public:
  static constexpr size_t kDraws = 1 << 16;
  ZipfIndexes(size_t n, double s) : indexes_(kDraws) {
    uint64_t rng = 42;
    const double a = 1.0 - s;
    const double top = std::pow(static_cast<double>(n) + 1.0, a) - 1.0;
    for (auto& index : indexes_) {
      const double u = static_cast<double>(Next(rng) >> 11) * 0x1.0p-53;
      const double x = std::pow(1.0 + u * top, 1.0 / a);
      const uint64_t rank = std::min<uint64_t>(static_cast<uint64_t>(x) - 1, n - 1);
      index = static_cast<uint32_t>(rank * 2654435761u % n);
    }
  }
  size_t operator()(uint64_t r) const { return indexes_[r % kDraws]; }

 private:
  std::vector<uint32_t> indexes_;
};

void BM_CacheHitZipf(benchmark::State& state) {
  Fixture& f = GetFixture(static_cast<size_t>(state.range(0)));
  static const ZipfIndexes* zipf_small = new ZipfIndexes(10'000, 0.9);
  static const ZipfIndexes* zipf_large = new ZipfIndexes(1'000'000, 0.9);
  const ZipfIndexes& zipf = f.present.size() > 100'000 ? *zipf_large : *zipf_small;
  auto t = f.cache->RegisterThread();
  uint64_t rng = 0x9e3779b97f4a7c15ull * (state.thread_index() + 1);
  uint8_t out[1024];
  uint64_t hits = 0;
  uint32_t ops = 0;
  for (auto _ : state) {
    const CacheKey key = f.present.Key(zipf(Next(rng) >> 8));
    hits += f.cache->Lookup(*t, key, kNow + 1500, out).status == LookupResult::Status::kHit;
    benchmark::DoNotOptimize(out);
    if (++ops % 32 == 0) t->Quiescent();
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["hit_ratio"] =
      benchmark::Counter(static_cast<double>(hits) / static_cast<double>(state.iterations()),
                         benchmark::Counter::kAvgThreads);
  t->Offline();
}

// The physical floor under a lookup in a cache much larger than the CPU caches: one dependent
// random read from DRAM (a pointer chase over 256 MiB, the size of a 1M-entry cache). A lookup
// of a random key needs two in a row (slot, then entry); the table quotes hits as multiples of it.
void BM_DramRoundTrip(benchmark::State& state) {
  constexpr size_t kLines = (size_t{256} << 20) / 64;
  struct alignas(64) Line {
    uint32_t next;
    char pad[60];
  };
  std::vector<Line> lines(kLines);
  std::vector<uint32_t> order(kLines);
  for (size_t i = 0; i < kLines; ++i) order[i] = static_cast<uint32_t>(i);
  uint64_t rng = 7;
  for (size_t i = kLines - 1; i > 0; --i) std::swap(order[i], order[Next(rng) % (i + 1)]);
  for (size_t i = 0; i < kLines; ++i) lines[order[i]].next = order[(i + 1) % kLines];
  uint32_t at = order[0];
  for (auto _ : state) {
    at = lines[at].next;
    benchmark::DoNotOptimize(at);
  }
  state.SetItemsProcessed(state.iterations());
}

void Args(benchmark::internal::Benchmark* b) {
  b->Arg(10'000)->Arg(1'000'000)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();
}

BENCHMARK(BM_Cache<Op::kHit, false>)->Name("BM_CacheHit")->Apply(Args);
BENCHMARK(BM_Cache<Op::kHit, true>)->Name("BM_MutexMapHit")->Apply(Args);
BENCHMARK(BM_CacheHitBatch32)->Apply(Args);
BENCHMARK(BM_CacheHitZipf)->Apply(Args);
BENCHMARK(BM_DramRoundTrip);
BENCHMARK(BM_Cache<Op::kMiss, false>)->Name("BM_CacheMiss")->Apply(Args);
BENCHMARK(BM_Cache<Op::kMiss, true>)->Name("BM_MutexMapMiss")->Apply(Args);
BENCHMARK(BM_Cache<Op::kInsert, false>)->Name("BM_CacheInsert")->Apply(Args);
BENCHMARK(BM_Cache<Op::kInsert, true>)->Name("BM_MutexMapInsert")->Apply(Args);
BENCHMARK(BM_Cache<Op::kMixed, false>)->Name("BM_CacheMixed90_10")->Apply(Args);
BENCHMARK(BM_Cache<Op::kMixed, true>)->Name("BM_MutexMapMixed90_10")->Apply(Args);

}  // namespace
}  // namespace nodedns::cache

BENCHMARK_MAIN();
