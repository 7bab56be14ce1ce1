// Sampled queries per client; see client_queries.h.
#include "proxy/client_queries.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"

namespace nodedns::proxy {

uint8_t CopyClientAddress(const sockaddr_storage& client, uint8_t addr[16]) {
  if (client.ss_family == AF_INET) {
    std::memset(addr, 0, 16);
    std::memcpy(addr, &reinterpret_cast<const sockaddr_in*>(&client)->sin_addr, 4);
    return AF_INET;
  }
  if (client.ss_family == AF_INET6) {
    std::memcpy(addr, &reinterpret_cast<const sockaddr_in6*>(&client)->sin6_addr, 16);
    return AF_INET6;
  }
  return 0;
}

std::string ClientAddressString(uint8_t family, const uint8_t addr[16]) {
  char buf[INET6_ADDRSTRLEN] = "?";
  inet_ntop(family, addr, buf, sizeof buf);
  return buf;
}

ClientQuerySampler::ClientQuerySampler(uint32_t every) : countdown_(0), every_(every) {
  countdown_ = NextGap();
}

uint64_t ClientQuerySampler::NextGap() {
  if (every_ == 0) return std::numeric_limits<uint64_t>::max();
  if (every_ == 1) return 1;
  // xorshift64: statistical quality is beside the point, breaking any period is not.
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  return 1 + rng_ % (2 * uint64_t{every_} - 1);
}

void ClientQuerySampler::Sample(const sockaddr_storage& client) {
  countdown_ = NextGap();
  if (every_ == 0) return;
  uint8_t addr[16];
  const uint8_t family = CopyClientAddress(client, addr);
  if (family == 0) return;
  uint32_t key = family;
  for (size_t i = 0; i < 16; i += 4) {
    uint32_t word;
    std::memcpy(&word, addr + i, 4);
    key ^= word;
  }
  ClientCount* c = nullptr;
  for (size_t i = 0; i < used_; ++i) {
    if (keys_[i] == key && clients_[i].family == family &&
        std::memcmp(clients_[i].addr, addr, 16) == 0) {
      c = &clients_[i];
      break;
    }
  }
  if (c == nullptr) {
    size_t slot = used_;
    if (used_ < kClients) {
      ++used_;
      clients_[slot].queries = clients_[slot].error = 0;
    } else {
      // Space-Saving: the newcomer inherits the smallest count as its possible overestimate.
      slot = std::min_element(
                 clients_.begin(), clients_.end(),
                 [](const ClientCount& a, const ClientCount& b) { return a.queries < b.queries; }) -
             clients_.begin();
      clients_[slot].error = clients_[slot].queries;
    }
    c = &clients_[slot];
    keys_[slot] = key;
    std::memcpy(c->addr, addr, 16);
    c->family = family;
  }
  c->queries += every_;
}

std::string RenderClientQueriesJson(
    const std::vector<std::vector<ClientQuerySampler::ClientCount>>& per_worker, uint32_t every) {
  std::map<std::string, std::pair<uint64_t, uint64_t>> merged;  // client → queries, error
  for (const auto& worker : per_worker) {
    for (const auto& c : worker) {
      auto& [queries, error] = merged[ClientAddressString(c.family, c.addr)];
      queries += c.queries;
      error += c.error;
    }
  }
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> sorted(merged.begin(),
                                                                            merged.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  std::string out = absl::StrCat("\"query_sample\":", every, ",\"queries\":[");
  for (size_t i = 0; i < sorted.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", "{\"client\":\"", sorted[i].first,
                    "\",\"queries\":", sorted[i].second.first,
                    ",\"error\":", sorted[i].second.second, "}");
  }
  return out + "]";
}

}  // namespace nodedns::proxy
