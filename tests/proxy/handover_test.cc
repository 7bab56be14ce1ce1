// The handover protocol between two processes, played here by two threads: which sockets cross,
// that they are the same kernel sockets, the snapshot in chunks, and every way it can fail
// without leaving the old side unable to serve.
#include "proxy/handover.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "proxy/worker.h"
#include "tests/testing/net.h"

namespace nodedns::proxy {
namespace {

using testing::FreePorts;

class HandoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nodedns-handover-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/handover.sock";
  }
  void TearDown() override {
    for (int fd : fds_) close(fd);
    std::system(("rm -rf " + dir_).c_str());
  }
  // A UDP and a listening TCP socket on a fresh loopback port.
  dns::SocketAddress Bind(int* udp, int* tcp) {
    const uint16_t port = FreePorts(1)[0];
    auto addr = dns::SocketAddress::Parse("127.0.0.1:" + std::to_string(port));
    EXPECT_TRUE(addr.ok());
    auto u = OpenSocket(*addr, false);
    auto t = OpenSocket(*addr, true);
    EXPECT_TRUE(u.ok() && t.ok());
    *udp = *u;
    *tcp = *t;
    fds_.push_back(*udp);
    fds_.push_back(*tcp);
    return *addr;
  }
  std::string dir_, path_;
  std::vector<int> fds_;
};

uint16_t PortOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

TEST_F(HandoverTest, NoFileMeansNoPredecessor) {
  auto c = HandoverClient::Request(path_, 1000);
  EXPECT_EQ(c->outcome(), HandoverClient::Outcome::kNoPredecessor);
}

TEST_F(HandoverTest, StaleSocketOfAKilledProcessMeansNoPredecessor) {
  {
    auto l = HandoverListener::Listen(path_);
    ASSERT_TRUE(l.ok()) << l.status();
    (*l)->Release();  // as a SIGKILL would: the file stays, nobody listens
  }
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  auto c = HandoverClient::Request(path_, 1000);
  EXPECT_EQ(c->outcome(), HandoverClient::Outcome::kNoPredecessor) << c->error();
}

TEST_F(HandoverTest, PassesTheSameSocketsThenStreamsTheSnapshotChunks) {
  int udp, tcp;
  const dns::SocketAddress addr = Bind(&udp, &tcp);
  auto listener = HandoverListener::Listen(path_);
  ASSERT_TRUE(listener.ok()) << listener.status();
  // Chunks of every size up to the largest, arriving one by one, in order.
  std::vector<std::vector<uint8_t>> chunks;
  for (size_t size : {size_t{1}, size_t{1000}, kMaxSnapshotChunk, size_t{77}}) {
    chunks.emplace_back(size);
    for (size_t i = 0; i < size; ++i) chunks.back()[i] = static_cast<uint8_t>(i * 7 + size);
  }
  absl::StatusOr<int> conn;
  std::thread old_side([&] {
    pollfd p{(*listener)->fd(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 5000), 1);
    const int socks[] = {udp, tcp};
    conn = (*listener)->Serve(
        socks,
        [&](const HandoverListener::ChunkSink& sink) {
          for (const auto& chunk : chunks) ASSERT_TRUE(sink(chunk));
        },
        5000);
  });
  auto c = HandoverClient::Request(path_, 5000);
  ASSERT_EQ(c->outcome(), HandoverClient::Outcome::kReceived) << c->error();
  EXPECT_EQ(c->received(), 2u);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_TRUE(c->ReceiveSnapshot([&](std::span<const uint8_t> chunk) {
                 got.emplace_back(chunk.begin(), chunk.end());
               }).ok());
  old_side.join();
  ASSERT_TRUE(conn.ok()) << conn.status();
  EXPECT_EQ(got, chunks);
  // Taken by what the kernel says the socket is.
  EXPECT_TRUE(c->Take(addr, /*tcp=*/false).size() == 1);
  const std::vector<int> tcp_taken = c->Take(addr, /*tcp=*/true);
  ASSERT_EQ(tcp_taken.size(), 1u);
  EXPECT_EQ(c->untaken(), 0u);
  fds_.push_back(tcp_taken[0]);
  // The same socket: a connection queued on the old descriptor is accepted from the new one.
  const int client = testing::TcpConnect(PortOf(tcp));
  ASSERT_GE(client, 0);
  pollfd p{tcp_taken[0], POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1);
  const int accepted = accept(tcp_taken[0], nullptr, nullptr);
  EXPECT_GE(accepted, 0);
  close(accepted);
  close(client);
  // Confirmation reaches the old side.
  ASSERT_TRUE(c->Confirm().ok());
  pollfd q{*conn, POLLIN, 0};
  ASSERT_EQ(poll(&q, 1, 2000), 1);
  EXPECT_TRUE(HandoverListener::ReadServing(*conn));
}

