// IPv4/IPv6 socket addresses as the command lines write them ("192.0.2.1:53", "[2001:db8::1]:53"),
// shared by the proxy, the audit and the load harness. Literal addresses only: nothing here may
// wait on a resolver.
#ifndef NODEDNS_DNS_SOCKET_ADDRESS_H_
#define NODEDNS_DNS_SOCKET_ADDRESS_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodedns::dns {

// An IPv4 or IPv6 address with a port. Plain value type.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  uint16_t port() const;
  // "192.0.2.1:53" or "[2001:db8::1]:53".
  std::string ToString() const;
  // Accepts "ADDR:PORT", "[V6]:PORT", a bare address (then `default_port`), and with
  // default_port == 0 requires a port. Port 0 (an ephemeral port to bind) only if allowed.
  static absl::StatusOr<SocketAddress> Parse(absl::string_view text, uint16_t default_port = 0,
                                             bool allow_zero_port = false);
};

}  // namespace nodedns::dns

#endif  // NODEDNS_DNS_SOCKET_ADDRESS_H_
