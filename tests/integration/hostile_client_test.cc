// End-to-end tests of `nodedns serve` against clients that misuse TCP on purpose (RFC 7766 §6.2,
// §10): a slowloris trickle, a connection that sends nothing, a length prefix longer than what
// follows, runt frames, pipelining past --tcp-max-inflight, a client that half-closes after its
// queries, a client that never reads its replies, and more connections than
// --tcp-max-connections. Real sockets against a real nodedns in front of a ScriptedUpstream; each
// case checks the bound (time, memory) and its counter.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/dns_builder.h"
#include "tests/testing/net.h"
#include "tests/testing/nodedns_fixture.h"
#include "tests/testing/scripted_upstream.h"

namespace nodedns::integration {
namespace {

using nodedns::testing::Action;
using nodedns::testing::Build;
using nodedns::testing::BuildQuery;
using nodedns::testing::Bytes;
using nodedns::testing::MessageSpec;
using nodedns::testing::RecvTcpMessage;
using nodedns::testing::ReplySpecFor;
using nodedns::testing::ScriptedUpstream;
using nodedns::testing::SeenQuery;
using nodedns::testing::SendAll;
using nodedns::testing::TcpConnect;
using nodedns::testing::TcpExchange;
using nodedns::testing::TcpFrame;
using nodedns::testing::UdpExchange;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint16_t kTypeA = 1;

Bytes Query(const std::string& name, uint16_t id) {
  return BuildQuery(name, kTypeA, false, false, id);
}
uint16_t Id(const Bytes& msg) { return msg.size() >= 2 ? uint16_t(msg[0] << 8 | msg[1]) : 0; }

// Answers every A query with `records` addresses after `delay` (10 records: a 200-byte reply for
// a 30-byte query, so that replies outweigh the queries that ask for them).
class Upstream {
 public:
  explicit Upstream(milliseconds delay = milliseconds(0), int records = 1)
      : upstream_([delay, records](const SeenQuery& q) {
          MessageSpec spec = ReplySpecFor(q);
          for (int i = 0; i < records && q.qtype == kTypeA; ++i) {
            spec.answer.push_back(q.name + " 300 IN A 192.0.2." + std::to_string(i + 1));
          }
          return Action::Reply(Build(spec), delay);
        }) {}
  uint16_t port() const { return upstream_.port(); }
  int max_outstanding() const { return upstream_.max_outstanding(); }
  int queries() const { return upstream_.queries(); }

 private:
  ScriptedUpstream upstream_;
};

class HostileClientTest : public nodedns::testing::NodednsFixture {
 protected:
  HostileClientTest() : NodednsFixture(NODEDNS_BINARY) {}
  double Closed(const std::string& reason) {
    return Metric("nodedns_tcp_closed_total{reason=\"" + reason + "\"}");
  }
  // Polls until the sample reaches `want` (bounded: 5 s); returns the last value.
  double WaitForMetric(const std::string& sample, double want) {
    double v = -1;
    for (int i = 0; i < 50 && (v = Metric(sample)) < want; ++i) {
      std::this_thread::sleep_for(milliseconds(100));
    }
    return v;
  }
};

// What a client sees on `fd` within `timeout`: the time until the server closed it, and whether
// any byte arrived before.
struct Ending {
  std::optional<milliseconds> closed_after;
  size_t bytes = 0;
};
Ending WatchForClose(int fd, milliseconds timeout) {
  Ending e;
  const auto start = Clock::now();
  while (true) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(start + timeout - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) != 1) return e;
    uint8_t buf[4096];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      e.closed_after = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
      return e;
    }
    e.bytes += static_cast<size_t>(n);
  }
}

// nodedns's resident set, in KiB (/proc/PID/status).
long RssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  long value = -1;
  while (in >> key) {
    if (key == "VmRSS:") {
      in >> value;
      break;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return value;
}

// A message trickled a byte every 200 ms would need 6 s to arrive; the clock started by its first
// byte closes the connection one idle timeout (1 s) later, unanswered. Were every byte activity,
// the trickle would keep it forever (here: until the message completes and is answered).
TEST_F(HostileClientTest, TrickledMessageIsCutOffOneTimeoutAfterItsFirstByte) {
  Upstream upstream;
  ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream.port(), {"--tcp-idle-timeout", "1"}));
  const Bytes frame = TcpFrame(Query("slow.example.", 1));
  const int fd = TcpConnect(dns_port_);
  ASSERT_GE(fd, 0);
  const auto start = Clock::now();
  std::optional<milliseconds> closed;
  size_t received = 0;
  for (size_t i = 0; i < frame.size() && !closed; ++i) {
    send(fd, &frame[i], 1, MSG_NOSIGNAL);
    const Ending e = WatchForClose(fd, milliseconds(200));
    received += e.bytes;
    if (e.closed_after) closed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  }
  if (!closed) closed = WatchForClose(fd, milliseconds(3000)).closed_after;
  close(fd);
  EXPECT_EQ(received, 0u) << "the trickled query was answered";
  ASSERT_TRUE(closed.has_value()) << "a trickling client kept its connection";
  EXPECT_GE(*closed, milliseconds(800));
  EXPECT_LT(*closed, milliseconds(3000)) << frame.size() << " bytes, 200 ms apart";
  EXPECT_EQ(Closed("incomplete"), 1);
  EXPECT_EQ(Closed("idle"), 0);
}

