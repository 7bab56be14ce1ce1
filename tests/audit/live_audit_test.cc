// Tests for `nodedns audit --live` (audit/live_audit.h): the GET /audit document the proxy renders
// (proxy/wasted_queries.h) read back into reports, rendered by the offline table and JSON
// renderers, and the command's exit codes against an in-process fake health endpoint.
#include "audit/live_audit.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "audit/audit_command.h"
#include "audit/report.h"
#include "proxy/client_queries.h"
#include "proxy/miss_admission.h"
#include "proxy/wasted_queries.h"
#include "tests/audit/json_validator.h"
#include "tests/testing/dns_builder.h"

namespace nodedns::audit {
namespace {

using ::testing::HasSubstr;
using testing::IsValidJson;
using ::testing::Not;

sockaddr_storage V4(const char* ip) {
  sockaddr_storage ss{};
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  inet_pton(AF_INET, ip, &a->sin_addr);
  return ss;
}

// What a worker of `nodedns serve` publishes after these NXDOMAINs, rendered by the proxy's own
// GET /audit code: 10.0.0.7 wasted 5 on api.corp and 1 on db; 10.0.0.9 wasted 2 on db.
std::string ProxyDocument() {
  proxy::WastedQueryTracker t;
  auto note = [&t](const char* client, const char* name, int times) {
    const auto wire = nodedns::testing::WireName(name);
    for (int i = 0; i < times; ++i) t.Note(V4(client), std::span(wire).first(wire.size() - 1));
  };
  note("10.0.0.7", "api.corp.", 5);
  note("10.0.0.7", "db.", 1);
  note("10.0.0.9", "db.", 2);
  t.Publish();
  return proxy::RenderWastedQueriesJson({t.Snapshot()}, "cluster.local");
}

TEST(LiveAuditTest, ReadsTheProxysGetAuditDocument) {
  absl::StatusOr<LiveAudit> live = ParseLiveAudit(ProxyDocument(), "127.0.0.1:9253");
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(live->cluster_domain, "cluster.local");
  ASSERT_EQ(live->reports.size(), 2u);
  const FileReport& r = live->reports[0];
  EXPECT_EQ(r.path, "10.0.0.7");
  EXPECT_EQ(r.outcome_source, "live 127.0.0.1:9253");
  ASSERT_TRUE(r.live.has_value());
  EXPECT_EQ(r.live->server, "127.0.0.1:9253");
  EXPECT_EQ(r.live->wasted, 6u);
  EXPECT_EQ(r.live->error, 0u);
  EXPECT_EQ(r.live->names,
            (std::vector<std::pair<std::string, uint64_t>>{{"api.corp", 5}, {"db", 1}}));
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].id, kSearchPathWasteId);
  EXPECT_EQ(r.findings[0].severity, Severity::kWarning);
  EXPECT_THAT(r.findings[0].message, HasSubstr("6 replies to this client were NXDOMAIN"));
  EXPECT_THAT(r.findings[0].message, HasSubstr("api.corp 5, db 1"));
  EXPECT_TRUE(r.walks.empty());
  EXPECT_EQ(live->reports[1].path, "10.0.0.9");
  EXPECT_EQ(live->reports[1].live->wasted, 2u);
}

// GET /audit carries the shed misses (proxy/miss_admission.h) next to the clients: a member added
// within version 1, which the live audit reads past.
TEST(LiveAuditTest, ReadsPastTheShedMember) {
  proxy::MissAdmission shed;
  sockaddr_storage flooder = V4("10.0.0.66");
  for (int i = 0; i < 3; ++i) shed.NoteShed(flooder, proxy::MissAdmission::Verdict::kClientShare);
  shed.Publish();
  std::string doc = ProxyDocument();
  ASSERT_EQ(doc.substr(doc.size() - 3), "]}\n");
  doc.resize(doc.size() - 2);
  doc += "," + proxy::RenderShedJson({shed.Snapshot()}) + "}\n";
  EXPECT_NE(doc.find("\"shed\":[{\"client\":\"10.0.0.66\",\"misses\":3"), std::string::npos) << doc;
  EXPECT_TRUE(IsValidJson(doc)) << doc;
  absl::StatusOr<LiveAudit> live = ParseLiveAudit(doc, "127.0.0.1:9253");
  ASSERT_TRUE(live.ok()) << live.status() << "\n" << doc;
  ASSERT_EQ(live->reports.size(), 2u);
  EXPECT_EQ(live->reports[0].path, "10.0.0.7");
}

