// End-to-end tests of `nodedns serve` in front of a ScriptedUpstream that answers every query
// itself: the TCP limits for clients (RFC 7766 §6.2: idle timeout, queries in flight per
// connection; hostile_client_test.cc has the connection limit and the misbehaving clients),
// --force-tcp, and prefetch. Nothing here needs a real DNS
// server, so these run wherever the binary builds (the tests against Knot are in
// serve_integration_test.cc).
#include "tests/testing/scripted_upstream.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/dns_builder.h"
#include "tests/testing/net.h"
#include "tests/testing/nodedns_fixture.h"

namespace nodedns::integration {
namespace {

using nodedns::testing::Action;
using nodedns::testing::AllTtls;
using nodedns::testing::AnswerAddresses;
using nodedns::testing::Build;
using nodedns::testing::BuildQuery;
using nodedns::testing::Bytes;
using nodedns::testing::MessageSpec;
using nodedns::testing::MetricValue;
using nodedns::testing::Parse;
using nodedns::testing::RecvTcpMessage;
using nodedns::testing::ReplySpecFor;
using nodedns::testing::ScriptedUpstream;
using nodedns::testing::SeenQuery;
using nodedns::testing::SendAll;
using nodedns::testing::TcpConnect;
using nodedns::testing::TcpExchange;
using nodedns::testing::TcpFrame;
using nodedns::testing::UdpExchange;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint16_t kTypeA = 1;
constexpr uint8_t kRcodeNoError = 0;

struct Query {
  std::string name;
  uint16_t type = kTypeA;
  uint16_t bufsize = 0;  // 0: no EDNS; otherwise EDNS with BuildQuery's 1232
  bool dnssec = false;
  uint16_t id = 0x4242;
};
Bytes Wire(const Query& q) { return BuildQuery(q.name, q.type, q.bufsize != 0, q.dnssec, q.id); }

uint8_t Rcode(const Bytes& reply) { return reply.size() >= 4 ? reply[3] & 0xf : 0xff; }
uint16_t Id(const Bytes& msg) { return msg.size() >= 2 ? uint16_t(msg[0] << 8 | msg[1]) : 0; }

// ---------------------------------------------------------------------------------------------
// An upstream that answers every query itself after `delay`: an A query with `kFakeAddress` and
// the current TTL, anything else with an empty NOERROR (a ScriptedUpstream with that script).

constexpr char kFakeAddress[] = "192.0.2.99";

class FakeUpstream {
 public:
  explicit FakeUpstream(milliseconds delay, uint32_t ttl = 300)
      : ttl_(ttl), upstream_([this, delay](const SeenQuery& q) {
          MessageSpec spec = ReplySpecFor(q);
          if (q.qtype == kTypeA) {
            spec.answer = {q.name + " " + std::to_string(ttl_.load()) + " IN A " + kFakeAddress};
          }
          return Action::Reply(Build(spec), delay);
        }) {}
  uint16_t port() const { return upstream_.port(); }
  void set_ttl(uint32_t ttl) { ttl_ = ttl; }
  int queries() const { return upstream_.queries(); }
  int max_outstanding() const { return upstream_.max_outstanding(); }
  int Count(const std::string& name, bool tcp) const { return upstream_.Count(name, tcp); }

 private:
  std::atomic<uint32_t> ttl_;
  ScriptedUpstream upstream_;
};

// ---------------------------------------------------------------------------------------------
// The fixture: one nodedns per test (NodednsFixture); each test starts its own upstream.

class ScriptedUpstreamTest : public nodedns::testing::NodednsFixture {
 protected:
  ScriptedUpstreamTest() : NodednsFixture(NODEDNS_BINARY) {}
};

// ---------------------------------------------------------------------------------------------
// TCP limits (RFC 7766 §6.2), against the scripted upstream.

// Waits until the server closes `fd` (EOF or reset); returns how long that took, or nothing if the
// connection is still open after `timeout`. Data that arrives meanwhile is discarded.
std::optional<milliseconds> WaitForClose(int fd, milliseconds timeout) {
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) != 1) return std::nullopt;
    uint8_t buf[4096];
    if (recv(fd, buf, sizeof buf, 0) <= 0) {
      return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    }
  }
}

