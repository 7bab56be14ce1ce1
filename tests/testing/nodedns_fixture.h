// A gtest fixture for end-to-end tests that need nothing but the nodedns binary: one nodedns per
// test on fresh loopback ports (DNS and health), in front of an upstream the test runs itself
// (usually a ScriptedUpstream), with its log in a temporary directory removed afterwards. Stopping
// it checks a clean exit and a log free of sanitizer reports (nodedns_process.h).
#ifndef NODEDNS_TESTS_TESTING_NODEDNS_FIXTURE_H_
#define NODEDNS_TESTS_TESTING_NODEDNS_FIXTURE_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace nodedns::testing {

class NodednsFixture : public ::testing::Test {
 protected:
  // `binary`: the nodedns under test (the test target's NODEDNS_BINARY).
  explicit NodednsFixture(std::string binary) : binary_(std::move(binary)) {}

  void SetUp() override;
  void TearDown() override;

  // Starts nodedns forwarding "." to 127.0.0.1:upstream_port with `extra` flags after the
  // fixture's own, and waits for "serving on". Call through ASSERT_NO_FATAL_FAILURE.
  void StartNodedns(uint16_t upstream_port, const std::vector<std::string>& extra = {},
                    int workers = 1);
  std::string Metrics();                     // GET /metrics; a failed request fails the test
  double Metric(const std::string& sample);  // one sample of Metrics(), -1 if absent
  pid_t nodedns_pid() const { return nodedns_.pid(); }

  uint16_t dns_port_ = 0, health_port_ = 0;
  std::string dir_;

 private:
  std::string binary_;
  Process nodedns_;
  bool started_ = false;
};

}  // namespace nodedns::testing

#endif  // NODEDNS_TESTS_TESTING_NODEDNS_FIXTURE_H_
