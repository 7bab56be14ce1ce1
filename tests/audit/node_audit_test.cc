// `nodedns audit --node` (audit/node_audit.h): pods found by a scan joined with the proxy's GET
// /audit document, the pod-spec fix, the node summary, the JSON, and the command's flags and exit
// codes on a fixture proc tree. Real namespaces: tests/integration/node_audit_test.sh.
#include "audit/node_audit.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "audit/audit_command.h"
#include "audit/report.h"
#include "common/json.h"
#include "proxy/client_queries.h"
#include "proxy/wasted_queries.h"
#include "tests/audit/json_validator.h"
#include "tests/testing/dns_builder.h"
#include "tests/testing/fake_proc.h"

namespace nodedns::audit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kClusterFirst[] =
    "search default.svc.cluster.local svc.cluster.local cluster.local\n"
    "nameserver 169.254.20.10\n"
    "options ndots:5\n";
constexpr char kNdots2[] =
    "search default.svc.cluster.local svc.cluster.local cluster.local\n"
    "nameserver 169.254.20.10\n"
    "options ndots:2\n";

podscan::DiscoveredPod Pod(std::string name, std::vector<std::string> addresses,
                           std::string resolv_conf) {
  podscan::DiscoveredPod p;
  p.name = std::move(name);
  p.addresses = std::move(addresses);
  p.resolv_conf = std::move(resolv_conf);
  p.resolv_conf_path = p.resolv_conf.empty() ? "" : "/proc/7/root/etc/resolv.conf";
  p.containers = 1;
  p.pids = {7};
  return p;
}

