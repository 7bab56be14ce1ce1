// node-cache's command line; see node_cache_flags.h.
#include "nodecache/node_cache_flags.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/one_line.h"
#include "common/string_view_compat.h"
#include "nodecache/go_flags.h"
#include "nodesetup/privileges.h"

namespace nodedns::nodecache {

namespace {

using std::chrono::nanoseconds;

// Help texts are node-cache's and CoreDNS's meaning, in our words.
const std::vector<GoFlagSpec>& Specs() {
  static const std::vector<GoFlagSpec>* specs = new std::vector<GoFlagSpec>{
      {"localip", std::string(), "comma-separated IP addresses to listen on (IPv4, IPv6 or both)"},
      {"setupinterface", true, "create the dummy interface holding the local IPs"},
      {"interfacename", std::string("nodelocaldns"), "name of the dummy interface"},
      {"syncinterval", nanoseconds(60),
       "how often to re-check the interface and iptables rules (node-cache counts this in "
       "seconds: the default 60ns means 60s)"},
      {"metrics-listen-address", std::string("0.0.0.0:9353"), "HOST:PORT to serve metrics on"},
      {"setupiptables", true, "install the NOTRACK and ACCEPT iptables rules for the local IPs"},
      {"basecorefile", std::string("/etc/coredns/Corefile.base"),
       "the Corefile template node-cache fills in"},
      {"corefile", std::string("/etc/Corefile"),
       "where the filled-in Corefile is written (-conf overrides it)"},
      {"kubednscm", std::string(),
       "directory where the kube-dns ConfigMap is mounted (default /etc/kube-dns if it exists)"},
      {"upstreamsvc", std::string("kube-dns"),
       "service whose cluster IP replaces __PILLAR__CLUSTER__DNS__"},
      {"health-port", std::string("8080"), "port of the health endpoint"},
      {"skipteardown", false, "leave the iptables rules and interface in place on exit"},
      {"reloadwithsignal", false, "reload the Corefile on SIGUSR1 rather than by polling it"},
      {"conf", std::string(), "Corefile to load; overrides -corefile"},
      {"dns.port", std::string("53"), "port to serve DNS on"},
      {"p", std::string("53"), "alias of -dns.port"},
      {"pidfile", std::string(), "path to write the pid file to"},
      {"plugins", false, "list the installed plugins and exit"},
      {"quiet", false, "quiet mode (no initialization output)"},
      {"version", false, "show the version and exit"},
      // nodedns's own: node-cache keeps root for its whole life.
      {"runas", std::string("65534:65534"),
       "UID[:GID] to switch to once the node is set up and the sockets are bound (0: stay root; "
       "CAP_NET_ADMIN is kept for the sync loop)"},
      {"handover", std::string(),
       "Unix socket path for zero-loss upgrades: a new instance started with the same path takes "
       "over this one's sockets and cache; empty: none"},
      {"handover-cache-percent", int64_t{25},
       "share of the cache whose hottest entries are passed on at a -handover (0: the next "
       "instance starts cold)"},
      {"allow", std::string(proxy::kDefaultAllow),
       "comma-separated CIDRs of the clients answered; others get REFUSED (UDP) or a closed "
       "connection (TCP); 'any' for all, 'default' for the default list (loopback, link-local, "
       "RFC 1918, RFC 6598, ULA): 'default,POD_CIDR' when pods have other addresses"},
      {"discoverpods", false,
       "find the node's pods from /proc (needs hostPID and CAP_SYS_PTRACE): the search rewrite "
       "knows each pod's namespace before its first lookup, and GET /audit/pods reports per pod"},
  };
  return *specs;
}

// A decimal port 1..65535 (leading zeros allowed, as Go's Atoi allows them).
bool ParsePort(std::string_view text) {
  if (text.empty()) return false;
  uint32_t v = 0;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
    if (v > 65535) return false;
  }
  return v >= 1;
}

absl::Status ValidateListenAddress(std::string_view flag, std::string_view address) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid -", Av(flag), " \"", Av(address), "\": ", Av(why)));
  };
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return bad("want HOST:PORT");
  std::string_view host = address.substr(0, colon);
  std::string_view port = address.substr(colon + 1);
  if (!ParsePort(port)) return bad("the port must be a number from 1 to 65535");
  if (host.empty()) return absl::OkStatus();
  if (host.front() == '[') {
    if (host.size() < 2 || host.back() != ']' || !ParseIpLiteral(host.substr(1, host.size() - 2))) {
      return bad("the host must be empty, an IPv4 address or a bracketed IPv6 address");
    }
    return absl::OkStatus();
  }
  if (host.find(':') != std::string_view::npos) return bad("an IPv6 host needs brackets");
  if (!ParseIpLiteral(host)) {
    return bad("the host must be empty, an IPv4 address or a bracketed IPv6 address");
  }
  return absl::OkStatus();
}

}  // namespace

