// What `nodedns serve` admits, end to end against a ScriptedUpstream: --allow (no open resolver;
// REFUSED over UDP, closed at accept over TCP), --max-waiting-queries (SERVFAIL at once past the
// worker's cap, hits still served) and --client-miss-share (a flooding client held to its share
// while another is answered; GET /audit names it). Queried by kdig and hand-built messages from
// loopback sources the test picks (127.0.0.1 and 127.0.0.2).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/dns_builder.h"
#include "tests/testing/net.h"
#include "tests/testing/nodedns_fixture.h"
#include "tests/testing/process.h"
#include "tests/testing/scripted_upstream.h"

namespace nodedns::integration {
namespace {

using nodedns::testing::Action;
using nodedns::testing::Build;
using nodedns::testing::BuildQuery;
using nodedns::testing::Bytes;
using nodedns::testing::HttpGet;
using nodedns::testing::MessageSpec;
using nodedns::testing::RecvDatagram;
using nodedns::testing::ReplySpecFor;
using nodedns::testing::RunCommand;
using nodedns::testing::ScriptedUpstream;
using nodedns::testing::SeenQuery;
using nodedns::testing::TcpExchange;
using nodedns::testing::UdpExchange;
using nodedns::testing::UdpSocketTo;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint16_t kTypeA = 1;
constexpr char kFakeAddress[] = "192.0.2.99";

std::string KdigPath() {
  const char* path = getenv("NODEDNS_TEST_KDIG");
  return path ? path : "/usr/bin/kdig";
}

// Answers every A query with kFakeAddress after `delay`.
nodedns::testing::Script Answering(milliseconds delay) {
  return [delay](const SeenQuery& q) {
    MessageSpec spec = ReplySpecFor(q);
    if (q.qtype == kTypeA) spec.answer = {q.name + " 300 IN A " + kFakeAddress};
    return Action::Reply(Build(spec), delay);
  };
}

// Names starting with "fast." are answered at once, every other name after `slow`.
nodedns::testing::Script SlowExceptFast(milliseconds slow) {
  return [slow](const SeenQuery& q) {
    MessageSpec spec = ReplySpecFor(q);
    if (q.qtype == kTypeA) spec.answer = {q.name + " 300 IN A " + kFakeAddress};
    return Action::Reply(Build(spec), q.name.rfind("fast.", 0) == 0 ? milliseconds(0) : slow);
  };
}

uint8_t Rcode(const Bytes& m) { return m.size() >= 4 ? m[3] & 0xf : 0xff; }
uint16_t Id(const Bytes& m) { return m.size() >= 2 ? uint16_t(m[0] << 8 | m[1]) : 0; }

// A UDP socket bound to `source` (a loopback address) and connected to 127.0.0.1:port.
int UdpSocketFrom(const char* source, uint16_t port) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, source, &a.sin_addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) return -1;
  return fd;
}

bool Send(int fd, const Bytes& m) { return send(fd, m.data(), m.size(), 0) == ssize_t(m.size()); }

class AdmissionTest : public nodedns::testing::NodednsFixture {
 protected:
  AdmissionTest() : NodednsFixture(NODEDNS_BINARY) {}
  void SetUp() override {
    NodednsFixture::SetUp();
    if (access(KdigPath().c_str(), X_OK) != 0) GTEST_SKIP() << "needs kdig: " << KdigPath();
  }
  // kdig's output for `name` A from `source` (over TCP with `tcp`).
  std::string Kdig(const std::string& name, const std::string& source, bool tcp = false) {
    return RunCommand(KdigPath() + " @127.0.0.1 -p " + std::to_string(dns_port_) + " -b " + source +
                      (tcp ? " +tcp" : "") + " +retry=0 +timeout=2 " + name + " A");
  }
};

TEST_F(AdmissionTest, DefaultAllowsLoopbackClients) {
  ScriptedUpstream upstream(Answering(milliseconds(0)));
  ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream.port()));
  const std::string out = Kdig("default.example.", "127.0.0.1");
  EXPECT_NE(out.find("status: NOERROR"), std::string::npos) << out;
  EXPECT_NE(out.find(kFakeAddress), std::string::npos) << out;
  const std::string tcp = Kdig("default-tcp.example.", "127.0.0.1", true);
  EXPECT_NE(tcp.find("status: NOERROR"), std::string::npos) << tcp;
  EXPECT_EQ(Metric("nodedns_not_allowed_queries_total"), 0);
  EXPECT_EQ(Metric("nodedns_tcp_not_allowed_connections_total"), 0);
}

