// `nodedns node-cache` with -setupinterface and -setupiptables (its defaults) end to end, in a
// private network namespace: the test process unshares one (root needed; CI runs as root) before
// it starts knotd and nodedns, which inherit it. A bridge named by -interfacename stands in for
// node-cache's dummy link (this project's kernels may lack dummy support). nodedns must put
// -localip on it before it binds port 53 there, answer on it with its queries kept out of
// conntrack, drop root once serving, put back an address or a rule someone removed, refuse a
// second instance, and remove what it added at SIGTERM (and its rules at any exit) unless
// -skipteardown. `ip`, `nft`, `conntrack` and /proc inspect, independently of nodedns.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/dns_builder.h"
#include "tests/testing/knot.h"
#include "tests/testing/net.h"
#include "tests/testing/nodedns_process.h"
#include "tests/testing/process.h"

namespace {

using nodedns::testing::AnswerAddresses;
using nodedns::testing::BuildQuery;
using nodedns::testing::Bytes;
using nodedns::testing::FreePorts;
using nodedns::testing::HttpGet;
using nodedns::testing::KnotServer;
using nodedns::testing::MetricValue;
using nodedns::testing::Process;
using nodedns::testing::RunCommand;
using nodedns::testing::WriteFile;
using Clock = std::chrono::steady_clock;

constexpr char kLocalIp[] = "169.254.20.10";
constexpr char kBridge[] = "br-nl";
constexpr uint16_t kMetricsPort = 9353;

bool Sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

bool HaveRules() { return Sh("nft list table inet nodedns"); }
std::string RulesText() { return RunCommand("nft list table inet nodedns 2>&1"); }

// How many conntrack entries there are for UDP to ip:port.
size_t TrackedTo(const std::string& ip, uint16_t port) {
  const std::string out = RunCommand("conntrack -L -p udp --dport " + std::to_string(port) +
                                     " -d " + ip + " 2>/dev/null");
  size_t n = 0;
  for (size_t p = out.find("dst=" + ip); p != std::string::npos; p = out.find("dst=" + ip, p + 1)) {
    ++n;
  }
  return n;
}

std::string Prerouting() { return RunCommand("nft list chain inet nodedns prerouting 2>&1"); }

// A field of /proc/PID[/task/TID]/status ("Uid", "CapEff").
std::string Status(const std::string& path, const std::string& field) {
  std::ifstream in(path + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return line.substr(field.size() + 2);
  }
  return "";
}

std::string BridgeAddrs() { return RunCommand(std::string("ip -o addr show dev ") + kBridge); }
bool HasLocalIp() { return BridgeAddrs().find(std::string(kLocalIp) + "/32") != std::string::npos; }

// One UDP query to kLocalIp:53.
std::optional<Bytes> AskLocalIp(const std::string& name) {
  return nodedns::testing::UdpExchangeTo(kLocalIp, 53, BuildQuery(name, 1));
}

class NodeSetupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for unshare(CLONE_NEWNET)";
    if (!nodedns::testing::HaveKnot()) GTEST_SKIP() << "needs knotd";
    // A fresh namespace per test: port 53 and 169.254.20.10 are the test's own, and the host's
    // interfaces are never touched.
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    ASSERT_TRUE(Sh("ip link set lo up"));
    ASSERT_TRUE(Sh(std::string("ip link add ") + kBridge + " type bridge"));
    dir_ = std::filesystem::temp_directory_path() /
           ("nodedns-nodesetup-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    const auto ports = FreePorts(1);
    ASSERT_EQ(ports.size(), 1u);
    ASSERT_NO_FATAL_FAILURE(knot_.Start(
        dir_ + "/knot", ports[0],
        {{"example.test",
          "$ORIGIN example.test.\n$TTL 300\n@ SOA ns hostmaster 1 7200 1800 86400 60\n@ NS ns\n"
          "ns A 192.0.2.53\nwww A 192.0.2.1\n"}}));
    // No base Corefile: node-cache serves -conf as it is.
    WriteFile(dir_ + "/Corefile",
              std::string(".:53 {\n    bind ") + kLocalIp +
                  "\n    cache 30\n    forward . 127.0.0.1:" + std::to_string(ports[0]) + "\n}\n");
  }

