// Fuzz target: the 2-byte length framing of client TCP connections (proxy/tcp_framing.h), driven
// as TcpFrontend drives it: bytes appended as reads deliver them, whole messages served while
// "in flight" allows, reading paused while a whole message waits.
//
// Input: 2 control bytes, then the byte stream a client sends.
//   byte 0: the seed of the read sizes (a xorshift generator; sizes 1..2^(1 + seed % 16) bytes,
//           so that single bytes and whole 64 KiB reads both occur).
//   byte 1: the seed of the in-flight limit: how many messages are served before reading pauses
//           (1..8), and when the pause lifts.
// Checks, against an independent walk of the whole stream: the messages come out whole, in
// order, byte for byte; a length below the header is reported as a runt exactly where the walk
// finds it and nothing after it comes out; what is left buffered at the end is the walk's
// incomplete tail; the buffer never holds more than a partial message plus one read; once it
// empties, a large buffer is freed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "dns/wire.h"
#include "proxy/tcp_framing.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using nodedns::proxy::TcpFramer;

struct Walk {
  std::vector<std::span<const uint8_t>> messages;
  bool runt = false;  // the stream holds a runt length after the messages
  size_t tail = 0;    // bytes after the last message (no runt): an incomplete frame
};

// The reference: reads the whole stream at once, no buffering.
Walk WalkStream(std::span<const uint8_t> s) {
  Walk w;
  size_t off = 0;
  while (s.size() - off >= 2) {
    const size_t len = static_cast<size_t>(s[off]) << 8 | s[off + 1];
    if (len < nodedns::dns::kHeaderSize) {
      w.runt = true;
      return w;
    }
    if (s.size() - off - 2 < len) break;
    w.messages.push_back(s.subspan(off + 2, len));
    off += 2 + len;
  }
  w.tail = s.size() - off;
  return w;
}

struct Rng {
  uint32_t state;
  uint32_t Next() {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Rng reads{0x9e3779b9u ^ data[0] * 0x01000193u};
  Rng pauses{0x85ebca6bu ^ data[1] * 0x01000193u};
  const size_t max_read = size_t{1} << (1 + data[0] % 16);
  const std::span<const uint8_t> stream(data + 2, size - 2);
  const Walk want = WalkStream(stream);

  TcpFramer f;
  size_t fed = 0, served = 0;
  bool runt = false;
  while (true) {
    // Serve up to the in-flight limit, as ResumeReads does.
    const size_t limit = 1 + pauses.Next() % 8;
    size_t now = 0;
    TcpFramer::Next next;
    std::span<const uint8_t> m;
    while (now < limit && (next = f.Peek(m)) == TcpFramer::Next::kMessage) {
      FUZZ_CHECK(served < want.messages.size());
      const std::span<const uint8_t> w = want.messages[served];
      FUZZ_CHECK(m.size() == w.size() && std::equal(m.begin(), m.end(), w.begin()));
      FUZZ_CHECK(m.size() >= nodedns::dns::kHeaderSize);
      f.Pop();
      ++served;
      ++now;
    }
    if (now == limit) next = f.Peek(m);
    if (next == TcpFramer::Next::kRunt) {
      runt = true;
      break;  // the front end closes the connection
    }
    const bool paused = next == TcpFramer::Next::kMessage;
    f.Compact();
    if (f.buffered() == 0) FUZZ_CHECK(f.capacity() <= TcpFramer::kKeepCapacity);
    if (paused) continue;  // replies come back, the limit lifts, serving resumes
    if (fed == stream.size()) break;
    // Reading: only with no whole message buffered, so at most a partial one is.
    FUZZ_CHECK(f.buffered() < 2 + nodedns::dns::kMaxMessage);
    const size_t n = std::min<size_t>(1 + reads.Next() % max_read, stream.size() - fed);
    f.Append(stream.subspan(fed, n));
    fed += n;
    FUZZ_CHECK(f.buffered() < 2 + nodedns::dns::kMaxMessage + max_read);
  }
  FUZZ_CHECK(served == want.messages.size());
  FUZZ_CHECK(runt == want.runt);
  if (!runt) FUZZ_CHECK(f.buffered() == want.tail);
  return 0;
}
