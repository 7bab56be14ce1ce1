// Tests for node-cache's command line (nodecache/node_cache_flags.h).
#include "nodecache/node_cache_flags.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace nodedns::nodecache {
namespace {

using std::chrono::nanoseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<NodeCacheFlags> Parse(std::vector<std::string> args) {
  return ParseNodeCacheFlags(args);
}

// The args of the node-cache container in kubernetes/kubernetes
// cluster/addons/dns/nodelocaldns/nodelocaldns.yaml, after the install-time substitution.
const std::vector<std::string> kStockArgs = {
    "-localip",     "169.254.20.10,10.96.0.10", "-conf",    "/etc/Corefile",
    "-upstreamsvc", "kube-dns-upstream",        "-pidfile", "/tmp/node-cache.pid"};

TEST(NodeCacheFlagsTest, StockManifestArgs) {
  absl::StatusOr<NodeCacheFlags> f = ParseNodeCacheFlags(kStockArgs);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->help_requested);
  EXPECT_EQ(f->local_ip, "169.254.20.10,10.96.0.10");
  EXPECT_THAT(f->local_ips, ElementsAre("169.254.20.10", "10.96.0.10"));
  EXPECT_FALSE(f->local_ips_ipv6);
  EXPECT_EQ(f->conf, "/etc/Corefile");
  EXPECT_EQ(f->EffectiveCorefile(), "/etc/Corefile");
  EXPECT_EQ(f->upstream_svc, "kube-dns-upstream");
  EXPECT_EQ(f->pidfile, "/tmp/node-cache.pid");
  EXPECT_THAT(f->explicitly_set, ElementsAre("conf", "localip", "pidfile", "upstreamsvc"));
  // Everything else at node-cache's defaults.
  EXPECT_TRUE(f->setup_interface);
  EXPECT_EQ(f->interface_name, "nodelocaldns");
  EXPECT_EQ(f->sync_interval, nanoseconds(60));
  EXPECT_EQ(f->EffectiveSyncIntervalSeconds(), 60);
  EXPECT_EQ(f->metrics_listen_address, "0.0.0.0:9353");
  EXPECT_TRUE(f->setup_iptables);
  EXPECT_EQ(f->base_corefile, "/etc/coredns/Corefile.base");
  EXPECT_EQ(f->corefile, "/etc/Corefile");
  EXPECT_EQ(f->kubedns_cm, "");
  EXPECT_EQ(f->health_port, "8080");
  EXPECT_FALSE(f->skip_teardown);
  EXPECT_FALSE(f->reload_with_signal);
  EXPECT_EQ(f->dns_port, "53");
  EXPECT_FALSE(f->quiet);
  EXPECT_FALSE(f->version);
  EXPECT_FALSE(f->plugins);
}

TEST(NodeCacheFlagsTest, EveryFlagInGoSyntaxVariants) {
  absl::StatusOr<NodeCacheFlags> f = Parse({
      "--localip=fd00::10",
      "-setupinterface=false",
      "-interfacename",
      "dummy0",
      "-syncinterval=30s",
      "--metrics-listen-address",
      "[::1]:9000",
      "-setupiptables=0",
      "-basecorefile=/b",
      "-corefile",
      "/c",
      "-kubednscm=/k",
      "-upstreamsvc=up",
      "-health-port",
      "9090",
      "-skipteardown",
      "-reloadwithsignal=T",
      "-dns.port=5353",
      "-pidfile=/p",
      "-quiet",
      "-version",
      "-plugins=true",
  });
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_THAT(f->local_ips, ElementsAre("fd00::10"));
  EXPECT_TRUE(f->local_ips_ipv6);
  EXPECT_FALSE(f->setup_interface);
  EXPECT_EQ(f->interface_name, "dummy0");
  EXPECT_EQ(f->sync_interval, std::chrono::seconds(30));
  EXPECT_EQ(f->metrics_listen_address, "[::1]:9000");
  EXPECT_FALSE(f->setup_iptables);
  EXPECT_EQ(f->base_corefile, "/b");
  EXPECT_EQ(f->corefile, "/c");
  EXPECT_EQ(f->EffectiveCorefile(), "/c");  // No -conf.
  EXPECT_EQ(f->kubedns_cm, "/k");
  EXPECT_EQ(f->upstream_svc, "up");
  EXPECT_EQ(f->health_port, "9090");
  EXPECT_TRUE(f->skip_teardown);
  EXPECT_TRUE(f->reload_with_signal);
  EXPECT_EQ(f->dns_port, "5353");
  EXPECT_EQ(f->pidfile, "/p");
  EXPECT_TRUE(f->quiet);
  EXPECT_TRUE(f->version);
  EXPECT_TRUE(f->plugins);
  EXPECT_EQ(f->explicitly_set.size(), 18u);
}