TEST_F(HandoverTest, ADatagramQueuedOnTheOldDescriptorIsReadFromTheNewOne) {
  int udp, tcp;
  const dns::SocketAddress addr = Bind(&udp, &tcp);
  auto listener = HandoverListener::Listen(path_);
  ASSERT_TRUE(listener.ok());
  // Queued in the kernel before the handover: nobody has read it.
  const int sender = testing::UdpSocketTo(PortOf(udp));
  ASSERT_EQ(send(sender, "queued", 6, 0), 6);
  std::thread old_side([&] {
    pollfd p{(*listener)->fd(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 5000), 1);
    const int socks[] = {udp};
    auto conn = (*listener)->Serve(socks, nullptr, 5000);
    if (conn.ok()) close(*conn);
  });
  auto c = HandoverClient::Request(path_, 5000);
  old_side.join();
  ASSERT_EQ(c->outcome(), HandoverClient::Outcome::kReceived) << c->error();
  const std::vector<int> got = c->Take(addr, false);
  ASSERT_EQ(got.size(), 1u);
  fds_.push_back(got[0]);
  char buf[16];
  EXPECT_EQ(recv(got[0], buf, sizeof buf, MSG_DONTWAIT), 6);
  close(sender);
}

TEST_F(HandoverTest, SuccessorThatGoesAwayBeforeServingLeavesTheOldSideServing) {
  int udp, tcp;
  Bind(&udp, &tcp);
  auto listener = HandoverListener::Listen(path_);
  ASSERT_TRUE(listener.ok());
  absl::StatusOr<int> conn;
  std::thread old_side([&] {
    pollfd p{(*listener)->fd(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 5000), 1);
    const int socks[] = {udp, tcp};
    conn = (*listener)->Serve(socks, nullptr, 5000);
  });
  auto c = HandoverClient::Request(path_, 5000);
  old_side.join();
  ASSERT_TRUE(conn.ok());
  c.reset();  // a crash after receiving: no kServing
  pollfd q{*conn, POLLIN, 0};
  ASSERT_EQ(poll(&q, 1, 2000), 1);
  EXPECT_FALSE(HandoverListener::ReadServing(*conn));
  // The old side's sockets are still its own.
  int type = 0;
  socklen_t len = sizeof type;
  EXPECT_EQ(getsockopt(udp, SOL_SOCKET, SO_TYPE, &type, &len), 0);
}

// A listener that accepts and then does `act` with the connection.
class FakePredecessor {
 public:
  template <typename Act>
  FakePredecessor(const std::string& path, Act act) {
    fd_ = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd_, 1), 0);
    thread_ = std::thread([this, act] {
      const int conn = accept(fd_, nullptr, nullptr);
      act(conn);
      close(conn);
    });
  }
  ~FakePredecessor() {
    thread_.join();
    close(fd_);
  }

 private:
  int fd_;
  std::thread thread_;
};

TEST_F(HandoverTest, AChunkOverTheLimitFailsTheExchangeOnTheOldSide) {
  int udp, tcp;
  Bind(&udp, &tcp);
  auto listener = HandoverListener::Listen(path_);
  ASSERT_TRUE(listener.ok());
  absl::StatusOr<int> conn;
  bool accepted = true;
  std::thread old_side([&] {
    pollfd p{(*listener)->fd(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 5000), 1);
    const int socks[] = {udp};
    const std::vector<uint8_t> big(kMaxSnapshotChunk + 1);
    conn = (*listener)->Serve(
        socks, [&](const HandoverListener::ChunkSink& sink) { accepted = sink(big); }, 5000);
  });
  auto c = HandoverClient::Request(path_, 5000);
  old_side.join();
  // The old side gave up and serves on; so does the new one, on sockets of its own.
  EXPECT_EQ(c->outcome(), HandoverClient::Outcome::kFailed);
  EXPECT_EQ(c->error(), "the other process closed the connection");
  EXPECT_EQ(c->untaken(), 0u);
  EXPECT_FALSE(accepted);
  EXPECT_FALSE(conn.ok());
}

