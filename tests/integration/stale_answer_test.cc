// RFC 8767 §5's timers end to end: `nodedns serve` in front of a ScriptedUpstream that answers a
// name once with a short TTL and then goes silent. A client asking for the expired name gets the
// stale answer when the client response timer runs out, while the upstream query is still out;
// once that query failed, the name is answered stale at once, without asking upstream, until the
// failure recheck timer ends. Stale answers carry Extended DNS Error 3 (RFC 8914) for clients that
// sent EDNS. docs/reliability.md describes the behaviour.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/dns_builder.h"
#include "tests/testing/net.h"
#include "tests/testing/nodedns_fixture.h"
#include "tests/testing/scripted_upstream.h"

namespace nodedns::integration {
namespace {

using nodedns::testing::Action;
using nodedns::testing::AllTtls;
using nodedns::testing::AnswerAddresses;
using nodedns::testing::Build;
using nodedns::testing::BuildQuery;
using nodedns::testing::Bytes;
using nodedns::testing::MessageSpec;
using nodedns::testing::Parse;
using nodedns::testing::RecvDatagram;
using nodedns::testing::ReplySpecFor;
using nodedns::testing::ScriptedUpstream;
using nodedns::testing::SeenQuery;
using nodedns::testing::UdpExchange;
using nodedns::testing::UdpSocketTo;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr uint16_t kTypeA = 1;
constexpr char kName[] = "slow.example.";
const char kClientTimeout[] = "nodedns_stale_answers_total{reason=\"client_timeout\"}";
const char kRecheck[] = "nodedns_stale_answers_total{reason=\"failure_recheck\"}";

// The last option of a reply's OPT record (FinishReply writes OPT last, with at most one option):
// an EDE of INFO-CODE 3 is the six bytes 00 0f 00 02 00 03.
bool HasStaleEde(const Bytes& reply) {
  static const Bytes kEde = {0, 15, 0, 2, 0, 3};
  return reply.size() > kEde.size() && std::equal(kEde.begin(), kEde.end(), reply.end() - 6);
}

class StaleAnswerTest : public nodedns::testing::NodednsFixture {
 protected:
  StaleAnswerTest()
      : NodednsFixture(NODEDNS_BINARY), upstream_([this](const SeenQuery& q) {
          if (!answering_) return Action::Silent();
          MessageSpec spec = ReplySpecFor(q);
          spec.answer = {q.name + " 1 IN A 192.0.2.7"};
          return Action::Reply(Build(spec));
        }) {}

  // Caches kName (TTL 1 s), waits until it expired and silences the upstream.
  void StartExpired(const std::vector<std::string>& flags) {
    std::vector<std::string> all = {"--search-rewrite", "off", "--stale-ttl", "60",
                                    "--upstream-tries", "1"};
    all.insert(all.end(), flags.begin(), flags.end());
    ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream_.port(), all));
    auto fresh = UdpExchange(dns_port_, BuildQuery(kName, kTypeA, true));
    ASSERT_TRUE(fresh.has_value());
    ASSERT_EQ(AnswerAddresses(*fresh), std::vector<std::string>{"192.0.2.7"});
    ASSERT_FALSE(HasStaleEde(*fresh));
    answering_ = false;
    std::this_thread::sleep_for(milliseconds(1300));  // past the TTL
  }
  int Asked() { return upstream_.Count(kName, false); }

  std::atomic<bool> answering_{true};
  ScriptedUpstream upstream_;
};

