// Per-thread reuse of freed cache entry blocks, so that an entry allocated by one worker and freed
// by another does not go back through glibc's arena of the first.
//
// Why: entries are allocated by the thread that inserts them and freed (after a QSBR grace period)
// by the thread that replaced or evicted them, usually another one. glibc's per-thread cache
// holds 7 blocks per size; past that, free() locks the allocating thread's arena, which that
// thread is using at the same moment. With two threads inserting into a 10k-entry cache this
// cut insert throughput from 7 M/s on one thread to 1.5 M/s on two (docs/benchmarks.md). Here
// each thread keeps the blocks it frees, by size class, and reuses them for its own inserts; the
// flows between threads balance, and a per-thread byte cap bounds what is held back.
//
// Thread model: BlockPool::Allocate/Free act on the calling thread's pool (thread_local); any
// thread may call them, blocks may be freed by another thread than the one that allocated them.
#ifndef NODEDNS_CACHE_BLOCK_POOL_H_
#define NODEDNS_CACHE_BLOCK_POOL_H_

#include <cstddef>

namespace nodedns::cache::internal {

class BlockPool {
 public:
  // Blocks are sized in multiples of kGranule; sizes above kMaxPooled bypass the pool.
  static constexpr size_t kGranule = 32;
  static constexpr size_t kMaxPooled = 1024;
  // Freed bytes one thread keeps for reuse; past it, blocks go back to the system allocator.
  static constexpr size_t kMaxCachedBytes = size_t{1} << 20;

  // The size actually allocated for a request of `bytes`: what the caller must pass to Free().
  static constexpr size_t RoundUp(size_t bytes) {
    return bytes <= kMaxPooled ? (bytes + kGranule - 1) / kGranule * kGranule : bytes;
  }
  // `bytes` must be RoundUp() of something.
  static void* Allocate(size_t bytes);
  static void Free(void* p, size_t bytes);

  // Bytes the calling thread holds in its free lists (for tests).
  static size_t CachedBytes();
};

}  // namespace nodedns::cache::internal

#endif  // NODEDNS_CACHE_BLOCK_POOL_H_
