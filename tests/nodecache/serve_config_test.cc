// Tests for the translation of a Corefile's server blocks into nodedns's one configuration
// (nodecache/serve_config.h). Each Corefile is parsed and interpreted by corefile/ as the command
// does, so the tests read as the operator's file; resolv.conf targets go to a fake reader.
#include "nodecache/serve_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/string_view_compat.h"
#include "corefile/config.h"
#include "corefile/syntax.h"

namespace nodedns::nodecache {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

std::optional<std::string> NoEnvironment(std::string_view) { return std::nullopt; }

// The fake resolv.conf reader: these files exist, any other path does not.
const std::map<std::string, std::vector<std::string>>& ResolvConfs() {
  static const auto* files = new std::map<std::string, std::vector<std::string>>{
      {"/etc/k8s-resolv.conf", {"10.0.0.1:53", "10.0.0.2:53"}},
  };
  return *files;
}

TranslateOptions Options() {
  TranslateOptions o;
  o.filename = "Corefile";
  o.read_nameservers =
      [](const std::string& path) -> absl::StatusOr<std::vector<dns::SocketAddress>> {
    auto it = ResolvConfs().find(path);
    if (it == ResolvConfs().end()) {
      return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
    }
    std::vector<dns::SocketAddress> out;
    for (const std::string& a : it->second) out.push_back(*dns::SocketAddress::Parse(a));
    return out;
  };
  o.node_search = {"ec2.internal", "example.com"};
  return o;
}

// `text` must be a valid Corefile to corefile/: what is tested is the translation.
absl::StatusOr<NodeCacheConfig> Translate(std::string_view text,
                                          const TranslateOptions& options = Options()) {
  auto parsed = corefile::ParseCorefile(text, "Corefile", NoEnvironment);
  if (!parsed.ok()) {
    ADD_FAILURE() << "parse: " << parsed.status();
    return parsed.status();
  }
  auto blocks = corefile::InterpretCorefile(*parsed, "Corefile");
  if (!blocks.ok()) {
    ADD_FAILURE() << "interpret: " << blocks.status();
    return blocks.status();
  }
  return TranslateCorefile(*blocks, options);
}

// The message of a translation that must fail.
std::string Error(std::string_view text) {
  absl::StatusOr<NodeCacheConfig> c = Translate(text);
  if (c.ok()) return "<translated without error>";
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << c.status();
  return std::string(c.status().message());
}

std::vector<std::string> Listen(const NodeCacheConfig& c) {
  std::vector<std::string> out;
  for (const auto& a : c.serve.listen) out.push_back(a.ToString());
  return out;
}

const proxy::ForwardZone* FindZone(const NodeCacheConfig& c, std::string_view zone) {
  for (const auto& z : c.serve.zones) {
    if (z.zone == zone) return &z;
  }
  ADD_FAILURE() << "no zone " << zone;
  return nullptr;
}

std::vector<std::string> Upstreams(const proxy::ForwardZone& z) {
  std::vector<std::string> out;
  for (const auto& a : z.upstreams) out.push_back(a.ToString());
  return out;
}

// One line per policy, so that a mismatch shows every field.
std::string Describe(const cache::EntryPolicy& p) {
  return absl::StrCat("ttl ", p.min_ttl, "..", p.max_ttl, " negative ", p.min_negative_ttl, "..",
                      p.max_negative_ttl, " servfail ", p.servfail_ttl, " stale ", p.stale_ttl,
                      " prefetch ", p.prefetch_min_hits, "/", p.prefetch_percent, "%");
}

// The cache policy of the root zone of a one-block Corefile with `cache_lines` in it.
std::string RootPolicy(std::string_view cache_lines) {
  absl::StatusOr<NodeCacheConfig> c =
      Translate(absl::StrCat(".:53 {\n", Av(cache_lines), "\n    forward . 10.0.0.1\n}\n"));
  if (!c.ok()) return std::string(c.status().message());
  const proxy::ForwardZone* root = FindZone(*c, ".");
  if (root == nullptr) return "<no root zone>";
  if (!root->cache_policy) return "<no policy>";
  return Describe(*root->cache_policy);
}

std::vector<std::string> Endpoints(const NodeCacheConfig& c) {
  std::vector<std::string> out;
  for (const auto& e : c.serve.http) out.push_back(e.ToString());
  return out;
}

// --- Listen addresses and the one zone table ---

TEST(TranslateCorefileTest, ListensOnEveryBindAddressAtTheKeysPort) {
  absl::StatusOr<NodeCacheConfig> c = Translate(R"(.:5353 {
    bind 127.0.0.1 ::1
    forward . 10.0.0.1
}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(Listen(*c), UnorderedElementsAre("127.0.0.1:5353", "[::1]:5353"));
}

TEST(TranslateCorefileTest, BlockWithoutBindListensOnAllIpv4Addresses) {
  absl::StatusOr<NodeCacheConfig> c = Translate(".:53 {\n    forward . 10.0.0.1\n}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(Listen(*c), ElementsAre("0.0.0.0:53"));
}

TEST(TranslateCorefileTest, AddressBoundByEveryBlockIsListenedOnOnce) {
  absl::StatusOr<NodeCacheConfig> c = Translate(R"(cluster.local:53 {
    bind 169.254.20.10 10.96.0.10
    forward . 10.96.0.20
}
.:53 {
    bind 169.254.20.10 10.96.0.10 169.254.20.10
    forward . 10.0.0.1
}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(Listen(*c), UnorderedElementsAre("169.254.20.10:53", "10.96.0.10:53"));
  EXPECT_EQ(c->serve.zones.size(), 2u);
}

TEST(TranslateCorefileTest, BlockKeyedOnTwoPortsListensOnBothWithOneZoneEach) {
  absl::StatusOr<NodeCacheConfig> c = Translate(R"(cluster.local:53 cluster.local:5353 {
    bind 127.0.0.1 127.0.0.2
    cache 30 cluster.local
    forward . 10.96.0.20
}
.:53 .:5353 {
    bind 127.0.0.1 127.0.0.2
    forward . 10.0.0.1
}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(Listen(*c), UnorderedElementsAre("127.0.0.1:53", "127.0.0.2:53", "127.0.0.1:5353",
                                               "127.0.0.2:5353"));
  ASSERT_EQ(c->serve.zones.size(), 2u);
  EXPECT_EQ(c->serve.zones[0].zone, "cluster.local");
  EXPECT_EQ(c->serve.zones[1].zone, ".");
}

TEST(TranslateCorefileTest, ListenAddressesServingDifferentZonesAreAnError) {
  EXPECT_THAT(Error(R"(cluster.local:53 {
    bind 127.0.0.1
    forward . 10.96.0.20
}
.:53 {
    bind 127.0.0.2
    forward . 10.0.0.1
}
)"),
              StartsWith("Corefile: 127.0.0.2:53 serves zones {.} but 127.0.0.1:53 serves "
                         "{cluster.local.}; nodedns answers every listen address from one zone "
                         "table"));
}

TEST(TranslateCorefileTest, ZoneInTwoBlocksIsAnErrorNamingTheOtherBlock) {
  // CoreDNS accepts this (the binds differ); nodedns would need two zone tables.
  EXPECT_THAT(Error(R"(.:53 {
    bind 127.0.0.1
    forward . 10.0.0.1
}
.:53 {
    bind 127.0.0.2
    forward . 10.0.0.2
}
)"),
              StartsWith("Corefile:5: zone . is also served by the block at line 1; "));
}

