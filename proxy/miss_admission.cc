// Admission of misses per worker; see miss_admission.h.
#include "proxy/miss_admission.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"

namespace nodedns::proxy {

static_assert((MissAdmission::kSlots & (MissAdmission::kSlots - 1)) == 0);
static_assert(MissAdmission::kSlots < MissAdmission::kNoSlot);

size_t ClientMissLimit(size_t max_waiting, uint32_t share_percent) {
  if (max_waiting == 0 || share_percent >= 100) return 0;
  return std::max<size_t>(1, max_waiting * share_percent / 100);
}

bool MissAdmission::KeyOf(const sockaddr_storage& from, uint8_t (&key)[16], uint8_t& family) {
  std::memset(key, 0, sizeof key);
  if (from.ss_family == AF_INET) {
    std::memcpy(key, &reinterpret_cast<const sockaddr_in&>(from).sin_addr, 4);
    family = 4;
    return true;
  }
  if (from.ss_family != AF_INET6) return false;
  const in6_addr& a = reinterpret_cast<const sockaddr_in6&>(from).sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(&a)) {
    std::memcpy(key, a.s6_addr + 12, 4);
    family = 4;
  } else {
    std::memcpy(key, a.s6_addr, 8);  // the /64
    family = 6;
  }
  return true;
}

size_t MissAdmission::Hash(const uint8_t (&key)[16], uint8_t family) {
  uint64_t a = 0, b = 0;
  std::memcpy(&a, key, 8);
  std::memcpy(&b, key + 8, 8);
  uint64_t h = (a * 0x9e3779b97f4a7c15ULL) ^ (b * 0xc2b2ae3d27d4eb4fULL) ^ family;
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 29;
  return static_cast<size_t>(h) & (kSlots - 1);
}

MissAdmission::Verdict MissAdmission::Admit(const sockaddr_storage& from, size_t max_waiting,
                                            uint32_t share_percent, uint16_t& slot) {
  slot = kNoSlot;
  uint8_t key[16];
  uint8_t family = 0;
  size_t found = kSlots, free = kSlots;
  if (KeyOf(from, key, family)) {
    const size_t home = Hash(key, family);
    // The whole window is searched: a slot freed before the client's own is no end of the chain.
    for (size_t i = 0; i < kProbe; ++i) {
      const size_t at = (home + i) & (kSlots - 1);
      const Slot& s = slots_[at];
      if (s.waiting == 0) {
        if (free == kSlots) free = at;
      } else if (s.family == family && std::memcmp(s.key, key, sizeof key) == 0) {
        found = at;
        break;
      }
    }
  }
  const size_t client_limit = ClientMissLimit(max_waiting, share_percent);
  if (client_limit != 0 && found != kSlots && slots_[found].waiting >= client_limit) {
    return Verdict::kClientShare;
  }
  if (max_waiting != 0 && waiting_ >= max_waiting) return Verdict::kWorkerFull;
  if (found == kSlots && free != kSlots) {
    found = free;
    std::memcpy(slots_[found].key, key, sizeof key);
    slots_[found].family = family;
  }
  if (found != kSlots) {
    ++slots_[found].waiting;
    slot = static_cast<uint16_t>(found);
  }
  ++waiting_;
  return Verdict::kAdmit;
}

void MissAdmission::Release(uint16_t slot) {
  if (waiting_ > 0) --waiting_;
  if (slot < kSlots && slots_[slot].waiting > 0) --slots_[slot].waiting;
}

uint32_t MissAdmission::WaitingFrom(const sockaddr_storage& from) const {
  uint8_t key[16];
  uint8_t family = 0;
  if (!KeyOf(from, key, family)) return 0;
  const size_t home = Hash(key, family);
  for (size_t i = 0; i < kProbe; ++i) {
    const Slot& s = slots_[(home + i) & (kSlots - 1)];
    if (s.waiting != 0 && s.family == family && std::memcmp(s.key, key, sizeof key) == 0) {
      return s.waiting;
    }
  }
  return 0;
}

void MissAdmission::NoteShed(const sockaddr_storage& from, Verdict why) {
  uint8_t key[16];
  uint8_t family = 0;
  if (!KeyOf(from, key, family)) return;
  const uint64_t share = why == Verdict::kClientShare ? 1 : 0;
  for (size_t i = 0; i < top_used_; ++i) {
    ShedClient& c = top_[i];
    if (c.family == family && std::memcmp(c.key, key, sizeof key) == 0) {
      ++c.count;
      c.share += share;
      return;
    }
  }
  ShedClient* c = nullptr;
  uint64_t base = 0;
  if (top_used_ < kTopShed) {
    c = &top_[top_used_++];
  } else {
    // Space-Saving (Metwally et al.): the newcomer takes the smallest count over, as its error.
    c = &*std::min_element(top_.begin(), top_.end(),
                           [](const auto& x, const auto& y) { return x.count < y.count; });
    base = c->count;
  }
  std::memcpy(c->key, key, sizeof key);
  c->family = family;
  c->count = base + 1;
  c->share = share;
  c->error = base;
}

namespace {

std::string ClientText(const MissAdmission::ShedClient& c) {
  char buf[INET6_ADDRSTRLEN];
  if (c.family == 4) {
    inet_ntop(AF_INET, c.key, buf, sizeof buf);
    return buf;
  }
  inet_ntop(AF_INET6, c.key, buf, sizeof buf);
  return absl::StrCat(buf, "/64");
}

struct Merged {
  uint64_t count = 0, share = 0, error = 0;
};

std::vector<std::pair<std::string, Merged>> Merge(
    const std::vector<std::vector<MissAdmission::ShedClient>>& per_worker) {
  std::map<std::string, Merged> by_client;
  for (const auto& worker : per_worker) {
    for (const auto& c : worker) {
      Merged& m = by_client[ClientText(c)];
      m.count += c.count;
      m.share += c.share;
      m.error += c.error;
    }
  }
  std::vector<std::pair<std::string, Merged>> sorted(by_client.begin(), by_client.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second.count > b.second.count; });
  return sorted;
}

}  // namespace

std::string RenderShedJson(const std::vector<std::vector<MissAdmission::ShedClient>>& per_worker) {
  std::string out = "\"shed\":[";
  const auto sorted = Merge(per_worker);
  for (size_t i = 0; i < sorted.size(); ++i) {
    const auto& [client, m] = sorted[i];
    absl::StrAppend(&out, i ? "," : "", "{\"client\":\"", client, "\",\"misses\":", m.count,
                    ",\"client_share\":", m.share, ",\"error\":", m.error, "}");
  }
  return out + "]";
}

std::string RenderShedTable(const std::vector<std::vector<MissAdmission::ShedClient>>& per_worker) {
  std::string out =
      "== live: misses answered SERVFAIL at once (--max-waiting-queries, --client-miss-share)\n";
  const auto sorted = Merge(per_worker);
  if (sorted.empty()) return out + "  no misses shed yet\n";
  absl::StrAppend(&out, "  client                                   shed  for client share\n");
  for (const auto& [client, m] : sorted) {
    std::string padded = client;
    padded.resize(std::max<size_t>(padded.size(), 40), ' ');
    absl::StrAppend(&out, "  ", padded, " ", m.count, "  ", m.share, "\n");
  }
  return out;
}

}  // namespace nodedns::proxy
