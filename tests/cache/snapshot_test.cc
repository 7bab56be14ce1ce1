// Cache snapshots (cache/snapshot.h, ResponseCache::Export/Import): the record format and its
// reader on hostile input, and a handover from one cache to another: what travels (live entries,
// their remaining TTLs, the DO/CD split), what does not (expired, SERVFAIL), which entries come
// first under a byte bound, and that the bound holds.
#include "cache/snapshot.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "cache/response_cache.h"
#include "dns/wire.h"
#include "tests/testing/cache_answers.h"
#include "tests/testing/dns_builder.h"

namespace nodedns::cache {
namespace {

using ::nodedns::testing::Build;
using ::nodedns::testing::MessageSpec;
using ::nodedns::testing::WireName;
using Status = LookupResult::Status;

constexpr uint64_t kT0 = 1'000'000;       // the exporting process's monotonic clock, in ms
constexpr uint64_t kB0 = 77'000'000'000;  // the importing one's: unrelated to the first
constexpr size_t kNoChunking = SIZE_MAX;

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

using ::nodedns::testing::Answer;
using ::nodedns::testing::KeyFor;
using ::nodedns::testing::Soa;

// Reads every record of one snapshot; fails the test on a malformed one.
std::vector<SnapshotRecord> ReadAll(std::span<const uint8_t> snapshot) {
  std::vector<SnapshotRecord> records;
  auto reader = SnapshotReader::Open(snapshot);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return records;
  SnapshotRecord rec;
  for (;;) {
    auto more = reader->Next(rec);
    EXPECT_TRUE(more.ok()) << more.status();
    if (!more.ok() || !*more) return records;
    records.push_back(rec);
  }
}

// --- The format alone ---

TEST(SnapshotFormatTest, RecordsReadBackWithTheirFlagsAndBytes) {
  std::string s;
  AppendSnapshotHeader(&s);
  ASSERT_EQ(s.size(), kSnapshotHeaderSize);
  const std::vector<uint8_t> a = {1, 2, 3}, b(300, 0xab);
  AppendSnapshotRecord(&s, CacheKey::kDoBit, a);
  AppendSnapshotRecord(&s, CacheKey::kDoBit | CacheKey::kCdBit, b);
  AppendSnapshotRecord(&s, 0, {});
  EXPECT_EQ(s.size(), kSnapshotHeaderSize + 3 * kSnapshotRecordOverhead + a.size() + b.size());
  const auto bytes = Bytes(s);
  const auto records = ReadAll(bytes);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].flags, CacheKey::kDoBit);
  EXPECT_EQ(std::vector<uint8_t>(records[0].wire.begin(), records[0].wire.end()), a);
  EXPECT_EQ(records[1].flags, CacheKey::kDoBit | CacheKey::kCdBit);
  EXPECT_EQ(std::vector<uint8_t>(records[1].wire.begin(), records[1].wire.end()), b);
  EXPECT_TRUE(records[2].wire.empty());
}