// A length prefix announcing 512 bytes, 100 of them sent, then nothing: closed after the timeout,
// counted as an incomplete message rather than an idle connection.
TEST_F(HostileClientTest, LengthPrefixLongerThanTheDataIsClosedAfterTheTimeout) {
  Upstream upstream;
  ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream.port(), {"--tcp-idle-timeout", "1"}));
  Bytes partial = TcpFrame(Query("stall.example.", 2));
  partial[0] = 0x02;  // 512
  partial[1] = 0x00;
  partial.resize(2 + 100, 0);
  const int fd = TcpConnect(dns_port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, partial));
  const Ending e = WatchForClose(fd, milliseconds(8000));
  close(fd);
  EXPECT_EQ(e.bytes, 0u);
  ASSERT_TRUE(e.closed_after.has_value()) << "still open 8 s after a stalled message";
  EXPECT_GE(*e.closed_after, milliseconds(800));
  EXPECT_LT(*e.closed_after, milliseconds(5000));
  EXPECT_EQ(Closed("incomplete"), 1);
  EXPECT_EQ(Closed("idle"), 0);
}

// Connecting and sending nothing: closed after the idle timeout, counted as idle.
TEST_F(HostileClientTest, SilentConnectionIsClosedAsIdle) {
  Upstream upstream;
  ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream.port(), {"--tcp-idle-timeout", "1"}));
  const int fd = TcpConnect(dns_port_);
  ASSERT_GE(fd, 0);
  const Ending e = WatchForClose(fd, milliseconds(8000));
  close(fd);
  ASSERT_TRUE(e.closed_after.has_value()) << "a silent connection was kept 8 s";
  EXPECT_GE(*e.closed_after, milliseconds(800));
  EXPECT_LT(*e.closed_after, milliseconds(5000));
  EXPECT_EQ(Closed("idle"), 1);
  EXPECT_EQ(Closed("incomplete"), 0);
}

// A frame shorter than a DNS header (0 bytes, 5 bytes) has no ID to answer with and leaves no
// trustworthy frame boundary: the connection is closed as soon as the queries before it are
// answered (a cache hit at once, a miss when the upstream replies 300 ms later), not after the
// 10 s idle timeout; the query after it is not read.
TEST_F(HostileClientTest, RuntFramesCloseTheConnectionAfterEarlierReplies) {
  Upstream upstream(milliseconds(300));
  ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream.port()));
  ASSERT_TRUE(UdpExchange(dns_port_, Query("runt.example.", 1)).has_value());  // now cached
  const Bytes runts[] = {{0x00, 0x00}, {0x00, 0x05, 1, 2, 3, 4, 5}};
  uint16_t id = 0x70;
  for (const Bytes& runt : runts) {
    const uint16_t hit = id++, miss = id++, after = id++;
    Bytes stream = TcpFrame(Query("runt.example.", hit));
    const Bytes second = TcpFrame(Query("miss" + std::to_string(miss) + ".example.", miss));
    stream.insert(stream.end(), second.begin(), second.end());
    stream.insert(stream.end(), runt.begin(), runt.end());
    const Bytes third = TcpFrame(Query("runt.example.", after));
    stream.insert(stream.end(), third.begin(), third.end());
    const int fd = TcpConnect(dns_port_);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, stream));
    std::set<uint16_t> ids;
    for (int i = 0; i < 2; ++i) {
      const auto reply = RecvTcpMessage(fd, Clock::now() + milliseconds(3000));
      ASSERT_TRUE(reply.has_value()) << "a query before the runt was not answered";
      ids.insert(Id(*reply));
    }
    EXPECT_EQ(ids, (std::set<uint16_t>{hit, miss}));
    const Ending e = WatchForClose(fd, milliseconds(8000));
    close(fd);
    EXPECT_EQ(e.bytes, 0u) << "the query after the runt was answered";
    ASSERT_TRUE(e.closed_after.has_value());
    EXPECT_LT(*e.closed_after, milliseconds(3000));
  }
  EXPECT_EQ(Closed("runt"), 2);
  EXPECT_EQ(Closed("idle"), 0);
}

