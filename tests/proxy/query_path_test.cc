// The query path without sockets on the client side: requests handed over as the UDP and TCP
// front ends hand them, replies checked with ldns, later replies caught by a fake ReplySink. The
// upstream is a UDP socket the test answers by hand. Every case runs for both transports: the
// decision is the same code, only the limits differ.
#include "proxy/query_path.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/proxy/worker_parts.h"
#include "tests/testing/dns_builder.h"

namespace nodedns::proxy {
namespace {

using testing::Build;
using testing::BuildQuery;
using testing::MessageSpec;
using testing::Parse;
using testing::WireName;
using Bytes = std::vector<uint8_t>;

class QueryPathTest : public ::testing::TestWithParam<bool> {
 protected:
  bool tcp() const { return GetParam(); }
  void SetUp() override { ASSERT_TRUE(w_.ok()); }
  Verdict Serve(const Bytes& query, uint8_t client, Bytes& reply) {
    return w_.Serve(query, client, tcp(), reply);
  }
  void Store(const MessageSpec& m) { ASSERT_TRUE(w_.Store(m)) << m.qname; }
  static testing::LdnsPkt Check(const Bytes& reply, uint16_t id) {
    testing::LdnsPkt p = Parse(reply);
    EXPECT_NE(p, nullptr);
    if (p) {
      EXPECT_EQ(ldns_pkt_id(p.get()), id);
    }
    return p;
  }
  const WorkerCounters& counters() const { return w_.counters(); }

  testing_util::WorkerParts w_{{"127.0.0.0/8=default"}};
  testing_util::FakeSink& sink_ = w_.sink();
};

INSTANTIATE_TEST_SUITE_P(Transports, QueryPathTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Tcp" : "Udp"; });

TEST_P(QueryPathTest, CacheHitIsAnsweredInPlaceWithTheClientsIdAndCounted) {
  MessageSpec m;
  m.qname = "www.example.com.";
  m.answer = {"www.example.com. 300 IN A 192.0.2.1"};
  Store(m);
  Bytes reply;
  ASSERT_EQ(Serve(BuildQuery("WWW.example.com.", 1, true, false, 0x1111), 1, reply),
            Verdict::kReply);
  testing::LdnsPkt p = Check(reply, 0x1111);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(ldns_pkt_ancount(p.get()), 1);
  EXPECT_TRUE(ldns_pkt_edns(p.get()));
  EXPECT_EQ(reply[12 + 1], 'W') << "the client's case";
  EXPECT_EQ(counters().cache_hits.Get(), 1u);
  EXPECT_EQ(counters().rcode_noerror.Get(), 1u);
  EXPECT_EQ(counters().upstream_queries.Get(), 0u);
  EXPECT_TRUE(sink_.replies.empty());
}

TEST_P(QueryPathTest, MissGoesUpstreamAndItsReplyReachesTheSinkThenTheCache) {
  Bytes reply;
  ASSERT_EQ(Serve(BuildQuery("miss.example.com.", 1, false, false, 0x2222), 2, reply),
            Verdict::kPending);
  const auto up = w_.UpstreamQueries(1);
  ASSERT_EQ(up.size(), 1u);
  w_.AnswerUpstream(up[0], "miss.example.com.");
  w_.RunUntilReplies(1);
  ASSERT_EQ(sink_.replies.size(), 1u);
  testing::LdnsPkt p = Check(sink_.replies[0], 0x2222);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(ldns_pkt_ancount(p.get()), 1);
  EXPECT_EQ(counters().cache_misses.Get(), 1u);
  EXPECT_EQ(counters().rcode_noerror.Get(), 1u);
  // Now a hit.
  ASSERT_EQ(Serve(BuildQuery("miss.example.com.", 1, false, false, 0x2223), 2, reply),
            Verdict::kReply);
  EXPECT_EQ(counters().cache_hits.Get(), 1u);
}

TEST_P(QueryPathTest, IdenticalMissesShareOneUpstreamQuery) {
  Bytes reply;
  ASSERT_EQ(Serve(BuildQuery("same.example.com.", 1, false, false, 0x3331), 3, reply),
            Verdict::kPending);
  ASSERT_EQ(Serve(BuildQuery("SAME.example.com.", 1, false, false, 0x3332), 4, reply),
            Verdict::kPending);
  const auto up = w_.UpstreamQueries(1);
  ASSERT_EQ(up.size(), 1u);
  EXPECT_TRUE(w_.UpstreamQueries(1).empty()) << "a second upstream query was sent";
  w_.AnswerUpstream(up[0], "same.example.com.");
  w_.RunUntilReplies(2);
  ASSERT_EQ(sink_.replies.size(), 2u);
  EXPECT_EQ(counters().coalesced.Get(), 1u);
  EXPECT_EQ(counters().upstream_queries.Get(), 1u);
  // Each waiter gets its own ID and case.
  EXPECT_NE(Parse(sink_.replies[0]), nullptr);
  EXPECT_EQ(dns::HeaderId(sink_.replies[0]) ^ dns::HeaderId(sink_.replies[1]), 0x3331 ^ 0x3332);
}

// A pinned client's first search step that is NXDOMAIN in the cache becomes a CNAME to the first
// candidate that exists, all from the cache here: delivered through the sink at once.
TEST_P(QueryPathTest, FirstSearchStepOfAPinnedClientIsRewritten) {
  const std::string asked = "api.example.com.default.svc.cluster.local.";
  for (const std::string& nx : {asked, std::string("api.example.com.svc.cluster.local."),
                                std::string("api.example.com.cluster.local.")}) {
    MessageSpec m;
    m.qname = nx;
    m.rcode = 3;
    m.authority = {"cluster.local. 30 IN SOA ns.cluster.local. h.cluster.local. 1 2 3 4 30"};
    Store(m);
  }
  MessageSpec real;
  real.qname = "api.example.com.";
  real.answer = {"api.example.com. 300 IN A 192.0.2.80"};
  Store(real);
  Bytes reply;
  ASSERT_EQ(Serve(BuildQuery(asked, 1, false, false, 0x4444), 9, reply), Verdict::kPending);
  w_.RunUntilReplies(1);
  ASSERT_EQ(sink_.replies.size(), 1u);
  testing::LdnsPkt p = Check(sink_.replies[0], 0x4444);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOERROR);
  ASSERT_EQ(ldns_pkt_ancount(p.get()), 2);
  EXPECT_EQ(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(p.get()), 0)), LDNS_RR_TYPE_CNAME);
  EXPECT_EQ(counters().search_rewrites.Get(), 1u);
  EXPECT_EQ(counters().upstream_queries.Get(), 0u);
}