TEST(SnapshotFormatTest, WrongMagicOrVersionIsRefused) {
  std::string s;
  AppendSnapshotHeader(&s);
  AppendSnapshotRecord(&s, 0, std::vector<uint8_t>{1, 2, 3});
  auto bytes = Bytes(s);
  ASSERT_TRUE(SnapshotReader::Open(bytes).ok());

  for (size_t i = 0; i < 4; ++i) {  // each byte of the magic
    auto bad = bytes;
    bad[i] ^= 0x20;
    const auto r = SnapshotReader::Open(bad);
    ASSERT_FALSE(r.ok()) << "magic byte " << i;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
  for (const uint8_t version : {0, kSnapshotVersion + 1, 255}) {
    auto bad = bytes;
    bad[4] = version;
    const auto r = SnapshotReader::Open(bad);
    ASSERT_FALSE(r.ok()) << "version " << int{version};
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(r.status().message().find("version"), std::string_view::npos) << r.status();
  }
  EXPECT_FALSE(SnapshotReader::Open({}).ok());
}

// Every prefix of a snapshot, each in a buffer of exactly its size (ASan sees any overread): a
// prefix that ends between records reads as the records before it, any other is an error.
TEST(SnapshotFormatTest, EveryTruncationIsAnErrorOrEndsOnARecordBoundary) {
  std::string s;
  AppendSnapshotHeader(&s);
  std::vector<size_t> ends = {s.size()};
  for (size_t n : {0, 1, 2, 40, 257}) {
    AppendSnapshotRecord(&s, CacheKey::kCdBit, std::vector<uint8_t>(n, 0x5a));
    ends.push_back(s.size());
  }
  for (size_t len = 0; len <= s.size(); ++len) {
    const std::vector<uint8_t> prefix(s.begin(), s.begin() + len);
    auto reader = SnapshotReader::Open(prefix);
    if (len < kSnapshotHeaderSize) {
      EXPECT_FALSE(reader.ok()) << "a header of " << len << " bytes was accepted";
      continue;
    }
    ASSERT_TRUE(reader.ok()) << len;
    size_t records = 0;
    bool error = false;
    SnapshotRecord rec;
    for (;;) {
      auto more = reader->Next(rec);
      if (!more.ok()) {
        EXPECT_EQ(more.status().code(), absl::StatusCode::kDataLoss);
        error = true;
        break;
      }
      if (!*more) break;
      ++records;
    }
    size_t whole = 0;
    while (whole + 1 < ends.size() && ends[whole + 1] <= len) ++whole;
    EXPECT_EQ(records, whole) << "at length " << len;
    EXPECT_EQ(error, ends[whole] != len) << "at length " << len;
  }
}

// --- Export and Import between two caches ---

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CacheSettings s;
    s.capacity_bytes = 1 << 20;
    old_ = std::make_unique<ResponseCache>(s);
    new_ = std::make_unique<ResponseCache>(s);
    old_thread_ = old_->RegisterThread();
    new_thread_ = new_->RegisterThread();
  }
  void TearDown() override {
    old_thread_.reset();
    new_thread_.reset();
  }

  InsertResult Insert(const CacheKey& k, const std::vector<uint8_t>& wire, uint64_t now = kT0) {
    return old_->Insert(*old_thread_, k, wire, now);
  }
  // The old cache's snapshot as its chunks.
  std::vector<std::vector<uint8_t>> Export(uint64_t now, size_t max_bytes,
                                           size_t chunk_bytes = kNoChunking) {
    std::vector<std::vector<uint8_t>> chunks;
    exported_ = old_->Export(*old_thread_, now, max_bytes, chunk_bytes,
                             [&](std::span<const uint8_t> chunk) {
                               chunks.emplace_back(chunk.begin(), chunk.end());
                               return true;
                             });
    return chunks;
  }
  // Into the new cache, every chunk; the counts summed.
  ResponseCache::ImportResult Import(const std::vector<std::vector<uint8_t>>& chunks,
                                     uint64_t now = kB0, const EntryPolicy* policy = nullptr) {
    ResponseCache::ImportResult sum;
    for (const auto& c : chunks) {
      auto r =
          new_->Import(*new_thread_, c, now, [policy](std::span<const uint8_t>) { return policy; });
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) continue;
      sum.imported += r->imported;
      sum.refused += r->refused;
      sum.bad += r->bad;
    }
    return sum;
  }
  LookupResult Lookup(ResponseCache& c, const CacheKey& k, uint64_t now) {
    out_.assign(65535, 0);
    auto& t = &c == old_.get() ? *old_thread_ : *new_thread_;
    auto r = c.Lookup(t, k, now, out_);
    out_.resize(r.status == Status::kHit ? r.size : 0);
    return r;
  }

  std::unique_ptr<ResponseCache> old_, new_;
  std::unique_ptr<CacheThread> old_thread_, new_thread_;
  std::vector<uint8_t> out_;
  size_t exported_ = 0;
};

