// The UDP forwarder on a real libuv loop against UDP sockets the test controls: random distinct
// IDs from several source ports, replies matched by ID and question (others ignored), retries on
// the next server after a timeout, fast failover on ICMP port unreachable, shutdown.
#include "upstream/udp_forwarder.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing/dns_builder.h"
#include "tests/upstream/upstream_test_util.h"

namespace nodedns::upstream {
namespace {

using testing_util::Datagram;
using testing_util::ReceiveDatagrams;
using testing_util::RecordUpstreamReply;
using testing_util::UpstreamQuery;
using testing_util::UpstreamResult;

// A UDP socket on 127.0.0.1 standing in for an upstream server.
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
  ~FakeServer() {
    if (fd >= 0) close(fd);
  }
  std::string Address() const { return "127.0.0.1:" + std::to_string(port); }
  int fd = -1;
  uint16_t port = 0;
};

class UdpForwarderTest : public ::testing::Test {
 protected:
  void SetUp() override { uv_loop_init(&loop_); }
  void Start(const std::vector<std::string>& servers, UdpForwarder::Options options) {
    const std::vector<dns::SocketAddress> zone = testing_util::Servers(servers);
    auto tcp = TcpForwarder::Create(&loop_, zone, {.timeout_ms = options.timeout_ms, .tries = 1},
                                    &tcp_stats_);
    ASSERT_TRUE(tcp.ok()) << tcp.status();
    tcp_ = *std::move(tcp);
    auto f = UdpForwarder::Create(&loop_, zone, options, tcp_.get(), &stats_);
    ASSERT_TRUE(f.ok()) << f.status();
    forwarder_ = *std::move(f);
  }
  void TearDown() override {
    if (forwarder_) forwarder_->Shutdown();
    if (tcp_) tcp_->Shutdown();
    uv_run(&loop_, UV_RUN_DEFAULT);
    forwarder_.reset();
    tcp_.reset();
    uv_loop_close(&loop_);
  }
  std::vector<Datagram> Receive(const FakeServer& server, size_t n) {
    return ReceiveDatagrams(&loop_, server.fd, n);
  }
  // Runs the loop until `done()` (bounded: about 3 s).
  template <typename F>
  void RunUntil(F done) {
    for (int spins = 0; !done() && spins < 3000; ++spins) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      usleep(1000);
    }
  }
  static void Answer(const FakeServer& server, const Datagram& d, const std::string& qname) {
    testing::MessageSpec m;
    m.qname = qname;
    m.id = dns::HeaderId(d.bytes);
    m.answer = {qname + " 60 IN A 192.0.2.7"};
    const auto reply = testing::Build(m);
    sendto(server.fd, reply.data(), reply.size(), 0, reinterpret_cast<const sockaddr*>(&d.from),
           sizeof d.from);
  }

  uv_loop_t loop_;
  TcpForwarderStats tcp_stats_;
  UdpForwarderStats stats_;
  std::unique_ptr<TcpForwarder> tcp_;
  std::unique_ptr<UdpForwarder> forwarder_;
  std::vector<UpstreamResult> results_;  // outlives each test body: TearDown fails what is left
};

TEST_F(UdpForwarderTest, QueriesLeaveWithRandomDistinctIdsFromSeveralPorts) {
  FakeServer server;
  Start({server.Address()}, {.timeout_ms = 2000, .tries = 1, .sockets_per_server = 4});
  constexpr int kN = 64;
  results_.resize(kN);
  for (int i = 0; i < kN; ++i) {
    forwarder_->Send(UpstreamQuery("q" + std::to_string(i) + ".example.com."), &RecordUpstreamReply,
                     &results_[i]);
  }
  EXPECT_EQ(forwarder_->in_flight(), static_cast<size_t>(kN));
  const auto got = Receive(server, kN);
  ASSERT_EQ(got.size(), static_cast<size_t>(kN));
  std::set<uint16_t> ids, ports;
  for (const Datagram& d : got) {
    ids.insert(dns::HeaderId(d.bytes));
    ports.insert(ntohs(d.from.sin_port));
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kN)) << "IDs repeat among queries in flight";
  EXPECT_GE(ports.size(), 2u) << "every query left from one source port";
  int consecutive = 0;
  for (size_t i = 1; i < got.size(); ++i) {
    consecutive += dns::HeaderId(got[i].bytes) == dns::HeaderId(got[i - 1].bytes) + 1;
  }
  EXPECT_LT(consecutive, 4);
}