TEST_F(AdmissionTest, SourcesOutsideAllowAreRefusedOverUdpAndClosedOverTcp) {
  ScriptedUpstream upstream(Answering(milliseconds(0)));
  // 127.0.0.2 only: 127.0.0.1, the usual loopback source, is outside.
  ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream.port(), {"--allow", "127.0.0.2/32"}));
  const std::string refused = Kdig("outsider.example.", "127.0.0.1");
  EXPECT_NE(refused.find("status: REFUSED"), std::string::npos) << refused;
  // The question is echoed (kdig prints it in the QUESTION SECTION), and nothing went upstream.
  EXPECT_NE(refused.find("QUESTION SECTION:\n;; outsider.example."), std::string::npos) << refused;
  EXPECT_EQ(upstream.queries(), 0);
  // With EDNS, the REFUSED carries an OPT record, as every reply to an EDNS query does.
  const auto edns = UdpExchange(dns_port_, BuildQuery("edns.example.", kTypeA, true, false, 7));
  ASSERT_TRUE(edns.has_value());
  ASSERT_GE(edns->size(), 12u);
  EXPECT_EQ((*edns)[3] & 0xf, 5) << "not REFUSED";
  EXPECT_EQ((*edns)[11], 1) << "no OPT record in the additional section";
  // TCP: closed at accept, no reply.
  EXPECT_FALSE(TcpExchange(dns_port_, BuildQuery("tcp.example.", kTypeA, false, false, 8), 3000)
                   .has_value());
  // The allowed source is answered, over both transports.
  const std::string allowed = Kdig("insider.example.", "127.0.0.2");
  EXPECT_NE(allowed.find("status: NOERROR"), std::string::npos) << allowed;
  EXPECT_NE(allowed.find(kFakeAddress), std::string::npos) << allowed;
  const std::string allowed_tcp = Kdig("insider-tcp.example.", "127.0.0.2", true);
  EXPECT_NE(allowed_tcp.find("status: NOERROR"), std::string::npos) << allowed_tcp;
  EXPECT_EQ(upstream.queries(), 2);
  EXPECT_EQ(Metric("nodedns_not_allowed_queries_total"), 2);
  EXPECT_EQ(Metric("nodedns_tcp_not_allowed_connections_total"), 1);
  EXPECT_EQ(Metric("nodedns_replies_total{rcode=\"REFUSED\"}"), 2);
}

TEST_F(AdmissionTest, AnyOpensIt) {
  ScriptedUpstream upstream(Answering(milliseconds(0)));
  ASSERT_NO_FATAL_FAILURE(
      StartNodedns(upstream.port(), {"--allow", "192.0.2.0/24", "--allow", "any"}));
  const std::string out = Kdig("open.example.", "127.0.0.1");
  EXPECT_NE(out.find("status: NOERROR"), std::string::npos) << out;
  EXPECT_EQ(Metric("nodedns_not_allowed_queries_total"), 0);
}

// --max-waiting-queries: with the worker's cap of clients waiting for upstream reached, a new miss
// gets SERVFAIL at once and never goes upstream; a cached name is still answered; once the
// waiting clients have their answers, misses are admitted again.
TEST_F(AdmissionTest, OverMaxWaitingQueriesNewMissesGetServfailAtOnceAndHitsAreServed) {
  ScriptedUpstream upstream(SlowExceptFast(milliseconds(2000)));
  ASSERT_NO_FATAL_FAILURE(StartNodedns(
      upstream.port(),
      {"--max-waiting-queries", "5", "--client-miss-share", "100", "--upstream-timeout", "5000"}));
  const auto cached =
      UdpExchange(dns_port_, BuildQuery("fast.cached.example.", kTypeA, false, false, 1));
  ASSERT_TRUE(cached.has_value());
  ASSERT_EQ(Rcode(*cached), 0);
  const int fd = UdpSocketTo(dns_port_);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Send(fd, BuildQuery("w" + std::to_string(i) + ".slow.example.", kTypeA, false,
                                    false, uint16_t(100 + i))));
  }
  // Five clients wait once the upstream holds their five queries.
  for (int i = 0; i < 200 && upstream.queries() < 6; ++i)
    std::this_thread::sleep_for(milliseconds(10));
  ASSERT_EQ(upstream.queries(), 6) << "the five misses did not reach the upstream";
  const auto start = Clock::now();
  const auto shed =
      UdpExchange(dns_port_, BuildQuery("over.slow.example.", kTypeA, true, false, 7));
  ASSERT_TRUE(shed.has_value());
  EXPECT_EQ(Rcode(*shed), 2) << "not SERVFAIL";
  // "At once": an answer through the upstream takes 2 s.
  EXPECT_LT(Clock::now() - start, milliseconds(1500));
  ASSERT_GE(shed->size(), 12u);
  EXPECT_EQ((*shed)[11], 1) << "no OPT in the SERVFAIL to an EDNS query";
  const auto shed_tcp =
      TcpExchange(dns_port_, BuildQuery("tcp.slow.example.", kTypeA, false, false, 8));
  ASSERT_TRUE(shed_tcp.has_value());
  EXPECT_EQ(Rcode(*shed_tcp), 2);
  const auto hit =
      UdpExchange(dns_port_, BuildQuery("fast.cached.example.", kTypeA, false, false, 9));
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(Rcode(*hit), 0) << "a cache hit was turned away";
  EXPECT_EQ(upstream.queries(), 6) << "a shed miss went upstream";
  EXPECT_EQ(Metric("nodedns_shed_misses_total{reason=\"max_waiting\"}"), 2);
  EXPECT_EQ(Metric("nodedns_shed_misses_total{reason=\"client_share\"}"), 0);
  // The five waiting clients get their answers.
  for (int i = 0; i < 5; ++i) {
    const auto r = RecvDatagram(fd, 6000);
    ASSERT_TRUE(r.has_value()) << i << " of the waiting clients answered";
    EXPECT_EQ(Rcode(*r), 0);
  }
  close(fd);
  // Released: a new miss waits for the upstream again and is answered.
  const auto again =
      UdpExchange(dns_port_, BuildQuery("again.slow.example.", kTypeA, false, false, 10), 6000);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(Rcode(*again), 0);
  EXPECT_EQ(Metric("nodedns_shed_misses_total{reason=\"max_waiting\"}"), 2);
}

