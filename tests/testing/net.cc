// See net.h.
#include "tests/testing/net.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

namespace nodedns::testing {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

namespace {

// The lowest port the kernel hands out for a bind to port 0.
int EphemeralLow() {
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  if (!(range >> low)) return 32768;
  return low;
}

}  // namespace

std::vector<uint16_t> FreePorts(size_t n) {
  // Below the ephemeral range, above the well-known and registered ports most daemons take.
  const int high = std::min(EphemeralLow(), 65536) - 1;
  const int low = std::max(10000, high - 20000);
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  if (high > low) {
    std::mt19937 random(std::random_device{}() ^ static_cast<unsigned>(getpid()));
    std::uniform_int_distribution<int> pick(low, high);
    for (int tries = 0; ports.size() < n && tries < 1000; ++tries) {
      const uint16_t port = static_cast<uint16_t>(pick(random));
      sockaddr_in a = Loopback(port);
      const int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      fds.push_back(t);
      fds.push_back(u);
      if (bind(t, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
          bind(u, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        ports.push_back(port);
      }
    }
  }
  // A machine whose ephemeral range starts too low to leave room: let the kernel choose.
  while (ports.size() < n && fds.size() < 2000) {
    const int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = Loopback(0);
    socklen_t len = sizeof a;
    bind(t, reinterpret_cast<sockaddr*>(&a), sizeof a);
    getsockname(t, reinterpret_cast<sockaddr*>(&a), &len);
    fds.push_back(t);
    const int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    fds.push_back(u);
    if (bind(u, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) ports.push_back(ntohs(a.sin_port));
  }
  for (int fd : fds) close(fd);
  return ports;
}

int UdpSocketTo(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const sockaddr_in a = Loopback(port);
  connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
  return fd;
}

std::optional<Bytes> RecvDatagram(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) return std::nullopt;
  Bytes buf(65536);
  const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
  if (n < 0) return std::nullopt;
  buf.resize(static_cast<size_t>(n));
  return buf;
}

std::optional<Bytes> UdpExchange(uint16_t port, const Bytes& query, int timeout_ms) {
  return UdpExchangeTo("127.0.0.1", port, query, timeout_ms);
}

sockaddr_storage SocketAddressOf(const std::string& address, uint16_t port, socklen_t* length) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, address.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    len = sizeof *a4;
  } else if (inet_pton(AF_INET6, address.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    len = sizeof *a6;
  } else {
    ss = {};
  }
  if (length != nullptr) *length = len;
  return ss;
}

std::optional<Bytes> UdpExchangeTo(const std::string& address, uint16_t port, const Bytes& query,
                                   int timeout_ms) {
  socklen_t len = 0;
  const sockaddr_storage ss = SocketAddressOf(address, port, &len);
  if (ss.ss_family == AF_UNSPEC) return std::nullopt;
  const int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  std::optional<Bytes> reply;
  // Connected, so that only that server's datagrams are seen.
  if (connect(fd, reinterpret_cast<const sockaddr*>(&ss), len) == 0 &&
      send(fd, query.data(), query.size(), 0) == static_cast<ssize_t>(query.size())) {
    reply = RecvDatagram(fd, timeout_ms);
  }
  close(fd);
  return reply;
}

int TcpConnect(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_in a = Loopback(port);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const Bytes& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

bool RecvExact(int fd, uint8_t* out, size_t size, Clock::time_point deadline) {
  size_t got = 0;
  while (got < size) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) != 1) return false;
    const ssize_t n = recv(fd, out + got, size - got, 0);
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

std::optional<Bytes> RecvTcpMessage(int fd, Clock::time_point deadline) {
  uint8_t len[2];
  if (!RecvExact(fd, len, 2, deadline)) return std::nullopt;
  Bytes msg(static_cast<size_t>(len[0] << 8 | len[1]));
  if (!RecvExact(fd, msg.data(), msg.size(), deadline)) return std::nullopt;
  return msg;
}

Bytes TcpFrame(const Bytes& msg) {
  Bytes f{static_cast<uint8_t>(msg.size() >> 8), static_cast<uint8_t>(msg.size())};
  f.insert(f.end(), msg.begin(), msg.end());
  return f;
}

std::optional<Bytes> TcpExchange(uint16_t port, const Bytes& query, int timeout_ms) {
  const int fd = TcpConnect(port);
  if (fd < 0) return std::nullopt;
  std::optional<Bytes> reply;
  if (SendAll(fd, TcpFrame(query))) {
    reply = RecvTcpMessage(fd, Clock::now() + milliseconds(timeout_ms));
  }
  close(fd);
  return reply;
}

std::optional<std::string> HttpGet(uint16_t port, const std::string& path) {
  const int fd = TcpConnect(port);
  if (fd < 0) return std::nullopt;
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  std::string resp;
  if (SendAll(fd, Bytes(req.begin(), req.end()))) {
    const auto deadline = Clock::now() + milliseconds(3000);
    char buf[4096];
    while (true) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      pollfd p{fd, POLLIN, 0};
      if (left <= 0 || poll(&p, 1, static_cast<int>(left)) != 1) break;
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      resp.append(buf, static_cast<size_t>(n));
      // Stop at Content-Length in case the server keeps the connection open.
      const size_t head_end = resp.find("\r\n\r\n");
      if (head_end == std::string::npos) continue;
      std::string head = resp.substr(0, head_end);
      std::transform(head.begin(), head.end(), head.begin(), ::tolower);
      const size_t cl = head.find("content-length:");
      if (cl != std::string::npos &&
          resp.size() - head_end - 4 >= std::stoul(head.substr(cl + 15))) {
        break;
      }
    }
  }
  close(fd);
  const size_t head_end = resp.find("\r\n\r\n");
  if (resp.rfind("HTTP/1.", 0) != 0 || resp.find(" 200 ") == std::string::npos ||
      head_end == std::string::npos) {
    return std::nullopt;
  }
  return resp.substr(head_end + 4);
}

double MetricValue(const std::string& text, const std::string& sample) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(sample + " ", 0) == 0) return std::stod(line.substr(sample.size() + 1));
  }
  return -1;
}

}  // namespace nodedns::testing
