// The data path's wire walkers against ldns-built messages and hand-made malformed ones.
#include "dns/wire.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "tests/testing/dns_builder.h"

namespace nodedns::dns {
namespace {

using ::nodedns::testing::AllTtls;
using ::nodedns::testing::Build;
using ::nodedns::testing::BuildQuery;
using ::nodedns::testing::MessageSpec;
using ::nodedns::testing::Parse;

// The word-at-a-time comparison must agree with RFC 4343's byte rule on every byte value, at every
// length and position (tails shorter than 8 bytes included).
TEST(NameEqualsIgnoreCaseTest, AgreesWithBytewiseAsciiFoldingForEveryByteValue) {
  auto reference = [](const uint8_t* a, const uint8_t* b, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (LowerAscii(a[i]) != LowerAscii(b[i])) return false;
    }
    return true;
  };
  for (size_t len : {1, 7, 8, 9, 16, 23, 40}) {
    for (size_t pos = 0; pos < len; ++pos) {
      for (int x = 0; x < 256; ++x) {
        for (int y : {x, x ^ 0x20, x ^ 0x01, x ^ 0x80}) {
          std::vector<uint8_t> a(len, 'q'), b(len, 'Q');
          a[pos] = static_cast<uint8_t>(x);
          b[pos] = static_cast<uint8_t>(y);
          ASSERT_EQ(NameEqualsIgnoreCase(a.data(), b.data(), len),
                    reference(a.data(), b.data(), len))
              << "len " << len << " pos " << pos << " bytes " << x << "/" << y;
        }
      }
    }
  }
}

TEST(ParseQueryTest, ReadsQuestionAndNoEdns) {
  auto q = BuildQuery("WWW.Example.com.", type::kAAAA, false, false, 0xbeef);
  QueryInfo info;
  ASSERT_EQ(ParseQuery(q, info), QueryStatus::kOk);
  EXPECT_EQ(info.id, 0xbeef);
  EXPECT_EQ(info.qtype, type::kAAAA);
  EXPECT_EQ(info.qclass, kClassIN);
  EXPECT_EQ(info.qname_length, 17);  // 3www7Example3com0
  EXPECT_EQ(info.question_end, q.size());
  EXPECT_TRUE(info.rd());
  EXPECT_FALSE(info.has_edns);
  EXPECT_EQ(info.MaxUdpReply(), 512);
}

TEST(ParseQueryTest, ReadsEdnsSizeAndDoBit) {
  MessageSpec m;
  m.qr = false;
  m.edns = true;
  m.do_bit = true;
  m.udp_size = 4096;
  auto q = Build(m);
  QueryInfo info;
  ASSERT_EQ(ParseQuery(q, info), QueryStatus::kOk);
  EXPECT_TRUE(info.has_edns);
  EXPECT_TRUE(info.do_bit);
  EXPECT_EQ(info.udp_size, 4096);
  m.udp_size = 100;  // RFC 6891 §6.2.5: below 512 means 512
  q = Build(m);
  ASSERT_EQ(ParseQuery(q, info), QueryStatus::kOk);
  EXPECT_EQ(info.MaxUdpReply(), 512);
}

TEST(ParseQueryTest, DropsResponsesAndShortHeaders) {
  QueryInfo info;
  MessageSpec m;
  EXPECT_EQ(ParseQuery(Build(m), info), QueryStatus::kDrop);  // QR=1
  std::vector<uint8_t> short_header(11, 0);
  EXPECT_EQ(ParseQuery(short_header, info), QueryStatus::kDrop);
}

TEST(ParseQueryTest, RejectsOtherOpcodesAsNotImp) {
  auto q = BuildQuery("example.com.", type::kA);
  q[2] |= 0x28;  // opcode 5 (UPDATE)
  QueryInfo info;
  EXPECT_EQ(ParseQuery(q, info), QueryStatus::kNotImp);
  EXPECT_EQ(info.id, 0x4242);
}

TEST(ParseQueryTest, RejectsZeroOrTwoQuestions) {
  auto q = BuildQuery("example.com.", type::kA);
  QueryInfo info;
  Put16(q.data() + 4, 0);
  EXPECT_EQ(ParseQuery(q, info), QueryStatus::kFormErr);
  Put16(q.data() + 4, 2);
  EXPECT_EQ(ParseQuery(q, info), QueryStatus::kFormErr);
}

TEST(ParseQueryTest, RejectsTruncatedQuestionsAtEveryLength) {
  auto q = BuildQuery("a.long.name.example.com.", type::kA, true);
  QueryInfo info;
  for (size_t n = 12; n < q.size(); ++n) {
    std::vector<uint8_t> cut(q.begin(), q.begin() + static_cast<ptrdiff_t>(n));
    EXPECT_EQ(ParseQuery(cut, info), QueryStatus::kFormErr) << n;
  }
}

TEST(ParseQueryTest, RejectsCompressionInQuestionAndOverlongNames) {
  std::vector<uint8_t> q = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1};
  QueryInfo info;
  EXPECT_EQ(ParseQuery(q, info), QueryStatus::kFormErr);  // pointer to itself
  std::vector<uint8_t> longq = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 5; ++i) {  // 5 x 64 = 320 bytes > 255
    longq.push_back(63);
    longq.insert(longq.end(), 63, 'a');
  }
  longq.insert(longq.end(), {0, 0, 1, 0, 1});
  EXPECT_EQ(ParseQuery(longq, info), QueryStatus::kFormErr);
}