TEST_F(UdpForwarderTest, MatchingReplyCompletesAndOtherQuestionOrUnknownIdIsIgnored) {
  FakeServer server;
  Start({server.Address()}, {.timeout_ms = 300, .tries = 1});
  UpstreamResult good, bad;
  forwarder_->Send(UpstreamQuery("good.example.com."), &RecordUpstreamReply, &good);
  forwarder_->Send(UpstreamQuery("bad.example.com."), &RecordUpstreamReply, &bad);
  const auto got = Receive(server, 2);
  ASSERT_EQ(got.size(), 2u);
  for (const Datagram& d : got) {
    const bool is_good = d.bytes[13] == 'g';
    // For "bad": the right ID with another question, the shape of a spoofing attempt.
    Answer(server, d, is_good ? "good.example.com." : "other.example.com.");
    if (!is_good) {
      Datagram unknown = d;
      dns::Put16(unknown.bytes.data(), static_cast<uint16_t>(dns::HeaderId(d.bytes) ^ 0x5a5a));
      Answer(server, unknown, "bad.example.com.");
    }
  }
  RunUntil([&] { return good.calls > 0 && bad.calls > 0; });
  EXPECT_EQ(good.calls, 1);
  EXPECT_EQ(good.status, ForwardStatus::kOk);
  EXPECT_TRUE(
      dns::ResponseMatchesQuestion(good.reply, testing::WireName("good.example.com."), 1, 1));
  EXPECT_EQ(bad.calls, 1);
  EXPECT_EQ(bad.status, ForwardStatus::kTimeout)
      << "a reply to another question or ID was accepted";
  EXPECT_EQ(forwarder_->stats().mismatched.Get(), 2u);
  EXPECT_EQ(forwarder_->in_flight(), 0u);
}

TEST_F(UdpForwarderTest, RetriesOnTheNextServerAfterATimeout) {
  FakeServer silent, answering;
  Start({silent.Address(), answering.Address()}, {.timeout_ms = 200, .tries = 1});
  UpstreamResult r;
  forwarder_->Send(UpstreamQuery("retry.example.com."), &RecordUpstreamReply, &r);
  ASSERT_EQ(Receive(silent, 1).size(), 1u) << "the first try goes to the first server";
  const auto second = Receive(answering, 1);
  ASSERT_EQ(second.size(), 1u) << "no second try on the next server";
  Answer(answering, second[0], "retry.example.com.");
  RunUntil([&] { return r.calls > 0; });
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.status, ForwardStatus::kOk);
  EXPECT_EQ(forwarder_->stats().retries.Get(), 1u);
}

// A retry is made in a timer callback; it must leave then, not when the loop next wakes up for
// something else. The loop runs as a worker runs it (UV_RUN_DEFAULT, blocking in epoll). The first
// server is silent; the second, on a thread of its own, answers at once. Sent when its timer
// fires, the retry is answered long before its own timeout; left queued until the loop's next
// wake-up (that same timeout), it leaves just as the query times out.
TEST_F(UdpForwarderTest, RetryLeavesWhenItsTimerFiresNotAtTheLoopsNextWakeUp) {
  FakeServer silent, answering;
  Start({silent.Address(), answering.Address()}, {.timeout_ms = 200, .tries = 1});
  std::thread server([&] {
    pollfd p{.fd = answering.fd, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, 5000) != 1) return;
    Datagram d;
    sockaddr_in from{};
    socklen_t len = sizeof from;
    d.bytes.resize(512);
    const ssize_t n = recvfrom(answering.fd, d.bytes.data(), d.bytes.size(), 0,
                               reinterpret_cast<sockaddr*>(&from), &len);
    if (n <= 0) return;
    d.bytes.resize(static_cast<size_t>(n));
    d.from = from;
    Answer(answering, d, "late.example.com.");
  });
  struct State {
    uv_loop_t* loop;
    int calls = 0;
    ForwardStatus status = ForwardStatus::kShutdown;
  } state{&loop_};
  forwarder_->Send(
      UpstreamQuery("late.example.com."),
      [](void* arg, ForwardStatus status, std::span<const uint8_t>) {
        auto* st = static_cast<State*>(arg);
        ++st->calls;
        st->status = status;
        uv_stop(st->loop);
      },
      &state);
  uv_timer_t watchdog;  // bounds the test if the callback never comes
  uv_timer_init(&loop_, &watchdog);
  uv_timer_start(
      &watchdog, [](uv_timer_t* t) { uv_stop(t->loop); }, 3000, 0);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_close(reinterpret_cast<uv_handle_t*>(&watchdog), nullptr);
  uv_run(&loop_, UV_RUN_NOWAIT);  // its close completes while it is still in scope
  server.join();
  ASSERT_EQ(state.calls, 1);
  EXPECT_EQ(state.status, ForwardStatus::kOk) << "the retry left only as it timed out";
}

