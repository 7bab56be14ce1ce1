// The UDP hot path; see udp_frontend.h.
#include "proxy/udp_frontend.h"

#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace nodedns::proxy {

struct UdpFrontend::Socket {
  explicit Socket(QueueDelayShedder::Options o) : shedder(o) {}
  uv_poll_t poll;
  UdpFrontend* frontend;
  int fd;
  uint8_t server;  // index of its listen address
  QueueDelayShedder shedder;
};

struct UdpFrontend::Batch {
  mmsghdr in[kBatch];
  iovec in_iov[kBatch];
  sockaddr_storage from[kBatch];
  mmsghdr out[kBatch];
  iovec out_iov[kBatch];
  dns::QueryInfo info[kBatch];
  dns::QueryStatus status[kBatch];
  LocalAnswer local[kBatch];  // for status kOk: answered here instead of the cache or upstream
  cache::CacheKey keys[kBatch];
  uint64_t delay_ns[kBatch];  // how long each datagram waited in the socket (shedding on)
  bool shed[kBatch];          // dropped unread: it waited too long (shedding on)
  // SCM_TIMESTAMPNS of each datagram (shedding on).
  alignas(cmsghdr) uint8_t control[kBatch][CMSG_SPACE(sizeof(timespec))];
  alignas(64) uint8_t in_buf[kBatch][kUdpBufSize];
  alignas(64) uint8_t out_buf[kBatch][kUdpBufSize];
};

struct UdpFrontend::Outbox {
  int n = 0;
  int fd[kBatch];
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  sockaddr_storage to[kBatch];
  alignas(64) uint8_t buf[kBatch][kUdpBufSize];
};

UdpFrontend::UdpFrontend(WorkerContext& ctx, QueryPath& path, MissTable& misses)
    : ctx_(ctx), path_(path), misses_(misses), batch_(new Batch), outbox_(new Outbox) {
  Batch& b = *batch_;
  for (int i = 0; i < kBatch; ++i) {
    b.in_iov[i] = {b.in_buf[i], kUdpBufSize};
    b.in[i].msg_hdr = {};
    b.in[i].msg_hdr.msg_iov = &b.in_iov[i];
    b.in[i].msg_hdr.msg_iovlen = 1;
    b.in[i].msg_hdr.msg_name = &b.from[i];
    b.out[i].msg_hdr = {};
    b.out[i].msg_hdr.msg_iov = &b.out_iov[i];
    b.out[i].msg_hdr.msg_iovlen = 1;
  }
}

UdpFrontend::~UdpFrontend() = default;

void UdpFrontend::Start(std::span<const ListenFd> fds) {
  uv_check_init(ctx_.loop, &outbox_check_);
  outbox_check_.data = this;
  uv_check_start(&outbox_check_,
                 [](uv_check_t* h) { static_cast<UdpFrontend*>(h->data)->FlushOutbox(); });
  uv_unref(reinterpret_cast<uv_handle_t*>(&outbox_check_));
  uv_idle_init(ctx_.loop, &outbox_idle_);
  const QueueDelayShedder::Options shed{
      .target_ns = uint64_t{ctx_.config->overload_queue_delay_ms} * 1'000'000,
      .interval_ns = uint64_t{ctx_.config->overload_interval_ms} * 1'000'000};
  for (const ListenFd& l : fds) {
    if (shed.target_ns != 0) {
      // The kernel's receive time of every datagram, as a control message: what its queue delay
      // is measured from. A socket handed over keeps the option; setting it again is harmless.
      const int one = 1;
      setsockopt(l.fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    }
    auto s = std::make_unique<Socket>(shed);
    s->frontend = this;
    s->fd = l.fd;
    s->server = l.server;
    uv_poll_init_socket(ctx_.loop, &s->poll, l.fd);
    s->poll.data = s.get();
    uv_poll_start(&s->poll, UV_READABLE, &OnReadable);
    sockets_.push_back(std::move(s));
  }
}

void UdpFrontend::StopReading() {
  for (auto& s : sockets_) uv_poll_stop(&s->poll);
}

void UdpFrontend::Stop() {
  for (auto& s : sockets_) {
    uv_poll_stop(&s->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->poll), nullptr);
  }
  FlushOutbox();
  uv_close(reinterpret_cast<uv_handle_t*>(&outbox_check_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&outbox_idle_), nullptr);
}