// A query built byte by byte: header with `opcode` and `qdcount`, `questions` copies of
// www.example.com/A, an OPT record (udp 4096, DO) with `opt_rdata` if `edns`, then `trailing`.
std::vector<uint8_t> RawQuery(uint8_t opcode, uint16_t qdcount, int questions, bool edns,
                              std::vector<uint8_t> opt_rdata = {},
                              std::vector<uint8_t> trailing = {}) {
  std::vector<uint8_t> m(12, 0);
  Put16(m.data(), 0x5151);
  Put16(m.data() + 2, static_cast<uint16_t>(opcode << 11 | flag::kRD));
  Put16(m.data() + 4, qdcount);
  Put16(m.data() + 10, edns ? 1 : 0);
  for (int i = 0; i < questions; ++i) {
    const uint8_t q[] = {3,   'w', 'w', 'w', 7,   'e', 'x', 'a', 'm', 'p', 'l',
                         'e', 3,   'c', 'o', 'm', 0,   0,   1,   0,   1};
    m.insert(m.end(), q, q + sizeof q);
  }
  if (edns) {
    const uint8_t opt[] = {0, 0, 41, 0x10, 0, 0, 0, 0x80, 0};  // root, OPT, 4096, TTL: DO
    m.insert(m.end(), opt, opt + sizeof opt);
    m.push_back(static_cast<uint8_t>(opt_rdata.size() >> 8));
    m.push_back(static_cast<uint8_t>(opt_rdata.size()));
    m.insert(m.end(), opt_rdata.begin(), opt_rdata.end());
  }
  m.insert(m.end(), trailing.begin(), trailing.end());
  return m;
}

// A COOKIE option with an 8-byte client cookie (RFC 7873 §4.1).
const std::vector<uint8_t> kCookie = {0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};

// RFC 6891 §7: the NOTIMP reply needs the OPT record, so ParseQuery reads it for every opcode,
// and the question too when there is exactly one (Knot and Unbound echo it).
TEST(ParseQueryTest, NotImpStillReadsOptAndQuestion) {
  QueryInfo info;
  for (uint8_t opcode : {1, 2, 3, 4, 5, 6, 15}) {
    SCOPED_TRACE(opcode);
    ASSERT_EQ(ParseQuery(RawQuery(opcode, 1, 1, true, kCookie), info), QueryStatus::kNotImp);
    EXPECT_TRUE(info.has_edns);
    EXPECT_TRUE(info.do_bit);
    EXPECT_EQ(info.udp_size, 4096);
    EXPECT_EQ(info.question_end, 12 + 17 + 4);
    EXPECT_EQ(info.qtype, type::kA);
    // No question, or two: still NOTIMP (as Knot answers opcode 3), still with the OPT record.
    ASSERT_EQ(ParseQuery(RawQuery(opcode, 0, 0, true), info), QueryStatus::kNotImp);
    EXPECT_TRUE(info.has_edns);
    EXPECT_EQ(info.question_end, 0);
    ASSERT_EQ(ParseQuery(RawQuery(opcode, 2, 2, true), info), QueryStatus::kNotImp);
    EXPECT_TRUE(info.has_edns);
    EXPECT_EQ(info.question_end, 0);
    ASSERT_EQ(ParseQuery(RawQuery(opcode, 1, 1, false), info), QueryStatus::kNotImp);
    EXPECT_FALSE(info.has_edns);
  }
}

