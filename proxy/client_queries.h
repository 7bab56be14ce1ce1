// Queries per client, for GET /audit's "queries" and the "queries seen" of `audit --live` and
// `audit --node`: the denominator that says whether a pod's wasted queries are most of its DNS or
// a rounding error.
//
// Counting every query per client would put a K-way address search on the cache-hit path. This
// samples instead: one query in `every` on average (the gaps drawn uniformly from 1..2·every-1, so
// that no periodic client pattern aliases with the sampling), and a sampled query counts for
// `every`. The hit path pays a decrement and a branch; the sample itself, a Space-Saving step
// (Metwally et al., as in wasted_queries.h) over K clients, runs once in `every` queries. With
// `every` = 1 the counts are exact (Space-Saving's error aside); the estimate for a client that
// sent n queries has a standard deviation of about sqrt(n·every). docs/benchmarks.md ("Queries per
// client") has what the sampling costs a hit.
//
// Owned and written by one worker; Publish() copies the counts for readers on other threads.
#ifndef NODEDNS_PROXY_CLIENT_QUERIES_H_
#define NODEDNS_PROXY_CLIENT_QUERIES_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "proxy/published.h"

namespace nodedns::proxy {

// A client's address as the per-client trackers keep it: IPv4 in the first 4 bytes of `addr`, or
// IPv6. Returns the address family, or 0 (and leaves `addr` alone) for any other.
uint8_t CopyClientAddress(const sockaddr_storage& client, uint8_t addr[16]);
// Presentation form of an address kept that way.
std::string ClientAddressString(uint8_t family, const uint8_t addr[16]);

class ClientQuerySampler {
 public:
  static constexpr size_t kClients = 64;  // a node's pods, most of them (kubelet's default: 110)

  struct ClientCount {
    uint8_t addr[16] = {};
    uint8_t family = 0;
    uint64_t queries = 0;  // estimated: sampled queries times `every`
    uint64_t error = 0;    // Space-Saving: `queries` may exceed the estimate by at most this
  };

  // `every`: the mean sampling interval; 1 counts every query, 0 none.
  explicit ClientQuerySampler(uint32_t every);

  // Worker thread, for every query served.
  void Count(const sockaddr_storage& client) {
    if (--countdown_ == 0) [[unlikely]] {
      Sample(client);
    }
  }
  // Worker thread: makes the current counts visible to Snapshot().
  void Publish() { published_.Publish(std::span(clients_).first(used_)); }
  // Any thread: the last published counts.
  std::vector<ClientCount> Snapshot() const { return published_.Snapshot(); }
  uint32_t every() const { return every_; }

 private:
  void Sample(const sockaddr_storage& client);
  uint64_t NextGap();

  uint64_t countdown_;
  const uint32_t every_;
  uint64_t rng_ = 0x9e3779b97f4a7c15;
  // A 32-bit fold of each address, searched before the addresses themselves.
  std::array<uint32_t, kClients> keys_{};
  std::array<ClientCount, kClients> clients_{};
  size_t used_ = 0;
  Published<ClientCount> published_;
};

// The "queries" member of the GET /audit document, the workers' counts merged per client, most
// first: "query_sample":N,"queries":[{"client","queries","error"}].
std::string RenderClientQueriesJson(
    const std::vector<std::vector<ClientQuerySampler::ClientCount>>& per_worker, uint32_t every);

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_CLIENT_QUERIES_H_
