// TCP framing and connection limits; see tcp_frontend.h.
#include "proxy/tcp_frontend.h"

#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace nodedns::proxy {

struct TcpFrontend::Listener {
  uv_tcp_t handle;
  TcpFrontend* frontend;
  uint8_t server;  // index of its listen address
};

struct TcpFrontend::Conn {
  uv_tcp_t handle;
  uv_timer_t idle;
  TcpFrontend* frontend;
  uint64_t id;
  uint8_t server;  // index of the listen address it came to
  TcpFramer in;
  sockaddr_storage peer{};
  uint64_t last_active = 0;  // uv_now of the accept, the last whole query or the last reply
  size_t inflight = 0;
  bool reading = true;
  bool eof = false;
  bool closing = false;
  bool in_resume = false;
  bool handles_closed = false;
  int open_handles = 2;
};

namespace {

struct WriteReq {
  uv_write_t req;
  std::unique_ptr<uint8_t[]> data;
};

// Reply bytes a connection may have waiting for its client before reading pauses: one large
// reply, or hundreds of usual ones. A client that reads nothing thus leaves at most this, one
// reply that crossed it and the replies of its queries in flight (tcp_max_inflight × 64 KiB at
// worst) in the write queue, then its connection is closed when the idle timeout passes without
// progress.
constexpr size_t kMaxQueuedReplyBytes = 64 * 1024;

size_t Queued(const uv_tcp_t& handle) {
  return uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&handle));
}

}  // namespace

TcpFrontend::TcpFrontend(WorkerContext& ctx, QueryPath& path) : ctx_(ctx), path_(path) {}
TcpFrontend::~TcpFrontend() = default;

absl::Status TcpFrontend::Start(std::span<const ListenFd> fds) {
  for (const ListenFd& fd : fds) {
    auto l = std::make_unique<Listener>();
    l->frontend = this;
    l->server = fd.server;
    uv_tcp_init(ctx_.loop, &l->handle);
    l->handle.data = l.get();
    if (int rc = uv_tcp_open(&l->handle, fd.fd); rc != 0) {
      return absl::InternalError(absl::StrCat("uv_tcp_open: ", uv_strerror(rc)));
    }
    if (int rc = uv_listen(reinterpret_cast<uv_stream_t*>(&l->handle), 1024, &OnConnection);
        rc != 0) {
      return absl::InternalError(absl::StrCat("uv_listen: ", uv_strerror(rc)));
    }
    listeners_.push_back(std::move(l));
  }
  return absl::OkStatus();
}

void TcpFrontend::Drain() {
  draining_ = true;
  // Closing this process's descriptor leaves the socket, and the connections queued on it, to
  // the successor, which holds the same socket.
  for (auto& l : listeners_) uv_close(reinterpret_cast<uv_handle_t*>(&l->handle), nullptr);
  listeners_closed_ = true;
  std::vector<Conn*> conns;
  for (auto& [id, c] : conns_) conns.push_back(c);
  for (Conn* c : conns) {
    // As if the client had closed its side: what is buffered is served, nothing more is read.
    c->eof = true;
    ResumeReads(*c);
  }
}

void TcpFrontend::Stop() {
  if (!listeners_closed_) {
    for (auto& l : listeners_) uv_close(reinterpret_cast<uv_handle_t*>(&l->handle), nullptr);
  }
  draining_ = false;  // stopping: nothing more will be written
  // A client that reads nothing must not hold the worker up: closing cancels the shutdown.
  for (Conn* c : shutting_down_) CloseHandles(*c);
  shutting_down_.clear();
  std::vector<Conn*> conns;
  for (auto& [id, c] : conns_) conns.push_back(c);
  for (Conn* c : conns) Close(*c);
}

