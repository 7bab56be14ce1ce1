// Tests for the directive subset (corefile/config.h): CoreDNS's defaults, argument rules, and the
// FILE:LINE errors for everything nodedns refuses.
#include "corefile/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nodedns::corefile {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::optional<std::string> NoEnv(std::string_view) { return std::nullopt; }

absl::StatusOr<std::vector<ServerBlockConfig>> Interpret(std::string_view text) {
  absl::StatusOr<Corefile> c = ParseCorefile(text, "Corefile", NoEnv);
  if (!c.ok()) return c.status();
  return InterpretCorefile(*c, "Corefile");
}

// The block `.:53 {` + `body` + `}`, which must be valid.
ServerBlockConfig Block(std::string_view body) {
  absl::StatusOr<std::vector<ServerBlockConfig>> c =
      Interpret(std::string(".:53 {\n") + std::string(body) + "}\n");
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok() || c->size() != 1) return ServerBlockConfig();
  return (*c)[0];
}

// The error of the block `.:53 {` + `body` + `}`; its first directive is on line 2.
std::string BlockError(std::string_view body) {
  absl::StatusOr<std::vector<ServerBlockConfig>> c =
      Interpret(std::string(".:53 {\n") + std::string(body) + "}\n");
  if (c.ok()) return "(valid)";
  return std::string(c.status().message());
}

TEST(GoDurationTest, ParsesGoSyntax) {
  EXPECT_EQ(*ParseGoDuration("30s"), absl::Seconds(30));
  EXPECT_EQ(*ParseGoDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseGoDuration("1.5s"), absl::Milliseconds(1500));
  EXPECT_EQ(*ParseGoDuration("0"), absl::ZeroDuration());
  EXPECT_EQ(*ParseGoDuration("-2m"), absl::Minutes(-2));
  EXPECT_EQ(*ParseGoDuration("5\xC2\xB5s"), absl::Microseconds(5));
  EXPECT_FALSE(ParseGoDuration("30").ok());
  EXPECT_FALSE(ParseGoDuration("").ok());
  EXPECT_FALSE(ParseGoDuration("inf").ok());
  EXPECT_FALSE(ParseGoDuration("1d").ok());
}

TEST(CorefileConfigTest, EmptyBlockHasNothingConfigured) {
  ServerBlockConfig b = Block("");
  EXPECT_FALSE(b.forward);
  EXPECT_FALSE(b.cache);
  EXPECT_FALSE(b.health);
  EXPECT_FALSE(b.prometheus);
  EXPECT_FALSE(b.ready);
  EXPECT_FALSE(b.reload);
  EXPECT_FALSE(b.errors);
  EXPECT_THAT(b.log, IsEmpty());
  EXPECT_EQ(b.loop_line, 0);
  EXPECT_THAT(b.bind, IsEmpty());
}

TEST(CorefileConfigTest, UnknownDirectiveListsWhatIsSupported) {
  EXPECT_EQ(BlockError("  errors\n  template IN AAAA {\n    rcode NOERROR\n  }\n"),
            "Corefile:3: unknown directive 'template' (nodedns supports: bind, cache, errors, "
            "forward, health, log, loop, prometheus, ready, reload)");
  EXPECT_EQ(BlockError("  debug\n"),
            "Corefile:2: unknown directive 'debug' (nodedns supports: bind, cache, errors, "
            "forward, health, log, loop, prometheus, ready, reload)");
}

TEST(CorefileConfigTest, BindAccumulatesIpLiterals) {
  ServerBlockConfig b = Block("  bind 169.254.20.10 10.96.0.10\n  bind ::1\n");
  ASSERT_EQ(b.bind.size(), 3u);
  EXPECT_EQ(b.bind[0].address, "169.254.20.10");
  EXPECT_EQ(b.bind[1].address, "10.96.0.10");
  EXPECT_EQ(b.bind[2].address, "::1");
  EXPECT_EQ(b.bind[2].line, 3);
}

TEST(CorefileConfigTest, BindRefusesInterfaceNamesAndExcept) {
  EXPECT_EQ(BlockError("  bind lo\n"),
            "Corefile:2: bind: 'lo' is not an IP address (interface names are not supported by "
            "nodedns)");
  EXPECT_EQ(BlockError("  bind\n"), "Corefile:2: bind: at least one address is expected");
  EXPECT_EQ(BlockError("  bind 0.0.0.0 {\n    except 10.0.0.1\n  }\n"),
            "Corefile:3: bind: 'except' is not supported by nodedns");
}

