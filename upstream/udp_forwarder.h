// The UDP path of forwarding misses upstream, without c-ares: queries queued during a batch leave
// in one sendmmsg() per socket, replies arrive in recvmmsg() batches, and a reply is matched by ID
// and question in a fixed table. A truncated reply (TC=1), or one longer than the receive buffer,
// goes on to the zone's TcpForwarder, which also carries zones forwarded with --force-tcp.
//
// Why not c-ares for UDP too: per miss, c-ares 1.18 spent ~2,250 instructions expanding the two
// question names it compares (ares_expand_name, allocating), ~1,100 in ares_timeout() walking
// every query in flight after each send and reply, and one sendto/recvfrom per datagram; the miss
// scenario of bench/compare was 0.88x dnsdist (docs/benchmarks.md has the profile).
//
// Security (RFC 5452): every socket is connected, so the kernel drops datagrams from any other
// address; IDs are unpredictable (arc4random) and unique among queries in flight; a reply must
// repeat the question (case-insensitively) or it is ignored and the query keeps waiting. Each
// server gets `sockets_per_server` sockets with kernel-chosen random ports, and a query takes a
// random one: more port entropy than c-ares 1.18's single socket, less than a new port per query.
#ifndef NODEDNS_UPSTREAM_UDP_FORWARDER_H_
#define NODEDNS_UPSTREAM_UDP_FORWARDER_H_

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/counter.h"
#include "dns/socket_address.h"
#include "dns/wire.h"
#include "upstream/forward.h"
#include "upstream/health.h"
#include "upstream/tcp_forwarder.h"

namespace nodedns::upstream {

// The UDP forwarders' counters: X(member, metric name, help); one set per worker, as for TCP.
#define NODEDNS_UDP_FORWARDER_COUNTERS(X)                                                          \
  X(retries, "nodedns_upstream_udp_retries_total",                                                 \
    "Upstream UDP tries resent after a timeout or an ICMP error (next server, doubled timeout)")   \
  X(timeouts, "nodedns_upstream_udp_timeouts_total", "Upstream UDP queries that ran out of tries") \
  X(mismatched, "nodedns_upstream_udp_mismatched_total",                                           \
    "Upstream UDP replies ignored: unknown ID, another question, or unreadable (RFC 5452)")        \
  X(truncated, "nodedns_upstream_udp_truncated_total",                                             \
    "Upstream UDP replies with TC=1 or longer than 4096 bytes, re-asked over TCP")

// Written by the loop thread, read by the metrics thread.
struct UdpForwarderStats {
#define NODEDNS_DECLARE_COUNTER(member, metric, help) Counter member;
  NODEDNS_UDP_FORWARDER_COUNTERS(NODEDNS_DECLARE_COUNTER)
#undef NODEDNS_DECLARE_COUNTER
};

// Whether a connect() error says only that the kernel has no route to the address now
// (ENETUNREACH, EHOSTUNREACH, ENETDOWN, EADDRNOTAVAIL): a node still booting, an IPv6 resolver on
// a node without IPv6 routes. A forwarder starts anyway; that server's tries fail (and mark it
// down) until a route exists, and its next send then connects.
bool RouteMissing(int err);

// One forward zone's UDP upstreams on one worker. Loop thread only.
class UdpForwarder {
 public:
  struct Options {
    uint32_t timeout_ms = 2000;  // first round; doubled on each round over all servers
    int tries = 2;               // rounds over all servers
    int sockets_per_server = 4;
    ReplyObserver observer;  // optional
    // The zone's node-wide server health (not owned, outlives this; null: every query tries
    // every server in order). Queries skip servers marked down; tries report to it; a timer
    // probes down servers (health.h).
    UpstreamHealth* health = nullptr;
  };
  // `servers` in order of preference. `tcp` (not owned, same loop, outlives this) receives
  // truncated queries; `stats` (not owned) outlives this and may be shared.
  static absl::StatusOr<std::unique_ptr<UdpForwarder>> Create(
      uv_loop_t* loop, std::span<const SocketAddress> servers, Options options, TcpForwarder* tcp,
      UdpForwarderStats* stats);
  ~UdpForwarder();
  UdpForwarder(const UdpForwarder&) = delete;
  UdpForwarder& operator=(const UdpForwarder&) = delete;

