// A counter with one writer: its thread increments with a relaxed load and store (no locked
// instruction, no shared cache line when the owner keeps it on its own lines), and any thread
// reads it with a relaxed load. What the workers' and the forwarders' metrics are made of.
#ifndef NODEDNS_COMMON_COUNTER_H_
#define NODEDNS_COMMON_COUNTER_H_

#include <atomic>
#include <cstdint>

namespace nodedns {

class Counter {
 public:
  void Inc(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t Get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

}  // namespace nodedns

#endif  // NODEDNS_COMMON_COUNTER_H_
