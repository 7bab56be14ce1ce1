// The query path without sockets on the client side: requests handed over as the UDP and TCP
// front ends hand them, replies checked with ldns, later replies caught by a fake ReplySink. The
// upstream is a UDP socket the test answers by hand. Every case runs for both transports: the
// decision is the same code, only the limits differ.
#include "proxy/query_path.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "proxy/coredns_metrics.h"
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

// ---------------------------------------------------------------------------------------------
// A zone's `forward max_concurrent` and CoreDNS's metric families, through the same parts with
// the configuration tweaked before they start. CoreDNS metrics are on in both, so that what the
// client sees and what is counted are checked together.

// The CoreDNS families of one worker's counters as a scrape renders them.
class CoreDnsScrape {
 public:
  explicit CoreDnsScrape(const WorkerContext& ctx) : ctx_(ctx) {
    // Index 0 of each, as the parts leave metrics_zone and Request::server at 0.
    EXPECT_TRUE(labels_.SetServers(std::vector{*dns::SocketAddress::Parse("127.0.0.1:53")}).ok());
    EXPECT_EQ(*labels_.Zone("."), 0u);
  }
  // The value of the sample line that starts with `series` ("name{labels}"), or -1.
  double Get(const std::string& series) const {
    const CoreDnsCounters* ws[] = {ctx_.coredns.get()};
    const std::string text = RenderCoreDnsMetrics(ws, labels_.Get(), {});
    const size_t at = text.find("\n" + series + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
  }

 private:
  const WorkerContext& ctx_;
  MetricsLabels labels_;
};

constexpr char kServerZone[] = "server=\"dns://127.0.0.1:53\",zone=\".\",view=\"\"";
constexpr char kServerZones[] = "server=\"dns://127.0.0.1:53\",zones=\".\",view=\"\"";

class ZoneLimitTest : public ::testing::TestWithParam<bool> {
 protected:
  bool tcp() const { return GetParam(); }
  void SetUp() override {
    ASSERT_TRUE(w_.ok());
    ASSERT_NE(w_.ctx().coredns, nullptr) << "coredns_metrics did not create the counters";
  }
  Verdict Serve(const std::string& name, uint16_t id, uint8_t client) {
    Bytes reply;
    return w_.Serve(BuildQuery(name, 1, false, false, id), client, tcp(), reply);
  }

