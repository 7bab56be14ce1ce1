// The nodedns-loadgen measurement loop; see load_runner.h.
//
// Hot-path design, measured against nodedns-echo on the 2-core lab VM (docs/benchmarks-harness.md):
//  - Queries are built once; a send uses a two-element iovec, {2-byte ID, rest of the prebuilt
//    query}, so nothing is copied or allocated per packet.
//  - One sendmmsg and one recvmmsg move up to `batch` packets; a syscall per packet caps a single
//    core near 130k qps (the dnsperf ceiling noted in /work/shared/lab/peers/README.md).
//  - The clock is read once per batch, not per packet: latencies have the resolution of a loop
//    iteration (a few microseconds at full load), well below the loopback RTT under load.
//  - Per-socket tables indexed by the 16-bit ID give O(1) matching; a FIFO in send order finds
//    timed-out queries without scanning, since every query has the same timeout.
#include "bench/load_runner.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/query_file.h"

namespace nodedns::bench {
namespace {

constexpr size_t kIdSpace = 65536;
constexpr int kMaxBatch = 1024;
// Large enough for any UDP reply a resolver would send without TCP fallback (EDNS sizes up to
// 4096 are common); longer datagrams are truncated by the kernel and still counted.
constexpr size_t kReceiveBufferSize = 4096;

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Network-order IDs, so that the first iovec of a send can point into constant storage.
const std::array<uint16_t, kIdSpace>& IdsInNetworkOrder() {
  static const auto* table = [] {
    auto* ids = new std::array<uint16_t, kIdSpace>;
    for (size_t i = 0; i < kIdSpace; ++i) (*ids)[i] = htons(static_cast<uint16_t>(i));
    return ids;
  }();
  return *table;
}

struct Slot {
  uint64_t sent_ns = 0;
  uint32_t query = 0;
  uint32_t seq = 0;  // Matches the FIFO entry that created this use of the ID.
  bool in_use = false;
};

// One source socket and its ID space.
struct Socket {
  int fd = -1;
  std::vector<Slot> slots = std::vector<Slot>(kIdSpace);
  // Free IDs as a ring: a released ID goes to the back, so an ID is reused as late as possible,
  // which keeps a late reply from being mistaken for the answer to a newer query.
  std::vector<uint16_t> free_ids = std::vector<uint16_t>(kIdSpace);
  size_t free_head = 0;
  size_t free_count = kIdSpace;

  Socket() {
    for (size_t i = 0; i < kIdSpace; ++i) free_ids[i] = static_cast<uint16_t>(i);
  }
  ~Socket() {
    if (fd >= 0) close(fd);
  }
  uint16_t PeekFree(size_t i) const { return free_ids[(free_head + i) & (kIdSpace - 1)]; }
  void PopFree(size_t n) {
    free_head = (free_head + n) & (kIdSpace - 1);
    free_count -= n;
  }
  void PushFree(uint16_t id) {
    free_ids[(free_head + free_count) & (kIdSpace - 1)] = id;
    ++free_count;
  }
};

struct Pending {
  uint32_t socket;
  uint32_t seq;
  uint16_t id;
};

// Growable ring of Pending entries in send order. Reserved up front for the expected number of
// queries in flight within one timeout, so it does not grow in the hot path in practice.
class PendingQueue {
 public:
  explicit PendingQueue(size_t reserve) {
    size_t capacity = 1024;
    while (capacity < reserve) capacity <<= 1;
    ring_.resize(capacity);
  }
  bool empty() const { return size_ == 0; }
  const Pending& front() const { return ring_[head_]; }
  void pop() {
    head_ = (head_ + 1) & (ring_.size() - 1);
    --size_;
  }
  void push(const Pending& pending) {
    if (size_ == ring_.size()) Grow();
    ring_[(head_ + size_) & (ring_.size() - 1)] = pending;
    ++size_;
  }