TEST(CorefileConfigTest, ForwardDefaultsAreCoreDnsDefaults) {
  ServerBlockConfig b = Block("  forward . 10.96.0.10\n");
  ASSERT_TRUE(b.forward);
  const ForwardConfig& f = *b.forward;
  EXPECT_EQ(f.from, ".");
  ASSERT_EQ(f.to.size(), 1u);
  ASSERT_TRUE(f.to[0].address);
  EXPECT_EQ(f.to[0].address->ToString(), "10.96.0.10:53");
  EXPECT_FALSE(f.force_tcp);
  EXPECT_FALSE(f.prefer_udp);
  EXPECT_EQ(f.max_concurrent, 0);
  EXPECT_EQ(f.policy, ForwardPolicy::kRandom);
  EXPECT_EQ(f.expire, absl::Seconds(10));
  EXPECT_EQ(f.max_fails, 2);
  EXPECT_EQ(f.health_check, absl::Milliseconds(500));
  EXPECT_TRUE(f.health_check_recursion_desired);
  EXPECT_EQ(f.health_check_domain, ".");
  EXPECT_FALSE(f.failfast_all_unhealthy_upstreams);
  EXPECT_THAT(f.except, IsEmpty());
  EXPECT_EQ(f.line, 2);
}

TEST(CorefileConfigTest, ForwardTargetsAreAddressesOrResolvConfPaths) {
  ServerBlockConfig b = Block(
      "  forward . 1.1.1.1 10.0.0.1:5353 [2001:db8::1]:53 2001:db8::2 dns://9.9.9.9 "
      "/etc/resolv.conf\n");
  ASSERT_TRUE(b.forward);
  const std::vector<ForwardTarget>& to = b.forward->to;
  ASSERT_EQ(to.size(), 6u);
  EXPECT_EQ(to[0].address->ToString(), "1.1.1.1:53");
  EXPECT_EQ(to[1].address->ToString(), "10.0.0.1:5353");
  EXPECT_EQ(to[2].address->ToString(), "[2001:db8::1]:53");
  EXPECT_EQ(to[3].address->ToString(), "[2001:db8::2]:53");
  EXPECT_EQ(to[4].address->ToString(), "9.9.9.9:53");
  EXPECT_EQ(to[4].text, "dns://9.9.9.9");
  EXPECT_FALSE(to[5].address);
  EXPECT_EQ(to[5].resolv_conf_path, "/etc/resolv.conf");
}

TEST(CorefileConfigTest, ForwardRefusesOtherTransportsAndHostNames) {
  EXPECT_EQ(BlockError("  forward . tls://1.1.1.1\n"),
            "Corefile:2: forward: 'tls://' upstreams ('tls://1.1.1.1') are not supported by "
            "nodedns");
  EXPECT_EQ(BlockError("  forward . kube-dns.kube-system.svc\n"),
            "Corefile:2: forward: 'kube-dns.kube-system.svc' is neither an IP address nor a file "
            "path (host names are not supported by nodedns)");
  EXPECT_EQ(BlockError("  forward .\n"), "Corefile:2: forward: wrong argument count for 'forward'");
}

TEST(CorefileConfigTest, ForwardTakesAtMostFifteenUpstreams) {
  std::string fifteen = "  forward .";
  for (int i = 1; i <= 15; ++i) fifteen += " 10.0.0." + std::to_string(i);
  EXPECT_EQ(Block(fifteen + "\n").forward->to.size(), 15u);
  EXPECT_EQ(BlockError(fifteen + " 10.0.0.16\n"),
            "Corefile:2: forward: more than 15 upstreams configured: 16");
}

