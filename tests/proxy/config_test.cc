// Parsing of addresses, forward zones and the serve flags, and zone matching.
#include "proxy/config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cache/response_cache.h"
#include "proxy/reply.h"
#include "proxy/serve_command.h"
#include "resolvconf/resolv_conf.h"
#include "tests/testing/dns_builder.h"
#include "tests/testing/temp_file.h"

namespace nodedns::proxy {
namespace {

TEST(SocketAddressTest, ParsesV4AndV6WithAndWithoutPort) {
  auto a = SocketAddress::Parse("169.254.20.10:53");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->ToString(), "169.254.20.10:53");
  auto b = SocketAddress::Parse("[fd00::a]:5053");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->ToString(), "[fd00::a]:5053");
  auto c = SocketAddress::Parse("10.96.0.10", 53);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->port(), 53);
  auto d = SocketAddress::Parse("2001:db8::1", 53);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->ToString(), "[2001:db8::1]:53");
}

TEST(SocketAddressTest, RejectsBadAddressesAndPorts) {
  EXPECT_FALSE(SocketAddress::Parse("127.0.0.1").ok());  // a port is required here
  EXPECT_FALSE(SocketAddress::Parse("127.0.0.1:0").ok());
  EXPECT_FALSE(SocketAddress::Parse("127.0.0.1:65536").ok());
  EXPECT_FALSE(SocketAddress::Parse("localhost:53").ok());
  EXPECT_FALSE(SocketAddress::Parse("[::1:53").ok());
  EXPECT_FALSE(SocketAddress::Parse("1.2.3:53").ok());
}

using testing::TempFile;

TEST(ForwardSpecTest, ParsesZoneAndUpstreamsIncludingResolvConf) {
  TempFile rc(
      "# comment\nsearch a.svc.cluster.local\nnameserver 10.0.0.2\nnameserver\t10.0.0.3 # x\n"
      "nameserver fe80::1%eth0\nnameserver 10.0.0.4\nnameserver 10.0.0.5\n");
  auto z = ParseForwardSpec("Cluster.Local.=10.96.0.10:5353," + rc.path());
  ASSERT_TRUE(z.ok()) << z.status();
  EXPECT_EQ(z->zone, "cluster.local");
  EXPECT_EQ(z->zone_wire, testing::WireName("cluster.local."));
  // glibc's MAXNS is 3: .2, .3 and fe80::1%eth0 (which we cannot use); .4 and .5 are ignored.
  ASSERT_EQ(z->upstreams.size(), 3u);
  EXPECT_EQ(z->upstreams[0].ToString(), "10.96.0.10:5353");
  EXPECT_EQ(z->upstreams[1].ToString(), "10.0.0.2:53");
  EXPECT_EQ(z->upstreams[2].ToString(), "10.0.0.3:53");
}

TEST(ForwardSpecTest, RejectsMalformedSpecs) {
  EXPECT_FALSE(ParseForwardSpec("cluster.local").ok());
  EXPECT_FALSE(ParseForwardSpec("=10.0.0.1").ok());
  EXPECT_FALSE(ParseForwardSpec("a..b=10.0.0.1").ok());
  EXPECT_FALSE(ParseForwardSpec(".=/nonexistent/resolv.conf").ok());
  EXPECT_FALSE(ParseForwardSpec(".=not-an-address").ok());
}

TEST(MatchZoneTest, LongestZoneWinsAtLabelBoundaries) {
  std::vector<ForwardZone> zones;
  for (const char* spec :
       {".=192.0.2.1", "cluster.local=10.96.0.10", "svc.cluster.local=10.0.0.1"}) {
    zones.push_back(*ParseForwardSpec(spec));
  }
  ASSERT_TRUE(FinishZones(zones, std::vector<std::string>{"cluster.local"}).ok());
  EXPECT_EQ(zones[0].zone, "svc.cluster.local");
  EXPECT_TRUE(zones[1].force_tcp);
  auto match = [&](const char* name) {
    return zones[MatchZone(zones, testing::WireName(name))].zone;
  };
  EXPECT_EQ(match("a.b.svc.cluster.local."), "svc.cluster.local");
  EXPECT_EQ(match("SVC.Cluster.LOCAL."), "svc.cluster.local");
  EXPECT_EQ(match("x.cluster.local."), "cluster.local");
  EXPECT_EQ(match("xcluster.local."), ".");  // not a label boundary
  EXPECT_EQ(match("example.com."), ".");
  EXPECT_EQ(match("."), ".");
}

