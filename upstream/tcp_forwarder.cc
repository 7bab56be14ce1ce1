// TCP forwarding with pipelined connections that never hold each other's queries; see
// tcp_forwarder.h.
#include "upstream/tcp_forwarder.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace nodedns::upstream {

struct TcpForwarder::Conn {
  uv_tcp_t handle;
  uv_connect_t connect;
  TcpForwarder* owner;
  size_t server = 0;
  bool connected = false;
  bool closing = false;
  bool answered = false;        // a reply has come on it: a close later is not the server's "no"
  size_t outstanding = 0;       // queries whose current try is on this connection
  uint64_t awaiting_since = 0;  // first write since the last byte received; 0 if none waits
  uint64_t last_rx_ms = 0;
  uint64_t idle_since = 0;
  std::vector<uint8_t> in;  // one whole frame at most: 2 + 65,535 bytes
  size_t in_len = 0;
};

namespace {

struct WriteReq {
  uv_write_t req;
  uint8_t data[2 + kMaxQuery];
};

}  // namespace

TcpForwarder::TcpForwarder(uv_loop_t* loop, Options options, TcpForwarderStats* stats)
    : loop_(loop), options_(options), stats_(*stats) {}

absl::StatusOr<std::unique_ptr<TcpForwarder>> TcpForwarder::Create(
    uv_loop_t* loop, std::span<const SocketAddress> servers, Options options,
    TcpForwarderStats* stats) {
  if (servers.empty()) return absl::InvalidArgumentError("no upstream server");
  options.tries = std::clamp(options.tries, 1, 10);
  options.connections_per_server = std::clamp(options.connections_per_server, 1, 64);
  options.inflight_per_connection = std::clamp(options.inflight_per_connection, 1, 1024);
  // A try's timeout must find its connection stalled, or the retry could land on it again.
  options.stall_ms = std::clamp<uint32_t>(options.stall_ms, 1, std::max(options.timeout_ms, 1u));
  std::unique_ptr<TcpForwarder> f(new TcpForwarder(loop, options, stats));
  f->servers_.assign(servers.begin(), servers.end());
  f->conns_.resize(f->servers_.size());
  f->waiting_.resize(f->servers_.size());
  f->deadlines_.resize(static_cast<size_t>(options.tries));
  uv_timer_init(loop, &f->timer_);
  f->timer_.data = f.get();
  uv_timer_init(loop, &f->sweep_);
  f->sweep_.data = f.get();
  const uint64_t sweep = std::max<uint64_t>(options.idle_ms / 4, 100);
  uv_timer_start(&f->sweep_, &OnSweep, sweep, sweep);
  uv_unref(reinterpret_cast<uv_handle_t*>(&f->sweep_));
  uv_timer_init(loop, &f->probe_timer_);
  f->probe_timer_.data = f.get();
  if (f->Reports() && options.health->enabled()) {
    for (size_t i = 0; i < f->servers_.size(); ++i) f->probe_args_.push_back({f.get(), i});
    f->probe_query_ = options.health->ProbeQuery();
    const uint64_t every = std::max<uint32_t>(options.health->options().check_interval_ms, 1);
    uv_timer_start(&f->probe_timer_, &OnProbeTimer, every, every);
    uv_unref(reinterpret_cast<uv_handle_t*>(&f->probe_timer_));
  }
  return f;
}

void TcpForwarder::OnProbeTimer(uv_timer_t* handle) {
  auto* f = static_cast<TcpForwarder*>(handle->data);
  if (f->shut_down_) return;
  UpstreamHealth& h = *f->options_.health;
  const uint64_t now = UpstreamHealth::NowMs();
  // The claim lasts as long as the probe may wait for its reply (one try), and a second more.
  const uint64_t lease = uint64_t{f->options_.timeout_ms} + 1000;
  for (size_t i = 0; i < f->servers_.size(); ++i) {
    if (h.Up(i) || !h.ClaimProbe(i, now, lease)) continue;
    const auto qname = SendableQnameLength(f->probe_query_);
    f->Start(f->probe_query_, *qname, &OnProbeDone, &f->probe_args_[i], static_cast<int>(i));
  }
}