TEST(CorefileConfigTest, ForwardBlockOptions) {
  ServerBlockConfig b = Block(
      "  forward . 10.0.0.1 {\n"
      "    force_tcp\n"
      "    prefer_udp\n"
      "    max_concurrent 1000\n"
      "    except Example.ORG internal\n"
      "    policy sequential\n"
      "    expire 30s\n"
      "    max_fails 0\n"
      "    health_check 5s no_rec domain example.net\n"
      "    failfast_all_unhealthy_upstreams\n"
      "  }\n");
  ASSERT_TRUE(b.forward);
  const ForwardConfig& f = *b.forward;
  EXPECT_TRUE(f.force_tcp);
  EXPECT_TRUE(f.prefer_udp);
  EXPECT_EQ(f.max_concurrent, 1000);
  EXPECT_THAT(f.except, ElementsAre("example.org.", "internal."));
  EXPECT_EQ(f.policy, ForwardPolicy::kSequential);
  EXPECT_EQ(f.expire, absl::Seconds(30));
  EXPECT_EQ(f.max_fails, 0);
  EXPECT_EQ(f.health_check, absl::Seconds(5));
  EXPECT_FALSE(f.health_check_recursion_desired);
  EXPECT_EQ(f.health_check_domain, "example.net.");
  EXPECT_TRUE(f.failfast_all_unhealthy_upstreams);
  EXPECT_EQ(Block("  forward . 10.0.0.1 {\n    policy round_robin\n  }\n").forward->policy,
            ForwardPolicy::kRoundRobin);
}

TEST(CorefileConfigTest, ForwardOptionErrorsNameTheirLine) {
  const std::string open = "  forward . 10.0.0.1 {\n";
  EXPECT_EQ(BlockError(open + "    force_tcp\n    tls\n  }\n"),
            "Corefile:4: forward: 'tls' is not supported by nodedns");
  for (const char* option : {"tls_servername dns.example", "next NXDOMAIN", "failover SERVFAIL"}) {
    const std::string name = std::string(option).substr(0, std::string(option).find(' '));
    EXPECT_EQ(BlockError(open + "    " + option + "\n  }\n"),
              "Corefile:3: forward: '" + name + "' is not supported by nodedns");
  }
  EXPECT_EQ(BlockError(open + "    force_tcp yes\n  }\n"),
            "Corefile:3: forward: wrong argument count for 'force_tcp'");
  EXPECT_EQ(BlockError(open + "    policy fastest\n  }\n"),
            "Corefile:3: forward: unknown policy 'fastest'");
  EXPECT_EQ(BlockError(open + "    max_concurrent -1\n  }\n"),
            "Corefile:3: forward: max_concurrent can't be negative");
  EXPECT_EQ(BlockError(open + "    expire -1s\n  }\n"),
            "Corefile:3: forward: expire can't be negative");
  EXPECT_EQ(BlockError(open + "    expire 10\n  }\n"),
            "Corefile:3: forward: invalid duration '10' (expected e.g. 30s, 1m, 1h30m)");
  EXPECT_EQ(BlockError(open + "    health_check 1s often\n  }\n"),
            "Corefile:3: forward: health_check: unknown option 'often'");
  EXPECT_EQ(BlockError(open + "    bogus\n  }\n"), "Corefile:3: forward: unknown property 'bogus'");
}

TEST(CorefileConfigTest, OnlyOneForwardPerBlock) {
  EXPECT_EQ(BlockError("  forward . 10.0.0.1\n  forward example.org 10.0.0.2\n"),
            "Corefile:3: forward: more than one forward per server block is not supported by "
            "nodedns (the first is at line 2)");
}

TEST(CorefileConfigTest, ForwardFromMustOverlapTheBlocksZones) {
  // The stock Corefile forwards "." from its cluster.local block: a parent zone matches all.
  absl::StatusOr<std::vector<ServerBlockConfig>> ok = Interpret(
      "cluster.local:53 {\n  forward . 10.0.0.1\n}\nexample.org {\n  forward "
      "sub.example.org 10.0.0.2\n}\n");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)[1].forward->from, "sub.example.org.");
  absl::StatusOr<std::vector<ServerBlockConfig>> bad =
      Interpret("cluster.local:53 {\n  forward example.org 10.0.0.1\n}\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "Corefile:2: forward: forward zone 'example.org.' is outside the server block's "
            "zones: it would never match");
}

TEST(CorefileConfigTest, CacheDefaultsAreCoreDnsDefaults) {
  ServerBlockConfig b = Block("  cache\n");
  ASSERT_TRUE(b.cache);
  const CacheConfig& c = *b.cache;
  EXPECT_THAT(c.zones, ElementsAre("."));
  EXPECT_EQ(c.success.capacity, 10000);
  EXPECT_EQ(c.success.max_ttl, absl::Hours(1));
  EXPECT_EQ(c.success.min_ttl, absl::Seconds(5));
  EXPECT_EQ(c.denial.capacity, 10000);
  EXPECT_EQ(c.denial.max_ttl, absl::Minutes(30));
  EXPECT_EQ(c.denial.min_ttl, absl::Seconds(5));
  EXPECT_FALSE(c.prefetch);
  EXPECT_FALSE(c.serve_stale);
  EXPECT_EQ(c.servfail_ttl, absl::Seconds(5));
  EXPECT_FALSE(c.keepttl);
  EXPECT_EQ(c.line, 2);
}

