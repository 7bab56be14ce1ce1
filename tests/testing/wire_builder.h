// Test-only byte-by-byte message building, for the shapes ldns will not write: compression
// pointers placed by hand (loops, forward pointers, pointers into labels or the header),
// obsolete label types, overlong names and RDATA that does not match its RDLENGTH.
#ifndef NODEDNS_TESTS_TESTING_WIRE_BUILDER_H_
#define NODEDNS_TESTS_TESTING_WIRE_BUILDER_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace nodedns::testing {

class WireBuilder {
 public:
  // A response header: QR RD RA, NOERROR, the given counts.
  WireBuilder(uint16_t qd, uint16_t an, uint16_t ns = 0, uint16_t ar = 0) {
    U16(0x1234).U16(0x8180).U16(qd).U16(an).U16(ns).U16(ar);
  }
  WireBuilder& U8(uint8_t v) {
    b_.push_back(v);
    return *this;
  }
  WireBuilder& U16(uint16_t v) {
    return U8(static_cast<uint8_t>(v >> 8)).U8(static_cast<uint8_t>(v));
  }
  WireBuilder& U32(uint32_t v) {
    return U16(static_cast<uint16_t>(v >> 16)).U16(static_cast<uint16_t>(v));
  }
  WireBuilder& Raw(std::string_view bytes) {
    b_.insert(b_.end(), bytes.begin(), bytes.end());
    return *this;
  }
  // Labels of a dotted name, without the root byte (so that a pointer or the root can follow).
  WireBuilder& Labels(std::string_view dotted) {
    while (!dotted.empty()) {
      const size_t dot = dotted.find('.');
      const std::string_view label = dotted.substr(0, dot);
      U8(static_cast<uint8_t>(label.size())).Raw(label);
      dotted = dot == std::string_view::npos ? std::string_view() : dotted.substr(dot + 1);
    }
    return *this;
  }
  WireBuilder& Name(std::string_view dotted) { return Labels(dotted).U8(0); }
  WireBuilder& Pointer(size_t target) { return U16(static_cast<uint16_t>(0xc000 | target)); }
  // TYPE, CLASS IN, TTL and an RDLENGTH to be filled in by EndRdata (or given explicitly).
  WireBuilder& RrFixed(uint16_t type, uint32_t ttl) {
    U16(type).U16(1).U32(ttl);
    rdlength_at_ = b_.size();
    return U16(0);
  }
  // Sets the RDLENGTH of the last RrFixed to the bytes written since, plus `adjust`.
  WireBuilder& EndRdata(int adjust = 0) {
    const size_t n = b_.size() - rdlength_at_ - 2 + adjust;
    b_[rdlength_at_] = static_cast<uint8_t>(n >> 8);
    b_[rdlength_at_ + 1] = static_cast<uint8_t>(n);
    return *this;
  }
  size_t size() const { return b_.size(); }
  const std::vector<uint8_t>& bytes() const { return b_; }

 private:
  std::vector<uint8_t> b_;
  size_t rdlength_at_ = 0;
};

}  // namespace nodedns::testing

#endif  // NODEDNS_TESTS_TESTING_WIRE_BUILDER_H_
