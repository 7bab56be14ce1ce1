// Shared by the fuzz targets: the invariant check that stops the run, and the checks of reply
// messages that more than one target builds (FinishReply and BuildErrorReply results).
#ifndef NODEDNS_TESTS_FUZZ_FUZZ_UTIL_H_
#define NODEDNS_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "dns/wire.h"

// An invariant of the code under test does not hold: say which, then abort (libFuzzer saves the
// input as crash-*, the replay test fails).
#define FUZZ_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

namespace nodedns::fuzz {

// Checks of known, reported and not yet fixed bugs (docs/fuzzing.md, "Findings") run only with
// NODEDNS_FUZZ_KNOWN_BUGS set, so that the corpus replay, reproducers included, stays green until
// they are fixed; the fix then makes its check unconditional.
inline bool KnownBugChecks() {
  static const bool on = std::getenv("NODEDNS_FUZZ_KNOWN_BUGS") != nullptr;
  return on;
}

inline std::vector<uint8_t> Lowercase(std::span<const uint8_t> name) {
  std::vector<uint8_t> out(name.begin(), name.end());
  for (uint8_t& c : out) c = dns::LowerAscii(c);
  return out;
}

// A query as a stub resolver sends it: `qname` (uncompressed wire), RD plus `extra_flags`, and an
// OPT record (1232 bytes, DO as asked) when `edns`.
inline std::vector<uint8_t> MakeQuery(uint16_t id, std::span<const uint8_t> qname, uint16_t qtype,
                                      uint16_t qclass, uint16_t extra_flags, bool edns,
                                      bool do_bit) {
  std::vector<uint8_t> m(dns::kHeaderSize + qname.size() + 4 + (edns ? dns::kOptRecordSize : 0));
  dns::Put16(m.data(), id);
  dns::Put16(m.data() + 2, dns::flag::kRD | extra_flags);
  dns::Put16(m.data() + 4, 1);
  dns::Put16(m.data() + 10, edns ? 1 : 0);
  std::memcpy(m.data() + dns::kHeaderSize, qname.data(), qname.size());
  uint8_t* p = m.data() + dns::kHeaderSize + qname.size();
  dns::Put16(p, qtype);
  dns::Put16(p + 2, qclass);
  if (edns) {
    p += 4;
    p[0] = 0;
    dns::Put16(p + 1, dns::type::kOPT);
    dns::Put16(p + 3, 1232);
    dns::Put32(p + 5, do_bit ? dns::kEdnsDoBit : 0);
    dns::Put16(p + 9, 0);
  }
  return m;
}

// Checks a reply FinishReply built from a body of `body_size` bytes with header flags
// `upstream_flags` and `body_ancount` answers, for the client query `query`/`q`, under `limit`.
// `truncated`: the reply was cut to header and question with TC=1 (the caller knows whether it
// had to be).
inline void CheckFinishedReply(std::span<const uint8_t> reply, bool truncated,
                               std::span<const uint8_t> query, const dns::QueryInfo& q,
                               uint16_t upstream_flags, size_t body_size, uint16_t body_ancount,
                               size_t limit) {
  const size_t opt = q.has_edns ? dns::kOptRecordSize : 0;
  FUZZ_CHECK(reply.size() <= limit);
  FUZZ_CHECK(reply.size() == (truncated ? q.question_end : body_size) + opt);
  dns::ResponseLayout layout;
  FUZZ_CHECK(dns::ParseResponseLayout(reply, layout) == dns::LayoutStatus::kOk);
  FUZZ_CHECK(layout.end == reply.size());
  const uint16_t f = dns::HeaderFlags(reply);
  FUZZ_CHECK(dns::HeaderId(reply) == q.id);
  FUZZ_CHECK(f & dns::flag::kQR);
  FUZZ_CHECK(f & dns::flag::kRA);
  FUZZ_CHECK(!(f & dns::flag::kAA));
  FUZZ_CHECK(dns::Opcode(f) == 0);
  FUZZ_CHECK(bool(f & dns::flag::kRD) == q.rd());
  FUZZ_CHECK(bool(f & dns::flag::kCD) == q.cd());
  FUZZ_CHECK(bool(f & dns::flag::kTC) == truncated);
  FUZZ_CHECK((f & dns::flag::kRcodeMask) == (upstream_flags & dns::flag::kRcodeMask));
  const bool ad = (upstream_flags & dns::flag::kAD) && ((q.flags & dns::flag::kAD) || q.do_bit);
  FUZZ_CHECK(bool(f & dns::flag::kAD) == ad);
  // The client's question, in the client's case.
  FUZZ_CHECK(dns::QdCount(reply) == 1);
  FUZZ_CHECK(std::memcmp(reply.data() + dns::kHeaderSize, query.data() + dns::kHeaderSize,
                         q.question_end - dns::kHeaderSize) == 0);
  if (truncated) {
    FUZZ_CHECK(dns::AnCount(reply) == 0 && dns::NsCount(reply) == 0);
    FUZZ_CHECK(dns::ArCount(reply) == (q.has_edns ? 1 : 0));
  } else {
    FUZZ_CHECK(dns::AnCount(reply) == body_ancount);
  }
  // OPT iff the client sent one, last, advertising 1232 bytes and echoing DO (RFC 6891, 3225).
  if (q.has_edns) {
    FUZZ_CHECK(layout.opt_offset == reply.size() - dns::kOptRecordSize);
    FUZZ_CHECK(layout.opt_end == reply.size());
    FUZZ_CHECK(reply[layout.opt_offset] == 0);
    FUZZ_CHECK(dns::Get16(reply.data() + layout.opt_offset + 3) == dns::kEdnsUdpSize);
    FUZZ_CHECK(layout.opt_ttl == (q.do_bit ? dns::kEdnsDoBit : 0u));
  } else {
    FUZZ_CHECK(layout.opt_offset == 0);
  }
}

}  // namespace nodedns::fuzz

#endif  // NODEDNS_TESTS_FUZZ_FUZZ_UTIL_H_