TEST_P(QueryPathTest, ErrorsAndLocalAnswersAreRepliedInPlaceAndNeverForwarded) {
  Bytes reply;
  // A CHAOS query without --chaos-text: REFUSED.
  Bytes chaos = BuildQuery("version.bind.", 16, true, false, 0x5551);
  chaos[12 + 16] = 0;  // QCLASS CH (3): after the 14-byte name and the type
  chaos[12 + 17] = 3;
  ASSERT_EQ(Serve(chaos, 5, reply), Verdict::kReply);
  EXPECT_EQ(RcodeOf(reply.data()), dns::rcode::kRefused);
  // AXFR: NOTIMP.
  ASSERT_EQ(Serve(BuildQuery("example.com.", 252, true, false, 0x5552), 5, reply), Verdict::kReply);
  EXPECT_EQ(RcodeOf(reply.data()), dns::rcode::kNotImp);
  // Two questions: FORMERR.
  Bytes two = BuildQuery("example.com.", 1, false, false, 0x5553);
  two[5] = 2;
  ASSERT_EQ(Serve(two, 5, reply), Verdict::kReply);
  EXPECT_EQ(RcodeOf(reply.data()), dns::rcode::kFormErr);
  // A response (QR=1): nothing at all.
  Bytes response = BuildQuery("example.com.", 1, false, false, 0x5554);
  response[2] |= 0x80;
  EXPECT_EQ(Serve(response, 5, reply), Verdict::kDrop);
  EXPECT_EQ(counters().dropped.Get(), 1u);
  EXPECT_EQ(counters().upstream_queries.Get(), 0u);
  EXPECT_EQ(counters().cache_hits.Get() + counters().cache_misses.Get(), 0u);
}

// The transports differ only in their limits: a large answer is truncated for UDP, whole for TCP.
TEST_P(QueryPathTest, LargeHitIsTruncatedOverUdpOnly) {
  MessageSpec m;
  m.qname = "big.example.com.";
  for (int i = 0; i < 100; ++i) {
    m.answer.push_back("big.example.com. 300 IN A 192.0.2." + std::to_string(i));
  }
  Store(m);
  Bytes reply;
  ASSERT_EQ(Serve(BuildQuery("big.example.com.", 1, false, false, 0x6666), 6, reply),
            Verdict::kReply);
  testing::LdnsPkt p = Check(reply, 0x6666);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(ldns_pkt_tc(p.get()), !tcp());
  EXPECT_EQ(ldns_pkt_ancount(p.get()), tcp() ? 100 : 0);
  EXPECT_EQ(counters().truncated.Get(), tcp() ? 0u : 1u);
}

}  // namespace
}  // namespace nodedns::proxy
