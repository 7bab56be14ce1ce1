// See tcp_framing.h.
#include "proxy/tcp_framing.h"

#include "dns/wire.h"

namespace nodedns::proxy {

TcpFramer::Next TcpFramer::Peek(std::span<const uint8_t>& message) const {
  const size_t have = buffered();
  if (have < 2) return Next::kIncomplete;
  const size_t len = dns::Get16(buf_.data() + off_);
  if (len < dns::kHeaderSize) return Next::kRunt;
  if (have - 2 < len) return Next::kIncomplete;
  message = {buf_.data() + off_ + 2, len};
  return Next::kMessage;
}

void TcpFramer::Pop() { off_ += 2 + dns::Get16(buf_.data() + off_); }

void TcpFramer::Compact() {
  if (off_ == 0) return;
  if (off_ == buf_.size() && buf_.capacity() > kKeepCapacity) {
    std::vector<uint8_t>().swap(buf_);
  } else {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<ptrdiff_t>(off_));
  }
  off_ = 0;
}

}  // namespace nodedns::proxy