  void TearDown() override {
    if (started_) nodedns::testing::StopNodedns(nodedns_);
    knot_.Stop();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::vector<std::string> Args(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> a = {NODEDNS_BINARY,
                                  "node-cache",
                                  "-localip",
                                  kLocalIp,
                                  "-interfacename",
                                  kBridge,
                                  "-conf",
                                  dir_ + "/Corefile",
                                  "-basecorefile",
                                  dir_ + "/no-such-Corefile.base",
                                  "-kubednscm",
                                  dir_ + "/no-such-kube-dns",
                                  "-metrics-listen-address",
                                  "127.0.0.1:" + std::to_string(kMetricsPort)};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  void Start(const std::vector<std::string>& extra = {}) {
    started_ = true;
    ASSERT_NO_FATAL_FAILURE(
        nodedns::testing::StartNodedns(nodedns_, Args(extra), dir_ + "/nodedns.log"));
  }
  void Stop() {
    started_ = false;
    ASSERT_NO_FATAL_FAILURE(nodedns::testing::StopNodedns(nodedns_));
  }

  void ExpectAnswers() {
    auto r = AskLocalIp("www.example.test.");
    ASSERT_TRUE(r.has_value()) << "no reply from " << kLocalIp << ":53\n" << nodedns_.Log();
    EXPECT_EQ(AnswerAddresses(*r), std::vector<std::string>{"192.0.2.1"});
  }

  std::string dir_;
  KnotServer knot_;
  Process nodedns_;
  bool started_ = false;
};

TEST_F(NodeSetupTest, AddsTheAddressServesOnItAndRemovesItAtSigterm) {
  ASSERT_FALSE(HasLocalIp());
  ASSERT_NO_FATAL_FAILURE(Start({"-setupiptables=false"}));
  EXPECT_TRUE(HasLocalIp()) << BridgeAddrs();
  EXPECT_NE(RunCommand(std::string("ip -o link show dev ") + kBridge).find(",UP"),
            std::string::npos);
  ASSERT_NO_FATAL_FAILURE(ExpectAnswers());
  ASSERT_NO_FATAL_FAILURE(Stop());
  EXPECT_FALSE(HasLocalIp()) << BridgeAddrs() << nodedns_.Log();
  EXPECT_TRUE(Sh(std::string("ip link show dev ") + kBridge)) << "a bridge it did not create";
}

TEST_F(NodeSetupTest, SkipTeardownLeavesTheAddress) {
  ASSERT_NO_FATAL_FAILURE(Start({"-skipteardown"}));
  ASSERT_NO_FATAL_FAILURE(ExpectAnswers());
  ASSERT_NO_FATAL_FAILURE(Stop());
  EXPECT_TRUE(HasLocalIp()) << BridgeAddrs();
  // The rules too, unowned (node-cache's way), and a start after that exit takes them over.
  EXPECT_TRUE(HaveRules());
  EXPECT_EQ(RulesText().find("flags owner"), std::string::npos) << RulesText();
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_NE(RulesText().find("flags owner"), std::string::npos) << RulesText();
  ASSERT_NO_FATAL_FAILURE(ExpectAnswers());
  ASSERT_NO_FATAL_FAILURE(Stop());
  EXPECT_FALSE(HaveRules());
  EXPECT_FALSE(HasLocalIp()) << "the address the first run left goes at this clean exit\n"
                             << BridgeAddrs();
}

TEST_F(NodeSetupTest, PeriodicCheckPutsARemovedAddressBackAndCountsIt) {
  ASSERT_NO_FATAL_FAILURE(Start({"-syncinterval", "1s", "-setupiptables=false"}));
  ASSERT_TRUE(Sh(std::string("ip addr del ") + kLocalIp + "/32 dev " + kBridge));
  ASSERT_FALSE(HasLocalIp());
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!HasLocalIp() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(HasLocalIp()) << "not re-added within 10 s\n" << nodedns_.Log();
  auto metrics = HttpGet(kMetricsPort, "/metrics");
  ASSERT_TRUE(metrics.has_value());
  EXPECT_EQ(
      MetricValue(*metrics, "coredns_nodecache_setup_errors_total{errortype=\"interface_add\"}"),
      1);
  EXPECT_EQ(
      MetricValue(*metrics, "coredns_nodecache_setup_errors_total{errortype=\"interface_check\"}"),
      0);
  ASSERT_NO_FATAL_FAILURE(ExpectAnswers());
}

TEST_F(NodeSetupTest, AMissingInterfaceIsCreatedOrExitsTwoNamingTheFlag) {
  std::vector<std::string> args = Args({"-interfacename", "nl-missing", "-setupiptables=false"});
  Process p;
  ASSERT_TRUE(p.Start(args, dir_ + "/missing.log"));
  // Either it cannot create a dummy link (this kernel) and exits 2 at once, or it can and serves.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (p.Running() && Clock::now() < deadline &&
         p.Log().find("serving on") == std::string::npos) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (p.Running()) {
    EXPECT_NE(RunCommand("ip -d -o link show dev nl-missing").find("dummy"), std::string::npos);
    const auto st = p.Stop(std::chrono::seconds(10));
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << p.Log();
    EXPECT_FALSE(Sh("ip link show dev nl-missing")) << "the dummy it created must go at teardown";
  } else {
    const auto st = p.Stop(std::chrono::seconds(1));
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 2) << p.Log();
    const std::string log = p.Log();
    EXPECT_NE(log.find("-setupinterface: "), std::string::npos) << log;
    EXPECT_NE(log.find("kernel has no dummy netdev support"), std::string::npos) << log;
  }
}

