// The TCP forwarder on a real libuv loop against TCP servers the test drives step by step:
// pipelining with distinct IDs and replies in any order, a stalled connection abandoned at the
// try's timeout while other queries go around it, unanswered queries written again when the
// server closes, TC=1 over TCP as a failure, refused connections failing over at once.
#include "upstream/tcp_forwarder.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/testing/dns_builder.h"
#include "tests/upstream/upstream_test_util.h"

namespace nodedns::upstream {
namespace {

using testing_util::AnswerTo;
using testing_util::FakeTcpServer;
using testing_util::RecordUpstreamReply;
using testing_util::RunLoopUntil;
using testing_util::UpstreamQuery;
using testing_util::UpstreamResult;

// The query's name in presentation form, through ldns (the independent parser).
std::string NameOf(const std::vector<uint8_t>& query) {
  testing::LdnsPkt pkt = testing::Parse(query);
  if (!pkt || ldns_pkt_qdcount(pkt.get()) != 1) return "";
  char* s = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(pkt.get()), 0)));
  std::string name = s;
  free(s);
  return name;
}

class TcpForwarderTest : public ::testing::Test {
 protected:
  void SetUp() override { uv_loop_init(&loop_); }
  void Start(const std::vector<std::string>& servers, TcpForwarder::Options options) {
    auto f = TcpForwarder::Create(&loop_, testing_util::Servers(servers), options, &stats_);
    ASSERT_TRUE(f.ok()) << f.status();
    forwarder_ = *std::move(f);
  }
  void TearDown() override {
    if (forwarder_) forwarder_->Shutdown();
    uv_run(&loop_, UV_RUN_DEFAULT);
    forwarder_.reset();
    uv_loop_close(&loop_);
  }
  UpstreamResult& Send(const std::string& name) {
    results_.push_back(std::make_unique<UpstreamResult>());
    forwarder_->Send(UpstreamQuery(name), &RecordUpstreamReply, results_.back().get());
    return *results_.back();
  }
  bool RunUntil(const std::function<bool()>& done, int max_ms = 3000) {
    return RunLoopUntil(&loop_, done, max_ms);
  }
  uv_loop_t loop_;
  TcpForwarderStats stats_;
  std::unique_ptr<TcpForwarder> forwarder_;
  std::vector<std::unique_ptr<UpstreamResult>> results_;  // outlive the body: TearDown fails them
};

TEST_F(TcpForwarderTest, PipelinesOnOneConnectionAndMatchesRepliesInAnyOrder) {
  FakeTcpServer server;
  ASSERT_TRUE(server.bound());
  Start({server.Address()}, {.timeout_ms = 2000, .tries = 1, .connections_per_server = 1});
  UpstreamResult& a = Send("a.example.com.");
  UpstreamResult& b = Send("b.example.com.");
  UpstreamResult& c = Send("c.example.com.");
  const int conn = server.Accept(&loop_);
  ASSERT_GE(conn, 0);
  std::vector<std::vector<uint8_t>> queries;
  for (int i = 0; i < 3; ++i) queries.push_back(server.Read(&loop_, conn));
  std::set<uint16_t> ids;
  for (const auto& q : queries) {
    ASSERT_GE(q.size(), 12u);
    ids.insert(dns::HeaderId(q));
  }
  EXPECT_EQ(ids.size(), 3u) << "IDs repeat among queries in flight";
  for (int i = 2; i >= 0; --i) FakeTcpServer::Write(conn, AnswerTo(queries[i], NameOf(queries[i])));
  ASSERT_TRUE(RunUntil([&] { return a.calls + b.calls + c.calls == 3; }));
  for (auto* r : {&a, &b, &c}) EXPECT_EQ(r->status, ForwardStatus::kOk);
  EXPECT_TRUE(dns::ResponseMatchesQuestion(b.reply, testing::WireName("b.example.com."), 1, 1));
  EXPECT_EQ(server.accepted(), 1) << "pipelined queries opened more than one connection";
  EXPECT_EQ(forwarder_->in_flight(), 0u);
}

