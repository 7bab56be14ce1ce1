// Upstream health (upstream/health.h) through the forwarders, on a real libuv loop against
// sockets the test controls: a black-holed first server is marked down after --upstream-max-fails
// failed tries and later queries go straight to the second one (the first receives nothing more);
// one forwarder's failures spare another forwarder sharing the state (another worker); a probe
// brings the server back once it answers, and only a reply matching the probe does; with every
// server down, queries still go out. UDP and TCP (force_tcp zones).
#include "upstream/health.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/testing/dns_builder.h"
#include "tests/upstream/upstream_test_util.h"
#include "upstream/tcp_forwarder.h"
#include "upstream/udp_forwarder.h"

namespace nodedns::upstream {
namespace {

using testing_util::Datagram;
using testing_util::FakeTcpServer;
using testing_util::RecordUpstreamReply;
using testing_util::RunLoopUntil;
using testing_util::UpstreamQuery;
using testing_util::UpstreamResult;

constexpr uint32_t kNoProbe = 600'000;  // a check interval no test waits for

struct FakeServer {
  FakeServer() {
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~FakeServer() { close(fd); }
  std::string Address() const { return "127.0.0.1:" + std::to_string(port); }
  // Whatever arrived by now, without waiting.
  std::vector<Datagram> Drain() const {
    std::vector<Datagram> got;
    for (;;) {
      uint8_t buf[1500];
      sockaddr_in from{};
      socklen_t len = sizeof from;
      const ssize_t r = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (r <= 0) return got;
      got.push_back({std::vector<uint8_t>(buf, buf + r), from});
    }
  }
  void Reply(const Datagram& d, const std::string& qname, uint16_t qtype = 1,
             uint8_t rcode = 0) const {
    testing::MessageSpec m;
    m.qname = qname;
    m.qtype = qtype;
    m.rcode = rcode;
    m.id = dns::HeaderId(d.bytes);
    const auto reply = testing::Build(m);
    sendto(fd, reply.data(), reply.size(), 0, reinterpret_cast<const sockaddr*>(&d.from),
           sizeof d.from);
  }
  int fd = -1;
  uint16_t port = 0;
};

// Whether `d` is a health probe: ". IN NS", one question.
bool IsProbe(std::span<const uint8_t> d) {
  return d.size() == dns::kHeaderSize + 5 && d[dns::kHeaderSize] == 0 &&
         dns::Get16(d.data() + dns::kHeaderSize + 1) == 2 &&
         dns::Get16(d.data() + dns::kHeaderSize + 3) == 1;
}

class UdpHealthTest : public ::testing::Test {
 protected:
  void SetUp() override { uv_loop_init(&loop_); }
  void TearDown() override {
    for (auto& f : forwarders_) f->Shutdown();
    for (auto& t : tcp_) t->Shutdown();
    uv_run(&loop_, UV_RUN_DEFAULT);
    forwarders_.clear();
    tcp_.clear();
    uv_loop_close(&loop_);
  }
  // A forwarder (one worker's) over `servers`, sharing `health`.
  UdpForwarder* Add(const std::vector<std::string>& servers, UpstreamHealth* health,
                    uint32_t timeout_ms = 100) {
    const auto zone = testing_util::Servers(servers);
    auto tcp =
        TcpForwarder::Create(&loop_, zone, {.timeout_ms = timeout_ms, .tries = 1}, &tcp_stats_);
    EXPECT_TRUE(tcp.ok());
    tcp_.push_back(*std::move(tcp));
    auto f =
        UdpForwarder::Create(&loop_, zone, {.timeout_ms = timeout_ms, .tries = 1, .health = health},
                             tcp_.back().get(), &stats_);
    EXPECT_TRUE(f.ok());
    forwarders_.push_back(*std::move(f));
    return forwarders_.back().get();
  }
  // Sends one query through `f`; the good server answers whatever reaches it. Returns the result
  // once the query completed (bounded).
  UpstreamResult Resolve(UdpForwarder* f, const FakeServer& good, const std::string& name) {
    UpstreamResult r;
    f->Send(UpstreamQuery(name), &RecordUpstreamReply, &r);
    RunLoopUntil(&loop_, [&] {
      for (const Datagram& d : good.Drain()) good.Reply(d, name);
      return r.calls > 0;
    });
    return r;
  }

