// --allow: prefix matching for both families and IPv4-mapped clients, the default list, parsing.
#include "proxy/allow_list.h"

#include <arpa/inet.h>

#include <string>

#include "gtest/gtest.h"
#include "tests/testing/net.h"

namespace nodedns::proxy {
namespace {

sockaddr_storage Addr(const std::string& text) {
  const sockaddr_storage s = testing::SocketAddressOf(text);
  EXPECT_NE(s.ss_family, AF_UNSPEC) << text;
  return s;
}

TEST(AllowListTest, DefaultAdmitsPrivateAndLocalAddressesOnly) {
  const AllowList d;
  EXPECT_EQ(d.ToString(), kDefaultAllow);
  EXPECT_FALSE(d.open());
  for (const char* in : {"127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1",
                         "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.255",
                         "169.254.20.10", "::1", "fd00::1", "fc00::1", "fe80::1", "febf::1",
                         "::ffff:10.1.2.3", "::ffff:127.0.0.1", "::ffff:169.254.20.10"}) {
    EXPECT_TRUE(d.Allows(Addr(in))) << in;
  }
  for (const char* out :
       {"8.8.8.8", "11.0.0.1", "9.255.255.255", "172.15.255.255", "172.32.0.0", "192.169.0.1",
        "100.63.255.255", "100.128.0.0", "169.253.0.1", "0.0.0.0", "255.255.255.255", "2001:db8::1",
        "::2", "fec0::1", "fe00::1", "::ffff:8.8.8.8", "::ffff:192.0.2.1",
        // IPv4-compatible (deprecated) and NAT64 forms are not folded.
        "::10.0.0.1", "64:ff9b::a00:1"}) {
    EXPECT_FALSE(d.Allows(Addr(out))) << out;
  }
  sockaddr_storage unix_family{};
  unix_family.ss_family = AF_UNIX;
  EXPECT_FALSE(d.Allows(unix_family));
}

TEST(AllowListTest, ExplicitPrefixesReplaceTheDefault) {
  auto l = AllowList::Parse("192.0.2.0/24, 2001:db8:1::/48,198.51.100.7");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_TRUE(l->Allows(Addr("192.0.2.0")));
  EXPECT_TRUE(l->Allows(Addr("192.0.2.255")));
  EXPECT_TRUE(l->Allows(Addr("::ffff:192.0.2.9")));
  EXPECT_FALSE(l->Allows(Addr("192.0.3.0")));
  EXPECT_TRUE(l->Allows(Addr("198.51.100.7")));  // a bare address is a /32
  EXPECT_FALSE(l->Allows(Addr("198.51.100.6")));
  EXPECT_TRUE(l->Allows(Addr("2001:db8:1:ffff::1")));
  EXPECT_FALSE(l->Allows(Addr("2001:db8:2::1")));
  EXPECT_FALSE(l->Allows(Addr("127.0.0.1")));  // not in the list: the default is replaced
  EXPECT_FALSE(l->Allows(Addr("::1")));
  EXPECT_FALSE(l->open());
}

TEST(AllowListTest, PrefixesEndingInsideTheSecondHalfOfAnIpv6Address) {
  auto l = AllowList::Parse("2001:db8::ab00/120");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_TRUE(l->Allows(Addr("2001:db8::abff")));
  EXPECT_FALSE(l->Allows(Addr("2001:db8::ac00")));
  EXPECT_FALSE(l->Allows(Addr("2001:db9::ab00")));
}

TEST(AllowListTest, AnyAndZeroPrefixesOpenIt) {
  for (const char* spec : {"any", "ANY", "0.0.0.0/0,::/0"}) {
    auto l = AllowList::Parse(spec);
    ASSERT_TRUE(l.ok()) << spec;
    EXPECT_TRUE(l->open()) << spec;
    EXPECT_TRUE(l->Allows(Addr("8.8.8.8"))) << spec;
    EXPECT_TRUE(l->Allows(Addr("2001:db8::1"))) << spec;
    EXPECT_TRUE(l->Allows(Addr("::ffff:8.8.8.8"))) << spec;
  }
  // One family opened, the other not.
  auto v4 = AllowList::Parse("0.0.0.0/0");
  ASSERT_TRUE(v4.ok());
  EXPECT_FALSE(v4->open());
  EXPECT_TRUE(v4->Allows(Addr("8.8.8.8")));
  EXPECT_TRUE(v4->Allows(Addr("::ffff:8.8.8.8")));
  EXPECT_FALSE(v4->Allows(Addr("2001:db8::1")));
}

TEST(AllowListTest, SeveralFlagsAddUpAndNoneMeansTheDefault) {
  auto none = AllowList::ParseAll({});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, AllowList());
  auto two = AllowList::ParseAll({"192.0.2.0/24", "2001:db8::/32,198.51.100.0/24"});
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->ToString(), "192.0.2.0/24,2001:db8::/32,198.51.100.0/24");
  EXPECT_TRUE(two->Allows(Addr("192.0.2.1")));
  EXPECT_TRUE(two->Allows(Addr("198.51.100.1")));
  EXPECT_TRUE(two->Allows(Addr("2001:db8::1")));
  EXPECT_FALSE(two->Allows(Addr("10.0.0.1")));
}

TEST(AllowListTest, DefaultElementExpandsToTheDefaultList) {
  auto l = AllowList::Parse("default,203.0.113.0/24");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->ToString(), std::string(kDefaultAllow) + ",203.0.113.0/24");
  EXPECT_TRUE(l->Allows(Addr("203.0.113.9")));
  EXPECT_TRUE(l->Allows(Addr("10.1.2.3")));
  EXPECT_TRUE(l->Allows(Addr("::ffff:127.0.0.1")));
  EXPECT_FALSE(l->Allows(Addr("8.8.8.8")));
}

TEST(AllowListTest, BadValuesAreErrorsNamingTheElement) {
  for (const char* bad : {"", "10.0.0.0/8,", "10.0.0.0/33", "10.0.0.1/8", "nonsense",
                          "::ffff:10.0.0.0/104", "10.0.0.0/-1", "fe80::/129", "10.0.0.0/x"}) {
    auto l = AllowList::Parse(bad);
    EXPECT_FALSE(l.ok()) << bad;
  }
  auto l = AllowList::Parse("10.0.0.0/8,10.1.2.3/8");
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("10.1.2.3/8"), std::string::npos) << l.status();
}

}  // namespace
}  // namespace nodedns::proxy
