// Server-side search-path rewriting ("autopath") for Kubernetes pods: the pure logic, with no
// sockets and no event loop, so that the worker can drive it and the tests can check it alone.
//
// A pod's resolv.conf says `search <ns>.svc.<zone> svc.<zone> <zone> [node domains]` and
// `options ndots:5`, so a stub resolver (glibc res_search, musl name_from_dns_search) turns one
// lookup of `api.example.com` into a walk down that list, A and AAAA at every step, until a name
// exists (musl stops at the first answer that is not NXDOMAIN; glibc also walks past NODATA and
// SERVFAIL, see the doc). When nodedns knows a client's namespace it can answer the first
// step itself: resolve the remaining steps in parallel and reply NOERROR with a CNAME from the
// name asked to the first step, in search order, that exists. docs/search-rewrite.md has the rule,
// the evidence the learner requires, the ambiguity analysis and the integration recipe.
//
// Four pieces, each usable alone; this header has the last three, search_path_learner.h the first
// (and SharedSearchRewrite, the settings and learner that the workers share):
//   SearchPathLearner  which namespace a client address is in (learned from its traffic, or pinned)
//   PlanRewrite        is this question a search expansion under that namespace; which candidates
//   Decide             given the candidates' outcomes so far, who wins (search order, never speed)
//   SynthesizeAnswer   the reply body: question, CNAME, the winner's records (ldns, off hit path)
#ifndef NODEDNS_PROXY_SEARCH_REWRITE_H_
#define NODEDNS_PROXY_SEARCH_REWRITE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dns/wire.h"

namespace nodedns::proxy {

// The cache class under which the worker stores synthesized (rewritten) answers. A rewritten
// answer is right only for clients in the namespace the question names, so it must never be
// served to a plain query for the same name (a literal query from another namespace gets the
// upstream's NXDOMAIN); a private-use class (RFC 6895 §3.2: 0xFF00-0xFFFE) keeps the two cache
// entries apart without a second cache. Never sent upstream: the worker must not Refresh() keys
// of this class (see docs/search-rewrite.md).
inline constexpr uint16_t kRewriteCacheClass = 0xFF52;

// Names and domains the rewrite needs, in lowercase wire form, validated once at startup.
struct SearchRewriteSettings {
  std::vector<uint8_t> zone_wire;                      // e.g. cluster.local
  std::vector<std::vector<uint8_t>> node_search_wire;  // the node's search domains, in order

