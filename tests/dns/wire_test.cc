// The data path's wire walkers against ldns-built messages and hand-made malformed ones.
#include "dns/wire.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tests/testing/dns_builder.h"
#include "tests/testing/wire_builder.h"

namespace nodedns::dns {
namespace {

using ::nodedns::testing::AllTtls;
using ::nodedns::testing::Build;
using ::nodedns::testing::BuildQuery;
using ::nodedns::testing::MessageSpec;
using ::nodedns::testing::Parse;
using ::nodedns::testing::WireBuilder;

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
  ASSERT_EQ(ParseResponseLayout(r, layout), LayoutStatus::kOk);
  // Flip every byte to every interesting value: whatever the result, no crash (ASan checks), and
  // every offset of an accepted layout lies inside the message, since the cache reads and writes
  // TTLs and the OPT record at those offsets without checking them again.
  int accepted = 0, rejected = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    for (uint8_t v : {0x00, 0x3f, 0x40, 0xc0, 0xff}) {
      auto c = r;
      c[i] = v;
      SCOPED_TRACE("byte " + std::to_string(i) + " = " + std::to_string(v));
      if (ParseResponseLayout(c, layout) == LayoutStatus::kOk) {
        ++accepted;
        EXPECT_LE(layout.question_end, layout.end);
        EXPECT_LE(layout.end, c.size());
        for (int t = 0; t < layout.n_ttls; ++t) EXPECT_LE(layout.ttl_offsets[t] + 4u, layout.end);
        if (layout.soa_ttl_offset) EXPECT_LE(layout.soa_ttl_offset + 4u, layout.end);
        if (layout.opt_offset) {
          EXPECT_LT(layout.opt_offset, layout.opt_end);
          EXPECT_LE(layout.opt_end, c.size());
        }
      } else {
        ++rejected;
      }
      QueryInfo qi;
      ParseQuery(c, qi);
      EXPECT_LE(qi.question_end, c.size());
    }
  }
  // Both outcomes occur: corruption is caught, and bytes that do not matter (the ID, an address)
  // are still accepted.
  EXPECT_GT(accepted, 0);
  EXPECT_GT(rejected, 0);
}

// ---------------------------------------------------------------------------------------------
// Name rules (wire.h, ParseResponseLayout): hand-built messages, checked against ldns where ldns
// is strict (label types, 255 bytes) and documented where it is not (it follows any pointer
// that is not 0 and lies inside the message, forward or into the middle of anything).

LayoutStatus Layout(const WireBuilder& w) {
  ResponseLayout layout;
  return ParseResponseLayout(w.bytes(), layout);
}

// Question www.example.com A IN at 12..32; "example.com" starts at 16. The first RR owner is 33.
constexpr size_t kQname = 12, kExampleCom = 16, kFirstRr = 33;
WireBuilder WithQuestion(uint16_t an, uint16_t ns = 0, uint16_t ar = 0) {
  WireBuilder w(1, an, ns, ar);
  w.Name("www.example.com").U16(type::kA).U16(kClassIN);
  return w;
}

