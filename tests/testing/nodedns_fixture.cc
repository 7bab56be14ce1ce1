// See nodedns_fixture.h.
#include "tests/testing/nodedns_fixture.h"

#include <stdlib.h>

#include <filesystem>
#include <system_error>

#include "tests/testing/net.h"
#include "tests/testing/nodedns_process.h"

namespace nodedns::testing {

void NodednsFixture::SetUp() {
  const auto ports = FreePorts(2);
  ASSERT_EQ(ports.size(), 2u);
  dns_port_ = ports[0];
  health_port_ = ports[1];
  char tmpl[] = "/tmp/nodedns-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  dir_ = tmpl;
}

void NodednsFixture::TearDown() {
  if (started_) nodedns::testing::StopNodedns(nodedns_);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void NodednsFixture::StartNodedns(uint16_t upstream_port, const std::vector<std::string>& extra,
                                  int workers) {
  std::vector<std::string> argv = {binary_,     "serve",
                                   "--listen",  "127.0.0.1:" + std::to_string(dns_port_),
                                   "--forward", ".=127.0.0.1:" + std::to_string(upstream_port),
                                   "--health",  "127.0.0.1:" + std::to_string(health_port_),
                                   "--workers", std::to_string(workers)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  started_ = true;
  nodedns::testing::StartNodedns(nodedns_, argv, dir_ + "/nodedns.log");
}

std::string NodednsFixture::Metrics() {
  const auto body = HttpGet(health_port_, "/metrics");
  EXPECT_TRUE(body.has_value()) << "GET /metrics failed";
  return body.value_or("");
}

double NodednsFixture::Metric(const std::string& sample) { return MetricValue(Metrics(), sample); }

}  // namespace nodedns::testing
