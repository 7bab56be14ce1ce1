// A client waiting for a reply that is not ready yet (a miss, a rewrite): where the reply goes
// and the query's header and question, kept inline so that a miss allocates nothing. Hits never
// build one: they are answered in place.
#ifndef NODEDNS_PROXY_CLIENT_H_
#define NODEDNS_PROXY_CLIENT_H_

#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>

#include "dns/wire.h"
#include "proxy/coredns_metrics.h"
#include "proxy/search_path_learner.h"

namespace nodedns::proxy {

struct Client;

// Where a finished reply goes: the UDP front end's outbox, or a TCP connection.
class ReplySink {
 public:
  virtual void SendReply(const Client& client, std::span<const uint8_t> reply) = 0;

 protected:
  ~ReplySink() = default;
};

// DNS Flag Day 2020: 1232 bytes at most over UDP, whatever larger size the client offers.
inline size_t UdpLimit(const dns::QueryInfo& q) {
  return std::min<size_t>(q.MaxUdpReply(), dns::kEdnsUdpSize);
}

inline uint8_t RcodeOf(const uint8_t* reply) { return reply[3] & 0xf; }

// A client's address as the search-path learner takes it.
inline SocketAddress AsSocketAddress(const sockaddr_storage& a) {
  SocketAddress out;
  out.storage = a;
  out.length = sizeof(sockaddr_storage);
  return out;
}

struct Client {
  ReplySink* sink = nullptr;
  bool tcp = false;
  int udp_fd = -1;       // UDP: the socket the query came on
  uint64_t conn_id = 0;  // TCP: the connection
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  dns::QueryInfo q;
  // Header and question of the query (for ID, case, flags).
  uint8_t question_bytes[dns::kHeaderSize + dns::kMaxNameWire + 4];
  uint16_t question_size = 0;
  NamespaceName rewrite_ns;  // set: an NXDOMAIN for this question starts a rewrite
  uint8_t server = 0;        // the listen address's index (CoreDNS metrics)
  uint64_t start_ns = 0;     // when the query was read (CoreDNS metrics; 0 when they are off)
  ReplySource source = ReplySource::kForward;  // what wrote the reply (CoreDNS metrics)
  // Counted by the worker's MissAdmission while it waits (released on delivery), and its slot
  // in the per-client table (MissAdmission::kNoSlot: none).
  bool miss_admitted = false;
  uint16_t miss_slot = 0xffff;

  std::span<const uint8_t> question() const { return {question_bytes, question_size}; }
  std::span<const uint8_t> qname() const {
    return {question_bytes + dns::kHeaderSize, q.qname_length};
  }
  void SetQuestion(std::span<const uint8_t> query, const dns::QueryInfo& info) {
    q = info;
    question_size = info.question_end;
    std::memcpy(question_bytes, query.data(), question_size);
  }
  // The largest reply this client takes: TCP replies are never truncated.
  size_t Limit() const { return tcp ? dns::kMaxMessage : UdpLimit(q); }
};

// Hands a finished reply to a waiting client, with the accounting every reply gets (QueryPath).
class ClientDelivery {
 public:
  virtual void Deliver(const Client& client, std::span<const uint8_t> reply) = 0;

 protected:
  ~ClientDelivery() = default;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_CLIENT_H_
