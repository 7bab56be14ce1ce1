// The misses in flight on one worker. Identical questions (same cache key) coalesce on one
// upstream query; when it completes, the reply goes into the cache and every waiter is told
// through its listener. The table knows nothing of who waits: a client of the query path or a
// candidate of a search-path rewrite look the same to it.
//
// Pendings are recycled with their waiter vectors and keyed by a view of their own key's bytes,
// and a waiter keeps the client's question inline: no allocation per miss once warm.
#ifndef NODEDNS_PROXY_MISS_TABLE_H_
#define NODEDNS_PROXY_MISS_TABLE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "cache/cache_key.h"
#include "proxy/client.h"
#include "proxy/worker_context.h"
#include "upstream/forward.h"
#include "upstream/tcp_forwarder.h"
#include "upstream/udp_forwarder.h"

namespace nodedns::proxy {

struct MissWaiter;

// What a forwarder's ReplyObserver is given back: whose reply it was.
struct ObserverArg {
  class MissTable* table;
  const std::vector<size_t>* metrics_upstream;  // the zone's, by server index
};

// What came back for a miss.
struct MissOutcome {
  const cache::CacheKey& key;
  bool ok;                         // a reply that answers the question (ID and question matched)
  std::span<const uint8_t> reply;  // when ok: as received, inserted into the cache already
  bool failed;                     // not ok, or SERVFAIL: a stale answer may serve instead
  uint64_t now;
  bool rejected = false;  // never sent: the zone's max_concurrent was reached (REFUSED)
};

class MissListener {
 public:
  // `waiter` is the listener's to move from.
  virtual void OnMissDone(MissWaiter& waiter, const MissOutcome& outcome) = 0;
  // The client response timer (RFC 8767 §5) ran out for a waiter that joined with stale_ok, and
  // the upstream query is still out: answer it from the stale entry if there is one, and return
  // whether it was answered (then the table forgets it; otherwise it keeps waiting). `outcome`
  // has ok = false and failed = true. Also called at once for a stale_ok waiter that joins a
  // query whose timer ran out already.
  virtual bool OnMissSlow(MissWaiter& /*waiter*/, const MissOutcome& /*outcome*/) { return false; }

 protected:
  ~MissListener() = default;
};

struct MissWaiter {
  MissListener* listener = nullptr;
  uint64_t tag = 0;  // the listener's own
  // The cache holds an expired answer for the key that this waiter may be given once the client
  // response timer runs out (OnMissSlow).
  bool stale_ok = false;
  Client client;  // for the query path's waiters
};

class MissTable {
 public:
  explicit MissTable(WorkerContext& ctx);
  ~MissTable();
  MissTable(const MissTable&) = delete;
  MissTable& operator=(const MissTable&) = delete;

  // Creates the forwarders of every --forward zone on the worker's loop.
  absl::Status Start();
  // After a reload (ctx.config replaced): forwarders for the new zones; the old ones finish what
  // they have in flight and are closed once idle (checked every second).
  absl::Status Reconfigure();
  // Fails what is in flight without telling anyone (the worker is stopping), closes the handles.
  void Shutdown();

  // `waiter` gets the outcome of the upstream query for `key`, joining one in flight or sending
  // one. The listener may be called before Join returns (a send that fails at once).
  void Join(const cache::CacheKey& key, bool do_bit, bool cd_bit, MissWaiter&& waiter);
  // A background refresh of `key` (prefetch) unless one is in flight or the zone is at its
  // max_concurrent; whether it was sent.
  bool Refresh(const cache::CacheKey& key, bool do_bit, bool cd_bit);
  // Sends the UDP queries queued during a batch (one sendmmsg per upstream socket).
  void Flush();
  // Nothing in flight: no client waits and no refresh is out.
  bool Idle() const { return pending_.empty(); }

 private:
  struct Pending;
  // The forwarders of one configuration, per config.zones entry: the TCP forwarder (--force-tcp
  // zones, and UDP replies with TC=1) and the UDP forwarder (null for --force-tcp zones).
  struct Generation {
    // Per zone: its upstreams' health, node-wide; declared first, so it outlives the forwarders.
    std::vector<std::shared_ptr<upstream::UpstreamHealth>> health;
    std::vector<std::unique_ptr<upstream::TcpForwarder>> tcp;
    std::vector<std::unique_ptr<upstream::UdpForwarder>> udp;  // destroyed before tcp
    // Per zone with a max_concurrent: distinct upstream queries in flight, node-wide (null: no
    // limit); the limit (0: none).
    std::vector<std::shared_ptr<std::atomic<int64_t>>> in_flight;
    std::vector<size_t> limit;
    // Per zone, per upstream: the CoreDNS metrics index of the address (`to` label).
    std::vector<std::vector<size_t>> metrics_upstream;
    std::vector<std::unique_ptr<ObserverArg>> observer_args;
    bool shut_down = false;
    bool Idle() const;
    void Shutdown();
  };
  absl::StatusOr<std::unique_ptr<Generation>> Build();
  static void OnReplyObserved(void* arg, size_t server, uint8_t rcode, uint64_t rtt_ns);
  void ReapRetired();
  size_t ZoneOfKey(const cache::CacheKey& key) const;
  bool AtLimit(size_t zone) const;
  Pending* NewPending(const cache::CacheKey& key);
  void Send(const cache::CacheKey& key, bool do_bit, bool cd_bit, Pending* p);
  static void OnUpstreamReply(void* arg, upstream::ForwardStatus status,
                              std::span<const uint8_t> reply);
  void Complete(Pending* p, upstream::ForwardStatus status, std::span<const uint8_t> reply);

  WorkerContext& ctx_;
  std::unique_ptr<Generation> current_;
  std::vector<std::unique_ptr<Generation>> retired_;  // after reloads, until idle
  uv_timer_t reap_timer_;
  bool reap_timer_started_ = false;
  absl::flat_hash_map<absl::string_view, std::unique_ptr<Pending>> pending_;
  std::vector<std::unique_ptr<Pending>> pool_;

  // The client response timer (ServeConfig::stale_answer_client_timeout_ms): one deadline per
  // pending query with a stale_ok waiter, in a FIFO (every deadline is now + the same timeout, so
  // it is sorted) under one uv timer. A deadline names its query by a serial that Complete()
  // retires, so a query answered (or its Pending recycled) before the timer is skipped.
  struct SlowDeadline {
    uint64_t at_ms;
    uint64_t serial;
  };
  void ArmSlow(Pending* p);
  void OnSlowTimer();
  std::deque<SlowDeadline> slow_deadlines_;
  absl::flat_hash_map<uint64_t, Pending*> slow_armed_;
  uint64_t next_serial_ = 1;
  uv_timer_t slow_timer_;
  bool slow_timer_running_ = false;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_MISS_TABLE_H_
