// End-to-end tests of `nodedns serve`: the real binary in front of a real authoritative server
// (Knot DNS) on loopback, queried by hand-built messages and by kdig. Knot is the reference: for
// the same query nodedns must return the same rcode and records (TTLs never larger), with the
// client's ID, question case and EDNS handling, and truncation by the proxy's own rules. Other
// tests stop Knot or slow it down to check the cache, serve-stale, SERVFAIL and coalescing paths.
//
// Each test starts its own knotd and nodedns (fresh ports, cold cache); the suite shares one
// temporary directory with the zone, and Knot's key store so that the zone is keyed only once.
// knotd and kdig come from the system (the tests skip when they are missing), nodedns from the
// build (NODEDNS_BINARY). A sanitizer report in nodedns's log or a non-zero exit on SIGTERM fails
// the test, so that the sanitized build checks the whole serve path. Tests for which a scripted
// upstream is enough are in scripted_upstream_test.cc and hostile_upstream_test.cc, where they do
// not depend on Knot being installed.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/dns_builder.h"
#include "tests/testing/net.h"
#include "tests/testing/nodedns_fixture.h"
#include "tests/testing/nodedns_process.h"
#include "tests/testing/process.h"
#include "tests/testing/relay.h"
#include "tests/testing/scripted_upstream.h"