TEST(TranslateCorefileTest, RootZoneIsRequired) {
  EXPECT_EQ(Error("cluster.local:53 {\n    forward . 10.96.0.20\n}\n"),
            "Corefile: no forwarding for the root zone '.' (add a server block for '.')");
}

// --- forward ---

TEST(TranslateCorefileTest, ForwardFromBelowTheBlockZoneIsAnError) {
  EXPECT_THAT(Error(R"(cluster.local:53 {
    forward . 10.96.0.20
}
.:53 {
    errors
    forward cluster.local 10.0.0.1
}
)"),
              StartsWith("Corefile:6: forward cluster.local. does not cover the block's zone .; "));
}

TEST(TranslateCorefileTest, ForwardFromAtOrAboveTheBlockZoneIsAccepted) {
  absl::StatusOr<NodeCacheConfig> c = Translate(R"(sub.cluster.local:53 {
    forward cluster.local 10.96.0.20
}
cluster.local:53 {
    forward cluster.local 10.96.0.21
}
.:53 {
    forward . 10.0.0.1
}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->serve.zones.size(), 3u);
}

TEST(TranslateCorefileTest, ForwardExceptIsAnError) {
  EXPECT_EQ(Error(R"(.:53 {
    forward . 10.0.0.1 {
        except example.com
    }
}
)"),
            "Corefile:2: forward except: not supported by nodedns (it forwards whole zones)");
}

