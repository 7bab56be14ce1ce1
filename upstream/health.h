// Whether each upstream server of a forward zone answers, shared by every worker's forwarders of
// the zone, so that one worker finding a server dead spares the others its timeouts.
//
// A server is marked down after `max_fails` consecutive failed tries: a try that timed out, an
// ICMP error on its UDP socket, or a TCP connection refused or closed before any answer. An
// answer of any rcode counts as success and resets the count. Rcodes are not failures on purpose:
// a SERVFAIL usually speaks of the name's own servers, not of the upstream, and counting it would
// let one client asking for a broken domain take a working upstream out for every name; a
// REFUSED may be a policy for some names, and since the probe below takes any reply as alive
// (as CoreDNS's forward plugin does), counting rcodes would flap the server down and up.
//
// Queries skip down servers while one is up (so no query pays their timeout); when all are down
// they try every server in the configured order, so traffic finds a recovered one too. A down
// server is probed every `check_interval_ms` with ". IN NS" (or the configured name) over the
// zone's transport by one worker at a time, which claims the probe with a compare-and-swap on
// the server's next-probe time; any reply that matches the probe marks it up.
//
// Every operation is on the miss path (a forwarder's send, reply or timeout): relaxed atomics,
// a read-modify-write only when a state changes or a failure is counted.
#ifndef NODEDNS_UPSTREAM_HEALTH_H_
#define NODEDNS_UPSTREAM_HEALTH_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace nodedns::upstream {

class UpstreamHealth {
 public:
  struct Options {
    int max_fails = 2;                 // 0: never mark a server down (no health tracking)
    uint32_t check_interval_ms = 500;  // between probes of a down server
    // The probe's question name (wire form, lowercase); empty: the root.
    std::vector<uint8_t> probe_qname;
    bool probe_rd = true;  // RD bit of the probe (CoreDNS's `health_check ... no_rec` clears it)
  };
  // Only the first kMaxTracked servers are tracked; the others always count as up.
  static constexpr size_t kMaxTracked = 64;

  UpstreamHealth(size_t servers, Options options);

  size_t servers() const { return servers_; }
  bool enabled() const { return options_.max_fails > 0; }
  const Options& options() const { return options_; }

  bool Up(size_t server) const {
    return server >= tracked_ || !state_[server].down.load(std::memory_order_relaxed);
  }
  // The servers marked down, as a bit mask (bit i: server i): what a query snapshots when sent.
  uint64_t DownMask() const { return down_mask_.load(std::memory_order_relaxed); }

  // A try to `server` got a matching reply (any rcode).
  void ReportSuccess(size_t server);
  // A try to `server` timed out or the server refused it (ICMP, TCP refused or closed).
  void ReportFailure(size_t server);

  // For a down server whose probe is due at `now_ms` (a CLOCK_MONOTONIC time, NowMs()), claims
  // the probe for the caller until `lease_ms` has passed; true: the caller sends it and then
  // calls ProbeDone.
  bool ClaimProbe(size_t server, uint64_t now_ms, uint64_t lease_ms);
  // The probe's outcome; the next one is due `check_interval_ms` later if still down.
  void ProbeDone(size_t server, bool answered, uint64_t now_ms);

  // The probe query: ID 0 (the forwarder sets a random one), one question, `probe_qname` NS IN.
  std::vector<uint8_t> ProbeQuery() const;

  static uint64_t NowMs();

  // For the metrics endpoint (any thread).
  struct ServerStats {
    bool up;
    uint64_t marked_down;     // transitions up -> down
    uint64_t probes;          // probes sent
    uint64_t probe_failures;  // probes without a reply (CoreDNS's healthcheck failures)
  };
  ServerStats Stats(size_t server) const;
  // Times the last server still up was marked down (CoreDNS's healthcheck_broken_total).
  uint64_t all_down() const { return all_down_.load(std::memory_order_relaxed); }

 private:
  // One cache line each: servers are reported on by different workers.
  struct alignas(64) State {
    std::atomic<int32_t> fails{0};
    std::atomic<bool> down{false};
    std::atomic<uint64_t> next_probe_ms{0};
    std::atomic<uint64_t> marked_down{0};
    std::atomic<uint64_t> probes{0};
    std::atomic<uint64_t> probe_failures{0};
  };
  void MarkUp(size_t server);

  const size_t servers_;
  const size_t tracked_;
  const Options options_;
  std::unique_ptr<State[]> state_;
  std::atomic<uint64_t> down_mask_{0};
  std::atomic<uint64_t> all_down_{0};
};

// Which servers a query tries, in order: those not in `down_mask` (configured order), or all of
// them if every one is down. Helpers for the forwarders' per-query snapshot.
inline size_t CandidateCount(uint64_t down_mask, size_t servers) {
  size_t up = servers;
  for (size_t i = 0; i < servers && i < UpstreamHealth::kMaxTracked; ++i) {
    if (down_mask >> i & 1) --up;
  }
  return up == 0 ? servers : up;
}
// The server of the k-th candidate (k < CandidateCount).
inline size_t Candidate(uint64_t down_mask, size_t servers, size_t k) {
  if (CandidateCount(down_mask, servers) == servers) return k;
  for (size_t i = 0; i < servers; ++i) {
    if (i < UpstreamHealth::kMaxTracked && (down_mask >> i & 1)) continue;
    if (k-- == 0) return i;
  }
  return 0;
}

}  // namespace nodedns::upstream

#endif  // NODEDNS_UPSTREAM_HEALTH_H_
