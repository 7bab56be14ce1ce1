// The memory bound (docs/architecture.md, "Memory bound"): whatever the mix of entry sizes, the
// memory the cache's entries occupy (slab pages with their metadata, large blocks) stays within
// the accounted bytes plus a constant, so within the capacity plus that constant. Counted exactly
// from the pages the cache maps (CacheStats::mapped_bytes), not from RSS: no timing, no flakiness.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "cache/response_cache.h"
#include "cache/slab.h"
#include "dns/wire.h"

namespace nodedns::cache {
namespace {

using internal::Slab;

constexpr uint64_t kNow = 1'000'000;
// The documented constant for slab memory past the budget: at most 3 pages per size class (one
// page's worth of free blocks, the page being drained, rounding), and the kept empty pages.
constexpr size_t kPageCost = Slab::kPageSize + 256;
constexpr size_t kSlabSlack = (48 * 3 + Slab::kKeptEmptyPages) * kPageCost;

uint64_t Next(uint64_t& s) {
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 2685821657736338717ull;
}

// A TXT answer for "q<i>.mix." whose record carries `txt_len` bytes.
size_t Build(uint64_t i, size_t txt_len, std::vector<uint8_t>& name, uint8_t* out) {
  name.clear();
  const std::string label = "q" + std::to_string(i);
  name.push_back(static_cast<uint8_t>(label.size()));
  name.insert(name.end(), label.begin(), label.end());
  for (char ch : std::string("\3mix")) name.push_back(static_cast<uint8_t>(ch));
  name.push_back(0);
  std::memset(out, 0, 12);
  dns::Put16(out + 2, dns::flag::kQR | dns::flag::kRD | dns::flag::kRA);
  dns::Put16(out + 4, 1);
  dns::Put16(out + 6, 1);
  size_t w = 12;
  std::memcpy(out + w, name.data(), name.size());
  w += name.size();
  dns::Put16(out + w, dns::type::kTXT);
  dns::Put16(out + w + 2, 1);
  w += 4;
  out[w++] = 0xc0;
  out[w++] = 12;
  dns::Put16(out + w, dns::type::kTXT);
  dns::Put16(out + w + 2, 1);
  dns::Put32(out + w + 4, 3600);
  w += 8;
  const size_t rdlen_at = w;
  w += 2;
  for (size_t left = txt_len; left > 0;) {
    const size_t s = std::min<size_t>(left, 255);
    out[w++] = static_cast<uint8_t>(s);
    std::memset(out + w, 't', s);
    w += s;
    left -= s;
  }
  dns::Put16(out + rdlen_at, static_cast<uint16_t>(w - rdlen_at - 2));
  return w;
}

// Fills `times` the capacity with answers whose sizes `size_of` picks.
template <typename SizeOf>
void Fill(ResponseCache& cache, CacheThread& t, double times, uint64_t& next_name, SizeOf size_of,
          size_t& worst_mapped) {
  std::vector<uint8_t> out(65536), name;
  uint64_t rng = 88172645463325252ull + next_name;
  size_t inserted = 0;
  const size_t target = static_cast<size_t>(times * cache.settings().capacity_bytes);
  for (size_t k = 0; inserted < target; ++k) {
    const size_t len = Build(next_name++, size_of(rng), name, out.data());
    const CacheKey key({name.data(), name.size()}, dns::type::kTXT, dns::kClassIN, false, false);
    cache.Insert(t, key, {out.data(), len}, kNow);
    inserted += len;
    if (k % 64 == 63) {
      t.Quiescent();
      worst_mapped = std::max(worst_mapped, cache.Stats().mapped_bytes);
    }
  }
  t.Quiescent();
}

TEST(MemoryBoundTest, MappedMemoryStaysWithinCapacityPlusConstantForAnyMix) {
  CacheSettings s;
  // 16 MiB: large enough that the holes left without draining exceed the constant (checked),
  // small enough for the sanitizer builds.
  s.capacity_bytes = size_t{16} << 20;
  ResponseCache cache(s);
  auto t = cache.RegisterThread();
  uint64_t names = 0;
  size_t worst = 0;
  // Every size from 1 byte to 3 KB (entries over most size classes), then a shift to small
  // entries only, then to large ones (over 16 KiB: mapped on their own), then the mix again.
  Fill(cache, *t, 6, names, [](uint64_t& r) { return 1 + Next(r) % 3000; }, worst);
  const CacheStats mixed = cache.Stats();
  Fill(cache, *t, 2, names, [](uint64_t& r) { return 1 + Next(r) % 100; }, worst);
  Fill(cache, *t, 1, names, [](uint64_t& r) { return 16000 + Next(r) % 30000; }, worst);
  Fill(cache, *t, 2, names, [](uint64_t& r) { return 1 + Next(r) % 3000; }, worst);
  const CacheStats st = cache.Stats();
  EXPECT_GT(mixed.evictions, mixed.entries * 3);
  EXPECT_LE(st.bytes, st.capacity_bytes);
  EXPECT_LE(st.mapped_bytes, st.bytes + kSlabSlack);
  EXPECT_LE(worst, st.capacity_bytes + kSlabSlack)
      << "entry memory reached " << worst << " bytes for a capacity of " << st.capacity_bytes;
  // The budget is used, not lost in rounding: most of the mapped memory is live entries.
  EXPECT_GT(st.mapped_bytes, st.capacity_bytes / 2);
}

}  // namespace
}  // namespace nodedns::cache
