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
  if (st == LayoutStatus::kTooManyRecords) {
    e.result = InsertResult::kTooLarge;
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
    FUZZ_CHECK(proxy::ResponseMatchesQuestion(msg, msg.subspan(dns::kHeaderSize, qlen),
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
