// The TCP front end of a worker (RFC 7766): its listening sockets and client connections, the
// 2-byte length framing (TcpFramer), pipelining with replies in completion order, the per-worker
// connection cap (the idlest connection makes room), the per-connection in-flight cap and reply
// backlog (reading pauses above either), and the idle timeout, which a message trickling in does
// not restart. Each framed query goes to QueryPath::Serve; later replies come back through
// SendReply.
#ifndef NODEDNS_PROXY_TCP_FRONTEND_H_
#define NODEDNS_PROXY_TCP_FRONTEND_H_

#include <uv.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "proxy/client.h"
#include "proxy/query_path.h"
#include "proxy/tcp_framing.h"
#include "proxy/worker_context.h"

namespace nodedns::proxy {

class TcpFrontend : public ReplySink {
 public:
  TcpFrontend(WorkerContext& ctx, QueryPath& path);
  ~TcpFrontend();
  TcpFrontend(const TcpFrontend&) = delete;
  TcpFrontend& operator=(const TcpFrontend&) = delete;

  // Starts accepting on the listening sockets `fds` (owned from now on: closed by Stop()).
  absl::Status Start(std::span<const ListenFd> fds);
  // A successor accepts on the same listening sockets now: closes this process's copies, reads
  // no more from the connections, answers the queries they already sent (those buffered too),
  // then closes each one cleanly (FIN after the last reply, RFC 7766 §6.2.3).
  void Drain();
  // No connection left.
  bool Idle() const { return conns_.empty() && shutting_down_.empty(); }
  // Closes the listeners and every connection.
  void Stop();
  // A later reply for a query of connection client.conn_id (gone: dropped).
  void SendReply(const Client& client, std::span<const uint8_t> reply) override;

 private:
  struct Listener;
  struct Conn;
  static void OnConnection(uv_stream_t* server, int status);
  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  void HandleQuery(Conn& c, std::span<const uint8_t> query);
  void Write(Conn& c, std::span<const uint8_t> reply);
  void Close(Conn& c);
  // Close() once the writes queued on `c` have left (uv_shutdown, then a FIN): for a client that
  // closed its side or sent a runt, and for a drain. The idle timer keeps running: a client that
  // does not read them within --tcp-idle-timeout of its last reply loses them.
  void CloseAfterWrites(Conn& c);
  void CloseHandles(Conn& c);
  void ResumeReads(Conn& c);
  // The connection with nothing in flight whose last query or reply is the oldest, or null.
  Conn* Idlest();
  // A whole query or a reply: restarts the idle clock.
  void Touch(Conn& c);

  WorkerContext& ctx_;
  QueryPath& path_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  absl::flat_hash_map<uint64_t, Conn*> conns_;
  uint64_t next_conn_id_ = 1;
  bool draining_ = false;
  absl::flat_hash_set<Conn*> shutting_down_;  // CloseAfterWrites waiting for their writes
  bool listeners_closed_ = false;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_TCP_FRONTEND_H_
