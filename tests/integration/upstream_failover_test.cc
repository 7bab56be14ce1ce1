// Upstream health end to end (upstream/health.h): `nodedns serve` with two workers forwarding a
// zone to a dead upstream listed first (a ScriptedUpstream that never answers) and Knot second.
// The first misses pay the dead server's timeout until --upstream-max-fails marks it down; after
// that kdig gets its answers within a bound shorter than one try's timeout, the dead server is
// not asked again, and /metrics shows it down. Once it answers, a probe marks it up and queries
// start on it again. Skips without Knot (knotd) or kdig.
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/dns_builder.h"
#include "tests/testing/knot.h"
#include "tests/testing/net.h"
#include "tests/testing/nodedns_fixture.h"
#include "tests/testing/process.h"
#include "tests/testing/scripted_upstream.h"

namespace nodedns::integration {
namespace {

using nodedns::testing::Action;
using nodedns::testing::Build;
using nodedns::testing::BuildQuery;
using nodedns::testing::KnotServer;
using nodedns::testing::MessageSpec;
using nodedns::testing::ReplySpecFor;
using nodedns::testing::ScriptedUpstream;
using nodedns::testing::SeenQuery;
using nodedns::testing::UdpExchange;
using std::chrono::milliseconds;

constexpr char kKdig[] = "/usr/bin/kdig";

class UpstreamFailoverTest : public nodedns::testing::NodednsFixture {
 protected:
  UpstreamFailoverTest() : NodednsFixture(NODEDNS_BINARY) {}
  void SetUp() override {
    if (!nodedns::testing::HaveKnot() || access(kKdig, X_OK) != 0) {
      GTEST_SKIP() << "needs Knot DNS (" << nodedns::testing::KnotdPath() << ") and " << kKdig;
    }
    NodednsFixture::SetUp();
    const auto ports = nodedns::testing::FreePorts(1);
    ASSERT_EQ(ports.size(), 1u);
    ASSERT_NO_FATAL_FAILURE(knot_.Start(
        dir_ + "/knot", ports[0],
        {{"failover.test",
          "$ORIGIN failover.test.\n$TTL 300\n@ SOA ns hostmaster 1 7200 1800 86400 60\n@ NS ns\n"
          "ns A 192.0.2.53\n* A 192.0.2.1\n"}}));
  }
  void TearDown() override {
    NodednsFixture::TearDown();
    knot_.Stop();
  }
  // kdig over UDP, one try, `timeout_s` seconds: the answer's first A address, or "".
  std::string Kdig(const std::string& name, int timeout_s) {
    const std::string out = nodedns::testing::RunCommand(
        std::string(kKdig) + " @127.0.0.1 -p " + std::to_string(dns_port_) + " +notcp +retry=0 " +
        "+timeout=" + std::to_string(timeout_s) + " +short " + name + " A");
    return out.substr(0, out.find('\n'));
  }
  std::string UpLabel(uint16_t port) {
    return "{zone=\"failover.test\",upstream=\"127.0.0.1:" + std::to_string(port) + "\"}";
  }

  KnotServer knot_;
};

TEST_F(UpstreamFailoverTest, DeadFirstUpstreamIsMarkedDownSkippedAndBroughtBackByAProbe) {
  ScriptedUpstream dead([](const SeenQuery&) { return Action::Silent(); });
  const std::string zone = "failover.test=127.0.0.1:" + std::to_string(dead.port()) +
                           ",127.0.0.1:" + std::to_string(knot_.port());
  ASSERT_NO_FATAL_FAILURE(StartNodedns(
      knot_.port(),
      {"--forward", zone, "--search-rewrite", "off", "--coredns-metrics", "on",
       "--upstream-timeout", "2000", "--upstream-max-fails", "2", "--upstream-health-check", "200"},
      /*workers=*/2));

  // The first two misses each wait out a try on the dead server, then Knot answers.
  for (int i = 0; i < 2; ++i) {
    const std::string name = "first" + std::to_string(i) + ".failover.test.";
    EXPECT_EQ(Kdig(name, 5), "192.0.2.1") << name;
    EXPECT_EQ(dead.Count(name, false), 1) << name << " did not start on the dead server";
  }
  EXPECT_EQ(Metric("nodedns_upstream_up" + UpLabel(dead.port())), 0);
  EXPECT_EQ(Metric("nodedns_upstream_up" + UpLabel(knot_.port())), 1);
  EXPECT_EQ(Metric("nodedns_upstream_marked_down_total" + UpLabel(dead.port())), 1);

  // Later misses, on either worker, go straight to Knot: kdig's one-second bound is half a try's
  // timeout, and the dead server never sees them.
  for (int i = 0; i < 10; ++i) {
    const std::string name = "later" + std::to_string(i) + ".failover.test.";
    EXPECT_EQ(Kdig(name, 1), "192.0.2.1") << name << ": no answer within a second";
    EXPECT_EQ(dead.Count(name, false), 0) << name << " was sent to the server marked down";
  }

  // Probes of the dead server time out and are counted, CoreDNS's way too.
  const std::string to = "to=\"127.0.0.1:" + std::to_string(dead.port()) + "\"";
  const std::string failures =
      "coredns_proxy_healthcheck_failures_total{proxy_name=\"forward\"," + to + "}";
  for (int i = 0; i < 60 && Metric(failures) < 1; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_GE(Metric(failures), 1);
  EXPECT_GE(dead.Count(".", false), 1) << "no . NS probe reached the dead server";
  EXPECT_EQ(Metric("coredns_forward_healthcheck_broken_total"), 0);

  // The server comes back: a probe finds it, and queries start on it again.
  dead.set_script([](const SeenQuery& q) {
    MessageSpec spec = ReplySpecFor(q);
    if (q.qtype == 1) spec.answer = {q.name + " 300 IN A 192.0.2.99"};
    return Action::Reply(Build(spec));
  });
  const std::string up = "nodedns_upstream_up" + UpLabel(dead.port());
  for (int i = 0; i < 60 && Metric(up) != 1; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_EQ(Metric(up), 1) << "an answering server was not marked up\n" << Metrics();
  EXPECT_EQ(Kdig("back.failover.test.", 1), "192.0.2.99");
  EXPECT_EQ(dead.Count("back.failover.test.", false), 1);
}

}  // namespace
}  // namespace nodedns::integration
