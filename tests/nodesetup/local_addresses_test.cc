// LocalAddresses against the kernel: every test moves the test process into a new network
// namespace (unshare(CLONE_NEWNET), so root is needed; CI runs as root) with a bridge standing in
// for the interface, since this project's kernels may lack dummy link support. `ip` sets up and
// inspects the namespace, so that the checks do not go through the code under test.
#include "nodesetup/local_addresses.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace nodedns::nodesetup {
namespace {

using nodedns::testing::RunCommand;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kBridge[] = "br-nltest";
constexpr char kV4[] = "169.254.20.10";
constexpr char kV6[] = "fd00:10::10";

// `ip -o addr show dev NAME`, one line per address.
std::string Addrs(const std::string& dev) { return RunCommand("ip -o addr show dev " + dev); }

bool Sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

// Whether a UDP socket can bind `ip` (what nodedns does with the addresses right after Ensure).
bool CanBind(const char* ip) {
  sockaddr_storage ss{};
  socklen_t len;
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    len = sizeof *a4;
  } else {
    inet_pton(AF_INET6, ip, &a6->sin6_addr);
    a6->sin6_family = AF_INET6;
    len = sizeof *a6;
  }
  const int fd = socket(ss.ss_family, SOCK_DGRAM, 0);
  const bool ok = fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

class LocalAddressesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for unshare(CLONE_NEWNET)";
    // A new namespace per test (a second unshare leaves the previous one): nothing leaks between
    // tests, and the host's interfaces are never touched.
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << "unshare(CLONE_NEWNET): " << std::strerror(errno);
    ASSERT_TRUE(Sh("ip link set lo up"));
    ASSERT_TRUE(Sh(std::string("ip link add ") + kBridge + " type bridge"));
  }

  std::unique_ptr<LocalAddresses> Make(const std::string& dev = kBridge) {
    auto la = LocalAddresses::Create(dev, {kV4, kV6});
    EXPECT_TRUE(la.ok()) << la.status();
    return la.ok() ? *std::move(la) : nullptr;
  }
};

TEST_F(LocalAddressesTest, ExistingBridgeGetsHostAddressesUsableAtOnce) {
  auto la = Make();
  ASSERT_NE(la, nullptr);
  auto r = la->Ensure();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->created_interface);
  EXPECT_TRUE(r->brought_up);
  EXPECT_THAT(r->added, ElementsAre(kV4, kV6));
  const std::string addrs = Addrs(kBridge);
  EXPECT_THAT(addrs, HasSubstr(std::string("inet ") + kV4 + "/32 scope global"));
  EXPECT_THAT(addrs, HasSubstr(std::string("inet6 ") + kV6 + "/128 scope global nodad"));
  // The kernel's own fe80:: address may still be tentative; ours must not be.
  const size_t at = addrs.find(kV6);
  ASSERT_NE(at, std::string::npos);
  const std::string v6_line = addrs.substr(at, addrs.find('\n', at) - at);
  EXPECT_THAT(v6_line, Not(HasSubstr("tentative")));
  EXPECT_THAT(RunCommand(std::string("ip -o link show dev ") + kBridge), HasSubstr(",UP"));
  EXPECT_TRUE(CanBind(kV4));
  EXPECT_TRUE(CanBind(kV6));
}

TEST_F(LocalAddressesTest, EnsureTwiceIsIdempotent) {
  auto la = Make();
  ASSERT_NE(la, nullptr);
  ASSERT_TRUE(la->Ensure().ok());
  auto again = la->Ensure();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->changed());
  EXPECT_THAT(again->added, IsEmpty());
  auto check = la->Check();
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->ok());
}

TEST_F(LocalAddressesTest, TeardownRemovesItsHostAddressesAndNothingElse) {
  // An operator's address on the interface, with another prefix length: it counts as present,
  // and it must still be there after teardown. Another address of theirs too.
  ASSERT_TRUE(Sh(std::string("ip addr add ") + kV4 + "/24 dev " + kBridge));
  ASSERT_TRUE(Sh(std::string("ip addr add 192.0.2.7/32 dev ") + kBridge));
  auto la = Make();
  ASSERT_NE(la, nullptr);
  auto r = la->Ensure();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->added, ElementsAre(kV6));
  ASSERT_TRUE(la->Teardown().ok());
  const std::string addrs = Addrs(kBridge);
  EXPECT_THAT(addrs, HasSubstr(std::string("inet ") + kV4 + "/24"));
  EXPECT_THAT(addrs, HasSubstr("inet 192.0.2.7/32"));
  EXPECT_THAT(addrs, Not(HasSubstr(kV6)));
  // A bridge it did not create stays.
  EXPECT_TRUE(Sh(std::string("ip link show dev ") + kBridge));
  // Done after the first teardown: a second one, with no Ensure() between, removes nothing.
  ASSERT_TRUE(Sh(std::string("ip addr add ") + kV6 + "/128 dev " + kBridge + " nodad"));
  ASSERT_TRUE(la->Teardown().ok());
  EXPECT_THAT(Addrs(kBridge), HasSubstr(kV6));
}

