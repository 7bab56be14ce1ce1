// Parsing of the serve configuration's textual forms; see config.h.
#include "proxy/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "dns/wire.h"

namespace nodedns::proxy {

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

std::string SocketAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof buf);
    return absl::StrCat(buf, ":", port());
  }
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf,
              sizeof buf);
    return absl::StrCat("[", buf, "]:", port());
  }
  return "?";
}

absl::StatusOr<SocketAddress> SocketAddress::Parse(absl::string_view text, uint16_t default_port) {
  std::string host;
  absl::string_view port_text;
  if (absl::StartsWith(text, "[")) {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "': missing ']'"));
    }
    host = std::string(text.substr(1, close - 1));
    absl::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return absl::InvalidArgumentError(absl::StrCat("'", text, "': bad port"));
      port_text = rest.substr(1);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    const size_t colon = text.find(':');
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  } else {
    host = std::string(text);  // IPv4 without port, or a bare IPv6 address
  }
  uint32_t port = default_port;
  if (!port_text.empty() || (port_text.empty() && default_port == 0)) {
    if (!absl::SimpleAtoi(port_text, &port) || port == 0 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "': expected ADDR:PORT with a port in 1..65535"));
    }
  }
  SocketAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    a.length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    a.length = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "': '", host, "' is not an IPv4 or IPv6 address"));
  }
  return a;
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

absl::StatusOr<std::vector<SocketAddress>> ReadResolvConfNameservers(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::vector<SocketAddress> out;
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&l, "nameserver")) continue;
    if (l.empty() || !absl::ascii_isspace(l[0])) continue;
    l = absl::StripAsciiWhitespace(l);
    const size_t end = l.find_first_of(" \t#;");
    if (end != absl::string_view::npos) l = l.substr(0, end);
    // A link-local IPv6 nameserver may carry a zone index ("fe80::1%eth0"); we cannot use it.
    if (l.find('%') != absl::string_view::npos) continue;
    auto addr = SocketAddress::Parse(std::string(l), 53);
    if (addr.ok() && out.size() < 3) out.push_back(*addr);
  }
  if (out.empty()) return absl::NotFoundError(absl::StrCat(path, " lists no usable nameserver"));
  return out;
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
      auto servers = ReadResolvConfNameservers(std::string(up));
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

}  // namespace nodedns::proxy
