// What the upstream forwarders (UdpForwarder, TcpForwarder) report to whoever sent a query: one
// callback per query, run exactly once, with a status and, on kOk, the reply.
#ifndef NODEDNS_UPSTREAM_FORWARD_H_
#define NODEDNS_UPSTREAM_FORWARD_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "dns/wire.h"

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

// Told of every reply matched to a try of a query, before the query's callback: the server's
// index in the forwarder's list, the reply's rcode and the time since that try was written.
// What coredns_proxy_request_duration_seconds is made of (proxy/coredns_metrics.h).
struct ReplyObserver {
  void (*fn)(void* arg, size_t server, uint8_t rcode, uint64_t rtt_ns) = nullptr;
  void* arg = nullptr;
  void operator()(size_t server, uint8_t rcode, uint64_t rtt_ns) const {
    if (fn != nullptr) fn(arg, server, rcode, rtt_ns);
  }
};

// The longest query a forwarder sends: header, one question, the OPT record the proxy writes.
inline constexpr size_t kMaxQuery = dns::kHeaderSize + dns::kMaxNameWire + 4 + dns::kOptRecordSize;
// At most this many queries in flight per forwarder: IDs are 16 bits and must stay unique.
inline constexpr size_t kMaxInFlight = 60000;

// The length of `query`'s question name if a forwarder can send it (a header, an uncompressed
// name, type and class, at most kMaxQuery bytes), else nullopt.
inline std::optional<size_t> SendableQnameLength(std::span<const uint8_t> query) {
  if (query.size() <= dns::kHeaderSize || query.size() > kMaxQuery) return std::nullopt;
  const auto len = dns::PlainNameLength(query, dns::kHeaderSize);
  if (!len || query.size() < dns::kHeaderSize + *len + 4) return std::nullopt;
  return len;
}

}  // namespace nodedns::upstream

#endif  // NODEDNS_UPSTREAM_FORWARD_H_