void TcpFrontend::OnConnection(uv_stream_t* server, int status) {
  const Listener* listener = static_cast<Listener*>(server->data);
  TcpFrontend* f = listener->frontend;
  if (status < 0 || f->ctx_.stopping) return;
  auto* c = new Conn;
  c->frontend = f;
  c->id = f->next_conn_id_++;
  c->server = listener->server;
  uv_tcp_init(f->ctx_.loop, &c->handle);
  uv_timer_init(f->ctx_.loop, &c->idle);
  c->handle.data = c;
  c->idle.data = c;
  c->last_active = uv_now(f->ctx_.loop);
  // At the limit the connection idle the longest makes room (RFC 7766 §10 allows closing idle
  // connections or refusing new ones): refusing would let clients that hold connections open
  // doing nothing (or trickling bytes, which are not activity) lock every other client out of
  // TCP until their idle timeouts. Only when every connection has queries in flight is the new
  // one refused.
  if (f->conns_.size() >= f->ctx_.config->tcp_max_connections) {
    if (Conn* victim = f->Idlest()) {
      f->ctx_.counters.tcp_closed_evicted.Inc();
      f->Close(*victim);
    }
  }
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->handle)) != 0 ||
      f->conns_.size() >= f->ctx_.config->tcp_max_connections) {
    f->ctx_.counters.tcp_rejected.Inc();
    f->Close(*c);
    return;
  }
  int peer_len = sizeof c->peer;
  uv_tcp_getpeername(&c->handle, reinterpret_cast<sockaddr*>(&c->peer), &peer_len);
  // --allow: closed at accept rather than REFUSED per query, so that an outsider holds no
  // connection slot, no read buffer and no idle timer; a stub treats the closed connection as a
  // failed server and moves on, as it would on REFUSED.
  if (!f->ctx_.config->allow.Allows(c->peer)) [[unlikely]] {
    f->ctx_.counters.not_allowed_tcp.Inc();
    f->Close(*c);
    return;
  }
  f->ctx_.counters.tcp_connections.Inc();
  f->conns_.emplace(c->id, c);
  uv_tcp_nodelay(&c->handle, 1);
  // The clock restarts on a whole query, a reply, and the first byte of a message; not on the
  // bytes after it, so that a message must arrive whole within the timeout of its first byte
  // (RFC 7766 §6.2.3): a client trickling a byte a second, or stalling after a length prefix,
  // cannot hold the connection past one timeout.
  auto on_idle = [](uv_timer_t* t) {
    auto* conn = static_cast<Conn*>(t->data);
    WorkerCounters& counters = conn->frontend->ctx_.counters;
    if (conn->closing) {
      // Closing after its writes (CloseAfterWrites), and the client has not read them within a
      // timeout of its last reply: give up on them.
      counters.tcp_closed_unread.Inc();
      conn->frontend->shutting_down_.erase(conn);
      conn->frontend->CloseHandles(*conn);
      return;
    }
    // Queries still waiting for upstream keep the connection; their replies end within the
    // upstream timeout and restart the clock.
    if (conn->inflight != 0) return;
    if (Queued(conn->handle) != 0) {
      counters.tcp_closed_unread.Inc();
    } else if (conn->in.buffered() != 0) {
      counters.tcp_closed_incomplete.Inc();
    } else {
      counters.tcp_closed_idle.Inc();
    }
    conn->frontend->Close(*conn);
  };
  const uint64_t idle = f->ctx_.config->tcp_idle_timeout_ms;
  uv_timer_start(&c->idle, on_idle, idle, idle);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->handle), &OnAlloc, &OnRead);
}

void TcpFrontend::OnAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  // Read into the worker's scratch space; OnRead copies what it keeps.
  std::vector<uint8_t>& s = static_cast<Conn*>(handle->data)->frontend->ctx_.scratch;
  *buf = uv_buf_init(reinterpret_cast<char*>(s.data()), static_cast<unsigned>(s.size()));
}

void TcpFrontend::OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* conn = static_cast<Conn*>(stream->data);
  TcpFrontend* f = conn->frontend;
  if (nread == UV_EOF) {  // the client is done sending: answer what is in flight, then close
    conn->eof = true;
    uv_read_stop(stream);
    conn->reading = false;
    f->ResumeReads(*conn);
    return;
  }
  if (nread < 0) {  // reset or error: nothing more can be written either
    f->Close(*conn);
    return;
  }
  if (nread == 0) return;
  if (conn->in.buffered() == 0) uv_timer_again(&conn->idle);  // a new message begins
  conn->in.Append({reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(nread)});
  f->ResumeReads(*conn);
}