TEST(CorefileConfigTest, CacheTtlArgumentCapsBothTiersAndZonesFollow) {
  ServerBlockConfig b = Block("  cache 30 Example.org\n");
  ASSERT_TRUE(b.cache);
  EXPECT_EQ(b.cache->success.max_ttl, absl::Seconds(30));
  EXPECT_EQ(b.cache->denial.max_ttl, absl::Seconds(30));
  EXPECT_THAT(b.cache->zones, ElementsAre("example.org."));
  EXPECT_EQ(BlockError("  cache 0\n"), "Corefile:2: cache: cache TTL can not be zero or negative");
}

TEST(CorefileConfigTest, CacheBlockOptions) {
  ServerBlockConfig b = Block(
      "  cache 300 {\n"
      "    success 5000 600 10\n"
      "    denial 2000 60\n"
      "    prefetch 10 1m30s 20%\n"
      "    serve_stale 2h verify\n"
      "    servfail 0s\n"
      "    disable denial Example.com\n"
      "    disable success\n"
      "    keepttl\n"
      "  }\n");
  ASSERT_TRUE(b.cache);
  const CacheConfig& c = *b.cache;
  EXPECT_EQ(c.success.capacity, 5000);
  EXPECT_EQ(c.success.max_ttl, absl::Seconds(600));
  EXPECT_EQ(c.success.min_ttl, absl::Seconds(10));
  EXPECT_EQ(c.success.line, 3);
  EXPECT_EQ(c.denial.capacity, 2000);
  EXPECT_EQ(c.denial.max_ttl, absl::Seconds(60));
  EXPECT_EQ(c.denial.min_ttl, absl::Seconds(5));
  ASSERT_TRUE(c.prefetch);
  EXPECT_EQ(c.prefetch->amount, 10);
  EXPECT_EQ(c.prefetch->duration, absl::Seconds(90));
  EXPECT_EQ(c.prefetch->percentage, 20);
  ASSERT_TRUE(c.serve_stale);
  EXPECT_EQ(c.serve_stale->duration, absl::Hours(2));
  EXPECT_TRUE(c.serve_stale->verify);
  EXPECT_EQ(c.servfail_ttl, absl::ZeroDuration());
  EXPECT_THAT(c.denial.disabled_zones, ElementsAre("example.com."));
  EXPECT_THAT(c.success.disabled_zones, ElementsAre("."));
  EXPECT_TRUE(c.keepttl);
}

TEST(CorefileConfigTest, PrefetchAndServeStaleDefaults) {
  ServerBlockConfig b = Block("  cache {\n    prefetch 2\n    serve_stale\n  }\n");
  ASSERT_TRUE(b.cache && b.cache->prefetch && b.cache->serve_stale);
  EXPECT_EQ(b.cache->prefetch->amount, 2);
  EXPECT_EQ(b.cache->prefetch->duration, absl::Minutes(1));
  EXPECT_EQ(b.cache->prefetch->percentage, 10);
  EXPECT_EQ(b.cache->serve_stale->duration, absl::Hours(1));
  EXPECT_FALSE(b.cache->serve_stale->verify);
  EXPECT_FALSE(Block("  cache {\n    serve_stale 10m IMMEDIATE\n  }\n").cache->serve_stale->verify);
}