void TcpForwarder::OnProbeDone(void* arg, ForwardStatus status, std::span<const uint8_t>) {
  const auto* a = static_cast<const ProbeArg*>(arg);
  // At shutdown the claim is left to lapse: another worker's forwarder probes after the lease.
  if (status == ForwardStatus::kShutdown) return;
  a->f->options_.health->ProbeDone(a->server, status == ForwardStatus::kOk,
                                   UpstreamHealth::NowMs());
}

TcpForwarder::~TcpForwarder() = default;  // Shutdown() closed every handle

size_t TcpForwarder::connections() const {
  size_t n = 0;
  for (const auto& list : conns_) n += list.size();
  return n;
}

uint16_t TcpForwarder::NewId() {
  for (;;) {
    const auto id = static_cast<uint16_t>(arc4random());
    if (!by_id_.contains(id)) return id;
  }
}

TcpForwarder::Query* TcpForwarder::Find(Ref ref) const {
  const auto it = by_id_.find(ref.id);
  return it != by_id_.end() && it->second->serial == ref.serial ? it->second.get() : nullptr;
}

void TcpForwarder::Send(std::span<const uint8_t> query, ForwardCallback cb, void* arg) {
  const std::optional<size_t> qname_length = SendableQnameLength(query);
  if (shut_down_ || !qname_length || by_id_.size() >= kMaxInFlight) {
    cb(arg, shut_down_ ? ForwardStatus::kShutdown : ForwardStatus::kBadQuery, {});
    return;
  }
  Start(query, *qname_length, cb, arg, -1);
}

void TcpForwarder::Start(std::span<const uint8_t> query, size_t qname_length, ForwardCallback cb,
                         void* arg, int probe) {
  auto q = std::make_unique<Query>();
  q->cb = cb;
  q->arg = arg;
  q->size = static_cast<uint16_t>(query.size());
  q->qname_length = static_cast<uint16_t>(qname_length);
  q->probe = static_cast<int16_t>(probe);
  q->down_mask = options_.health != nullptr ? options_.health->DownMask() : 0;
  q->candidates =
      probe >= 0 ? 1 : static_cast<uint16_t>(CandidateCount(q->down_mask, servers_.size()));
  dns::Put16(q->frame, q->size);
  std::memcpy(q->frame + 2, query.data(), query.size());
  StartTry(std::move(q));
}

void TcpForwarder::StartTry(std::unique_ptr<Query> owned) {
  Query* q = owned.get();
  q->id = NewId();
  dns::Put16(q->frame + 2, q->id);
  q->serial = ++next_serial_;
  q->conn = nullptr;
  q->written = false;
  by_id_.emplace(q->id, std::move(owned));
  const size_t round = q->attempt / q->candidates;
  const uint64_t at = Now() + (uint64_t{options_.timeout_ms} << round);
  deadlines_[round].push_back({at, {q->id, q->serial}});
  ArmTimer(at);
  Assign(q);
}

void TcpForwarder::Assign(Query* q) {
  const size_t server = ServerOf(*q);
  if (Conn* c = PickConnection(server)) {
    Write(c, q);
  } else {
    waiting_[server].push_back({q->id, q->serial});
  }
}

bool TcpForwarder::Stalled(const Conn& c, uint64_t now) const {
  return c.awaiting_since != 0 && now - c.awaiting_since >= options_.stall_ms;
}

TcpForwarder::Conn* TcpForwarder::PickConnection(size_t server) {
  const uint64_t now = Now();
  Conn* best = nullptr;
  for (Conn* c : conns_[server]) {
    if (Stalled(*c, now) || c->outstanding >= size_t(options_.inflight_per_connection)) continue;
    // An idle connection first: servers often answer one connection's queries in order, so a
    // slow answer would delay what is pipelined behind it.
    if (c->outstanding == 0) return c;
    if (best == nullptr || c->outstanding < best->outstanding) best = c;
  }
  if (conns_[server].size() < size_t(options_.connections_per_server)) {
    if (Conn* c = Open(server)) return c;
  }
  return best;
}