// 12 queries pipelined at once against an upstream that takes 300 ms, with --tcp-max-inflight 2:
// every query is answered, never more than 2 reach the upstream together, and the pauses are
// counted.
TEST_F(HostileClientTest, PipeliningPastTheInflightCapPausesReading) {
  Upstream upstream(milliseconds(300));
  ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream.port(), {"--tcp-max-inflight", "2"}));
  constexpr int kQueries = 12;
  Bytes all;
  for (int i = 0; i < kQueries; ++i) {
    const Bytes f = TcpFrame(Query("p" + std::to_string(i) + ".pipe.example.", uint16_t(i)));
    all.insert(all.end(), f.begin(), f.end());
  }
  const int fd = TcpConnect(dns_port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, all));
  std::set<uint16_t> ids;
  for (int i = 0; i < kQueries; ++i) {
    const auto r = RecvTcpMessage(fd, Clock::now() + milliseconds(5000));
    ASSERT_TRUE(r.has_value()) << "only " << i << " replies";
    ids.insert(Id(*r));
  }
  close(fd);
  EXPECT_EQ(ids.size(), size_t{kQueries});
  EXPECT_EQ(upstream.max_outstanding(), 2);
  EXPECT_GE(Metric("nodedns_tcp_read_pauses_total{reason=\"inflight\"}"), 1);
}

// A client that pipelines queries for a cached 200-byte answer and never reads: nodedns stops
// reading once 64 KiB of replies wait, so the client's sends block after a few MB of socket
// buffers, nodedns's memory stays flat, and the connection is closed one idle timeout later.
// Without the pause nodedns reads all 16 MB of queries and queues ~100 MB of replies.
TEST_F(HostileClientTest, ClientThatNeverReadsCannotMakeRepliesPileUp) {
  Upstream upstream(milliseconds(0), 10);
  ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream.port(), {"--tcp-idle-timeout", "1"}));
  const auto warm = UdpExchange(dns_port_, Query("unread.example.", 1));
  ASSERT_TRUE(warm.has_value());
  ASSERT_GT(warm->size(), 150u);
  const long rss_before = RssKib(nodedns_pid());
  ASSERT_GT(rss_before, 0);

  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);  // before connect: the window
  const int sndbuf = 65536;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  const sockaddr_in a = nodedns::testing::Loopback(dns_port_);
  ASSERT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  Bytes chunk;
  for (int i = 0; i < 1000; ++i) {
    const Bytes f = TcpFrame(Query("unread.example.", uint16_t(i)));
    chunk.insert(chunk.end(), f.begin(), f.end());
  }
  constexpr size_t kLimit = size_t{16} << 20;
  size_t sent = 0, off = 0;
  while (sent < kLimit) {
    const ssize_t n = send(fd, chunk.data() + off, chunk.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      off = (off + static_cast<size_t>(n)) % chunk.size();
      continue;
    }
    if (n < 0 && errno != EAGAIN) break;
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, 1000) != 1) break;  // blocked for a second: nodedns stopped reading
  }
  const long rss_after = RssKib(nodedns_pid());
  EXPECT_LT(sent, kLimit) << "nodedns kept reading from a client that reads nothing";
  EXPECT_LT(rss_after - rss_before, 32 * 1024) << "KiB grown while the client did not read";
  EXPECT_GE(Metric("nodedns_tcp_read_pauses_total{reason=\"unread\"}"), 1);
  EXPECT_EQ(WaitForMetric("nodedns_tcp_closed_total{reason=\"unread\"}", 1), 1)
      << "the stuck connection was not closed";
  close(fd);
  std::printf(
      "sent %zu bytes of queries before blocking; nodedns RSS %ld -> %ld KiB; %g queries "
      "read\n",
      sent, rss_before, rss_after, Metric("nodedns_queries_total{transport=\"tcp\"}"));
}

