// What the upstream seams' tests (Upstream over c-ares, UdpForwarder) share: a query to send, a
// callback that records what it got, and a bounded receive loop on the test's "server" socket.
#ifndef NODEDNS_TESTS_PROXY_UPSTREAM_TEST_UTIL_H_
#define NODEDNS_TESTS_PROXY_UPSTREAM_TEST_UTIL_H_

#include <ares.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cstdint>
#include <string>
#include <vector>

#include "proxy/reply.h"
#include "tests/testing/dns_builder.h"

namespace nodedns::proxy::testing_util {

// The query the worker would send upstream for `name` A IN.
inline std::vector<uint8_t> UpstreamQuery(const std::string& name) {
  std::vector<uint8_t> q(300);
  q.resize(BuildUpstreamQuery(testing::WireName(name), 1, 1, false, false, q));
  return q;
}

// What a query's callback reported.
struct UpstreamResult {
  int calls = 0;
  int status = -1;
  std::vector<uint8_t> reply;
};

// An ares_callback recording into the UpstreamResult passed as `arg`.
inline void RecordUpstreamReply(void* arg, int status, int, unsigned char* abuf, int alen) {
  auto* r = static_cast<UpstreamResult*>(arg);
  ++r->calls;
  r->status = status;
  if (status == ARES_SUCCESS) r->reply.assign(abuf, abuf + alen);
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

}  // namespace nodedns::proxy::testing_util

#endif  // NODEDNS_TESTS_PROXY_UPSTREAM_TEST_UTIL_H_
