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