namespace nodedns::integration {
namespace {

using nodedns::testing::AllTtls;
using nodedns::testing::AnswerAddresses;
using nodedns::testing::Build;
using nodedns::testing::EdnsOption;
using nodedns::testing::EdnsOptions;
using nodedns::testing::FreePorts;
using nodedns::testing::HttpGet;
using nodedns::testing::LdnsPkt;
using nodedns::testing::MessageSpec;
using nodedns::testing::MetricValue;
using nodedns::testing::Parse;
using nodedns::testing::Process;
using nodedns::testing::RecvDatagram;
using nodedns::testing::RecvExact;
using nodedns::testing::RecvTcpMessage;
using nodedns::testing::Relay;
using nodedns::testing::RunCommand;
using nodedns::testing::SendAll;
using nodedns::testing::TcpConnect;
using nodedns::testing::TcpExchange;
using nodedns::testing::TcpFrame;
using nodedns::testing::UdpExchange;
using nodedns::testing::UdpSocketTo;
using nodedns::testing::WireName;
using nodedns::testing::WriteFile;

using Bytes = std::vector<uint8_t>;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The Debian paths, unless NODEDNS_TEST_KNOTD / NODEDNS_TEST_KDIG name others: pointing one at a
// missing file shows what a machine without Knot runs (these tests skip, and scripts/test.sh then
// fails on skips it does not expect).
std::string ToolPath(const char* env, const char* debian_path) {
  const char* path = getenv(env);
  return path ? path : debian_path;
}
const std::string kKnotd = ToolPath("NODEDNS_TEST_KNOTD", "/usr/sbin/knotd");
const std::string kKdig = ToolPath("NODEDNS_TEST_KDIG", "/usr/bin/kdig");

constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeTxt = 16;
constexpr uint16_t kTypeAaaa = 28;
constexpr uint16_t kTypeRrsig = 46;

constexpr uint8_t kRcodeNoError = 0;
constexpr uint8_t kRcodeFormErr = 1;
constexpr uint8_t kRcodeServFail = 2;
constexpr uint8_t kRcodeNxDomain = 3;
constexpr uint8_t kRcodeNotImp = 4;

// The proxy's UDP ceiling (DNS Flag Day 2020) and the classic limit without EDNS.
constexpr size_t kProxyUdpMax = 1232;
constexpr size_t kPlainUdpMax = 512;

// ---------------------------------------------------------------------------------------------
// The zone. Small on purpose: each record exists for one behaviour under test.

// 30 TXT records of 100 bytes each: about 3.4 KB, more than any UDP reply the proxy sends.
constexpr int kBigTxtRecords = 30;
// 6 of them: about 700 bytes, between the 512-byte and the 1232-byte limits.
constexpr int kMediumTxtRecords = 6;

std::string TxtString(char tag, int i) {
  std::string s = std::string(1, tag) + std::to_string(i) + "-";
  s.resize(100, static_cast<char>('a' + i % 26));
  return s;
}

std::string ZoneText() {
  std::ostringstream z;
  z << "$ORIGIN example.test.\n"
       "$TTL 300\n"
       "@ SOA ns hostmaster 1 7200 1800 86400 60\n"
       "@ NS ns\n"
       "ns A 192.0.2.53\n"
       "www A 192.0.2.1\n"
       "www AAAA 2001:db8::1\n"
       "a CNAME b\n"
       "b CNAME c\n"
       "c A 192.0.2.3\n"
       "v4only A 192.0.2.4\n"
       "MixedCase.Host A 192.0.2.5\n"
       "short 2 A 192.0.2.6\n"
       "coalesce A 192.0.2.7\n"
       // A cluster zone below the test zone, for the search-path rewrite (cluster domain
       // cluster.example.test): a service, a service in another namespace, and a name that exists
       // only as N.svc.<zone> (the first candidate). SRV records and a headless pod under the
       // service, and an SRV name that exists only under svc.<zone>.
       "kubernetes.default.svc.cluster A 10.96.0.1\n"
       "_https._tcp.kubernetes.default.svc.cluster SRV 0 100 443 kubernetes.default.svc.cluster\n"
       "pod-0.kubernetes.default.svc.cluster A 10.244.0.5\n"
       "web.otherns.svc.cluster A 10.96.1.1\n"
       "only.svc.cluster A 10.96.2.1\n"
       "_http._tcp.only.svc.cluster SRV 0 100 80 only.svc.cluster\n";
  for (int i = 0; i < 3; ++i) z << "three TXT \"" << TxtString('t', i) << "\"\n";
  for (int i = 0; i < kMediumTxtRecords; ++i) z << "medium TXT \"" << TxtString('m', i) << "\"\n";
  for (int i = 0; i < kBigTxtRecords; ++i) z << "big TXT \"" << TxtString('b', i) << "\"\n";
  return z.str();
}

std::string KnotConfig(const std::string& dir, const std::string& rundir, uint16_t port) {
  // Signed, so that DO=1 queries get RRSIGs and the DO bit visibly changes answers. The keys live
  // in the shared storage; the journal is off and the zone file never rewritten, so every start
  // loads the same file and signs it with the same keys (fast after the first start).
  std::ostringstream c;
  c << "server:\n"
       "    listen: 127.0.0.1@"
    << port
    << "\n"
       "    rundir: \""
    << rundir
    << "\"\n"
       "    background-workers: 1\n"
       "    udp-workers: 1\n"
       "    tcp-workers: 1\n"
       "database:\n"
       "    storage: \""
    << dir
    << "/storage\"\n"
       "log:\n"
       "  - target: stderr\n"
       "    any: warning\n"
       "zone:\n"
       "  - domain: example.test\n"
       "    file: \""
    << dir
    << "/example.test.zone\"\n"
       "    dnssec-signing: on\n"
       "    zonefile-sync: -1\n"
       "    journal-content: none\n";
  return c.str();
}

// ---------------------------------------------------------------------------------------------
// Messages.

struct Query {
  std::string name;
  uint16_t type = kTypeA;
  uint16_t bufsize = 0;  // 0: no EDNS
  bool dnssec = false;
  uint16_t id = 0x4242;
  bool cd = false;
  std::vector<EdnsOption> options = {};  // EDNS options (needs bufsize != 0)
};

Bytes Wire(const Query& q) {
  MessageSpec spec;
  spec.qname = q.name;
  spec.qtype = q.type;
  spec.qr = false;
  spec.id = q.id;
  spec.edns = q.bufsize != 0;
  spec.udp_size = q.bufsize;
  spec.do_bit = q.dnssec;
  spec.cd = q.cd;
  spec.edns_options = q.options;
  return Build(spec);
}

std::string Describe(const Query& q, bool tcp) {
  return q.name + " type " + std::to_string(q.type) + (tcp ? " tcp" : " udp") +
         (q.bufsize ? " bufsize " + std::to_string(q.bufsize) : " no-edns") +
         (q.dnssec ? " +dnssec" : "");
}

// A section's records in a form that ignores TTL, order and name case: canonical (RFC 4034
// §6.2: owner and embedded names lowercased) presentation text with TTL 0, sorted.
std::vector<std::string> SectionRecords(const ldns_rr_list* list) {
  std::vector<std::string> out;
  for (size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
    ldns_rr* rr = ldns_rr_clone(ldns_rr_list_rr(list, i));
    ldns_rr2canonical(rr);
    ldns_rr_set_ttl(rr, 0);
    char* text = ldns_rr2str(rr);
    out.emplace_back(text);
    free(text);
    ldns_rr_free(rr);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Record (as SectionRecords prints it) → TTL.
std::map<std::string, uint32_t> RecordTtls(const ldns_rr_list* list) {
  std::map<std::string, uint32_t> out;
  for (size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
    ldns_rr* rr = ldns_rr_clone(ldns_rr_list_rr(list, i));
    ldns_rr2canonical(rr);
    const uint32_t ttl = ldns_rr_ttl(rr);
    ldns_rr_set_ttl(rr, 0);
    char* text = ldns_rr2str(rr);
    out[text] = ttl;
    free(text);
    ldns_rr_free(rr);
  }
  return out;
}

size_t CountType(const ldns_rr_list* list, uint16_t type) {
  size_t n = 0;
  for (size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
    n += ldns_rr_get_type(ldns_rr_list_rr(list, i)) == type;
  }
  return n;
}

// The question as the client wrote it: name bytes (in the client's case), type and class.
Bytes QuestionBytes(const Bytes& msg, size_t qname_length) {
  const size_t end = std::min(msg.size(), 12 + qname_length + 4);
  return Bytes(msg.begin() + std::min<size_t>(12, msg.size()), msg.begin() + end);
}

void ExpectTtlsNotLarger(const ldns_rr_list* got, const ldns_rr_list* reference) {
  const auto ref = RecordTtls(reference);
  for (const auto& [rr, ttl] : RecordTtls(got)) {
    auto it = ref.find(rr);
    if (it != ref.end()) {
      EXPECT_LE(ttl, it->second) << rr;
    }
  }
}

bool HasOpt(const ldns_pkt* p) { return ldns_pkt_edns_udp_size(p) != 0; }

// Checks one nodedns reply against Knot's reply to the same query over TCP (never truncated).
// `tcp`: how the nodedns reply travelled. Everything the proxy promises is asserted here.
void ExpectMatchesKnot(const Query& q, bool tcp, const Bytes& query, const Bytes& got,
                       const Bytes& knot) {
  SCOPED_TRACE(Describe(q, tcp));
  LdnsPkt g = Parse(got);
  LdnsPkt k = Parse(knot);
  ASSERT_NE(g, nullptr) << "nodedns reply does not parse";
  ASSERT_NE(k, nullptr) << "Knot reply does not parse";
  // Header: the client's ID, a response, recursion available, not authoritative.
  EXPECT_EQ(ldns_pkt_id(g.get()), q.id);
  EXPECT_TRUE(ldns_pkt_qr(g.get()));
  EXPECT_FALSE(ldns_pkt_aa(g.get())) << "AA must be cleared by a cache";
  EXPECT_TRUE(ldns_pkt_ra(g.get()));
  EXPECT_TRUE(ldns_pkt_rd(g.get())) << "RD is copied from the query";
  EXPECT_EQ(ldns_pkt_get_rcode(g.get()), ldns_pkt_get_rcode(k.get()));
  // The question bytes as sent, including the client's letter case.
  const size_t qlen = WireName(q.name).size();
  EXPECT_EQ(QuestionBytes(got, qlen), QuestionBytes(query, qlen)) << "question not echoed";
  EXPECT_EQ(ldns_pkt_qdcount(g.get()), 1);
  // EDNS: an OPT iff the query had one, advertising 1232, DO echoed.
  EXPECT_EQ(HasOpt(g.get()), q.bufsize != 0);
  if (q.bufsize != 0) {
    EXPECT_EQ(ldns_pkt_edns_udp_size(g.get()), kProxyUdpMax);
    EXPECT_EQ(ldns_pkt_edns_do(g.get()), q.dnssec);
    EXPECT_EQ(ldns_pkt_edns_version(g.get()), 0);
  }
  // Truncation: Knot's TCP reply has exactly the bytes the proxy would send untruncated (same
  // records, the OPT record present iff the query had one), so it tells whether they fit.
  const size_t limit = q.bufsize == 0 ? kPlainUdpMax : std::min<size_t>(q.bufsize, kProxyUdpMax);
  const bool want_tc = !tcp && knot.size() > limit;
  EXPECT_EQ(ldns_pkt_tc(g.get()), want_tc) << "full size " << knot.size() << ", limit " << limit;
  if (!tcp) {
    EXPECT_LE(got.size(), limit) << "UDP reply larger than the client may receive";
  }
  if (ldns_pkt_tc(g.get())) {
    // Header and question only (plus OPT): the client must retry over TCP.
    EXPECT_EQ(ldns_pkt_ancount(g.get()), 0);
    EXPECT_EQ(ldns_pkt_nscount(g.get()), 0);
    return;
  }
  EXPECT_EQ(SectionRecords(ldns_pkt_answer(g.get())), SectionRecords(ldns_pkt_answer(k.get())));
  EXPECT_EQ(SectionRecords(ldns_pkt_authority(g.get())),
            SectionRecords(ldns_pkt_authority(k.get())));
  // TTLs count down in a cache; they never grow.
  ExpectTtlsNotLarger(ldns_pkt_answer(g.get()), ldns_pkt_answer(k.get()));
  ExpectTtlsNotLarger(ldns_pkt_authority(g.get()), ldns_pkt_authority(k.get()));
}

// ---------------------------------------------------------------------------------------------
// The fixture.

class ServeIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    have_tools_ = access(kKnotd.c_str(), X_OK) == 0 && access(kKdig.c_str(), X_OK) == 0;
    if (!have_tools_) return;
    char tmpl[] = "/tmp/nodedns-it-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return;
    dir_ = tmpl;
    std::filesystem::create_directories(dir_ + "/storage");
    WriteFile(dir_ + "/example.test.zone", ZoneText());
  }

  static void TearDownTestSuite() {
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  void SetUp() override {
    if (!have_tools_) {
      GTEST_SKIP() << "needs Knot DNS: " << kKnotd << " and " << kKdig
                   << " (Debian packages knot, knot-dnsutils)";
    }
    ASSERT_FALSE(dir_.empty()) << "mkdtemp failed";
    const auto ports = FreePorts(3);
    ASSERT_EQ(ports.size(), 3u);
    knot_port_ = ports[0];
    dns_port_ = ports[1];
    health_port_ = ports[2];
    test_dir_ = dir_ + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(test_dir_ + "/run");
  }

  void TearDown() override {
    if (!have_tools_) return;
    StopNodedns();
    StopKnot();
  }

  // Starts knotd and waits until it serves the signed zone.
  void StartKnot() {
    const std::string conf = test_dir_ + "/knot.conf";
    WriteFile(conf, KnotConfig(dir_, test_dir_ + "/run", knot_port_));
    ASSERT_TRUE(knot_.Start({kKnotd, "-c", conf}, test_dir_ + "/knot.log"));
    // The first start of the suite generates keys and signs: allow for a slow machine.
    const auto deadline = Clock::now() + milliseconds(30000);
    const Bytes probe = Wire({"example.test.", 6, 1232, true, 1});
    while (Clock::now() < deadline) {
      ASSERT_TRUE(knot_.Running()) << "knotd exited:\n" << knot_.Log();
      if (auto r = UdpExchange(knot_port_, probe, 200)) {
        LdnsPkt p = Parse(*r);
        if (p && ldns_pkt_get_rcode(p.get()) == kRcodeNoError &&
            CountType(ldns_pkt_answer(p.get()), kTypeRrsig) > 0) {
          return;
        }
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    FAIL() << "knotd did not serve the signed zone within 30 s:\n" << knot_.Log();
  }

  void StopKnot() {
    if (knot_.pid() <= 0) return;
    const auto st = knot_.Stop(milliseconds(5000));
    EXPECT_TRUE(st.has_value()) << "knotd ignored SIGTERM";
  }

  // Starts nodedns in front of `upstream_port` (Knot by default) and waits for "serving on".
  void StartNodedns(std::vector<std::string> extra = {}, std::optional<uint16_t> upstream = {},
                    int workers = 2) {
    const std::string port = std::to_string(upstream.value_or(knot_port_));
    std::vector<std::string> argv = {NODEDNS_BINARY, "serve",
                                     "--listen",     "127.0.0.1:" + std::to_string(dns_port_),
                                     "--forward",    ".=127.0.0.1:" + port,
                                     "--health",     "127.0.0.1:" + std::to_string(health_port_),
                                     "--workers",    std::to_string(workers)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    nodedns_started_ = true;
    ASSERT_NO_FATAL_FAILURE(
        nodedns::testing::StartNodedns(nodedns_, argv, test_dir_ + "/nodedns.log"));
  }

  // SIGTERM must end nodedns cleanly, and a sanitized build must have nothing to report.
  void StopNodedns() {
    if (!nodedns_started_) return;
    nodedns_started_ = false;
    nodedns::testing::StopNodedns(nodedns_);
  }

  void StartBoth(std::vector<std::string> extra = {}) {
    StartKnot();
    if (HasFatalFailure()) return;
    StartNodedns(std::move(extra));
  }

  std::string Metrics() {
    auto body = HttpGet(health_port_, "/metrics");
    EXPECT_TRUE(body.has_value()) << "GET /metrics failed";
    return body.value_or("");
  }
  double Metric(const std::string& sample) { return MetricValue(Metrics(), sample); }

  Bytes KnotTcp(const Bytes& query) {
    auto r = TcpExchange(knot_port_, query);
    EXPECT_TRUE(r.has_value()) << "no TCP reply from Knot";
    return r.value_or(Bytes{});
  }

  std::string Kdig(const std::string& args) {
    return RunCommand(kKdig + " @127.0.0.1 -p " + std::to_string(dns_port_) +
                      " +timeout=2 +retry=1 " + args);
  }

  static inline bool have_tools_ = false;
  static inline std::string dir_;
  std::string test_dir_;
  uint16_t knot_port_ = 0, dns_port_ = 0, health_port_ = 0;
  Process knot_, nodedns_;
  bool nodedns_started_ = false;
};

uint8_t Rcode(const Bytes& reply) { return reply.size() >= 4 ? reply[3] & 0xf : 0xff; }
uint16_t Id(const Bytes& msg) { return msg.size() >= 2 ? uint16_t(msg[0] << 8 | msg[1]) : 0; }

// ---------------------------------------------------------------------------------------------
// Tests.

TEST_F(ServeIntegrationTest, AnswersLikeKnotForEveryTransportBufsizeAndDnssecSetting) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  struct Name {
    std::string qname;
    uint16_t type;
  };
  const std::vector<Name> names = {
      {"www.example.test.", kTypeA},
      {"WwW.Example.TEST.", kTypeA},  // the client's case must come back
      {"www.example.test.", kTypeAaaa},
      {"a.example.test.", kTypeA},               // CNAME chain a → b → c
      {"v4only.example.test.", kTypeAaaa},       // NODATA
      {"nope.example.test.", kTypeA},            // NXDOMAIN
      {"mixedcase.HOST.example.test.", kTypeA},  // owner written MixedCase.Host in the zone
      {"medium.example.test.", kTypeTxt},        // ~700 bytes: over 512, under 1232
      {"big.example.test.", kTypeTxt},           // ~3.4 KB: TCP only
  };
  uint16_t id = 1000;
  int cases = 0, truncated = 0;
  for (const Name& n : names) {
    for (bool dnssec : {false, true}) {
      for (uint16_t bufsize : {0, 512, 1232, 4096}) {
        if (dnssec && bufsize == 0) continue;  // DO lives in the OPT record
        for (bool tcp : {false, true}) {
          const Query q{n.qname, n.type, bufsize, dnssec, ++id};
          const Bytes query = Wire(q);
          const Bytes knot = KnotTcp(query);
          auto got = tcp ? TcpExchange(dns_port_, query) : UdpExchange(dns_port_, query);
          ASSERT_TRUE(got.has_value()) << "no reply from nodedns: " << Describe(q, tcp);
          ExpectMatchesKnot(q, tcp, query, *got, knot);
          ++cases;
          truncated += got->size() > 3 && ((*got)[2] & 0x02);
        }
      }
    }
  }
  EXPECT_EQ(cases, 9 * 7 * 2);
  // UDP: big is truncated at every size (7 cases), medium without EDNS or at 512 (3 cases).
  EXPECT_EQ(truncated, 7 + 3);
  // Sanity of the reference itself: DO brings RRSIGs, so the cache must keep DO and non-DO apart.
  auto plain = UdpExchange(dns_port_, Wire({"www.example.test.", kTypeA, 1232, false, 1}));
  auto signed_ = UdpExchange(dns_port_, Wire({"www.example.test.", kTypeA, 1232, true, 2}));
  ASSERT_TRUE(plain && signed_);
  EXPECT_EQ(CountType(ldns_pkt_answer(Parse(*plain).get()), kTypeRrsig), 0u);
  EXPECT_EQ(CountType(ldns_pkt_answer(Parse(*signed_).get()), kTypeRrsig), 1u);
}

TEST_F(ServeIntegrationTest, RealKdigClientGetsExpectedAnswers) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  std::string out = Kdig("www.example.test A");
  EXPECT_NE(out.find("status: NOERROR"), std::string::npos) << out;
  EXPECT_NE(out.find("192.0.2.1"), std::string::npos) << out;
  EXPECT_NE(out.find("(UDP)"), std::string::npos) << out;

  out = Kdig("+tcp www.example.test AAAA");
  EXPECT_NE(out.find("status: NOERROR"), std::string::npos) << out;
  EXPECT_NE(out.find("2001:db8::1"), std::string::npos) << out;
  EXPECT_NE(out.find("(TCP)"), std::string::npos) << out;

  out = Kdig("+dnssec +tcp a.example.test A");
  EXPECT_NE(out.find("status: NOERROR"), std::string::npos) << out;
  EXPECT_NE(out.find("CNAME"), std::string::npos) << out;
  EXPECT_NE(out.find("192.0.2.3"), std::string::npos) << out;
  EXPECT_NE(out.find("RRSIG"), std::string::npos) << out;
  EXPECT_NE(out.find("flags: do"), std::string::npos) << out;

  out = Kdig("+dnssec www.example.test A");
  EXPECT_NE(out.find("RRSIG"), std::string::npos) << out;
  EXPECT_NE(out.find("flags: do"), std::string::npos) << out;
  EXPECT_EQ(out.find("flags: qr aa"), std::string::npos) << "AA set by a cache:\n" << out;

  out = Kdig("nope.example.test A");
  EXPECT_NE(out.find("status: NXDOMAIN"), std::string::npos) << out;

  // 512 bytes cannot hold the big RRset: kdig sees TC=1 and retries over TCP by itself.
  out = Kdig("+bufsize=512 big.example.test TXT");
  EXPECT_NE(out.find("status: NOERROR"), std::string::npos) << out;
  EXPECT_NE(out.find("(TCP)"), std::string::npos) << out;
  size_t txt = 0;
  for (size_t pos = 0; (pos = out.find("\tTXT\t", pos)) != std::string::npos; ++pos) ++txt;
  EXPECT_EQ(txt, size_t{kBigTxtRecords}) << out;
}

TEST_F(ServeIntegrationTest, TruncatesLargeRrsetOverUdpAndSendsItWholeOverTcp) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  // Cold cache, UDP without EDNS: the miss path must truncate too.
  for (uint16_t bufsize : {0, 4096}) {
    const Query q{"big.example.test.", kTypeTxt, bufsize, false, uint16_t(7 + bufsize)};
    auto udp = UdpExchange(dns_port_, Wire(q));
    ASSERT_TRUE(udp.has_value()) << Describe(q, false);
    LdnsPkt p = Parse(*udp);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(ldns_pkt_tc(p.get())) << Describe(q, false);
    EXPECT_EQ(ldns_pkt_ancount(p.get()), 0) << Describe(q, false);
    EXPECT_EQ(ldns_pkt_get_rcode(p.get()), kRcodeNoError);
    EXPECT_EQ(ldns_pkt_id(p.get()), q.id);
    EXPECT_LE(udp->size(), bufsize == 0 ? kPlainUdpMax : kProxyUdpMax);
  }
  EXPECT_GE(Metric("nodedns_truncated_replies_total"), 2);
  // Then over TCP, the whole RRset, equal to Knot's.
  const Query q{"big.example.test.", kTypeTxt, 0, false, 99};
  const Bytes query = Wire(q);
  auto tcp = TcpExchange(dns_port_, query);
  ASSERT_TRUE(tcp.has_value());
  ExpectMatchesKnot(q, true, query, *tcp, KnotTcp(query));
  EXPECT_EQ(CountType(ldns_pkt_answer(Parse(*tcp).get()), kTypeTxt), size_t{kBigTxtRecords});
}

TEST_F(ServeIntegrationTest, FetchesLargeRrsetFromUpstreamOverTcpOnColdCache) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  // Knot truncates its UDP reply at nodedns's 1232 bytes; only a TCP retry upstream gets the
  // records. The first query anyone makes is this one, so the cache cannot help.
  for (bool dnssec : {false, true}) {
    const Query q{"big.example.test.", kTypeTxt, 1232, dnssec, uint16_t(dnssec ? 2 : 1)};
    const Bytes query = Wire(q);
    auto tcp = TcpExchange(dns_port_, query);
    ASSERT_TRUE(tcp.has_value()) << Describe(q, true);
    ExpectMatchesKnot(q, true, query, *tcp, KnotTcp(query));
    EXPECT_EQ(CountType(ldns_pkt_answer(Parse(*tcp).get()), kTypeTxt), size_t{kBigTxtRecords});
  }
  EXPECT_EQ(Metric("nodedns_upstream_errors_total"), 0);
}

TEST_F(ServeIntegrationTest, ServesCacheHitsWithUpstreamStopped) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  const Bytes query = Wire({"www.example.test.", kTypeA, 1232, false, 11});
  auto warm = UdpExchange(dns_port_, query);
  ASSERT_TRUE(warm.has_value());
  ASSERT_EQ(AnswerAddresses(*warm), std::vector<std::string>{"192.0.2.1"});
  // Negative answers are cached too (RFC 2308), with the SOA that says for how long.
  const Bytes negative = Wire({"nope.example.test.", kTypeA, 0, false, 12});
  auto warm_negative = UdpExchange(dns_port_, negative);
  ASSERT_TRUE(warm_negative.has_value());
  ASSERT_EQ(Rcode(*warm_negative), kRcodeNxDomain);
  StopKnot();
  const double hits = Metric("nodedns_cache_hits_total");
  const double upstream = Metric("nodedns_upstream_queries_total");
  for (bool tcp : {false, true}) {
    auto again = tcp ? TcpExchange(dns_port_, query) : UdpExchange(dns_port_, query);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(Rcode(*again), kRcodeNoError);
    EXPECT_EQ(AnswerAddresses(*again), std::vector<std::string>{"192.0.2.1"});
    auto nx = tcp ? TcpExchange(dns_port_, negative) : UdpExchange(dns_port_, negative);
    ASSERT_TRUE(nx.has_value());
    EXPECT_EQ(Rcode(*nx), kRcodeNxDomain);
    EXPECT_EQ(Id(*nx), 12);
    LdnsPkt p = Parse(*nx);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(CountType(ldns_pkt_authority(p.get()), LDNS_RR_TYPE_SOA), 1u);
  }
  EXPECT_EQ(Metric("nodedns_cache_hits_total"), hits + 4);
  EXPECT_EQ(Metric("nodedns_upstream_queries_total"), upstream);
}

TEST_F(ServeIntegrationTest, ServesStaleWhenUpstreamIsDown) {
  StartBoth({"--stale-ttl", "60", "--upstream-timeout", "200", "--upstream-tries", "1"});
  ASSERT_FALSE(HasFatalFailure());
  const Bytes fresh = Wire({"www.example.test.", kTypeA, 0, false, 20});
  ASSERT_TRUE(UdpExchange(dns_port_, fresh).has_value());
  const Bytes query = Wire({"short.example.test.", kTypeA, 0, false, 21});
  auto warm = UdpExchange(dns_port_, query);
  ASSERT_TRUE(warm.has_value());
  ASSERT_EQ(AnswerAddresses(*warm), std::vector<std::string>{"192.0.2.6"});
  ASSERT_EQ(AllTtls(Parse(*warm).get()).at(0), 2u);
  StopKnot();
  std::this_thread::sleep_for(milliseconds(3000));  // past the TTL of 2 s
  auto stale = UdpExchange(dns_port_, query);
  ASSERT_TRUE(stale.has_value()) << "no reply while upstream is down";
  EXPECT_EQ(Rcode(*stale), kRcodeNoError);
  EXPECT_EQ(Id(*stale), 21);
  EXPECT_EQ(AnswerAddresses(*stale), std::vector<std::string>{"192.0.2.6"});
  // RFC 8767 §4: stale answers carry a TTL of 30 s.
  EXPECT_EQ(AllTtls(Parse(*stale).get()), std::vector<uint32_t>{30});
  EXPECT_GE(Metric("nodedns_stale_answers_total{reason=\"upstream_failed\"}"), 1);
  EXPECT_GE(Metric("nodedns_upstream_errors_total"), 1);
  // Over TCP as well.
  auto stale_tcp = TcpExchange(dns_port_, query);
  ASSERT_TRUE(stale_tcp.has_value());
  EXPECT_EQ(AnswerAddresses(*stale_tcp), std::vector<std::string>{"192.0.2.6"});
  EXPECT_EQ(AllTtls(Parse(*stale_tcp).get()), std::vector<uint32_t>{30});
  // Meanwhile a fresh entry (TTL 300) is served with its TTL counted down by the ~3 s waited.
  auto hit = UdpExchange(dns_port_, fresh);
  ASSERT_TRUE(hit.has_value());
  const auto ttls = AllTtls(Parse(*hit).get());
  ASSERT_EQ(ttls.size(), 1u);
  EXPECT_LE(ttls[0], 297u);
  EXPECT_GE(ttls[0], 280u);
}

TEST_F(ServeIntegrationTest, ReturnsServfailWhenUpstreamIsStoppedAndNothingIsCached) {
  StartBoth({"--upstream-timeout", "200", "--upstream-tries", "1"});
  ASSERT_FALSE(HasFatalFailure());
  StopKnot();
  for (bool tcp : {false, true}) {
    const Query q{"www.example.test.", kTypeA, 1232, false, uint16_t(tcp ? 32 : 31)};
    const auto start = Clock::now();
    auto r = tcp ? TcpExchange(dns_port_, Wire(q)) : UdpExchange(dns_port_, Wire(q));
    ASSERT_TRUE(r.has_value()) << Describe(q, tcp);
    EXPECT_LT(Clock::now() - start, milliseconds(3000)) << "failure not bounded by the flags";
    LdnsPkt p = Parse(*r);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(ldns_pkt_get_rcode(p.get()), kRcodeServFail) << Describe(q, tcp);
    EXPECT_EQ(ldns_pkt_id(p.get()), q.id);
    EXPECT_EQ(ldns_pkt_ancount(p.get()), 0);
    EXPECT_TRUE(HasOpt(p.get()));
  }
  EXPECT_GE(Metric("nodedns_upstream_errors_total"), 1);
  EXPECT_GE(Metric("nodedns_replies_total{rcode=\"SERVFAIL\"}"), 2);
}

TEST_F(ServeIntegrationTest, ReturnsServfailAfterTimeoutWhenUpstreamIsSilent) {
  StartKnot();
  ASSERT_FALSE(HasFatalFailure());
  Relay silent(knot_port_, milliseconds(0), Relay::Mode::kDrop);
  StartNodedns({"--upstream-timeout", "200", "--upstream-tries", "1"}, silent.port());
  ASSERT_FALSE(HasFatalFailure());
  const auto start = Clock::now();
  auto r = UdpExchange(dns_port_, Wire({"www.example.test.", kTypeA, 0, false, 41}));
  const auto took = Clock::now() - start;
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(Rcode(*r), kRcodeServFail);
  EXPECT_EQ(Id(*r), 41);
  EXPECT_GE(took, milliseconds(150)) << "answered before the upstream timeout";
  EXPECT_LT(took, milliseconds(2500)) << "failure not bounded by --upstream-timeout";
  EXPECT_EQ(silent.queries(), 1);
}

TEST_F(ServeIntegrationTest, CoalescesIdenticalConcurrentMisses) {
  StartKnot();
  ASSERT_FALSE(HasFatalFailure());
  // Knot answers at once; the relay holds each query 1.5 s so that all client queries arrive
  // while the first miss is still pending, even on a loaded machine.
  Relay relay(knot_port_, milliseconds(1500), Relay::Mode::kForward);
  StartNodedns({"--upstream-timeout", "3000"}, relay.port(), /*workers=*/1);
  ASSERT_FALSE(HasFatalFailure());
  constexpr int kClients = 20;
  // One socket per client, each query with its own ID, EDNS or not, and name case: one upstream
  // answer must be fitted to every waiter.
  std::vector<int> fds;
  std::vector<Query> queries;
  for (int i = 0; i < kClients; ++i) {
    Query q{i % 3 == 0 ? "CoAlEsCe.example.TEST." : "coalesce.example.test.", kTypeA,
            uint16_t(i % 2 ? 1232 : 0), false, uint16_t(500 + i)};
    queries.push_back(q);
    fds.push_back(UdpSocketTo(dns_port_));
  }
  for (int i = 0; i < kClients; ++i) {
    const Bytes w = Wire(queries[i]);
    ASSERT_EQ(send(fds[i], w.data(), w.size(), 0), static_cast<ssize_t>(w.size()));
  }
  for (int i = 0; i < kClients; ++i) {
    SCOPED_TRACE("client " + std::to_string(i));
    auto r = RecvDatagram(fds[i], 5000);
    close(fds[i]);
    ASSERT_TRUE(r.has_value());
    LdnsPkt p = Parse(*r);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(ldns_pkt_id(p.get()), queries[i].id);
    EXPECT_EQ(ldns_pkt_get_rcode(p.get()), kRcodeNoError);
    EXPECT_EQ(AnswerAddresses(*r), std::vector<std::string>{"192.0.2.7"});
    EXPECT_EQ(HasOpt(p.get()), queries[i].bufsize != 0);
    const Bytes w = Wire(queries[i]);
    const size_t qlen = WireName(queries[i].name).size();
    EXPECT_EQ(QuestionBytes(*r, qlen), QuestionBytes(w, qlen));
  }
  EXPECT_EQ(relay.queries(), 1);
  const std::string m = Metrics();
  EXPECT_EQ(MetricValue(m, "nodedns_upstream_queries_total"), 1);
  EXPECT_EQ(MetricValue(m, "nodedns_coalesced_queries_total"), kClients - 1);
  EXPECT_EQ(MetricValue(m, "nodedns_cache_misses_total"), kClients);
}

TEST_F(ServeIntegrationTest, DropsGarbageAndResponsesWithoutReplyingAndKeepsServing) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  const int fd = UdpSocketTo(dns_port_);
  const Bytes garbage = {0xde, 0xad, 0xbe, 0xef, 0x01};
  ASSERT_EQ(send(fd, garbage.data(), garbage.size(), 0), 5);
  EXPECT_FALSE(RecvDatagram(fd, 300).has_value()) << "a 5-byte datagram was answered";
  Bytes response = Wire({"www.example.test.", kTypeA, 0, false, 51});
  response[2] |= 0x80;  // QR=1: never answer a response (reflection loops)
  ASSERT_EQ(send(fd, response.data(), response.size(), 0), static_cast<ssize_t>(response.size()));
  EXPECT_FALSE(RecvDatagram(fd, 300).has_value()) << "a response (QR=1) was answered";
  close(fd);
  auto ok = UdpExchange(dns_port_, Wire({"www.example.test.", kTypeA, 0, false, 52}));
  ASSERT_TRUE(ok.has_value()) << "no longer serving after bad input";
  EXPECT_EQ(Id(*ok), 52);
  EXPECT_EQ(AnswerAddresses(*ok), std::vector<std::string>{"192.0.2.1"});
  EXPECT_GE(Metric("nodedns_dropped_queries_total"), 2);
}

