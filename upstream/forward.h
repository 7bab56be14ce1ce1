// What the upstream forwarders (UdpForwarder, TcpForwarder) report to whoever sent a query: one
// callback per query, run exactly once, with a status and, on kOk, the reply.
#ifndef NODEDNS_UPSTREAM_FORWARD_H_
#define NODEDNS_UPSTREAM_FORWARD_H_

#include <cstdint>
#include <span>

namespace nodedns::upstream {

enum class ForwardStatus : uint8_t {
  kOk,        // `reply` has the query's ID and repeats its question (RFC 5452 §9.1)
  kTimeout,   // every try ran out of time
  kFailed,    // nothing usable came back: the servers refused or closed every connection, or
              // answered TC=1 over TCP
  kBadQuery,  // the query cannot be sent (malformed, too long, too many in flight)
  kShutdown,  // the forwarder is shutting down
};

// `reply` is valid only during the call; empty unless status is kOk.
using ForwardCallback = void (*)(void* arg, ForwardStatus status, std::span<const uint8_t> reply);

}  // namespace nodedns::upstream

#endif  // NODEDNS_UPSTREAM_FORWARD_H_
