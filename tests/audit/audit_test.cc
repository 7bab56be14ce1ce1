// Tests for the findings derived by the offline audit (audit/audit.h).
#include "audit/audit.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "resolvconf/resolv_conf.h"

namespace nodedns::audit {

using resolvconf::ParseResolvConf;

namespace {

using ::testing::ElementsAre;

constexpr char kK8sSearch[] = "search default.svc.cluster.local svc.cluster.local cluster.local\n";

std::vector<Finding> WithId(const FileReport& r, const std::string& id) {
  std::vector<Finding> out;
  for (const Finding& f : r.findings) {
    if (f.id == id) out.push_back(f);
  }
  return out;
}

FileReport Audit(const std::string& text,
                 const std::vector<std::string>& names = DefaultSampleNames()) {
  return AuditText("test.conf", text, names);
}

TEST(AuditTest, NdotsFiveWithKubernetesSearchPathIsAWarning) {
  FileReport r = Audit(std::string(kK8sSearch) + "nameserver 169.254.20.10\noptions ndots:5\n");
  std::vector<Finding> f = WithId(r, "ndots-k8s-default");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kWarning);
  EXPECT_EQ(f[0].line, 3);
  // Default sample: kubernetes (2 queries), kubernetes.default (4), api.example.com (8).
  EXPECT_NE(f[0].message.find("glibc sends 14 queries, 8 of them expected NXDOMAIN"),
            std::string::npos)
      << f[0].message;
  EXPECT_NE(f[0].fix.find("ndots"), std::string::npos);
  EXPECT_NE(f[0].fix.find("\"2\""), std::string::npos) << f[0].fix;
  EXPECT_TRUE(WithId(r, "ndots-above-need").empty());
}

TEST(AuditTest, NdotsTwoWithKubernetesSearchPathHasNoNdotsFinding) {
  FileReport r = Audit(
      std::string(kK8sSearch) +
      "nameserver 169.254.20.10\nnameserver 10.96.0.10\noptions ndots:2 timeout:2 attempts:2\n");
  EXPECT_TRUE(WithId(r, "ndots-k8s-default").empty());
  EXPECT_TRUE(WithId(r, "ndots-above-need").empty());
  EXPECT_TRUE(r.findings.empty()) << r.findings[0].id;
}

TEST(AuditTest, NdotsAboveWhatTheNamesNeedIsInfo) {
  FileReport r = Audit("search corp.example.com\nnameserver 10.0.0.1\noptions ndots:3\n",
                       {"db", "www.example.org"});
  std::vector<Finding> f = WithId(r, "ndots-above-need");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kInfo);
  EXPECT_NE(f[0].message.find("ndots:3"), std::string::npos);
}

TEST(AuditTest, NdotsNeededFollowsTheDeepestSearchedName) {
  // svc.otherns.svc has two dots and is found via the search list, so it needs ndots:3.
  FileReport r = Audit(std::string(kK8sSearch) + "nameserver 169.254.20.10\noptions ndots:3\n",
                       {"kubernetes", "svc.otherns.svc"});
  EXPECT_TRUE(WithId(r, "ndots-above-need").empty());
  FileReport r4 = Audit(std::string(kK8sSearch) + "nameserver 169.254.20.10\noptions ndots:4\n",
                        {"kubernetes", "svc.otherns.svc"});
  ASSERT_EQ(WithId(r4, "ndots-above-need").size(), 1u);
  EXPECT_NE(WithId(r4, "ndots-above-need")[0].fix.find("ndots to 3"), std::string::npos);
}

TEST(AuditTest, NdotsSuggestionInPodsIsNeverBelowTwo) {
  // Only a short name: ndots:1 would do for it, but <svc>.<ns> names need 2 (musl does not
  // search a one-dot name under ndots:1).
  FileReport r = Audit(std::string(kK8sSearch) + "nameserver 169.254.20.10\noptions ndots:2\n",
                       {"kubernetes"});
  EXPECT_TRUE(WithId(r, "ndots-above-need").empty());
  FileReport r5 = Audit(std::string(kK8sSearch) + "nameserver 169.254.20.10\noptions ndots:5\n",
                        {"kubernetes"});
  ASSERT_EQ(WithId(r5, "ndots-k8s-default").size(), 1u);
  EXPECT_NE(WithId(r5, "ndots-k8s-default")[0].fix.find("set ndots to 2"), std::string::npos);
}