TEST_F(SnapshotTest, RoundTripKeepsAnswersNegativesKeyBitsAndRemainingTtls) {
  // Four entries for one question, told apart by their address: DO and CD split the cache.
  const char* addr[2][2] = {{"192.0.2.1", "192.0.2.2"}, {"192.0.2.3", "192.0.2.4"}};
  for (int d = 0; d < 2; ++d) {
    for (int c = 0; c < 2; ++c) {
      ASSERT_EQ(Insert(KeyFor("Www.Example.COM.", dns::type::kA, d, c),
                       Build(Answer("Www.Example.COM.", 300, addr[d][c]))),
                InsertResult::kInserted);
    }
  }
  MessageSpec nx;
  nx.qname = "nx.example.com.";
  nx.rcode = dns::rcode::kNxDomain;
  nx.authority = {Soa("example.com.", 3600, 300)};  // negative TTL: the MINIMUM, 300
  ASSERT_EQ(Insert(KeyFor("nx.example.com."), Build(nx)), InsertResult::kInserted);
  MessageSpec nodata;
  nodata.qname = "example.com.";
  nodata.qtype = dns::type::kAAAA;
  nodata.authority = {Soa("example.com.", 300, 600)};
  ASSERT_EQ(Insert(KeyFor("example.com.", dns::type::kAAAA), Build(nodata)),
            InsertResult::kInserted);

  const uint64_t at = kT0 + 100'000;
  const auto chunks = Export(at, 1 << 20);
  EXPECT_EQ(exported_, 6u);
  const auto r = Import(chunks);
  EXPECT_EQ(r.imported, 6u);
  EXPECT_EQ(r.refused, 0u);
  EXPECT_EQ(r.bad, 0u);

  std::vector<CacheKey> keys;
  for (int d = 0; d < 2; ++d) {
    for (int c = 0; c < 2; ++c) keys.push_back(KeyFor("www.example.com.", dns::type::kA, d, c));
  }
  keys.push_back(KeyFor("nx.example.com."));
  keys.push_back(KeyFor("example.com.", dns::type::kAAAA));
  const EntryKind kinds[] = {EntryKind::kAnswer, EntryKind::kAnswer,   EntryKind::kAnswer,
                             EntryKind::kAnswer, EntryKind::kNxDomain, EntryKind::kNoData};
  for (size_t i = 0; i < keys.size(); ++i) {
    // The new process serves, at its own clock, what the old one served at export time: the same
    // bytes (each address under its own key bits), the same aged TTL.
    const auto before = Lookup(*old_, keys[i], at);
    ASSERT_EQ(before.status, Status::kHit) << i;
    const std::vector<uint8_t> old_bytes = out_;
    const auto after = Lookup(*new_, keys[i], kB0);
    ASSERT_EQ(after.status, Status::kHit) << i;
    EXPECT_EQ(after.kind, kinds[i]) << i;
    EXPECT_EQ(after.ttl, 200u) << i;
    EXPECT_EQ(out_, old_bytes) << i;
    // The remaining lifetime, to the second: still there at 199 s, expired at 200 s.
    EXPECT_EQ(Lookup(*new_, keys[i], kB0 + 199'000).status, Status::kHit) << i;
    EXPECT_EQ(Lookup(*new_, keys[i], kB0 + 200'000).status, Status::kExpired) << i;
  }
}

TEST_F(SnapshotTest, ImportAppliesTheImportersPolicy) {
  ASSERT_EQ(Insert(KeyFor("example.com."), Build(Answer("example.com.", 300))),
            InsertResult::kInserted);
  EntryPolicy p;
  p.max_ttl = 60;
  std::vector<std::vector<uint8_t>> chunks = Export(kT0 + 10'000, 1 << 20);
  ASSERT_EQ(Import(chunks, kB0, &p).imported, 1u);
  const auto r = Lookup(*new_, KeyFor("example.com."), kB0);
  ASSERT_EQ(r.status, Status::kHit);
  EXPECT_EQ(r.ttl, 60u);
}

TEST_F(SnapshotTest, ExpiredAndServFailEntriesAreNotExported) {
  ASSERT_EQ(Insert(KeyFor("short.example."), Build(Answer("short.example.", 10))),
            InsertResult::kInserted);
  ASSERT_EQ(Insert(KeyFor("long.example."), Build(Answer("long.example.", 300))),
            InsertResult::kInserted);
  MessageSpec sf;
  sf.qname = "broken.example.";
  sf.rcode = dns::rcode::kServFail;
  ASSERT_EQ(Insert(KeyFor("broken.example."), Build(sf)), InsertResult::kInserted);

  // At +1 s the SERVFAIL is live (5 s) but still not exported; at +10 s "short" has just expired
  // (servable stale in the old cache, but not worth handing over).
  for (const uint64_t at : {kT0 + 1'000, kT0 + 10'000}) {
    const auto chunks = Export(at, 1 << 20);
    ASSERT_EQ(chunks.size(), 1u);
    const auto records = ReadAll(chunks[0]);
    EXPECT_EQ(exported_, records.size());
    std::set<std::string> labels;  // each record's first qname label
    for (const auto& rec : records) {
      ASSERT_GT(rec.wire.size(), dns::kHeaderSize + 1);
      EXPECT_NE(dns::HeaderFlags(rec.wire) & dns::flag::kRcodeMask, dns::rcode::kServFail);
      const uint8_t* q = rec.wire.data() + dns::kHeaderSize;
      labels.insert(std::string(q + 1, q + 1 + q[0]));
    }
    EXPECT_FALSE(labels.contains("broken"));
    EXPECT_EQ(labels.contains("short"), at == kT0 + 1'000) << "at +" << (at - kT0) << " ms";
    EXPECT_TRUE(labels.contains("long"));
  }
}

TEST_F(SnapshotTest, HottestEntriesComeFirstUnderAByteBound) {
  constexpr int kEntries = 200;
  for (int i = 0; i < kEntries; ++i) {
    const std::string name = "n" + std::to_string(i) + ".test.";
    ASSERT_EQ(Insert(KeyFor(name), Build(Answer(name, 300))), InsertResult::kInserted);
  }
  ASSERT_EQ(old_->Stats().evictions, 0u);
  const std::set<int> hot = {7, 42, 99, 150, 188};
  size_t bound = kSnapshotHeaderSize;
  for (const int i : hot) {
    const std::string name = "n" + std::to_string(i) + ".test.";
    for (int n = 0; n < 3; ++n) ASSERT_EQ(Lookup(*old_, KeyFor(name), kT0).status, Status::kHit);
    bound += kSnapshotRecordOverhead + Build(Answer(name, 300)).size();
  }

  const auto chunks = Export(kT0 + 1'000, bound);
  EXPECT_EQ(exported_, hot.size());
  Import(chunks);
  for (int i = 0; i < kEntries; ++i) {
    EXPECT_EQ(Lookup(*new_, KeyFor("n" + std::to_string(i) + ".test."), kB0).status,
              hot.contains(i) ? Status::kHit : Status::kMiss)
        << "n" << i << (hot.contains(i) ? " (hit 3 times)" : " (never hit)");
  }
}

TEST_F(SnapshotTest, ExportNeverExceedsMaxBytesNorChunkBytes) {
  constexpr int kEntries = 120;
  for (int i = 0; i < kEntries; ++i) {
    const std::string name = "name-" + std::to_string(i * 7919) + ".example.";
    ASSERT_EQ(Insert(KeyFor(name), Build(Answer(name, 300))), InsertResult::kInserted);
  }
  for (const size_t chunk_bytes : {size_t{40}, size_t{100}, size_t{1000}, kNoChunking}) {
    for (size_t max_bytes = 0; max_bytes < 8000; max_bytes += 37) {
      const auto chunks = Export(kT0, max_bytes, chunk_bytes);
      size_t total = 0, records = 0;
      for (const auto& c : chunks) {
        total += c.size();
        EXPECT_LE(c.size(), chunk_bytes);
        records += ReadAll(c).size();
      }
      ASSERT_LE(total, max_bytes) << "chunk_bytes " << chunk_bytes;
      EXPECT_EQ(records, exported_);
    }
  }
  // With room for all, all of them.
  const auto chunks = Export(kT0, 1 << 20, 1000);
  EXPECT_EQ(exported_, size_t{kEntries});
  EXPECT_EQ(Import(chunks).imported, size_t{kEntries});
}

TEST_F(SnapshotTest, ExportStopsWhenTheSinkDoes) {
  for (int i = 0; i < 50; ++i) {
    const std::string name = "n" + std::to_string(i) + ".test.";
    ASSERT_EQ(Insert(KeyFor(name), Build(Answer(name, 300))), InsertResult::kInserted);
  }
  int calls = 0;
  old_->Export(*old_thread_, kT0, 1 << 20, 200, [&](std::span<const uint8_t>) {
    ++calls;
    return false;
  });
  EXPECT_EQ(calls, 1);
}

TEST_F(SnapshotTest, ImportCountsBadAndRefusedRecordsAndReadsOn) {
  std::string s;
  AppendSnapshotHeader(&s);
  AppendSnapshotRecord(&s, 0, std::vector<uint8_t>{0xde, 0xad});        // no question: bad
  AppendSnapshotRecord(&s, 0x80, Build(Answer("flag.example.", 300)));  // unknown flag: bad
  AppendSnapshotRecord(&s, 0, Build(Answer("zero.example.", 0)));       // no lifetime left: refused
  MessageSpec truncated = Answer("tc.example.", 300);
  truncated.tc = true;
  AppendSnapshotRecord(&s, 0, Build(truncated));  // not cacheable: refused
  MessageSpec nosoa;
  nosoa.qname = "nosoa.example.";
  nosoa.rcode = dns::rcode::kNxDomain;
  AppendSnapshotRecord(&s, 0, Build(nosoa));  // negative without SOA: refused
  AppendSnapshotRecord(&s, CacheKey::kDoBit, Build(Answer("ok.example.", 300)));
  const auto r =
      new_->Import(*new_thread_, Bytes(s), kB0,
                   [](std::span<const uint8_t>) -> const EntryPolicy* { return nullptr; });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->imported, 1u);
  EXPECT_EQ(r->refused, 3u);
  EXPECT_EQ(r->bad, 2u);
  EXPECT_EQ(Lookup(*new_, KeyFor("ok.example.", dns::type::kA, true), kB0).status, Status::kHit);
  EXPECT_EQ(Lookup(*new_, KeyFor("flag.example."), kB0).status, Status::kMiss);
}

// A real snapshot cut at every byte, and with every byte flipped: Import reports an error or
// imports what it can, and never reads past the buffer (each copy is exactly its size; ASan).
TEST_F(SnapshotTest, MalformedSnapshotsAreRefusedWithoutCrashing) {
  for (int i = 0; i < 4; ++i) {
    const std::string name = "n" + std::to_string(i) + ".test.";
    ASSERT_EQ(Insert(KeyFor(name), Build(Answer(name, 300))), InsertResult::kInserted);
  }
  MessageSpec nx;
  nx.qname = "nx.test.";
  nx.rcode = dns::rcode::kNxDomain;
  nx.authority = {Soa("test.", 300, 300)};
  ASSERT_EQ(Insert(KeyFor("nx.test."), Build(nx)), InsertResult::kInserted);
  const auto chunks = Export(kT0, 1 << 20);
  ASSERT_EQ(chunks.size(), 1u);
  const std::vector<uint8_t>& full = chunks[0];
  std::vector<size_t> ends;  // record boundaries
  for (const auto& rec : ReadAll(full)) {
    ends.push_back(static_cast<size_t>(rec.wire.data() + rec.wire.size() - full.data()));
  }
  ASSERT_EQ(ends.size(), 5u);
  auto none = [](std::span<const uint8_t>) -> const EntryPolicy* { return nullptr; };

  for (size_t len = 0; len < full.size(); ++len) {
    const std::vector<uint8_t> prefix(full.begin(), full.begin() + len);
    const auto r = new_->Import(*new_thread_, prefix, kB0, none);
    const bool boundary =
        len == kSnapshotHeaderSize || std::find(ends.begin(), ends.end(), len) != ends.end();
    EXPECT_EQ(r.ok(), boundary) << "cut at " << len << ": " << r.status();
    new_thread_->Quiescent();
  }
  for (size_t i = 0; i < full.size(); ++i) {
    std::vector<uint8_t> flipped = full;
    flipped[i] ^= 0xff;
    const auto r = new_->Import(*new_thread_, flipped, kB0, none);
    if (i < kSnapshotHeaderSize) {
      EXPECT_FALSE(r.ok()) << "header byte " << i << " flipped";
    }
    new_thread_->Quiescent();
  }
}

}  // namespace
}  // namespace nodedns::cache
