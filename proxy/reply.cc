// Reply building; see reply.h.
#include "proxy/reply.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace nodedns::proxy {

namespace {

using dns::Put16;

void WriteOpt(uint8_t* p, bool do_bit, uint8_t extended_rcode) {
  p[0] = 0;  // root owner
  Put16(p + 1, dns::type::kOPT);
  Put16(p + 3, dns::kEdnsUdpSize);
  dns::Put32(p + 5, uint32_t{extended_rcode} << 24 | (do_bit ? dns::kEdnsDoBit : 0));
  Put16(p + 9, 0);
}

}  // namespace

size_t FinishReply(std::span<uint8_t> out, size_t size, std::span<const uint8_t> query,
                   const dns::QueryInfo& q, size_t limit, bool* truncated, uint16_t ede) {
  uint8_t* m = out.data();
  const uint16_t upstream = dns::HeaderFlags(out);
  uint16_t flags = dns::flag::kQR | dns::flag::kRA | (upstream & dns::flag::kRcodeMask) |
                   (q.flags & (dns::flag::kRD | dns::flag::kCD));
  if ((upstream & dns::flag::kAD) && ((q.flags & dns::flag::kAD) || q.do_bit)) {
    flags |= dns::flag::kAD;
  }
  Put16(m, q.id);
  // The stored question has the same name, in whatever case upstream used: write the client's.
  std::memcpy(m + dns::kHeaderSize, query.data() + dns::kHeaderSize, q.qname_length);
  const size_t opt = q.has_edns ? dns::kOptRecordSize + (ede != kNoEde ? kEdeOptionSize : 0) : 0;
  if (size + opt > limit) {
    // Header and question only: the client retries over TCP (RFC 7766 §5).
    flags |= dns::flag::kTC;
    size = q.question_end;
    Put16(m + 6, 0);
    Put16(m + 8, 0);
    Put16(m + 10, 0);
    if (truncated) *truncated = true;
  } else if (truncated) {
    *truncated = false;
  }
  Put16(m + 2, flags);
  if (opt) {
    WriteOpt(m + size, q.do_bit, 0);
    if (ede != kNoEde) {
      uint8_t* o = m + size + dns::kOptRecordSize;
      Put16(m + size + 9, kEdeOptionSize);  // the OPT's RDLENGTH
      Put16(o, dns::kEdnsOptionEde);
      Put16(o + 2, 2);
      Put16(o + 4, ede);
    }
    Put16(m + 10, dns::ArCount(out) + 1);
    size += opt;
  }
  return size;
}

uint8_t ErrorRcode(dns::QueryStatus status) {
  switch (status) {
    case dns::QueryStatus::kNotImp:
      return dns::rcode::kNotImp;
    case dns::QueryStatus::kBadVers:
      return 0;  // extended rcode, set by BuildErrorReply
    default:
      return dns::rcode::kFormErr;
  }
}

size_t BuildErrorReply(std::span<const uint8_t> query, const dns::QueryInfo& q,
                       dns::QueryStatus status, uint8_t rcode, std::span<uint8_t> out) {
  if (status == dns::QueryStatus::kDrop || query.size() < dns::kHeaderSize) return 0;
  if (q.flags & dns::flag::kQR) return 0;
  uint8_t* m = out.data();
  std::memset(m, 0, dns::kHeaderSize);
  Put16(m, q.id);
  uint8_t extended = 0;
  if (status == dns::QueryStatus::kBadVers) {
    // BADVERS is 16: the low 4 bits (0) in the header, the high 8 bits (1) in the OPT record.
    rcode = 0;
    extended = 1;
  }
  // RA says recursion is available for this query; only QUERY recurses (Knot never sets RA,
  // Unbound sets it for QUERY only).
  const uint16_t ra = dns::Opcode(q.flags) == 0 ? dns::flag::kRA : 0;
  Put16(m + 2, dns::flag::kQR | ra |
                   (q.flags & (dns::flag::kOpcodeMask | dns::flag::kRD | dns::flag::kCD)) |
                   (rcode & 0xf));
  size_t size = dns::kHeaderSize;
  // Echo the question only if it was parsed (question_end is set once the question was read).
  if (q.question_end > dns::kHeaderSize && q.question_end <= query.size()) {
    std::memcpy(m + size, query.data() + size, q.question_end - size);
    size = q.question_end;
    Put16(m + 4, 1);
  }
  if (q.has_edns) {
    WriteOpt(m + size, q.do_bit, extended);
    Put16(m + 10, 1);
    size += dns::kOptRecordSize;
  }
  return size;
}