TEST_F(ServeIntegrationTest, AnswersMalformedAndUnsupportedQueriesWithErrorRcodes) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  // Two questions (the same one twice): FORMERR.
  Bytes two = Wire({"www.example.test.", kTypeA, 0, false, 61});
  two.insert(two.end(), two.begin() + 12, two.end());
  two[5] = 2;
  auto r = UdpExchange(dns_port_, two);
  ASSERT_TRUE(r.has_value()) << "QDCOUNT=2 not answered";
  EXPECT_EQ(Rcode(*r), kRcodeFormErr);
  EXPECT_EQ(Id(*r), 61);
  EXPECT_TRUE((*r)[2] & 0x80) << "QR not set";
  // NOTIFY (4) and UPDATE (5): NOTIMP, opcode echoed.
  for (uint8_t opcode : {4, 5}) {
    SCOPED_TRACE("opcode " + std::to_string(opcode));
    Bytes q = Wire({"example.test.", 6, 0, false, uint16_t(70 + opcode)});
    q[2] = static_cast<uint8_t>((q[2] & 0x87) | opcode << 3);
    auto n = UdpExchange(dns_port_, q);
    ASSERT_TRUE(n.has_value());
    LdnsPkt p = Parse(*n);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(ldns_pkt_get_rcode(p.get()), kRcodeNotImp);
    EXPECT_EQ(ldns_pkt_id(p.get()), 70 + opcode);
    EXPECT_EQ(ldns_pkt_get_opcode(p.get()), opcode);
    EXPECT_TRUE(ldns_pkt_qr(p.get()));
  }
  // The same over TCP: the connection gets the error and stays usable.
  const int fd = TcpConnect(dns_port_);
  ASSERT_GE(fd, 0);
  Bytes frames = TcpFrame(two);
  const Bytes good = TcpFrame(Wire({"www.example.test.", kTypeA, 0, false, 62}));
  frames.insert(frames.end(), good.begin(), good.end());
  ASSERT_TRUE(SendAll(fd, frames));
  const auto deadline = Clock::now() + milliseconds(5000);
  auto first = RecvTcpMessage(fd, deadline);
  auto second = RecvTcpMessage(fd, deadline);
  close(fd);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(Id(*first), 61);
  EXPECT_EQ(Rcode(*first), kRcodeFormErr);
  EXPECT_EQ(Id(*second), 62);
  EXPECT_EQ(AnswerAddresses(*second), std::vector<std::string>{"192.0.2.1"});
  EXPECT_GE(Metric("nodedns_replies_total{rcode=\"FORMERR\"}"), 2);
  EXPECT_GE(Metric("nodedns_replies_total{rcode=\"NOTIMP\"}"), 2);
}

