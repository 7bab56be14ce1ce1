// The node-cache directive subset, read as CoreDNS's plugin/*/setup.go read it. See config.h.
#include "corefile/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "common/one_line.h"
#include "common/string_view_compat.h"

namespace nodedns::corefile {
namespace {

constexpr char kSupported[] =
    "bind, cache, errors, forward, health, log, loop, prometheus, ready, reload";

// Errors of one directive: "FILE:LINE: NAME: message".
class Reporter {
 public:
  Reporter(std::string_view filename, std::string_view plugin)
      : filename_(filename), plugin_(plugin) {}
  absl::Status At(int line, absl::string_view message) const {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s:%d: %s: %s", Av(filename_), line, Av(plugin_), message));
  }
  // Caddy's ArgErr, which every plugin uses for a wrong number of arguments.
  absl::Status ArgCount(const Directive& d) const {
    return At(d.line, absl::StrCat("wrong argument count for '", d.name, "'"));
  }
  absl::Status NotSupported(const Directive& d) const {
    return At(d.line, absl::StrCat("'", d.name, "' is not supported by nodedns"));
  }
  absl::Status UnknownProperty(const Directive& d) const {
    return At(d.line, absl::StrCat("unknown property '", d.name, "'"));
  }
  absl::Status NoBlock(const Directive& d) const {
    return At(d.line, absl::StrCat("'", d.name, "' takes no block"));
  }

 private:
  std::string_view filename_;
  std::string_view plugin_;
};

// strconv.Atoi: an optional sign and decimal digits.
bool GoAtoi(std::string_view text, int* value) {
  std::string_view digits = text;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) digits.remove_prefix(1);
  if (digits.empty()) return false;
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return absl::SimpleAtoi(Av(text), value);
}

absl::StatusOr<int> Integer(const Reporter& r, int line, std::string_view text) {
  int value = 0;
  if (!GoAtoi(text, &value)) {
    return r.At(line, absl::StrCat("'", Av(text), "' is not an integer"));
  }
  return value;
}

absl::StatusOr<absl::Duration> Duration(const Reporter& r, int line, std::string_view text) {
  absl::StatusOr<absl::Duration> d = ParseGoDuration(text);
  if (!d.ok()) return r.At(line, d.status().message());
  return d;
}

absl::StatusOr<std::string> Zone(const Reporter& r, int line, std::string_view text) {
  absl::StatusOr<std::string> zone = NormalizeZone(text);
  if (!zone.ok()) return r.At(line, zone.status().message());
  return zone;
}

// Whether `name` is `zone` or below it; both normalised.
bool IsSubdomain(std::string_view zone, std::string_view name) {
  if (zone == ".") return true;
  if (name == zone) return true;
  return name.size() > zone.size() && absl::EndsWith(Av(name), Av(zone)) &&
         name[name.size() - zone.size() - 1] == '.';
}

bool IsIpLiteral(const std::string& text) {
  in_addr a4;
  in6_addr a6;
  return inet_pton(AF_INET, text.c_str(), &a4) == 1 || inet_pton(AF_INET6, text.c_str(), &a6) == 1;
}

// Go's net.SplitHostPort check that the health, prometheus and ready plugins apply, and a numeric
// port, which Go leaves to the later Listen.
absl::Status CheckListenAddress(const Reporter& r, int line, const std::string& address) {
  std::string_view port;
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      return r.At(line, absl::StrCat("'", address, "' is not HOST:PORT"));
    }
    port = std::string_view(address).substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos || address.find(':') != colon) {
      return r.At(line, absl::StrCat("'", address, "' is not HOST:PORT"));
    }
    port = std::string_view(address).substr(colon + 1);
  }
  int value = 0;
  if (port.empty() || !GoAtoi(port, &value) || port[0] == '+' || port[0] == '-' || value < 0 ||
      value > 65535) {
    return r.At(line, absl::StrCat("'", address, "' has no valid port"));
  }
  return absl::OkStatus();
}

