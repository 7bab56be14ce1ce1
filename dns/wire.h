// Minimal DNS wire-format reading and writing for the data path (RFC 1035 §4, RFC 6891).
//
// This is deliberately not a general parser: it walks exactly what the proxy and the cache need
// (header, one question, the OPT record, RR boundaries and TTL positions) without allocating.
// Everything here is bounds-checked; malformed input yields an error value, never UB.
// ldns is the independent parser used by the tests to check these results.
#ifndef NODEDNS_DNS_WIRE_H_
#define NODEDNS_DNS_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace nodedns::dns {

inline constexpr size_t kHeaderSize = 12;
inline constexpr size_t kMaxNameWire = 255;  // RFC 1035 §3.1, including the root label
inline constexpr size_t kMaxLabel = 63;
inline constexpr size_t kMaxMessage = 65535;
// The most compression pointers a name may take to expand: ExpandName's limit, and the one
// ParseResponseLayout enforces, so that every name it accepts ExpandName can expand.
inline constexpr int kMaxPointerHops = 127;
// The UDP payload size nodedns advertises and uses upstream (DNS Flag Day 2020).
inline constexpr uint16_t kEdnsUdpSize = 1232;
// Without EDNS, a UDP reply may carry 512 bytes at most (RFC 1035 §4.2.1).
inline constexpr uint16_t kClassicUdpSize = 512;
// Size of the OPT pseudo-RR nodedns appends: root name, type, class, ttl, rdlength, no options.
inline constexpr size_t kOptRecordSize = 11;

namespace type {
inline constexpr uint16_t kA = 1;
inline constexpr uint16_t kNS = 2;
inline constexpr uint16_t kMD = 3;
inline constexpr uint16_t kMF = 4;
inline constexpr uint16_t kCNAME = 5;
inline constexpr uint16_t kSOA = 6;
inline constexpr uint16_t kMB = 7;
inline constexpr uint16_t kMG = 8;
inline constexpr uint16_t kMR = 9;
inline constexpr uint16_t kPTR = 12;
inline constexpr uint16_t kMINFO = 14;
inline constexpr uint16_t kMX = 15;
inline constexpr uint16_t kTXT = 16;
inline constexpr uint16_t kRP = 17;
inline constexpr uint16_t kAFSDB = 18;
inline constexpr uint16_t kRT = 21;
inline constexpr uint16_t kSIG = 24;
inline constexpr uint16_t kPX = 26;
inline constexpr uint16_t kAAAA = 28;
inline constexpr uint16_t kNXT = 30;
inline constexpr uint16_t kSRV = 33;
inline constexpr uint16_t kNAPTR = 35;
inline constexpr uint16_t kKX = 36;
inline constexpr uint16_t kDNAME = 39;
inline constexpr uint16_t kOPT = 41;
inline constexpr uint16_t kRRSIG = 46;
inline constexpr uint16_t kTKEY = 249;
inline constexpr uint16_t kTSIG = 250;
inline constexpr uint16_t kNSEC = 47;
inline constexpr uint16_t kIXFR = 251;
inline constexpr uint16_t kAXFR = 252;
inline constexpr uint16_t kMAILB = 253;
inline constexpr uint16_t kMAILA = 254;
inline constexpr uint16_t kANY = 255;
}  // namespace type

// QTYPEs that name no data a resolver could look up: 128-254 are the QTYPE and meta-TYPE range of
// RFC 6895 §3.1 (TKEY, TSIG, IXFR, AXFR, MAILB, MAILA and unassigned), and OPT (41) is a meta-TYPE
// outside it. ANY (255) is a QTYPE that does ask for data and is not included. One subtraction and
// two compares, for the hit path.
inline bool IsMetaQtype(uint16_t qtype) {
  return static_cast<uint16_t>(qtype - 128) <= 254 - 128 || qtype == type::kOPT;
}

inline constexpr uint16_t kClassIN = 1;
inline constexpr uint16_t kClassCH = 3;  // CHAOS: server identity queries (version.bind, RFC 4892)
// RFC 2136 §2.4, §2.5: in these classes an RR may carry an empty RDATA whatever its type.
inline constexpr uint16_t kClassNONE = 254;
inline constexpr uint16_t kClassANY = 255;

namespace rcode {
inline constexpr uint8_t kNoError = 0;
inline constexpr uint8_t kFormErr = 1;
inline constexpr uint8_t kServFail = 2;
inline constexpr uint8_t kNxDomain = 3;
inline constexpr uint8_t kNotImp = 4;
inline constexpr uint8_t kRefused = 5;
}  // namespace rcode

