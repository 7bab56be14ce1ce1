// Tests for `nodedns audit --resolve` (audit/live_oracle.h) against an in-process fake DNS
// server on 127.0.0.1 that answers from a table of facts.
#include "audit/live_oracle.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "audit/audit_command.h"

namespace nodedns::audit {
namespace {

using ::testing::HasSubstr;

// Answers A/AAAA queries over UDP from `facts` (lower-case name without trailing dot); unknown
// names get NXDOMAIN.
class FakeDnsServer {
 public:
  explicit FakeDnsServer(std::map<std::string, Outcome> facts) : facts_(std::move(facts)) {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeDnsServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  int queries() const { return queries_; }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      uint8_t buf[4096];
      sockaddr_storage from{};
      socklen_t from_len = sizeof from;
      ssize_t n = recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n <= 0) continue;
      ldns_pkt* query = nullptr;
      if (ldns_wire2pkt(&query, buf, static_cast<size_t>(n)) != LDNS_STATUS_OK) continue;
      ++queries_;
      Respond(query, from, from_len);
      ldns_pkt_free(query);
    }
  }

  void Respond(ldns_pkt* query, const sockaddr_storage& to, socklen_t to_len) {
    ldns_rr* q = ldns_rr_list_rr(ldns_pkt_question(query), 0);
    char* owner_c = ldns_rdf2str(ldns_rr_owner(q));
    std::string owner = owner_c;
    free(owner_c);
    if (!owner.empty() && owner.back() == '.') owner.pop_back();
    std::transform(owner.begin(), owner.end(), owner.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    auto it = facts_.find(owner);
    Outcome outcome = it == facts_.end() ? Outcome::kNxdomain : it->second;

    ldns_pkt* resp = ldns_pkt_new();
    ldns_pkt_set_id(resp, ldns_pkt_id(query));
    ldns_pkt_set_qr(resp, true);
    ldns_pkt_set_rd(resp, ldns_pkt_rd(query));
    ldns_pkt_set_ra(resp, true);
    ldns_pkt_push_rr(resp, LDNS_SECTION_QUESTION, ldns_rr_clone(q));
    ldns_pkt_set_rcode(resp, outcome == Outcome::kNxdomain   ? LDNS_RCODE_NXDOMAIN
                             : outcome == Outcome::kServfail ? LDNS_RCODE_SERVFAIL
                                                             : LDNS_RCODE_NOERROR);
    if (outcome == Outcome::kAnswer) {
      bool aaaa = ldns_rr_get_type(q) == LDNS_RR_TYPE_AAAA;
      ldns_rr* rr = nullptr;
      std::string text = owner + ". 60 IN " + (aaaa ? "AAAA 2001:db8::1" : "A 192.0.2.1");
      if (ldns_rr_new_frm_str(&rr, text.c_str(), 0, nullptr, nullptr) == LDNS_STATUS_OK) {
        ldns_pkt_push_rr(resp, LDNS_SECTION_ANSWER, rr);
      }
    }
    uint8_t* wire = nullptr;
    size_t wire_len = 0;
    if (ldns_pkt2wire(&wire, resp, &wire_len) == LDNS_STATUS_OK) {
      sendto(fd_, wire, wire_len, 0, reinterpret_cast<const sockaddr*>(&to), to_len);
      free(wire);
    }
    ldns_pkt_free(resp);
  }

  std::map<std::string, Outcome> facts_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::thread thread_;
};

TEST(ParseServerAddressTest, AcceptsIpv4AndBracketedIpv6WithOptionalPort) {
  auto a = ParseServerAddress("127.0.0.1:5353");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->ip, "127.0.0.1");
  EXPECT_EQ(a->port, 5353);
  auto b = ParseServerAddress("10.0.0.10");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->port, 53);
  auto c = ParseServerAddress("[::1]:5300");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ip, "::1");
  EXPECT_EQ(c->port, 5300);
  auto d = ParseServerAddress("fd00::53");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->port, 53);
}

