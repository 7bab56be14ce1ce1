// Fuzz target: one client datagram (or TCP message) through everything the data path does with it
// before the cache: ParseQuery, the error reply for what does not parse, and for what does the
// cache key, the upstream query, the TC=1 reply, FinishReply over a cached body, and the search
// rewrite's questions (learner evidence, PlanRewrite). Input: the query's wire bytes, nothing else.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "cache/cache_key.h"
#include "dns/socket_address.h"
#include "dns/wire.h"
#include "proxy/reply.h"
#include "proxy/search_path_learner.h"
#include "proxy/search_rewrite.h"
#include "tests/fuzz/fuzz_util.h"

// Last: ldns's headers #define bool, true and false, which breaks C++ headers after them.
#include <ldns/ldns.h>

namespace nodedns::fuzz {
namespace {

using dns::QueryInfo;
using dns::QueryStatus;

// The reply buffer of Worker::HandleTcpQuery: a header, the longest question and an OPT record.
constexpr size_t kErrorReplyBuffer = dns::kHeaderSize + dns::kMaxNameWire + 4 + dns::kOptRecordSize;

void CheckErrorReply(std::span<const uint8_t> query, const QueryInfo& q, QueryStatus st,
                     uint8_t rcode) {
  // Exactly the size the TCP path gives it: any overrun is a heap overflow under ASan.
  std::vector<uint8_t> out(kErrorReplyBuffer);
  const size_t n = proxy::BuildErrorReply(query, q, st, rcode, out);
  if (st == QueryStatus::kDrop) {
    FUZZ_CHECK(n == 0);  // never answer a response or an unreadable header (reflection loops)
    return;
  }
  FUZZ_CHECK(n >= dns::kHeaderSize && n <= out.size());
  const std::span<const uint8_t> reply(out.data(), n);
  dns::ResponseLayout layout;
  FUZZ_CHECK(dns::ParseResponseLayout(reply, layout) == dns::LayoutStatus::kOk);
  FUZZ_CHECK(layout.end == n);
  const uint16_t f = dns::HeaderFlags(reply);
  FUZZ_CHECK(dns::HeaderId(reply) == dns::HeaderId(query));
  FUZZ_CHECK(f & dns::flag::kQR);
  FUZZ_CHECK(dns::Opcode(f) == dns::Opcode(dns::HeaderFlags(query)));
  FUZZ_CHECK(bool(f & dns::flag::kRD) == bool(dns::HeaderFlags(query) & dns::flag::kRD));
  FUZZ_CHECK(bool(f & dns::flag::kRA) == (dns::Opcode(f) == 0));  // only QUERY recurses
  FUZZ_CHECK(!(f & (dns::flag::kAA | dns::flag::kTC)));
  FUZZ_CHECK(dns::AnCount(reply) == 0 && dns::NsCount(reply) == 0);
  FUZZ_CHECK(dns::QdCount(reply) <= 1);
  if (dns::QdCount(reply) == 1) {  // an echoed question is the query's, byte for byte
    FUZZ_CHECK(layout.question_end == q.question_end);
    FUZZ_CHECK(std::memcmp(reply.data() + dns::kHeaderSize, query.data() + dns::kHeaderSize,
                           q.question_end - dns::kHeaderSize) == 0);
  }
  FUZZ_CHECK(dns::ArCount(reply) == (q.has_edns ? 1 : 0));
  FUZZ_CHECK((layout.opt_offset != 0) == q.has_edns);
  if (st == QueryStatus::kBadVers) {  // BADVERS = 16: 0 in the header, 1 in the OPT's top byte
    FUZZ_CHECK((f & dns::flag::kRcodeMask) == 0);
    FUZZ_CHECK(q.has_edns && (layout.opt_ttl >> 24) == 1);
  } else {
    FUZZ_CHECK((f & dns::flag::kRcodeMask) == rcode);
    FUZZ_CHECK((layout.opt_ttl >> 24) == 0);
  }
  // What we send is never taken for a query by a peer running the same code.
  QueryInfo back;
  FUZZ_CHECK(dns::ParseQuery(reply, back) == QueryStatus::kDrop);
}

// ClassifyQuery and BuildLocalReply as both worker paths call them, with and without --chaos-text.
void CheckLocalReply(std::span<const uint8_t> query, const QueryInfo& q) {
  const bool plain = q.qclass == dns::kClassIN && !dns::IsMetaQtype(q.qtype);
  for (const bool chaos : {false, true}) {
    const proxy::LocalAnswer a = proxy::ClassifyQuery(query, q, chaos);
    FUZZ_CHECK((a == proxy::LocalAnswer::kNone) == plain);
    if (a == proxy::LocalAnswer::kNone) continue;
    FUZZ_CHECK(a != proxy::LocalAnswer::kChaos ||
               (chaos && q.qclass == dns::kClassCH && q.qtype == dns::type::kTXT));
    FUZZ_CHECK(a != proxy::LocalAnswer::kNotImp || q.qclass == dns::kClassIN);
    std::vector<uint8_t> out(proxy::kLocalReplyMax);  // exactly the worker's TCP buffer
    const std::string text(proxy::kMaxChaosText, 't');
    const size_t n = proxy::BuildLocalReply(query, q, a, text, out);
    FUZZ_CHECK(n >= q.question_end && n <= out.size());
    const std::span<const uint8_t> reply(out.data(), n);
    dns::ResponseLayout layout;
    FUZZ_CHECK(dns::ParseResponseLayout(reply, layout) == dns::LayoutStatus::kOk);
    FUZZ_CHECK(layout.end == n);
    FUZZ_CHECK(dns::HeaderId(reply) == q.id && dns::QdCount(reply) == 1);
    FUZZ_CHECK(std::memcmp(reply.data() + dns::kHeaderSize, query.data() + dns::kHeaderSize,
                           q.question_end - dns::kHeaderSize) == 0);
    FUZZ_CHECK((layout.opt_offset != 0) == q.has_edns);
    const uint8_t want = a == proxy::LocalAnswer::kNotImp    ? dns::rcode::kNotImp
                         : a == proxy::LocalAnswer::kRefused ? dns::rcode::kRefused
                                                             : dns::rcode::kNoError;
    FUZZ_CHECK(layout.rcode == want);
    FUZZ_CHECK(dns::AnCount(reply) == (a == proxy::LocalAnswer::kChaos ? 1 : 0));
    FUZZ_CHECK(bool(layout.flags & dns::flag::kAA) == (a == proxy::LocalAnswer::kChaos));
    QueryInfo back;
    FUZZ_CHECK(dns::ParseQuery(reply, back) == QueryStatus::kDrop);
  }
}

// ldns, the independent parser: when both accept the message, they read the same question.
void CompareWithLdns(std::span<const uint8_t> query, const QueryInfo& q) {
  ldns_pkt* pkt = nullptr;
  if (ldns_wire2pkt(&pkt, query.data(), query.size()) != LDNS_STATUS_OK) return;
  const ldns_rr_list* question = ldns_pkt_question(pkt);
  FUZZ_CHECK(ldns_rr_list_rr_count(question) == 1);
  const ldns_rr* rr = ldns_rr_list_rr(question, 0);
  const ldns_rdf* owner = ldns_rr_owner(rr);
  FUZZ_CHECK(ldns_rdf_size(owner) == q.qname_length);
  FUZZ_CHECK(std::memcmp(ldns_rdf_data(owner), query.data() + dns::kHeaderSize, q.qname_length) ==
             0);
  FUZZ_CHECK(ldns_rr_get_type(rr) == q.qtype);
  FUZZ_CHECK(ldns_rr_get_class(rr) == q.qclass);
  FUZZ_CHECK(ldns_pkt_id(pkt) == q.id);
  ldns_pkt_free(pkt);
}

void CheckCacheKey(std::span<const uint8_t> qname, const QueryInfo& q) {
  const cache::CacheKey key(qname, q.qtype, q.qclass, q.do_bit, q.cd());
  FUZZ_CHECK(key.qname_length() == qname.size());
  FUZZ_CHECK(key.hash() == cache::HashKeyBytes(key.bytes()));
  const std::vector<uint8_t> lower = Lowercase(qname);
  FUZZ_CHECK(std::equal(lower.begin(), lower.end(), key.bytes().begin()));
  // Case does not split the cache (RFC 4343); DO and CD do.
  std::vector<uint8_t> upper(qname.begin(), qname.end());
  for (uint8_t& c : upper) c = (c >= 'a' && c <= 'z') ? c - 32 : c;
  cache::CacheKey other;
  other.Assign(upper, q.qtype, q.qclass, q.do_bit, q.cd());
  FUZZ_CHECK(other == key);
  other.Assign(qname, q.qtype, q.qclass, !q.do_bit, q.cd());
  FUZZ_CHECK(!(other == key));
  other.Assign(qname, q.qtype, q.qclass, q.do_bit, !q.cd());
  FUZZ_CHECK(!(other == key));
}

void CheckUpstreamQuery(std::span<const uint8_t> qname, const QueryInfo& q) {
  const std::vector<uint8_t> lower = Lowercase(qname);
  std::vector<uint8_t> out(dns::kHeaderSize + lower.size() + 4 + dns::kOptRecordSize);
  const size_t n = proxy::BuildUpstreamQuery(lower, q.qtype, q.qclass, q.do_bit, q.cd(), out);
  FUZZ_CHECK(n == out.size());
  QueryInfo up;
  FUZZ_CHECK(dns::ParseQuery(out, up) == QueryStatus::kOk);
  FUZZ_CHECK(up.id == 0 && up.rd() && up.cd() == q.cd());
  FUZZ_CHECK(!(up.flags & (dns::flag::kAD | dns::flag::kTC | dns::flag::kAA)));
  FUZZ_CHECK(up.qname_length == lower.size());
  FUZZ_CHECK(std::memcmp(out.data() + dns::kHeaderSize, lower.data(), lower.size()) == 0);
  FUZZ_CHECK(up.qtype == q.qtype && up.qclass == q.qclass);
  FUZZ_CHECK(up.has_edns && up.udp_size == dns::kEdnsUdpSize && up.do_bit == q.do_bit);
  // An upstream reply to it is recognised as answering the client's question.
  std::vector<uint8_t> reply(out.begin(), out.end());
  dns::Put16(reply.data() + 2, dns::flag::kQR | dns::flag::kRD | dns::flag::kRA);
  FUZZ_CHECK(dns::ResponseMatchesQuestion(reply, qname, q.qtype, q.qclass));
}

void CheckTruncatedReply(std::span<const uint8_t> query, const QueryInfo& q) {
  std::vector<uint8_t> out(q.question_end + (q.has_edns ? dns::kOptRecordSize : 0));
  const size_t n = proxy::BuildTruncatedReply(query, q, out);
  FUZZ_CHECK(n == out.size());
  CheckFinishedReply(out, /*truncated=*/true, query, q, /*upstream_flags=*/0, q.question_end, 0,
                     q.question_end + (q.has_edns ? dns::kOptRecordSize : 0));
}

// A cached body for this question (in upstream's case: lowercase), shaped by the query's ID so
// that the fuzzer reaches every size around the 512 and 1232 byte limits.
void CheckFinishReply(std::span<const uint8_t> query, const QueryInfo& q) {
  const uint16_t answers = (q.id >> 4) % 96;
  const uint16_t upstream_flags = dns::flag::kQR | (q.id & 0x8 ? dns::flag::kAD : 0) |
                                  (q.id & 0x4 ? dns::flag::kAA : 0) |
                                  (q.id & 0x3 ? dns::rcode::kNxDomain : dns::rcode::kNoError);
  std::vector<uint8_t> body(q.question_end);
  dns::Put16(body.data() + 2, upstream_flags);
  dns::Put16(body.data() + 4, 1);
  dns::Put16(body.data() + 6, answers);
  std::memcpy(body.data() + dns::kHeaderSize, query.data() + dns::kHeaderSize,
              q.question_end - dns::kHeaderSize);
  const std::vector<uint8_t> lower = Lowercase(query.subspan(dns::kHeaderSize, q.qname_length));
  std::memcpy(body.data() + dns::kHeaderSize, lower.data(), lower.size());
  for (uint16_t i = 0; i < answers; ++i) {
    const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, uint8_t(i)};
    body.insert(body.end(), rr, rr + sizeof rr);
  }
  for (const size_t limit :
       {q.MaxUdpReply() < dns::kEdnsUdpSize ? q.MaxUdpReply() : size_t{dns::kEdnsUdpSize},
        dns::kMaxMessage}) {
    std::vector<uint8_t> out(body.size() + dns::kOptRecordSize);
    std::memcpy(out.data(), body.data(), body.size());
    bool truncated = false;
    const size_t n = proxy::FinishReply(out, body.size(), query, q, limit, &truncated);
    FUZZ_CHECK(n <= out.size());
    FUZZ_CHECK(truncated == (body.size() + (q.has_edns ? dns::kOptRecordSize : 0) > limit));
    CheckFinishedReply({out.data(), n}, truncated, query, q, upstream_flags, body.size(), answers,
                       limit);
  }
}

// The search rewrite reads every client's question: the learner's evidence and the plan.
void CheckSearchRewrite(std::span<const uint8_t> qname, const QueryInfo& q) {
  static const proxy::SearchRewriteSettings settings = [] {
    const std::vector<std::string> node = {"example.com", "c.example.com", "."};
    return *proxy::SearchRewriteSettings::Make("cluster.local", node);
  }();
  const bool address = q.qtype == dns::type::kA || q.qtype == dns::type::kAAAA;
  const bool relevant = proxy::SearchPathLearner::IsRelevant(qname, q.qtype, settings.zone_wire);
  FUZZ_CHECK(!relevant || address);

  // The namespace this name would be the first search step of: the label before svc.<zone>.
  uint16_t offsets[128];
  const int labels = proxy::internal::LabelOffsets(qname, offsets);
  FUZZ_CHECK(labels >= 0);
  std::string ns;
  if (labels >= 5) {  // N.X.svc.cluster.local with N one label or more
    const size_t x = offsets[labels - 4];
    ns.assign(reinterpret_cast<const char*>(qname.data() + x + 1), qname[x]);
    for (char& c : ns) c = static_cast<char>(dns::LowerAscii(static_cast<uint8_t>(c)));
  }
  const bool expansion = !ns.empty() && proxy::IsNamespaceName(ns) &&
                         proxy::MaybeExpansion(qname, ns, settings.zone_wire);
  FUZZ_CHECK(!expansion ||
             proxy::SearchPathLearner::IsRelevant(qname, dns::type::kA, settings.zone_wire));
  const std::string plan_ns = ns.empty() ? "default" : ns;
  const auto plan = proxy::PlanRewrite(qname, q.qtype, plan_ns, settings);
  FUZZ_CHECK(plan.has_value() ==
             (address && proxy::MaybeExpansion(qname, plan_ns, settings.zone_wire)));
  if (plan) {
    const std::vector<uint8_t> lower = Lowercase(qname);
    FUZZ_CHECK(plan->stem_length > 0 && plan->stem_length < qname.size());
    FUZZ_CHECK(!plan->candidates.empty());
    for (size_t i = 0; i < plan->candidates.size(); ++i) {
      const std::vector<uint8_t>& c = plan->candidates[i];
      FUZZ_CHECK(c.size() <= dns::kMaxNameWire);
      FUZZ_CHECK(dns::PlainNameLength(c, 0) == c.size());  // a whole, valid name
      FUZZ_CHECK(std::equal(lower.begin(), lower.begin() + plan->stem_length, c.begin()));
      FUZZ_CHECK(Lowercase(c) == c);
      FUZZ_CHECK(c != lower);  // never the question itself
      for (size_t j = 0; j < i; ++j) FUZZ_CHECK(plan->candidates[j] != c);
    }
  }

  // Evidence: NXDOMAIN for N.X.svc.<zone>, then a query for N.svc.<zone> (the plan's first
  // candidate) from the same address. That pair, and nothing less, teaches "X".
  if (!expansion || !address) return;
  const auto nsplan = proxy::PlanRewrite(qname, q.qtype, ns, settings);
  FUZZ_CHECK(nsplan.has_value());
  proxy::SearchPathLearner learner(settings.zone_wire, {});
  const auto client = *dns::SocketAddress::Parse("10.1.2.3:40000");
  learner.Observe(client, qname, q.qtype, dns::rcode::kNxDomain, 1000);
  FUZZ_CHECK(!learner.NamespaceView(client, 1000).has_value());  // one query teaches nothing
  learner.Observe(client, nsplan->candidates[0], q.qtype, dns::rcode::kNoError, 1500);
  const auto learned = learner.NamespaceView(client, 1500);
  FUZZ_CHECK(learned.has_value() && *learned == ns);
  FUZZ_CHECK(learner.counters().clients_learned == 1);
}

}  // namespace
}  // namespace nodedns::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nodedns;
  using namespace nodedns::fuzz;
  const std::span<const uint8_t> query(data, size);
  dns::QueryInfo q;
  const dns::QueryStatus st = dns::ParseQuery(query, q);

  // What ParseQuery promises about its result.
  dns::QueryInfo again;
  FUZZ_CHECK(dns::ParseQuery(query, again) == st);
  if (size < dns::kHeaderSize) FUZZ_CHECK(st == dns::QueryStatus::kDrop);
  if (size >= dns::kHeaderSize) {
    FUZZ_CHECK(q.id == dns::HeaderId(query) && q.flags == dns::HeaderFlags(query));
    FUZZ_CHECK((st == dns::QueryStatus::kDrop) == bool(q.flags & dns::flag::kQR));
  }
  if (q.question_end != 0) {  // the question was read
    FUZZ_CHECK(q.qname_length >= 1 && q.qname_length <= dns::kMaxNameWire);
    FUZZ_CHECK(q.question_end == dns::kHeaderSize + q.qname_length + 4);
    FUZZ_CHECK(q.question_end <= size);
    FUZZ_CHECK(dns::PlainNameLength(query, dns::kHeaderSize) == q.qname_length);
  }
  if (st == dns::QueryStatus::kOk) {
    FUZZ_CHECK(q.question_end != 0 && dns::QdCount(query) == 1);
    FUZZ_CHECK(dns::Opcode(q.flags) == 0);
  }
  if (st == dns::QueryStatus::kNotImp) FUZZ_CHECK(dns::Opcode(q.flags) != 0);
  if (q.question_end != 0) FUZZ_CHECK(dns::QdCount(query) == 1);
  if (!q.has_edns) FUZZ_CHECK(q.udp_size == 0 && !q.do_bit && q.edns_version == 0);
  FUZZ_CHECK(q.MaxUdpReply() >= dns::kClassicUdpSize);
  if (st == dns::QueryStatus::kBadVers) FUZZ_CHECK(q.has_edns && q.edns_version != 0);

  if (st != dns::QueryStatus::kOk) {
    CheckErrorReply(query, q, st, proxy::ErrorRcode(st));
    return 0;
  }
  CheckLocalReply(query, q);
  // SERVFAIL is what a parsed query gets when the upstream fails.
  CheckErrorReply(query, q, st, dns::rcode::kServFail);
  FUZZ_CHECK(q.edns_version == 0);
  const std::span<const uint8_t> qname = query.subspan(dns::kHeaderSize, q.qname_length);
  CompareWithLdns(query, q);
  CheckCacheKey(qname, q);
  CheckUpstreamQuery(qname, q);
  CheckTruncatedReply(query, q);
  CheckFinishReply(query, q);
  CheckSearchRewrite(qname, q);
  return 0;
}
