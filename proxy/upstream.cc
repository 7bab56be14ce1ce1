// c-ares on libuv; see upstream.h.
#include "proxy/upstream.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nodedns::proxy {

struct Upstream::Poll {
  uv_poll_t handle;
  Upstream* owner;
  ares_socket_t fd;
  int events = 0;  // what c-ares last asked to watch
};

Upstream::Upstream(uv_loop_t* loop) : loop_(loop) {}

absl::StatusOr<std::unique_ptr<Upstream>> Upstream::Create(uv_loop_t* loop, const ForwardZone& zone,
                                                           uint32_t timeout_ms, int tries,
                                                           bool tcp_only) {
  std::unique_ptr<Upstream> u(new Upstream(loop));
  ares_options opts{};
  int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB |
             ARES_OPT_LOOKUPS;
  // STAYOPEN keeps TCP connections to upstream (force-tcp zones) across queries; NOCHECKRESP
  // returns SERVFAIL and REFUSED answers to us, so we can serve stale or pass them on.
  opts.flags = ARES_FLAG_STAYOPEN | ARES_FLAG_NOCHECKRESP | ARES_FLAG_NOSEARCH |
               ARES_FLAG_NOALIASES | (zone.force_tcp || tcp_only ? ARES_FLAG_USEVC : 0);
  opts.timeout = static_cast<int>(timeout_ms);
  opts.tries = tries;
  opts.sock_state_cb = &OnSocketState;
  opts.sock_state_cb_data = u.get();
  char lookups[] = "b";
  opts.lookups = lookups;
  if (int rc = ares_init_options(&u->channel_, &opts, mask); rc != ARES_SUCCESS) {
    return absl::InternalError(absl::StrCat("c-ares init: ", ares_strerror(rc)));
  }
  std::vector<std::string> servers;
  for (const auto& a : zone.upstreams) servers.push_back(a.ToString());
  const std::string csv = absl::StrJoin(servers, ",");
  if (int rc = ares_set_servers_ports_csv(u->channel_, csv.c_str()); rc != ARES_SUCCESS) {
    return absl::InvalidArgumentError(
        absl::StrCat("upstreams '", csv, "' for zone ", zone.zone, ": ", ares_strerror(rc)));
  }
  uv_timer_init(loop, &u->timer_);
  u->timer_.data = u.get();
  return u;
}

Upstream::~Upstream() {
  // Shutdown() must have run and the loop must have closed the handles.
  if (channel_ != nullptr) ares_destroy(channel_);
}

struct Upstream::Query {
  Upstream* owner;
  Callback cb;
  void* arg;
  uint16_t id;
};

void Upstream::Send(std::span<const uint8_t> query, Callback cb, void* arg) {
  if (shut_down_ || query.size() < 12 || ids_in_flight_.size() >= 60000) {
    cb(arg, shut_down_ ? ARES_EDESTRUCTION : ARES_EBADQUERY, 0, nullptr, 0);
    return;
  }
  // An unpredictable ID is all that stands between a spoofed reply and the cache (RFC 5452 §9.2);
  // a unique one keeps c-ares from matching a reply to the wrong query.
  uint16_t id;
  do {
    id = static_cast<uint16_t>(arc4random());
  } while (!ids_in_flight_.insert(id).second);
  std::vector<uint8_t> copy(query.begin(), query.end());
  copy[0] = static_cast<uint8_t>(id >> 8);
  copy[1] = static_cast<uint8_t>(id);
  auto* q = new Query{this, cb, arg, id};
  ares_send(channel_, copy.data(), static_cast<int>(copy.size()), &OnReply, q);
  RearmTimer();
}

void Upstream::OnReply(void* arg, int status, int timeouts, unsigned char* abuf, int alen) {
  std::unique_ptr<Query> q(static_cast<Query*>(arg));
  q->owner->ids_in_flight_.erase(q->id);
  q->cb(q->arg, status, timeouts, abuf, alen);
}

void Upstream::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // Fails every query in flight (callbacks run now) and closes sockets through OnSocketState.
  ares_destroy(channel_);
  channel_ = nullptr;
  for (auto& [fd, p] : polls_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle),
             [](uv_handle_t* h) { delete static_cast<Poll*>(h->data); });
  }
  polls_.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
}

void Upstream::OnSocketState(void* data, ares_socket_t fd, int readable, int writable) {
  auto* u = static_cast<Upstream*>(data);
  auto it = u->polls_.find(fd);
  if (readable || writable) {
    Poll* p;
    if (it == u->polls_.end()) {
      p = new Poll{{}, u, fd};
      uv_poll_init_socket(u->loop_, &p->handle, fd);
      p->handle.data = p;
      u->polls_.emplace(fd, p);
    } else {
      p = it->second;
    }
    p->events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
    uv_poll_start(&p->handle, p->events, &OnPoll);
  } else if (it != u->polls_.end()) {
    // c-ares closes the socket after this returns; the handle must stop watching it first.
    Poll* p = it->second;
    u->polls_.erase(it);
    uv_poll_stop(&p->handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle),
             [](uv_handle_t* h) { delete static_cast<Poll*>(h->data); });
  }
}

void Upstream::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* p = static_cast<Poll*>(handle->data);
  Upstream* u = p->owner;
  if (u->channel_ == nullptr) return;
  if (status < 0) {
    // An error on the socket: let c-ares read and write it to find out and fail over. libuv
    // stopped the handle before this callback (POLLERR); if c-ares keeps the socket, watch it
    // again, or replies on it would never be read.
    const ares_socket_t fd = p->fd;
    ares_process_fd(u->channel_, fd, fd);
    if (auto it = u->polls_.find(fd); it != u->polls_.end() && it->second == p) {
      uv_poll_start(&p->handle, p->events, &OnPoll);
    }
  } else {
    ares_process_fd(u->channel_, (events & UV_READABLE) ? p->fd : ARES_SOCKET_BAD,
                    (events & UV_WRITABLE) ? p->fd : ARES_SOCKET_BAD);
  }
  // `p` may have been closed by OnSocketState during processing; `u` is still alive.
  u->RearmTimer();
}

void Upstream::OnTimer(uv_timer_t* handle) {
  auto* u = static_cast<Upstream*>(handle->data);
  if (u->channel_ == nullptr) return;
  ares_process_fd(u->channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // handles timeouts
  u->RearmTimer();
}

void Upstream::RearmTimer() {
  if (channel_ == nullptr) return;
  timeval tv;
  timeval* next = ares_timeout(channel_, nullptr, &tv);
  if (next == nullptr) {
    uv_timer_stop(&timer_);
    return;
  }
  const uint64_t ms = static_cast<uint64_t>(next->tv_sec) * 1000 + next->tv_usec / 1000 + 1;
  uv_timer_start(&timer_, &OnTimer, ms, 0);
}

}  // namespace nodedns::proxy
