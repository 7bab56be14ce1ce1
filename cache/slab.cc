// Size-class slabs for cache entries; see slab.h for why and docs/architecture.md for the bound.
#include "cache/slab.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define NODEDNS_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define NODEDNS_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define NODEDNS_POISON(p, n) ((void)(p), (void)(n))
#define NODEDNS_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace nodedns::cache::internal {

namespace {

constexpr size_t kRegionSize = size_t{64} << 20;
constexpr size_t kPagesPerRegion = kRegionSize / Slab::kPageSize;
constexpr size_t kSmallGranule = 32;
constexpr size_t kSmallMax = 1024;
constexpr size_t kSmallClasses = kSmallMax / kSmallGranule;
// Above 1 KiB, four classes per power of two (at most 25% rounding).
constexpr uint32_t kLargeSizes[] = {1280, 1536, 1792, 2048,  2560,  3072,  3584,  4096,
                                    5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384};
constexpr size_t kMaxWords = Slab::kPageSize / 64 / 64;  // bitmap words for 64-byte blocks
// Large blocks carry a header with their owner, so that a free needs only the pointer.
constexpr size_t kLargeHeader = 64;

uint32_t BlockOfClass(size_t cls) {
  return cls < kSmallClasses ? static_cast<uint32_t>((cls + 1) * kSmallGranule)
                             : kLargeSizes[cls - kSmallClasses];
}

// Reads an allocated block's first word while its owner may be initializing it: the value is only
// a hint (a wrong one makes the cache find nothing to move), so the race is benign.
__attribute__((no_sanitize("thread"))) uint64_t ReadHint(const void* p) {
  return *static_cast<const volatile uint64_t*>(p);
}

}  // namespace

struct Slab::Page {
  uint64_t bits[kMaxWords];  // allocated blocks
  Page* prev;
  Page* next;
  char* data;
  uint16_t used;
  uint8_t cls;
  uint8_t state;  // kFree, kInUse, kDraining
  bool in_partial;
  uint32_t passes;
};
namespace {
constexpr uint8_t kFree = 0, kInUse = 1, kDraining = 2;
}

// At the start of each 64 MiB-aligned region: the metadata of its pages.
struct Slab::Region {
  Slab* owner;
  size_t next_page;  // bump index for never-used pages
  Page pages[kPagesPerRegion];
};
namespace {
constexpr size_t kMetaPages = (sizeof(Slab::Region) + Slab::kPageSize - 1) / Slab::kPageSize;
// Bytes a page in use costs: itself and its metadata.
constexpr size_t kPageCost = Slab::kPageSize + sizeof(Slab::Page);
}  // namespace

static_assert(sizeof(Slab::Region) <= kMetaPages * Slab::kPageSize);
static_assert(kSmallClasses + std::size(kLargeSizes) == 48);

size_t Slab::ClassOf(size_t bytes) {
  if (bytes <= kSmallMax) return (std::max<size_t>(bytes, 1) + kSmallGranule - 1) / kSmallGranule - 1;
  size_t i = 0;
  while (kLargeSizes[i] < bytes) ++i;
  return kSmallClasses + i;
}

size_t Slab::BlockSize(size_t bytes) {
  return bytes > kMaxSlabBlock ? bytes : BlockOfClass(ClassOf(bytes));
}

size_t Slab::Charge(size_t bytes) {
  if (bytes > kMaxSlabBlock) {
    return (bytes + kLargeHeader + kLargeGranule - 1) / kLargeGranule * kLargeGranule;
  }
  const size_t per_page = kPageSize / BlockOfClass(ClassOf(bytes));
  return (kPageCost + per_page - 1) / per_page;
}

Slab::Slab() {
  for (size_t i = 0; i < kClasses; ++i) {
    classes_[i].block = BlockOfClass(i);
    classes_[i].per_page = static_cast<uint32_t>(kPageSize / classes_[i].block);
  }
}

Slab::~Slab() {
  for (Region* r : regions_) munmap(r, kRegionSize);
}

Slab::Page* Slab::PageOf(void* p) const {
  auto* r = reinterpret_cast<Region*>(reinterpret_cast<uintptr_t>(p) & ~(kRegionSize - 1));
  return &r->pages[(reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(r)) / kPageSize];
}

