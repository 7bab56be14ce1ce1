// Reply building: ID/case/flags patching, EDNS presence, truncation, error replies and the
// normalized upstream query, all checked by parsing the result with ldns.
#include "proxy/reply.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "tests/testing/dns_builder.h"

namespace nodedns::proxy {
namespace {

using ::nodedns::testing::Build;
using ::nodedns::testing::BuildQuery;
using ::nodedns::testing::LdnsPkt;
using ::nodedns::testing::MessageSpec;
using ::nodedns::testing::Parse;
using ::nodedns::testing::WireName;

struct Fixture {
  std::vector<uint8_t> query;
  dns::QueryInfo q;
  std::vector<uint8_t> out = std::vector<uint8_t>(70000);
  size_t Finish(const std::vector<uint8_t>& upstream, size_t limit, bool* tc = nullptr,
                uint16_t ede = kNoEde) {
    std::memcpy(out.data(), upstream.data(), upstream.size());
    return FinishReply(out, upstream.size(), query, q, limit, tc, ede);
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

// The OPT record's options, as ldns reads them (empty without OPT or options).
std::vector<uint8_t> EdnsOptions(const LdnsPkt& pkt) {
  const ldns_rdf* data = ldns_pkt_edns_data(pkt.get());
  if (data == nullptr) return {};
  const uint8_t* p = ldns_rdf_data(data);
  return {p, p + ldns_rdf_size(data)};
}

// RFC 8914: an EDE option (code 15, INFO-CODE, no EXTRA-TEXT) in the OPT record, only for a client
// that sent EDNS, kept when the reply is truncated.
TEST(FinishReplyTest, CarriesAnExtendedDnsErrorInTheOptOfEdnsClientsOnly) {
  const std::vector<uint8_t> stale = {0, 15, 0, 2, 0, 3};
  auto edns = ForQuery(BuildQuery("example.com.", 1, /*edns=*/true, /*do=*/true));
  const auto up = Upstream("example.com.", 1);
  size_t n = edns.Finish(up, 1232, nullptr, kEdeStaleAnswer);
  EXPECT_EQ(n, up.size() + kReplyTrailerMax);
  auto pkt = Parse({edns.out.data(), n});
  ASSERT_NE(pkt, nullptr);
  EXPECT_TRUE(ldns_pkt_edns(pkt.get()));
  EXPECT_TRUE(ldns_pkt_edns_do(pkt.get()));
  EXPECT_EQ(ldns_pkt_ancount(pkt.get()), 1);
  EXPECT_EQ(EdnsOptions(pkt), stale);

  auto plain = ForQuery(BuildQuery("example.com.", 1, /*edns=*/false));
  n = plain.Finish(up, 512, nullptr, kEdeStaleAnswer);
  EXPECT_EQ(n, up.size());
  pkt = Parse({plain.out.data(), n});
  ASSERT_NE(pkt, nullptr);
  EXPECT_FALSE(ldns_pkt_edns(pkt.get()));

  auto big = ForQuery(BuildQuery("example.com.", 1, /*edns=*/true));
  bool tc = false;
  n = big.Finish(Upstream("example.com.", 100), 1232, &tc, kEdeStaleAnswer);
  EXPECT_TRUE(tc);
  pkt = Parse({big.out.data(), n});
  ASSERT_NE(pkt, nullptr);
  EXPECT_TRUE(ldns_pkt_tc(pkt.get()));
  EXPECT_EQ(EdnsOptions(pkt), stale);

  // Without an EDE the OPT record has no options.
  auto none = ForQuery(BuildQuery("example.com.", 1, /*edns=*/true));
  pkt = Parse({none.out.data(), none.Finish(up, 1232)});
  ASSERT_NE(pkt, nullptr);
  EXPECT_TRUE(EdnsOptions(pkt).empty());
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

TEST(ErrorReplyTest, ServFailEchoesQuestionAndOpt) {
  auto query = BuildQuery("example.com.", 1, true);
  dns::QueryInfo q;
  std::vector<uint8_t> out(kLocalReplyMax);
  ASSERT_EQ(dns::ParseQuery(query, q), dns::QueryStatus::kOk);
  size_t n = BuildErrorReply(query, q, dns::QueryStatus::kOk, dns::rcode::kServFail, out);
  auto pkt = Parse({out.data(), n});
  ASSERT_NE(pkt, nullptr);
  EXPECT_EQ(ldns_pkt_get_rcode(pkt.get()), LDNS_RCODE_SERVFAIL);
  EXPECT_EQ(ldns_pkt_qdcount(pkt.get()), 1);
  EXPECT_TRUE(ldns_pkt_edns(pkt.get()));
  EXPECT_TRUE(ldns_pkt_ra(pkt.get()));
}

// The error reply for what ParseQuery returned, parsed back with ldns.
LdnsPkt ErrorReplyFor(const std::vector<uint8_t>& query, dns::QueryStatus want) {
  dns::QueryInfo q;
  EXPECT_EQ(dns::ParseQuery(query, q), want);
  std::vector<uint8_t> out(kLocalReplyMax);
  const size_t n = BuildErrorReply(query, q, want, ErrorRcode(want), out);
  EXPECT_GE(n, dns::kHeaderSize);
  return Parse({out.data(), n});
}

// RFC 6891 §7: NOTIMP to a query with OPT carries OPT; the question is echoed (Knot and Unbound);
// RA only for opcode QUERY; the opcode comes back.
TEST(ErrorReplyTest, NotImpEchoesQuestionOpcodeAndOptWithoutRa) {
  for (uint8_t opcode : {1, 2, 4, 5}) {
    SCOPED_TRACE(opcode);
    auto query = BuildQuery("example.com.", 6, /*edns=*/true, /*do=*/true);
    query[2] = static_cast<uint8_t>((query[2] & 0x87) | opcode << 3);
    auto pkt = ErrorReplyFor(query, dns::QueryStatus::kNotImp);
    ASSERT_NE(pkt, nullptr);
    EXPECT_EQ(ldns_pkt_get_rcode(pkt.get()), LDNS_RCODE_NOTIMPL);
    EXPECT_EQ(ldns_pkt_get_opcode(pkt.get()), opcode);
    EXPECT_TRUE(ldns_pkt_qr(pkt.get()));
    EXPECT_FALSE(ldns_pkt_ra(pkt.get()));
    EXPECT_TRUE(ldns_pkt_rd(pkt.get()));
    ASSERT_EQ(ldns_pkt_qdcount(pkt.get()), 1);
    EXPECT_EQ(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_question(pkt.get()), 0)), LDNS_RR_TYPE_SOA);
    EXPECT_TRUE(ldns_pkt_edns(pkt.get()));
    EXPECT_TRUE(ldns_pkt_edns_do(pkt.get()));
    // Without OPT in the query, none in the reply.
    auto plain = BuildQuery("example.com.", 6);
    plain[2] = static_cast<uint8_t>((plain[2] & 0x87) | opcode << 3);
    pkt = ErrorReplyFor(plain, dns::QueryStatus::kNotImp);
    ASSERT_NE(pkt, nullptr);
    EXPECT_FALSE(ldns_pkt_edns(pkt.get()));
    EXPECT_EQ(ldns_pkt_qdcount(pkt.get()), 1);
  }
}

// RFC 7873 §5.4 cookie-only query: QDCOUNT 0 and an OPT with just a COOKIE. FORMERR (no cookie
// support), with OPT and no question.
TEST(ErrorReplyTest, CookieOnlyQueryGetsFormErrWithOpt) {
  MessageSpec m;
  m.qr = false;
  m.edns = true;
  m.edns_options = {{nodedns::testing::kOptionCookie, {1, 2, 3, 4, 5, 6, 7, 8}}};
  auto query = Build(m);
  // Drop the question: header, then the OPT record.
  const size_t question_end = 12 + WireName(m.qname).size() + 4;
  query.erase(query.begin() + 12, query.begin() + static_cast<ptrdiff_t>(question_end));
  dns::Put16(query.data() + 4, 0);
  auto pkt = ErrorReplyFor(query, dns::QueryStatus::kFormErr);
  ASSERT_NE(pkt, nullptr);
  EXPECT_EQ(ldns_pkt_get_rcode(pkt.get()), LDNS_RCODE_FORMERR);
  EXPECT_EQ(ldns_pkt_qdcount(pkt.get()), 0);
  EXPECT_TRUE(ldns_pkt_edns(pkt.get()));
  EXPECT_TRUE(ldns_pkt_ra(pkt.get()));
  EXPECT_EQ(ldns_pkt_get_opcode(pkt.get()), LDNS_PACKET_QUERY);
}

// Trailing bytes: FORMERR with the question and the (valid) OPT. An option overrunning the OPT
// RDATA: FORMERR with the question and no OPT (Knot's answer: the OPT itself is invalid).
TEST(ErrorReplyTest, TrailingBytesKeepOptAndOptionOverrunDropsIt) {
  auto query = BuildQuery("example.com.", 1, /*edns=*/true);
  auto trailing = query;
  trailing.push_back(0);
  auto pkt = ErrorReplyFor(trailing, dns::QueryStatus::kFormErr);
  ASSERT_NE(pkt, nullptr);
  EXPECT_EQ(ldns_pkt_get_rcode(pkt.get()), LDNS_RCODE_FORMERR);
  EXPECT_EQ(ldns_pkt_qdcount(pkt.get()), 1);
  EXPECT_TRUE(ldns_pkt_edns(pkt.get()));

  auto overrun = query;  // the OPT is last with RDLENGTH 0: give it a 4-byte option claiming 9
  overrun.insert(overrun.end(), {0, 10, 0, 9});
  dns::Put16(overrun.data() + overrun.size() - 4 - 2, 4);
  pkt = ErrorReplyFor(overrun, dns::QueryStatus::kFormErr);
  ASSERT_NE(pkt, nullptr);
  EXPECT_EQ(ldns_pkt_get_rcode(pkt.get()), LDNS_RCODE_FORMERR);
  EXPECT_EQ(ldns_pkt_qdcount(pkt.get()), 1);
  EXPECT_FALSE(ldns_pkt_edns(pkt.get()));
}

// Set a built query's QCLASS (the question is last without EDNS).
std::vector<uint8_t> WithClass(std::vector<uint8_t> query, uint16_t qclass) {
  dns::QueryInfo q;
  EXPECT_EQ(dns::ParseQuery(query, q), dns::QueryStatus::kOk);
  dns::Put16(query.data() + q.question_end - 2, qclass);
  return query;
}

LocalAnswer Classify(const std::vector<uint8_t>& query, bool chaos) {
  dns::QueryInfo q;
  EXPECT_EQ(dns::ParseQuery(query, q), dns::QueryStatus::kOk);
  return ClassifyQuery(query, q, chaos);
}

TEST(ClassifyQueryTest, ForwardsInDataTypesOnly) {
  for (uint16_t t : {dns::type::kA, dns::type::kAAAA, dns::type::kSRV, dns::type::kANY,
                     uint16_t{65}, uint16_t{256}}) {
    EXPECT_EQ(Classify(BuildQuery("example.com.", t), true), LocalAnswer::kNone) << t;
  }
  // RFC 6895 §3.1 Q and meta types, OPT, and the zone transfers: NOTIMP, never forwarded.
  for (uint16_t t :
       {dns::type::kIXFR, dns::type::kAXFR, dns::type::kOPT, dns::type::kTSIG, dns::type::kTKEY,
        dns::type::kMAILB, dns::type::kMAILA, uint16_t{128}, uint16_t{200}}) {
    EXPECT_EQ(Classify(BuildQuery("example.com.", t), false), LocalAnswer::kNotImp) << t;
  }
  // Classes other than IN and CH: REFUSED, whatever the type.
  for (uint16_t c : {2, 4, 254, 255, 1000}) {
    for (uint16_t t : {dns::type::kA, dns::type::kAXFR, dns::type::kTXT}) {
      EXPECT_EQ(Classify(WithClass(BuildQuery("example.com.", t), c), true), LocalAnswer::kRefused)
          << c << "/" << t;
    }
  }
}

TEST(ClassifyQueryTest, AnswersChaosIdentityNamesOnlyWhenEnabled) {
  for (const char* name : {"version.bind.", "VERSION.Bind.", "version.server.", "id.server.",
                           "hostname.bind.", "HostName.BIND."}) {
    SCOPED_TRACE(name);
    const auto txt = WithClass(BuildQuery(name, dns::type::kTXT), dns::kClassCH);
    EXPECT_EQ(Classify(txt, true), LocalAnswer::kChaos);
    EXPECT_EQ(Classify(txt, false), LocalAnswer::kRefused);
    for (uint16_t t : {dns::type::kA, dns::type::kANY, dns::type::kAXFR}) {
      EXPECT_EQ(Classify(WithClass(BuildQuery(name, t), dns::kClassCH), true),
                LocalAnswer::kRefused);
    }
  }
  for (const char* name : {"authors.bind.", "bind.", "version.bind.example.", "xversion.bind.",
                           "id.server.example.com.", "www.example.com."}) {
    EXPECT_EQ(Classify(WithClass(BuildQuery(name, dns::type::kTXT), dns::kClassCH), true),
              LocalAnswer::kRefused)
        << name;
  }
}

TEST(LocalReplyTest, NotImpAndRefusedEchoQuestionAndOptWithRa) {
  for (const auto& [query, answer, rcode] :
       {std::tuple{BuildQuery("example.com.", dns::type::kAXFR, true, true), LocalAnswer::kNotImp,
                   LDNS_RCODE_NOTIMPL},
        std::tuple{WithClass(BuildQuery("example.com.", dns::type::kA), 4), LocalAnswer::kRefused,
                   LDNS_RCODE_REFUSED}}) {
    dns::QueryInfo q;
    ASSERT_EQ(dns::ParseQuery(query, q), dns::QueryStatus::kOk);
    ASSERT_EQ(ClassifyQuery(query, q, true), answer);
    std::vector<uint8_t> out(kLocalReplyMax);
    const size_t n = BuildLocalReply(query, q, answer, "text", out);
    auto pkt = Parse({out.data(), n});
    ASSERT_NE(pkt, nullptr);
    EXPECT_EQ(ldns_pkt_get_rcode(pkt.get()), rcode);
    EXPECT_TRUE(ldns_pkt_qr(pkt.get()));
    EXPECT_TRUE(ldns_pkt_ra(pkt.get()));
    EXPECT_FALSE(ldns_pkt_aa(pkt.get()));
    EXPECT_EQ(ldns_pkt_id(pkt.get()), q.id);
    EXPECT_EQ(ldns_pkt_qdcount(pkt.get()), 1);
    EXPECT_EQ(ldns_pkt_ancount(pkt.get()), 0);
    EXPECT_EQ(ldns_pkt_edns(pkt.get()), q.has_edns);
    EXPECT_EQ(std::memcmp(out.data() + 12, query.data() + 12, q.question_end - 12), 0);
  }
}

// The TXT strings of a reply's first answer record.
std::vector<std::string> TxtStrings(const ldns_pkt* pkt) {
  std::vector<std::string> out;
  const ldns_rr* rr = ldns_rr_list_rr(ldns_pkt_answer(pkt), 0);
  for (size_t i = 0; i < ldns_rr_rd_count(rr); ++i) {
    const ldns_rdf* f = ldns_rr_rdf(rr, i);
    out.emplace_back(reinterpret_cast<const char*>(ldns_rdf_data(f)) + 1, ldns_rdf_data(f)[0]);
  }
  return out;
}

TEST(LocalReplyTest, ChaosAnswerIsAuthoritativeChTxtWithTtl0) {
  for (bool edns : {false, true}) {
    SCOPED_TRACE(edns);
    const auto query =
        WithClass(BuildQuery("Version.Bind.", dns::type::kTXT, edns, edns, 0x77), dns::kClassCH);
    dns::QueryInfo q;
    ASSERT_EQ(dns::ParseQuery(query, q), dns::QueryStatus::kOk);
    ASSERT_EQ(ClassifyQuery(query, q, true), LocalAnswer::kChaos);
    std::vector<uint8_t> out(kLocalReplyMax);
    const size_t n = BuildLocalReply(query, q, LocalAnswer::kChaos, "node-7 nodedns", out);
    auto pkt = Parse({out.data(), n});
    ASSERT_NE(pkt, nullptr);
    EXPECT_EQ(ldns_pkt_get_rcode(pkt.get()), LDNS_RCODE_NOERROR);
    EXPECT_EQ(ldns_pkt_id(pkt.get()), 0x77);
    EXPECT_TRUE(ldns_pkt_qr(pkt.get()));
    EXPECT_TRUE(ldns_pkt_aa(pkt.get()));
    EXPECT_TRUE(ldns_pkt_ra(pkt.get()));
    EXPECT_TRUE(ldns_pkt_rd(pkt.get()));
    EXPECT_EQ(ldns_pkt_edns(pkt.get()), edns);
    EXPECT_EQ(ldns_pkt_qdcount(pkt.get()), 1);
    // The client's case in the question.
    EXPECT_EQ(std::memcmp(out.data() + 12, query.data() + 12, q.question_end - 12), 0);
    ASSERT_EQ(ldns_pkt_ancount(pkt.get()), 1);
    const ldns_rr* rr = ldns_rr_list_rr(ldns_pkt_answer(pkt.get()), 0);
    EXPECT_EQ(ldns_rr_get_type(rr), LDNS_RR_TYPE_TXT);
    EXPECT_EQ(ldns_rr_get_class(rr), LDNS_RR_CLASS_CH);
    EXPECT_EQ(ldns_rr_ttl(rr), 0u);
    EXPECT_EQ(TxtStrings(pkt.get()), std::vector<std::string>{"node-7 nodedns"});
  }
}

TEST(LocalReplyTest, ChaosTextLongerThan255BytesIsSplitAndFits512) {
  const auto query = WithClass(BuildQuery("hostname.bind.", dns::type::kTXT, true), dns::kClassCH);
  dns::QueryInfo q;
  ASSERT_EQ(dns::ParseQuery(query, q), dns::QueryStatus::kOk);
  for (size_t len : {size_t{255}, size_t{256}, kMaxChaosText}) {
    SCOPED_TRACE(len);
    std::string text(len, 'x');
    text[0] = 'a';
    text[len - 1] = 'z';
    std::vector<uint8_t> out(kLocalReplyMax);
    const size_t n = BuildLocalReply(query, q, LocalAnswer::kChaos, text, out);
    EXPECT_LE(n, kLocalReplyMax);
    auto pkt = Parse({out.data(), n});
    ASSERT_NE(pkt, nullptr);
    const auto strings = TxtStrings(pkt.get());
    ASSERT_EQ(strings.size(), len > 255 ? 2u : 1u);
    EXPECT_EQ(strings[0].size(), 255u);
    std::string joined;
    for (const auto& s : strings) joined += s;
    EXPECT_EQ(joined, text);
    EXPECT_TRUE(ldns_pkt_edns(pkt.get()));
  }
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
