// Tests for the glibc/musl search-walk simulation and the default existence model
// (audit/walk.h), against the behaviour of glibc's __res_context_search and musl's
// name_from_dns_search.
#include "audit/walk.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "resolvconf/resolv_conf.h"

namespace nodedns::audit {

using resolvconf::ParseResolvConf;
using resolvconf::ResolvConf;

namespace {

using ::testing::ElementsAre;

constexpr char kK8sNdots5[] =
    "search default.svc.cluster.local svc.cluster.local cluster.local\n"
    "nameserver 10.96.0.10\n"
    "options ndots:5\n";

ResolvConf Conf(const std::string& text) { return ParseResolvConf(text).conf; }

// Candidate names in the order tried (A and AAAA of one candidate collapsed).
std::vector<std::string> Candidates(const Walk& w) {
  std::vector<std::string> out;
  for (const Query& q : w.queries) {
    if (out.empty() || out.back() != q.qname) out.push_back(q.qname);
  }
  return out;
}

Walk Sim(const std::string& conf_text, const std::string& name, Resolver r) {
  ResolvConf conf = Conf(conf_text);
  return SimulateWalk(conf, name, r, DefaultExistence(conf));
}

TEST(WalkTest, ShortNameWithNdots5K8sPathAnswersFromFirstSearchDomain) {
  for (Resolver r : {Resolver::kGlibc, Resolver::kMusl}) {
    Walk w = Sim(kK8sNdots5, "kubernetes", r);
    EXPECT_THAT(Candidates(w), ElementsAre("kubernetes.default.svc.cluster.local"))
        << ResolverName(r);
    ASSERT_EQ(w.queries.size(), 2u);
    EXPECT_EQ(w.queries[0].qtype, "A");
    EXPECT_EQ(w.queries[1].qtype, "AAAA");
    EXPECT_TRUE(w.parallel);
    EXPECT_EQ(w.total, 2);
    EXPECT_EQ(w.nxdomain, 0);
    EXPECT_EQ(w.answered_by, "kubernetes.default.svc.cluster.local");
  }
}

TEST(WalkTest, ExternalNameWithNdots5WalksWholeSearchListFirst) {
  for (Resolver r : {Resolver::kGlibc, Resolver::kMusl}) {
    Walk w = Sim(kK8sNdots5, "api.example.com", r);
    EXPECT_THAT(Candidates(w), ElementsAre("api.example.com.default.svc.cluster.local",
                                           "api.example.com.svc.cluster.local",
                                           "api.example.com.cluster.local", "api.example.com"))
        << ResolverName(r);
    EXPECT_EQ(w.total, 8);
    EXPECT_EQ(w.nxdomain, 6);
    EXPECT_EQ(w.wasted, 6);
    EXPECT_EQ(w.final_outcome, Outcome::kAnswer);
  }
}

TEST(WalkTest, CrossNamespaceNameIsFoundAtSecondSearchDomain) {
  Walk w = Sim(kK8sNdots5, "svc.otherns", Resolver::kGlibc);
  EXPECT_THAT(Candidates(w), ElementsAre("svc.otherns.default.svc.cluster.local",
                                         "svc.otherns.svc.cluster.local"));
  EXPECT_EQ(w.nxdomain, 2);
}

TEST(WalkTest, TrailingDotMeansAbsoluteWithoutSearch) {
  for (Resolver r : {Resolver::kGlibc, Resolver::kMusl}) {
    Walk w = Sim(kK8sNdots5, "api.example.com.", r);
    EXPECT_THAT(Candidates(w), ElementsAre("api.example.com")) << ResolverName(r);
    EXPECT_EQ(w.total, 2);
    EXPECT_EQ(w.nxdomain, 0);
  }
}

TEST(WalkTest, TrailingDotStopsGlibcEvenWhenTheNameDoesNotExist) {
  Walk w = Sim(kK8sNdots5, "nonexistent.", Resolver::kGlibc);
  EXPECT_THAT(Candidates(w), ElementsAre("nonexistent"));
  EXPECT_EQ(w.final_outcome, Outcome::kNxdomain);
  EXPECT_FALSE(w.answered_by.has_value());
}

TEST(WalkTest, GlibcTriesAsIsFirstThenSearchesWhenDotsAtLeastNdots) {
  const std::string conf =
      "search default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:2\n";
  Walk w = Sim(conf, "kubernetes.default.svc", Resolver::kGlibc);
  EXPECT_THAT(Candidates(w), ElementsAre("kubernetes.default.svc",
                                         "kubernetes.default.svc.default.svc.cluster.local",
                                         "kubernetes.default.svc.svc.cluster.local",
                                         "kubernetes.default.svc.cluster.local"));
  EXPECT_EQ(w.answered_by, "kubernetes.default.svc.cluster.local");
  EXPECT_EQ(w.nxdomain, 6);
}

TEST(WalkTest, MuslDoesNotSearchWhenDotsAtLeastNdots) {
  const std::string conf =
      "search default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:2\n";
  Walk w = Sim(conf, "kubernetes.default.svc", Resolver::kMusl);
  EXPECT_THAT(Candidates(w), ElementsAre("kubernetes.default.svc"));
  EXPECT_FALSE(w.answered_by.has_value());
  EXPECT_EQ(w.final_outcome, Outcome::kNxdomain);
}

TEST(WalkTest, ExternalNameWithEnoughDotsIsTriedAsIsOnly) {
  const std::string conf =
      "search default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:2\n";
  for (Resolver r : {Resolver::kGlibc, Resolver::kMusl}) {
    Walk w = Sim(conf, "api.example.com", r);
    EXPECT_THAT(Candidates(w), ElementsAre("api.example.com")) << ResolverName(r);
    EXPECT_EQ(w.wasted, 0);
  }
}

TEST(WalkTest, MuslStopsAtNodataWhileGlibcContinues) {
  ResolvConf conf = Conf("search a.example b.example\noptions ndots:1\n");
  std::map<std::string, Outcome> table = {{"foo.a.example", Outcome::kNodata},
                                          {"foo.b.example", Outcome::kAnswer}};
  ExistenceOracle oracle = [&](std::string_view, std::string_view qname) {
    auto it = table.find(std::string(qname));
    return it == table.end() ? Outcome::kNxdomain : it->second;
  };
  Walk g = SimulateWalk(conf, "foo", Resolver::kGlibc, oracle);
  EXPECT_THAT(Candidates(g), ElementsAre("foo.a.example", "foo.b.example"));
  EXPECT_EQ(g.answered_by, "foo.b.example");
  EXPECT_EQ(g.wasted, 2);
  EXPECT_EQ(g.nxdomain, 0);

  Walk m = SimulateWalk(conf, "foo", Resolver::kMusl, oracle);
  EXPECT_THAT(Candidates(m), ElementsAre("foo.a.example"));
  EXPECT_FALSE(m.answered_by.has_value());
  EXPECT_EQ(m.final_outcome, Outcome::kNodata);
}

TEST(WalkTest, GlibcReportsNodataWhenNothingAnswersButSomeCandidateWasNodata) {
  ResolvConf conf = Conf("search a.example\n");
  ExistenceOracle oracle = [](std::string_view, std::string_view qname) {
    return qname == "foo.a.example" ? Outcome::kNodata : Outcome::kNxdomain;
  };
  Walk g = SimulateWalk(conf, "foo", Resolver::kGlibc, oracle);
  EXPECT_THAT(Candidates(g), ElementsAre("foo.a.example", "foo"));
  EXPECT_EQ(g.final_outcome, Outcome::kNodata);
}

TEST(WalkTest, SingleRequestMakesGlibcSequentialButNotMusl) {
  const std::string conf = std::string(kK8sNdots5) + "options single-request-reopen\n";
  EXPECT_FALSE(Sim(conf, "kubernetes", Resolver::kGlibc).parallel);
  EXPECT_TRUE(Sim(conf, "kubernetes", Resolver::kMusl).parallel);
  EXPECT_TRUE(Sim(kK8sNdots5, "kubernetes", Resolver::kGlibc).parallel);
}

TEST(WalkTest, NoAaaaSuppressesAaaaForGlibcOnly) {
  const std::string conf = std::string(kK8sNdots5) + "options no-aaaa\n";
  Walk g = Sim(conf, "api.example.com", Resolver::kGlibc);
  EXPECT_EQ(g.total, 4);
  for (const Query& q : g.queries) EXPECT_EQ(q.qtype, "A");
  EXPECT_EQ(Sim(conf, "api.example.com", Resolver::kMusl).total, 8);
}

TEST(WalkTest, UseVcIsReportedAsTcp) {
  const std::string conf = std::string(kK8sNdots5) + "options use-vc\n";
  EXPECT_TRUE(Sim(conf, "kubernetes", Resolver::kGlibc).tcp);
  EXPECT_FALSE(Sim(conf, "kubernetes", Resolver::kMusl).tcp);
}

// Nothing exists: shows every candidate a resolver would try.
Walk SimNothing(const std::string& conf_text, const std::string& name, Resolver r) {
  ExistenceOracle nothing = [](std::string_view, std::string_view) { return Outcome::kNxdomain; };
  return SimulateWalk(Conf(conf_text), name, r, nothing);
}

TEST(WalkTest, NoTldQuerySkipsTheBareSingleLabelNameInGlibc) {
  const std::string conf = "search a.example\noptions no-tld-query\n";
  EXPECT_THAT(Candidates(SimNothing(conf, "nothere", Resolver::kGlibc)),
              ElementsAre("nothere.a.example"));
  EXPECT_THAT(Candidates(SimNothing("search a.example\n", "nothere", Resolver::kGlibc)),
              ElementsAre("nothere.a.example", "nothere"));
  // A dotted name is still tried as is.
  EXPECT_THAT(Candidates(SimNothing("search a.example\noptions ndots:3 no-tld-query\n", "x.y",
                                    Resolver::kGlibc)),
              ElementsAre("x.y.a.example", "x.y"));
}

TEST(WalkTest, RootInSearchListCountsAsTheAsIsTryForGlibc) {
  Walk w = SimNothing("search a.example .\n", "nothere", Resolver::kGlibc);
  EXPECT_THAT(Candidates(w), ElementsAre("nothere.a.example", "nothere"));
  EXPECT_EQ(w.total, 4);
  // musl cannot build "nothere.." and skips the root entry, then tries the name as is.
  EXPECT_THAT(Candidates(SimNothing("search a.example .\n", "nothere", Resolver::kMusl)),
              ElementsAre("nothere.a.example", "nothere"));
}

TEST(WalkTest, NonexistentNameWalksEverythingAndFails) {
  Walk g = SimNothing("search a.example b.example\n", "nothere", Resolver::kGlibc);
  EXPECT_THAT(Candidates(g), ElementsAre("nothere.a.example", "nothere.b.example", "nothere"));
  EXPECT_EQ(g.nxdomain, 6);
  EXPECT_EQ(g.final_outcome, Outcome::kNxdomain);
  Walk m = SimNothing("search a.example b.example\n", "nothere", Resolver::kMusl);
  EXPECT_THAT(Candidates(m), ElementsAre("nothere.a.example", "nothere.b.example", "nothere"));
}

TEST(WalkTest, NdotsZeroTriesEveryNameAsIsFirst) {
  const std::string conf =
      "search default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:0\n";
  EXPECT_THAT(Candidates(Sim(conf, "kubernetes", Resolver::kGlibc)),
              ElementsAre("kubernetes", "kubernetes.default.svc.cluster.local"));
  // musl: dots (0) >= ndots (0), so no search at all.
  EXPECT_THAT(Candidates(Sim(conf, "kubernetes", Resolver::kMusl)), ElementsAre("kubernetes"));
}

TEST(WalkTest, MuslUsesItsOwnViewOfAnOversizedSearchLine) {
  std::string domains;
  for (int i = 0; i < 20; ++i) domains += " d" + std::to_string(i) + ".example.internal.corp";
  const std::string conf = "search default.svc.cluster.local svc.cluster.local cluster.local" +
                           domains + "\noptions ndots:5\n";
  EXPECT_EQ(Sim(conf, "kubernetes", Resolver::kGlibc).answered_by,
            "kubernetes.default.svc.cluster.local");
  Walk m = Sim(conf, "kubernetes", Resolver::kMusl);
  EXPECT_THAT(Candidates(m), ElementsAre("kubernetes"));
  EXPECT_FALSE(m.answered_by.has_value());
}

TEST(KubernetesContextTest, DetectsNamespaceAndZoneFromKubeletSearchPath) {
  auto k8s = DetectKubernetes(
      {"team-a.svc.cluster.local", "svc.cluster.local", "cluster.local", "ec2.internal"});
  ASSERT_TRUE(k8s.has_value());
  EXPECT_EQ(k8s->namespace_name, "team-a");
  EXPECT_EQ(k8s->zone, "cluster.local");
  EXPECT_FALSE(DetectKubernetes({"corp.example.com"}).has_value());
  EXPECT_FALSE(DetectKubernetes({"a.svc.example.com"}).has_value());
}

TEST(KubernetesContextTest, LooksExternalSeparatesClusterAndExternalNames) {
  auto k8s = DetectKubernetes({"default.svc.cluster.local", "svc.cluster.local", "cluster.local"});
  EXPECT_FALSE(LooksExternal("kubernetes", k8s));
  EXPECT_FALSE(LooksExternal("svc.otherns", k8s));
  EXPECT_FALSE(LooksExternal("svc.otherns.svc", k8s));
  EXPECT_FALSE(LooksExternal("svc.otherns.svc.cluster.local", k8s));
  EXPECT_TRUE(LooksExternal("example.com", k8s));
  EXPECT_TRUE(LooksExternal("api.example.com", k8s));
  EXPECT_TRUE(LooksExternal("api.example.com.", k8s));
}

TEST(ExistenceModelTest, OutsideKubernetesShortNamesExistUnderFirstSearchDomain) {
  ResolvConf conf = Conf("search corp.example.com lab.example.com\n");
  ExistenceOracle oracle = DefaultExistence(conf);
  EXPECT_EQ(oracle("db", "db.corp.example.com"), Outcome::kAnswer);
  EXPECT_EQ(oracle("db", "db.lab.example.com"), Outcome::kNxdomain);
  EXPECT_EQ(oracle("db", "db"), Outcome::kNxdomain);
  EXPECT_EQ(oracle("www.example.org", "www.example.org"), Outcome::kAnswer);
  EXPECT_EQ(oracle("www.example.org", "www.example.org.corp.example.com"), Outcome::kNxdomain);
}

TEST(ExistenceModelTest, InClusterOnlyServiceNamesExist) {
  ResolvConf conf = Conf(kK8sNdots5);
  ExistenceOracle oracle = DefaultExistence(conf);
  EXPECT_EQ(oracle("x", "x.default.svc.cluster.local"), Outcome::kAnswer);
  EXPECT_EQ(oracle("x", "x.svc.cluster.local"), Outcome::kNxdomain);
  EXPECT_EQ(oracle("x", "x.cluster.local"), Outcome::kNxdomain);
  EXPECT_EQ(oracle("x.default", "x.default"), Outcome::kNxdomain);
  EXPECT_EQ(oracle("X.Default.SVC.cluster.local", "X.Default.SVC.cluster.local"), Outcome::kAnswer);
}

}  // namespace
}  // namespace nodedns::audit
