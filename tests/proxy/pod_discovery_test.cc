// serve --discover-pods (proxy/pod_discovery.h): which resolv.conf is the cluster default, what a
// scan teaches the rewrite, and the discovery thread on a fixture proc tree.
#include "proxy/pod_discovery.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_proc.h"

namespace nodedns::proxy {
namespace {

const std::vector<std::string> kNoNodeSearch;

TEST(ClusterDefaultNamespaceTest, TheKubeletClusterFirstSearchPathGivesItsNamespace) {
  EXPECT_EQ(ClusterDefaultNamespace("nameserver 169.254.20.10\n"
                                    "search shop.svc.cluster.local svc.cluster.local "
                                    "cluster.local\noptions ndots:5\n",
                                    "cluster.local", kNoNodeSearch),
            "shop");
  // ndots does not matter; trailing dots and case do not either.
  EXPECT_EQ(ClusterDefaultNamespace("search Shop.SVC.cluster.local. svc.cluster.local "
                                    "cluster.local.\noptions ndots:2\n",
                                    "cluster.local.", kNoNodeSearch),
            "shop");
  // The node's domains follow, exactly as nodedns knows them.
  const std::vector<std::string> node = {"corp.example"};
  EXPECT_EQ(ClusterDefaultNamespace("search a.svc.cluster.local svc.cluster.local cluster.local "
                                    "corp.example\n",
                                    "cluster.local", node),
            "a");
}

TEST(ClusterDefaultNamespaceTest, AnythingElseIsNotAGuessTheRewriteMayMake) {
  const std::string zone = "cluster.local";
  const std::vector<std::string> node = {"corp.example"};
  for (const char* text : {
           "nameserver 10.0.0.2\n",                           // dnsPolicy Default
           "search a.svc.cluster.local svc.cluster.local\n",  // one missing
           "search a.svc.cluster.local svc.cluster.local cluster.local x.io\n",  // dnsConfig
           "search a.svc.other.local svc.other.local other.local\n",             // another zone
           "search svc.cluster.local a.svc.cluster.local cluster.local\n",       // order
           "search a.b.svc.cluster.local svc.cluster.local cluster.local\n",     // not a label
       }) {
    EXPECT_EQ(ClusterDefaultNamespace(text, zone, kNoNodeSearch), std::nullopt) << text;
  }
  // The node's domains differ from nodedns's: the rewrite's candidates would not be the walk.
  EXPECT_EQ(ClusterDefaultNamespace("search a.svc.cluster.local svc.cluster.local cluster.local "
                                    "lab.example\n",
                                    zone, node),
            std::nullopt);
  EXPECT_EQ(ClusterDefaultNamespace("search a.svc.cluster.local svc.cluster.local cluster.local\n",
                                    zone, node),
            std::nullopt);
  // A search line musl drops (256 characters or more) makes the two libcs walk differently.
  EXPECT_EQ(ClusterDefaultNamespace("search a.svc.cluster.local svc.cluster.local cluster.local" +
                                        std::string(200, ' ') + "\n",
                                    zone, kNoNodeSearch),
            std::nullopt);
}

TEST(DiscoveredClientsTest, EveryAddressOfEveryPodWithAResolvConf) {
  podscan::ScanResult scan;
  podscan::DiscoveredPod a;
  a.addresses = {"10.0.0.5", "fd00::5"};
  a.resolv_conf = "search shop.svc.cluster.local svc.cluster.local cluster.local\n";
  a.resolv_conf_path = "/proc/5/root/etc/resolv.conf";
  podscan::DiscoveredPod custom = a;
  custom.addresses = {"10.0.0.6"};
  custom.resolv_conf = "search example.org\n";
  podscan::DiscoveredPod unread;
  unread.addresses = {"10.0.0.7"};
  podscan::DiscoveredPod differ = a;
  differ.addresses = {"10.0.0.8"};
  differ.resolv_confs_differ = true;
  scan.pods = {a, custom, unread, differ};
  const auto got = DiscoveredClients(scan, "cluster.local", kNoNodeSearch);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].address, "10.0.0.5");
  EXPECT_EQ(got[0].ns, "shop");
  EXPECT_EQ(got[1].address, "fd00::5");
  EXPECT_EQ(got[1].ns, "shop");
  EXPECT_EQ(got[2].address, "10.0.0.6");
  EXPECT_EQ(got[2].ns, "");  // never rewritten on a guess
  EXPECT_EQ(got[3].address, "10.0.0.8");
  EXPECT_EQ(got[3].ns, "shop");  // the file the scan chose (pod_scan.h)
}

TEST(PodDiscoveryTest, ScansAtOnceThenEveryIntervalAndReportsThroughTheCallback) {
  std::optional<testing::FakeProc> proc(std::in_place);
  const std::string root = proc->root();
  proc->Process(1, 1, 1);
  proc->Process(10, 2, 2);
  proc->Address(10, "10.0.0.5");
  std::atomic<int> calls{0};
  std::atomic<size_t> pods{0};
  {
    PodDiscovery d({.proc = root, .interval_ms = 50}, [&](const podscan::ScanResult& scan) {
      pods = scan.pods.size();
      ++calls;
    });
    EXPECT_EQ(d.Last(), nullptr);
    d.Start();
    for (int i = 0; i < 200 && calls < 3; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_GE(calls.load(), 3);
    EXPECT_EQ(pods.load(), 1u);
    ASSERT_NE(d.Last(), nullptr);
    EXPECT_EQ(d.Last()->pods[0].addresses, std::vector<std::string>{"10.0.0.5"});
    EXPECT_GE(d.stats().scans, 3u);
    EXPECT_EQ(d.stats().pods, 1u);
  }  // the destructor stops the thread at once, mid-interval
  proc.reset();
  // An unreadable proc root is counted, not fatal.
  PodDiscovery bad({.proc = root + "/gone", .interval_ms = 20}, nullptr);
  bad.Start();
  for (int i = 0; i < 200 && bad.stats().failures < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(bad.stats().failures, 2u);
  EXPECT_EQ(bad.Last(), nullptr);
}

}  // namespace
}  // namespace nodedns::proxy
