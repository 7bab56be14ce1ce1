// Server-side search-path rewriting, the learning half: which namespace a client address is in
// (SearchPathLearner, learned from the client's own traffic or pinned), and the settings and
// learner that every worker shares (SharedSearchRewrite). The rewrite itself (planning, deciding,
// synthesizing) is in search_rewrite.h; docs/search-rewrite.md has the evidence the learner
// requires and why it is shared.
#ifndef NODEDNS_PROXY_SEARCH_PATH_LEARNER_H_
#define NODEDNS_PROXY_SEARCH_PATH_LEARNER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dns/wire.h"
#include "proxy/config.h"
#include "proxy/search_rewrite.h"

namespace nodedns::proxy {

// Learns, per client address, the namespace whose `<ns>.svc.<zone>` heads the client's search
// path, from the client's own traffic; static pins (CIDR → namespace) win over learning.
//
// Evidence (the only thing that teaches): a reply with NXDOMAIN to client C for A/AAAA
// `N.<X>.svc.<zone>` (N at least one label, X one label that is a valid namespace name), followed
// within `pair_window_ms` by a query from the same address (any port: glibc opens a new socket per
// search step) for A/AAAA `N.svc.<zone>`, same N. That pair is exactly a search-list step from
// `X.svc.<zone>` to `svc.<zone>`; a single query, however it is shaped, teaches nothing and
// unteaches nothing. A pair naming another namespace than the learned one unlearns; a client
// contradicted twice within `ttl_ms` (a shared address: the node IP of hostNetwork pods) is
// quarantined for `ttl_ms`. Learned entries live `ttl_ms`, refreshed by confirming pairs.
//
// Thread model: not thread-safe. Each worker owns one and calls it only from its own thread (or
// the integrator wraps a shared one in a mutex; IsRelevant() is a lock-free pre-filter).
// Observe() and NamespaceView() never allocate: both tables are sized at construction.
class SearchPathLearner {
 public:
  struct Options {
    size_t max_clients = 4096;      // a node runs a few hundred pods at most; CLOCK eviction beyond
    uint64_t ttl_ms = 10 * 60'000;  // lifetime of a learned entry (pod IPs are reused)
    uint64_t pair_window_ms = 3000;  // NXDOMAIN for N.X.svc.Z → query for N.svc.Z
    size_t pending_slots = 1024;     // recent NXDOMAIN evidence, direct-mapped; rounded up to 2^k
  };
  struct Counters {
    uint64_t clients_learned = 0;  // transitions to "learned" (a relearn counts again)
    uint64_t unlearned = 0;        // learned entries dropped by contradicting evidence
    uint64_t confirmed = 0;        // confirming pairs (refresh the entry's lifetime)
    uint64_t quarantined = 0;      // addresses that flipped namespaces twice within ttl_ms
    uint64_t evicted = 0;          // live entries pushed out by the bound
    // learning pairs that named another namespace than discovery gave for the address (which is
    // then quarantined)
    uint64_t discovery_conflicts = 0;
  };

  // What pod discovery (`serve --discover-pods`, proxy/pod_discovery.h) knows of an address: the
  // namespace of a pod whose resolv.conf is the cluster default, or "" for a pod whose resolv.conf
  // is not (never rewritten on a guess, whatever its traffic teaches).
  struct DiscoveredClient {
    std::string address;  // IPv4 or IPv6, no prefix
    std::string ns;
  };
  class DiscoveredTable;  // built off the lock by BuildDiscovered, swapped in by SetDiscovered
  static absl::StatusOr<DiscoveredTable> BuildDiscovered(std::span<const DiscoveredClient> clients);
  // Replaces what discovery said before. O(1) apart from freeing the previous table.
  void SetDiscovered(DiscoveredTable table);
  // Addresses discovery gave a namespace for (not counting "never rewrite" ones).
  size_t DiscoveredClients() const;

  SearchPathLearner(std::vector<uint8_t> zone_wire, Options options);
  SearchPathLearner(const SearchPathLearner&) = delete;
  SearchPathLearner& operator=(const SearchPathLearner&) = delete;

  // Adds a pin: "10.0.0.0/8", "fd00::/64", or a bare address (a /32 or /128). `ns` is a namespace
  // name, or "-" for "never rewrite for these clients". The longest matching prefix wins.
  absl::Status AddPin(absl::string_view cidr, absl::string_view ns);
  // "CIDR=ns", the form of --search-path.
  absl::Status AddPinSpec(absl::string_view spec);

