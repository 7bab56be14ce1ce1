// Knot DNS as a test upstream: knotd on one loopback port serving unsigned zones the test writes,
// started and stopped with gtest assertions. Stands in for CoreDNS in the node-cache tests.
// knotd comes from the system (NODEDNS_TEST_KNOTD overrides /usr/sbin/knotd); HaveKnot() lets a
// test skip without it, and scripts/test.sh fails on skips it does not expect.
#ifndef NODEDNS_TESTS_TESTING_KNOT_H_
#define NODEDNS_TESTS_TESTING_KNOT_H_

#include <cstdint>
#include <map>
#include <string>

#include "tests/testing/process.h"

namespace nodedns::testing {

std::string KnotdPath();
bool HaveKnot();

class KnotServer {
 public:
  KnotServer() = default;
  ~KnotServer();
  KnotServer(const KnotServer&) = delete;
  KnotServer& operator=(const KnotServer&) = delete;

  // Writes the zones (origin → zone file text) and a config under `dir`, starts knotd on
  // 127.0.0.1:port and waits (10 s at most) until it answers SOA queries for every zone. Call
  // through ASSERT_NO_FATAL_FAILURE.
  void Start(const std::string& dir, uint16_t port,
             const std::map<std::string, std::string>& zones);
  void Stop();
  uint16_t port() const { return port_; }
  std::string Log() const { return process_.Log(); }

 private:
  Process process_;
  uint16_t port_ = 0;
};

}  // namespace nodedns::testing

#endif  // NODEDNS_TESTS_TESTING_KNOT_H_
