// `nodedns node-cache` with -setupinterface (its default) end to end, in a private network
// namespace: the test process unshares one (root needed; CI runs as root) before it starts knotd
// and nodedns, which inherit it. A bridge named by -interfacename stands in for node-cache's dummy
// link (this project's kernels may lack dummy support). nodedns must put -localip on it before it
// binds port 53 there, answer on it, re-add the address when someone removes it, and remove it
// at SIGTERM unless -skipteardown. `ip` inspects the namespace, independently of nodedns.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
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
                                  "127.0.0.1:" + std::to_string(kMetricsPort),
                                  "-setupiptables=false"};
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
  ASSERT_NO_FATAL_FAILURE(Start());
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
}

TEST_F(NodeSetupTest, PeriodicCheckPutsARemovedAddressBackAndCountsIt) {
  ASSERT_NO_FATAL_FAILURE(Start({"-syncinterval", "1s"}));
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
  std::vector<std::string> args = Args({"-interfacename", "nl-missing"});
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

}  // namespace
