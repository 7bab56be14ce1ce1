// podscan: the parsers on text the kernel writes, and ScanNode on a fixture proc tree (the real
// /proc with real namespaces is tests/integration/node_audit_test.sh).
#include "podscan/pod_scan.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_proc.h"

namespace nodedns::podscan {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr char kUid[] = "3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b";
constexpr char kCid[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(ParseNamespaceLinkTest, ReadsTheInodeOfAnyNamespaceLink) {
  EXPECT_EQ(ParseNamespaceLink("net:[4026531992]"), 4026531992u);
  EXPECT_EQ(ParseNamespaceLink("mnt:[1]"), 1u);
  EXPECT_EQ(ParseNamespaceLink("net:[]"), std::nullopt);
  EXPECT_EQ(ParseNamespaceLink("net:[12"), std::nullopt);
  EXPECT_EQ(ParseNamespaceLink("/proc/1/ns/net"), std::nullopt);
  EXPECT_EQ(ParseNamespaceLink("net:[x1]"), std::nullopt);
}

TEST(ParseCgroupTest, CgroupfsDriverOnCgroupV1) {
  const std::string text = std::string("12:pids:/kubepods/burstable/pod") + kUid + "/" + kCid +
                           "\n11:cpu,cpuacct:/kubepods/burstable/pod" + kUid + "/" + kCid +
                           "\n1:name=systemd:/kubepods/burstable/pod" + kUid + "/" + kCid + "\n";
  CgroupInfo info = ParseCgroup(text);
  EXPECT_EQ(info.pod_uid, kUid);
  EXPECT_EQ(info.container_id, kCid);
  EXPECT_EQ(info.qos, "burstable");
}

TEST(ParseCgroupTest, SystemdDriverOnCgroupV2WithUnderscoresInTheUid) {
  std::string uid = kUid;
  for (char& c : uid) {
    if (c == '-') c = '_';
  }
  const std::string text =
      "0::/kubepods.slice/kubepods-besteffort.slice/"
      "kubepods-besteffort-pod" +
      uid + ".slice/cri-containerd-" + kCid + ".scope\n";
  CgroupInfo info = ParseCgroup(text);
  EXPECT_EQ(info.pod_uid, kUid);
  EXPECT_EQ(info.container_id, kCid);
  EXPECT_EQ(info.qos, "besteffort");
}

TEST(ParseCgroupTest, GuaranteedPodsHaveNoQosLevelInThePath) {
  CgroupInfo systemd = ParseCgroup(std::string("0::/kubepods.slice/kubepods-pod") + kUid +
                                   ".slice/crio-" + kCid + ".scope\n");
  EXPECT_EQ(systemd.pod_uid, kUid);
  EXPECT_EQ(systemd.qos, "guaranteed");
  EXPECT_EQ(systemd.container_id, kCid);
  CgroupInfo cgroupfs = ParseCgroup(std::string("0::/kubepods/pod") + kUid + "/" + kCid + "\n");
  EXPECT_EQ(cgroupfs.pod_uid, kUid);
  EXPECT_EQ(cgroupfs.qos, "guaranteed");
}

TEST(ParseCgroupTest, NotAPod) {
  EXPECT_EQ(ParseCgroup("0::/system.slice/ssh.service\n").pod_uid, "");
  EXPECT_EQ(ParseCgroup("0::/\n").pod_uid, "");
  EXPECT_EQ(ParseCgroup("").pod_uid, "");
  // "pod" followed by something that is not a UID.
  EXPECT_EQ(ParseCgroup("0::/kubepods/burstable/podnot-a-uid/x\n").pod_uid, "");
  // A UID outside kubepods does not make a pod.
  EXPECT_EQ(ParseCgroup(std::string("0::/user.slice/pod") + kUid + "\n").pod_uid, "");
}

TEST(ParseFibTrieLocalTest, LocalHostLeavesWithoutLoopbackOrLinkLocal) {
  const char* text =
      "Main:\n"
      "  +-- 0.0.0.0/0 3 0 5\n"
      "     |-- 0.0.0.0\n"
      "        /0 universe UNICAST\n"
      "     +-- 10.53.1.0/24 2 0 2\n"
      "        |-- 10.53.1.0\n"
      "           /24 link UNICAST\n"
      "        |-- 10.53.1.2\n"
      "           /32 host LOCAL\n"
      "        |-- 10.53.1.255\n"
      "           /32 link BROADCAST\n"
      "     +-- 127.0.0.0/8 2 0 2\n"
      "        |-- 127.0.0.1\n"
      "           /32 host LOCAL\n"
      "     |-- 169.254.20.10\n"
      "        /32 host LOCAL\n"
      "Local:\n"
      "     |-- 10.53.1.2\n"
      "        /32 host LOCAL\n"
      "     |-- 10.60.0.7\n"
      "        /32 host LOCAL\n";
  EXPECT_THAT(ParseFibTrieLocal(text), ElementsAre("10.53.1.2", "10.60.0.7"));
  EXPECT_THAT(ParseFibTrieLocal(""), IsEmpty());
}

TEST(ParseIfInet6Test, GlobalAndUniqueLocalOnly) {
  const char* text =
      "00000000000000000000000000000001 01 80 10 80       lo\n"
      "fd530001000000000000000000000002 03 40 00 80     eth0\n"
      "fe80000000000000b0cdeffffe012345 03 40 20 80     eth0\n"
      "20010db8000000000000000000000010 03 40 00 80     eth0\n"
      "garbage\n";
  EXPECT_THAT(ParseIfInet6(text), ElementsAre("fd53:1::2", "2001:db8::10"));
}

class ScanNodeTest : public ::testing::Test {
 protected:
  void Process(int pid, int mnt, int net, const std::string& cgroup) {
    proc_.Process(pid, mnt, net, cgroup);
  }
  void Write(int pid, const std::string& file, const std::string& text) {
    proc_.Write(pid, file, text);
  }
  void Addresses(int pid, const std::string& v4) { proc_.Address(pid, v4); }

  testing::FakeProc proc_;
  const std::string root_ = proc_.root();
};

TEST_F(ScanNodeTest, GroupsContainersByNetworkNamespaceAndSkipsTheHost) {
  const std::string pod_cgroup = std::string("0::/kubepods/besteffort/pod") + kUid + "/";
  Process(1, 100, 200, "0::/init.scope\n");
  Process(2, 100, 200, "0::/system.slice/kubelet.service\n");  // host process
  // Pod "web-0": a sandbox without /etc, an app container with resolv.conf and hostname, and a
  // second process of the app container.
  Process(10, 110, 210, pod_cgroup + std::string(64, 'a') + "\n");
  Addresses(10, "10.244.1.5");
  Process(11, 111, 210, pod_cgroup + kCid + "\n");
  Write(11, "root/etc/resolv.conf", "nameserver 169.254.20.10\nsearch default.svc.cluster.local\n");
  Write(11, "root/etc/hostname", "web-0\n");
  Process(12, 111, 210, pod_cgroup + kCid + "\n");
  // A container outside any pod cgroup in a namespace of its own (a test's unshare, nspawn).
  Process(20, 120, 220, "0::/user.slice\n");
  Write(20, "root/etc/hostname", "box\n");
  // A hostNetwork pod's container and a host service with a private /tmp.
  Process(30, 130, 200,
          "0::/kubepods.slice/kubepods-pod11111111_2222_3333_4444_555555555555"
          ".slice/cri-containerd-" +
              std::string(64, 'b') + ".scope\n");
  Process(31, 131, 200, "0::/system.slice/chronyd.service\n");
  // A process that exited mid-scan: its ns links point nowhere.
  std::filesystem::create_directories(root_ + "/40");
  // A process whose cgroup cannot be read (a directory where the file should be).
  Process(41, 141, 241, "");
  std::filesystem::remove(root_ + "/41/cgroup");
  std::filesystem::create_directories(root_ + "/41/cgroup");
  // Not processes.
  std::filesystem::create_directories(root_ + "/self");
  std::filesystem::create_directories(root_ + "/net");

  std::string error;
  std::optional<ScanResult> r = ScanNode({.proc = root_, .host_pid = 1}, &error);
  ASSERT_TRUE(r.has_value()) << error;
  EXPECT_EQ(r->processes, 10u);
  EXPECT_EQ(r->host_processes, 2u);
  EXPECT_EQ(r->host_private_mounts, 1u);
  EXPECT_EQ(r->vanished, 1u);
  EXPECT_EQ(r->denied, 1u);
  ASSERT_EQ(r->pods.size(), 2u);
  const DiscoveredPod& box = r->pods[0];
  EXPECT_EQ(box.name, "box");
  EXPECT_EQ(box.cgroup.pod_uid, "");
  EXPECT_EQ(box.resolv_conf_path, "");
  const DiscoveredPod& web = r->pods[1];
  EXPECT_EQ(web.name, "web-0");
  EXPECT_EQ(web.net_ns, 210u);
  EXPECT_EQ(web.cgroup.pod_uid, kUid);
  EXPECT_EQ(web.cgroup.qos, "besteffort");
  EXPECT_THAT(web.container_ids, ElementsAre(std::string(64, 'a'), kCid));
  EXPECT_THAT(web.pids, ElementsAre(10, 11, 12));
  EXPECT_EQ(web.containers, 2);
  EXPECT_THAT(web.addresses, ElementsAre("10.244.1.5"));
  EXPECT_EQ(web.resolv_conf_path, root_ + "/11/root/etc/resolv.conf");
  EXPECT_THAT(web.resolv_conf, ::testing::HasSubstr("default.svc.cluster.local"));
  EXPECT_FALSE(web.resolv_confs_differ);
  ASSERT_EQ(r->host_network.size(), 1u);
  EXPECT_EQ(r->host_network[0].cgroup.pod_uid, "11111111-2222-3333-4444-555555555555");
  EXPECT_THAT(r->host_network[0].pids, ElementsAre(30));
}

TEST_F(ScanNodeTest, ContainersOfOnePodReadingDifferentFilesGiveTheMajoritysFile) {
  Process(1, 100, 200, "");
  Process(10, 110, 210, "");
  Write(10, "root/etc/resolv.conf", "nameserver 10.96.0.10\n");
  Process(11, 111, 210, "");
  Write(11, "root/etc/resolv.conf", "nameserver 8.8.8.8\n");
  std::optional<ScanResult> r = ScanNode({.proc = root_}, nullptr);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->pods.size(), 1u);
  EXPECT_TRUE(r->pods[0].resolv_confs_differ);
  EXPECT_EQ(r->pods[0].resolv_conf, "nameserver 10.96.0.10\n");  // a tie: the earliest PID's
  // Two containers against one: the majority's, whatever the PIDs.
  Process(12, 112, 210, "");
  Write(12, "root/etc/resolv.conf", "nameserver 8.8.8.8\n");
  r = ScanNode({.proc = root_}, nullptr);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->pods[0].resolv_conf, "nameserver 8.8.8.8\n");
  EXPECT_EQ(r->pods[0].resolv_conf_path, root_ + "/11/root/etc/resolv.conf");
}

TEST_F(ScanNodeTest, KthreaddStandsInForAnUnreadablePidOne) {
  Process(2, 100, 200, "");
  Write(2, "stat", "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0\n");
  Process(10, 110, 210, "");
  std::optional<ScanResult> r = ScanNode({.proc = root_}, nullptr);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->host_processes, 1u);
  ASSERT_EQ(r->pods.size(), 1u);
  // Not when PID 2 is anything else (a container's second process has a parent).
  Write(2, "stat", "2 (sh) S 1 0 0 0 -1 0 0 0 0\n");
  EXPECT_FALSE(ScanNode({.proc = root_}, nullptr).has_value());
}

TEST_F(ScanNodeTest, AnUnreadableHostIsTheOnlyFatalError) {
  std::string error;
  EXPECT_FALSE(ScanNode({.proc = root_}, &error).has_value());
  EXPECT_THAT(error, ::testing::HasSubstr("/1/ns/mnt"));
  EXPECT_FALSE(ScanNode({.proc = root_ + "/missing"}, &error).has_value());
}

}  // namespace
}  // namespace nodedns::podscan
