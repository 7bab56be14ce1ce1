// A worker: one thread, one libuv loop, its own SO_REUSEPORT UDP and TCP sockets on every listen
// address, its own upstream forwarders and its own table of misses in flight. No query crosses
// threads; the only shared state is the cache. The UDP hot path (recvmmsg → parse → cache →
// sendmmsg) is in worker.cc, in Worker::OnUdpReadable and Worker::ServeUdpBatch.
#ifndef NODEDNS_PROXY_WORKER_H_
#define NODEDNS_PROXY_WORKER_H_

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "cache/response_cache.h"
#include "dns/wire.h"
#include "proxy/config.h"
#include "proxy/forward.h"
#include "proxy/metrics.h"
#include "proxy/reply.h"
#include "proxy/search_rewrite.h"
#include "proxy/tcp_forwarder.h"
#include "proxy/udp_forwarder.h"
#include "proxy/wasted_queries.h"

namespace nodedns::proxy {

// Sockets opened by the main thread for one worker (so that bind errors surface before start).
struct WorkerSockets {
  std::vector<int> udp;  // one per listen address
  std::vector<int> tcp;  // listening, one per listen address
};

// Opens a non-blocking socket bound with SO_REUSEPORT to `addr`: UDP, or TCP and listening.
absl::StatusOr<int> OpenSocket(const SocketAddress& addr, bool tcp);

// Public methods other than the constructor are thread-safe as noted; everything else runs on the
// worker's own thread.
class Worker {
 public:
  static constexpr int kBatch = 64;            // datagrams per recvmmsg/sendmmsg
  static constexpr size_t kUdpBufSize = 1536;  // per datagram; longer queries are FORMERR

  // `rewrite` is shared by all workers; null when --search-rewrite is off.
  Worker(int index, const ServeConfig& config, cache::ResponseCache& cache,
         SharedSearchRewrite* rewrite, WorkerSockets sockets);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the thread (main thread). Fails if the loop or the upstreams cannot be set up.
  absl::Status Start();
  // Asks the loop to finish (any thread); Join() waits for it (main thread).
  void Stop();
  void Join();
  const WorkerCounters& counters() const { return counters_; }
  // Any thread: the forwarders' counters summed over zones (zero before Start()).
  struct ForwarderTotals {
    uint64_t retries = 0, timeouts = 0, mismatched = 0, truncated = 0;
    uint64_t tcp_connections = 0, tcp_stalled = 0, tcp_retries = 0, tcp_timeouts = 0,
             tcp_failed = 0, tcp_mismatched = 0, tcp_truncated = 0, tcp_resent = 0;
    void Add(const ForwarderTotals& o);
  };
  ForwarderTotals forwarder_totals() const;
  // Any thread: the worker's last published top-K of search-path waste (updated every second).
  std::vector<WastedQueryTracker::ClientCount> WastedSnapshot() const { return wasted_.Snapshot(); }

 private:
  struct UdpSocket;
  struct TcpListener;
  struct TcpConn;
  struct Waiter;
  struct Pending;
  struct Rewrite;

  void Run();
  void EnsureOnline() {
    if (!thread_->qsbr().online()) thread_->Online();
  }
  uint64_t Now() const { return uv_now(loop_); }

  // UDP.
  static void OnUdpReadable(uv_poll_t* handle, int status, int events);
  void ServeUdpBatch(UdpSocket& s, int n);
  // Replies off the batch path (misses, rewrites) wait in an outbox and leave in one sendmmsg()
  // per socket, at the end of the loop iteration (or when the outbox is full).
  void SendUdp(int fd, const sockaddr_storage& to, socklen_t to_len, const uint8_t* data,
               size_t size);
  void FlushOutbox();

  // TCP.
  static void OnTcpConnection(uv_stream_t* server, int status);
  static void OnTcpAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnTcpRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  void HandleTcpQuery(TcpConn& c, std::span<const uint8_t> query);
  void WriteTcp(TcpConn& c, const uint8_t* data, size_t size);
  void CloseTcp(TcpConn& c);
  void ResumeTcpReads(TcpConn& c);

