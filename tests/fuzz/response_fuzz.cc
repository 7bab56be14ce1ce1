// Fuzz target: one upstream response through what the proxy does with it. ParseResponseLayout
// (checked against ldns), CopyWithoutOpt, ResponseCache::Insert under a fixed key and Lookup at
// several times (sizes, bytes, TTL clamping and aging, stale serving, expiry), a SERVFAIL that
// must not displace it, Erase, and FinishReply of both the relayed and the cached body for a
// client that asked the response's question.
//
// Input: one control byte, then the response's wire bytes. Control bits: 0 the client query has
// EDNS, 1 DO, 2 AD, 3 CD; 4-7 pick how many seconds pass before the second lookup (kElapsed).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "cache/cache_key.h"
#include "cache/response_cache.h"
#include "dns/wire.h"
#include "proxy/reply.h"
#include "tests/fuzz/fuzz_util.h"

// Last: ldns's headers #define bool, true and false, which breaks C++ headers after them.
#include <ldns/ldns.h>

namespace nodedns::fuzz {
namespace {

using cache::EntryKind;
using cache::InsertResult;
using cache::LookupResult;
using dns::LayoutStatus;
using dns::ResponseLayout;

constexpr uint32_t kElapsed[16] = {0,   1,   2,    4,    5,    29,   30,    59,
                                   299, 300, 3599, 3600, 3601, 7201, 86400, 90001};
constexpr uint64_t kNow = 1'000'000'000;           // ms on the cache's monotonic clock
constexpr uint8_t kKeyName[] = "\4fuzz\7example";  // the NUL is the root label

void CheckLayout(std::span<const uint8_t> msg, LayoutStatus st, const ResponseLayout& l) {
  ResponseLayout again;
  FUZZ_CHECK(dns::ParseResponseLayout(msg, again) == st);
  if (st != LayoutStatus::kOk) return;
  FUZZ_CHECK(msg.size() >= dns::kHeaderSize && msg.size() <= dns::kMaxMessage);
  FUZZ_CHECK(l.flags == dns::HeaderFlags(msg) && l.rcode == (l.flags & 0xf));
  FUZZ_CHECK(l.ancount == dns::AnCount(msg) && l.nscount == dns::NsCount(msg) &&
             l.arcount == dns::ArCount(msg));
  FUZZ_CHECK(dns::kHeaderSize <= l.question_end && l.question_end <= l.end);
  FUZZ_CHECK(l.end <= msg.size());
  const size_t rrs = size_t{l.ancount} + l.nscount + l.arcount;
  FUZZ_CHECK(l.n_ttls == rrs - (l.opt_offset ? 1 : 0));
  for (size_t i = 0; i < l.n_ttls; ++i) {
    FUZZ_CHECK(l.ttl_offsets[i] >= l.question_end && l.ttl_offsets[i] + 6u <= l.end);
    if (i > 0) FUZZ_CHECK(l.ttl_offsets[i] > l.ttl_offsets[i - 1] + 4);
    if (l.opt_offset) FUZZ_CHECK(l.ttl_offsets[i] < l.opt_offset || l.ttl_offsets[i] > l.opt_end);
  }
  if (l.opt_offset) {
    FUZZ_CHECK(l.opt_offset >= l.question_end && l.opt_offset + dns::kOptRecordSize <= l.opt_end);
    FUZZ_CHECK(l.opt_end <= l.end);
  }
  if (l.soa_ttl_offset) {
    FUZZ_CHECK(std::find(l.ttl_offsets, l.ttl_offsets + l.n_ttls, l.soa_ttl_offset) !=
               l.ttl_offsets + l.n_ttls);
    FUZZ_CHECK(dns::Get16(msg.data() + l.soa_ttl_offset - 4) == dns::type::kSOA);
  }
}

// ldns, the independent parser, record by record from the boundaries we found: it must end each
// name where SkipName does (compression pointers included) and read the type and TTL where our
// offsets say they are. (Not ldns_wire2pkt on the whole message: ldns 1.8 does not skip rdata
// bytes past the fields it knows, so after such a record its boundaries are not the RFC's.)
void CompareWithLdns(std::span<const uint8_t> msg, const ResponseLayout& l) {
  const size_t qd = dns::QdCount(msg);
  const size_t total = qd + l.ancount + l.nscount + l.arcount;
  size_t off = dns::kHeaderSize;
  size_t t = 0;  // index into l.ttl_offsets
  for (size_t i = 0; i < total; ++i) {
    const ldns_pkt_section section = i < qd                           ? LDNS_SECTION_QUESTION
                                     : i < qd + l.ancount             ? LDNS_SECTION_ANSWER
                                     : i < qd + l.ancount + l.nscount ? LDNS_SECTION_AUTHORITY
                                                                      : LDNS_SECTION_ADDITIONAL;
    const size_t after_name = *dns::SkipName(msg, off);
    const size_t next = section == LDNS_SECTION_QUESTION
                            ? after_name + 4
                            : after_name + 10 + dns::Get16(msg.data() + after_name + 8);
    const bool opt = section == LDNS_SECTION_ADDITIONAL && off == l.opt_offset;
    if (section != LDNS_SECTION_QUESTION && !opt) {
      FUZZ_CHECK(t < l.n_ttls && l.ttl_offsets[t] == after_name + 4);
      ++t;
    }
    size_t pos = off;
    ldns_rr* rr = nullptr;
    if (ldns_wire2rr(&rr, msg.data(), msg.size(), &pos, section) == LDNS_STATUS_OK) {
      FUZZ_CHECK(ldns_rr_get_type(rr) == dns::Get16(msg.data() + after_name));
      FUZZ_CHECK(ldns_rr_get_class(rr) == dns::Get16(msg.data() + after_name + 2));
      if (section != LDNS_SECTION_QUESTION && !opt) {
        FUZZ_CHECK(ldns_rr_ttl(rr) == dns::Get32(msg.data() + after_name + 4));
      }
      if (section == LDNS_SECTION_QUESTION) FUZZ_CHECK(pos == next);
      ldns_rr_free(rr);
    }
    off = next;
  }
  FUZZ_CHECK(off == l.end && t == l.n_ttls);
}

// The name rules of ParseResponseLayout (wire.h), read again independently and slowly: a
// vector<bool> of the offsets where names walked in message order have a label, pointer or root
// byte; every name expanded byte by byte into a vector, following its pointers; RDATA shapes as
// data. Returns whether the whole message is acceptable, so that both directions are checked:
// what ParseResponseLayout accepts obeys the rules, and what it refuses breaks one. ldns must read
// every name accepted here as this expansion (its own decompressor; stricter on nothing we allow).
class IndependentWalk {
 public:
  explicit IndependentWalk(std::span<const uint8_t> msg) : msg_(msg), starts_(msg.size()) {}