TEST_F(ScriptedUpstreamTest, ClosesTcpConnectionsIdleForTheIdleTimeout) {
  FakeUpstream upstream(milliseconds(0));
  // 1 s: long enough that the gaps between a busy connection's queries below (0.4 s) leave
  // 0.6 s of slack on a loaded machine, short against the 10 s default.
  ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream.port(), {"--tcp-idle-timeout", "1"}, 2));
  // A connection that never sends a query is closed after 1 s, not before and not never. (The
  // timer may fire up to one loop turn early as the client measures it: 0.8 s.)
  const int idle = TcpConnect(dns_port_);
  ASSERT_GE(idle, 0);
  const auto closed = WaitForClose(idle, milliseconds(8000));
  close(idle);
  ASSERT_TRUE(closed.has_value()) << "idle connection still open after 8 s";
  EXPECT_GE(*closed, milliseconds(800));
  EXPECT_LT(*closed, milliseconds(5000));
  // A connection in use stays open: each query restarts the clock.
  const int busy = TcpConnect(dns_port_);
  ASSERT_GE(busy, 0);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(SendAll(busy, TcpFrame(Wire({"busy.example.", kTypeA, 0, false, uint16_t(i)}))));
    auto r = RecvTcpMessage(busy, Clock::now() + milliseconds(3000));
    ASSERT_TRUE(r.has_value()) << "query " << i << ": connection closed while in use";
    EXPECT_EQ(Id(*r), i);
    std::this_thread::sleep_for(milliseconds(400));  // 4 × 400 ms: longer than one timeout
  }
  // Then, left alone, it is closed within the timeout (about 0.6 s of it is left).
  const auto later = WaitForClose(busy, milliseconds(8000));
  close(busy);
  ASSERT_TRUE(later.has_value()) << "connection still open 8 s after its last query";
  EXPECT_LT(*later, milliseconds(5000));
}

TEST_F(ScriptedUpstreamTest, UpstreamSeesAtMostTheInflightLimitPerTcpConnection) {
  // Every upstream answer takes 300 ms, so that queries pile up unless the limit holds them back.
  FakeUpstream upstream(milliseconds(300));
  ASSERT_NO_FATAL_FAILURE(
      StartNodedns(upstream.port(), {"--tcp-max-inflight", "3", "--upstream-timeout", "3000"}));
  constexpr int kQueries = 20;
  Bytes all;
  for (int i = 0; i < kQueries; ++i) {  // distinct names: no coalescing, no cache hits
    const Bytes f = TcpFrame(
        Wire({"q" + std::to_string(i) + ".inflight.example.", kTypeA, 0, false, uint16_t(i)}));
    all.insert(all.end(), f.begin(), f.end());
  }
  const int fd = TcpConnect(dns_port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, all));
  const auto deadline = Clock::now() + milliseconds(15000);
  std::set<uint16_t> ids;
  for (int i = 0; i < kQueries; ++i) {
    auto r = RecvTcpMessage(fd, deadline);
    ASSERT_TRUE(r.has_value()) << "only " << i << " of " << kQueries << " replies";
    EXPECT_EQ(Rcode(*r), kRcodeNoError);
    EXPECT_EQ(AnswerAddresses(*r), std::vector<std::string>{kFakeAddress});
    EXPECT_TRUE(ids.insert(Id(*r)).second) << "two replies for ID " << Id(*r);
  }
  close(fd);
  EXPECT_EQ(ids.size(), size_t{kQueries});
  EXPECT_EQ(upstream.queries(), kQueries);
  EXPECT_LE(upstream.max_outstanding(), 3) << "more than --tcp-max-inflight queries upstream";
  EXPECT_EQ(upstream.max_outstanding(), 3) << "pipelined queries were not sent in parallel";
}

// --force-tcp ZONE: that zone's misses reach the upstream over TCP only, whatever the client used;
// other zones' misses go over UDP. One scripted upstream serves both zones and records how each
// query arrived.
TEST_F(ScriptedUpstreamTest, ForceTcpZoneReachesItsUpstreamOverTcpOthersOverUdp) {
  FakeUpstream upstream(milliseconds(0));
  const std::string up = "127.0.0.1:" + std::to_string(upstream.port());
  ASSERT_NO_FATAL_FAILURE(
      StartNodedns(upstream.port(),
                   {"--forward", "tcponly.example=" + up, "--force-tcp", "tcponly.example"}, 2));
  struct Case {
    std::string name;
    bool client_tcp;
    bool want_upstream_tcp;
  };
  const std::vector<Case> cases = {
      {"a.tcponly.example.", false, true}, {"B.TcpOnly.Example.", true, true},
      {"tcponly.example.", false, true},   {"a.udp.example.", false, false},
      {"b.udp.example.", true, false},     {"xtcponly.example.", false, false},  // not below it
  };
  uint16_t id = 700;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name + (c.client_tcp ? " (client tcp)" : " (client udp)"));
    const Bytes q = Wire({c.name, kTypeA, 1232, false, ++id});
    auto r = c.client_tcp ? TcpExchange(dns_port_, q) : UdpExchange(dns_port_, q);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(Id(*r), id);
    EXPECT_EQ(AnswerAddresses(*r), std::vector<std::string>{kFakeAddress});
    std::string lower = c.name;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    EXPECT_EQ(upstream.Count(lower, true), c.want_upstream_tcp ? 1 : 0) << "queries over TCP";
    EXPECT_EQ(upstream.Count(lower, false), c.want_upstream_tcp ? 0 : 1) << "queries over UDP";
  }
  EXPECT_EQ(upstream.queries(), static_cast<int>(cases.size()));
}

