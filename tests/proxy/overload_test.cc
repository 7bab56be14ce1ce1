// The overload rule (proxy/overload.h) on made-up batches: what a burst, a standing queue and
// the end of overload look like to it, in nanoseconds of a clock the test advances.
#include "proxy/overload.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace nodedns::proxy {
namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kT0 = uint64_t{1'700'000'000} * 1000 * kMs;  // a realtime clock's order of magnitude

QueueDelayShedder Make() {
  return QueueDelayShedder({.target_ns = 10 * kMs, .interval_ns = 100 * kMs});
}

// A backlog, however old, that drains within the interval is a burst: answered whole.
TEST(QueueDelayShedderTest, BurstThatDrainsWithinTheIntervalIsNeverShed) {
  QueueDelayShedder s = Make();
  uint64_t t = kT0;
  for (int batch = 0; batch < 90; ++batch, t += kMs) {  // 90 ms of batches that waited 500 ms
    s.OnBatch(t, 500 * kMs);
    EXPECT_FALSE(s.Shed(t, 500 * kMs)) << batch;
  }
  s.OnEmpty();  // drained
  t += 20 * kMs;
  for (int batch = 0; batch < 90; ++batch, t += kMs) {  // the next burst starts from zero
    s.OnBatch(t, 500 * kMs);
    EXPECT_FALSE(s.Shed(t, 500 * kMs)) << batch;
  }
  EXPECT_FALSE(s.shedding());
}

// A fresh datagram in a batch means the queue is not standing, whatever the others waited.
TEST(QueueDelayShedderTest, AFreshDatagramRestartsTheInterval) {
  QueueDelayShedder s = Make();
  uint64_t t = kT0;
  for (int batch = 0; batch < 300; ++batch, t += kMs) {
    s.OnBatch(t, batch % 50 == 49 ? 1 * kMs : 50 * kMs);
    EXPECT_FALSE(s.shedding()) << batch;
  }
}

// A standing queue for a whole interval: from then on what waited more than the target is shed,
// and what did not is served.
TEST(QueueDelayShedderTest, StandingQueueShedsWhatWaitedPastTheTargetOnly) {
  QueueDelayShedder s = Make();
  uint64_t t = kT0;
  for (; t < kT0 + 100 * kMs; t += kMs) {
    s.OnBatch(t, 30 * kMs);
    EXPECT_FALSE(s.Shed(t, 30 * kMs));
  }
  s.OnBatch(t, 30 * kMs);
  EXPECT_TRUE(s.shedding());
  EXPECT_TRUE(s.Shed(t, 30 * kMs));
  EXPECT_TRUE(s.Shed(t, 10 * kMs + 1));
  EXPECT_FALSE(s.Shed(t, 10 * kMs));
  EXPECT_FALSE(s.Shed(t, 0));
}

// Shedding goes on while old datagrams keep coming, even when the socket is read empty between
// them (shedding drains it fast), and ends an interval after the last one shed.
TEST(QueueDelayShedderTest, SheddingEndsAnIntervalAfterTheLastDatagramShed) {
  QueueDelayShedder s = Make();
  uint64_t t = kT0;
  for (; t <= kT0 + 100 * kMs; t += kMs) s.OnBatch(t, 30 * kMs);
  ASSERT_TRUE(s.shedding());
  for (int batch = 0; batch < 500; ++batch, t += kMs) {
    s.OnBatch(t, 2 * kMs);
    EXPECT_TRUE(s.shedding()) << batch;
    if (batch % 20 == 0) EXPECT_TRUE(s.Shed(t, 40 * kMs));
    s.OnEmpty();
  }
  const uint64_t last = t - 20 * kMs;  // the last batch that shed one, within a few ms
  for (; t < last + 100 * kMs; t += kMs) {
    s.OnBatch(t, 2 * kMs);
    EXPECT_FALSE(s.Shed(t, 5 * kMs));
  }
  s.OnBatch(t + kMs, 2 * kMs);
  EXPECT_FALSE(s.shedding());
}

TEST(QueueDelayShedderTest, TargetZeroNeverSheds) {
  QueueDelayShedder s({.target_ns = 0, .interval_ns = 100 * kMs});
  for (uint64_t t = kT0; t < kT0 + 1000 * kMs; t += kMs) {
    s.OnBatch(t, 900 * kMs);
    EXPECT_FALSE(s.Shed(t, 900 * kMs));
  }
}

// A realtime clock set back (NTP) neither starts shedding nor keeps it going forever.
TEST(QueueDelayShedderTest, ClockSetBackRestartsTheInterval) {
  QueueDelayShedder s = Make();
  s.OnBatch(kT0, 30 * kMs);
  s.OnBatch(kT0 - uint64_t{3'600'000} * kMs, 30 * kMs);  // an hour back
  EXPECT_FALSE(s.shedding());
  s.OnBatch(kT0 - uint64_t{3'600'000} * kMs + 50 * kMs, 30 * kMs);
  EXPECT_FALSE(s.shedding());
}

}  // namespace
}  // namespace nodedns::proxy
