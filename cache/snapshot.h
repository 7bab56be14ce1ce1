// Cache snapshots: the hottest entries of one process's cache, passed to the process that
// replaces it at an upgrade (proxy/handover.h), so that the new one does not start cold and send
// the whole node's load to CoreDNS at once.
//
// The format is the cache's public face, not its memory: each record is the response as a hit
// would serve it (TTLs aged to the export time, so that the remaining lifetime travels in them)
// plus the two request bits that split the cache (DO, CD). The importer rebuilds the key from the
// response's question and stores the record through the ordinary Insert(), with its own rules: a
// build with another key layout or entry format reads it the same.
//
//   header  "NDCS" u8 version
//   record  u8 flags (kDoBit | kCdBit) · u16 length (big-endian) · response wire
//
// Pure; any thread.
#ifndef NODEDNS_CACHE_SNAPSHOT_H_
#define NODEDNS_CACHE_SNAPSHOT_H_

#include <cstdint>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nodedns::cache {

inline constexpr uint8_t kSnapshotVersion = 1;
inline constexpr size_t kSnapshotHeaderSize = 5;
inline constexpr size_t kSnapshotRecordOverhead = 3;

void AppendSnapshotHeader(std::string* out);
// `wire` is at most 65535 bytes (a DNS message; the cache stores no larger).
void AppendSnapshotRecord(std::string* out, uint8_t flags, std::span<const uint8_t> wire);

struct SnapshotRecord {
  uint8_t flags = 0;  // CacheKey::kDoBit | CacheKey::kCdBit
  std::span<const uint8_t> wire;
};

// Reads a snapshot record by record. Open() checks the header; Next() returns false at the end,
// and an error for a record cut short (a snapshot is never trusted to be well formed).
class SnapshotReader {
 public:
  static absl::StatusOr<SnapshotReader> Open(std::span<const uint8_t> snapshot);
  absl::StatusOr<bool> Next(SnapshotRecord& record);

 private:
  explicit SnapshotReader(std::span<const uint8_t> rest) : rest_(rest) {}
  std::span<const uint8_t> rest_;
};

}  // namespace nodedns::cache

#endif  // NODEDNS_CACHE_SNAPSHOT_H_
