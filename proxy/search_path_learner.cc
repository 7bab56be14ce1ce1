// Search-path rewriting: learning client namespaces, and the state the workers share. See
// search_path_learner.h and docs/search-rewrite.md.
#include "proxy/search_path_learner.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cache/cache_key.h"

namespace nodedns::proxy {

namespace internal {

absl::Status ParseCidr(absl::string_view text, uint8_t& family, uint8_t (&addr)[16], int& bits) {
  absl::string_view host = text;
  int max_bits = 0;
  std::optional<int> prefix;
  if (const size_t slash = text.find('/'); slash != absl::string_view::npos) {
    host = text.substr(0, slash);
    int p = 0;
    if (!absl::SimpleAtoi(text.substr(slash + 1), &p) || p < 0) {
      return absl::InvalidArgumentError(absl::StrCat("bad prefix length in '", text, "'"));
    }
    prefix = p;
  }
  std::memset(addr, 0, 16);
  const std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), addr) == 1) {
    family = 4;
    max_bits = 32;
  } else if (inet_pton(AF_INET6, h.c_str(), addr) == 1) {
    family = 6;
    max_bits = 128;
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(addr, kMapped, 12) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "': write IPv4-mapped prefixes as IPv4 (clients are folded)"));
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not an address or CIDR"));
  }
  bits = prefix.value_or(max_bits);
  if (bits > max_bits) {
    return absl::InvalidArgumentError(absl::StrCat("prefix length too long in '", text, "'"));
  }
  // Host bits must be zero: "10.1.2.3/8" is more likely a typo than an intent.
  for (int i = bits; i < max_bits; ++i) {
    if (addr[i / 8] & (0x80 >> (i % 8))) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "' has host bits set"));
    }
  }
  return absl::OkStatus();
}

}  // namespace internal

// ---------------------------------------------------------------------------------------------
// SearchPathLearner

SearchPathLearner::SearchPathLearner(std::vector<uint8_t> zone_wire, Options options)
    : zone_wire_(std::move(zone_wire)), options_(options) {
  const size_t max_clients = std::max<size_t>(options_.max_clients, 1);
  slots_.resize(max_clients);
  // Twice the bound, and at least 32: then erase+insert churn is always absorbed by absl's
  // in-place rehash (size*32 <= capacity*25) and the index never reallocates after this.
  index_.reserve(std::max<size_t>(2 * max_clients, 32));
  size_t pending = 1;
  while (pending < std::max<size_t>(options_.pending_slots, 1)) pending <<= 1;
  pending_.resize(pending);
}

SearchPathLearner::ClientKey SearchPathLearner::KeyOf(const SocketAddress& a) {
  ClientKey k;
  if (a.family() == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&a.storage);
    k.family = 4;
    std::memcpy(k.addr, &sin->sin_addr, 4);
  } else if (a.family() == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    const uint8_t* b = sin6->sin6_addr.s6_addr;
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(b, kMapped, 12) == 0) {  // a v4 client on a dual-stack socket
      k.family = 4;
      std::memcpy(k.addr, b + 12, 4);
    } else {
      k.family = 6;
      std::memcpy(k.addr, b, 16);
    }
  }
  return k;
}

uint64_t SearchPathLearner::PairTag(const ClientKey& k, std::span<const uint8_t> stem) {
  uint8_t buf[17 + dns::kMaxNameWire];
  buf[0] = k.family;
  std::memcpy(buf + 1, k.addr, 16);
  for (size_t i = 0; i < stem.size(); ++i) buf[17 + i] = dns::LowerAscii(stem[i]);
  const uint64_t h = cache::HashKeyBytes({buf, 17 + stem.size()});
  return h == 0 ? 1 : h;  // 0 marks an empty pending slot
}