TEST(ResponseNamesTest, AcceptsPointersToTheQuestionEarlierRdataNamesAndPointers) {
  WireBuilder w = WithQuestion(3, 1, 1);
  // www.example.com CNAME cdn.example.com: the target's labels start at 45, its pointer at 49.
  w.Pointer(kQname).RrFixed(type::kCNAME, 60).Labels("cdn").Pointer(kExampleCom).EndRdata();
  ASSERT_EQ(w.size(), 51u);
  w.Pointer(45).RrFixed(type::kA, 60).U32(0xc0000201).EndRdata();  // into CNAME RDATA
  w.Pointer(49).RrFixed(type::kMX, 60).U16(10).Labels("mail").Pointer(45).EndRdata();  // pointer
  w.Pointer(kExampleCom)
      .RrFixed(type::kSOA, 3600)
      .Labels("ns")
      .Pointer(kExampleCom)
      .Labels("host")
      .Pointer(kExampleCom)
      .U32(1)
      .U32(2)
      .U32(3)
      .U32(4)
      .U32(5)
      .EndRdata();
  w.Labels("mail").Pointer(45).RrFixed(type::kA, 60).U32(0xc0000219).EndRdata();
  ResponseLayout layout;
  ASSERT_EQ(ParseResponseLayout(w.bytes(), layout), LayoutStatus::kOk);
  EXPECT_EQ(layout.n_ttls, 5);
  EXPECT_EQ(layout.soa_minimum, 5u);
  EXPECT_EQ(layout.end, w.size());
  auto pkt = Parse(w.bytes());
  ASSERT_NE(pkt, nullptr);
  EXPECT_EQ(ldns_rr_list_rr_count(ldns_pkt_answer(pkt.get())), 3u);
}

TEST(ResponseNamesTest, AcceptsWhatLdnsCompresses) {
  MessageSpec m;
  m.qname = "www.example.com.";
  m.answer = {"www.example.com. 60 IN CNAME web.example.com.",
              "web.example.com. 60 IN A 192.0.2.1",
              "web.example.com. 60 IN MX 10 mail.web.example.com.",
              "1.2.0.192.in-addr.arpa. 60 IN PTR web.example.com.",
              "_sip._udp.example.com. 60 IN SRV 1 2 5060 web.example.com.",
              "example.com. 60 IN NAPTR 100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.example.com.",
              "example.com. 60 IN DNAME example.net.",
              "example.com. 60 IN TXT \"hello\""};
  m.authority = {"example.com. 3600 IN NS ns1.example.com.",
                 "example.com. 3600 IN SOA ns1.example.com. host.example.com. 1 2 3 4 5"};
  m.additional = {"ns1.example.com. 60 IN A 192.0.2.53",
                  "mail.web.example.com. 60 IN AAAA 2001:db8::25"};
  m.edns = true;
  const auto r = Build(m);
  // ldns compressed owners into earlier RDATA (web.example.com in the CNAME's target).
  ASSERT_LT(r.size(), 400u);
  ResponseLayout layout;
  ASSERT_EQ(ParseResponseLayout(r, layout), LayoutStatus::kOk);
  EXPECT_EQ(layout.n_ttls, 12);
  std::vector<uint32_t> ttls;
  for (int i = 0; i < layout.n_ttls; ++i) ttls.push_back(Get32(r.data() + layout.ttl_offsets[i]));
  EXPECT_EQ(ttls, AllTtls(Parse(r).get()));
}

TEST(ResponseNamesTest, RejectsPointerLoops) {
  WireBuilder self = WithQuestion(1);  // an owner whose pointer leads back to its own first label
  self.U8(1).Raw("a").Pointer(kFirstRr).RrFixed(type::kA, 60).U32(0).EndRdata();
  EXPECT_EQ(Layout(self), LayoutStatus::kMalformed);
  WireBuilder cname = WithQuestion(1);  // a CNAME target that points at itself
  cname.Pointer(kQname).RrFixed(type::kCNAME, 60).Pointer(kFirstRr + 12).EndRdata();
  EXPECT_EQ(Layout(cname), LayoutStatus::kMalformed);
}

TEST(ResponseNamesTest, RejectsForwardPointers) {
  // The first answer's owner points at the second's, which ldns follows: RFC 1035 §4.1.4 says
  // "a prior occurance".
  WireBuilder w = WithQuestion(2);
  w.Pointer(kFirstRr + 16).RrFixed(type::kA, 60).U32(0).EndRdata();
  ASSERT_EQ(w.size(), kFirstRr + 16);
  w.Name("later.example").RrFixed(type::kA, 60).U32(0).EndRdata();
  EXPECT_EQ(Layout(w), LayoutStatus::kMalformed);
  EXPECT_NE(Parse(w.bytes()), nullptr);  // ldns is lax here
}