// The retry leaves when its timer fires, not when something else next wakes the loop: libuv runs
// check handles (where queued datagrams are otherwise flushed) only after its next poll.
TEST_F(UdpForwarderTest, RetryLeavesWhenTheTimeoutFiresWithoutWaitingForAnotherEvent) {
  FakeServer silent, answering;
  Start({silent.Address(), answering.Address()}, {.timeout_ms = 100, .tries = 1});
  UpstreamResult r;
  forwarder_->Send(UpstreamQuery("prompt.example.com."), &RecordUpstreamReply, &r);
  // One iteration flushes the first try (the idle handle keeps its poll from blocking); in the
  // next, the poll waits for the timeout and the timer fires after it (UV_RUN_ONCE).
  uv_run(&loop_, UV_RUN_ONCE);
  uv_run(&loop_, UV_RUN_ONCE);
  uint8_t buf[512];
  ASSERT_GT(recv(silent.fd, buf, sizeof buf, MSG_DONTWAIT), 0) << "the first try was not sent";
  EXPECT_GT(recv(answering.fd, buf, sizeof buf, MSG_DONTWAIT), 0)
      << "the retry was left queued when its timer fired";
}

// A reply with TC=1, and one longer than the receive buffer (a server that ignores the 1232
// bytes advertised), are asked again over TCP at once, not retried over UDP until the timeout.
TEST_F(UdpForwarderTest, TruncatedOrOversizedReplyIsAskedAgainOverTcpAtOnce) {
  for (const bool oversized : {false, true}) {
    SCOPED_TRACE(oversized ? "6 KB reply without TC" : "TC=1");
    FakeServer server;
    testing_util::FakeTcpServer tcp(server.port);
    ASSERT_TRUE(tcp.bound());
    // A timeout far beyond the test's bound: only the hand-off to TCP can answer in time.
    Start({server.Address()}, {.timeout_ms = 30000, .tries = 1});
    UpstreamResult r;
    forwarder_->Send(UpstreamQuery("big.example.com."), &RecordUpstreamReply, &r);
    const auto got = Receive(server, 1);
    ASSERT_EQ(got.size(), 1u);
    testing::MessageSpec m;
    m.qname = "big.example.com.";
    m.id = dns::HeaderId(got[0].bytes);
    m.tc = !oversized;
    for (int i = 0; oversized && i < 400; ++i) {
      m.answer.push_back("big.example.com. 60 IN A 192.0.2." + std::to_string(i % 250));
    }
    const auto reply = testing::Build(m);
    ASSERT_EQ(reply.size() > 4096, oversized);
    sendto(server.fd, reply.data(), reply.size(), 0,
           reinterpret_cast<const sockaddr*>(&got[0].from), sizeof got[0].from);
    const int conn = tcp.Accept(&loop_);
    ASSERT_GE(conn, 0) << "not asked again over TCP";
    const auto q = tcp.Read(&loop_, conn);
    ASSERT_FALSE(q.empty());
    testing_util::FakeTcpServer::Write(conn, testing_util::AnswerTo(q, "big.example.com."));
    RunUntil([&] { return r.calls > 0; });
    EXPECT_EQ(r.calls, 1);
    EXPECT_EQ(r.status, ForwardStatus::kOk);
    // The stats outlive the forwarder (they are the worker's): count this round only.
    EXPECT_EQ(forwarder_->stats().truncated.Get(), oversized ? 2u : 1u);
    EXPECT_EQ(forwarder_->stats().retries.Get(), 0u);
    TearDown();
    SetUp();
  }
}

