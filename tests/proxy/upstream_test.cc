// The c-ares seam on a real libuv loop against a UDP socket the test controls: random, distinct
// query IDs on the wire (c-ares 1.18 leaves ares_send's ID alone), replies matched by ID and
// question, mismatched replies ignored until the timeout.
#include "proxy/upstream.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <vector>

#include "proxy/reply.h"
#include "tests/proxy/upstream_test_util.h"
#include "tests/testing/dns_builder.h"

namespace nodedns::proxy {
namespace {

using testing_util::Datagram;
using testing_util::ReceiveDatagrams;
using testing_util::RecordUpstreamReply;
using testing_util::UpstreamQuery;
using testing_util::UpstreamResult;

class UpstreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(ares_library_init(ARES_LIB_INIT_ALL), ARES_SUCCESS);
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    uv_loop_init(&loop_);
    ForwardZone zone = *ParseForwardSpec(".=127.0.0.1:" + std::to_string(ntohs(a.sin_port)));
    auto u = Upstream::Create(&loop_, zone, /*timeout_ms=*/300, /*tries=*/1);
    ASSERT_TRUE(u.ok()) << u.status();
    upstream_ = *std::move(u);
  }
  void TearDown() override {
    upstream_->Shutdown();
    uv_run(&loop_, UV_RUN_DEFAULT);
    upstream_.reset();
    uv_loop_close(&loop_);
    close(fd_);
    ares_library_cleanup();
  }
  std::vector<Datagram> Receive(size_t n) { return ReceiveDatagrams(&loop_, fd_, n); }

  std::vector<UpstreamResult> results_;
  int fd_ = -1;
  uv_loop_t loop_;
  std::unique_ptr<Upstream> upstream_;
};

TEST_F(UpstreamTest, QueriesLeaveWithRandomDistinctIds) {
  constexpr int kN = 64;
  auto& results = results_;  // outlives the test body: TearDown fails the queries left
  results.resize(kN);
  for (int i = 0; i < kN; ++i) {
    upstream_->Send(UpstreamQuery("q" + std::to_string(i) + ".example.com."), &RecordUpstreamReply,
                    &results[i]);
  }
  EXPECT_EQ(upstream_->in_flight(), static_cast<size_t>(kN));
  auto got = Receive(kN);
  ASSERT_EQ(got.size(), static_cast<size_t>(kN));
  std::set<uint16_t> ids;
  for (auto& [msg, from] : got) ids.insert(dns::HeaderId(msg));
  EXPECT_EQ(ids.size(), static_cast<size_t>(kN)) << "IDs repeat among queries in flight";
  // Not a counter: sorted by arrival, the IDs are not consecutive.
  int consecutive = 0;
  for (size_t i = 1; i < got.size(); ++i) {
    consecutive += dns::HeaderId(got[i].bytes) == dns::HeaderId(got[i - 1].bytes) + 1;
  }
  EXPECT_LT(consecutive, 4);
}

TEST_F(UpstreamTest, MatchingReplyCompletesAndMismatchedQuestionIsIgnored) {
  UpstreamResult good, bad;
  upstream_->Send(UpstreamQuery("good.example.com."), &RecordUpstreamReply, &good);
  upstream_->Send(UpstreamQuery("bad.example.com."), &RecordUpstreamReply, &bad);
  auto got = Receive(2);
  ASSERT_EQ(got.size(), 2u);
  for (auto& [msg, from] : got) {
    testing::MessageSpec m;
    const bool is_good = msg[13] == 'g';
    // For "bad", answer a different question with the right ID: a spoofing attempt's shape.
    m.qname = is_good ? "good.example.com." : "other.example.com.";
    m.id = dns::HeaderId(msg);
    m.answer = {m.qname + " 60 IN A 192.0.2.7"};
    auto reply = testing::Build(m);
    sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), sizeof from);
  }
  for (int spins = 0; (good.calls == 0 || bad.calls == 0) && spins < 3000; ++spins) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    usleep(1000);
  }
  EXPECT_EQ(good.calls, 1);
  EXPECT_EQ(good.status, ARES_SUCCESS);
  EXPECT_TRUE(ResponseMatchesQuestion(good.reply, testing::WireName("good.example.com."), 1, 1));
  EXPECT_EQ(bad.calls, 1);
  EXPECT_NE(bad.status, ARES_SUCCESS) << "a reply to another question was accepted";
  EXPECT_EQ(upstream_->in_flight(), 0u);
}

TEST_F(UpstreamTest, ShutdownFailsQueriesInFlightOnce) {
  UpstreamResult r;
  upstream_->Send(UpstreamQuery("slow.example.com."), &RecordUpstreamReply, &r);
  upstream_->Shutdown();
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.status, ARES_EDESTRUCTION);
  UpstreamResult after;
  upstream_->Send(UpstreamQuery("late.example.com."), &RecordUpstreamReply, &after);
  EXPECT_EQ(after.calls, 1);
}

}  // namespace
}  // namespace nodedns::proxy
