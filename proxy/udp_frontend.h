// The UDP front end of a worker: its SO_REUSEPORT sockets, the recvmmsg batch and the replies'
// sendmmsg. A cache hit, start to end, is here and in QueryPath::Serve: OnReadable (recvmmsg) →
// ServeBatch (parse, classify, key, two prefetch passes, Serve) → sendmmsg. No allocation, no
// lock, no syscall per packet. Replies that come later (misses, rewrites) wait in an outbox that
// leaves in one sendmmsg per socket at the end of the loop iteration.
#ifndef NODEDNS_PROXY_UDP_FRONTEND_H_
#define NODEDNS_PROXY_UDP_FRONTEND_H_

#include <uv.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "proxy/client.h"
#include "proxy/miss_table.h"
#include "proxy/overload.h"
#include "proxy/query_path.h"
#include "proxy/worker_context.h"

namespace nodedns::proxy {

class UdpFrontend : public ReplySink {
 public:
  static constexpr int kBatch = 64;            // datagrams per recvmmsg/sendmmsg
  static constexpr size_t kUdpBufSize = 1536;  // per datagram; longer queries are FORMERR

  UdpFrontend(WorkerContext& ctx, QueryPath& path, MissTable& misses);
  ~UdpFrontend();
  UdpFrontend(const UdpFrontend&) = delete;
  UdpFrontend& operator=(const UdpFrontend&) = delete;

  // Starts reading the bound sockets `fds` (not owned) on the worker's loop.
  void Start(std::span<const ListenFd> fds);
  // Stops reading (a successor reads the same sockets now); later replies still leave through
  // them.
  void StopReading();
  // Stops reading, sends what the outbox holds, closes the handles.
  void Stop();
  // A later reply: into the outbox.
  void SendReply(const Client& client, std::span<const uint8_t> reply) override;

 private:
  struct Socket;
  struct Batch;
  struct Outbox;
  static void OnReadable(uv_poll_t* handle, int status, int events);
  void ServeBatch(Socket& s, int n);
  void MeasureQueueDelay(Socket& s, int n);
  void FlushOutbox();

  WorkerContext& ctx_;
  QueryPath& path_;
  MissTable& misses_;
  std::vector<std::unique_ptr<Socket>> sockets_;
  std::unique_ptr<Batch> batch_;  // allocated once
  std::unique_ptr<Outbox> outbox_;
  uv_check_t outbox_check_;
  // Active while the outbox holds replies: a reply made by a timer callback (a stale answer on
  // the client response timer, an upstream timeout's SERVFAIL) would otherwise wait for the
  // loop's next wake-up, which the check phase follows; with it the coming poll does not block.
  uv_idle_t outbox_idle_;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_UDP_FRONTEND_H_