Slab::Page* Slab::NewPage(Class& c, size_t cls) {
  Page* pg = nullptr;
  {
    std::lock_guard lock(pages_mu_);
    if (!warm_.empty()) {
      pg = warm_.back();
      warm_.pop_back();
    } else if (!cold_.empty()) {
      pg = cold_.back();
      cold_.pop_back();
      mapped_bytes_.fetch_add(kPageCost, std::memory_order_relaxed);
    } else {
      Region* r = nullptr;
      for (Region* cand : regions_) {
        if (cand->next_page < kPagesPerRegion) {
          r = cand;
          break;
        }
      }
      if (r == nullptr) {
        // Map twice the size and keep the aligned half, so that a block's region is its address
        // rounded down. Reserved, not committed: pages cost memory once touched.
        void* m = mmap(nullptr, 2 * kRegionSize, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) throw std::bad_alloc();
        const uintptr_t base = reinterpret_cast<uintptr_t>(m);
        const uintptr_t aligned = (base + kRegionSize - 1) & ~(kRegionSize - 1);
        if (aligned > base) munmap(m, aligned - base);
        if (aligned + kRegionSize < base + 2 * kRegionSize) {
          munmap(reinterpret_cast<void*>(aligned + kRegionSize),
                 base + 2 * kRegionSize - aligned - kRegionSize);
        }
        r = reinterpret_cast<Region*>(aligned);
        r->owner = this;
        r->next_page = kMetaPages;
        regions_.push_back(r);
      }
      pg = &r->pages[r->next_page];
      pg->data = reinterpret_cast<char*>(r) + r->next_page * kPageSize;
      ++r->next_page;
      mapped_bytes_.fetch_add(kPageCost, std::memory_order_relaxed);
    }
  }
  const size_t words = (c.per_page + 63) / 64;
  std::fill(pg->bits, pg->bits + kMaxWords, ~uint64_t{0});
  for (size_t w = 0; w < words; ++w) {
    const size_t first = w * 64;
    const size_t n = std::min<size_t>(64, c.per_page - first);
    pg->bits[w] = n == 64 ? 0 : ~((uint64_t{1} << n) - 1);
  }
  pg->prev = pg->next = nullptr;
  pg->used = 0;
  pg->cls = static_cast<uint8_t>(cls);
  pg->state = kInUse;
  pg->in_partial = false;
  pg->passes = 0;
  NODEDNS_POISON(pg->data, kPageSize);
  return pg;
}

void Slab::ReleasePage(Page* pg) {
  pg->state = kFree;
  NODEDNS_UNPOISON(pg->data, kPageSize);
  std::lock_guard lock(pages_mu_);
  if (warm_.size() < kKeptEmptyPages) {
    warm_.push_back(pg);
    return;
  }
  // Back to the system; the address range stays reserved for reuse.
  madvise(pg->data, kPageSize, MADV_DONTNEED);
  mapped_bytes_.fetch_sub(kPageCost, std::memory_order_relaxed);
  cold_.push_back(pg);
}

void Slab::Unlink(Class& c, Page* pg) {
  if (!pg->in_partial) return;
  if (pg->prev) pg->prev->next = pg->next; else c.partial = pg->next;
  if (pg->next) pg->next->prev = pg->prev;
  pg->prev = pg->next = nullptr;
  pg->in_partial = false;
  c.free_blocks -= c.per_page - pg->used;
}

void Slab::PushPartial(Class& c, Page* pg) {
  pg->prev = nullptr;
  pg->next = c.partial;
  if (c.partial) c.partial->prev = pg;
  c.partial = pg;
  pg->in_partial = true;
  c.free_blocks += c.per_page - pg->used;
}

void Slab::MaybeStartDrain(Class& c) {
  // Keeps the free blocks of the pages in use below a page's worth: past it, the sparsest page's
  // live blocks fit in the others' free ones, and it is drained.
  for (int n = 0; n < 4 && c.free_blocks >= c.per_page; ++n) {
    Page* victim = c.partial;
    for (Page* pg = c.partial; pg != nullptr; pg = pg->next) {
      if (pg->used < victim->used) victim = pg;
    }
    if (victim == nullptr || (victim->next == nullptr && victim->prev == nullptr)) return;
    Unlink(c, victim);
    victim->state = kDraining;
    victim->passes = 0;
    victim->prev = nullptr;
    victim->next = c.draining;
    if (c.draining) c.draining->prev = victim;
    c.draining = victim;
    c.has_draining.store(true, std::memory_order_relaxed);
    c.next_pass.store(0, std::memory_order_relaxed);
    drain_pending_.fetch_add(1, std::memory_order_relaxed);
  }
}

void* Slab::Allocate(size_t bytes) {
  if (bytes > kMaxSlabBlock) {
    const size_t len = Charge(bytes);
    void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    *static_cast<Slab**>(m) = this;
    mapped_bytes_.fetch_add(len, std::memory_order_relaxed);
    return static_cast<char*>(m) + kLargeHeader;
  }
  const size_t cls = ClassOf(bytes);
  Class& c = classes_[cls];
  std::lock_guard lock(c.mu);
  Page* pg = c.partial;
  if (pg == nullptr) {
    pg = NewPage(c, cls);
    PushPartial(c, pg);
  }
  size_t w = 0;
  while (pg->bits[w] == ~uint64_t{0}) ++w;
  const size_t bit = static_cast<size_t>(std::countr_one(pg->bits[w]));
  pg->bits[w] |= uint64_t{1} << bit;
  ++pg->used;
  --c.free_blocks;
  if (pg->used == c.per_page) Unlink(c, pg);
  char* p = pg->data + (w * 64 + bit) * c.block;
  NODEDNS_UNPOISON(p, c.block);
  return p;
}