absl::Status SearchPathLearner::AddPin(absl::string_view cidr, absl::string_view ns) {
  Pin pin;
  if (absl::Status s = internal::ParseCidr(cidr, pin.prefix.family, pin.prefix.addr, pin.bits);
      !s.ok()) {
    return s;
  }
  if (ns != "-") {
    const std::string lower = absl::AsciiStrToLower(ns);
    if (!IsNamespaceName(lower)) {
      return absl::InvalidArgumentError(absl::StrCat("'", ns, "' is not a namespace name"));
    }
    pin.ns.len = static_cast<uint8_t>(lower.size());
    std::memcpy(pin.ns.text, lower.data(), lower.size());
  }
  pins_.push_back(pin);
  return absl::OkStatus();
}

absl::Status SearchPathLearner::AddPinSpec(absl::string_view spec) {
  const size_t eq = spec.find('=');
  if (eq == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--search-path '", spec, "': want CIDR=ns"));
  }
  return AddPin(absl::StripAsciiWhitespace(spec.substr(0, eq)),
                absl::StripAsciiWhitespace(spec.substr(eq + 1)));
}

absl::StatusOr<SearchPathLearner::DiscoveredTable> SearchPathLearner::BuildDiscovered(
    std::span<const DiscoveredClient> clients) {
  DiscoveredTable table;
  table.map_.reserve(clients.size());
  for (const DiscoveredClient& c : clients) {
    ClientKey key;
    int bits = 0;
    if (absl::Status s = internal::ParseCidr(c.address, key.family, key.addr, bits); !s.ok()) {
      return s;
    }
    if (bits != (key.family == 4 ? 32 : 128)) {
      return absl::InvalidArgumentError(absl::StrCat("'", c.address, "' is not an address"));
    }
    NsName ns;
    if (!c.ns.empty()) {
      const std::string lower = absl::AsciiStrToLower(c.ns);
      if (!IsNamespaceName(lower)) {
        return absl::InvalidArgumentError(absl::StrCat("'", c.ns, "' is not a namespace name"));
      }
      ns.len = static_cast<uint8_t>(lower.size());
      std::memcpy(ns.text, lower.data(), lower.size());
    }
    // Two pods cannot share an address; if the scan saw one twice (a pod replaced mid-scan), no
    // guess: never rewrite for it.
    auto [it, inserted] = table.map_.emplace(key, ns);
    if (!inserted && it->second.view() != ns.view()) it->second = NsName{};
  }
  for (const auto& [key, ns] : table.map_) table.with_namespace_ += ns.len != 0;
  return table;
}

void SearchPathLearner::SetDiscovered(DiscoveredTable table) {
  auto next = std::make_unique<DiscoveredTable>(std::move(table));
  discovered_.swap(next);
}

size_t SearchPathLearner::DiscoveredClients() const {
  return discovered_ ? discovered_->with_namespace_ : 0;
}

const SearchPathLearner::NsName* SearchPathLearner::FindDiscovered(const ClientKey& k) const {
  if (!discovered_) return nullptr;
  auto it = discovered_->map_.find(k);
  return it == discovered_->map_.end() ? nullptr : &it->second;
}

const SearchPathLearner::Pin* SearchPathLearner::FindPin(const ClientKey& k) const {
  const Pin* best = nullptr;
  for (const Pin& p : pins_) {
    if (p.prefix.family != k.family) continue;
    const int full = p.bits / 8, rest = p.bits % 8;
    if (std::memcmp(p.prefix.addr, k.addr, full) != 0) continue;
    if (rest != 0) {
      const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
      if ((p.prefix.addr[full] & mask) != (k.addr[full] & mask)) continue;
    }
    if (best == nullptr || p.bits > best->bits) best = &p;
  }
  return best;
}

bool SearchPathLearner::IsRelevant(std::span<const uint8_t> qname_wire, uint16_t qtype,
                                   std::span<const uint8_t> zone_wire) {
  if (!internal::IsAddressType(qtype)) return false;
  uint8_t svc[dns::kMaxNameWire];
  const size_t svc_len = internal::SvcZone(zone_wire, svc);
  return svc_len != 0 && internal::StemBefore(qname_wire, {svc, svc_len}).has_value();
}