TEST(NodeCacheFlagsTest, ConfOverridesCorefile) {
  absl::StatusOr<NodeCacheFlags> f = Parse({"-localip=1.2.3.4", "-corefile=/c", "-conf=/k"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->EffectiveCorefile(), "/k");
}

TEST(NodeCacheFlagsTest, DnsPortAliasLastOneWins) {
  absl::StatusOr<NodeCacheFlags> f = Parse({"-localip=1.2.3.4", "-dns.port=1053", "-p", "2053"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->dns_port, "2053");
  f = Parse({"-localip=1.2.3.4", "-p=2053", "-dns.port", "1053"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->dns_port, "1053");
}

TEST(NodeCacheFlagsTest, BoolFollowedByFalseStopsParsingAndIsAnError) {
  absl::StatusOr<NodeCacheFlags> f = Parse({"-localip=1.2.3.4", "-setupiptables", "false"});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(), "unexpected argument 'false'");
}

TEST(NodeCacheFlagsTest, PositionalArgumentIsAnError) {
  absl::StatusOr<NodeCacheFlags> f = Parse({"-localip=1.2.3.4", "--", "-conf=/x"});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(), "unexpected argument '-conf=/x'");
}

TEST(NodeCacheFlagsTest, HelpIsNotAnError) {
  absl::StatusOr<NodeCacheFlags> f = Parse({"--help"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->help_requested);
  f = Parse({"-h", "-localip=not-an-ip"});  // Help wins over later problems.
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->help_requested);
}

TEST(NodeCacheFlagsTest, UnknownFlagAndMissingValueAreGoErrors) {
  EXPECT_EQ(Parse({"-localip=1.2.3.4", "-foo"}).status().message(),
            "flag provided but not defined: -foo");
  EXPECT_EQ(Parse({"-localip=1.2.3.4", "-conf"}).status().message(),
            "flag needs an argument: -conf");
}

TEST(NodeCacheFlagsTest, ErrorsAreOneLine) {
  absl::StatusOr<NodeCacheFlags> f = Parse({"-localip", "1.2.3.4\n5.6.7.8"});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(),
            "invalid -localip entry \"1.2.3.4\\n5.6.7.8\": not an IP address");
  f = Parse({"-localip=1.2.3.4", "-dns.port", "5\r\n3"});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(), "invalid -dns.port \"5\\r\\n3\": want a number from 1 to 65535");
}

TEST(NodeCacheFlagsTest, LocalIpIsRequired) {
  absl::StatusOr<NodeCacheFlags> f = Parse({});
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), HasSubstr("-localip is required"));
  EXPECT_FALSE(Parse({"-localip="}).ok());
}

TEST(NodeCacheFlagsTest, LocalIpEntriesMustBeIpLiterals) {
  for (const char* bad :
       {"1.2.3.4,", "1.2.3.4,,5.6.7.8", "1.2.3.4, 5.6.7.8", "169.254.20.010", "localhost",
        "[fd00::1]", "fe80::1%eth0", "1.2.3.4:53", "__PILLAR__LOCAL__DNS__"}) {
    absl::StatusOr<NodeCacheFlags> f = Parse({std::string("-localip=") + bad});
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_THAT(f.status().message(), HasSubstr("invalid -localip entry")) << bad;
  }
  absl::StatusOr<NodeCacheFlags> f = Parse({"-localip=1.2.3.4,bogus"});
  EXPECT_EQ(f.status().message(), "invalid -localip entry \"bogus\": not an IP address");
}

