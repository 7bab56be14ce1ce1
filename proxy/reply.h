// Building replies on the data path: patching a cached or upstream response for one client, error
// replies, and the normalized query sent upstream. Pure functions over byte buffers, no allocation.
#ifndef NODEDNS_PROXY_REPLY_H_
#define NODEDNS_PROXY_REPLY_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "cache/response_cache.h"
#include "dns/wire.h"

namespace nodedns::proxy {

// Turns a response body in out[0..size) (header, question, records, no OPT) into the reply for
// the client whose query is `query`/`q`: the client's ID and qname case, RD and CD as asked, RA
// set, AA cleared (a cache is not authoritative), AD kept only if the client asked with AD or DO
// (RFC 6840 §5.7-5.8), an OPT record iff the query had one (RFC 6891 §7; advertising 1232 and
// echoing DO, RFC 3225), and — when `limit` is exceeded — truncation to header and question with
// TC=1 (RFC 1035 §4.2.1, RFC 6891 §7). `ede`: an Extended DNS Error (RFC 8914) the OPT record
// carries, when there is one (a client that sent no OPT gets none: RFC 8914 §3). `out` must hold
// at least size + kOptRecordSize bytes, size + kReplyTrailerMax with an `ede`. Returns the
// reply's size; sets *truncated when TC was set here.
size_t FinishReply(std::span<uint8_t> out, size_t size, std::span<const uint8_t> query,
                   const dns::QueryInfo& q, size_t limit, bool* truncated = nullptr,
                   uint16_t ede = 0xffff);

// Extended DNS Error INFO-CODEs (RFC 8914 §4) nodedns sends, and kNoEde for none.
inline constexpr uint16_t kEdeStaleAnswer = 3;  // §4.4: answered from expired data
inline constexpr uint16_t kNoEde = 0xffff;
// An EDE option without EXTRA-TEXT: OPTION-CODE 15, OPTION-LENGTH 2, INFO-CODE.
inline constexpr size_t kEdeOptionSize = 6;
// What FinishReply may append to a body: the OPT record and one EDE option. Callers leave this
// much room after the cached or upstream bytes they copy in.
inline constexpr size_t kReplyTrailerMax = dns::kOptRecordSize + kEdeOptionSize;

// Every reply built here rather than taken from the cache or upstream (errors, local answers)
// fits in this many bytes: an error reply is at most 12 + 255 + 4 + 11 = 282, a CHAOS answer at
// most 12 + 20 + 12 + kMaxChaosText + 2 + 11 = 457. 512 is also the smallest UDP limit (RFC 1035
// §4.2.1), so none of them is ever truncated.
inline constexpr size_t kLocalReplyMax = dns::kClassicUdpSize;

// The rcode of the error reply for a query ParseQuery did not accept (0 for kBadVers, whose rcode
// BuildErrorReply puts in the OPT record).
uint8_t ErrorRcode(dns::QueryStatus status);

// An error reply (FORMERR, SERVFAIL, NOTIMP, REFUSED, or BADVERS for kBadVers) to `query`: the
// query's ID, opcode, RD and CD; RA only for opcode QUERY (no other opcode gets recursion); the
// question echoed when exactly one was parsed (q.question_end != 0; NOTIMP included, as Knot and
// Unbound do); OPT iff the query had a valid one (q.has_edns; RFC 6891 §7). Returns 0 when nothing
// should be sent (the header is unreadable or the message is not a query). `out` holds at least
// kLocalReplyMax bytes.
size_t BuildErrorReply(std::span<const uint8_t> query, const dns::QueryInfo& q,
                       dns::QueryStatus status, uint8_t rcode, std::span<uint8_t> out);

// How a query that ParseQuery accepted is answered: forwarded (through the cache), or here.
enum class LocalAnswer : uint8_t {
  kNone,  // class IN and a data QTYPE or ANY: the cache, then upstream
  // A meta QTYPE (dns::IsMetaQtype: IXFR, AXFR, TSIG, TKEY, MAILB, MAILA, OPT, 128-254). NOTIMP,
  // the rcode for a kind of query the server does not support (RFC 1035 §4.1.1): RFC 6895 §3.1
  // gives these types meaning only within one message or one transfer, so there is nothing to look
  // up, cache or forward, and a node-local cache serves no zones (AXFR/IXFR, RFC 5936 §4.2 and
  // RFC 1995: transfers are between a primary and its secondaries). REFUSED would say "not for
  // you"; NOTIMP says "nobody gets this here", which is the case. Knot answers AXFR over UDP with
  // NOTIMP too; Unbound answers REFUSED (AXFR, IXFR) and FORMERR (the others).
  kNotImp,
  // A class other than IN: CH queries that are not an identity question (below), and HS, NONE,
  // ANY and every other class. Kubernetes names live in class IN only, and a CH query forwarded
  // upstream would return the upstream's identity, not ours. Knot and Unbound refuse CH, HS and
  // NONE the same way (both answer QCLASS ANY from their IN data; nodedns refuses it).
  kRefused,
  // CH TXT for version.bind, version.server, id.server or hostname.bind (RFC 4892) with
  // --chaos-text set: a TXT answer of our own (BuildLocalReply).
  kChaos,
  // Any query from a source outside --allow (allow_list.h), set by the front end before the
  // class is looked at: REFUSED, "not for you" (RFC 1035 §4.1.1), as Unbound's access-control
  // `refuse` answers. A reply the size of the query, so nothing to amplify; dropping instead
  // would leave a misconfigured client retrying until its timeouts.
  kNotAllowed,
};

// The longest --chaos-text: with it the CHAOS answer still fits kLocalReplyMax.
inline constexpr size_t kMaxChaosText = 400;

// The rare cases of ClassifyQuery (anything but class IN with a data QTYPE).
LocalAnswer ClassifyUnusualQuery(std::span<const uint8_t> query, const dns::QueryInfo& q,
                                 bool chaos_enabled);

// Where a parsed query (ParseQuery == kOk) goes; `chaos_enabled`: --chaos-text is set. The common
// case costs a class compare and a type range check, no memory access beyond `q`.
inline LocalAnswer ClassifyQuery(std::span<const uint8_t> query, const dns::QueryInfo& q,
                                 bool chaos_enabled) {
  if (q.qclass == dns::kClassIN && !dns::IsMetaQtype(q.qtype)) [[likely]] {
    return LocalAnswer::kNone;
  }
  return ClassifyUnusualQuery(query, q, chaos_enabled);
}

// The reply to a query ClassifyQuery answers locally (`answer` != kNone): NOTIMP or REFUSED as
// BuildErrorReply builds them, or for kChaos: NOERROR with AA (an authoritative answer of our own)
// and RA, the question, one CH TXT record with TTL 0 holding `chaos_text` (at most kMaxChaosText
// bytes) as character-strings of up to 255 bytes each (RFC 1035 §3.3.14), and OPT iff the query
// had one. `out` holds at least kLocalReplyMax bytes. Returns the size.
size_t BuildLocalReply(std::span<const uint8_t> query, const dns::QueryInfo& q, LocalAnswer answer,
                       std::string_view chaos_text, std::span<uint8_t> out);

// Header and question of `query` with TC=1 and NOERROR (plus OPT if the query had one): the reply
// to a UDP query whose answer is larger than any UDP reply. Returns the size.
size_t BuildTruncatedReply(std::span<const uint8_t> query, const dns::QueryInfo& q,
                           std::span<uint8_t> out);

// The query sent upstream for a miss: ID 0 (c-ares writes a random one), RD set, CD as the client
// asked, the question, and OPT with 1232 bytes and DO as asked; nothing else from the client.
// `qname` is the canonical (lowercase) wire name. Returns the size (out needs 12+255+4+11 bytes).
size_t BuildUpstreamQuery(std::span<const uint8_t> qname, uint16_t qtype, uint16_t qclass,
                          bool do_bit, bool cd_bit, std::span<uint8_t> out);

// The TTL limits a reply passed on without being cached gets, as the cache would have applied
// them on insert (cache::CacheSettings).
struct TtlLimits {
  uint32_t max_ttl = cache::CacheSettings{}.max_ttl;
  uint32_t max_negative_ttl = cache::CacheSettings{}.max_negative_ttl;
};

// Copies an upstream response into out without its OPT record. Returns 0 if the response is
// malformed, carries an extended rcode, or its OPT is not last (then it cannot be relayed as is).
// With `limits`, every TTL is rewritten as the cache would store it: a TTL with the top bit set
// is 0 (RFC 2181 §8), then at most max_ttl; in a negative answer (NXDOMAIN, or NOERROR without
// answers) at most max_negative_ttl, and the SOA's at most its MINIMUM field (RFC 2308 §5).
size_t CopyWithoutOpt(std::span<const uint8_t> response, std::span<uint8_t> out,
                      const TtlLimits* limits = nullptr);

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_REPLY_H_