// A query as Wire builds it with its QCLASS replaced.
Bytes WithQclass(const Query& q, uint16_t qclass) {
  Bytes m = Wire(q);
  const size_t at = 12 + WireName(q.name).size() + 2;
  m[at] = static_cast<uint8_t>(qclass >> 8);
  m[at + 1] = static_cast<uint8_t>(qclass);
  return m;
}

// The reply to `query` over UDP or TCP (one connection per query).
std::optional<Bytes> Exchange(uint16_t port, const Bytes& query, bool tcp) {
  return tcp ? TcpExchange(port, query) : UdpExchange(port, query);
}

// EDNS compliance details (RFC 6891 §7): NOTIMP and FORMERR replies to queries with a valid OPT
// carry OPT, and NOTIMP echoes the question, without RA. Knot is the reference where it answers
// the same; none of these queries reaches the upstream.
TEST_F(ServeIntegrationTest, ErrorRepliesCarryOptAndQuestionLikeKnot) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  const Bytes cookie = {1, 2, 3, 4, 5, 6, 7, 8};
  // Opcode 3 (unassigned) with OPT: Knot answers NOTIMP with question and OPT. (NOTIFY and UPDATE
  // get NOTAUTH from Knot, an authoritative server; nodedns answers them NOTIMP as well.)
  Bytes opcode3 = Wire({"www.example.test.", kTypeA, 1232, true, 301});
  opcode3[2] = static_cast<uint8_t>((opcode3[2] & 0x87) | 3 << 3);
  Bytes notify = Wire({"example.test.", 6, 1232, false, 302});
  notify[2] = static_cast<uint8_t>(4 << 3);  // NOTIFY, RD clear, as a primary sends it
  // A cookie-only query (RFC 7873 §5.4): QDCOUNT 0 and an OPT with a COOKIE. Knot: FORMERR + OPT.
  Bytes cookie_only = Wire({"www.example.test.",
                            kTypeA,
                            1232,
                            false,
                            303,
                            false,
                            {{nodedns::testing::kOptionCookie, cookie}}});
  cookie_only.erase(cookie_only.begin() + 12, cookie_only.begin() + 12 + 18 + 4);
  cookie_only[5] = 0;
  // An EDNS option running past the OPT RDATA: Knot (and nodedns) answer FORMERR without OPT.
  Bytes overrun = Wire({"www.example.test.", kTypeA, 1232, false, 304});
  overrun.insert(overrun.end(), {0, 10, 0, 20, 1, 2, 3, 4});
  overrun[overrun.size() - 8 - 1] = 8;  // RDLENGTH 8, the option claims 20
  // Trailing bytes after the OPT record: FORMERR; nodedns keeps the OPT, which was valid (Knot
  // drops it).
  Bytes trailing = Wire({"www.example.test.", kTypeA, 1232, false, 305});
  trailing.insert(trailing.end(), {0, 0, 0});
  struct Case {
    std::string what;
    Bytes query;
    uint8_t rcode;
    bool opt, question, ra, like_knot;
  };
  const std::vector<Case> cases = {
      {"opcode 3", opcode3, kRcodeNotImp, true, true, false, true},
      {"NOTIFY", notify, kRcodeNotImp, true, true, false, false},
      {"cookie-only", cookie_only, kRcodeFormErr, true, false, true, true},
      {"option overrun", overrun, kRcodeFormErr, false, true, true, true},
      {"trailing bytes", trailing, kRcodeFormErr, true, true, true, false},
  };
  const double upstream_before = Metric("nodedns_upstream_queries_total");
  for (const Case& c : cases) {
    for (bool tcp : {false, true}) {
      SCOPED_TRACE(c.what + (tcp ? " tcp" : " udp"));
      auto r = Exchange(dns_port_, c.query, tcp);
      ASSERT_TRUE(r.has_value()) << "no reply";
      LdnsPkt p = Parse(*r);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(ldns_pkt_get_rcode(p.get()), c.rcode);
      EXPECT_EQ(ldns_pkt_id(p.get()), Id(c.query));
      EXPECT_EQ(ldns_pkt_get_opcode(p.get()), (c.query[2] >> 3) & 0xf);
      EXPECT_TRUE(ldns_pkt_qr(p.get()));
      EXPECT_EQ(ldns_pkt_ra(p.get()), c.ra);
      EXPECT_EQ(HasOpt(p.get()), c.opt);
      EXPECT_EQ(ldns_pkt_qdcount(p.get()), c.question ? 1 : 0);
      if (c.question) {
        const size_t qlen = c.what == "NOTIFY" ? WireName("example.test.").size()
                                               : WireName("www.example.test.").size();
        EXPECT_EQ(QuestionBytes(*r, qlen), QuestionBytes(c.query, qlen));
      }
      if (c.like_knot) {
        LdnsPkt k = Parse(KnotTcp(c.query));
        ASSERT_NE(k, nullptr);
        EXPECT_EQ(ldns_pkt_get_rcode(p.get()), ldns_pkt_get_rcode(k.get()));
        EXPECT_EQ(HasOpt(p.get()), HasOpt(k.get()));
        EXPECT_EQ(ldns_pkt_qdcount(p.get()), ldns_pkt_qdcount(k.get()));
      }
    }
  }
  EXPECT_EQ(Metric("nodedns_upstream_queries_total"), upstream_before);
  EXPECT_GE(Metric("nodedns_replies_total{rcode=\"NOTIMP\"}"), 4);
  EXPECT_GE(Metric("nodedns_replies_total{rcode=\"FORMERR\"}"), 6);
}

// CHAOS identity queries are answered with --chaos-text, every other CH query and every other
// non-IN class is REFUSED, and none of them is forwarded (they used to return Knot's identity).
TEST_F(ServeIntegrationTest, AnswersChaosLocallyAndNeverForwardsOtherClasses) {
  constexpr char kText[] = "nodedns on node-7";
  StartBoth({"--chaos-text", kText});
  ASSERT_FALSE(HasFatalFailure());
  constexpr uint16_t kClassCh = 3;
  uint16_t id = 400;
  for (const char* name : {"version.bind.", "version.server.", "id.server.", "HostName.Bind."}) {
    for (uint16_t bufsize : {0, 1232}) {
      for (bool tcp : {false, true}) {
        SCOPED_TRACE(std::string(name) + (tcp ? " tcp" : " udp") + " bufsize " +
                     std::to_string(bufsize));
        const Query q{name, kTypeTxt, bufsize, false, ++id};
        const Bytes query = WithQclass(q, kClassCh);
        auto r = Exchange(dns_port_, query, tcp);
        ASSERT_TRUE(r.has_value());
        LdnsPkt p = Parse(*r);
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(ldns_pkt_get_rcode(p.get()), kRcodeNoError);
        EXPECT_EQ(ldns_pkt_id(p.get()), id);
        EXPECT_TRUE(ldns_pkt_aa(p.get()));
        EXPECT_TRUE(ldns_pkt_ra(p.get()));
        EXPECT_EQ(HasOpt(p.get()), bufsize != 0);
        const size_t qlen = WireName(name).size();
        EXPECT_EQ(QuestionBytes(*r, qlen), QuestionBytes(query, qlen));
        ASSERT_EQ(ldns_pkt_ancount(p.get()), 1);
        const ldns_rr* rr = ldns_rr_list_rr(ldns_pkt_answer(p.get()), 0);
        EXPECT_EQ(ldns_rr_get_type(rr), kTypeTxt);
        EXPECT_EQ(ldns_rr_get_class(rr), LDNS_RR_CLASS_CH);
        EXPECT_EQ(ldns_rr_ttl(rr), 0u);
        char* text = ldns_rdf2str(ldns_rr_rdf(rr, 0));
        EXPECT_EQ(std::string(text), "\"" + std::string(kText) + "\"");
        free(text);
      }
    }
  }
  struct Refused {
    std::string name;
    uint16_t type, qclass;
  };
  const std::vector<Refused> refused = {
      {"authors.bind.", kTypeTxt, kClassCh}, {"version.bind.", kTypeA, kClassCh},
      {"version.bind.", 255, kClassCh},      {"www.example.test.", kTypeA, kClassCh},
      {"www.example.test.", kTypeA, 4},    // HS
      {"www.example.test.", kTypeA, 254},  // NONE
      {"www.example.test.", kTypeA, 255},  // ANY
      {"www.example.test.", kTypeA, 2},    // CSNET, unassigned since
  };
  for (const Refused& c : refused) {
    for (bool tcp : {false, true}) {
      SCOPED_TRACE(c.name + " type " + std::to_string(c.type) + " class " +
                   std::to_string(c.qclass) + (tcp ? " tcp" : " udp"));
      const Query q{c.name, c.type, 1232, false, ++id};
      auto r = Exchange(dns_port_, WithQclass(q, c.qclass), tcp);
      ASSERT_TRUE(r.has_value());
      LdnsPkt p = Parse(*r);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_REFUSED);
      EXPECT_EQ(ldns_pkt_qdcount(p.get()), 1);
      EXPECT_TRUE(HasOpt(p.get()));
      EXPECT_EQ(ldns_pkt_ancount(p.get()), 0);
    }
  }
  // A real client.
  const std::string out = Kdig("-c CH version.bind TXT");
  EXPECT_NE(out.find(std::string("\"") + kText + "\""), std::string::npos) << out;
  EXPECT_NE(out.find("NOERROR"), std::string::npos) << out;
  // Nothing went upstream, nothing was looked up in the cache.
  EXPECT_EQ(Metric("nodedns_upstream_queries_total"), 0);
  EXPECT_EQ(Metric("nodedns_cache_misses_total"), 0);
  EXPECT_EQ(Metric("nodedns_cache_hits_total"), 0);

  // Without --chaos-text, the identity names are REFUSED too.
  StopNodedns();
  StartNodedns();
  ASSERT_FALSE(HasFatalFailure());
  for (bool tcp : {false, true}) {
    auto r =
        Exchange(dns_port_, WithQclass({"version.bind.", kTypeTxt, 1232, false, 1}, kClassCh), tcp);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(Rcode(*r), LDNS_RCODE_REFUSED) << (tcp ? "tcp" : "udp");
  }
  EXPECT_EQ(Metric("nodedns_upstream_queries_total"), 0);
}

// IXFR and the meta QTYPEs (RFC 6895 §3.1: 128-254, and OPT) are answered NOTIMP here, never
// forwarded nor cached; ANY (255) is a data query and still goes upstream.
TEST_F(ServeIntegrationTest, AnswersMetaTypesLocallyWithNotImp) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  uint16_t id = 500;
  for (uint16_t type : {251, 252, 41, 249, 250, 253, 254, 128, 200}) {
    for (bool tcp : {false, true}) {
      for (int round = 0; round < 2; ++round) {  // the second one would be a cache hit
        SCOPED_TRACE("type " + std::to_string(type) + (tcp ? " tcp" : " udp"));
        const Query q{"example.test.", type, 1232, true, ++id};
        const Bytes query = Wire(q);
        auto r = Exchange(dns_port_, query, tcp);
        ASSERT_TRUE(r.has_value());
        LdnsPkt p = Parse(*r);
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(ldns_pkt_get_rcode(p.get()), kRcodeNotImp);
        EXPECT_EQ(ldns_pkt_id(p.get()), id);
        EXPECT_TRUE(ldns_pkt_ra(p.get()));
        EXPECT_FALSE(ldns_pkt_aa(p.get()));
        EXPECT_TRUE(HasOpt(p.get()));
        EXPECT_TRUE(ldns_pkt_edns_do(p.get()));
        const size_t qlen = WireName(q.name).size();
        EXPECT_EQ(QuestionBytes(*r, qlen), QuestionBytes(query, qlen));
        EXPECT_EQ(ldns_pkt_ancount(p.get()) + ldns_pkt_nscount(p.get()), 0u);
      }
    }
  }
  // kdig's zone transfers (over TCP) get the same.
  for (const char* args : {"example.test AXFR", "example.test IXFR=1"}) {
    const std::string out = Kdig(args);
    EXPECT_NE(out.find("NOTIMPL"), std::string::npos) << args << ":\n" << out;
  }
  EXPECT_EQ(Metric("nodedns_upstream_queries_total"), 0);
  EXPECT_EQ(Metric("nodedns_cache_misses_total"), 0);
  EXPECT_EQ(Metric("nodedns_cache_hits_total"), 0);
  // The control: ANY goes upstream as before.
  auto any = UdpExchange(dns_port_, Wire({"www.example.test.", 255, 1232, false, 600}));
  ASSERT_TRUE(any.has_value());
  EXPECT_EQ(Rcode(*any), kRcodeNoError);
  EXPECT_EQ(Metric("nodedns_upstream_queries_total"), 1);
}

