// Reply building: ID/case/flags patching, EDNS presence, truncation, error replies and the
// normalized upstream query, all checked by parsing the result with ldns.
#include "proxy/reply.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "tests/testing/dns_builder.h"

namespace nodedns::proxy {
namespace {

using ::nodedns::testing::Build;
using ::nodedns::testing::BuildQuery;
using ::nodedns::testing::MessageSpec;
using ::nodedns::testing::Parse;
using ::nodedns::testing::WireName;

struct Fixture {
  std::vector<uint8_t> query;
  dns::QueryInfo q;
  std::vector<uint8_t> out = std::vector<uint8_t>(70000);
  size_t Finish(const std::vector<uint8_t>& upstream, size_t limit, bool* tc = nullptr) {
    std::memcpy(out.data(), upstream.data(), upstream.size());
    return FinishReply(out, upstream.size(), query, q, limit, tc);
  }
};

Fixture ForQuery(std::vector<uint8_t> query) {
  Fixture f;
  f.query = std::move(query);
  EXPECT_EQ(dns::ParseQuery(f.query, f.q), dns::QueryStatus::kOk);
  return f;
}

std::vector<uint8_t> Upstream(const std::string& name, int n_records) {
  MessageSpec m;
  m.qname = name;
  m.id = 7;
  for (int i = 0; i < n_records; ++i) {
    m.answer.push_back(name + " 300 IN A 192.0.2." + std::to_string(i + 1));
  }
  return Build(m);
}

TEST(FinishReplyTest, CopiesIdAndQuestionCaseFromQuery) {
  auto f = ForQuery(BuildQuery("WwW.ExAmple.COM.", 1, false, false, 0xabcd));
  const size_t n = f.Finish(Upstream("www.example.com.", 1), 512);
  auto pkt = Parse({f.out.data(), n});
  ASSERT_NE(pkt, nullptr);
  EXPECT_EQ(ldns_pkt_id(pkt.get()), 0xabcd);
  EXPECT_EQ(std::memcmp(f.out.data() + 12, f.query.data() + 12, f.q.qname_length), 0);
  EXPECT_TRUE(ldns_pkt_qr(pkt.get()));
  EXPECT_TRUE(ldns_pkt_rd(pkt.get()));
  EXPECT_TRUE(ldns_pkt_ra(pkt.get()));
  EXPECT_FALSE(ldns_pkt_aa(pkt.get()));
  EXPECT_EQ(ldns_pkt_ancount(pkt.get()), 1);
}

TEST(FinishReplyTest, AddsOptOnlyWhenQueryHadOneAndEchoesDo) {
  auto plain = ForQuery(BuildQuery("example.com.", 1, /*edns=*/false));
  auto pkt = Parse({plain.out.data(), plain.Finish(Upstream("example.com.", 1), 512)});
  ASSERT_NE(pkt, nullptr);
  EXPECT_FALSE(ldns_pkt_edns(pkt.get()));

  auto edns = ForQuery(BuildQuery("example.com.", 1, /*edns=*/true, /*do=*/true));
  pkt = Parse({edns.out.data(), edns.Finish(Upstream("example.com.", 1), 1232)});
  ASSERT_NE(pkt, nullptr);
  EXPECT_TRUE(ldns_pkt_edns(pkt.get()));
  EXPECT_EQ(ldns_pkt_edns_udp_size(pkt.get()), 1232);
  EXPECT_TRUE(ldns_pkt_edns_do(pkt.get()));
}

TEST(FinishReplyTest, TruncatesToHeaderAndQuestionAboveLimit) {
  auto f = ForQuery(BuildQuery("example.com.", 1));
  const auto up = Upstream("example.com.", 40);  // 40 A records: > 512 bytes
  ASSERT_GT(up.size(), 512u);
  bool tc = false;
  const size_t n = f.Finish(up, 512, &tc);
  EXPECT_TRUE(tc);
  EXPECT_EQ(n, f.q.question_end);
  auto pkt = Parse({f.out.data(), n});
  ASSERT_NE(pkt, nullptr);
  EXPECT_TRUE(ldns_pkt_tc(pkt.get()));
  EXPECT_EQ(ldns_pkt_ancount(pkt.get()), 0);
  EXPECT_EQ(ldns_pkt_qdcount(pkt.get()), 1);
  // The same reply fits a TCP limit untouched.
  auto g = ForQuery(BuildQuery("example.com.", 1));
  EXPECT_EQ(g.Finish(up, 65535, &tc), up.size());
  EXPECT_FALSE(tc);
}

TEST(FinishReplyTest, TruncationKeepsOptForEdnsClients) {
  auto f = ForQuery(BuildQuery("example.com.", 1, true));
  const auto up = Upstream("example.com.", 100);
  bool tc = false;
  const size_t n = f.Finish(up, 1232, &tc);
  EXPECT_TRUE(tc);
  auto pkt = Parse({f.out.data(), n});
  ASSERT_NE(pkt, nullptr);
  EXPECT_TRUE(ldns_pkt_tc(pkt.get()));
  EXPECT_TRUE(ldns_pkt_edns(pkt.get()));
}

TEST(FinishReplyTest, KeepsAdOnlyWhenClientAskedForIt) {
  MessageSpec m;
  m.answer = {"example.com. 300 IN A 192.0.2.1"};
  auto up = Build(m);
  up[3] |= 0x20;  // AD from upstream
  auto plain = ForQuery(BuildQuery("example.com.", 1));
  plain.Finish(up, 512);
  EXPECT_FALSE(plain.out[3] & 0x20);
  auto with_do = ForQuery(BuildQuery("example.com.", 1, true, true));
  with_do.Finish(up, 1232);
  EXPECT_TRUE(with_do.out[3] & 0x20);
}

TEST(ErrorReplyTest, FormErrEchoesParsedQuestionAndNotImpDoesNot) {
  auto query = BuildQuery("example.com.", 1, true);
  dns::QueryInfo q;
  std::vector<uint8_t> out(600);
  ASSERT_EQ(dns::ParseQuery(query, q), dns::QueryStatus::kOk);
  size_t n = BuildErrorReply(query, q, dns::QueryStatus::kOk, dns::rcode::kServFail, out);
  auto pkt = Parse({out.data(), n});
  ASSERT_NE(pkt, nullptr);
  EXPECT_EQ(ldns_pkt_get_rcode(pkt.get()), LDNS_RCODE_SERVFAIL);
  EXPECT_EQ(ldns_pkt_qdcount(pkt.get()), 1);
  EXPECT_TRUE(ldns_pkt_edns(pkt.get()));

  query[2] |= 0x20;  // opcode 4 (NOTIFY)
  ASSERT_EQ(dns::ParseQuery(query, q), dns::QueryStatus::kNotImp);
  n = BuildErrorReply(query, q, dns::QueryStatus::kNotImp, dns::rcode::kNotImp, out);
  pkt = Parse({out.data(), n});
  ASSERT_NE(pkt, nullptr);
  EXPECT_EQ(ldns_pkt_get_rcode(pkt.get()), LDNS_RCODE_NOTIMPL);
  EXPECT_EQ(ldns_pkt_get_opcode(pkt.get()), LDNS_PACKET_NOTIFY);
  EXPECT_EQ(ldns_pkt_qdcount(pkt.get()), 0);
}

TEST(ErrorReplyTest, BadVersGoesInTheOptRecord) {
  MessageSpec m;
  m.qr = false;
  m.edns = true;
  auto query = Build(m);
  query[query.size() - 11 + 6] = 1;  // EDNS version 1
  dns::QueryInfo q;
  ASSERT_EQ(dns::ParseQuery(query, q), dns::QueryStatus::kBadVers);
  std::vector<uint8_t> out(600);
  const size_t n = BuildErrorReply(query, q, dns::QueryStatus::kBadVers, 0, out);
  ASSERT_GT(n, 11u);
  EXPECT_EQ(out[3] & 0xf, 0);
  EXPECT_EQ(out[n - 11 + 5], 1);  // extended rcode 1 << 4 = 16 = BADVERS (RFC 6891 §6.1.3)
}

TEST(ErrorReplyTest, NothingForResponsesOrRunts) {
  dns::QueryInfo q;
  std::vector<uint8_t> out(600);
  std::vector<uint8_t> runt = {1, 2, 3};
  EXPECT_EQ(BuildErrorReply(runt, q, dns::ParseQuery(runt, q), 1, out), 0u);
  MessageSpec m;  // a response
  auto resp = Build(m);
  EXPECT_EQ(BuildErrorReply(resp, q, dns::ParseQuery(resp, q), 1, out), 0u);
}

TEST(UpstreamQueryTest, CarriesQuestionRdCdAndOurOptOnly) {
  auto name = WireName("example.com.");
  std::vector<uint8_t> out(300);
  const size_t n = BuildUpstreamQuery(name, 28, 1, /*do=*/true, /*cd=*/true, out);
  auto pkt = Parse({out.data(), n});
  ASSERT_NE(pkt, nullptr);
  EXPECT_FALSE(ldns_pkt_qr(pkt.get()));
  EXPECT_TRUE(ldns_pkt_rd(pkt.get()));
  EXPECT_TRUE(ldns_pkt_cd(pkt.get()));
  EXPECT_TRUE(ldns_pkt_edns(pkt.get()));
  EXPECT_TRUE(ldns_pkt_edns_do(pkt.get()));
  EXPECT_EQ(ldns_pkt_edns_udp_size(pkt.get()), 1232);
  EXPECT_EQ(ldns_pkt_qdcount(pkt.get()), 1);
  EXPECT_EQ(ldns_pkt_arcount(pkt.get()), 0);  // ldns counts OPT separately
  EXPECT_EQ(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_question(pkt.get()), 0)), LDNS_RR_TYPE_AAAA);
}