TEST(TranslateCorefileTest, BlockWithoutForwardIsAnError) {
  EXPECT_EQ(Error(".:53 {\n    forward . 10.0.0.1\n}\nexample.com:53 {\n    errors\n}\n"),
            "Corefile:4: zone example.com.: no forward; nodedns needs an upstream for every zone");
}

TEST(TranslateCorefileTest, ResolvConfTargetsAreReadThroughTheReader) {
  std::vector<std::string> read;
  TranslateOptions o = Options();
  auto fake = o.read_nameservers;
  o.read_nameservers = [&](const std::string& path) {
    read.push_back(path);
    return fake(path);
  };
  absl::StatusOr<NodeCacheConfig> c =
      Translate(".:53 {\n    forward . /etc/k8s-resolv.conf 10.0.0.9:5353\n}\n", o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(read, ElementsAre("/etc/k8s-resolv.conf"));
  const proxy::ForwardZone* root = FindZone(*c, ".");
  ASSERT_NE(root, nullptr);
  EXPECT_THAT(Upstreams(*root), ElementsAre("10.0.0.1:53", "10.0.0.2:53", "10.0.0.9:5353"));
}

TEST(TranslateCorefileTest, UnreadableResolvConfIsAnErrorAtTheForwardLine) {
  EXPECT_EQ(Error(".:53 {\n    errors\n    forward . /etc/missing/resolv.conf\n}\n"),
            "Corefile:3: forward: cannot read '/etc/missing/resolv.conf'");
}

TEST(TranslateCorefileTest, ForceTcpAndMaxConcurrentApplyToTheirBlocksZones) {
  absl::StatusOr<NodeCacheConfig> c = Translate(R"(cluster.local:53 {
    forward . 10.96.0.20 {
        force_tcp
        max_concurrent 100
    }
}
.:53 {
    forward . 10.0.0.1
}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  const proxy::ForwardZone* cluster = FindZone(*c, "cluster.local");
  const proxy::ForwardZone* root = FindZone(*c, ".");
  ASSERT_NE(cluster, nullptr);
  ASSERT_NE(root, nullptr);
  EXPECT_TRUE(cluster->force_tcp);
  EXPECT_EQ(cluster->max_concurrent, 100u);
  EXPECT_THAT(Upstreams(*cluster), ElementsAre("10.96.0.20:53"));
  EXPECT_FALSE(root->force_tcp);
  EXPECT_EQ(root->max_concurrent, 0u);
}

TEST(TranslateCorefileTest, MaxFailsAndHealthCheckSetTheZonesUpstreamHealth) {
  absl::StatusOr<NodeCacheConfig> c = Translate(R"(cluster.local:53 {
    forward . 10.96.0.20 10.96.0.21 {
        max_fails 5
        health_check 1500ms no_rec domain Example.ORG.
    }
}
.:53 {
    forward . 10.0.0.1 {
        max_fails 0
    }
}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  const proxy::ForwardZone* cluster = FindZone(*c, "cluster.local");
  const proxy::ForwardZone* root = FindZone(*c, ".");
  ASSERT_NE(cluster, nullptr);
  ASSERT_NE(root, nullptr);
  const upstream::UpstreamHealth::Options h = proxy::HealthOptions(c->serve, *cluster);
  EXPECT_EQ(h.max_fails, 5);
  EXPECT_EQ(h.check_interval_ms, 1500u);
  EXPECT_FALSE(h.probe_rd);
  EXPECT_EQ(h.probe_qname, *proxy::ZoneToWire("example.org"));
  const upstream::UpstreamHealth::Options r = proxy::HealthOptions(c->serve, *root);
  EXPECT_EQ(r.max_fails, 0);             // health tracking off, as CoreDNS's max_fails 0
  EXPECT_EQ(r.check_interval_ms, 500u);  // CoreDNS's default
  EXPECT_TRUE(r.probe_rd);
  EXPECT_TRUE(r.probe_qname.empty());  // the root
}

// --- cache policy ---

TEST(TranslateCorefileTest, CacheTtlArgumentCapsBothTiersAboveCoreDnsMinimum) {
  EXPECT_EQ(RootPolicy("    cache 30"),
            "ttl 5..30 negative 5..30 servfail 5 stale 0 prefetch 0/0%");
}

TEST(TranslateCorefileTest, StockClusterBlockCacheKeepsEachTiersTtl) {
  EXPECT_EQ(RootPolicy("    cache {\n        success 9984 30\n        denial 9984 5\n    }"),
            "ttl 5..30 negative 5..5 servfail 5 stale 0 prefetch 0/0%");
}

TEST(TranslateCorefileTest, MinimumAboveTheTiersMaximumIsLoweredToIt) {
  EXPECT_EQ(RootPolicy("    cache {\n        denial 100 3\n    }"),
            "ttl 5..3600 negative 3..3 servfail 5 stale 0 prefetch 0/0%");
}

TEST(TranslateCorefileTest, PrefetchKeepsAmountAndPercentage) {
  EXPECT_EQ(RootPolicy("    cache 30 {\n        prefetch 3 30s 20%\n    }"),
            "ttl 5..30 negative 5..30 servfail 5 stale 0 prefetch 3/20%");
}

TEST(TranslateCorefileTest, ServeStaleSetsTheStaleWindow) {
  EXPECT_EQ(RootPolicy("    cache 30 {\n        serve_stale 1h\n    }"),
            "ttl 5..30 negative 5..30 servfail 5 stale 3600 prefetch 0/0%");
}

TEST(TranslateCorefileTest, ServfailZeroDoesNotCacheServfail) {
  EXPECT_EQ(RootPolicy("    cache 30 {\n        servfail 0\n    }"),
            "ttl 5..30 negative 5..30 servfail 0 stale 0 prefetch 0/0%");
}

TEST(TranslateCorefileTest, DisableSuccessStoresNoPositiveAnswers) {
  EXPECT_EQ(RootPolicy("    cache 30 {\n        disable success\n    }"),
            "ttl 0..0 negative 5..30 servfail 5 stale 0 prefetch 0/0%");
}

TEST(TranslateCorefileTest, DisableOfAZoneBelowTheBlockIsAnError) {
  EXPECT_THAT(Error(R"(.:53 {
    cache 30 {
        disable denial example.com
    }
    forward . 10.0.0.1
}
)"),
              // The `cache` line: corefile/ keeps no line for `disable`.
              StartsWith("Corefile:2: cache disable example.com.: nodedns disables a tier for "
                         "whole server blocks only"));
}

