// Top-K of wasted search-path queries; see wasted_queries.h.
#include "proxy/wasted_queries.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "proxy/client_queries.h"

namespace nodedns::proxy {

size_t SearchBaseLength(std::span<const uint8_t> qname, std::span<const uint8_t> zone_wire,
                        size_t* alternative) {
  if (alternative) *alternative = 0;
  if (qname.size() <= zone_wire.size()) return 0;
  // Label offsets, to look at the labels just above the zone.
  size_t offs[128];
  size_t n = 0, off = 0;
  while (off < qname.size() && qname[off] != 0 && n < 128) {
    offs[n++] = off;
    off += qname[off] + 1;
  }
  const size_t zone_at = qname.size() - zone_wire.size();
  size_t z = 0;  // number of labels above the zone
  while (z < n && offs[z] != zone_at) ++z;
  if (z == n || z == 0) return 0;
  if (!dns::NameEqualsIgnoreCase(qname.data() + zone_at, zone_wire.data(), zone_wire.size())) {
    return 0;
  }
  auto is_svc = [&](size_t i) {
    return qname[offs[i]] == 3 &&
           dns::NameEqualsIgnoreCase(qname.data() + offs[i] + 1,
                                     reinterpret_cast<const uint8_t*>("svc"), 3);
  };
  auto end_of = [&](size_t labels) { return offs[labels - 1] + qname[offs[labels - 1]] + 1; };
  size_t base_labels = z;
  size_t alt_labels = z;
  if (z >= 3 && is_svc(z - 1)) {
    base_labels = z - 2;  // N.<ns>.svc.<zone>
    alt_labels = z - 1;   // or N.<ns> under svc.<zone>
  } else if (z >= 2 && is_svc(z - 1)) {
    base_labels = alt_labels = z - 1;  // N.svc.<zone>
  }
  if (alternative) *alternative = end_of(alt_labels);
  return end_of(base_labels);
}

void WastedQueryTracker::Note(const sockaddr_storage& client, std::span<const uint8_t> base,
                              std::span<const uint8_t> alternative) {
  uint8_t addr[16];
  const uint8_t family = CopyClientAddress(client, addr);
  if (family == 0) return;
  ClientCount* c = nullptr;
  for (size_t i = 0; i < used_; ++i) {
    if (clients_[i].family == family && std::memcmp(clients_[i].addr, addr, 16) == 0) {
      c = &clients_[i];
      break;
    }
  }
  if (c == nullptr) {
    if (used_ < kClients) {
      c = &clients_[used_++];
      c->count = c->error = 0;
    } else {
      // Space-Saving: the newcomer inherits the smallest count as its possible overestimate.
      c = &*std::min_element(
          clients_.begin(), clients_.end(),
          [](const ClientCount& a, const ClientCount& b) { return a.count < b.count; });
      c->error = c->count;
    }
    std::memcpy(c->addr, addr, 16);
    c->family = family;
    for (auto& nm : c->names) nm.count = nm.length = 0;
  }
  ++c->count;
  if (!alternative.empty() && alternative.size() != base.size()) {
    for (auto& nm : c->names) {
      if (nm.count > 0 && nm.length == alternative.size() &&
          dns::NameEqualsIgnoreCase(nm.name, alternative.data(), alternative.size())) {
        ++nm.count;
        return;
      }
    }
  }
  const size_t len = std::min(base.size(), sizeof(NameCount::name));
  NameCount* slot = nullptr;
  NameCount* smallest = &c->names[0];
  for (auto& nm : c->names) {
    if (nm.length == len && dns::NameEqualsIgnoreCase(nm.name, base.data(), len)) {
      slot = &nm;
      break;
    }
    if (nm.count < smallest->count) smallest = &nm;
  }
  if (slot == nullptr) {
    slot = smallest;
    const uint64_t inherited = slot->count;
    for (size_t i = 0; i < len; ++i) slot->name[i] = dns::LowerAscii(base[i]);
    slot->length = static_cast<uint8_t>(len);
    slot->count = inherited;
  }
  ++slot->count;
}

namespace {

// Presentation form of label bytes (no root byte), escaped for JSON: letters, digits, '-' and '_'
// as they are, everything else as \DDD (RFC 1035 §5.1), whose backslash JSON escapes once more.
std::string NameToJson(const uint8_t* p, size_t len) {
  std::string out = "\"";
  for (size_t off = 0; off < len;) {
    const uint8_t l = p[off++];
    if (out.size() > 1) out += '.';  // after the opening quote and a label
    for (size_t i = 0; i < l && off < len; ++i, ++off) {
      const uint8_t c = p[off];
      if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
          (c >= 'A' && c <= 'Z')) {
        out += static_cast<char>(c);
      } else {
        absl::StrAppend(&out, "\\\\", c / 100, (c / 10) % 10, c % 10);
      }
    }
  }
  return out + "\"";
}

struct Merged {
  uint64_t count = 0, error = 0;
  std::vector<std::pair<std::string, uint64_t>> names;  // JSON-quoted name, count; largest first
};

// Sums the workers' counts per client and sorts clients and names, largest first.
std::vector<std::pair<std::string, Merged>> Merge(
    const std::vector<std::vector<WastedQueryTracker::ClientCount>>& per_worker) {
  std::map<std::string, std::pair<Merged, std::map<std::string, uint64_t>>> clients;
  for (const auto& worker : per_worker) {
    for (const auto& c : worker) {
      auto& [m, names] = clients[ClientAddressString(c.family, c.addr)];
      m.count += c.count;
      m.error += c.error;
      for (const auto& nm : c.names) {
        if (nm.count > 0) names[NameToJson(nm.name, nm.length)] += nm.count;
      }
    }
  }
  std::vector<std::pair<std::string, Merged>> sorted;
  for (auto& [addr, mn] : clients) {
    Merged m = mn.first;
    m.names.assign(mn.second.begin(), mn.second.end());
    std::sort(m.names.begin(), m.names.end(),
              [](const auto& a, const auto& b) { return a.second > b.second; });
    sorted.emplace_back(addr, std::move(m));
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.second.count > b.second.count; });
  return sorted;
}

}  // namespace