TEST(UpstreamReplyTest, MatchesQuestionCaseInsensitivelyOnly) {
  const auto name = WireName("example.com.");
  MessageSpec m;
  m.qname = "EXAMPLE.com.";
  const auto reply = Build(m);
  EXPECT_TRUE(ResponseMatchesQuestion(reply, name, 1, 1));
  EXPECT_FALSE(ResponseMatchesQuestion(reply, name, 28, 1));
  EXPECT_FALSE(ResponseMatchesQuestion(reply, WireName("example.org."), 1, 1));
  EXPECT_FALSE(ResponseMatchesQuestion({reply.data(), 20}, name, 1, 1));
}

TEST(UpstreamReplyTest, CopyWithoutOptDropsOptAndFixesCount) {
  MessageSpec m;
  m.answer = {"example.com. 300 IN A 192.0.2.1"};
  m.edns = true;
  const auto reply = Build(m);
  std::vector<uint8_t> out(600);
  const size_t n = CopyWithoutOpt(reply, out);
  ASSERT_EQ(n, reply.size() - dns::kOptRecordSize);
  auto pkt = Parse({out.data(), n});
  ASSERT_NE(pkt, nullptr);
  EXPECT_FALSE(ldns_pkt_edns(pkt.get()));
  EXPECT_EQ(ldns_pkt_ancount(pkt.get()), 1);
}