namespace {

// The CHAOS names a server answers with its own identity (RFC 4892 §2, and BIND's version.bind and
// hostname.bind), in wire form.
constexpr uint8_t kVersionBind[] = "\7version\4bind";
constexpr uint8_t kVersionServer[] = "\7version\6server";
constexpr uint8_t kIdServer[] = "\2id\6server";
constexpr uint8_t kHostnameBind[] = "\10hostname\4bind";

bool IsIdentityName(std::span<const uint8_t> qname) {
  // Each span includes its literal's NUL, which is the root label.
  for (const std::span<const uint8_t> name :
       {std::span<const uint8_t>(kVersionBind), std::span<const uint8_t>(kVersionServer),
        std::span<const uint8_t>(kIdServer), std::span<const uint8_t>(kHostnameBind)}) {
    if (qname.size() == name.size() &&
        dns::NameEqualsIgnoreCase(qname.data(), name.data(), name.size())) {
      return true;
    }
  }
  return false;
}

}  // namespace

LocalAnswer ClassifyUnusualQuery(std::span<const uint8_t> query, const dns::QueryInfo& q,
                                 bool chaos_enabled) {
  if (q.qclass == dns::kClassCH) {
    const std::span<const uint8_t> qname = query.subspan(q.qname_offset, q.qname_length);
    return chaos_enabled && q.qtype == dns::type::kTXT && IsIdentityName(qname)
               ? LocalAnswer::kChaos
               : LocalAnswer::kRefused;
  }
  if (q.qclass != dns::kClassIN) return LocalAnswer::kRefused;
  return dns::IsMetaQtype(q.qtype) ? LocalAnswer::kNotImp : LocalAnswer::kNone;
}

size_t BuildLocalReply(std::span<const uint8_t> query, const dns::QueryInfo& q, LocalAnswer answer,
                       std::string_view chaos_text, std::span<uint8_t> out) {
  switch (answer) {
    case LocalAnswer::kNone:
      return 0;
    case LocalAnswer::kNotImp:
      return BuildErrorReply(query, q, dns::QueryStatus::kOk, dns::rcode::kNotImp, out);
    case LocalAnswer::kRefused:
    case LocalAnswer::kNotAllowed:
      return BuildErrorReply(query, q, dns::QueryStatus::kOk, dns::rcode::kRefused, out);
    case LocalAnswer::kChaos:
      break;
  }
  if (chaos_text.size() > kMaxChaosText) chaos_text = chaos_text.substr(0, kMaxChaosText);
  uint8_t* m = out.data();
  std::memcpy(m, query.data(), q.question_end);  // ID and question in the client's case
  // Opcode is QUERY here (ParseQuery accepted it); no AD: nothing was validated.
  Put16(m + 2, dns::flag::kQR | dns::flag::kAA | dns::flag::kRA |
                   (q.flags & (dns::flag::kRD | dns::flag::kCD)));
  Put16(m + 4, 1);
  Put16(m + 6, 1);
  Put16(m + 8, 0);
  Put16(m + 10, 0);
  size_t n = q.question_end;
  m[n] = 0xc0;  // owner: a pointer to the question name at offset 12
  m[n + 1] = dns::kHeaderSize;
  Put16(m + n + 2, dns::type::kTXT);
  Put16(m + n + 4, dns::kClassCH);
  dns::Put32(m + n + 6, 0);  // TTL 0: nobody should cache a server's identity
  const size_t rdlength_at = n + 10;
  n += 12;
  const size_t rdata = n;
  size_t at = 0;
  do {  // one character-string at least, even for an empty text
    const size_t len = std::min<size_t>(chaos_text.size() - at, 255);
    m[n++] = static_cast<uint8_t>(len);
    std::memcpy(m + n, chaos_text.data() + at, len);
    n += len;
    at += len;
  } while (at < chaos_text.size());
  Put16(m + rdlength_at, static_cast<uint16_t>(n - rdata));
  if (q.has_edns) {
    WriteOpt(m + n, q.do_bit, 0);
    Put16(m + 10, 1);
    n += dns::kOptRecordSize;
  }
  return n;
}

