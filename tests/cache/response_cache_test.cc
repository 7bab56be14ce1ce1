// Behaviour of the response cache: TTL rules, negative caching, serve-stale, prefetch, eviction,
// capacity and key canonicalization. Messages are built and checked with ldns.
#include "cache/response_cache.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "dns/wire.h"
#include "tests/testing/cache_answers.h"
#include "tests/testing/dns_builder.h"
#include "tests/testing/wire_builder.h"

namespace nodedns::cache {
namespace {

using ::nodedns::testing::AllTtls;
using ::nodedns::testing::Build;
using ::nodedns::testing::MessageSpec;
using ::nodedns::testing::Parse;
using ::nodedns::testing::WireBuilder;
using ::nodedns::testing::WireName;
using Status = LookupResult::Status;

constexpr uint64_t kT0 = 1'000'000;  // an arbitrary monotonic start, in ms

using ::nodedns::testing::Answer;
using ::nodedns::testing::KeyFor;
using ::nodedns::testing::Soa;

class ResponseCacheTest : public ::testing::Test {
 protected:
  void Make(CacheSettings s) {
    thread_.reset();
    cache_ = std::make_unique<ResponseCache>(s);
    thread_ = cache_->RegisterThread();
  }
  void SetUp() override {
    CacheSettings s;
    s.capacity_bytes = 1 << 20;
    Make(s);
  }
  void TearDown() override { thread_.reset(); }

  InsertResult Insert(const CacheKey& k, const std::vector<uint8_t>& wire, uint64_t now = kT0) {
    return cache_->Insert(*thread_, k, wire, now);
  }
  LookupResult Lookup(const CacheKey& k, uint64_t now, bool allow_stale = false) {
    out_.assign(65535, 0);
    auto r = cache_->Lookup(*thread_, k, now, out_, allow_stale);
    out_.resize(r.status == Status::kHit || r.status == Status::kStale ? r.size : 0);
    return r;
  }
  // TTLs of the last lookup's output, as ldns reads them.
  std::vector<uint32_t> ServedTtls() {
    auto pkt = Parse(out_);
    EXPECT_NE(pkt, nullptr);
    return pkt ? AllTtls(pkt.get()) : std::vector<uint32_t>{};
  }