TEST(ResponseNamesTest, RejectsPointersIntoTheMiddleOfALabel) {
  // Question "q\x01z.com": offset 14 holds 01 'z' 03 "com" 00, a well-formed name ldns reads as
  // z.com, but no name starts there.
  WireBuilder w(1, 1);
  w.Labels(std::string_view("q\x01z.com", 7)).U8(0).U16(type::kA).U16(kClassIN);
  w.Pointer(14).RrFixed(type::kA, 60).U32(0).EndRdata();
  EXPECT_EQ(Layout(w), LayoutStatus::kMalformed);
  EXPECT_NE(Parse(w.bytes()), nullptr);
  WireBuilder ok(1, 1);  // the same pointer to the label start is fine
  ok.Labels(std::string_view("q\x01z.com", 7)).U8(0).U16(type::kA).U16(kClassIN);
  ok.Pointer(16).RrFixed(type::kA, 60).U32(0).EndRdata();
  EXPECT_EQ(Layout(ok), LayoutStatus::kOk);
}

TEST(ResponseNamesTest, RejectsPointersIntoTheHeaderRrFieldsAndOpaqueRdata) {
  WireBuilder header = WithQuestion(1);  // offset 4: QDCOUNT 00 01, read as the root name
  header.Pointer(4).RrFixed(type::kA, 60).U32(0).EndRdata();
  EXPECT_EQ(Layout(header), LayoutStatus::kMalformed);
  EXPECT_NE(Parse(header.bytes()), nullptr);
  WireBuilder ttl = WithQuestion(2);  // the first RR's TTL (0), read as the root name
  ttl.Pointer(kQname).RrFixed(type::kA, 0).U32(0).EndRdata();
  ttl.Pointer(kFirstRr + 6).RrFixed(type::kA, 60).U32(0).EndRdata();
  EXPECT_EQ(Layout(ttl), LayoutStatus::kMalformed);
  WireBuilder txt = WithQuestion(2);  // TXT RDATA holding the bytes of "foo."
  txt.Pointer(kQname).RrFixed(type::kTXT, 60).U8(5).Raw(std::string_view("\3foo\0", 5)).EndRdata();
  txt.Pointer(kFirstRr + 13).RrFixed(type::kA, 60).U32(0).EndRdata();
  EXPECT_EQ(Layout(txt), LayoutStatus::kMalformed);
  EXPECT_NE(Parse(txt.bytes()), nullptr);
}

TEST(ResponseNamesTest, RejectsExtendedLabelTypesLikeLdns) {
  // Followed by as many bytes as the byte's value, so that only the type bits are wrong.
  for (const uint8_t label : {0x40, 0x41, 0x80, 0xbf}) {
    const std::string bytes(label, 'x');
    WireBuilder owner = WithQuestion(1);
    owner.U8(label).Raw(bytes).U8(0).RrFixed(type::kA, 60).U32(0).EndRdata();
    EXPECT_EQ(Layout(owner), LayoutStatus::kMalformed) << int{label};
    EXPECT_EQ(Parse(owner.bytes()), nullptr) << int{label};
    WireBuilder question(1, 0);
    question.U8(label).Raw(bytes).U8(0).U16(type::kA).U16(kClassIN);
    EXPECT_EQ(Layout(question), LayoutStatus::kMalformed) << int{label};
    WireBuilder cname = WithQuestion(1);
    cname.Pointer(kQname).RrFixed(type::kCNAME, 60).U8(label).Raw(bytes).U8(0).EndRdata();
    EXPECT_EQ(Layout(cname), LayoutStatus::kMalformed) << int{label};
  }
}