// RFC 7873 §5.4: a cookie-only query (QDCOUNT 0, OPT with COOKIE) from a client probing for
// server cookies. nodedns implements no cookies: FORMERR, but with the OPT record read.
TEST(ParseQueryTest, CookieOnlyAndTwoQuestionQueriesAreFormErrWithEdns) {
  QueryInfo info;
  ASSERT_EQ(ParseQuery(RawQuery(0, 0, 0, true, kCookie), info), QueryStatus::kFormErr);
  EXPECT_TRUE(info.has_edns);
  EXPECT_TRUE(info.do_bit);
  EXPECT_EQ(info.question_end, 0);
  ASSERT_EQ(ParseQuery(RawQuery(0, 2, 2, true), info), QueryStatus::kFormErr);
  EXPECT_TRUE(info.has_edns);
  EXPECT_EQ(info.question_end, 0);  // two questions: none is echoed
  ASSERT_EQ(ParseQuery(RawQuery(0, 0, 0, false), info), QueryStatus::kFormErr);
  EXPECT_FALSE(info.has_edns);
  // The well-formed control: one question and the same OPT.
  ASSERT_EQ(ParseQuery(RawQuery(0, 1, 1, true, kCookie), info), QueryStatus::kOk);
}

// Bytes after the last record: FORMERR (Knot, dnsdist). The OPT record before them was read whole,
// so the error reply keeps it.
TEST(ParseQueryTest, TrailingBytesAreFormErrAndKeepTheOpt) {
  QueryInfo info;
  for (const std::vector<uint8_t>& tail :
       {std::vector<uint8_t>{0}, std::vector<uint8_t>{0, 0, 0, 0}, std::vector<uint8_t>(40, 7)}) {
    SCOPED_TRACE(tail.size());
    ASSERT_EQ(ParseQuery(RawQuery(0, 1, 1, true, kCookie, tail), info), QueryStatus::kFormErr);
    EXPECT_TRUE(info.has_edns);
    EXPECT_EQ(info.question_end, 12 + 17 + 4);
    ASSERT_EQ(ParseQuery(RawQuery(0, 1, 1, false, {}, tail), info), QueryStatus::kFormErr);
    EXPECT_FALSE(info.has_edns);
    EXPECT_EQ(info.question_end, 12 + 17 + 4);
    // Other opcodes too: a malformed message is FORMERR before its opcode is judged.
    ASSERT_EQ(ParseQuery(RawQuery(4, 1, 1, true, {}, tail), info), QueryStatus::kFormErr);
    EXPECT_TRUE(info.has_edns);
  }
}

// RFC 6891 §6.1.2: options are code, length and data, and fill RDLENGTH exactly. An option running
// past it (or a stub of an option header) makes the OPT invalid: FORMERR without OPT, as Knot.
TEST(ParseQueryTest, EdnsOptionsMustFillTheOptRdataExactly) {
  QueryInfo info;
  const std::vector<std::vector<uint8_t>> bad = {
      {0, 10, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8},  // length 20, 8 bytes left
      {0, 10, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8},   // one byte over
      {0, 10, 0},                              // 3 bytes: not even an option header
      {0, 10, 0, 4, 1, 2, 3, 4, 5, 6, 7, 8},   // fits, then 4 bytes of a second option that
                                               // claims 0x0506 bytes
      {0, 10, 0, 4, 1, 2, 3, 4, 5},            // fits, then a single stray byte
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(ParseQuery(RawQuery(0, 1, 1, true, bad[i]), info), QueryStatus::kFormErr);
    EXPECT_FALSE(info.has_edns);
    EXPECT_FALSE(info.do_bit);
    EXPECT_EQ(info.udp_size, 0);
    EXPECT_EQ(info.question_end, 12 + 17 + 4);  // the question is still echoed
  }
  // Options that fit: none, one, two, an empty one.
  for (const std::vector<uint8_t>& good :
       {std::vector<uint8_t>{}, kCookie, std::vector<uint8_t>{0, 12, 0, 2, 0, 0, 0, 10, 0, 0},
        std::vector<uint8_t>{0, 12, 0, 0}}) {
    ASSERT_EQ(ParseQuery(RawQuery(0, 1, 1, true, good), info), QueryStatus::kOk);
    EXPECT_TRUE(info.has_edns);
  }
}

// BADVERS comes before the opcode and question checks (Knot's order).
TEST(ParseQueryTest, BadVersionWinsOverOpcodeAndQuestionCount) {
  QueryInfo info;
  auto with_version = [](std::vector<uint8_t> m) {
    m[m.size() - 11 + 6] = 1;  // the OPT record is last and has no options
    return m;
  };
  EXPECT_EQ(ParseQuery(with_version(RawQuery(4, 1, 1, true)), info), QueryStatus::kBadVers);
  EXPECT_EQ(ParseQuery(with_version(RawQuery(0, 0, 0, true)), info), QueryStatus::kBadVers);
  EXPECT_TRUE(info.has_edns);
  EXPECT_EQ(ParseQuery(with_version(RawQuery(0, 1, 1, true)), info), QueryStatus::kBadVers);
}