// Prefetch (docs/architecture.md): a hit in the last 10 % of an entry's lifetime, on an entry hit
// at least --prefetch-hits times, refreshes it in the background exactly once; the client is
// answered from the cache at once, and the refreshed entry carries the upstream's new TTL.
// TTL 20 makes "late" the last 2 s: the late hits below get 1.7 s to arrive before the entry
// expires, and nothing waits on a fixed sleep for the refresh.
TEST_F(ScriptedUpstreamTest, LateHitRefreshesPopularEntryOnceInTheBackground) {
  FakeUpstream upstream(milliseconds(0), /*ttl=*/20);
  ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream.port(), {"--prefetch-hits", "2"}));
  const std::string name = "popular.example.";
  uint16_t id = 800;
  auto ask = [&] { return UdpExchange(dns_port_, Wire({name, kTypeA, 0, false, ++id})); };
  auto first = ask();  // the miss that stores the entry (TTL 20)
  // Taken after the reply: the entry is at least this old at any later time.
  const auto stored = Clock::now();
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(AllTtls(Parse(*first).get()), std::vector<uint32_t>{20});
  // Two early hits reach the threshold but are not late: no refresh.
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(ask().has_value());
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(upstream.queries(), 1) << "refreshed before the entry was late";
  EXPECT_EQ(Metric("nodedns_prefetches_total"), 0);
  // The upstream's data changes; then a hit 18.3 s into the 20 s lifetime (late: past 18 s).
  upstream.set_ttl(120);
  std::this_thread::sleep_until(stored + milliseconds(18300));
  auto late = ask();
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(AnswerAddresses(*late), std::vector<std::string>{kFakeAddress});
  const auto late_ttls = AllTtls(Parse(*late).get());
  ASSERT_EQ(late_ttls.size(), 1u);
  // 20 less the whole seconds elapsed (18 or 19): from the cache, not the upstream's 120.
  EXPECT_LE(late_ttls[0], 2u) << "not served from the cache";
  EXPECT_GE(late_ttls[0], 1u);
  // More late hits meanwhile: the refresh is claimed once per entry.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ask().has_value());
  // The refresh's answer arrives in the background: wait for it (bounded), then a while longer
  // so that a second refresh would have been seen too.
  for (const auto until = Clock::now() + milliseconds(10000);
       upstream.queries() < 2 && Clock::now() < until;) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(upstream.queries(), 2) << "one background refresh expected";
  EXPECT_EQ(upstream.Count(name, false), 2);
  std::string m;
  for (const auto until = Clock::now() + milliseconds(10000); Clock::now() < until;) {
    m = Metrics();  // the refresh is counted once its answer is stored
    if (MetricValue(m, "nodedns_prefetches_total") >= 1) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(MetricValue(m, "nodedns_prefetches_total"), 1);
  EXPECT_EQ(MetricValue(m, "nodedns_upstream_queries_total"), 2);
  EXPECT_EQ(MetricValue(m, "nodedns_cache_misses_total"), 1) << "the late hits were misses";
  // Past the old expiry, the entry is the refreshed one: a hit with the new TTL (less the few
  // seconds since the refresh).
  std::this_thread::sleep_until(stored + milliseconds(21000));
  auto refreshed = ask();
  ASSERT_TRUE(refreshed.has_value());
  const auto ttls = AllTtls(Parse(*refreshed).get());
  ASSERT_EQ(ttls.size(), 1u);
  EXPECT_LE(ttls[0], 120u);
  EXPECT_GE(ttls[0], 110u);
  m = Metrics();
  EXPECT_EQ(MetricValue(m, "nodedns_upstream_queries_total"), 2);
  EXPECT_EQ(MetricValue(m, "nodedns_cache_misses_total"), 1);
  EXPECT_EQ(upstream.queries(), 2);
}

}  // namespace
}  // namespace nodedns::integration
