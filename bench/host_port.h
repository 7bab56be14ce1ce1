// "ADDR:PORT" parsing for the harness binaries (IPv4 "127.0.0.1:53" or IPv6 "[::1]:53"). Literal
// addresses only: the harness runs on loopback and must never wait on a resolver.
#ifndef NODEDNS_BENCH_HOST_PORT_H_
#define NODEDNS_BENCH_HOST_PORT_H_

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodedns::bench {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  uint16_t port() const;  // Host order; 0 if unset.
  std::string ToString() const;
};

// Port 0 is accepted (bind to an ephemeral port).
absl::StatusOr<SocketAddress> ParseHostPort(absl::string_view text);

}  // namespace nodedns::bench

#endif  // NODEDNS_BENCH_HOST_PORT_H_