  // `cluster_domain` as given to --cluster-domain; `node_search` as given to --node-search (or
  // read from the node's resolv.conf by the caller). A node domain equal to svc.<zone> or <zone>
  // is dropped (the candidate list would repeat it); "." is kept and places N. there, as glibc
  // does for a root search domain. Error on a name that is not a valid domain.
  static absl::StatusOr<SearchRewriteSettings> Make(absl::string_view cluster_domain,
                                                    std::span<const std::string> node_search);
};

// True when `ns` is a valid Kubernetes namespace name: an RFC 1123 label, lowercase letters,
// digits and '-', not starting or ending with '-', 1..63 characters.
bool IsNamespaceName(std::string_view ns);

// Is `qname` (uncompressed wire, any case) `N.<ns>.svc.<zone>` with N at least one label? A suffix
// test on label boundaries; no allocation. `ns` is a presentation-form label, `zone_wire`
// lowercase.
bool MaybeExpansion(std::span<const uint8_t> qname, std::string_view ns,
                    std::span<const uint8_t> zone_wire);

// What the worker will ask instead of the client's first search step.
struct RewritePlan {
  size_t stem_length = 0;  // wire length of N without the root byte
  // Lowercase wire names in search order: N.svc.<zone>, N.<zone>, N.<node domain>..., N.
  // Duplicates and the question itself are left out; the list ends before the first name that
  // would be longer than 255 bytes (see docs/search-rewrite.md).
  std::vector<std::vector<uint8_t>> candidates;
};

// The plan for a query from a client in namespace `ns`, or nullopt when it is not a rewritable
// search expansion: qtype other than A/AAAA, or qname not `N.<ns>.svc.<zone>`.
std::optional<RewritePlan> PlanRewrite(std::span<const uint8_t> qname, uint16_t qtype,
                                       std::string_view ns, const SearchRewriteSettings& settings);

// ---------------------------------------------------------------------------------------------
// Choosing the winner among candidates answered in any order.

enum class CandidateState : uint8_t { kPending, kNxDomain, kNoData, kAnswer, kFailed };

struct CandidateResult {
  CandidateState state = CandidateState::kPending;
  std::vector<uint8_t> response;  // the candidate's response (wire), once it is known
};

// How a finished candidate counts, as a stub resolver would see it: NXDOMAIN by rcode (RFC 6604
// §3: the rcode speaks for the end of a CNAME chain, and glibc and musl both continue the search
// on rcode 3 alone); NOERROR with answers is kAnswer, without is kNoData; anything else
// (SERVFAIL, REFUSED, a truncated, malformed or mismatched response) is kFailed.
CandidateState ClassifyResponse(std::span<const uint8_t> response,
                                std::span<const uint8_t> candidate_qname, uint16_t qtype);

struct Decision {
  enum class Kind : uint8_t {
    kWait,         // an earlier candidate has not answered yet
    kUse,          // candidates[index] wins
    kAllNxDomain,  // every candidate is NXDOMAIN: the client gets NXDOMAIN
    kNoRewrite,    // an earlier candidate failed: answer the original question as upstream does
  };
  Kind kind = Kind::kWait;
  size_t index = 0;  // with kUse
  friend bool operator==(const Decision&, const Decision&) = default;
};

// Walks the candidates in search order: NXDOMAIN moves on, pending waits, failure gives up,
// NODATA or an answer wins. So the outcome depends only on the candidates' states, never on the
// order they arrived in: a later candidate answering first cannot win. Empty input: kNoRewrite.
Decision Decide(std::span<const CandidateResult> results);

// ---------------------------------------------------------------------------------------------
// Building the reply.

// The TTL a negative response may be cached for (RFC 2308 §5: min(SOA TTL, SOA MINIMUM)), or 0
// when it carries no SOA (then it must not be cached at all).
uint32_t NegativeTtl(std::span<const uint8_t> response);

// The ceiling for the synthesized CNAME's TTL from the NXDOMAINs the rewrite relies on: the
// original question's (`original_nxdomain`, may be empty when the worker did not ask it) and
// those of every candidate before `winner`. If any of those names started to exist, the rewrite
// would be wrong, so the answer must not outlive their negative TTLs.
uint32_t NegativeTtlCap(std::span<const uint8_t> original_nxdomain,
                        std::span<const CandidateResult> results, size_t winner);

// The reply body for the client's question (`qname` wire, any case; `qtype`): header (ID 0, QR,
// RD, RA, NOERROR, AD clear: the CNAME is ours and unsigned), the question, a CNAME from qname to
// `candidate_qname`, the candidate's answer records as received (its own CNAME chain included;
// none for NODATA), and for NODATA the candidate's SOA in the authority section. The CNAME's TTL
// is the minimum of `ttl_cap`, the answer records' TTLs, and for NODATA the SOA's negative TTL.
// No OPT record: FinishReply() adds ID, case and OPT. Error if the candidate response is not a
// NOERROR response to (candidate_qname, qtype) or cannot be parsed.
absl::StatusOr<std::vector<uint8_t>> SynthesizeAnswer(std::span<const uint8_t> qname,
                                                      uint16_t qtype,
                                                      std::span<const uint8_t> candidate_qname,
                                                      std::span<const uint8_t> candidate_response,
                                                      uint32_t ttl_cap);

namespace internal {

// Offsets of the labels of an uncompressed wire name (the root byte excluded); returns the count,
// or -1 if the name is malformed. `offsets` holds 128 entries (a 255-byte name has at most 127).
int LabelOffsets(std::span<const uint8_t> name, uint16_t (&offsets)[128]);

// If `qname` is `N.<suffix>` (case-insensitive, on a label boundary, N non-empty), the wire length
// of N without a root byte; else nullopt. `suffix` is lowercase wire with its root byte.
std::optional<size_t> StemBefore(std::span<const uint8_t> qname, std::span<const uint8_t> suffix);

// Is `qtype` one the rewrite and the learner handle (A or AAAA)? See docs/search-rewrite.md
// ("Scope").
bool IsAddressType(uint16_t qtype);

// Writes `svc.<zone>` (`zone_wire` lowercase wire with its root byte) into `out`; returns the
// length, or 0 if it does not fit in a name.
size_t SvcZone(std::span<const uint8_t> zone_wire, uint8_t (&out)[dns::kMaxNameWire]);

}  // namespace internal

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_SEARCH_REWRITE_H_