// A server that accepts a query and never answers it must cost that query one try, not the zone:
// with one connection allowed, the next query waits at most until the stuck try's timeout, then
// both go out on a fresh connection.
TEST_F(TcpForwarderTest, StalledConnectionIsAbandonedAtTheTimeoutAndNothingWaitsBehindIt) {
  FakeTcpServer server;
  Start({server.Address()},
        {.timeout_ms = 400, .tries = 2, .connections_per_server = 1, .stall_ms = 100});
  UpstreamResult& stuck = Send("stuck.example.com.");
  const int first = server.Accept(&loop_);
  ASSERT_GE(first, 0);
  ASSERT_FALSE(server.Read(&loop_, first).empty());  // read, never answered
  RunUntil([] { return false; }, 150);               // past stall_ms
  UpstreamResult& next = Send("next.example.com.");
  // Not pipelined behind the stuck query on the stalled connection: nothing new arrives there.
  EXPECT_TRUE(server.Read(&loop_, first, 200).empty()) << "a query was written to a stalled conn";
  // At the stuck try's timeout the connection is dropped, and both queries go to a new one.
  EXPECT_TRUE(server.PeerClosed(&loop_, first, 2000)) << "the stalled connection was kept";
  const int second = server.Accept(&loop_);
  ASSERT_GE(second, 0) << "no new connection after the stalled one";
  for (int i = 0; i < 2; ++i) {
    const auto q = server.Read(&loop_, second);
    ASSERT_FALSE(q.empty());
    FakeTcpServer::Write(second, AnswerTo(q, NameOf(q)));
  }
  ASSERT_TRUE(RunUntil([&] { return stuck.calls + next.calls == 2; }));
  EXPECT_EQ(next.status, ForwardStatus::kOk);
  EXPECT_EQ(stuck.status, ForwardStatus::kOk) << "the stuck query's second try failed";
  EXPECT_EQ(forwarder_->stats().stalled.Get(), 1u);
  EXPECT_EQ(forwarder_->stats().retries.Get(), 1u);  // the stuck query's; `next` was moved
  EXPECT_EQ(forwarder_->stats().timeouts.Get(), 0u);
}

// With room for more connections, a query sent while another is stuck never waits at all.
TEST_F(TcpForwarderTest, QueryWhileAnotherIsStuckGoesOnAnotherConnectionAtOnce) {
  FakeTcpServer server;
  Start({server.Address()}, {.timeout_ms = 5000, .tries = 1, .connections_per_server = 4});
  UpstreamResult& stuck = Send("stuck.example.com.");
  const int first = server.Accept(&loop_);
  ASSERT_GE(first, 0);
  ASSERT_FALSE(server.Read(&loop_, first).empty());
  UpstreamResult& next = Send("next.example.com.");
  const int second = server.Accept(&loop_, 1000);
  ASSERT_GE(second, 0);
  const auto q = server.Read(&loop_, second);
  ASSERT_FALSE(q.empty());
  FakeTcpServer::Write(second, AnswerTo(q, NameOf(q)));
  ASSERT_TRUE(RunUntil([&] { return next.calls == 1; }, 1000));
  EXPECT_EQ(next.status, ForwardStatus::kOk);
  EXPECT_EQ(stuck.calls, 0);
}

TEST_F(TcpForwarderTest, TruncatedReplyOverTcpIsAFailureNotAnAnswer) {
  FakeTcpServer server;
  Start({server.Address()}, {.timeout_ms = 2000, .tries = 2});
  UpstreamResult& r = Send("big.example.com.");
  const int conn = server.Accept(&loop_);
  ASSERT_GE(conn, 0);
  const auto q = server.Read(&loop_, conn);
  ASSERT_FALSE(q.empty());
  FakeTcpServer::Write(conn, AnswerTo(q, "big.example.com.", /*tc=*/true));
  ASSERT_TRUE(RunUntil([&] { return r.calls == 1; }));
  EXPECT_EQ(r.status, ForwardStatus::kFailed);
  EXPECT_TRUE(r.reply.empty());
  EXPECT_EQ(forwarder_->stats().truncated.Get(), 1u);
}

