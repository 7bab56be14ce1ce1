// UDP forwarding with batched system calls; see udp_forwarder.h.
#include "upstream/udp_forwarder.h"

#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace nodedns::upstream {

struct UdpForwarder::Socket {
  uv_poll_t poll;
  UdpForwarder* owner;
  int fd = -1;
  uint32_t index = 0;
  // False while the kernel has no route to the server (RouteMissing): Flush connects it first.
  bool connected = true;
  SocketAddress server;
  std::vector<uint32_t> queued;  // slots to send on the next Flush()
};

UdpForwarder::UdpForwarder(uv_loop_t* loop, Options options, TcpForwarder* tcp,
                           UdpForwarderStats* stats)
    : loop_(loop),
      options_(options),
      tcp_(tcp),
      stats_(*stats),
      rx_(new uint8_t[kRecvBatch * kRecvSize]) {}

bool RouteMissing(int err) {
  return err == ENETUNREACH || err == EHOSTUNREACH || err == ENETDOWN || err == EADDRNOTAVAIL;
}

absl::StatusOr<std::unique_ptr<UdpForwarder>> UdpForwarder::Create(
    uv_loop_t* loop, std::span<const SocketAddress> servers, Options options, TcpForwarder* tcp,
    UdpForwarderStats* stats) {
  if (servers.empty()) return absl::InvalidArgumentError("no upstream server");
  options.tries = std::clamp(options.tries, 1, 10);
  options.sockets_per_server = std::clamp(options.sockets_per_server, 1, 64);
  std::unique_ptr<UdpForwarder> f(new UdpForwarder(loop, options, tcp, stats));
  f->servers_ = servers.size();
  const int rounds = options.tries;
  f->deadlines_.resize(static_cast<size_t>(rounds));
  for (const SocketAddress& server : servers) {
    for (int k = 0; k < options.sockets_per_server; ++k) {
      auto s = std::make_unique<Socket>();
      s->owner = f.get();
      s->index = static_cast<uint32_t>(f->sockets_.size());
      s->server = server;
      s->fd = socket(server.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      // connect(): the kernel picks a random ephemeral port and drops datagrams from anyone but
      // the server.
      int err = s->fd < 0 ? errno : 0;
      if (s->fd >= 0 && connect(s->fd, server.get(), server.length) != 0) {
        err = errno;
        // No route yet (a node still booting, an IPv6 resolver on a node without IPv6 routes):
        // the server is unusable, not the configuration. Its tries fail until a route appears.
        if (RouteMissing(err)) {
          s->connected = false;
          err = 0;
        }
      }
      if (err != 0) {
        if (s->fd >= 0) close(s->fd);
        for (auto& o : f->sockets_) close(o->fd);
        f->sockets_.clear();
        return absl::UnavailableError(
            absl::StrCat("upstream ", server.ToString(), ": ", std::strerror(err)));
      }
      s->queued.reserve(64);
      f->sockets_.push_back(std::move(s));
    }
  }
  for (auto& s : f->sockets_) {
    uv_poll_init_socket(loop, &s->poll, s->fd);
    s->poll.data = s.get();
    uv_poll_start(&s->poll, UV_READABLE, &OnPoll);
  }
  uv_timer_init(loop, &f->timer_);
  f->timer_.data = f.get();
  uv_check_init(loop, &f->check_);
  f->check_.data = f.get();
  uv_check_start(&f->check_, [](uv_check_t* h) { static_cast<UdpForwarder*>(h->data)->Flush(); });
  uv_unref(reinterpret_cast<uv_handle_t*>(&f->check_));  // not a reason to keep the loop alive
  uv_idle_init(loop, &f->idle_);
  uv_timer_init(loop, &f->probe_timer_);
  f->probe_timer_.data = f.get();
  if (options.health != nullptr && options.health->enabled()) {
    for (size_t i = 0; i < f->servers_; ++i) f->probe_args_.push_back({f.get(), i});
    f->probe_query_ = options.health->ProbeQuery();
    const uint64_t every = std::max<uint32_t>(options.health->options().check_interval_ms, 1);
    uv_timer_start(&f->probe_timer_, &OnProbeTimer, every, every);
    uv_unref(reinterpret_cast<uv_handle_t*>(&f->probe_timer_));
  }
  return f;
}

void UdpForwarder::OnProbeTimer(uv_timer_t* handle) {
  auto* f = static_cast<UdpForwarder*>(handle->data);
  if (f->shut_down_) return;
  UpstreamHealth& h = *f->options_.health;
  const uint64_t now = UpstreamHealth::NowMs();
  // The claim lasts as long as the probe may wait for its reply (one try), and a second more.
  const uint64_t lease = uint64_t{f->options_.timeout_ms} + 1000;
  for (size_t i = 0; i < f->servers_; ++i) {
    if (h.Up(i) || !h.ClaimProbe(i, now, lease)) continue;
    const auto qname = SendableQnameLength(f->probe_query_);
    f->Enqueue(f->probe_query_, *qname, &OnProbeDone, &f->probe_args_[i], static_cast<int>(i));
  }
  f->Flush();  // as in OnTimer: out now, not at this iteration's check phase
}

void UdpForwarder::OnProbeDone(void* arg, ForwardStatus status, std::span<const uint8_t>) {
  const auto* a = static_cast<const ProbeArg*>(arg);
  // At shutdown the claim is left to lapse: another worker's forwarder probes after the lease.
  if (status == ForwardStatus::kShutdown) return;
  a->f->options_.health->ProbeDone(a->server, status == ForwardStatus::kOk,
                                   UpstreamHealth::NowMs());
}

UdpForwarder::~UdpForwarder() {
  // Shutdown() closed the handles; the sockets are ours to close.
  for (auto& s : sockets_) close(s->fd);
}

uint16_t UdpForwarder::NewId() {
  for (;;) {
    if (ids_left_ == 0) {
      arc4random_buf(ids_, sizeof ids_);
      ids_left_ = std::size(ids_);
    }
    const uint16_t id = ids_[--ids_left_];
    if (!by_id_.contains(id)) return id;
  }
}

void UdpForwarder::Send(std::span<const uint8_t> query, ForwardCallback cb, void* arg) {
  const std::optional<size_t> qname_length = SendableQnameLength(query);
  if (shut_down_ || !qname_length || by_id_.size() >= kMaxInFlight) {
    cb(arg, shut_down_ ? ForwardStatus::kShutdown : ForwardStatus::kBadQuery, {});
    return;
  }
  Enqueue(query, *qname_length, cb, arg, -1);
}

void UdpForwarder::Enqueue(std::span<const uint8_t> query, size_t qname_length, ForwardCallback cb,
                           void* arg, int probe) {
  uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    index = static_cast<uint32_t>(slots_.size());
    slots_.push_back(std::make_unique<Slot>());
  }
  Slot& s = *slots_[index];
  s.cb = cb;
  s.arg = arg;
  ++s.serial;
  s.in_use = true;
  s.attempt = 0;
  s.size = static_cast<uint16_t>(query.size());
  s.qname_length = static_cast<uint16_t>(qname_length);
  s.probe = static_cast<int16_t>(probe);
  s.down_mask = options_.health != nullptr ? options_.health->DownMask() : 0;
  s.candidates = probe >= 0 ? 1 : static_cast<uint16_t>(CandidateCount(s.down_mask, servers_));
  std::memcpy(s.query, query.data(), query.size());
  s.id = NewId();
  dns::Put16(s.query, s.id);
  by_id_.emplace(s.id, index);
  Transmit(index);
}