// GET /audit's "queries" (proxy/client_queries.h): every client's queries, estimated from a sample;
// each wasting client's report gets its own, and the table the share of them that was waste.
TEST(LiveAuditTest, ReadsEachClientsQueriesAndTheShareWasted) {
  proxy::ClientQuerySampler q(1);
  for (int i = 0; i < 20; ++i) q.Count(V4("10.0.0.7"));
  for (int i = 0; i < 3; ++i) q.Count(V4("10.0.0.50"));
  q.Publish();
  std::string doc = ProxyDocument();
  doc.resize(doc.size() - 2);
  doc += "," + proxy::RenderClientQueriesJson({q.Snapshot()}, 1) + "}\n";
  absl::StatusOr<LiveAudit> live = ParseLiveAudit(doc, "127.0.0.1:9253");
  ASSERT_TRUE(live.ok()) << live.status() << "\n" << doc;
  EXPECT_EQ(live->query_sample, 1u);
  ASSERT_EQ(live->queries.size(), 2u);
  ASSERT_EQ(live->reports.size(), 2u);
  EXPECT_EQ(live->reports[0].live->queries, 20u);
  // 10.0.0.9 wasted but is not among the counted clients: unknown, not zero.
  EXPECT_EQ(live->reports[1].live->queries, std::nullopt);
  std::ostringstream table;
  RenderTable(live->reports, table);
  EXPECT_THAT(table.str(), HasSubstr("queries:     20 seen; 30% of them wasted\n"));
  EXPECT_THAT(table.str(), HasSubstr("queries:     not among the busiest clients"));
  std::ostringstream json;
  RenderJson(live->reports, json);
  EXPECT_THAT(json.str(), HasSubstr("\"queries\":20,\"queries_error\":0,\"query_sample\":1"));
  EXPECT_THAT(json.str(), HasSubstr("\"queries\":null"));
  // A server that samples: the estimate says how it was made.
  proxy::ClientQuerySampler sampled(16);
  for (int i = 0; i < 1600; ++i) sampled.Count(V4("10.0.0.7"));
  sampled.Publish();
  doc = ProxyDocument();
  doc.resize(doc.size() - 2);
  doc += "," + proxy::RenderClientQueriesJson({sampled.Snapshot()}, 16) + "}\n";
  live = ParseLiveAudit(doc, "s");
  ASSERT_TRUE(live.ok()) << live.status();
  table.str("");
  RenderTable(live->reports, table);
  EXPECT_THAT(table.str(), HasSubstr("seen (estimated from one in 16)"));
  // Malformed queries are errors; a document without them is a server that counts none.
  const std::string base = "{\"version\":1,\"cluster_domain\":\"c\",\"clients\":[]";
  for (const std::string bad :
       {",\"queries\":[]", ",\"query_sample\":1,\"queries\":{}",
        ",\"query_sample\":1,\"queries\":[{\"client\":\"a\",\"queries\":1}]",
        ",\"query_sample\":-1,\"queries\":[]"}) {
    EXPECT_FALSE(ParseLiveAudit(base + bad + "}", "s").ok()) << bad;
  }
  absl::StatusOr<LiveAudit> old_server = ParseLiveAudit(base + "}", "s");
  ASSERT_TRUE(old_server.ok());
  EXPECT_EQ(old_server->query_sample, 0u);
}

