// Corefile server blocks → ServeConfig; see serve_config.h.
#include "nodecache/serve_config.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/one_line.h"

namespace nodedns::nodecache {

namespace {

using corefile::ServerBlockConfig;

// Both fully qualified, lowercase ("a.b.", "."): is `name` at or below `zone`?
bool AtOrBelow(const std::string& name, const std::string& zone) {
  if (zone == "." || name == zone) return true;
  return name.size() > zone.size() && name.ends_with(zone) &&
         name[name.size() - zone.size() - 1] == '.';
}

uint32_t Seconds(absl::Duration d) {
  const int64_t s = absl::ToInt64Seconds(d);
  return static_cast<uint32_t>(std::clamp<int64_t>(s, 0, UINT32_MAX));
}

// "cluster.local." → "cluster.local" (ForwardZone's presentation form); "." stays.
std::string Presentation(const std::string& zone) {
  return zone == "." ? zone : std::string(absl::StripSuffix(zone, "."));
}

class Translator {
 public:
  Translator(std::span<const ServerBlockConfig> blocks, const TranslateOptions& o)
      : blocks_(blocks), o_(o) {}

  absl::StatusOr<NodeCacheConfig> Run() {
    NodeCacheConfig out;
    proxy::ServeConfig& c = out.serve;
    // One zone table for every listen address: which zones each address serves, and which block
    // serves each zone.
    std::map<std::string, std::set<std::string>> zones_of_listen;
    std::map<std::string, std::pair<size_t, int>> block_of_zone;  // zone → its block: index, line
    std::map<std::string, dns::SocketAddress> listen;
    size_t capacity_entries = 0;
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const ServerBlockConfig& b = blocks_[i];
      for (const corefile::ServerKey& key : b.keys) {
        auto [it, fresh] = block_of_zone.emplace(key.zone, std::pair{i, b.line});
        if (!fresh && it->second.first != i) {
          return At(key.line,
                    absl::StrCat("zone ", key.zone, " is also served by the block at line ",
                                 it->second.second,
                                 "; nodedns answers every listen address from one zone table, "
                                 "so each zone needs exactly one server block"));
        }
        std::vector<std::string> addrs;
        for (const auto& bind : b.bind) addrs.push_back(bind.address);
        if (addrs.empty()) addrs.push_back("0.0.0.0");
        for (const std::string& a : addrs) {
          auto sa = dns::SocketAddress::Parse(a, static_cast<uint16_t>(key.port));
          if (!sa.ok()) return At(key.line, absl::StrCat("bind ", a, ": ", sa.status().message()));
          const std::string text = sa->ToString();
          listen.emplace(text, *sa);
          zones_of_listen[text].insert(key.zone);
        }
        // The same zone on another port of this block (".:53 .:5353"): one more listen address,
        // but still one zone in the shared table.
        if (!fresh) continue;
        auto zone = Zone(b, key);
        if (!zone.ok()) return zone.status();
        c.zones.push_back(*std::move(zone));
      }
      if (b.cache) {
        capacity_entries += static_cast<size_t>(std::max(0, b.cache->success.capacity)) +
                            static_cast<size_t>(std::max(0, b.cache->denial.capacity));
      }
      if (auto st = Endpoints(b, c); !st.ok()) return st;
      if (b.reload) {
        // Clamped: "reload 1193h2m47.296s" (2^32 ms) must not wrap to 0, which means no reload.
        const uint32_t ms = static_cast<uint32_t>(
            std::clamp<int64_t>(absl::ToInt64Milliseconds(b.reload->interval), 1, UINT32_MAX));
        out.reload_interval_ms =
            out.reload_interval_ms == 0 ? ms : std::min(out.reload_interval_ms, ms);
      }
      for (const auto& l : b.log) {
        out.warnings.push_back(
            absl::StrCat(o_.filename, ":", l.line,
                         ": log: nodedns does not log queries (GET /audit and the metrics show "
                         "them in aggregate); ignored"));
      }
    }
    if (blocks_.empty())
      return absl::InvalidArgumentError(absl::StrCat(o_.filename, ": no server blocks"));
    const std::set<std::string>& first = zones_of_listen.begin()->second;
    for (const auto& [addr, zones] : zones_of_listen) {
      if (zones != first) {
        return absl::InvalidArgumentError(absl::StrCat(
            o_.filename, ": ", addr, " serves zones {", absl::StrJoin(zones, " "), "} but ",
            zones_of_listen.begin()->first, " serves {", absl::StrJoin(first, " "),
            "}; nodedns answers every listen address from one zone table: bind every block to "
            "the same addresses"));
      }
    }
    for (auto& [text, addr] : listen) c.listen.push_back(addr);
    if (auto st = proxy::FinishZones(c.zones, {}); !st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(o_.filename, ": ", st.message(), " (add a server block for '.')"));
    }
    if (auto st = CheckLoops(c); !st.ok()) return st;
    c.cache.capacity_bytes = std::max(kMinCacheBytes, capacity_entries * kBytesPerCacheEntry);
    // The search-path rewrite needs the cluster domain: the first zone of the first block that is
    // neither the root nor a reverse zone (cluster.local in the stock file, where that block comes
    // first; stub domains come after). None: rewrite off.
    std::vector<std::string> cluster;
    for (const auto& key : blocks_.front().keys) {
      const std::string z = Presentation(key.zone);
      if (z != "." && !z.ends_with("in-addr.arpa") && !z.ends_with("ip6.arpa")) {
        cluster.push_back(z);
        break;
      }
    }
    c.search_rewrite = cluster.size() == 1;
    if (c.search_rewrite) {
      c.cluster_domain = cluster[0];
      auto wire = proxy::ZoneToWire(cluster[0]);
      if (!wire.ok()) return wire.status();
      c.cluster_domain_wire = *std::move(wire);
      c.node_search = o_.node_search;
    } else {
      c.cluster_domain_wire = *proxy::ZoneToWire(c.cluster_domain);
    }
    return out;
  }