// A reply passed on without being cached gets the TTLs the cache would have stored: top-bit TTLs
// are 0 (RFC 2181 §8), positive TTLs at most max_ttl, negative ones at most max_negative_ttl and
// the SOA's at most its MINIMUM (RFC 2308 §5).
TEST(UpstreamReplyTest, CopyWithoutOptAppliesTheCachesTtlLimits) {
  const TtlLimits limits{.max_ttl = 60, .max_negative_ttl = 30};
  std::vector<uint8_t> out(600);
  MessageSpec positive;
  positive.answer = {"example.com. 2147483648 IN A 192.0.2.1",
                     "example.com. 4294967295 IN A 192.0.2.2", "example.com. 500 IN A 192.0.2.3",
                     "example.com. 7 IN A 192.0.2.4"};
  positive.edns = true;
  size_t n = CopyWithoutOpt(Build(positive), out, &limits);
  ASSERT_GT(n, 0u);
  EXPECT_EQ(testing::AllTtls(Parse({out.data(), n}).get()), (std::vector<uint32_t>{0, 0, 60, 7}));
  MessageSpec negative;
  negative.rcode = 3;
  negative.authority = {"com. 4000 IN SOA a. b. 1 2 3 4 20", "com. 4000 IN NS ns.com."};
  n = CopyWithoutOpt(Build(negative), out, &limits);
  ASSERT_GT(n, 0u);
  EXPECT_EQ(testing::AllTtls(Parse({out.data(), n}).get()), (std::vector<uint32_t>{20, 30}));
  // Without limits the bytes are the upstream's.
  n = CopyWithoutOpt(Build(positive), out);
  EXPECT_EQ(testing::AllTtls(Parse({out.data(), n}).get())[2], 500u);
}

}  // namespace
}  // namespace nodedns::proxy