bool ParseIpLiteral(std::string_view text, bool* ipv6) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return false;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  in_addr v4;
  if (inet_pton(AF_INET, buf, &v4) == 1) {
    if (ipv6 != nullptr) *ipv6 = false;
    return true;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, buf, &v6) != 1) return false;
  if (ipv6 != nullptr) *ipv6 = !IN6_IS_ADDR_V4MAPPED(&v6);
  return true;
}

int64_t NodeCacheFlags::EffectiveSyncIntervalSeconds() const {
  const int64_t ns = sync_interval.count();
  if (ns < 1000 * 1000 * 1000) return ns;
  // Rounded half up without adding first: ns + 5e8 overflows near the largest Duration.
  constexpr int64_t kSecond = 1000 * 1000 * 1000;
  return std::max<int64_t>(1, ns / kSecond + (ns % kSecond >= kSecond / 2 ? 1 : 0));
}

// Without the one-line escaping; see below.
static absl::StatusOr<NodeCacheFlags> ParseNodeCacheFlagsRaw(std::span<const std::string> args) {
  absl::StatusOr<GoFlagParse> parsed = ParseGoFlags(Specs(), args);
  if (!parsed.ok()) return parsed.status();
  NodeCacheFlags f;
  if (parsed->help_requested) {
    f.help_requested = true;
    return f;
  }
  if (!parsed->positional.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", parsed->positional.front(), "'"));
  }
  const GoFlagParse& p = *parsed;
  f.local_ip = p.String("localip");
  f.setup_interface = p.Bool("setupinterface");
  f.interface_name = p.String("interfacename");
  f.sync_interval = p.Duration("syncinterval");
  f.metrics_listen_address = p.String("metrics-listen-address");
  f.setup_iptables = p.Bool("setupiptables");
  f.base_corefile = p.String("basecorefile");
  f.corefile = p.String("corefile");
  f.kubedns_cm = p.String("kubednscm");
  f.upstream_svc = p.String("upstreamsvc");
  f.health_port = p.String("health-port");
  f.skip_teardown = p.Bool("skipteardown");
  f.reload_with_signal = p.Bool("reloadwithsignal");
  f.conf = p.String("conf");
  f.pidfile = p.String("pidfile");
  f.plugins = p.Bool("plugins");
  f.quiet = p.Bool("quiet");
  f.version = p.Bool("version");
  f.run_as = p.String("runas");
  f.handover = p.String("handover");
  const int64_t cache_percent = p.Int("handover-cache-percent");
  f.allow = p.String("allow");
  f.discover_pods = p.Bool("discoverpods");
  // CoreDNS binds -dns.port and -p to one variable: whichever was given last holds.
  for (const std::string& name : p.set_order) {
    if (name == "dns.port" || name == "p") f.dns_port = p.String(name);
    f.explicitly_set.insert(name);
  }

  // node-cache splits "" into one empty entry, so a missing -localip fails here too; except that
  // -version and -plugins (CoreDNS's) need nothing else.
  if (f.local_ip.empty()) {
    if (f.version || f.plugins) return f;
    return absl::InvalidArgumentError("-localip is required: the IP addresses to listen on");
  }
  for (absl::string_view piece : absl::StrSplit(f.local_ip, ',')) {
    std::string_view entry = Sv(piece);
    bool ipv6 = false;
    if (!ParseIpLiteral(entry, &ipv6)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid -localip entry \"", Av(entry), "\": not an IP address"));
    }
    // node-cache wants one family (it picks iptables or ip6tables by the first address); nodedns
    // serves both at once, so a dual-stack node gives one address of each.
    (ipv6 ? f.local_ips_ipv6 : f.local_ips_ipv4) = true;
    f.local_ips.emplace_back(entry);
  }
  if (!ParsePort(f.dns_port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid -dns.port \"", f.dns_port, "\": want a number from 1 to 65535"));
  }
  if (!ParsePort(f.health_port)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid -health-port \"", f.health_port,
                                                   "\": want a number from 1 to 65535"));
  }
  if (absl::Status s = ValidateListenAddress("metrics-listen-address", f.metrics_listen_address);
      !s.ok()) {
    return s;
  }
  if (auto r = nodesetup::ParseRunAs(f.run_as); !r.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("invalid -runas: ", r.status().message()));
  }
  // The listener binds PATH.PID before renaming it over PATH: both must fit sun_path.
  if (!f.handover.empty() && (f.handover.front() != '/' || f.handover.size() > 96)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid -handover \"", f.handover, "\": an absolute path of at most 96 bytes is needed"));
  }
  if (cache_percent < 0 || cache_percent > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid -handover-cache-percent ", cache_percent, ": want 0 to 100"));
  }
  f.handover_cache_percent = static_cast<uint32_t>(cache_percent);
  auto allow = proxy::AllowList::Parse(f.allow);
  if (!allow.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid -allow \"", f.allow, "\": ", allow.status().message()));
  }
  f.allow_list = *std::move(allow);
  if (f.sync_interval.count() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid -syncinterval ", FormatGoDuration(f.sync_interval), ": must be positive"));
  }
  return f;
}