TEST(AuditTest, MoreThanThreeNameserversWarnsAtTheFirstIgnoredOne) {
  FileReport r =
      Audit("nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n");
  std::vector<Finding> f = WithId(r, "too-many-nameservers");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kWarning);
  EXPECT_EQ(f[0].line, 4);
  EXPECT_NE(f[0].message.find("10.0.0.4"), std::string::npos);
}

TEST(AuditTest, NoNameserverIsAWarning) {
  FileReport r = Audit("search corp.example.com\n");
  EXPECT_EQ(WithId(r, "no-nameserver").size(), 1u);
}

TEST(AuditTest, SearchListOverLegacyLimitsIsAWarning) {
  FileReport r = Audit("nameserver 10.0.0.1\nsearch a b c d e f g\n", {"x.example.com"});
  std::vector<Finding> f = WithId(r, "search-over-legacy-limit");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kWarning);
  EXPECT_EQ(f[0].line, 2);
  EXPECT_TRUE(WithId(r, "search-over-kubelet-limit").empty());
}

TEST(AuditTest, SearchListOverKubeletLimitsIsAnError) {
  std::string many = "search";
  for (int i = 0; i < 33; ++i) many += " d" + std::to_string(i);
  FileReport r = Audit("nameserver 10.0.0.1\n" + many + "\n", {"x.example.com"});
  ASSERT_EQ(WithId(r, "search-over-kubelet-limit").size(), 1u);
  EXPECT_EQ(WithId(r, "search-over-kubelet-limit")[0].severity, Severity::kError);
  EXPECT_TRUE(WithId(r, "search-over-legacy-limit").empty());

  // 10 domains of 250 characters: few domains, but over 2048 characters.
  std::string longer = "search";
  for (int i = 0; i < 10; ++i) longer += " " + std::string(250, 'a' + i);
  EXPECT_EQ(WithId(Audit("nameserver 10.0.0.1\n" + longer + "\n", {"x.example.com"}),
                   "search-over-kubelet-limit")
                .size(),
            1u);
}

TEST(AuditTest, RotateWithNodeLocalCacheIsAWarning) {
  FileReport r = Audit(std::string(kK8sSearch) +
                       "nameserver 169.254.20.10\nnameserver 10.96.0.10\noptions ndots:2 rotate\n");
  std::vector<Finding> f = WithId(r, "rotate-with-node-local-cache");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kWarning);
  EXPECT_EQ(f[0].line, 4);
}

TEST(AuditTest, NodeLocalCacheAsTheOnlyNameserverIsAWarning) {
  FileReport only = Audit(std::string(kK8sSearch) + "nameserver 169.254.20.10\noptions ndots:2\n");
  std::vector<Finding> f = WithId(only, "node-local-cache-only");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kWarning);
  EXPECT_EQ(f[0].line, 2);
  EXPECT_NE(f[0].fix.find("second nameserver"), std::string::npos) << f[0].fix;
  // With a fallback, or without the cache, nothing.
  EXPECT_TRUE(
      WithId(Audit(std::string(kK8sSearch) + "nameserver 169.254.20.10\nnameserver "
                                             "10.96.0.10\noptions ndots:2 timeout:2 attempts:2\n"),
             "node-local-cache-only")
          .empty());
  EXPECT_TRUE(WithId(Audit(std::string(kK8sSearch) + "nameserver 10.96.0.10\noptions ndots:2\n"),
                     "node-local-cache-only")
                  .empty());
}

TEST(AuditTest, NodeLocalCacheUnusedIsInfoOnlyForKubernetesPods) {
  FileReport pod = Audit(std::string(kK8sSearch) + "nameserver 10.96.0.10\noptions ndots:2\n");
  ASSERT_EQ(WithId(pod, "node-local-cache-unused").size(), 1u);
  EXPECT_EQ(WithId(pod, "node-local-cache-unused")[0].severity, Severity::kInfo);
  FileReport host = Audit("search corp.example.com\nnameserver 10.0.0.1\n");
  EXPECT_TRUE(WithId(host, "node-local-cache-unused").empty());
}