absl::Status InterpretBind(const Directive& d, const Reporter& r, ServerBlockConfig* out) {
  if (d.args.empty()) return r.At(d.line, "at least one address is expected");
  for (const Directive& sub : d.block) {
    if (sub.name == "except") return r.NotSupported(sub);
    return r.At(sub.line, absl::StrCat("invalid option '", sub.name, "'"));
  }
  for (const std::string& a : d.args) {
    // CoreDNS tries interface names first; nodedns binds addresses only.
    if (!IsIpLiteral(a)) {
      return r.At(d.line, absl::StrCat("'", a,
                                       "' is not an IP address (interface names are not supported "
                                       "by nodedns)"));
    }
    out->bind.push_back({a, d.line});
  }
  return absl::OkStatus();
}

absl::StatusOr<ForwardTarget> ParseForwardTarget(const Reporter& r, int line,
                                                 const std::string& text) {
  ForwardTarget t;
  t.text = text;
  std::string_view rest = text;
  if (const size_t scheme = rest.find("://"); scheme != std::string_view::npos) {
    const std::string transport = absl::AsciiStrToLower(Av(rest.substr(0, scheme)));
    if (transport != "dns") {
      return r.At(line, absl::StrCat("'", transport, "://' upstreams ('", text,
                                     "') are not supported by nodedns"));
    }
    rest.remove_prefix(scheme + 3);
  }
  if (rest.empty()) return r.At(line, absl::StrCat("invalid address: '", text, "'"));
  absl::StatusOr<dns::SocketAddress> address = dns::SocketAddress::Parse(Av(rest), 53);
  if (address.ok()) {
    t.address = *address;
    return t;
  }
  // CoreDNS opens anything that is not an address as a resolv.conf file, and newer releases
  // resolve host names. A path here must look like one, so that a host name is not mistaken for
  // a file that does not exist.
  if (rest.find('/') != std::string_view::npos) {
    t.resolv_conf_path = std::string(rest);
    return t;
  }
  return r.At(line, absl::StrCat("'", text,
                                 "' is neither an IP address nor a file path (host names are not "
                                 "supported by nodedns)"));
}

absl::Status InterpretForwardOption(const Directive& o, const Reporter& r, ForwardConfig* f) {
  const std::vector<std::string>& a = o.args;
  if (o.has_block) return r.NoBlock(o);
  const auto no_args = [&]() -> absl::Status {
    return a.empty() ? absl::OkStatus() : r.ArgCount(o);
  };
  if (o.name == "except") {
    if (a.empty()) return r.ArgCount(o);
    for (const std::string& z : a) {
      absl::StatusOr<std::string> zone = Zone(r, o.line, z);
      if (!zone.ok()) return zone.status();
      f->except.push_back(*zone);
    }
  } else if (o.name == "force_tcp") {
    if (absl::Status s = no_args(); !s.ok()) return s;
    f->force_tcp = true;
  } else if (o.name == "prefer_udp") {
    if (absl::Status s = no_args(); !s.ok()) return s;
    f->prefer_udp = true;
  } else if (o.name == "max_fails") {
    // strconv.ParseUint(s, 10, 32).
    uint32_t n = 0;
    if (a.size() != 1) return r.ArgCount(o);
    if (a[0].empty() || !absl::ascii_isdigit(static_cast<unsigned char>(a[0][0])) ||
        !absl::SimpleAtoi(a[0], &n) || n > 1000000) {
      return r.At(o.line, absl::StrCat("max_fails: '", a[0], "' is not a valid count"));
    }
    f->max_fails = static_cast<int>(n);
  } else if (o.name == "max_concurrent") {
    if (a.size() != 1) return r.ArgCount(o);
    absl::StatusOr<int> n = Integer(r, o.line, a[0]);
    if (!n.ok()) return n.status();
    if (*n < 0) return r.At(o.line, "max_concurrent can't be negative");
    f->max_concurrent = *n;
  } else if (o.name == "expire") {
    if (a.size() != 1) return r.ArgCount(o);
    absl::StatusOr<absl::Duration> d = Duration(r, o.line, a[0]);
    if (!d.ok()) return d.status();
    if (*d < absl::ZeroDuration()) return r.At(o.line, "expire can't be negative");
    f->expire = *d;
  } else if (o.name == "policy") {
    if (a.size() != 1) return r.ArgCount(o);
    if (a[0] == "random") {
      f->policy = ForwardPolicy::kRandom;
    } else if (a[0] == "round_robin") {
      f->policy = ForwardPolicy::kRoundRobin;
    } else if (a[0] == "sequential") {
      f->policy = ForwardPolicy::kSequential;
    } else {
      return r.At(o.line, absl::StrCat("unknown policy '", a[0], "'"));
    }
  } else if (o.name == "health_check") {
    if (a.empty()) return r.ArgCount(o);
    absl::StatusOr<absl::Duration> d = Duration(r, o.line, a[0]);
    if (!d.ok()) return d.status();
    if (*d < absl::ZeroDuration()) return r.At(o.line, "health_check can't be negative");
    f->health_check = *d;
    f->health_check_domain = ".";
    for (size_t i = 1; i < a.size(); ++i) {
      if (a[i] == "no_rec") {
        f->health_check_recursion_desired = false;
      } else if (a[i] == "domain") {
        if (++i >= a.size()) return r.ArgCount(o);
        absl::StatusOr<std::string> zone = Zone(r, o.line, a[i]);
        if (!zone.ok()) return zone.status();
        f->health_check_domain = *zone;
      } else {
        return r.At(o.line, absl::StrCat("health_check: unknown option '", a[i], "'"));
      }
    }
  } else if (o.name == "failfast_all_unhealthy_upstreams") {
    if (absl::Status s = no_args(); !s.ok()) return s;
    f->failfast_all_unhealthy_upstreams = true;
  } else if (o.name == "tls" || o.name == "tls_servername" || o.name == "next" ||
             o.name == "next_on_nodata" || o.name == "failover" ||
             o.name == "max_connect_attempts" || o.name == "max_age" ||
             o.name == "max_idle_conns" || o.name == "read_timeout" || o.name == "doh_method" ||
             o.name == "resolver" || o.name == "source_address") {
    return r.NotSupported(o);
  } else {
    return r.UnknownProperty(o);
  }
  return absl::OkStatus();
}

