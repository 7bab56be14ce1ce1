// Node-wide upstream health; see health.h.
#include "upstream/health.h"

#include <time.h>

#include <algorithm>

#include "dns/wire.h"

namespace nodedns::upstream {

UpstreamHealth::UpstreamHealth(size_t servers, Options options)
    : servers_(servers),
      tracked_(std::min(servers, kMaxTracked)),
      options_(std::move(options)),
      state_(new State[std::max<size_t>(tracked_, 1)]) {}

uint64_t UpstreamHealth::NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

void UpstreamHealth::ReportSuccess(size_t server) {
  if (server >= tracked_) return;
  State& s = state_[server];
  // Loads first: a healthy server's replies then write nothing shared.
  if (s.fails.load(std::memory_order_relaxed) != 0) s.fails.store(0, std::memory_order_relaxed);
  if (s.down.load(std::memory_order_relaxed)) MarkUp(server);
}

void UpstreamHealth::ReportFailure(size_t server) {
  if (!enabled() || server >= tracked_) return;
  State& s = state_[server];
  if (s.down.load(std::memory_order_relaxed)) return;  // all down: traffic still fails on it
  if (s.fails.fetch_add(1, std::memory_order_relaxed) + 1 < options_.max_fails) return;
  bool up = false;
  if (!s.down.compare_exchange_strong(up, true, std::memory_order_relaxed)) return;  // down
  s.next_probe_ms.store(NowMs() + options_.check_interval_ms, std::memory_order_relaxed);
  s.marked_down.fetch_add(1, std::memory_order_relaxed);
  const uint64_t bit = uint64_t{1} << server;
  const uint64_t mask = down_mask_.fetch_or(bit, std::memory_order_relaxed) | bit;
  const uint64_t all = tracked_ == kMaxTracked ? ~uint64_t{0} : (uint64_t{1} << tracked_) - 1;
  if (tracked_ == servers_ && mask == all) all_down_.fetch_add(1, std::memory_order_relaxed);
}

void UpstreamHealth::MarkUp(size_t server) {
  State& s = state_[server];
  bool down = true;
  if (!s.down.compare_exchange_strong(down, false, std::memory_order_relaxed)) return;
  s.fails.store(0, std::memory_order_relaxed);
  down_mask_.fetch_and(~(uint64_t{1} << server), std::memory_order_relaxed);
}

bool UpstreamHealth::ClaimProbe(size_t server, uint64_t now_ms, uint64_t lease_ms) {
  if (Up(server)) return false;
  State& s = state_[server];
  uint64_t due = s.next_probe_ms.load(std::memory_order_relaxed);
  if (due > now_ms) return false;
  // One winner among the workers whose timers fire at once; the lease covers the probe's wait.
  if (!s.next_probe_ms.compare_exchange_strong(due, now_ms + lease_ms, std::memory_order_relaxed)) {
    return false;
  }
  s.probes.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void UpstreamHealth::ProbeDone(size_t server, bool answered, uint64_t now_ms) {
  if (server >= tracked_) return;
  State& s = state_[server];
  if (answered) {
    MarkUp(server);
  } else {
    s.probe_failures.fetch_add(1, std::memory_order_relaxed);
  }
  s.next_probe_ms.store(now_ms + options_.check_interval_ms, std::memory_order_relaxed);
}

std::vector<uint8_t> UpstreamHealth::ProbeQuery() const {
  std::vector<uint8_t> q(dns::kHeaderSize, 0);
  if (options_.probe_rd) q[2] = 0x01;  // RD
  q[5] = 1;                            // QDCOUNT
  if (options_.probe_qname.empty()) {
    q.push_back(0);
  } else {
    q.insert(q.end(), options_.probe_qname.begin(), options_.probe_qname.end());
  }
  q.insert(q.end(), {0, 2, 0, 1});  // NS IN
  return q;
}

UpstreamHealth::ServerStats UpstreamHealth::Stats(size_t server) const {
  if (server >= tracked_) return {true, 0, 0, 0};
  const State& s = state_[server];
  return {!s.down.load(std::memory_order_relaxed), s.marked_down.load(std::memory_order_relaxed),
          s.probes.load(std::memory_order_relaxed),
          s.probe_failures.load(std::memory_order_relaxed)};
}

}  // namespace nodedns::upstream