TEST_F(NodeSetupTest, QueriesSkipConntrackWhileServingAndRulesGoAtSigterm) {
  // conntrack tracks in a namespace only once a rule there uses it: a probe rule, as kube-proxy's
  // would.
  ASSERT_TRUE(Sh("nft add table ip probe"));
  ASSERT_TRUE(Sh("nft 'add chain ip probe out { type filter hook output priority 0; }'"));
  ASSERT_TRUE(Sh("nft add rule ip probe out ct state new counter"));
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string rules = RulesText();
  EXPECT_NE(rules.find("flags owner"), std::string::npos) << rules;
  EXPECT_NE(rules.find("ip daddr 169.254.20.10 meta l4proto { tcp, udp } th dport 53 notrack"),
            std::string::npos)
      << rules;
  EXPECT_NE(rules.find("ip daddr 169.254.20.10 tcp dport 8080 notrack"), std::string::npos)
      << rules;
  ASSERT_NO_FATAL_FAILURE(ExpectAnswers());
  EXPECT_EQ(TrackedTo(kLocalIp, 53), 0u) << "the query to the local IP was tracked";
  // The control: nodedns's own query to Knot (not a local IP) is tracked, so tracking works.
  EXPECT_GE(TrackedTo("127.0.0.1", knot_.port()), 1u);
  ASSERT_NO_FATAL_FAILURE(Stop());
  EXPECT_FALSE(HaveRules()) << RulesText();
  EXPECT_FALSE(HasLocalIp());
  EXPECT_TRUE(Sh("nft list table ip probe")) << "someone else's table is not its to remove";
}

TEST_F(NodeSetupTest, RulesGoWithTheProcessEvenOnSigkill) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_TRUE(HaveRules());
  ASSERT_EQ(kill(nodedns_.pid(), SIGKILL), 0);
  started_ = false;
  nodedns_.Stop(std::chrono::seconds(5));
  // The kernel removed the table with its owner's socket: pods fall back to kube-proxy's path.
  EXPECT_FALSE(HaveRules()) << RulesText();
  // The address stays (the interface is not owned), and a restart serves again.
  EXPECT_TRUE(HasLocalIp());
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(ExpectAnswers());
}