absl::StatusOr<NodeCacheFlags> ParseNodeCacheFlags(std::span<const std::string> args) {
  absl::StatusOr<NodeCacheFlags> flags = ParseNodeCacheFlagsRaw(args);
  // Messages quote arguments, which may hold a newline.
  if (!flags.ok()) return OneLine(flags.status());
  return flags;
}

std::string UsageText() {
  return absl::StrCat(
      "Usage of nodedns node-cache:\n"
      "Serves as a node-local DNS cache on the given IPs and port, taking Kubernetes NodeLocal "
      "DNSCache's node-cache arguments.\n\n",
      GoFlagUsage(Specs()));
}

std::string UpstreamServiceEnvVar(std::string_view svc) {
  std::string out(svc);
  for (char& c : out) {
    c = c == '-' ? '_' : absl::ascii_toupper(static_cast<unsigned char>(c));
  }
  return absl::StrCat(out, "_SERVICE_HOST");
}

absl::StatusOr<std::string> UpstreamServiceIp(
    std::string_view svc, const std::function<const char*(const char*)>& getenv) {
  const std::string var = UpstreamServiceEnvVar(svc);
  const char* value = getenv(var.c_str());
  if (value == nullptr) {
    return absl::NotFoundError(absl::StrCat("-upstreamsvc ", Av(svc), ": ", var,
                                            " is not set (is the service in this namespace?)"));
  }
  if (!ParseIpLiteral(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("-upstreamsvc ", Av(svc), ": ", var, "=\"", value, "\" is not an IP address"));
  }
  return std::string(value);
}

}  // namespace nodedns::nodecache
