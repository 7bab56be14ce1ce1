// A worker's loop, timers and lifecycle; the data path is in its parts (worker.h).
#include "proxy/worker.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace nodedns::proxy {

absl::StatusOr<int> OpenSocket(const SocketAddress& addr, bool tcp) {
  const int fd =
      socket(addr.family(), (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  // SO_REUSEPORT: every worker binds the same address; the kernel spreads clients over them.
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (addr.family() == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (!tcp) {
    // Bursts of a few thousand queries must not overflow the socket between two batches.
    const int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  if (bind(fd, addr.get(), addr.length) != 0 || (tcp && listen(fd, 1024) != 0)) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", addr.ToString(), "/",
                                               tcp ? "tcp" : "udp", ": ", std::strerror(err)));
  }
  return fd;
}

Worker::Worker(int index, std::shared_ptr<const ServeConfig> config, cache::ResponseCache& cache,
               SharedSearchRewrite* rewrite, WorkerSockets sockets)
    : index_(index),
      sockets_(std::move(sockets)),
      ctx_(*config, cache),
      misses_(ctx_),
      path_(ctx_, misses_, rewrite_),
      rewrite_(ctx_, rewrite, misses_, path_),
      udp_(ctx_, path_, misses_),
      tcp_(ctx_, path_) {
  ctx_.config_owner = std::move(config);
}

Worker::~Worker() {
  if (ctx_.loop == nullptr) return;
  if (!ran_) {
    // Start() failed part way (an upstream it could not connect): close what it opened, here,
    // so that the loop can be closed. The parts' destructors close no handle of their own.
    uv_walk(
        ctx_.loop,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
    uv_run(ctx_.loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(ctx_.loop);
  delete ctx_.loop;
}

absl::Status Worker::Start() {
  ctx_.loop = new uv_loop_t;
  uv_loop_t* loop = ctx_.loop;
  uv_loop_init(loop);
  uv_async_init(loop, &stop_async_, [](uv_async_t* h) { static_cast<Worker*>(h->data)->OnStop(); });
  stop_async_.data = this;
  uv_async_init(loop, &reconfigure_async_,
                [](uv_async_t* h) { static_cast<Worker*>(h->data)->OnReconfigure(); });
  reconfigure_async_.data = this;
  uv_async_init(loop, &drain_async_,
                [](uv_async_t* h) { static_cast<Worker*>(h->data)->OnDrain(); });
  drain_async_.data = this;
  uv_timer_init(loop, &drain_timer_);
  drain_timer_.data = this;
  // Before the loop blocks, the worker goes offline so that it never holds up reclamation while
  // idle; the first callback that touches the cache brings it back (EnsureOnline).
  uv_prepare_init(loop, &prepare_);
  prepare_.data = this;
  uv_prepare_start(&prepare_, [](uv_prepare_t* h) {
    auto* w = static_cast<Worker*>(h->data);
    if (w->ctx_.thread) w->ctx_.thread->Offline();
  });
  // One worker sweeps expired entries for the whole (shared) cache.
  uv_timer_init(loop, &purge_timer_);
  purge_timer_.data = this;
  if (index_ == 0) {
    uv_timer_start(
        &purge_timer_,
        [](uv_timer_t* h) {
          auto* w = static_cast<Worker*>(h->data);
          w->ctx_.EnsureOnline();
          w->ctx_.cache.PurgeExpired(*w->ctx_.thread, w->ctx_.Now(), 4096);
        },
        ctx_.config->purge_interval_ms, ctx_.config->purge_interval_ms);
  }
  uv_timer_init(loop, &publish_timer_);
  publish_timer_.data = this;
  uv_timer_start(
      &publish_timer_,
      [](uv_timer_t* h) {
        auto* w = static_cast<Worker*>(h->data);
        w->path_.wasted().Publish();
        w->path_.rewritten().Publish();
        w->path_.queries().Publish();
        w->path_.admission().Publish();
      },
      1000, 1000);
  if (absl::Status st = misses_.Start(); !st.ok()) return st;
  udp_.Start(sockets_.udp);
  if (absl::Status st = tcp_.Start(sockets_.tcp); !st.ok()) return st;
  ran_ = true;
  os_thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void Worker::OnStop() {
  ctx_.stopping = true;
  udp_.Stop();
  tcp_.Stop();
  misses_.Shutdown();  // fails the misses in flight; nobody is answered any more
  rewrite_.Shutdown();
  uv_close(reinterpret_cast<uv_handle_t*>(&purge_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&publish_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&stop_async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&reconfigure_async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&drain_async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
}

void Worker::Drain() {
  if (os_thread_.joinable()) {
    uv_async_send(&drain_async_);
  } else {
    drained_.store(true, std::memory_order_release);
  }
}

void Worker::OnDrain() {
  if (ctx_.stopping || uv_is_active(reinterpret_cast<uv_handle_t*>(&drain_timer_))) return;
  udp_.StopReading();
  tcp_.Drain();
  // Replies of misses and rewrites come back through the loop; 10 ms between looks is well
  // below any upstream's answer time and costs nothing while draining.
  uv_timer_start(
      &drain_timer_,
      [](uv_timer_t* h) {
        auto* w = static_cast<Worker*>(h->data);
        if (w->misses_.Idle() && w->rewrite_.Idle() && w->tcp_.Idle()) {
          uv_timer_stop(h);
          w->drained_.store(true, std::memory_order_release);
        }
      },
      0, 10);
}

void Worker::Reconfigure(std::shared_ptr<const ServeConfig> next) {
  if (ctx_.loop == nullptr) {  // not started: nothing runs yet, nothing to rebuild
    ctx_.config_owner = std::move(next);
    ctx_.config = ctx_.config_owner.get();
    return;
  }
  {
    std::lock_guard lock(next_mu_);
    next_ = std::move(next);
  }
  uv_async_send(&reconfigure_async_);
}

void Worker::OnReconfigure() {
  std::shared_ptr<const ServeConfig> next;
  {
    std::lock_guard lock(next_mu_);
    next = std::move(next_);
  }
  if (!next || ctx_.stopping) return;
  // The old configuration stays alive until its forwarders are idle: pendings point into it only
  // through their generation, which keeps copies of what it needs.
  std::shared_ptr<const ServeConfig> old = std::move(ctx_.config_owner);
  ctx_.config_owner = std::move(next);
  ctx_.config = ctx_.config_owner.get();
  if (absl::Status st = misses_.Reconfigure(); !st.ok()) {
    // Forwarders that cannot be created (sockets exhausted): keep the old configuration.
    std::fprintf(stderr, "nodedns: worker %d: reload not applied: %s\n", index_,
                 std::string(st.message()).c_str());
    ctx_.config_owner = std::move(old);
    ctx_.config = ctx_.config_owner.get();
  }
}

void Worker::Run() {
  ctx_.thread = ctx_.cache.RegisterThread();
  uv_run(ctx_.loop, UV_RUN_DEFAULT);
  ctx_.thread.reset();
  for (const ListenFd& l : sockets_.udp) close(l.fd);
}

void Worker::Stop() {
  // A worker whose Start() failed, or that Run() never reached, has no thread to tell.
  if (os_thread_.joinable()) uv_async_send(&stop_async_);
}

void Worker::Join() {
  if (os_thread_.joinable()) os_thread_.join();
}

}  // namespace nodedns::proxy