TEST_F(ServeIntegrationTest, AnswersPipelinedTcpQueriesOnOneConnection) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  // Warm two of them so that hits and misses mix: hits come back before the misses.
  ASSERT_TRUE(UdpExchange(dns_port_, Wire({"www.example.test.", kTypeA, 1232, false, 1})));
  ASSERT_TRUE(UdpExchange(dns_port_, Wire({"nope.example.test.", kTypeA, 1232, false, 2})));
  const std::vector<Query> queries = {
      {"www.example.test.", kTypeA, 1232, false, 200},
      {"www.example.test.", kTypeAaaa, 1232, true, 201},
      {"a.example.test.", kTypeA, 0, false, 202},
      {"v4only.example.test.", kTypeAaaa, 4096, false, 203},
      {"nope.example.test.", kTypeA, 1232, false, 204},
      {"medium.example.test.", kTypeTxt, 0, false, 205},
      {"big.example.test.", kTypeTxt, 1232, true, 206},
      {"c.example.test.", kTypeA, 512, false, 207},
      {"MixedCase.Host.example.test.", kTypeA, 1232, false, 208},
      {"c.example.test.", kTypeA, 512, false, 209},  // a duplicate of 207 in flight
  };
  Bytes all;
  std::map<uint16_t, size_t> by_id;
  for (size_t i = 0; i < queries.size(); ++i) {
    const Bytes f = TcpFrame(Wire(queries[i]));
    all.insert(all.end(), f.begin(), f.end());
    by_id[queries[i].id] = i;
  }
  const int fd = TcpConnect(dns_port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, all)) << "one write of " << all.size() << " bytes";
  const auto deadline = Clock::now() + milliseconds(8000);
  std::set<uint16_t> seen;
  for (size_t i = 0; i < queries.size(); ++i) {
    auto r = RecvTcpMessage(fd, deadline);
    ASSERT_TRUE(r.has_value()) << "only " << i << " of " << queries.size() << " replies";
    auto it = by_id.find(Id(*r));
    ASSERT_NE(it, by_id.end()) << "reply with unknown ID " << Id(*r);
    EXPECT_TRUE(seen.insert(Id(*r)).second) << "two replies for ID " << Id(*r);
    const Query& q = queries[it->second];
    const Bytes query = Wire(q);
    ExpectMatchesKnot(q, true, query, *r, KnotTcp(query));
  }
  close(fd);
  EXPECT_EQ(seen.size(), queries.size());
}

TEST_F(ServeIntegrationTest, PausesAndResumesPipelinedTcpQueriesBeyondTheInflightLimit) {
  StartBoth({"--tcp-max-inflight", "4"});
  ASSERT_FALSE(HasFatalFailure());
  // 40 distinct misses in one write: at most 4 wait for upstream at a time, the rest stay
  // buffered until replies free slots. Every one must still be answered.
  constexpr int kQueries = 40;
  Bytes all;
  for (int i = 0; i < kQueries; ++i) {
    const Bytes f = TcpFrame(Wire({"n" + std::to_string(i) + ".example.test.", kTypeA,
                                   uint16_t(i % 2 ? 1232 : 0), false, uint16_t(3000 + i)}));
    all.insert(all.end(), f.begin(), f.end());
  }
  const int fd = TcpConnect(dns_port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, all));
  const auto deadline = Clock::now() + milliseconds(10000);
  std::set<uint16_t> seen;
  for (int i = 0; i < kQueries; ++i) {
    auto r = RecvTcpMessage(fd, deadline);
    ASSERT_TRUE(r.has_value()) << "only " << i << " of " << kQueries << " replies";
    EXPECT_EQ(Rcode(*r), kRcodeNxDomain);
    const uint16_t id = Id(*r);
    EXPECT_TRUE(id >= 3000 && id < 3000 + kQueries) << id;
    EXPECT_TRUE(seen.insert(id).second) << "two replies for ID " << id;
  }
  close(fd);
  EXPECT_EQ(seen.size(), size_t{kQueries});
}

TEST_F(ServeIntegrationTest, AnswersTcpQueriesInFlightAfterClientHalfCloses) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  // RFC 7766 §6.2.4: a client may send its queries and shut down its sending side; the replies
  // (here one miss, one hit after warming) must still arrive before the server closes.
  ASSERT_TRUE(UdpExchange(dns_port_, Wire({"www.example.test.", kTypeA, 0, false, 1})));
  Bytes frames = TcpFrame(Wire({"c.example.test.", kTypeA, 0, false, 81}));
  const Bytes hit = TcpFrame(Wire({"www.example.test.", kTypeA, 0, false, 82}));
  frames.insert(frames.end(), hit.begin(), hit.end());
  const int fd = TcpConnect(dns_port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, frames));
  ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
  const auto deadline = Clock::now() + milliseconds(5000);
  std::map<uint16_t, std::vector<std::string>> got;
  for (int i = 0; i < 2; ++i) {
    auto r = RecvTcpMessage(fd, deadline);
    ASSERT_TRUE(r.has_value()) << "reply " << i << " lost after half-close";
    got[Id(*r)] = AnswerAddresses(*r);
  }
  // Then the server closes: EOF, not a timeout.
  uint8_t byte;
  EXPECT_FALSE(RecvExact(fd, &byte, 1, Clock::now() + milliseconds(3000)));
  close(fd);
  EXPECT_EQ(got[81], std::vector<std::string>{"192.0.2.3"});
  EXPECT_EQ(got[82], std::vector<std::string>{"192.0.2.1"});
}

TEST_F(ServeIntegrationTest, AnswersUnknownEdnsVersionWithBadvers) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  Bytes q = Wire({"www.example.test.", kTypeA, 1232, true, 91});
  // The OPT record ends the message: owner(1) type(2) class(2) ext-rcode(1) version(1) ...
  q[q.size() - 11 + 6] = 1;
  auto r = UdpExchange(dns_port_, q);
  ASSERT_TRUE(r.has_value());
  LdnsPkt p = Parse(*r);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(ldns_pkt_id(p.get()), 91);
  // BADVERS (16): 0 in the header, 1 in the OPT record's extended rcode (RFC 6891 §6.1.3).
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), 0);
  EXPECT_TRUE(HasOpt(p.get()));
  EXPECT_EQ(ldns_pkt_edns_extended_rcode(p.get()), 1);
  EXPECT_EQ(ldns_pkt_edns_version(p.get()), 0);
  EXPECT_EQ(ldns_pkt_ancount(p.get()), 0);
}

TEST_F(ServeIntegrationTest, TreatsEdnsBufsizeBelow512As512) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  // RFC 6891 §6.2.5: sizes below 512 mean 512. The three-record TXT set (~400 bytes) fits.
  for (int round = 0; round < 2; ++round) {  // the miss, then the hit
    const Query q{"three.example.test.", kTypeTxt, 256, false, uint16_t(95 + round)};
    const Bytes query = Wire(q);
    const Bytes knot = KnotTcp(query);
    ASSERT_GT(knot.size(), 256u);
    ASSERT_LE(knot.size(), kPlainUdpMax);
    auto r = UdpExchange(dns_port_, query);
    ASSERT_TRUE(r.has_value());
    LdnsPkt p = Parse(*r);
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(ldns_pkt_tc(p.get())) << "round " << round;
    EXPECT_EQ(CountType(ldns_pkt_answer(p.get()), kTypeTxt), 3u) << "round " << round;
  }
}

TEST_F(ServeIntegrationTest, ReassemblesTcpQueriesSplitAcrossWritesAndClosesOnRuntFrames) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  // RFC 7766 §8: the length prefix and the message may arrive in any number of segments.
  const int fd = TcpConnect(dns_port_);
  ASSERT_GE(fd, 0);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const Bytes frame = TcpFrame(Wire({"www.example.test.", kTypeAaaa, 1232, false, 101}));
  for (uint8_t b : frame) {
    ASSERT_TRUE(SendAll(fd, Bytes{b}));
    std::this_thread::sleep_for(milliseconds(2));
  }
  auto r = RecvTcpMessage(fd, Clock::now() + milliseconds(5000));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(Id(*r), 101);
  EXPECT_EQ(AnswerAddresses(*r), std::vector<std::string>{"2001:db8::1"});
  // A frame too short for a DNS header: the stream cannot be trusted any more, the server
  // closes it (EOF rather than a reply or a hang).
  ASSERT_TRUE(SendAll(fd, Bytes{0, 5, 1, 2, 3, 4, 5}));
  uint8_t byte;
  EXPECT_FALSE(RecvExact(fd, &byte, 1, Clock::now() + milliseconds(3000)));
  close(fd);
  // And the server is fine.
  auto again = TcpExchange(dns_port_, Wire({"www.example.test.", kTypeA, 0, false, 102}));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(AnswerAddresses(*again), std::vector<std::string>{"192.0.2.1"});
}

TEST_F(ServeIntegrationTest, CopiesCdAndRdFromTheQuery) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  for (bool cd : {true, false, true}) {  // miss with CD, miss without, then a hit with CD
    Query q{"www.example.test.", kTypeA, 1232, true, uint16_t(cd ? 111 : 112)};
    q.cd = cd;
    auto r = UdpExchange(dns_port_, Wire(q));
    ASSERT_TRUE(r.has_value());
    LdnsPkt p = Parse(*r);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(ldns_pkt_cd(p.get()), cd);
    EXPECT_TRUE(ldns_pkt_rd(p.get()));
    EXPECT_EQ(AnswerAddresses(*r), std::vector<std::string>{"192.0.2.1"});
  }
}

TEST_F(ServeIntegrationTest, ClampsServedTtlsToMinAndMaxTtl) {
  StartBoth({"--min-ttl", "100", "--max-ttl", "200"});
  ASSERT_FALSE(HasFatalFailure());
  for (int round = 0; round < 2; ++round) {  // the miss, then the hit
    SCOPED_TRACE("round " + std::to_string(round));
    auto low = UdpExchange(dns_port_, Wire({"short.example.test.", kTypeA, 0, false, 121}));
    auto high = UdpExchange(dns_port_, Wire({"www.example.test.", kTypeA, 0, false, 122}));
    ASSERT_TRUE(low && high);
    const auto low_ttls = AllTtls(Parse(*low).get());
    const auto high_ttls = AllTtls(Parse(*high).get());
    ASSERT_EQ(low_ttls.size(), 1u);
    ASSERT_EQ(high_ttls.size(), 1u);
    // Zone TTL 2, raised to 100; zone TTL 300, lowered to 200 (minus at most a second of age).
    EXPECT_LE(low_ttls[0], 100u);
    EXPECT_GE(low_ttls[0], 98u);
    EXPECT_LE(high_ttls[0], 200u);
    EXPECT_GE(high_ttls[0], 198u);
  }
}

TEST_F(ServeIntegrationTest, ServesStaleWhenUpstreamAnswersServfailAndCachesTheServfail) {
  StartKnot();
  ASSERT_FALSE(HasFatalFailure());
  Relay relay(knot_port_, milliseconds(0), Relay::Mode::kForward);
  StartNodedns({"--stale-ttl", "60", "--servfail-ttl", "30"}, relay.port());
  ASSERT_FALSE(HasFatalFailure());
  const Bytes query = Wire({"short.example.test.", kTypeA, 1232, false, 131});
  auto warm = UdpExchange(dns_port_, query);
  ASSERT_TRUE(warm.has_value());
  ASSERT_EQ(AnswerAddresses(*warm), std::vector<std::string>{"192.0.2.6"});
  relay.set_mode(Relay::Mode::kServfail);
  std::this_thread::sleep_for(milliseconds(3000));  // past the TTL of 2 s
  // RFC 8767: a SERVFAIL from upstream is a failure too; the expired answer is better.
  auto stale = UdpExchange(dns_port_, query);
  ASSERT_TRUE(stale.has_value());
  EXPECT_EQ(Rcode(*stale), kRcodeNoError);
  EXPECT_EQ(AnswerAddresses(*stale), std::vector<std::string>{"192.0.2.6"});
  EXPECT_EQ(AllTtls(Parse(*stale).get()), std::vector<uint32_t>{30});
  EXPECT_GE(Metric("nodedns_stale_answers_total{reason=\"upstream_failed\"}"), 1);
  // With nothing cached the SERVFAIL is passed on, and cached for --servfail-ttl (RFC 2308 §7.1):
  // the second query does not reach upstream.
  const Bytes uncached = Wire({"www.example.test.", kTypeA, 0, false, 132});
  auto first = UdpExchange(dns_port_, uncached);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(Rcode(*first), kRcodeServFail);
  const int upstream_seen = relay.queries();
  auto second = UdpExchange(dns_port_, uncached);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(Rcode(*second), kRcodeServFail);
  EXPECT_EQ(Id(*second), 132);
  EXPECT_EQ(relay.queries(), upstream_seen) << "cached SERVFAIL not used";
}