TEST(IsMetaQtypeTest, CoversTheQAndMetaRangeAndOptButNotAny) {
  for (uint16_t t : {type::kOPT, type::kTKEY, type::kTSIG, type::kIXFR, type::kAXFR, type::kMAILB,
                     type::kMAILA, uint16_t{128}, uint16_t{200}}) {
    EXPECT_TRUE(IsMetaQtype(t)) << t;
  }
  for (uint16_t t : {type::kANY, type::kA, type::kAAAA, type::kTXT, type::kRRSIG, uint16_t{0},
                     uint16_t{40}, uint16_t{42}, uint16_t{127}, uint16_t{256}, uint16_t{65535}}) {
    EXPECT_FALSE(IsMetaQtype(t)) << t;
  }
}

TEST(ParseQueryTest, RejectsTwoOptRecordsAndFlagsBadVersion) {
  MessageSpec m;
  m.qr = false;
  m.edns = true;
  auto q = Build(m);
  std::vector<uint8_t> opt(q.end() - 11, q.end());
  q.insert(q.end(), opt.begin(), opt.end());
  Put16(q.data() + 10, 2);
  QueryInfo info;
  EXPECT_EQ(ParseQuery(q, info), QueryStatus::kFormErr);
  EXPECT_FALSE(info.has_edns);  // neither OPT is valid (RFC 6891 §6.1.1): no OPT in the FORMERR
  q = Build(m);
  q[q.size() - 11 + 6] = 1;  // EDNS version 1
  EXPECT_EQ(ParseQuery(q, info), QueryStatus::kBadVers);
}

TEST(ExpandNameTest, FollowsBackwardPointersAndRejectsLoops) {
  MessageSpec m;
  m.qname = "www.example.com.";
  m.answer = {"www.example.com. 60 IN CNAME web.example.com."};
  auto r = Build(m);
  uint8_t out[kMaxNameWire];
  // The answer's owner is a pointer to the question name.
  const size_t owner = 12 + 17 + 4;
  ASSERT_EQ(r[owner] & 0xc0, 0xc0);
  auto n = ExpandName(r, owner, out);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 17u);
  EXPECT_EQ(std::memcmp(out, r.data() + 12, 17), 0);
  std::vector<uint8_t> loop = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 0xc0, 12};
  EXPECT_FALSE(ExpandName(loop, 12, out).has_value());
}

TEST(ResponseLayoutTest, FindsEveryTtlSoaAndOptLikeLdns) {
  MessageSpec m;
  m.qname = "nx.example.com.";
  m.rcode = rcode::kNxDomain;
  m.answer = {"nx.example.com. 10 IN CNAME gone.example.com."};
  m.authority = {"example.com. 3600 IN SOA ns.example.com. h.example.com. 1 2 3 4 77"};
  m.additional = {"ns.example.com. 20 IN A 192.0.2.1"};
  m.edns = true;
  auto r = Build(m);
  ResponseLayout layout;
  ASSERT_EQ(ParseResponseLayout(r, layout), LayoutStatus::kOk);
  EXPECT_EQ(layout.rcode, rcode::kNxDomain);
  ASSERT_EQ(layout.n_ttls, 3);
  std::vector<uint32_t> ttls;
  for (int i = 0; i < layout.n_ttls; ++i) ttls.push_back(Get32(r.data() + layout.ttl_offsets[i]));
  EXPECT_EQ(ttls, AllTtls(Parse(r).get()));
  EXPECT_EQ(layout.soa_ttl_offset, layout.ttl_offsets[1]);
  EXPECT_EQ(layout.soa_minimum, 77u);
  EXPECT_EQ(layout.opt_end, r.size());
  EXPECT_EQ(layout.opt_offset, r.size() - kOptRecordSize);
}

TEST(ResponseLayoutTest, NeverReadsOutOfBoundsOnCorruptedMessages) {
  MessageSpec m;
  m.answer = {"example.com. 60 IN A 192.0.2.1", "example.com. 60 IN A 192.0.2.2"};
  auto r = Build(m);
  ResponseLayout layout;
  // Flip every byte to every interesting value: whatever the result, no crash (ASan checks).
  for (size_t i = 0; i < r.size(); ++i) {
    for (uint8_t v : {0x00, 0x3f, 0x40, 0xc0, 0xff}) {
      auto c = r;
      c[i] = v;
      ParseResponseLayout(c, layout);
      QueryInfo qi;
      ParseQuery(c, qi);
    }
  }
  SUCCEED();
}

}  // namespace
}  // namespace nodedns::dns
