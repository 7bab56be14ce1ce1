// End-to-end tests of `nodedns serve` against an upstream that misbehaves on purpose: the real
// binary in front of a ScriptedUpstream that sends exact bytes (or nothing), queried over UDP and
// TCP by hand-built messages and checked with ldns. Each case is one a real server will not
// produce but a broken or hostile one can: a stalled TCP connection, TC=1 over TCP, malformed
// names, TTLs with the top bit set, answers larger than UDP allows. docs/reliability.md lists
// them with what nodedns does. No Knot needed: these run wherever the binary builds.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/dns_builder.h"
#include "tests/testing/net.h"
#include "tests/testing/nodedns_fixture.h"
#include "tests/testing/scripted_upstream.h"

namespace nodedns::integration {
namespace {

using nodedns::testing::Action;
using nodedns::testing::Build;
using nodedns::testing::BuildQuery;
using nodedns::testing::Bytes;
using nodedns::testing::LdnsPkt;
using nodedns::testing::MessageSpec;
using nodedns::testing::Parse;
using nodedns::testing::RecvDatagram;
using nodedns::testing::ReplySpecFor;
using nodedns::testing::ScriptedUpstream;
using nodedns::testing::SeenQuery;
using nodedns::testing::TcpExchange;
using nodedns::testing::UdpExchange;
using nodedns::testing::UdpSocketTo;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeCname = 5;
constexpr uint16_t kTypeSoa = 6;

// ---------------------------------------------------------------------------------------------
// Raw responses, for what ldns will not build: each the answer to `q` (its ID and question), with
// records appended as owner bytes, type, TTL and RDATA bytes exactly as given.

class RawResponse {
 public:
  explicit RawResponse(const SeenQuery& q, uint16_t flags = 0x8180) : msg_(q.wire) {
    // The query's header and question (what a response repeats), nothing after it.
    const size_t question_end = QuestionEnd(q.wire);
    msg_.resize(question_end);
    msg_[2] = static_cast<uint8_t>(flags >> 8);
    msg_[3] = static_cast<uint8_t>(flags);
    for (int i = 6; i < 12; ++i) msg_[i] = 0;
  }
  static size_t QuestionEnd(const Bytes& wire) {
    size_t off = 12;
    while (off < wire.size() && wire[off] != 0) off += wire[off] + 1;
    return off + 1 + 4;
  }
  size_t size() const { return msg_.size(); }
  // Appends a record to the answer (section 0) or authority (1) section; returns the offset of
  // its RDATA.
  size_t Add(int section, const Bytes& owner, uint16_t type, uint32_t ttl, const Bytes& rdata) {
    Put(owner);
    Put16(type);
    Put16(1);
    Put16(static_cast<uint16_t>(ttl >> 16));
    Put16(static_cast<uint16_t>(ttl));
    Put16(static_cast<uint16_t>(rdata.size()));
    const size_t at = msg_.size();
    Put(rdata);
    const size_t count = 6 + 2 * section;
    const uint16_t n = static_cast<uint16_t>((msg_[count] << 8 | msg_[count + 1]) + 1);
    msg_[count] = static_cast<uint8_t>(n >> 8);
    msg_[count + 1] = static_cast<uint8_t>(n);
    return at;
  }
  const Bytes& bytes() const { return msg_; }

