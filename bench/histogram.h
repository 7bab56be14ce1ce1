// Latency histogram for the load generator: log-linear buckets in the style of HdrHistogram, so
// that recording a sample on the hot path is a few integer operations and no allocation, while
// percentiles keep a bounded relative error over a range from 1 us to hours.
#ifndef NODEDNS_BENCH_HISTOGRAM_H_
#define NODEDNS_BENCH_HISTOGRAM_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace nodedns::bench {

// Values are non-negative integers (microseconds in the load generator). Values below 2^kSubBits
// are counted exactly; above that, each power-of-two range [2^k, 2^(k+1)) is split into
// 2^kSubBits equal buckets, which bounds the relative error of a reported value by 2^-kSubBits
// (0.8% at 7 bits; the bucket midpoint halves that). Values beyond kMaxValue are clamped.
class LogLinearHistogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSubCount = uint64_t{1} << kSubBits;
  static constexpr int kMaxBits = 40;  // 2^40 us is about 12.7 days.
  static constexpr uint64_t kMaxValue = (uint64_t{1} << kMaxBits) - 1;

  LogLinearHistogram();

  void Record(uint64_t value) {
    if (value > kMaxValue) value = kMaxValue;
    ++counts_[BucketIndex(value)];
    ++count_;
    sum_ += value;
    if (value < min_) min_ = value;
    if (value > max_) max_ = value;
  }

  // Adds all samples of another histogram.
  void Merge(const LogLinearHistogram& other);

  // Smallest recorded value v such that at least `percent`% of the samples are <= v, reported as
  // the midpoint of v's bucket and clamped to [Min(), Max()]. 0 when empty.
  uint64_t Percentile(double percent) const;

  uint64_t Count() const { return count_; }
  uint64_t Min() const { return count_ == 0 ? 0 : min_; }
  uint64_t Max() const { return max_; }
  double Mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }

  // Exposed for tests: bucket arithmetic.
  static size_t BucketIndex(uint64_t value) {
    if (value < kSubCount) return static_cast<size_t>(value);
    const int msb = 63 - std::countl_zero(value);  // >= kSubBits
    const int shift = msb - kSubBits;
    const uint64_t sub = (value >> shift) - kSubCount;  // in [0, kSubCount)
    return static_cast<size_t>(kSubCount + static_cast<uint64_t>(shift) * kSubCount + sub);
  }
  static uint64_t BucketLow(size_t index);
  static uint64_t BucketHigh(size_t index);  // Inclusive.

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace nodedns::bench

#endif  // NODEDNS_BENCH_HISTOGRAM_H_