void UdpFrontend::OnReadable(uv_poll_t* handle, int status, int events) {
  auto* s = static_cast<Socket*>(handle->data);
  UdpFrontend* f = s->frontend;
  if (status < 0 || f->ctx_.stopping) return;
  f->ctx_.EnsureOnline();
  Batch& b = *f->batch_;
  // Bounded, so that TCP clients and upstream replies get their turn under a flood.
  const bool timestamps = f->ctx_.config->overload_queue_delay_ms != 0;
  for (int round = 0; round < 16; ++round) {
    for (int i = 0; i < kBatch; ++i) {
      b.in[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      if (timestamps) {
        b.in[i].msg_hdr.msg_control = b.control[i];
        b.in[i].msg_hdr.msg_controllen = sizeof b.control[i];
      }
    }
    const int n = recvmmsg(s->fd, b.in, kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) {
      s->shedder.OnEmpty();
      break;
    }
    f->ServeBatch(*s, n);
    f->ctx_.thread->Quiescent();  // no pointer into the cache survives a batch
    // No break on a partial batch: read until the socket is empty. Under open-loop load more
    // datagrams have usually arrived while this batch was served, and reading them now saves
    // the epoll_wait of a trip through the loop. bench/compare, latency scenario at 150k qps:
    // p99 494 → 176 µs and server CPU 97 → 90%; closed-loop hits unchanged (A/B, 402k vs 405k
    // answers per CPU-second).
  }
}

// Queue delays from the kernel's receive timestamps, and the shedder's verdict on the batch. One
// clock read per batch; the datagrams' own times come with them (SO_TIMESTAMPNS).
void UdpFrontend::MeasureQueueDelay(Socket& s, int n) {
  Batch& b = *batch_;
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  const uint64_t now_ns = uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
  uint64_t least = UINT64_MAX;
  for (int i = 0; i < n; ++i) {
    uint64_t delay = 0;
    msghdr& h = b.in[i].msg_hdr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
      timespec at;
      std::memcpy(&at, CMSG_DATA(c), sizeof at);
      const uint64_t at_ns = uint64_t(at.tv_sec) * 1'000'000'000 + uint64_t(at.tv_nsec);
      delay = now_ns > at_ns ? now_ns - at_ns : 0;
    }
    b.delay_ns[i] = delay;
    least = std::min(least, delay);
  }
  s.shedder.OnBatch(now_ns, least);
  uint64_t shed = 0;
  for (int i = 0; i < n; ++i) {
    b.shed[i] = s.shedder.Shed(now_ns, b.delay_ns[i]);
    shed += b.shed[i];
  }
  ctx_.counters.shed_queue_delay.Inc(shed);
}