  std::unique_ptr<ResponseCache> cache_;
  std::unique_ptr<CacheThread> thread_;
  std::vector<uint8_t> out_;
};

TEST_F(ResponseCacheTest, MissOnEmptyCache) {
  EXPECT_EQ(Lookup(KeyFor("example.com."), kT0).status, Status::kMiss);
}

TEST_F(ResponseCacheTest, ServesInsertedResponseBytes) {
  auto wire = Build(Answer("example.com.", 300));
  ASSERT_EQ(Insert(KeyFor("example.com."), wire), InsertResult::kInserted);
  auto r = Lookup(KeyFor("example.com."), kT0);
  ASSERT_EQ(r.status, Status::kHit);
  EXPECT_EQ(r.kind, EntryKind::kAnswer);
  EXPECT_EQ(out_, wire);  // no time has passed: byte for byte
  EXPECT_EQ(r.ttl, 300u);
}

TEST_F(ResponseCacheTest, AgesTtlOnHit) {
  MessageSpec m = Answer("example.com.", 300);
  m.answer.push_back("example.com. 100 IN A 192.0.2.2");
  m.authority = {"example.com. 3600 IN NS ns.example.com."};
  ASSERT_EQ(Insert(KeyFor("example.com."), Build(m)), InsertResult::kInserted);
  auto r = Lookup(KeyFor("example.com."), kT0 + 10'999);  // 10.999 s: 10 whole seconds
  ASSERT_EQ(r.status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{290, 90, 3590}));
  EXPECT_EQ(r.ttl, 90u);
}

TEST_F(ResponseCacheTest, ExpiresWithSmallestTtl) {
  MessageSpec m = Answer("example.com.", 300);
  m.answer.push_back("example.com. 5 IN A 192.0.2.2");
  ASSERT_EQ(Insert(KeyFor("example.com."), Build(m)), InsertResult::kInserted);
  auto r = Lookup(KeyFor("example.com."), kT0 + 4'000);
  ASSERT_EQ(r.status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{296, 1}));
  EXPECT_EQ(Lookup(KeyFor("example.com."), kT0 + 5'000).status, Status::kExpired);
}

TEST_F(ResponseCacheTest, ClampsToMaxTtl) {
  CacheSettings s;
  s.capacity_bytes = 1 << 20;
  s.max_ttl = 60;
  Make(s);
  ASSERT_EQ(Insert(KeyFor("example.com."), Build(Answer("example.com.", 86400))),
            InsertResult::kInserted);
  ASSERT_EQ(Lookup(KeyFor("example.com."), kT0).status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{60}));
  EXPECT_EQ(Lookup(KeyFor("example.com."), kT0 + 60'000).status, Status::kExpired);
}

TEST_F(ResponseCacheTest, RaisesToMinTtl) {
  CacheSettings s;
  s.capacity_bytes = 1 << 20;
  s.min_ttl = 30;
  Make(s);
  ASSERT_EQ(Insert(KeyFor("example.com."), Build(Answer("example.com.", 2))),
            InsertResult::kInserted);
  ASSERT_EQ(Lookup(KeyFor("example.com."), kT0 + 10'000).status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{20}));
}

TEST_F(ResponseCacheTest, ZeroTtlIsNotCached) {
  EXPECT_EQ(Insert(KeyFor("example.com."), Build(Answer("example.com.", 0))), InsertResult::kNoTtl);
  EXPECT_EQ(Lookup(KeyFor("example.com."), kT0).status, Status::kMiss);
}

TEST_F(ResponseCacheTest, TtlWithTopBitSetMeansZero) {
  // RFC 2181 §8; ldns would print it as a huge number.
  auto wire = Build(Answer("example.com.", 300));
  dns::Put32(wire.data() + wire.size() - 10, 0x80000001u);
  EXPECT_EQ(Insert(KeyFor("example.com."), wire), InsertResult::kNoTtl);
}

TEST_F(ResponseCacheTest, NegativeTtlIsMinOfSoaTtlAndMinimum) {
  MessageSpec m;
  m.qname = "nx.example.com.";
  m.rcode = dns::rcode::kNxDomain;
  m.authority = {Soa("example.com.", 3600, 60)};
  ASSERT_EQ(Insert(KeyFor("nx.example.com."), Build(m)), InsertResult::kInserted);
  auto r = Lookup(KeyFor("nx.example.com."), kT0 + 1'000);
  ASSERT_EQ(r.status, Status::kHit);
  EXPECT_EQ(r.kind, EntryKind::kNxDomain);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{59}));  // the SOA carries the negative TTL
  EXPECT_EQ(Lookup(KeyFor("nx.example.com."), kT0 + 60'000).status, Status::kExpired);

  m.authority = {Soa("example.com.", 20, 600)};  // this time the SOA's own TTL is smaller
  ASSERT_EQ(Insert(KeyFor("nx.example.com."), Build(m)), InsertResult::kReplaced);
  ASSERT_EQ(Lookup(KeyFor("nx.example.com."), kT0).status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{20}));
}

TEST_F(ResponseCacheTest, NegativeTtlIsCapped) {
  CacheSettings s;
  s.capacity_bytes = 1 << 20;
  s.max_negative_ttl = 15;
  Make(s);
  MessageSpec m;
  m.qname = "nx.example.com.";
  m.rcode = dns::rcode::kNxDomain;
  m.authority = {Soa("example.com.", 3600, 3600)};
  ASSERT_EQ(Insert(KeyFor("nx.example.com."), Build(m)), InsertResult::kInserted);
  ASSERT_EQ(Lookup(KeyFor("nx.example.com."), kT0).status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{15}));
}

TEST_F(ResponseCacheTest, NoDataWithSoaIsCachedAsNoData) {
  MessageSpec m;
  m.qname = "example.com.";
  m.qtype = dns::type::kAAAA;
  m.authority = {Soa("example.com.", 300, 45)};
  const auto key = KeyFor("example.com.", dns::type::kAAAA);
  ASSERT_EQ(Insert(key, Build(m)), InsertResult::kInserted);
  auto r = Lookup(key, kT0);
  ASSERT_EQ(r.status, Status::kHit);
  EXPECT_EQ(r.kind, EntryKind::kNoData);
  EXPECT_EQ(r.ttl, 45u);
}

TEST_F(ResponseCacheTest, NegativeWithoutSoaIsNotCached) {
  MessageSpec m;
  m.qname = "example.com.";
  m.qtype = dns::type::kAAAA;
  EXPECT_EQ(Insert(KeyFor("example.com.", dns::type::kAAAA), Build(m)), InsertResult::kNoTtl);
  m.rcode = dns::rcode::kNxDomain;
  EXPECT_EQ(Insert(KeyFor("example.com.", dns::type::kAAAA), Build(m)), InsertResult::kNoTtl);
}

TEST_F(ResponseCacheTest, ServFailIsCachedBrieflyAndNeverStale) {
  MessageSpec m;
  m.qname = "broken.example.";
  m.rcode = dns::rcode::kServFail;
  ASSERT_EQ(Insert(KeyFor("broken.example."), Build(m)), InsertResult::kInserted);
  auto r = Lookup(KeyFor("broken.example."), kT0 + 4'999);
  EXPECT_EQ(r.status, Status::kHit);
  EXPECT_EQ(r.kind, EntryKind::kServFail);
  EXPECT_EQ(Lookup(KeyFor("broken.example."), kT0 + 5'000, /*allow_stale=*/true).status,
            Status::kMiss);
}

TEST_F(ResponseCacheTest, ServFailTtlAboveFiveMinutesIsRejected) {
  CacheSettings s;
  s.servfail_ttl = 301;
  EXPECT_FALSE(s.Validate().ok());
  s.servfail_ttl = 300;
  EXPECT_TRUE(s.Validate().ok());
}

TEST_F(ResponseCacheTest, ServFailDoesNotDisplaceAnEntryServableStale) {
  ASSERT_EQ(Insert(KeyFor("example.com."), Build(Answer("example.com.", 10))),
            InsertResult::kInserted);
  MessageSpec sf;
  sf.qname = "example.com.";
  sf.rcode = dns::rcode::kServFail;
  EXPECT_EQ(Insert(KeyFor("example.com."), Build(sf), kT0 + 20'000), InsertResult::kKeptExisting);
  EXPECT_EQ(Lookup(KeyFor("example.com."), kT0 + 20'000, true).status, Status::kStale);
}

TEST_F(ResponseCacheTest, ServesStaleWithinWindowOnlyWhenAsked) {
  CacheSettings s;
  s.capacity_bytes = 1 << 20;
  s.stale_ttl = 100;
  Make(s);
  ASSERT_EQ(Insert(KeyFor("example.com."), Build(Answer("example.com.", 10))),
            InsertResult::kInserted);
  EXPECT_EQ(Lookup(KeyFor("example.com."), kT0 + 50'000).status, Status::kExpired);
  auto r = Lookup(KeyFor("example.com."), kT0 + 50'000, /*allow_stale=*/true);
  ASSERT_EQ(r.status, Status::kStale);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{30}));  // RFC 8767 §4
  EXPECT_EQ(Lookup(KeyFor("example.com."), kT0 + 110'000, true).status, Status::kMiss);
}

// RFC 8767 §5's failure recheck timer lives in the entry: marked once an upstream query failed,
// seen by every lookup that finds the entry expired, gone with its window or a new answer.
TEST_F(ResponseCacheTest, NoteFailureMarksAnExpiredEntryForTheRecheckWindowOnly) {
  CacheSettings s;
  s.capacity_bytes = 1 << 20;
  s.stale_ttl = 100;
  Make(s);
  const CacheKey key = KeyFor("example.com.");
  ASSERT_EQ(Insert(key, Build(Answer("example.com.", 10))), InsertResult::kInserted);
  // Fresh: nothing to mark (it is answered anyway).
  EXPECT_FALSE(cache_->NoteFailure(*thread_, key, kT0 + 5'000, 30'000));
  EXPECT_FALSE(Lookup(key, kT0 + 20'000).upstream_failing);
  EXPECT_TRUE(cache_->NoteFailure(*thread_, key, kT0 + 20'000, 30'000));
  for (uint64_t t : {kT0 + 20'000, kT0 + 49'999}) {
    const LookupResult r = Lookup(key, t);
    EXPECT_EQ(r.status, Status::kExpired) << t;
    EXPECT_TRUE(r.upstream_failing) << t;
  }
  EXPECT_FALSE(Lookup(key, kT0 + 50'000).upstream_failing);  // the 30 s are over
  // A new answer replaces the entry and the mark.
  EXPECT_TRUE(cache_->NoteFailure(*thread_, key, kT0 + 60'000, 30'000));
  ASSERT_EQ(Insert(key, Build(Answer("example.com.", 10)), kT0 + 61'000), InsertResult::kReplaced);
  EXPECT_FALSE(Lookup(key, kT0 + 75'000).upstream_failing);
  // The window ends with the stale window (stored at 61 s, expired at 71 s, stale until 171 s).
  EXPECT_TRUE(cache_->NoteFailure(*thread_, key, kT0 + 160'000, 30'000));
  EXPECT_TRUE(Lookup(key, kT0 + 170'999).upstream_failing);
  EXPECT_EQ(Lookup(key, kT0 + 171'000).status, Status::kMiss);
  EXPECT_FALSE(cache_->NoteFailure(*thread_, key, kT0 + 171'000, 30'000));  // nothing to serve
  EXPECT_FALSE(cache_->NoteFailure(*thread_, KeyFor("absent.example."), kT0, 30'000));
}

TEST_F(ResponseCacheTest, PrefetchIsWantedOnceLateInLifetimeAfterEnoughHits) {
  CacheSettings s;
  s.capacity_bytes = 1 << 20;
  s.prefetch_min_hits = 3;
  Make(s);
  const auto key = KeyFor("example.com.");
  ASSERT_EQ(Insert(key, Build(Answer("example.com.", 100))), InsertResult::kInserted);
  // Late (last 10%), but only the first and second hit: not yet.
  EXPECT_FALSE(Lookup(key, kT0 + 95'000).refresh_wanted);
  EXPECT_FALSE(Lookup(key, kT0 + 95'000).refresh_wanted);
  EXPECT_TRUE(Lookup(key, kT0 + 95'000).refresh_wanted);   // third hit
  EXPECT_FALSE(Lookup(key, kT0 + 96'000).refresh_wanted);  // exactly once
  EXPECT_FALSE(Lookup(key, kT0 + 99'000).refresh_wanted);
  // The refresh replaces the entry; the new one can ask again.
  ASSERT_EQ(Insert(key, Build(Answer("example.com.", 100)), kT0 + 99'000), InsertResult::kReplaced);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(Lookup(key, kT0 + 100'000).refresh_wanted);
  EXPECT_TRUE(Lookup(key, kT0 + 190'000).refresh_wanted);
}

TEST_F(ResponseCacheTest, NoPrefetchEarlyInLifetime) {
  const auto key = KeyFor("example.com.");
  ASSERT_EQ(Insert(key, Build(Answer("example.com.", 100))), InsertResult::kInserted);
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(Lookup(key, kT0 + 89'000).refresh_wanted);
}

TEST_F(ResponseCacheTest, KeyIgnoresQnameCase) {
  ASSERT_EQ(Insert(KeyFor("WwW.Example.COM."), Build(Answer("WwW.Example.COM.", 300))),
            InsertResult::kInserted);
  EXPECT_EQ(Lookup(KeyFor("www.example.com."), kT0).status, Status::kHit);
  EXPECT_EQ(Lookup(KeyFor("WWW.EXAMPLE.COM."), kT0).status, Status::kHit);
  EXPECT_EQ(KeyFor("www.example.com."), KeyFor("WWW.example.Com."));
}

TEST_F(ResponseCacheTest, DoAndCdBitsAndTypeAreDistinctKeys) {
  ASSERT_EQ(Insert(KeyFor("example.com."), Build(Answer("example.com.", 300))),
            InsertResult::kInserted);
  EXPECT_EQ(Lookup(KeyFor("example.com.", dns::type::kA, /*do=*/true), kT0).status, Status::kMiss);
  EXPECT_EQ(Lookup(KeyFor("example.com.", dns::type::kA, false, /*cd=*/true), kT0).status,
            Status::kMiss);
  EXPECT_EQ(Lookup(KeyFor("example.com.", dns::type::kAAAA), kT0).status, Status::kMiss);
  EXPECT_FALSE(KeyFor("example.com.", 1, true) == KeyFor("example.com.", 1, false));
  EXPECT_FALSE(KeyFor("example.com.", 1, false, true) == KeyFor("example.com.", 1, false, false));
}

TEST_F(ResponseCacheTest, TtlOffsetsAgreeWithLdnsOnCompressedMessageWithManyRecords) {
  MessageSpec m;
  m.qname = "www.example.com.";
  m.answer = {"www.example.com. 900 IN CNAME web.example.com."};
  for (int i = 0; i < 60; ++i) {
    m.answer.push_back("web.example.com. " + std::to_string(600 + i) + " IN A 192.0.2." +
                       std::to_string(i + 1));
  }
  m.authority = {"example.com. 3000 IN NS ns1.example.com.",
                 "example.com. 3001 IN NS ns2.example.com."};
  m.additional = {"ns1.example.com. 4000 IN A 198.51.100.1",
                  "ns2.example.com. 4001 IN AAAA 2001:db8::53",
                  "ns1.example.com. 4002 IN TXT \"v=1\""};
  m.edns = true;
  auto wire = Build(m);
  // ldns compressed the names: the message is much smaller than its uncompressed form.
  ASSERT_LT(wire.size(), 61u * 29);
  const auto before = AllTtls(Parse(wire).get());
  ASSERT_EQ(before.size(), 66u);
  ASSERT_EQ(Insert(KeyFor("www.example.com."), wire), InsertResult::kInserted);
  ASSERT_EQ(Lookup(KeyFor("www.example.com."), kT0 + 7'000).status, Status::kHit);
  const auto after = ServedTtls();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(after[i], before[i] - 7) << "RR " << i;
}

TEST_F(ResponseCacheTest, StoresResponseWithoutItsOptRecord) {
  MessageSpec m = Answer("example.com.", 300);
  m.additional = {"ns.example.com. 300 IN A 192.0.2.53"};
  m.edns = true;
  m.do_bit = true;
  auto wire = Build(m);
  ASSERT_EQ(Insert(KeyFor("example.com."), wire), InsertResult::kInserted);
  ASSERT_EQ(Lookup(KeyFor("example.com."), kT0).status, Status::kHit);
  EXPECT_EQ(out_.size(), wire.size() - dns::kOptRecordSize);
  auto pkt = Parse(out_);
  ASSERT_NE(pkt, nullptr);
  EXPECT_FALSE(ldns_pkt_edns(pkt.get()));
  EXPECT_EQ(ldns_pkt_arcount(pkt.get()), 1);
}

TEST_F(ResponseCacheTest, RefusesTruncatedRefusedAndMalformedResponses) {
  MessageSpec tc = Answer("example.com.", 300);
  tc.tc = true;
  EXPECT_EQ(Insert(KeyFor("example.com."), Build(tc)), InsertResult::kNotCacheable);
  MessageSpec refused;
  refused.rcode = dns::rcode::kRefused;
  EXPECT_EQ(Insert(KeyFor("example.com."), Build(refused)), InsertResult::kNotCacheable);
  MessageSpec query = Answer("example.com.", 300);
  query.qr = false;
  EXPECT_EQ(Insert(KeyFor("example.com."), Build(query)), InsertResult::kMalformed);
  // Every truncation of a valid message is rejected, and none crashes.
  auto wire = Build(Answer("example.com.", 300));
  for (size_t n = 0; n < wire.size(); ++n) {
    std::vector<uint8_t> cut(wire.begin(), wire.begin() + static_cast<ptrdiff_t>(n));
    EXPECT_EQ(Insert(KeyFor("example.com."), cut), InsertResult::kMalformed) << n;
  }
  EXPECT_EQ(Lookup(KeyFor("example.com."), kT0).status, Status::kMiss);
}

// Names ParseResponseLayout refuses (tests/dns/wire_test.cc has each rule): never cached, so
// never served to a client that could trip over them.
TEST_F(ResponseCacheTest, RefusesResponsesWithMalformedNames) {
  const auto with_question = [](uint16_t an) {
    WireBuilder w(1, an);
    w.Name("example.com").U16(dns::type::kA).U16(dns::kClassIN);  // example.com at 12..24
    return w;
  };
  WireBuilder forward = with_question(2);  // the first owner points at the second RR's name
  forward.Pointer(29 + 16).RrFixed(dns::type::kA, 300).U32(0xc0000201).EndRdata();
  forward.Name("example.com").RrFixed(dns::type::kA, 300).U32(0xc0000202).EndRdata();
  WireBuilder loop = with_question(1);  // a CNAME target pointing at itself
  loop.Pointer(12).RrFixed(dns::type::kCNAME, 300).Pointer(29 + 12).EndRdata();
  WireBuilder middle = with_question(1);  // into "xample"
  middle.Pointer(14).RrFixed(dns::type::kA, 300).U32(0xc0000201).EndRdata();
  WireBuilder label = with_question(1);  // an extended label type (0x40) in the owner
  label.U8(0x40)
      .Raw(std::string(0x40, 'a'))
      .U8(0)
      .RrFixed(dns::type::kA, 300)
      .U32(0xc0000201)
      .EndRdata();
  WireBuilder trailing = with_question(1);  // two bytes after the CNAME's name
  trailing.Pointer(12).RrFixed(dns::type::kCNAME, 300).Name("x.example").U16(0).EndRdata();
  for (const WireBuilder* w : {&forward, &loop, &middle, &label, &trailing}) {
    EXPECT_EQ(Insert(KeyFor("example.com."), w->bytes()), InsertResult::kMalformed);
  }
  EXPECT_EQ(Lookup(KeyFor("example.com."), kT0).status, Status::kMiss);
  EXPECT_EQ(cache_->Stats().entries, 0u);
  // The same message with the owner pointing back to the question is fine.
  WireBuilder good = with_question(1);
  good.Pointer(12).RrFixed(dns::type::kA, 300).U32(0xc0000201).EndRdata();
  EXPECT_EQ(Insert(KeyFor("example.com."), good.bytes()), InsertResult::kInserted);
}

// More than the 512 records the layout once held: cached, and served byte for byte with aged TTLs.
TEST_F(ResponseCacheTest, CachesResponsesWithThousandsOfRecords) {
  CacheSettings s;
  s.capacity_bytes = 4 << 20;
  s.shards = 1;
  Make(s);
  for (const int n : {600, 5000}) {
    SCOPED_TRACE(n);
    // Question "many.test" TXT; each answer points at it and holds one empty string: 13 bytes.
    const auto build = [n](uint32_t elapsed) {
      WireBuilder w(1, static_cast<uint16_t>(n));
      w.Name("many.test").U16(dns::type::kTXT).U16(dns::kClassIN);
      for (int i = 0; i < n; ++i) {
        w.Pointer(12).RrFixed(dns::type::kTXT, static_cast<uint32_t>(1000 + i) - elapsed).U8(0);
        w.EndRdata();
      }
      return w.bytes();
    };
    const auto wire = build(0);
    ASSERT_LE(wire.size(), dns::kMaxMessage);
    const CacheKey key = KeyFor("many.test.", dns::type::kTXT);
    ASSERT_EQ(Insert(key, wire), InsertResult::kInserted);
    ASSERT_EQ(Lookup(key, kT0).status, Status::kHit);
    EXPECT_EQ(out_, wire);
    const auto r = Lookup(key, kT0 + 250'500);
    ASSERT_EQ(r.status, Status::kHit);
    EXPECT_EQ(r.ttl, 1000u - 250);
    EXPECT_EQ(out_, build(250));     // every TTL 250 s less, every other byte the same
    const auto ttls = ServedTtls();  // and ldns reads them so
    ASSERT_EQ(ttls.size(), size_t(n));
    EXPECT_EQ(ttls.back(), uint32_t(1000 + n - 1 - 250));
    ASSERT_TRUE(cache_->Erase(*thread_, key));
  }
}

TEST_F(ResponseCacheTest, ReportsBufferTooSmallWithoutCopying) {
  auto wire = Build(Answer("example.com.", 300));
  ASSERT_EQ(Insert(KeyFor("example.com."), wire), InsertResult::kInserted);
  std::vector<uint8_t> small(wire.size() - 1, 0xee);
  auto r = cache_->Lookup(*thread_, KeyFor("example.com."), kT0, small);
  EXPECT_EQ(r.status, Status::kTooSmall);
  EXPECT_EQ(r.size, wire.size());
  EXPECT_EQ(small, std::vector<uint8_t>(wire.size() - 1, 0xee));
}

TEST_F(ResponseCacheTest, ReplacesAndErases) {
  const auto key = KeyFor("example.com.");
  ASSERT_EQ(Insert(key, Build(Answer("example.com.", 300, "192.0.2.1"))), InsertResult::kInserted);
  ASSERT_EQ(Insert(key, Build(Answer("example.com.", 300, "192.0.2.99"))), InsertResult::kReplaced);
  ASSERT_EQ(Lookup(key, kT0).status, Status::kHit);
  EXPECT_EQ(out_, Build(Answer("example.com.", 300, "192.0.2.99")));
  EXPECT_EQ(cache_->Stats().entries, 1u);
  EXPECT_TRUE(cache_->Erase(*thread_, key));
  EXPECT_FALSE(cache_->Erase(*thread_, key));
  EXPECT_EQ(Lookup(key, kT0).status, Status::kMiss);
  EXPECT_EQ(cache_->Stats().entries, 0u);
}

// Per-entry rules (EntryPolicy): a zone's `cache` block stores its answers by its own bounds in
// the one shared cache, whatever the cache's settings say.
class EntryPolicyTest : public ResponseCacheTest {
 protected:
  InsertResult InsertWith(const EntryPolicy& p, const CacheKey& k, const std::vector<uint8_t>& wire,
                          uint64_t now = kT0) {
    return cache_->Insert(*thread_, k, wire, now, &p);
  }
  static MessageSpec NxDomain(const std::string& name, uint32_t soa_ttl, uint32_t minimum) {
    MessageSpec m;
    m.qname = name;
    m.rcode = dns::rcode::kNxDomain;
    m.authority = {Soa("example.com.", soa_ttl, minimum)};
    return m;
  }
  static MessageSpec NoData(const std::string& name, uint32_t soa_ttl, uint32_t minimum) {
    MessageSpec m;
    m.qname = name;
    m.qtype = dns::type::kAAAA;
    m.authority = {Soa("example.com.", soa_ttl, minimum)};
    return m;
  }
};

TEST_F(EntryPolicyTest, MaxTtlCapsServedTtlAndLifetimeOfAPositiveAnswer) {
  EntryPolicy p;
  p.max_ttl = 60;
  ASSERT_EQ(InsertWith(p, KeyFor("capped.example."), Build(Answer("capped.example.", 3600))),
            InsertResult::kInserted);
  ASSERT_EQ(Insert(KeyFor("default.example."), Build(Answer("default.example.", 3600))),
            InsertResult::kInserted);
  ASSERT_EQ(Lookup(KeyFor("capped.example."), kT0).status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{60}));
  EXPECT_EQ(Lookup(KeyFor("capped.example."), kT0 + 59'999).status, Status::kHit);
  EXPECT_EQ(Lookup(KeyFor("capped.example."), kT0 + 60'000).status, Status::kExpired);
  // The same answer without the policy keeps its TTL: the cap is the entry's, not the cache's.
  ASSERT_EQ(Lookup(KeyFor("default.example."), kT0 + 60'000).status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{3540}));
}

TEST_F(EntryPolicyTest, MinTtlRaisesServedTtlAndLifetimeOfAPositiveAnswer) {
  EntryPolicy p;
  p.min_ttl = 30;
  ASSERT_EQ(InsertWith(p, KeyFor("example.com."), Build(Answer("example.com.", 2))),
            InsertResult::kInserted);
  ASSERT_EQ(Lookup(KeyFor("example.com."), kT0).status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{30}));
  ASSERT_EQ(Lookup(KeyFor("example.com."), kT0 + 20'000).status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{10}));
  EXPECT_EQ(Lookup(KeyFor("example.com."), kT0 + 30'000).status, Status::kExpired);
}

// The policy replaces the settings rather than narrowing them: a zone may keep answers longer
// than the cache's own --max-ttl.
TEST_F(EntryPolicyTest, PolicyOverridesTheCacheSettingsBounds) {
  CacheSettings s;
  s.capacity_bytes = 1 << 20;
  s.max_ttl = 60;
  Make(s);
  EntryPolicy p;
  p.max_ttl = 7200;
  ASSERT_EQ(InsertWith(p, KeyFor("example.com."), Build(Answer("example.com.", 3600))),
            InsertResult::kInserted);
  ASSERT_EQ(Lookup(KeyFor("example.com."), kT0).status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{3600}));
}

TEST_F(EntryPolicyTest, NullPolicyKeepsTheCacheSettings) {
  CacheSettings s;
  s.capacity_bytes = 1 << 20;
  s.min_ttl = 10;
  s.max_ttl = 60;
  s.max_negative_ttl = 20;
  Make(s);
  ASSERT_EQ(cache_->Insert(*thread_, KeyFor("long.example."), Build(Answer("long.example.", 3600)),
                           kT0, nullptr),
            InsertResult::kInserted);
  ASSERT_EQ(Lookup(KeyFor("long.example."), kT0).status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{60}));
  ASSERT_EQ(cache_->Insert(*thread_, KeyFor("short.example."), Build(Answer("short.example.", 1)),
                           kT0, nullptr),
            InsertResult::kInserted);
  ASSERT_EQ(Lookup(KeyFor("short.example."), kT0).status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{10}));
  ASSERT_EQ(cache_->Insert(*thread_, KeyFor("nx.example.com."),
                           Build(NxDomain("nx.example.com.", 3600, 3600)), kT0, nullptr),
            InsertResult::kInserted);
  ASSERT_EQ(Lookup(KeyFor("nx.example.com."), kT0).status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{20}));
  const EntryPolicy& d = cache_->default_policy();
  EXPECT_EQ(d.min_ttl, 10u);
  EXPECT_EQ(d.max_ttl, 60u);
  EXPECT_EQ(d.min_negative_ttl, 0u);
  EXPECT_EQ(d.max_negative_ttl, 20u);
  EXPECT_EQ(d.stale_ttl, s.stale_ttl);
  EXPECT_EQ(d.prefetch_percent, s.prefetch_percent);
  EXPECT_EQ(d.prefetch_min_hits, s.prefetch_min_hits);
}

// RFC 2308 §5 first (the lesser of the SOA's TTL and its MINIMUM), then the policy's bounds.
TEST_F(EntryPolicyTest, NegativeTtlIsTheSoaRuleBoundedByThePolicysNegativeLimits) {
  struct Case {
    uint32_t soa_ttl, minimum, min_negative, max_negative, want;
  };
  const Case cases[] = {
      {3600, 120, 0, 3600, 120},  // the SOA MINIMUM rules
      {90, 600, 0, 3600, 90},     // the SOA's own TTL rules
      {3600, 5, 60, 3600, 60},    // raised to min_negative_ttl
      {3600, 600, 0, 15, 15},     // capped at max_negative_ttl
      {3600, 600, 30, 15, 15},    // contradictory bounds: the cap wins
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "SOA " << c.soa_ttl << "/" << c.minimum << ", bounds "
                                      << c.min_negative << ".." << c.max_negative);
    EntryPolicy p;
    p.min_negative_ttl = c.min_negative;
    p.max_negative_ttl = c.max_negative;
    const CacheKey nx = KeyFor("nx.example.com.");
    const CacheKey nodata = KeyFor("nodata.example.com.", dns::type::kAAAA);
    ASSERT_NE(InsertWith(p, nx, Build(NxDomain("nx.example.com.", c.soa_ttl, c.minimum))),
              InsertResult::kNoTtl);
    ASSERT_NE(InsertWith(p, nodata, Build(NoData("nodata.example.com.", c.soa_ttl, c.minimum))),
              InsertResult::kNoTtl);
    for (const CacheKey* k : {&nx, &nodata}) {
      const auto r = Lookup(*k, kT0);
      ASSERT_EQ(r.status, Status::kHit);
      EXPECT_EQ(r.kind, k == &nx ? EntryKind::kNxDomain : EntryKind::kNoData);
      EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{c.want}));
      EXPECT_EQ(Lookup(*k, kT0 + uint64_t{c.want} * 1000 - 1).status, Status::kHit);
      EXPECT_EQ(Lookup(*k, kT0 + uint64_t{c.want} * 1000).status, Status::kExpired);
    }
  }
}

// Positive and negative bounds do not leak into each other.
TEST_F(EntryPolicyTest, PositiveBoundsLeaveNegativeAnswersAloneAndViceVersa) {
  EntryPolicy p;
  p.min_ttl = 600;
  p.max_negative_ttl = 5;
  ASSERT_EQ(InsertWith(p, KeyFor("nx.example.com."), Build(NxDomain("nx.example.com.", 3600, 60))),
            InsertResult::kInserted);
  ASSERT_EQ(Lookup(KeyFor("nx.example.com."), kT0).status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{5}));
  ASSERT_EQ(InsertWith(p, KeyFor("example.com."), Build(Answer("example.com.", 60))),
            InsertResult::kInserted);
  ASSERT_EQ(Lookup(KeyFor("example.com."), kT0).status, Status::kHit);
  EXPECT_EQ(ServedTtls(), (std::vector<uint32_t>{600}));
}

TEST_F(EntryPolicyTest, StaleTtlZeroMeansNoStaleServingAfterExpiry) {
  EntryPolicy no_stale;
  no_stale.stale_ttl = 0;
  ASSERT_EQ(
      InsertWith(no_stale, KeyFor("fresh-only.example."), Build(Answer("fresh-only.example.", 10))),
      InsertResult::kInserted);
  ASSERT_EQ(Insert(KeyFor("default.example."), Build(Answer("default.example.", 10))),
            InsertResult::kInserted);
  const uint64_t after_expiry = kT0 + 11'000;
  EXPECT_EQ(Lookup(KeyFor("fresh-only.example."), after_expiry, /*allow_stale=*/true).status,
            Status::kMiss);
  EXPECT_EQ(Lookup(KeyFor("default.example."), after_expiry, /*allow_stale=*/true).status,
            Status::kStale);
  // And a SERVFAIL may replace it: nothing servable stale is lost.
  MessageSpec sf;
  sf.qname = "fresh-only.example.";
  sf.rcode = dns::rcode::kServFail;
  EXPECT_EQ(Insert(KeyFor("fresh-only.example."), Build(sf), after_expiry),
            InsertResult::kReplaced);
}

TEST_F(EntryPolicyTest, StaleWindowIsThePolicysNotTheSettings) {
  EntryPolicy p;
  p.stale_ttl = 20;
  ASSERT_EQ(InsertWith(p, KeyFor("example.com."), Build(Answer("example.com.", 10))),
            InsertResult::kInserted);
  EXPECT_EQ(Lookup(KeyFor("example.com."), kT0 + 29'999, true).status, Status::kStale);
  EXPECT_EQ(Lookup(KeyFor("example.com."), kT0 + 30'000, true).status, Status::kMiss);
}

TEST_F(EntryPolicyTest, PrefetchPercentZeroNeverWantsARefresh) {
  EntryPolicy never;
  never.prefetch_percent = 0;
  ASSERT_EQ(InsertWith(never, KeyFor("never.example."), Build(Answer("never.example.", 100))),
            InsertResult::kInserted);
  ASSERT_EQ(Insert(KeyFor("default.example."), Build(Answer("default.example.", 100))),
            InsertResult::kInserted);
  bool never_wanted = false, default_wanted = false;
  for (uint64_t t = kT0; t < kT0 + 100'000; t += 500) {
    never_wanted |= Lookup(KeyFor("never.example."), t).refresh_wanted;
    default_wanted |= Lookup(KeyFor("default.example."), t).refresh_wanted;
  }
  EXPECT_FALSE(never_wanted);
  EXPECT_TRUE(default_wanted);
}

// The prefetch rule travels with the entry: two entries in one cache, two rules.
TEST_F(EntryPolicyTest, PrefetchRuleIsTheEntrysOwn) {
  EntryPolicy eager;
  eager.prefetch_min_hits = 1;
  eager.prefetch_percent = 50;
  ASSERT_EQ(InsertWith(eager, KeyFor("eager.example."), Build(Answer("eager.example.", 100))),
            InsertResult::kInserted);
  ASSERT_EQ(Insert(KeyFor("default.example."), Build(Answer("default.example.", 100))),
            InsertResult::kInserted);
  EXPECT_FALSE(Lookup(KeyFor("eager.example."), kT0 + 49'000).refresh_wanted);
  EXPECT_TRUE(Lookup(KeyFor("eager.example."), kT0 + 51'000).refresh_wanted);  // first late hit
  // The default rule (last 10 %, two hits) says not yet at the same age.
  EXPECT_FALSE(Lookup(KeyFor("default.example."), kT0 + 51'000).refresh_wanted);
  EXPECT_FALSE(Lookup(KeyFor("default.example."), kT0 + 51'000).refresh_wanted);
}

TEST_F(EntryPolicyTest, NegativeEntriesCountsNxDomainAndNoDataThroughEveryChange) {
  const CacheKey nx = KeyFor("nx.example.com.");
  const CacheKey nodata = KeyFor("nodata.example.com.", dns::type::kAAAA);
  const CacheKey answer = KeyFor("example.com.");
  const CacheKey servfail = KeyFor("broken.example.com.");
  auto negative = [&] { return cache_->Stats().negative_entries; };
  ASSERT_EQ(Insert(nx, Build(NxDomain("nx.example.com.", 300, 300))), InsertResult::kInserted);
  EXPECT_EQ(negative(), 1u);
  ASSERT_EQ(Insert(nodata, Build(NoData("nodata.example.com.", 300, 300))),
            InsertResult::kInserted);
  EXPECT_EQ(negative(), 2u);
  ASSERT_EQ(Insert(answer, Build(Answer("example.com.", 300))), InsertResult::kInserted);
  MessageSpec sf;
  sf.qname = "broken.example.com.";
  sf.rcode = dns::rcode::kServFail;
  ASSERT_EQ(Insert(servfail, Build(sf)), InsertResult::kInserted);
  EXPECT_EQ(negative(), 2u) << "an answer or a SERVFAIL counted as negative";
  EXPECT_EQ(cache_->Stats().entries, 4u);

  // Replacements: negative → positive, positive → negative, negative → negative.
  ASSERT_EQ(Insert(nx, Build(Answer("nx.example.com.", 300))), InsertResult::kReplaced);
  EXPECT_EQ(negative(), 1u);
  ASSERT_EQ(Insert(nx, Build(NxDomain("nx.example.com.", 300, 300))), InsertResult::kReplaced);
  EXPECT_EQ(negative(), 2u);
  MessageSpec nodata_for_nx = NoData("nx.example.com.", 300, 300);
  nodata_for_nx.qtype = dns::type::kA;
  ASSERT_EQ(Insert(nx, Build(nodata_for_nx)), InsertResult::kReplaced);
  EXPECT_EQ(negative(), 2u);
  ASSERT_EQ(Insert(answer, Build(Answer("example.com.", 600))), InsertResult::kReplaced);
  EXPECT_EQ(negative(), 2u);

  // Erase.
  ASSERT_TRUE(cache_->Erase(*thread_, nodata));
  EXPECT_EQ(negative(), 1u);
  ASSERT_TRUE(cache_->Erase(*thread_, answer));
  EXPECT_EQ(negative(), 1u);

  // Expiry: purged once past the stale window, negative or not.
  const uint64_t dead = kT0 + (300 + cache_->settings().stale_ttl) * 1000ull;
  EXPECT_EQ(cache_->PurgeExpired(*thread_, dead, 1 << 20), 2u);  // nx and the SERVFAIL
  EXPECT_EQ(negative(), 0u);
  EXPECT_EQ(cache_->Stats().entries, 0u);
}

// Eviction goes through the same removal: the count stays exact in a full cache.
TEST_F(EntryPolicyTest, NegativeEntriesStaysExactUnderEviction) {
  CacheSettings s;
  s.capacity_bytes = 64 * 1024;
  s.shards = 1;
  Make(s);
  for (int i = 0; i < 2000; ++i) {
    const std::string name = "n" + std::to_string(i) + ".example.com.";
    if (i % 3 == 0) {
      Insert(KeyFor(name), Build(Answer(name, 300)));
    } else {
      Insert(KeyFor(name), Build(NxDomain(name, 300, 300)));
    }
    thread_->Quiescent();
  }
  ASSERT_GT(cache_->Stats().evictions, 0u);
  size_t present_negative = 0, present = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto r = Lookup(KeyFor("n" + std::to_string(i) + ".example.com."), kT0);
    if (r.status != Status::kHit) continue;
    ++present;
    present_negative += r.kind == EntryKind::kNxDomain;
  }
  EXPECT_EQ(cache_->Stats().entries, present);
  EXPECT_EQ(cache_->Stats().negative_entries, present_negative);
}

class EvictionTest : public ResponseCacheTest {
 protected:
  // One shard so that eviction order is observable; a budget of about 40 entries.
  void SetUp() override {
    CacheSettings s;
    s.capacity_bytes = 64 * 1024;
    s.shards = 1;
    s.max_entry_bytes = 1200;
    Make(s);
  }
  // ~1.1 KB entries: a TXT record of 1000 bytes.
  std::vector<uint8_t> Big(const std::string& name, uint32_t ttl) {
    MessageSpec m;
    m.qname = name;
    m.qtype = dns::type::kTXT;
    std::string txt;
    for (int i = 0; i < 4; ++i) txt += " \"" + std::string(250, 'x') + "\"";
    m.answer = {name + " " + std::to_string(ttl) + " IN TXT" + txt};
    return Build(m);
  }
  CacheKey K(int i) { return KeyFor("n" + std::to_string(i) + ".test.", dns::type::kTXT); }
  int Present(int from, int to, uint64_t now) {
    int n = 0;
    for (int i = from; i < to; ++i) n += Lookup(K(i), now, true).status != Status::kMiss;
    return n;
  }
};

TEST_F(EvictionTest, ByteCapacityIsNeverExceeded) {
  const size_t cap = cache_->Stats().capacity_bytes;
  size_t inserted_bytes = 0;
  for (int i = 0; inserted_bytes < 10 * cap; ++i) {
    auto wire = Big("n" + std::to_string(i) + ".test.", 300);
    inserted_bytes += wire.size();
    ASSERT_EQ(Insert(K(i), wire), InsertResult::kInserted);
    const auto st = cache_->Stats();
    ASSERT_LE(st.bytes, cap) << "after " << i;
    thread_->Quiescent();
  }
  EXPECT_GT(cache_->Stats().evictions, 0u);
  EXPECT_GT(cache_->Stats().entries, 20u);  // the budget is used, not wasted
}

TEST_F(EvictionTest, EvictsExpiredEntriesFirst) {
  int n = 0;
  // Fill: even entries live long, odd ones expire after 10 s.
  for (; cache_->Stats().evictions == 0 && n < 200; ++n) {
    Insert(K(n), Big("n" + std::to_string(n) + ".test.", n % 2 ? 10 : 1000));
  }
  // Start over from a full cache that has had no eviction yet.
  Make(CacheSettings{cache_->settings()});
  const int fill = n - 2;
  for (int i = 0; i < fill; ++i)
    Insert(K(i), Big("n" + std::to_string(i) + ".test.", i % 2 ? 10 : 1000));
  ASSERT_EQ(cache_->Stats().evictions, 0u);
  const uint64_t later = kT0 + 20'000;
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(Insert(K(1000 + i), Big("n" + std::to_string(1000 + i) + ".test.", 1000), later),
              InsertResult::kInserted);
  }
  EXPECT_GT(cache_->Stats().expired_evictions, 0u);
  EXPECT_EQ(cache_->Stats().evictions, 0u);
  for (int i = 0; i < fill; i += 2) {
    EXPECT_EQ(Lookup(K(i), later).status, Status::kHit) << "live entry " << i << " was evicted";
  }
}

TEST_F(EvictionTest, ClockKeepsRecentlyUsedEntries) {
  int fill = 0;
  while (cache_->Stats().evictions == 0 && fill < 200) {
    Insert(K(fill), Big("n" + std::to_string(fill) + ".test.", 1000));
    ++fill;
  }
  Make(CacheSettings{cache_->settings()});
  fill -= 2;
  for (int i = 0; i < fill; ++i) Insert(K(i), Big("n" + std::to_string(i) + ".test.", 1000));
  ASSERT_EQ(cache_->Stats().evictions, 0u);
  // Touch the first half; then insert fewer new entries than there are untouched ones.
  for (int i = 0; i < fill / 2; ++i) ASSERT_EQ(Lookup(K(i), kT0).status, Status::kHit);
  for (int i = 0; i < fill / 4; ++i) Insert(K(1000 + i), Big("x" + std::to_string(i) + ".", 1000));
  EXPECT_GT(cache_->Stats().evictions, 0u);
  EXPECT_EQ(Present(0, fill / 2, kT0), fill / 2) << "a recently used entry was evicted";
  EXPECT_LT(Present(fill / 2, fill, kT0), fill - fill / 2);
}

TEST_F(EvictionTest, PurgeExpiredFreesOnlyDeadEntries) {
  CacheSettings s = cache_->settings();
  s.stale_ttl = 10;
  Make(s);
  for (int i = 0; i < 10; ++i)
    Insert(K(i), Big("n" + std::to_string(i) + ".test.", i < 5 ? 5 : 500));
  EXPECT_EQ(cache_->PurgeExpired(*thread_, kT0 + 10'000, 1 << 20), 0u);  // stale, not dead
  EXPECT_EQ(cache_->PurgeExpired(*thread_, kT0 + 15'000, 1 << 20), 5u);
  EXPECT_EQ(cache_->Stats().entries, 5u);
}

TEST_F(EvictionTest, EntryLargerThanShardBudgetIsRefused) {
  CacheSettings s;
  s.capacity_bytes = 64 * 1024;
  s.shards = 1;
  Make(s);
  MessageSpec m;
  m.qname = "big.test.";
  m.qtype = dns::type::kTXT;
  for (int i = 0; i < 248; ++i) {  // just under 64 KiB of message: more than the shard's budget
    m.answer.push_back("big.test. 300 IN TXT \"" + std::string(250, 'a' + i % 26) + "\"");
  }
  EXPECT_EQ(Insert(KeyFor("big.test.", dns::type::kTXT), Build(m)), InsertResult::kTooLarge);
  EXPECT_LE(cache_->Stats().bytes, cache_->Stats().capacity_bytes);
}

}  // namespace
}  // namespace nodedns::cache

namespace nodedns::cache {
namespace {

TEST(CacheKeyTest, LowercasesOnlyAsciiLettersWordAtATime) {
  // 30+ bytes so that both the 8-byte loop and the tail run; bytes outside A-Z stay as they are.
  std::vector<uint8_t> name = {9,   'A', 'b', 'Z', '@', '[', '`', '{', 0xC4, 'Q', 5,
                               'M', 'i', 'X', 'e', 'D', 13,  'L', 'o', 'n',  'G', 'e',
                               'R', '-', 'L', 'a', 'B', 'e', 'L', '9', 0};
  CacheKey k(name, 1, 1, false, false);
  std::vector<uint8_t> want = {9,   'a', 'b', 'z', '@', '[', '`', '{', 0xC4, 'q', 5,
                               'm', 'i', 'x', 'e', 'd', 13,  'l', 'o', 'n',  'g', 'e',
                               'r', '-', 'l', 'a', 'b', 'e', 'l', '9', 0};
  EXPECT_EQ(std::vector<uint8_t>(k.bytes().begin(), k.bytes().begin() + name.size()), want);
}

TEST(CacheKeyTest, HashSpreadsSimilarNamesOverShardsSlotsAndTags) {
  // 64k names differing in a digit or two: every 6-bit shard index, 10-bit slot index and tag
  // value range must be used about evenly (a weak hash clusters them).
  constexpr int kN = 1 << 16;
  std::vector<int> shard(64), slot(1024), tag(256);
  for (int i = 0; i < kN; ++i) {
    std::string label = "svc" + std::to_string(i);
    std::vector<uint8_t> name = {static_cast<uint8_t>(label.size())};
    name.insert(name.end(), label.begin(), label.end());
    for (const char* l : {"\3svc", "\7cluster", "\5local"})
      name.insert(name.end(), l, l + std::strlen(l));
    name.push_back(0);
    const uint64_t h = CacheKey(name, 1, 1, false, false).hash();
    ++shard[h >> 58];
    ++slot[h & 1023];
    ++tag[(h >> 40) & 255];
  }
  // The seed is random per process, so bounds are 6 standard deviations of a uniform hash
  // (sqrt of the expected count): a clustering hash misses them by far, a good one never does.
  for (int c : shard) EXPECT_NEAR(c, kN / 64, 6 * 32);
  for (int c : slot) EXPECT_NEAR(c, kN / 1024, 6 * 8);
  for (int c : tag) EXPECT_NEAR(c, kN / 256, 6 * 16);
}

}  // namespace
}  // namespace nodedns::cache
