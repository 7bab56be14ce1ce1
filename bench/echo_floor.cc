// nodedns-echo: "the floor" of the load harness. A single-threaded UDP responder that returns each
// query unchanged except for QR=1, so the load generator counts it as an answer. It does no DNS
// work at all; its throughput and answers per CPU-second bound what any server on the same
// kernel, socket API and core can reach, which is the yardstick bench/compare reports against.
// Like the fast peers it batches with recvmmsg/sendmmsg (one syscall per up to --batch packets).
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "dns/socket_address.h"

namespace nodedns::bench {
namespace {

volatile sig_atomic_t g_stop = 0;

void OnSignal(int) { g_stop = 1; }

constexpr size_t kBufferSize = 65536;  // The largest UDP payload: nothing is ever truncated.

int Main(int argc, char** argv) {
  CLI::App app{
      "UDP echo responder with recvmmsg/sendmmsg batching: replies to each DNS query "
      "with the same bytes and QR=1 (the performance floor of the load harness)."};
  std::string listen = "127.0.0.1:5399";
  int batch = 32;
  app.add_option("-l,--listen", listen, "ADDR:PORT to listen on (port 0: ephemeral, printed)")
      ->capture_default_str();
  app.add_option("--batch", batch, "Messages per recvmmsg/sendmmsg call")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  absl::StatusOr<dns::SocketAddress> address =
      dns::SocketAddress::Parse(listen, 0, /*allow_zero_port=*/true);
  if (!address.ok()) {
    std::cerr << "nodedns-echo: --listen: " << address.status().message() << "\n";
    return 2;
  }
  const int fd = socket(address->family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::perror("nodedns-echo: socket");
    return 1;
  }
  const int size = 8 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  }
  if (bind(fd, address->get(), address->length) != 0) {
    std::cerr << "nodedns-echo: bind " << listen << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  dns::SocketAddress bound;
  bound.length = sizeof(bound.storage);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound.storage), &bound.length);
  // The first stdout line is the contract with scripts and tests that start us on port 0.
  std::cout << "nodedns-echo listening on " << bound.ToString() << std::endl;

  // No SA_RESTART: a signal interrupts the blocking recvmmsg, and the loop exits.
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  const size_t n = static_cast<size_t>(batch);
  std::vector<uint8_t> buffers(n * kBufferSize);
  std::vector<sockaddr_storage> peers(n);
  std::vector<iovec> recv_iov(n), send_iov(n);
  std::vector<mmsghdr> recv_msgs(n), send_msgs(n);
  uint64_t received = 0, answered = 0, dropped = 0;
  while (g_stop == 0) {
    for (size_t i = 0; i < n; ++i) {
      recv_iov[i] = {buffers.data() + i * kBufferSize, kBufferSize};
      recv_msgs[i].msg_hdr = {};
      recv_msgs[i].msg_hdr.msg_name = &peers[i];
      recv_msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      recv_msgs[i].msg_hdr.msg_iov = &recv_iov[i];
      recv_msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // MSG_WAITFORONE: block for the first datagram, then take whatever else is queued.
    const int got =
        recvmmsg(fd, recv_msgs.data(), static_cast<unsigned>(n), MSG_WAITFORONE, nullptr);
    if (got < 0) {
      if (errno == EINTR) continue;
      std::perror("nodedns-echo: recvmmsg");
      break;
    }
    received += static_cast<uint64_t>(got);
    size_t out = 0;
    for (int i = 0; i < got; ++i) {
      const size_t length = recv_msgs[i].msg_len;
      uint8_t* packet = static_cast<uint8_t*>(recv_iov[i].iov_base);
      if (length < 12 || (packet[2] & 0x80) != 0) {  // Not a DNS query: ignore.
        ++dropped;
        continue;
      }
      packet[2] |= 0x80;  // QR=1: a response (RFC 1035 section 4.1.1).
      send_iov[out] = {packet, length};
      send_msgs[out].msg_hdr = {};
      send_msgs[out].msg_hdr.msg_name = &peers[i];
      send_msgs[out].msg_hdr.msg_namelen = recv_msgs[i].msg_hdr.msg_namelen;
      send_msgs[out].msg_hdr.msg_iov = &send_iov[out];
      send_msgs[out].msg_hdr.msg_iovlen = 1;
      ++out;
    }
    size_t done = 0;
    while (done < out) {
      const int sent = sendmmsg(fd, send_msgs.data() + done, static_cast<unsigned>(out - done), 0);
      if (sent < 0) {
        if (errno == EINTR) continue;
        // A peer gone away (ECONNREFUSED from an earlier ICMP error) must not stop the floor:
        // skip the message that failed.
        ++dropped;
        ++done;
        continue;
      }
      done += static_cast<size_t>(sent);
      answered += static_cast<uint64_t>(sent);
    }
  }
  std::cerr << "nodedns-echo: received " << received << ", answered " << answered << ", dropped "
            << dropped << "\n";
  close(fd);
  return 0;
}

}  // namespace
}  // namespace nodedns::bench

int main(int argc, char** argv) { return nodedns::bench::Main(argc, argv); }