// A client that pipelines 30,000 queries for a cached 200-byte answer (6 MB of replies), closes
// its sending side after the last (shutdown(SHUT_WR), as stubs do after their last query) and
// reads through a 4 KiB window: every reply arrives, then the FIN (RFC 7766 §6.2.4). nodedns
// reads the EOF while the last replies still wait in its write queue behind a full socket buffer;
// closing the socket there dropped them (~300 replies, the 64 KiB of replies at which nodedns
// stops reading).
TEST_F(HostileClientTest, HalfClosedClientGetsEveryReplyBeforeTheFin) {
  Upstream upstream(milliseconds(0), 10);
  ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream.port()));
  ASSERT_TRUE(UdpExchange(dns_port_, Query("halfclosed.example.", 1)).has_value());  // cached
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);  // before connect: the window
  const sockaddr_in a = nodedns::testing::Loopback(dns_port_);
  ASSERT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
  constexpr int kQueries = 30000;
  Bytes all;
  for (int i = 0; i < kQueries; ++i) {
    const Bytes f = TcpFrame(Query("halfclosed.example.", uint16_t(i)));
    all.insert(all.end(), f.begin(), f.end());
  }
  // nodedns stops reading while the client does not read, so the queries go from a thread.
  std::atomic<bool> sent{false};
  std::thread sender([&] {
    if (SendAll(fd, all)) sent = shutdown(fd, SHUT_WR) == 0;
  });
  std::this_thread::sleep_for(milliseconds(300));  // replies pile up meanwhile
  std::set<uint16_t> ids;
  size_t replies = 0;
  while (true) {
    const auto r = RecvTcpMessage(fd, Clock::now() + milliseconds(5000));
    if (!r.has_value()) break;  // the FIN (or the 5 s bound)
    ids.insert(Id(*r));
    ++replies;
  }
  const Ending e = WatchForClose(fd, milliseconds(1000));
  sender.join();
  close(fd);
  ASSERT_TRUE(sent.load());
  EXPECT_EQ(replies, size_t{kQueries}) << "replies lost at the client's EOF";
  EXPECT_EQ(ids.size(), size_t{kQueries});
  EXPECT_EQ(e.bytes, 0u);
  EXPECT_EQ(Closed("unread"), 0);
}

// --tcp-max-connections 3. A fourth client closes the connection idle the longest (here one whose
// last query is older than another's silent accept), and the others keep working. When every
// connection has a query in flight, a new one is refused instead.
TEST_F(HostileClientTest, ConnectionsPastTheLimitEvictTheIdlestOrAreRefused) {
  Upstream upstream(milliseconds(0));
  ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream.port(), {"--tcp-max-connections", "3"}));
  auto ask = [&](int fd, uint16_t id) {
    if (!SendAll(fd, TcpFrame(Query("cap.example.", id)))) return false;
    const auto r = RecvTcpMessage(fd, Clock::now() + milliseconds(3000));
    return r.has_value() && Id(*r) == id;
  };
  const int a = TcpConnect(dns_port_);
  const int b = TcpConnect(dns_port_);
  ASSERT_TRUE(ask(a, 1));
  std::this_thread::sleep_for(milliseconds(50));
  ASSERT_TRUE(ask(b, 2));
  std::this_thread::sleep_for(milliseconds(50));
  const int c = TcpConnect(dns_port_);  // silent: active only at its accept
  std::this_thread::sleep_for(milliseconds(50));
  ASSERT_TRUE(ask(a, 3));  // a is now the most recent; b the idlest
  std::this_thread::sleep_for(milliseconds(50));
  const int d = TcpConnect(dns_port_);
  ASSERT_TRUE(ask(d, 4)) << "the new connection was not served";
  const Ending eb = WatchForClose(b, milliseconds(3000));
  ASSERT_TRUE(eb.closed_after.has_value()) << "the idlest connection was kept";
  EXPECT_TRUE(ask(a, 5));
  EXPECT_EQ(WatchForClose(c, milliseconds(200)).closed_after, std::nullopt) << "c was closed";
  EXPECT_EQ(Closed("evicted"), 1);
  EXPECT_EQ(Metric("nodedns_tcp_rejected_connections_total"), 0);
  for (int fd : {a, b, c, d}) close(fd);
}

TEST_F(HostileClientTest, ConnectionsPastTheLimitAreRefusedWhenNoneIsIdle) {
  Upstream upstream(milliseconds(1500));
  ASSERT_NO_FATAL_FAILURE(StartNodedns(upstream.port(), {"--tcp-max-connections", "2"}));
  int busy[2];
  for (int i = 0; i < 2; ++i) {
    busy[i] = TcpConnect(dns_port_);
    ASSERT_GE(busy[i], 0);
    ASSERT_TRUE(SendAll(busy[i], TcpFrame(Query("slow" + std::to_string(i) + ".example.", 10))));
  }
  std::this_thread::sleep_for(milliseconds(300));  // both queries upstream
  const int extra = TcpConnect(dns_port_);
  ASSERT_GE(extra, 0);
  SendAll(extra, TcpFrame(Query("extra.example.", 11)));
  const Ending e = WatchForClose(extra, milliseconds(3000));
  close(extra);
  ASSERT_TRUE(e.closed_after.has_value()) << "a connection past the limit was kept";
  EXPECT_EQ(e.bytes, 0u);
  for (int fd : busy) {
    const auto r = RecvTcpMessage(fd, Clock::now() + milliseconds(5000));
    EXPECT_TRUE(r.has_value()) << "a busy connection lost its reply";
    close(fd);
  }
  EXPECT_EQ(Metric("nodedns_tcp_rejected_connections_total"), 1);
  EXPECT_EQ(Metric("nodedns_tcp_connections_total"), 2);
  EXPECT_EQ(Closed("evicted"), 0);
}

}  // namespace
}  // namespace nodedns::integration