 private:
  void Grow() {
    std::vector<Pending> bigger(ring_.size() * 2);
    for (size_t i = 0; i < size_; ++i) bigger[i] = ring_[(head_ + i) & (ring_.size() - 1)];
    ring_ = std::move(bigger);
    head_ = 0;
  }
  std::vector<Pending> ring_;
  size_t head_ = 0;
  size_t size_ = 0;
};

absl::Status OpenSocket(const SocketAddress& server, Socket& socket_out) {
  const int fd = socket(server.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  socket_out.fd = fd;
  // Deep buffers absorb a whole window of replies while the loop is busy sending. The FORCE
  // variants exceed net.core.[rw]mem_max when running as root; otherwise the plain ones apply.
  const int size = 8 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  }
  // Connected: the kernel filters out datagrams from other sources and no address is needed per
  // message in either direction.
  if (connect(fd, server.get(), server.length) != 0) {
    return absl::InternalError(
        absl::StrCat("connect ", server.ToString(), ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

class Runner {
 public:
  Runner(const LoadConfig& config, const std::atomic<bool>* stop)
      : config_(config),
        stop_(stop),
        batch_(static_cast<size_t>(config.batch)),
        timeout_ns_(static_cast<uint64_t>(config.timeout_s * 1e9)),
        pending_(config.rate > 0 ? static_cast<size_t>(config.rate * config.timeout_s * 1.25)
                                 : static_cast<size_t>(config.window) * 4),
        sockets_(static_cast<size_t>(config.sockets)) {
    for (const std::vector<uint8_t>& wire : config.queries) {
      question_end_.push_back(QuestionEnd(wire));
    }
    // recvmmsg only writes msg_len and msg_flags back, so the headers are set up once.
    for (size_t i = 0; i < batch_; ++i) {
      recv_iov_[i] = {recv_buffers_.data() + i * kReceiveBufferSize, kReceiveBufferSize};
      recv_msgs_[i].msg_hdr.msg_iov = &recv_iov_[i];
      recv_msgs_[i].msg_hdr.msg_iovlen = 1;
    }
  }

  absl::StatusOr<LoadResult> Run();

 private:
  size_t SendBatch(Socket& socket, uint32_t socket_index, size_t n, uint64_t now);
  size_t ReceiveBatch(Socket& socket);
  void ExpireTimeouts(uint64_t now);
  void Release(Socket& socket, uint16_t id) {
    socket.slots[id].in_use = false;
    socket.PushFree(id);
    --outstanding_;
  }

  const LoadConfig& config_;
  const std::atomic<bool>* stop_;
  const size_t batch_;
  const uint64_t timeout_ns_;
  PendingQueue pending_;
  std::vector<Socket> sockets_;
  std::vector<size_t> question_end_;
  LoadResult result_;
  uint64_t outstanding_ = 0;
  uint32_t next_seq_ = 0;
  size_t next_query_ = 0;
  uint64_t last_answer_ns_ = 0;

  // Batch scratch space, reused by every call.
  std::array<mmsghdr, kMaxBatch> send_msgs_{};
  std::array<std::array<iovec, 2>, kMaxBatch> send_iov_{};
  std::array<mmsghdr, kMaxBatch> recv_msgs_{};
  std::array<iovec, kMaxBatch> recv_iov_{};
  std::vector<uint8_t> recv_buffers_ = std::vector<uint8_t>(kMaxBatch * kReceiveBufferSize);
};

size_t Runner::SendBatch(Socket& socket, uint32_t socket_index, size_t n, uint64_t now) {
  const std::array<uint16_t, kIdSpace>& ids = IdsInNetworkOrder();
  const size_t query_count = config_.queries.size();
  size_t query = next_query_;
  for (size_t i = 0; i < n; ++i) {
    const uint16_t id = socket.PeekFree(i);
    const std::vector<uint8_t>& wire = config_.queries[query];
    send_iov_[i][0] = {const_cast<uint16_t*>(&ids[id]), 2};
    send_iov_[i][1] = {const_cast<uint8_t*>(wire.data() + 2), wire.size() - 2};
    send_msgs_[i].msg_hdr.msg_iov = send_iov_[i].data();
    send_msgs_[i].msg_hdr.msg_iovlen = 2;
    if (++query == query_count) query = 0;
  }
  const int sent = sendmmsg(socket.fd, send_msgs_.data(), static_cast<unsigned>(n), MSG_DONTWAIT);
  if (sent <= 0) {
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      ++result_.send_errors;
    }
    return 0;
  }
  for (int i = 0; i < sent; ++i) {
    const uint16_t id = socket.PeekFree(static_cast<size_t>(i));
    Slot& slot = socket.slots[id];
    slot.sent_ns = now;
    slot.query = static_cast<uint32_t>(next_query_);
    slot.seq = next_seq_;
    slot.in_use = true;
    pending_.push({socket_index, next_seq_, id});
    ++next_seq_;
    if (++next_query_ == query_count) next_query_ = 0;
  }
  socket.PopFree(static_cast<size_t>(sent));
  outstanding_ += static_cast<uint64_t>(sent);
  result_.sent += static_cast<uint64_t>(sent);
  return static_cast<size_t>(sent);
}

size_t Runner::ReceiveBatch(Socket& socket) {
  const int received =
      recvmmsg(socket.fd, recv_msgs_.data(), static_cast<unsigned>(batch_), MSG_DONTWAIT, nullptr);
  if (received <= 0) {
    // ECONNREFUSED reports an ICMP port-unreachable for an earlier send: nothing listens yet.
    if (received < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      ++result_.send_errors;
    }
    return 0;
  }
  const uint64_t now = NowNs();
  for (int i = 0; i < received; ++i) {
    const uint8_t* reply = recv_buffers_.data() + static_cast<size_t>(i) * kReceiveBufferSize;
    const size_t length = std::min<size_t>(recv_msgs_[i].msg_len, kReceiveBufferSize);
    if (length < 12 || (reply[2] & 0x80) == 0) {  // Too short for a header, or QR=0.
      ++result_.mismatched;
      continue;
    }
    const uint16_t id = static_cast<uint16_t>(reply[0] << 8 | reply[1]);
    Slot& slot = socket.slots[id];
    if (!slot.in_use) {
      ++result_.late;
      continue;
    }
    // RFC 1035 section 7.3 / RFC 5452: a reply must repeat the question. Replies without a
    // question section (e.g. some FORMERR) are accepted on the ID alone.
    const size_t question_end = question_end_[slot.query];
    const uint16_t qdcount = static_cast<uint16_t>(reply[4] << 8 | reply[5]);
    if (qdcount != 0 &&
        (length < question_end || std::memcmp(reply + 12, config_.queries[slot.query].data() + 12,
                                              question_end - 12) != 0)) {
      ++result_.mismatched;
      continue;
    }
    result_.latency_us.Record((now - slot.sent_ns) / 1000);
    ++result_.rcodes[reply[3] & 0x0f];
    ++result_.answered;
    Release(socket, id);
  }
  last_answer_ns_ = now;
  return static_cast<size_t>(received);
}

void Runner::ExpireTimeouts(uint64_t now) {
  while (!pending_.empty()) {
    const Pending& front = pending_.front();
    Socket& socket = sockets_[front.socket];
    const Slot& slot = socket.slots[front.id];
    if (slot.in_use && slot.seq == front.seq) {
      if (now - slot.sent_ns < timeout_ns_) return;
      ++result_.lost;
      Release(socket, front.id);
    }
    pending_.pop();
  }
}

absl::StatusOr<LoadResult> Runner::Run() {
  for (Socket& socket : sockets_) {
    if (absl::Status status = OpenSocket(config_.server, socket); !status.ok()) return status;
  }
  std::vector<pollfd> poll_fds;
  for (const Socket& socket : sockets_) poll_fds.push_back({socket.fd, POLLIN, 0});

  const bool open_loop = config_.rate > 0;
  if (open_loop) {
    // The default 50 us timer slack would let ppoll oversleep by up to 50 us and turn the schedule
    // into bursts of rate * 50 us queries; 1 ns keeps the pacing to the kernel's timer resolution.
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  }
  const double cpu_start = ProcessCpuSeconds();
  const uint64_t start_ns = NowNs();
  const uint64_t send_end_ns = config_.duration_s > 0
                                   ? start_ns + static_cast<uint64_t>(config_.duration_s * 1e9)
                                   : UINT64_MAX;
  uint64_t sending_stopped_ns = 0;
  size_t next_socket = 0;

  for (;;) {
    uint64_t now = NowNs();
    bool sending = sending_stopped_ns == 0;
    if (sending && (now >= send_end_ns || (config_.count > 0 && result_.sent >= config_.count) ||
                    (stop_ != nullptr && stop_->load(std::memory_order_relaxed)))) {
      sending = false;
      sending_stopped_ns = std::min(now, send_end_ns);
    }
    if (!sending && outstanding_ == 0) break;

    // How many queries may go out now.
    uint64_t budget = 0;
    if (sending) {
      uint64_t target;
      if (open_loop) {
        // Sends due by now on the fixed schedule; a backlog (after a stall) is sent at once.
        target = static_cast<uint64_t>(static_cast<double>(now - start_ns) * 1e-9 * config_.rate);
        budget = target > result_.sent ? target - result_.sent : 0;
      } else {
        budget = outstanding_ < config_.window ? config_.window - outstanding_ : 0;
      }
      if (config_.count > 0) budget = std::min(budget, config_.count - result_.sent);
      // Bounded per iteration so that replies are read between bursts, even after a stall.
      budget = std::min<uint64_t>(budget, 8 * batch_);
    }
    size_t sent_now = 0;
    for (size_t tries = 0; budget > 0 && tries < sockets_.size(); ++tries) {
      Socket& socket = sockets_[next_socket];
      const uint32_t index = static_cast<uint32_t>(next_socket);
      next_socket = (next_socket + 1) % sockets_.size();
      const size_t n = std::min<uint64_t>({budget, batch_, socket.free_count});
      if (n == 0) continue;
      const size_t sent = SendBatch(socket, index, n, now);
      sent_now += sent;
      budget -= sent;
      if (sent == n) tries = static_cast<size_t>(-1);  // Progress: allow another round.
    }

    size_t received_now = 0;
    for (Socket& socket : sockets_) {
      // Drain up to a few batches per socket before going back to sending.
      for (int round = 0; round < 4; ++round) {
        const size_t got = ReceiveBatch(socket);
        received_now += got;
        if (got < batch_) break;
      }
    }
    if (received_now > 0) now = last_answer_ns_;
    ExpireTimeouts(now);

    if (sent_now > 0 || received_now > 0) continue;
    // Idle: sleep until a reply arrives, the next scheduled send, the oldest timeout, or the end
    // of the sending phase, whichever is first.
    uint64_t wake_ns = now + 100'000'000;
    if (!pending_.empty()) {
      const Pending& front = pending_.front();
      wake_ns = std::min(wake_ns, sockets_[front.socket].slots[front.id].sent_ns + timeout_ns_);
    }
    if (sending) {
      wake_ns = std::min(wake_ns, send_end_ns);
      // With every ID in flight (a server dropping much of an open-loop load), the next send
      // waits for a reply or a timeout, not for the schedule: no busy loop.
      const bool ids_free = std::any_of(sockets_.begin(), sockets_.end(),
                                        [](const Socket& socket) { return socket.free_count > 0; });
      if (open_loop && ids_free) {
        const double next_send_s = static_cast<double>(result_.sent + 1) / config_.rate;
        wake_ns = std::min(wake_ns, start_ns + static_cast<uint64_t>(next_send_s * 1e9));
      }
    }
    const uint64_t wait_ns = wake_ns > now ? wake_ns - now : 0;
    if (wait_ns == 0) continue;
    timespec wait{static_cast<time_t>(wait_ns / 1000000000u),
                  static_cast<long>(wait_ns % 1000000000u)};
    ppoll(poll_fds.data(), poll_fds.size(), &wait, nullptr);
  }

  const uint64_t end_ns = std::max(sending_stopped_ns, last_answer_ns_);
  result_.send_elapsed_s = static_cast<double>(sending_stopped_ns - start_ns) * 1e-9;
  result_.elapsed_s = static_cast<double>(end_ns - start_ns) * 1e-9;
  result_.qps = result_.elapsed_s > 0 ? result_.answered / result_.elapsed_s : 0;
  if (open_loop) {
    double scheduled = result_.send_elapsed_s * config_.rate;
    if (config_.count > 0) scheduled = std::min(scheduled, static_cast<double>(config_.count));
    result_.unsent = scheduled > result_.sent ? static_cast<uint64_t>(scheduled) - result_.sent : 0;
  }
  result_.cpu_s = ProcessCpuSeconds() - cpu_start;
  return std::move(result_);
}

const char* RcodeName(size_t rcode) {
  static constexpr const char* kNames[16] = {
      "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
      "NXRRSET", "NOTAUTH", "NOTZONE",  "RCODE11",  "RCODE12", "RCODE13", "RCODE14",  "RCODE15"};
  return kNames[rcode & 15];
}

}  // namespace

int LoadConfig::SocketsForOpenLoop() const {
  if (rate <= 0) return sockets;
  // 10% headroom, so that a dropping server never exhausts the IDs: when it did, sends bunched up
  // behind expiring timeouts and the bursts overflowed the server's socket buffer again.
  const double needed = std::ceil(rate * timeout_s * 1.1 / static_cast<double>(kIdSpace));
  return std::max(sockets, static_cast<int>(std::min(needed, 64.0)));
}

absl::Status ValidateConfig(const LoadConfig& config) {
  if (config.queries.empty()) return absl::InvalidArgumentError("no queries");
  for (const std::vector<uint8_t>& wire : config.queries) {
    if (wire.size() < 12) return absl::InvalidArgumentError("query shorter than a DNS header");
  }
  if (config.duration_s <= 0 && config.count == 0) {
    return absl::InvalidArgumentError("need a duration or a count");
  }
  if (config.duration_s < 0 || !std::isfinite(config.duration_s)) {
    return absl::InvalidArgumentError("duration must be >= 0");
  }
  if (!(config.timeout_s > 0) || config.timeout_s > 3600) {
    return absl::InvalidArgumentError("timeout must be in (0, 3600] seconds");
  }
  if (config.batch < 1 || config.batch > kMaxBatch) {
    return absl::InvalidArgumentError(absl::StrCat("batch must be in [1, ", kMaxBatch, "]"));
  }
  if (config.sockets < 1 || config.sockets > 64) {
    return absl::InvalidArgumentError("sockets must be in [1, 64]");
  }
  if (config.rate < 0 || !std::isfinite(config.rate)) {
    return absl::InvalidArgumentError("rate must be >= 0");
  }
  if (config.rate == 0 &&
      (config.window < 1 || config.window > (kIdSpace - 1) * static_cast<size_t>(config.sockets))) {
    return absl::InvalidArgumentError(
        "window must be >= 1 and leave IDs to spare (at most 65535 per socket)");
  }
  return absl::OkStatus();
}

absl::StatusOr<LoadResult> RunLoad(const LoadConfig& config, const std::atomic<bool>* stop) {
  if (absl::Status status = ValidateConfig(config); !status.ok()) return status;
  // The runner holds ~1.5 MB per socket plus batch buffers: heap, not stack.
  auto runner = std::make_unique<Runner>(config, stop);
  return runner->Run();
}

std::string FormatJson(const LoadConfig& config, const LoadResult& result) {
  const LogLinearHistogram& h = result.latency_us;
  std::string rcodes;
  for (size_t i = 0; i < result.rcodes.size(); ++i) {
    if (result.rcodes[i] == 0) continue;
    absl::StrAppend(&rcodes, rcodes.empty() ? "" : ",", "\"", RcodeName(i),
                    "\":", result.rcodes[i]);
  }
  return absl::StrFormat(
      "{\"server\":\"%s\",\"mode\":\"%s\",\"window\":%u,\"rate\":%.1f,\"queries\":%u,"
      "\"batch\":%d,\"sockets\":%d,\"timeout_s\":%.3f,"
      "\"sent\":%u,\"unsent\":%u,\"answered\":%u,\"lost\":%u,\"late\":%u,\"mismatched\":%u,"
      "\"errors\":%u,"
      "\"send_elapsed_s\":%.6f,\"elapsed_s\":%.6f,\"qps\":%.1f,\"send_qps\":%.1f,"
      "\"loadgen_cpu_s\":%.3f,"
      "\"latency_us\":{\"min\":%u,\"p50\":%u,\"p90\":%u,\"p99\":%u,\"p999\":%u,\"max\":%u,"
      "\"mean\":%.1f},\"rcodes\":{%s}}",
      config.server.ToString(), config.rate > 0 ? "open" : "closed", config.window, config.rate,
      config.queries.size(), config.batch, config.sockets, config.timeout_s, result.sent,
      result.unsent, result.answered, result.lost, result.late, result.mismatched,
      result.send_errors, result.send_elapsed_s, result.elapsed_s, result.qps,
      result.send_elapsed_s > 0 ? result.sent / result.send_elapsed_s : 0.0, result.cpu_s, h.Min(),
      h.Percentile(50), h.Percentile(90), h.Percentile(99), h.Percentile(99.9), h.Max(), h.Mean(),
      rcodes);
}

std::string FormatHuman(const LoadConfig& config, const LoadResult& result) {
  const LogLinearHistogram& h = result.latency_us;
  std::string rcodes;
  for (size_t i = 0; i < result.rcodes.size(); ++i) {
    if (result.rcodes[i] != 0) absl::StrAppend(&rcodes, " ", RcodeName(i), "=", result.rcodes[i]);
  }
  const std::string mode = config.rate > 0 ? absl::StrFormat("open loop at %.0f qps", config.rate)
                                           : absl::StrFormat("closed window %u", config.window);
  return absl::StrFormat(
      "server %s, %s, %zu distinct queries, batch %d, %d socket(s)\n"
      "  sent %u, answered %u, lost %u (late %u, mismatched %u, errors %u), unsent %u\n"
      "  %.3f s: %.0f answers/s (sent %.0f/s), loadgen CPU %.2f s\n"
      "  latency us: min %u p50 %u p90 %u p99 %u p99.9 %u max %u mean %.1f\n"
      "  rcodes:%s\n",
      config.server.ToString(), mode, config.queries.size(), config.batch, config.sockets,
      result.sent, result.answered, result.lost, result.late, result.mismatched, result.send_errors,
      result.unsent, result.elapsed_s, result.qps,
      result.send_elapsed_s > 0 ? result.sent / result.send_elapsed_s : 0.0, result.cpu_s, h.Min(),
      h.Percentile(50), h.Percentile(90), h.Percentile(99), h.Percentile(99.9), h.Max(), h.Mean(),
      rcodes.empty() ? " none" : rcodes);
}

}  // namespace nodedns::bench
