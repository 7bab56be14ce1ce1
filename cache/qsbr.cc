// QSBR implementation; the safety argument is in docs/architecture.md ("Reclamation").
#include "cache/qsbr.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace nodedns::cache {

QsbrDomain::QsbrDomain() : slots_(new Slot[kMaxThreads]) {}

QsbrDomain::~QsbrDomain() {
  // Every thread has unregistered (their objects moved here): nobody can read anything any more.
  for (auto& r : orphans_) r.deleter(r.p);
}

std::unique_ptr<QsbrThread> QsbrDomain::Register() {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < kMaxThreads; ++i) {
    if (slots_[i].used.load(std::memory_order_relaxed)) continue;
    slots_[i].used.store(true, std::memory_order_relaxed);
    // Online from the start, at the current epoch: nothing retired before now can be reached
    // through pointers this thread has not loaded yet.
    slots_[i].epoch.store(global_epoch_.load(std::memory_order_seq_cst), std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (i + 1 > high_water_.load(std::memory_order_relaxed)) {
      high_water_.store(i + 1, std::memory_order_release);
    }
    return std::unique_ptr<QsbrThread>(new QsbrThread(this, i));
  }
  return nullptr;
}

void QsbrDomain::Unregister(QsbrThread* t) {
  std::lock_guard lock(mu_);
  slots_[t->slot_].epoch.store(kOffline, std::memory_order_seq_cst);
  slots_[t->slot_].retired_bytes.store(0, std::memory_order_relaxed);
  slots_[t->slot_].used.store(false, std::memory_order_release);
  orphans_.insert(orphans_.end(), t->retired_.begin(), t->retired_.end());
  orphan_bytes_ += t->retired_bytes_;
  if (!orphans_.empty()) has_orphans_.store(true, std::memory_order_release);
  t->retired_.clear();
  t->retired_bytes_ = 0;
}

size_t QsbrDomain::pending_bytes() const {
  std::lock_guard lock(mu_);
  size_t total = orphan_bytes_;
  const size_t n = high_water_.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) total += slots_[i].retired_bytes.load(std::memory_order_relaxed);
  return total;
}

uint64_t QsbrDomain::MinEpoch() const {
  // Pairs with the fence in QsbrThread::Online(): either we see its new epoch, or it sees every
  // unlink that preceded this scan.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  uint64_t min = kOffline;
  const size_t n = high_water_.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    min = std::min(min, slots_[i].epoch.load(std::memory_order_acquire));
  }
  return min;
}

void QsbrDomain::ReclaimOrphans(uint64_t min_epoch) {
  if (!has_orphans_.load(std::memory_order_acquire)) return;
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock() || orphans_.empty()) return;
  auto keep = std::partition(orphans_.begin(), orphans_.end(),
                             [&](const QsbrThread::Retired& r) { return r.epoch > min_epoch; });
  size_t freed = 0;
  for (auto it = keep; it != orphans_.end(); ++it) {
    it->deleter(it->p);
    freed += it->bytes;
  }
  orphans_.erase(keep, orphans_.end());
  orphan_bytes_ -= freed;
  if (orphans_.empty()) has_orphans_.store(false, std::memory_order_relaxed);
}

QsbrThread::QsbrThread(QsbrDomain* domain, size_t slot) : domain_(domain), slot_(slot) {}

QsbrThread::~QsbrThread() {
  Stamp();
  domain_->Unregister(this);
}

void QsbrThread::Stamp() {
  if (unstamped_ == 0) return;
  // One increment for every object retired since the last stamp: all of them were unlinked
  // before it (program order), which is all the safety argument needs. Per retire, this
  // read-modify-write on one shared line was the main cost of concurrent inserts.
  const uint64_t e = domain_->global_epoch_.fetch_add(1, std::memory_order_seq_cst) + 1;
  for (size_t i = retired_.size() - unstamped_; i < retired_.size(); ++i) retired_[i].epoch = e;
  unstamped_ = 0;
}

void QsbrThread::Quiescent() {
  if (!online_) return;
  Stamp();
  auto& slot = domain_->slots_[slot_];
  // A store, not a read-modify-write: only this thread writes its slot.
  slot.epoch.store(domain_->global_epoch_.load(std::memory_order_acquire),
                   std::memory_order_release);
  if (!retired_.empty()) Reclaim();
}

void QsbrThread::Offline() {
  if (!online_) return;
  Stamp();
  online_ = false;
  domain_->slots_[slot_].epoch.store(QsbrDomain::kOffline, std::memory_order_release);
  if (!retired_.empty()) Reclaim();
}

void QsbrThread::Online() {
  if (online_) return;
  online_ = true;
  domain_->slots_[slot_].epoch.store(domain_->global_epoch_.load(std::memory_order_seq_cst),
                                     std::memory_order_seq_cst);
  // Orders the epoch store before every later load of shared pointers (see MinEpoch()).
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void QsbrThread::Retire(void* p, void (*deleter)(void*), size_t bytes) {
  // The caller has already unlinked p. Its epoch is assigned by the next Stamp() (at the next
  // quiescent point): advancing the epoch after the unlink means any thread that later announces
  // an epoch >= e has crossed a quiescent point after the unlink.
  retired_.push_back({p, deleter, bytes, QsbrDomain::kOffline});
  ++unstamped_;
  retired_bytes_ += bytes;
  domain_->slots_[slot_].retired_bytes.store(retired_bytes_, std::memory_order_relaxed);
}

void QsbrThread::Reclaim() {
  const uint64_t min_epoch = domain_->MinEpoch();
  // Retired in epoch order, so the safe ones form a prefix.
  size_t n = 0;
  size_t freed_bytes = 0;
  while (n < retired_.size() && retired_[n].epoch <= min_epoch) {
    retired_[n].deleter(retired_[n].p);
    freed_bytes += retired_[n].bytes;
    ++n;
  }
  if (n > 0) {
    retired_.erase(retired_.begin(), retired_.begin() + static_cast<ptrdiff_t>(n));
    retired_bytes_ -= freed_bytes;
    domain_->slots_[slot_].retired_bytes.store(retired_bytes_, std::memory_order_relaxed);
  }
  domain_->ReclaimOrphans(min_epoch);
}

}  // namespace nodedns::cache
