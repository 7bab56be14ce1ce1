// Concurrency stress: several threads look up, insert and evict at once in a cache small enough to
// evict constantly. Every stored value carries a checksum of its own key, and every value served
// is verified, so a torn, misdirected or freed-and-reused entry fails the test. Meant to run under
// ThreadSanitizer and AddressSanitizer too; it is bounded in time.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cache/response_cache.h"
#include "dns/wire.h"

namespace nodedns::cache {
namespace {

uint32_t Checksum(std::span<const uint8_t> b) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (uint8_t c : b) h = (h ^ c) * 16777619u;
  return h;
}

// A response for "k<i>.stress." TXT whose single TXT string holds the checksum of the key bytes
// and whose size varies with i (so that entries of many sizes churn through the shards).
std::vector<uint8_t> Response(const CacheKey& key, int i, uint32_t ttl) {
  const auto qname = key.bytes().first(key.qname_length());
  std::vector<uint8_t> m(12);
  dns::Put16(m.data() + 2, dns::flag::kQR | dns::flag::kRD | dns::flag::kRA);
  dns::Put16(m.data() + 4, 1);
  dns::Put16(m.data() + 6, 1);
  m.insert(m.end(), qname.begin(), qname.end());
  const uint8_t q[] = {0, 16, 0, 1};
  m.insert(m.end(), q, q + 4);
  const size_t pad = static_cast<size_t>(i % 7) * 40;
  const uint8_t rr[] = {0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 0};
  m.insert(m.end(), rr, rr + sizeof rr);
  dns::Put32(m.data() + m.size() - 4, ttl);
  const uint16_t rdlen = static_cast<uint16_t>(1 + 8 + pad);
  m.push_back(static_cast<uint8_t>(rdlen >> 8));
  m.push_back(static_cast<uint8_t>(rdlen));
  m.push_back(static_cast<uint8_t>(8 + pad));
  uint8_t sum[4];
  dns::Put32(sum, Checksum(key.bytes()));
  m.insert(m.end(), sum, sum + 4);
  dns::Put32(sum, static_cast<uint32_t>(pad));
  m.insert(m.end(), sum, sum + 4);
  m.insert(m.end(), pad, static_cast<uint8_t>(i));
  return m;
}

// Returns an empty string if `msg` is exactly a well-formed value for `key`, else what is wrong.
std::string Verify(const CacheKey& key, std::span<const uint8_t> msg) {
  const size_t qlen = key.qname_length();
  if (msg.size() < 12 + qlen + 4 + 12 + 1 + 8) return "too short";
  if (std::memcmp(msg.data() + 12, key.bytes().data(), qlen) != 0) return "wrong question";
  const uint8_t* txt = msg.data() + 12 + qlen + 4 + 12;
  if (dns::Get32(txt + 1) != Checksum(key.bytes())) return "bad checksum";
  const uint32_t pad = dns::Get32(txt + 5);
  if (msg.size() != 12 + qlen + 4 + 12 + 1 + 8 + pad) return "bad size";
  return "";
}

TEST(CacheStressTest, ConcurrentLookupsInsertsAndEvictionsServeOnlyIntactValues) {
  CacheSettings s;
  s.capacity_bytes = 256 * 1024;  // a few thousand entries for 20k keys: constant eviction
  s.shards = 4;
  s.stale_ttl = 2;
  ResponseCache cache(s);
  constexpr int kThreads = 4;
  constexpr int kKeys = 20000;
  std::vector<CacheKey> keys;
  keys.reserve(kKeys);
  for (int i = 0; i < kKeys; ++i) {
    std::string name = "k" + std::to_string(i) + "\6stress";
    std::vector<uint8_t> wire{static_cast<uint8_t>(name.find('\6'))};
    wire.insert(wire.end(), name.begin(), name.end());
    wire.push_back(0);
    keys.emplace_back(wire, dns::type::kTXT, dns::kClassIN, i % 3 == 0, false);
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> hits{0}, inserts{0}, lookups{0};
  std::atomic<int> failures{0};
  std::string first_failure;
  std::mutex failure_mu;
  const auto start = std::chrono::steady_clock::now();
  auto worker = [&](int id) {
    auto t = cache.RegisterThread();
    std::mt19937 rng(id);
    std::vector<uint8_t> out(4096);
    uint64_t my_hits = 0, my_inserts = 0, my_lookups = 0;
    for (int iter = 0; !stop.load(std::memory_order_relaxed); ++iter) {
      // A clock shared by all threads, as the proxy's workers share CLOCK_MONOTONIC.
      const uint64_t now =
          static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now() - start)
                                    .count()) *
          50;  // time runs 50x faster: entries expire often
      const int k = static_cast<int>(rng() % kKeys);
      if (rng() % 10 < 7) {
        ++my_lookups;
        auto r = cache.Lookup(*t, keys[k], now, out, rng() % 2);
        if (r.status == LookupResult::Status::kHit || r.status == LookupResult::Status::kStale) {
          ++my_hits;
          std::string err = Verify(keys[k], std::span(out.data(), r.size));
          if (!err.empty() && failures.fetch_add(1) == 0) {
            std::lock_guard l(failure_mu);
            first_failure = err;
          }
        }
      } else if (rng() % 50 == 0) {
        cache.Erase(*t, keys[k]);
      } else {
        ++my_inserts;
        cache.Insert(*t, keys[k], Response(keys[k], k, 1 + rng() % 30), now);
      }
      if (iter % 32 == 31) t->Quiescent();  // a worker's batch boundary
      if (iter % 4096 == 4095 && id == 0) cache.PurgeExpired(*t, now, 64);
      if (iter % 10000 == 9999 && id == 1) {  // a worker that goes idle now and then
        t->Offline();
        std::this_thread::yield();
        t->Online();
      }
    }
    hits += my_hits;
    inserts += my_inserts;
    lookups += my_lookups;
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0) << first_failure;
  EXPECT_GT(hits.load(), 1000u);
  EXPECT_GT(inserts.load(), 1000u);
  const auto st = cache.Stats();
  EXPECT_GT(st.evictions + st.expired_evictions, 100u);
  EXPECT_LE(st.bytes, s.capacity_bytes);
  std::printf("lookups=%llu hits=%llu inserts=%llu evictions=%llu expired=%llu\n",
              static_cast<unsigned long long>(lookups.load()),
              static_cast<unsigned long long>(hits.load()),
              static_cast<unsigned long long>(inserts.load()),
              static_cast<unsigned long long>(st.evictions),
              static_cast<unsigned long long>(st.expired_evictions));
}

}  // namespace
}  // namespace nodedns::cache
