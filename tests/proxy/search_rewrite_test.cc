// Tests for proxy/search_rewrite: namespace learning from realistic stub-resolver traffic, the
// candidate plan, search-order decisions for every arrival order, and synthesized answers checked
// by parsing them back with ldns.
#include "proxy/search_rewrite.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cache/cache_key.h"
#include "cache/response_cache.h"
#include "dns/wire.h"
#include "proxy/reply.h"
#include "proxy/search_path_learner.h"
#include "tests/testing/dns_builder.h"

// Counting operator new, for the no-allocation contract of Observe() and NamespaceView(). Not
// under sanitizers, which interpose their own allocator.
#if !defined(NODEDNS_SANITIZED)
namespace {
thread_local bool g_count_allocations = false;
thread_local size_t g_allocations = 0;
}  // namespace
void* operator new(size_t n) {
  if (g_count_allocations) ++g_allocations;
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) std::abort();
  return p;
}
// GCC pairs inlined library `new` expressions with these and warns; they are a matched pair.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop
#endif

namespace nodedns::proxy {
namespace {

using testing::WireName;

constexpr uint8_t kNx = dns::rcode::kNxDomain;
constexpr uint8_t kOk = dns::rcode::kNoError;
constexpr uint16_t kA = dns::type::kA;
constexpr uint16_t kAAAA = dns::type::kAAAA;

SocketAddress Addr(const std::string& text) {
  auto a = SocketAddress::Parse(text);
  EXPECT_TRUE(a.ok()) << text << ": " << a.status();
  return *a;
}

std::vector<uint8_t> Zone() { return WireName("cluster.local."); }

SearchPathLearner MakeLearner(SearchPathLearner::Options o = {}) {
  return SearchPathLearner(Zone(), o);
}

// What glibc's res_search (and musl's name_from_dns_search) sends for a lookup of `name` from a
// pod in `ns` with ndots:5, as nodedns replies to it: A and AAAA in parallel per search step, a
// fresh source port per step, NXDOMAIN until `exists_at` (a suffix, "" for the absolute name).
// Stops after the first step whose answer is not NXDOMAIN. Returns the time after the lookup.
uint64_t StubLookup(SearchPathLearner& l, const std::string& ip, const std::string& name,
                    const std::string& ns, const std::string& exists_at, uint64_t now,
                    uint16_t first_port = 40000) {
  const std::vector<std::string> steps = {ns + ".svc.cluster.local.", "svc.cluster.local.",
                                          "cluster.local.", ""};
  uint16_t port = first_port;
  for (const std::string& suffix : steps) {
    const std::string q = suffix.empty() ? name + "." : name + "." + suffix;
    const uint8_t rcode = suffix == exists_at ? kOk : kNx;
    const SocketAddress c = Addr(ip + ":" + std::to_string(port++));
    // Replies arrive in either order; glibc sends A first, the AAAA reply often wins.
    l.Observe(c, WireName(q), kAAAA, rcode, now + 1);
    l.Observe(c, WireName(q), kA, rcode, now + 2);
    now += 5;
    if (rcode != kNx) break;
  }
  return now;
}

// ---------------------------------------------------------------------------------------------
// Learning.

TEST(SearchPathLearnerTest, LearnsNamespaceFromGlibcSearchSequence) {
  SearchPathLearner l = MakeLearner();
  const SocketAddress pod = Addr("10.1.2.3:1");
  EXPECT_FALSE(l.NamespaceOf(pod, 0).has_value());
  const uint64_t t = StubLookup(l, "10.1.2.3", "api.example.com", "default", "", 1000);
  EXPECT_EQ(l.NamespaceOf(pod, t), "default");
  EXPECT_EQ(l.counters().clients_learned, 1u);
  EXPECT_EQ(l.LearnedClients(t), 1u);
}

TEST(SearchPathLearnerTest, LearnsFromInterleavedAAndAaaaOfTwoClients) {
  SearchPathLearner l = MakeLearner();
  const auto q = [](const std::string& n) { return WireName(n); };
  const SocketAddress a1 = Addr("10.0.0.1:1111"), a2 = Addr("10.0.0.1:2222");
  const SocketAddress b1 = Addr("10.0.0.2:3333"), b2 = Addr("10.0.0.2:4444");
  // Two pods in different namespaces looking up the same name at the same time.
  l.Observe(a1, q("redis.infra.prod.svc.cluster.local."), kA, kNx, 10);
  l.Observe(b1, q("redis.infra.web.svc.cluster.local."), kAAAA, kNx, 11);
  l.Observe(a1, q("redis.infra.prod.svc.cluster.local."), kAAAA, kNx, 12);
  l.Observe(b1, q("redis.infra.web.svc.cluster.local."), kA, kNx, 13);
  EXPECT_FALSE(l.NamespaceOf(a1, 14).has_value());
  l.Observe(b2, q("redis.infra.svc.cluster.local."), kAAAA, kOk, 15);
  l.Observe(a2, q("redis.infra.svc.cluster.local."), kA, kOk, 16);
  l.Observe(b2, q("redis.infra.svc.cluster.local."), kA, kOk, 17);
  l.Observe(a2, q("redis.infra.svc.cluster.local."), kAAAA, kOk, 18);
  EXPECT_EQ(l.NamespaceOf(a1, 20), "prod");
  EXPECT_EQ(l.NamespaceOf(b1, 20), "web");
  // One pair per lookup: the AAAA twin does not count as a confirmation.
  EXPECT_EQ(l.counters().clients_learned, 2u);
  EXPECT_EQ(l.counters().confirmed, 0u);
}

TEST(SearchPathLearnerTest, LearnsFromFullyQualifiedNameWithoutTrailingDot) {
  // "web.other.svc.cluster.local" has 4 dots < ndots:5, so the stub searches it first.
  SearchPathLearner l = MakeLearner();
  const uint64_t t = StubLookup(l, "10.0.0.9", "web.other.svc.cluster.local", "default", "", 100);
  EXPECT_EQ(l.NamespaceOf(Addr("10.0.0.9:5"), t), "default");
}

TEST(SearchPathLearnerTest, DoesNotLearnFromSingleLiteralQuery) {
  SearchPathLearner l = MakeLearner();
  const SocketAddress c = Addr("10.0.0.1:53000");
  l.Observe(c, WireName("x.default.svc.cluster.local."), kA, kNx, 10);
  l.Observe(c, WireName("x.default.svc.cluster.local."), kAAAA, kNx, 11);
  EXPECT_FALSE(l.NamespaceOf(c, 12).has_value());
  l.Observe(c, WireName("y.svc.cluster.local."), kA, kNx, 20);  // another N
  l.Observe(c, WireName("svc.cluster.local."), kA, kOk, 21);    // N empty
  EXPECT_FALSE(l.NamespaceOf(c, 22).has_value());
  EXPECT_EQ(l.counters().clients_learned, 0u);
}

TEST(SearchPathLearnerTest, DoesNotLearnWithoutNxDomainFirst) {
  SearchPathLearner l = MakeLearner();
  const SocketAddress c = Addr("10.0.0.1:53000");
  // x.default.svc... exists (a real service): the stub stops there; a later x.svc... is literal.
  l.Observe(c, WireName("x.default.svc.cluster.local."), kA, kOk, 10);
  l.Observe(c, WireName("x.svc.cluster.local."), kA, kNx, 11);
  // SERVFAIL is not evidence either.
  l.Observe(c, WireName("y.default.svc.cluster.local."), kA, dns::rcode::kServFail, 20);
  l.Observe(c, WireName("y.svc.cluster.local."), kA, kNx, 21);
  EXPECT_FALSE(l.NamespaceOf(c, 30).has_value());
}

TEST(SearchPathLearnerTest, DoesNotLearnFromAnotherClientOrTooLateOrOtherTypes) {
  SearchPathLearner::Options o;
  o.pair_window_ms = 3000;
  SearchPathLearner l = MakeLearner(o);
  const SocketAddress c = Addr("10.0.0.1:1"), other = Addr("10.0.0.2:1");
  l.Observe(c, WireName("a.default.svc.cluster.local."), kA, kNx, 1000);
  l.Observe(other, WireName("a.svc.cluster.local."), kA, kNx, 1001);
  l.Observe(c, WireName("b.default.svc.cluster.local."), kA, kNx, 1000);
  l.Observe(c, WireName("b.svc.cluster.local."), kA, kNx, 4001);  // 3001 ms later
  l.Observe(c, WireName("c.default.svc.cluster.local."), dns::type::kMX, kNx, 5000);
  l.Observe(c, WireName("c.svc.cluster.local."), dns::type::kMX, kNx, 5001);
  l.Observe(c, WireName("d.Bad_Ns.svc.cluster.local."), kA, kNx, 6000);  // not a namespace name
  l.Observe(c, WireName("d.svc.cluster.local."), kA, kNx, 6001);
  EXPECT_FALSE(l.NamespaceOf(c, 7000).has_value());
  EXPECT_FALSE(l.NamespaceOf(other, 7000).has_value());
  // Within the window, and with A followed by its AAAA sibling, it does learn.
  l.Observe(c, WireName("e.default.svc.cluster.local."), kA, kNx, 8000);
  l.Observe(c, WireName("E.SVC.cluster.local."), kAAAA, kNx, 11000);
  EXPECT_EQ(l.NamespaceOf(c, 11000), "default");
}

TEST(SearchPathLearnerTest, LearnedEntryExpires) {
  SearchPathLearner::Options o;
  o.ttl_ms = 60'000;
  SearchPathLearner l = MakeLearner(o);
  const SocketAddress c = Addr("10.0.0.1:1");
  const uint64_t t = StubLookup(l, "10.0.0.1", "api.example.com", "default", "", 0);
  EXPECT_EQ(l.NamespaceOf(c, t + 59'000), "default");
  EXPECT_FALSE(l.NamespaceOf(c, t + 60'000).has_value());
  EXPECT_EQ(l.LearnedClients(t + 60'000), 0u);
}

TEST(SearchPathLearnerTest, ConfirmingPairRefreshesLifetime) {
  SearchPathLearner::Options o;
  o.ttl_ms = 60'000;
  SearchPathLearner l = MakeLearner(o);
  const SocketAddress c = Addr("10.0.0.1:1");
  StubLookup(l, "10.0.0.1", "api.example.com", "default", "", 0);
  StubLookup(l, "10.0.0.1", "www.example.org", "default", "", 50'000);
  EXPECT_EQ(l.counters().confirmed, 1u);
  EXPECT_EQ(l.NamespaceOf(c, 100'000), "default");
  EXPECT_FALSE(l.NamespaceOf(c, 111'000).has_value());
}

TEST(SearchPathLearnerTest, BoundEvictsUnusedEntryFirst) {
  SearchPathLearner::Options o;
  o.max_clients = 2;
  SearchPathLearner l = MakeLearner(o);
  StubLookup(l, "10.0.0.1", "a.example", "ns-a", "", 0);
  StubLookup(l, "10.0.0.2", "a.example", "ns-b", "", 100);
  EXPECT_EQ(l.NamespaceOf(Addr("10.0.0.1:1"), 200), "ns-a");  // used: gets a second chance
  StubLookup(l, "10.0.0.3", "a.example", "ns-c", "", 300);
  EXPECT_EQ(l.NamespaceOf(Addr("10.0.0.1:1"), 400), "ns-a");
  EXPECT_FALSE(l.NamespaceOf(Addr("10.0.0.2:1"), 400).has_value());
  EXPECT_EQ(l.NamespaceOf(Addr("10.0.0.3:1"), 400), "ns-c");
  EXPECT_EQ(l.counters().evicted, 1u);
}

TEST(SearchPathLearnerTest, ExpiredEntriesAreEvictedBeforeLiveOnes) {
  SearchPathLearner::Options o;
  o.max_clients = 2;
  o.ttl_ms = 1000;
  SearchPathLearner l = MakeLearner(o);
  StubLookup(l, "10.0.0.1", "a.example", "ns-a", "", 0);
  StubLookup(l, "10.0.0.2", "a.example", "ns-b", "", 900);
  StubLookup(l, "10.0.0.3", "a.example", "ns-c", "", 1500);  // 10.0.0.1 has expired
  EXPECT_EQ(l.NamespaceOf(Addr("10.0.0.2:1"), 1600), "ns-b");
  EXPECT_EQ(l.NamespaceOf(Addr("10.0.0.3:1"), 1600), "ns-c");
  EXPECT_EQ(l.counters().evicted, 0u);
}

TEST(SearchPathLearnerTest, ChurnNeverGrowsTheIndex) {
  SearchPathLearner::Options o;
  o.max_clients = 8;
  SearchPathLearner l = MakeLearner(o);
  const size_t capacity = l.IndexCapacity();
  uint64_t t = 0;
  for (int i = 0; i < 2000; ++i) {
    const std::string ip = "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
    t = StubLookup(l, ip, "a.example", "ns", "", t);
  }
  EXPECT_EQ(l.IndexCapacity(), capacity);
  EXPECT_EQ(l.LearnedClients(t), 8u);
  EXPECT_EQ(l.counters().clients_learned, 2000u);
}

#if !defined(NODEDNS_SANITIZED)
TEST(SearchPathLearnerTest, ObserveAndNamespaceViewNeverAllocate) {
  SearchPathLearner::Options o;
  o.max_clients = 8;
  SearchPathLearner l = MakeLearner(o);
  struct Event {
    SocketAddress client;
    std::vector<uint8_t> qname;
    uint16_t qtype;
    uint8_t rcode;
  };
  // Walks from 7 regular clients and a stream of one-off ones through a table of 8: learning,
  // confirming, evicting, unlearning, quarantining.
  std::vector<Event> events;
  for (int i = 0; i < 400; ++i) {
    const int host = i % 5 == 4 ? 100 + i % 150 : i % 7;
    const SocketAddress c = Addr("10.0." + std::to_string(host / 200) + "." +
                                 std::to_string(host % 200 + 1) + ":" + std::to_string(1000 + i));
    const std::string n = "host" + std::to_string(i) + ".example";
    const std::string ns = i % 11 == 0 ? "other" : "default";
    events.push_back({c, WireName(n + "." + ns + ".svc.cluster.local."), kA, kNx});
    events.push_back({c, WireName(n + "." + ns + ".svc.cluster.local."), kAAAA, kNx});
    events.push_back({c, WireName(n + ".svc.cluster.local."), kAAAA, kNx});
    events.push_back({c, WireName(n + ".svc.cluster.local."), kA, kNx});
    events.push_back({c, WireName(n + "."), kA, kOk});
  }
  size_t learned_views = 0;
  g_allocations = 0;
  g_count_allocations = true;
  uint64_t now = 0;
  for (const Event& e : events) {
    l.Observe(e.client, e.qname, e.qtype, e.rcode, now++);
    learned_views += l.NamespaceView(e.client, now).has_value();
  }
  g_count_allocations = false;
  EXPECT_EQ(g_allocations, 0u);
  EXPECT_GT(learned_views, 0u);
  EXPECT_GT(l.counters().evicted, 0u);
  EXPECT_GT(l.counters().unlearned, 0u);
}
#endif

TEST(SearchPathLearnerTest, ContradictingPairUnlearnsThenRelearns) {
  SearchPathLearner l = MakeLearner();
  const SocketAddress c = Addr("10.0.0.1:1");
  uint64_t t = StubLookup(l, "10.0.0.1", "a.example", "default", "", 0);
  EXPECT_EQ(l.NamespaceOf(c, t), "default");
  // The IP now belongs to a pod in "payments" (pod IP reuse): its first pair unlearns...
  t = StubLookup(l, "10.0.0.1", "b.example", "payments", "", t + 1000);
  EXPECT_FALSE(l.NamespaceOf(c, t).has_value());
  EXPECT_EQ(l.counters().unlearned, 1u);
  // ...and its next pair teaches the new namespace.
  t = StubLookup(l, "10.0.0.1", "c.example", "payments", "", t + 1000);
  EXPECT_EQ(l.NamespaceOf(c, t), "payments");
  EXPECT_EQ(l.counters().clients_learned, 2u);
}

// ---------------------------------------------------------------------------------------------
// Discovered pods (serve --discover-pods).

SearchPathLearner::DiscoveredTable Discovered(
    std::vector<SearchPathLearner::DiscoveredClient> clients) {
  auto t = SearchPathLearner::BuildDiscovered(clients);
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

TEST(SearchPathLearnerTest, DiscoveredNamespaceIsKnownBeforeAnyTraffic) {
  SearchPathLearner l = MakeLearner();
  l.SetDiscovered(Discovered({{"10.1.2.3", "shop"}, {"fd00::3", "shop"}, {"10.1.2.4", ""}}));
  EXPECT_EQ(l.NamespaceOf(Addr("10.1.2.3:5353"), 0), "shop");
  EXPECT_EQ(l.NamespaceOf(Addr("[fd00::3]:1"), 0), "shop");
  EXPECT_EQ(l.DiscoveredClients(), 2u);
  // "" (its resolv.conf is not the cluster default): never, even once its traffic teaches.
  EXPECT_FALSE(l.NamespaceOf(Addr("10.1.2.4:1"), 0).has_value());
  const uint64_t t = StubLookup(l, "10.1.2.4", "api.example.com", "default", "", 1000);
  EXPECT_FALSE(l.NamespaceOf(Addr("10.1.2.4:1"), t).has_value());
  // An address discovery does not know is learned as before.
  const uint64_t t2 = StubLookup(l, "10.1.2.9", "api.example.com", "default", "", t);
  EXPECT_EQ(l.NamespaceOf(Addr("10.1.2.9:1"), t2), "default");
  // A new scan replaces the old one: the pod is gone.
  l.SetDiscovered(Discovered({}));
  EXPECT_FALSE(l.NamespaceOf(Addr("10.1.2.3:1"), t2).has_value());
}

TEST(SearchPathLearnerTest, TrafficThatContradictsDiscoveryQuarantinesTheAddress) {
  SearchPathLearner l = MakeLearner();
  l.SetDiscovered(Discovered({{"10.1.2.3", "shop"}}));
  // Agreeing traffic changes nothing.
  uint64_t t = StubLookup(l, "10.1.2.3", "api.example.com", "shop", "", 1000);
  EXPECT_EQ(l.NamespaceOf(Addr("10.1.2.3:1"), t), "shop");
  EXPECT_EQ(l.counters().discovery_conflicts, 0u);
  // A walk from another namespace's search path: a shared address or a stale scan. No rewrite on
  // either reading until the quarantine ends.
  t = StubLookup(l, "10.1.2.3", "api.example.com", "other", "", t);
  EXPECT_EQ(l.counters().discovery_conflicts, 1u);
  EXPECT_EQ(l.counters().quarantined, 1u);
  EXPECT_FALSE(l.NamespaceOf(Addr("10.1.2.3:1"), t).has_value());
  const uint64_t later = t + SearchPathLearner::Options{}.ttl_ms + 1;
  EXPECT_EQ(l.NamespaceOf(Addr("10.1.2.3:1"), later), "shop");
}

TEST(SearchPathLearnerTest, BuildDiscoveredRejectsWhatIsNotAnAddressOrNamespace) {
  using C = SearchPathLearner::DiscoveredClient;
  EXPECT_FALSE(SearchPathLearner::BuildDiscovered(std::vector<C>{{"10.0.0.0/8", "a"}}).ok());
  EXPECT_FALSE(SearchPathLearner::BuildDiscovered(std::vector<C>{{"pod-a", "a"}}).ok());
  EXPECT_FALSE(SearchPathLearner::BuildDiscovered(std::vector<C>{{"10.0.0.1", "Not_NS"}}).ok());
  // The same address twice with two namespaces (a pod replaced mid-scan): no guess.
  auto t = SearchPathLearner::BuildDiscovered(std::vector<C>{{"10.0.0.1", "a"}, {"10.0.0.1", "b"}});
  ASSERT_TRUE(t.ok());
  SearchPathLearner l = MakeLearner();
  l.SetDiscovered(*std::move(t));
  EXPECT_FALSE(l.NamespaceOf(Addr("10.0.0.1:1"), 0).has_value());
}

TEST(SearchPathLearnerTest, AddressThatKeepsFlippingIsQuarantined) {
  SearchPathLearner::Options o;
  o.ttl_ms = 60'000;
  SearchPathLearner l = MakeLearner(o);
  const SocketAddress node = Addr("192.168.1.10:1");  // hostNetwork pods share the node's IP
  uint64_t t = StubLookup(l, "192.168.1.10", "a.example", "ns-a", "", 0);
  t = StubLookup(l, "192.168.1.10", "a.example", "ns-b", "", t + 10);  // unlearn
  t = StubLookup(l, "192.168.1.10", "a.example", "ns-b", "", t + 10);  // learn ns-b
  t = StubLookup(l, "192.168.1.10", "a.example", "ns-a", "", t + 10);  // flip again: quarantine
  EXPECT_EQ(l.counters().quarantined, 1u);
  EXPECT_FALSE(l.NamespaceOf(node, t).has_value());
  t = StubLookup(l, "192.168.1.10", "a.example", "ns-a", "", t + 10);
  EXPECT_FALSE(l.NamespaceOf(node, t).has_value());
  t = StubLookup(l, "192.168.1.10", "a.example", "ns-a", "", t + 60'000);  // quarantine over
  EXPECT_EQ(l.NamespaceOf(node, t), "ns-a");
}

TEST(SearchPathLearnerTest, SingleLiteralQueryIntoOtherNamespaceDoesNotUnlearn) {
  SearchPathLearner l = MakeLearner();
  const SocketAddress c = Addr("10.0.0.1:1");
  uint64_t t = StubLookup(l, "10.0.0.1", "a.example", "default", "", 0);
  l.Observe(c, WireName("web.payments.svc.cluster.local."), kA, kNx, t + 1);
  l.Observe(c, WireName("other.example."), kA, kOk, t + 2);
  EXPECT_EQ(l.NamespaceOf(c, t + 3), "default");
  EXPECT_EQ(l.counters().unlearned, 0u);
}

TEST(SearchPathLearnerTest, StaticPinWinsOverLearning) {
  SearchPathLearner l = MakeLearner();
  ASSERT_TRUE(l.AddPinSpec("10.0.0.0/8=pinned").ok());
  ASSERT_TRUE(l.AddPinSpec("10.1.0.0/16 = inner").ok());
  ASSERT_TRUE(l.AddPinSpec("10.2.0.0/16=-").ok());
  ASSERT_TRUE(l.AddPinSpec("fd00:1::/64=v6ns").ok());
  ASSERT_TRUE(l.AddPin("192.0.2.7", "single").ok());
  uint64_t t = StubLookup(l, "10.9.9.9", "a.example", "default", "", 0);
  EXPECT_EQ(l.NamespaceOf(Addr("10.9.9.9:1"), t), "pinned");
  EXPECT_EQ(l.NamespaceOf(Addr("10.1.2.3:1"), t), "inner");  // longest prefix
  t = StubLookup(l, "10.2.3.4", "a.example", "default", "", t);
  EXPECT_FALSE(l.NamespaceOf(Addr("10.2.3.4:1"), t).has_value());  // excluded
  EXPECT_EQ(l.NamespaceOf(Addr("[fd00:1::42]:53"), t), "v6ns");
  EXPECT_FALSE(l.NamespaceOf(Addr("[fd00:2::42]:53"), t).has_value());
  EXPECT_EQ(l.NamespaceOf(Addr("192.0.2.7:9"), t), "single");
  EXPECT_FALSE(l.NamespaceOf(Addr("192.0.2.8:9"), t).has_value());
  EXPECT_EQ(l.counters().clients_learned, 0u);  // pinned clients are not learned
}

TEST(SearchPathLearnerTest, RejectsBadPins) {
  SearchPathLearner l = MakeLearner();
  EXPECT_FALSE(l.AddPinSpec("10.0.0.0/8").ok());
  EXPECT_FALSE(l.AddPinSpec("10.0.0.0/33=x").ok());
  EXPECT_FALSE(l.AddPinSpec("10.0.0.1/8=x").ok());  // host bits set
  EXPECT_FALSE(l.AddPinSpec("10.0.0.0/8=Bad_Ns").ok());
  EXPECT_FALSE(l.AddPinSpec("10.0.0.0/8=").ok());
  EXPECT_FALSE(l.AddPinSpec("pods=x").ok());
  EXPECT_FALSE(l.AddPinSpec("::ffff:10.0.0.0/104=x").ok());
  EXPECT_TRUE(l.AddPinSpec("10.0.0.0/8=Default").ok());  // lowercased
  EXPECT_EQ(l.NamespaceOf(Addr("10.0.0.1:1"), 0), "default");
}

TEST(SearchPathLearnerTest, MappedIpv4ClientIsTheSameClient) {
  SearchPathLearner l = MakeLearner();
  const uint64_t t = StubLookup(l, "10.0.0.1", "a.example", "default", "", 0);
  EXPECT_EQ(l.NamespaceOf(Addr("[::ffff:10.0.0.1]:4000"), t), "default");
  ASSERT_TRUE(l.AddPinSpec("10.3.0.0/16=pinned").ok());
  EXPECT_EQ(l.NamespaceOf(Addr("[::ffff:10.3.0.1]:4000"), t), "pinned");
}

// The workers' fast pre-filter must say exactly what IsRelevant() says: it decides which replies
// the learner sees at all.
TEST(SharedSearchRewriteTest, RelevantAgreesWithIsRelevant) {
  auto shared = SharedSearchRewrite::Create("cluster.local", {}, {});
  ASSERT_TRUE(shared.ok()) << shared.status();
  EXPECT_FALSE((*shared)->AnyNamespace()) << "nothing pinned or learned yet";
  const char* names[] = {"a.b.svc.cluster.local.",
                         "A.SVC.Cluster.Local.",
                         "svc.cluster.local.",
                         "a.cluster.local.",
                         "asvc.cluster.local.",
                         "a.xsvc.cluster.local.",
                         "svc.cluster.local.com.",
                         "a.svc.cluster.localx.",
                         "x.y.z.w.svc.cluster.local.",
                         "www.example.com.",
                         "a.svc.cluster.local.svc.cluster.local.",
                         "."};
  for (const char* n : names) {
    const auto wire = WireName(n);
    for (uint16_t type : {kA, kAAAA, uint16_t{33}}) {
      EXPECT_EQ((*shared)->Relevant(wire.data(), wire.size(), type),
                SearchPathLearner::IsRelevant(wire, type, Zone()))
          << n << " type " << type;
    }
  }
  // Short zones: svc.<zone> under 8 bytes takes the byte-wise path.
  for (const char* zone : {"k", "k8s", "Cluster.Example"}) {
    auto z = SharedSearchRewrite::Create(zone, {}, {});
    ASSERT_TRUE(z.ok()) << z.status();
    auto zone_wire = WireName(std::string(zone) + ".");
    for (auto& c : zone_wire) c = dns::LowerAscii(c);  // IsRelevant takes the zone lowercase
    for (const std::string n : {"a.svc.k.", "a.b.svc.k8s.", "svc.k.", "a.svc.k8.",
                                "x.svc.cluster.example.", "a.xsvc.k8s.", "a.svc.k.k8s."}) {
      const auto wire = WireName(n);
      EXPECT_EQ((*z)->Relevant(wire.data(), wire.size(), kA),
                SearchPathLearner::IsRelevant(wire, kA, zone_wire))
          << n << " zone " << zone;
    }
  }
  const std::vector<std::string> pins = {"10.0.0.0/8=default"};
  auto pinned = SharedSearchRewrite::Create("cluster.local", {}, pins);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_TRUE((*pinned)->AnyNamespace());
  const std::vector<std::string> bad = {"10.0.0.0/99=x"};
  EXPECT_FALSE(SharedSearchRewrite::Create("cluster.local", {}, bad).ok());
}

TEST(SearchPathLearnerTest, IsRelevantOnlyForAddressQueriesUnderSvc) {
  const auto z = Zone();
  EXPECT_TRUE(SearchPathLearner::IsRelevant(WireName("a.b.svc.cluster.local."), kA, z));
  EXPECT_TRUE(SearchPathLearner::IsRelevant(WireName("a.svc.cluster.local."), kAAAA, z));
  EXPECT_FALSE(SearchPathLearner::IsRelevant(WireName("svc.cluster.local."), kA, z));
  EXPECT_FALSE(SearchPathLearner::IsRelevant(WireName("a.cluster.local."), kA, z));
  EXPECT_FALSE(SearchPathLearner::IsRelevant(WireName("a.svc.cluster.local."), dns::type::kSRV, z));
}

TEST(NamespaceNameTest, FollowsRfc1123Labels) {
  EXPECT_TRUE(IsNamespaceName("default"));
  EXPECT_TRUE(IsNamespaceName("kube-system"));
  EXPECT_TRUE(IsNamespaceName("a1"));
  EXPECT_FALSE(IsNamespaceName(""));
  EXPECT_FALSE(IsNamespaceName("-a"));
  EXPECT_FALSE(IsNamespaceName("a-"));
  EXPECT_FALSE(IsNamespaceName("Default"));
  EXPECT_FALSE(IsNamespaceName("a_b"));
  EXPECT_FALSE(IsNamespaceName(std::string(64, 'a')));
}

// ---------------------------------------------------------------------------------------------
// Planning.

SearchRewriteSettings Settings(std::vector<std::string> node = {"corp.example"}) {
  auto s = SearchRewriteSettings::Make("cluster.local", node);
  EXPECT_TRUE(s.ok()) << s.status();
  return *s;
}

std::vector<std::vector<uint8_t>> Wires(const std::vector<std::string>& names) {
  std::vector<std::vector<uint8_t>> out;
  for (const auto& n : names) out.push_back(WireName(n));
  return out;
}

TEST(PlanRewriteTest, CandidatesForExternalNameInSearchOrder) {
  const auto plan = PlanRewrite(WireName("API.Example.com.default.svc.cluster.local."), kA,
                                "default", Settings());
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->stem_length, WireName("api.example.com.").size() - 1);
  EXPECT_EQ(plan->candidates,
            Wires({"api.example.com.svc.cluster.local.", "api.example.com.cluster.local.",
                   "api.example.com.corp.example.", "api.example.com."}));
}

TEST(PlanRewriteTest, NoPlanForNamesOutsideTheClientsFirstElement) {
  const auto s = Settings();
  for (const char* name :
       {"api.example.com.", "x.otherns.svc.cluster.local.", "default.svc.cluster.local.",
        "svc.cluster.local.", "a.xdefault.svc.cluster.local.", "a.default.svc.cluster.local.evil.",
        "a.default.svc.cluster.locals.", "a.default.svc.corp.example."}) {
    EXPECT_FALSE(PlanRewrite(WireName(name), kA, "default", s).has_value()) << name;
    EXPECT_FALSE(MaybeExpansion(WireName(name), "default", s.zone_wire)) << name;
  }
  // Label contents are arbitrary octets: one label "b\007default" followed by svc.cluster.local
  // holds the bytes of "default.svc.cluster.local." off a label boundary. Not an expansion.
  std::vector<uint8_t> tricky = {9, 'b', 7, 'd', 'e', 'f', 'a', 'u', 'l', 't'};
  const auto svc = WireName("svc.cluster.local.");
  tricky.insert(tricky.end(), svc.begin(), svc.end());
  EXPECT_FALSE(PlanRewrite(tricky, kA, "default", s).has_value());
  EXPECT_FALSE(MaybeExpansion(tricky, "default", s.zone_wire));
}

TEST(PlanRewriteTest, OtherNamespaceServiceIsAnExpansionOnlyWhenSearched) {
  // Literal x.otherns.svc.cluster.local from a "default" client: not default's expansion, and
  // the only namespace it could be an expansion of is otherns, which the client is not in.
  const auto s = Settings();
  EXPECT_FALSE(PlanRewrite(WireName("x.otherns.svc.cluster.local."), kA, "default", s));
  // The same name typed without a trailing dot is searched first: that is default's expansion,
  // and the absolute name is the last candidate.
  const auto plan = PlanRewrite(WireName("x.otherns.svc.cluster.local.default.svc.cluster.local."),
                                kAAAA, "default", s);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->candidates.back(), WireName("x.otherns.svc.cluster.local."));
  // N ending in "svc" (a headless service's pod record shape) is still N.
  const auto pod = PlanRewrite(WireName("pod-0.svc.default.svc.cluster.local."), kA, "default", s);
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(pod->candidates.front(), WireName("pod-0.svc.svc.cluster.local."));
}

TEST(PlanRewriteTest, OnlyAddressQueries) {
  const auto s = Settings();
  const auto q = WireName("api.example.com.default.svc.cluster.local.");
  EXPECT_TRUE(PlanRewrite(q, kAAAA, "default", s).has_value());
  for (uint16_t t : {dns::type::kSRV, dns::type::kTXT, dns::type::kMX, dns::type::kPTR,
                     dns::type::kCNAME, dns::type::kANY, uint16_t{65}}) {
    EXPECT_FALSE(PlanRewrite(q, t, "default", s).has_value()) << t;
  }
}

TEST(PlanRewriteTest, DropsDuplicatesAndTheQuestionItself) {
  const auto s = Settings({"corp.example", "cluster.local", "svc.cluster.local.", "Corp.Example",
                           "default.svc.cluster.local", "."});
  const auto plan = PlanRewrite(WireName("web.default.svc.cluster.local."), kA, "default", s);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->candidates,
            Wires({"web.svc.cluster.local.", "web.cluster.local.", "web.corp.example.", "web."}));
}

TEST(PlanRewriteTest, RootSearchDomainPlacesAbsoluteNameThere) {
  const auto s = Settings({".", "corp.example"});
  const auto plan = PlanRewrite(WireName("web.default.svc.cluster.local."), kA, "default", s);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->candidates,
            Wires({"web.svc.cluster.local.", "web.cluster.local.", "web.", "web.corp.example."}));
}

TEST(PlanRewriteTest, DedupesEvenHandBuiltSettings) {
  SearchRewriteSettings s;
  s.zone_wire = WireName("cluster.local.");
  s.node_search_wire = Wires({"corp.example.", "corp.example.", "cluster.local.", "."});
  const auto plan = PlanRewrite(WireName("web.default.svc.cluster.local."), kA, "default", s);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->candidates,
            Wires({"web.svc.cluster.local.", "web.cluster.local.", "web.corp.example.", "web."}));
}

TEST(PlanRewriteTest, ListEndsBeforeTheFirstCandidateLongerThan255Bytes) {
  const std::string l63(63, 'a');
  const std::string long_domain = l63 + "." + l63 + ".example";
  const auto s = Settings({long_domain, "corp.example"});
  // N: 3 labels of 40 bytes = 123 bytes of wire; N.default.svc.cluster.local. = 123+27+1 = 151.
  const std::string l40(40, 'n');
  const std::string n = l40 + "." + l40 + "." + l40;
  const auto plan = PlanRewrite(WireName(n + ".default.svc.cluster.local."), kA, "default", s);
  ASSERT_TRUE(plan.has_value());
  // glibc stops its walk there (NO_RECOVERY) and musl skips it: only the prefix is safe for both.
  EXPECT_EQ(plan->candidates, Wires({n + ".svc.cluster.local.", n + ".cluster.local."}));
  for (const auto& c : plan->candidates) EXPECT_LE(c.size(), dns::kMaxNameWire);
}

TEST(PlanRewriteTest, MaybeExpansionAgreesWithPlan) {
  const auto s = Settings();
  for (const char* name : {"a.default.svc.cluster.local.", "A.DEFAULT.SVC.CLUSTER.LOCAL.",
                           "a.b.default.svc.cluster.local.", "default.svc.cluster.local.",
                           "a.other.svc.cluster.local.", "a.cluster.local.", "."}) {
    EXPECT_EQ(MaybeExpansion(WireName(name), "default", s.zone_wire),
              PlanRewrite(WireName(name), kA, "default", s).has_value())
        << name;
  }
  EXPECT_TRUE(MaybeExpansion(WireName("A.DEFAULT.SVC.CLUSTER.LOCAL."), "default", s.zone_wire));
  // Malformed input is not an expansion (and not a crash).
  const std::vector<uint8_t> bad = {7, 'd', 'e', 'f'};
  EXPECT_FALSE(MaybeExpansion(bad, "default", s.zone_wire));
}

TEST(PlanRewriteTest, SettingsRejectBadNames) {
  EXPECT_FALSE(SearchRewriteSettings::Make("", {}).ok());
  EXPECT_FALSE(SearchRewriteSettings::Make(".", {}).ok());
  EXPECT_FALSE(SearchRewriteSettings::Make("cluster..local", {}).ok());
  const std::vector<std::string> bad = {"a..b"};
  EXPECT_FALSE(SearchRewriteSettings::Make("cluster.local", bad).ok());
}

// ---------------------------------------------------------------------------------------------
// Deciding.

struct DecideCase {
  std::vector<CandidateState> final_states;
  Decision expected;
  size_t needed;  // candidates [0, needed) must be known before the decision can be made
};

TEST(DecideTest, EveryArrivalOrderGivesTheSearchOrderWinner) {
  using S = CandidateState;
  using K = Decision::Kind;
  const std::vector<DecideCase> cases = {
      {{S::kNxDomain, S::kNxDomain, S::kAnswer, S::kAnswer}, {K::kUse, 2}, 3},
      {{S::kAnswer, S::kAnswer, S::kAnswer, S::kAnswer}, {K::kUse, 0}, 1},
      {{S::kNxDomain, S::kNoData, S::kAnswer, S::kAnswer}, {K::kUse, 1}, 2},
      {{S::kNxDomain, S::kFailed, S::kAnswer, S::kAnswer}, {K::kNoRewrite, 0}, 2},
      {{S::kNxDomain, S::kAnswer, S::kFailed, S::kFailed}, {K::kUse, 1}, 2},
      {{S::kNxDomain, S::kNxDomain, S::kNxDomain, S::kNxDomain}, {K::kAllNxDomain, 0}, 4},
      {{S::kNxDomain, S::kNxDomain, S::kNxDomain, S::kAnswer}, {K::kUse, 3}, 4},
  };
  for (const DecideCase& c : cases) {
    std::vector<size_t> order(c.final_states.size());
    std::iota(order.begin(), order.end(), 0);
    do {
      std::vector<CandidateResult> results(c.final_states.size());
      std::vector<bool> known(c.final_states.size(), false);
      EXPECT_EQ(Decide(results).kind, K::kWait);
      for (size_t i : order) {
        results[i].state = c.final_states[i];
        known[i] = true;
        const Decision d = Decide(results);
        const bool decidable =
            std::all_of(known.begin(), known.begin() + c.needed, [](bool k) { return k; });
        if (decidable) {
          EXPECT_EQ(d, c.expected) << "case winner " << c.expected.index;
        } else {
          EXPECT_EQ(d.kind, K::kWait) << "decided before an earlier candidate answered";
        }
      }
    } while (std::next_permutation(order.begin(), order.end()));
  }
}

TEST(DecideTest, EmptyMeansNoRewrite) { EXPECT_EQ(Decide({}).kind, Decision::Kind::kNoRewrite); }

TEST(ClassifyResponseTest, ByRcodeAndAnswerCount) {
  testing::MessageSpec spec;
  spec.qname = "a.example.";
  spec.answer = {"a.example. 60 IN A 192.0.2.1"};
  const auto name = WireName("a.example.");
  EXPECT_EQ(ClassifyResponse(testing::Build(spec), name, kA), CandidateState::kAnswer);
  EXPECT_EQ(ClassifyResponse(testing::Build(spec), WireName("b.example."), kA),
            CandidateState::kFailed);
  EXPECT_EQ(ClassifyResponse(testing::Build(spec), name, kAAAA), CandidateState::kFailed);
  spec.answer.clear();
  EXPECT_EQ(ClassifyResponse(testing::Build(spec), name, kA), CandidateState::kNoData);
  spec.rcode = kNx;
  EXPECT_EQ(ClassifyResponse(testing::Build(spec), name, kA), CandidateState::kNxDomain);
  // NXDOMAIN at the end of a CNAME chain still counts as NXDOMAIN, as stubs see it.
  spec.answer = {"a.example. 60 IN CNAME gone.example."};
  EXPECT_EQ(ClassifyResponse(testing::Build(spec), name, kA), CandidateState::kNxDomain);
  spec.answer.clear();
  spec.rcode = dns::rcode::kServFail;
  EXPECT_EQ(ClassifyResponse(testing::Build(spec), name, kA), CandidateState::kFailed);
  spec.rcode = kOk;
  spec.tc = true;
  EXPECT_EQ(ClassifyResponse(testing::Build(spec), name, kA), CandidateState::kFailed);
  EXPECT_EQ(ClassifyResponse({}, name, kA), CandidateState::kFailed);
}

// ---------------------------------------------------------------------------------------------
// Synthesizing.

const std::string kOriginal = "api.example.com.default.svc.cluster.local.";

testing::LdnsPkt SynthesizeAndParse(const testing::MessageSpec& candidate, uint16_t qtype,
                                    uint32_t cap) {
  auto body = SynthesizeAnswer(WireName("Api.Example.com.default.svc.cluster.local."), qtype,
                               WireName(candidate.qname), testing::Build(candidate), cap);
  EXPECT_TRUE(body.ok()) << body.status();
  if (!body.ok()) return nullptr;
  // No OPT, ID 0, and something the data path's own walker accepts.
  dns::ResponseLayout layout;
  EXPECT_EQ(dns::ParseResponseLayout(*body, layout), dns::LayoutStatus::kOk);
  EXPECT_EQ(layout.opt_offset, 0);
  EXPECT_EQ(dns::HeaderId(*body), 0);
  EXPECT_TRUE(dns::ResponseMatchesQuestion(*body, WireName(kOriginal), qtype, dns::kClassIN));
  auto pkt = testing::Parse(*body);
  EXPECT_NE(pkt, nullptr);
  return pkt;
}

std::string RrText(const ldns_rr* rr) {
  char* s = ldns_rr2str(rr);
  std::string out(s);
  LDNS_FREE(s);
  while (!out.empty() && (out.back() == '\n')) out.pop_back();
  return out;
}

std::vector<std::string> Section(const ldns_rr_list* list) {
  std::vector<std::string> out;
  for (size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
    out.push_back(RrText(ldns_rr_list_rr(list, i)));
  }
  return out;
}

void ExpectHeader(const ldns_pkt* pkt, uint16_t qtype) {
  EXPECT_TRUE(ldns_pkt_qr(pkt));
  EXPECT_TRUE(ldns_pkt_rd(pkt));
  EXPECT_TRUE(ldns_pkt_ra(pkt));
  EXPECT_FALSE(ldns_pkt_aa(pkt));
  EXPECT_FALSE(ldns_pkt_ad(pkt));
  EXPECT_FALSE(ldns_pkt_edns(pkt));
  EXPECT_EQ(ldns_pkt_get_rcode(pkt), LDNS_RCODE_NOERROR);
  ASSERT_EQ(ldns_rr_list_rr_count(ldns_pkt_question(pkt)), 1u);
  const ldns_rr* q = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
  EXPECT_EQ(ldns_rr_get_type(q), qtype);
  char* owner = ldns_rdf2str(ldns_rr_owner(q));
  EXPECT_STREQ(owner, kOriginal.c_str());
  LDNS_FREE(owner);
}

TEST(SynthesizeAnswerTest, AddressAnswerGetsCnameWithMinimumTtl) {
  testing::MessageSpec c;
  c.qname = "api.example.com.";
  c.answer = {"api.example.com. 300 IN A 192.0.2.1", "api.example.com. 120 IN A 192.0.2.2"};
  auto pkt = SynthesizeAndParse(c, kA, 3600);
  ASSERT_NE(pkt, nullptr);
  ExpectHeader(pkt.get(), kA);
  EXPECT_EQ(Section(ldns_pkt_answer(pkt.get())),
            (std::vector<std::string>{kOriginal + "\t120\tIN\tCNAME\tapi.example.com.",
                                      "api.example.com.\t300\tIN\tA\t192.0.2.1",
                                      "api.example.com.\t120\tIN\tA\t192.0.2.2"}));
  EXPECT_EQ(ldns_rr_list_rr_count(ldns_pkt_authority(pkt.get())), 0u);
  // The NXDOMAINs it relies on cap it further.
  pkt = SynthesizeAndParse(c, kA, 30);
  ASSERT_NE(pkt, nullptr);
  EXPECT_EQ(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(pkt.get()), 0)), 30u);
}

TEST(SynthesizeAnswerTest, CandidateCnameChainIsKept) {
  testing::MessageSpec c;
  c.qname = "api.example.com.svc.cluster.local.";
  c.qtype = kAAAA;
  c.answer = {"api.example.com.svc.cluster.local. 30 IN CNAME edge.example.net.",
              "edge.example.net. 200 IN CNAME edge.cdn.example.",
              "edge.cdn.example. 20 IN AAAA 2001:db8::1"};
  auto pkt = SynthesizeAndParse(c, kAAAA, 3600);
  ASSERT_NE(pkt, nullptr);
  ExpectHeader(pkt.get(), kAAAA);
  EXPECT_EQ(Section(ldns_pkt_answer(pkt.get())),
            (std::vector<std::string>{
                kOriginal + "\t20\tIN\tCNAME\tapi.example.com.svc.cluster.local.",
                "api.example.com.svc.cluster.local.\t30\tIN\tCNAME\tedge.example.net.",
                "edge.example.net.\t200\tIN\tCNAME\tedge.cdn.example.",
                "edge.cdn.example.\t20\tIN\tAAAA\t2001:db8::1"}));
}

TEST(SynthesizeAnswerTest, NoDataKeepsSoaAndUsesNegativeTtl) {
  testing::MessageSpec c;
  c.qname = "api.example.com.";
  c.qtype = kAAAA;
  c.authority = {"example.com. 900 IN SOA ns.example.com. host.example.com. 1 7200 900 86400 45"};
  auto pkt = SynthesizeAndParse(c, kAAAA, 3600);
  ASSERT_NE(pkt, nullptr);
  ExpectHeader(pkt.get(), kAAAA);
  EXPECT_EQ(Section(ldns_pkt_answer(pkt.get())),
            (std::vector<std::string>{kOriginal + "\t45\tIN\tCNAME\tapi.example.com."}));
  ASSERT_EQ(ldns_rr_list_rr_count(ldns_pkt_authority(pkt.get())), 1u);
  EXPECT_EQ(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_authority(pkt.get()), 0)), LDNS_RR_TYPE_SOA);
  // Without an SOA the negative part has no lifetime, and neither has the CNAME.
  c.authority.clear();
  pkt = SynthesizeAndParse(c, kAAAA, 3600);
  ASSERT_NE(pkt, nullptr);
  EXPECT_EQ(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(pkt.get()), 0)), 0u);
}

TEST(SynthesizeAnswerTest, CachesUnderRewriteClassApartFromThePlainName) {
  // The recipe in docs/search-rewrite.md: the rewritten answer lives under kRewriteCacheClass and
  // expires with its CNAME; the plain key (a literal query's) keeps the upstream NXDOMAIN.
  cache::CacheSettings settings;
  settings.capacity_bytes = 1 << 20;
  cache::ResponseCache cache(settings);
  auto t = cache.RegisterThread();
  testing::MessageSpec c;
  c.qname = "api.example.com.";
  c.answer = {"api.example.com. 300 IN A 192.0.2.1"};
  const auto q = WireName(kOriginal);
  auto body = SynthesizeAnswer(q, kA, WireName(c.qname), testing::Build(c), 40);
  ASSERT_TRUE(body.ok()) << body.status();
  const cache::CacheKey rewrite_key(q, kA, kRewriteCacheClass, false, false);
  const cache::CacheKey plain_key(q, kA, dns::kClassIN, false, false);
  ASSERT_EQ(cache.Insert(*t, rewrite_key, *body, 1000), cache::InsertResult::kInserted);
  std::vector<uint8_t> out(4096);
  cache::LookupResult r = cache.Lookup(*t, rewrite_key, 1000, out);
  ASSERT_EQ(r.status, cache::LookupResult::Status::kHit);
  EXPECT_EQ(r.ttl, 40u);
  EXPECT_EQ(cache.Lookup(*t, plain_key, 1000, out).status, cache::LookupResult::Status::kMiss);
  EXPECT_NE(cache.Lookup(*t, rewrite_key, 41'000, out).status, cache::LookupResult::Status::kHit);
}

TEST(SynthesizeAnswerTest, RejectsResponsesThatCannotWin) {
  testing::MessageSpec c;
  c.qname = "api.example.com.";
  c.rcode = kNx;
  const auto q = WireName(kOriginal);
  EXPECT_FALSE(SynthesizeAnswer(q, kA, WireName(c.qname), testing::Build(c), 60).ok());
  c.rcode = dns::rcode::kServFail;
  EXPECT_FALSE(SynthesizeAnswer(q, kA, WireName(c.qname), testing::Build(c), 60).ok());
  c.rcode = kOk;
  c.answer = {"api.example.com. 60 IN A 192.0.2.1"};
  EXPECT_FALSE(SynthesizeAnswer(q, kA, WireName("other.example."), testing::Build(c), 60).ok());
  EXPECT_FALSE(SynthesizeAnswer(q, kAAAA, WireName(c.qname), testing::Build(c), 60).ok());
  EXPECT_FALSE(SynthesizeAnswer(q, kA, WireName(c.qname), {}, 60).ok());
  EXPECT_TRUE(SynthesizeAnswer(q, kA, WireName(c.qname), testing::Build(c), 60).ok());
}

// Candidates whose records ldns 1.8 reads across their RDLENGTH (tests/fuzz/corpus/
// search_rewrite_fuzz/found-ldns-*, without the fuzz target's control byte). Both have a CNAME
// whose name does not end at its RDLENGTH, which ParseResponseLayout now refuses, so they
// classify as failed; SynthesizeAnswer copies ldns's reading, so it must refuse them too, and the
// worker answers the client's original question instead.
TEST(SynthesizeAnswerTest, RefusesCandidatesLdnsMisreads) {
  // api.example.com. A: ldns reads the first answer's RDATA (type 4, a name) on past its
  // RDLENGTH, and then finds an OPT record in the answer section.
  const std::vector<uint8_t> name_past_rdlength = {
      0x12, 0x34, 0x81, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x03,
      0x61, 0x70, 0x69, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63,
      0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01, 0xc0, 0x0c, 0x00, 0x04, 0xff, 0xfd,
      0x00, 0x00, 0x02, 0x58, 0x00, 0x10, 0x02, 0x6c, 0x62, 0x07, 0x65, 0x78, 0x61,
      0x04, 0xc0, 0x00, 0x02, 0x0a, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
      0x00, 0x2d, 0x00, 0x04, 0xc0, 0x00, 0x02, 0x0b, 0x00, 0x00, 0x29, 0x04, 0xd0,
      0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1e, 0x00, 0x04, 0xcb, 0x00, 0x71, 0x05,
  };
  // www.example.com. A: a CNAME with 2 bytes after the target name inside its RDLENGTH; ldns
  // reads them as the start of the next record, which becomes a bogus CLASS4660 TYPE49331 record.
  const std::vector<uint8_t> trailing_rdata = {
      0x12, 0x34, 0x81, 0x80, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x03, 0x77, 0x77,
      0x77, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00,
      0x01, 0x00, 0x01, 0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x02, 0x58, 0x00, 0x11,
      0x03, 0x63, 0x64, 0x6e, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x6e, 0x65,
      0x74, 0x00, 0xc0, 0x2d, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x08, 0x04,
      0x65, 0x64, 0x67, 0x65, 0x00, 0xc0, 0x31, 0xc0, 0xb3, 0x12, 0x34, 0x81, 0x4a, 0x00, 0x01,
      0x00, 0x01, 0x00, 0x00, 0x00, 0x14, 0x00, 0x04, 0xc6, 0x33, 0x64, 0x07, 0x00, 0x00, 0x29,
      0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00,
      0x01, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00,
      0x01, 0x00, 0x00, 0x01, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00,
      0x04, 0xc0, 0x00, 0x02, 0x01, 0xc0, 0x0c, 0x00, 0x2e, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c,
      0x00, 0x5f, 0x00, 0x01, 0x0d, 0x02, 0x00, 0x00, 0x01, 0x2c, 0x65, 0x53, 0xf1, 0x00, 0x64,
      0xbb, 0x5a, 0x80, 0x30, 0x39, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63,
      0x6f, 0x6d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x80,
      0x00, 0x00, 0x00,
  };
  const auto q = WireName(kOriginal);
  for (const auto& [cand, msg] : {std::pair{WireName("api.example.com."), name_past_rdlength},
                                  std::pair{WireName("www.example.com."), trailing_rdata}}) {
    // ParseResponseLayout refuses both now (a CNAME's name must end at its RDLENGTH), so the
    // worker never offers them; SynthesizeAnswer's own check stays for what it is given.
    dns::ResponseLayout layout;
    EXPECT_EQ(dns::ParseResponseLayout(msg, layout), dns::LayoutStatus::kMalformed);
    EXPECT_EQ(ClassifyResponse(msg, cand, kA), CandidateState::kFailed);
    auto pkt = testing::Parse(msg);
    ASSERT_NE(pkt, nullptr);  // ldns takes the whole message, just not as it was sent
    const auto body = SynthesizeAnswer(q, kA, cand, msg, 3600);
    EXPECT_FALSE(body.ok());
    EXPECT_EQ(body.status().code(), absl::StatusCode::kInvalidArgument) << body.status();
  }
}

TEST(NegativeTtlTest, CapIsMinimumOverOriginalAndEarlierNxDomains) {
  const auto nx = [](const std::string& name, uint32_t soa_ttl, uint32_t minimum) {
    testing::MessageSpec s;
    s.qname = name;
    s.rcode = kNx;
    s.authority = {"cluster.local. " + std::to_string(soa_ttl) +
                   " IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 " +
                   std::to_string(minimum)};
    return testing::Build(s);
  };
  const auto original = nx("a.default.svc.cluster.local.", 30, 60);  // 30
  std::vector<CandidateResult> r(4);
  r[0] = {CandidateState::kNxDomain, nx("a.svc.cluster.local.", 100, 20)};  // 20
  r[1] = {CandidateState::kNxDomain, nx("a.cluster.local.", 100, 10)};      // 10
  r[2] = {CandidateState::kAnswer, {}};
  r[3] = {CandidateState::kNxDomain, nx("a.", 5, 5)};  // after the winner: irrelevant
  EXPECT_EQ(NegativeTtl(original), 30u);
  EXPECT_EQ(NegativeTtlCap(original, r, 2), 10u);
  EXPECT_EQ(NegativeTtlCap(original, r, 1), 20u);
  EXPECT_EQ(NegativeTtlCap(original, r, 0), 30u);
  EXPECT_EQ(NegativeTtlCap({}, r, 0), UINT32_MAX);
  testing::MessageSpec no_soa;
  no_soa.rcode = kNx;
  EXPECT_EQ(NegativeTtl(testing::Build(no_soa)), 0u);
}

// ---------------------------------------------------------------------------------------------
// Robustness: arbitrary bytes where names and responses are expected (run under ASan/UBSan).

TEST(SearchRewriteRobustnessTest, ArbitraryBytesAreSafeAndPlanAgreesWithPreCheck) {
  std::mt19937 rng(20240611);
  const auto s = Settings();
  SearchPathLearner::Options o;
  o.max_clients = 16;
  SearchPathLearner l = MakeLearner(o);
  const auto valid = WireName("a.b.default.svc.cluster.local.");
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> bytes(rng() % 300);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    if (i % 2 == 0 && !bytes.empty()) {
      // Mostly valid names with one corrupted byte reach deeper code.
      bytes = valid;
      bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng());
    }
    const SocketAddress c = Addr("10.0.0." + std::to_string(i % 40 + 1) + ":1");
    l.Observe(c, bytes, i % 3 ? kA : kAAAA, static_cast<uint8_t>(i % 4), i);
    (void)l.NamespaceView(c, i);
    const auto plan = PlanRewrite(bytes, kA, "default", s);
    EXPECT_EQ(plan.has_value(), MaybeExpansion(bytes, "default", s.zone_wire));
    if (plan) {
      for (const auto& cand : plan->candidates) EXPECT_LE(cand.size(), dns::kMaxNameWire);
    }
    const CandidateState st = ClassifyResponse(bytes, valid, kA);
    if (bytes.size() < dns::kHeaderSize) {
      EXPECT_EQ(st, CandidateState::kFailed);
    }
    (void)NegativeTtl(bytes);
    (void)SynthesizeAnswer(valid, kA, valid, bytes, 60);
  }
}

}  // namespace
}  // namespace nodedns::proxy