  // Queues a copy of `query` (its ID is replaced) for the next Flush(); `cb(arg, ...)` runs exactly
  // once, possibly before Send returns.
  void Send(std::span<const uint8_t> query, ForwardCallback cb, void* arg);
  // Sends everything queued: one sendmmsg() per socket. Also runs on its own once per loop
  // iteration (a uv_check_t), so callers only call it to send before the iteration ends.
  void Flush();
  size_t in_flight() const { return by_id_.size(); }
  const UdpForwarderStats& stats() const { return stats_; }
  // Fails every query in flight with kShutdown and closes the handles; delete the object
  // only after the loop has run the close callbacks.
  void Shutdown();

 private:
  struct Socket;
  struct Slot {
    ForwardCallback cb = nullptr;
    void* arg = nullptr;
    uint32_t serial = 0;  // bumped on every use, so stale deadlines can be recognized
    uint16_t id = 0;
    uint16_t size = 0;
    uint16_t qname_length = 0;
    uint16_t attempt = 0;
    uint32_t socket = 0;      // index into sockets_ of the current try
    uint64_t sent_ns = 0;     // the current try's (with an observer only)
    uint64_t down_mask = 0;   // the servers marked down when sent: skipped by its tries
    uint16_t candidates = 0;  // the servers its tries go round (CandidateCount)
    int16_t probe = -1;       // a health probe of this server (one try), or -1
    bool in_use = false;
    uint8_t query[kMaxQuery];
  };
  struct Deadline {
    uint64_t at_ms;
    uint32_t slot;
    uint32_t serial;
    uint16_t attempt;
  };

  UdpForwarder(uv_loop_t* loop, Options options, TcpForwarder* tcp, UdpForwarderStats* stats);
  void Enqueue(std::span<const uint8_t> query, size_t qname_length, ForwardCallback cb, void* arg,
               int probe);
  static void OnProbeTimer(uv_timer_t* handle);
  static void OnProbeDone(void* arg, ForwardStatus status, std::span<const uint8_t> reply);
  uint16_t NewId();
  void Transmit(uint32_t slot);
  void Retry(uint32_t slot);
  struct Owner {
    ForwardCallback cb;
    void* arg;
  };
  // Takes the query out of the ID table and retires the slot's deadlines; the caller returns the
  // slot to free_ once nothing can still read it.
  Owner Detach(uint32_t slot);
  // Detaches the query, frees its slot and runs its callback.
  void Complete(uint32_t slot, ForwardStatus status, std::span<const uint8_t> reply);
  void ArmTimer(uint64_t at_ms);
  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnTimer(uv_timer_t* handle);
  void Receive(Socket& s);

  uv_loop_t* const loop_;
  const Options options_;
  TcpForwarder* const tcp_;
  size_t servers_ = 0;
  std::vector<std::unique_ptr<Socket>> sockets_;  // server i owns [i*K, i*K+K)
  std::vector<uint32_t> dirty_;                   // sockets with queued datagrams
  std::vector<std::unique_ptr<Slot>> slots_;      // stable addresses; reused through free_
  std::vector<uint32_t> free_;
  absl::flat_hash_map<uint16_t, uint32_t> by_id_;
  // One FIFO per round: within a round every try has the same timeout, so deadlines are sorted.
  std::vector<std::deque<Deadline>> deadlines_;
  uv_timer_t timer_;
  uint64_t timer_at_ = 0;  // when the timer fires, 0 if stopped
  uv_check_t check_;
  uv_idle_t idle_;  // active while datagrams are queued: the loop does not block before Flush
  uv_timer_t probe_timer_;  // with options_.health only
  struct ProbeArg {
    UdpForwarder* f;
    size_t server;
  };
  std::vector<ProbeArg> probe_args_;  // per server
  std::vector<uint8_t> probe_query_;
  uint16_t ids_[256];  // random IDs drawn 256 at a time (one getrandom per 256 queries)
  size_t ids_left_ = 0;
  bool shut_down_ = false;
  UdpForwarderStats& stats_;
  // Receive buffers: advertised EDNS size is 1232 (BuildUpstreamQuery), so 4 KiB holds any reply
  // a conforming server sends over UDP; a longer one (MSG_TRUNC) is asked again over TCP at once.
  static constexpr int kRecvBatch = 32;
  static constexpr size_t kRecvSize = 4096;
  std::unique_ptr<uint8_t[]> rx_;
};

}  // namespace nodedns::upstream

#endif  // NODEDNS_UPSTREAM_UDP_FORWARDER_H_
