// The per-thread entry block pool: freed blocks are reused by size class, blocks freed by another
// thread than the one that allocated them land in the freeing thread's pool, and what a thread
// holds back never exceeds its cap.
#include "cache/block_pool.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace nodedns::cache::internal {
namespace {

TEST(BlockPoolTest, RoundsUpToGranulesAndPassesLargeSizesThrough) {
  EXPECT_EQ(BlockPool::RoundUp(1), BlockPool::kGranule);
  EXPECT_EQ(BlockPool::RoundUp(BlockPool::kGranule), BlockPool::kGranule);
  EXPECT_EQ(BlockPool::RoundUp(BlockPool::kGranule + 1), 2 * BlockPool::kGranule);
  EXPECT_EQ(BlockPool::RoundUp(BlockPool::kMaxPooled), BlockPool::kMaxPooled);
  EXPECT_EQ(BlockPool::RoundUp(BlockPool::kMaxPooled + 1), BlockPool::kMaxPooled + 1);
}

TEST(BlockPoolTest, ReusesAFreedBlockOfTheSameClass) {
  std::thread([] {  // a fresh thread: an empty pool
    const size_t size = BlockPool::RoundUp(150);
    void* a = BlockPool::Allocate(size);
    BlockPool::Free(a, size);
    EXPECT_EQ(BlockPool::CachedBytes(), size);
    void* other = BlockPool::Allocate(BlockPool::RoundUp(40));
    EXPECT_NE(other, a) << "another size class must not get this block";
    EXPECT_EQ(BlockPool::Allocate(size), a);
    EXPECT_EQ(BlockPool::CachedBytes(), 0u);
    BlockPool::Free(a, size);
    BlockPool::Free(other, BlockPool::RoundUp(40));
  })
      .join();
}

TEST(BlockPoolTest, BlocksFreedByAnotherThreadAreReusedThere) {
  const size_t size = BlockPool::RoundUp(200);
  void* block = nullptr;
  std::thread([&] { block = BlockPool::Allocate(size); }).join();
  std::thread([&] {
    BlockPool::Free(block, size);
    EXPECT_EQ(BlockPool::Allocate(size), block);
    BlockPool::Free(block, size);
  }).join();
}

#if defined(__SANITIZE_ADDRESS__)
TEST(BlockPoolTest, PooledBlocksArePoisonedForAsan) {
  std::thread([] {
    const size_t size = BlockPool::RoundUp(100);
    auto* a = static_cast<char*>(BlockPool::Allocate(size));
    EXPECT_FALSE(__asan_address_is_poisoned(a));
    BlockPool::Free(a, size);
    EXPECT_TRUE(__asan_address_is_poisoned(a)) << "a stale read would go unreported";
    EXPECT_TRUE(__asan_address_is_poisoned(a + size - 1));
    EXPECT_EQ(BlockPool::Allocate(size), a);
    EXPECT_FALSE(__asan_address_is_poisoned(a + size - 1));
    BlockPool::Free(a, size);
  }).join();
}
#endif

TEST(BlockPoolTest, HoldsBackAtMostItsCap) {
  std::thread([] {
    const size_t size = BlockPool::RoundUp(500);
    std::vector<void*> blocks;
    for (size_t i = 0; i < 2 * BlockPool::kMaxCachedBytes / size; ++i) {
      blocks.push_back(BlockPool::Allocate(size));
    }
    for (void* b : blocks) BlockPool::Free(b, size);
    EXPECT_LE(BlockPool::CachedBytes(), BlockPool::kMaxCachedBytes);
    EXPECT_GT(BlockPool::CachedBytes(), BlockPool::kMaxCachedBytes - size);
    void* big = BlockPool::Allocate(BlockPool::RoundUp(5000));  // not pooled
    BlockPool::Free(big, BlockPool::RoundUp(5000));
    EXPECT_LE(BlockPool::CachedBytes(), BlockPool::kMaxCachedBytes);
  }).join();  // the thread's pool frees what it holds at exit (LeakSanitizer checks that)
}

}  // namespace
}  // namespace nodedns::cache::internal