TEST(TranslateCorefileTest, BlockWithoutCacheStoresNothing) {
  const std::string nothing = "ttl 0..0 negative 0..0 servfail 0 stale 0 prefetch 0/0%";
  EXPECT_EQ(RootPolicy("    errors"), nothing);
  EXPECT_EQ(Describe(CachePolicy(nullptr)), nothing);
}

TEST(TranslateCorefileTest, CacheKeepTtlIsAnError) {
  EXPECT_EQ(Error(".:53 {\n    forward . 10.0.0.1\n    cache 30 {\n        keepttl\n    }\n}\n"),
            "Corefile:3: cache keepttl: not supported by nodedns");
}

TEST(TranslateCorefileTest, CacheOfSomeOfTheBlocksZonesIsAnError) {
  EXPECT_EQ(Error(R"(.:53 {
    forward . 10.0.0.1
}
cluster.local:53 example.com:53 {
    cache 30 cluster.local
    forward . 10.96.0.20
}
)"),
            "Corefile:5: cache cluster.local.: nodedns caches whole server blocks; list no zones");
}

TEST(TranslateCorefileTest, CacheListingAllTheBlocksZonesIsAccepted) {
  EXPECT_EQ(RootPolicy("    cache 30 ."),
            "ttl 5..30 negative 5..30 servfail 5 stale 0 prefetch 0/0%");
}

