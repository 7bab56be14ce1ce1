// Bounds-checked walkers over DNS messages; see wire.h.
#include "dns/wire.h"

#include <cstring>

namespace nodedns::dns {

std::optional<size_t> SkipName(std::span<const uint8_t> msg, size_t off) {
  size_t total = 0;
  while (off < msg.size()) {
    const uint8_t len = msg[off];
    if (len == 0) return off + 1;
    if ((len & 0xc0) == 0xc0) {
      if (off + 2 > msg.size()) return std::nullopt;
      return off + 2;
    }
    // 0x40 and 0x80 are the obsolete extended label types (RFC 6891 §5): unsupported.
    if (len & 0xc0) return std::nullopt;
    total += len + 1;
    if (total + 1 > kMaxNameWire) return std::nullopt;
    off += len + 1;
  }
  return std::nullopt;
}

std::optional<size_t> PlainNameLength(std::span<const uint8_t> msg, size_t off) {
  const size_t start = off;
  while (off < msg.size()) {
    const uint8_t len = msg[off];
    if (len == 0) return off + 1 - start;
    if (len & 0xc0) return std::nullopt;
    off += len + 1;
    if (off - start + 1 > kMaxNameWire) return std::nullopt;
  }
  return std::nullopt;
}

std::optional<size_t> ExpandName(std::span<const uint8_t> msg, size_t off,
                                 uint8_t (&out)[kMaxNameWire]) {
  size_t n = 0;
  int hops = 0;
  while (off < msg.size()) {
    const uint8_t len = msg[off];
    if (len == 0) {
      out[n++] = 0;
      return n;
    }
    if ((len & 0xc0) == 0xc0) {
      if (off + 2 > msg.size()) return std::nullopt;
      const size_t target = static_cast<size_t>(len & 0x3f) << 8 | msg[off + 1];
      // Pointers must go strictly backwards: that alone makes loops impossible.
      if (target >= off || ++hops > kMaxPointerHops) return std::nullopt;
      off = target;
      continue;
    }
    if (len & 0xc0) return std::nullopt;
    if (off + 1 + len > msg.size() || n + len + 2 > kMaxNameWire) return std::nullopt;
    std::memcpy(out + n, msg.data() + off, len + 1);
    n += len + 1;
    off += len + 1;
  }
  return std::nullopt;
}

bool NameEqualsIgnoreCase(const uint8_t* a, const uint8_t* b, size_t len) {
  // Label length bytes are < 64 and therefore unaffected by lowercasing. Eight bytes at a time:
  // byte by byte this was ~14 instructions per byte, a tenth of a miss's own work (callgrind).
  if (len < 8) {
    for (size_t i = 0; i < len; ++i) {
      if (LowerAscii(a[i]) != LowerAscii(b[i])) return false;
    }
    return true;
  }
  const auto words_equal = [](const uint8_t* x, const uint8_t* y) {
    uint64_t u, v;
    std::memcpy(&u, x, 8);
    std::memcpy(&v, y, 8);
    return u == v || LowerAsciiWord(u) == LowerAsciiWord(v);
  };
  // The last word first (it overlaps the one before when len is not a multiple of 8): names
  // that differ mostly differ at the end, e.g. a zone suffix.
  if (!words_equal(a + len - 8, b + len - 8)) return false;
  for (size_t i = 0; i + 8 < len; i += 8) {
    if (!words_equal(a + i, b + i)) return false;
  }
  return true;
}

namespace {

// Fixed part of an RR after its owner name: type, class, ttl, rdlength.
constexpr size_t kRrFixed = 10;

// The options in an OPT record's RDATA (RFC 6891 §6.1.2): each is code(2), length(2) and that many
// bytes, and together they fill RDLENGTH exactly.
bool EdnsOptionsFit(const uint8_t* p, const uint8_t* end) {
  while (end - p >= 4) {
    const size_t len = Get16(p + 2);
    if (len > static_cast<size_t>(end - p - 4)) return false;
    p += 4 + len;
  }
  return p == end;
}

// One bit per message offset: set where a name walked in message order has a label length byte,
// a compression pointer or its root byte, i.e. where a name (a suffix of that one) starts. These
// are the only offsets a compression pointer may point to (RFC 1035 §4.1.4). On the stack and
// cleared only as far as the message reaches: a 100-byte response clears two words.
class NameStarts {
 public:
  explicit NameStarts(size_t size) { std::memset(bits_, 0, (size + 63) / 64 * sizeof(uint64_t)); }
  void Mark(size_t off) { bits_[off >> 6] |= uint64_t{1} << (off & 63); }
  bool Marked(size_t off) const { return (bits_[off >> 6] >> (off & 63)) & 1; }