TcpForwarder::Conn* TcpForwarder::Open(size_t server) {
  auto* c = new Conn;
  c->owner = this;
  c->server = server;
  uv_tcp_init(loop_, &c->handle);
  c->handle.data = c;
  c->connect.data = c;
  const SocketAddress& addr = servers_[server];
  if (uv_tcp_connect(&c->connect, &c->handle, addr.get(), &OnConnect) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c->handle),
             [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
    return nullptr;
  }
  c->in.resize(2 + dns::kMaxMessage);
  c->idle_since = Now();
  conns_[server].push_back(c);
  stats_.connections.Inc();
  return c;
}

void TcpForwarder::Write(Conn* c, Query* q) {
  q->conn = c;
  ++c->outstanding;
  const uint64_t now = Now();
  if (c->awaiting_since == 0) c->awaiting_since = now;
  q->written_ms = now;
  if (options_.observer.fn != nullptr) q->written_ns = uv_hrtime();
  if (!c->connected) return;  // written by OnConnect
  q->written = true;
  auto* w = new WriteReq;
  w->req.data = w;
  const size_t size = 2 + q->size;
  std::memcpy(w->data, q->frame, size);
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(w->data), static_cast<unsigned>(size));
  const int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->handle), &buf, 1,
                          [](uv_write_t* req, int status) {
                            auto* conn = static_cast<Conn*>(req->handle->data);
                            delete static_cast<WriteReq*>(req->data);
                            // Cancelled writes come before the close callback: conn is alive.
                            if (status < 0 && status != UV_ECANCELED && !conn->closing) {
                              conn->owner->Close(conn, CloseReason::kClosed);
                            }
                          });
  if (rc != 0) {
    delete w;
    Close(c, CloseReason::kClosed);  // q is on c: written again elsewhere, or its try ends
  }
}

void TcpForwarder::OnConnect(uv_connect_t* req, int status) {
  auto* c = static_cast<Conn*>(req->data);
  TcpForwarder* f = c->owner;
  if (c->closing) return;  // cancelled by Close()
  if (status < 0) {
    f->Close(c, CloseReason::kRefused);
    return;
  }
  c->connected = true;
  uv_tcp_nodelay(&c->handle, 1);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->handle), &OnAlloc, &OnRead);
  std::vector<Ref> unsent;
  for (const auto& [id, q] : f->by_id_) {
    if (q->conn == c && !q->written) unsent.push_back({q->id, q->serial});
  }
  for (const Ref& r : unsent) {
    Query* q = f->Find(r);
    if (q == nullptr || q->conn != c || c->closing) continue;
    // Write() counts the query on the connection again; it was counted when assigned.
    --c->outstanding;
    f->Write(c, q);
  }
}

void TcpForwarder::OnAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* c = static_cast<Conn*>(handle->data);
  *buf = uv_buf_init(reinterpret_cast<char*>(c->in.data() + c->in_len),
                     static_cast<unsigned>(c->in.size() - c->in_len));
}

void TcpForwarder::OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
  auto* c = static_cast<Conn*>(stream->data);
  TcpForwarder* f = c->owner;
  if (c->closing) return;
  if (nread < 0) {
    f->Close(c, CloseReason::kClosed);
    return;
  }
  if (nread == 0) return;
  const uint64_t now = f->Now();
  c->in_len += static_cast<size_t>(nread);
  c->last_rx_ms = now;
  size_t off = 0;
  while (c->in_len - off >= 2) {
    const size_t len = dns::Get16(c->in.data() + off);
    if (len < dns::kHeaderSize) {  // RFC 7766 §8: no message is that short; the stream is lost
      f->Close(c, CloseReason::kProtocol);
      return;
    }
    if (c->in_len - off - 2 < len) break;
    f->HandleReply(c, {c->in.data() + off + 2, len});
    if (c->closing) return;  // a callback's Send failed on this connection
    off += 2 + len;
  }
  std::memmove(c->in.data(), c->in.data() + off, c->in_len - off);
  c->in_len -= off;
  // Bytes arrived: whatever still waits on this connection waits from now.
  c->awaiting_since = c->outstanding > 0 ? now : 0;
}