  // Does a reply for this question possibly matter to Observe()? (A or AAAA under svc.<zone>.)
  // Pure and cheap: lets a caller skip Observe(), or skip taking a lock around a shared learner.
  static bool IsRelevant(std::span<const uint8_t> qname_wire, uint16_t qtype,
                         std::span<const uint8_t> zone_wire);

  // Call for every reply nodedns sends: the client, the question (uncompressed wire, any case),
  // and the rcode of the reply as sent. `now_ms` is a monotonic clock.
  void Observe(const SocketAddress& client, std::span<const uint8_t> qname_wire, uint16_t qtype,
               uint8_t rcode, uint64_t now_ms);

  // The client's namespace: a pin if one matches; else what discovery says, unless the address is
  // quarantined or has learned another namespace (the two disagree: no rewrite until they agree);
  // else a live learned entry. The view points into the learner and is valid until its next
  // non-const call. No allocation.
  std::optional<std::string_view> NamespaceView(const SocketAddress& client, uint64_t now_ms);
  std::optional<std::string> NamespaceOf(const SocketAddress& client, uint64_t now_ms) {
    auto v = NamespaceView(client, now_ms);
    return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
  }

  const Counters& counters() const { return counters_; }
  // Live learned (not expired, not quarantined) entries. Walks the table: call it from the owning
  // thread now and then (e.g. on the purge timer) and publish the number as a gauge.
  size_t LearnedClients(uint64_t now_ms) const;
  // The index's bucket count: constant after construction (a test checks no rehash happens).
  size_t IndexCapacity() const { return index_.capacity(); }

 private:
  // Address only (no port), IPv4-mapped IPv6 folded to IPv4 so that pins and dual-stack sockets
  // agree. family 0 means "unusable address".
  struct ClientKey {
    uint8_t family = 0;  // 4 or 6
    uint8_t addr[16] = {};
    friend bool operator==(const ClientKey& a, const ClientKey& b) {
      return a.family == b.family && std::memcmp(a.addr, b.addr, 16) == 0;
    }
    template <typename H>
    friend H AbslHashValue(H h, const ClientKey& k) {
      return H::combine(H::combine_contiguous(std::move(h), k.addr, 16), k.family);
    }
  };
  struct NsName {
    uint8_t len = 0;
    char text[dns::kMaxLabel] = {};
    std::string_view view() const { return {text, len}; }
  };
  enum class State : uint8_t { kFree, kLearned, kUnlearned, kQuarantined };
  struct Slot {
    ClientKey key;
    State state = State::kFree;
    bool referenced = false;       // CLOCK bit
    NsName ns;                     // valid in kLearned
    uint64_t expires_ms = 0;       // kLearned: end of life; kQuarantined: end of quarantine
    uint64_t contradicted_ms = 0;  // last contradiction, 0 if none
  };
  struct Pending {
    uint64_t tag = 0;  // hash of (client, N); 0 = empty
    uint64_t at_ms = 0;
    NsName ns;
  };
  struct Pin {
    ClientKey prefix;
    int bits = 0;
    NsName ns;  // len 0: excluded
  };

  static ClientKey KeyOf(const SocketAddress& a);
  static uint64_t PairTag(const ClientKey& k, std::span<const uint8_t> stem);
  const Pin* FindPin(const ClientKey& k) const;
  Slot* Find(const ClientKey& k);
  Slot& Claim(const ClientKey& k, uint64_t now_ms);
  void OnPair(const ClientKey& k, const NsName& ns, uint64_t now_ms);

  const NsName* FindDiscovered(const ClientKey& k) const;

  const std::vector<uint8_t> zone_wire_;
  const Options options_;
  std::vector<Pin> pins_;
  std::unique_ptr<DiscoveredTable> discovered_;
  std::vector<Slot> slots_;
  absl::flat_hash_map<ClientKey, uint32_t> index_;
  size_t hand_ = 0;  // CLOCK hand
  std::vector<Pending> pending_;
  Counters counters_;
};

class SearchPathLearner::DiscoveredTable {
 public:
  DiscoveredTable() = default;
  size_t size() const { return map_.size(); }