  uv_loop_t loop_;
  TcpForwarderStats tcp_stats_;
  UdpForwarderStats stats_;
  std::vector<std::unique_ptr<TcpForwarder>> tcp_;
  std::vector<std::unique_ptr<UdpForwarder>> forwarders_;
};

TEST_F(UdpHealthTest, DeadFirstServerIsSkippedAfterMaxFailsBySharingForwardersToo) {
  FakeServer dead, good;
  UpstreamHealth health(2, {.max_fails = 2, .check_interval_ms = kNoProbe});
  UdpForwarder* worker1 = Add({dead.Address(), good.Address()}, &health);
  UdpForwarder* worker2 = Add({dead.Address(), good.Address()}, &health);
  for (int i = 0; i < 2; ++i) {
    const UpstreamResult r = Resolve(worker1, good, "q" + std::to_string(i) + ".example.com.");
    EXPECT_EQ(r.status, ForwardStatus::kOk);
    EXPECT_EQ(dead.Drain().size(), 1u) << "try " << i << " did not start on the first server";
  }
  EXPECT_FALSE(health.Up(0)) << "not marked down after 2 timeouts in a row";
  EXPECT_TRUE(health.Up(1));
  EXPECT_EQ(health.Stats(0).marked_down, 1u);
  const uint64_t retries = stats_.retries.Get();
  for (UdpForwarder* f : {worker1, worker2}) {
    for (int i = 0; i < 3; ++i) {
      const UpstreamResult r = Resolve(f, good, "later" + std::to_string(i) + ".example.com.");
      EXPECT_EQ(r.status, ForwardStatus::kOk);
    }
  }
  // Run a little longer than a try's timeout: a try on the dead server would have arrived by now.
  RunLoopUntil(
      &loop_, [] { return false; }, 150);
  EXPECT_TRUE(dead.Drain().empty()) << "a query still went to the server marked down";
  EXPECT_EQ(stats_.retries.Get(), retries) << "a query paid a timeout";
}

TEST_F(UdpHealthTest, SuccessBetweenFailuresResetsTheCount) {
  FakeServer flaky, good;
  UpstreamHealth health(2, {.max_fails = 2, .check_interval_ms = kNoProbe});
  UdpForwarder* f = Add({flaky.Address(), good.Address()}, &health);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Resolve(f, good, "t" + std::to_string(i) + ".example.com.").status,
              ForwardStatus::kOk);
    EXPECT_EQ(flaky.Drain().size(), 1u);
    // Every other query the first server answers itself: never two failures in a row.
    UpstreamResult r;
    f->Send(UpstreamQuery("ok.example.com."), &RecordUpstreamReply, &r);
    RunLoopUntil(&loop_, [&] {
      for (const Datagram& d : flaky.Drain()) flaky.Reply(d, "ok.example.com.");
      return r.calls > 0;
    });
    EXPECT_EQ(r.status, ForwardStatus::kOk);
    EXPECT_TRUE(health.Up(0)) << "marked down without " << 2 << " failures in a row";
  }
}

TEST_F(UdpHealthTest, ZeroMaxFailsNeverMarksDown) {
  FakeServer dead, good;
  UpstreamHealth health(2, {.max_fails = 0});
  UdpForwarder* f = Add({dead.Address(), good.Address()}, &health);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Resolve(f, good, "z" + std::to_string(i) + ".example.com.").status,
              ForwardStatus::kOk);
    EXPECT_EQ(dead.Drain().size(), 1u) << "query " << i << " skipped the first server";
  }
  EXPECT_TRUE(health.Up(0));
}