// Header flag bits in the 16-bit flags word (RFC 1035 §4.1.1, RFC 4035 §3.2 for AD/CD).
namespace flag {
inline constexpr uint16_t kQR = 0x8000;
inline constexpr uint16_t kAA = 0x0400;
inline constexpr uint16_t kTC = 0x0200;
inline constexpr uint16_t kRD = 0x0100;
inline constexpr uint16_t kRA = 0x0080;
inline constexpr uint16_t kAD = 0x0020;
inline constexpr uint16_t kCD = 0x0010;
inline constexpr uint16_t kOpcodeMask = 0x7800;
inline constexpr uint16_t kRcodeMask = 0x000f;
}  // namespace flag
// The DO bit in the OPT record's TTL field (RFC 3225).
inline constexpr uint32_t kEdnsDoBit = 0x8000;
// The Extended DNS Error option's code (RFC 8914 §2).
inline constexpr uint16_t kEdnsOptionEde = 15;

inline uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t Get32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
inline void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void Put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// Header field accessors; callers check msg.size() >= kHeaderSize first.
inline uint16_t HeaderId(std::span<const uint8_t> m) { return Get16(m.data()); }
inline uint16_t HeaderFlags(std::span<const uint8_t> m) { return Get16(m.data() + 2); }
inline uint16_t QdCount(std::span<const uint8_t> m) { return Get16(m.data() + 4); }
inline uint16_t AnCount(std::span<const uint8_t> m) { return Get16(m.data() + 6); }
inline uint16_t NsCount(std::span<const uint8_t> m) { return Get16(m.data() + 8); }
inline uint16_t ArCount(std::span<const uint8_t> m) { return Get16(m.data() + 10); }
inline uint8_t Opcode(uint16_t flags) { return static_cast<uint8_t>((flags >> 11) & 0xf); }