TEST_F(LocalAddressesTest, TeardownRemovesHostAddressesAnUncleanExitLeft) {
  // What a SIGKILLed run leaves: both host addresses. The next run adds nothing, serves, and
  // its clean exit leaves the interface as it was before either run.
  ASSERT_TRUE(Sh(std::string("ip addr add ") + kV4 + "/32 dev " + kBridge));
  ASSERT_TRUE(Sh(std::string("ip addr add ") + kV6 + "/128 dev " + kBridge + " nodad"));
  auto la = Make();
  ASSERT_NE(la, nullptr);
  auto r = la->Ensure();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->added, IsEmpty());
  ASSERT_TRUE(la->Teardown().ok());
  const std::string addrs = Addrs(kBridge);
  EXPECT_THAT(addrs, Not(HasSubstr(kV4)));
  EXPECT_THAT(addrs, Not(HasSubstr(kV6)));
}

TEST_F(LocalAddressesTest, CheckReportsADeletedAddressAndEnsurePutsItBack) {
  auto la = Make();
  ASSERT_NE(la, nullptr);
  ASSERT_TRUE(la->Ensure().ok());
  ASSERT_TRUE(Sh(std::string("ip addr del ") + kV4 + "/32 dev " + kBridge));
  auto check = la->Check();
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_FALSE(check->ok());
  EXPECT_FALSE(check->interface_missing);
  EXPECT_THAT(check->missing, ElementsAre(kV4));
  auto r = la->Ensure();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->added, ElementsAre(kV4));
  EXPECT_THAT(Addrs(kBridge), HasSubstr(std::string("inet ") + kV4 + "/32"));
  // Re-added, so it is removed at teardown like the first time.
  ASSERT_TRUE(la->Teardown().ok());
  EXPECT_THAT(Addrs(kBridge), Not(HasSubstr(kV4)));
}

TEST_F(LocalAddressesTest, CheckReportsADownInterface) {
  auto la = Make();
  ASSERT_NE(la, nullptr);
  ASSERT_TRUE(la->Ensure().ok());
  ASSERT_TRUE(Sh(std::string("ip link set ") + kBridge + " down"));
  auto check = la->Check();
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->interface_down);
  auto r = la->Ensure();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->brought_up);
}

TEST_F(LocalAddressesTest, MissingInterfaceIsADummyOrAClearError) {
  auto la = Make("nl-missing");
  ASSERT_NE(la, nullptr);
  auto check = la->Check();
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->interface_missing);
  EXPECT_THAT(check->missing, ElementsAre(kV4, kV6));
  auto r = la->Ensure();
  if (r.ok()) {
    // A kernel with dummy links: created, addressed, and deleted whole at teardown.
    EXPECT_TRUE(r->created_interface);
    EXPECT_THAT(RunCommand("ip -d -o link show dev nl-missing"), HasSubstr("dummy"));
    EXPECT_THAT(Addrs("nl-missing"), HasSubstr(std::string("inet ") + kV4 + "/32"));
    ASSERT_TRUE(la->Teardown().ok());
    EXPECT_FALSE(Sh("ip link show dev nl-missing"));
  } else {
    const std::string msg(r.status().message());
    EXPECT_THAT(msg, HasSubstr("nl-missing"));
    EXPECT_THAT(msg, HasSubstr("kernel has no dummy netdev support"));
    EXPECT_THAT(msg, HasSubstr("create interface nl-missing yourself or load the dummy module"));
    EXPECT_FALSE(Sh("ip link show dev nl-missing"));
  }
}

TEST(LocalAddressesCreateTest, RejectsWhatIsNotAnAddressOrAName) {
  EXPECT_FALSE(LocalAddresses::Create("nodelocaldns", {"169.254.20.300"}).ok());
  EXPECT_FALSE(LocalAddresses::Create("", {kV4}).ok());
  EXPECT_FALSE(LocalAddresses::Create("a-name-longer-than-15", {kV4}).ok());
}

}  // namespace
}  // namespace nodedns::nodesetup
