// The cache's own memory for entries: size-class slabs on 64 KiB pages that the cache maps itself,
// so that what the cache accounts is what it holds, fragmentation included.
//
// Why: with entries from glibc malloc, a cache under eviction (entries of varying sizes freed in
// CLOCK order) settled 7-14% above its byte budget in free chunks glibc kept between live ones
// (docs/benchmarks.md, "Memory"); the budget bounded live bytes, not memory. Here:
//   - a block's charge is its share of its page (page and metadata divided by the blocks a page
//     holds), so that the charges of a full page add up to the page;
//   - a page whose blocks are all free is returned to the system at once (madvise), past a small
//     cache of empty pages;
//   - free blocks within a size class are bounded: when a class holds a page's worth of free
//     blocks, its sparsest page is drained (its live entries are moved, by the cache, into the
//     class's other pages; see ResponseCache::Relocate), and freed when its last block is.
// Memory held = accounted bytes + at most ~2 pages per size class + the empty-page cache
// + blocks retired and waiting for QSBR. docs/architecture.md ("Memory bound") has the figures.
//
// Blocks above kMaxSlabBlock are mapped on their own, rounded up to 4 KiB and charged that.
//
// Thread model: Allocate/Free from any thread (one mutex per size class); TakeDrainJob from any
// thread. Freed blocks are poisoned under ASan.
#ifndef NODEDNS_CACHE_SLAB_H_
#define NODEDNS_CACHE_SLAB_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace nodedns::cache::internal {

class Slab {
 public:
  struct Page;
  struct Region;
  static constexpr size_t kPageSize = size_t{64} << 10;
  static constexpr size_t kMaxSlabBlock = size_t{16} << 10;
  static constexpr size_t kLargeGranule = 4096;
  // Empty pages kept mapped for reuse before going back to the system.
  static constexpr size_t kKeptEmptyPages = 16;

  Slab();
  ~Slab();
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;

  // What a block for `bytes` costs against the budget (its share of a page, or its mapping).
  static size_t Charge(size_t bytes);
  // The usable size of the block Allocate(bytes) returns.
  static size_t BlockSize(size_t bytes);

  void* Allocate(size_t bytes);
  // `bytes`: the same value as passed to Allocate. Finds the owning Slab from the address.
  static void Free(void* p, size_t bytes);

  // A page being drained: the cache moves its live blocks elsewhere. Blocks are reported with
  // the first 8 bytes they hold (the entry's hash), read under the class lock while allocated.
  struct Candidate {
    void* p;
    uint64_t first_word;
  };
  // Fills `out` with the allocated blocks of one page that needs draining; returns the block size
  // (0: no work). A page still draining after a pass is looked at again 1 ms later at the soonest.
  size_t TakeDrainWork(std::vector<Candidate>& out);
  bool drain_pending() const { return drain_pending_.load(std::memory_order_relaxed) != 0; }

  // Bytes mapped: pages in use or kept, their metadata, and large blocks.
  size_t mapped_bytes() const { return mapped_bytes_.load(std::memory_order_relaxed); }
  // Bytes of free blocks in pages in use (fragmentation, bounded per class).
  size_t free_block_bytes() const;

 private:
  struct Class {
    std::mutex mu;
    uint32_t block = 0;        // block size
    uint32_t per_page = 0;     // blocks per page
    Page* partial = nullptr;   // pages with free blocks, not draining (doubly linked)
    size_t free_blocks = 0;    // in the partial pages
    Page* draining = nullptr;  // pages being drained (doubly linked)
    // Read without the lock by TakeDrainWork, to skip classes with nothing to do.
    std::atomic<bool> has_draining{false};
    std::atomic<uint64_t> next_pass{0};  // steady µs before which the draining page is not looked at
  };
  static size_t ClassOf(size_t bytes);
  Page* PageOf(void* p) const;
  Page* NewPage(Class& c, size_t cls);
  void ReleasePage(Page* pg);
  static void Unlink(Class& c, Page* pg);
  static void PushPartial(Class& c, Page* pg);
  void MaybeStartDrain(Class& c);

  static constexpr size_t kClasses = 48;
  Class classes_[kClasses];
  std::mutex pages_mu_;  // guards regions_, warm_, cold_ and the regions' bump pointers
  std::vector<Region*> regions_;
  std::vector<Page*> warm_;  // empty, resident (at most kKeptEmptyPages), counted as mapped
  std::vector<Page*> cold_;  // empty, given back to the system, address range kept
  std::atomic<size_t> mapped_bytes_{0};
  std::atomic<size_t> drain_pending_{0};
};

}  // namespace nodedns::cache::internal

#endif  // NODEDNS_CACHE_SLAB_H_