TEST(MatchZoneTest, FinishZonesNeedsRootAndKnownForceTcpZones) {
  std::vector<ForwardZone> zones = {*ParseForwardSpec("cluster.local=10.96.0.10")};
  EXPECT_FALSE(FinishZones(zones, {}).ok());
  zones.push_back(*ParseForwardSpec(".=192.0.2.1"));
  EXPECT_FALSE(FinishZones(zones, std::vector<std::string>{"example.com"}).ok());
  zones.push_back(*ParseForwardSpec(".=192.0.2.2"));
  EXPECT_FALSE(FinishZones(zones, {}).ok());  // "." twice
}

class ServeFlagsTest : public ::testing::Test {
 protected:
  // Parses a command line the way main() does; returns the config or the error message.
  absl::StatusOr<ServeConfig> Parse(std::vector<std::string> args) {
    CLI::App app;
    ServeFlags flags;
    AddServeCommand(app, flags);
    args.insert(args.begin(), {"nodedns", "serve"});
    std::vector<const char*> argv;
    for (auto& a : args) argv.push_back(a.c_str());
    try {
      app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ParseError& e) {
      return absl::InvalidArgumentError(e.what());
    }
    return BuildServeConfig(flags);
  }
};

TEST_F(ServeFlagsTest, DefaultsListenOnLocalhost5053) {
  auto c = Parse({"--forward", ".=192.0.2.1"});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->listen.size(), 1u);
  EXPECT_EQ(c->listen[0].ToString(), "127.0.0.1:5053");
  EXPECT_EQ(c->cache.capacity_bytes, size_t{256} << 20);
  EXPECT_EQ(c->tcp_idle_timeout_ms, 10'000u);
}