TEST_F(NodeSetupTest, ASecondInstanceExitsTwoAndTheFirstKeepsServing) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string before = RulesText();
  Process second;
  ASSERT_TRUE(
      second.Start(Args({"-metrics-listen-address", "127.0.0.1:9354"}), dir_ + "/second.log"));
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (second.Running() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const auto st = second.Stop(std::chrono::seconds(1));
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 2) << second.Log();
  EXPECT_NE(second.Log().find("-setupiptables: table inet nodedns is held by another running "
                              "process (nodedns): only one nodedns may set up this node's rules"),
            std::string::npos)
      << second.Log();
  EXPECT_EQ(RulesText(), before);
  EXPECT_TRUE(HasLocalIp()) << "the second instance must not undo the first one's address";
  ASSERT_NO_FATAL_FAILURE(ExpectAnswers());
}

TEST_F(NodeSetupTest, ServesAsNobodyWithSetupCapsOnTheSyncThreadOnly) {
  ASSERT_NO_FATAL_FAILURE(Start({"-syncinterval", "1s", "-skipteardown"}));
  const std::string proc = "/proc/" + std::to_string(nodedns_.pid());
  EXPECT_EQ(Status(proc, "Uid"), "65534\t65534\t65534\t65534") << nodedns_.Log();
  EXPECT_EQ(Status(proc, "Gid"), "65534\t65534\t65534\t65534");
  EXPECT_EQ(Status(proc, "NoNewPrivs"), "1");
  size_t threads = 0;
  for (const auto& task : std::filesystem::directory_iterator(proc + "/task")) {
    ++threads;
    const bool main = task.path().filename() == std::to_string(nodedns_.pid());
    // CAP_NET_ADMIN and CAP_NET_RAW are bits 12 and 13.
    EXPECT_EQ(Status(task.path(), "CapEff"), main ? "0000000000003000" : "0000000000000000")
        << task.path();
    EXPECT_EQ(Status(task.path(), "CapPrm"), main ? "0000000000003000" : "0000000000000000")
        << task.path();
  }
  EXPECT_GT(threads, 1u) << "the workers run in threads of their own";
  // The capability it kept is enough for the sync: a flushed chain (the unowned table of
  // -skipteardown can be flushed) comes back within a sync interval, counted.
  ASSERT_TRUE(Sh("nft flush chain inet nodedns prerouting"));
  ASSERT_EQ(Prerouting().find("notrack"), std::string::npos);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Prerouting().find("notrack") == std::string::npos && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(Prerouting().find("ip daddr 169.254.20.10 meta l4proto { tcp, udp } th dport 53"),
            std::string::npos)
      << "not restored within 10 s\n"
      << nodedns_.Log();
  auto metrics = HttpGet(kMetricsPort, "/metrics");
  ASSERT_TRUE(metrics.has_value());
  EXPECT_GE(MetricValue(*metrics, "coredns_nodecache_setup_errors_total{errortype=\"iptables\"}"),
            1)
      << *metrics << nodedns_.Log();
  ASSERT_NO_FATAL_FAILURE(ExpectAnswers());
  ASSERT_NO_FATAL_FAILURE(Stop());
  ASSERT_TRUE(Sh("nft delete table inet nodedns"));
}

TEST_F(NodeSetupTest, ADeletedInterfaceIsRecreatedOrCountedAsInterfaceAdd) {
  ASSERT_NO_FATAL_FAILURE(Start({"-syncinterval", "1s", "-setupiptables=false"}));
  ASSERT_TRUE(Sh(std::string("ip link del ") + kBridge));
  // This kernel has no dummy driver: the repair fails, says why, and counts interface_add. Where
  // the driver exists, the repair makes a dummy link, counted the same.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  double adds = 0;
  while (Clock::now() < deadline) {
    if (auto m = HttpGet(kMetricsPort, "/metrics"); m.has_value()) {
      adds = MetricValue(*m, "coredns_nodecache_setup_errors_total{errortype=\"interface_add\"}");
      if (adds >= 1) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_GE(adds, 1) << nodedns_.Log();
  const std::string log = nodedns_.Log();
  EXPECT_TRUE(log.find("kernel has no dummy netdev support") != std::string::npos ||
              log.find("re-created it") != std::string::npos)
      << log;
  auto m = HttpGet(kMetricsPort, "/metrics");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(MetricValue(*m, "coredns_nodecache_setup_errors_total{errortype=\"interface_check\"}"),
            0);
}

}  // namespace
