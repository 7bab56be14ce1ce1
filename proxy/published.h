// A worker's per-client counts (wasted_queries.h, client_queries.h, miss_admission.h) as other
// threads see them: the worker copies its fixed arrays here once a second, and GET /audit reads
// the copy. The lock is taken by the worker once per publish and by readers, never per query.
#ifndef NODEDNS_PROXY_PUBLISHED_H_
#define NODEDNS_PROXY_PUBLISHED_H_

#include <mutex>
#include <span>
#include <vector>

namespace nodedns::proxy {

template <typename T>
class Published {
 public:
  // Worker thread. The copy is made before the lock is taken.
  void Publish(std::span<const T> current) {
    std::vector<T> copy(current.begin(), current.end());
    std::lock_guard lock(mu_);
    published_ = std::move(copy);
  }
  // Any thread: the last published copy.
  std::vector<T> Snapshot() const {
    std::lock_guard lock(mu_);
    return published_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<T> published_;  // guarded by mu_
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_PUBLISHED_H_