absl::Status InterpretForward(const Directive& d, const Reporter& r, ServerBlockConfig* out) {
  // CoreDNS chains several forwards in one block since 1.10 (each FROM tried in turn); nodedns
  // has one upstream set per block.
  if (out->forward) {
    return r.At(d.line, absl::StrCat("more than one forward per server block is not supported by "
                                     "nodedns (the first is at line ",
                                     out->forward->line, ")"));
  }
  if (d.args.size() < 2) return r.ArgCount(d);
  ForwardConfig f;
  f.line = d.line;
  absl::StatusOr<std::string> from = Zone(r, d.line, d.args[0]);
  if (!from.ok()) return from.status();
  f.from = *from;
  // CoreDNS accepts a FROM outside the block's zones; it then never matches a query, which is
  // a mistake worth stopping at.
  bool reachable = false;
  for (const ServerKey& k : out->keys) {
    reachable = reachable || IsSubdomain(f.from, k.zone) || IsSubdomain(k.zone, f.from);
  }
  if (!reachable) {
    return r.At(d.line, absl::StrCat("forward zone '", f.from,
                                     "' is outside the server block's zones: it would never "
                                     "match"));
  }
  for (const Directive& o : d.block) {
    if (absl::Status s = InterpretForwardOption(o, r, &f); !s.ok()) return s;
  }
  for (size_t i = 1; i < d.args.size(); ++i) {
    absl::StatusOr<ForwardTarget> t = ParseForwardTarget(r, d.line, d.args[i]);
    if (!t.ok()) return t.status();
    f.to.push_back(*std::move(t));
  }
  if (f.to.size() > static_cast<size_t>(kForwardMaxUpstreams)) {
    return r.At(d.line, absl::StrCat("more than ", kForwardMaxUpstreams,
                                     " upstreams configured: ", f.to.size()));
  }
  out->forward = std::move(f);
  return absl::OkStatus();
}

// `success` and `denial`: CAPACITY [TTL [MINTTL]], TTLs in seconds.
absl::Status InterpretCacheTier(const Directive& o, const Reporter& r, CacheTier* tier) {
  const std::vector<std::string>& a = o.args;
  if (a.empty() || a.size() > 3) return r.ArgCount(o);
  absl::StatusOr<int> capacity = Integer(r, o.line, a[0]);
  if (!capacity.ok()) return capacity.status();
  if (*capacity < 0) return r.At(o.line, "cache capacity can not be negative");
  tier->capacity = *capacity;
  tier->line = o.line;
  if (a.size() > 1) {
    absl::StatusOr<int> ttl = Integer(r, o.line, a[1]);
    if (!ttl.ok()) return ttl.status();
    if (*ttl <= 0) return r.At(o.line, "cache TTL can not be zero or negative");
    tier->max_ttl = absl::Seconds(*ttl);
  }
  if (a.size() > 2) {
    absl::StatusOr<int> min_ttl = Integer(r, o.line, a[2]);
    if (!min_ttl.ok()) return min_ttl.status();
    if (*min_ttl < 0) return r.At(o.line, "cache min TTL can not be negative");
    tier->min_ttl = absl::Seconds(*min_ttl);
  }
  return absl::OkStatus();
}

