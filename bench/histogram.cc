// Percentile extraction for LogLinearHistogram; see histogram.h.
#include "bench/histogram.h"

#include <algorithm>
#include <cmath>

namespace nodedns::bench {

LogLinearHistogram::LogLinearHistogram() : counts_(BucketIndex(kMaxValue) + 1, 0) {}

uint64_t LogLinearHistogram::BucketLow(size_t index) {
  if (index < kSubCount) return index;
  const uint64_t shift = (index - kSubCount) / kSubCount;
  const uint64_t sub = (index - kSubCount) % kSubCount;
  return (kSubCount + sub) << shift;
}

uint64_t LogLinearHistogram::BucketHigh(size_t index) {
  if (index < kSubCount) return index;
  const uint64_t shift = (index - kSubCount) / kSubCount;
  return BucketLow(index) + (uint64_t{1} << shift) - 1;
}

void LogLinearHistogram::Merge(const LogLinearHistogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

uint64_t LogLinearHistogram::Percentile(double percent) const {
  if (count_ == 0) return 0;
  percent = std::clamp(percent, 0.0, 100.0);
  // Rank of the wanted sample, 1-based: the nearest-rank definition.
  uint64_t rank = static_cast<uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const uint64_t mid = BucketLow(i) + (BucketHigh(i) - BucketLow(i)) / 2;
      return std::clamp(mid, Min(), max_);
    }
  }
  return max_;
}

}  // namespace nodedns::bench