  // One worker, the "." zone limited to one distinct upstream query at a time.
  testing_util::WorkerParts w_{{}, [](ServeConfig& c) {
                                 c.workers = 1;
                                 c.zones[0].max_concurrent = 1;
                                 c.coredns_metrics = true;
                               }};
  testing_util::FakeSink& sink_ = w_.sink();
  CoreDnsScrape scrape_{w_.ctx()};
};

INSTANTIATE_TEST_SUITE_P(Transports, ZoneLimitTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Tcp" : "Udp"; });

TEST_P(ZoneLimitTest, SecondDistinctMissWhileTheFirstIsInFlightIsRefusedAtOnce) {
  ASSERT_EQ(Serve("first.example.com.", 0x0101, 1), Verdict::kPending);
  const auto up = w_.UpstreamQueries(1);
  ASSERT_EQ(up.size(), 1u);
  ASSERT_EQ(Serve("second.example.com.", 0x0202, 2), Verdict::kPending);
  // Answered before the loop runs again: refused, not queued behind the first.
  ASSERT_EQ(sink_.replies.size(), 1u) << "the second miss was not answered at once";
  testing::LdnsPkt p = Parse(sink_.replies[0]);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(ldns_pkt_id(p.get()), 0x0202);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_REFUSED);
  EXPECT_EQ(ldns_pkt_qdcount(p.get()), 1) << "the question is repeated";
  EXPECT_TRUE(w_.UpstreamQueries(1).empty()) << "the refused miss went upstream";
  EXPECT_EQ(w_.counters().upstream_queries.Get(), 1u);
  EXPECT_EQ(w_.counters().rcode_refused.Get(), 1u);
  EXPECT_EQ(scrape_.Get("coredns_forward_max_concurrent_rejects_total"), 1);
  w_.AnswerUpstream(up[0], "first.example.com.");
  w_.RunUntilReplies(2);
  ASSERT_EQ(sink_.replies.size(), 2u);
  EXPECT_EQ(RcodeOf(sink_.replies[1].data()), dns::rcode::kNoError);
}

TEST_P(ZoneLimitTest, IdenticalMissesAreCoalescedNotRefused) {
  ASSERT_EQ(Serve("same.example.com.", 0x0301, 1), Verdict::kPending);
  ASSERT_EQ(Serve("SAME.example.com.", 0x0302, 2), Verdict::kPending);
  EXPECT_TRUE(sink_.replies.empty()) << "a coalesced miss was refused";
  const auto up = w_.UpstreamQueries(1);
  ASSERT_EQ(up.size(), 1u);
  w_.AnswerUpstream(up[0], "same.example.com.");
  w_.RunUntilReplies(2);
  ASSERT_EQ(sink_.replies.size(), 2u);
  for (const Bytes& r : sink_.replies) EXPECT_EQ(RcodeOf(r.data()), dns::rcode::kNoError);
  EXPECT_EQ(w_.counters().coalesced.Get(), 1u);
  EXPECT_EQ(scrape_.Get("coredns_forward_max_concurrent_rejects_total"), 0);
}

TEST_P(ZoneLimitTest, AfterTheFirstCompletesNewMissesGoUpstreamAgain) {
  ASSERT_EQ(Serve("first.example.com.", 0x0401, 1), Verdict::kPending);
  auto up = w_.UpstreamQueries(1);
  ASSERT_EQ(up.size(), 1u);
  w_.AnswerUpstream(up[0], "first.example.com.");
  w_.RunUntilReplies(1);
  ASSERT_EQ(sink_.replies.size(), 1u);
  for (const char* name : {"second.example.com.", "third.example.com."}) {
    SCOPED_TRACE(name);
    const size_t before = sink_.replies.size();
    ASSERT_EQ(Serve(name, 0x0402, 2), Verdict::kPending);
    EXPECT_EQ(sink_.replies.size(), before) << "refused although nothing is in flight";
    up = w_.UpstreamQueries(1);
    ASSERT_EQ(up.size(), 1u) << "not sent upstream";
    w_.AnswerUpstream(up[0], name);
    w_.RunUntilReplies(before + 1);
    ASSERT_EQ(sink_.replies.size(), before + 1);
    EXPECT_EQ(RcodeOf(sink_.replies.back().data()), dns::rcode::kNoError);
  }
  EXPECT_EQ(w_.counters().upstream_queries.Get(), 3u);
  EXPECT_EQ(scrape_.Get("coredns_forward_max_concurrent_rejects_total"), 0);
}

// A hit is cache's, a miss forward's, a rejection the server's own (CoreDNS's forward plugin
// returns REFUSED without writing it: plugin=""), each with its request counted once.
TEST_P(ZoneLimitTest, CoreDnsFamiliesCountHitsMissesAndWhoWroteEachReply) {
  const std::string zl = kServerZone, zs = kServerZones;
  const std::string proto = tcp() ? "tcp" : "udp";
  MessageSpec m;
  m.qname = "hit.example.com.";
  m.answer = {"hit.example.com. 300 IN A 192.0.2.1"};
  ASSERT_TRUE(w_.Store(m));
  Bytes reply;
  ASSERT_EQ(w_.Serve(BuildQuery("hit.example.com.", 1, false, false, 1), 1, tcp(), reply),
            Verdict::kReply);
  ASSERT_EQ(Serve("miss.example.com.", 2, 1), Verdict::kPending);
  ASSERT_EQ(Serve("refused.example.com.", 3, 1), Verdict::kPending);  // over max_concurrent
  const auto up = w_.UpstreamQueries(1);
  ASSERT_EQ(up.size(), 1u);
  w_.AnswerUpstream(up[0], "miss.example.com.");
  w_.RunUntilReplies(2);
  ASSERT_EQ(sink_.replies.size(), 2u);

  EXPECT_EQ(scrape_.Get("coredns_cache_hits_total{server=\"dns://127.0.0.1:53\",type=\"success\","
                        "zones=\".\",view=\"\"}"),
            1);
  EXPECT_EQ(scrape_.Get("coredns_cache_misses_total{" + zs + "}"), 2);
  EXPECT_EQ(scrape_.Get("coredns_dns_requests_total{" + zl + ",proto=\"" + proto +
                        "\",family=\"1\",type=\"A\"}"),
            3);
  EXPECT_EQ(
      scrape_.Get("coredns_dns_responses_total{" + zl + ",rcode=\"NOERROR\",plugin=\"cache\"}"), 1);
  EXPECT_EQ(
      scrape_.Get("coredns_dns_responses_total{" + zl + ",rcode=\"NOERROR\",plugin=\"forward\"}"),
      1);
  EXPECT_EQ(scrape_.Get("coredns_dns_responses_total{" + zl + ",rcode=\"REFUSED\",plugin=\"\"}"),
            1);
  EXPECT_EQ(scrape_.Get("coredns_dns_request_duration_seconds_count{" + zl + "}"), 3);

  // The hit again, served from the entry the miss stored: another cache hit.
  ASSERT_EQ(w_.Serve(BuildQuery("miss.example.com.", 1, false, false, 4), 1, tcp(), reply),
            Verdict::kReply);
  EXPECT_EQ(scrape_.Get("coredns_cache_hits_total{server=\"dns://127.0.0.1:53\",type=\"success\","
                        "zones=\".\",view=\"\"}"),
            2);
  EXPECT_EQ(
      scrape_.Get("coredns_dns_responses_total{" + zl + ",rcode=\"NOERROR\",plugin=\"cache\"}"), 2);
}

TEST_P(ZoneLimitTest, CachedNxDomainCountsAsADenialHit) {
  MessageSpec m;
  m.qname = "nx.example.com.";
  m.rcode = dns::rcode::kNxDomain;
  m.authority = {"example.com. 300 IN SOA ns.example.com. h.example.com. 1 2 3 4 300"};
  ASSERT_TRUE(w_.Store(m));
  Bytes reply;
  ASSERT_EQ(w_.Serve(BuildQuery("nx.example.com.", 1, false, false, 1), 1, tcp(), reply),
            Verdict::kReply);
  EXPECT_EQ(RcodeOf(reply.data()), dns::rcode::kNxDomain);
  EXPECT_EQ(scrape_.Get("coredns_cache_hits_total{server=\"dns://127.0.0.1:53\",type=\"denial\","
                        "zones=\".\",view=\"\"}"),
            1);
  EXPECT_EQ(scrape_.Get("coredns_cache_hits_total{server=\"dns://127.0.0.1:53\",type=\"success\","
                        "zones=\".\",view=\"\"}"),
            -1);
}

}  // namespace
}  // namespace nodedns::proxy