absl::Status InterpretCacheOption(const Directive& o, const Reporter& r, CacheConfig* c) {
  const std::vector<std::string>& a = o.args;
  if (o.has_block) return r.NoBlock(o);
  if (o.name == "success") return InterpretCacheTier(o, r, &c->success);
  if (o.name == "denial") return InterpretCacheTier(o, r, &c->denial);
  if (o.name == "prefetch") {
    if (a.empty() || a.size() > 3) return r.ArgCount(o);
    PrefetchConfig p;
    p.line = o.line;
    absl::StatusOr<int> amount = Integer(r, o.line, a[0]);
    if (!amount.ok()) return amount.status();
    if (*amount < 0) return r.At(o.line, "prefetch amount should be positive");
    p.amount = *amount;
    if (a.size() > 1) {
      absl::StatusOr<absl::Duration> d = Duration(r, o.line, a[1]);
      if (!d.ok()) return d.status();
      p.duration = *d;
    }
    if (a.size() > 2) {
      std::string_view pct = a[2];
      if (!absl::EndsWith(Av(pct), "%")) {
        return r.At(o.line, absl::StrCat("prefetch percentage '", a[2], "' must end in '%'"));
      }
      pct.remove_suffix(1);
      absl::StatusOr<int> num = Integer(r, o.line, pct);
      if (!num.ok()) return num.status();
      if (*num < 10 || *num > 90) {
        return r.At(o.line, "prefetch percentage should fall in range [10, 90]");
      }
      p.percentage = *num;
    }
    c->prefetch = p;
  } else if (o.name == "serve_stale") {
    // CoreDNS 1.14 added a verify timeout, a stale TTL and a recheck delay after the mode.
    if (a.size() > 2) {
      return r.At(o.line,
                  "serve_stale: arguments after the refresh mode are not supported by "
                  "nodedns");
    }
    ServeStaleConfig s;
    s.line = o.line;
    if (!a.empty()) {
      absl::StatusOr<absl::Duration> d = Duration(r, o.line, a[0]);
      if (!d.ok()) return d.status();
      if (*d < absl::ZeroDuration())
        return r.At(o.line, "invalid negative duration for serve_stale");
      s.duration = *d;
    }
    if (a.size() > 1) {
      const std::string mode = absl::AsciiStrToLower(a[1]);
      if (mode != "immediate" && mode != "verify") {
        return r.At(o.line,
                    absl::StrCat("invalid value for serve_stale refresh mode: '", a[1], "'"));
      }
      s.verify = mode == "verify";
    }
    c->serve_stale = s;
  } else if (o.name == "servfail") {
    if (a.size() != 1) return r.ArgCount(o);
    absl::StatusOr<absl::Duration> d = Duration(r, o.line, a[0]);
    if (!d.ok()) return d.status();
    if (*d < absl::ZeroDuration()) return r.At(o.line, "invalid negative ttl for servfail");
    if (*d > kCacheServfailMaxTtl) {
      return r.At(o.line, "caching SERVFAIL responses over 5 minutes is not permitted");
    }
    c->servfail_ttl = *d;
  } else if (o.name == "disable") {
    if (a.empty()) return r.ArgCount(o);
    std::vector<std::string> zones;
    for (size_t i = 1; i < a.size(); ++i) {
      absl::StatusOr<std::string> zone = Zone(r, o.line, a[i]);
      if (!zone.ok()) return zone.status();
      zones.push_back(*zone);
    }
    if (zones.empty()) zones.push_back(".");
    if (a[0] == "success") {
      c->success.disabled_zones = zones;
    } else if (a[0] == "denial") {
      c->denial.disabled_zones = zones;
    } else {
      return r.At(o.line, "cache type for disable must be \"success\" or \"denial\"");
    }
  } else if (o.name == "keepttl") {
    if (!a.empty()) return r.ArgCount(o);
    c->keepttl = true;
  } else if (o.name == "serve_stale_policy") {
    return r.NotSupported(o);
  } else {
    return r.UnknownProperty(o);
  }
  return absl::OkStatus();
}