void SearchPathLearner::Observe(const SocketAddress& client, std::span<const uint8_t> qname_wire,
                                uint16_t qtype, uint8_t rcode, uint64_t now_ms) {
  if (!internal::IsAddressType(qtype)) return;
  uint8_t svc[dns::kMaxNameWire];
  const size_t svc_len = internal::SvcZone(zone_wire_, svc);
  if (svc_len == 0) return;
  // Everything before svc.<zone>: N for the second search step, N.X for the first.
  const std::optional<size_t> stem = internal::StemBefore(qname_wire, {svc, svc_len});
  if (!stem) return;
  const ClientKey key = KeyOf(client);
  if (key.family == 0 || FindPin(key) != nullptr) return;  // pins win; nothing to learn

  // Reading 1: this is the query for N.svc.<zone> that follows an NXDOMAIN for N.X.svc.<zone>.
  const std::span<const uint8_t> whole_stem = qname_wire.first(*stem);
  const uint64_t tag2 = PairTag(key, whole_stem);
  Pending& p2 = pending_[tag2 & (pending_.size() - 1)];
  if (p2.tag == tag2 && now_ms >= p2.at_ms && now_ms - p2.at_ms <= options_.pair_window_ms) {
    const NsName ns = p2.ns;
    p2.tag = 0;  // one pair per lookup: the AAAA twin of this query finds nothing
    OnPair(key, ns, now_ms);
  }

  // Reading 2: this is an NXDOMAIN for the first search step N.X.svc.<zone>.
  if (rcode != dns::rcode::kNxDomain) return;
  // The stem has no root byte (LabelOffsets wants one), and StemBefore validated its labels.
  size_t off = 0, last = 0;
  int labels = 0;
  while (off < *stem) {
    last = off;
    off += size_t{qname_wire[off]} + 1;
    ++labels;
  }
  if (labels < 2) return;  // N would be empty
  const uint8_t x_len = qname_wire[last];
  NsName ns;
  ns.len = x_len;
  for (size_t i = 0; i < x_len; ++i) {
    ns.text[i] = static_cast<char>(dns::LowerAscii(qname_wire[last + 1 + i]));
  }
  if (!IsNamespaceName(ns.view())) return;
  const uint64_t tag1 = PairTag(key, qname_wire.first(last));
  Pending& p1 = pending_[tag1 & (pending_.size() - 1)];
  p1.tag = tag1;
  p1.at_ms = now_ms;
  p1.ns = ns;
}

SearchPathLearner::Slot* SearchPathLearner::Find(const ClientKey& k) {
  auto it = index_.find(k);
  return it == index_.end() ? nullptr : &slots_[it->second];
}

SearchPathLearner::Slot& SearchPathLearner::Claim(const ClientKey& k, uint64_t now_ms) {
  const auto dead = [&](const Slot& s) -> bool {
    switch (s.state) {
      case State::kFree:
        return true;
      case State::kLearned:
      case State::kQuarantined:
        return s.expires_ms <= now_ms;
      case State::kUnlearned:
        return now_ms - s.contradicted_ms > options_.ttl_ms;
    }
    return true;
  };
  // CLOCK: a slot survives one sweep if it was used since the hand last passed. Terminates within
  // two turns of the hand, since the first turn clears every reference bit.
  for (;;) {
    Slot& s = slots_[hand_];
    hand_ = (hand_ + 1) % slots_.size();
    if (s.state != State::kFree && !dead(s) && s.referenced) {
      s.referenced = false;
      continue;
    }
    if (s.state != State::kFree) {
      if (!dead(s)) ++counters_.evicted;
      index_.erase(s.key);
    }
    s = Slot{};
    s.key = k;
    index_.emplace(k, static_cast<uint32_t>(&s - slots_.data()));
    return s;
  }
}