// --- cache size ---

TEST(TranslateCorefileTest, CacheSizeIsEveryBlocksCapacitiesInBytes) {
  // The second block has two zones and counts once.
  absl::StatusOr<NodeCacheConfig> c = Translate(R"(cluster.local:53 {
    cache {
        success 9984 30
        denial 9984 5
    }
    forward . 10.96.0.20
}
in-addr.arpa:53 ip6.arpa:53 {
    cache 30
    forward . 10.96.0.20
}
.:53 {
    forward . 10.0.0.1
}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->serve.cache.capacity_bytes, (9984 + 9984 + 10000 + 10000) * kBytesPerCacheEntry);
}

TEST(TranslateCorefileTest, SmallCacheSizeIsRaisedToTheFloor) {
  absl::StatusOr<NodeCacheConfig> small = Translate(
      ".:53 {\n    cache {\n        success 8000\n        denial 191\n    }\n"
      "    forward . 10.0.0.1\n}\n");
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->serve.cache.capacity_bytes, kMinCacheBytes);
  absl::StatusOr<NodeCacheConfig> none = Translate(".:53 {\n    forward . 10.0.0.1\n}\n");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->serve.cache.capacity_bytes, kMinCacheBytes);
  // Just above the floor the capacities count again.
  static_assert(8193 * kBytesPerCacheEntry > kMinCacheBytes);
  absl::StatusOr<NodeCacheConfig> above = Translate(
      ".:53 {\n    cache {\n        success 8000\n        denial 193\n    }\n"
      "    forward . 10.0.0.1\n}\n");
  ASSERT_TRUE(above.ok()) << above.status();
  EXPECT_EQ(above->serve.cache.capacity_bytes, 8193 * kBytesPerCacheEntry);
}

// --- health, ready, prometheus ---

TEST(TranslateCorefileTest, HttpEndpointsServeTheirDirectivesRoles) {
  absl::StatusOr<NodeCacheConfig> c = Translate(R"(.:53 {
    forward . 10.0.0.1
    health :8080
    ready [::1]:8181
    prometheus
}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(Endpoints(*c), ElementsAre("0.0.0.0:8080 health", "[::1]:8181 ready",
                                         "127.0.0.1:9153 metrics,audit"));
  EXPECT_TRUE(c->serve.coredns_metrics);
  ASSERT_EQ(c->serve.http.size(), 3u);
  EXPECT_EQ(c->serve.http[0].flag, "Corefile:3: health");
  EXPECT_EQ(c->serve.http[2].flag, "Corefile:5: prometheus");
}

