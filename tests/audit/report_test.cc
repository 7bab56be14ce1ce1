// Tests for table and JSON rendering (audit/report.h). The JSON is checked with a small strict
// validator so that escaping mistakes or stray commas fail the test.
#include "audit/report.h"

#include <gtest/gtest.h>

#include <cctype>
#include <sstream>
#include <string>
#include <vector>

namespace nodedns::audit {
namespace {

// Minimal strict RFC 8259 validator: returns true when `s` is exactly one JSON value.
class JsonValidator {
 public:
  explicit JsonValidator(const std::string& s) : s_(s) {}
  bool Valid() {
    Ws();
    if (!Value()) return false;
    Ws();
    return i_ == s_.size();
  }

 private:
  void Ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r'))
      ++i_;
  }
  bool Lit(const char* lit) {
    size_t n = std::char_traits<char>::length(lit);
    if (s_.compare(i_, n, lit) != 0) return false;
    i_ += n;
    return true;
  }
  bool String() {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    ++i_;
    while (i_ < s_.size()) {
      unsigned char c = s_[i_++];
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c == '\\') {
        if (i_ >= s_.size()) return false;
        char e = s_[i_++];
        if (e == 'u') {
          for (int k = 0; k < 4; ++k) {
            if (i_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_++])))
              return false;
          }
        } else if (std::string("\"\\/bfnrt").find(e) == std::string::npos) {
          return false;
        }
      }
    }
    return false;
  }
  bool Number() {
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    return i_ > start;
  }
  bool Value() {
    Ws();
    if (i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '{') return Object();
    if (c == '[') return Array();
    if (c == '"') return String();
    if (c == 't') return Lit("true");
    if (c == 'f') return Lit("false");
    if (c == 'n') return Lit("null");
    return Number();
  }
  bool Object() {
    ++i_;
    Ws();
    if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
    while (true) {
      Ws();
      if (!String()) return false;
      Ws();
      if (i_ >= s_.size() || s_[i_++] != ':') return false;
      if (!Value()) return false;
      Ws();
      if (i_ >= s_.size()) return false;
      char c = s_[i_++];
      if (c == '}') return true;
      if (c != ',') return false;
    }
  }
  bool Array() {
    ++i_;
    Ws();
    if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
    while (true) {
      if (!Value()) return false;
      Ws();
      if (i_ >= s_.size()) return false;
      char c = s_[i_++];
      if (c == ']') return true;
      if (c != ',') return false;
    }
  }
  const std::string& s_;
  size_t i_ = 0;
};

bool IsValidJson(const std::string& s) { return JsonValidator(s).Valid(); }

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
        "\"summary\":[{\"config_hash\":", "\"count\":1", "\"worst_severity\":\"warning\"}"}) {
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
  std::vector<FileReport> reports = {
      AuditText("clean",
                "search default.svc.cluster.local svc.cluster.local cluster.local\n"
                "nameserver 169.254.20.10\noptions ndots:2\n",
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
