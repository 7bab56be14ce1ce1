// Search-path rewriting: the settings, planning candidates, choosing the winner and synthesizing
// the reply. The learner is in search_path_learner.cc. See search_rewrite.h and
// docs/search-rewrite.md.
#include "proxy/search_rewrite.h"

#include <ldns/ldns.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <utility>

#include "proxy/config.h"
#include "proxy/reply.h"

namespace nodedns::proxy {

namespace {

// Owners for ldns objects: every exit path frees them.
struct LdnsPktFree {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
struct LdnsRrFree {
  void operator()(ldns_rr* r) const { ldns_rr_free(r); }
};
struct LdnsRdfFree {
  void operator()(ldns_rdf* r) const { ldns_rdf_deep_free(r); }
};
struct LdnsBufFree {
  void operator()(uint8_t* p) const { LDNS_FREE(p); }
};
using PktPtr = std::unique_ptr<ldns_pkt, LdnsPktFree>;
using RrPtr = std::unique_ptr<ldns_rr, LdnsRrFree>;
using RdfPtr = std::unique_ptr<ldns_rdf, LdnsRdfFree>;
using BufPtr = std::unique_ptr<uint8_t, LdnsBufFree>;

constexpr uint8_t kSvcLabel[] = {3, 's', 'v', 'c'};

// Writes `label` (presentation, one label) followed by `rest` (wire) into out; returns the length,
// or 0 if it does not fit in a name.
size_t JoinLabel(std::span<const uint8_t> label, std::span<const uint8_t> rest,
                 uint8_t (&out)[dns::kMaxNameWire]) {
  if (label.empty() || label.size() > dns::kMaxLabel) return 0;
  const size_t n = 1 + label.size() + rest.size();
  if (n > dns::kMaxNameWire) return 0;
  out[0] = static_cast<uint8_t>(label.size());
  std::memcpy(out + 1, label.data(), label.size());
  std::memcpy(out + 1 + label.size(), rest.data(), rest.size());
  return n;
}

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Does ldns read every record of `msg` exactly where RFC 1035 (and ParseResponseLayout) puts it,
// each one ending at its RDLENGTH? ldns 1.8 reads a known type's RDATA field by field and does not
// resync on RDLENGTH: it can leave RDATA bytes unread or read a name on past RDLENGTH, and then
// parses the following records from the wrong place (docs/fuzzing.md, finding 2). `msg` must
// already have passed ParseResponseLayout, so the RR headers are inside the message.
bool LdnsReadsRecordsAtTheirBoundaries(std::span<const uint8_t> msg) {
  const size_t qd = dns::QdCount(msg);
  const size_t total = qd + dns::AnCount(msg) + dns::NsCount(msg) + dns::ArCount(msg);
  size_t off = dns::kHeaderSize;
  for (size_t i = 0; i < total; ++i) {
    const std::optional<size_t> after_name = dns::SkipName(msg, off);
    if (!after_name || *after_name + (i < qd ? 4 : 10) > msg.size()) return false;
    const size_t next =
        i < qd ? *after_name + 4 : *after_name + 10 + dns::Get16(msg.data() + *after_name + 8);
    size_t pos = off;
    ldns_rr* raw = nullptr;
    const ldns_pkt_section section = i < qd ? LDNS_SECTION_QUESTION : LDNS_SECTION_ANSWER;
    if (ldns_wire2rr(&raw, msg.data(), msg.size(), &pos, section) != LDNS_STATUS_OK) return false;
    ldns_rr_free(raw);
    if (pos != next) return false;
    off = next;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Wire-name helpers.

namespace internal {

int LabelOffsets(std::span<const uint8_t> name, uint16_t (&offsets)[128]) {
  size_t off = 0;
  int count = 0;
  while (off < name.size() && off < dns::kMaxNameWire) {
    const uint8_t len = name[off];
    if (len == 0) return count;
    if (len > dns::kMaxLabel || count == 127) return -1;  // pointer, reserved bits, or too long
    offsets[count++] = static_cast<uint16_t>(off);
    off += size_t{len} + 1;
  }
  return -1;  // no root byte within the span or within 255 bytes
}

std::optional<size_t> StemBefore(std::span<const uint8_t> qname, std::span<const uint8_t> suffix) {
  uint16_t offsets[128];
  const int n = LabelOffsets(qname, offsets);
  if (n <= 0 || suffix.empty()) return std::nullopt;
  // The name's own length (root byte included): the span may be longer than the name.
  const size_t len = size_t{offsets[n - 1]} + qname[offsets[n - 1]] + 2;
  if (suffix.size() >= len) return std::nullopt;  // N would be empty
  const size_t start = len - suffix.size();
  // Only a label boundary counts: "xdefault.svc..." must not match "default.svc...".
  for (int i = 1; i < n; ++i) {
    if (offsets[i] == start) {
      return dns::NameEqualsIgnoreCase(qname.data() + start, suffix.data(), suffix.size())
                 ? std::optional<size_t>(start)
                 : std::nullopt;
    }
    if (offsets[i] > start) break;
  }
  return std::nullopt;
}

bool IsAddressType(uint16_t qtype) { return qtype == dns::type::kA || qtype == dns::type::kAAAA; }

// "svc.<zone>" into out; 0 if too long.
size_t SvcZone(std::span<const uint8_t> zone_wire, uint8_t (&out)[dns::kMaxNameWire]) {
  return JoinLabel(std::span<const uint8_t>(kSvcLabel + 1, 3), zone_wire, out);
}

}  // namespace internal

bool IsNamespaceName(std::string_view ns) {
  if (ns.empty() || ns.size() > dns::kMaxLabel) return false;
  if (ns.front() == '-' || ns.back() == '-') return false;
  for (char c : ns) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

absl::StatusOr<SearchRewriteSettings> SearchRewriteSettings::Make(
    absl::string_view cluster_domain, std::span<const std::string> node_search) {
  SearchRewriteSettings s;
  auto zone = ZoneToWire(cluster_domain);
  if (!zone.ok()) return zone.status();
  if (zone->size() == 1) return absl::InvalidArgumentError("the cluster domain cannot be the root");
  s.zone_wire = *std::move(zone);
  uint8_t svc[dns::kMaxNameWire];
  const size_t svc_len = internal::SvcZone(s.zone_wire, svc);
  if (svc_len == 0) return absl::InvalidArgumentError("the cluster domain is too long");
  const std::span<const uint8_t> svc_zone(svc, svc_len);
  for (const std::string& d : node_search) {
    auto wire = ZoneToWire(absl::string_view(d.data(), d.size()));
    if (!wire.ok()) return wire.status();
    // svc.<zone> and <zone> are already in the list. The root stays: like glibc's root_on_list,
    // it puts N. at that position rather than last.
    if (std::ranges::equal(*wire, s.zone_wire) || std::ranges::equal(*wire, svc_zone) ||
        std::ranges::find(s.node_search_wire, *wire) != s.node_search_wire.end()) {
      continue;
    }
    s.node_search_wire.push_back(*std::move(wire));
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Planning.

bool MaybeExpansion(std::span<const uint8_t> qname, std::string_view ns,
                    std::span<const uint8_t> zone_wire) {
  uint8_t svc[dns::kMaxNameWire];
  const size_t svc_len = internal::SvcZone(zone_wire, svc);
  if (svc_len == 0) return false;
  uint8_t suffix[dns::kMaxNameWire];
  const size_t len = JoinLabel(AsBytes(ns), {svc, svc_len}, suffix);
  return len != 0 && internal::StemBefore(qname, {suffix, len}).has_value();
}

std::optional<RewritePlan> PlanRewrite(std::span<const uint8_t> qname, uint16_t qtype,
                                       std::string_view ns, const SearchRewriteSettings& settings) {
  // A and AAAA only: see docs/search-rewrite.md ("Scope").
  if (!internal::IsAddressType(qtype)) return std::nullopt;
  uint8_t svc[dns::kMaxNameWire];
  const size_t svc_len = internal::SvcZone(settings.zone_wire, svc);
  if (svc_len == 0) return std::nullopt;
  uint8_t first[dns::kMaxNameWire];
  const size_t first_len = JoinLabel(AsBytes(ns), {svc, svc_len}, first);
  if (first_len == 0) return std::nullopt;
  const std::optional<size_t> stem = internal::StemBefore(qname, {first, first_len});
  if (!stem) return std::nullopt;

  RewritePlan plan;
  plan.stem_length = *stem;
  static constexpr uint8_t kRoot[] = {0};
  // A candidate longer than 255 bytes (RFC 1035 §3.1) ends the list: glibc's res_querydomain
  // fails it with NO_RECOVERY, which ends the walk, while musl skips it and walks on. Stopping
  // there is right for both: a winner before it is theirs too, and if there is none the client
  // gets the original NXDOMAIN and walks on by its own rules.
  bool overflow = false;
  const auto add = [&](std::span<const uint8_t> suffix) {
    if (overflow || *stem + suffix.size() > dns::kMaxNameWire) {
      overflow = true;
      return;
    }
    std::vector<uint8_t> name(*stem + suffix.size());
    for (size_t i = 0; i < *stem; ++i) name[i] = dns::LowerAscii(qname[i]);
    std::memcpy(name.data() + *stem, suffix.data(), suffix.size());
    // A node domain equal to the client's first element would ask the question again.
    if (std::ranges::equal(std::span<const uint8_t>(name).subspan(*stem),
                           std::span<const uint8_t>(first, first_len))) {
      return;
    }
    if (std::ranges::find(plan.candidates, name) != plan.candidates.end()) return;
    plan.candidates.push_back(std::move(name));
  };
  add({svc, svc_len});
  add(settings.zone_wire);
  for (const auto& d : settings.node_search_wire) add(d);
  add(kRoot);
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Deciding.

CandidateState ClassifyResponse(std::span<const uint8_t> response,
                                std::span<const uint8_t> candidate_qname, uint16_t qtype) {
  dns::ResponseLayout layout;
  if (dns::ParseResponseLayout(response, layout) != dns::LayoutStatus::kOk) {
    return CandidateState::kFailed;
  }
  if (!(layout.flags & dns::flag::kQR) || (layout.flags & dns::flag::kTC) ||
      (layout.opt_offset != 0 && (layout.opt_ttl >> 24) != 0) ||
      !dns::ResponseMatchesQuestion(response, candidate_qname, qtype, dns::kClassIN)) {
    return CandidateState::kFailed;
  }
  switch (layout.rcode) {
    case dns::rcode::kNxDomain:
      return CandidateState::kNxDomain;
    case dns::rcode::kNoError:
      return layout.ancount > 0 ? CandidateState::kAnswer : CandidateState::kNoData;
    default:
      return CandidateState::kFailed;
  }
}

Decision Decide(std::span<const CandidateResult> results) {
  for (size_t i = 0; i < results.size(); ++i) {
    switch (results[i].state) {
      case CandidateState::kNxDomain:
        continue;
      case CandidateState::kPending:
        return {Decision::Kind::kWait, 0};
      case CandidateState::kFailed:
        // Stubs disagree here (glibc's res_search counts SERVFAIL as got_servfail and tries the
        // next element; musl's name_from_dns_search stops with EAI_AGAIN; on a timeout both
        // give up), so no answer is safe to give in their place: let the client walk its list.
        return {Decision::Kind::kNoRewrite, 0};
      case CandidateState::kNoData:
      case CandidateState::kAnswer:
        return {Decision::Kind::kUse, i};
    }
  }
  if (results.empty()) return {Decision::Kind::kNoRewrite, 0};
  return {Decision::Kind::kAllNxDomain, 0};
}

// ---------------------------------------------------------------------------------------------
// Synthesizing.

uint32_t NegativeTtl(std::span<const uint8_t> response) {
  dns::ResponseLayout layout;
  if (dns::ParseResponseLayout(response, layout) != dns::LayoutStatus::kOk ||
      layout.soa_ttl_offset == 0) {
    return 0;
  }
  return std::min(dns::Get32(response.data() + layout.soa_ttl_offset), layout.soa_minimum);
}

uint32_t NegativeTtlCap(std::span<const uint8_t> original_nxdomain,
                        std::span<const CandidateResult> results, size_t winner) {
  uint32_t cap = std::numeric_limits<uint32_t>::max();
  if (!original_nxdomain.empty()) cap = std::min(cap, NegativeTtl(original_nxdomain));
  for (size_t i = 0; i < winner && i < results.size(); ++i) {
    if (results[i].state == CandidateState::kNxDomain) {
      cap = std::min(cap, NegativeTtl(results[i].response));
    }
  }
  return cap;
}

absl::StatusOr<std::vector<uint8_t>> SynthesizeAnswer(std::span<const uint8_t> qname,
                                                      uint16_t qtype,
                                                      std::span<const uint8_t> candidate_qname,
                                                      std::span<const uint8_t> candidate_response,
                                                      uint32_t ttl_cap) {
  uint16_t offsets[128];
  if (internal::LabelOffsets(qname, offsets) < 0 ||
      internal::LabelOffsets(candidate_qname, offsets) < 0) {
    return absl::InvalidArgumentError("malformed name");
  }
  const CandidateState state = ClassifyResponse(candidate_response, candidate_qname, qtype);
  if (state != CandidateState::kAnswer && state != CandidateState::kNoData) {
    return absl::InvalidArgumentError("the candidate response is not a NOERROR answer to it");
  }
  ldns_pkt* raw_in = nullptr;
  if (ldns_wire2pkt(&raw_in, candidate_response.data(), candidate_response.size()) !=
      LDNS_STATUS_OK) {
    return absl::InvalidArgumentError("ldns cannot parse the candidate response");
  }
  const PktPtr in(raw_in);
  // The answer is built from ldns's reading of the records; refuse a candidate ldns misreads
  // rather than send records that are not the ones the upstream sent.
  if (!LdnsReadsRecordsAtTheirBoundaries(candidate_response)) {
    return absl::InvalidArgumentError("ldns misreads the candidate response's records");
  }

  // The CNAME may live no longer than anything it stands for.
  uint32_t ttl = ttl_cap;
  const ldns_rr_list* answer = ldns_pkt_answer(in.get());
  for (size_t i = 0; i < ldns_rr_list_rr_count(answer); ++i) {
    ttl = std::min(ttl, ldns_rr_ttl(ldns_rr_list_rr(answer, i)));
  }
  const ldns_rr* soa = nullptr;
  if (state == CandidateState::kNoData) {
    const ldns_rr_list* auth = ldns_pkt_authority(in.get());
    for (size_t i = 0; i < ldns_rr_list_rr_count(auth); ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(auth, i);
      if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA && ldns_rr_rd_count(rr) == 7) {
        soa = rr;
        break;
      }
    }
    // RFC 2308 §5: without an SOA a negative answer has no lifetime; nor has our CNAME.
    ttl = soa == nullptr
              ? 0
              : std::min({ttl, ldns_rr_ttl(soa), ldns_rdf2native_int32(ldns_rr_rdf(soa, 6))});
  }

  const PktPtr out(ldns_pkt_new());
  if (!out) return absl::ResourceExhaustedError("ldns_pkt_new");
  ldns_pkt_set_id(out.get(), 0);
  ldns_pkt_set_qr(out.get(), true);
  ldns_pkt_set_rd(out.get(), true);
  ldns_pkt_set_ra(out.get(), true);
  ldns_pkt_set_rcode(out.get(), LDNS_RCODE_NOERROR);

  // Lowercase owner: one cache entry serves every case variant; FinishReply restores the case
  // of the question, and RFC 4343 makes the CNAME owner match it either way.
  std::vector<uint8_t> lower(qname.begin(), qname.end());
  for (uint8_t& c : lower) c = dns::LowerAscii(c);
  const auto dname = [](std::span<const uint8_t> wire) {
    return RdfPtr(ldns_dname_new_frm_data(static_cast<uint16_t>(wire.size()), wire.data()));
  };
  const auto push = [&](ldns_pkt_section section, RrPtr rr) -> absl::Status {
    if (!rr || !ldns_pkt_push_rr(out.get(), section, rr.get())) {
      return absl::ResourceExhaustedError("ldns could not add a record");
    }
    rr.release();  // owned by the packet now
    return absl::OkStatus();
  };

  RrPtr question(ldns_rr_new());
  RdfPtr qowner = dname(lower);
  if (!question || !qowner) return absl::ResourceExhaustedError("ldns_rr_new");
  ldns_rr_set_owner(question.get(), qowner.release());
  ldns_rr_set_type(question.get(), static_cast<ldns_rr_type>(qtype));
  ldns_rr_set_class(question.get(), LDNS_RR_CLASS_IN);
  ldns_rr_set_question(question.get(), true);
  if (absl::Status s = push(LDNS_SECTION_QUESTION, std::move(question)); !s.ok()) return s;

  RrPtr cname(ldns_rr_new());
  RdfPtr cowner = dname(lower);
  RdfPtr target = dname(candidate_qname);
  if (!cname || !cowner || !target) return absl::ResourceExhaustedError("ldns_rr_new");
  ldns_rr_set_owner(cname.get(), cowner.release());
  ldns_rr_set_type(cname.get(), LDNS_RR_TYPE_CNAME);
  ldns_rr_set_class(cname.get(), LDNS_RR_CLASS_IN);
  ldns_rr_set_ttl(cname.get(), ttl);
  if (!ldns_rr_push_rdf(cname.get(), target.get())) {
    return absl::ResourceExhaustedError("ldns_rr_push_rdf");
  }
  target.release();
  if (absl::Status s = push(LDNS_SECTION_ANSWER, std::move(cname)); !s.ok()) return s;

  for (size_t i = 0; i < ldns_rr_list_rr_count(answer); ++i) {
    RrPtr copy(ldns_rr_clone(ldns_rr_list_rr(answer, i)));
    if (absl::Status s = push(LDNS_SECTION_ANSWER, std::move(copy)); !s.ok()) return s;
  }
  if (soa != nullptr) {
    // Kept so that the client and the cache can bound the negative part (RFC 2308 §5).
    if (absl::Status s = push(LDNS_SECTION_AUTHORITY, RrPtr(ldns_rr_clone(soa))); !s.ok()) {
      return s;
    }
  }

  uint8_t* raw_wire = nullptr;
  size_t size = 0;
  if (ldns_pkt2wire(&raw_wire, out.get(), &size) != LDNS_STATUS_OK) {
    return absl::InternalError("ldns_pkt2wire failed");
  }
  const BufPtr wire(raw_wire);
  if (size > dns::kMaxMessage) return absl::OutOfRangeError("synthesized answer too large");
  std::vector<uint8_t> result(wire.get(), wire.get() + size);
  // What the data path will cache and relay: its own walker must accept it, with the question,
  // the CNAME plus the candidate's answers and no OPT.
  dns::ResponseLayout layout;
  if (dns::ParseResponseLayout(result, layout) != dns::LayoutStatus::kOk ||
      layout.opt_offset != 0 || dns::QdCount(result) != 1 ||
      layout.ancount != 1 + ldns_rr_list_rr_count(answer) ||
      !dns::ResponseMatchesQuestion(result, lower, qtype, dns::kClassIN)) {
    return absl::InternalError("synthesized answer does not have the expected structure");
  }
  return result;
}

}  // namespace nodedns::proxy
