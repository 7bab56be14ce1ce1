// Proves that a cache hit does not allocate: parse, key, prefetch, lookup and reply building for a
// batch of hits, and the same hits through QueryPath::Serve as the UDP front end calls it, run
// with a counting global operator new. Its own binary, since it replaces new.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "cache/response_cache.h"
#include "proxy/coredns_metrics.h"
#include "proxy/reply.h"
#include "tests/proxy/worker_parts.h"
#include "tests/testing/dns_builder.h"

namespace {
std::atomic<long> allocations{0};
}  // namespace

void* operator new(size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace nodedns::proxy {
namespace {

TEST(HitPathAllocationTest, ServingABatchOfHitsAllocatesNothing) {
  cache::CacheSettings s;
  s.capacity_bytes = 4 << 20;
  cache::ResponseCache cache(s);
  auto t = cache.RegisterThread();
  constexpr int kNames = 64;
  std::vector<std::vector<uint8_t>> queries;
  for (int i = 0; i < kNames; ++i) {
    const std::string name = "host" + std::to_string(i) + ".example.com.";
    testing::MessageSpec m;
    m.qname = name;
    m.answer = {name + " 300 IN A 192.0.2.1"};
    const auto wire = testing::WireName(name);
    ASSERT_EQ(cache.Insert(*t, cache::CacheKey(wire, 1, 1, false, false), testing::Build(m), 1000),
              cache::InsertResult::kInserted);
    queries.push_back(
        testing::BuildQuery("HOST" + std::to_string(i) + ".example.com.", 1, i % 2 == 0));
  }
  // Everything a worker's batch uses is allocated up front, as in Worker.
  std::vector<dns::QueryInfo> info(kNames);
  std::vector<cache::CacheKey> keys(kNames);
  std::vector<std::vector<uint8_t>> out(kNames, std::vector<uint8_t>(1536));
  int hits = 0;
  const long before = allocations.load();
  for (int i = 0; i < kNames; ++i) {
    ASSERT_EQ(dns::ParseQuery(queries[i], info[i]), dns::QueryStatus::kOk);
    keys[i] = cache::CacheKey({queries[i].data() + 12, info[i].qname_length}, info[i].qtype,
                              info[i].qclass, info[i].do_bit, info[i].cd());
    cache.PrefetchSlot(keys[i]);
  }
  for (int i = 0; i < kNames; ++i) cache.PrefetchEntry(keys[i]);
  for (int i = 0; i < kNames; ++i) {
    auto r = cache.Lookup(*t, keys[i], 2000, std::span(out[i]).first(1500));
    if (r.status != cache::LookupResult::Status::kHit) continue;
    ++hits;
    FinishReply(out[i], r.size, queries[i], info[i], 1232);
  }
  t->Quiescent();
  const long during = allocations.load() - before;
  EXPECT_EQ(hits, kNames);
  EXPECT_EQ(during, 0) << "the hit path allocated";
  // The counter works: an insert allocates.
  testing::MessageSpec m;
  const auto wire = testing::Build(m);
  const long before_insert = allocations.load();
  cache.Insert(*t, cache::CacheKey(testing::WireName("example.com."), 1, 1, false, false), wire,
               1000);
  EXPECT_GT(allocations.load() - before_insert, 0);
}

TEST(HitPathAllocationTest, QueryPathServesHitsWithoutAllocating) {
  testing_util::WorkerParts w;
  ASSERT_TRUE(w.ok());
  constexpr int kNames = 64;
  std::vector<std::vector<uint8_t>> queries;
  for (int i = 0; i < kNames; ++i) {
    const std::string name = "host" + std::to_string(i) + ".example.com.";
    testing::MessageSpec m;
    m.qname = name;
    m.answer = {name + " 300 IN A 192.0.2.1"};
    ASSERT_TRUE(w.Store(m));
    queries.push_back(testing::BuildQuery(name, 1, i % 2 == 0, false, static_cast<uint16_t>(i)));
  }
  std::vector<uint8_t> reply;
  reply.reserve(dns::kMaxMessage + 64);
  int replies = 0;
  const long before = allocations.load();
  for (int i = 0; i < kNames; ++i) {
    replies += w.Serve(queries[i], 1, /*tcp=*/false, reply) == Verdict::kReply;
  }
  const long during = allocations.load() - before;
  EXPECT_EQ(replies, kNames);
  EXPECT_EQ(w.counters().cache_hits.Get(), static_cast<uint64_t>(kNames));
  EXPECT_EQ(during, 0) << "QueryPath::Serve allocated on a hit";
  // The counter sees the path's allocations: a miss builds its pending entry.
  const std::vector<uint8_t> miss = testing::BuildQuery("miss.example.com.", 1);
  const long before_miss = allocations.load();
  EXPECT_EQ(w.Serve(miss, 1, false, reply), Verdict::kPending);
  EXPECT_GT(allocations.load() - before_miss, 0);
}

// With CoreDNS's families on (node-cache), a hit also counts requests, responses, its duration
// and a cache hit: fixed arrays indexed by small integers, nothing allocated.
TEST(HitPathAllocationTest, QueryPathServesHitsWithCoreDnsMetricsWithoutAllocating) {
  testing_util::WorkerParts w({}, [](ServeConfig& c) { c.coredns_metrics = true; });
  ASSERT_TRUE(w.ok());
  ASSERT_NE(w.ctx().coredns, nullptr);
  constexpr int kNames = 64;
  std::vector<std::vector<uint8_t>> queries;
  for (int i = 0; i < kNames; ++i) {
    const std::string name = "host" + std::to_string(i) + ".example.com.";
    testing::MessageSpec m;
    m.qname = name;
    m.answer = {name + " 300 IN A 192.0.2.1"};
    ASSERT_TRUE(w.Store(m));
    queries.push_back(testing::BuildQuery(name, i % 3 == 0 ? dns::type::kAAAA : dns::type::kA,
                                          i % 2 == 0, false, static_cast<uint16_t>(i)));
    if (i % 3 == 0) {
      m.qtype = dns::type::kAAAA;
      m.answer = {name + " 300 IN AAAA 2001:db8::1"};
      ASSERT_TRUE(w.Store(m));
    }
  }
  std::vector<uint8_t> reply;
  reply.reserve(dns::kMaxMessage + 64);
  int replies = 0;
  const long before = allocations.load();
  for (int i = 0; i < kNames; ++i) {
    replies += w.Serve(queries[i], 1, /*tcp=*/i % 4 == 0, reply) == Verdict::kReply;
  }
  const long during = allocations.load() - before;
  EXPECT_EQ(replies, kNames);
  EXPECT_EQ(during, 0) << "QueryPath::Serve allocated on a hit with CoreDNS metrics on";
  // The hits were counted (rendering allocates: after the measurement).
  MetricsLabels labels;
  ASSERT_TRUE(labels.SetServers(std::vector{*dns::SocketAddress::Parse("127.0.0.1:53")}).ok());
  ASSERT_TRUE(labels.Zone(".").ok());
  const CoreDnsCounters* ws[] = {w.ctx().coredns.get()};
  const std::string text = RenderCoreDnsMetrics(ws, labels.Get(), {});
  EXPECT_NE(text.find("coredns_cache_hits_total{server=\"dns://127.0.0.1:53\",type=\"success\","
                      "zones=\".\",view=\"\"} 64\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace nodedns::proxy
