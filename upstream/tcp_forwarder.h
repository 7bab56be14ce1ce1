// The TCP path of forwarding misses upstream (RFC 7766): zones forwarded with --force-tcp (the
// cluster zone to CoreDNS in node-local setups) and UDP replies that came back with TC=1.
//
// Each server gets a small pool of connections; queries are pipelined on them, each with its own
// random ID, and replies are matched by ID and question in any order (RFC 7766 §6.2.1.1). What a
// node component needs from this path is that one bad connection never holds other queries:
//  - A connection on which nothing has arrived for `stall_ms` while queries wait on it gets no new
//    query: they go to another connection, opened if need be (up to `connections_per_server`).
//  - When a query's try times out and nothing has arrived on its connection since it was written,
//    the connection is abandoned: closed, counted (`stalled`), and every other query on it is
//    written again on another connection, keeping its deadline. The timed-out query moves on to
//    its next try (next server, doubled timeout) like a UDP try does.
//  - A connection the server closes gives its unanswered queries to another connection (servers
//    may close idle connections at any time, RFC 7766 §6.2.3); one closed or refused before it
//    answered anything costs those queries a try, so a server that accepts and hangs up at once
//    cannot make a query loop.
//  - A reply with TC=1 over TCP is unusable (kFailed): there is nothing larger to retry with.
// Why not c-ares: c-ares 1.18 queues every query of a channel on its one TCP connection, so one
// stalled connection makes the zone fail until the server closes it (~30 s in the test that found
// it), and it returns TC=1 replies over TCP as answers.
//
// Security (RFC 5452): IDs are unpredictable (arc4random) and unique among the queries in flight
// on this forwarder, a new one for every try; a reply must come on the connection its try was
// written to and repeat the question, or it is ignored.
#ifndef NODEDNS_UPSTREAM_TCP_FORWARDER_H_
#define NODEDNS_UPSTREAM_TCP_FORWARDER_H_

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

namespace nodedns::upstream {

using dns::SocketAddress;

// The TCP forwarders' counters: X(member, metric name, help). Every worker keeps one set, shared
// by its zones' forwarders; the metrics endpoint sums them (proxy/metrics.h).
#define NODEDNS_TCP_FORWARDER_COUNTERS(X)                                                          \
  X(connections, "nodedns_upstream_tcp_connections_total", "Upstream TCP connections opened")      \
  X(stalled, "nodedns_upstream_tcp_stalled_total",                                                 \
    "Upstream TCP connections abandoned: a try timed out with nothing received since it was "      \
    "written")                                                                                     \
  X(resent, "nodedns_upstream_tcp_resent_total",                                                   \
    "Upstream TCP queries written again on another connection after theirs closed or stalled")     \
  X(retries, "nodedns_upstream_tcp_retries_total",                                                 \
    "Upstream TCP tries sent after a timeout or a refused connection (next server)")               \
  X(timeouts, "nodedns_upstream_tcp_timeouts_total", "Upstream TCP queries that ran out of tries") \
  X(failed, "nodedns_upstream_tcp_failed_total",                                                   \
    "Upstream TCP queries with no usable reply: refused, closed, or TC=1 over TCP")                \
  X(mismatched, "nodedns_upstream_tcp_mismatched_total",                                           \
    "Upstream TCP replies ignored: unknown ID, another question, or late")                         \
  X(truncated, "nodedns_upstream_tcp_truncated_total", "Upstream TCP replies with TC=1 (unusable)")

// Written by the loop thread, read by the metrics thread.
struct TcpForwarderStats {
#define NODEDNS_DECLARE_COUNTER(member, metric, help) Counter member;
  NODEDNS_TCP_FORWARDER_COUNTERS(NODEDNS_DECLARE_COUNTER)
#undef NODEDNS_DECLARE_COUNTER
};

// One forward zone's TCP upstreams on one worker. Loop thread only.
class TcpForwarder {
 public:
  struct Options {
    uint32_t timeout_ms = 2000;  // first round; doubled on each round over all servers
    int tries = 2;               // rounds over all servers
    int connections_per_server = 4;
    int inflight_per_connection = 32;
    // Nothing received for this long while queries wait: no new query on that connection.
    uint32_t stall_ms = 500;
    uint32_t idle_ms = 10'000;  // connections without queries are closed after this
    ReplyObserver observer;     // optional
    // The zone's node-wide server health (not owned, outlives this; null: every query tries
    // every server in order); queries skip servers marked down. With `health_reports`, tries
    // report to it and a timer probes down servers (a force_tcp zone); without, it is followed
    // only (a UDP zone's TC=1 fallback, whose TCP troubles say nothing of UDP service).
    UpstreamHealth* health = nullptr;
    bool health_reports = true;
  };
  // `servers` in order of preference; `stats` (not owned) outlives this and may be shared by
  // other forwarders on the same loop.
  static absl::StatusOr<std::unique_ptr<TcpForwarder>> Create(
      uv_loop_t* loop, std::span<const SocketAddress> servers, Options options,
      TcpForwarderStats* stats);
  ~TcpForwarder();
  TcpForwarder(const TcpForwarder&) = delete;
  TcpForwarder& operator=(const TcpForwarder&) = delete;

