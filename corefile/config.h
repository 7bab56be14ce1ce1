// The meaning of a Corefile's server blocks, for the directives NodeLocal DNSCache's stock
// ConfigMap and the deliveryhero node-local-dns Helm chart use: bind, cache, errors, forward,
// health, log, loop, prometheus, ready, reload. Each is read as its CoreDNS plugin's setup.go reads
// it, with CoreDNS's defaults filled in, so that the caller never has to know them. Anything else
// is an error naming the line: a configuration nodedns cannot honour must not start half-applied.
//
// Where CoreDNS would accept a directive's option that nodedns does not implement (forward's tls,
// next, failover...), the error says "not supported by nodedns" rather than "unknown".
#ifndef NODEDNS_COREFILE_CONFIG_H_
#define NODEDNS_COREFILE_CONFIG_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "corefile/syntax.h"
#include "dns/socket_address.h"

namespace nodedns::corefile {

// CoreDNS's defaults, from the plugins' sources.
inline constexpr int kCacheDefaultCapacity = 10000;  // plugin/cache: per success and denial.
inline constexpr absl::Duration kCacheSuccessMaxTtl = absl::Hours(1);
inline constexpr absl::Duration kCacheDenialMaxTtl = absl::Minutes(30);
inline constexpr absl::Duration kCacheMinTtl = absl::Seconds(5);
inline constexpr absl::Duration kCacheServfailTtl = absl::Seconds(5);
inline constexpr absl::Duration kCacheServfailMaxTtl = absl::Minutes(5);  // RFC 2308.
inline constexpr absl::Duration kPrefetchDefaultDuration = absl::Minutes(1);
inline constexpr int kPrefetchDefaultPercentage = 10;
inline constexpr absl::Duration kServeStaleDefaultDuration = absl::Hours(1);
inline constexpr int kForwardMaxUpstreams = 15;
inline constexpr int kForwardDefaultMaxFails = 2;
inline constexpr absl::Duration kForwardDefaultExpire = absl::Seconds(10);
inline constexpr absl::Duration kForwardDefaultHealthCheck = absl::Milliseconds(500);
inline constexpr absl::Duration kReloadDefaultInterval = absl::Seconds(30);
inline constexpr absl::Duration kReloadDefaultJitter = absl::Seconds(15);
inline constexpr absl::Duration kReloadMinInterval = absl::Seconds(2);
inline constexpr absl::Duration kReloadMinJitter = absl::Seconds(1);
inline constexpr char kHealthDefaultAddress[] = ":8080";
inline constexpr char kPrometheusDefaultAddress[] = "localhost:9153";
inline constexpr char kReadyDefaultAddress[] = ":8181";

// `bind ADDR...`: IP literals only (CoreDNS also takes interface names).
struct BindAddress {
  std::string address;  // As written: "169.254.20.10", "::1".
  int line = 0;
};

enum class ForwardPolicy { kRandom, kRoundRobin, kSequential };

// One TO of `forward`: an address, or a resolv.conf-style file CoreDNS reads at startup (whose
// nameservers all count as this one entry). Files are kept as paths; nothing is read here.
struct ForwardTarget {
  std::string text;                           // As written.
  std::optional<dns::SocketAddress> address;  // Port 53 unless given.
  std::string resolv_conf_path;               // Set when `address` is not.
};

struct ForwardConfig {
  std::string from = ".";  // Normalised zone: queries below it are forwarded.
  std::vector<ForwardTarget> to;
  std::vector<std::string> except;  // Normalised zones not forwarded.
  // CoreDNS accepts both; force_tcp then wins (plugin/pkg/proxy: TCP has precedence).
  bool force_tcp = false;
  bool prefer_udp = false;
  int max_concurrent = 0;  // 0: unlimited.
  ForwardPolicy policy = ForwardPolicy::kRandom;
  absl::Duration expire = kForwardDefaultExpire;  // Idle upstream connections close after this.
  int max_fails = kForwardDefaultMaxFails;        // 0: never mark an upstream down.
  absl::Duration health_check = kForwardDefaultHealthCheck;
  bool health_check_recursion_desired = true;  // false with "no_rec".
  std::string health_check_domain = ".";
  bool failfast_all_unhealthy_upstreams = false;
  int line = 0;
};

// `success` or `denial` inside `cache`.
struct CacheTier {
  int capacity = kCacheDefaultCapacity;  // Entries as configured; CoreDNS's 256 shards round it to
                                         // max(capacity / 256, 4) * 256 (10000 gives 9984).
  absl::Duration max_ttl;
  absl::Duration min_ttl = kCacheMinTtl;
  std::vector<std::string> disabled_zones =
      {};        // `disable success|denial [ZONES]`: not cached there.
  int line = 0;  // Of the success/denial option; 0 when defaulted.
};

struct PrefetchConfig {
  int amount = 0;  // Queries within `duration` that make an item prefetchable.
  absl::Duration duration = kPrefetchDefaultDuration;
  int percentage = kPrefetchDefaultPercentage;  // Of the TTL left when prefetching starts.
  int line = 0;
};

struct ServeStaleConfig {
  absl::Duration duration = kServeStaleDefaultDuration;  // How long past expiry to serve.
  bool verify = false;  // "verify": ask upstream first; "immediate" (default): answer stale.
  int line = 0;
};

struct CacheConfig {
  std::vector<std::string> zones;  // Normalised; the server block's zones when none are given.
  CacheTier success{.max_ttl = kCacheSuccessMaxTtl};
  CacheTier denial{.max_ttl = kCacheDenialMaxTtl};
  std::optional<PrefetchConfig> prefetch;
  std::optional<ServeStaleConfig> serve_stale;
  absl::Duration servfail_ttl = kCacheServfailTtl;  // 0 disables caching SERVFAIL.
  bool keepttl = false;
  int line = 0;
};

struct HealthConfig {
  std::string address = kHealthDefaultAddress;  // HOST:PORT, host possibly empty.
  absl::Duration lameduck = absl::ZeroDuration();
  int line = 0;
};

struct PrometheusConfig {
  std::string address = kPrometheusDefaultAddress;
  int line = 0;
};

struct ReadyConfig {
  std::string address = kReadyDefaultAddress;
  bool monitor_continuously = false;  // `monitor continuously`; default "until-ready".
  int line = 0;
};

struct ReloadConfig {
  absl::Duration interval = kReloadDefaultInterval;
  // CoreDNS draws the check period once from interval ± jitter/2; jitter is capped at interval/2
  // (the cap is applied here).
  absl::Duration jitter = kReloadDefaultJitter;
  int line = 0;
};

// `errors { consolidate PERIOD REGEXP [LEVEL] [show_first] }`. The regexp is Go's RE2 syntax and
// is kept as written, not compiled.
struct ConsolidateRule {
  absl::Duration period;
  std::string regexp;
  std::string level = "error";  // warning, error, info or debug.
  bool show_first = false;
  int line = 0;
};

struct ErrorsConfig {
  bool stacktrace = false;
  std::vector<ConsolidateRule> consolidate;
  int line = 0;
};

// One `log` line: arguments (name scopes, then perhaps a format) and `class` options as written.
struct LogConfig {
  std::vector<std::string> args;
  std::vector<std::string> classes;  // all, denial, error, success; empty means all.
  int line = 0;
};

struct ServerBlockConfig {
  std::vector<ServerKey> keys;
  int line = 0;
  std::vector<BindAddress> bind;  // All bind lines together; empty: every address.
  std::optional<ForwardConfig> forward;
  std::optional<CacheConfig> cache;
  std::optional<HealthConfig> health;
  std::optional<PrometheusConfig> prometheus;
  std::optional<ReadyConfig> ready;
  std::optional<ReloadConfig> reload;
  std::optional<ErrorsConfig> errors;
  std::vector<LogConfig> log;
  int loop_line = 0;  // Nonzero when `loop` is present.
};

// The directives of one server block. Errors are "FILENAME:LINE: message".
absl::StatusOr<ServerBlockConfig> InterpretBlock(const ServerBlock& block,
                                                 std::string_view filename);

// Every block, and what CoreDNS checks across blocks: no zone and port served twice on the same
// address ("cannot serve ... it is already defined").
absl::StatusOr<std::vector<ServerBlockConfig>> InterpretCorefile(const Corefile& corefile,
                                                                 std::string_view filename);

// A Go time.ParseDuration string ("30s", "1m", "1h30m", "1.5s", "0"); negative values too.
absl::StatusOr<absl::Duration> ParseGoDuration(std::string_view text);

}  // namespace nodedns::corefile

#endif  // NODEDNS_COREFILE_CONFIG_H_
