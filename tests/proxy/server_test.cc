// An in-process Server with one worker, a UDP client and a hand-driven upstream socket: what the
// UDP path does with datagrams longer than its receive buffer (UdpFrontend::kUdpBufSize). recvmmsg
// reports them with MSG_TRUNC; worker.h documents "longer queries are FORMERR", and the bytes
// that did fit must not be served as if they were the whole query. And what a reload may change
// (RestartOnlyDifference), and that Server::Reload refuses the rest before touching a worker.
#include "proxy/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <thread>
#include <vector>

#include "dns/socket_address.h"
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

// ---------------------------------------------------------------------------------------------
// Reload: what it may change in a running server, and what needs a restart.

// The configuration `serve` builds for one listen address and one upstream, without touching
// the network.
ServeConfig BaseConfig(uint16_t listen_port = 53) {
  ServeFlags f;
  f.listen = {"127.0.0.1:" + std::to_string(listen_port)};
  f.forward = {".=192.0.2.53:53", "cluster.local=10.96.0.10:53"};
  f.workers = 1;
  f.cache_size_mb = 4;
  f.health = "127.0.0.1:8080";
  f.search_rewrite = "on";
  f.node_search = {"none"};
  auto config = BuildServeConfig(f);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *std::move(config) : ServeConfig{};
}

TEST(RestartOnlyDifferenceTest, NamesSettingsThatNeedARestart) {
  const ServeConfig a = BaseConfig();
  ASSERT_EQ(RestartOnlyDifference(a, a), "");
  struct Case {
    const char* what;
    void (*change)(ServeConfig&);
    const char* named;  // a word the message must contain
  };
  const Case cases[] = {
      {"listen port",
       [](ServeConfig& c) { c.listen = {*dns::SocketAddress::Parse("127.0.0.1:5353")}; }, "listen"},
      {"second listen address",
       [](ServeConfig& c) { c.listen.push_back(*dns::SocketAddress::Parse("127.0.0.2:53")); },
       "listen"},
      {"health address",
       [](ServeConfig& c) { c.http[0].addr = *dns::SocketAddress::Parse("127.0.0.1:8081"); },
       "HTTP"},
      {"metrics turned off on the endpoint", [](ServeConfig& c) { c.http[0].metrics = false; },
       "HTTP"},
      {"CoreDNS metrics", [](ServeConfig& c) { c.coredns_metrics = !c.coredns_metrics; },
       "CoreDNS"},
      {"cache size", [](ServeConfig& c) { c.cache.capacity_bytes *= 2; }, "size"},
      {"cache shards", [](ServeConfig& c) { c.cache.shards = 2; }, "size"},
      {"cache default max TTL", [](ServeConfig& c) { c.cache.max_ttl = 60; }, "rules"},
      {"node search", [](ServeConfig& c) { c.node_search = {"corp.example"}; }, "search"},
      {"search pins", [](ServeConfig& c) { c.search_pins = {"10.0.0.0/8=default"}; }, "search"},
      {"cluster domain", [](ServeConfig& c) { c.cluster_domain = "cluster.example"; }, "search"},
      {"search rewrite off", [](ServeConfig& c) { c.search_rewrite = false; }, "search"},
      {"client TCP limits", [](ServeConfig& c) { c.tcp_max_connections += 1; }, "TCP"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ServeConfig b = a;
    c.change(b);
    const std::string diff = RestartOnlyDifference(a, b);
    EXPECT_NE(diff.find(c.named), std::string::npos) << "\"" << diff << "\"";
  }
}

TEST(RestartOnlyDifferenceTest, ZonesUpstreamsAndPerZoneRulesAreReloadable) {
  const ServeConfig a = BaseConfig();
  ASSERT_GE(a.zones.size(), 2u);
  struct Case {
    const char* what;
    void (*change)(ServeConfig&);
  };
  const Case cases[] = {
      {"another upstream",
       [](ServeConfig& c) {
         c.zones[0].upstreams.push_back(*dns::SocketAddress::Parse("192.0.2.54:53"));
       }},
      {"upstreams replaced",
       [](ServeConfig& c) {
         c.zones[1].upstreams = {*dns::SocketAddress::Parse("10.96.0.11:53")};
       }},
      {"a zone removed", [](ServeConfig& c) { c.zones.erase(c.zones.begin()); }},
      {"a zone added", [](ServeConfig& c) { c.zones.push_back(c.zones.back()); }},
      {"force_tcp", [](ServeConfig& c) { c.zones[0].force_tcp = !c.zones[0].force_tcp; }},
      {"cache_policy",
       [](ServeConfig& c) {
         c.zones[0].cache_policy = cache::EntryPolicy{.max_ttl = 30, .stale_ttl = 0};
       }},
      {"max_concurrent", [](ServeConfig& c) { c.zones[0].max_concurrent = 10; }},
      {"upstream timeout", [](ServeConfig& c) { c.upstream_timeout_ms += 100; }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ServeConfig b = a;
    c.change(b);
    EXPECT_EQ(RestartOnlyDifference(a, b), "");
  }
}

// A server that is created (sockets bound) but not running: Reload checks before it touches a
// worker, so a refused reload leaves the configuration as it was.
TEST(ServerReloadTest, ListenChangeIsRefusedAsFailedPreconditionAndNothingChanges) {
  uint16_t port = 0;
  close(BoundUdpSocket(port));  // a free port; closed before the server binds
  ServeConfig config = BaseConfig(port);
  config.http.clear();  // nothing to bind but the listen address
  auto server = Server::Create(config);
  ASSERT_TRUE(server.ok()) << server.status();
  ServeConfig next = config;
  next.listen = {
      *dns::SocketAddress::Parse("127.0.0.1:" + std::to_string(port == 65535 ? 1 : port + 1))};
  const absl::Status st = (*server)->Reload(next);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("listen"), std::string::npos) << st;
  EXPECT_EQ((*server)->config().listen.front().port(), port);

  next = config;
  next.workers = config.workers + 1;
  EXPECT_EQ((*server)->Reload(next).code(), absl::StatusCode::kFailedPrecondition);
  // A new cache size is not refused (a stub domain's block changes the sum): the size stays.
  next = config;
  next.cache.capacity_bytes *= 2;
  EXPECT_TRUE((*server)->Reload(next).ok());
  EXPECT_EQ((*server)->config().cache.capacity_bytes, config.cache.capacity_bytes);
  EXPECT_EQ((*server)->reload_failures(), 0u) << "Reload itself counts nothing; its caller does";
}

}  // namespace
}  // namespace nodedns::proxy