TEST_F(ServeIntegrationTest, AnswersAgainOnceUpstreamIsBack) {
  StartBoth({"--servfail-ttl", "0", "--upstream-timeout", "200", "--upstream-tries", "1"});
  ASSERT_FALSE(HasFatalFailure());
  StopKnot();
  const Bytes query = Wire({"www.example.test.", kTypeA, 0, false, 141});
  auto down = UdpExchange(dns_port_, query);
  ASSERT_TRUE(down.has_value());
  EXPECT_EQ(Rcode(*down), kRcodeServFail);
  StartKnot();  // same port
  ASSERT_FALSE(HasFatalFailure());
  auto up = UdpExchange(dns_port_, query);
  ASSERT_TRUE(up.has_value());
  EXPECT_EQ(Rcode(*up), kRcodeNoError);
  EXPECT_EQ(AnswerAddresses(*up), std::vector<std::string>{"192.0.2.1"});
}

TEST_F(ServeIntegrationTest, SetsAdOnlyForClientsThatAskForIt) {
  StartKnot();
  ASSERT_FALSE(HasFatalFailure());
  Relay relay(knot_port_, milliseconds(0), Relay::Mode::kForwardWithAd);
  StartNodedns({}, relay.port());
  ASSERT_FALSE(HasFatalFailure());
  // RFC 6840 §5.8: AD goes to clients that set DO or AD; the cached upstream answer has it set.
  struct Case {
    bool do_bit, ad_bit, want_ad;
  };
  for (const Case& c : {Case{false, false, false}, Case{false, true, true}, Case{true, false, true},
                        Case{false, false, false}}) {
    SCOPED_TRACE(std::string("DO=") + (c.do_bit ? "1" : "0") + " AD=" + (c.ad_bit ? "1" : "0"));
    Bytes q = Wire({"www.example.test.", kTypeA, 1232, c.do_bit, 151});
    if (c.ad_bit) q[3] |= 0x20;
    auto r = UdpExchange(dns_port_, q);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(Rcode(*r), kRcodeNoError);
    EXPECT_EQ(((*r)[3] & 0x20) != 0, c.want_ad);
  }
}

// Every metric named in the table of docs/operations.md ("| `nodedns_...` | labels | meaning |";
// "`_suffix`" shorthands extend the row's first name's prefix).
std::vector<std::string> DocumentedMetrics() {
  std::ifstream in(NODEDNS_SOURCE_DIR "/docs/operations.md");
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("| `nodedns_", 0) != 0) continue;
    const std::string cell = line.substr(0, line.find('|', 1));
    std::string first;
    for (size_t a = cell.find('`'); a != std::string::npos; a = cell.find('`', a + 1)) {
      const size_t b = cell.find('`', a + 1);
      if (b == std::string::npos) break;
      std::string name = cell.substr(a + 1, b - a - 1);
      a = b;
      if (name.rfind("nodedns_", 0) == 0) {
        if (first.empty()) first = name;
      } else if (!name.empty() && name[0] == '_' && !first.empty()) {
        // "_clients_unlearned_total" after "nodedns_search_rewrite_clients_learned_total".
        const size_t at = first.find(name.substr(0, name.find('_', 1) + 1));
        if (at == std::string::npos) continue;
        name = first.substr(0, at) + name;
      } else {
        continue;
      }
      names.push_back(name);
    }
  }
  return names;
}

TEST_F(ServeIntegrationTest, HealthEndpointServesHealthAndEveryDocumentedMetric) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  // While serving: GET /health is 200 "OK" (as CoreDNS answers) (HttpGet returns the body of a 200
  // only).
  for (bool tcp : {false, true}) {
    const Bytes q = Wire({"www.example.test.", kTypeA, 0, false, 1});
    ASSERT_TRUE(tcp ? TcpExchange(dns_port_, q) : UdpExchange(dns_port_, q));
    EXPECT_EQ(HttpGet(health_port_, "/health"), std::optional<std::string>("OK\n"));
  }
  EXPECT_EQ(HttpGet(health_port_, "/no-such-page"), std::nullopt) << "a 200 for an unknown path";
  // /metrics: every documented metric, as a sample or at least its TYPE line.
  const std::vector<std::string> documented = DocumentedMetrics();
  ASSERT_GE(documented.size(), 30u) << "the table in docs/operations.md was not found";
  const std::string m = Metrics();
  for (const std::string& name : documented) {
    const bool present = m.find("\n" + name + " ") != std::string::npos ||
                         m.find("\n" + name + "{") != std::string::npos ||
                         m.find("# TYPE " + name + " ") != std::string::npos;
    EXPECT_TRUE(present) << name << " is documented but not served:\n" << m;
  }
  // And the values add up: one query per transport, one miss, one hit, two workers.
  EXPECT_EQ(MetricValue(m, "nodedns_queries_total{transport=\"udp\"}"), 1);
  EXPECT_EQ(MetricValue(m, "nodedns_queries_total{transport=\"tcp\"}"), 1);
  EXPECT_EQ(MetricValue(m, "nodedns_cache_misses_total"), 1);
  EXPECT_EQ(MetricValue(m, "nodedns_cache_hits_total"), 1);
  EXPECT_EQ(MetricValue(m, "nodedns_upstream_queries_total"), 1);
  EXPECT_EQ(MetricValue(m, "nodedns_replies_total{rcode=\"NOERROR\"}"), 2);
  EXPECT_EQ(MetricValue(m, "nodedns_tcp_connections_total"), 1);
  EXPECT_EQ(MetricValue(m, "nodedns_workers"), 2);
  EXPECT_GE(MetricValue(m, "nodedns_cache_entries"), 1);
}

// Issue 3: EDNS options in queries (COOKIE, which dig and kdig send, padding, ECS) must neither
// split the cache (PowerDNS/pdns#5131) nor be echoed. Each name is asked first with options (a
// miss), then without (must be a hit), then with them again over TCP (a hit); every reply is
// Knot's answer with an OPT record that carries no option.
TEST_F(ServeIntegrationTest, EdnsOptionsNeitherSplitTheCacheNorAreEchoed) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  using namespace nodedns::testing;                                  // option codes
  const EdnsOption cookie{kOptionCookie, {1, 2, 3, 4, 5, 6, 7, 8}};  // an 8-byte client cookie
  // Family 1 (IPv4), source prefix 24, scope 0, address 192.0.2 (RFC 7871 §6).
  const EdnsOption ecs{kOptionClientSubnet, {0, 1, 24, 0, 192, 0, 2}};
  const EdnsOption padding{kOptionPadding, Bytes(100, 0)};
  struct Case {
    std::string name;
    uint16_t type;
    std::vector<EdnsOption> options;
  };
  const std::vector<Case> cases = {
      {"www.example.test.", kTypeA, {cookie}},
      {"www.example.test.", kTypeAaaa, {ecs}},
      {"c.example.test.", kTypeA, {padding}},
      {"nope.example.test.", kTypeA, {cookie, ecs, padding}},
  };
  uint16_t id = 4000;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name + " type " + std::to_string(c.type) + ", " +
                 std::to_string(c.options.size()) + " options");
    const Query with{c.name, c.type, 1232, false, ++id, false, c.options};
    const Query without{c.name, c.type, 1232, false, ++id};
    const Query with_tcp{c.name, c.type, 1232, false, ++id, false, c.options};
    const double upstream = Metric("nodedns_upstream_queries_total");
    double hits = Metric("nodedns_cache_hits_total");
    // The miss.
    const Bytes first_query = Wire(with);
    ASSERT_EQ(EdnsOptions(first_query), c.options) << "test builder lost the options";
    auto first = UdpExchange(dns_port_, first_query);
    ASSERT_TRUE(first.has_value());
    ExpectMatchesKnot(with, false, first_query, *first, KnotTcp(Wire(without)));
    EXPECT_EQ(EdnsOptions(*first), std::vector<EdnsOption>{}) << "options echoed on a miss";
    EXPECT_EQ(Metric("nodedns_upstream_queries_total"), upstream + 1);
    EXPECT_EQ(Metric("nodedns_cache_hits_total"), hits);
    // Without options: the same cache entry.
    const Bytes second_query = Wire(without);
    auto second = UdpExchange(dns_port_, second_query);
    ASSERT_TRUE(second.has_value());
    ExpectMatchesKnot(without, false, second_query, *second, KnotTcp(second_query));
    EXPECT_EQ(Metric("nodedns_cache_hits_total"), ++hits) << "options split the cache";
    // With options again, over TCP: a hit, nothing echoed.
    const Bytes third_query = Wire(with_tcp);
    auto third = TcpExchange(dns_port_, third_query);
    ASSERT_TRUE(third.has_value());
    ExpectMatchesKnot(with_tcp, true, third_query, *third, KnotTcp(second_query));
    EXPECT_EQ(EdnsOptions(*third), std::vector<EdnsOption>{}) << "options echoed on a hit";
    EXPECT_EQ(Metric("nodedns_cache_hits_total"), ++hits) << "options split the cache";
    EXPECT_EQ(Metric("nodedns_upstream_queries_total"), upstream + 1);
  }
}

// The same with a real client: kdig's +cookie, +padding and +subnet each get the right answer, and
// no option comes back (kdig prints a returned COOKIE/PADDING/SUBNET in its OPT pseudosection).
TEST_F(ServeIntegrationTest, KdigWithCookiePaddingAndSubnetGetsCorrectAnswers) {
  StartBoth();
  ASSERT_FALSE(HasFatalFailure());
  std::string out = Kdig("+nocookie www.example.test A");  // fills the cache
  ASSERT_NE(out.find("status: NOERROR"), std::string::npos) << out;
  const double upstream = Metric("nodedns_upstream_queries_total");
  const double hits = Metric("nodedns_cache_hits_total");
  const std::vector<std::string> flags = {"+cookie", "+padding", "+subnet=192.0.2.0/24",
                                          "+cookie +padding=64 +subnet=2001:db8::/56"};
  for (const std::string& f : flags) {
    for (const char* transport : {"", "+tcp "}) {
      out = Kdig(transport + f + " www.example.test A");
      SCOPED_TRACE(transport + f);
      EXPECT_NE(out.find("status: NOERROR"), std::string::npos) << out;
      EXPECT_NE(out.find("\tA\t192.0.2.1"), std::string::npos) << out;
      EXPECT_NE(out.find("EDNS PSEUDOSECTION"), std::string::npos) << out;
      for (const char* option : {"COOKIE", "PADDING", "CLIENT-SUBNET"}) {
        EXPECT_EQ(out.find(option), std::string::npos) << option << " echoed:\n" << out;
      }
    }
  }
  EXPECT_EQ(Metric("nodedns_cache_hits_total"), hits + 2 * flags.size());
  EXPECT_EQ(Metric("nodedns_upstream_queries_total"), upstream);
}

}  // namespace
}  // namespace nodedns::integration