// RFC 7766 §6.2.1: a server may close a connection with queries unanswered; they are written
// again on a new connection, without costing a try.
TEST_F(TcpForwarderTest, ServerCloseAfterAnsweringResendsTheUnansweredQueries) {
  FakeTcpServer server;
  Start({server.Address()}, {.timeout_ms = 2000, .tries = 1, .connections_per_server = 1});
  UpstreamResult& a = Send("a.example.com.");
  UpstreamResult& b = Send("b.example.com.");
  const int first = server.Accept(&loop_);
  ASSERT_GE(first, 0);
  const auto qa = server.Read(&loop_, first);
  const auto qb = server.Read(&loop_, first);
  ASSERT_FALSE(qa.empty());
  ASSERT_FALSE(qb.empty());
  const auto& q_of_a = NameOf(qa) == "a.example.com." ? qa : qb;
  FakeTcpServer::Write(first, AnswerTo(q_of_a, "a.example.com."));
  ASSERT_TRUE(RunUntil([&] { return a.calls == 1; }));
  server.CloseConn(first);
  const int second = server.Accept(&loop_);
  ASSERT_GE(second, 0) << "the unanswered query was not written again";
  const auto again = server.Read(&loop_, second);
  ASSERT_EQ(NameOf(again), "b.example.com.");
  FakeTcpServer::Write(second, AnswerTo(again, "b.example.com."));
  ASSERT_TRUE(RunUntil([&] { return b.calls == 1; }));
  EXPECT_EQ(a.status, ForwardStatus::kOk);
  EXPECT_EQ(b.status, ForwardStatus::kOk);
  EXPECT_EQ(forwarder_->stats().resent.Get(), 1u);
  EXPECT_EQ(forwarder_->stats().retries.Get(), 0u);
}

// A server that accepts and hangs up before answering anything costs the try: no reconnect loop.
TEST_F(TcpForwarderTest, ServerThatHangsUpAtOnceEndsTheQueryInsteadOfLooping) {
  FakeTcpServer server;
  Start({server.Address()}, {.timeout_ms = 30000, .tries = 2});
  UpstreamResult& r = Send("hangup.example.com.");
  for (int i = 0; i < 2; ++i) {
    const int conn = server.Accept(&loop_);
    ASSERT_GE(conn, 0) << "try " << i;
    server.Read(&loop_, conn);
    server.CloseConn(conn);
  }
  ASSERT_TRUE(RunUntil([&] { return r.calls == 1; }));
  EXPECT_EQ(r.status, ForwardStatus::kFailed);
  EXPECT_EQ(server.accepted(), 2);
}

TEST_F(TcpForwarderTest, RefusedConnectionFailsOverToTheNextServerAtOnce) {
  uint16_t closed_port;
  {
    FakeTcpServer gone;
    closed_port = gone.port();
  }
  FakeTcpServer good;
  // A timeout far beyond the test's bound: only the refusal can move the query on in time.
  Start({"127.0.0.1:" + std::to_string(closed_port), good.Address()},
        {.timeout_ms = 30000, .tries = 1});
  UpstreamResult& r = Send("failover.example.com.");
  const int conn = good.Accept(&loop_);
  ASSERT_GE(conn, 0) << "the query did not move to the next server";
  const auto q = good.Read(&loop_, conn);
  FakeTcpServer::Write(conn, AnswerTo(q, "failover.example.com."));
  ASSERT_TRUE(RunUntil([&] { return r.calls == 1; }));
  EXPECT_EQ(r.status, ForwardStatus::kOk);
  EXPECT_EQ(forwarder_->stats().retries.Get(), 1u);
}

TEST_F(TcpForwarderTest, ReplyToAnotherQuestionOrUnknownIdIsIgnored) {
  FakeTcpServer server;
  Start({server.Address()}, {.timeout_ms = 300, .tries = 1});
  UpstreamResult& r = Send("asked.example.com.");
  const int conn = server.Accept(&loop_);
  ASSERT_GE(conn, 0);
  const auto q = server.Read(&loop_, conn);
  ASSERT_FALSE(q.empty());
  FakeTcpServer::Write(conn, AnswerTo(q, "other.example.com."));  // right ID, other question
  auto unknown = q;
  dns::Put16(unknown.data(), static_cast<uint16_t>(dns::HeaderId(q) ^ 0x5a5a));
  FakeTcpServer::Write(conn, AnswerTo(unknown, "asked.example.com."));  // right question, other ID
  ASSERT_TRUE(RunUntil([&] { return r.calls == 1; }));
  EXPECT_EQ(r.status, ForwardStatus::kTimeout) << "a mismatched reply was accepted";
  EXPECT_EQ(forwarder_->stats().mismatched.Get(), 2u);
}