sockaddr_storage Addr(const char* client) {
  sockaddr_storage ss{};
  if (inet_pton(AF_INET, client, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) {
    ss.ss_family = AF_INET;
  } else {
    ss.ss_family = AF_INET6;
    inet_pton(AF_INET6, client, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr);
  }
  return ss;
}

// A name's labels without the root byte, as the trackers take them.
std::vector<uint8_t> Base(const char* name) {
  std::vector<uint8_t> wire = nodedns::testing::WireName(name);
  wire.pop_back();
  return wire;
}

// The proxy's own GET /audit rendering: 10.244.0.5 wasted 6 on api.example.com, fd00::5 (the same
// pod's IPv6 address) 2 on api.example.com and 1 on db, 10.244.9.9 (no pod here) 4.
LiveAudit Live() {
  proxy::WastedQueryTracker t;
  auto note = [&t](const char* client, const char* name, int times) {
    for (int i = 0; i < times; ++i) t.Note(Addr(client), Base(name));
  };
  note("10.244.0.5", "api.example.com.", 6);
  note("fd00::5", "api.example.com.", 2);
  note("fd00::5", "db.", 1);
  note("10.244.9.9", "x.", 4);
  t.Publish();
  // And the rewrite answered 10.244.0.5 three times for api.example.com, fd00::5 once for db.
  proxy::WastedQueryTracker r;
  for (int i = 0; i < 3; ++i) r.Note(Addr("10.244.0.5"), Base("api.example.com."));
  r.Note(Addr("fd00::5"), Base("db."));
  r.Publish();
  // All queries, counted one by one: 40 from 10.244.0.5, 8 from fd00::5, 5 from 10.244.0.6.
  proxy::ClientQuerySampler q(1);
  for (int i = 0; i < 40; ++i) q.Count(Addr("10.244.0.5"));
  for (int i = 0; i < 8; ++i) q.Count(Addr("fd00::5"));
  for (int i = 0; i < 5; ++i) q.Count(Addr("10.244.0.6"));
  q.Publish();
  absl::StatusOr<LiveAudit> live =
      ParseLiveAudit(proxy::RenderWastedQueriesJson(
                         {t.Snapshot()}, "cluster.local",
                         "\"uptime_seconds\":10," + proxy::RenderRewritesJson({r.Snapshot()}) +
                             "," + proxy::RenderClientQueriesJson({q.Snapshot()}, 1)),
                     "127.0.0.1:9253");
  EXPECT_TRUE(live.ok()) << live.status();
  return *live;
}

podscan::ScanResult Scan() {
  podscan::ScanResult s;
  s.pods.push_back(Pod("api-7f9", {"10.244.0.5", "fd00::5"}, kClusterFirst));
  s.pods.push_back(Pod("batch-1", {"10.244.0.6"}, kNdots2));
  s.pods.push_back(Pod("", {"10.244.0.8"}, ""));
  s.pods.back().cgroup.pod_uid = "3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b";
  s.processes = 40;
  s.vanished = 1;
  podscan::HostNetworkPod h;
  h.cgroup.pod_uid = "11111111-2222-3333-4444-555555555555";
  h.pids = {99};
  s.host_network.push_back(h);
  return s;
}

const Finding* FindingOf(const PodReport& p, std::string_view id) {
  for (const Finding& f : p.file.findings) {
    if (f.id == id) return &f;
  }
  return nullptr;
}

TEST(NodeAuditTest, JoinsEachPodWithTheWasteOfAllItsAddresses) {
  const LiveAudit live = Live();
  NodeReport r = AuditNode(Scan(), "/proc", DefaultSampleNames(), &live);
  ASSERT_EQ(r.pods.size(), 3u);
  const PodReport& api = r.pods[0];
  ASSERT_TRUE(api.observed.has_value());
  EXPECT_EQ(api.observed->wasted, 9u);
  ASSERT_EQ(api.observed->names.size(), 2u);
  EXPECT_EQ(api.observed->names[0], (std::pair<std::string, uint64_t>("api.example.com", 8)));
  EXPECT_NE(FindingOf(api, "ndots-k8s-default"), nullptr);
  EXPECT_NE(FindingOf(api, kSearchPathWasteId), nullptr);
  // The rewrites of both addresses, added up.
  EXPECT_EQ(api.rewritten, 4u);
  // And the queries of both addresses.
  EXPECT_EQ(api.observed->queries, 48u);
  EXPECT_EQ(api.observed->query_sample, 1u);
  EXPECT_THAT(api.rewritten_names,
              ElementsAre(std::pair<std::string, uint64_t>("api.example.com", 3),
                          std::pair<std::string, uint64_t>("db", 1)));
  // ndots:2 saw no waste: no live finding, no ndots finding, no fix.
  const PodReport& batch = r.pods[1];
  EXPECT_EQ(batch.observed->wasted, 0u);
  EXPECT_EQ(batch.observed->queries, 5u);
  // Not among the counted clients: unknown, not zero.
  EXPECT_EQ(r.pods[2].observed->queries, std::nullopt);
  EXPECT_EQ(FindingOf(batch, kSearchPathWasteId), nullptr);
  EXPECT_EQ(FindingOf(batch, "ndots-k8s-default"), nullptr);
  EXPECT_EQ(batch.fix, "");
  // A pod whose resolv.conf could not be read has no findings, and says so.
  EXPECT_FALSE(r.pods[2].has_resolv_conf);
  EXPECT_TRUE(r.pods[2].file.findings.empty());
  EXPECT_EQ(r.unattributed_wasted, 4u);
  EXPECT_EQ(WorstSeverity(r), Severity::kWarning);
}

TEST(NodeAuditTest, TheFixIsAPodSpecDnsConfigWithTheNdotsTheNamesNeed) {
  NodeReport r = AuditNode(Scan(), "/proc", DefaultSampleNames(), nullptr);
  EXPECT_EQ(r.pods[0].fix,
            "spec:\n  dnsConfig:\n    options:\n    - name: ndots\n      value: \"2\"\n");
  // A name with two dots resolved by the search list needs ndots:3.
  NodeReport deeper = AuditNode(Scan(), "/proc", {"web.otherns.svc"}, nullptr);
  EXPECT_THAT(deeper.pods[0].fix, HasSubstr("value: \"3\""));
}

TEST(NodeAuditTest, TableNamesEachPodItsFindingsWasteAndTheNodeSummary) {
  const LiveAudit live = Live();
  NodeReport r = AuditNode(Scan(), "/proc", DefaultSampleNames(), &live);
  std::ostringstream out;
  RenderNodeTable(r, out);
  const std::string t = out.str();
  EXPECT_THAT(t, HasSubstr("== pod api-7f9 (network namespace 0, no pod cgroup)\n"));
  EXPECT_THAT(t, HasSubstr("observed:    9 NXDOMAIN replies below cluster.local"));
  EXPECT_THAT(t, HasSubstr("queries:     48 seen; 19% of them wasted\n"));
  EXPECT_THAT(t, HasSubstr("queries:     5 seen\n"));
  EXPECT_THAT(t, HasSubstr("queries:     not among the busiest clients"));
  EXPECT_THAT(t, HasSubstr("queries:     53 seen from these pods\n"));
  EXPECT_THAT(t, HasSubstr("api.example.com"));
  EXPECT_THAT(t, HasSubstr("== pod batch-1 ("));
  EXPECT_THAT(t,
              HasSubstr("== pod (no /etc/hostname) (uid 3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b)\n"));
  EXPECT_THAT(t, HasSubstr("resolv.conf: none readable"));
  // The pod's file is a part of the pod's section, not a section of its own.
  EXPECT_THAT(t, HasSubstr("\n  resolv.conf: /proc/7/root/etc/resolv.conf (namespace default, zone "
                           "cluster.local)\n  nameservers: 169.254.20.10\n"));
  EXPECT_THAT(t, Not(HasSubstr("== /proc")));
  EXPECT_THAT(t, HasSubstr("ndots-k8s-default"));
  EXPECT_THAT(t, HasSubstr("1 pod(s): api-7f9"));
  EXPECT_THAT(t, HasSubstr("wasted:      9 NXDOMAIN replies from these pods (0.90/s"));
  EXPECT_THAT(t, HasSubstr("4 from addresses of no pod found"));
  EXPECT_THAT(t, HasSubstr("rewritten:   4 replies answered by the search rewrite"));
  EXPECT_THAT(t, HasSubstr("1 hostNetwork pod(s)"));
  EXPECT_THAT(t, HasSubstr("1 gone mid-scan"));
}

TEST(NodeAuditTest, JsonIsValidAndCarriesPodsSummaryAndScan) {
  const LiveAudit live = Live();
  NodeReport r = AuditNode(Scan(), "/proc", DefaultSampleNames(), &live);
  std::ostringstream out;
  RenderNodeJson(r, out);
  ASSERT_TRUE(testing::IsValidJson(out.str())) << out.str();
  absl::StatusOr<JsonValue> doc = ParseJson(out.str());
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->Find("version")->text, "1");
  const JsonValue* pods = doc->Find("pods");
  ASSERT_EQ(pods->items.size(), 3u);
  const JsonValue& api = pods->items[0];
  EXPECT_EQ(api.Find("name")->text, "api-7f9");
  EXPECT_EQ(api.Find("observed")->Find("wasted")->text, "9");
  EXPECT_EQ(api.Find("observed")->Find("rewritten")->text, "4");
  EXPECT_EQ(api.Find("observed")->Find("queries")->text, "48");
  EXPECT_EQ(api.Find("observed")->Find("query_sample")->text, "1");
  EXPECT_EQ(pods->items[2].Find("observed")->Find("queries")->kind, JsonValue::Kind::kNull);
  EXPECT_EQ(api.Find("observed")->Find("rewritten_names")->items[0].Find("name")->text,
            "api.example.com");
  EXPECT_EQ(api.Find("resolv_conf")->Find("config")->Find("ndots")->text, "5");
  EXPECT_EQ(api.Find("cost")->items[2].Find("name")->text, "api.example.com");
  EXPECT_EQ(api.Find("cost")->items[2].Find("glibc")->text, "8");
  EXPECT_EQ(pods->items[2].Find("resolv_conf")->kind, JsonValue::Kind::kNull);
  const JsonValue* summary = doc->Find("summary");
  EXPECT_EQ(summary->Find("wasted")->text, "9");
  EXPECT_EQ(summary->Find("queries")->text, "53");
  EXPECT_EQ(summary->Find("unattributed_wasted")->text, "4");
  EXPECT_EQ(doc->Find("scan")->Find("vanished")->text, "1");
  EXPECT_EQ(doc->Find("host_network_pods")->items.size(), 1u);
  EXPECT_EQ(doc->Find("worst_severity")->text, "warning");
}

