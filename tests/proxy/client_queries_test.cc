// Tests for the sampled per-client query counts of GET /audit (proxy/client_queries.h).
#include "proxy/client_queries.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/net.h"

namespace nodedns::proxy {
namespace {

using ::nodedns::testing::SocketAddressOf;
using ::testing::HasSubstr;

std::map<std::string, uint64_t> Counts(ClientQuerySampler& s) {
  s.Publish();
  std::map<std::string, uint64_t> out;
  for (const auto& c : s.Snapshot()) out[ClientAddressString(c.family, c.addr)] = c.queries;
  return out;
}

TEST(ClientQuerySamplerTest, EveryOneCountsEachQueryExactly) {
  ClientQuerySampler s(1);
  for (int i = 0; i < 7; ++i) s.Count(SocketAddressOf("10.0.0.1"));
  for (int i = 0; i < 3; ++i) s.Count(SocketAddressOf("fd00::2"));
  s.Count(SocketAddressOf("10.0.0.3"));
  const auto counts = Counts(s);
  EXPECT_EQ(counts.size(), 3u);
  EXPECT_EQ(counts.at("10.0.0.1"), 7u);
  EXPECT_EQ(counts.at("fd00::2"), 3u);
  EXPECT_EQ(counts.at("10.0.0.3"), 1u);
}

TEST(ClientQuerySamplerTest, ZeroCountsNothing) {
  ClientQuerySampler s(0);
  for (int i = 0; i < 1000; ++i) s.Count(SocketAddressOf("10.0.0.1"));
  EXPECT_TRUE(Counts(s).empty());
}

TEST(ClientQuerySamplerTest, SampledEstimatesAreCloseToTheTruth) {
  ClientQuerySampler s(16);
  // 10.0.0.1 sends 60%, .2 30%, .3 10% of 200,000 queries, interleaved.
  for (int i = 0; i < 200'000; ++i) {
    const int r = i % 10;
    s.Count(SocketAddressOf(r < 6 ? "10.0.0.1" : r < 9 ? "10.0.0.2" : "10.0.0.3"));
  }
  const auto counts = Counts(s);
  // sd ≈ sqrt(n · 16): 1,386 for 120,000; 5% is more than 4 sd for each.
  EXPECT_NEAR(counts.at("10.0.0.1"), 120'000, 6'000);
  EXPECT_NEAR(counts.at("10.0.0.2"), 60'000, 3'000);
  EXPECT_NEAR(counts.at("10.0.0.3"), 20'000, 1'500);
}

// A fixed interval of 2 would see only one of two alternating clients; drawn gaps see both.
TEST(ClientQuerySamplerTest, APeriodicPatternDoesNotAliasWithTheSampling) {
  for (uint32_t every : {2u, 4u, 16u}) {
    ClientQuerySampler s(every);
    for (int i = 0; i < 64'000; ++i) s.Count(SocketAddressOf(i % 2 == 0 ? "10.0.0.1" : "10.0.0.2"));
    const auto counts = Counts(s);
    ASSERT_EQ(counts.size(), 2u) << "every " << every;
    EXPECT_NEAR(counts.at("10.0.0.1"), 32'000, 3'200) << "every " << every;
    EXPECT_NEAR(counts.at("10.0.0.2"), 32'000, 3'200) << "every " << every;
  }
}

// Space-Saving: past kClients, a heavy client keeps its count (never under the truth) while the
// light ones share the remaining slots, each with its possible overestimate as error.
TEST(ClientQuerySamplerTest, HeavyClientsSurviveManyLightOnes) {
  ClientQuerySampler s(1);
  int heavy = 0;
  for (int round = 0; round < 40; ++round) {
    for (int i = 0; i < 10; ++i, ++heavy) s.Count(SocketAddressOf("10.0.0.1"));
    for (int c = 0; c < 20; ++c) {
      const std::string ip = "10.1." + std::to_string(round) + "." + std::to_string(c);
      s.Count(SocketAddressOf(ip));
    }
  }
  s.Publish();
  const auto snap = s.Snapshot();
  EXPECT_EQ(snap.size(), ClientQuerySampler::kClients);
  bool found = false;
  uint64_t max_error = 0;
  for (const auto& c : snap) {
    if (ClientAddressString(c.family, c.addr) == "10.0.0.1") {
      found = true;
      EXPECT_GE(c.queries, static_cast<uint64_t>(heavy));
      EXPECT_LE(c.queries - c.error, static_cast<uint64_t>(heavy));
    }
    max_error = std::max(max_error, c.error);
  }
  EXPECT_TRUE(found);
  EXPECT_GT(max_error, 0u);
}

TEST(ClientQuerySamplerTest, SnapshotShowsOnlyWhatWasPublished) {
  ClientQuerySampler s(1);
  s.Count(SocketAddressOf("10.0.0.1"));
  EXPECT_TRUE(s.Snapshot().empty());
  s.Publish();
  EXPECT_EQ(s.Snapshot().size(), 1u);
}

TEST(RenderClientQueriesJsonTest, MergesWorkersPerClientMostFirst) {
  ClientQuerySampler a(1), b(1);
  for (int i = 0; i < 2; ++i) a.Count(SocketAddressOf("10.0.0.1"));
  for (int i = 0; i < 3; ++i) a.Count(SocketAddressOf("10.0.0.2"));
  for (int i = 0; i < 2; ++i) b.Count(SocketAddressOf("10.0.0.1"));
  a.Publish();
  b.Publish();
  const std::string json = RenderClientQueriesJson({a.Snapshot(), b.Snapshot()}, 1);
  EXPECT_EQ(json,
            "\"query_sample\":1,\"queries\":[{\"client\":\"10.0.0.1\",\"queries\":4,\"error\":0},"
            "{\"client\":\"10.0.0.2\",\"queries\":3,\"error\":0}]");
  EXPECT_THAT(RenderClientQueriesJson({}, 16), HasSubstr("\"query_sample\":16,\"queries\":[]"));
}

}  // namespace
}  // namespace nodedns::proxy