  bool Run() {
    if (msg_.size() < dns::kHeaderSize || msg_.size() > dns::kMaxMessage) return false;
    size_t off = dns::kHeaderSize;
    for (size_t i = 0; i < dns::QdCount(msg_); ++i) {
      if (!Name(off, msg_.size(), true) || off + 4 > msg_.size()) return false;
      off += 4;
    }
    const size_t an = dns::AnCount(msg_), ns = dns::NsCount(msg_), ar = dns::ArCount(msg_);
    bool seen_opt = false;
    for (size_t i = 0; i < an + ns + ar; ++i) {
      if (!Name(off, msg_.size(), true) || off + 10 > msg_.size()) return false;
      const uint16_t type = dns::Get16(&msg_[off]);
      const uint16_t rclass = dns::Get16(&msg_[off + 2]);
      const size_t end = off + 10 + dns::Get16(&msg_[off + 8]);
      if (end > msg_.size()) return false;
      if (type == dns::type::kOPT) {
        if (seen_opt || i < an + ns) return false;
        seen_opt = true;
      }
      off += 10;
      const bool empty_delete = off == end && (rclass == 254 || rclass == 255);  // RFC 2136
      if (!empty_delete && !Rdata(type, off, end)) return false;
      off = end;
    }
    return true;
  }

 private:
  // RDATA shapes: kN a name that may hold pointers, kU one that may not, kS a character-string,
  // kRest anything to the end; a positive number: that many fixed bytes. Without kRest the
  // shape must fill RDLENGTH exactly.
  static constexpr int kN = -1, kU = -2, kS = -3, kRest = -4;
  static std::vector<int> Shape(uint16_t type) {
    switch (type) {
      case 2:
      case 3:
      case 4:
      case 5:
      case 7:
      case 8:
      case 9:
      case 12:  // NS .. PTR
        return {kN};
      case 6:
        return {kN, kN, 20};  // SOA
      case 14:
      case 17:
        return {kN, kN};  // MINFO, RP
      case 15:
      case 18:
      case 21:
        return {2, kN};  // MX, AFSDB, RT
      case 26:
        return {2, kN, kN};  // PX
      case 33:
        return {6, kN};  // SRV
      case 35:
        return {4, kS, kS, kS, kN};  // NAPTR
      case 36:
        return {2, kU};  // KX
      case 39:
        return {kU};  // DNAME
      case 30:
        return {kN, kRest};  // NXT
      case 47:
        return {kU, kRest};  // NSEC
      case 24:
        return {18, kN, kRest};  // SIG
      case 46:
        return {18, kU, kRest};  // RRSIG
      default:
        return {kRest};
    }
  }