 private:
  uint64_t bits_[(kMaxMessage + 63) / 64];  // not zeroed here: only the message's part is read
};

// Adds the expanded length of the name at `off` (a marked offset, so the start of a suffix of a
// name already validated) to `length`, the bytes of labels before the pointer that led here;
// false once the whole would exceed 255 bytes (RFC 1035 §3.1) or kMaxPointerHops. The checks of
// label types and pointer directions are repeated only to keep this safe on its own.
bool SuffixFits(std::span<const uint8_t> msg, size_t off, size_t length) {
  int hops = 1;  // the pointer that led here
  while (off < msg.size()) {
    const uint8_t len = msg[off];
    if (len == 0) return true;
    if ((len & 0xc0) == 0xc0) {
      if (off + 2 > msg.size() || ++hops > kMaxPointerHops) return false;
      const size_t target = static_cast<size_t>(len & 0x3f) << 8 | msg[off + 1];
      if (target >= off) return false;
      off = target;
      continue;
    }
    if (len > kMaxLabel) return false;
    length += len + 1;
    if (length + 1 > kMaxNameWire) return false;
    off += len + 1;
  }
  return false;
}

// Walks the name at `off`, whose own bytes must lie before `limit` (the message's end, or the end
// of the RDATA holding it), marking where it and its suffixes start. Returns the offset just past
// it, or 0 if it is malformed: a label type other than 00 or 11 (0x40..0xbf: the extended and
// unassigned types, RFC 6891 §5), more than 255 bytes expanded, a pointer when `pointers` is
// false, or a pointer that does not go back to the start of (a suffix of) a name walked before
// this one. Pointing before `start` rules out loops; a mark there means the target is a label,
// pointer or root byte, not the middle of a label, a header or RR field, or opaque RDATA.
size_t WalkName(std::span<const uint8_t> msg, size_t off, size_t limit, bool pointers,
                NameStarts& starts) {
  const size_t start = off;
  size_t length = 0;  // labels so far, without the root byte
  while (off < limit) {
    const uint8_t len = msg[off];
    starts.Mark(off);
    if (len == 0) return off + 1;
    if ((len & 0xc0) == 0xc0) {
      if (!pointers || off + 2 > limit) return 0;
      const size_t target = static_cast<size_t>(len & 0x3f) << 8 | msg[off + 1];
      if (target >= start || !starts.Marked(target) || !SuffixFits(msg, target, length)) return 0;
      return off + 2;
    }
    if (len > kMaxLabel) return 0;
    length += len + 1;
    if (length + 1 > kMaxNameWire) return 0;
    off += len + 1;
  }
  return 0;
}

// Checks the names inside an RR's RDATA [rdata, end) for the types that hold them, and that
// the fields around them fill RDLENGTH (RFC 1035 §3.3, RFC 3597 §4). Other types' RDATA is
// opaque here: its bytes are never compression targets.
bool CheckRdataNames(std::span<const uint8_t> msg, uint16_t rtype, size_t rdata, size_t end,
                     NameStarts& starts) {
  size_t p = rdata;
  // Pointers allowed: RFC 1035's own types, and those RFC 3597 §4 asks receivers to decompress.
  const auto name = [&](bool pointers) {
    p = WalkName(msg, p, end, pointers, starts);
    return p != 0;
  };
  const auto fixed = [&](size_t n) {
    if (end - p < n) return false;
    p += n;
    return true;
  };
  const auto character_string = [&] {  // RFC 1035 §3.3: a length byte and that many bytes
    return p < end && fixed(size_t{msg[p]} + 1);
  };
  switch (rtype) {
    case type::kNS:
    case type::kMD:
    case type::kMF:
    case type::kCNAME:
    case type::kMB:
    case type::kMG:
    case type::kMR:
    case type::kPTR:
      return name(true) && p == end;
    case type::kSOA:  // MNAME, RNAME, SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM
      return name(true) && name(true) && fixed(20) && p == end;
    case type::kMINFO:  // RMAILBX, EMAILBX
    case type::kRP:     // mbox, txt (RFC 1183 §2.2)
      return name(true) && name(true) && p == end;
    case type::kMX:     // PREFERENCE, EXCHANGE
    case type::kAFSDB:  // subtype, hostname (RFC 1183 §1)
    case type::kRT:     // preference, intermediate-host (RFC 1183 §3.3)
      return fixed(2) && name(true) && p == end;
    case type::kPX:  // PREFERENCE, MAP822, MAPX400 (RFC 2163 §4)
      return fixed(2) && name(true) && name(true) && p == end;
    case type::kSRV:  // priority, weight, port, target (RFC 2782)
      return fixed(6) && name(true) && p == end;
    case type::kNAPTR:  // order, preference, flags, services, regexp, replacement (RFC 3403 §4.1)
      return fixed(4) && character_string() && character_string() && character_string() &&
             name(true) && p == end;
    case type::kKX:  // preference, exchanger (RFC 2230): not RFC 1035, not in RFC 3597's list
      return fixed(2) && name(false) && p == end;
    case type::kDNAME:  // target, uncompressed (RFC 6672 §2.1)
      return name(false) && p == end;
    case type::kNXT:  // next name, then a type bitmap (RFC 2535 §5.2)
      return name(true);
    case type::kNSEC:  // next name, uncompressed (RFC 4034 §4.1.1), then the type bitmaps
      return name(false);
    case type::kSIG:  // 18 bytes of fields, signer's name, signature (RFC 2535 §4.1)
      return fixed(18) && name(true);
    case type::kRRSIG:  // the same; the signer's name uncompressed (RFC 4034 §3.1.7)
      return fixed(18) && name(false);
    default:
      return true;
  }
}

}  // namespace

QueryStatus ParseQuery(std::span<const uint8_t> msg, QueryInfo& info) {
  info = QueryInfo{};  // callers reuse one QueryInfo per batch slot
  if (msg.size() < kHeaderSize) return QueryStatus::kDrop;
  info.id = HeaderId(msg);
  info.flags = HeaderFlags(msg);
  if (info.flags & flag::kQR) return QueryStatus::kDrop;
  // The whole message is read before the header's own demands are judged (opcode, QDCOUNT): every
  // reply to a query with an OPT record carries one (RFC 6891 §7), NOTIMP and FORMERR included,
  // and a message that does not end where its counts say is malformed whatever its opcode.
  const uint16_t qdcount = QdCount(msg);
  size_t off = kHeaderSize;
  if (qdcount == 1) {
    const auto name_len = PlainNameLength(msg, off);
    if (!name_len || off + *name_len + 4 > msg.size()) return QueryStatus::kFormErr;
    info.qname_offset = kHeaderSize;
    info.qname_length = static_cast<uint16_t>(*name_len);
    off += *name_len;
    info.qtype = Get16(msg.data() + off);
    info.qclass = Get16(msg.data() + off + 2);
    off += 4;
    info.question_end = static_cast<uint16_t>(off);
  } else {
    // FORMERR below (RFC 1035 §4.1.1 allows one question), but the OPT record lies past these.
    for (size_t i = 0; i < qdcount; ++i) {
      const auto after = SkipName(msg, off);
      if (!after || *after + 4 > msg.size()) return QueryStatus::kFormErr;
      off = *after + 4;
    }
  }

  // Queries carry no answer or authority records, but tolerate them by skipping (some tools send
  // a prerequisite-free UPDATE-like layout); the OPT record lives in the additional section.
  const size_t rr_count = size_t{AnCount(msg)} + NsCount(msg) + ArCount(msg);
  const size_t ar_start = size_t{AnCount(msg)} + NsCount(msg);
  for (size_t i = 0; i < rr_count; ++i) {
    const size_t owner = off;
    const auto after_name = SkipName(msg, off);
    if (!after_name || *after_name + kRrFixed > msg.size()) return QueryStatus::kFormErr;
    off = *after_name;
    const uint16_t rtype = Get16(msg.data() + off);
    const uint16_t rdlen = Get16(msg.data() + off + 8);
    if (off + kRrFixed + rdlen > msg.size()) return QueryStatus::kFormErr;
    if (rtype == type::kOPT) {
      // RFC 6891 §6.1.1: one OPT at most, in the additional section, owned by the root; §6.1.2:
      // its options fill RDLENGTH. A query breaking any of these has no valid OPT, so its FORMERR
      // carries none: that is what Knot 3.2 answers (a second OPT, one in the answer section or
      // an option running past RDLENGTH: FORMERR without OPT), and a reply cannot mirror EDNS
      // parameters it could not trust.
      const uint8_t* rdata = msg.data() + off + kRrFixed;
      if (info.has_edns || i < ar_start || msg[owner] != 0 ||
          !EdnsOptionsFit(rdata, rdata + rdlen)) {
        info.has_edns = info.do_bit = false;
        info.udp_size = 0;
        info.edns_version = 0;
        return QueryStatus::kFormErr;
      }
      info.has_edns = true;
      info.udp_size = Get16(msg.data() + off + 2);
      const uint32_t ttl = Get32(msg.data() + off + 4);
      info.edns_version = static_cast<uint8_t>(ttl >> 16);
      info.do_bit = ttl & kEdnsDoBit;
    }
    off += kRrFixed + rdlen;
  }
  // Bytes after the last record mean the counts do not describe the message (RFC 1035 §4.1):
  // FORMERR, as Knot and dnsdist answer. The OPT record was read whole, so the reply keeps it
  // (Knot drops it here; RFC 6891 §7 asks for it whenever the query had one).
  if (off != msg.size()) return QueryStatus::kFormErr;
  // Knot's order: the EDNS version first (a responder that does not speak it cannot interpret the
  // rest, RFC 6891 §6.1.3), then the opcode (NOTIMP for any QDCOUNT), then the question count.
  if (info.has_edns && info.edns_version != 0) return QueryStatus::kBadVers;
  if (Opcode(info.flags) != 0) return QueryStatus::kNotImp;
  if (qdcount != 1) return QueryStatus::kFormErr;
  return QueryStatus::kOk;
}

LayoutStatus ParseResponseLayout(std::span<const uint8_t> msg, ResponseLayout& layout) {
  layout.n_ttls = 0;  // ttl_offsets is not initialized: n_ttls alone bounds what callers read
  if (msg.size() < kHeaderSize || msg.size() > kMaxMessage) return LayoutStatus::kMalformed;
  layout.flags = HeaderFlags(msg);
  layout.rcode = layout.flags & flag::kRcodeMask;
  layout.ancount = AnCount(msg);
  layout.nscount = NsCount(msg);
  layout.arcount = ArCount(msg);
  layout.soa_ttl_offset = 0;
  layout.soa_minimum = 0;
  layout.opt_offset = layout.opt_end = 0;
  layout.opt_ttl = 0;
  NameStarts starts(msg.size());
  size_t off = kHeaderSize;
  const uint16_t qd = QdCount(msg);
  for (uint16_t i = 0; i < qd; ++i) {
    const size_t after = WalkName(msg, off, msg.size(), true, starts);
    if (after == 0 || after + 4 > msg.size()) return LayoutStatus::kMalformed;
    off = after + 4;
  }
  layout.question_end = static_cast<uint16_t>(off);
  const size_t an_end = layout.ancount;
  const size_t ns_end = an_end + layout.nscount;
  const size_t total = ns_end + layout.arcount;
  for (size_t i = 0; i < total; ++i) {
    const size_t owner = off;
    off = WalkName(msg, off, msg.size(), true, starts);
    if (off == 0 || off + kRrFixed > msg.size()) return LayoutStatus::kMalformed;
    const uint16_t rtype = Get16(msg.data() + off);
    const uint16_t rclass = Get16(msg.data() + off + 2);
    const uint16_t rdlen = Get16(msg.data() + off + 8);
    const size_t rdata = off + kRrFixed;
    if (rdata + rdlen > msg.size()) return LayoutStatus::kMalformed;
    // An empty RDATA in class NONE or ANY is RFC 2136's "delete" form, whatever the type.
    const bool empty_ok = rdlen == 0 && (rclass == kClassNONE || rclass == kClassANY);
    if (!empty_ok && !CheckRdataNames(msg, rtype, rdata, rdata + rdlen, starts)) {
      return LayoutStatus::kMalformed;
    }
    if (rtype == type::kOPT) {
      if (layout.opt_offset != 0 || i < ns_end) return LayoutStatus::kMalformed;
      layout.opt_offset = static_cast<uint16_t>(owner);
      layout.opt_end = static_cast<uint16_t>(rdata + rdlen);
      layout.opt_ttl = Get32(msg.data() + off + 4);
    } else {
      // No bound check: each RR takes at least kMinRrSize bytes of a message of at most
      // kMaxMessage, so there are never more than kMaxTtls (static_assert in wire.h).
      layout.ttl_offsets[layout.n_ttls++] = static_cast<uint16_t>(off + 4);
      if (rtype == type::kSOA && i >= an_end && i < ns_end && layout.soa_ttl_offset == 0 &&
          !empty_ok) {
        // CheckRdataNames made the RDATA two names and exactly 20 bytes: MINIMUM is the last 4.
        layout.soa_ttl_offset = static_cast<uint16_t>(off + 4);
        layout.soa_minimum = Get32(msg.data() + rdata + rdlen - 4);
      }
    }
    off = rdata + rdlen;
  }
  layout.end = static_cast<uint16_t>(off);
  return LayoutStatus::kOk;
}

bool ResponseMatchesQuestion(std::span<const uint8_t> response, std::span<const uint8_t> qname,
                             uint16_t qtype, uint16_t qclass) {
  if (response.size() < kHeaderSize + qname.size() + 4) return false;
  if (QdCount(response) != 1) return false;
  const auto len = PlainNameLength(response, kHeaderSize);
  if (!len || *len != qname.size()) return false;
  if (!NameEqualsIgnoreCase(response.data() + kHeaderSize, qname.data(), *len)) {
    return false;
  }
  const uint8_t* p = response.data() + kHeaderSize + *len;
  return Get16(p) == qtype && Get16(p + 2) == qclass;
}

}  // namespace nodedns::dns
