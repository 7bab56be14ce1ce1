// Parsing of the serve configuration's textual forms; see config.h.
#include "proxy/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "audit/resolv_conf.h"
#include "dns/wire.h"

namespace nodedns::proxy {

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

namespace {

// glibc's __inet_aton_exact: inet_aton's forms ("127.1", "0x7f.0.0.1", octal), and nothing after
// them. inet_aton itself stops at the first whitespace character, so reject those first.
bool InetAtonExact(const char* text, in_addr* out) {
  for (const char* c = text; *c != '\0'; ++c) {
    if (absl::ascii_isspace(static_cast<unsigned char>(*c))) return false;
  }
  return inet_aton(text, out) != 0;
}

}  // namespace

// As glibc 2.36 reads them (resolv/res_init.c, res_vinit_1): "nameserver" at the very start of
// the line, then a blank or a tab; blanks and tabs skipped; the address is what follows up to the
// next blank, tab or newline (a NUL ends it too), read by __inet_aton_exact or, failing that, by
// inet_pton(AF_INET6) after cutting a "%zone". No port: always 53. The first three addresses
// (MAXNS) are the ones used. A link-local IPv6 address with a zone counts among the three, but we
// cannot use it (SocketAddress carries no scope id), so it is skipped.
absl::StatusOr<std::vector<SocketAddress>> ReadResolvConfNameservers(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  constexpr size_t kMaxNameservers = 3;  // glibc's MAXNS
  std::vector<SocketAddress> out;
  size_t seen = 0;  // addresses glibc takes, usable by us or not
  std::string line;
  while (seen < kMaxNameservers && std::getline(in, line)) {
    constexpr absl::string_view kKeyword = "nameserver";
    // Up to the first NUL, as glibc sees the line through C strings.
    std::string text(line.c_str());
    absl::string_view l = text;
    if (!absl::ConsumePrefix(&l, kKeyword)) continue;
    if (l.empty() || (l[0] != ' ' && l[0] != '\t')) continue;
    const size_t begin = l.find_first_not_of(" \t");
    if (begin == absl::string_view::npos) continue;
    l = l.substr(begin);
    l = l.substr(0, l.find_first_of(" \t\n"));
    const std::string token(l);
    SocketAddress addr;
    in_addr a4;
    in6_addr a6;
    if (InetAtonExact(token.c_str(), &a4)) {
      auto* sin = reinterpret_cast<sockaddr_in*>(&addr.storage);
      sin->sin_family = AF_INET;
      sin->sin_port = htons(53);
      sin->sin_addr = a4;
      addr.length = sizeof(sockaddr_in);
    } else {
      const size_t zone = token.find('%');
      const std::string v6 = token.substr(0, zone);
      if (v6.empty() || inet_pton(AF_INET6, v6.c_str(), &a6) != 1) continue;
      ++seen;
      if (zone != std::string::npos) continue;  // glibc uses it with its scope id; we cannot
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(&addr.storage);
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(53);
      sin6->sin6_addr = a6;
      addr.length = sizeof(sockaddr_in6);
      out.push_back(addr);
      continue;
    }
    ++seen;
    out.push_back(addr);
  }
  if (out.empty()) return absl::NotFoundError(absl::StrCat(path, " lists no usable nameserver"));
  return out;
}

absl::StatusOr<std::vector<std::string>> ReadResolvConfSearch(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return audit::ParseResolvConf(text.str()).conf.search;
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