  // Misses and upstream.
  void StartMiss(const cache::CacheKey& key, const dns::QueryInfo& q,
                 std::span<const uint8_t> query, Waiter&& waiter);
  void Refresh(const cache::CacheKey& key, bool do_bit, bool cd_bit);
  Pending* NewPending(const cache::CacheKey& key);
  void SendUpstream(const cache::CacheKey& key, bool do_bit, bool cd_bit, Pending* p);
  static void OnUpstreamReply(void* arg, ForwardStatus status, std::span<const uint8_t> reply);
  void CompletePending(Pending* p, ForwardStatus status, std::span<const uint8_t> reply);
  void Reply(const Waiter& w, const uint8_t* data, size_t size, uint8_t rcode);
  // Counts an NXDOMAIN sent to `client` for `qname` if the name is under the cluster domain.
  void NoteNxDomain(const sockaddr_storage& client, std::span<const uint8_t> qname);
  // Finds the miss for `key` in flight or sends it; `waiter` then gets its reply.
  void JoinPending(const cache::CacheKey& key, bool do_bit, bool cd_bit, Waiter&& waiter);

  // Search-path rewriting (docs/search-rewrite.md). Slow path: only A/AAAA under svc.<zone>.
  // Is this question a search expansion of the client's own namespace (sets `ns`)?
  bool MayRewrite(const sockaddr_storage& client, std::span<const uint8_t> qname,
                  const dns::QueryInfo& q, uint64_t now, NamespaceName& ns);
  // A live rewritten answer for the question, copied into `body`; returns its size or 0.
  size_t LookupRewritten(std::span<const uint8_t> qname, uint16_t qtype, const NamespaceName& ns,
                         uint64_t now, std::span<uint8_t> body);
  // The client's question got NXDOMAIN (`original`): resolve the other search steps and reply.
  void StartRewrite(Waiter&& client, const NamespaceName& ns, std::span<const uint8_t> original);
  // Looks up or sends candidates [r->started, end).
  void StartCandidates(Rewrite* r, size_t end);
  void OnCandidate(uint64_t rewrite_id, size_t index, CandidateState state,
                   std::span<const uint8_t> response);
  void EvaluateRewrite(Rewrite* r);
  void FinishRewrite(Rewrite* r, const Decision& d);
  // Shows a reply to the learner; callers check RewriteGate::ForReply first.
  void ObserveReply(const sockaddr_storage& client, std::span<const uint8_t> qname, uint16_t qtype,
                    uint8_t rcode);

  const int index_;
  const ServeConfig& config_;
  const bool chaos_enabled_;  // --chaos-text set: CH TXT identity queries get an answer
  cache::ResponseCache& cache_;
  SharedSearchRewrite* const rewrite_;
  WorkerSockets sockets_;
  WorkerCounters counters_;
  const TtlLimits ttl_limits_;
  std::unique_ptr<cache::CacheThread> thread_;
  uv_loop_t* loop_ = nullptr;
  uv_async_t stop_async_;
  uv_prepare_t prepare_;
  uv_timer_t purge_timer_;
  uv_timer_t publish_timer_;
  WastedQueryTracker wasted_;
  std::thread os_thread_;
  std::vector<std::unique_ptr<UdpSocket>> udp_;
  std::vector<std::unique_ptr<TcpListener>> tcp_listeners_;
  // Per config_.zones entry: the TCP forwarder (--force-tcp zones, and UDP replies with TC=1),
  // and the UDP forwarder (null for --force-tcp zones). Declared after tcp_forwarders_: destroyed
  // first.
  std::vector<std::unique_ptr<TcpForwarder>> tcp_forwarders_;
  std::vector<std::unique_ptr<UdpForwarder>> forwarders_;
  // Keyed by a view into the Pending's own CacheKey (stable: Pendings live on the heap).
  absl::flat_hash_map<absl::string_view, std::unique_ptr<Pending>> pending_;
  std::vector<std::unique_ptr<Pending>> pending_pool_;
  absl::flat_hash_map<uint64_t, TcpConn*> tcp_conns_;
  uint64_t next_conn_id_ = 1;
  absl::flat_hash_map<uint64_t, Rewrite*> rewrites_;  // deleted in their timer's close callback
  uint64_t next_rewrite_id_ = 1;
  bool stopping_ = false;

  // Batch state for the UDP hot path, allocated once.
  struct Batch;
  std::unique_ptr<Batch> batch_;
  struct Outbox;
  std::unique_ptr<Outbox> outbox_;
  uv_check_t outbox_check_;
  std::vector<uint8_t> scratch_;  // 64 KiB for replies built off the hot path
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_WORKER_H_