  bool Rdata(uint16_t type, size_t off, size_t end) {
    for (const int field : Shape(type)) {
      if (field == kRest) return true;
      if (field == kN || field == kU) {
        if (!Name(off, end, field == kN)) return false;
      } else if (field == kS) {
        if (off >= end || end - off < 1u + msg_[off]) return false;
        off += 1 + msg_[off];
      } else {
        if (end - off < size_t(field)) return false;
        off += field;
      }
    }
    return off == end;
  }

  // The name at `off`, its own bytes before `limit`; on success `off` is just past it.
  bool Name(size_t& off, size_t limit, bool pointers_allowed) {
    const size_t start = off;
    std::vector<size_t> here;  // offsets of this name's own labels, pointer and root byte
    std::vector<uint8_t> expanded;
    size_t pos = off;
    size_t own_end = 0;
    int hops = 0;
    bool in_place = true;
    while (true) {
      if (pos >= (in_place ? limit : msg_.size())) return false;
      const uint8_t b = msg_[pos];
      if (in_place) here.push_back(pos);
      if (b >= 0xc0) {
        if (pos + 1 >= (in_place ? limit : msg_.size())) return false;
        const size_t target = (b & 0x3f) * 256 + msg_[pos + 1];
        if (in_place) {
          if (!pointers_allowed) return false;
          if (target >= start || !starts_[target]) return false;
          own_end = pos + 2;
          in_place = false;
        } else {
          FUZZ_CHECK(target < pos && starts_[target]);  // checked when its own name was walked
        }
        if (++hops > dns::kMaxPointerHops) return false;
        pos = target;
        continue;
      }
      if (b >= 0x40) return false;  // 01 and 10: extended and unassigned label types
      if (pos + 1 + b > (in_place ? limit : msg_.size())) return false;
      expanded.insert(expanded.end(), msg_.begin() + pos, msg_.begin() + pos + 1 + b);
      // At most 255 bytes with the root label, which must still fit after a non-root one.
      if (expanded.size() + (b == 0 ? 0 : 1) > dns::kMaxNameWire) return false;
      if (b == 0) {
        if (in_place) own_end = pos + 1;
        break;
      }
      pos += 1 + b;
    }
    for (const size_t h : here) starts_[h] = true;
    off = own_end;
    // ldns's decompressor ends the name in the same place and reads the same name.
    ldns_rdf* rdf = nullptr;
    size_t ldns_pos = start;
    FUZZ_CHECK(ldns_wire2dname(&rdf, msg_.data(), msg_.size(), &ldns_pos) == LDNS_STATUS_OK);
    FUZZ_CHECK(ldns_pos == own_end);
    FUZZ_CHECK(ldns_rdf_size(rdf) == expanded.size() &&
               std::memcmp(ldns_rdf_data(rdf), expanded.data(), expanded.size()) == 0);
    ldns_rdf_deep_free(rdf);
    // So does ours, which the worker uses on cached CNAME targets.
    uint8_t ours[dns::kMaxNameWire];
    FUZZ_CHECK(dns::ExpandName(msg_, start, ours) == expanded.size());
    FUZZ_CHECK(std::memcmp(ours, expanded.data(), expanded.size()) == 0);
    return true;
  }