TEST_F(UdpForwarderTest, FailsOverAtOnceWhenNothingListens) {
  uint16_t closed_port;
  {
    FakeServer gone;  // a port that was free a moment ago: ICMP port unreachable
    closed_port = gone.port;
  }
  // A timeout far beyond the test's bound: only the ICMP error can end the query in time.
  Start({"127.0.0.1:" + std::to_string(closed_port)}, {.timeout_ms = 30000, .tries = 2});
  UpstreamResult r;
  forwarder_->Send(UpstreamQuery("refused.example.com."), &RecordUpstreamReply, &r);
  RunUntil([&] { return r.calls > 0; });
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.status, ForwardStatus::kTimeout);
  EXPECT_EQ(forwarder_->stats().timeouts.Get(), 1u);
}

TEST_F(UdpForwarderTest, ShutdownFailsQueriesInFlightOnceAndRefusesNewOnes) {
  FakeServer server;
  Start({server.Address()}, {.timeout_ms = 2000, .tries = 1});
  UpstreamResult r;
  forwarder_->Send(UpstreamQuery("slow.example.com."), &RecordUpstreamReply, &r);
  forwarder_->Shutdown();
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.status, ForwardStatus::kShutdown);
  UpstreamResult after;
  forwarder_->Send(UpstreamQuery("late.example.com."), &RecordUpstreamReply, &after);
  EXPECT_EQ(after.calls, 1);
  EXPECT_EQ(after.status, ForwardStatus::kShutdown);
}

TEST_F(UdpForwarderTest, RejectsMalformedQueriesWithoutSending) {
  FakeServer server;
  Start({server.Address()}, {.timeout_ms = 2000, .tries = 1});
  UpstreamResult r;
  const std::vector<uint8_t> runt(5, 0);
  forwarder_->Send(runt, &RecordUpstreamReply, &r);
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.status, ForwardStatus::kBadQuery);
  EXPECT_EQ(forwarder_->in_flight(), 0u);
}