TEST_F(UdpHealthTest, ProbeMarksTheServerUpOnceItAnswersAndOnlyForAMatchingReply) {
  FakeServer dead, good;
  UpstreamHealth health(2, {.max_fails = 1, .check_interval_ms = 50});
  UdpForwarder* f = Add({dead.Address(), good.Address()}, &health);
  EXPECT_EQ(Resolve(f, good, "down.example.com.").status, ForwardStatus::kOk);
  ASSERT_FALSE(health.Up(0));
  ASSERT_EQ(dead.Drain().size(), 1u);  // the query's first try
  // Unanswered probes: the server stays down and they are counted as failures.
  std::vector<Datagram> probes;
  ASSERT_TRUE(RunLoopUntil(&loop_, [&] {
    for (const Datagram& d : dead.Drain()) probes.push_back(d);
    return probes.size() >= 2;
  })) << "no probes of the down server";
  for (const Datagram& p : probes) {
    EXPECT_TRUE(IsProbe(p.bytes)) << "not a . IN NS probe";
    EXPECT_TRUE(dns::HeaderFlags(p.bytes) & dns::flag::kRD);
  }
  EXPECT_NE(dns::HeaderId(probes[0].bytes), dns::HeaderId(probes[1].bytes));
  EXPECT_FALSE(health.Up(0));
  ASSERT_TRUE(RunLoopUntil(&loop_, [&] { return health.Stats(0).probe_failures >= 1; }));
  // A reply to another question (RFC 5452) does not count.
  Datagram next;
  ASSERT_TRUE(RunLoopUntil(&loop_, [&] {
    for (const Datagram& d : dead.Drain()) next = d;
    return !next.bytes.empty();
  }));
  dead.Reply(next, "example.com.", 2);
  RunLoopUntil(
      &loop_, [] { return false; }, 30);
  EXPECT_FALSE(health.Up(0)) << "a reply to another question marked the server up";
  // The server answers (REFUSED: any rcode is a sign of life).
  ASSERT_TRUE(RunLoopUntil(&loop_, [&] {
    for (const Datagram& d : dead.Drain()) dead.Reply(d, ".", 2, /*REFUSED*/ 5);
    return health.Up(0);
  })) << "an answered probe did not mark the server up";
  EXPECT_GE(health.Stats(0).probes, 3u);
  // Queries start on the first server again.
  UpstreamResult r;
  f->Send(UpstreamQuery("back.example.com."), &RecordUpstreamReply, &r);
  std::vector<Datagram> got;
  ASSERT_TRUE(RunLoopUntil(&loop_, [&] {
    for (const Datagram& d : dead.Drain()) {
      if (!IsProbe(d.bytes)) got.push_back(d);
    }
    return !got.empty();
  })) << "the recovered server gets no query";
  dead.Reply(got[0], "back.example.com.");
  RunLoopUntil(&loop_, [&] { return r.calls > 0; });
  EXPECT_EQ(r.status, ForwardStatus::kOk);
}

TEST_F(UdpHealthTest, AllDownStillSendsInOrderAndAReplyMarksUp) {
  FakeServer a, b;
  UpstreamHealth health(2, {.max_fails = 1, .check_interval_ms = kNoProbe});
  UdpForwarder* f = Add({a.Address(), b.Address()}, &health);
  UpstreamResult r;
  f->Send(UpstreamQuery("lost.example.com."), &RecordUpstreamReply, &r);
  ASSERT_TRUE(RunLoopUntil(&loop_, [&] { return r.calls > 0; }));
  EXPECT_EQ(r.status, ForwardStatus::kTimeout);
  EXPECT_FALSE(health.Up(0));
  EXPECT_FALSE(health.Up(1));
  EXPECT_EQ(health.all_down(), 1u);
  a.Drain();
  b.Drain();
  // Every server down: the query still goes out, to the first one first.
  UpstreamResult r2;
  f->Send(UpstreamQuery("again.example.com."), &RecordUpstreamReply, &r2);
  std::vector<Datagram> got;
  ASSERT_TRUE(RunLoopUntil(&loop_, [&] {
    for (const Datagram& d : a.Drain()) got.push_back(d);
    return !got.empty();
  })) << "no query sent with every server down";
  EXPECT_TRUE(b.Drain().empty()) << "the second server was asked before the first";
  a.Reply(got[0], "again.example.com.");
  ASSERT_TRUE(RunLoopUntil(&loop_, [&] { return r2.calls > 0; }));
  EXPECT_EQ(r2.status, ForwardStatus::kOk);
  EXPECT_TRUE(health.Up(0)) << "a reply to ordinary traffic did not mark the server up";
}

TEST(UpstreamHealthTest, ClaimProbeHasOneWinnerPerInterval) {
  UpstreamHealth h(1, {.max_fails = 1, .check_interval_ms = 100});
  EXPECT_FALSE(h.ClaimProbe(0, UpstreamHealth::NowMs() + 1000, 500)) << "probe of an up server";
  h.ReportFailure(0);
  ASSERT_FALSE(h.Up(0));
  const uint64_t t = UpstreamHealth::NowMs() + 100;
  EXPECT_TRUE(h.ClaimProbe(0, t, 500));
  EXPECT_FALSE(h.ClaimProbe(0, t, 500)) << "two workers probe at once";
  EXPECT_FALSE(h.ClaimProbe(0, t + 499, 500));
  h.ProbeDone(0, false, t + 10);
  EXPECT_FALSE(h.ClaimProbe(0, t + 50, 500));
  EXPECT_TRUE(h.ClaimProbe(0, t + 110, 500));
  h.ProbeDone(0, true, t + 120);
  EXPECT_TRUE(h.Up(0));
  EXPECT_EQ(h.Stats(0).probes, 2u);
  EXPECT_EQ(h.Stats(0).probe_failures, 1u);
}