void UdpForwarder::Transmit(uint32_t index) {
  Slot& s = *slots_[index];
  const size_t k = static_cast<size_t>(options_.sockets_per_server);
  const size_t server = s.probe >= 0 ? static_cast<size_t>(s.probe)
                                     : Candidate(s.down_mask, servers_, s.attempt % s.candidates);
  const size_t round = s.attempt / s.candidates;
  // The socket within the server's set: from the ID, which is random.
  s.socket = static_cast<uint32_t>(server * k + s.id % k);
  Socket& sock = *sockets_[s.socket];
  if (options_.observer.fn != nullptr) s.sent_ns = uv_hrtime();
  if (dirty_.empty()) {
    // Queued from a timer (a retry) the datagram would wait in dirty_ until the loop next woke
    // up; an active idle handle keeps the coming poll from blocking, so the check runs now.
    uv_idle_start(&idle_, [](uv_idle_t*) {});
  }
  if (sock.queued.empty()) dirty_.push_back(sock.index);
  sock.queued.push_back(index);
  const uint64_t at = uv_now(loop_) + (uint64_t{options_.timeout_ms} << round);
  deadlines_[round].push_back({at, index, s.serial, s.attempt});
  ArmTimer(at);
}

void UdpForwarder::Flush() {
  for (uint32_t d : dirty_) {
    Socket& sock = *sockets_[d];
    if (!sock.connected) {
      // Still no route: its datagrams are left to their timeouts, as refused ones below, which
      // mark the server down; its probes come through here and connect it once a route exists.
      sock.connected = connect(sock.fd, sock.server.get(), sock.server.length) == 0;
      if (!sock.connected) {
        sock.queued.clear();
        continue;
      }
    }
    mmsghdr msgs[64];
    iovec iov[64];
    size_t done = 0;
    while (done < sock.queued.size()) {
      const size_t n = std::min<size_t>(64, sock.queued.size() - done);
      for (size_t i = 0; i < n; ++i) {
        Slot& s = *slots_[sock.queued[done + i]];
        iov[i] = {s.query, s.size};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int sent = sendmmsg(sock.fd, msgs, static_cast<unsigned>(n), MSG_DONTWAIT);
      if (sent < 0 && errno == EINTR) continue;
      // A datagram the kernel refused (buffer full, ICMP error pending) is left to its timeout,
      // which retries it; skip it and send the rest.
      done += sent > 0 ? static_cast<size_t>(sent) : 1;
    }
    sock.queued.clear();
  }
  dirty_.clear();
  uv_idle_stop(&idle_);
}

void UdpForwarder::ArmTimer(uint64_t at_ms) {
  if (timer_at_ != 0 && timer_at_ <= at_ms) return;
  timer_at_ = at_ms;
  const uint64_t now = uv_now(loop_);
  uv_timer_start(&timer_, &OnTimer, at_ms > now ? at_ms - now : 0, 0);
}

void UdpForwarder::OnTimer(uv_timer_t* handle) {
  auto* f = static_cast<UdpForwarder*>(handle->data);
  f->timer_at_ = 0;
  const uint64_t now = uv_now(f->loop_);
  uint64_t next = 0;
  for (auto& q : f->deadlines_) {
    while (!q.empty() && q.front().at_ms <= now) {
      const Deadline d = q.front();
      q.pop_front();
      const Slot& s = *f->slots_[d.slot];
      if (s.in_use && s.serial == d.serial && s.attempt == d.attempt) f->Retry(d.slot);
    }
    if (!q.empty() && (next == 0 || q.front().at_ms < next)) next = q.front().at_ms;
  }
  if (next != 0 && !f->shut_down_) f->ArmTimer(next);
  // Now, in one sendmmsg per socket for every retry of this tick, rather than at the check phase
  // that follows this iteration's poll (which idle_ keeps from blocking).
  if (!f->shut_down_) f->Flush();
}

void UdpForwarder::Retry(uint32_t index) {
  Slot& s = *slots_[index];
  // The try's server did not answer in time or sent an ICMP error. (A probe's outcome is its
  // callback's to report.)
  if (options_.health != nullptr && s.probe < 0) {
    options_.health->ReportFailure(s.socket / static_cast<size_t>(options_.sockets_per_server));
  }
  ++s.attempt;
  if (s.attempt >= (s.probe >= 0 ? 1 : options_.tries * s.candidates)) {
    if (s.probe < 0) stats_.timeouts.Inc();
    Complete(index, ForwardStatus::kTimeout, {});
    return;
  }
  stats_.retries.Inc();
  Transmit(index);
}

UdpForwarder::Owner UdpForwarder::Detach(uint32_t index) {
  Slot& s = *slots_[index];
  by_id_.erase(s.id);
  s.in_use = false;
  ++s.serial;
  return {s.cb, s.arg};
}

void UdpForwarder::Complete(uint32_t index, ForwardStatus status, std::span<const uint8_t> reply) {
  const Owner owner = Detach(index);
  free_.push_back(index);
  // Still queued for sending (a reply beat the flush, or a timeout of 0): sending it anyway is
  // harmless, its reply will find no ID.
  owner.cb(owner.arg, status, reply);
}

void UdpForwarder::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* sock = static_cast<Socket*>(handle->data);
  if (sock->owner->shut_down_) return;
  if (status < 0 || (events & UV_READABLE)) sock->owner->Receive(*sock);
  // On POLLERR (a pending ICMP error on the connected socket) libuv stops the handle before it
  // calls back with UV_EBADF; Receive() consumed the error, so watch the socket again.
  if (status < 0 && !sock->owner->shut_down_) uv_poll_start(&sock->poll, UV_READABLE, &OnPoll);
}