// The client response timer: the stale answer comes when the timer runs out (300 ms), long before
// the upstream's try does (4 s); a second client joining the same upstream query is not made to
// wait again; a client without EDNS gets the answer without OPT.
TEST_F(StaleAnswerTest, ClientResponseTimerAnswersStaleWhileTheUpstreamIsStillAsked) {
  ASSERT_NO_FATAL_FAILURE(
      StartExpired({"--upstream-timeout", "4000", "--stale-answer-client-timeout", "300"}));
  const int asked = Asked();
  const auto start = Clock::now();
  auto stale = UdpExchange(dns_port_, BuildQuery(kName, kTypeA, true, false, 31), 3000);
  const auto waited = Clock::now() - start;
  ASSERT_TRUE(stale.has_value()) << "no answer before the upstream's try ran out";
  EXPECT_LT(waited, milliseconds(3000));
  EXPECT_EQ(AnswerAddresses(*stale), std::vector<std::string>{"192.0.2.7"});
  EXPECT_EQ(AllTtls(Parse(*stale).get()), std::vector<uint32_t>{30});  // RFC 8767 §4
  EXPECT_TRUE(HasStaleEde(*stale));
  // The upstream query is still out: a client without EDNS joins it and is answered at once.
  auto plain = UdpExchange(dns_port_, BuildQuery(kName, kTypeA, false, false, 32), 1000);
  ASSERT_TRUE(plain.has_value()) << "the second client waited for the upstream again";
  EXPECT_EQ(AnswerAddresses(*plain), std::vector<std::string>{"192.0.2.7"});
  EXPECT_EQ((*plain)[0] << 8 | (*plain)[1], 32);
  auto pkt = Parse(*plain);
  ASSERT_NE(pkt, nullptr);
  EXPECT_FALSE(ldns_pkt_edns(pkt.get()));
  EXPECT_EQ(Asked(), asked + 1) << "the stale answers did not come from one upstream query";
  EXPECT_EQ(Metric(kClientTimeout), 2);
}

// The failure recheck timer: once the upstream query failed, the name is answered stale at once
// and not asked again for --stale-refresh-time seconds; then it is asked again, and a fresh
// answer ends the stale ones.
TEST_F(StaleAnswerTest, FailedNameIsAnsweredStaleWithoutAskingUntilTheRecheckTimerEnds) {
  ASSERT_NO_FATAL_FAILURE(
      StartExpired({"--upstream-timeout", "300", "--stale-answer-client-timeout", "0",
                    "--stale-refresh-time", "3"}));
  const int asked = Asked();
  auto first = UdpExchange(dns_port_, BuildQuery(kName, kTypeA, true), 3000);
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(HasStaleEde(*first));  // after the failure (no client timer here)
  ASSERT_EQ(Asked(), asked + 1);
  for (int i = 0; i < 5; ++i) {
    auto again = UdpExchange(dns_port_, BuildQuery(kName, kTypeA, true), 3000);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(AnswerAddresses(*again), std::vector<std::string>{"192.0.2.7"});
    EXPECT_TRUE(HasStaleEde(*again));
  }
  EXPECT_EQ(Asked(), asked + 1) << "asked upstream again within the recheck window";
  EXPECT_EQ(Metric(kRecheck), 5);
  // After the window the name is asked again; the upstream is back, the answer is fresh.
  answering_ = true;
  std::this_thread::sleep_for(milliseconds(3200));
  auto fresh = UdpExchange(dns_port_, BuildQuery(kName, kTypeA, true), 3000);
  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(Asked(), asked + 2);
  EXPECT_FALSE(HasStaleEde(*fresh));
  EXPECT_EQ(AllTtls(Parse(*fresh).get()), std::vector<uint32_t>{1});
  EXPECT_EQ(Metric(kRecheck), 5);
}

// With both timers off, stale answers come only when the upstream query failed, and each client
// query asks again: the behaviour the timers exist to avoid, kept for who asks for it.
TEST_F(StaleAnswerTest, WithTimersOffEveryQueryWaitsForTheUpstreamToFail) {
  ASSERT_NO_FATAL_FAILURE(
      StartExpired({"--upstream-timeout", "300", "--stale-answer-client-timeout", "0",
                    "--stale-refresh-time", "0"}));
  const int asked = Asked();
  for (int i = 0; i < 3; ++i) {
    auto stale = UdpExchange(dns_port_, BuildQuery(kName, kTypeA, true), 3000);
    ASSERT_TRUE(stale.has_value());
    EXPECT_TRUE(HasStaleEde(*stale));
  }
  EXPECT_EQ(Asked(), asked + 3);
  EXPECT_EQ(Metric(kRecheck), 0);
  EXPECT_EQ(Metric(kClientTimeout), 0);
  EXPECT_EQ(Metric("nodedns_stale_answers_total{reason=\"upstream_failed\"}"), 3);
}

}  // namespace
}  // namespace nodedns::integration
