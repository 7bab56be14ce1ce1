// TcpFramer: the 2-byte length framing of DNS over TCP, fed as a socket would feed it.
#include "proxy/tcp_framing.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <vector>

namespace nodedns::proxy {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes Frame(size_t len, uint8_t fill) {
  Bytes f = {uint8_t(len >> 8), uint8_t(len & 0xff)};
  f.resize(2 + len, fill);
  return f;
}

// Drains every whole message; returns their fill bytes (first byte of each).
std::vector<uint8_t> Drain(TcpFramer& f, TcpFramer::Next& last) {
  std::vector<uint8_t> got;
  std::span<const uint8_t> m;
  while ((last = f.Peek(m)) == TcpFramer::Next::kMessage) {
    got.push_back(m[0]);
    f.Pop();
  }
  f.Compact();
  return got;
}

TEST(TcpFramerTest, MessagesComeOutWholeHoweverTheStreamIsCut) {
  Bytes stream;
  for (uint8_t i = 1; i <= 3; ++i) {
    const Bytes f = Frame(12 + i * 100, i);
    stream.insert(stream.end(), f.begin(), f.end());
  }
  for (size_t cut : {size_t{1}, size_t{2}, size_t{7}, size_t{113}, stream.size()}) {
    TcpFramer f;
    std::vector<uint8_t> got;
    TcpFramer::Next last = TcpFramer::Next::kIncomplete;
    for (size_t off = 0; off < stream.size(); off += cut) {
      f.Append({stream.data() + off, std::min(cut, stream.size() - off)});
      const auto some = Drain(f, last);
      got.insert(got.end(), some.begin(), some.end());
      EXPECT_EQ(last, TcpFramer::Next::kIncomplete);
    }
    EXPECT_EQ(got, (std::vector<uint8_t>{1, 2, 3})) << "cut every " << cut;
    EXPECT_EQ(f.buffered(), 0u);
  }
}

TEST(TcpFramerTest, LengthsBelowAHeaderAreRunts) {
  for (size_t len : {0, 1, 11}) {
    TcpFramer f;
    const Bytes frame = Frame(len, 0);
    f.Append(frame);
    std::span<const uint8_t> m;
    EXPECT_EQ(f.Peek(m), TcpFramer::Next::kRunt) << len;
  }
  TcpFramer f;
  f.Append(Frame(12, 9));
  std::span<const uint8_t> m;
  ASSERT_EQ(f.Peek(m), TcpFramer::Next::kMessage);
  EXPECT_EQ(m.size(), 12u);
}

TEST(TcpFramerTest, ALargeMessagesBufferIsFreedOnceServed) {
  TcpFramer f;
  const Bytes big = Frame(65535, 5);
  f.Append({big.data(), big.size() - 1});
  std::span<const uint8_t> m;
  EXPECT_EQ(f.Peek(m), TcpFramer::Next::kIncomplete);
  f.Append({big.data() + big.size() - 1, 1});
  ASSERT_EQ(f.Peek(m), TcpFramer::Next::kMessage);
  EXPECT_EQ(m.size(), 65535u);
  f.Pop();
  f.Compact();
  EXPECT_EQ(f.buffered(), 0u);
  EXPECT_LE(f.capacity(), TcpFramer::kKeepCapacity);
}

}  // namespace
}  // namespace nodedns::proxy