// The summary (and nodedns_pods_with_finding) counts pods: a finding on two lines of one file is
// one pod, and two pods of one name (in two namespaces) are two.
TEST(NodeAuditTest, PodsByFindingCountsEachPodOnce) {
  auto finding = [](std::string id, Severity severity, int line) {
    Finding f;
    f.id = std::move(id);
    f.severity = severity;
    f.line = line;
    return f;
  };
  NodeReport r;
  for (int i = 0; i < 2; ++i) {
    PodReport p;
    p.pod.name = "web-0";
    p.file.findings.push_back(finding("a", Severity::kWarning, 1));
    p.file.findings.push_back(finding("a", Severity::kWarning, 3));
    if (i == 1) p.file.findings.push_back(finding("b", Severity::kInfo, 0));
    r.pods.push_back(std::move(p));
  }
  const std::vector<FindingPods> by = PodsByFinding(r);
  ASSERT_EQ(by.size(), 2u);
  EXPECT_EQ(by[0].id, "a");
  EXPECT_EQ(by[0].severity, Severity::kWarning);
  EXPECT_THAT(by[0].pods, ElementsAre("web-0", "web-0"));
  EXPECT_EQ(by[1].id, "b");
  EXPECT_THAT(by[1].pods, ElementsAre("web-0"));
}

