// Tests for the load runner's configuration rules (bench/load_runner.h); the measurement loop
// itself is exercised end to end by loadgen_smoke_test.cc.
#include "bench/load_runner.h"

#include "gtest/gtest.h"

namespace nodedns::bench {
namespace {

LoadConfig ValidConfig() {
  LoadConfig config;
  config.server = *dns::SocketAddress::Parse("127.0.0.1:5399");
  config.queries = {std::vector<uint8_t>(17, 0)};
  return config;
}

TEST(LoadConfigTest, DefaultsAreValid) { EXPECT_TRUE(ValidateConfig(ValidConfig()).ok()); }

TEST(LoadConfigTest, RejectsBadValues) {
  LoadConfig config = ValidConfig();
  config.duration_s = 0;
  EXPECT_FALSE(ValidateConfig(config).ok());  // Neither duration nor count.
  config.count = 10;
  EXPECT_TRUE(ValidateConfig(config).ok());

  for (auto mutate : std::vector<void (*)(LoadConfig&)>{
           [](LoadConfig& c) { c.queries.clear(); },
           [](LoadConfig& c) { c.queries = {std::vector<uint8_t>(11, 0)}; },
           [](LoadConfig& c) { c.timeout_s = 0; },
           [](LoadConfig& c) { c.batch = 0; },
           [](LoadConfig& c) { c.batch = 1025; },
           [](LoadConfig& c) { c.sockets = 0; },
           [](LoadConfig& c) { c.window = 0; },
           [](LoadConfig& c) { c.window = 65536; },  // One socket has 65536 IDs; keep one spare.
           [](LoadConfig& c) { c.rate = -1; },
       }) {
    LoadConfig bad = ValidConfig();
    mutate(bad);
    EXPECT_FALSE(ValidateConfig(bad).ok());
  }
  LoadConfig wide = ValidConfig();
  wide.window = 100000;
  wide.sockets = 2;
  EXPECT_TRUE(ValidateConfig(wide).ok());
}

TEST(LoadConfigTest, OpenLoopGetsEnoughIdsForEverythingInFlight) {
  LoadConfig config = ValidConfig();
  EXPECT_EQ(config.SocketsForOpenLoop(), 1);  // Closed window: unchanged.
  config.rate = 50000;
  config.timeout_s = 1;
  EXPECT_EQ(config.SocketsForOpenLoop(), 1);
  config.rate = 150000;  // 165,000 IDs with headroom: three sockets.
  EXPECT_EQ(config.SocketsForOpenLoop(), 3);
  config.sockets = 5;  // Never fewer than asked for.
  EXPECT_EQ(config.SocketsForOpenLoop(), 5);
  config.sockets = 1;
  config.rate = 1e9;
  EXPECT_EQ(config.SocketsForOpenLoop(), 64);  // Capped by ValidateConfig's limit.
}

}  // namespace
}  // namespace nodedns::bench
