// NetfilterRules against the kernel: every test moves the test process into a new network
// namespace (unshare(CLONE_NEWNET); root needed, CI runs as root), where nf_tables starts empty.
// `nft` and `iptables-nft-save` inspect the result, independently of the code under test; the
// iptables-nft filter table is made by `iptables-nft` itself, as kube-proxy or a node image's
// firewall would make it.
#include "nodesetup/netfilter_rules.h"

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace nodedns::nodesetup {
namespace {

using nodedns::testing::Process;
using nodedns::testing::RunCommand;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kV4[] = "169.254.20.10";
constexpr char kClusterIp[] = "10.96.0.10";
constexpr char kV6[] = "fd00:10::10";

bool Sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }
std::string Table() { return RunCommand("nft list table inet nodedns 2>&1"); }
bool HaveTable() { return Sh("nft list table inet nodedns"); }

// The rules marked as nodedns's in `iptables` (iptables-nft, iptables-legacy) INPUT.
size_t OurRuleCount(const std::string& iptables) {
  const std::string rules = RunCommand(iptables + " -S INPUT");
  size_t n = 0;
  for (size_t p = rules.find("nodedns"); p != std::string::npos; p = rules.find("nodedns", p + 1)) {
    ++n;
  }
  return n;
}

NetfilterSpec Spec(bool owned = true) {
  NetfilterSpec s;
  s.ips = {kV4, kClusterIp, kV6};
  s.dns_port = 53;
  s.health_port = 8080;
  s.owned = owned;
  return s;
}

TEST(NotrackTableScriptTest, CoversBothFamiliesBothDirectionsAndTheHealthPort) {
  const std::string s = NotrackTableScript(Spec());
  EXPECT_THAT(s, HasSubstr("add table inet nodedns\ndelete table inet nodedns\n"));
  EXPECT_THAT(s, HasSubstr("flags owner"));
  EXPECT_THAT(s, HasSubstr("hook prerouting priority raw"));
  EXPECT_THAT(s, HasSubstr("hook output priority raw"));
  EXPECT_THAT(s, HasSubstr("ip daddr { 169.254.20.10, 10.96.0.10 } meta l4proto { tcp, udp } "
                           "th dport 53 notrack"));
  EXPECT_THAT(s, HasSubstr("ip6 daddr fd00:10::10 meta l4proto { tcp, udp } th dport 53 notrack"));
  EXPECT_THAT(s, HasSubstr("ip saddr { 169.254.20.10, 10.96.0.10 } meta l4proto { tcp, udp } "
                           "th sport 53 notrack"));
  EXPECT_THAT(s, HasSubstr("ip6 daddr fd00:10::10 tcp dport 8080 notrack"));
  EXPECT_THAT(s, HasSubstr("ip6 saddr fd00:10::10 tcp sport 8080 notrack"));
  NetfilterSpec plain = Spec(false);
  plain.health_port = 0;
  plain.ips = {kV4};
  const std::string p = NotrackTableScript(plain);
  EXPECT_THAT(p, Not(HasSubstr("owner")));
  EXPECT_THAT(p, Not(HasSubstr("8080")));
  EXPECT_THAT(p, Not(HasSubstr("ip6")));
}

TEST(AcceptRuleBodiesTest, OneRulePerAddressAndProtocolInIptablesShape) {
  NetfilterSpec s = Spec();
  EXPECT_THAT(AcceptRuleBodies(s, "ip6", "INPUT"),
              ElementsAre("ip6 daddr fd00:10::10 tcp dport 53 counter accept comment "
                          "\"nodedns: node-local DNS\"",
                          "ip6 daddr fd00:10::10 udp dport 53 counter accept comment "
                          "\"nodedns: node-local DNS\""));
  EXPECT_EQ(AcceptRuleBodies(s, "ip", "OUTPUT").size(), 4u);
  EXPECT_THAT(AcceptRuleBodies(s, "ip", "OUTPUT")[0],
              HasSubstr("ip saddr 169.254.20.10 tcp sport 53"));
  s.ips = {kV4};
  EXPECT_THAT(AcceptRuleBodies(s, "ip6", "INPUT"), IsEmpty());
}

TEST(NetfilterRulesCreateTest, RejectsWhatIsNotAnAddress) {
  NetfilterSpec s;
  s.ips = {"169.254.20.300"};
  auto r = NetfilterRules::Create(s);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("\"169.254.20.300\" is not an IP address"));
  EXPECT_FALSE(NetfilterRules::Create(NetfilterSpec{}).ok());
}

class NetfilterRulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for unshare(CLONE_NEWNET)";
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << "unshare(CLONE_NEWNET): " << std::strerror(errno);
    ASSERT_EQ(RunCommand("nft list ruleset"), "");
  }

  std::unique_ptr<NetfilterRules> Make(bool owned = true) {
    auto r = NetfilterRules::Create(Spec(owned));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : nullptr;
  }
};

TEST_F(NetfilterRulesTest, InstallsTheTableOnceAndLeavesItAloneAfter) {
  auto rules = Make();
  ASSERT_NE(rules, nullptr);
  auto r = rules->Ensure();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->table_replaced);
  EXPECT_THAT(r->accept_restored, IsEmpty()) << "no iptables-nft filter table here";
  const std::string t = Table();
  EXPECT_THAT(t, HasSubstr("flags owner"));
  EXPECT_THAT(t, HasSubstr("ip daddr { 10.96.0.10, 169.254.20.10 } meta l4proto { tcp, udp } th "
                           "dport 53 notrack"));
  EXPECT_THAT(t, HasSubstr("ip6 daddr fd00:10::10"));
  // No filter table of its own making: accept rules go only where iptables keeps its rules.
  EXPECT_FALSE(Sh("nft list table ip filter"));
  auto again = rules->Ensure();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->changed());
}

TEST_F(NetfilterRulesTest, AnOwnedTableGoesWithItsOwnerHoweverItEnds) {
  auto rules = Make();
  ASSERT_NE(rules, nullptr);
  ASSERT_TRUE(rules->Ensure().ok());
  ASSERT_TRUE(HaveTable());
  rules.reset();  // the socket closes, as at any exit, SIGKILL included; no Teardown()
  EXPECT_FALSE(HaveTable()) << Table();
}

TEST_F(NetfilterRulesTest, AnUnownedTableOutlivesItsMakerAndIsReplacedAtTheNextStart) {
  auto rules = Make(/*owned=*/false);
  ASSERT_NE(rules, nullptr);
  ASSERT_TRUE(rules->Ensure().ok());
  rules.reset();
  ASSERT_TRUE(HaveTable());
  ASSERT_THAT(Table(), Not(HasSubstr("owner")));
  // What an unclean exit leaves, with a stray rule someone added: the next start replaces it.
  ASSERT_TRUE(Sh("nft add rule inet nodedns prerouting udp dport 5353 notrack"));
  auto next = Make();
  ASSERT_NE(next, nullptr);
  auto r = next->Ensure();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->table_replaced);
  EXPECT_THAT(Table(), Not(HasSubstr("5353")));
  EXPECT_THAT(Table(), HasSubstr("flags owner"));
}

TEST_F(NetfilterRulesTest, ASecondInstanceIsRefusedAndChangesNothing) {
  auto first = Make();
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->Ensure().ok());
  const std::string before = Table();
  auto second = Make();
  ASSERT_NE(second, nullptr);
  auto r = second->Ensure();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(),
              HasSubstr("table inet nodedns is held by another running process"));
  EXPECT_THAT(r.status().message(), HasSubstr("only one nodedns may set up this node's rules"));
  EXPECT_TRUE(second->Teardown().ok());
  EXPECT_EQ(Table(), before);
}

