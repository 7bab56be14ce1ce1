// An in-process Server with one worker, a UDP client and a hand-driven upstream socket: what the
// UDP path does with datagrams longer than its receive buffer (UdpFrontend::kUdpBufSize). recvmmsg
// reports them with MSG_TRUNC; worker.h documents "longer queries are FORMERR", and the bytes
// that did fit must not be served as if they were the whole query.
#include "proxy/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "proxy/serve_command.h"
#include "tests/testing/dns_builder.h"

namespace nodedns::proxy {
namespace {

using Bytes = std::vector<uint8_t>;

// A UDP socket bound to 127.0.0.1 on a port the kernel picks.
int BoundUdpSocket(uint16_t& port) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

std::optional<Bytes> Recv(int fd, int timeout_ms, sockaddr_storage* from = nullptr) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) return std::nullopt;
  Bytes buf(65536);
  sockaddr_storage src{};
  socklen_t len = sizeof src;
  const ssize_t n =
      recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&src), &len);
  if (n < 0) return std::nullopt;
  if (from != nullptr) *from = src;
  buf.resize(static_cast<size_t>(n));
  return buf;
}

uint16_t Id(const Bytes& m) { return static_cast<uint16_t>(m[0] << 8 | m[1]); }
uint8_t Rcode(const Bytes& m) { return m[3] & 0xf; }

class OversizedDatagramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    upstream_ = BoundUdpSocket(upstream_port_);
    uint16_t listen_port = 0;
    const int probe = BoundUdpSocket(listen_port);  // a free port; closed before the server binds
    close(probe);
    ServeFlags f;
    f.listen = {"127.0.0.1:" + std::to_string(listen_port)};
    f.forward = {".=127.0.0.1:" + std::to_string(upstream_port_)};
    f.workers = 1;
    f.cache_size_mb = 4;
    f.upstream_timeout_ms = 500;
    f.upstream_tries = 1;
    f.search_rewrite = "off";
    f.node_search = {"none"};
    auto config = BuildServeConfig(f);
    ASSERT_TRUE(config.ok()) << config.status();
    auto server = Server::Create(*std::move(config));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    run_ = std::thread([this] { run_status_ = server_->Run(); });
    client_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(listen_port);
    connect(client_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    // Serving once a query with two questions (FORMERR, never forwarded) is answered.
    Bytes two = testing::BuildQuery("ready.example.", 1);
    two[5] = 2;
    bool ready = false;
    for (int i = 0; i < 100 && !ready; ++i) {
      send(client_, two.data(), two.size(), 0);
      ready = Recv(client_, 50).has_value();
    }
    ASSERT_TRUE(ready) << "the server did not answer within 5 s";
    while (Recv(client_, 200)) {
    }  // replies to earlier probes
    formerr_before_ = Metric("nodedns_replies_total{rcode=\"FORMERR\"}");
  }

  void TearDown() override {
    if (server_) {
      server_->Shutdown();
      run_.join();
      EXPECT_TRUE(run_status_.ok()) << run_status_;
      server_.reset();
    }
    if (client_ >= 0) close(client_);
    if (upstream_ >= 0) close(upstream_);
  }

  // A well-formed query for `name` followed by zero bytes up to `size` bytes in all. The parser
  // tolerates bytes after the last record, so only the size tells these datagrams apart.
  // A well-formed query of exactly `size` bytes: EDNS with a Padding option (RFC 7830) filling it
  // (zero bytes after the last record would be FORMERR for any size).
  static Bytes PaddedQuery(const std::string& name, uint16_t id, size_t size) {
    Bytes q = testing::BuildQuery(name, 1, /*edns=*/true, false, id);  // OPT last, no options
    const size_t pad = size - q.size() - 4;
    q.insert(q.end(), {0, 12, static_cast<uint8_t>(pad >> 8), static_cast<uint8_t>(pad)});
    q.resize(size, 0);
    dns::Put16(q.data() + size - pad - 4 - 2, static_cast<uint16_t>(pad + 4));  // OPT RDLENGTH
    return q;
  }

  double Metric(const std::string& sample) {
    const std::string m = server_->RenderMetrics();
    const size_t at = m.find("\n" + sample + " ");
    return at == std::string::npos ? -1 : std::stod(m.substr(at + sample.size() + 2));
  }

  std::unique_ptr<Server> server_;
  std::thread run_;
  absl::Status run_status_;
  int client_ = -1;
  int upstream_ = -1;
  uint16_t upstream_port_ = 0;
  double formerr_before_ = 0;
};

TEST_F(OversizedDatagramTest, DatagramLongerThanTheReceiveBufferGetsFormerrAndIsNotForwarded) {
  for (size_t size : {UdpFrontend::kUdpBufSize + 1, size_t{4000}, size_t{65000}}) {
    SCOPED_TRACE("datagram of " + std::to_string(size) + " bytes");
    const uint16_t id = static_cast<uint16_t>(size);
    const Bytes q = PaddedQuery("oversized.example.", id, size);
    ASSERT_EQ(send(client_, q.data(), q.size(), 0), static_cast<ssize_t>(q.size()));
    auto r = Recv(client_, 2000);
    ASSERT_TRUE(r.has_value()) << "no reply";
    ASSERT_GE(r->size(), 12u);
    EXPECT_EQ(Id(*r), id);
    EXPECT_TRUE((*r)[2] & 0x80) << "QR not set";
    EXPECT_EQ(Rcode(*r), 1) << "not FORMERR";
    EXPECT_LE(r->size(), 512u);
  }
  EXPECT_FALSE(Recv(upstream_, 300).has_value()) << "a truncated datagram was forwarded";
  EXPECT_EQ(Metric("nodedns_upstream_queries_total"), 0);
  EXPECT_EQ(Metric("nodedns_replies_total{rcode=\"FORMERR\"}"), formerr_before_ + 3);
}

TEST_F(OversizedDatagramTest, DatagramThatFillsTheBufferExactlyIsServed) {
  // The same layout at exactly kUdpBufSize bytes is whole: forwarded, and the answer relayed.
  const Bytes q = PaddedQuery("full.example.", 0x0b0b, UdpFrontend::kUdpBufSize);
  ASSERT_EQ(send(client_, q.data(), q.size(), 0), static_cast<ssize_t>(q.size()));
  sockaddr_storage proxy{};
  auto forwarded = Recv(upstream_, 2000, &proxy);
  ASSERT_TRUE(forwarded.has_value()) << "not forwarded";
  testing::MessageSpec answer;
  answer.qname = "full.example.";
  answer.id = Id(*forwarded);
  answer.edns = true;
  answer.answer = {"full.example. 60 IN A 192.0.2.11"};
  const Bytes reply = testing::Build(answer);
  sendto(upstream_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&proxy),
         sizeof(sockaddr_in));
  auto r = Recv(client_, 2000);
  ASSERT_TRUE(r.has_value()) << "no reply";
  EXPECT_EQ(Id(*r), 0x0b0b);
  EXPECT_EQ(Rcode(*r), 0);
  testing::LdnsPkt p = testing::Parse(*r);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(ldns_pkt_ancount(p.get()), 1);
  EXPECT_EQ(Metric("nodedns_upstream_queries_total"), 1);
}

}  // namespace
}  // namespace nodedns::proxy