void UdpFrontend::ServeBatch(Socket& s, int n) {
  Batch& b = *batch_;
  const uint64_t now = ctx_.Now();
  if (ctx_.coredns) ctx_.batch_ns = uv_hrtime();
  ctx_.counters.queries_udp.Inc(n);
  ctx_.counters.udp_batches.Inc();
  const bool shedding_on = ctx_.config->overload_queue_delay_ms != 0;
  if (shedding_on) MeasureQueueDelay(s, n);
  // Pass 1: parse, classify, build keys, prefetch the slots. Passes 2 and 3 then find them in
  // cache.
  const AllowList* allow = ctx_.config->allow.open() ? nullptr : &ctx_.config->allow;
  for (int i = 0; i < n; ++i) {
    const std::span<const uint8_t> query(b.in_buf[i], b.in[i].msg_len);
    if (shedding_on && b.shed[i]) {
      b.status[i] = dns::QueryStatus::kDrop;  // nor looked up (the prefetch pass skips it)
      continue;
    }
    b.status[i] = dns::ParseQuery(query, b.info[i]);
    if (b.status[i] == dns::QueryStatus::kOk && (b.in[i].msg_hdr.msg_flags & MSG_TRUNC)) {
      b.status[i] = dns::QueryStatus::kFormErr;  // longer than any sane query
    }
    if (b.status[i] != dns::QueryStatus::kOk) continue;
    const dns::QueryInfo& q = b.info[i];
    if (allow != nullptr && !allow->Allows(b.from[i])) [[unlikely]] {
      b.local[i] = LocalAnswer::kNotAllowed;
      continue;
    }
    // Before any cache work: a class compare and a type range check for ordinary queries.
    b.local[i] = ClassifyQuery(query, q, path_.chaos_enabled());
    if (b.local[i] != LocalAnswer::kNone) continue;
    b.keys[i].Assign({b.in_buf[i] + dns::kHeaderSize, q.qname_length}, q.qtype, q.qclass, q.do_bit,
                     q.cd());
    ctx_.cache.PrefetchSlot(b.keys[i]);
  }
  for (int i = 0; i < n; ++i) {
    if (b.status[i] == dns::QueryStatus::kOk && b.local[i] == LocalAnswer::kNone) {
      ctx_.cache.PrefetchEntry(b.keys[i]);
    }
  }
  // Pass 3: the query path answers, or takes the query for later.
  int out = 0;
  for (int i = 0; i < n; ++i) {
    if (shedding_on && b.shed[i]) continue;  // shed: no reply
    const Request r{.query = {b.in_buf[i], b.in[i].msg_len},
                    .q = b.info[i],
                    .status = b.status[i],
                    .local = b.local[i],
                    .key = b.keys[i],
                    .from = b.from[i],
                    .from_len = b.in[i].msg_hdr.msg_namelen,
                    .sink = this,
                    .tcp = false,
                    .udp_fd = s.fd,
                    .conn_id = 0,
                    .server = s.server};
    size_t size = 0;
    if (path_.Serve(r, {b.out_buf[out], kUdpBufSize}, size, now) != Verdict::kReply) continue;
    b.out_iov[out].iov_base = b.out_buf[out];
    b.out_iov[out].iov_len = size;
    b.out[out].msg_hdr.msg_name = &b.from[i];
    b.out[out].msg_hdr.msg_namelen = b.in[i].msg_hdr.msg_namelen;
    ++out;
  }
  // This batch's misses leave for upstream in one sendmmsg per upstream socket.
  misses_.Flush();
  for (int done = 0; done < out;) {
    const int sent = sendmmsg(s.fd, b.out + done, static_cast<unsigned>(out - done), MSG_DONTWAIT);
    if (sent > 0) {
      done += sent;
    } else if (sent < 0 && errno == EINTR) {
      continue;
    } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ctx_.counters.send_errors.Inc(static_cast<uint64_t>(out - done));  // buffer full: drop
      break;
    } else {
      ctx_.counters.send_errors.Inc();  // this destination failed (e.g. unreachable): skip it
      ++done;
    }
  }
  // The batch's replies are sent: their request durations end here.
  ctx_.FlushDurations();
}

void UdpFrontend::SendReply(const Client& c, std::span<const uint8_t> reply) {
  Outbox& o = *outbox_;
  if (reply.size() > kUdpBufSize) {  // never for UDP replies (at most 1232 bytes); kept safe
    if (sendto(c.udp_fd, reply.data(), reply.size(), MSG_DONTWAIT,
               reinterpret_cast<const sockaddr*>(&c.addr), c.addr_len) < 0) {
      ctx_.counters.send_errors.Inc();
    }
    return;
  }
  if (o.n == kBatch) FlushOutbox();
  if (o.n == 0) uv_idle_start(&outbox_idle_, [](uv_idle_t*) {});
  const int i = o.n++;
  o.fd[i] = c.udp_fd;
  o.to[i] = c.addr;
  std::memcpy(o.buf[i], reply.data(), reply.size());
  o.iov[i] = {o.buf[i], reply.size()};
  o.msgs[i] = {};
  o.msgs[i].msg_hdr.msg_name = &o.to[i];
  o.msgs[i].msg_hdr.msg_namelen = c.addr_len;
  o.msgs[i].msg_hdr.msg_iov = &o.iov[i];
  o.msgs[i].msg_hdr.msg_iovlen = 1;
}

void UdpFrontend::FlushOutbox() {
  Outbox& o = *outbox_;
  // Runs of the same socket (there is one per listen address) go out in one sendmmsg each.
  for (int start = 0; start < o.n;) {
    int end = start + 1;
    while (end < o.n && o.fd[end] == o.fd[start]) ++end;
    for (int done = start; done < end;) {
      const int sent =
          sendmmsg(o.fd[start], o.msgs + done, static_cast<unsigned>(end - done), MSG_DONTWAIT);
      if (sent > 0) {
        done += sent;
      } else if (sent < 0 && errno == EINTR) {
        continue;
      } else {
        ctx_.counters.send_errors.Inc();  // this destination failed, or the buffer is full
        ++done;
      }
    }
    start = end;
  }
  o.n = 0;
  uv_idle_stop(&outbox_idle_);
}

}  // namespace nodedns::proxy