TEST(ResponseNamesTest, RejectsNamesOver255BytesOnceExpandedLikeLdns) {
  // The question: three 63-byte labels, 193 bytes. An owner of one 61-byte label and a pointer
  // to it is 255 bytes expanded; one byte more is too long, though 64 bytes are on the wire.
  const std::string labels =
      std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c');
  for (const size_t extra : {61, 62}) {
    WireBuilder w(1, 1);
    w.Name(labels).U16(type::kA).U16(kClassIN);
    w.Labels(std::string(extra, 'd')).Pointer(kQname).RrFixed(type::kA, 60).U32(0).EndRdata();
    const bool fits = extra + 1 + 193 <= kMaxNameWire;
    EXPECT_EQ(Layout(w), fits ? LayoutStatus::kOk : LayoutStatus::kMalformed) << extra;
    EXPECT_EQ(Parse(w.bytes()) != nullptr, fits) << extra;
    // The same name in a CNAME's RDATA.
    WireBuilder c(1, 1);
    c.Name(labels).U16(type::kA).U16(kClassIN);
    c.Pointer(kQname).RrFixed(type::kCNAME, 60).Labels(std::string(extra, 'd')).Pointer(kQname);
    c.EndRdata();
    EXPECT_EQ(Layout(c), fits ? LayoutStatus::kOk : LayoutStatus::kMalformed) << extra;
  }
}

TEST(ResponseNamesTest, FollowsAtMost127PointersPerName) {
  // Each owner is a pointer to the previous owner (a pointer): the n-th takes n hops.
  for (const uint16_t n : {127, 128}) {
    WireBuilder w = WithQuestion(n);
    size_t prev = kQname;
    for (int i = 0; i < n; ++i) {
      const size_t at = w.size();
      w.Pointer(prev).RrFixed(0xff00, 60).EndRdata();
      prev = at;
    }
    EXPECT_EQ(Layout(w), n <= kMaxPointerHops ? LayoutStatus::kOk : LayoutStatus::kMalformed);
    uint8_t out[kMaxNameWire];
    EXPECT_EQ(ExpandName(w.bytes(), prev, out).has_value(), n <= kMaxPointerHops);
  }
}

// One RR whose RDATA holds a name, for each type: the fixed bytes before it, after it.
struct RdataCase {
  uint16_t type;
  std::string_view before, after;
};
constexpr RdataCase kRdataCases[] = {
    {type::kCNAME, "", ""},
    {type::kNS, "", ""},
    {type::kPTR, "", ""},
    {type::kMX, std::string_view("\0\x0a", 2), ""},
    {type::kSRV, std::string_view("\0\1\0\2\x13\xc4", 6), ""},
    {type::kSOA, "",
     std::string_view("\4host\xc0\x10"
                      "12345678901234567890",
                      27)},
};

// The RR at kFirstRr with `name_bytes` where the name goes, RDLENGTH adjusted by `adjust`.
WireBuilder WithRdataName(const RdataCase& c, std::string_view name_bytes, int adjust = 0) {
  WireBuilder w = WithQuestion(1);
  w.Pointer(kQname).RrFixed(c.type, 60).Raw(c.before).Raw(name_bytes).Raw(c.after);
  w.EndRdata(adjust);
  if (adjust > 0) w.Raw(std::string(size_t(adjust), '\0'));
  return w;
}

