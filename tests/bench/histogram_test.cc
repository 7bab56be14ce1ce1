// Tests for the log-linear latency histogram (bench/histogram.h): bucket arithmetic and
// percentiles of distributions whose true percentiles are known.
#include "bench/histogram.h"

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <random>

#include "gtest/gtest.h"

namespace nodedns::bench {
namespace {

using H = LogLinearHistogram;

// Relative error bound of a reported value: half a bucket, plus rounding.
constexpr double kTolerance = 1.0 / H::kSubCount;

TEST(LogLinearHistogramTest, EmptyHistogramReportsZero) {
  H h;
  EXPECT_EQ(h.Count(), 0u);
  EXPECT_EQ(h.Percentile(50), 0u);
  EXPECT_EQ(h.Min(), 0u);
  EXPECT_EQ(h.Max(), 0u);
}

TEST(LogLinearHistogramTest, BucketsCoverEveryValueOnceAndInOrder) {
  // Every value maps to a bucket whose [low, high] contains it, and buckets are contiguous.
  for (uint64_t v : std::initializer_list<uint64_t>{0ull, 1ull, 127ull, 128ull, 129ull, 255ull,
                                                    256ull, 257ull, 1000ull, 65535ull, 1ull << 20,
                                                    (1ull << 20) + 12345, H::kMaxValue}) {
    const size_t i = H::BucketIndex(v);
    EXPECT_LE(H::BucketLow(i), v) << v;
    EXPECT_GE(H::BucketHigh(i), v) << v;
  }
  for (size_t i = 1; i <= H::BucketIndex(H::kMaxValue); ++i) {
    ASSERT_EQ(H::BucketLow(i), H::BucketHigh(i - 1) + 1) << i;
  }
  // Relative width bound.
  for (size_t i = H::kSubCount; i <= H::BucketIndex(H::kMaxValue); i += 97) {
    const double width = static_cast<double>(H::BucketHigh(i) - H::BucketLow(i) + 1);
    EXPECT_LE(width / H::BucketLow(i), 1.0 / H::kSubCount + 1e-12) << i;
  }
}

TEST(LogLinearHistogramTest, SmallValuesAreExact) {
  H h;
  for (uint64_t v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.Percentile(50), 50u);
  EXPECT_EQ(h.Percentile(90), 90u);
  EXPECT_EQ(h.Percentile(99), 99u);
  EXPECT_EQ(h.Percentile(100), 100u);
  EXPECT_EQ(h.Percentile(0), 1u);
  EXPECT_EQ(h.Min(), 1u);
  EXPECT_EQ(h.Max(), 100u);
  EXPECT_DOUBLE_EQ(h.Mean(), 50.5);
}

TEST(LogLinearHistogramTest, UniformDistributionWithinRelativeError) {
  H h;
  constexpr uint64_t kN = 1000000;
  for (uint64_t v = 1; v <= kN; ++v) h.Record(v);
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    const double truth = p / 100.0 * kN;
    EXPECT_NEAR(static_cast<double>(h.Percentile(p)), truth, truth * kTolerance) << p;
  }
  EXPECT_EQ(h.Percentile(100), kN);
}

TEST(LogLinearHistogramTest, ExponentialDistributionWithinRelativeError) {
  // Latency-like: exponential with mean 500 us; percentile p is -ln(1 - p) * mean.
  std::mt19937_64 rng(42);
  std::exponential_distribution<double> exp(1.0 / 500.0);
  H h;
  for (int i = 0; i < 2000000; ++i) h.Record(static_cast<uint64_t>(exp(rng)));
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    const double truth = -std::log(1.0 - p / 100.0) * 500.0;
    // Sampling error of the empirical quantile (~1% at p99.9 with 2M samples) plus bucket error.
    EXPECT_NEAR(static_cast<double>(h.Percentile(p)), truth, truth * (kTolerance + 0.02)) << p;
  }
  EXPECT_NEAR(h.Mean(), 500.0, 5.0);
}

TEST(LogLinearHistogramTest, BimodalDistributionPicksTheRightMode) {
  // 95% fast answers (cache hits) at 40 us and 5% slow (misses) at 20 ms.
  H h;
  for (int i = 0; i < 9500; ++i) h.Record(40);
  for (int i = 0; i < 500; ++i) h.Record(20000);
  EXPECT_EQ(h.Percentile(50), 40u);
  EXPECT_EQ(h.Percentile(95), 40u);
  EXPECT_NEAR(static_cast<double>(h.Percentile(95.01)), 20000.0, 20000.0 * kTolerance);
  EXPECT_NEAR(static_cast<double>(h.Percentile(99)), 20000.0, 20000.0 * kTolerance);
}

TEST(LogLinearHistogramTest, PercentilesAreMonotonicAndClampedToRange) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(6.0, 1.5);
  H h;
  for (int i = 0; i < 100000; ++i) h.Record(static_cast<uint64_t>(dist(rng)));
  uint64_t previous = 0;
  for (double p = 0; p <= 100.0; p += 0.5) {
    const uint64_t value = h.Percentile(p);
    EXPECT_GE(value, previous) << p;
    EXPECT_GE(value, h.Min());
    EXPECT_LE(value, h.Max());
    previous = value;
  }
}

TEST(LogLinearHistogramTest, HugeValuesAreClamped) {
  H h;
  h.Record(UINT64_MAX);
  EXPECT_EQ(h.Max(), H::kMaxValue);
  EXPECT_EQ(h.Percentile(50), H::kMaxValue);
}

TEST(LogLinearHistogramTest, MergeEqualsRecordingEverything) {
  H a, b, all;
  for (uint64_t v = 1; v < 5000; v += 3) {
    a.Record(v);
    all.Record(v);
  }
  for (uint64_t v = 3000; v < 90000; v += 7) {
    b.Record(v);
    all.Record(v);
  }
  a.Merge(b);
  EXPECT_EQ(a.Count(), all.Count());
  EXPECT_EQ(a.Min(), all.Min());
  EXPECT_EQ(a.Max(), all.Max());
  for (double p : {1.0, 50.0, 90.0, 99.0, 99.9}) EXPECT_EQ(a.Percentile(p), all.Percentile(p));
}

}  // namespace
}  // namespace nodedns::bench
