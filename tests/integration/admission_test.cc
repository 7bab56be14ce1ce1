// What `nodedns serve` admits, end to end against a ScriptedUpstream: --allow (no open resolver;
// REFUSED over UDP, closed at accept over TCP), queried by kdig and hand-built messages from
// loopback sources the test picks (127.0.0.1 and 127.0.0.2).
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
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
using nodedns::testing::MessageSpec;
using nodedns::testing::ReplySpecFor;
using nodedns::testing::RunCommand;
using nodedns::testing::ScriptedUpstream;
using nodedns::testing::SeenQuery;
using nodedns::testing::TcpExchange;
using nodedns::testing::UdpExchange;
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

}  // namespace
}  // namespace nodedns::integration
