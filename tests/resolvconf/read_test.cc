// The resolv.conf readers `nodedns serve` uses (resolvconf/resolv_conf.h): the node's nameservers
// as glibc's res_init takes them, and its search line.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "resolvconf/resolv_conf.h"
#include "tests/testing/temp_file.h"

namespace nodedns::resolvconf {
namespace {

using testing::TempFile;

std::vector<std::string> Nameservers(const std::string& text) {
  TempFile rc(text);
  auto servers = ReadResolvConfNameservers(rc.path());
  std::vector<std::string> out;
  if (servers.ok()) {
    for (const auto& s : *servers) out.push_back(s.ToString());
  }
  return out;
}

// tests/fuzz/corpus/resolv_conf_fuzz/found-nameserver-port-indent-comment: glibc takes none.
TEST(ResolvConfNameserversTest, IgnoresPortsIndentationCommentsAndOtherBlanks) {
  EXPECT_EQ(Nameservers("nameserver 10.0.0.1:5353\n  nameserver 10.0.0.2\nnameserver 10.0.0.3#x\n"
                        "nameserver\v10.0.0.4\nnameserver [::1]:53\n"),
            std::vector<std::string>{});
}

// tests/fuzz/corpus/resolv_conf_fuzz/nameservers_odd: glibc takes fe80::1%eth0, 127.1 and
// 0x7f.0.0.1 (inet_aton forms), and stops at three.
TEST(ResolvConfNameserversTest, ReadsAddressesAsGlibcDoes) {
  EXPECT_EQ(Nameservers("nameserver fe80::1%eth0\nnameserver dns.example.com\nnameserver 127.1\n"
                        "nameserver 10.0.0.1:5353\nnameserver [::1]:53\nnameserver 0x7f.0.0.1\n"
                        "nameserver\n"),
            (std::vector<std::string>{"127.0.0.1:53", "127.0.0.1:53"}));
  EXPECT_EQ(Nameservers("nameserver 10.0.0.1\nnameserver\t 2001:db8::1 x\nnameserver 0300.1\n"
                        "nameserver 10.0.0.9\n"),
            (std::vector<std::string>{"10.0.0.1:53", "[2001:db8::1]:53", "192.0.0.1:53"}));
  // Only a blank, tab or newline ends the address: CR (a CRLF file) and other junk do not.
  EXPECT_EQ(Nameservers("nameserver 10.0.0.1\r\nnameserver 10.0.0.2;x\nnameserver 10.0.0.3\n"),
            std::vector<std::string>{"10.0.0.3:53"});
}

// tests/fuzz/corpus/resolv_conf_fuzz/indented_and_comments: the indented line is not read; a
// comment after the address is.
TEST(ResolvConfNameserversTest, IndentedLineIgnoredTrailingCommentAllowed) {
  EXPECT_EQ(
      Nameservers("  nameserver 10.0.0.2\n;comment\n#comment\nnameserver 10.0.0.3 # trailing\n"
                  "search svc.example # not a comment\n\toptions ndots:3\n"),
      std::vector<std::string>{"10.0.0.3:53"});
}

TEST(ResolvConfNameserversTest, MissingFileOrNoUsableAddressIsAnError) {
  EXPECT_FALSE(ReadResolvConfNameservers("/nonexistent/resolv.conf").ok());
  TempFile rc("search a.example\nnameserver fe80::1%eth0\n");
  EXPECT_FALSE(ReadResolvConfNameservers(rc.path()).ok());
}

// The parser's search list (glibc's rules: the last search or domain line wins; a domain line
// gives its first word).
TEST(ResolvConfSearchTest, ReadsTheSearchListAsGlibcDoes) {
  TempFile rc("search a.example b.example\nnameserver 10.0.0.1\ndomain c.example d.example\n");
  auto search = ReadResolvConfSearch(rc.path());
  ASSERT_TRUE(search.ok()) << search.status();
  EXPECT_EQ(*search, std::vector<std::string>{"c.example"});
  TempFile none("nameserver 10.0.0.1\n");
  search = ReadResolvConfSearch(none.path());
  ASSERT_TRUE(search.ok()) << search.status();
  EXPECT_TRUE(search->empty());
  EXPECT_FALSE(ReadResolvConfSearch("/nonexistent/resolv.conf").ok());
}

}  // namespace
}  // namespace nodedns::resolvconf
