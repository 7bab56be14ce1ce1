// The measurement loop of nodedns-loadgen, as a library so that it can be driven from tests: sends
// prebuilt DNS queries over non-blocking UDP sockets with sendmmsg/recvmmsg batching, matches
// replies to queries by ID, and records per-reply latency, in closed-window (maximum throughput)
// or open-loop (fixed rate, latency under load) mode.
#ifndef NODEDNS_BENCH_LOAD_RUNNER_H_
#define NODEDNS_BENCH_LOAD_RUNNER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/histogram.h"
#include "dns/socket_address.h"

namespace nodedns::bench {

using dns::SocketAddress;

struct LoadConfig {
  SocketAddress server;
  // Queries in wire format with ID 0 (see BuildQueryWire); sent in order, round-robin.
  std::vector<std::vector<uint8_t>> queries;
  double duration_s = 10.0;  // Sending phase; 0 = until `count` queries are sent.
  uint64_t count = 0;        // Total queries to send; 0 = until `duration_s` elapses.
  uint32_t window = 100;     // Closed-window mode: queries kept outstanding (dnsperf -q).
  double rate = 0.0;         // > 0 selects open-loop mode at this many queries per second.
  double timeout_s = 1.0;    // A query unanswered for this long counts as lost.
  int batch = 32;            // Messages per sendmmsg/recvmmsg call.
  int sockets = 1;           // Source sockets (distinct source ports); IDs are per socket.

  // Open loop needs an ID for every query in flight, up to rate x timeout when the server drops
  // queries; one socket has 65536. Returns the sockets needed for that (at least `sockets`).
  int SocketsForOpenLoop() const;
};

// Checks ranges and combinations; RunLoad calls it too.
absl::Status ValidateConfig(const LoadConfig& config);

struct LoadResult {
  uint64_t sent = 0;
  uint64_t unsent = 0;        // Open loop: scheduled sends that never went out (no free ID).
  uint64_t answered = 0;      // Replies matched to an outstanding query (any RCODE).
  uint64_t lost = 0;          // Queries that timed out.
  uint64_t late = 0;          // Replies whose ID was not outstanding (after a timeout, duplicates).
  uint64_t mismatched = 0;    // Replies that were malformed or repeated another question.
  uint64_t send_errors = 0;   // sendmmsg/recvmmsg errors other than EAGAIN (e.g. ICMP refused).
  double send_elapsed_s = 0;  // Length of the sending phase.
  double elapsed_s = 0;       // From the first send to the last answer (or end of sending).
  double qps = 0;             // answered / elapsed_s.
  double cpu_s = 0;           // CPU time (user + system) the run cost this process.
  LogLinearHistogram latency_us;
  std::array<uint64_t, 16> rcodes{};  // Answers by RCODE (header bits only).
};

// Runs one measurement. `stop`, if given, ends the sending phase early when set (e.g. SIGINT);
// outstanding queries are drained either way.
absl::StatusOr<LoadResult> RunLoad(const LoadConfig& config,
                                   const std::atomic<bool>* stop = nullptr);

// One JSON object (no trailing newline) / a few lines for humans.
std::string FormatJson(const LoadConfig& config, const LoadResult& result);
std::string FormatHuman(const LoadConfig& config, const LoadResult& result);

}  // namespace nodedns::bench

#endif  // NODEDNS_BENCH_LOAD_RUNNER_H_