TcpFrontend::Conn* TcpFrontend::Idlest() {
  Conn* idlest = nullptr;
  uint64_t oldest = std::numeric_limits<uint64_t>::max();
  for (auto& [id, c] : conns_) {
    if (c->inflight == 0 && !c->closing && c->last_active < oldest) {
      idlest = c;
      oldest = c->last_active;
    }
  }
  return idlest;
}

void TcpFrontend::Touch(Conn& c) {
  c.last_active = uv_now(ctx_.loop);
  uv_timer_again(&c.idle);
}

void TcpFrontend::ResumeReads(Conn& c) {
  // A reply completing synchronously inside the loop below (a forwarder can fail a send at once)
  // must not re-enter it: the outer call sees the updated counts.
  if (c.in_resume) return;
  c.in_resume = true;
  const size_t max_inflight = ctx_.config->tcp_max_inflight;
  // Serve every whole message buffered, up to the in-flight limit and while the client keeps
  // reading its replies. Reading resumes only when this loop ran out of whole messages, so the
  // buffer holds at most a partial message plus one read (2 × 64 KiB).
  while (!c.closing && c.inflight < max_inflight && Queued(c.handle) < kMaxQueuedReplyBytes) {
    std::span<const uint8_t> query;
    const TcpFramer::Next next = c.in.Peek(query);
    if (next == TcpFramer::Next::kIncomplete) break;
    if (next == TcpFramer::Next::kRunt) {
      // No ID to answer with, and no frame boundary to resync on: as if the client had closed
      // its side there, the queries before it are answered, nothing after it is read, and the
      // connection closes (Unbound resets it at once, dropping those replies; dnsdist answers
      // them, then closes).
      ctx_.counters.tcp_closed_runt.Inc();
      c.in.Clear();
      c.eof = true;
      break;
    }
    c.in.Pop();  // `query` stays valid until Compact below
    Touch(c);
    HandleQuery(c, query);
  }
  c.in_resume = false;
  if (c.closing) return;
  std::span<const uint8_t> next;
  const bool more = c.in.Peek(next) != TcpFramer::Next::kIncomplete;  // a message left unserved
  c.in.Compact();
  const bool full = c.inflight >= max_inflight;
  const bool backlog = Queued(c.handle) >= kMaxQueuedReplyBytes;
  const bool want = !c.eof && !full && !backlog;
  if (want && !c.reading) {
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c.handle), &OnAlloc, &OnRead);
  }
  if (!want && c.reading) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&c.handle));
    if (full) {
      ctx_.counters.tcp_paused_inflight.Inc();
    } else if (backlog) {
      ctx_.counters.tcp_paused_unread.Inc();
    }
  }
  c.reading = want;
  // RFC 7766 §6.2.4: every query read gets its reply before the FIN. Replies still queued for a
  // slow reader go out first; the idle timer bounds how long that may take.
  if (c.eof && c.inflight == 0 && !more) CloseAfterWrites(c);
}

void TcpFrontend::HandleQuery(Conn& c, std::span<const uint8_t> query) {
  ctx_.EnsureOnline();
  ctx_.counters.queries_tcp.Inc();
  dns::QueryInfo q;
  const dns::QueryStatus status = dns::ParseQuery(query, q);
  LocalAnswer local = LocalAnswer::kNone;
  cache::CacheKey key;
  if (status == dns::QueryStatus::kOk) {
    local = ClassifyQuery(query, q, path_.chaos_enabled());
    if (local == LocalAnswer::kNone) {
      key.Assign(query.subspan(dns::kHeaderSize, q.qname_length), q.qtype, q.qclass, q.do_bit,
                 q.cd());
    }
  }
  const Request r{.query = query,
                  .q = q,
                  .status = status,
                  .local = local,
                  .key = key,
                  .from = c.peer,
                  .from_len = sizeof c.peer,
                  .sink = this,
                  .tcp = true,
                  .udp_fd = -1,
                  .conn_id = c.id,
                  .server = c.server};
  if (ctx_.coredns) ctx_.batch_ns = uv_hrtime();
  // A TCP reply may be up to 64 KiB: built in the scratch buffer. (It is also the read buffer,
  // but the query was already copied into c.in.) Counted in flight before Serve: a miss can
  // complete (and be written) before Serve returns.
  ++c.inflight;
  size_t size = 0;
  const Verdict v = path_.Serve(r, ctx_.scratch, size, ctx_.Now());
  if (v == Verdict::kPending) return;
  --c.inflight;
  if (v == Verdict::kReply) Write(c, {ctx_.scratch.data(), size});
  ctx_.FlushDurations();
}

