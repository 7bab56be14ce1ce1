// Cache snapshot format; see snapshot.h.
#include "cache/snapshot.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace nodedns::cache {

namespace {
constexpr char kMagic[4] = {'N', 'D', 'C', 'S'};
}  // namespace

void AppendSnapshotHeader(std::string* out) {
  out->append(kMagic, sizeof kMagic);
  out->push_back(static_cast<char>(kSnapshotVersion));
}

void AppendSnapshotRecord(std::string* out, uint8_t flags, std::span<const uint8_t> wire) {
  out->push_back(static_cast<char>(flags));
  out->push_back(static_cast<char>(wire.size() >> 8));
  out->push_back(static_cast<char>(wire.size() & 0xff));
  out->append(reinterpret_cast<const char*>(wire.data()), wire.size());
}

absl::StatusOr<SnapshotReader> SnapshotReader::Open(std::span<const uint8_t> snapshot) {
  if (snapshot.size() < kSnapshotHeaderSize || std::memcmp(snapshot.data(), kMagic, 4) != 0) {
    return absl::InvalidArgumentError("not a nodedns cache snapshot");
  }
  if (snapshot[4] != kSnapshotVersion) {
    return absl::FailedPreconditionError(absl::StrCat("cache snapshot version ", snapshot[4],
                                                      ", this build reads ", kSnapshotVersion));
  }
  return SnapshotReader(snapshot.subspan(kSnapshotHeaderSize));
}

absl::StatusOr<bool> SnapshotReader::Next(SnapshotRecord& record) {
  if (rest_.empty()) return false;
  if (rest_.size() < kSnapshotRecordOverhead) {
    return absl::DataLossError("cache snapshot: a record header cut short");
  }
  const size_t len = static_cast<size_t>(rest_[1]) << 8 | rest_[2];
  if (rest_.size() - kSnapshotRecordOverhead < len) {
    return absl::DataLossError("cache snapshot: a record cut short");
  }
  record.flags = rest_[0];
  record.wire = rest_.subspan(kSnapshotRecordOverhead, len);
  rest_ = rest_.subspan(kSnapshotRecordOverhead + len);
  return true;
}

}  // namespace nodedns::cache
