// Zero-loss upgrades of `nodedns serve --handover PATH` (proxy/handover.h), process against
// process: a steady UDP load across upgrades in a row with every query accounted for, TCP
// clients answered and then closed cleanly, the cache carried over, and a predecessor that does
// not speak the protocol. The upstream is a ScriptedUpstream that answers every query after a
// delay, so that misses are in flight whenever an upgrade happens.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <bitset>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/dns_builder.h"
#include "tests/testing/net.h"
#include "tests/testing/nodedns_process.h"
#include "tests/testing/process.h"
#include "tests/testing/scripted_upstream.h"

namespace {

using nodedns::testing::Action;
using nodedns::testing::Build;
using nodedns::testing::BuildQuery;
using nodedns::testing::Bytes;
using nodedns::testing::FreePorts;
using nodedns::testing::HttpGet;
using nodedns::testing::MessageSpec;
using nodedns::testing::MetricValue;
using nodedns::testing::Process;
using nodedns::testing::ReplySpecFor;
using nodedns::testing::ScriptedUpstream;
using nodedns::testing::SeenQuery;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr uint16_t kTypeA = 1;

// Answers every A query with 192.0.2.1 after `delay_ms`.
Action Answer(const SeenQuery& q, int delay_ms) {
  MessageSpec spec = ReplySpecFor(q);
  if (q.qtype == kTypeA) spec.answer = {q.name + " 300 IN A 192.0.2.1"};
  return Action::Reply(Build(spec), milliseconds(delay_ms));
}

// An open-loop UDP client: `rate` queries per second over one socket, names cycling over
// `names` distinct ones with every fourth one new, each query with its own ID; it records which
// IDs were answered.
class SteadyLoad {
 public:
  SteadyLoad(uint16_t port, int rate, int names) : port_(port), rate_(rate), names_(names) {
    fd_ = nodedns::testing::UdpSocketTo(port_);
    receiver_ = std::thread([this] { Receive(); });
    sender_ = std::thread([this] { Send(); });
  }
  ~SteadyLoad() {
    Finish();
    close(fd_);
  }
  // Stops sending, waits `grace` for the last replies, and returns how many were never answered.
  int Finish(milliseconds grace = milliseconds(3000)) {
    if (!sender_.joinable()) return lost_;
    stop_ = true;
    sender_.join();
    const auto deadline = Clock::now() + grace;
    while (answered_.load() < sent_.load() && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    done_ = true;
    receiver_.join();
    lost_ = sent_.load() - answered_.load();
    return lost_;
  }
  int sent() const { return sent_.load(); }
  int answered() const { return answered_.load(); }
  // The slowest answer, over all queries.
  milliseconds worst() const { return milliseconds(worst_ms_.load()); }

 private:
  void Send() {
    const auto start = Clock::now();
    for (int i = 0; !stop_ && i < 65536; ++i) {
      std::this_thread::sleep_until(start + std::chrono::microseconds(1'000'000LL * i / rate_));
      // Every fourth query a name never asked before: misses are always in flight.
      const std::string name = i % 4 == 3 ? "u" + std::to_string(i) + ".load.test."
                                          : "n" + std::to_string(i % names_) + ".load.test.";
      const Bytes q = BuildQuery(name, kTypeA, false, false, static_cast<uint16_t>(i));
      sent_at_[i] = Clock::now();
      if (send(fd_, q.data(), q.size(), 0) != static_cast<ssize_t>(q.size())) continue;
      sent_.fetch_add(1);
    }
  }
  void Receive() {
    uint8_t buf[1500];
    while (!done_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) != 1) continue;
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n < 12) continue;
      const uint16_t id = static_cast<uint16_t>(buf[0] << 8 | buf[1]);
      if ((buf[3] & 0xf) != 0 || seen_[id]) continue;  // NOERROR only, once per ID
      seen_[id] = true;
      answered_.fetch_add(1);
      const auto took =
          std::chrono::duration_cast<milliseconds>(Clock::now() - sent_at_[id]).count();
      if (took > worst_ms_.load()) worst_ms_ = took;
    }
  }

  uint16_t port_;
  int rate_, names_;
  int fd_;
  std::atomic<bool> stop_{false}, done_{false};
  std::atomic<int> sent_{0}, answered_{0};
  std::atomic<int64_t> worst_ms_{0};
  int lost_ = 0;
  std::bitset<65536> seen_;
  std::vector<Clock::time_point> sent_at_ = std::vector<Clock::time_point>(65536);
  std::thread sender_, receiver_;
};

class HandoverIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nodedns-handover-it-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    const auto ports = FreePorts(2);
    dns_port_ = ports[0];
    health_port_ = ports[1];
  }
  void TearDown() override {
    for (auto& p : processes_) p->Stop(milliseconds(5000));
    std::system(("rm -rf " + dir_).c_str());
  }
  // `health`: the HTTP port, 0 for the test's.
  std::vector<std::string> Args(uint16_t upstream, int workers,
                                const std::vector<std::string>& extra = {},
                                uint16_t health = 0) const {
    std::vector<std::string> a = {
        NODEDNS_BINARY,  "serve",
        "--listen",      "127.0.0.1:" + std::to_string(dns_port_),
        "--forward",     ".=127.0.0.1:" + std::to_string(upstream),
        "--health",      "127.0.0.1:" + std::to_string(health ? health : health_port_),
        "--workers",     std::to_string(workers),
        "--node-search", "none",
        "--handover",    dir_ + "/handover.sock"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  // Starts one more nodedns; it waits for "serving on" (the handover, when there is one, is
  // done by then: it happens before the workers start).
  Process& Start(const std::vector<std::string>& args) {
    processes_.push_back(std::make_unique<Process>());
    Process& p = *processes_.back();
    nodedns::testing::StartNodedns(p, args,
                                   dir_ + "/nodedns-" + std::to_string(processes_.size()) + ".log");
    return p;
  }
  // Waits for `p` to exit on its own; its wait status, or -1 if it is still running.
  static int WaitExit(Process& p, milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (p.Running()) {
      if (Clock::now() > deadline) return -1;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return p.Stop(milliseconds(0)).value_or(-1);
  }
  double Metric(const std::string& sample) {
    auto m = HttpGet(health_port_, "/metrics");
    return m ? MetricValue(*m, sample) : -1;
  }

  std::string dir_;
  uint16_t dns_port_ = 0, health_port_ = 0;
  std::vector<std::unique_ptr<Process>> processes_;
};

TEST_F(HandoverIntegrationTest, UpgradesInARowUnderSteadyLoadLoseNoQuery) {
  // 20 ms per upstream answer: at 1000 queries/s, a quarter of them new names, about five misses
  // are in flight at any moment.
  ScriptedUpstream upstream([](const SeenQuery& q) { return Answer(q, 20); });
  Process* current = &Start(Args(upstream.port(), 2));
  SteadyLoad load(dns_port_, 1000, 300);
  std::this_thread::sleep_for(milliseconds(300));
  // Worker counts change from one version to the next: every socket must still be read.
  const int workers[] = {3, 1, 2, 2, 4};
  for (int w : workers) {
    Process& next = Start(Args(upstream.port(), w));
    ASSERT_FALSE(HasFatalFailure());
    // serve exits once it has answered what it had in flight.
    EXPECT_EQ(WaitExit(*current, milliseconds(10000)), 0) << current->Log();
    EXPECT_NE(current->Log().find("handed over to the next process"), std::string::npos)
        << current->Log();
    current = &next;
    std::this_thread::sleep_for(milliseconds(200));
  }
  const int lost = load.Finish();
  std::printf("%d queries sent across 5 upgrades, %d lost, slowest answer %lld ms\n", load.sent(),
              lost, static_cast<long long>(load.worst().count()));
  EXPECT_EQ(lost, 0) << "of " << load.sent() << " queries; the slowest answer took "
                     << load.worst().count() << " ms";
  EXPECT_GT(load.sent(), 1000);
  // Sockets are never closed while in the kernel's reuseport group, so the group keeps the most
  // workers any version had before the last (3): 3 UDP, 3 TCP, and the HTTP listener.
  EXPECT_EQ(Metric("nodedns_handover_inherited_sockets"), 3 + 3 + 1);
  EXPECT_GT(Metric("nodedns_handover_inherited_cache_entries"), 0);
  EXPECT_EQ(Metric("nodedns_handover_fallback"), 0);
  ASSERT_NO_FATAL_FAILURE(nodedns::testing::StopNodedns(*current));
}

TEST_F(HandoverIntegrationTest, TcpQueriesInFlightAreAnsweredThenTheConnectionIsClosed) {
  // 600 ms: the upgrade happens while the query waits for upstream.
  ScriptedUpstream upstream([](const SeenQuery& q) { return Answer(q, 600); });
  Process& old_process = Start(Args(upstream.port(), 1));
  const int conn = nodedns::testing::TcpConnect(dns_port_);
  ASSERT_GE(conn, 0);
  ASSERT_TRUE(nodedns::testing::SendAll(
      conn, nodedns::testing::TcpFrame(BuildQuery("slow.tcp.test.", kTypeA, false, false, 7))));
  std::this_thread::sleep_for(milliseconds(100));
  Process& next = Start(Args(upstream.port(), 1));
  ASSERT_FALSE(HasFatalFailure());
  // The old process answers on the connection it owns...
  auto reply = nodedns::testing::RecvTcpMessage(conn, Clock::now() + milliseconds(5000));
  ASSERT_TRUE(reply.has_value()) << old_process.Log();
  EXPECT_EQ((*reply)[0] << 8 | (*reply)[1], 7);
  // ...then closes it (FIN, not a reset: the reply came first).
  pollfd p{conn, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  uint8_t b;
  EXPECT_EQ(recv(conn, &b, 1, 0), 0);
  close(conn);
  EXPECT_EQ(WaitExit(old_process, milliseconds(10000)), 0);
  // A new connection reaches the successor.
  auto again = nodedns::testing::TcpExchange(dns_port_,
                                             BuildQuery("slow.tcp.test.", kTypeA, false, false, 8));
  ASSERT_TRUE(again.has_value());
  ASSERT_NO_FATAL_FAILURE(nodedns::testing::StopNodedns(next));
}

TEST_F(HandoverIntegrationTest, TheSuccessorAnswersTheHottestNamesFromTheInheritedCache) {
  ScriptedUpstream upstream([](const SeenQuery& q) { return Answer(q, 0); });
  Process& old_process = Start(Args(upstream.port(), 2));
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(nodedns::testing::UdpExchange(
        dns_port_, BuildQuery("w" + std::to_string(i) + ".warm.test.", kTypeA)));
  }
  const int asked = upstream.queries();
  Process& next = Start(Args(upstream.port(), 2));
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(WaitExit(old_process, milliseconds(10000)), 0);
  EXPECT_EQ(Metric("nodedns_handover_inherited_cache_entries"), 50);
  for (int i = 0; i < 50; ++i) {
    auto r = nodedns::testing::UdpExchange(
        dns_port_, BuildQuery("w" + std::to_string(i) + ".warm.test.", kTypeA));
    ASSERT_TRUE(r.has_value());
    // The TTL went on counting down: the remaining lifetime crossed, not a fresh 300.
    EXPECT_EQ(nodedns::testing::AnswerAddresses(*r), std::vector<std::string>{"192.0.2.1"});
  }
  EXPECT_EQ(upstream.queries(), asked) << "names the predecessor had cached went upstream";
  EXPECT_EQ(Metric("nodedns_cache_hits_total"), 50);
  ASSERT_NO_FATAL_FAILURE(nodedns::testing::StopNodedns(next));
}

TEST_F(HandoverIntegrationTest, WithLingerTheOldProcessIdlesUntilSigterm) {
  // As node-cache runs under a kubelet, which would restart a container that exits.
  ScriptedUpstream upstream([](const SeenQuery& q) { return Answer(q, 0); });
  Process& old_process = Start(Args(upstream.port(), 1, {"--handover-linger"}));
  Process& next = Start(Args(upstream.port(), 1, {"--handover-linger"}));
  ASSERT_FALSE(HasFatalFailure());
  const auto deadline = Clock::now() + milliseconds(10000);
  while (old_process.Log().find("drained; idle until SIGTERM") == std::string::npos &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_NE(old_process.Log().find("drained; idle until SIGTERM"), std::string::npos)
      << old_process.Log();
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_TRUE(old_process.Running());
  // Idle: it answers nothing, the successor everything, on the same port.
  EXPECT_TRUE(nodedns::testing::UdpExchange(dns_port_, BuildQuery("linger.test.", kTypeA)));
  EXPECT_EQ(Metric("nodedns_handover_inherited_sockets"), 3);
  ASSERT_NO_FATAL_FAILURE(nodedns::testing::StopNodedns(old_process));
  // Its exit takes nothing of the successor's: the handover PATH is still there for the next.
  EXPECT_EQ(access((dir_ + "/handover.sock").c_str(), F_OK), 0);
  EXPECT_TRUE(nodedns::testing::UdpExchange(dns_port_, BuildQuery("linger2.test.", kTypeA)));
  ASSERT_NO_FATAL_FAILURE(nodedns::testing::StopNodedns(next));
}

TEST_F(HandoverIntegrationTest, WithoutCacheShareTheSuccessorStartsCold) {
  ScriptedUpstream upstream([](const SeenQuery& q) { return Answer(q, 0); });
  Process& old_process = Start(Args(upstream.port(), 1, {"--handover-cache-percent", "0"}));
  ASSERT_TRUE(nodedns::testing::UdpExchange(dns_port_, BuildQuery("cold.test.", kTypeA)));
  Process& next = Start(Args(upstream.port(), 1));
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(WaitExit(old_process, milliseconds(10000)), 0);
  EXPECT_EQ(Metric("nodedns_handover_inherited_cache_entries"), 0);
  EXPECT_EQ(Metric("nodedns_handover_inherited_sockets"), 3);
  ASSERT_NO_FATAL_FAILURE(nodedns::testing::StopNodedns(next));
}

TEST_F(HandoverIntegrationTest, APredecessorThatDoesNotSpeakTheProtocolIsCountedAndBypassed) {
  ScriptedUpstream upstream([](const SeenQuery& q) { return Answer(q, 0); });
  // Something else listens at PATH: it accepts and answers garbage.
  const std::string path = dir_ + "/handover.sock";
  const int fake = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(bind(fake, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fake, 1), 0);
  std::thread peer([fake] {
    const int c = accept(fake, nullptr, nullptr);
    char buf[64];
    recv(c, buf, sizeof buf, 0);
    send(c, "garbage!", 8, 0);
    close(c);
  });
  Process& p = Start(Args(upstream.port(), 1));
  peer.join();
  close(fake);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_NE(p.Log().find("handover from the process at " + path +
                         " failed (not a nodedns handover socket); binding next to it"),
            std::string::npos)
      << p.Log();
  EXPECT_EQ(Metric("nodedns_handover_fallback"), 1);
  EXPECT_TRUE(nodedns::testing::UdpExchange(dns_port_, BuildQuery("fallback.test.", kTypeA)));
  ASSERT_NO_FATAL_FAILURE(nodedns::testing::StopNodedns(p));
}

TEST_F(HandoverIntegrationTest, ASuccessorThatDiesBeforeServingLeavesThePredecessorServing) {
  ScriptedUpstream upstream([](const SeenQuery& q) { return Answer(q, 0); });
  Process& old_process = Start(Args(upstream.port(), 1));
  // A successor that cannot serve: its HTTP address is taken, so it exits 2 after the
  // exchange, before it confirms.
  const int blocker = socket(AF_INET, SOCK_STREAM, 0);
  const uint16_t taken = FreePorts(1)[0];
  const sockaddr_in addr = nodedns::testing::Loopback(taken);
  ASSERT_EQ(bind(blocker, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(blocker, 1), 0);
  const std::vector<std::string> args = Args(upstream.port(), 1, {}, taken);
  Process failing;
  ASSERT_TRUE(failing.Start(args, dir_ + "/failing.log"));
  const auto deadline = Clock::now() + milliseconds(10000);
  while (failing.Running() && Clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(10));
  const auto status = failing.Stop(milliseconds(0));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 2) << failing.Log();
  close(blocker);
  // The predecessor noticed, counted it and serves on.
  const auto until = Clock::now() + milliseconds(10000);
  while (Metric("nodedns_handover_failures_total") != 1 && Clock::now() < until) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(Metric("nodedns_handover_failures_total"), 1) << old_process.Log();
  EXPECT_TRUE(old_process.Running());
  EXPECT_TRUE(nodedns::testing::UdpExchange(dns_port_, BuildQuery("still.test.", kTypeA)));
  EXPECT_TRUE(nodedns::testing::TcpExchange(dns_port_, BuildQuery("still.test.", kTypeA)));
  ASSERT_NO_FATAL_FAILURE(nodedns::testing::StopNodedns(old_process));
}

}  // namespace