void TcpForwarder::HandleReply(Conn* c, std::span<const uint8_t> msg) {
  const auto it = by_id_.find(dns::HeaderId(msg));
  if (!(dns::HeaderFlags(msg) & dns::flag::kQR) || it == by_id_.end() || it->second->conn != c) {
    stats_.mismatched.Inc();  // late (its try timed out), forged, or for another connection
    return;
  }
  Query* q = it->second.get();
  const uint8_t* question = q->frame + 2 + dns::kHeaderSize;
  const uint8_t* tail = question + q->qname_length;
  if (!dns::ResponseMatchesQuestion(msg, {question, q->qname_length}, dns::Get16(tail),
                                    dns::Get16(tail + 2))) {
    stats_.mismatched.Inc();  // RFC 5452 §9.1; keep waiting
    return;
  }
  c->answered = true;
  if (Reports()) options_.health->ReportSuccess(ServerOf(*q));
  if (q->probe >= 0) {  // any reply is a sign of life, TC=1 included
    Complete(q, ForwardStatus::kOk, msg);
    return;
  }
  options_.observer(ServerOf(*q), dns::HeaderFlags(msg) & 0xf, uv_hrtime() - q->written_ns);
  if (dns::HeaderFlags(msg) & dns::flag::kTC) {
    // Over TCP there is nothing larger to ask again with: the server's answer is unusable, and
    // passing it on would turn it into an empty NOERROR (a false NODATA) for the client.
    stats_.truncated.Inc();
    stats_.failed.Inc();
    Complete(q, ForwardStatus::kFailed, {});
    return;
  }
  Complete(q, ForwardStatus::kOk, msg);
}

std::unique_ptr<TcpForwarder::Query> TcpForwarder::Detach(Query* q) {
  auto node = by_id_.extract(q->id);
  if (Conn* c = q->conn) {
    q->conn = nullptr;
    if (--c->outstanding == 0) {
      c->awaiting_since = 0;
      c->idle_since = Now();
    }
  }
  return std::move(node.mapped());
}

void TcpForwarder::Complete(Query* q, ForwardStatus status, std::span<const uint8_t> reply) {
  const size_t server = ServerOf(*q);
  std::unique_ptr<Query> own = Detach(q);
  own->cb(own->arg, status, reply);
  if (!shut_down_) Drain(server);  // a place on a connection is free
}

void TcpForwarder::NextTry(Query* q, ForwardStatus final_status) {
  // The try's server timed out, refused the connection or closed it before answering. (A
  // probe's outcome is its callback's to report.)
  if (Reports() && q->probe < 0) options_.health->ReportFailure(ServerOf(*q));
  std::unique_ptr<Query> own = Detach(q);
  ++own->attempt;
  if (own->attempt >= (own->probe >= 0 ? 1 : size_t(options_.tries) * own->candidates)) {
    if (own->probe < 0) {
      (final_status == ForwardStatus::kTimeout ? stats_.timeouts : stats_.failed).Inc();
    }
    own->cb(own->arg, final_status, {});
    return;
  }
  stats_.retries.Inc();
  StartTry(std::move(own));
}

void TcpForwarder::Drain(size_t server) {
  auto& queue = waiting_[server];
  while (!queue.empty()) {
    Query* q = Find(queue.front());
    if (q == nullptr || q->conn != nullptr) {  // answered, timed out or placed meanwhile
      queue.pop_front();
      continue;
    }
    Conn* c = PickConnection(server);
    if (c == nullptr) return;
    queue.pop_front();
    Write(c, q);
  }
}