TEST(CorefileConfigTest, CacheOptionErrorsNameTheirLine) {
  const std::string open = "  cache {\n";
  EXPECT_EQ(BlockError(open + "    success\n  }\n"),
            "Corefile:3: cache: wrong argument count for 'success'");
  EXPECT_EQ(BlockError(open + "    success 100 0\n  }\n"),
            "Corefile:3: cache: cache TTL can not be zero or negative");
  EXPECT_EQ(BlockError(open + "    denial 100 10 -1\n  }\n"),
            "Corefile:3: cache: cache min TTL can not be negative");
  EXPECT_EQ(BlockError(open + "    prefetch 1 1m 5%\n  }\n"),
            "Corefile:3: cache: prefetch percentage should fall in range [10, 90]");
  EXPECT_EQ(BlockError(open + "    prefetch 1 1m 50\n  }\n"),
            "Corefile:3: cache: prefetch percentage '50' must end in '%'");
  EXPECT_EQ(BlockError(open + "    serve_stale 1h lazy\n  }\n"),
            "Corefile:3: cache: invalid value for serve_stale refresh mode: 'lazy'");
  EXPECT_EQ(BlockError(open + "    serve_stale 1h verify 1s\n  }\n"),
            "Corefile:3: cache: serve_stale: arguments after the refresh mode are not supported "
            "by nodedns");
  EXPECT_EQ(BlockError(open + "    servfail 6m\n  }\n"),
            "Corefile:3: cache: caching SERVFAIL responses over 5 minutes is not permitted");
  EXPECT_EQ(BlockError(open + "    disable both\n  }\n"),
            "Corefile:3: cache: cache type for disable must be \"success\" or \"denial\"");
  EXPECT_EQ(BlockError(open + "    keepttl 1\n  }\n"),
            "Corefile:3: cache: wrong argument count for 'keepttl'");
  EXPECT_EQ(BlockError(open + "    bogus\n  }\n"), "Corefile:3: cache: unknown property 'bogus'");
  EXPECT_EQ(BlockError("  cache 10.0.0.0/8\n"),
            "Corefile:2: cache: reverse-zone CIDR '10.0.0.0/8' is not supported by nodedns: "
            "write the arpa zone");
}

TEST(CorefileConfigTest, DirectivesCoreDnsAllowsOncePerBlock) {
  for (const char* name : {"cache", "errors", "prometheus", "ready", "loop"}) {
    EXPECT_EQ(BlockError(std::string("  ") + name + "\n  " + name + "\n"),
              std::string("Corefile:3: ") + name +
                  ": this plugin can only be used once per server block");
  }
  for (const char* name : {"health", "reload"}) {
    EXPECT_EQ(BlockError(std::string("  ") + name + "\n  " + name + "\n"),
              std::string("Corefile:3: ") + name + ": more than one " + name +
                  " per server block is not supported by nodedns (the first is at line 2)");
  }
}

TEST(CorefileConfigTest, HealthPrometheusAndReadyAddresses) {
  ServerBlockConfig d = Block("  health\n  prometheus\n  ready\n");
  EXPECT_EQ(d.health->address, ":8080");
  EXPECT_EQ(d.health->lameduck, absl::ZeroDuration());
  EXPECT_EQ(d.prometheus->address, "localhost:9153");
  EXPECT_EQ(d.ready->address, ":8181");
  EXPECT_FALSE(d.ready->monitor_continuously);
  ServerBlockConfig b = Block(
      "  health 169.254.20.10:8080 {\n    lameduck 5s\n  }\n  prometheus [::1]:9253\n"
      "  ready :8182 {\n    monitor continuously\n  }\n");
  EXPECT_EQ(b.health->address, "169.254.20.10:8080");
  EXPECT_EQ(b.health->lameduck, absl::Seconds(5));
  EXPECT_EQ(b.health->line, 2);
  EXPECT_EQ(b.prometheus->address, "[::1]:9253");
  EXPECT_EQ(b.ready->address, ":8182");
  EXPECT_TRUE(b.ready->monitor_continuously);
  EXPECT_EQ(BlockError("  health 8080\n"), "Corefile:2: health: '8080' is not HOST:PORT");
  EXPECT_EQ(BlockError("  prometheus :metrics\n"),
            "Corefile:2: prometheus: ':metrics' has no valid port");
  EXPECT_EQ(BlockError("  prometheus :9153 :9154\n"),
            "Corefile:2: prometheus: wrong argument count for 'prometheus'");
  EXPECT_EQ(BlockError("  health {\n    lameduck\n  }\n"),
            "Corefile:3: health: wrong argument count for 'lameduck'");
}

