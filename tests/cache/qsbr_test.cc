// QSBR grace periods: retired memory is freed only after every online thread has passed a
// quiescent point, and offline threads do not hold reclamation up.
#include "cache/qsbr.h"

#include <gtest/gtest.h>
#include <sanitizer/asan_interface.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

namespace nodedns::cache {
namespace {

std::atomic<int> freed{0};
void CountFree(void* p) {
  ++freed;
  delete static_cast<int*>(p);
}

class QsbrTest : public ::testing::Test {
 protected:
  void SetUp() override { freed = 0; }
  QsbrDomain domain_;
};

TEST_F(QsbrTest, FreesOnlyAfterEveryOnlineThreadIsQuiescent) {
  auto writer = domain_.Register();
  auto reader = domain_.Register();
  writer->Retire(new int(1), &CountFree, sizeof(int));
  writer->Quiescent();
  EXPECT_EQ(freed, 0) << "freed while a reader could still hold it";
  EXPECT_EQ(domain_.pending_bytes(), sizeof(int));
  reader->Quiescent();
  EXPECT_EQ(freed, 0);  // the reader does not reclaim the writer's list
  writer->Quiescent();
  EXPECT_EQ(freed, 1);
  EXPECT_EQ(domain_.pending_bytes(), 0u);
}

TEST_F(QsbrTest, OfflineThreadsDoNotBlockReclamation) {
  auto writer = domain_.Register();
  auto idle = domain_.Register();
  idle->Offline();
  writer->Retire(new int(1), &CountFree, sizeof(int));
  writer->Quiescent();
  EXPECT_EQ(freed, 1);
  idle->Online();
  writer->Retire(new int(2), &CountFree, sizeof(int));
  writer->Quiescent();
  EXPECT_EQ(freed, 1) << "an online thread must be waited for";
  idle->Quiescent();
  writer->Quiescent();
  EXPECT_EQ(freed, 2);
}

TEST_F(QsbrTest, RetiredObjectsOfExitedThreadsAreFreedLater) {
  auto reader = domain_.Register();
  {
    auto writer = domain_.Register();
    writer->Retire(new int(1), &CountFree, sizeof(int));
  }  // the writer leaves before the grace period ends: its list becomes an orphan
  EXPECT_EQ(freed, 0);
  EXPECT_EQ(domain_.pending_bytes(), sizeof(int)) << "orphans still count as pending";
  reader->Quiescent();
  reader->Retire(new int(2), &CountFree, sizeof(int));
  reader->Quiescent();
  EXPECT_EQ(freed, 2);
  EXPECT_EQ(domain_.pending_bytes(), 0u);
}

TEST_F(QsbrTest, PendingBytesSumsEveryThread) {
  auto a = domain_.Register();
  auto b = domain_.Register();
  a->Retire(new int(1), &CountFree, 100);
  b->Retire(new int(2), &CountFree, 20);
  b->Retire(new int(3), &CountFree, 3);
  EXPECT_EQ(domain_.pending_bytes(), 123u);
  a->Quiescent();
  b->Quiescent();
  EXPECT_EQ(domain_.pending_bytes(), 123u) << "nothing is safe before both passed a point";
  a->Quiescent();
  EXPECT_EQ(domain_.pending_bytes(), 23u);
  b->Quiescent();
  EXPECT_EQ(domain_.pending_bytes(), 0u);
  EXPECT_EQ(freed, 3);
}

TEST_F(QsbrTest, DomainFreesEverythingLeftAtDestruction) {
  {
    QsbrDomain d;
    auto a = d.Register();
    auto b = d.Register();
    a->Retire(new int(1), &CountFree, sizeof(int));
  }
  EXPECT_EQ(freed, 1);
}

// The free function of ReaderNeverSeesFreedObjectAcrossThreads: it marks the object freed
// instead of releasing it, so that a reader still holding it reads the mark (-1) in any build;
// under ASan the object is also poisoned, so that such a read is reported as it would be after a
// real free. The memory goes at the end of the test.
std::mutex graveyard_mu;  // whichever thread reclaims calls PoisonFree
std::vector<int*> graveyard;
void PoisonFree(void* p) {
  ++freed;
  *static_cast<int*>(p) = -1;
  ASAN_POISON_MEMORY_REGION(p, sizeof(int));
  std::lock_guard lock(graveyard_mu);
  graveyard.push_back(static_cast<int*>(p));
}

TEST_F(QsbrTest, ReaderNeverSeesFreedObjectAcrossThreads) {
  // A writer publishes increasing values and retires the objects they replace while a reader
  // dereferences whatever it loads, twice, a moment apart. Reclaiming an object the reader may
  // still hold shows as the freed mark or a changed value (or, under ASan/TSan, a report).
  std::atomic<int*> shared{new int(0)};
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0};
  long freed_reads = 0, backwards = 0;
  std::thread reader([&] {
    auto t = domain_.Register();
    int last = 0;
    for (int i = 0; !stop; ++i) {
      const int* p = shared.load(std::memory_order_acquire);
      const int v = *p;
      for (volatile int k = 0; k < 1000; k = k + 1) {
      }  // widens the window in which a premature free would land
      freed_reads += v < 0 || *p != v;
      backwards += v >= 0 && v < last;  // values are published in increasing order
      if (v >= 0) last = v;
      reads.fetch_add(1, std::memory_order_relaxed);
      if (i % 16 == 0) t->Quiescent();
    }
  });
  // The writer starts once the reader reads, so that the two overlap.
  while (reads.load(std::memory_order_relaxed) == 0) std::this_thread::yield();
  // At least 20,000 objects, and for as long as the reader needs for 100,000 reads: the two must
  // overlap for a while for a premature free to be caught.
  auto w = domain_.Register();
  int retired = 0;
  for (int i = 1; i < 20000 || reads.load(std::memory_order_relaxed) < 100000; ++i) {
    int* old = shared.exchange(new int(i), std::memory_order_acq_rel);
    w->Retire(old, &PoisonFree, sizeof(int));
    ++retired;
    if (i % 8 == 0) w->Quiescent();
  }
  stop = true;
  reader.join();
  w->Quiescent();
  EXPECT_EQ(freed_reads, 0) << "the reader read objects already reclaimed, of " << reads
                            << " reads";
  EXPECT_EQ(backwards, 0);
  EXPECT_EQ(freed, retired);
  for (int* p : graveyard) {
    ASAN_UNPOISON_MEMORY_REGION(p, sizeof(int));
    delete p;
  }
  graveyard.clear();
  delete shared.load();
}

}  // namespace
}  // namespace nodedns::cache