TEST(TranslateCorefileTest, SameAddressFromSeveralBlocksIsOneEndpointWithEveryRole) {
  absl::StatusOr<NodeCacheConfig> c = Translate(R"(cluster.local:53 {
    forward . 10.96.0.20
    health :9253
}
.:53 {
    forward . 10.0.0.1
    prometheus 0.0.0.0:9253
    ready :9253
}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(Endpoints(*c), ElementsAre("0.0.0.0:9253 health,metrics,audit,ready"));
  EXPECT_EQ(c->serve.http[0].flag, "Corefile:3: health");
}

TEST(TranslateCorefileTest, WithoutPrometheusCoreDnsMetricsStayOff) {
  absl::StatusOr<NodeCacheConfig> c =
      Translate(".:53 {\n    forward . 10.0.0.1\n    health localhost:8080\n}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(Endpoints(*c), ElementsAre("127.0.0.1:8080 health"));
  EXPECT_FALSE(c->serve.coredns_metrics);
}

// --- reload, log ---

TEST(TranslateCorefileTest, ReloadIntervalIsTheShortestOfAllBlocks) {
  absl::StatusOr<NodeCacheConfig> c = Translate(R"(cluster.local:53 {
    forward . 10.96.0.20
    reload
}
.:53 {
    forward . 10.0.0.1
    reload 10s
}
example.com:53 {
    forward . 10.0.0.2
}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->reload_interval_ms, 10'000u);
  absl::StatusOr<NodeCacheConfig> once =
      Translate(".:53 {\n    forward . 10.0.0.1\n    reload\n}\n");
  ASSERT_TRUE(once.ok()) << once.status();
  EXPECT_EQ(once->reload_interval_ms, 30'000u);  // CoreDNS's default interval
}

TEST(TranslateCorefileTest, LongReloadIntervalsDoNotWrapToNoReload) {
  // 2^32 ms wrapped to 0, "no reload directive".
  absl::StatusOr<NodeCacheConfig> c =
      Translate(".:53 {\n    forward . 10.0.0.1\n    reload 1193h2m47.296s\n}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->reload_interval_ms, UINT32_MAX);
}

TEST(TranslateCorefileTest, WithoutReloadTheIntervalIsZero) {
  absl::StatusOr<NodeCacheConfig> c = Translate(".:53 {\n    forward . 10.0.0.1\n}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->reload_interval_ms, 0u);
}

TEST(TranslateCorefileTest, LogIsAcceptedWithAWarningAtItsLine) {
  absl::StatusOr<NodeCacheConfig> c = Translate(".:53 {\n    forward . 10.0.0.1\n    log\n}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->warnings.size(), 1u);
  EXPECT_THAT(c->warnings[0], StartsWith("Corefile:3: log: nodedns does not log queries"));
  absl::StatusOr<NodeCacheConfig> quiet = Translate(".:53 {\n    forward . 10.0.0.1\n}\n");
  ASSERT_TRUE(quiet.ok()) << quiet.status();
  EXPECT_THAT(quiet->warnings, IsEmpty());
}

// --- loop ---

TEST(TranslateCorefileTest, LoopRefusesAForwardToTheOwnListenAddress) {
  EXPECT_EQ(Error(R"(.:53 {
    bind 127.0.0.1
    loop
    forward . 127.0.0.1
}
)"),
            "Corefile:3: loop: zone . forwards to 127.0.0.1:53, which is nodedns itself "
            "(listening on 127.0.0.1:53)");
}

TEST(TranslateCorefileTest, LoopRefusesALoopbackForwardWhenListeningOnAllAddresses) {
  EXPECT_EQ(Error(".:53 {\n    loop\n    forward . 127.0.0.53\n}\n"),
            "Corefile:2: loop: zone . forwards to 127.0.0.53:53, which is nodedns itself "
            "(listening on 0.0.0.0:53)");
}

TEST(TranslateCorefileTest, LoopRefusesIpv6LoopbackWhenListeningOnAllIpv6Addresses) {
  EXPECT_EQ(Error(".:53 {\n    bind ::\n    loop\n    forward . [::1]:53\n}\n"),
            "Corefile:3: loop: zone . forwards to [::1]:53, which is nodedns itself "
            "(listening on [::]:53)");
  // The IPv4 wildcard does not take IPv6 loopback traffic, nor the reverse.
  EXPECT_TRUE(Translate(".:53 {\n    loop\n    forward . [::1]:53\n}\n").ok());
}

TEST(TranslateCorefileTest, LoopAcceptsAForwardToAnotherPortOrAddress) {
  EXPECT_TRUE(Translate(".:53 {\n    loop\n    forward . 127.0.0.1:5353\n}\n").ok());
  EXPECT_TRUE(Translate(".:53 {\n    bind 127.0.0.1\n    loop\n    forward . 127.0.0.2\n}\n").ok());
  EXPECT_TRUE(Translate(".:53 {\n    loop\n    forward . 10.0.0.1\n}\n").ok());
}

TEST(TranslateCorefileTest, WithoutLoopAForwardToItselfIsAccepted) {
  EXPECT_TRUE(Translate(".:53 {\n    bind 127.0.0.1\n    forward . 127.0.0.1\n}\n").ok());
}

// --- cluster domain ---

TEST(TranslateCorefileTest, ClusterDomainIsTheFirstBlocksFirstOrdinaryZone) {
  absl::StatusOr<NodeCacheConfig> c = Translate(R"(in-addr.arpa:53 ip6.arpa:53 corp.example:53 {
    forward . 10.96.0.20
}
cluster.local:53 {
    forward . 10.96.0.20
}
.:53 {
    forward . 10.0.0.1
}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->serve.search_rewrite);
  EXPECT_EQ(c->serve.cluster_domain, "corp.example");
  EXPECT_EQ(c->serve.cluster_domain_wire, *proxy::ZoneToWire("corp.example"));
  EXPECT_THAT(c->serve.node_search, ElementsAre("ec2.internal", "example.com"));
}

TEST(TranslateCorefileTest, WithoutAnOrdinaryZoneInTheFirstBlockRewriteIsOff) {
  absl::StatusOr<NodeCacheConfig> c = Translate(R"(.:53 {
    forward . 10.0.0.1
}
cluster.local:53 {
    forward . 10.96.0.20
}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->serve.search_rewrite);
  EXPECT_THAT(c->serve.node_search, IsEmpty());
  EXPECT_EQ(c->serve.cluster_domain_wire, *proxy::ZoneToWire(c->serve.cluster_domain));
}

// --- ParseHostPort ---

TEST(ParseHostPortTest, EmptyHostIsEveryIpv4Address) {
  absl::StatusOr<dns::SocketAddress> a = ParseHostPort(":8080");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->ToString(), "0.0.0.0:8080");
}

TEST(ParseHostPortTest, LocalhostIsIpv4Loopback) {
  absl::StatusOr<dns::SocketAddress> a = ParseHostPort("localhost:9153");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->ToString(), "127.0.0.1:9153");
}

TEST(ParseHostPortTest, LiteralsOfBothFamilies) {
  absl::StatusOr<dns::SocketAddress> v4 = ParseHostPort("169.254.20.10:8080");
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(v4->ToString(), "169.254.20.10:8080");
  absl::StatusOr<dns::SocketAddress> v6 = ParseHostPort("[::1]:9153");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->family(), AF_INET6);
  EXPECT_EQ(v6->ToString(), "[::1]:9153");
}

TEST(ParseHostPortTest, MalformedAddressesAreErrors) {
  EXPECT_EQ(ParseHostPort("8080").status().message(), "expected HOST:PORT");
  EXPECT_EQ(ParseHostPort("localhost").status().message(), "expected HOST:PORT");
  for (const char* bad : {"", ":", "127.0.0.1:", ":0", ":65536", ":http", "[::1]", "[::1:9153",
                          "example.com:80", "10.0.0.1:53:53x"}) {
    EXPECT_FALSE(ParseHostPort(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace nodedns::nodecache
