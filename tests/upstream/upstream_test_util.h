// What the upstream forwarders' tests (UdpForwarder, TcpForwarder) share: a query to send, a
// callback that records what it got, and bounded loops that run the forwarder's libuv loop while
// the test's "server" sockets wait for it.
#ifndef NODEDNS_TESTS_PROXY_UPSTREAM_TEST_UTIL_H_
#define NODEDNS_TESTS_PROXY_UPSTREAM_TEST_UTIL_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "dns/socket_address.h"
#include "tests/testing/dns_builder.h"
#include "upstream/forward.h"

namespace nodedns::upstream::testing_util {

// A query for `name` A IN with EDNS, as the worker sends upstream (the ID is replaced).
inline std::vector<uint8_t> UpstreamQuery(const std::string& name) {
  return testing::BuildQuery(name, 1, /*edns=*/true);
}

// "ADDR:PORT" strings as the forwarders' server list.
inline std::vector<dns::SocketAddress> Servers(const std::vector<std::string>& servers) {
  std::vector<dns::SocketAddress> out;
  for (const std::string& s : servers) out.push_back(*dns::SocketAddress::Parse(s));
  return out;
}

// What a query's callback reported.
struct UpstreamResult {
  int calls = 0;
  ForwardStatus status = ForwardStatus::kBadQuery;
  std::vector<uint8_t> reply;
};

// A ForwardCallback recording into the UpstreamResult passed as `arg`.
inline void RecordUpstreamReply(void* arg, ForwardStatus status, std::span<const uint8_t> reply) {
  auto* r = static_cast<UpstreamResult*>(arg);
  ++r->calls;
  r->status = status;
  r->reply.assign(reply.begin(), reply.end());
}

// What a forwarder's ReplyObserver was told, call by call.
struct Observation {
  size_t server;
  uint8_t rcode;
  uint64_t rtt_ns;
};
struct ObservationLog {
  std::vector<Observation> calls;
  ReplyObserver Observer() {
    return {.fn =
                [](void* arg, size_t server, uint8_t rcode, uint64_t rtt_ns) {
                  static_cast<ObservationLog*>(arg)->calls.push_back({server, rcode, rtt_ns});
                },
            .arg = this};
  }
};

// Runs `loop` until `done()` holds (bounded: about `max_ms` milliseconds).
template <typename F>
bool RunLoopUntil(uv_loop_t* loop, F done, int max_ms = 3000) {
  for (int spins = 0; spins < max_ms; ++spins) {
    if (done()) return true;  // once: `done` may consume what it looks for
    uv_run(loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  return false;
}

struct Datagram {
  std::vector<uint8_t> bytes;
  sockaddr_in from;
};

// Runs `loop` until `n` datagrams arrived at the non-blocking socket `fd` (bounded: about 2 s).
inline std::vector<Datagram> ReceiveDatagrams(uv_loop_t* loop, int fd, size_t n) {
  std::vector<Datagram> got;
  for (int spins = 0; got.size() < n && spins < 2000; ++spins) {
    uv_run(loop, UV_RUN_NOWAIT);
    uint8_t buf[1500];
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t r = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (r > 0) {
      got.push_back({std::vector<uint8_t>(buf, buf + r), from});
    } else {
      usleep(1000);
    }
  }
  return got;
}

// The reply a server would send to `query` (its ID and name), with one A record.
inline std::vector<uint8_t> AnswerTo(std::span<const uint8_t> query, const std::string& qname,
                                     bool tc = false) {
  testing::MessageSpec m;
  m.qname = qname;
  m.id = dns::HeaderId(query);
  m.tc = tc;
  if (!tc) m.answer = {qname + " 60 IN A 192.0.2.7"};
  return testing::Build(m);
}

// A TCP server on 127.0.0.1 that the test drives step by step: accept, read a framed query,
// answer, or do nothing (a stalled server). Every wait runs the forwarder's loop and is bounded.
class FakeTcpServer {
 public:
  explicit FakeTcpServer(uint16_t port = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    const int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && listen(fd_, 16) == 0;
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~FakeTcpServer() {
    for (auto& [fd, buf] : conns_) close(fd);
    close(fd_);
  }
  bool bound() const { return bound_; }
  uint16_t port() const { return port_; }
  std::string Address() const { return "127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_; }

  // A new connection's fd, or -1 if none came within `max_ms`.
  int Accept(uv_loop_t* loop, int max_ms = 2000) {
    int c = -1;
    RunLoopUntil(
        loop, [&] { return (c = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK)) >= 0; }, max_ms);
    if (c >= 0) {
      ++accepted_;
      conns_[c];
    }
    return c;
  }
  // The next framed message on `fd`; empty if none came within `max_ms` or the peer closed.
  std::vector<uint8_t> Read(uv_loop_t* loop, int fd, int max_ms = 2000) {
    std::vector<uint8_t>& in = conns_[fd];
    std::vector<uint8_t> msg;
    RunLoopUntil(
        loop,
        [&] {
          uint8_t buf[4096];
          const ssize_t n = recv(fd, buf, sizeof buf, 0);
          if (n > 0) in.insert(in.end(), buf, buf + n);
          if (n == 0) return true;  // closed
          if (in.size() >= 2 && in.size() >= 2u + (in[0] << 8 | in[1])) {
            const size_t len = in[0] << 8 | in[1];
            msg.assign(in.begin() + 2, in.begin() + 2 + static_cast<ptrdiff_t>(len));
            in.erase(in.begin(), in.begin() + 2 + static_cast<ptrdiff_t>(len));
            return true;
          }
          return false;
        },
        max_ms);
    return msg;
  }
  // Whether the peer closed `fd` within `max_ms` (bytes that arrive meanwhile are discarded).
  bool PeerClosed(uv_loop_t* loop, int fd, int max_ms = 2000) {
    return RunLoopUntil(
        loop,
        [&] {
          uint8_t buf[4096];
          const ssize_t n = recv(fd, buf, sizeof buf, 0);
          return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
        },
        max_ms);
  }
  static void Write(int fd, std::span<const uint8_t> msg) {
    std::vector<uint8_t> frame = {static_cast<uint8_t>(msg.size() >> 8),
                                  static_cast<uint8_t>(msg.size())};
    frame.insert(frame.end(), msg.begin(), msg.end());
    size_t off = 0;
    for (int spins = 0; off < frame.size() && spins < 2000; ++spins) {
      const ssize_t n = send(fd, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
      if (n > 0) off += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN) return;
      if (off < frame.size()) usleep(500);
    }
  }
  void CloseConn(int fd) {
    conns_.erase(fd);
    close(fd);
  }

 private:
  int fd_ = -1;
  bool bound_ = false;
  uint16_t port_ = 0;
  int accepted_ = 0;
  std::map<int, std::vector<uint8_t>> conns_;  // fd → bytes read, not yet a whole message
};

}  // namespace nodedns::upstream::testing_util

#endif  // NODEDNS_TESTS_PROXY_UPSTREAM_TEST_UTIL_H_