void UdpForwarder::Receive(Socket& sock) {
  mmsghdr msgs[kRecvBatch];
  iovec iov[kRecvBatch];
  for (int round = 0; round < 8; ++round) {
    for (int i = 0; i < kRecvBatch; ++i) {
      iov[i] = {rx_.get() + i * kRecvSize, kRecvSize};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int n = recvmmsg(sock.fd, msgs, kRecvBatch, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH) {
        // An ICMP error for some datagram on this socket: no server there. Move the queries whose
        // current try used this socket on to their next try now instead of at their timeout.
        std::vector<uint32_t> moved;
        for (const auto& [id, index] : by_id_) {
          if (slots_[index]->socket == sock.index) moved.push_back(index);
        }
        for (uint32_t index : moved) {
          if (slots_[index]->in_use && slots_[index]->socket == sock.index) Retry(index);
        }
        continue;  // the error is consumed; there may be datagrams behind it
      }
      return;  // EAGAIN: drained
    }
    for (int i = 0; i < n; ++i) {
      const std::span<const uint8_t> reply(rx_.get() + i * kRecvSize, msgs[i].msg_len);
      if (reply.size() < dns::kHeaderSize || !(dns::HeaderFlags(reply) & dns::flag::kQR)) {
        stats_.mismatched.Inc();
        continue;
      }
      const auto it = by_id_.find(dns::HeaderId(reply));
      if (it == by_id_.end()) {
        stats_.mismatched.Inc();  // late (a retry already answered it) or forged
        continue;
      }
      const uint32_t index = it->second;
      Slot& s = *slots_[index];
      const std::span<const uint8_t> qname(s.query + dns::kHeaderSize, s.qname_length);
      const uint8_t* qtail = s.query + dns::kHeaderSize + s.qname_length;
      // The question is at the start, so a reply cut at the buffer's end can still be matched.
      if (!dns::ResponseMatchesQuestion(reply, qname, dns::Get16(qtail), dns::Get16(qtail + 2))) {
        stats_.mismatched.Inc();  // RFC 5452 §9.1: the question must match too; keep waiting
        continue;
      }
      const size_t server = sock.index / static_cast<size_t>(options_.sockets_per_server);
      if (options_.health != nullptr) options_.health->ReportSuccess(server);
      if (s.probe >= 0) {  // any reply is a sign of life, TC=1 included
        Complete(index, ForwardStatus::kOk, reply);
        continue;
      }
      if (options_.observer.fn != nullptr) {
        // The server is the socket's: a retry keeps the ID, so an earlier try's server may be
        // the one answering. (The time is still since the latest try was sent.)
        options_.observer(server, dns::HeaderFlags(reply) & 0xf, uv_hrtime() - s.sent_ns);
      }
      // TC=1, or longer than any reply to the 1232 bytes we advertise (a server that ignores
      // EDNS): asking again over UDP would get the same. Re-ask over TCP now (RFC 7766 §5).
      if ((dns::HeaderFlags(reply) & dns::flag::kTC) || (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)) {
        stats_.truncated.Inc();
        // The TCP forwarder copies the query: the slot is free once Send returns.
        const Owner owner = Detach(index);
        if (tcp_ != nullptr) {
          tcp_->Send({s.query, s.size}, owner.cb, owner.arg);
        } else {
          owner.cb(owner.arg, ForwardStatus::kFailed, {});
        }
        free_.push_back(index);  // only now: a callback run by Send may have sent a new query
        continue;
      }
      Complete(index, ForwardStatus::kOk, reply);
    }
    if (n < kRecvBatch) return;
  }
}

void UdpForwarder::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  std::vector<uint32_t> live;
  for (const auto& [id, index] : by_id_) live.push_back(index);
  for (uint32_t index : live) Complete(index, ForwardStatus::kShutdown, {});
  for (auto& s : sockets_) {
    uv_poll_stop(&s->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->poll), nullptr);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&check_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&idle_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&probe_timer_), nullptr);
}

}  // namespace nodedns::upstream
