// Per-thread free lists for cache entry blocks; see block_pool.h for why.
#include "cache/block_pool.h"

#include <new>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
// A pooled block is free memory: poisoned, so that a read through a stale pointer (a broken grace
// period) is still a use-after-free report under ASan, as it would be without the pool.
#define NODEDNS_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define NODEDNS_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define NODEDNS_POISON(p, n) ((void)(p), (void)(n))
#define NODEDNS_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace nodedns::cache::internal {

namespace {

struct FreeBlock {
  FreeBlock* next;
};

class ThreadPool {
 public:
  static constexpr size_t kClasses = BlockPool::kMaxPooled / BlockPool::kGranule;

  ~ThreadPool() {
    for (FreeBlock*& head : heads_) {
      while (head != nullptr) {
        FreeBlock* b = head;
        NODEDNS_UNPOISON(b, sizeof(FreeBlock));
        head = b->next;
        ::operator delete(b);
      }
    }
    cached_bytes_ = 0;
    // A cache destroyed later in this thread's exit still frees correctly: straight to the system.
    closed_ = true;
  }

  void* Allocate(size_t bytes) {
    if (bytes <= BlockPool::kMaxPooled) {
      FreeBlock*& head = heads_[bytes / BlockPool::kGranule - 1];
      if (head != nullptr) {
        FreeBlock* b = head;
        NODEDNS_UNPOISON(b, bytes);
        head = b->next;
        cached_bytes_ -= bytes;
        return b;
      }
    }
    return ::operator new(bytes);
  }

  void Free(void* p, size_t bytes) {
    if (bytes > BlockPool::kMaxPooled || closed_ ||
        cached_bytes_ + bytes > BlockPool::kMaxCachedBytes) {
      ::operator delete(p);
      return;
    }
    FreeBlock*& head = heads_[bytes / BlockPool::kGranule - 1];
    head = new (p) FreeBlock{head};
    NODEDNS_POISON(p, bytes);
    cached_bytes_ += bytes;
  }

  size_t cached_bytes() const { return cached_bytes_; }

 private:
  FreeBlock* heads_[kClasses] = {};
  size_t cached_bytes_ = 0;
  bool closed_ = false;
};

thread_local ThreadPool tls_pool;

}  // namespace

void* BlockPool::Allocate(size_t bytes) { return tls_pool.Allocate(bytes); }
void BlockPool::Free(void* p, size_t bytes) { tls_pool.Free(p, bytes); }
size_t BlockPool::CachedBytes() { return tls_pool.cached_bytes(); }

}  // namespace nodedns::cache::internal
