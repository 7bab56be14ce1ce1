// Pods from /proc, every few seconds. See pod_discovery.h.
#include "proxy/pod_discovery.h"

#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/string_view_compat.h"
#include "proxy/search_rewrite.h"
#include "resolvconf/resolv_conf.h"

namespace nodedns::proxy {
namespace {

std::string Normalized(std::string_view domain) {
  std::string d = absl::AsciiStrToLower(Av(domain));
  while (!d.empty() && d.back() == '.') d.pop_back();
  return d;
}

}  // namespace

std::optional<std::string> ClusterDefaultNamespace(std::string_view resolv_conf,
                                                   std::string_view cluster_domain,
                                                   std::span<const std::string> node_search) {
  const resolvconf::ResolvConf conf = resolvconf::ParseResolvConf(resolv_conf).conf;
  // glibc and musl must read the same list: a line musl drops (too long) makes the walks differ.
  if (conf.search != conf.musl_search || conf.search.size() != 3 + node_search.size()) {
    return std::nullopt;
  }
  const std::string zone = Normalized(cluster_domain);
  const std::string svc = "svc." + zone;
  const std::string first = Normalized(conf.search[0]);
  if (!absl::EndsWith(first, absl::StrCat(".", svc))) return std::nullopt;
  const std::string ns = first.substr(0, first.size() - svc.size() - 1);
  if (!IsNamespaceName(ns)) return std::nullopt;
  if (Normalized(conf.search[1]) != svc || Normalized(conf.search[2]) != zone) return std::nullopt;
  for (size_t i = 0; i < node_search.size(); ++i) {
    if (Normalized(conf.search[3 + i]) != Normalized(node_search[i])) return std::nullopt;
  }
  return ns;
}

std::vector<SearchPathLearner::DiscoveredClient> DiscoveredClients(
    const podscan::ScanResult& scan, std::string_view cluster_domain,
    std::span<const std::string> node_search) {
  std::vector<SearchPathLearner::DiscoveredClient> out;
  for (const podscan::DiscoveredPod& pod : scan.pods) {
    if (pod.resolv_conf_path.empty()) continue;  // nothing read: learning decides, as before
    const std::string ns =
        ClusterDefaultNamespace(pod.resolv_conf, cluster_domain, node_search).value_or("");
    for (const std::string& address : pod.addresses) out.push_back({address, ns});
  }
  return out;
}

PodDiscovery::PodDiscovery(Options options, Listener on_scan)
    : options_(std::move(options)), on_scan_(std::move(on_scan)) {}

PodDiscovery::~PodDiscovery() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PodDiscovery::Start() {
  thread_ = std::thread([this] { Loop(); });
}

std::shared_ptr<const podscan::ScanResult> PodDiscovery::Last() const {
  std::lock_guard lock(mu_);
  return last_;
}

PodDiscovery::Stats PodDiscovery::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void PodDiscovery::Loop() {
  for (;;) {
    ScanOnce();
    std::unique_lock lock(mu_);
    if (wake_.wait_for(lock, std::chrono::milliseconds(options_.interval_ms),
                       [this] { return stop_; })) {
      return;
    }
  }
}

void PodDiscovery::ScanOnce() {
  const auto start = std::chrono::steady_clock::now();
  std::string error;
  std::optional<podscan::ScanResult> scan = podscan::ScanNode({.proc = options_.proc}, &error);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!scan.has_value()) {
    if (!failure_logged_) {
      std::fprintf(stderr, "nodedns: --discover-pods: %s (retrying every %u ms)\n", error.c_str(),
                   options_.interval_ms);
      failure_logged_ = true;
    }
    std::lock_guard lock(mu_);
    ++stats_.failures;
    return;
  }
  failure_logged_ = false;
  auto shared = std::make_shared<const podscan::ScanResult>(*std::move(scan));
  if (on_scan_) on_scan_(*shared);
  std::lock_guard lock(mu_);
  ++stats_.scans;
  stats_.vanished += shared->vanished;
  stats_.denied += shared->denied;
  stats_.last_scan_seconds = seconds;
  stats_.pods = shared->pods.size();
  last_ = std::move(shared);
}

}  // namespace nodedns::proxy
