// Quiescent-state-based reclamation (QSBR): frees memory that lock-free readers may still be using
// once every registered thread has passed a quiescent point, without any per-read atomic
// read-modify-write or reference count.
//
// Contract: a registered thread may dereference shared objects only while it is online and only
// between two calls of Quiescent(); it must not carry pointers across Quiescent() or Offline().
// Workers call Quiescent() once per batch of packets and go Offline() before blocking in the
// event loop, so the grace period is one batch long. See docs/architecture.md for the argument.
#ifndef NODEDNS_CACHE_QSBR_H_
#define NODEDNS_CACHE_QSBR_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace nodedns::cache {

class QsbrDomain;

// One per thread. Its methods may only be called by the thread that owns it; the domain reads its
// epoch from other threads.
class QsbrThread {
 public:
  ~QsbrThread();
  QsbrThread(const QsbrThread&) = delete;
  QsbrThread& operator=(const QsbrThread&) = delete;

  // Announces that this thread holds no pointer to shared objects, then frees what it retired
  // and what is now safe to free. A plain store on the hot path: no read-modify-write.
  void Quiescent();
  // Offline threads are ignored by grace periods (a worker blocked in epoll must not stall
  // reclamation); Online() must be called before touching shared objects again.
  void Offline();
  void Online();
  bool online() const { return online_; }

  // Schedules `deleter(p)` for after the current grace period. `bytes` feeds the retired-bytes
  // gauge, which bounds the memory held back by slow readers.
  void Retire(void* p, void (*deleter)(void*), size_t bytes);
  size_t retired_bytes() const { return retired_bytes_; }
  size_t retired_count() const { return retired_.size(); }

 private:
  friend class QsbrDomain;
  QsbrThread(QsbrDomain* domain, size_t slot);
  void Reclaim();
  void Stamp();

  struct Retired {
    void* p;
    void (*deleter)(void*);
    size_t bytes;
    uint64_t epoch;
  };
  QsbrDomain* domain_;
  size_t slot_;
  bool online_ = true;
  std::vector<Retired> retired_;
  size_t retired_bytes_ = 0;
  size_t unstamped_ = 0;  // the newest retired_ entries, not yet given an epoch
};

// Owns the global epoch and the per-thread epoch slots. Register() and the destructor take a
// mutex; everything else is lock-free. The domain must outlive its threads.
class QsbrDomain {
 public:
  static constexpr size_t kMaxThreads = 512;
  QsbrDomain();
  ~QsbrDomain();
  QsbrDomain(const QsbrDomain&) = delete;
  QsbrDomain& operator=(const QsbrDomain&) = delete;

  // Returns nullptr if kMaxThreads threads are registered already.
  std::unique_ptr<QsbrThread> Register();

  // Bytes retired and not yet freed, over all threads and orphans (approximate, for metrics).
  size_t pending_bytes() const;

 private:
  friend class QsbrThread;
  static constexpr uint64_t kOffline = UINT64_MAX;
  // The smallest epoch any online thread has announced; objects retired at an epoch at most this
  // are unreachable by every thread.
  uint64_t MinEpoch() const;
  void Unregister(QsbrThread* t);
  void ReclaimOrphans(uint64_t min_epoch);

  struct alignas(64) Slot {
    std::atomic<uint64_t> epoch{kOffline};  // read by every thread's MinEpoch()
    std::atomic<bool> used{false};
    // Written by the owner on every retire and reclaim, read only by pending_bytes(): on its own
    // line, so that retiring does not invalidate the line other threads scan. A shared counter
    // here (one atomic add per retire) made concurrent inserts bounce one line between cores.
    alignas(64) std::atomic<size_t> retired_bytes{0};
  };
  alignas(64) std::atomic<uint64_t> global_epoch_{1};
  alignas(64) std::atomic<size_t> high_water_{0};  // slots [0, high_water) may be used
  // Whether orphans_ may be non-empty: lets Reclaim() skip the mutex (an atomic read-modify-write
  // on a shared line) at every quiescent point.
  std::atomic<bool> has_orphans_{false};
  size_t orphan_bytes_ = 0;  // guarded by mu_
  std::unique_ptr<Slot[]> slots_;
  mutable std::mutex mu_;  // guards registration and orphans_
  std::vector<QsbrThread::Retired> orphans_;
};

}  // namespace nodedns::cache

#endif  // NODEDNS_CACHE_QSBR_H_
