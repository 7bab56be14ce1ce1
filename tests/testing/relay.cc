// See relay.h.
#include "tests/testing/relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>

#include "tests/testing/net.h"

namespace nodedns::testing {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

Relay::Relay(uint16_t target_port, milliseconds delay, Mode mode)
    : target_port_(target_port), delay_(delay), mode_(mode) {
  fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = Loopback(0);
  socklen_t len = sizeof a;
  bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { Run(); });
}

Relay::~Relay() {
  stop_ = true;
  thread_.join();
  close(fd_);
}

void Relay::Run() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 50) != 1) continue;
    Bytes buf(65536);
    sockaddr_storage from{};
    socklen_t from_len = sizeof from;
    const ssize_t n =
        recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n <= 0) continue;
    ++queries_;
    buf.resize(static_cast<size_t>(n));
    std::optional<Bytes> reply;
    switch (mode_.load()) {
      case Mode::kDrop:
        continue;
      case Mode::kServfail:
        if (buf.size() < 12) continue;
        reply = buf;
        (*reply)[2] |= 0x80;     // QR
        (*reply)[3] = 0x80 | 2;  // RA, SERVFAIL
        break;
      case Mode::kForward:
      case Mode::kForwardWithAd:
        // Sleep in small steps so that the destructor never waits long.
        for (auto end = Clock::now() + delay_; Clock::now() < end && !stop_;) {
          std::this_thread::sleep_for(milliseconds(10));
        }
        reply = UdpExchange(target_port_, buf, 2000);
        // As a validating resolver would: "authentic data".
        if (reply && reply->size() >= 12 && mode_ == Mode::kForwardWithAd) (*reply)[3] |= 0x20;
        break;
    }
    if (reply) {
      sendto(fd_, reply->data(), reply->size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
    }
  }
}

}  // namespace nodedns::testing
