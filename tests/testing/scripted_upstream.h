// A DNS server on one loopback port, UDP and TCP (2-byte framing, pipelining), whose every answer
// comes from a script the test writes: the exact bytes to send, after a delay, or silence, or a
// closed connection. It stands in for upstreams that misbehave in ways a real server will not
// (stalled TCP, TC=1 over TCP, malformed names, raw TTLs, oversized UDP), and records what it was
// asked: each query's bytes, name, type, transport and connection, and the most queries it ever
// held unanswered at once.
#ifndef NODEDNS_TESTS_TESTING_SCRIPTED_UPSTREAM_H_
#define NODEDNS_TESTS_TESTING_SCRIPTED_UPSTREAM_H_

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing/dns_builder.h"

namespace nodedns::testing {

struct SeenQuery {
  std::vector<uint8_t> wire;
  std::string name;  // lowercase presentation form with the final dot; empty if unparseable
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  bool tcp = false;
  int conn = -1;  // TCP: the connection's number, in order of acceptance from 0; UDP: -1
};

// What the upstream does with one query.
struct Action {
  enum class Kind { kReply, kSilent, kClose };
  Kind kind = Kind::kReply;
  std::vector<uint8_t> reply;  // sent as is; over TCP with the length prefix
  std::chrono::milliseconds delay{0};
  // Helpers for scripts.
  static Action Reply(std::vector<uint8_t> bytes, std::chrono::milliseconds delay = {}) {
    return {Kind::kReply, std::move(bytes), delay};
  }
  static Action Silent() { return {Kind::kSilent, {}, {}}; }
  static Action Close() { return {Kind::kClose, {}, {}}; }  // TCP: hang up; UDP: no reply
};

using Script = std::function<Action(const SeenQuery& query)>;

// `spec` with the query's ID, name, type, RD/CD and EDNS presence copied in: the usual start of
// a scripted reply.
MessageSpec ReplySpecFor(const SeenQuery& query);

class ScriptedUpstream {
 public:
  // On 127.0.0.1, UDP and TCP on one kernel-chosen port.
  explicit ScriptedUpstream(Script script) : ScriptedUpstream(std::move(script), "127.0.0.1", 0) {}
  // On `ipv4`:`port` (0: kernel-chosen).
  ScriptedUpstream(Script script, const std::string& ipv4, uint16_t port);
  ~ScriptedUpstream();
  ScriptedUpstream(const ScriptedUpstream&) = delete;
  ScriptedUpstream& operator=(const ScriptedUpstream&) = delete;

  uint16_t port() const { return port_; }
  void set_script(Script script);
  std::vector<SeenQuery> seen() const;
  int queries() const { return queries_; }
  // Queries for `name` (lowercase, final dot) that came over TCP (`tcp`) or UDP.
  int Count(const std::string& name, bool tcp) const;
  int connections() const { return connections_; }  // TCP connections accepted so far
  int max_outstanding() const { return max_outstanding_; }

 private:
  struct Conn;
  struct Due;
  void Run();
  void Handle(std::vector<uint8_t> query, int tcp_fd, int conn_number, const sockaddr_storage& from,
              socklen_t from_len);

  mutable std::mutex mu_;
  Script script_;
  std::vector<SeenQuery> seen_;
  int udp_fd_ = -1, tcp_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::atomic<int> connections_{0};
  std::atomic<int> max_outstanding_{0};
  std::vector<Conn> conns_;  // the thread's own
  std::vector<Due> due_;     // the thread's own
  std::thread thread_;
};

}  // namespace nodedns::testing

#endif  // NODEDNS_TESTS_TESTING_SCRIPTED_UPSTREAM_H_
