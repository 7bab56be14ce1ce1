// Fuzz target: a candidate's upstream response through the search-path rewrite's answer side.
// ClassifyResponse, NegativeTtl(Cap), Decide, and SynthesizeAnswer (the reply body nodedns
// writes itself, with ldns, from the candidate's records), then the cache insert under the
// rewrite class and FinishReply for the client, as Worker::FinishRewrite does.
//
// Input: one control byte, then the candidate response's wire bytes. The candidate's name and
// type are the response's question when it has one (else www.example.com, A or AAAA by bit 0).
// Control bits: 1-2 the TTL cap, 3 the client writes its question in capitals, 4-5 how many
// NXDOMAIN candidates precede this one, 6 the client query has EDNS, 7 DO.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <vector>

#include "cache/cache_key.h"
#include "cache/response_cache.h"
#include "dns/wire.h"
#include "proxy/reply.h"
#include "proxy/search_rewrite.h"
#include "tests/fuzz/fuzz_util.h"

// Last: ldns's headers #define bool, true and false, which breaks C++ headers after them.
#include <ldns/ldns.h>

namespace nodedns::fuzz {
namespace {

using proxy::CandidateResult;
using proxy::CandidateState;
using proxy::Decision;

// Wire names: the literal's terminating NUL is the root label.
constexpr uint8_t kFallbackName[] = "\3www\7example\3com";
constexpr uint8_t kClientSuffix[] = "\3ns1\3svc\7cluster\5local";

// NXDOMAIN for x. with an SOA: TTL 300, MINIMUM 60. Its negative TTL is 60.
std::vector<uint8_t> EarlierNxDomain() {
  std::vector<uint8_t> m = {0, 0,   0x81, 0x83, 0, 1, 0, 0, 0,  1, 0,  0,     // header
                            1, 'x', 0,    0,    1, 0, 1,                      // x. A IN
                            0, 0,   6,    0,    1, 0, 0, 1, 44, 0, 22, 0, 0,  // . SOA 300
                            0, 0,   0,    1,    0, 0, 0, 1, 0,  0, 0,  1, 0, 0, 0, 1, 0, 0, 0, 60};
  return m;
}

using LdnsPkt = std::unique_ptr<ldns_pkt, decltype(&ldns_pkt_free)>;

LdnsPkt LdnsParse(std::span<const uint8_t> wire) {
  ldns_pkt* p = nullptr;
  if (ldns_wire2pkt(&p, wire.data(), wire.size()) != LDNS_STATUS_OK) p = nullptr;
  return LdnsPkt(p, &ldns_pkt_free);
}

// Does ldns see the records where RFC 1035 puts them (each one ending at its RDLENGTH)? ldns 1.8
// does not: it reads a known type's RDATA field by field, leaving bytes past the fields unread or
// reading a name on past RDLENGTH, and goes on from there. SynthesizeAnswer copies the records as
// ldns parsed them, so it refuses a candidate where this fails (docs/fuzzing.md, finding 2).
bool LdnsAgreesOnRecords(std::span<const uint8_t> msg) {
  const size_t qd = dns::QdCount(msg);
  const size_t total = qd + dns::AnCount(msg) + dns::NsCount(msg) + dns::ArCount(msg);
  size_t off = dns::kHeaderSize;
  for (size_t i = 0; i < total; ++i) {
    const auto after_name = dns::SkipName(msg, off);
    if (!after_name || *after_name + (i < qd ? 4 : 10) > msg.size()) return false;
    const size_t next =
        i < qd ? *after_name + 4 : *after_name + 10 + dns::Get16(msg.data() + *after_name + 8);
    size_t pos = off;
    ldns_rr* rr = nullptr;
    const ldns_pkt_section section = i < qd ? LDNS_SECTION_QUESTION : LDNS_SECTION_ANSWER;
    if (ldns_wire2rr(&rr, msg.data(), msg.size(), &pos, section) != LDNS_STATUS_OK) return false;
    ldns_rr_free(rr);
    if (pos != next) return false;
    off = next;
  }
  return true;
}

void CheckClassify(std::span<const uint8_t> msg, std::span<const uint8_t> cand, uint16_t qtype,
                   CandidateState state) {
  dns::ResponseLayout l;
  const bool ok = dns::ParseResponseLayout(msg, l) == dns::LayoutStatus::kOk;
  if (state == CandidateState::kFailed) return;
  FUZZ_CHECK(ok && (l.flags & dns::flag::kQR) && !(l.flags & dns::flag::kTC));
  FUZZ_CHECK(dns::ResponseMatchesQuestion(msg, cand, qtype, dns::kClassIN));
  FUZZ_CHECK((state == CandidateState::kNxDomain) == (l.rcode == dns::rcode::kNxDomain));
  FUZZ_CHECK((state == CandidateState::kAnswer) ==
             (l.rcode == dns::rcode::kNoError && l.ancount > 0));
  FUZZ_CHECK((state == CandidateState::kNoData) ==
             (l.rcode == dns::rcode::kNoError && l.ancount == 0));
}

void CheckDecide(CandidateState state, size_t earlier) {
  std::vector<CandidateResult> results(earlier);
  for (auto& r : results) r.state = CandidateState::kNxDomain;
  results.push_back({state, {}});
  const Decision d = proxy::Decide(results);
  switch (state) {
    case CandidateState::kAnswer:
    case CandidateState::kNoData:
      FUZZ_CHECK(d.kind == Decision::Kind::kUse && d.index == earlier);
      break;
    case CandidateState::kNxDomain:
      FUZZ_CHECK(d.kind == Decision::Kind::kAllNxDomain);
      break;
    case CandidateState::kFailed:
      FUZZ_CHECK(d.kind == Decision::Kind::kNoRewrite);
      break;
    case CandidateState::kPending:
      FUZZ_CHECK(false);
  }
  // Search order, never arrival order: an earlier candidate still pending makes everyone wait.
  results.insert(results.begin(), CandidateResult{});
  FUZZ_CHECK(proxy::Decide(results).kind == Decision::Kind::kWait);
}

void CheckSynthesized(std::span<const uint8_t> a, std::span<const uint8_t> qname, uint16_t qtype,
                      std::span<const uint8_t> cand, std::span<const uint8_t> msg,
                      CandidateState state, uint32_t cap, uint8_t ctl) {
  const std::vector<uint8_t> lower = Lowercase(qname);
  FUZZ_CHECK(a.size() <= dns::kMaxMessage);
  cache::CacheSettings settings;
  settings.capacity_bytes = size_t{4} << 20;
  settings.shards = 1;
  cache::ResponseCache cache(settings);
  std::unique_ptr<cache::CacheThread> thread = cache.RegisterThread();
  const cache::CacheKey key(qname, qtype, proxy::kRewriteCacheClass, false, false);
  dns::ResponseLayout l;
  const dns::LayoutStatus st = dns::ParseResponseLayout(a, l);
  FUZZ_CHECK(st == dns::LayoutStatus::kOk);
  FUZZ_CHECK(l.end == a.size() && l.opt_offset == 0);
  const uint16_t f = l.flags;
  FUZZ_CHECK(dns::HeaderId(a) == 0);
  FUZZ_CHECK((f & dns::flag::kQR) && (f & dns::flag::kRD) && (f & dns::flag::kRA));
  FUZZ_CHECK(!(f & (dns::flag::kAA | dns::flag::kTC | dns::flag::kAD | dns::flag::kOpcodeMask)));
  FUZZ_CHECK(l.rcode == dns::rcode::kNoError);
  // The question, lowercase (one entry serves every case; FinishReply restores the client's).
  FUZZ_CHECK(dns::QdCount(a) == 1);
  FUZZ_CHECK(dns::PlainNameLength(a, dns::kHeaderSize) == lower.size());
  FUZZ_CHECK(std::memcmp(a.data() + dns::kHeaderSize, lower.data(), lower.size()) == 0);
  const uint8_t* qtail = a.data() + dns::kHeaderSize + lower.size();
  FUZZ_CHECK(dns::Get16(qtail) == qtype && dns::Get16(qtail + 2) == dns::kClassIN);
  // The CNAME first, then the candidate's answers; the SOA only for NODATA.
  FUZZ_CHECK(l.ancount == 1 + dns::AnCount(msg));
  FUZZ_CHECK(l.nscount <= (state == CandidateState::kNoData ? 1 : 0) && l.arcount == 0);
  const size_t cname_ttl_at = l.ttl_offsets[0];
  uint8_t owner[dns::kMaxNameWire];
  const auto owner_len = dns::ExpandName(a, l.question_end, owner);
  FUZZ_CHECK(owner_len == lower.size() && std::memcmp(owner, lower.data(), lower.size()) == 0);
  FUZZ_CHECK(dns::Get16(a.data() + cname_ttl_at - 4) == dns::type::kCNAME);
  FUZZ_CHECK(dns::Get16(a.data() + cname_ttl_at - 2) == dns::kClassIN);
  uint8_t target[dns::kMaxNameWire];
  const auto target_len = dns::ExpandName(a, cname_ttl_at + 6, target);
  FUZZ_CHECK(target_len == cand.size() &&
             dns::NameEqualsIgnoreCase(target, cand.data(), cand.size()));
  // The CNAME lives no longer than the cap, any answer it stands for, or NODATA's negative TTL.
  const uint32_t ttl = dns::Get32(a.data() + cname_ttl_at);
  FUZZ_CHECK(ttl <= cap);
  dns::ResponseLayout ml;
  FUZZ_CHECK(dns::ParseResponseLayout(msg, ml) == dns::LayoutStatus::kOk);
  for (size_t i = 0; i < ml.ancount; ++i) {
    FUZZ_CHECK(ttl <= dns::Get32(msg.data() + ml.ttl_offsets[i]));
  }
  if (state == CandidateState::kNoData) FUZZ_CHECK(ttl <= proxy::NegativeTtl(msg));
  // The candidate's records come through unchanged (ldns compares owner, type, class, rdata).
  const LdnsPkt in = LdnsParse(msg);
  const LdnsPkt out = LdnsParse(a);
  FUZZ_CHECK(in != nullptr && out != nullptr);
  const ldns_rr_list* in_an = ldns_pkt_answer(in.get());
  const ldns_rr_list* out_an = ldns_pkt_answer(out.get());
  FUZZ_CHECK(ldns_rr_list_rr_count(out_an) == ldns_rr_list_rr_count(in_an) + 1);
  for (size_t i = 0; i < ldns_rr_list_rr_count(in_an); ++i) {
    const ldns_rr* x = ldns_rr_list_rr(in_an, i);
    const ldns_rr* y = ldns_rr_list_rr(out_an, i + 1);
    FUZZ_CHECK(ldns_rr_compare(x, y) == 0 && ldns_rr_ttl(x) == ldns_rr_ttl(y));
  }
  // The worker's view of it: an answer to the client's question.
  FUZZ_CHECK(proxy::ClassifyResponse(a, lower, qtype) == CandidateState::kAnswer);

  // Cached under the private class, then served to the client (Worker::FinishRewrite).
  bool zero_ttl = false;
  for (size_t i = 0; i < l.n_ttls; ++i) {
    const uint32_t t = dns::Get32(a.data() + l.ttl_offsets[i]);
    zero_ttl |= t == 0 || t > INT32_MAX;
  }
  const cache::InsertResult ins = cache.Insert(*thread, key, a, 1000);
  FUZZ_CHECK(ins == (zero_ttl ? cache::InsertResult::kNoTtl : cache::InsertResult::kInserted));
  std::vector<uint8_t> body(a.begin(), a.end());
  if (ins == cache::InsertResult::kInserted) {
    const cache::LookupResult r = cache.Lookup(*thread, key, 1000, body);
    FUZZ_CHECK(r.status == cache::LookupResult::Status::kHit && r.size == a.size());
    // No time has passed: the same bytes, TTLs capped at max_ttl.
    std::vector<uint8_t> expected(a.begin(), a.end());
    for (size_t i = 0; i < l.n_ttls; ++i) {
      uint8_t* p = expected.data() + l.ttl_offsets[i];
      dns::Put32(p, std::min(dns::Get32(p), settings.max_ttl));
    }
    FUZZ_CHECK(body == expected);
  }
  const std::vector<uint8_t> query =
      MakeQuery(0x4242, qname, qtype, dns::kClassIN, 0, ctl & 0x40, ctl & 0x80);
  dns::QueryInfo q;
  FUZZ_CHECK(dns::ParseQuery(query, q) == dns::QueryStatus::kOk);
  const size_t opt = q.has_edns ? dns::kOptRecordSize : 0;
  for (const size_t limit :
       {std::min<size_t>(q.MaxUdpReply(), dns::kEdnsUdpSize), size_t{dns::kMaxMessage}}) {
    std::vector<uint8_t> reply(body.size() + dns::kOptRecordSize);
    std::memcpy(reply.data(), body.data(), body.size());
    bool truncated = false;
    const size_t n = proxy::FinishReply(reply, body.size(), query, q, limit, &truncated);
    FUZZ_CHECK(truncated == (body.size() + opt > limit));
    CheckFinishedReply({reply.data(), n}, truncated, query, q, f, body.size(), l.ancount, limit);
  }
  thread->Quiescent();
}

}  // namespace
}  // namespace nodedns::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nodedns;
  using namespace nodedns::fuzz;
  if (size == 0) return 0;
  const uint8_t ctl = data[0];
  const std::vector<uint8_t> copy(data + 1, data + size);
  const std::span<const uint8_t> msg(copy);

  // The candidate: the response's own question when it has one, so that it can match.
  std::vector<uint8_t> cand(kFallbackName, kFallbackName + sizeof kFallbackName);
  uint16_t qtype = ctl & 1 ? dns::type::kAAAA : dns::type::kA;
  if (msg.size() >= dns::kHeaderSize && dns::QdCount(msg) >= 1) {
    const auto len = dns::PlainNameLength(msg, dns::kHeaderSize);
    if (len && dns::kHeaderSize + *len + 4 <= msg.size()) {
      cand = Lowercase(msg.subspan(dns::kHeaderSize, *len));
      qtype = dns::Get16(msg.data() + dns::kHeaderSize + *len);
    }
  }
  // The client asked N.ns1.svc.cluster.local, N being the candidate's first label.
  std::vector<uint8_t> qname = {1, 'x'};
  if (cand[0] != 0) qname.assign(cand.begin(), cand.begin() + 1 + cand[0]);
  qname.insert(qname.end(), kClientSuffix, kClientSuffix + sizeof kClientSuffix);
  if (ctl & 8) {
    for (uint8_t& c : qname) c = (c >= 'a' && c <= 'z') ? c - 32 : c;
  }

  const CandidateState state = proxy::ClassifyResponse(msg, cand, qtype);
  FUZZ_CHECK(state != CandidateState::kPending);
  CheckClassify(msg, cand, qtype, state);
  const size_t earlier = (ctl >> 4) & 3;
  CheckDecide(state, earlier);

  // Negative TTLs: min(SOA TTL, MINIMUM) or 0 without an SOA; the cap is the least of them.
  const uint32_t neg = proxy::NegativeTtl(msg);
  dns::ResponseLayout l;
  if (dns::ParseResponseLayout(msg, l) != dns::LayoutStatus::kOk || l.soa_ttl_offset == 0) {
    FUZZ_CHECK(neg == 0);
  } else {
    FUZZ_CHECK(neg == std::min(dns::Get32(msg.data() + l.soa_ttl_offset), l.soa_minimum));
  }
  std::vector<CandidateResult> results(
      earlier, CandidateResult{CandidateState::kNxDomain, EarlierNxDomain()});
  results.push_back({state, copy});
  const uint32_t all = std::numeric_limits<uint32_t>::max();
  const uint32_t before = earlier ? 60 : all;
  FUZZ_CHECK(proxy::NegativeTtlCap({}, results, earlier) == before);
  FUZZ_CHECK(proxy::NegativeTtlCap(msg, results, earlier) ==
             (msg.empty() ? before : std::min(neg, before)));
  const uint32_t caps[4] = {all, 0, 60, proxy::NegativeTtlCap(msg, results, earlier)};
  const uint32_t cap = caps[(ctl >> 1) & 3];

  const auto answer = proxy::SynthesizeAnswer(qname, qtype, cand, msg, cap);
  const bool usable = state == CandidateState::kAnswer || state == CandidateState::kNoData;
  FUZZ_CHECK(!answer.ok() || usable);
  if (usable && LdnsParse(msg) != nullptr && LdnsAgreesOnRecords(msg) && !answer.ok()) {
    std::fprintf(stderr, "SynthesizeAnswer: %s\n", answer.status().ToString().c_str());
    FUZZ_CHECK(answer.status().code() == absl::StatusCode::kOutOfRange);  // over 64 KiB
  }
  // A candidate whose records ldns reads across their RDLENGTH gets no answer: it would be built
  // from ldns's misreading (docs/fuzzing.md, finding 2, fixed).
  FUZZ_CHECK(!answer.ok() || LdnsAgreesOnRecords(msg));
  if (!answer.ok()) return 0;
  CheckSynthesized(*answer, qname, qtype, cand, msg, state, cap, ctl);
  return 0;
}
