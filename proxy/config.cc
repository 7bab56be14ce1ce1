// Parsing of the serve configuration's textual forms; see config.h.
#include "proxy/config.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "dns/wire.h"
#include "resolvconf/resolv_conf.h"

namespace nodedns::proxy {

std::string HttpEndpoint::ToString() const {
  std::vector<std::string> roles;
  if (health) roles.push_back("health");
  if (metrics) roles.push_back("metrics");
  if (audit) roles.push_back("audit");
  if (ready) roles.push_back("ready");
  return absl::StrCat(addr.ToString(), " ", absl::StrJoin(roles, ","));
}

absl::StatusOr<std::vector<uint8_t>> ZoneToWire(absl::string_view zone) {
  std::string z = absl::AsciiStrToLower(zone);
  if (z.empty()) return absl::InvalidArgumentError("empty zone name");
  if (z != "." && z.back() == '.') z.pop_back();
  std::vector<uint8_t> wire;
  if (z != ".") {
    for (absl::string_view label : absl::StrSplit(z, '.')) {
      if (label.empty() || label.size() > dns::kMaxLabel) {
        return absl::InvalidArgumentError(absl::StrCat("'", zone, "' is not a valid zone name"));
      }
      wire.push_back(static_cast<uint8_t>(label.size()));
      wire.insert(wire.end(), label.begin(), label.end());
    }
  }
  wire.push_back(0);
  if (wire.size() > dns::kMaxNameWire) {
    return absl::InvalidArgumentError(absl::StrCat("zone name '", zone, "' is too long"));
  }
  return wire;
}

absl::StatusOr<ForwardZone> ParseForwardSpec(absl::string_view spec) {
  const size_t eq = spec.find('=');
  if (eq == absl::string_view::npos || eq == 0 || eq + 1 == spec.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", spec, "': expected ZONE=UPSTREAM[,UPSTREAM...]"));
  }
  ForwardZone z;
  auto wire = ZoneToWire(spec.substr(0, eq));
  if (!wire.ok()) return wire.status();
  z.zone_wire = *std::move(wire);
  z.zone = absl::AsciiStrToLower(spec.substr(0, eq));
  if (z.zone != "." && z.zone.back() == '.') z.zone.pop_back();
  for (absl::string_view up : absl::StrSplit(spec.substr(eq + 1), ',')) {
    up = absl::StripAsciiWhitespace(up);
    if (absl::StartsWith(up, "/")) {
      auto servers = resolvconf::ReadResolvConfNameservers(std::string(up));
      if (!servers.ok()) return servers.status();
      z.upstreams.insert(z.upstreams.end(), servers->begin(), servers->end());
      continue;
    }
    auto addr = SocketAddress::Parse(up, 53);
    if (!addr.ok()) return addr.status();
    z.upstreams.push_back(*addr);
  }
  return z;
}

namespace {

// Does the wire name `name` end with the lowercase wire name `zone` (at a label boundary)?
bool UnderZone(std::span<const uint8_t> name, std::span<const uint8_t> zone) {
  if (zone.size() == 1) return true;  // the root
  size_t off = 0;
  while (off < name.size() && name[off] != 0) {
    if (name.size() - off == zone.size()) {
      return dns::NameEqualsIgnoreCase(name.data() + off, zone.data(), zone.size());
    }
    off += name[off] + 1;
  }
  return false;
}

}  // namespace

size_t MatchZone(std::span<const ForwardZone> zones, std::span<const uint8_t> qname) {
  for (size_t i = 0; i < zones.size(); ++i) {
    if (UnderZone(qname, zones[i].zone_wire)) return i;
  }
  return zones.size() - 1;  // "." sorts last
}

absl::Status FinishZones(std::vector<ForwardZone>& zones, std::span<const std::string> force_tcp) {
  for (const auto& name : force_tcp) {
    auto wire = ZoneToWire(name);
    if (!wire.ok()) return wire.status();
    bool found = false;
    for (auto& z : zones) {
      if (z.zone_wire == *wire) z.force_tcp = found = true;
    }
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("--force-tcp ", name, ": no --forward for that zone"));
    }
  }
  std::stable_sort(zones.begin(), zones.end(), [](const ForwardZone& a, const ForwardZone& b) {
    return a.zone_wire.size() > b.zone_wire.size();
  });
  for (size_t i = 1; i < zones.size(); ++i) {
    if (zones[i].zone_wire == zones[i - 1].zone_wire) {
      return absl::InvalidArgumentError(absl::StrCat("zone '", zones[i].zone, "' forwarded twice"));
    }
  }
  if (zones.empty() || zones.back().zone_wire.size() != 1) {
    return absl::InvalidArgumentError("no forwarding for the root zone '.'");
  }
  return absl::OkStatus();
}

upstream::UpstreamHealth::Options HealthOptions(const ServeConfig& config,
                                                const ForwardZone& zone) {
  return {.max_fails = zone.max_fails.value_or(config.upstream_max_fails),
          .check_interval_ms = zone.health_check_ms.value_or(config.upstream_health_check_ms),
          .probe_qname = zone.health_check_qname,
          .probe_rd = zone.health_check_rd};
}

}  // namespace nodedns::proxy