TEST_F(HandoverTest, AnotherProtocolVersionFailsWithBothVersionsNamed) {
  FakePredecessor fake(path_, [](int conn) {
    char buf[64];
    recv(conn, buf, sizeof buf, 0);  // the hello
    internal::HandoverHeader h;
    h.version = kHandoverVersion + 1;
    h.type = internal::HandoverMessage::kEnd;
    send(conn, &h, sizeof h, 0);
  });
  auto c = HandoverClient::Request(path_, 2000);
  EXPECT_EQ(c->outcome(), HandoverClient::Outcome::kFailed);
  EXPECT_NE(c->error().find("version 2, this one 1"), std::string::npos) << c->error();
}

TEST_F(HandoverTest, NotANodednsSocketFails) {
  FakePredecessor fake(path_, [](int conn) {
    char buf[64];
    recv(conn, buf, sizeof buf, 0);
    send(conn, "HTTP/1.1 400 Bad Request\r\n", 26, 0);
  });
  auto c = HandoverClient::Request(path_, 2000);
  EXPECT_EQ(c->outcome(), HandoverClient::Outcome::kFailed);
  EXPECT_NE(c->error().find("not a nodedns handover socket"), std::string::npos) << c->error();
}

TEST_F(HandoverTest, SilentPredecessorTimesOut) {
  FakePredecessor fake(path_, [](int conn) {
    char buf[64];
    recv(conn, buf, sizeof buf, 0);
    // Answers nothing until the client gives up and closes.
    recv(conn, buf, sizeof buf, 0);
  });
  const auto start = std::chrono::steady_clock::now();
  auto c = HandoverClient::Request(path_, 300);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(c->outcome(), HandoverClient::Outcome::kFailed);
  EXPECT_NE(c->error().find("timed out"), std::string::npos) << c->error();
  EXPECT_LT(took, std::chrono::seconds(3));  // bounded by the timeout, not by the peer
  c.reset();
}

TEST_F(HandoverTest, PredecessorThatPassesNoSocketFails) {
  FakePredecessor fake(path_, [](int conn) {
    char buf[64];
    recv(conn, buf, sizeof buf, 0);
    internal::HandoverHeader h;
    h.type = internal::HandoverMessage::kEnd;
    send(conn, &h, sizeof h, 0);
  });
  auto c = HandoverClient::Request(path_, 2000);
  EXPECT_EQ(c->outcome(), HandoverClient::Outcome::kFailed);
  EXPECT_NE(c->error().find("no socket"), std::string::npos) << c->error();
}

TEST_F(HandoverTest, ListenerReplacesThePathAndLeavesASuccessorsPathAlone) {
  auto first = HandoverListener::Listen(path_);
  ASSERT_TRUE(first.ok());
  auto second = HandoverListener::Listen(path_);  // the successor's, renamed over it
  ASSERT_TRUE(second.ok()) << second.status();
  struct stat before;
  ASSERT_EQ(stat(path_.c_str(), &before), 0);
  first->reset();  // the predecessor exits: PATH is not its any more
  struct stat after;
  ASSERT_EQ(stat(path_.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
  second->reset();  // its own: removed
  EXPECT_NE(stat(path_.c_str(), &after), 0);
}

TEST(DescribeSocketTest, TellsUdpAndListeningTcpFromAnythingElse) {
  const uint16_t port = FreePorts(1)[0];
  auto addr = dns::SocketAddress::Parse("127.0.0.1:" + std::to_string(port));
  auto udp = OpenSocket(*addr, false);
  auto tcp = OpenSocket(*addr, true);
  ASSERT_TRUE(udp.ok() && tcp.ok());
  auto du = DescribeSocket(*udp);
  auto dt = DescribeSocket(*tcp);
  ASSERT_TRUE(du.ok() && dt.ok());
  EXPECT_FALSE(du->tcp);
  EXPECT_TRUE(dt->tcp);
  EXPECT_EQ(du->addr.ToString(), addr->ToString());
  const int unbound = socket(AF_INET, SOCK_STREAM, 0);  // not listening
  EXPECT_FALSE(DescribeSocket(unbound).ok());
  const int unix_sock = socket(AF_UNIX, SOCK_DGRAM, 0);
  EXPECT_FALSE(DescribeSocket(unix_sock).ok());
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  EXPECT_FALSE(DescribeSocket(pipefd[0]).ok());
  for (int fd : {*udp, *tcp, unbound, unix_sock, pipefd[0], pipefd[1]}) close(fd);
}

}  // namespace
}  // namespace nodedns::proxy