TEST(LiveAuditTest, RejectsDocumentsItCannotRead) {
  for (const char* doc : {
           "", "not json", "[]", "{\"version\":1,\"clients\":[]}",       // no cluster_domain
           "{\"version\":2,\"cluster_domain\":\"c\",\"clients\":[]}",    // another version
           "{\"version\":1,\"cluster_domain\":\"c\",\"clients\":{}}",    // not an array
           "{\"version\":1,\"cluster_domain\":\"c\",\"clients\":[{}]}",  // empty client
           "{\"version\":1,\"cluster_domain\":\"c\",\"clients\":[{\"client\":\"x\","
           "\"wasted\":-1,\"error\":0,\"names\":[]}]}",  // negative count
           "{\"version\":1,\"cluster_domain\":\"c\",\"clients\":[{\"client\":\"x\","
           "\"wasted\":1,\"error\":0,\"names\":[{\"name\":\"n\"}]}]}",    // name without count
           "{\"version\":1,\"cluster_domain\":\"c\",\"clients\":[]} {}",  // trailing garbage
       }) {
    EXPECT_FALSE(ParseLiveAudit(doc, "s").ok()) << doc;
  }
  // Unknown fields are ignored; no client means no report.
  absl::StatusOr<LiveAudit> empty = ParseLiveAudit(
      "{\"version\":1,\"new\":[true,null],\"cluster_domain\":\"c\",\"clients\":[]}", "s");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->reports.empty());
}

// Serves every connection the same HTTP/1.0 answer, like `nodedns serve --health`.
class FakeHealthServer {
 public:
  FakeHealthServer(std::string status, std::string body)
      : response_("HTTP/1.0 " + status + "\r\nContent-Type: application/json\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n" + body) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 8), 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    address_ = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeHealthServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  const std::string& address() const { return address_; }
  std::string last_request() const {
    std::lock_guard lock(mu_);
    return last_request_;
  }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      char buf[4096];
      const ssize_t n = recv(c, buf, sizeof buf, 0);
      if (n > 0) {
        std::lock_guard lock(mu_);
        last_request_.assign(buf, static_cast<size_t>(n));
      }
      send(c, response_.data(), response_.size(), MSG_NOSIGNAL);
      close(c);
    }
  }
  std::string response_;
  int fd_ = -1;
  std::string address_;
  mutable std::mutex mu_;
  std::string last_request_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int RunLive(const std::string& server, const std::string& format, const std::string& fail_on,
            std::string* out_text, std::string* err_text = nullptr) {
  AuditFlags flags;
  flags.live = server;
  flags.format = format;
  flags.fail_on = fail_on;
  std::ostringstream out, err;
  const int code = RunAuditCommand(flags, out, err);
  *out_text = out.str();
  if (err_text != nullptr) *err_text = err.str();
  return code;
}

TEST(LiveCommandTest, PrintsTheOfflineTableAndFailOnApplies) {
  FakeHealthServer server("200 OK", ProxyDocument());
  std::string table;
  EXPECT_EQ(RunLive(server.address(), "table", "warning", &table), kExitFindings);
  EXPECT_THAT(server.last_request(), HasSubstr("GET /audit HTTP/1.0"));
  // The offline layout: "== <what>" headers, a findings block with severity labels and fixes,
  // numbered rows, and the summary that groups several entries.
  EXPECT_THAT(table,
              HasSubstr("== 10.0.0.7 (client seen by nodedns at " + server.address() +
                        ", zone cluster.local)\n  wasted:      6 NXDOMAIN replies below "
                        "cluster.local\n  findings:\n    WARNING search-path-waste: 6 replies"));
  EXPECT_THAT(table, HasSubstr("            fix: fully qualify these names"));
  EXPECT_THAT(table, HasSubstr("          1. api.corp"));
  EXPECT_THAT(table, HasSubstr("          2. db"));
  EXPECT_THAT(table, HasSubstr("== summary: 2 clients, 1 distinct configuration(s)"));
  EXPECT_THAT(table, HasSubstr("      findings: search-path-waste\n      clients: 10.0.0.7 "
                               "10.0.0.9\n"));
  EXPECT_THAT(table, Not(HasSubstr("nameservers:")));
  std::string again;
  EXPECT_EQ(RunLive(server.address(), "table", "info", &again), kExitFindings);
  EXPECT_EQ(RunLive(server.address(), "table", "error", &again), kExitOk);
  EXPECT_EQ(again, table);
}