// coredns_proxy_request_duration_seconds is made of these: one call per reply that completes a
// try, naming the server (its index in the zone's list) and the rcode; nothing for a reply the
// forwarder ignores.
TEST_F(UdpForwarderTest, ObserverIsToldOfEachMatchedReplyWithItsServerAndRcode) {
  FakeServer first, second;
  testing_util::ObservationLog log;
  Start({first.Address(), second.Address()},
        {.timeout_ms = 200, .tries = 1, .observer = log.Observer()});
  UpstreamResult nx, retried;
  forwarder_->Send(UpstreamQuery("nx.example.com."), &RecordUpstreamReply, &nx);
  auto got = Receive(first, 1);
  ASSERT_EQ(got.size(), 1u);
  // Ignored replies first: another ID, another question. No observation for either.
  Datagram other_id = got[0];
  dns::Put16(other_id.bytes.data(), static_cast<uint16_t>(dns::HeaderId(got[0].bytes) ^ 0x5a5a));
  Answer(first, other_id, "nx.example.com.");
  Answer(first, got[0], "other.example.com.");
  RunUntil([&] { return forwarder_->stats().mismatched.Get() == 2; });
  ASSERT_EQ(forwarder_->stats().mismatched.Get(), 2u);
  EXPECT_TRUE(log.calls.empty()) << "observed a reply the forwarder ignored";
  testing::MessageSpec m;
  m.qname = "nx.example.com.";
  m.id = dns::HeaderId(got[0].bytes);
  m.rcode = dns::rcode::kNxDomain;
  const auto reply = testing::Build(m);
  sendto(first.fd, reply.data(), reply.size(), 0, reinterpret_cast<const sockaddr*>(&got[0].from),
         sizeof got[0].from);
  RunUntil([&] { return nx.calls > 0; });
  ASSERT_EQ(nx.status, ForwardStatus::kOk);
  ASSERT_EQ(log.calls.size(), 1u);
  EXPECT_EQ(log.calls[0].server, 0u);
  EXPECT_EQ(log.calls[0].rcode, dns::rcode::kNxDomain);
  EXPECT_GT(log.calls[0].rtt_ns, 0u);
  EXPECT_LT(log.calls[0].rtt_ns, 3'000'000'000u);

  // The first server stays silent: the retry on the second is the one observed.
  forwarder_->Send(UpstreamQuery("retried.example.com."), &RecordUpstreamReply, &retried);
  ASSERT_EQ(Receive(first, 1).size(), 1u);
  got = Receive(second, 1);
  ASSERT_EQ(got.size(), 1u);
  Answer(second, got[0], "retried.example.com.");
  RunUntil([&] { return retried.calls > 0; });
  ASSERT_EQ(retried.status, ForwardStatus::kOk);
  ASSERT_EQ(log.calls.size(), 2u);
  EXPECT_EQ(log.calls[1].server, 1u);
  EXPECT_EQ(log.calls[1].rcode, dns::rcode::kNoError);
  // A late duplicate of an answered query finds no ID: not observed.
  Answer(second, got[0], "retried.example.com.");
  RunUntil([&] { return forwarder_->stats().mismatched.Get() == 3; });
  EXPECT_EQ(forwarder_->stats().mismatched.Get(), 3u);
  EXPECT_EQ(log.calls.size(), 2u);
}

// A retry keeps the query's ID, so the first server's late answer still completes the query; it
// is that server's reply, and its `to` label must say so, not the server of the latest try.
TEST_F(UdpForwarderTest, ObserverNamesTheServerWhoseReplyCameEvenAfterARetry) {
  FakeServer slow, other;
  testing_util::ObservationLog log;
  Start({slow.Address(), other.Address()},
        {.timeout_ms = 200, .tries = 1, .observer = log.Observer()});
  UpstreamResult r;
  forwarder_->Send(UpstreamQuery("late.example.com."), &RecordUpstreamReply, &r);
  const auto to_slow = Receive(slow, 1);
  ASSERT_EQ(to_slow.size(), 1u);
  ASSERT_EQ(Receive(other, 1).size(), 1u) << "no retry on the second server";
  Answer(slow, to_slow[0], "late.example.com.");  // the second server never answers
  RunUntil([&] { return r.calls > 0; });
  ASSERT_EQ(r.status, ForwardStatus::kOk);
  ASSERT_EQ(log.calls.size(), 1u);
  EXPECT_EQ(log.calls[0].server, 0u) << "the reply was credited to the server of the latest try";
}

TEST_F(UdpForwarderTest, TruncatedReplyIsObservedOnce) {
  FakeServer server;
  testing_util::ObservationLog log;
  Start({server.Address()}, {.timeout_ms = 30000, .tries = 1, .observer = log.Observer()});
  UpstreamResult r;
  forwarder_->Send(UpstreamQuery("tc.example.com."), &RecordUpstreamReply, &r);
  const auto got = Receive(server, 1);
  ASSERT_EQ(got.size(), 1u);
  testing::MessageSpec m;
  m.qname = "tc.example.com.";
  m.id = dns::HeaderId(got[0].bytes);
  m.tc = true;
  const auto reply = testing::Build(m);
  sendto(server.fd, reply.data(), reply.size(), 0, reinterpret_cast<const sockaddr*>(&got[0].from),
         sizeof got[0].from);
  // Nothing listens on TCP there: the TCP try is refused and the query ends.
  RunUntil([&] { return r.calls > 0; });
  EXPECT_EQ(forwarder_->stats().truncated.Get(), 1u);
  ASSERT_EQ(log.calls.size(), 1u) << "the UDP exchange got a reply: it is observed, once";
  EXPECT_EQ(log.calls[0].server, 0u);
}

}  // namespace
}  // namespace nodedns::upstream