void TcpForwarder::Close(Conn* c, CloseReason why) {
  if (c->closing) return;
  c->closing = true;
  std::erase(conns_[c->server], c);
  if (why == CloseReason::kAbandoned) stats_.stalled.Inc();
  // Written again elsewhere with their deadlines, unless the server said no before answering
  // anything: then the try is over (otherwise a server that hangs up at once makes a loop).
  const bool resend = why == CloseReason::kAbandoned || why == CloseReason::kIdle ||
                      (why == CloseReason::kClosed && c->answered);
  std::vector<Ref> moved;
  for (const auto& [id, q] : by_id_) {
    if (q->conn == c) moved.push_back({q->id, q->serial});
  }
  for (const Ref& r : moved) {
    Query* q = Find(r);
    q->conn = nullptr;
    q->written = false;
  }
  c->outstanding = 0;
  uv_close(reinterpret_cast<uv_handle_t*>(&c->handle),
           [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
  for (const Ref& r : moved) {
    Query* q = Find(r);  // an earlier query's callback may have ended the process of this one
    if (q == nullptr || q->conn != nullptr) continue;
    if (resend) {
      stats_.resent.Inc();
      Assign(q);
    } else {
      NextTry(q, ForwardStatus::kFailed);
    }
  }
  if (!shut_down_) Drain(c->server);
}

void TcpForwarder::ArmTimer(uint64_t at_ms) {
  if (timer_at_ != 0 && timer_at_ <= at_ms) return;
  timer_at_ = at_ms;
  const uint64_t now = Now();
  uv_timer_start(&timer_, &OnTimer, at_ms > now ? at_ms - now : 0, 0);
}

void TcpForwarder::OnTimer(uv_timer_t* handle) {
  auto* f = static_cast<TcpForwarder*>(handle->data);
  f->timer_at_ = 0;
  const uint64_t now = f->Now();
  for (auto& queue : f->deadlines_) {
    while (!queue.empty() && queue.front().at_ms <= now && !f->shut_down_) {
      const Ref ref = queue.front().ref;
      queue.pop_front();
      Query* q = f->Find(ref);
      if (q == nullptr) continue;
      // Nothing at all has come on the connection since this try was written (or it never
      // connected): the connection is stuck, and everything on it would wait as long.
      // Closed first, so that the next try cannot land on it (with this query gone it would
      // look idle); the others on it are written again elsewhere within their deadlines.
      Conn* c = q->conn;
      if (c != nullptr && (!q->written || c->last_rx_ms < q->written_ms)) {
        q->conn = nullptr;
        --c->outstanding;
        f->Close(c, CloseReason::kAbandoned);
      }
      if ((q = f->Find(ref)) != nullptr) f->NextTry(q, ForwardStatus::kTimeout);
    }
  }
  uint64_t next = 0;
  for (const auto& queue : f->deadlines_) {
    if (!queue.empty() && (next == 0 || queue.front().at_ms < next)) next = queue.front().at_ms;
  }
  if (next != 0 && !f->shut_down_) f->ArmTimer(next);
}

void TcpForwarder::OnSweep(uv_timer_t* handle) {
  auto* f = static_cast<TcpForwarder*>(handle->data);
  const uint64_t now = f->Now();
  std::vector<Conn*> idle;
  for (const auto& list : f->conns_) {
    for (Conn* c : list) {
      if (c->connected && c->outstanding == 0 && now - c->idle_since >= f->options_.idle_ms) {
        idle.push_back(c);
      }
    }
  }
  for (Conn* c : idle) f->Close(c, CloseReason::kIdle);
}

void TcpForwarder::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  std::vector<Ref> live;
  for (const auto& [id, q] : by_id_) live.push_back({q->id, q->serial});
  for (const Ref& r : live) {
    if (Query* q = Find(r)) Complete(q, ForwardStatus::kShutdown, {});
  }
  for (auto& list : conns_) {
    const std::vector<Conn*> all = list;
    for (Conn* c : all) Close(c, CloseReason::kIdle);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sweep_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&probe_timer_), nullptr);
}

}  // namespace nodedns::upstream
