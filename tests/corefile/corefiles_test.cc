// The Corefiles clusters actually run: the stock NodeLocal DNSCache ConfigMap and renderings of
// the deliveryhero node-local-dns Helm chart (testdata/, each naming its source), read field by
// field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "corefile/config.h"
#include "corefile/syntax.h"

namespace nodedns::corefile {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::optional<std::string> NoEnv(std::string_view) { return std::nullopt; }

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(std::string(NODEDNS_SOURCE_DIR) + "/tests/corefile/testdata/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<ServerBlockConfig> Load(const std::string& name) {
  absl::StatusOr<Corefile> c = ParseCorefile(ReadTestdata(name), name, NoEnv);
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return {};
  absl::StatusOr<std::vector<ServerBlockConfig>> blocks = InterpretCorefile(*c, name);
  EXPECT_TRUE(blocks.ok()) << blocks.status();
  if (!blocks.ok()) return {};
  return *std::move(blocks);
}

std::vector<std::string> Zones(const ServerBlockConfig& b) {
  std::vector<std::string> out;
  for (const ServerKey& k : b.keys) out.push_back(k.zone + ":" + std::to_string(k.port));
  return out;
}

std::vector<std::string> BindAddresses(const ServerBlockConfig& b) {
  std::vector<std::string> out;
  for (const BindAddress& a : b.bind) out.push_back(a.address);
  return out;
}

std::vector<std::string> Upstreams(const ForwardConfig& f) {
  std::vector<std::string> out;
  for (const ForwardTarget& t : f.to) {
    out.push_back(t.address ? t.address->ToString() : "file:" + t.resolv_conf_path);
  }
  return out;
}

// What the stock ConfigMap and the chart share in every block: errors, reload, loop and
// prometheus :9253 with CoreDNS's defaults.
void ExpectCommonDirectives(const ServerBlockConfig& b) {
  SCOPED_TRACE(b.keys.empty() ? "" : b.keys[0].text);
  ASSERT_TRUE(b.errors);
  EXPECT_THAT(b.errors->consolidate, IsEmpty());
  ASSERT_TRUE(b.reload);
  EXPECT_EQ(b.reload->interval, absl::Seconds(30));
  EXPECT_EQ(b.reload->jitter, absl::Seconds(15));
  EXPECT_NE(b.loop_line, 0);
  ASSERT_TRUE(b.prometheus);
  EXPECT_EQ(b.prometheus->address, ":9253");
  EXPECT_FALSE(b.ready);
}

TEST(StockCorefileTest, FourBlocksWithTheirZones) {
  std::vector<ServerBlockConfig> blocks = Load("stock.Corefile");
  ASSERT_EQ(blocks.size(), 4u);
  EXPECT_THAT(Zones(blocks[0]), ElementsAre("cluster.local.:53"));
  EXPECT_THAT(Zones(blocks[1]), ElementsAre("in-addr.arpa.:53"));
  EXPECT_THAT(Zones(blocks[2]), ElementsAre("ip6.arpa.:53"));
  EXPECT_THAT(Zones(blocks[3]), ElementsAre(".:53"));
  EXPECT_EQ(blocks[0].line, 6);
  EXPECT_EQ(blocks[3].line, 43);
  for (const ServerBlockConfig& b : blocks) {
    ExpectCommonDirectives(b);
    EXPECT_THAT(BindAddresses(b), ElementsAre("169.254.20.10", "10.96.0.10"));
    EXPECT_THAT(b.log, IsEmpty());
  }
}

TEST(StockCorefileTest, ClusterDomainBlock) {
  std::vector<ServerBlockConfig> blocks = Load("stock.Corefile");
  ASSERT_EQ(blocks.size(), 4u);
  const ServerBlockConfig& b = blocks[0];
  ASSERT_TRUE(b.cache);
  EXPECT_EQ(b.cache->line, 8);
  EXPECT_THAT(b.cache->zones, ElementsAre("cluster.local."));
  EXPECT_EQ(b.cache->success.capacity, 9984);
  EXPECT_EQ(b.cache->success.max_ttl, absl::Seconds(30));
  EXPECT_EQ(b.cache->success.min_ttl, absl::Seconds(5));
  EXPECT_EQ(b.cache->denial.capacity, 9984);
  EXPECT_EQ(b.cache->denial.max_ttl, absl::Seconds(5));
  EXPECT_EQ(b.cache->denial.min_ttl, absl::Seconds(5));
  EXPECT_FALSE(b.cache->prefetch);
  EXPECT_FALSE(b.cache->serve_stale);
  EXPECT_EQ(b.cache->servfail_ttl, absl::Seconds(5));
  ASSERT_TRUE(b.forward);
  EXPECT_EQ(b.forward->line, 15);
  EXPECT_EQ(b.forward->from, ".");
  EXPECT_THAT(Upstreams(*b.forward), ElementsAre("10.96.0.11:53"));
  EXPECT_TRUE(b.forward->force_tcp);
  EXPECT_FALSE(b.forward->prefer_udp);
  EXPECT_EQ(b.forward->max_fails, 2);
  ASSERT_TRUE(b.health);
  EXPECT_EQ(b.health->address, "169.254.20.10:8080");
  EXPECT_EQ(b.health->line, 19);
}

TEST(StockCorefileTest, ReverseAndDefaultBlocks) {
  std::vector<ServerBlockConfig> blocks = Load("stock.Corefile");
  ASSERT_EQ(blocks.size(), 4u);
  for (int i = 1; i < 4; ++i) {
    const ServerBlockConfig& b = blocks[i];
    SCOPED_TRACE(b.keys[0].text);
    ASSERT_TRUE(b.cache);
    EXPECT_THAT(b.cache->zones, ElementsAre(b.keys[0].zone));
    EXPECT_EQ(b.cache->success.capacity, 10000);
    EXPECT_EQ(b.cache->success.max_ttl, absl::Seconds(30));
    EXPECT_EQ(b.cache->denial.max_ttl, absl::Seconds(30));
    EXPECT_FALSE(b.health);
    ASSERT_TRUE(b.forward);
  }
  EXPECT_THAT(Upstreams(*blocks[1].forward), ElementsAre("10.96.0.11:53"));
  EXPECT_TRUE(blocks[2].forward->force_tcp);
  EXPECT_THAT(Upstreams(*blocks[3].forward), ElementsAre("file:/etc/resolv.conf"));
  EXPECT_FALSE(blocks[3].forward->force_tcp);
  EXPECT_EQ(blocks[3].forward->line, 49);
}

TEST(HelmChartCorefileTest, PrefetchEverywhere) {
  std::vector<ServerBlockConfig> blocks = Load("helm_prefetch.Corefile");
  ASSERT_EQ(blocks.size(), 4u);
  for (const ServerBlockConfig& b : blocks) {
    ExpectCommonDirectives(b);
    SCOPED_TRACE(b.keys[0].text);
    EXPECT_THAT(BindAddresses(b), ElementsAre("0.0.0.0"));
    ASSERT_TRUE(b.cache && b.cache->prefetch);
    EXPECT_EQ(b.cache->prefetch->amount, 3);
    EXPECT_EQ(b.cache->prefetch->duration, absl::Seconds(30));
    EXPECT_EQ(b.cache->prefetch->percentage, 20);
    EXPECT_FALSE(b.cache->serve_stale);
  }
  EXPECT_EQ(blocks[0].cache->success.capacity, 9984);
  EXPECT_EQ(blocks[0].cache->denial.max_ttl, absl::Seconds(5));
  EXPECT_EQ(blocks[0].cache->prefetch->line, 11);
  EXPECT_EQ(blocks[1].cache->success.max_ttl, absl::Seconds(30));
  EXPECT_EQ(blocks[0].health->address, ":8080");
  // The default block's forward has an empty option block (upstreamForwardConfig is empty).
  EXPECT_THAT(Upstreams(*blocks[3].forward), ElementsAre("file:/etc/resolv.conf"));
  EXPECT_FALSE(blocks[3].forward->force_tcp);
  EXPECT_TRUE(blocks[1].forward->force_tcp);
}

TEST(HelmChartCorefileTest, ServeStaleVerifyAndLogging) {
  std::vector<ServerBlockConfig> blocks = Load("helm_serve_stale.Corefile");
  ASSERT_EQ(blocks.size(), 4u);
  for (const ServerBlockConfig& b : blocks) {
    ExpectCommonDirectives(b);
    SCOPED_TRACE(b.keys[0].text);
    ASSERT_TRUE(b.cache && b.cache->serve_stale);
    EXPECT_EQ(b.cache->serve_stale->duration, absl::Hours(1));
    EXPECT_TRUE(b.cache->serve_stale->verify);
    EXPECT_FALSE(b.cache->prefetch);
  }
  ASSERT_EQ(blocks[0].log.size(), 1u);
  EXPECT_THAT(blocks[0].log[0].args, IsEmpty());
  EXPECT_EQ(blocks[0].log[0].line, 7);
  EXPECT_THAT(blocks[1].log, IsEmpty());
  EXPECT_EQ(blocks[3].log.size(), 1u);
}

TEST(HelmChartCorefileTest, PreferUdpWithBoundAddressesAndOwnUpstreams) {
  std::vector<ServerBlockConfig> blocks = Load("helm_prefer_udp.Corefile");
  ASSERT_EQ(blocks.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    ExpectCommonDirectives(blocks[i]);
    EXPECT_THAT(BindAddresses(blocks[i]), ElementsAre("169.254.20.25", "172.20.0.10"));
    ASSERT_TRUE(blocks[i].forward);
    EXPECT_TRUE(blocks[i].forward->prefer_udp);
    EXPECT_FALSE(blocks[i].forward->force_tcp);
    EXPECT_THAT(Upstreams(*blocks[i].forward), ElementsAre("172.20.0.11:53"));
  }
  EXPECT_EQ(blocks[0].health->address, ":8081");
  EXPECT_THAT(Upstreams(*blocks[3].forward),
              ElementsAre("1.1.1.1:53", "[2606:4700:4700::1111]:53"));
  EXPECT_FALSE(blocks[3].forward->prefer_udp);
}

TEST(HelmChartCorefileTest, ExtraServerBlockAndUpstreamForwardConfig) {
  std::vector<ServerBlockConfig> blocks = Load("helm_extra_block.Corefile");
  ASSERT_EQ(blocks.size(), 5u);
  const ForwardConfig& def = *blocks[3].forward;
  EXPECT_EQ(def.max_concurrent, 1000);
  EXPECT_EQ(def.policy, ForwardPolicy::kSequential);
  const ServerBlockConfig& extra = blocks[4];
  EXPECT_THAT(Zones(extra), ElementsAre("consul.local.:53"));
  EXPECT_EQ(extra.line, 57);
  ASSERT_TRUE(extra.errors);
  ASSERT_TRUE(extra.cache);
  EXPECT_EQ(extra.cache->success.max_ttl, absl::Seconds(30));
  EXPECT_THAT(extra.cache->zones, ElementsAre("consul.local."));
  ASSERT_TRUE(extra.forward);
  EXPECT_THAT(Upstreams(*extra.forward), ElementsAre("10.150.0.1:8600", "10.150.0.2:8600"));
  EXPECT_THAT(extra.bind, IsEmpty());
  EXPECT_FALSE(extra.reload);
  EXPECT_FALSE(extra.prometheus);
  EXPECT_EQ(extra.loop_line, 0);
}

TEST(HelmChartCorefileTest, NoIpv6LookupsTemplateIsRefusedWithItsLine) {
  // config.noIPv6Lookups adds CoreDNS's template plugin, which nodedns does not implement.
  std::string text = ReadTestdata("helm_prefetch.Corefile");
  const std::string anchor = "    prometheus :9253\n    health :8080\n";
  const size_t at = text.find(anchor);
  ASSERT_NE(at, std::string::npos);
  text.insert(at, "    template IN AAAA {\n            rcode NOERROR\n    }\n");
  absl::StatusOr<Corefile> c = ParseCorefile(text, "Corefile", NoEnv);
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<std::vector<ServerBlockConfig>> blocks = InterpretCorefile(*c, "Corefile");
  ASSERT_FALSE(blocks.ok());
  EXPECT_EQ(blocks.status().message(),
            "Corefile:19: unknown directive 'template' (nodedns supports: bind, cache, errors, "
            "forward, health, log, loop, prometheus, ready, reload)");
}

}  // namespace
}  // namespace nodedns::corefile