TEST(ParseServerAddressTest, RejectsNamesAndBadPorts) {
  EXPECT_FALSE(ParseServerAddress("dns.example.com:53").ok());
  EXPECT_FALSE(ParseServerAddress("127.0.0.1:0").ok());
  EXPECT_FALSE(ParseServerAddress("127.0.0.1:99999").ok());
  EXPECT_FALSE(ParseServerAddress("[::1").ok());
  EXPECT_FALSE(ParseServerAddress("").ok());
}

TEST(LiveOracleTest, CombinesAAndAaaaAnswersAndCaches) {
  FakeDnsServer server({{"exists.example", Outcome::kAnswer},
                        {"empty.example", Outcome::kNodata},
                        {"broken.example", Outcome::kServfail}});
  LiveOracle oracle(ServerAddress{"127.0.0.1", server.port()});
  EXPECT_EQ(oracle.Lookup("exists.example"), Outcome::kAnswer);
  EXPECT_EQ(oracle.Lookup("empty.example"), Outcome::kNodata);
  EXPECT_EQ(oracle.Lookup("missing.example"), Outcome::kNxdomain);
  EXPECT_EQ(oracle.Lookup("broken.example"), Outcome::kServfail);
  EXPECT_EQ(oracle.Lookup("exists.example"), Outcome::kAnswer);  // Cached.
  EXPECT_TRUE(oracle.status().ok()) << oracle.status();
  EXPECT_EQ(oracle.queries_sent(), 8);
  EXPECT_GE(server.queries(), 8);  // ldns may retry over UDP; never fewer.
  EXPECT_EQ(oracle.Describe(), "127.0.0.1:" + std::to_string(server.port()));
}

class ResolveCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::path(::testing::TempDir()) /
            ("nodedns_audit_resolve_" + std::to_string(getpid()) + ".conf");
    std::ofstream(path_) << "search default.svc.cluster.local svc.cluster.local cluster.local\n"
                            "nameserver 169.254.20.10\noptions ndots:5\n";
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::filesystem::path path_;
};

TEST_F(ResolveCommandTest, WalksUseTheServersRealAnswers) {
  FakeDnsServer server({{"nodatatest.default.svc.cluster.local", Outcome::kNodata},
                        {"nodatatest.svc.cluster.local", Outcome::kAnswer}});
  AuditFlags flags;
  flags.resolv_confs = {path_.string()};
  flags.names = {"nodatatest"};
  flags.format = "json";
  flags.resolve = "127.0.0.1:" + std::to_string(server.port());
  std::ostringstream out, err;
  EXPECT_EQ(RunAuditCommand(flags, out, err), kExitFindings) << err.str();
  const std::string json = out.str();
  EXPECT_THAT(json, HasSubstr("\"outcome_source\":\"server " + flags.resolve + "\""));
  // glibc moves past the NODATA candidate; musl stops there.
  EXPECT_THAT(json, HasSubstr("\"answered_by\":\"nodatatest.svc.cluster.local\""));
  EXPECT_THAT(json, HasSubstr("\"resolver\":\"musl\""));
  EXPECT_THAT(json, HasSubstr("\"answered_by\":null,\"result\":\"nodata\""));
  EXPECT_THAT(json, HasSubstr("\"id\":\"resolver-mismatch\""));
  EXPECT_GT(server.queries(), 0);
}

TEST_F(ResolveCommandTest, SilentServerExitsTwoNamingIt) {
  // A bound socket that never answers.
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  AuditFlags flags;
  flags.resolv_confs = {path_.string()};
  flags.names = {"kubernetes"};
  flags.resolve = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  std::ostringstream out, err;
  EXPECT_EQ(RunAuditCommand(flags, out, err), kExitBadInput);
  close(fd);
  EXPECT_THAT(err.str(), HasSubstr("no answer from " + flags.resolve));
}

TEST_F(ResolveCommandTest, BadAddressExitsTwo) {
  AuditFlags flags;
  flags.resolv_confs = {path_.string()};
  flags.resolve = "dns.example.com:53";
  std::ostringstream out, err;
  EXPECT_EQ(RunAuditCommand(flags, out, err), kExitBadInput);
  EXPECT_THAT(err.str(), HasSubstr("dns.example.com:53"));
}

}  // namespace
}  // namespace nodedns::audit
