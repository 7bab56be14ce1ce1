// Overload shedding (proxy/overload.h) end to end: `nodedns serve` with one worker, stopped with
// SIGSTOP while a client queues hundreds of queries for a cached name in its socket, then resumed.
// The backlog is a burst under the default settings (it drains within the interval: every query
// answered) and a standing queue under a zero interval (all but the first batch are older than
// the target: dropped unanswered and counted). Kernel receive timestamps (SO_TIMESTAMPNS) are
// what the delays are measured from, so this also checks that loopback datagrams carry them.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

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
#include "tests/testing/scripted_upstream.h"

namespace nodedns::integration {
namespace {

using nodedns::testing::Action;
using nodedns::testing::Build;
using nodedns::testing::BuildQuery;
using nodedns::testing::Bytes;
using nodedns::testing::MessageSpec;
using nodedns::testing::RecvDatagram;
using nodedns::testing::ReplySpecFor;
using nodedns::testing::ScriptedUpstream;
using nodedns::testing::SeenQuery;
using nodedns::testing::UdpExchange;
using nodedns::testing::UdpSocketTo;
using std::chrono::milliseconds;

constexpr uint16_t kTypeA = 1;
// Under 256: a client socket's default receive buffer (212,992 bytes) holds 256 small replies,
// and they arrive at once.
constexpr int kBacklog = 200;
const char kShed[] = "nodedns_shed_queries_total{reason=\"queue_delay\"}";

class OverloadTest : public nodedns::testing::NodednsFixture {
 protected:
  OverloadTest()
      : NodednsFixture(NODEDNS_BINARY), upstream_([](const SeenQuery& q) {
          MessageSpec spec = ReplySpecFor(q);
          spec.answer = {q.name + " 300 IN A 192.0.2.9"};
          return Action::Reply(Build(spec));
        }) {}

  void Start(const std::vector<std::string>& flags) {
    std::vector<std::string> all = {"--search-rewrite", "off"};
    all.insert(all.end(), flags.begin(), flags.end());
    ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream_.port(), all, /*workers=*/1));
    ASSERT_TRUE(UdpExchange(dns_port_, BuildQuery("hot.example.", kTypeA)).has_value());
  }

  // Stops nodedns, queues kBacklog queries for the cached name over ~200 ms, resumes it, and
  // returns how many were answered (by distinct ID) within 3 s.
  int AnsweredOfBacklog() {
    const int fd = UdpSocketTo(dns_port_);
    const pid_t pid = nodedns_pid();
    EXPECT_EQ(kill(pid, SIGSTOP), 0);
    for (int i = 0; i < kBacklog; ++i) {
      const Bytes q = BuildQuery("hot.example.", kTypeA, false, false, static_cast<uint16_t>(i));
      EXPECT_EQ(send(fd, q.data(), q.size(), 0), static_cast<ssize_t>(q.size()));
      if (i % 20 == 19) std::this_thread::sleep_for(milliseconds(10));
    }
    EXPECT_EQ(kill(pid, SIGCONT), 0);
    std::set<int> ids;
    for (std::optional<Bytes> r; (r = RecvDatagram(fd, 3000)).has_value();) {
      if (r->size() >= 2) ids.insert((*r)[0] << 8 | (*r)[1]);
      if (ids.size() == kBacklog) break;
    }
    close(fd);
    return static_cast<int>(ids.size());
  }

  ScriptedUpstream upstream_;
};

// The defaults (10 ms target, 100 ms interval): a backlog that drains at once is a burst.
TEST_F(OverloadTest, BacklogThatDrainsAtOnceIsAnsweredWhole) {
  ASSERT_NO_FATAL_FAILURE(Start({}));
  EXPECT_EQ(AnsweredOfBacklog(), kBacklog);
  EXPECT_EQ(Metric(kShed), 0);
}

// A zero interval: the first batch read sets the clock, the second one, all older than the 1 ms
// target, starts the shedding; the queries that waited are dropped and counted, and a query sent
// afterwards, fresh, is answered.
TEST_F(OverloadTest, StandingQueueIsShedAndFreshQueriesAreAnswered) {
  ASSERT_NO_FATAL_FAILURE(Start({"--overload-queue-delay", "1", "--overload-interval", "0"}));
  const int answered = AnsweredOfBacklog();
  EXPECT_LT(answered, kBacklog / 2);
  EXPECT_GE(answered, 1);
  EXPECT_EQ(Metric(kShed), kBacklog - answered);
  std::this_thread::sleep_for(milliseconds(50));
  auto fresh = UdpExchange(dns_port_, BuildQuery("hot.example.", kTypeA), 3000);
  ASSERT_TRUE(fresh.has_value()) << "a fresh query was shed";
}

// Shedding off: the same backlog is answered whole, however old.
TEST_F(OverloadTest, WithSheddingOffTheWholeBacklogIsAnswered) {
  ASSERT_NO_FATAL_FAILURE(Start({"--overload-queue-delay", "0", "--overload-interval", "0"}));
  EXPECT_EQ(AnsweredOfBacklog(), kBacklog);
  EXPECT_EQ(Metric(kShed), 0);
}

}  // namespace
}  // namespace nodedns::integration