TEST(ResponseNamesTest, RejectsBadNamesInRdata) {
  constexpr size_t kRdata = kFirstRr + 12;
  for (const RdataCase& c : kRdataCases) {
    SCOPED_TRACE(c.type);
    EXPECT_EQ(Layout(WithRdataName(c, "\3cdn\xc0\x10")), LayoutStatus::kOk);
    EXPECT_EQ(Layout(WithRdataName(c, std::string_view("\3cdn\0", 5))), LayoutStatus::kOk);
    // Extended label types (ldns refuses these too), followed by as many bytes as their value.
    const WireBuilder ext = WithRdataName(c, "\x40" + std::string(0x40, 'c') + '\0');
    EXPECT_EQ(Layout(ext), LayoutStatus::kMalformed);
    EXPECT_EQ(Parse(ext.bytes()), nullptr);
    EXPECT_EQ(Layout(WithRdataName(c, "\x80" + std::string(0x80, 'c') + '\0')),
              LayoutStatus::kMalformed);
    // Pointers: into the middle of a question label, to itself, forward, into the header.
    EXPECT_EQ(Layout(WithRdataName(c, "\3cdn\xc0\x11")), LayoutStatus::kMalformed);
    const std::string self = "\3cdn\xc0" + std::string(1, char(kRdata + c.before.size()));
    EXPECT_EQ(Layout(WithRdataName(c, self)), LayoutStatus::kMalformed);
    EXPECT_EQ(Layout(WithRdataName(c, "\3cdn\xc0\xf0")), LayoutStatus::kMalformed);
    EXPECT_EQ(Layout(WithRdataName(c, "\3cdn\xc0\x04")), LayoutStatus::kMalformed);
    // 256 bytes expanded: 63 more bytes in front of the 193 of a long suffix would not fit the
    // question; instead, four 63-byte labels and the root in place: 257 bytes.
    std::string in_place;
    for (int i = 0; i < 4; ++i) in_place += "\x3f" + std::string(63, 'x');
    EXPECT_EQ(Layout(WithRdataName(c, in_place + std::string(1, '\0'))), LayoutStatus::kMalformed);
    // RDLENGTH one byte longer or shorter than the fields.
    EXPECT_EQ(Layout(WithRdataName(c, "\3cdn\xc0\x10", +1)), LayoutStatus::kMalformed);
    EXPECT_EQ(Layout(WithRdataName(c, "\3cdn\xc0\x10", -1)), LayoutStatus::kMalformed);
  }
}

TEST(ResponseNamesTest, RejectsACnameWhoseRdlengthIsNotItsName) {
  // found-cname-rdata-trailing-bytes: the name, then two bytes RDLENGTH covers.
  EXPECT_EQ(Layout(WithRdataName(kRdataCases[0], std::string_view("\3cdn\0", 5), +2)),
            LayoutStatus::kMalformed);
  // RDLENGTH 3: the name runs past its RDATA into the next bytes.
  WireBuilder w = WithQuestion(1);
  w.Pointer(kQname).RrFixed(type::kCNAME, 60).Raw(std::string_view("\3cdn\0", 5)).EndRdata(-2);
  EXPECT_EQ(Layout(w), LayoutStatus::kMalformed);
  // RDLENGTH 0.
  WireBuilder empty = WithQuestion(1);
  empty.Pointer(kQname).RrFixed(type::kCNAME, 60).EndRdata();
  EXPECT_EQ(Layout(empty), LayoutStatus::kMalformed);
}

TEST(ResponseNamesTest, PointersInRdataOnlyWhereRfc3597AllowsThem) {
  // SRV (RFC 3597 §4: receivers decompress it) yes; DNAME, KX, RRSIG, NSEC no.
  WireBuilder srv = WithQuestion(1);
  srv.Pointer(kQname).RrFixed(type::kSRV, 60).U16(1).U16(2).U16(3).Pointer(kExampleCom);
  EXPECT_EQ(Layout(srv.EndRdata()), LayoutStatus::kOk);
  WireBuilder dname = WithQuestion(1);
  dname.Pointer(kQname).RrFixed(type::kDNAME, 60).Pointer(kExampleCom).EndRdata();
  EXPECT_EQ(Layout(dname), LayoutStatus::kMalformed);
  WireBuilder dname_plain = WithQuestion(1);
  dname_plain.Pointer(kQname).RrFixed(type::kDNAME, 60).Name("example.net").EndRdata();
  EXPECT_EQ(Layout(dname_plain), LayoutStatus::kOk);
  WireBuilder kx = WithQuestion(1);
  kx.Pointer(kQname).RrFixed(type::kKX, 60).U16(1).Pointer(kExampleCom).EndRdata();
  EXPECT_EQ(Layout(kx), LayoutStatus::kMalformed);
  for (const bool compressed : {false, true}) {
    WireBuilder rrsig = WithQuestion(1);
    rrsig.Pointer(kQname).RrFixed(type::kRRSIG, 60).U16(type::kA).U8(13).U8(2).U32(60);
    rrsig.U32(2).U32(1).U16(7);
    if (compressed) {
      rrsig.Pointer(kExampleCom);
    } else {
      rrsig.Name("example.com");
    }
    rrsig.Raw("signature").EndRdata();
    EXPECT_EQ(Layout(rrsig), compressed ? LayoutStatus::kMalformed : LayoutStatus::kOk);
    WireBuilder nsec = WithQuestion(1);
    nsec.Pointer(kQname).RrFixed(type::kNSEC, 60);
    if (compressed) {
      nsec.Labels("z").Pointer(kExampleCom);
    } else {
      nsec.Name("z.example.com");
    }
    nsec.Raw(std::string_view("\0\1\x40", 3)).EndRdata();
    EXPECT_EQ(Layout(nsec), compressed ? LayoutStatus::kMalformed : LayoutStatus::kOk);
  }
}