TEST(UpstreamHealthTest, CandidatesSkipDownServersUnlessAllAreDown) {
  EXPECT_EQ(CandidateCount(0b000, 3), 3u);
  EXPECT_EQ(CandidateCount(0b001, 3), 2u);
  EXPECT_EQ(Candidate(0b001, 3, 0), 1u);
  EXPECT_EQ(Candidate(0b001, 3, 1), 2u);
  EXPECT_EQ(Candidate(0b010, 3, 1), 2u);
  EXPECT_EQ(CandidateCount(0b111, 3), 3u);
  EXPECT_EQ(Candidate(0b111, 3, 0), 0u);
  EXPECT_EQ(Candidate(0b111, 3, 2), 2u);
}

// force_tcp zones: the same over TCP, the dead server a listener that never answers.
class TcpHealthTest : public ::testing::Test {
 protected:
  void SetUp() override { uv_loop_init(&loop_); }
  void TearDown() override {
    if (f_) f_->Shutdown();
    uv_run(&loop_, UV_RUN_DEFAULT);
    f_.reset();
    uv_loop_close(&loop_);
  }
  uv_loop_t loop_;
  TcpForwarderStats stats_;
  std::unique_ptr<TcpForwarder> f_;
};

TEST_F(TcpHealthTest, DeadServerIsSkippedAndAProbeOverTcpBringsItBack) {
  FakeTcpServer dead, good;
  ASSERT_TRUE(dead.bound() && good.bound());
  UpstreamHealth health(2, {.max_fails = 2, .check_interval_ms = 200});
  auto made = TcpForwarder::Create(&loop_, testing_util::Servers({dead.Address(), good.Address()}),
                                   {.timeout_ms = 100, .tries = 1, .health = &health}, &stats_);
  ASSERT_TRUE(made.ok());
  f_ = *std::move(made);
  std::vector<int> good_conns;
  auto resolve = [&](const std::string& name) {
    UpstreamResult r;
    f_->Send(UpstreamQuery(name), &RecordUpstreamReply, &r);
    // The good server: accept what comes, answer every framed query.
    for (int spins = 0; r.calls == 0 && spins < 3000; ++spins) {
      const int c = good.Accept(&loop_, 1);
      if (c >= 0) good_conns.push_back(c);
      for (int conn : good_conns) {
        const auto q = good.Read(&loop_, conn, 1);
        if (!q.empty()) FakeTcpServer::Write(conn, testing_util::AnswerTo(q, name));
      }
    }
    return r;
  };
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(resolve("t" + std::to_string(i) + ".example.com.").status, ForwardStatus::kOk);
  }
  ASSERT_FALSE(health.Up(0)) << "not marked down after 2 timed-out tries";
  // The connections of those two tries, waiting in the dead server's backlog.
  std::vector<int> old_conns;
  for (int c; (c = dead.Accept(&loop_, 20)) >= 0;) old_conns.push_back(c);
  EXPECT_EQ(old_conns.size(), 2u);
  for (int c : old_conns) dead.CloseConn(c);
  const uint64_t retries = stats_.retries.Get();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(resolve("later" + std::to_string(i) + ".example.com.").status, ForwardStatus::kOk);
  }
  EXPECT_EQ(stats_.retries.Get(), retries) << "a query paid a timeout on the down server";
  // Whatever reached the dead server since is a probe, not a query.
  // The probe: a connection to the dead server carrying ". IN NS"; answering it marks it up.
  int conn = -1;
  std::vector<uint8_t> probe;
  ASSERT_TRUE(RunLoopUntil(&loop_, [&] {
    if (conn < 0) conn = dead.Accept(&loop_, 1);
    if (conn >= 0) probe = dead.Read(&loop_, conn, 1);
    return !probe.empty();
  })) << "no TCP probe of the down server";
  ASSERT_TRUE(IsProbe(probe)) << "a query, not a . IN NS probe, went to the down server";
  testing::MessageSpec m;
  m.qname = ".";
  m.qtype = 2;
  m.rcode = 2;  // SERVFAIL: still an answer
  m.id = dns::HeaderId(probe);
  FakeTcpServer::Write(conn, testing::Build(m));
  ASSERT_TRUE(RunLoopUntil(&loop_, [&] { return health.Up(0); }))
      << "an answered TCP probe did not mark the server up";
}

}  // namespace
}  // namespace nodedns::upstream