namespace nodedns::integration {
namespace {

// The live half of `nodedns audit`: NXDOMAINs below the cluster domain are counted per client and
// per typed name, and `nodedns audit --live` prints them from the running proxy.
TEST_F(ServeIntegrationTest, LiveAuditShowsWhichClientsWasteSearchQueries) {
  StartKnot();
  if (HasFatalFailure() || IsSkipped()) return;
  // One worker: each worker attributes `api.corp.svc.<zone>` (typed "api.corp" from namespace
  // default, or "api" from namespace corp) by what it saw itself, and SO_REUSEPORT spreads one
  // client's queries over the workers by source port, so with two the split varied from run to run.
  // Every query counted (--audit-query-sample 1), so that the client's total is exact.
  StartNodedns(
      {"--cluster-domain", "example.test", "--search-rewrite", "off", "--audit-query-sample", "1"},
      {}, 1);
  if (HasFatalFailure()) return;
  const std::string health = "127.0.0.1:" + std::to_string(health_port_);
  const std::string live = std::string(NODEDNS_BINARY) + " audit --live " + health;
  // Nothing wasted yet: no finding, exit 0 even with --fail-on info.
  const std::string clean = RunCommand(live + " --fail-on info; echo exit=$?");
  EXPECT_EQ(clean, "== no wasted queries seen by nodedns at " + health +
                       " (NXDOMAIN below example.test)\nexit=0\n");
  uint16_t id = 100;
  // A pod in namespace "default" resolving api.corp walks its search list: 3 NXDOMAINs ...
  for (const char* name : {"api.corp.default.svc.example.test.", "api.corp.svc.example.test."}) {
    for (uint16_t type : {kTypeA, kTypeAaaa}) {
      auto r = UdpExchange(dns_port_, Wire({name, type, 0, false, id++}));
      ASSERT_TRUE(r.has_value());
      EXPECT_EQ(ldns_pkt_get_rcode(Parse(*r).get()), LDNS_RCODE_NXDOMAIN) << name;
    }
  }
  // ... and the second walk is served from the negative cache, which still wastes a round trip.
  ASSERT_TRUE(
      UdpExchange(dns_port_, Wire({"api.corp.default.svc.example.test.", kTypeA, 0, false, id++})));
  // Existing names cost nothing, but are below the cluster domain: expansion queries (UDP and
  // TCP). The zone's apex is not below it.
  ASSERT_TRUE(UdpExchange(dns_port_, Wire({"www.example.test.", kTypeA, 0, false, id++})));
  ASSERT_TRUE(TcpExchange(dns_port_, Wire({"www.example.test.", kTypeAaaa, 0, false, id++})));
  ASSERT_TRUE(UdpExchange(dns_port_, Wire({"example.test.", kTypeA, 0, false, id++})));
  EXPECT_EQ(Metric("nodedns_search_expansion_nxdomain_total"), 5);
  EXPECT_EQ(Metric("nodedns_search_expansion_queries_total"), 7);
  // Workers publish every second: poll (bounded) until this client's waste shows, rather than
  // sleep a fixed 1.3 s that a loaded machine can overrun.
  std::optional<std::string> json;
  for (const auto until = Clock::now() + milliseconds(15000); Clock::now() < until;) {
    json = HttpGet(health_port_, "/audit");
    if (json && json->find("\"wasted\":5") != std::string::npos) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_TRUE(json.has_value());
  EXPECT_NE(json->find("\"client\":\"127.0.0.1\",\"wasted\":5"), std::string::npos) << *json;
  EXPECT_NE(json->find("{\"name\":\"api.corp\",\"wasted\":5}"), std::string::npos) << *json;
  EXPECT_EQ(json->find("www"), std::string::npos) << *json;
  // All 8 queries of the client, waste or not, UDP and TCP.
  EXPECT_NE(json->find("\"query_sample\":1,\"queries\":[{\"client\":\"127.0.0.1\",\"queries\":8,"
                       "\"error\":0}]"),
            std::string::npos)
      << *json;
  // `nodedns audit --live` renders GET /audit with the offline renderers: the table has an entry
  // per client with a search-path-waste warning and one row per name ...
  const std::string table = RunCommand(live + "; echo exit=$?");
  for (const std::string& line :
       {"== 127.0.0.1 (client seen by nodedns at " + health + ", zone example.test)\n",
        std::string("\n  queries:     8 seen; 62% of them wasted\n"),
        std::string("\n  wasted:      5 NXDOMAIN replies below example.test\n  findings:\n"),
        std::string("\n    WARNING search-path-waste: 5 replies to this client were NXDOMAIN"),
        std::string("\n            fix: fully qualify these names"),
        std::string("\n          1. api.corp                                           5       "
                    "nxdomain\n"),
        std::string("\nexit=1\n")}) {
    EXPECT_NE(table.find(line), std::string::npos) << "no '" << line << "' in:\n" << table;
  }
  // ... waste is a warning, so --fail-on decides the exit code ...
  EXPECT_EQ(RunCommand(live + " --fail-on error >/dev/null; echo exit=$?"), "exit=0\n");
  EXPECT_EQ(RunCommand(live + " --fail-on info >/dev/null; echo exit=$?"), "exit=1\n");
  // ... and the JSON is the offline schema (version 1) with its "live" extension.
  const std::string report = RunCommand(live + " --format json; echo exit=$?");
  for (const std::string& part :
       {"{\"version\":1,\"files\":[{\"path\":\"127.0.0.1\",\"outcome_source\":\"live " + health +
            "\",\"config\":{",
        std::string("\"findings\":[{\"id\":\"search-path-waste\",\"severity\":\"warning\""),
        "\"live\":{\"server\":\"" + health +
            "\",\"cluster_domain\":\"example.test\",\"wasted\":5,\"error\":0,\"names\":[{"
            "\"name\":\"api.corp\",\"wasted\":5}],\"queries\":8,\"queries_error\":0,"
            "\"query_sample\":1}}",
        std::string("\"worst_severity\":\"warning\"}\nexit=1\n")}) {
    EXPECT_NE(report.find(part), std::string::npos) << "no '" << part << "' in:\n" << report;
  }
  EXPECT_EQ(RunCommand(live + " --format json --fail-on error >/dev/null; echo exit=$?"),
            "exit=0\n");
  const std::string refused =
      RunCommand(std::string(NODEDNS_BINARY) + " audit --live 127.0.0.1:1; echo exit=$?");
  EXPECT_NE(refused.find("exit=2"), std::string::npos) << refused;
  StopNodedns();
}

// ---------------------------------------------------------------------------------------------
// Search-path rewriting (docs/search-rewrite.md), with cluster domain cluster.example.test so that
// names outside it (www.example.test) exist on the same Knot. Clients are 127.0.0.1.

constexpr char kClusterFlag[] = "cluster.example.test";
constexpr char kExpansion[] = "www.example.test.default.svc.cluster.example.test.";

// Answer records as "type target-or-address" (lowercase), in order.
std::vector<std::string> AnswerSummary(const Bytes& reply) {
  std::vector<std::string> out;
  LdnsPkt p = Parse(reply);
  if (!p) return out;
  const ldns_rr_list* an = ldns_pkt_answer(p.get());
  for (size_t i = 0; i < ldns_rr_list_rr_count(an); ++i) {
    ldns_rr* rr = ldns_rr_clone(ldns_rr_list_rr(an, i));
    ldns_rr2canonical(rr);
    char* type = ldns_rr_type2str(ldns_rr_get_type(rr));
    char* data = ldns_rdf2str(ldns_rr_rdf(rr, 0));
    out.push_back(std::string(type) + " " + data);
    free(type);
    free(data);
    ldns_rr_free(rr);
  }
  return out;
}

TEST_F(ServeIntegrationTest, RewritesFirstSearchStepOfPinnedClientToFirstExistingCandidate) {
  StartBoth({"--cluster-domain", kClusterFlag, "--node-search", "none", "--search-path",
             "127.0.0.0/8=default"});
  if (HasFatalFailure() || IsSkipped()) return;
  // An external name typed without its trailing dot: the first search step is answered with a
  // CNAME to the absolute name (the last candidate) and its addresses, in the client's case.
  const std::string mixed = "WWW.Example.test.default.svc.cluster.example.test.";
  auto a = UdpExchange(dns_port_, Wire({mixed, kTypeA, 1232, false, 301}));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(Id(*a), 301);
  EXPECT_EQ(Rcode(*a), LDNS_RCODE_NOERROR);
  EXPECT_EQ(AnswerSummary(*a),
            (std::vector<std::string>{"CNAME www.example.test.", "A 192.0.2.1"}));
  LdnsPkt pa = Parse(*a);
  ASSERT_TRUE(pa);
  char* qname = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(pa.get()), 0)));
  EXPECT_EQ(std::string(qname), mixed) << "the question must echo the client's case";
  free(qname);
  EXPECT_FALSE(ldns_pkt_ad(pa.get())) << "the CNAME is ours and unsigned";
  auto aaaa = UdpExchange(dns_port_, Wire({kExpansion, kTypeAaaa, 0, false, 302}));
  ASSERT_TRUE(aaaa.has_value());
  EXPECT_EQ(AnswerSummary(*aaaa),
            (std::vector<std::string>{"CNAME www.example.test.", "AAAA 2001:db8::1"}));
  // Candidates in search order: www.example.test.svc.<zone>, www.example.test.<zone>, then
  // www.example.test. — the winner is the third, so each reply saves the client 3 queries.
  EXPECT_EQ(Metric("nodedns_search_rewrite_lookups_total"), 2);
  EXPECT_EQ(Metric("nodedns_search_rewrite_queries_avoided_total"), 6);
  // The second time it is a cache hit: same answer, nothing sent upstream.
  const double upstream = Metric("nodedns_upstream_queries_total");
  auto again = UdpExchange(dns_port_, Wire({kExpansion, kTypeA, 0, false, 303}));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(AnswerSummary(*again),
            (std::vector<std::string>{"CNAME www.example.test.", "A 192.0.2.1"}));
  EXPECT_EQ(Metric("nodedns_upstream_queries_total"), upstream);
  EXPECT_EQ(Metric("nodedns_search_rewrite_lookups_total"), 3);
  EXPECT_EQ(Metric("nodedns_search_rewrite_queries_avoided_total"), 9);
  // The first candidate wins when it exists: only.svc.<zone>. Candidates outside the cluster
  // zone (here only.) are not even asked: 3 upstream queries, the question and the two
  // candidates inside the zone.
  const double before_only = Metric("nodedns_upstream_queries_total");
  auto only = UdpExchange(dns_port_,
                          Wire({"only.default.svc.cluster.example.test.", kTypeA, 0, false, 304}));
  ASSERT_TRUE(only.has_value());
  EXPECT_EQ(AnswerSummary(*only),
            (std::vector<std::string>{"CNAME only.svc.cluster.example.test.", "A 10.96.2.1"}));
  EXPECT_EQ(Metric("nodedns_upstream_queries_total") - before_only, 3);
  // Over TCP as well.
  auto tcp = TcpExchange(
      dns_port_, Wire({"c.example.test.default.svc.cluster.example.test.", kTypeA, 0, false, 305}));
  ASSERT_TRUE(tcp.has_value());
  EXPECT_EQ(AnswerSummary(*tcp),
            (std::vector<std::string>{"CNAME c.example.test.", "A 192.0.2.3"}));
  StopNodedns();
}

TEST_F(ServeIntegrationTest, RewriteKeepsNodataAndNeverTouchesNamesThatExistOrDnssecQueries) {
  StartBoth({"--cluster-domain", kClusterFlag, "--node-search", "none", "--search-path",
             "127.0.0.1=default"});
  if (HasFatalFailure() || IsSkipped()) return;
  // NODATA wins (musl and CoreDNS autopath stop there): NOERROR, the CNAME, no AAAA, the SOA.
  auto nodata = UdpExchange(dns_port_, Wire({"v4only.example.test.default.svc.cluster.example."
                                             "test.",
                                             kTypeAaaa, 0, false, 311}));
  ASSERT_TRUE(nodata.has_value());
  EXPECT_EQ(Rcode(*nodata), LDNS_RCODE_NOERROR);
  EXPECT_EQ(AnswerSummary(*nodata), (std::vector<std::string>{"CNAME v4only.example.test."}));
  LdnsPkt pn = Parse(*nodata);
  ASSERT_TRUE(pn);
  EXPECT_EQ(CountType(ldns_pkt_authority(pn.get()), LDNS_RR_TYPE_SOA), 1u);
  // A name that exists is answered as upstream answers it.
  auto svc = UdpExchange(
      dns_port_, Wire({"kubernetes.default.svc.cluster.example.test.", kTypeA, 0, false, 312}));
  ASSERT_TRUE(svc.has_value());
  EXPECT_EQ(AnswerSummary(*svc), (std::vector<std::string>{"A 10.96.0.1"}));
  // Every candidate NXDOMAIN: the client gets NXDOMAIN and walks on.
  auto none = UdpExchange(dns_port_, Wire({"nothere.example.test.default.svc.cluster.example."
                                           "test.",
                                           kTypeA, 0, false, 313}));
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(Rcode(*none), LDNS_RCODE_NXDOMAIN);
  EXPECT_EQ(Metric("nodedns_search_rewrite_declined_total{reason=\"nxdomain\"}"), 1);
  // DO (and CD) queries get the upstream's NXDOMAIN: a validator cannot use an unsigned CNAME.
  auto dnssec = UdpExchange(dns_port_, Wire({kExpansion, kTypeA, 1232, true, 314}));
  ASSERT_TRUE(dnssec.has_value());
  EXPECT_EQ(Rcode(*dnssec), LDNS_RCODE_NXDOMAIN);
  Query cd{kExpansion, kTypeA, 1232, false, 315};
  cd.cd = true;
  auto checking_disabled = UdpExchange(dns_port_, Wire(cd));
  ASSERT_TRUE(checking_disabled.has_value());
  EXPECT_EQ(Rcode(*checking_disabled), LDNS_RCODE_NXDOMAIN);
  // Another namespace's expansion is not this client's search step: answered literally.
  auto other = UdpExchange(dns_port_, Wire({"www.example.test.otherns.svc.cluster.example.test.",
                                            kTypeA, 0, false, 316}));
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(Rcode(*other), LDNS_RCODE_NXDOMAIN);
  EXPECT_TRUE(AnswerSummary(*other).empty());
  // Of all these, only the NODATA reply was rewritten.
  EXPECT_EQ(Metric("nodedns_search_rewrite_lookups_total"), 1);
  StopNodedns();
}