void Slab::Free(void* p, size_t bytes) {
  if (bytes > kMaxSlabBlock) {
    char* m = static_cast<char*>(p) - kLargeHeader;
    Slab* owner = *reinterpret_cast<Slab**>(m);
    const size_t len = Charge(bytes);
    munmap(m, len);
    owner->mapped_bytes_.fetch_sub(len, std::memory_order_relaxed);
    return;
  }
  auto* r = reinterpret_cast<Region*>(reinterpret_cast<uintptr_t>(p) & ~(kRegionSize - 1));
  Slab* owner = r->owner;
  Page* pg = owner->PageOf(p);
  Class& c = owner->classes_[pg->cls];
  std::lock_guard lock(c.mu);
  const size_t i = static_cast<size_t>(static_cast<char*>(p) - pg->data) / c.block;
  pg->bits[i / 64] &= ~(uint64_t{1} << (i % 64));
  NODEDNS_POISON(p, c.block);
  --pg->used;
  if (pg->state == kDraining) {
    if (pg->used == 0) {
      if (pg->prev) pg->prev->next = pg->next; else c.draining = pg->next;
      if (pg->next) pg->next->prev = pg->prev;
      pg->prev = pg->next = nullptr;
      if (c.draining == nullptr) c.has_draining.store(false, std::memory_order_relaxed);
      owner->drain_pending_.fetch_sub(1, std::memory_order_relaxed);
      owner->ReleasePage(pg);
      owner->MaybeStartDrain(c);
    }
    return;
  }
  if (pg->used == 0) {
    Unlink(c, pg);
    owner->ReleasePage(pg);
    return;
  }
  if (pg->in_partial) {
    ++c.free_blocks;
  } else {
    PushPartial(c, pg);
  }
  owner->MaybeStartDrain(c);
}

size_t Slab::TakeDrainWork(std::vector<Candidate>& out) {
  out.clear();
  const uint64_t tick = static_cast<uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch() / std::chrono::microseconds(1));
  for (Class& c : classes_) {
    if (!c.has_draining.load(std::memory_order_relaxed) ||
        tick < c.next_pass.load(std::memory_order_relaxed)) {
      continue;
    }
    std::lock_guard lock(c.mu);
    // has_draining was read without the lock: the last draining page may be gone since.
    if (c.draining == nullptr) continue;
    // Pages not looked at yet first; then, once all were, each again. Blocks left after a pass
    // are retired ones waiting for their grace period, or entries not yet published: all pages
    // of the class are looked at again a millisecond later, not at every call.
    Page* pg = c.draining;
    while (pg != nullptr && pg->passes > 0) pg = pg->next;
    if (pg == nullptr) {
      // One page of the class again per millisecond: the oldest (last in the list).
      Page* last = c.draining;
      while (last->next != nullptr) last = last->next;
      last->passes = 0;
      if (last != c.draining) {  // to the front, so that the next one in turn is last
        last->prev->next = nullptr;
        last->prev = nullptr;
        last->next = c.draining;
        c.draining->prev = last;
        c.draining = last;
      }
      c.next_pass.store(tick + 1000, std::memory_order_relaxed);
      continue;
    }
    ++pg->passes;
    for (size_t w = 0; w < (c.per_page + 63) / 64; ++w) {
      uint64_t bits = pg->bits[w];
      if (w == c.per_page / 64 && c.per_page % 64) bits &= (uint64_t{1} << (c.per_page % 64)) - 1;
      while (bits) {
        const size_t b = static_cast<size_t>(std::countr_zero(bits));
        bits &= bits - 1;
        char* p = pg->data + (w * 64 + b) * c.block;
        out.push_back({p, ReadHint(p)});
      }
    }
    return c.block;
  }
  return 0;
}

size_t Slab::free_block_bytes() const {
  size_t total = 0;
  for (const Class& c : classes_) {
    std::lock_guard lock(const_cast<std::mutex&>(c.mu));
    total += c.free_blocks * c.block;
    for (Page* pg = c.draining; pg != nullptr; pg = pg->next) {
      total += (c.per_page - pg->used) * size_t{c.block};
    }
  }
  return total;
}

}  // namespace nodedns::cache::internal