// ASCII-only lowercase: DNS names compare case-insensitively for ASCII letters only (RFC 4343).
inline uint8_t LowerAscii(uint8_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// The same for 8 bytes at once (SWAR): label length bytes (< 64) and bytes >= 0x80 are left alone.
inline uint64_t LowerAsciiWord(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  const uint64_t low7 = w & (0x7f * kOnes);
  const uint64_t ge_a = low7 + (0x80 - 'A') * kOnes;      // top bit set where byte >= 'A'
  const uint64_t gt_z = low7 + (0x80 - 'Z' - 1) * kOnes;  // top bit set where byte > 'Z'
  const uint64_t upper = ge_a & ~gt_z & ~w & (0x80 * kOnes);
  return w | (upper >> 2);  // 0x80 >> 2 == 0x20, the case bit
}

// Returns the offset just past the (possibly compressed) name starting at `off`, or nullopt if
// the name is malformed or runs past the end. A compression pointer ends the name in place.
std::optional<size_t> SkipName(std::span<const uint8_t> msg, size_t off);

// Length of the uncompressed wire name at `off` (labels and the terminating root byte), or nullopt
// if it is malformed, longer than 255 bytes, or contains a compression pointer. Questions sent by
// stub resolvers never compress (nothing precedes them to point at).
std::optional<size_t> PlainNameLength(std::span<const uint8_t> msg, size_t off);

// Expands the possibly compressed name at `off` into `out` (uncompressed wire form). Follows at
// most kMaxPointerHops pointers and only backwards, which rules out loops. Returns the expanded
// length. It does not check where pointers land (ParseResponseLayout does): callers use it on
// messages that passed ParseResponseLayout, or only need a bounded, safe result.
std::optional<size_t> ExpandName(std::span<const uint8_t> msg, size_t off,
                                 uint8_t (&out)[kMaxNameWire]);

// Why a query cannot be answered normally.
enum class QueryStatus : uint8_t {
  kOk,
  kDrop,     // not a query (QR=1) or header unreadable: answering could feed a reflection loop
  kFormErr,  // RFC 1035 §4.1.1: QDCOUNT != 1, a malformed question, record or OPT (RFC 6891
             // §6.1.1-6.1.2), or bytes after the last record
  kNotImp,   // opcode other than QUERY (a well-formed message)
  kBadVers,  // EDNS version > 0 (RFC 6891 §6.1.3), whatever the opcode or QDCOUNT
};

// What the data path needs to know about a query, found without allocating.
struct QueryInfo {
  uint16_t id = 0;
  uint16_t flags = 0;
  uint16_t qname_offset = kHeaderSize;  // always 12; kept for clarity at call sites
  uint16_t qname_length = 0;            // uncompressed wire length, including the root byte
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  uint16_t question_end = 0;  // offset just past QCLASS
  bool has_edns = false;
  bool do_bit = false;
  uint16_t udp_size = 0;  // the client's advertised payload size; 0 without EDNS
  uint8_t edns_version = 0;

  bool rd() const { return flags & flag::kRD; }
  bool cd() const { return flags & flag::kCD; }
  // The largest UDP reply this client accepts (RFC 6891 §6.2.5: values below 512 mean 512).
  uint16_t MaxUdpReply() const {
    if (!has_edns) return kClassicUdpSize;
    return udp_size < kClassicUdpSize ? kClassicUdpSize : udp_size;
  }
};

// Parses a query's header, its single question and its OPT record (if any), in one pass over the
// whole message. `info` is filled as far as it could be read, so that an error reply can still be
// built: id and flags whenever the header is readable; the question (question_end != 0) when
// QDCOUNT is 1 and it parses; has_edns and the OPT fields whenever a valid OPT record was read,
// also for kNotImp, kBadVers and kFormErr (RFC 6891 §7: a reply to a query with OPT carries OPT).
// Checked in this order: malformed (kFormErr), EDNS version, opcode, QDCOUNT.
QueryStatus ParseQuery(std::span<const uint8_t> msg, QueryInfo& info);

// What the cache needs to know about a response to store and serve it without re-parsing.
struct ResponseLayout {
  // Every RR takes at least 11 bytes (a 1-byte owner, the root; type, class, TTL, RDLENGTH), so
  // a message of at most 65535 bytes holds at most this many after its header: every message
  // ParseResponseLayout accepts fits, and there is no "too many records" outcome.
  static constexpr size_t kMinRrSize = 1 + 10;
  static constexpr size_t kMaxTtls = (kMaxMessage - kHeaderSize) / kMinRrSize;
  static_assert(kHeaderSize + kMaxTtls * kMinRrSize <= kMaxMessage &&
                kHeaderSize + (kMaxTtls + 1) * kMinRrSize > kMaxMessage);
  uint8_t rcode = 0;
  uint16_t flags = 0;
  uint16_t ancount = 0, nscount = 0, arcount = 0;
  uint16_t question_end = 0;
  uint16_t n_ttls = 0;  // TTL fields of real RRs (OPT excluded)
  // Offsets of the 32-bit TTL fields; only the first n_ttls are written. Not zeroed on purpose:
  // that would cost 12 KB of stores for every layout, where a typical response has a few RRs.
  uint16_t ttl_offsets[kMaxTtls];
  uint16_t soa_ttl_offset = 0;  // first SOA in the authority section, 0 if none
  uint32_t soa_minimum = 0;     // its MINIMUM field (RFC 2308 §4)
  uint16_t opt_offset = 0;      // start of the OPT RR, 0 if none
  uint16_t opt_end = 0;         // end of the OPT RR
  uint32_t opt_ttl = 0;         // extended rcode, version and flags (RFC 6891 §6.1.3)
  uint16_t end = 0;             // offset just past the last RR
};

enum class LayoutStatus : uint8_t { kOk, kMalformed };

// Walks a response's question and every RR, recording TTL positions, the SOA and the OPT record.
// kMalformed unless the message is well-formed as far as a cache that stores and serves it must
// trust it (a malformed response is never cached or relayed: the proxy answers SERVFAIL):
//  - every RR ends inside the message; OPT only in the additional section, at most once;
//  - every name walked (questions, owners, and the names inside the RDATA of NS, MD, MF, CNAME,
//    SOA, MB, MG, MR, PTR, MINFO, MX, RP, AFSDB, RT, SIG, PX, NXT, SRV, NAPTR, KX, DNAME, NSEC and
//    RRSIG) has labels of at most 63 bytes (RFC 1035 §3.1; the 0x40 and 0x80 label types of
//    RFC 6891 §5 are not supported), and is at most 255 bytes once expanded;
//  - every compression pointer (RFC 1035 §4.1.4: "a prior occurance of the same name") points
//    before the start of the name it is in, to a label, pointer or root byte of a name walked
//    earlier in this message. That rules out loops, forward pointers, and pointers into the
//    header, into a label's bytes, into RR fixed fields or into RDATA that is not a walked name.
//    Labels reached by following a pointer belong to an earlier name, so they are targets too.
//    At most kMaxPointerHops pointers are followed per name;
//  - RDATA names carry pointers only in the types RFC 3597 §4 lets receivers decompress: those of
//    RFC 1035, and RP, AFSDB, RT, SIG, PX, NXT, NAPTR, SRV (old servers compressed those). KX,
//    DNAME, NSEC and RRSIG names must be uncompressed (RFC 3597 §4: not well-known; RFC 6672
//    §2.1, RFC 4034 §3.1.7, §4.1.1), as Knot also insists;
//  - where the RDATA layout is fixed, the names and fixed fields fill RDLENGTH exactly (CNAME: the
//    name; MX: 2 bytes and a name; SOA: two names and 20 bytes; SRV: 6 bytes and a name; NAPTR:
//    4 bytes, three character-strings and a name); NSEC, NXT, SIG and RRSIG end with a bitmap or a
//    signature of any length after their name.
// Allocates nothing: the label-start bitmap (one bit per message byte) is on the stack.
LayoutStatus ParseResponseLayout(std::span<const uint8_t> msg, ResponseLayout& layout);

// Does `response` answer exactly this question: one question, the name compared
// case-insensitively (RFC 4343), type and class equal (RFC 5452 §9.1)?
bool ResponseMatchesQuestion(std::span<const uint8_t> response, std::span<const uint8_t> qname,
                             uint16_t qtype, uint16_t qclass);

// Case-insensitive comparison of two uncompressed wire names of equal length.
bool NameEqualsIgnoreCase(const uint8_t* a, const uint8_t* b, size_t len);

}  // namespace nodedns::dns

#endif  // NODEDNS_DNS_WIRE_H_