TEST_F(NetfilterRulesTest, SomeoneElsesFlushIsRestoredByTheNextEnsure) {
  auto rules = Make(/*owned=*/false);  // an owned table cannot be flushed by anyone else
  ASSERT_NE(rules, nullptr);
  ASSERT_TRUE(rules->Ensure().ok());
  ASSERT_TRUE(Sh("nft flush chain inet nodedns prerouting"));
  ASSERT_THAT(Table(), Not(HasSubstr("th dport 53 notrack comment \"nodedns: node-local DNS\"\n"
                                     "\t}\n\n\tchain output")));
  auto r = rules->Ensure();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->table_replaced);
  EXPECT_THAT(Table(), HasSubstr("hook prerouting priority raw; policy accept;\n\t\tip daddr"));
  ASSERT_TRUE(Sh("nft delete table inet nodedns"));
  r = rules->Ensure();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->table_replaced);
  EXPECT_TRUE(HaveTable());
  EXPECT_TRUE(rules->Teardown().ok());
  EXPECT_FALSE(HaveTable());
}

TEST_F(NetfilterRulesTest, AcceptRulesGoFirstInIptablesNftFilterChainsAndComeBack) {
  // A node image's firewall: drop what is not established; untracked DNS would be dropped.
  ASSERT_TRUE(Sh("iptables-nft -P INPUT DROP"));
  ASSERT_TRUE(Sh("iptables-nft -A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT"));
  ASSERT_TRUE(Sh("iptables-nft -A OUTPUT -o lo -j ACCEPT"));
  // iptables-nft makes a built-in chain only when a command names it: here ip6 OUTPUT only.
  ASSERT_TRUE(Sh("ip6tables-nft -A OUTPUT -p tcp --dport 22 -j ACCEPT"));
  auto rules = Make();
  ASSERT_NE(rules, nullptr);
  auto r = rules->Ensure();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->accept_restored,
              ElementsAre("ip filter INPUT", "ip filter OUTPUT", "ip6 filter OUTPUT"));
  // A chain that does not exist drops nothing: it is not made.
  EXPECT_FALSE(Sh("nft list chain ip6 filter INPUT"));
  // iptables-nft reads them back as its own: kube-proxy's iptables-save/restore keep working.
  const std::string v4 = RunCommand("iptables-nft -S 2>&1");
  EXPECT_THAT(v4, Not(HasSubstr("Warning"))) << v4;
  EXPECT_THAT(v4, HasSubstr("-A INPUT -d 169.254.20.10/32 -p udp -m udp --dport 53 -m comment "
                            "--comment \"nodedns: node-local DNS\" -j ACCEPT\n"));
  EXPECT_THAT(v4, HasSubstr("-A INPUT -d 10.96.0.10/32 -p tcp -m tcp --dport 53"));
  EXPECT_THAT(v4, HasSubstr("-A OUTPUT -s 169.254.20.10/32 -p udp -m udp --sport 53"));
  // First in the chain, ahead of the firewall's own rules.
  EXPECT_LT(v4.find("--dport 53"), v4.find("ESTABLISHED")) << v4;
  const std::string v6 = RunCommand("ip6tables-nft -S 2>&1");
  EXPECT_THAT(v6, Not(HasSubstr("Warning"))) << v6;
  EXPECT_THAT(v6, HasSubstr("-A OUTPUT -s fd00:10::10/128 -p tcp -m tcp --sport 53"));
  EXPECT_THAT(RunCommand("iptables-nft-save >/dev/null; echo $?"), "0\n");

  auto same = rules->Ensure();
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_FALSE(same->changed());
  // A firewall reload flushes INPUT: the next sync puts exactly one set back.
  ASSERT_TRUE(Sh("iptables-nft -F INPUT"));
  auto back = rules->Ensure();
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_THAT(back->accept_restored, ElementsAre("ip filter INPUT"));
  EXPECT_EQ(OurRuleCount("iptables-nft"), 4u);  // two addresses × udp, tcp
  // Teardown takes out its own rules and leaves the firewall's.
  ASSERT_TRUE(rules->Teardown().ok());
  EXPECT_THAT(RunCommand("iptables-nft -S; ip6tables-nft -S"), Not(HasSubstr("nodedns")));
  EXPECT_THAT(RunCommand("ip6tables-nft -S"), HasSubstr("--dport 22 -j ACCEPT"));
  EXPECT_FALSE(HaveTable());
}