 private:
  void Put(const Bytes& b) { msg_.insert(msg_.end(), b.begin(), b.end()); }
  void Put16(uint16_t v) {
    msg_.push_back(static_cast<uint8_t>(v >> 8));
    msg_.push_back(static_cast<uint8_t>(v));
  }
  Bytes msg_;
};

Bytes Pointer(size_t offset) {
  return {static_cast<uint8_t>(0xc0 | offset >> 8), static_cast<uint8_t>(offset)};
}
Bytes Label63Then(const Bytes& rest) {
  Bytes b{63};
  b.insert(b.end(), 63, 'x');
  b.insert(b.end(), rest.begin(), rest.end());
  return b;
}
const Bytes kAddress = {192, 0, 2, 1};

struct Reply {
  uint8_t rcode = 0xff;
  bool tc = false;
  size_t answers = 0;
  std::vector<uint32_t> ttls;
  bool parsed = false;
};

Reply Read(const std::optional<Bytes>& wire) {
  Reply r;
  if (!wire) return r;
  LdnsPkt p = Parse(*wire);
  if (!p) return r;
  r.parsed = true;
  r.rcode = static_cast<uint8_t>(ldns_pkt_get_rcode(p.get()));
  r.tc = ldns_pkt_tc(p.get());
  r.answers = ldns_rr_list_rr_count(ldns_pkt_answer(p.get()));
  r.ttls = nodedns::testing::AllTtls(p.get());
  return r;
}

// ---------------------------------------------------------------------------------------------
// The fixture: one nodedns per test in front of one scripted upstream.

class HostileUpstreamTest : public nodedns::testing::NodednsFixture {
 protected:
  HostileUpstreamTest() : NodednsFixture(NODEDNS_BINARY) {}
  void Start(ScriptedUpstream& upstream, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> flags = {"--search-rewrite", "off"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    StartNodedns(upstream.port(), flags);
  }
  std::optional<Bytes> Udp(const std::string& name, uint16_t qtype = kTypeA, int timeout = 3000) {
    return UdpExchange(dns_port_, BuildQuery(name, qtype, /*edns=*/true), timeout);
  }
  std::optional<Bytes> Tcp(const std::string& name, uint16_t qtype = kTypeA, int timeout = 5000) {
    return TcpExchange(dns_port_, BuildQuery(name, qtype, /*edns=*/true), timeout);
  }
};

Action AnswerA(const SeenQuery& q, uint32_t ttl = 300) {
  MessageSpec spec = ReplySpecFor(q);
  spec.answer = {q.name + " " + std::to_string(ttl) + " IN A 192.0.2.1"};
  return Action::Reply(Build(spec));
}

// Defect: one upstream TCP connection that accepts a query and never answers made every later
// query of a --force-tcp zone wait on it and fail. Now later queries go around it at once, and the
// stuck query is retried on a fresh connection when its try times out.
TEST_F(HostileUpstreamTest, StalledTcpConnectionNeitherHoldsOtherQueriesNorTheStuckOne) {
  ScriptedUpstream upstream([](const SeenQuery& q) {
    if (q.tcp && q.conn == 0) return Action::Silent();  // the first connection never answers
    return AnswerA(q);
  });
  // A 3 s try, so that "answered at once" (within 1.5 s) and "waited behind the stalled
  // connection" stay apart on a loaded machine.
  ASSERT_NO_FATAL_FAILURE(Start(upstream, {"--force-tcp", ".", "--upstream-timeout", "3000"}));
  const int stuck_fd = UdpSocketTo(dns_port_);
  const Bytes stuck_query = BuildQuery("stuck.example.", kTypeA, true);
  ASSERT_EQ(send(stuck_fd, stuck_query.data(), stuck_query.size(), 0),
            static_cast<ssize_t>(stuck_query.size()));
  // Until the stuck query is on the stalled connection (bounded).
  for (const auto until = Clock::now() + milliseconds(5000);
       upstream.Count("stuck.example.", true) == 0 && Clock::now() < until;) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_EQ(upstream.Count("stuck.example.", true), 1);
  // Well within the stuck try's 3 s: nothing waits behind it.
  for (int i = 0; i < 5; ++i) {
    const std::string name = "next" + std::to_string(i) + ".example.";
    const Reply r = Read(Udp(name, kTypeA, 1500));
    EXPECT_EQ(r.rcode, 0) << name << " waited behind the stalled connection";
    EXPECT_EQ(r.answers, 1u) << name;
  }
  const Reply stuck = Read(RecvDatagram(stuck_fd, 10000));
  close(stuck_fd);
  EXPECT_EQ(stuck.rcode, 0) << "the stuck query was not retried on a fresh connection";
  EXPECT_EQ(stuck.answers, 1u);
  EXPECT_EQ(upstream.Count("stuck.example.", true), 2);
  EXPECT_GE(upstream.connections(), 2);
  EXPECT_EQ(Metric("nodedns_upstream_tcp_stalled_total"), 1);
}

// Defect: TC=1 over UDP and again over TCP became an empty NOERROR (a false NODATA).
TEST_F(HostileUpstreamTest, TruncatedOverUdpAndTcpIsServfailOverEitherTransport) {
  ScriptedUpstream upstream([](const SeenQuery& q) {
    MessageSpec spec = ReplySpecFor(q);
    spec.tc = true;
    return Action::Reply(Build(spec));
  });
  ASSERT_NO_FATAL_FAILURE(Start(upstream));
  const Reply udp = Read(Udp("tc.example."));
  EXPECT_EQ(udp.rcode, 2) << "TC=1 over TCP was passed on as an answer";
  EXPECT_FALSE(udp.tc);
  const Reply tcp = Read(Tcp("tc2.example."));
  EXPECT_EQ(tcp.rcode, 2);
  EXPECT_EQ(upstream.Count("tc.example.", true), 1) << "not retried over TCP after TC=1";
  EXPECT_GE(Metric("nodedns_upstream_tcp_truncated_total"), 2);
}

// Defect: malformed names (pointer loops, pointers into the middle of a label or into data that
// is not a name, bad label types, names over 255 bytes) were cached and served. Each is unusable:
// SERVFAIL, not cached (the second query reaches the upstream again).
TEST_F(HostileUpstreamTest, ResponsesWithMalformedNamesAreServfailAndNotCached) {
  struct Case {
    const char* what;
    std::function<Bytes(const SeenQuery&)> build;
  };
  const std::vector<Case> cases = {
      {"owner is a pointer to itself",
       [](const SeenQuery& q) {
         RawResponse r(q);
         r.Add(0, Pointer(r.size()), kTypeA, 300, kAddress);
         return r.bytes();
       }},
      {"owner points into the middle of a question label",
       [](const SeenQuery& q) {
         RawResponse r(q);
         r.Add(0, Pointer(13), kTypeA, 300, kAddress);  // offset 12 is a length byte, 13 is not
         return r.bytes();
       }},
      {"owner points into A RDATA",
       [](const SeenQuery& q) {
         RawResponse r(q);
         // RDATA 1 'a' 0 0: reads as the name "a." if a pointer may land there.
         const size_t rdata = r.Add(0, Pointer(12), kTypeA, 300, {1, 'a', 0, 0});
         r.Add(0, Pointer(rdata), kTypeA, 300, kAddress);
         return r.bytes();
       }},
      {"CNAME target with label type 0x41",
       [](const SeenQuery& q) {
         RawResponse r(q);
         r.Add(0, Pointer(12), kTypeCname, 300, {0x41, 'x', 0});
         return r.bytes();
       }},
      {"CNAME target that points to itself",
       [](const SeenQuery& q) {
         RawResponse r(q);
         const size_t at = r.size() + 2 + 10;  // owner pointer, fixed fields
         r.Add(0, Pointer(12), kTypeCname, 300, Pointer(at));
         return r.bytes();
       }},
      {"CNAME chain whose last name expands past 255 bytes",
       [](const SeenQuery& q) {
         RawResponse r(q);
         size_t prev = 12;  // the question's name
         for (int i = 0; i < 4; ++i) {
           // Each target: one 63-byte label, then the previous name: 77, 141, 205, 269 bytes.
           const size_t owner_size = 2;
           const size_t rdata_at = r.size() + owner_size + 10;
           r.Add(0, Pointer(prev), kTypeCname, 300, Label63Then(Pointer(prev)));
           prev = rdata_at;
         }
         r.Add(0, Pointer(prev), kTypeA, 300, kAddress);
         return r.bytes();
       }},
  };
  // Set by the test, read by the upstream's thread.
  std::atomic<const Case*> current{nullptr};
  ScriptedUpstream upstream([&](const SeenQuery& q) {
    const Case* c = current.load();
    return c ? Action::Reply(c->build(q)) : AnswerA(q);
  });
  ASSERT_NO_FATAL_FAILURE(Start(upstream));
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    current = &c;
    const std::string name = "bad" + std::to_string(n++) + ".example.";
    for (int round = 0; round < 2; ++round) {
      const Reply r = Read(round == 0 ? Udp(name) : Tcp(name));
      EXPECT_EQ(r.rcode, 2) << "round " << round;
      EXPECT_EQ(r.answers, 0u);
    }
    EXPECT_EQ(upstream.Count(name, false) + upstream.Count(name, true), 2)
        << "the malformed response was cached";
  }
  current = nullptr;
  EXPECT_EQ(Read(Udp("good.example.")).rcode, 0) << "a good name suffered from the bad ones";
}

// Defect: a reply the cache does not store went out with raw TTLs. RFC 2181 §8: a TTL with the
// top bit set is 0; --max-ttl holds for every answer, stored or not.
TEST_F(HostileUpstreamTest, TtlsOfRepliesNotCachedAreCleanedAndCapped) {
  ScriptedUpstream upstream([](const SeenQuery& q) {
    RawResponse r(q);
    if (q.name == "topbit.example.") {
      r.Add(0, Pointer(12), kTypeA, 0x80000064, kAddress);
    } else if (q.name == "allones.example.") {
      r.Add(0, Pointer(12), kTypeA, 0xffffffff, kAddress);
    } else if (q.name == "nodata.example.") {
      // NODATA whose SOA has an all-ones TTL: its negative TTL is 0, so it is not cached.
      Bytes soa = {0, 0};  // MNAME ".", RNAME "."
      for (int i = 0; i < 5; ++i) soa.insert(soa.end(), {0, 0, 0x0e, 0x10});  // 3600 each
      r.Add(1, Pointer(12), kTypeSoa, 0xffffffff, soa);
    } else {
      // A zero TTL next to a huge one: the entry would live 0 s, so it is not stored, and the
      // huge TTL must still be capped at --max-ttl.
      const size_t rdata = r.size() + 2 + 10;
      const size_t parent = 12 + 1 + q.wire[12];  // the question name less its first label
      r.Add(0, Pointer(12), kTypeCname, 0,
            {1, 'z', static_cast<uint8_t>(0xc0 | parent >> 8), static_cast<uint8_t>(parent)});
      r.Add(0, Pointer(rdata), kTypeA, 999999, kAddress);
    }
    return Action::Reply(r.bytes());
  });
  ASSERT_NO_FATAL_FAILURE(Start(upstream, {"--max-ttl", "60"}));
  for (const char* name : {"topbit.example.", "allones.example.", "nodata.example."}) {
    for (const bool tcp : {false, true}) {
      SCOPED_TRACE(std::string(name) + (tcp ? " tcp" : " udp"));
      const Reply r = Read(tcp ? Tcp(name) : Udp(name));
      ASSERT_TRUE(r.parsed);
      EXPECT_EQ(r.rcode, 0);
      ASSERT_FALSE(r.ttls.empty());
      for (uint32_t ttl : r.ttls) EXPECT_EQ(ttl, 0u);
    }
    EXPECT_EQ(upstream.Count(name, false), 2) << name << ": a zero lifetime was cached";
  }
  const Reply mixed = Read(Udp("mixed.example."));
  ASSERT_EQ(mixed.ttls.size(), 2u);
  EXPECT_EQ(mixed.ttls[0], 0u);
  EXPECT_EQ(mixed.ttls[1], 60u) << "--max-ttl not applied to an answer that was not cached";
}

// Defect: more than 512 records was SERVFAIL even over TCP, and a UDP reply over 4,096 bytes
// without TC was read cut off and retried for seconds. Large answers come over TCP whole (up to
// the 65,535-byte limit), UDP clients get TC=1 at once.
TEST_F(HostileUpstreamTest, LargeAnswersComeWholeOverTcpAndTruncatedOverUdp) {
  const auto records = [](const SeenQuery& q) {
    if (q.name.rfind("r600.", 0) == 0) return 600;
    if (q.name.rfind("r4000.", 0) == 0) return 4000;  // about 64 KB
    return 400;                                       // about 6.4 KB
  };
  ScriptedUpstream upstream([&](const SeenQuery& q) {
    RawResponse r(q);
    const int n = records(q);
    // "udp-big": a server that ignores the advertised 1232 bytes and sends 6 KB without TC.
    if (!q.tcp && q.name.rfind("udp-big.", 0) != 0) {
      RawResponse tc(q, 0x8380);
      return Action::Reply(tc.bytes());
    }
    for (int i = 0; i < n; ++i) {
      r.Add(0, Pointer(12), kTypeA, 300,
            {10, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i), 1});
    }
    return Action::Reply(r.bytes());
  });
  // A 4 s try: a UDP retry would take at least that, far from the 3 s bound below, which leaves
  // room for a loaded machine to fetch 64 KB over TCP.
  ASSERT_NO_FATAL_FAILURE(Start(upstream, {"--upstream-timeout", "4000"}));
  for (const char* name : {"r600.example.", "r4000.example.", "udp-big.example."}) {
    SCOPED_TRACE(name);
    const auto start = Clock::now();
    const Reply udp = Read(Udp(name, kTypeA, 5000));
    EXPECT_LT(Clock::now() - start, milliseconds(3000)) << "retried over UDP before TCP";
    EXPECT_EQ(udp.rcode, 0);
    EXPECT_TRUE(udp.tc) << "a UDP client must be told to come back over TCP";
    const Reply tcp = Read(Tcp(name));
    EXPECT_EQ(tcp.rcode, 0);
    EXPECT_FALSE(tcp.tc);
    EXPECT_EQ(tcp.answers, size_t(std::string(name) == "r600.example."    ? 600
                                  : std::string(name) == "r4000.example." ? 4000
                                                                          : 400));
  }
  EXPECT_EQ(upstream.Count("udp-big.example.", false), 1) << "the oversized reply was retried";
  EXPECT_EQ(upstream.Count("udp-big.example.", true), 1);
}

}  // namespace
}  // namespace nodedns::integration