size_t BuildTruncatedReply(std::span<const uint8_t> query, const dns::QueryInfo& q,
                           std::span<uint8_t> out) {
  std::memcpy(out.data(), query.data(), q.question_end);
  Put16(out.data() + 2, 0);  // "upstream" flags for FinishReply: NOERROR, nothing else
  Put16(out.data() + 4, 1);
  Put16(out.data() + 6, 0);
  Put16(out.data() + 8, 0);
  Put16(out.data() + 10, 0);
  const size_t size = FinishReply(out, q.question_end, query, q, dns::kMaxMessage);
  Put16(out.data() + 2, dns::HeaderFlags(out) | dns::flag::kTC);
  return size;
}

size_t BuildUpstreamQuery(std::span<const uint8_t> qname, uint16_t qtype, uint16_t qclass,
                          bool do_bit, bool cd_bit, std::span<uint8_t> out) {
  uint8_t* m = out.data();
  std::memset(m, 0, dns::kHeaderSize);
  Put16(m + 2, dns::flag::kRD | (cd_bit ? dns::flag::kCD : 0));
  Put16(m + 4, 1);
  Put16(m + 10, 1);
  size_t n = dns::kHeaderSize;
  std::memcpy(m + n, qname.data(), qname.size());
  n += qname.size();
  Put16(m + n, qtype);
  Put16(m + n + 2, qclass);
  n += 4;
  WriteOpt(m + n, do_bit, 0);
  return n + dns::kOptRecordSize;
}

size_t CopyWithoutOpt(std::span<const uint8_t> response, std::span<uint8_t> out,
                      const TtlLimits* limits) {
  dns::ResponseLayout layout;
  if (dns::ParseResponseLayout(response, layout) != dns::LayoutStatus::kOk) return 0;
  size_t size = layout.end;
  if (layout.opt_offset) {
    if (layout.opt_end != layout.end || (layout.opt_ttl >> 24) != 0) return 0;
    size = layout.opt_offset;
  }
  if (size > out.size()) return 0;
  std::memcpy(out.data(), response.data(), size);
  if (layout.opt_offset) Put16(out.data() + 10, layout.arcount - 1);
  if (limits != nullptr) {
    const bool negative = layout.rcode == dns::rcode::kNxDomain ||
                          (layout.rcode == dns::rcode::kNoError && layout.ancount == 0);
    const uint32_t cap = negative ? limits->max_negative_ttl : limits->max_ttl;
    for (size_t i = 0; i < layout.n_ttls; ++i) {
      uint8_t* p = out.data() + layout.ttl_offsets[i];
      uint32_t ttl = dns::Get32(p);
      if (ttl > INT32_MAX) ttl = 0;
      ttl = std::min(ttl, cap);
      if (negative && layout.ttl_offsets[i] == layout.soa_ttl_offset) {
        ttl = std::min(ttl, layout.soa_minimum);
      }
      dns::Put32(p, ttl);
    }
  }
  return size;
}

}  // namespace nodedns::proxy
