// Upstream forwarding over TCP through c-ares (--force-tcp zones, and UDP replies with TC=1 from
// the UdpForwarder), driven by a worker's libuv loop: c-ares tells which sockets
// it wants watched (socket-state callback → uv_poll_t), and one uv_timer_t is re-armed from
// ares_timeout() after every send and every socket event — the pattern of Node's cares_wrap.cc.
//
// What c-ares 1.18 does and does not do, checked on the wire: ares_send() sends the buffer's own ID
// unchanged (all queries would leave with ID 0) and uses one UDP socket, i.e. one source port, per
// server. It matches replies by ID and then by question (same_questions), retries a truncated UDP
// reply over TCP by itself, and with ARES_FLAG_NOCHECKRESP hands SERVFAIL/REFUSED replies to us.
// So Send() writes a random ID (arc4random: getrandom-backed) that no other query in flight on the
// channel uses, and the proxy re-checks the question of every reply. Per-query source ports need
// c-ares 1.20 (ARES_OPT_UDP_MAX_QUERIES); see docs/architecture.md.
#ifndef NODEDNS_PROXY_UPSTREAM_H_
#define NODEDNS_PROXY_UPSTREAM_H_

#include <ares.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <span>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "proxy/config.h"

namespace nodedns::proxy {

// One c-ares channel for one forward zone on one worker. Loop thread only.
class Upstream {
 public:
  // c-ares's own callback type: status is an ARES_* code; abuf/alen the reply (valid only during
  // the call) when ARES_SUCCESS.
  using Callback = ares_callback;

  // `tcp_only`: every query over TCP (as for --force-tcp zones); used for the TCP fallback of
  // the UDP forwarder, which has already seen TC=1.
  static absl::StatusOr<std::unique_ptr<Upstream>> Create(uv_loop_t* loop, const ForwardZone& zone,
                                                          uint32_t timeout_ms, int tries,
                                                          bool tcp_only = false);
  ~Upstream();
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  // Sends a copy of `query` with a fresh random ID; `cb(arg, ...)` runs exactly once, possibly
  // before Send returns (c-ares fails some sends at once).
  void Send(std::span<const uint8_t> query, Callback cb, void* arg);
  size_t in_flight() const { return ids_in_flight_.size(); }
  // Fails every query in flight with ARES_EDESTRUCTION and closes the handles. The object may be
  // deleted once the loop has run the close callbacks (i.e. after uv_run returns).
  void Shutdown();

 private:
  struct Poll;
  struct Query;
  static void OnReply(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  explicit Upstream(uv_loop_t* loop);
  static void OnSocketState(void* data, ares_socket_t fd, int readable, int writable);
  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnTimer(uv_timer_t* handle);
  void RearmTimer();

  uv_loop_t* loop_;
  ares_channel channel_ = nullptr;
  uv_timer_t timer_;
  bool shut_down_ = false;
  absl::flat_hash_map<ares_socket_t, Poll*> polls_;
  absl::flat_hash_set<uint16_t> ids_in_flight_;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_UPSTREAM_H_
