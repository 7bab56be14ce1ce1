// Building replies on the data path: patching a cached or upstream response for one client, error
// replies, and the normalized query sent upstream. Pure functions over byte buffers, no allocation.
#ifndef NODEDNS_PROXY_REPLY_H_
#define NODEDNS_PROXY_REPLY_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "dns/wire.h"

namespace nodedns::proxy {

// Turns a response body in out[0..size) (header, question, records, no OPT) into the reply for
// the client whose query is `query`/`q`: the client's ID and qname case, RD and CD as asked, RA
// set, AA cleared (a cache is not authoritative), AD kept only if the client asked with AD or DO
// (RFC 6840 §5.7-5.8), an OPT record iff the query had one (RFC 6891 §7; advertising 1232 and
// echoing DO, RFC 3225), and — when `limit` is exceeded — truncation to header and question with
// TC=1 (RFC 1035 §4.2.1, RFC 6891 §7). `out` must hold at least size + kOptRecordSize bytes.
// Returns the reply's size; sets *truncated when TC was set here.
size_t FinishReply(std::span<uint8_t> out, size_t size, std::span<const uint8_t> query,
                   const dns::QueryInfo& q, size_t limit, bool* truncated = nullptr);

// An error reply (FORMERR, SERVFAIL, NOTIMP, REFUSED, or BADVERS for kBadVers) to `query`. The
// question is echoed when it could be parsed; OPT is added when the query had one. Returns 0 when
// nothing should be sent (the header is unreadable or the message is not a query).
size_t BuildErrorReply(std::span<const uint8_t> query, const dns::QueryInfo& q,
                       dns::QueryStatus status, uint8_t rcode, std::span<uint8_t> out);

// Header and question of `query` with TC=1 and NOERROR (plus OPT if the query had one): the reply
// to a UDP query whose answer is larger than any UDP reply. Returns the size.
size_t BuildTruncatedReply(std::span<const uint8_t> query, const dns::QueryInfo& q,
                           std::span<uint8_t> out);

// The query sent upstream for a miss: ID 0 (c-ares writes a random one), RD set, CD as the client
// asked, the question, and OPT with 1232 bytes and DO as asked; nothing else from the client.
// `qname` is the canonical (lowercase) wire name. Returns the size (out needs 12+255+4+11 bytes).
size_t BuildUpstreamQuery(std::span<const uint8_t> qname, uint16_t qtype, uint16_t qclass,
                          bool do_bit, bool cd_bit, std::span<uint8_t> out);

// Does `response` answer exactly this question (name compared case-insensitively)?
bool ResponseMatchesQuestion(std::span<const uint8_t> response, std::span<const uint8_t> qname,
                             uint16_t qtype, uint16_t qclass);

// The TTL limits a reply passed on without being cached gets, as the cache would have applied
// them on insert (cache::CacheSettings).
struct TtlLimits {
  uint32_t max_ttl = 86400;
  uint32_t max_negative_ttl = 3600;
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