 private:
  absl::Status At(int line, absl::string_view msg) const {
    return absl::InvalidArgumentError(absl::StrCat(o_.filename, ":", line, ": ", msg));
  }

  absl::StatusOr<proxy::ForwardZone> Zone(const ServerBlockConfig& b,
                                          const corefile::ServerKey& key) {
    proxy::ForwardZone z;
    z.zone = Presentation(key.zone);
    auto wire = proxy::ZoneToWire(z.zone);
    if (!wire.ok()) return At(key.line, wire.status().message());
    z.zone_wire = *std::move(wire);
    if (!b.forward) {
      return At(key.line, absl::StrCat("zone ", key.zone,
                                       ": no forward; nodedns needs an upstream for every zone"));
    }
    const corefile::ForwardConfig& f = *b.forward;
    if (!AtOrBelow(key.zone, f.from)) {
      return At(
          f.line,
          absl::StrCat("forward ", f.from, " does not cover the block's zone ", key.zone,
                       "; nodedns forwards whole zones (use forward . or forward ", key.zone, ")"));
    }
    if (!f.except.empty()) {
      return At(f.line, "forward except: not supported by nodedns (it forwards whole zones)");
    }
    for (const auto& t : f.to) {
      if (t.address) {
        z.upstreams.push_back(*t.address);
        continue;
      }
      auto servers = o_.read_nameservers(t.resolv_conf_path);
      if (!servers.ok()) return At(f.line, absl::StrCat("forward: ", servers.status().message()));
      z.upstreams.insert(z.upstreams.end(), servers->begin(), servers->end());
    }
    if (z.upstreams.empty()) return At(f.line, "forward: no upstream nameservers");
    z.force_tcp = f.force_tcp;
    z.max_concurrent = static_cast<size_t>(std::max(0, f.max_concurrent));
    // CoreDNS's health checking, by nodedns's (upstream/health.h): max_fails failed tries mark an
    // upstream down, health_check is the interval of the probes that bring it back (at least
    // 1 ms: none without pause), its no_rec and domain the probe's RD bit and name.
    z.max_fails = f.max_fails;
    z.health_check_ms = static_cast<uint32_t>(
        std::clamp<int64_t>(absl::ToInt64Milliseconds(f.health_check), 1, 3'600'000));
    z.health_check_rd = f.health_check_recursion_desired;
    if (f.health_check_domain != ".") {
      auto qname = proxy::ZoneToWire(Presentation(f.health_check_domain));
      if (!qname.ok()) {
        return At(f.line, absl::StrCat("health_check domain: ", qname.status().message()));
      }
      z.health_check_qname = *std::move(qname);
    }
    if (b.cache) {
      const corefile::CacheConfig& cc = *b.cache;
      if (cc.keepttl) return At(cc.line, "cache keepttl: not supported by nodedns");
      // Sets: a block keyed on several ports names its zone once per port.
      std::set<std::string> block_zones;
      for (const auto& k : b.keys) block_zones.insert(k.zone);
      const std::set<std::string> cache_zones(cc.zones.begin(), cc.zones.end());
      if (!cache_zones.empty() && cache_zones != block_zones) {
        return At(cc.line, absl::StrCat("cache ", absl::StrJoin(cc.zones, " "),
                                        ": nodedns caches whole server blocks; list no zones"));
      }
      for (const corefile::CacheTier* tier : {&cc.success, &cc.denial}) {
        for (const auto& d : tier->disabled_zones) {
          if (!AtOrBelow(key.zone, d) && AtOrBelow(d, key.zone)) {
            return At(tier->line ? tier->line : cc.line,
                      absl::StrCat("cache disable ", d,
                                   ": nodedns disables a tier for whole server blocks only"));
          }
        }
      }
    }
    z.cache_policy = CachePolicyFor(b.cache ? &*b.cache : nullptr, key.zone);
    return z;
  }