absl::Status InterpretCache(const Directive& d, const Reporter& r, ServerBlockConfig* out) {
  if (out->cache) return r.At(d.line, "this plugin can only be used once per server block");
  CacheConfig c;
  c.line = d.line;
  std::vector<std::string> args = d.args;
  // A first argument that is a number is the TTL for both tiers; anything else is a zone.
  int ttl = 0;
  if (!args.empty() && GoAtoi(args[0], &ttl)) {
    if (ttl <= 0) return r.At(d.line, "cache TTL can not be zero or negative");
    c.success.max_ttl = absl::Seconds(ttl);
    c.denial.max_ttl = absl::Seconds(ttl);
    args.erase(args.begin());
  }
  for (const std::string& z : args) {
    absl::StatusOr<std::string> zone = Zone(r, d.line, z);
    if (!zone.ok()) return zone.status();
    c.zones.push_back(*zone);
  }
  if (c.zones.empty()) {
    for (const ServerKey& k : out->keys) c.zones.push_back(k.zone);
  }
  for (const Directive& o : d.block) {
    if (absl::Status s = InterpretCacheOption(o, r, &c); !s.ok()) return s;
  }
  out->cache = std::move(c);
  return absl::OkStatus();
}

// health, prometheus and ready: [ADDRESS].
absl::StatusOr<std::string> OptionalAddress(const Directive& d, const Reporter& r,
                                            std::string default_address) {
  if (d.args.size() > 1) return r.ArgCount(d);
  if (d.args.empty()) return default_address;
  if (absl::Status s = CheckListenAddress(r, d.line, d.args[0]); !s.ok()) return s;
  return d.args[0];
}

absl::Status InterpretHealth(const Directive& d, const Reporter& r, ServerBlockConfig* out) {
  // CoreDNS lets a later health line replace an earlier one silently.
  if (out->health) {
    return r.At(d.line, absl::StrCat("more than one health per server block is not supported by "
                                     "nodedns (the first is at line ",
                                     out->health->line, ")"));
  }
  HealthConfig h;
  h.line = d.line;
  absl::StatusOr<std::string> address = OptionalAddress(d, r, kHealthDefaultAddress);
  if (!address.ok()) return address.status();
  h.address = *address;
  for (const Directive& o : d.block) {
    if (o.name != "lameduck") return r.UnknownProperty(o);
    if (o.args.size() != 1 || o.has_block) return r.ArgCount(o);
    absl::StatusOr<absl::Duration> lameduck = Duration(r, o.line, o.args[0]);
    if (!lameduck.ok()) return lameduck.status();
    h.lameduck = *lameduck;
  }
  out->health = h;
  return absl::OkStatus();
}

absl::Status InterpretPrometheus(const Directive& d, const Reporter& r, ServerBlockConfig* out) {
  if (out->prometheus) return r.At(d.line, "this plugin can only be used once per server block");
  PrometheusConfig p;
  p.line = d.line;
  absl::StatusOr<std::string> address = OptionalAddress(d, r, kPrometheusDefaultAddress);
  if (!address.ok()) return address.status();
  p.address = *address;
  for (const Directive& o : d.block) {
    if (o.name == "runtime_metrics" || o.name == "tls") return r.NotSupported(o);
    return r.UnknownProperty(o);
  }
  out->prometheus = p;
  return absl::OkStatus();
}

absl::Status InterpretReady(const Directive& d, const Reporter& r, ServerBlockConfig* out) {
  if (out->ready) return r.At(d.line, "this plugin can only be used once per server block");
  ReadyConfig ready;
  ready.line = d.line;
  absl::StatusOr<std::string> address = OptionalAddress(d, r, kReadyDefaultAddress);
  if (!address.ok()) return address.status();
  ready.address = *address;
  for (const Directive& o : d.block) {
    if (o.name != "monitor") return r.UnknownProperty(o);
    if (o.args.size() != 1 || o.has_block) return r.ArgCount(o);
    if (o.args[0] == "continuously") {
      ready.monitor_continuously = true;
    } else if (o.args[0] == "until-ready") {
      ready.monitor_continuously = false;
    } else {
      return r.At(o.line, absl::StrCat("monitor type '", o.args[0], "' not supported"));
    }
  }
  out->ready = ready;
  return absl::OkStatus();
}