TEST(CorefileConfigTest, ReloadDefaultsMinimumsAndJitterCap) {
  ServerBlockConfig d = Block("  reload\n");
  EXPECT_EQ(d.reload->interval, absl::Seconds(30));
  EXPECT_EQ(d.reload->jitter, absl::Seconds(15));
  ServerBlockConfig b = Block("  reload 10s 8s\n");
  EXPECT_EQ(b.reload->interval, absl::Seconds(10));
  EXPECT_EQ(b.reload->jitter, absl::Seconds(5));  // Capped at interval / 2, as CoreDNS does.
  EXPECT_EQ(Block("  reload 2s 0\n").reload->jitter, absl::ZeroDuration());
  EXPECT_EQ(BlockError("  reload 1s\n"),
            "Corefile:2: reload: interval value must be greater or equal to 2s");
  EXPECT_EQ(BlockError("  reload 10s 500ms\n"),
            "Corefile:2: reload: jitter value must be 0 or greater or equal to 1s");
  EXPECT_EQ(BlockError("  reload 10s 1s 1s\n"),
            "Corefile:2: reload: wrong argument count for 'reload'");
}

TEST(CorefileConfigTest, ErrorsKeepsConsolidateRules) {
  ServerBlockConfig b = Block(
      "  errors {\n    consolidate 5m \".* i/o timeout$\" warning show_first\n"
      "    consolidate 30s \"^Failed to .+\"\n  }\n");
  ASSERT_TRUE(b.errors);
  ASSERT_EQ(b.errors->consolidate.size(), 2u);
  const ConsolidateRule& r = b.errors->consolidate[0];
  EXPECT_EQ(r.period, absl::Minutes(5));
  EXPECT_EQ(r.regexp, ".* i/o timeout$");
  EXPECT_EQ(r.level, "warning");
  EXPECT_TRUE(r.show_first);
  EXPECT_EQ(r.line, 3);
  EXPECT_EQ(b.errors->consolidate[1].level, "error");
  EXPECT_FALSE(b.errors->consolidate[1].show_first);
  EXPECT_EQ(BlockError("  errors {\n    consolidate 5m\n  }\n"),
            "Corefile:3: errors: wrong argument count for 'consolidate'");
  EXPECT_EQ(BlockError("  errors {\n    consolidate 5m x show_first error\n  }\n"),
            "Corefile:3: errors: log level must come before show_first in consolidate");
  EXPECT_EQ(BlockError("  errors stderr\n"), "Corefile:2: errors: invalid log file: 'stderr'");
}

TEST(CorefileConfigTest, LogLinesKeepArgumentsAndClasses) {
  ServerBlockConfig b =
      Block("  log\n  log example.org \"{remote} {type}\" {\n    class denial error\n  }\n");
  ASSERT_EQ(b.log.size(), 2u);
  EXPECT_THAT(b.log[0].args, IsEmpty());
  EXPECT_THAT(b.log[0].classes, IsEmpty());
  EXPECT_THAT(b.log[1].args, ElementsAre("example.org", "{remote} {type}"));
  EXPECT_THAT(b.log[1].classes, ElementsAre("denial", "error"));
  EXPECT_EQ(b.log[1].line, 3);
  EXPECT_EQ(BlockError("  log {\n    class fatal\n  }\n"),
            "Corefile:3: log: invalid class: 'fatal'");
}

TEST(CorefileConfigTest, LoopTakesNothing) {
  EXPECT_EQ(Block("  errors\n  loop\n").loop_line, 3);
  EXPECT_EQ(BlockError("  loop 1\n"), "Corefile:2: loop: wrong argument count for 'loop'");
  EXPECT_EQ(BlockError("  loop {\n  }\n"), "Corefile:2: loop: 'loop' takes no block");
}

TEST(CorefileConfigTest, SameZoneAndPortTwiceOnACommonAddressIsAnError) {
  absl::StatusOr<std::vector<ServerBlockConfig>> twice = Interpret(".:53 {\n}\n\n.:53 {\n}\n");
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().message(),
            "Corefile:4: zone '.' on port 53 is already served by the block at line 1");
  absl::StatusOr<std::vector<ServerBlockConfig>> one_bound =
      Interpret(".:53 {\n  bind 10.0.0.1\n}\n.:53 {\n}\n");
  EXPECT_FALSE(one_bound.ok());
  absl::StatusOr<std::vector<ServerBlockConfig>> same_block = Interpret("a.org a.org:53 {\n}\n");
  EXPECT_FALSE(same_block.ok());
  EXPECT_TRUE(Interpret(".:53 {\n  bind 10.0.0.1\n}\n.:53 {\n  bind 10.0.0.2\n}\n").ok());
  EXPECT_TRUE(Interpret(".:53 {\n}\n.:54 {\n}\n").ok());
}

}  // namespace
}  // namespace nodedns::corefile
