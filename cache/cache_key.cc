// Canonical question keys; see cache_key.h.
#include "cache/cache_key.h"

#include "absl/hash/hash.h"

namespace nodedns::cache {

CacheKey::CacheKey(std::span<const uint8_t> qname, uint16_t qtype, uint16_t qclass, bool do_bit,
                   bool cd_bit) {
  size_t n = qname.size() > dns::kMaxNameWire ? dns::kMaxNameWire : qname.size();
  for (size_t i = 0; i < n; ++i) data_[i] = dns::LowerAscii(qname[i]);
  dns::Put16(data_ + n, qtype);
  dns::Put16(data_ + n + 2, qclass);
  data_[n + 4] = static_cast<uint8_t>((do_bit ? kDoBit : 0) | (cd_bit ? kCdBit : 0));
  size_ = static_cast<uint16_t>(n + 5);
  hash_ = HashKeyBytes(bytes());
}

uint64_t HashKeyBytes(std::span<const uint8_t> bytes) {
  // absl's hash is seeded per process, so an attacker who controls query names cannot aim them at
  // one shard or one probe chain from outside.
  return absl::Hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace nodedns::cache