TEST(NodeCacheFlagsTest, LocalIpsMayBeOfOneFamilyOrBoth) {
  absl::StatusOr<NodeCacheFlags> f = Parse({"-localip=169.254.20.10,fd00::10"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->local_ips_ipv4);
  EXPECT_TRUE(f->local_ips_ipv6);
  EXPECT_EQ(f->local_ips, (std::vector<std::string>{"169.254.20.10", "fd00::10"}));
  f = Parse({"-localip=fd00::10,fd00::53"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->local_ips_ipv6);
  EXPECT_FALSE(f->local_ips_ipv4);
  // Go's utilnet.IsIPv6 says an IPv4-mapped address is IPv4.
  f = Parse({"-localip=169.254.20.10,::ffff:10.96.0.10"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->local_ips_ipv6);
  EXPECT_TRUE(f->local_ips_ipv4);
}

TEST(NodeCacheFlagsTest, PortsMustBeDecimal1To65535) {
  for (const char* flag : {"-dns.port=", "-health-port="}) {
    for (const char* bad : {"0", "65536", "-1", "+53", "0x35", "domain", "", "5 3"}) {
      absl::StatusOr<NodeCacheFlags> f = Parse({"-localip=1.2.3.4", std::string(flag) + bad});
      ASSERT_FALSE(f.ok()) << flag << bad;
      EXPECT_THAT(f.status().message(),
                  HasSubstr(std::string(flag).substr(0, std::string(flag).size() - 1)))
          << flag << bad;
    }
    for (const char* good : {"1", "53", "65535"}) {
      EXPECT_TRUE(Parse({"-localip=1.2.3.4", std::string(flag) + good}).ok()) << flag << good;
    }
  }
}

TEST(NodeCacheFlagsTest, MetricsListenAddressIsHostPort) {
  for (const char* good :
       {":9353", "0.0.0.0:9353", "169.254.20.10:9253", "[::]:9353", "[fd00::10]:1"}) {
    EXPECT_TRUE(Parse({"-localip=1.2.3.4", std::string("-metrics-listen-address=") + good}).ok())
        << good;
  }
  for (const char* bad : {"9353", "0.0.0.0", "0.0.0.0:", "0.0.0.0:0", ":65536", "::1:9353",
                          "[::1:9353", "[nope]:1", "localhost:9353", "1.2.3:9353"}) {
    absl::StatusOr<NodeCacheFlags> f =
        Parse({"-localip=1.2.3.4", std::string("-metrics-listen-address=") + bad});
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_THAT(f.status().message(), HasSubstr("-metrics-listen-address")) << bad;
  }
}

TEST(NodeCacheFlagsTest, SyncIntervalKeepsNodeCacheSecondsArithmetic) {
  struct Case {
    const char* arg;
    int64_t seconds;
  };
  for (const Case& c : {Case{"60ns", 60}, Case{"1ns", 1}, Case{"500ms", 500000000}, Case{"1s", 1},
                        Case{"90s", 90}, Case{"1m30.4s", 90}, Case{"1m30.5s", 91}, Case{"2h", 7200},
                        // The largest Duration: rounding must not overflow int64 nanoseconds.
                        Case{"2562047h47m16.854775807s", 9223372037}}) {
    absl::StatusOr<NodeCacheFlags> f =
        Parse({"-localip=1.2.3.4", std::string("-syncinterval=") + c.arg});
    ASSERT_TRUE(f.ok()) << c.arg << ": " << f.status();
    EXPECT_EQ(f->EffectiveSyncIntervalSeconds(), c.seconds) << c.arg;
  }
}

TEST(NodeCacheFlagsTest, SyncIntervalMustBePositiveAndAGoDuration) {
  for (const char* bad : {"0", "-1s"}) {
    absl::StatusOr<NodeCacheFlags> f =
        Parse({"-localip=1.2.3.4", std::string("-syncinterval=") + bad});
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_THAT(f.status().message(), HasSubstr("must be positive")) << bad;
  }
  absl::StatusOr<NodeCacheFlags> f = Parse({"-localip=1.2.3.4", "-syncinterval", "60"});
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), HasSubstr("invalid value \"60\" for flag -syncinterval"));
}

TEST(NodeCacheFlagsTest, UsageListsEveryFlagWithDefaults) {
  std::string usage = UsageText();
  for (const char* flag : {"-localip",
                           "-setupinterface",
                           "-interfacename",
                           "-syncinterval",
                           "-metrics-listen-address",
                           "-setupiptables",
                           "-basecorefile",
                           "-corefile",
                           "-kubednscm",
                           "-upstreamsvc",
                           "-health-port",
                           "-skipteardown",
                           "-reloadwithsignal",
                           "-conf",
                           "-dns.port",
                           "-pidfile",
                           "-quiet",
                           "-version",
                           "-plugins",
                           "  -p string"}) {
    EXPECT_THAT(usage, HasSubstr(flag));
  }
  EXPECT_THAT(usage, HasSubstr("(default \"/etc/coredns/Corefile.base\")"));
  EXPECT_THAT(usage, HasSubstr("(default 60ns)"));
  EXPECT_THAT(usage, HasSubstr("(default \"0.0.0.0:9353\")"));
}

TEST(NodeCacheFlagsTest, AllowDefaultsToServesDefaultAndRejectsBadLists) {
  absl::StatusOr<NodeCacheFlags> f = Parse({"-localip=169.254.20.10"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->allow, proxy::kDefaultAllow);
  EXPECT_EQ(f->allow_list, proxy::AllowList());
  f = Parse({"-localip=169.254.20.10", "-allow=default,203.0.113.0/24"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->allow_list.ToString(), std::string(proxy::kDefaultAllow) + ",203.0.113.0/24");
  f = Parse({"-localip=169.254.20.10", "-allow", "any"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->allow_list.open());
  for (const char* bad : {"", "10.0.0.1/8", "10.0.0.0/8,", "pods"}) {
    f = Parse({"-localip=169.254.20.10", std::string("-allow=") + bad});
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_THAT(f.status().message(), HasSubstr("invalid -allow")) << bad;
  }
  EXPECT_THAT(UsageText(), HasSubstr("-allow string"));
}

TEST(NodeCacheFlagsTest, HandoverCachePercentIs0To100) {
  absl::StatusOr<NodeCacheFlags> f = Parse({"-localip=1.2.3.4", "-handover=/run/nodedns/h.sock"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->handover, "/run/nodedns/h.sock");
  EXPECT_EQ(f->handover_cache_percent, 25u);
  for (const char* good : {"0", "100", "40"}) {
    f = Parse({"-localip=1.2.3.4", std::string("-handover-cache-percent=") + good});
    ASSERT_TRUE(f.ok()) << good << ": " << f.status();
    EXPECT_EQ(f->handover_cache_percent, static_cast<uint32_t>(std::stoi(good)));
  }
  for (const char* bad : {"-1", "101", "x"}) {
    f = Parse({"-localip=1.2.3.4", std::string("-handover-cache-percent=") + bad});
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_THAT(f.status().message(), HasSubstr("-handover-cache-percent")) << bad;
  }
  EXPECT_THAT(UsageText(), HasSubstr("-handover-cache-percent int"));
  EXPECT_THAT(UsageText(), HasSubstr("(default 25)"));
}

TEST(NodeCacheFlagsTest, UpstreamServiceEnvVarIsKubernetesServiceVariable) {
  EXPECT_EQ(UpstreamServiceEnvVar("kube-dns-upstream"), "KUBE_DNS_UPSTREAM_SERVICE_HOST");
  EXPECT_EQ(UpstreamServiceEnvVar("kube-dns"), "KUBE_DNS_SERVICE_HOST");
}

TEST(NodeCacheFlagsTest, UpstreamServiceIpFromEnvironment) {
  std::map<std::string, std::string> env = {{"KUBE_DNS_UPSTREAM_SERVICE_HOST", "10.96.0.11"},
                                            {"BAD_SERVICE_HOST", "kube-dns.local"}};
  auto getenv = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  absl::StatusOr<std::string> ip = UpstreamServiceIp("kube-dns-upstream", getenv);
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(*ip, "10.96.0.11");

  ip = UpstreamServiceIp("kube-dns", getenv);
  ASSERT_FALSE(ip.ok());
  EXPECT_THAT(ip.status().message(), HasSubstr("-upstreamsvc kube-dns"));
  EXPECT_THAT(ip.status().message(), HasSubstr("KUBE_DNS_SERVICE_HOST is not set"));

  ip = UpstreamServiceIp("bad", getenv);
  ASSERT_FALSE(ip.ok());
  EXPECT_THAT(ip.status().message(), HasSubstr("-upstreamsvc bad"));
  EXPECT_THAT(ip.status().message(), HasSubstr("BAD_SERVICE_HOST=\"kube-dns.local\""));
}

TEST(NodeCacheFlagsTest, VersionAndPluginsNeedNoOtherFlag) {
  for (const char* flag : {"-version", "-plugins"}) {
    const std::vector<std::string> args = {flag};
    auto f = ParseNodeCacheFlags(args);
    ASSERT_TRUE(f.ok()) << flag << ": " << f.status();
  }
  const std::vector<std::string> bad = {"-version", "-nosuchflag"};
  EXPECT_FALSE(ParseNodeCacheFlags(bad).ok()) << "an unknown flag still fails";
}

}  // namespace
}  // namespace nodedns::nodecache