// --client-miss-share: one client flooding random-subdomain misses against a slow upstream keeps
// its share (25% of 40: 10 waiting) and gets SERVFAIL at once past it, its hits still answered,
// while another client's misses wait and are answered; GET /audit and /audit.txt name the flooder.
TEST_F(AdmissionTest, AFloodingClientIsHeldToItsShareWhileAnotherIsAnswered) {
  ScriptedUpstream upstream(SlowExceptFast(milliseconds(1500)));
  ASSERT_NO_FATAL_FAILURE(StartNodedns(
      upstream.port(),
      {"--max-waiting-queries", "40", "--client-miss-share", "25", "--upstream-timeout", "5000"}));
  const auto cached =
      UdpExchange(dns_port_, BuildQuery("fast.cached.example.", kTypeA, false, false, 1));
  ASSERT_TRUE(cached.has_value());
  const int flood = UdpSocketFrom("127.0.0.1", dns_port_);
  const int other = UdpSocketFrom("127.0.0.2", dns_port_);
  ASSERT_GE(flood, 0);
  ASSERT_GE(other, 0);
  constexpr int kFlood = 30;
  for (int i = 0; i < kFlood; ++i) {
    ASSERT_TRUE(Send(flood, BuildQuery("r" + std::to_string(i * 7919 % 10007) + ".flood.example.",
                                       kTypeA, false, false, uint16_t(i))));
  }
  // The 20 over the share come back at once as SERVFAIL (the upstream takes 1.5 s).
  int servfail = 0;
  const auto start = Clock::now();
  while (servfail < kFlood - 10 && Clock::now() - start < milliseconds(1000)) {
    const auto r = RecvDatagram(flood, 200);
    if (r.has_value() && Rcode(*r) == 2) ++servfail;
  }
  EXPECT_EQ(servfail, kFlood - 10);
  // Its hits are served meanwhile (from the same source).
  ASSERT_TRUE(Send(flood, BuildQuery("fast.cached.example.", kTypeA, false, false, 500)));
  const auto hit = RecvDatagram(flood, 1000);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(Id(*hit), 500);
  EXPECT_EQ(Rcode(*hit), 0);
  // The other client's misses wait for the upstream like any other and are answered.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Send(other, BuildQuery("o" + std::to_string(i) + ".other.example.", kTypeA, false,
                                       false, uint16_t(1000 + i))));
  }
  for (int i = 0; i < 5; ++i) {
    const auto r = RecvDatagram(other, 6000);
    ASSERT_TRUE(r.has_value()) << "the other client's miss " << i << " unanswered";
    EXPECT_EQ(Rcode(*r), 0) << "the other client's miss " << i << " was turned away";
  }
  // The flooder's admitted ten are answered too.
  int answered = 0;
  for (int i = 0; i < 10; ++i) {
    const auto r = RecvDatagram(flood, 6000);
    if (r.has_value() && Rcode(*r) == 0) ++answered;
  }
  EXPECT_EQ(answered, 10);
  close(flood);
  close(other);
  EXPECT_EQ(Metric("nodedns_shed_misses_total{reason=\"client_share\"}"), kFlood - 10);
  EXPECT_EQ(Metric("nodedns_shed_misses_total{reason=\"max_waiting\"}"), 0);
  // Workers publish the top list every second.
  std::string audit;
  for (int i = 0; i < 40; ++i) {
    audit = HttpGet(health_port_, "/audit").value_or("");
    if (audit.find("\"shed\":[{") != std::string::npos) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_NE(audit.find("\"shed\":[{\"client\":\"127.0.0.1\",\"misses\":20,\"client_share\":20,"
                       "\"error\":0}]"),
            std::string::npos)
      << audit;
  EXPECT_EQ(audit.rfind("{\"version\":1,", 0), 0u) << audit;
  const std::string table = HttpGet(health_port_, "/audit.txt").value_or("");
  EXPECT_NE(table.find("127.0.0.1"), std::string::npos) << table;
  EXPECT_EQ(table.find("127.0.0.2"), std::string::npos) << table;
}

}  // namespace
}  // namespace nodedns::integration