TEST_F(ServeFlagsTest, AcceptsBothOptionForms) {
  auto c = Parse({"--listen=127.0.0.1:6000", "--listen", "[::1]:6000", "--forward=.=192.0.2.1",
                  "--workers=3", "--cache-size", "64", "--stale-ttl=0"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen.size(), 2u);
  EXPECT_EQ(c->workers, 3u);
  EXPECT_EQ(c->cache.capacity_bytes, size_t{64} << 20);
  EXPECT_EQ(c->cache.stale_ttl, 0u);
}

TEST_F(ServeFlagsTest, ErrorsNameTheFlag) {
  auto bad_listen = Parse({"--listen", "nope", "--forward", ".=192.0.2.1"});
  ASSERT_FALSE(bad_listen.ok());
  EXPECT_NE(bad_listen.status().message().find("--listen"), std::string::npos);
  auto bad_forward = Parse({"--forward", "cluster.local"});
  ASSERT_FALSE(bad_forward.ok());
  EXPECT_NE(bad_forward.status().message().find("--forward"), std::string::npos);
  auto bad_servfail = Parse({"--forward", ".=192.0.2.1", "--servfail-ttl", "301"});
  ASSERT_FALSE(bad_servfail.ok());
  EXPECT_NE(bad_servfail.status().message().find("servfail-ttl"), std::string::npos);
  auto bad_tcp = Parse({"--forward", ".=192.0.2.1", "--force-tcp", "cluster.local"});
  ASSERT_FALSE(bad_tcp.ok());
  EXPECT_NE(bad_tcp.status().message().find("--force-tcp"), std::string::npos);
  auto no_root = Parse({"--resolv-conf", "/nonexistent"});
  ASSERT_FALSE(no_root.ok());
  EXPECT_NE(no_root.status().message().find("--forward"), std::string::npos);
  auto bad_ttls = Parse({"--forward", ".=192.0.2.1", "--min-ttl", "100", "--max-ttl", "10"});
  ASSERT_FALSE(bad_ttls.ok());
  EXPECT_NE(bad_ttls.status().message().find("--min-ttl"), std::string::npos);
}

// The flags take their defaults from ServeConfig and cache::CacheSettings; this pins the two
// together, units converted. Only the fields that come from the machine differ: the zones and the
// node's search domains, read here from a resolv.conf of the test's own.
TEST(ServeDefaultsTest, FlagDefaultsBuildTheConfigDefaults) {
  TempFile rc("search node.example\nnameserver 192.0.2.53\n");
  ServeFlags flags;
  flags.resolv_conf = rc.path();
  auto built = BuildServeConfig(flags);
  ASSERT_TRUE(built.ok()) << built.status();
  const ServeConfig want;
  // Structured bindings name every field: a field added to ServeConfig or CacheSettings breaks
  // the build here until its default is pinned too.
  const auto& [listen, zones, workers, cache, http, allow, coredns_metrics, upstream_timeout_ms,
               upstream_tries, upstream_max_fails, upstream_health_check_ms,
               stale_answer_client_timeout_ms, stale_refresh_time_s, overload_queue_delay_ms,
               overload_interval_ms, tcp_idle_timeout_ms, tcp_max_connections, tcp_max_inflight,
               max_waiting_queries, client_miss_share, audit_query_sample, purge_interval_ms,
               cluster_domain, cluster_domain_wire, search_rewrite, node_search, search_pins,
               search_rewrite_deadline_ms, chaos_text, quiet, handover_path, handover_timeout_ms,
               handover_cache_percent, handover_linger, discover_pods, proc_root,
               discover_pods_interval_ms] = *built;
  ASSERT_EQ(listen.size(), 1u);
  EXPECT_EQ(listen[0].ToString(), kDefaultListen);
  EXPECT_TRUE(want.listen.empty());  // filled in by BuildServeConfig, from kDefaultListen
  ASSERT_EQ(zones.size(), 1u);       // from the resolv.conf
  EXPECT_EQ(zones[0].zone, ".");
  ASSERT_EQ(zones[0].upstreams.size(), 1u);
  EXPECT_EQ(zones[0].upstreams[0].ToString(), "192.0.2.53:53");
  EXPECT_EQ(workers, want.workers);
  EXPECT_EQ(http.size(), want.http.size());
  EXPECT_EQ(allow, want.allow);
  EXPECT_EQ(allow.ToString(), kDefaultAllow);
  EXPECT_EQ(coredns_metrics, want.coredns_metrics);
  EXPECT_EQ(upstream_timeout_ms, want.upstream_timeout_ms);
  EXPECT_EQ(upstream_tries, want.upstream_tries);
  EXPECT_EQ(upstream_max_fails, want.upstream_max_fails);
  EXPECT_EQ(upstream_health_check_ms, want.upstream_health_check_ms);
  EXPECT_EQ(stale_answer_client_timeout_ms, want.stale_answer_client_timeout_ms);
  EXPECT_EQ(stale_refresh_time_s, want.stale_refresh_time_s);
  EXPECT_EQ(overload_queue_delay_ms, want.overload_queue_delay_ms);
  EXPECT_EQ(overload_interval_ms, want.overload_interval_ms);
  EXPECT_EQ(tcp_idle_timeout_ms, want.tcp_idle_timeout_ms);
  EXPECT_EQ(tcp_max_connections, want.tcp_max_connections);
  EXPECT_EQ(tcp_max_inflight, want.tcp_max_inflight);
  EXPECT_EQ(audit_query_sample, want.audit_query_sample);
  EXPECT_EQ(max_waiting_queries, want.max_waiting_queries);
  EXPECT_EQ(client_miss_share, want.client_miss_share);
  EXPECT_EQ(purge_interval_ms, want.purge_interval_ms);
  EXPECT_EQ(cluster_domain, want.cluster_domain);
  EXPECT_EQ(cluster_domain_wire, *ZoneToWire(want.cluster_domain));  // derived from the name
  EXPECT_EQ(search_rewrite, want.search_rewrite);
  EXPECT_EQ(node_search, std::vector<std::string>{"node.example"});  // from the resolv.conf
  EXPECT_EQ(search_pins, want.search_pins);
  EXPECT_EQ(search_rewrite_deadline_ms, want.search_rewrite_deadline_ms);
  EXPECT_EQ(chaos_text, want.chaos_text);
  EXPECT_EQ(quiet, want.quiet);
  EXPECT_EQ(handover_path, want.handover_path);
  EXPECT_EQ(handover_timeout_ms, want.handover_timeout_ms);
  EXPECT_EQ(handover_cache_percent, want.handover_cache_percent);
  EXPECT_EQ(handover_linger, want.handover_linger);
  EXPECT_EQ(discover_pods, want.discover_pods);
  EXPECT_EQ(proc_root, want.proc_root);
  EXPECT_EQ(discover_pods_interval_ms, want.discover_pods_interval_ms);

  const auto& [capacity_bytes, shards, min_ttl, max_ttl, max_negative_ttl, servfail_ttl, stale_ttl,
               stale_answer_ttl, prefetch_min_hits, prefetch_percent, max_entry_bytes] = cache;
  const cache::CacheSettings& want_cache = want.cache;
  EXPECT_EQ(capacity_bytes, want_cache.capacity_bytes);
  EXPECT_EQ(shards, want_cache.shards);
  EXPECT_EQ(min_ttl, want_cache.min_ttl);
  EXPECT_EQ(max_ttl, want_cache.max_ttl);
  EXPECT_EQ(max_negative_ttl, want_cache.max_negative_ttl);
  EXPECT_EQ(servfail_ttl, want_cache.servfail_ttl);
  EXPECT_EQ(stale_ttl, want_cache.stale_ttl);
  EXPECT_EQ(stale_answer_ttl, want_cache.stale_answer_ttl);
  EXPECT_EQ(prefetch_min_hits, want_cache.prefetch_min_hits);
  EXPECT_EQ(prefetch_percent, want_cache.prefetch_percent);
  EXPECT_EQ(max_entry_bytes, want_cache.max_entry_bytes);

  // The TTL limits of replies that are not cached are the cache's.
  EXPECT_EQ(TtlLimits{}.max_ttl, want_cache.max_ttl);
  EXPECT_EQ(TtlLimits{}.max_negative_ttl, want_cache.max_negative_ttl);
}

// What `nodedns serve --help` shows as each default is the config's, in the flag's unit.
TEST(ServeDefaultsTest, HelpShowsTheConfigDefaults) {
  CLI::App app;
  ServeFlags flags;
  CLI::App* serve = AddServeCommand(app, flags);
  const ServeConfig want;
  const cache::CacheSettings& c = want.cache;
  auto shown = [&](const std::string& flag) { return serve->get_option(flag)->get_default_str(); };
  EXPECT_EQ(shown("--workers"), absl::StrCat(want.workers));
  EXPECT_EQ(shown("--cache-size"), absl::StrCat(c.capacity_bytes / (1024.0 * 1024)));
  EXPECT_EQ(shown("--cache-shards"), absl::StrCat(c.shards));
  EXPECT_EQ(shown("--min-ttl"), absl::StrCat(c.min_ttl));
  EXPECT_EQ(shown("--max-ttl"), absl::StrCat(c.max_ttl));
  EXPECT_EQ(shown("--max-negative-ttl"), absl::StrCat(c.max_negative_ttl));
  EXPECT_EQ(shown("--servfail-ttl"), absl::StrCat(c.servfail_ttl));
  EXPECT_EQ(shown("--stale-ttl"), absl::StrCat(c.stale_ttl));
  EXPECT_EQ(shown("--prefetch-hits"), absl::StrCat(c.prefetch_min_hits));
  EXPECT_EQ(shown("--upstream-timeout"), absl::StrCat(want.upstream_timeout_ms));
  EXPECT_EQ(shown("--upstream-tries"), absl::StrCat(want.upstream_tries));
  EXPECT_EQ(shown("--upstream-max-fails"), absl::StrCat(want.upstream_max_fails));
  EXPECT_EQ(shown("--upstream-health-check"), absl::StrCat(want.upstream_health_check_ms));
  EXPECT_EQ(shown("--tcp-idle-timeout"), absl::StrCat(want.tcp_idle_timeout_ms / 1000.0));
  EXPECT_EQ(shown("--tcp-max-connections"), absl::StrCat(want.tcp_max_connections));
  EXPECT_EQ(shown("--tcp-max-inflight"), absl::StrCat(want.tcp_max_inflight));
  EXPECT_EQ(shown("--cluster-domain"), want.cluster_domain);
  EXPECT_EQ(shown("--search-rewrite"), want.search_rewrite ? "on" : "off");
  EXPECT_EQ(shown("--coredns-metrics"), want.coredns_metrics ? "on" : "off");
  EXPECT_EQ(shown("--resolv-conf"), resolvconf::kDefaultPath);
  // Defaults that only the descriptions mention.
  const std::string help = serve->help();
  EXPECT_NE(help.find(absl::StrCat("(default ", kDefaultListen, ";")), std::string::npos) << help;
  EXPECT_NE(help.find(absl::StrCat("(default .=", resolvconf::kDefaultPath, ")")),
            std::string::npos);
  EXPECT_NE(help.find(absl::StrCat("last ", c.prefetch_percent, "% of TTL")), std::string::npos);
  EXPECT_NE(help.find(absl::StrCat("at most ", kMaxChaosText, " bytes")), std::string::npos);
}

}  // namespace
}  // namespace nodedns::proxy