void TcpFrontend::SendReply(const Client& client, std::span<const uint8_t> reply) {
  auto it = conns_.find(client.conn_id);
  if (it == conns_.end()) return;  // the client went away
  Conn& c = *it->second;
  Write(c, reply);
  --c.inflight;
  Touch(c);
  ResumeReads(c);
}

void TcpFrontend::Write(Conn& c, std::span<const uint8_t> reply) {
  if (c.closing) return;
  auto* req = new WriteReq;
  req->data.reset(new uint8_t[reply.size() + 2]);
  dns::Put16(req->data.get(), static_cast<uint16_t>(reply.size()));
  std::memcpy(req->data.get() + 2, reply.data(), reply.size());
  req->req.data = req;
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(req->data.get()),
                             static_cast<unsigned>(reply.size() + 2));
  // libuv writes at once what the socket takes; the rest waits in the handle's write queue
  // (Queued), which ResumeReads keeps near kMaxQueuedReplyBytes by not reading more queries. Once
  // the client has read enough, the completed write resumes reading.
  auto on_written = [](uv_write_t* r, int status) {
    auto* conn = static_cast<Conn*>(r->handle->data);
    delete static_cast<WriteReq*>(r->data);
    if (status == 0 && !conn->closing && !conn->reading &&
        Queued(conn->handle) < kMaxQueuedReplyBytes) {
      conn->frontend->ResumeReads(*conn);
    }
  };
  const int rc =
      uv_write(&req->req, reinterpret_cast<uv_stream_t*>(&c.handle), &buf, 1, on_written);
  if (rc != 0) {
    delete req;
    Close(c);
  }
}

void TcpFrontend::CloseAfterWrites(Conn& c) {
  if (c.closing) return;
  struct Shutdown {
    uv_shutdown_t req;
    TcpFrontend* frontend;
    Conn* conn;
  };
  auto* s = new Shutdown{{}, this, &c};
  shutting_down_.insert(&c);
  // closing stops every other path from touching the connection; the shutdown callback closes
  // the handles once the queued replies (and the FIN) are out.
  c.closing = true;
  conns_.erase(c.id);
  if (c.reading) uv_read_stop(reinterpret_cast<uv_stream_t*>(&c.handle));
  c.reading = false;
  const int rc =
      uv_shutdown(&s->req, reinterpret_cast<uv_stream_t*>(&c.handle), [](uv_shutdown_t* req, int) {
        auto* sh = reinterpret_cast<Shutdown*>(req);
        sh->frontend->shutting_down_.erase(sh->conn);
        sh->frontend->CloseHandles(*sh->conn);
        delete sh;
      });
  if (rc != 0) {
    shutting_down_.erase(&c);
    delete s;
    CloseHandles(c);
  }
}

void TcpFrontend::Close(Conn& c) {
  if (draining_) {
    CloseAfterWrites(c);
    return;
  }
  if (c.closing) return;
  c.closing = true;
  conns_.erase(c.id);
  CloseHandles(c);
}

void TcpFrontend::CloseHandles(Conn& c) {
  if (c.handles_closed) return;
  c.handles_closed = true;
  auto on_close = [](uv_handle_t* h) {
    auto* conn = static_cast<Conn*>(h->data);
    if (--conn->open_handles == 0) delete conn;
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&c.handle), on_close);
  uv_close(reinterpret_cast<uv_handle_t*>(&c.idle), on_close);
}

}  // namespace nodedns::proxy
