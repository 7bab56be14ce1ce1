// Tests for table and JSON rendering (audit/report.h). The JSON is checked with a small strict
// validator so that escaping mistakes or stray commas fail the test.
#include "audit/report.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "tests/audit/json_validator.h"

namespace nodedns::audit {
namespace {

using testing::IsValidJson;

constexpr char kPod[] =
    "search default.svc.cluster.local svc.cluster.local cluster.local\n"
    "nameserver 10.96.0.10\n"
    "options ndots:5 bogus\n";

TEST(JsonValidatorTest, RejectsBrokenJson) {
  EXPECT_TRUE(IsValidJson(R"({"a":[1,"x\n",null,true]})"));
  EXPECT_FALSE(IsValidJson(R"({"a":[1,]})"));
  EXPECT_FALSE(IsValidJson("{\"a\":\"raw\ttab\"}"));
  EXPECT_FALSE(IsValidJson(R"({"a":1}{})"));
}

TEST(JsonStringTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonString("plain"), "\"plain\"");
  EXPECT_EQ(JsonString("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonString("x\ny\tz\r"), "\"x\\ny\\tz\\r\"");
  EXPECT_EQ(JsonString(std::string("\x01\x1f", 2)), "\"\\u0001\\u001f\"");
  EXPECT_EQ(JsonString("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

TEST(JsonReportTest, DocumentHasTheDocumentedShape) {
  std::vector<FileReport> reports = {AuditText("/pods/a/resolv.conf", kPod, {"kubernetes"})};
  std::ostringstream out;
  RenderJson(reports, out);
  const std::string json = out.str();
  ASSERT_TRUE(IsValidJson(json)) << json;
  EXPECT_EQ(json.rfind("{\"version\":1,\"files\":[{\"path\":\"/pods/a/resolv.conf\"", 0), 0u)
      << json;
  for (const char* key :
       {"\"config\":{\"hash\":", "\"nameservers\":[\"10.96.0.10\"]",
        "\"search\":[\"default.svc.cluster.local\",\"svc.cluster.local\",\"cluster.local\"]",
        "\"ndots\":5", "\"unknown_options\":[\"bogus\"]",
        "\"kubernetes\":{\"namespace\":\"default\",\"zone\":\"cluster.local\"}",
        "\"findings\":[{\"id\":", "\"severity\":\"warning\"", "\"id\":\"unknown-option\"",
        "\"walks\":[{\"name\":\"kubernetes\",\"resolver\":\"glibc\",\"parallel\":true",
        "\"resolver\":\"musl\"",
        "\"queries\":[{\"qname\":\"kubernetes.default.svc.cluster.local\",\"qtype\":\"A\","
        "\"expected\":\"answer\"}",
        "\"total\":2,\"nxdomain\":0,\"wasted\":0",
        "\"answered_by\":\"kubernetes.default.svc.cluster.local\",\"result\":\"answer\"",
        "\"live\":null}],\"summary\":[{\"config_hash\":", "\"count\":1",
        "\"worst_severity\":\"warning\"}"}) {
    EXPECT_NE(json.find(key), std::string::npos) << "missing " << key << " in " << json;
  }
}

TEST(JsonReportTest, HostileStringsStayValidJson) {
  std::vector<FileReport> reports = {
      AuditText("dir/\"quoted\"\\name\x01", "search a.example\nfoo \"\\\x02\n", {"x.example.com"})};
  std::ostringstream out;
  RenderJson(reports, out);
  EXPECT_TRUE(IsValidJson(out.str())) << out.str();
  EXPECT_NE(out.str().find("dir/\\\"quoted\\\"\\\\name\\u0001"), std::string::npos);
}

TEST(JsonReportTest, NoFindingsGivesNullWorstSeverity) {
  std::vector<FileReport> reports = {AuditText(
      "clean",
      "search default.svc.cluster.local svc.cluster.local cluster.local\n"
      "nameserver 169.254.20.10\nnameserver 10.96.0.10\noptions ndots:2 timeout:2 attempts:2\n",
      DefaultSampleNames())};
  std::ostringstream out;
  RenderJson(reports, out);
  ASSERT_TRUE(IsValidJson(out.str()));
  EXPECT_NE(out.str().find("\"findings\":[]"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("\"worst_severity\":null}\n"), std::string::npos) << out.str();
}

TEST(TableReportTest, ShowsFindingsWalksAndSummaryForSeveralFiles) {
  std::vector<FileReport> reports = {AuditText("a.conf", kPod, {"api.example.com"}),
                                     AuditText("b.conf", kPod, {"api.example.com"})};
  std::ostringstream out;
  RenderTable(reports, out);
  const std::string table = out.str();
  EXPECT_NE(table.find("== a.conf (Kubernetes pod: namespace default, zone cluster.local)"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("WARNING ndots-k8s-default (line 3)"), std::string::npos) << table;
  EXPECT_NE(table.find("glibc api.example.com: 8 queries (A+AAAA in parallel), 6 expected "
                       "NXDOMAIN, result answer from api.example.com"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("== summary: 2 files, 1 distinct configuration(s)"), std::string::npos)
      << table;
  EXPECT_NE(table.find("files: a.conf b.conf"), std::string::npos) << table;
}

TEST(TableReportTest, SingleFileHasNoSummary) {
  std::ostringstream out;
  RenderTable({AuditText("a.conf", kPod, {"kubernetes"})}, out);
  EXPECT_EQ(out.str().find("summary"), std::string::npos);
}

}  // namespace
}  // namespace nodedns::audit