  absl::Status Endpoints(const ServerBlockConfig& b, proxy::ServeConfig& c) {
    auto add = [&](const std::string& addr, int line, const char* what, bool health, bool metrics,
                   bool ready) -> absl::Status {
      auto sa = ParseHostPort(addr);
      if (!sa.ok()) return At(line, absl::StrCat(what, " ", addr, ": ", sa.status().message()));
      for (auto& e : c.http) {
        if (e.addr.ToString() == sa->ToString()) {
          e.health |= health;
          e.metrics |= metrics;
          e.audit |= metrics;  // as on an endpoint of its own: /audit goes with /metrics
          e.ready |= ready;
          return absl::OkStatus();
        }
      }
      c.http.push_back({.addr = *sa,
                        .health = health,
                        .metrics = metrics,
                        .audit = metrics,
                        .ready = ready,
                        .flag = absl::StrCat(o_.filename, ":", line, ": ", what)});
      return absl::OkStatus();
    };
    if (b.health) {
      if (auto st = add(b.health->address, b.health->line, "health", true, false, false);
          !st.ok()) {
        return st;
      }
    }
    if (b.ready) {
      if (auto st = add(b.ready->address, b.ready->line, "ready", false, false, true); !st.ok()) {
        return st;
      }
    }
    if (b.prometheus) {
      c.coredns_metrics = true;
      if (auto st =
              add(b.prometheus->address, b.prometheus->line, "prometheus", false, true, false);
          !st.ok()) {
        return st;
      }
    }
    return absl::OkStatus();
  }