 private:
  friend class SearchPathLearner;
  absl::flat_hash_map<ClientKey, NsName> map_;  // ns.len 0: never rewrite
  size_t with_namespace_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The process-wide state the workers share.

// A namespace name copied out of the learner (no allocation), for a query that may be rewritten.
struct NamespaceName {
  uint8_t len = 0;
  char text[dns::kMaxLabel] = {};
  std::string_view view() const { return {text, len}; }
  bool empty() const { return len == 0; }
};

// The settings and one SearchPathLearner shared by every worker. Shared rather than per worker
// because a stub opens a new socket (a new source port) for every search step and SO_REUSEPORT
// hashes the port, so with W workers the two halves of a learning pair meet on one worker only
// 1/W of the time (docs/search-rewrite.md, "Integration").
//
// Thread model: any thread. Relevant(), AnyNamespace() and WantsReply() are lock-free and
// allocation-free; the other calls take one mutex for O(1) allocation-free work. Callers take it
// only for A/AAAA questions under svc.<zone> (Relevant()), so hits for other names never touch
// it. Hits for service names do: ExpansionNamespace() once AnyNamespace(), Observe() when
// WantsReply() (docs/search-rewrite.md, "When a cache hit takes the lock").
class SharedSearchRewrite {
 public:
  // `pins` in the form of --search-path ("CIDR=ns"). Errors name the offending value.
  static absl::StatusOr<std::unique_ptr<SharedSearchRewrite>> Create(
      absl::string_view cluster_domain, std::span<const std::string> node_search,
      std::span<const std::string> pins, SearchPathLearner::Options options = {});

  const SearchRewriteSettings& settings() const { return settings_; }

  // Could `qname` (wire, any case, `qname_length` bytes with the root) matter to the learner or
  // be rewritten: A or AAAA under svc.<zone>? A tail compare first, so that names elsewhere
  // cost a few instructions on the hit path.
  bool Relevant(const uint8_t* qname, size_t qname_length, uint16_t qtype) const;

  // Lock-free pre-filters, inline so that a hit builds no SocketAddress when they say no.
  // Is any namespace known (a pin, or any client ever learned)? Else nothing can be rewritten.
  bool AnyNamespace() const { return any_namespace_.load(std::memory_order_relaxed); }
  // Can this reply matter to the learner? Only an NXDOMAIN starts a pair, and only a reply within
  // the pair window of one can finish it. (Workers' loop clocks differ by a few ms; the window
  // is 3 s and the bound has 100 ms of slack.)
  bool WantsReply(uint8_t rcode, uint64_t now_ms) const {
    return rcode == dns::rcode::kNxDomain ||
           now_ms <= evidence_until_ms_.load(std::memory_order_relaxed);
  }

  // If the learner (or a pin) puts `client` in a namespace X and `qname` is N.X.svc.<zone>,
  // copies X into `ns` and returns true.
  bool ExpansionNamespace(const SocketAddress& client, std::span<const uint8_t> qname,
                          uint64_t now_ms, NamespaceName& ns);

  // SearchPathLearner::Observe under the lock (callers check WantsReply() first).
  void Observe(const SocketAddress& client, std::span<const uint8_t> qname, uint16_t qtype,
               uint8_t rcode, uint64_t now_ms);

  // Replaces what pod discovery knows (SearchPathLearner::SetDiscovered); builds the table before
  // taking the lock. Errors name the address that is not one.
  absl::Status SetDiscovered(std::span<const SearchPathLearner::DiscoveredClient> clients);

  struct Stats {
    SearchPathLearner::Counters counters;
    size_t learned_clients = 0;
    size_t discovered_clients = 0;
  };
  Stats GetStats(uint64_t now_ms);

 private:
  SharedSearchRewrite(SearchRewriteSettings settings, SearchPathLearner::Options options);

  const SearchRewriteSettings settings_;
  const uint64_t pair_window_ms_;
  uint8_t svc_zone_[dns::kMaxNameWire] = {};  // lowercase wire svc.<zone>
  size_t svc_zone_len_ = 0;
  // Lock-free pre-filters, so that a service lookup (a hit under svc.<zone>) takes the lock only
  // when it can matter: a namespace is known for some client (a pin, or anything ever learned),
  // and an NXDOMAIN was observed recently enough for a reply to complete a learning pair.
  std::atomic<bool> any_namespace_{false};
  std::atomic<uint64_t> evidence_until_ms_{0};
  // std::mutex rather than absl::Mutex: the distribution's Abseil is not built with
  // ThreadSanitizer, which then cannot see absl::Mutex's ordering, and the pod discovery thread
  // shares nothing else with the workers and the HTTP thread that would order it by accident.
  std::mutex mu_;
  SearchPathLearner learner_;  // guarded by mu_
};

namespace internal {

// Parses "10.0.0.0/8", "fd00::/64" or a bare address into 16 bytes (IPv4 in the first 4), family
// 4 or 6 and prefix bits.
absl::Status ParseCidr(absl::string_view text, uint8_t& family, uint8_t (&addr)[16], int& bits);

}  // namespace internal

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_SEARCH_PATH_LEARNER_H_