TEST_F(TcpForwarderTest, ShutdownFailsQueriesInFlightOnceAndRefusesNewOnes) {
  FakeTcpServer server;
  Start({server.Address()}, {.timeout_ms = 2000, .tries = 1});
  UpstreamResult& r = Send("slow.example.com.");
  ASSERT_GE(server.Accept(&loop_), 0);
  forwarder_->Shutdown();
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.status, ForwardStatus::kShutdown);
  UpstreamResult& after = Send("late.example.com.");
  EXPECT_EQ(after.calls, 1);
  EXPECT_EQ(after.status, ForwardStatus::kShutdown);
}

// coredns_proxy_request_duration_seconds is made of these: one call per reply matched to a try,
// naming the server and the rcode; nothing for a reply the forwarder ignores.
TEST_F(TcpForwarderTest, ObserverIsToldOfEachMatchedReplyWithItsServerAndRcode) {
  uint16_t closed_port;
  {
    FakeTcpServer gone;
    closed_port = gone.port();
  }
  FakeTcpServer server;
  testing_util::ObservationLog log;
  // The first server refuses: the query's try that gets a reply is on the second (index 1).
  Start({"127.0.0.1:" + std::to_string(closed_port), server.Address()},
        {.timeout_ms = 2000, .tries = 1, .observer = log.Observer()});
  UpstreamResult& r = Send("asked.example.com.");
  const int conn = server.Accept(&loop_);
  ASSERT_GE(conn, 0);
  const auto q = server.Read(&loop_, conn);
  ASSERT_FALSE(q.empty());
  FakeTcpServer::Write(conn, AnswerTo(q, "other.example.com."));  // right ID, other question
  auto unknown = q;
  dns::Put16(unknown.data(), static_cast<uint16_t>(dns::HeaderId(q) ^ 0x5a5a));
  FakeTcpServer::Write(conn, AnswerTo(unknown, "asked.example.com."));  // other ID
  ASSERT_TRUE(RunUntil([&] { return forwarder_->stats().mismatched.Get() == 2; }));
  EXPECT_TRUE(log.calls.empty()) << "observed a reply the forwarder ignored";
  EXPECT_EQ(r.calls, 0);
  testing::MessageSpec m;
  m.qname = "asked.example.com.";
  m.id = dns::HeaderId(q);
  m.rcode = dns::rcode::kServFail;
  FakeTcpServer::Write(conn, testing::Build(m));
  ASSERT_TRUE(RunUntil([&] { return r.calls == 1; }));
  EXPECT_EQ(r.status, ForwardStatus::kOk);
  ASSERT_EQ(log.calls.size(), 1u);
  EXPECT_EQ(log.calls[0].server, 1u);
  EXPECT_EQ(log.calls[0].rcode, dns::rcode::kServFail);
  EXPECT_GT(log.calls[0].rtt_ns, 0u);
  EXPECT_LT(log.calls[0].rtt_ns, 3'000'000'000u);

  // A second query on the same connection: one more observation, no more.
  UpstreamResult& again = Send("again.example.com.");
  const auto q2 = server.Read(&loop_, conn);
  ASSERT_FALSE(q2.empty());
  FakeTcpServer::Write(conn, AnswerTo(q2, "again.example.com."));
  ASSERT_TRUE(RunUntil([&] { return again.calls == 1; }));
  ASSERT_EQ(log.calls.size(), 2u);
  EXPECT_EQ(log.calls[1].server, 1u);
  EXPECT_EQ(log.calls[1].rcode, dns::rcode::kNoError);
}

}  // namespace
}  // namespace nodedns::upstream