absl::Status InterpretReload(const Directive& d, const Reporter& r, ServerBlockConfig* out) {
  // CoreDNS reads the first reload line of a block and ignores the others.
  if (out->reload) {
    return r.At(d.line, absl::StrCat("more than one reload per server block is not supported by "
                                     "nodedns (the first is at line ",
                                     out->reload->line, ")"));
  }
  if (d.has_block) return r.NoBlock(d);
  if (d.args.size() > 2) return r.ArgCount(d);
  ReloadConfig reload;
  reload.line = d.line;
  if (!d.args.empty()) {
    absl::StatusOr<absl::Duration> interval = Duration(r, d.line, d.args[0]);
    if (!interval.ok()) return interval.status();
    reload.interval = *interval;
  }
  if (reload.interval < kReloadMinInterval) {
    return r.At(d.line, "interval value must be greater or equal to 2s");
  }
  if (d.args.size() > 1) {
    absl::StatusOr<absl::Duration> jitter = Duration(r, d.line, d.args[1]);
    if (!jitter.ok()) return jitter.status();
    reload.jitter = *jitter;
  }
  if (reload.jitter != absl::ZeroDuration() && reload.jitter < kReloadMinJitter) {
    return r.At(d.line, "jitter value must be 0 or greater or equal to 1s");
  }
  if (reload.jitter > reload.interval / 2) reload.jitter = reload.interval / 2;
  out->reload = reload;
  return absl::OkStatus();
}

absl::Status InterpretErrors(const Directive& d, const Reporter& r, ServerBlockConfig* out) {
  if (out->errors) return r.At(d.line, "this plugin can only be used once per server block");
  if (d.args.size() > 1) return r.ArgCount(d);
  if (d.args.size() == 1 && d.args[0] != "stdout") {
    return r.At(d.line, absl::StrCat("invalid log file: '", d.args[0], "'"));
  }
  ErrorsConfig e;
  e.line = d.line;
  for (const Directive& o : d.block) {
    if (o.has_block) return r.NoBlock(o);
    if (o.name == "stacktrace") {
      e.stacktrace = true;
    } else if (o.name == "consolidate") {
      if (o.args.size() < 2 || o.args.size() > 4) return r.ArgCount(o);
      ConsolidateRule rule;
      rule.line = o.line;
      absl::StatusOr<absl::Duration> period = Duration(r, o.line, o.args[0]);
      if (!period.ok()) return period.status();
      rule.period = *period;
      rule.regexp = o.args[1];
      bool level_set = false;
      for (size_t i = 2; i < o.args.size(); ++i) {
        const std::string& a = o.args[i];
        if (a == "warning" || a == "error" || a == "info" || a == "debug") {
          if (level_set) return r.At(o.line, "multiple log levels specified in consolidate");
          if (rule.show_first) {
            return r.At(o.line, "log level must come before show_first in consolidate");
          }
          rule.level = a;
          level_set = true;
        } else if (a == "show_first") {
          rule.show_first = true;
        } else {
          return r.At(o.line, absl::StrCat("unknown option in consolidate: '", a, "'"));
        }
      }
      e.consolidate.push_back(std::move(rule));
    } else {
      return r.UnknownProperty(o);
    }
  }
  out->errors = std::move(e);
  return absl::OkStatus();
}

absl::Status InterpretLog(const Directive& d, const Reporter& r, ServerBlockConfig* out) {
  LogConfig l;
  l.line = d.line;
  l.args = d.args;
  for (const Directive& o : d.block) {
    if (o.name != "class") return r.UnknownProperty(o);
    if (o.args.empty() || o.has_block) return r.ArgCount(o);
    for (const std::string& c : o.args) {
      if (c != "all" && c != "denial" && c != "error" && c != "success") {
        return r.At(o.line, absl::StrCat("invalid class: '", c, "'"));
      }
      l.classes.push_back(c);
    }
  }
  out->log.push_back(std::move(l));
  return absl::OkStatus();
}

