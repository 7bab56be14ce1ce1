// TCP framing and connection limits; see tcp_frontend.h.
#include "proxy/tcp_frontend.h"

#include <cstring>

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
  std::vector<uint8_t> in;
  sockaddr_storage peer{};
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
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->handle)) != 0 ||
      f->conns_.size() >= f->ctx_.config->tcp_max_connections) {
    f->ctx_.counters.tcp_rejected.Inc();
    f->Close(*c);
    return;
  }
  f->ctx_.counters.tcp_connections.Inc();
  f->conns_.emplace(c->id, c);
  int peer_len = sizeof c->peer;
  uv_tcp_getpeername(&c->handle, reinterpret_cast<sockaddr*>(&c->peer), &peer_len);
  uv_tcp_nodelay(&c->handle, 1);
  auto on_idle = [](uv_timer_t* t) {
    auto* conn = static_cast<Conn*>(t->data);
    // Queries still waiting for upstream keep the connection; their replies end within the
    // upstream timeout and restart the clock.
    if (conn->inflight == 0) conn->frontend->Close(*conn);
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
  if (nread < 0) {  // EOF or error: answer what is in flight, then close
    conn->eof = true;
    uv_read_stop(stream);
    conn->reading = false;
    if (conn->inflight == 0) f->Close(*conn);
    return;
  }
  if (nread == 0) return;
  conn->in.insert(conn->in.end(), buf->base, buf->base + nread);
  uv_timer_again(&conn->idle);
  f->ResumeReads(*conn);
}

void TcpFrontend::ResumeReads(Conn& c) {
  // A reply completing synchronously inside the loop below (a forwarder can fail a send at once)
  // must not re-enter it: the outer call sees the updated counts.
  if (c.in_resume) return;
  c.in_resume = true;
  const size_t max_inflight = ctx_.config->tcp_max_inflight;
  // Serve every complete frame buffered, up to the in-flight limit.
  size_t off = 0;
  while (!c.closing && c.in.size() - off >= 2 && c.inflight < max_inflight) {
    const size_t len = dns::Get16(c.in.data() + off);
    if (len < dns::kHeaderSize) {  // cannot even hold a header: the stream is garbage
      c.in_resume = false;
      Close(c);
      return;
    }
    if (c.in.size() - off - 2 < len) break;
    HandleQuery(c, {c.in.data() + off + 2, len});
    off += 2 + len;
  }
  c.in_resume = false;
  if (c.closing) return;
  c.in.erase(c.in.begin(), c.in.begin() + static_cast<ptrdiff_t>(off));
  const bool want = !c.eof && c.inflight < max_inflight;
  if (want && !c.reading) {
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c.handle), &OnAlloc, &OnRead);
  }
  if (!want && c.reading) uv_read_stop(reinterpret_cast<uv_stream_t*>(&c.handle));
  c.reading = want;
  if (c.eof && c.inflight == 0) Close(c);
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
  uv_timer_again(&c.idle);
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
  const int rc = uv_write(&req->req, reinterpret_cast<uv_stream_t*>(&c.handle), &buf, 1,
                          [](uv_write_t* r, int) { delete static_cast<WriteReq*>(r->data); });
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
