// The 2-byte length framing of DNS over TCP (RFC 1035 §4.2.2, RFC 7766 §8) without sockets: bytes
// go in as the socket delivered them, whole messages come out. TcpFrontend keeps one per client
// connection; tests/fuzz/tcp_framing_fuzz.cc feeds it arbitrary streams cut at arbitrary points.
#ifndef NODEDNS_PROXY_TCP_FRAMING_H_
#define NODEDNS_PROXY_TCP_FRAMING_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace nodedns::proxy {

class TcpFramer {
 public:
  enum class Next : uint8_t {
    kMessage,     // `message` is the next whole message
    kIncomplete,  // nothing buffered, or part of a length prefix or of a message
    // A length prefix below the 12-byte header: nothing after it can be trusted to be a frame
    // boundary, and there is no ID to answer with (RFC 1035 §4.1.1).
    kRunt,
  };
  // A buffer that grew past this for a large message is freed once it empties, so that an idle
  // connection costs no more than this.
  static constexpr size_t kKeepCapacity = 4096;

  void Append(std::span<const uint8_t> bytes) {
    if (bytes.empty()) return;
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
  }
  // The next whole message, left in the buffer: `message` stays valid until the next Append or
  // Compact (Pop does not move it).
  Next Peek(std::span<const uint8_t>& message) const;
  // Consumes the message Peek just returned (kMessage only).
  void Pop();
  // Drops the consumed bytes.
  void Compact();
  // Drops everything buffered (the stream cannot be framed any further).
  void Clear() {
    std::vector<uint8_t>().swap(buf_);
    off_ = 0;
  }
  // Bytes received and not consumed yet: whole messages not served, and a partial one.
  size_t buffered() const { return buf_.size() - off_; }
  size_t capacity() const { return buf_.capacity(); }

 private:
  std::vector<uint8_t> buf_;
  size_t off_ = 0;  // start of the first message not consumed
};

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_TCP_FRAMING_H_