TEST(LiveCommandTest, PrintsTheOfflineJsonSchemaWithTheLiveExtension) {
  FakeHealthServer server("200 OK", ProxyDocument());
  std::string json;
  EXPECT_EQ(RunLive(server.address(), "json", "warning", &json), kExitFindings);
  ASSERT_TRUE(IsValidJson(json)) << json;
  EXPECT_EQ(json.rfind("{\"version\":1,\"files\":[{\"path\":\"10.0.0.7\",\"outcome_source\":"
                       "\"live " +
                           server.address() + "\",\"config\":{\"hash\":",
                       0),
            0u)
      << json;
  for (const std::string& key : {
           std::string("\"findings\":[{\"id\":\"search-path-waste\",\"severity\":\"warning\","
                       "\"line\":0,"),
           "\"walks\":[],\"live\":{\"server\":\"" + server.address() +
               "\",\"cluster_domain\":\"cluster.local\",\"wasted\":6,\"error\":0,\"names\":[{"
               "\"name\":\"api.corp\",\"wasted\":5},{\"name\":\"db\",\"wasted\":1}],\"queries\":"
               "null,"
               "\"queries_error\":0,\"query_sample\":0}}",
           std::string("\"summary\":[{\"config_hash\":"),
           std::string("\"count\":2,\"files\":[\"10.0.0.7\",\"10.0.0.9\"],"
                       "\"worst_severity\":\"warning\",\"finding_ids\":[\"search-path-waste\"]}"),
           std::string("],\"worst_severity\":\"warning\"}\n"),
       }) {
    EXPECT_NE(json.find(key), std::string::npos) << "missing " << key << " in " << json;
  }
  EXPECT_EQ(RunLive(server.address(), "json", "error", &json), kExitOk);
}

TEST(LiveCommandTest, NoWasteIsExitZero) {
  FakeHealthServer server("200 OK",
                          "{\"version\":1,\"cluster_domain\":\"c.test\",\"clients\":[]}\n");
  std::string out;
  EXPECT_EQ(RunLive(server.address(), "table", "info", &out), kExitOk);
  EXPECT_EQ(out, "== no wasted queries seen by nodedns at " + server.address() +
                     " (NXDOMAIN below c.test)\n");
  EXPECT_EQ(RunLive(server.address(), "json", "info", &out), kExitOk);
  EXPECT_EQ(out, "{\"version\":1,\"files\":[],\"summary\":[],\"worst_severity\":null}\n");
}

TEST(LiveCommandTest, UnreachableOrUnreadableServerIsExitTwo) {
  std::string out, err;
  {
    FakeHealthServer server("404 Not Found", "not found\n");
    EXPECT_EQ(RunLive(server.address(), "table", "warning", &out, &err), kExitBadInput);
    EXPECT_THAT(err, HasSubstr("HTTP 404 for /audit"));
  }
  {
    FakeHealthServer server("200 OK", "== a table, not JSON\n");
    EXPECT_EQ(RunLive(server.address(), "table", "warning", &out, &err), kExitBadInput);
    EXPECT_THAT(err, HasSubstr("nodedns audit: --live " + server.address() + ": not valid JSON"));
    EXPECT_EQ(out, "");
  }
  EXPECT_EQ(RunLive("127.0.0.1:1", "table", "warning", &out, &err), kExitBadInput);
  EXPECT_THAT(err, HasSubstr("cannot connect"));
  EXPECT_EQ(RunLive("not-an-address", "table", "warning", &out, &err), kExitBadInput);
}

}  // namespace
}  // namespace nodedns::audit