TEST(AuditTest, SingleRequestReopenMissingIsInfoUnlessMitigated) {
  const std::string base = std::string(kK8sSearch) + "nameserver 10.96.0.10\noptions ndots:2\n";
  EXPECT_EQ(WithId(Audit(base), "single-request-reopen-missing").size(), 1u);
  EXPECT_TRUE(
      WithId(Audit(base + "options single-request-reopen\n"), "single-request-reopen-missing")
          .empty());
  // The node-local cache's traffic is NOTRACK, so the conntrack race does not apply.
  EXPECT_TRUE(WithId(Audit(std::string(kK8sSearch) + "nameserver 169.254.20.10\n"),
                     "single-request-reopen-missing")
                  .empty());
}

TEST(AuditTest, GlibcWorstCaseFollowsResSendTimeouts) {
  EXPECT_EQ(GlibcWorstCaseSeconds(ParseResolvConf("nameserver 10.0.0.1\n").conf), 10);
  // 3 servers: 5 + (10/3) + (20/3) = 5 + 3 + 6 = 14 s per attempt, two attempts.
  EXPECT_EQ(
      GlibcWorstCaseSeconds(
          ParseResolvConf("nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n").conf),
      28);
  EXPECT_EQ(GlibcWorstCaseSeconds(
                ParseResolvConf("nameserver 10.0.0.1\noptions timeout:1 attempts:1\n").conf),
            1);
}

TEST(AuditTest, SlowFailureIsAWarningAboveTenSeconds) {
  EXPECT_TRUE(WithId(Audit("nameserver 10.0.0.1\n"), "slow-failure").empty());
  FileReport r = Audit("nameserver 10.0.0.1\noptions timeout:10 attempts:3\n");
  std::vector<Finding> f = WithId(r, "slow-failure");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kWarning);
  EXPECT_EQ(f[0].line, 2);
  EXPECT_NE(f[0].message.find("30 s"), std::string::npos) << f[0].message;
}

TEST(AuditTest, NameThatOnlyGlibcResolvesIsAMismatchWarning) {
  FileReport r = Audit(std::string(kK8sSearch) + "nameserver 169.254.20.10\noptions ndots:2\n",
                       {"kubernetes.default.svc"});
  std::vector<Finding> f = WithId(r, "resolver-mismatch");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_NE(f[0].message.find("fails with musl"), std::string::npos) << f[0].message;
  EXPECT_NE(f[0].fix.find("kubernetes.default.svc.cluster.local."), std::string::npos);
}

TEST(AuditTest, FindingsAreSortedByLine) {
  FileReport r = Audit(std::string(kK8sSearch) +
                       "nameserver 10.96.0.10\noptions ndots:5 bogus\nnameserver bad\n");
  for (size_t i = 1; i < r.findings.size(); ++i) {
    EXPECT_LE(r.findings[i - 1].line, r.findings[i].line);
  }
}

TEST(AuditTest, WalksComeInGlibcMuslPairsPerName) {
  FileReport r = Audit(std::string(kK8sSearch) + "nameserver 10.96.0.10\n", {"a", "b.example.com"});
  ASSERT_EQ(r.walks.size(), 4u);
  EXPECT_EQ(r.walks[0].resolver, Resolver::kGlibc);
  EXPECT_EQ(r.walks[1].resolver, Resolver::kMusl);
  EXPECT_EQ(r.walks[2].name, "b.example.com");
}

TEST(AuditTest, GroupByConfigGroupsIdenticalConfigurations) {
  const std::string a = std::string(kK8sSearch) + "nameserver 10.96.0.10\noptions ndots:5\n";
  const std::string b = "# same settings, other comments\n" + a;
  const std::string c =
      std::string(kK8sSearch) +
      "nameserver 169.254.20.10\nnameserver 10.96.0.10\noptions ndots:2 timeout:2 attempts:2\n";
  std::vector<FileReport> reports = {AuditText("p1", a, DefaultSampleNames()),
                                     AuditText("p2", c, DefaultSampleNames()),
                                     AuditText("p3", b, DefaultSampleNames())};
  std::vector<ConfigGroup> groups = GroupByConfig(reports);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_THAT(groups[0].files, ElementsAre("p1", "p3"));
  EXPECT_EQ(groups[0].worst, Severity::kWarning);
  EXPECT_THAT(groups[1].files, ElementsAre("p2"));
  EXPECT_FALSE(groups[1].has_findings);
  EXPECT_EQ(WorstSeverity(reports), Severity::kWarning);
  EXPECT_FALSE(WorstSeverity({reports[1]}).has_value());
}

}  // namespace
}  // namespace nodedns::audit
