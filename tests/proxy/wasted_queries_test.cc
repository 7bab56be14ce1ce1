// Search-suffix stripping and the Space-Saving top-K of wasted queries.
#include "proxy/wasted_queries.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

#include "proxy/miss_admission.h"
#include "tests/testing/dns_builder.h"

namespace nodedns::proxy {
namespace {

using ::nodedns::testing::WireName;

std::string Base(const std::string& name) {
  const auto wire = WireName(name);
  const size_t n = SearchBaseLength(wire, WireName("cluster.local."));
  auto w = wire;
  w.resize(n);
  w.push_back(0);
  std::string out;
  for (size_t i = 0; w[i] != 0; i += w[i] + 1) {
    out += (out.empty() ? "" : ".") + std::string(w.begin() + i + 1, w.begin() + i + 1 + w[i]);
  }
  return n ? out : "<none>";
}

TEST(SearchBaseTest, StripsTheKubernetesSearchSuffixes) {
  EXPECT_EQ(Base("api.example.com.default.svc.cluster.local."), "api.example.com");
  EXPECT_EQ(Base("API.Example.COM.Default.SVC.Cluster.Local."), "API.Example.COM");
  EXPECT_EQ(Base("foo.svc.cluster.local."), "foo");
  EXPECT_EQ(Base("foo.cluster.local."), "foo");
  EXPECT_EQ(Base("cluster.local."), "<none>");
  EXPECT_EQ(Base("example.com."), "<none>");
  EXPECT_EQ(Base("xcluster.local."), "<none>");
}

// The per-query counter's fast check agrees with the suffix stripping GET /audit uses.
TEST(SearchBaseTest, IsSearchExpansionMatchesSearchBaseLength) {
  const auto zone = WireName("cluster.local.");
  for (const char* name :
       {"api.example.com.default.svc.cluster.local.", "API.Example.COM.Default.SVC.Cluster.Local.",
        "foo.svc.cluster.local.", "svc.cluster.local.", "foo.cluster.local.", "cluster.local.",
        "local.", ".", "example.com.", "xcluster.local.", "a.xcluster.local.",
        "cluster.local.example.com.", "a.b.c.d.e.f.g.cluster.local."}) {
    const auto wire = WireName(name);
    EXPECT_EQ(IsSearchExpansion(wire, zone), SearchBaseLength(wire, zone) > 0) << name;
  }
  EXPECT_TRUE(IsSearchExpansion(WireName("kubernetes.default.svc.cluster.local."), zone));
  EXPECT_FALSE(IsSearchExpansion(WireName("xcluster.local."), zone));
  // One label whose last bytes equal the zone's wire form: the tail matches, the boundary does not.
  EXPECT_FALSE(IsSearchExpansion(WireName("a\\007cluster\\005local."), zone));
}

sockaddr_storage V4(const char* ip) {
  sockaddr_storage ss{};
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  inet_pton(AF_INET, ip, &a->sin_addr);
  return ss;
}

TEST(WastedQueryTrackerTest, CountsPerClientAndNameAndPublishesSnapshots) {
  WastedQueryTracker t;
  const auto api = WireName("api.example.com.");
  const auto db = WireName("DB.corp.");
  for (int i = 0; i < 5; ++i) t.Note(V4("10.0.0.1"), std::span(api).first(api.size() - 1));
  t.Note(V4("10.0.0.1"), std::span(db).first(db.size() - 1));
  t.Note(V4("10.0.0.2"), std::span(db).first(db.size() - 1));
  EXPECT_TRUE(t.Snapshot().empty()) << "nothing is visible before Publish()";
  t.Publish();
  const std::string json = RenderWastedQueriesJson({t.Snapshot()}, "cluster.local");
  EXPECT_NE(json.find("{\"client\":\"10.0.0.1\",\"wasted\":6,\"error\":0,\"names\":[{\"name\":"
                      "\"api.example.com\",\"wasted\":5},{\"name\":\"db.corp\",\"wasted\":1}]}"),
            std::string::npos)
      << json;
  EXPECT_LT(json.find("10.0.0.1"), json.find("10.0.0.2")) << "largest first";
}

TEST(WastedQueryTrackerTest, KeepsHeavyHittersWhenClientsOutnumberSlots) {
  WastedQueryTracker t;
  const auto n = WireName("x.");
  const auto base = std::span(n).first(n.size() - 1);
  for (int i = 0; i < 100; ++i) t.Note(V4("10.9.9.9"), base);  // the heavy hitter
  for (int c = 0; c < 500; ++c) {  // many light clients churn through the other slots
    t.Note(V4(("10.1." + std::to_string(c / 250) + "." + std::to_string(c % 250)).c_str()), base);
  }
  t.Publish();
  const auto snap = t.Snapshot();
  EXPECT_EQ(snap.size(), WastedQueryTracker::kClients);
  const std::string json = RenderWastedQueriesJson({snap}, "cluster.local");
  EXPECT_EQ(json.find("{\"client\":\"10.9.9.9\",\"wasted\":100"), json.find("{\"client\""))
      << "the heavy hitter is first with its exact count:\n"
      << json;
}

TEST(WastedQueryTrackerTest, MergesWorkersAndEscapesOddNames) {
  WastedQueryTracker a, b;
  std::vector<uint8_t> odd = {3, 'a', '"', 0xff};
  a.Note(V4("10.0.0.1"), odd);
  b.Note(V4("10.0.0.1"), odd);
  a.Publish();
  b.Publish();
  const std::string json = RenderWastedQueriesJson({a.Snapshot(), b.Snapshot()}, "cluster.local");
  EXPECT_NE(json.find("\"wasted\":2"), std::string::npos) << json;
  EXPECT_NE(json.find("a\\\\034\\\\255"), std::string::npos) << json;  // \DDD, JSON-escaped
  EXPECT_NE(RenderWastedQueriesTable({a.Snapshot()}, "cluster.local").find("10.0.0.1"),
            std::string::npos);
}

// GET /audit appends further members (the server passes RenderShedJson's) after "clients".
TEST(WastedQueryTrackerTest, FurtherMembersFollowTheClients) {
  WastedQueryTracker t;
  t.Note(V4("10.0.0.1"), std::vector<uint8_t>{3, 'a', 'p', 'i'});
  t.Publish();
  const std::string plain = RenderWastedQueriesJson({t.Snapshot()}, "cluster.local");
  MissAdmission shed;
  shed.NoteShed(V4("10.0.0.2"), MissAdmission::Verdict::kWorkerFull);
  shed.Publish();
  const std::string with =
      RenderWastedQueriesJson({t.Snapshot()}, "cluster.local", RenderShedJson({shed.Snapshot()}));
  EXPECT_EQ(with, plain.substr(0, plain.size() - 2) +
                      ",\"shed\":[{\"client\":\"10.0.0.2\",\"misses\":1,\"client_share\":0,"
                      "\"error\":0}]}\n");
}

}  // namespace
}  // namespace nodedns::proxy

namespace nodedns::proxy {
namespace {

TEST(WastedQueryTrackerTest, ResolvesTheNamespaceAmbiguityWithTheClientsFirstQuery) {
  WastedQueryTracker t;
  const auto zone = WireName("cluster.local.");
  // glibc's walk for api.corp: first element, then second; the second reads as "api" in
  // namespace "corp" or as "api.corp" under svc.cluster.local.
  for (const char* q : {"api.corp.default.svc.cluster.local.", "api.corp.svc.cluster.local."}) {
    const auto wire = WireName(q);
    size_t alt = 0;
    const size_t base = SearchBaseLength(wire, zone, &alt);
    t.Note(V4("10.0.0.7"), std::span(wire).first(base), std::span(wire).first(alt));
  }
  t.Publish();
  const std::string json = RenderWastedQueriesJson({t.Snapshot()}, "cluster.local");
  EXPECT_NE(json.find("[{\"name\":\"api.corp\",\"wasted\":2}]"), std::string::npos) << json;
}

}  // namespace
}  // namespace nodedns::proxy
