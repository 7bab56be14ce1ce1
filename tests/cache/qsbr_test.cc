// QSBR grace periods: retired memory is freed only after every online thread has passed a
// quiescent point, and offline threads do not hold reclamation up.
#include "cache/qsbr.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

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

TEST_F(QsbrTest, ReaderNeverSeesFreedObjectAcrossThreads) {
  // A writer publishes and retires objects while a reader dereferences whatever it loads; under
  // ASan a premature free is a use-after-free report.
  std::atomic<int*> shared{new int(0)};
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    auto t = domain_.Register();
    long sum = 0;
    for (int i = 0; !stop; ++i) {
      sum += *shared.load(std::memory_order_acquire);
      if (i % 16 == 0) t->Quiescent();
    }
    EXPECT_GE(sum, 0);
  });
  auto w = domain_.Register();
  for (int i = 1; i < 20000; ++i) {
    int* old = shared.exchange(new int(i), std::memory_order_acq_rel);
    w->Retire(old, &CountFree, sizeof(int));
    if (i % 8 == 0) w->Quiescent();
  }
  stop = true;
  reader.join();
  w->Quiescent();
  EXPECT_EQ(freed, 19999);
  delete shared.load();
}

}  // namespace
}  // namespace nodedns::cache