void SearchPathLearner::OnPair(const ClientKey& k, const NsName& ns, uint64_t now_ms) {
  Slot* s = Find(k);
  // A new entry starts unreferenced (CLOCK): it earns its second chance by being used.
  if (s == nullptr) s = &Claim(k, now_ms);
  // Discovery read this address's resolv.conf and named another namespace: the address is shared
  // (or the scan is stale). Neither is trusted until the quarantine ends.
  if (const NsName* d = FindDiscovered(k); d != nullptr && d->len != 0 && d->view() != ns.view()) {
    ++counters_.discovery_conflicts;
    if (s->state != State::kQuarantined || s->expires_ms <= now_ms) ++counters_.quarantined;
    s->state = State::kQuarantined;
    s->expires_ms = now_ms + options_.ttl_ms;
    s->contradicted_ms = now_ms;
    return;
  }
  const auto learn = [&] {
    s->state = State::kLearned;
    s->ns = ns;
    s->expires_ms = now_ms + options_.ttl_ms;
    ++counters_.clients_learned;
  };
  switch (s->state) {
    case State::kFree:
      learn();
      return;
    case State::kUnlearned:
      // Whatever namespace this pair names: the contradiction already dropped the old one.
      learn();
      return;
    case State::kQuarantined:
      if (now_ms < s->expires_ms) return;
      s->contradicted_ms = 0;
      learn();
      return;
    case State::kLearned:
      if (s->expires_ms <= now_ms) {  // expired: a fresh start
        s->contradicted_ms = 0;
        learn();
        return;
      }
      if (s->ns.view() == ns.view()) {
        s->referenced = true;
        s->expires_ms = now_ms + options_.ttl_ms;
        ++counters_.confirmed;
        return;
      }
      // A search step from another namespace's first element: this address is not (or no longer)
      // the client we learned. A pod IP reused by a pod in another namespace relearns on its next
      // pair; an address that keeps flipping is shared (hostNetwork pods, SNAT) and is quarantined.
      ++counters_.unlearned;
      if (s->contradicted_ms != 0 && now_ms - s->contradicted_ms <= options_.ttl_ms) {
        s->state = State::kQuarantined;
        s->expires_ms = now_ms + options_.ttl_ms;
        ++counters_.quarantined;
      } else {
        s->state = State::kUnlearned;
      }
      s->contradicted_ms = now_ms;
      return;
  }
}

std::optional<std::string_view> SearchPathLearner::NamespaceView(const SocketAddress& client,
                                                                 uint64_t now_ms) {
  const ClientKey key = KeyOf(client);
  if (key.family == 0) return std::nullopt;
  if (const Pin* pin = FindPin(key)) {
    if (pin->ns.len == 0) return std::nullopt;  // "-": never rewrite for these clients
    return pin->ns.view();
  }
  Slot* s = Find(key);
  if (const NsName* d = FindDiscovered(key)) {
    if (d->len == 0) return std::nullopt;  // not the cluster default: never on a guess
    if (s != nullptr && s->expires_ms > now_ms &&
        (s->state == State::kQuarantined ||
         (s->state == State::kLearned && s->ns.view() != d->view()))) {
      return std::nullopt;
    }
    return d->view();
  }
  if (s == nullptr || s->state != State::kLearned || s->expires_ms <= now_ms) return std::nullopt;
  s->referenced = true;
  return s->ns.view();
}

size_t SearchPathLearner::LearnedClients(uint64_t now_ms) const {
  size_t n = 0;
  for (const Slot& s : slots_) n += s.state == State::kLearned && s.expires_ms > now_ms;
  return n;
}

// ---------------------------------------------------------------------------------------------
// SharedSearchRewrite

SharedSearchRewrite::SharedSearchRewrite(SearchRewriteSettings settings,
                                         SearchPathLearner::Options options)
    : settings_(std::move(settings)),
      pair_window_ms_(options.pair_window_ms),
      learner_(settings_.zone_wire, options) {
  svc_zone_len_ = internal::SvcZone(settings_.zone_wire, svc_zone_);
}

