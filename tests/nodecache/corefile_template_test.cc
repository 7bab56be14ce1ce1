// Tests for node-cache's Corefile generation (nodecache/corefile_template.h), on the stock
// NodeLocal DNSCache Corefile and on variants of its upstream block.
#include "nodecache/corefile_template.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

namespace nodedns::nodecache {
namespace {

using ::testing::HasSubstr;

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(std::string(NODECACHE_TESTDATA) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in) << name;
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// The stock manifest's values: -localip 169.254.20.10,10.96.0.10, the kube-dns-upstream service.
CorefileInputs StockInputs() {
  CorefileInputs in;
  in.local_ip = "169.254.20.10,10.96.0.10";
  in.port = "53";
  in.cluster_dns_ip = "10.96.0.20";
  in.upstream_svc = "kube-dns-upstream";
  return in;
}

int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// The stock Corefile.base after node-cache's substitutions, with `upstream` in the `.:53` block.
// health gets both local IPs: node-cache substitutes __PILLAR__LOCAL__DNS__ everywhere, and the
// manifest leaves it to the operator to have replaced that one first.
std::string StockGenerated(const std::string& upstream) {
  std::string header = ReadTestdata("stock/Corefile.base");
  header = header.substr(0, header.find("cluster.local:53"));
  return header + R"(cluster.local:53 {
    errors
    cache {
            success 9984 30
            denial 9984 5
    }
    reload
    loop
    bind 169.254.20.10 10.96.0.10 
    forward . 10.96.0.20 {
            force_tcp
    }
    prometheus :9253
    health 169.254.20.10 10.96.0.10:8080
    }
in-addr.arpa:53 {
    errors
    cache 30
    reload
    loop
    bind 169.254.20.10 10.96.0.10 
    forward . 10.96.0.20 {
            force_tcp
    }
    prometheus :9253
    }
ip6.arpa:53 {
    errors
    cache 30
    reload
    loop
    bind 169.254.20.10 10.96.0.10 
    forward . 10.96.0.20 {
            force_tcp
    }
    prometheus :9253
    }
.:53 {
    errors
    cache 30
    reload
    loop
    bind 169.254.20.10 10.96.0.10 
    forward . )" +
         upstream + R"(
    prometheus :9253
    }
)";
}

TEST(CorefileTemplateTest, StockCorefileWithoutUpstreamsForwardsToResolvConf) {
  std::string base = ReadTestdata("stock/Corefile.base");
  absl::StatusOr<std::string> out = GenerateCorefile(base, StockInputs());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, StockGenerated("/etc/resolv.conf"));
  EXPECT_EQ(Lines(*out), Lines(base));
}

TEST(CorefileTemplateTest, StockCorefileWithUpstreamsForwardsToThem) {
  CorefileInputs in = StockInputs();
  in.kube_dns.upstream_nameservers = {"8.8.8.8", "1.1.1.1:53"};
  absl::StatusOr<std::string> out = GenerateCorefile(ReadTestdata("stock/Corefile.base"), in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, StockGenerated("8.8.8.8 1.1.1.1:53"));
}

TEST(CorefileTemplateTest, StubDomainsAreAppendedInDomainOrder) {
  CorefileInputs in = StockInputs();
  in.port = "5353";
  in.kube_dns.stub_domains = {{"zeta.example", {"10.0.0.1", "10.0.0.2:54"}},
                              {"acme.local", {"10.1.0.1"}}};
  std::string base = ReadTestdata("stock/Corefile.base");
  absl::StatusOr<std::string> out = GenerateCorefile(base, in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, StockGenerated("/etc/resolv.conf") + R"(
acme.local:5353 {
    errors
    cache 30
    bind 169.254.20.10 10.96.0.10
    forward . 10.1.0.1
}

zeta.example:5353 {
    errors
    cache 30
    bind 169.254.20.10 10.96.0.10
    forward . 10.0.0.1 10.0.0.2:54
}
)");
}

TEST(CorefileTemplateTest, UnsubstitutedDnsDomainIsAnErrorNamingTokenAndLine) {
  absl::StatusOr<std::string> out =
      GenerateCorefile(ReadTestdata("stock/Corefile.base.unsubstituted"), StockInputs());
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(),
            "Corefile.base:5: __PILLAR__DNS__DOMAIN__ was not substituted (replace it when "
            "installing the manifest)");
}

TEST(CorefileTemplateTest, TokensInCommentsAreNotErrors) {
  CorefileInputs in = StockInputs();
  in.cluster_dns_ip.reset();
  absl::StatusOr<std::string> out = GenerateCorefile(
      "# __PILLAR__DNS__DOMAIN__ and __PILLAR__CLUSTER__DNS__\n"
      ".:53 { # __PILLAR__X__\n    forward . __PILLAR__UPSTREAM__SERVERS__\t#__PILLAR__Y__\n}\n",
      in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            "# __PILLAR__DNS__DOMAIN__ and __PILLAR__CLUSTER__DNS__\n"
            ".:53 { # __PILLAR__X__\n    forward . /etc/resolv.conf\t#__PILLAR__Y__\n}\n");
}

TEST(CorefileTemplateTest, HashInsideATokenIsNotAComment) {
  absl::StatusOr<std::string> out = GenerateCorefile("a#__PILLAR__Z__ {\n}\n", StockInputs());
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(),
            "Corefile.base:1: __PILLAR__Z__ was not substituted (replace it when installing the "
            "manifest)");
}