  // CoreDNS's `loop` finds a forwarding loop by sending itself a query; nodedns refuses the
  // configuration that makes one: an upstream that is one of its own listen addresses.
  absl::Status CheckLoops(const proxy::ServeConfig& c) const {
    bool loop = false;
    int line = 0;
    for (const auto& b : blocks_) {
      if (b.loop_line) {
        loop = true;
        line = b.loop_line;
      }
    }
    if (!loop) return absl::OkStatus();
    auto ipv4 = [](const dns::SocketAddress& a) {
      return ntohl(reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr.s_addr);
    };
    auto ipv6 = [](const dns::SocketAddress& a) -> const in6_addr& {
      return reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr;
    };
    auto wildcard = [&](const dns::SocketAddress& a) {
      return a.family() == AF_INET ? ipv4(a) == 0 : IN6_IS_ADDR_UNSPECIFIED(&ipv6(a));
    };
    auto loopback = [&](const dns::SocketAddress& a) {
      return a.family() == AF_INET ? (ipv4(a) >> 24) == 127 : IN6_IS_ADDR_LOOPBACK(&ipv6(a));
    };
    for (const auto& z : c.zones) {
      for (const auto& u : z.upstreams) {
        for (const auto& l : c.listen) {
          // The same address, or a loopback address of the family nodedns listens on all of.
          const bool self =
              u.port() == l.port() && (u.ToString() == l.ToString() ||
                                       (wildcard(l) && u.family() == l.family() && loopback(u)));
          if (self) {
            return At(line,
                      absl::StrCat("loop: zone ", z.zone, " forwards to ", u.ToString(),
                                   ", which is nodedns itself (listening on ", l.ToString(), ")"));
          }
        }
      }
    }
    return absl::OkStatus();
  }

  static cache::EntryPolicy CachePolicyFor(const corefile::CacheConfig* cc,
                                           const std::string& zone) {
    cache::EntryPolicy p = CachePolicy(cc);
    if (cc == nullptr) return p;
    for (const auto& d : cc->success.disabled_zones) {
      if (AtOrBelow(zone, d)) p.min_ttl = p.max_ttl = 0;
    }
    for (const auto& d : cc->denial.disabled_zones) {
      if (AtOrBelow(zone, d)) p.min_negative_ttl = p.max_negative_ttl = 0;
    }
    return p;
  }

  std::span<const ServerBlockConfig> blocks_;
  const TranslateOptions& o_;
};

}  // namespace

absl::StatusOr<NodeCacheConfig> TranslateCorefile(std::span<const ServerBlockConfig> blocks,
                                                  const TranslateOptions& options) {
  absl::StatusOr<NodeCacheConfig> config = Translator(blocks, options).Run();
  // Messages quote zones, which may hold any byte a quoted Corefile token can.
  if (!config.ok()) return OneLine(config.status());
  return config;
}

cache::EntryPolicy CachePolicy(const corefile::CacheConfig* cc) {
  if (cc == nullptr) {
    // No `cache` in the block: CoreDNS asks upstream every time. A zero lifetime is never stored.
    return {.min_ttl = 0,
            .max_ttl = 0,
            .min_negative_ttl = 0,
            .max_negative_ttl = 0,
            .servfail_ttl = 0,
            .stale_ttl = 0,
            .prefetch_min_hits = 0,
            .prefetch_percent = 0};
  }
  cache::EntryPolicy p;
  p.max_ttl = Seconds(cc->success.max_ttl);
  p.min_ttl = std::min(Seconds(cc->success.min_ttl), p.max_ttl);
  p.max_negative_ttl = Seconds(cc->denial.max_ttl);
  p.min_negative_ttl = std::min(Seconds(cc->denial.min_ttl), p.max_negative_ttl);
  p.servfail_ttl = Seconds(cc->servfail_ttl);
  p.stale_ttl = cc->serve_stale ? Seconds(cc->serve_stale->duration) : 0;
  if (cc->prefetch) {
    // CoreDNS: AMOUNT queries within DURATION; nodedns counts hits of the entry's lifetime.
    p.prefetch_min_hits = static_cast<uint8_t>(std::clamp(cc->prefetch->amount, 0, 255));
    p.prefetch_percent = static_cast<uint8_t>(std::clamp(cc->prefetch->percentage, 0, 100));
  } else {
    p.prefetch_min_hits = 0;
    p.prefetch_percent = 0;  // no `prefetch`: never refreshed early
  }
  return p;
}

absl::StatusOr<dns::SocketAddress> ParseHostPort(const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError("expected HOST:PORT");
  }
  std::string host = text.substr(0, colon);
  if (host.empty()) host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  const bool bracketed = host.size() > 1 && host.front() == '[';
  return dns::SocketAddress::Parse(absl::StrCat(
      bracketed || host.find(':') == std::string::npos ? host : absl::StrCat("[", host, "]"),
      text.substr(colon)));
}

}  // namespace nodedns::nodecache
