// Bounded work per worker for misses: how many clients wait for an upstream answer, in total
// (--max-waiting-queries) and per client (--client-miss-share), and who was turned away.
//
// A waiting client is a Client (~500 bytes, inline question) in a miss-table waiter or a rewrite,
// held until its reply; an upstream that stops answering keeps each one for the whole timeout
// schedule (2 s, then 4 s by default). The worker's count bounds that memory; the per-client count
// keeps one source flooding misses (a random-subdomain attack, a crash-looping pod) from taking
// the whole count while other clients' misses are turned away. Hits never come here.
//
// Per worker, one thread; fixed arrays, no allocation after construction. A client is its IPv4
// address, or the /64 of its IPv6 address (one host's privacy addresses, RFC 8981, and one pod's
// addresses share it).
#ifndef NODEDNS_PROXY_MISS_ADMISSION_H_
#define NODEDNS_PROXY_MISS_ADMISSION_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "proxy/published.h"

namespace nodedns::proxy {

class MissAdmission {
 public:
  // Slots of the per-client table, and how far a lookup probes from a client's home slot.
  static constexpr size_t kSlots = 4096;
  static constexpr size_t kProbe = 16;
  // The client kept no slot (its probe window was full of other waiting clients): counted in the
  // worker's total only.
  static constexpr uint16_t kNoSlot = 0xffff;
  // Clients kept in the top list of shed misses (GET /audit).
  static constexpr size_t kTopShed = 16;

  enum class Verdict : uint8_t {
    kAdmit,
    kWorkerFull,   // --max-waiting-queries clients already wait on this worker
    kClientShare,  // this client holds its --client-miss-share of them already
  };

  // A client shed misses were counted against, for GET /audit.
  struct ShedClient {
    uint8_t key[16] = {};  // IPv4 in the first 4 bytes, or the IPv6 /64 in the first 8
    uint8_t family = 0;    // 4 or 6
    uint64_t count = 0;    // misses shed (both reasons)
    uint64_t share = 0;    // of which for the client share
    uint64_t error = 0;    // Space-Saving: count may exceed the truth by at most this
  };

  // `max_waiting`: the worker's cap (0: none); `share_percent`: the share of it one client may
  // hold (100: no per-client limit).
  Verdict Admit(const sockaddr_storage& from, size_t max_waiting, uint32_t share_percent,
                uint16_t& slot);
  // A client Admit let in got its reply (or was dropped).
  void Release(uint16_t slot);
  // A miss was turned away: kept in the top list.
  void NoteShed(const sockaddr_storage& from, Verdict why);

  size_t waiting() const { return waiting_; }
  // Clients from `from`'s source waiting now (tests).
  uint32_t WaitingFrom(const sockaddr_storage& from) const;

  // Worker thread: makes the top list visible to Snapshot().
  void Publish() { published_.Publish(std::span(top_).first(top_used_)); }
  // Any thread: the last published top list.
  std::vector<ShedClient> Snapshot() const { return published_.Snapshot(); }

 private:
  struct Slot {
    uint8_t key[16];
    uint8_t family = 0;
    uint32_t waiting = 0;  // 0: free
  };
  static bool KeyOf(const sockaddr_storage& from, uint8_t (&key)[16], uint8_t& family);
  static size_t Hash(const uint8_t (&key)[16], uint8_t family);

  size_t waiting_ = 0;
  std::array<Slot, kSlots> slots_{};
  std::array<ShedClient, kTopShed> top_{};
  size_t top_used_ = 0;
  Published<ShedClient> published_;
};

// The client share as a count: `share_percent` of `max_waiting`, at least 1; 0 when there is no
// per-client limit (share 100 or no cap).
size_t ClientMissLimit(size_t max_waiting, uint32_t share_percent);

// Merges the workers' top lists per client, largest first, and renders them as the "shed" member
// of GET /audit: "\"shed\":[{\"client\":\"10.0.0.1\",\"misses\":N,\"client_share\":N,
// \"error\":N}]" (IPv6 clients as "2001:db8:1:2::/64").
std::string RenderShedJson(const std::vector<std::vector<MissAdmission::ShedClient>>& per_worker);
// The same as lines of GET /audit.txt.
std::string RenderShedTable(const std::vector<std::vector<MissAdmission::ShedClient>>& per_worker);

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_MISS_ADMISSION_H_