// ---------------------------------------------------------------------------------------------
// Record counts: any message up to 65535 bytes parses, whatever its number of records.

TEST(ResponseLayoutTest, ParsesMoreThan512RecordsLikeLdns) {
  MessageSpec m;
  m.qname = "big.example.";
  for (int i = 0; i < 600; ++i) {
    m.answer.push_back("big.example. " + std::to_string(100 + i) + " IN A 10.0." +
                       std::to_string(i / 256) + "." + std::to_string(i % 256));
  }
  m.edns = true;
  const auto r = Build(m);
  ResponseLayout layout;
  ASSERT_EQ(ParseResponseLayout(r, layout), LayoutStatus::kOk);
  ASSERT_EQ(layout.n_ttls, 600);
  std::vector<uint32_t> ttls;
  for (int i = 0; i < layout.n_ttls; ++i) ttls.push_back(Get32(r.data() + layout.ttl_offsets[i]));
  EXPECT_EQ(ttls, AllTtls(Parse(r).get()));
}

TEST(ResponseLayoutTest, ParsesTheMostRecordsA65535ByteMessageHolds) {
  // No question, root owners, empty RDATA: 11 bytes per record, the smallest there is.
  constexpr size_t kMost = (kMaxMessage - kHeaderSize) / 11;
  static_assert(kMost == ResponseLayout::kMaxTtls && kMost == 5956);
  WireBuilder w(0, kMost);
  for (size_t i = 0; i < kMost; ++i) w.U8(0).RrFixed(0xff00, static_cast<uint32_t>(i)).EndRdata();
  ASSERT_LE(w.size(), kMaxMessage);
  auto layout = std::make_unique<ResponseLayout>();
  ASSERT_EQ(ParseResponseLayout(w.bytes(), *layout), LayoutStatus::kOk);
  ASSERT_EQ(layout->n_ttls, kMost);
  for (size_t i = 0; i < kMost; ++i) ASSERT_EQ(Get32(w.bytes().data() + layout->ttl_offsets[i]), i);
}

TEST(ResponseMatchesQuestionTest, MatchesQuestionCaseInsensitivelyOnly) {
  const auto name = ::nodedns::testing::WireName("example.com.");
  MessageSpec m;
  m.qname = "EXAMPLE.com.";
  const auto reply = Build(m);
  EXPECT_TRUE(ResponseMatchesQuestion(reply, name, 1, 1));
  EXPECT_FALSE(ResponseMatchesQuestion(reply, name, 28, 1));
  EXPECT_FALSE(ResponseMatchesQuestion(reply, ::nodedns::testing::WireName("example.org."), 1, 1));
  EXPECT_FALSE(ResponseMatchesQuestion({reply.data(), 20}, name, 1, 1));
}

}  // namespace
}  // namespace nodedns::dns