  std::span<const uint8_t> msg_;
  std::vector<bool> starts_;
};

struct Expectation {
  InsertResult result = InsertResult::kInserted;
  EntryKind kind = EntryKind::kAnswer;
  std::vector<uint32_t> ttls;  // per TTL field, as stored
  uint32_t lifetime = 0;       // seconds
};

// What Insert must do, from the layout and the policy in response_cache.h (RFC 2308, RFC 2181 §8).
Expectation Expect(std::span<const uint8_t> msg, LayoutStatus st, const ResponseLayout& l,
                   const cache::CacheSettings& s) {
  Expectation e;
  if (st == LayoutStatus::kMalformed || (st == LayoutStatus::kOk && !(l.flags & dns::flag::kQR))) {
    e.result = InsertResult::kMalformed;
    return e;
  }
  if ((l.flags & dns::flag::kTC) || (l.opt_offset && (l.opt_ttl >> 24) != 0) ||
      (l.opt_offset && l.opt_end != l.end)) {
    e.result = InsertResult::kNotCacheable;
    return e;
  }
  switch (l.rcode) {
    case dns::rcode::kNoError:
      e.kind = l.ancount > 0 ? EntryKind::kAnswer : EntryKind::kNoData;
      break;
    case dns::rcode::kNxDomain:
      e.kind = EntryKind::kNxDomain;
      break;
    case dns::rcode::kServFail:
      e.kind = EntryKind::kServFail;
      break;
    default:
      e.result = InsertResult::kNotCacheable;
      return e;
  }
  const bool negative = e.kind == EntryKind::kNxDomain || e.kind == EntryKind::kNoData;
  if (negative && l.soa_ttl_offset == 0) {
    e.result = InsertResult::kNoTtl;
    return e;
  }
  uint32_t lifetime = UINT32_MAX;
  for (size_t i = 0; i < l.n_ttls; ++i) {
    uint32_t ttl = dns::Get32(msg.data() + l.ttl_offsets[i]);
    if (ttl > INT32_MAX) ttl = 0;
    if (negative && l.ttl_offsets[i] == l.soa_ttl_offset) {
      ttl = std::min({ttl, l.soa_minimum, s.max_negative_ttl});
    } else if (negative) {
      ttl = std::min(ttl, s.max_negative_ttl);
    } else if (e.kind == EntryKind::kServFail) {
      ttl = std::min(ttl, s.servfail_ttl);
    } else {
      ttl = std::clamp(ttl, s.min_ttl, s.max_ttl);
    }
    e.ttls.push_back(ttl);
    lifetime = std::min(lifetime, ttl);
  }
  if (e.kind == EntryKind::kServFail) lifetime = s.servfail_ttl;
  if (lifetime == 0 || lifetime == UINT32_MAX) {
    e.result = InsertResult::kNoTtl;
    return e;
  }
  e.lifetime = lifetime;
  return e;
}

// A hit's bytes: the response without OPT (ARCOUNT one less), TTL fields as `ttls`.
void CheckHitBytes(std::span<const uint8_t> out, std::span<const uint8_t> msg,
                   const ResponseLayout& l, const std::vector<uint32_t>& ttls) {
  const size_t wire_size = l.opt_offset ? l.opt_offset : l.end;
  FUZZ_CHECK(out.size() == wire_size);
  std::vector<uint8_t> expected(msg.begin(), msg.begin() + wire_size);
  if (l.opt_offset) dns::Put16(expected.data() + 10, l.arcount - 1);
  for (size_t i = 0; i < l.n_ttls; ++i) dns::Put32(expected.data() + l.ttl_offsets[i], ttls[i]);
  FUZZ_CHECK(std::equal(out.begin(), out.end(), expected.begin()));
  // What the cache serves parses again, with the same records and no OPT.
  ResponseLayout back;
  FUZZ_CHECK(dns::ParseResponseLayout(out, back) == LayoutStatus::kOk);
  FUZZ_CHECK(back.end == out.size() && back.opt_offset == 0 && back.n_ttls == l.n_ttls);
}

// Worker::CompletePending and the hit path: the body becomes the reply to a client that asked
// the response's question (in another case), over UDP and over TCP.
void CheckClientReply(std::span<const uint8_t> body, std::span<const uint8_t> msg, uint8_t ctl) {
  const auto qlen = dns::PlainNameLength(msg, dns::kHeaderSize);
  const size_t qend = dns::kHeaderSize + *qlen + 4;
  std::vector<uint8_t> qname(msg.begin() + dns::kHeaderSize, msg.begin() + qend - 4);
  for (uint8_t& c : qname) {
    if (c >= 'a' && c <= 'z') c -= 32;
  }
  const uint16_t flags = (ctl & 4 ? dns::flag::kAD : 0) | (ctl & 8 ? dns::flag::kCD : 0);
  const std::vector<uint8_t> query =
      MakeQuery(0xbeef, qname, dns::Get16(msg.data() + qend - 4), dns::Get16(msg.data() + qend - 2),
                flags, ctl & 1, ctl & 2);
  dns::QueryInfo q;
  FUZZ_CHECK(dns::ParseQuery(query, q) == dns::QueryStatus::kOk);
  FUZZ_CHECK(q.question_end == qend);
  const size_t opt = q.has_edns ? dns::kOptRecordSize : 0;
  for (const size_t limit :
       {std::min<size_t>(q.MaxUdpReply(), dns::kEdnsUdpSize), size_t{dns::kMaxMessage}}) {
    std::vector<uint8_t> out(body.size() + dns::kOptRecordSize);
    std::memcpy(out.data(), body.data(), body.size());
    bool truncated = false;
    const size_t n = proxy::FinishReply(out, body.size(), query, q, limit, &truncated);
    FUZZ_CHECK(truncated == (body.size() + opt > limit));
    CheckFinishedReply({out.data(), n}, truncated, query, q, dns::HeaderFlags(body), body.size(),
                       dns::AnCount(body), limit);
  }
}

}  // namespace
}  // namespace nodedns::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nodedns;
  using namespace nodedns::fuzz;
  if (size == 0) return 0;
  const uint8_t ctl = data[0];
  // A heap copy of exactly the message: reading past it is an ASan report.
  const std::vector<uint8_t> copy(data + 1, data + size);
  const std::span<const uint8_t> msg(copy);

  ResponseLayout layout;
  const LayoutStatus st = dns::ParseResponseLayout(msg, layout);
  CheckLayout(msg, st, layout);
  if (st == LayoutStatus::kOk) CompareWithLdns(msg, layout);
  // The name rules, read independently: kOk exactly when every name obeys them.
  FUZZ_CHECK(IndependentWalk(msg).Run() == (st == LayoutStatus::kOk));

  // CopyWithoutOpt: the relayed body of a miss.
  std::vector<uint8_t> relayed(msg.size());
  const size_t relayed_size = proxy::CopyWithoutOpt(msg, relayed);
  const bool relayable =
      st == LayoutStatus::kOk &&
      (!layout.opt_offset || (layout.opt_end == layout.end && (layout.opt_ttl >> 24) == 0));
  FUZZ_CHECK((relayed_size != 0) == relayable);
  if (relayable) {
    const size_t wire_size = layout.opt_offset ? layout.opt_offset : layout.end;
    std::vector<uint32_t> ttls;
    for (size_t i = 0; i < layout.n_ttls; ++i) {
      ttls.push_back(dns::Get32(msg.data() + layout.ttl_offsets[i]));
    }
    FUZZ_CHECK(relayed_size == wire_size);
    CheckHitBytes({relayed.data(), relayed_size}, msg, layout, ttls);
  }

  // Does the response carry one plain question, the shape the worker relays to a client?
  const bool one_question =
      msg.size() >= dns::kHeaderSize && dns::QdCount(msg) == 1 &&
      dns::PlainNameLength(msg, dns::kHeaderSize) &&
      dns::kHeaderSize + *dns::PlainNameLength(msg, dns::kHeaderSize) + 4 <= msg.size();
  if (one_question) {
    const size_t qlen = *dns::PlainNameLength(msg, dns::kHeaderSize);
    const uint8_t* tail = msg.data() + dns::kHeaderSize + qlen;
    FUZZ_CHECK(dns::ResponseMatchesQuestion(msg, msg.subspan(dns::kHeaderSize, qlen),
                                              dns::Get16(tail), dns::Get16(tail + 2)));
    if (relayable) CheckClientReply({relayed.data(), relayed_size}, msg, ctl);
  }

  // The cache, fresh for every input so that each run stands alone.
  cache::CacheSettings settings;
  settings.capacity_bytes = size_t{4} << 20;
  settings.shards = 1;
  cache::ResponseCache cache(settings);
  std::unique_ptr<cache::CacheThread> thread = cache.RegisterThread();
  const cache::CacheKey key(kKeyName, dns::type::kA, dns::kClassIN, false, false);
  const Expectation want = Expect(msg, st, layout, settings);
  const cache::InsertResult got = cache.Insert(*thread, key, msg, kNow);
  const bool stored = want.result == InsertResult::kInserted;
  if (got != want.result) {
    std::fprintf(stderr, "Insert returned %d, expected %d\n", int(got), int(want.result));
  }
  FUZZ_CHECK(got == want.result);
  FUZZ_CHECK(cache.Stats().entries == (stored ? 1u : 0u));
  FUZZ_CHECK(cache.Stats().bytes <= settings.capacity_bytes);

  const size_t wire_size = layout.opt_offset ? layout.opt_offset : layout.end;
  std::vector<uint8_t> out(stored ? wire_size : msg.size() + 1);
  LookupResult r = cache.Lookup(*thread, key, kNow, out);
  if (!stored) {
    FUZZ_CHECK(r.status == LookupResult::Status::kMiss);
  } else {
    FUZZ_CHECK(r.status == LookupResult::Status::kHit);
    FUZZ_CHECK(r.kind == want.kind && r.size == wire_size && !r.refresh_wanted);
    CheckHitBytes({out.data(), r.size}, msg, layout, want.ttls);
    const uint32_t min_ttl =
        want.ttls.empty() ? UINT32_MAX : *std::min_element(want.ttls.begin(), want.ttls.end());
    FUZZ_CHECK(r.ttl == (want.ttls.empty() ? settings.servfail_ttl : min_ttl));
    if (one_question) CheckClientReply({out.data(), r.size}, msg, ctl);

    // One byte short: nothing copied, the size needed reported.
    std::vector<uint8_t> small(wire_size - 1);
    r = cache.Lookup(*thread, key, kNow, small);
    FUZZ_CHECK(r.status == LookupResult::Status::kTooSmall && r.size == wire_size);

    // Later: aged TTLs (whole seconds, never below zero), then stale, then gone.
    const uint32_t elapsed = kElapsed[ctl >> 4];
    const uint64_t later = kNow + uint64_t{elapsed} * 1000;
    const uint32_t stale = want.kind == EntryKind::kServFail ? 0 : settings.stale_ttl;
    for (const bool allow_stale : {false, true}) {
      r = cache.Lookup(*thread, key, later, out, allow_stale);
      if (elapsed < want.lifetime) {
        FUZZ_CHECK(r.status == LookupResult::Status::kHit && r.size == wire_size);
        std::vector<uint32_t> aged;
        for (const uint32_t t : want.ttls) aged.push_back(t > elapsed ? t - elapsed : 0);
        CheckHitBytes({out.data(), r.size}, msg, layout, aged);
      } else if (uint64_t{elapsed} < uint64_t{want.lifetime} + stale) {
        if (!allow_stale) {
          FUZZ_CHECK(r.status == LookupResult::Status::kExpired);
        } else {
          FUZZ_CHECK(r.status == LookupResult::Status::kStale && r.size == wire_size);
          FUZZ_CHECK(r.ttl == settings.stale_answer_ttl);
          CheckHitBytes({out.data(), r.size}, msg, layout,
                        std::vector<uint32_t>(want.ttls.size(), settings.stale_answer_ttl));
        }
      } else {
        FUZZ_CHECK(r.status == LookupResult::Status::kMiss);
      }
    }
  }

  // A SERVFAIL for the same key does not displace an answer that can still be served stale.
  std::vector<uint8_t> servfail =
      MakeQuery(0, kKeyName, dns::type::kA, dns::kClassIN, 0, false, false);
  dns::Put16(servfail.data() + 2,
             dns::flag::kQR | dns::flag::kRD | dns::flag::kRA | dns::rcode::kServFail);
  const InsertResult second = cache.Insert(*thread, key, servfail, kNow);
  const bool kept = stored && want.kind != EntryKind::kServFail;
  FUZZ_CHECK(second == (kept     ? InsertResult::kKeptExisting
                        : stored ? InsertResult::kReplaced
                                 : InsertResult::kInserted));
  std::vector<uint8_t> after(std::max(wire_size, servfail.size()));
  r = cache.Lookup(*thread, key, kNow, after);
  FUZZ_CHECK(r.status == LookupResult::Status::kHit);
  FUZZ_CHECK(r.kind == (kept ? want.kind : EntryKind::kServFail));
  FUZZ_CHECK(r.size == (kept ? wire_size : servfail.size()));

  FUZZ_CHECK(cache.Erase(*thread, key));
  FUZZ_CHECK(!cache.Erase(*thread, key));
  FUZZ_CHECK(cache.Lookup(*thread, key, kNow, after).status == LookupResult::Status::kMiss);
  FUZZ_CHECK(cache.Stats().entries == 0);
  thread->Quiescent();
  return 0;
}