  // Sends a copy of `query` (its ID is replaced). `cb(arg, ...)` runs exactly once, possibly
  // before Send returns.
  void Send(std::span<const uint8_t> query, ForwardCallback cb, void* arg);
  size_t in_flight() const { return by_id_.size(); }
  size_t connections() const;
  const TcpForwarderStats& stats() const { return stats_; }
  // Fails every query in flight with kShutdown and closes the handles; delete the object only
  // after the loop has run the close callbacks.
  void Shutdown();

 private:
  struct Conn;
  struct Query {
    ForwardCallback cb = nullptr;
    void* arg = nullptr;
    uint32_t serial = 0;  // this try's, to recognize stale deadlines and queue entries
    uint16_t id = 0;
    uint16_t size = 0;
    uint16_t qname_length = 0;
    uint16_t attempt = 0;
    Conn* conn = nullptr;  // the connection of this try; null while waiting for one
    bool written = false;  // handed to the connection's stream (else: waiting for connect)
    uint64_t written_ms = 0;
    uint64_t written_ns = 0;       // with an observer only
    uint64_t down_mask = 0;        // the servers marked down when sent: skipped by its tries
    uint16_t candidates = 1;       // the servers its tries go round (CandidateCount)
    int16_t probe = -1;            // a health probe of this server (one try), or -1
    uint8_t frame[2 + kMaxQuery];  // length prefix and message
  };
  struct Ref {  // a query's try, recognized by ID and serial: the query may be gone
    uint16_t id;
    uint32_t serial;
  };
  struct Deadline {
    uint64_t at_ms;
    Ref ref;
  };
  enum class CloseReason : uint8_t { kRefused, kClosed, kProtocol, kAbandoned, kIdle };

  TcpForwarder(uv_loop_t* loop, Options options, TcpForwarderStats* stats);
  uint16_t NewId();
  void Start(std::span<const uint8_t> query, size_t qname_length, ForwardCallback cb, void* arg,
             int probe);
  static void OnProbeTimer(uv_timer_t* handle);
  static void OnProbeDone(void* arg, ForwardStatus status, std::span<const uint8_t> reply);
  bool Reports() const { return options_.health != nullptr && options_.health_reports; }
  Query* Find(Ref ref) const;
  void StartTry(std::unique_ptr<Query> q);
  void Assign(Query* q);
  Conn* PickConnection(size_t server);
  Conn* Open(size_t server);
  void Write(Conn* c, Query* q);
  void Drain(size_t server);
  void Close(Conn* c, CloseReason why);
  // The try of `q` is over without an answer: next try, or the end with `final_status`.
  void NextTry(Query* q, ForwardStatus final_status);
  // Takes `q` out of its connection and the ID table.
  std::unique_ptr<Query> Detach(Query* q);
  void Complete(Query* q, ForwardStatus status, std::span<const uint8_t> reply);
  void HandleReply(Conn* c, std::span<const uint8_t> msg);
  void ArmTimer(uint64_t at_ms);
  static void OnConnect(uv_connect_t* req, int status);
  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void OnTimer(uv_timer_t* handle);
  static void OnSweep(uv_timer_t* handle);
  uint64_t Now() const { return uv_now(loop_); }
  bool Stalled(const Conn& c, uint64_t now) const;
  size_t ServerOf(const Query& q) const {
    return q.probe >= 0 ? static_cast<size_t>(q.probe)
                        : Candidate(q.down_mask, servers_.size(), q.attempt % q.candidates);
  }

  uv_loop_t* const loop_;
  const Options options_;
  std::vector<SocketAddress> servers_;
  std::vector<std::vector<Conn*>> conns_;  // per server, open or connecting
  std::vector<std::deque<Ref>> waiting_;   // per server: queries with no connection to take them
  absl::flat_hash_map<uint16_t, std::unique_ptr<Query>> by_id_;
  // One FIFO per round: within a round every try has the same timeout, so deadlines are sorted.
  std::vector<std::deque<Deadline>> deadlines_;
  uv_timer_t timer_;
  uint64_t timer_at_ = 0;   // when the timer fires, 0 if stopped
  uv_timer_t sweep_;        // closes idle connections
  uv_timer_t probe_timer_;  // with Reports() only
  struct ProbeArg {
    TcpForwarder* f;
    size_t server;
  };
  std::vector<ProbeArg> probe_args_;  // per server
  std::vector<uint8_t> probe_query_;
  uint32_t next_serial_ = 0;
  bool shut_down_ = false;
  TcpForwarderStats& stats_;
};

}  // namespace nodedns::upstream

#endif  // NODEDNS_UPSTREAM_TCP_FORWARDER_H_
