// A UDP relay between nodedns and a real upstream (Knot in the integration tests), for the failure
// paths a real server will not take on demand: it counts the queries it receives and, by mode,
// forwards each to the target after a delay and relays the reply back (optionally with AD set, as
// from a validating resolver), drops it (a silent upstream), or answers SERVFAIL itself (a broken
// upstream). The mode can change while nodedns runs. UDP only: enough for small answers.
#ifndef NODEDNS_TESTS_TESTING_RELAY_H_
#define NODEDNS_TESTS_TESTING_RELAY_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace nodedns::testing {

class Relay {
 public:
  enum class Mode { kForward, kForwardWithAd, kDrop, kServfail };

  // Listens on a free loopback port; forwards to 127.0.0.1:target_port.
  Relay(uint16_t target_port, std::chrono::milliseconds delay, Mode mode);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  uint16_t port() const { return port_; }
  int queries() const { return queries_; }
  void set_mode(Mode m) { mode_ = m; }

 private:
  void Run();

  uint16_t target_port_;
  std::chrono::milliseconds delay_;
  std::atomic<Mode> mode_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::thread thread_;
};

}  // namespace nodedns::testing

#endif  // NODEDNS_TESTS_TESTING_RELAY_H_