std::string RenderRewritesJson(
    const std::vector<std::vector<WastedQueryTracker::ClientCount>>& per_worker) {
  const auto sorted = Merge(per_worker);
  std::string out = "\"rewrites\":[";
  for (size_t i = 0; i < sorted.size(); ++i) {
    const auto& [addr, m] = sorted[i];
    absl::StrAppend(&out, i ? "," : "", "{\"client\":\"", addr, "\",\"rewritten\":", m.count,
                    ",\"error\":", m.error, ",\"names\":[");
    for (size_t j = 0; j < m.names.size(); ++j) {
      absl::StrAppend(&out, j ? "," : "", "{\"name\":", m.names[j].first,
                      ",\"rewritten\":", m.names[j].second, "}");
    }
    out += "]}";
  }
  return out + "]";
}

std::string RenderWastedQueriesJson(
    const std::vector<std::vector<WastedQueryTracker::ClientCount>>& per_worker,
    const std::string& cluster_domain, std::string_view more) {
  const auto sorted = Merge(per_worker);
  std::string out =
      absl::StrCat("{\"version\":1,\"cluster_domain\":\"", cluster_domain, "\",\"clients\":[");
  for (size_t i = 0; i < sorted.size(); ++i) {
    const auto& [addr, m] = sorted[i];
    absl::StrAppend(&out, i ? "," : "", "{\"client\":\"", addr, "\",\"wasted\":", m.count,
                    ",\"error\":", m.error, ",\"names\":[");
    const auto& names = m.names;
    for (size_t j = 0; j < names.size(); ++j) {
      absl::StrAppend(&out, j ? "," : "", "{\"name\":", names[j].first,
                      ",\"wasted\":", names[j].second, "}");
    }
    out += "]}";
  }
  out += "]";
  if (!more.empty()) {
    out += ",";
    out.append(more);
  }
  return out + "}\n";
}

std::string RenderWastedQueriesTable(
    const std::vector<std::vector<WastedQueryTracker::ClientCount>>& per_worker,
    const std::string& cluster_domain) {
  const auto sorted = Merge(per_worker);
  std::string out = absl::StrCat("== live: search-path waste seen by nodedns (NXDOMAIN below ",
                                 cluster_domain, ")\n");
  if (sorted.empty()) return out + "  no wasted queries seen yet\n";
  absl::StrAppend(&out, "  client                                   wasted  from names\n");
  for (const auto& [addr, m] : sorted) {
    std::string names;
    for (const auto& [name, count] : m.names) {
      absl::StrAppend(&names, names.empty() ? "" : ", ", name.substr(1, name.size() - 2), " (",
                      count, ")");
    }
    std::string padded = addr;
    padded.resize(std::max<size_t>(padded.size(), 40), ' ');
    absl::StrAppend(&out, "  ", padded, " ", absl::StrCat(m.count), "  ", names, "\n");
  }
  absl::StrAppend(&out,
                  "  fix: fully qualify these names (trailing dot) or lower ndots "
                  "(dnsConfig.options ndots:2); see `nodedns audit --resolv-conf`\n");
  return out;
}

}  // namespace nodedns::proxy