TEST_F(NetfilterRulesTest, AcceptRulesGoFirstInIptablesLegacyFilterChainsUnderTheLock) {
  // The same firewall on a node whose iptables is the legacy backend.
  ASSERT_TRUE(Sh("iptables-legacy -P INPUT DROP"));
  ASSERT_TRUE(Sh("iptables-legacy -A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT"));
  ASSERT_TRUE(Sh("ip6tables-legacy -A INPUT -p tcp --dport 22 -j ACCEPT"));
  const std::string lock = "/tmp/nodedns-xtables-" + std::to_string(getpid()) + ".lock";
  NetfilterSpec spec = Spec();
  spec.xtables_lock = lock;
  auto made = NetfilterRules::Create(spec);
  ASSERT_TRUE(made.ok()) << made.status();
  auto& rules = *made;
  auto r = rules->Ensure();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->accept_restored,
              ElementsAre("iptables-legacy filter INPUT", "iptables-legacy filter OUTPUT",
                          "ip6tables-legacy filter INPUT", "ip6tables-legacy filter OUTPUT"));
  const std::string v4 = RunCommand("iptables-legacy -S 2>&1");
  EXPECT_THAT(v4, HasSubstr("-A INPUT -d 169.254.20.10/32 -p udp -m udp --dport 53 -m comment "
                            "--comment \"nodedns: node-local DNS\" -j ACCEPT\n"));
  EXPECT_THAT(v4, HasSubstr("-A INPUT -d 10.96.0.10/32 -p tcp -m tcp --dport 53"));
  EXPECT_THAT(v4, HasSubstr("-A OUTPUT -s 169.254.20.10/32 -p udp -m udp --sport 53"));
  EXPECT_LT(v4.find("--dport 53"), v4.find("ESTABLISHED")) << v4;
  const std::string v6 = RunCommand("ip6tables-legacy -S 2>&1");
  EXPECT_THAT(v6, HasSubstr("-A INPUT -d fd00:10::10/128 -p tcp -m tcp --dport 53 -m comment"));
  EXPECT_LT(v6.find("--dport 53"), v6.find("--dport 22")) << v6;
  // Nothing changes the second time; a flushed chain comes back, exactly once.
  auto same = rules->Ensure();
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_FALSE(same->changed());
  // A firewall reload: INPUT flushed and the firewall's own rule put back.
  ASSERT_TRUE(Sh("iptables-legacy -F INPUT"));
  ASSERT_TRUE(Sh("iptables-legacy -A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT"));
  auto back = rules->Ensure();
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_THAT(back->accept_restored, ElementsAre("iptables-legacy filter INPUT"));
  EXPECT_EQ(OurRuleCount("iptables-legacy"), 4u);
  // Someone holds the xtables lock (kube-proxy mid-restore): no write, an iptables_lock error.
  ASSERT_TRUE(Sh("iptables-legacy -F OUTPUT"));
  Process holder;
  ASSERT_TRUE(holder.Start({"/usr/bin/flock", "-o", lock, "/usr/bin/sleep", "8"}, lock + ".log"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto locked = rules->Ensure();
  ASSERT_FALSE(locked.ok());
  EXPECT_TRUE(IsXtablesLockError(locked.status())) << locked.status();
  EXPECT_THAT(RunCommand("iptables-legacy -S OUTPUT"), Not(HasSubstr("nodedns")));
  holder.Stop(std::chrono::seconds(1));
  // Teardown takes out its own rules and leaves the firewall's.
  const absl::Status down = rules->Teardown();
  ASSERT_TRUE(down.ok()) << down;
  EXPECT_THAT(RunCommand("iptables-legacy -S; ip6tables-legacy -S"), Not(HasSubstr("nodedns")));
  EXPECT_THAT(RunCommand("ip6tables-legacy -S"), HasSubstr("--dport 22 -j ACCEPT"));
  EXPECT_THAT(RunCommand("iptables-legacy -S"), HasSubstr("ESTABLISHED"));
  unlink(lock.c_str());
  unlink((lock + ".log").c_str());
}

}  // namespace
}  // namespace nodedns::nodesetup