absl::Status InterpretLoop(const Directive& d, const Reporter& r, ServerBlockConfig* out) {
  if (out->loop_line != 0) {
    return r.At(d.line, "this plugin can only be used once per server block");
  }
  if (d.has_block) return r.NoBlock(d);
  if (!d.args.empty()) return r.ArgCount(d);
  out->loop_line = d.line;
  return absl::OkStatus();
}

// Two configurations overlap when they serve the same zone and port on a common address; a
// block without bind listens on every address. (core/dnsserver: "it is already defined" and "zone
// overlap listener capacity".)
struct Listener {
  const ServerBlockConfig* block;
  const ServerKey* key;
};

bool BindsOverlap(const ServerBlockConfig& a, const ServerBlockConfig& b) {
  if (a.bind.empty() || b.bind.empty()) return true;
  for (const BindAddress& x : a.bind) {
    for (const BindAddress& y : b.bind) {
      if (x.address == y.address) return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<absl::Duration> ParseGoDuration(std::string_view text) {
  // absl::ParseDuration takes Go's syntax except the micro sign, and adds "inf".
  std::string s = absl::StrReplaceAll(Av(text), {{"\xC2\xB5s", "us"}, {"\xCE\xBCs", "us"}});
  absl::Duration d;
  if (s.empty() || absl::StrContains(s, "inf") || !absl::ParseDuration(s, &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid duration '", Av(text), "' (expected e.g. 30s, 1m, 1h30m)"));
  }
  return d;
}

namespace {

absl::StatusOr<ServerBlockConfig> InterpretDirectives(const ServerBlock& block,
                                                      std::string_view filename) {
  ServerBlockConfig out;
  out.keys = block.keys;
  out.line = block.line;
  for (const Directive& d : block.directives) {
    const Reporter r(filename, d.name);
    absl::Status s;
    if (d.name == "bind") {
      s = InterpretBind(d, r, &out);
    } else if (d.name == "forward") {
      s = InterpretForward(d, r, &out);
    } else if (d.name == "cache") {
      s = InterpretCache(d, r, &out);
    } else if (d.name == "health") {
      s = InterpretHealth(d, r, &out);
    } else if (d.name == "prometheus") {
      s = InterpretPrometheus(d, r, &out);
    } else if (d.name == "ready") {
      s = InterpretReady(d, r, &out);
    } else if (d.name == "reload") {
      s = InterpretReload(d, r, &out);
    } else if (d.name == "errors") {
      s = InterpretErrors(d, r, &out);
    } else if (d.name == "log") {
      s = InterpretLog(d, r, &out);
    } else if (d.name == "loop") {
      s = InterpretLoop(d, r, &out);
    } else {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: unknown directive '%s' (nodedns supports: %s)", Av(filename),
                          d.line, d.name, kSupported));
    }
    if (!s.ok()) return s;
  }
  return out;
}

}  // namespace

absl::StatusOr<ServerBlockConfig> InterpretBlock(const ServerBlock& block,
                                                 std::string_view filename) {
  absl::StatusOr<ServerBlockConfig> out = InterpretDirectives(block, filename);
  // Messages quote names and arguments, and a quoted token may span lines.
  if (!out.ok()) return OneLine(out.status());
  return out;
}

absl::StatusOr<std::vector<ServerBlockConfig>> InterpretCorefile(const Corefile& corefile,
                                                                 std::string_view filename) {
  std::vector<ServerBlockConfig> out;
  out.reserve(corefile.blocks.size());
  for (const ServerBlock& block : corefile.blocks) {
    absl::StatusOr<ServerBlockConfig> config = InterpretBlock(block, filename);
    if (!config.ok()) return config.status();
    out.push_back(*std::move(config));
  }
  std::vector<Listener> seen;
  for (const ServerBlockConfig& block : out) {
    for (const ServerKey& key : block.keys) {
      for (const Listener& earlier : seen) {
        if (earlier.key->zone == key.zone && earlier.key->port == key.port &&
            BindsOverlap(*earlier.block, block)) {
          return OneLine(absl::InvalidArgumentError(absl::StrFormat(
              "%s:%d: zone '%s' on port %d is already served by the block at line %d", Av(filename),
              key.line, key.zone, key.port, earlier.key->line)));
        }
      }
      seen.push_back({&block, &key});
    }
  }
  return out;
}

}  // namespace nodedns::corefile