absl::StatusOr<std::unique_ptr<SharedSearchRewrite>> SharedSearchRewrite::Create(
    absl::string_view cluster_domain, std::span<const std::string> node_search,
    std::span<const std::string> pins, SearchPathLearner::Options options) {
  auto settings = SearchRewriteSettings::Make(cluster_domain, node_search);
  if (!settings.ok()) return settings.status();
  std::unique_ptr<SharedSearchRewrite> s(new SharedSearchRewrite(*std::move(settings), options));
  if (s->svc_zone_len_ == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster domain '", cluster_domain, "' is too long to prefix with svc."));
  }
  std::lock_guard lock(s->mu_);
  for (const std::string& pin : pins) {
    if (auto st = s->learner_.AddPinSpec(pin); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--search-path '", pin, "': ", st.message()));
    }
  }
  s->any_namespace_.store(!pins.empty(), std::memory_order_relaxed);
  return s;
}

bool SharedSearchRewrite::Relevant(const uint8_t* qname, size_t qname_length,
                                   uint16_t qtype) const {
  if (qtype != dns::type::kA && qtype != dns::type::kAAAA) return false;
  // N.svc.<zone>: longer than svc.<zone> and ending in it, on a label boundary. Word-at-a-time
  // compare of the tail, then a walk over N's labels: this runs for every A/AAAA query (callgrind
  // put the byte loop plus IsRelevant() at ~280 instructions per service-name hit).
  if (qname_length <= svc_zone_len_) return false;
  const size_t stem = qname_length - svc_zone_len_;
  if (!dns::NameEqualsIgnoreCase(qname + stem, svc_zone_, svc_zone_len_)) return false;
  size_t off = 0;
  while (off < stem) off += size_t{qname[off]} + 1;  // label lengths: the name was parsed
  return off == stem;
}

bool SharedSearchRewrite::ExpansionNamespace(const SocketAddress& client,
                                             std::span<const uint8_t> qname, uint64_t now_ms,
                                             NamespaceName& ns) {
  std::lock_guard lock(mu_);
  const std::optional<std::string_view> view = learner_.NamespaceView(client, now_ms);
  if (!view || view->empty() || view->size() > sizeof(ns.text)) return false;
  if (!MaybeExpansion(qname, *view, settings_.zone_wire)) return false;
  ns.len = static_cast<uint8_t>(view->size());
  std::memcpy(ns.text, view->data(), view->size());
  return true;
}

void SharedSearchRewrite::Observe(const SocketAddress& client, std::span<const uint8_t> qname,
                                  uint16_t qtype, uint8_t rcode, uint64_t now_ms) {
  std::lock_guard lock(mu_);
  if (rcode == dns::rcode::kNxDomain) {
    evidence_until_ms_.store(std::max(evidence_until_ms_.load(std::memory_order_relaxed),
                                      now_ms + pair_window_ms_ + 100),
                             std::memory_order_relaxed);
  }
  learner_.Observe(client, qname, qtype, rcode, now_ms);
  if (learner_.counters().clients_learned > 0)
    any_namespace_.store(true, std::memory_order_relaxed);
}

absl::Status SharedSearchRewrite::SetDiscovered(
    std::span<const SearchPathLearner::DiscoveredClient> clients) {
  absl::StatusOr<SearchPathLearner::DiscoveredTable> table =
      SearchPathLearner::BuildDiscovered(clients);
  if (!table.ok()) return table.status();
  const bool any = table->size() > 0;
  std::lock_guard lock(mu_);
  learner_.SetDiscovered(*std::move(table));
  if (any && learner_.DiscoveredClients() > 0)
    any_namespace_.store(true, std::memory_order_relaxed);
  return absl::OkStatus();
}

SharedSearchRewrite::Stats SharedSearchRewrite::GetStats(uint64_t now_ms) {
  std::lock_guard lock(mu_);
  return {learner_.counters(), learner_.LearnedClients(now_ms), learner_.DiscoveredClients()};
}

}  // namespace nodedns::proxy
