// `serve --discover-pods`: the pods on this node, found from /proc (podscan/pod_scan.h) every few
// seconds on a thread of their own, reported through a callback. The server feeds each scan to
// the search rewrite (a pod's IP with its namespace, read from its real resolv.conf, so that its
// first external lookup is already rewritten) and keeps the last one for GET /audit/pods and the
// pod gauges. docs/search-rewrite.md ("Discovered pods") and docs/audit.md ("Node mode").
//
// Thread model: PodDiscovery owns one thread, which runs the scans and the callback; Last() and
// stats() from any thread. The data path never waits for it: the rewrite takes a new table under
// its lock in O(1) (SearchPathLearner::SetDiscovered).
#ifndef NODEDNS_PROXY_POD_DISCOVERY_H_
#define NODEDNS_PROXY_POD_DISCOVERY_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "podscan/pod_scan.h"
#include "proxy/search_path_learner.h"

namespace nodedns::proxy {

// Pods named in nodedns_pod_wasted_queries: the most wasteful only, so that the series do not
// grow with the node's pod churn.
inline constexpr size_t kTopWastefulPods = 10;

// The namespace of a pod whose resolv.conf is the cluster default for this nodedns: a search list
// (as glibc and musl both read it) of exactly `<ns>.svc.<zone> svc.<zone> <zone>` followed by
// `node_search` (kubelet's ClusterFirst: the cluster domains, then the node's). nullopt for
// anything else (dnsConfig searches, dnsPolicy Default or None, another zone, other node
// domains): the rewrite's candidates would not be that pod's walk.
std::optional<std::string> ClusterDefaultNamespace(std::string_view resolv_conf,
                                                   std::string_view cluster_domain,
                                                   std::span<const std::string> node_search);

// What the rewrite learns from one scan: every address of every pod with a readable
// resolv.conf, with its namespace (ClusterDefaultNamespace) or "" (never rewrite on a guess).
std::vector<SearchPathLearner::DiscoveredClient> DiscoveredClients(
    const podscan::ScanResult& scan, std::string_view cluster_domain,
    std::span<const std::string> node_search);

class PodDiscovery {
 public:
  struct Options {
    std::string proc = "/proc";
    uint32_t interval_ms = 5000;
  };
  // Called on the discovery thread after each successful scan.
  using Listener = std::function<void(const podscan::ScanResult&)>;

  struct Stats {
    uint64_t scans = 0;            // successful scans
    uint64_t failures = 0;         // scans that could not read the proc root (logged once)
    uint64_t vanished = 0;         // entries gone mid-scan, over all scans
    uint64_t denied = 0;           // entries that could not be read, over all scans
    double last_scan_seconds = 0;  // duration of the last successful scan
    uint64_t pods = 0;             // pods in the last successful scan
  };

  PodDiscovery(Options options, Listener on_scan);
  ~PodDiscovery();  // stops and joins the thread
  PodDiscovery(const PodDiscovery&) = delete;
  PodDiscovery& operator=(const PodDiscovery&) = delete;

  // Starts the thread: a scan at once, then one every interval.
  void Start();
  // The last successful scan; null before the first.
  std::shared_ptr<const podscan::ScanResult> Last() const;
  Stats stats() const;
  const Options& options() const { return options_; }

 private:
  void Loop();
  void ScanOnce();

  const Options options_;
  const Listener on_scan_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;                                // guarded by mu_
  std::shared_ptr<const podscan::ScanResult> last_;  // guarded by mu_
  Stats stats_;                                      // guarded by mu_
  bool failure_logged_ = false;                      // discovery thread only
  std::thread thread_;
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_POD_DISCOVERY_H_
