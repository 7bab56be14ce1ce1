// The command line of Kubernetes NodeLocal DNSCache's node-cache (kubernetes/dns cmd/node-cache),
// for `nodedns node-cache`, which must run from the same DaemonSet args. node-cache is one Go
// binary holding its own flags and CoreDNS's (coremain registers -conf, -dns.port, -p, -pidfile,
// -plugins, -quiet, -version on the same flag set), so both sets are parsed together here, with
// Go's syntax (go_flags.h) and node-cache's defaults.
#ifndef NODEDNS_NODECACHE_NODE_CACHE_FLAGS_H_
#define NODEDNS_NODECACHE_NODE_CACHE_FLAGS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proxy/allow_list.h"

namespace nodedns::nodecache {

struct NodeCacheFlags {
  // -h/-help/--help was given: print UsageText() and exit 0. No other field is meaningful then.
  bool help_requested = false;

  // node-cache's own flags (cmd/node-cache/main.go).
  std::string local_ip;                // -localip, comma-separated, as given; required.
  std::vector<std::string> local_ips;  // Its entries, each a valid IP literal, one family.
  // The families among them (IPv4-mapped IPv6 counts as IPv4, as in Go); both may be set.
  bool local_ips_ipv4 = false;
  bool local_ips_ipv6 = false;
  bool setup_interface = true;                  // -setupinterface
  std::string interface_name = "nodelocaldns";  // -interfacename
  // -syncinterval as parsed. node-cache's default is the Duration 60 (nanoseconds), which it
  // multiplies by time.Second; see EffectiveSyncIntervalSeconds.
  std::chrono::nanoseconds sync_interval{60};
  std::string metrics_listen_address = "0.0.0.0:9353";       // -metrics-listen-address
  bool setup_iptables = true;                                // -setupiptables
  std::string base_corefile = "/etc/coredns/Corefile.base";  // -basecorefile
  std::string corefile = "/etc/Corefile";                    // -corefile; see EffectiveCorefile.
  std::string kubedns_cm;                 // -kubednscm; "" means /etc/kube-dns if it exists.
  std::string upstream_svc = "kube-dns";  // -upstreamsvc
  std::string health_port = "8080";       // -health-port
  bool skip_teardown = false;             // -skipteardown
  bool reload_with_signal = false;        // -reloadwithsignal

  // CoreDNS's flags (coremain/run.go) that node-cache reads or passes through.
  std::string conf;             // -conf: the Corefile path; overrides -corefile when given.
  std::string dns_port = "53";  // -dns.port, or its alias -p (the last given wins).
  std::string pidfile;          // -pidfile
  bool plugins = false;         // -plugins
  bool quiet = false;           // -quiet
  bool version = false;         // -version

  // nodedns's own: -runas, "UID[:GID]" (validated by nodesetup::ParseRunAs).
  std::string run_as = "65534:65534";
  // nodedns's own: -handover PATH (proxy/handover.h); empty: none.
  std::string handover;
  // nodedns's own: -handover-cache-percent, the share of the cache passed on at a handover.
  uint32_t handover_cache_percent = 25;
  // nodedns's own: -allow, the client CIDRs whose queries are answered (serve's --allow; one
  // comma-separated list, "any" for all), and its parsed form.
  std::string allow = proxy::kDefaultAllow;
  proxy::AllowList allow_list;
  // nodedns's own: -discoverpods, serve's --discover-pods.
  bool discover_pods = false;

  // Names (without dashes) of the flags given on the command line; -p is recorded as "p".
  std::set<std::string, std::less<>> explicitly_set;
  bool IsSet(std::string_view name) const { return explicitly_set.contains(name); }

  // How often node-cache re-checks its interface and iptables rules, in seconds. node-cache
  // computes time.NewTicker(interval * time.Second), so its default Duration(60) is 60 s, an
  // explicit "60ns" is also 60 s, and an explicit "500ms" (5e8 ns) would be 5e8 s. For values
  // below 1 s we keep that arithmetic (the nanosecond count is the number of seconds), since it is
  // what anyone copying a working DaemonSet relies on. From 1 s up node-cache's product overflows
  // or becomes decades ("1s" is 1e9 s), so nobody can rely on it: we take the duration itself,
  // rounded to the nearest second (at least 1).
  int64_t EffectiveSyncIntervalSeconds() const;

  // The Corefile node-cache writes and CoreDNS loads: -conf when given, else -corefile.
  // (node-cache itself assigns -conf's value unconditionally, so without -conf it writes to "".)
  const std::string& EffectiveCorefile() const { return IsSet("conf") ? conf : corefile; }
};

// Parses node-cache's command line (without the program or subcommand name) and validates it as
// node-cache does, plus what node-cache leaves to fail later: -localip entries are IP literals of
// one family; -dns.port and -health-port are decimal ports 1..65535; -metrics-listen-address is
// HOST:PORT with an empty host, an IPv4 literal or a bracketed IPv6 literal; -syncinterval is
// positive (Go's ticker panics otherwise); no positional arguments (CoreDNS's "extra command line
// arguments").
absl::StatusOr<NodeCacheFlags> ParseNodeCacheFlags(std::span<const std::string> args);

// The usage text printed for -help: a header line, then every flag in Go's PrintDefaults layout.
std::string UsageText();

// The Kubernetes service environment variable holding the cluster IP of `svc`:
// "kube-dns-upstream" -> "KUBE_DNS_UPSTREAM_SERVICE_HOST".
std::string UpstreamServiceEnvVar(std::string_view svc);

// The cluster IP of the -upstreamsvc service, from its environment variable (read with `getenv`,
// which returns nullptr when unset). An error names -upstreamsvc and the variable when the
// variable is unset or not an IP literal.
absl::StatusOr<std::string> UpstreamServiceIp(
    std::string_view svc, const std::function<const char*(const char*)>& getenv);

// True if `text` is an IPv4 or IPv6 literal as Go's net.ParseIP accepts it (no zone, no
// brackets); `ipv6` is set to the family Go's utilnet.IsIPv6 reports (IPv4-mapped is IPv4).
bool ParseIpLiteral(std::string_view text, bool* ipv6 = nullptr);

}  // namespace nodedns::nodecache

#endif  // NODEDNS_NODECACHE_NODE_CACHE_FLAGS_H_
