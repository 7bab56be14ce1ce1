// Which queries a worker drops unanswered when it cannot keep up: pure logic, no sockets, no clock
// of its own (the UDP front end feeds it kernel receive timestamps, SO_TIMESTAMPNS).
//
// Why: a UDP socket's receive queue is a FIFO of up to 4 MiB (worker.cc sizes it for bursts:
// ~10,000 small queries). Offered more than it can answer, a worker answers at its capacity either
// way, but with a full queue every answer it sends is to a query that waited the whole queue: with
// nodedns and dnsdist each capped to 30% of a core and offered ~3x what they answer, nodedns
// answered more (89k vs 69k per second) but p99 was 153 ms against dnsdist's 67 ms. A client
// whose query waits that long has often given up or asked again; the reply is wasted work.
//
// The rule is CoDel's (Nichols and Jacobson, "Controlling Queue Delay", ACM Queue 2012), reduced
// to what a receive queue needs: a queue whose every datagram has waited more than `target` for
// a whole `interval` is a standing queue, not a burst; from then on datagrams that waited more
// than `target` are dropped as they are read (cheaply: parsed by nobody), so the queue drains and
// the answers that do go out are to fresh queries. Shedding stops after an interval in which no
// datagram waited more than `target`. A burst that drains within the interval (a deployment's
// pods all starting at once) is answered whole, however long its queue got.
//
// Thread model: one per socket, used by that socket's worker thread only.
#ifndef NODEDNS_PROXY_OVERLOAD_H_
#define NODEDNS_PROXY_OVERLOAD_H_

#include <cstdint>

namespace nodedns::proxy {

class QueueDelayShedder {
 public:
  struct Options {
    uint64_t target_ns = 0;  // 0: never shed
    uint64_t interval_ns = 100'000'000;
  };
  explicit QueueDelayShedder(Options options) : options_(options) {}

  // A batch was read at `now_ns` (the clock of the datagrams' timestamps); the least any of its
  // datagrams waited was `min_delay_ns`.
  void OnBatch(uint64_t now_ns, uint64_t min_delay_ns) {
    if (options_.target_ns == 0) return;
    if (now_ns < above_since_ns_ || now_ns < last_shed_ns_) {  // the clock was set back
      above_since_ns_ = 0;
      last_shed_ns_ = now_ns;
    }
    if (shedding_ && now_ns - last_shed_ns_ > options_.interval_ns) shedding_ = false;
    if (min_delay_ns <= options_.target_ns) {
      above_since_ns_ = 0;  // a fresh datagram: the queue is not standing
    } else if (above_since_ns_ == 0) {
      above_since_ns_ = now_ns;
    } else if (!shedding_ && now_ns - above_since_ns_ >= options_.interval_ns) {
      shedding_ = true;
      last_shed_ns_ = now_ns;
    }
  }
  // The socket was read empty: whatever queued has been served.
  void OnEmpty() { above_since_ns_ = 0; }
  // Whether a datagram of the batch last given to OnBatch, which waited `delay_ns`, is dropped.
  bool Shed(uint64_t now_ns, uint64_t delay_ns) {
    if (!shedding_ || delay_ns <= options_.target_ns) return false;
    last_shed_ns_ = now_ns;
    return true;
  }
  bool shedding() const { return shedding_; }

 private:
  const Options options_;
  uint64_t above_since_ns_ = 0;  // since when every batch's least delay was above target
  uint64_t last_shed_ns_ = 0;
  bool shedding_ = false;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_OVERLOAD_H_