TEST_F(ServeIntegrationTest, LearnsClientNamespaceFromOneSearchStepThenRewrites) {
  StartBoth({"--cluster-domain", kClusterFlag, "--node-search", "none"});
  if (HasFatalFailure() || IsSkipped()) return;
  // Not learned yet: the expansion is answered literally.
  auto before = UdpExchange(dns_port_, Wire({kExpansion, kTypeA, 0, false, 321}));
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(Rcode(*before), LDNS_RCODE_NXDOMAIN);
  EXPECT_EQ(Metric("nodedns_search_rewrite_learned_clients"), 0);
  // One step of a pod's walk, from new source ports as glibc and musl send it: NXDOMAIN for
  // N.default.svc.<zone>, then N.svc.<zone>.
  for (const char* name :
       {"learn.default.svc.cluster.example.test.", "learn.svc.cluster.example.test."}) {
    auto r = UdpExchange(dns_port_, Wire({name, kTypeA, 0, false, 322}));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(Rcode(*r), LDNS_RCODE_NXDOMAIN) << name;
  }
  EXPECT_EQ(Metric("nodedns_search_rewrite_clients_learned_total"), 1);
  EXPECT_EQ(Metric("nodedns_search_rewrite_learned_clients"), 1);
  auto after = UdpExchange(dns_port_, Wire({kExpansion, kTypeA, 0, false, 323}));
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(AnswerSummary(*after),
            (std::vector<std::string>{"CNAME www.example.test.", "A 192.0.2.1"}));
  StopNodedns();
}

TEST_F(ServeIntegrationTest, SearchRewriteOffAnswersExpansionsLiterally) {
  StartBoth({"--cluster-domain", kClusterFlag, "--node-search", "none", "--search-path",
             "127.0.0.1=default", "--search-rewrite", "off"});
  if (HasFatalFailure() || IsSkipped()) return;
  auto r = UdpExchange(dns_port_, Wire({kExpansion, kTypeA, 0, false, 331}));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(Rcode(*r), LDNS_RCODE_NXDOMAIN);
  EXPECT_EQ(Metric("nodedns_search_rewrite_lookups_total"), 0);
  StopNodedns();
}

TEST_F(ServeIntegrationTest, RewriteGivesUpOnFailedOrSilentCandidateAndAnswersNxdomain) {
  StartKnot();
  if (HasFatalFailure() || IsSkipped()) return;
  Relay relay(knot_port_, milliseconds(0), Relay::Mode::kForward);
  // Upstream timeout above the rewrite deadline (1.5 s), so that the deadline decides.
  StartNodedns({"--cluster-domain", kClusterFlag, "--node-search", "none", "--upstream-timeout",
                "4000", "--upstream-tries", "1"},
               relay.port());
  if (HasFatalFailure()) return;
  // Not learned: the NXDOMAINs for two expansions are cached. Then learn (no pin: the
  // expansions must be cache hits when their rewrites start, with the candidates not cached).
  const char* kSecond = "c.example.test.default.svc.cluster.example.test.";
  for (const char* name : {kExpansion, kSecond, "learn.default.svc.cluster.example.test.",
                           "learn.svc.cluster.example.test."}) {
    auto r = UdpExchange(dns_port_, Wire({name, kTypeA, 0, false, 341}));
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(Rcode(*r), LDNS_RCODE_NXDOMAIN) << name;
  }
  ASSERT_EQ(Metric("nodedns_search_rewrite_learned_clients"), 1);
  // A candidate SERVFAILs: no rewrite, the client gets its NXDOMAIN and walks on by itself.
  relay.set_mode(Relay::Mode::kServfail);
  auto failed = UdpExchange(dns_port_, Wire({kExpansion, kTypeA, 0, false, 342}));
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(Rcode(*failed), LDNS_RCODE_NXDOMAIN);
  EXPECT_EQ(Metric("nodedns_search_rewrite_declined_total{reason=\"failed\"}"), 1);
  // Candidates unanswered: the rewrite's deadline (1.5 s) ends the wait before the upstream
  // timeout (4 s) and before the client would retry; the client gets its NXDOMAIN.
  relay.set_mode(Relay::Mode::kDrop);
  auto silent = UdpExchange(dns_port_, Wire({kSecond, kTypeA, 0, false, 343}), 3500);
  ASSERT_TRUE(silent.has_value()) << "no reply within 3.5 s";
  EXPECT_EQ(Rcode(*silent), LDNS_RCODE_NXDOMAIN);
  EXPECT_EQ(Metric("nodedns_search_rewrite_deadline_total"), 1);
  EXPECT_EQ(Metric("nodedns_search_rewrite_declined_total{reason=\"failed\"}"), 2);
  StopNodedns();
}

// Every candidate NXDOMAIN: the client gets its NXDOMAIN and walks on, and each of its next
// search steps (A and AAAA) is one of the rewrite's candidates, already in the negative cache:
// answered from it, with no upstream query.
TEST_F(ServeIntegrationTest, ClientWalkAfterAllNxdomainRewriteIsServedFromTheNegativeCache) {
  StartBoth({"--cluster-domain", kClusterFlag, "--node-search", "none", "--search-path",
             "127.0.0.1=default"});
  if (HasFatalFailure() || IsSkipped()) return;
  uint16_t id = 350;
  for (uint16_t type : {kTypeA, kTypeAaaa}) {
    auto first = UdpExchange(
        dns_port_,
        Wire({"nothere.example.test.default.svc.cluster.example.test.", type, 0, false, id++}));
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(Rcode(*first), LDNS_RCODE_NXDOMAIN);
  }
  EXPECT_EQ(Metric("nodedns_search_rewrite_declined_total{reason=\"nxdomain\"}"), 2);
  const double upstream = Metric("nodedns_upstream_queries_total");
  const double hits = Metric("nodedns_cache_hits_total");
  // The rest of the walk, as glibc and musl send it: svc.<zone>, <zone>, then the name as typed.
  int steps = 0;
  for (const char* name : {"nothere.example.test.svc.cluster.example.test.",
                           "nothere.example.test.cluster.example.test.", "nothere.example.test."}) {
    for (uint16_t type : {kTypeA, kTypeAaaa}) {
      auto r = UdpExchange(dns_port_, Wire({name, type, 0, false, id++}));
      ASSERT_TRUE(r.has_value()) << name;
      EXPECT_EQ(Rcode(*r), LDNS_RCODE_NXDOMAIN) << name;
      LdnsPkt p = Parse(*r);
      ASSERT_TRUE(p);
      EXPECT_EQ(CountType(ldns_pkt_authority(p.get()), LDNS_RR_TYPE_SOA), 1u) << name;
      ++steps;
    }
  }
  EXPECT_EQ(Metric("nodedns_upstream_queries_total"), upstream)
      << "a search step after the rewrite went upstream";
  EXPECT_EQ(Metric("nodedns_cache_hits_total"), hits + steps);
  EXPECT_EQ(Metric("nodedns_search_rewrite_lookups_total"), 0);
  StopNodedns();
}

// Names that exist are answered as upstream answers them, for a client learned from its own walk:
// a service, a headless pod under it and an SRV name below it. Non-address types are never
// rewritten, even when their name is NXDOMAIN and a candidate exists (_http._tcp.only.svc.<zone>).
TEST_F(ServeIntegrationTest, LearnedClientGetsUpstreamAnswersForExistingNamesAndSrv) {
  StartBoth({"--cluster-domain", kClusterFlag, "--node-search", "none"});
  if (HasFatalFailure() || IsSkipped()) return;
  uint16_t id = 360;
  for (const char* name :
       {"learn.default.svc.cluster.example.test.", "learn.svc.cluster.example.test."}) {
    auto r = UdpExchange(dns_port_, Wire({name, kTypeA, 0, false, id++}));
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(Rcode(*r), LDNS_RCODE_NXDOMAIN) << name;
  }
  ASSERT_EQ(Metric("nodedns_search_rewrite_learned_clients"), 1);
  constexpr uint16_t kTypeSrv = 33;
  const std::vector<Query> queries = {
      {"_https._tcp.kubernetes.default.svc.cluster.example.test.", kTypeSrv, 0, false, id++},
      {"kubernetes.default.svc.cluster.example.test.", kTypeA, 0, false, id++},
      {"kubernetes.default.svc.cluster.example.test.", kTypeAaaa, 0, false, id++},
      {"pod-0.kubernetes.default.svc.cluster.example.test.", kTypeA, 0, false, id++},
      {"_http._tcp.only.default.svc.cluster.example.test.", kTypeSrv, 0, false, id++},
  };
  // Twice: a miss, then a cache hit.
  for (int round = 0; round < 2; ++round) {
    for (const Query& q : queries) {
      const Bytes query = Wire(q);
      auto got = UdpExchange(dns_port_, query);
      ASSERT_TRUE(got.has_value()) << q.name;
      ExpectMatchesKnot(q, false, query, *got, KnotTcp(query));
    }
  }
  EXPECT_EQ(AnswerSummary(*UdpExchange(dns_port_, Wire(queries[1]))),
            (std::vector<std::string>{"A 10.96.0.1"}));
  LdnsPkt srv = Parse(*UdpExchange(dns_port_, Wire(queries[0])));
  ASSERT_TRUE(srv);
  EXPECT_EQ(CountType(ldns_pkt_answer(srv.get()), LDNS_RR_TYPE_SRV), 1u);
  EXPECT_EQ(Metric("nodedns_search_rewrite_lookups_total"), 0);
  EXPECT_EQ(Metric("nodedns_search_rewrite_attempts_total"), 0);
  // The client is learned and rewriting works: an A expansion is rewritten.
  auto a = UdpExchange(dns_port_, Wire({kExpansion, kTypeA, 0, false, id++}));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(AnswerSummary(*a),
            (std::vector<std::string>{"CNAME www.example.test.", "A 192.0.2.1"}));
  StopNodedns();
}

}  // namespace
}  // namespace nodedns::integration

namespace nodedns::integration {
namespace {

// An upstream the node has no route to at start (a node still booting, an IPv6 resolver on a node
// without IPv6 routes) does not keep nodedns from serving: it starts, says so in one line, answers
// that zone SERVFAIL meanwhile, and forwards to the server once a route exists (here: its address
// appears on lo), without a restart. In a private network namespace of the test process.
class UnroutedUpstreamTest : public nodedns::testing::NodednsFixture {
 protected:
  UnroutedUpstreamTest() : NodednsFixture(NODEDNS_BINARY) {}
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for a private network namespace";
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    ASSERT_EQ(std::system("ip link set lo up"), 0);
    NodednsFixture::SetUp();
  }
};

uint16_t AnswerCount(const std::vector<uint8_t>& reply) {
  return reply.size() > 7 ? uint16_t(reply[6] << 8 | reply[7]) : 0;
}

TEST_F(UnroutedUpstreamTest, StartsAndForwardsOnceARouteExists) {
  using nodedns::testing::ScriptedUpstream;
  auto answer = [](const nodedns::testing::SeenQuery& q) {
    nodedns::testing::MessageSpec spec = nodedns::testing::ReplySpecFor(q);
    spec.answer.push_back(q.name + " 300 IN A 192.0.2.7");
    return nodedns::testing::Action::Reply(nodedns::testing::Build(spec));
  };
  ScriptedUpstream root(answer);
  ASSERT_NO_FATAL_FAILURE(StartNodedns(root.port(),
                                       {"--forward", "unrouted.test=10.0.0.1:53",
                                        "--upstream-timeout", "200", "--upstream-tries", "1"},
                                       2));
  std::ifstream log(dir_ + "/nodedns.log");
  const std::string logged((std::istreambuf_iterator<char>(log)), {});
  EXPECT_NE(logged.find("nodedns: upstream 10.0.0.1:53 (zone unrouted.test"), std::string::npos)
      << logged;
  EXPECT_NE(logged.find("Network is unreachable; its queries fail"), std::string::npos) << logged;
  uint16_t id = 1;
  auto ask = [&](const std::string& name) {
    return UdpExchange(dns_port_, nodedns::testing::BuildQuery(name, 1, false, false, id++));
  };
  const auto before = ask("a.unrouted.test.");
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(Rcode(*before), 2) << "SERVFAIL while there is no route";
  const auto other = ask("www.example.");  // the other zone is served meanwhile
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(AnswerCount(*other), 1);

  ASSERT_EQ(std::system("ip addr add 10.0.0.1/32 dev lo"), 0);
  ScriptedUpstream server(answer, "10.0.0.1", 53);
  bool answered = false;
  for (int i = 0; i < 50 && !answered; ++i) {  // bounded: 5 s; each name new (no cached SERVFAIL)
    const auto r = ask("n" + std::to_string(i) + ".unrouted.test.");
    answered = r.has_value() && Rcode(*r) == 0 && AnswerCount(*r) == 1;
    if (!answered) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(answered) << "no answer through 10.0.0.1 within 5 s of its route appearing";
  EXPECT_GE(server.queries(), 1);
}

}  // namespace
}  // namespace nodedns::integration