// Pods of one namespace share a resolv.conf text, audited once: each pod still gets its own path
// and the same findings as a pod audited alone.
TEST(NodeAuditTest, PodsWithTheSameResolvConfGetTheSameAuditUnderTheirOwnPath) {
  podscan::ScanResult s = Scan();
  s.pods.push_back(Pod("api-2", {"10.244.0.9"}, kClusterFirst));
  s.pods.back().resolv_conf_path = "/proc/8/root/etc/resolv.conf";
  NodeReport r = AuditNode(s, "/proc", DefaultSampleNames(), nullptr);
  ASSERT_EQ(r.pods.size(), 4u);
  const FileReport alone =
      AuditText("/proc/8/root/etc/resolv.conf", kClusterFirst, DefaultSampleNames());
  EXPECT_EQ(r.pods[3].file.path, "/proc/8/root/etc/resolv.conf");
  EXPECT_EQ(r.pods[0].file.path, "/proc/7/root/etc/resolv.conf");
  std::ostringstream a, b;
  RenderFileTable(r.pods[3].file, a);
  RenderFileTable(alone, b);
  EXPECT_EQ(a.str(), b.str());
}

TEST(NodeAuditTest, RewritesAreOptionalButMustBeWellFormed) {
  const std::string base = "{\"version\":1,\"cluster_domain\":\"cluster.local\",\"clients\":[]";
  absl::StatusOr<LiveAudit> old_server = ParseLiveAudit(base + "}", "s");
  ASSERT_TRUE(old_server.ok());
  EXPECT_TRUE(old_server->rewrites.empty());
  for (const std::string bad : {",\"rewrites\":{}", ",\"rewrites\":[{\"client\":\"a\"}]",
                                ",\"rewrites\":[{\"client\":\"a\",\"rewritten\":1,\"error\":0,"
                                "\"names\":[{\"name\":\"x\"}]}]"}) {
    EXPECT_FALSE(ParseLiveAudit(base + bad + "}", "s").ok()) << bad;
  }
}

// The command on a fixture proc tree.
class NodeAuditCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    proc_.Process(1, 100, 200);
    proc_.Process(10, 110, 210);
    proc_.Write(10, "root/etc/resolv.conf", kClusterFirst);
    proc_.Write(10, "root/etc/hostname", "web-0\n");
  }
  int Run(std::vector<std::string> args) {
    CLI::App app;
    AuditFlags flags;
    CLI::App* cmd = AddAuditCommand(app, flags);
    (void)cmd;
    args.insert(args.begin(), "audit");
    std::reverse(args.begin(), args.end());
    out_.str("");
    err_.str("");
    try {
      app.parse(args);
    } catch (const CLI::ParseError& e) {
      return ExitCodeForParseError(app, e, out_, err_);
    }
    return RunAuditCommand(flags, out_, err_);
  }
  nodedns::testing::FakeProc proc_;
  const std::string root_ = proc_.root();
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(NodeAuditCommandTest, ReportsThePodAndExitsOneOnItsWarning) {
  EXPECT_EQ(Run({"--node", "--proc", root_}), kExitFindings) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("== pod web-0"));
  EXPECT_THAT(out_.str(), HasSubstr("ndots-k8s-default"));
  EXPECT_EQ(Run({"--node", "--proc", root_, "--fail-on", "error"}), kExitOk);
  EXPECT_EQ(Run({"--node", "--proc", root_, "--format", "json"}), kExitFindings);
  EXPECT_TRUE(testing::IsValidJson(out_.str()));
}

TEST_F(NodeAuditCommandTest, BadCombinationsAndUnreadableProcAreOneLineAndExitTwo) {
  EXPECT_EQ(Run({"--proc", root_}), kExitBadInput);
  EXPECT_EQ(err_.str(), "nodedns audit: --proc is for --node only\n");
  EXPECT_EQ(Run({"--node", "--resolv-conf", "/etc/resolv.conf"}), kExitBadInput);
  EXPECT_THAT(err_.str(), HasSubstr("drop --resolv-conf"));
  EXPECT_EQ(Run({"--node", "--proc", root_ + "/nowhere"}), kExitBadInput);
  EXPECT_THAT(err_.str(), HasSubstr("nodedns audit: --node: cannot read"));
  const std::string one = err_.str();
  EXPECT_EQ(std::count(one.begin(), one.end(), '\n'), 1);
  EXPECT_EQ(Run({"--node", "--proc", root_, "--live", "127.0.0.1:1"}), kExitBadInput);
  EXPECT_THAT(err_.str(), HasSubstr("--live 127.0.0.1:1: cannot connect"));
}

}  // namespace
}  // namespace nodedns::audit
