// Tests for the kube-dns ConfigMap reader (nodecache/kubedns_config.h): kube-dns's and
// node-cache's validation, and the directory rule (the JSON reader's own are in tests/common/).
#include "nodecache/kubedns_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace nodedns::nodecache {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

bool NoFiles(const std::string&) { return false; }

absl::StatusOr<KubeDnsConfig> Parse(std::map<std::string, std::string> files) {
  return ParseKubeDnsConfig(files, NoFiles);
}

std::string ErrorOf(std::map<std::string, std::string> files) {
  absl::StatusOr<KubeDnsConfig> c = Parse(std::move(files));
  return c.ok() ? "OK" : std::string(c.status().message());
}

TEST(KubeDnsConfigTest, MissingFilesMeanEmptyAndOtherFilesAreIgnored) {
  absl::StatusOr<KubeDnsConfig> c = Parse({{"federations", "not json"}, {"other", "{"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->stub_domains, IsEmpty());
  EXPECT_THAT(c->upstream_nameservers, IsEmpty());
}

TEST(KubeDnsConfigTest, ReadsStubDomainsSortedAndUpstreams) {
  absl::StatusOr<KubeDnsConfig> c = Parse({
      {"stubDomains",
       R"({"zeta.example": ["10.0.0.1", "10.0.0.2:5353"], "acme.local": ["[fd00::53]:53"]})"},
      {"upstreamNameservers", R"(["8.8.8.8", "1.1.1.1:53", "[2001:4860:4860::8888]:53"])"},
  });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->stub_domains,
              ElementsAre(Pair("acme.local", ElementsAre("[fd00::53]:53")),
                          Pair("zeta.example", ElementsAre("10.0.0.1", "10.0.0.2:5353"))));
  EXPECT_THAT(c->upstream_nameservers,
              ElementsAre("8.8.8.8", "1.1.1.1:53", "[2001:4860:4860::8888]:53"));
}

TEST(KubeDnsConfigTest, NullIsEmptyAndRepeatedKeyLastWins) {
  absl::StatusOr<KubeDnsConfig> c =
      Parse({{"stubDomains", "null"}, {"upstreamNameservers", " null "}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->stub_domains, IsEmpty());
  c = Parse({{"stubDomains", R"({"a.b": ["1.1.1.1"], "a.b": ["2.2.2.2"]})"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->stub_domains, ElementsAre(Pair("a.b", ElementsAre("2.2.2.2"))));
}

TEST(KubeDnsConfigTest, WrongJsonShapesNameFileAndKey) {
  EXPECT_EQ(ErrorOf({{"stubDomains", "[]"}}),
            "stubDomains: line 1 column 1: want an object of domain -> array of nameservers, "
            "not an array");
  EXPECT_EQ(ErrorOf({{"stubDomains", R"({"acme.local": "1.2.3.4"})"}}),
            "stubDomains: line 1 column 16: \"acme.local\" must be an array of strings, not a "
            "string");
  EXPECT_EQ(ErrorOf({{"stubDomains", R"({"acme.local": ["1.2.3.4", 53]})"}}),
            "stubDomains: line 1 column 28: \"acme.local\" must be an array of strings, but holds "
            "a number");
  EXPECT_EQ(ErrorOf({{"upstreamNameservers", R"({"a": 1})"}}),
            "upstreamNameservers: line 1 column 1: the value must be an array of strings, not an "
            "object");
  EXPECT_EQ(ErrorOf({{"upstreamNameservers", R"(["1.1.1.1", null])"}}),
            "upstreamNameservers: line 1 column 13: the value must be an array of strings, but "
            "holds null");
  // An empty file is not JSON: node-cache's json.Unmarshal fails on it too.
  EXPECT_EQ(ErrorOf({{"upstreamNameservers", ""}}),
            "upstreamNameservers: line 1 column 1: unexpected end of JSON input");
  EXPECT_EQ(ErrorOf({{"stubDomains", "{} {}"}}),
            "stubDomains: line 1 column 4: unexpected text after the JSON value");
  // A key's "\n" escape stays an escape: errors are one line.
  EXPECT_EQ(ErrorOf({{"stubDomains", R"({"a\nb": 1})"}}),
            "stubDomains: line 1 column 10: \"a\\nb\" must be an array of strings, not a number");
}

TEST(KubeDnsConfigTest, StubDomainNamesAreDns1123Subdomains) {
  for (const char* bad :
       {"Acme.local", "acme.local.", ".acme", "a..b", "-a.b", "a-.b", "a_b.c", "*.acme", ""}) {
    std::string json = std::string("{\"") + bad + "\": [\"1.2.3.4\"]}";
    EXPECT_THAT(ErrorOf({{"stubDomains", json}}),
                HasSubstr(std::string("stubDomains: invalid domain name \"") + bad + "\""))
        << bad;
  }
  EXPECT_TRUE(IsDns1123Subdomain("a"));
  EXPECT_TRUE(IsDns1123Subdomain("0-a.b-9"));
  EXPECT_TRUE(IsDns1123Subdomain(std::string(253, 'a')));
  EXPECT_FALSE(IsDns1123Subdomain(std::string(254, 'a')));
}

TEST(KubeDnsConfigTest, StubNameserversFollowKubeDnsThenForward) {
  for (const char* good : {"1.2.3.4", "1.2.3.4:53", "fd00::53", "[fd00::53]:5353"}) {
    std::string json = std::string("{\"acme.local\": [\"") + good + "\"]}";
    EXPECT_EQ(ErrorOf({{"stubDomains", json}}), "OK") << good;
  }
  struct Case {
    const char* ns;
    const char* error;
  };
  for (const Case& c : {
           Case{"1.2.3.4:x", "invalid nameserver \"1.2.3.4:x\": the port must be a number"},
           Case{"1.2.3.4:0", "the port must be a number"},
           Case{"1.2.3.4:", "the port must be a number"},
           Case{"1.2.3.4:65536", "the port must be a number"},
           // kube-dns rejects the forward plugin's other forms before node-cache sees them.
           Case{"dns://1.2.3.4", "invalid nameserver \"dns://1.2.3.4\""},
           Case{"/etc/resolv.conf", "invalid nameserver \"/etc/resolv.conf\""},
           Case{"ns.example.com:53", "invalid nameserver \"ns.example.com:53\""},
           Case{"fe80::1%eth0", "invalid nameserver \"fe80::1%eth0\""},
           // A DNS-1123 name passes kube-dns, then the forward plugin wants a file of that name.
           Case{"ns.example.com", "not an IP address or file \"ns.example.com\""},
       }) {
    std::string json = std::string("{\"acme.local\": [\"") + c.ns + "\"]}";
    std::string error = ErrorOf({{"stubDomains", json}});
    EXPECT_THAT(error, HasSubstr("stubDomains: \"acme.local\": ")) << c.ns;
    EXPECT_THAT(error, HasSubstr(c.error)) << c.ns;
  }
}

TEST(KubeDnsConfigTest, StubDomainWithoutNameserversIsAnError) {
  EXPECT_EQ(ErrorOf({{"stubDomains", R"({"acme.local": []})"}}),
            "stubDomains: \"acme.local\" has no nameservers");
}

TEST(KubeDnsConfigTest, StubNameserverNamingAReadableFileIsAccepted) {
  std::map<std::string, std::string> files = {
      {"stubDomains", R"({"acme.local": ["resolv.conf"]})"}};
  auto only_resolv_conf = [](const std::string& path) { return path == "resolv.conf"; };
  EXPECT_TRUE(ParseKubeDnsConfig(files, only_resolv_conf).ok());
  EXPECT_FALSE(ParseKubeDnsConfig(files, NoFiles).ok());
}

TEST(KubeDnsConfigTest, UpstreamNameserversAreIpOrIpPortAtMostThree) {
  EXPECT_EQ(ErrorOf({{"upstreamNameservers", R"(["1.1.1.1","1.0.0.1","8.8.8.8","8.8.4.4"])"}}),
            "upstreamNameservers: 4 entries; kube-dns allows at most 3");
  for (const char* bad : {"dns://1.1.1.1", "tls://1.1.1.1", "/etc/resolv.conf", "one.one",
                          "1.1.1.1:0", "1.1.1.1:x", "[::1]", "fe80::1%eth0", ""}) {
    std::string json = std::string("[\"") + bad + "\"]";
    EXPECT_THAT(ErrorOf({{"upstreamNameservers", json}}),
                HasSubstr(std::string("upstreamNameservers: invalid nameserver \"") + bad + "\""))
        << bad;
  }
}

TEST(KubeDnsConfigTest, ForwardProxyFormsAsCoreDnsParsesThem) {
  auto files = [](const std::string& path) { return path == "/etc/resolv.conf"; };
  for (const char* good :
       {"1.2.3.4", "1.2.3.4:53", "[fd00::1]:53", "fd00::1", "[fd00::1]", "fe80::1%eth0",
        "[fe80::1%eth0]:53", "dns://1.2.3.4", "dns://1.2.3.4:5353", "dns://[fd00::1]:53",
        "/etc/resolv.conf", "dns:///etc/resolv.conf"}) {
    std::vector<std::string> ns = {good};
    EXPECT_TRUE(ValidateForwardProxy(ns, files).ok()) << good;
  }
  struct Case {
    const char* ns;
    const char* error;
  };
  for (const Case& c : {
           Case{"tls://1.2.3.4", "DNS over TLS (tls://) is not supported by nodedns"},
           Case{"quic://1.2.3.4", "unsupported transport quic of nameserver \"quic://1.2.3.4\""},
           Case{"https://1.2.3.4", "unsupported transport https"},
           Case{"grpc://1.2.3.4", "unsupported transport grpc"},
           Case{"unix:///run/dns.sock", "unsupported transport unix"},
           Case{"dns://", "invalid address \"dns://\""},
           Case{"/etc/missing.conf", "not an IP address or file \"/etc/missing.conf\""},
           Case{"ns.example:53", "not an IP address or file \"ns.example:53\""},
           Case{"1.2.3.4:0", "the port must be a number 1..65535"},
       }) {
    std::vector<std::string> ns = {"1.1.1.1", c.ns};
    absl::Status s = ValidateForwardProxy(ns, files);
    ASSERT_FALSE(s.ok()) << c.ns;
    EXPECT_THAT(s.message(), HasSubstr(c.error)) << c.ns;
  }
}

TEST(KubeDnsConfigTest, ConfigDirRule) {
  auto missing = [](const std::string&) { return true; };
  auto present = [](const std::string&) { return false; };
  EXPECT_EQ(KubeDnsConfigDir("/k", present), "/k");
  EXPECT_EQ(KubeDnsConfigDir("/k", missing), "/k");
  EXPECT_EQ(KubeDnsConfigDir("", present), "/etc/kube-dns");
  EXPECT_EQ(KubeDnsConfigDir("", missing), "");
}

class KubeDnsConfigDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nodecache_kubedns_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& name, const std::string& data) {
    std::ofstream(dir_ + "/" + name, std::ios::binary) << data;
  }
  std::string dir_;
};

TEST_F(KubeDnsConfigDirTest, ReadsTheTwoFiles) {
  Write("stubDomains", R"({"acme.local": ["10.0.0.1"]})");
  Write("upstreamNameservers", R"(["8.8.8.8"])");
  Write("federations", "\xff not even utf-8");
  absl::StatusOr<KubeDnsConfig> c = ReadKubeDnsConfigDir(dir_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->stub_domains, ElementsAre(Pair("acme.local", ElementsAre("10.0.0.1"))));
  EXPECT_THAT(c->upstream_nameservers, ElementsAre("8.8.8.8"));
}

TEST_F(KubeDnsConfigDirTest, EmptyDirectoryIsEmptyConfig) {
  absl::StatusOr<KubeDnsConfig> c = ReadKubeDnsConfigDir(dir_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->stub_domains, IsEmpty());
}

TEST_F(KubeDnsConfigDirTest, NonUtf8FileAndNonDirectoryAreErrors) {
  Write("upstreamNameservers", "[\"8.8.8.8\xc0\x80\"]");  // An overlong NUL.
  absl::StatusOr<KubeDnsConfig> c = ReadKubeDnsConfigDir(dir_);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("non-utf8 data in"));
  c = ReadKubeDnsConfigDir(dir_ + "/upstreamNameservers");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("is not a directory"));
  EXPECT_FALSE(ReadKubeDnsConfigDir(dir_ + "/missing").ok());
}

TEST_F(KubeDnsConfigDirTest, FileNameserverMustBeAReadableFile) {
  // Only a relative DNS-1123 name can pass kube-dns's check and then be a file.
  Write("resolv.conf", "nameserver 10.0.0.53\n");
  Write("stubDomains", R"({"acme.local": ["resolv.conf"]})");
  std::filesystem::path old = std::filesystem::current_path();
  std::filesystem::current_path(dir_);
  absl::StatusOr<KubeDnsConfig> c = ReadKubeDnsConfigDir(dir_);
  std::filesystem::remove(dir_ + "/resolv.conf");
  absl::StatusOr<KubeDnsConfig> without = ReadKubeDnsConfigDir(dir_);
  std::filesystem::current_path(old);
  EXPECT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(without.ok());
}

}  // namespace
}  // namespace nodedns::nodecache