TEST(CorefileTemplateTest, MissingClusterDnsIpIsAnErrorNamingTheVariable) {
  CorefileInputs in = StockInputs();
  in.cluster_dns_ip.reset();
  in.base_name = "/etc/coredns/Corefile.base";
  absl::StatusOr<std::string> out = GenerateCorefile(ReadTestdata("stock/Corefile.base"), in);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(),
            "/etc/coredns/Corefile.base:15: __PILLAR__CLUSTER__DNS__ needs the cluster IP of "
            "-upstreamsvc kube-dns-upstream, but KUBE_DNS_UPSTREAM_SERVICE_HOST is not set");
}

TEST(CorefileTemplateTest, MissingClusterDnsIpIsFineWhenNotNeeded) {
  CorefileInputs in = StockInputs();
  in.cluster_dns_ip.reset();
  absl::StatusOr<std::string> out =
      GenerateCorefile(".:53 {\n    forward . __PILLAR__UPSTREAM__SERVERS__\n}\n", in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, ".:53 {\n    forward . /etc/resolv.conf\n}\n");
}

// node-cache's own upstreamTCPBlock text, as in its older templates.
constexpr char kTcpUpstreamBase[] =
    ".:53 {\n"
    "    bind __PILLAR__LOCAL__DNS__ __PILLAR__DNS__SERVER__\n"
    "    forward . __PILLAR__UPSTREAM__SERVERS__ {\n"
    "            force_tcp\n"
    "    }\n"
    "    prometheus :9253\n"
    "}\n";

TEST(CorefileTemplateTest, ForceTcpUpstreamBlockKeepsTcpForResolvConf) {
  absl::StatusOr<std::string> out = GenerateCorefile(kTcpUpstreamBase, StockInputs());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            ".:53 {\n"
            "    bind 169.254.20.10 10.96.0.10 \n"
            "    forward . /etc/resolv.conf {\n"
            "            force_tcp\n"
            "    }\n"
            "    prometheus :9253\n"
            "}\n");
}

TEST(CorefileTemplateTest, ForceTcpUpstreamBlockBecomesUdpWithCustomUpstreams) {
  CorefileInputs in = StockInputs();
  in.kube_dns.upstream_nameservers = {"8.8.8.8"};
  absl::StatusOr<std::string> out = GenerateCorefile(kTcpUpstreamBase, in);
  ASSERT_TRUE(out.ok()) << out.status();
  // node-cache produces the same without the two empty lines; we keep the base's line numbers.
  EXPECT_EQ(*out,
            ".:53 {\n"
            "    bind 169.254.20.10 10.96.0.10 \n"
            "    forward . 8.8.8.8\n"
            "\n"
            "\n"
            "    prometheus :9253\n"
            "}\n");
  EXPECT_EQ(Lines(*out), Lines(kTcpUpstreamBase));
}

TEST(CorefileTemplateTest, ForceTcpBlockIsFoundWhateverTheIndentation) {
  CorefileInputs in = StockInputs();
  in.kube_dns.upstream_nameservers = {"8.8.8.8", "8.8.4.4"};
  absl::StatusOr<std::string> out = GenerateCorefile(
      ".:53 {\r\n"
      "\tforward  .\t__PILLAR__UPSTREAM__SERVERS__ {  \r\n"
      "  force_tcp\r\n"
      "\t}\r\n"
      "}\r\n",
      in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, ".:53 {\r\n\tforward . 8.8.8.8 8.8.4.4\r\n\r\n\r\n}\r\n");
}

TEST(CorefileTemplateTest, ForceTcpBlockWithMoreOptionsIsLeftAlone) {
  // Like node-cache, only a block holding force_tcp alone is rewritten; the variable is still
  // filled in.
  CorefileInputs in = StockInputs();
  in.kube_dns.upstream_nameservers = {"8.8.8.8"};
  absl::StatusOr<std::string> out = GenerateCorefile(
      "forward . __PILLAR__UPSTREAM__SERVERS__ {\n  force_tcp\n  max_fails 3\n}\n", in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "forward . 8.8.8.8 {\n  force_tcp\n  max_fails 3\n}\n");
}

TEST(CorefileTemplateTest, ClusterDnsForceTcpBlockIsNeverRewritten) {
  CorefileInputs in = StockInputs();
  in.kube_dns.upstream_nameservers = {"8.8.8.8"};
  absl::StatusOr<std::string> out =
      GenerateCorefile("forward . __PILLAR__CLUSTER__DNS__ {\n  force_tcp\n}\n", in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "forward . 10.96.0.20 {\n  force_tcp\n}\n");
}

TEST(CorefileTemplateTest, SingleLocalIpAndNoTrailingNewline) {
  CorefileInputs in = StockInputs();
  in.local_ip = "169.254.20.10";
  in.kube_dns.stub_domains = {{"acme.local", {"10.1.0.1"}}};
  absl::StatusOr<std::string> out =
      GenerateCorefile(".:53 {\n    bind __PILLAR__LOCAL__DNS__\n}", in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            ".:53 {\n    bind 169.254.20.10\n}\n"
            "acme.local:53 {\n    errors\n    cache 30\n    bind 169.254.20.10\n"
            "    forward . 10.1.0.1\n}\n");
}

}  // namespace
}  // namespace nodedns::nodecache
