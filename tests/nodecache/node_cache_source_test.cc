// Tests for NodeCacheSource (nodecache/node_cache_command.h): the Corefile generated from a base
// file and a kube-dns ConfigMap directory in a temporary directory, written to -conf and
// translated; and the change detection that drives reloads.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nodecache/node_cache_command.h"
#include "nodecache/node_cache_flags.h"

namespace nodedns::nodecache {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// The stock Corefile.base's shape: the cluster zone to the cluster DNS over TCP, the rest to the
// kube-dns ConfigMap's upstreams.
constexpr char kBase[] = R"(cluster.local:53 {
    errors
    cache {
            success 9984 30
            denial 9984 5
    }
    bind __PILLAR__LOCAL__DNS__
    forward . __PILLAR__CLUSTER__DNS__ {
            force_tcp
    }
    prometheus :9253
    health __PILLAR__LOCAL__DNS__:8080
}
.:53 {
    errors
    cache 30
    bind __PILLAR__LOCAL__DNS__
    forward . __PILLAR__UPSTREAM__SERVERS__
    prometheus :9253
}
)";

// kBase after node-cache's substitutions for the fixture's flags and environment, with the stub
// domain block appended.
constexpr char kGenerated[] = R"(cluster.local:53 {
    errors
    cache {
            success 9984 30
            denial 9984 5
    }
    bind 169.254.20.10
    forward . 10.96.0.20 {
            force_tcp
    }
    prometheus :9253
    health 169.254.20.10:8080
}
.:53 {
    errors
    cache 30
    bind 169.254.20.10
    forward . 8.8.8.8
    prometheus :9253
}

acme.local:53 {
    errors
    cache 30
    bind 169.254.20.10
    forward . 10.0.0.53
}
)";

const char* FakeGetenv(const char* name) {
  return std::strcmp(name, "KUBE_DNS_UPSTREAM_SERVICE_HOST") == 0 ? "10.96.0.20" : nullptr;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> Zones(const proxy::ServeConfig& c) {
  std::vector<std::string> out;
  for (const auto& z : c.zones) {
    std::vector<std::string> ups;
    for (const auto& u : z.upstreams) ups.push_back(u.ToString());
    out.push_back(absl::StrCat(z.zone, " ", absl::StrJoin(ups, ","), z.force_tcp ? " tcp" : ""));
  }
  return out;
}

std::vector<std::string> Endpoints(const proxy::ServeConfig& c) {
  std::vector<std::string> out;
  for (const auto& e : c.http) out.push_back(e.ToString());
  return out;
}

class NodeCacheSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nodecache_source_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    base_ = dir_ + "/Corefile.base";
    conf_ = dir_ + "/Corefile";
    kube_ = dir_ + "/kube-dns";
    ASSERT_EQ(mkdir(kube_.c_str(), 0755), 0);
    Write(base_, kBase);
    Write(kube_ + "/stubDomains", R"({"acme.local": ["10.0.0.53"]})");
    Write(kube_ + "/upstreamNameservers", R"(["8.8.8.8"])");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static void Write(const std::string& path, const std::string& data) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  }

  // The DaemonSet's arguments pointed at the temporary directory, then `extra`.
  NodeCacheSource Source(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "-localip", "169.254.20.10", "-basecorefile", base_,          "-conf",
        conf_,      "-kubednscm",    kube_,           "-upstreamsvc", "kube-dns-upstream"};
    args.insert(args.end(), extra.begin(), extra.end());
    absl::StatusOr<NodeCacheFlags> flags = ParseNodeCacheFlags(args);
    EXPECT_TRUE(flags.ok()) << flags.status();
    return NodeCacheSource(flags.ok() ? *flags : NodeCacheFlags{}, FakeGetenv);
  }

  std::string dir_, base_, conf_, kube_;
};

TEST_F(NodeCacheSourceTest, LoadWritesTheGeneratedCorefileToConf) {
  NodeCacheSource source = Source();
  absl::StatusOr<NodeCacheConfig> c = source.LoadFull();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(ReadFile(conf_), kGenerated);
  EXPECT_EQ(ReadFile(base_), kBase);  // the template is only read
}

TEST_F(NodeCacheSourceTest, LoadServesTheGeneratedCorefileWithStubDomainsAsZones) {
  NodeCacheSource source = Source();
  absl::StatusOr<NodeCacheConfig> c = source.LoadFull();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(Zones(c->serve), UnorderedElementsAre("cluster.local 10.96.0.20:53 tcp",
                                                    "acme.local 10.0.0.53:53", ". 8.8.8.8:53"));
  ASSERT_EQ(c->serve.listen.size(), 1u);
  EXPECT_EQ(c->serve.listen[0].ToString(), "169.254.20.10:53");
  // The Corefile's endpoints (health before prometheus within a block), then node-cache's own
  // -metrics-listen-address (default :9353).
  EXPECT_THAT(Endpoints(c->serve),
              ElementsAre("169.254.20.10:8080 health", "0.0.0.0:9253 metrics,audit",
                          "0.0.0.0:9353 metrics,audit"));
  EXPECT_TRUE(c->serve.coredns_metrics);
  EXPECT_EQ(c->serve.cluster_domain, "cluster.local");
}

TEST_F(NodeCacheSourceTest, DnsPortFlagIsTheStubDomainsPort) {
  // The base's keys name port 53 themselves; only the appended stub block takes -dns.port, and
  // listen addresses must then differ in zones: nodedns refuses the mix.
  NodeCacheSource source = Source({"-dns.port", "5353"});
  absl::StatusOr<NodeCacheConfig> c = source.LoadFull();
  EXPECT_THAT(ReadFile(conf_), HasSubstr("\nacme.local:5353 {\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("169.254.20.10:5353 serves zones {acme.local.}"));
}

TEST_F(NodeCacheSourceTest, MetricsListenAddressSharedWithTheCorefileIsOneEndpoint) {
  NodeCacheSource source = Source({"-metrics-listen-address", "169.254.20.10:8080"});
  absl::StatusOr<NodeCacheConfig> c = source.LoadFull();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(Endpoints(c->serve),
              ElementsAre("169.254.20.10:8080 health,metrics,audit", "0.0.0.0:9253 metrics,audit"));
}

TEST_F(NodeCacheSourceTest, WithoutABaseCorefileConfIsReadAsIs) {
  std::filesystem::remove(base_);
  const std::string corefile = ".:53 {\n    bind 127.0.0.1\n    forward . 10.0.0.1\n}\n";
  Write(conf_, corefile);
  NodeCacheSource source = Source();
  absl::StatusOr<NodeCacheConfig> c = source.LoadFull();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(ReadFile(conf_), corefile);
  // Nothing generated: the kube-dns ConfigMap's stub domains and upstreams are not applied.
  EXPECT_THAT(Zones(c->serve), ElementsAre(". 10.0.0.1:53"));
  ASSERT_EQ(c->serve.listen.size(), 1u);
  EXPECT_EQ(c->serve.listen[0].ToString(), "127.0.0.1:53");
}

TEST_F(NodeCacheSourceTest, WithoutBaseCorefileOrConfLoadFails) {
  std::filesystem::remove(base_);
  NodeCacheSource source = Source();
  absl::StatusOr<NodeCacheConfig> c = source.LoadFull();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            absl::StrCat("-basecorefile ", base_, " and -conf ", conf_, ": neither can be read"));
}

TEST_F(NodeCacheSourceTest, UnwritableConfIsNotFatal) {
  // The generated file is for people to read; nodedns serves from memory.
  const std::string conf = dir_ + "/missing-dir/Corefile";
  NodeCacheSource source = Source({"-conf", conf});
  absl::StatusOr<NodeCacheConfig> c = source.LoadFull();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(std::filesystem::exists(conf));
  EXPECT_EQ(c->serve.zones.size(), 3u);
}

TEST_F(NodeCacheSourceTest, NothingChangedRightAfterALoad) {
  NodeCacheSource source = Source();
  ASSERT_TRUE(source.LoadFull().ok());
  // Writing -conf is the load's own doing, not a change of its inputs.
  EXPECT_FALSE(source.Changed());
  EXPECT_FALSE(source.Changed());
}

TEST_F(NodeCacheSourceTest, ChangeOfAnyInputFileIsSeen) {
  NodeCacheSource source = Source();
  for (const std::string& path : {base_, kube_ + "/stubDomains", kube_ + "/upstreamNameservers"}) {
    ASSERT_TRUE(source.LoadFull().ok()) << path;
    ASSERT_FALSE(source.Changed()) << path;
    // The same bytes again (a ConfigMap resync) are no change.
    Write(path, ReadFile(path));
    EXPECT_FALSE(source.Changed()) << path;
    Write(path, ReadFile(path) + "\n");
    EXPECT_TRUE(source.Changed()) << path;
  }
}

TEST_F(NodeCacheSourceTest, RemovedKubeDnsFileIsAChange) {
  NodeCacheSource source = Source();
  ASSERT_TRUE(source.LoadFull().ok());
  std::filesystem::remove(kube_ + "/stubDomains");
  EXPECT_TRUE(source.Changed());
  absl::StatusOr<NodeCacheConfig> c = source.LoadFull();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(source.Changed());
  EXPECT_THAT(Zones(c->serve),
              UnorderedElementsAre("cluster.local 10.96.0.20:53 tcp", ". 8.8.8.8:53"));
}

TEST_F(NodeCacheSourceTest, WithoutABaseCorefileChangeOfConfIsSeen) {
  std::filesystem::remove(base_);
  Write(conf_, ".:53 {\n    forward . 10.0.0.1\n}\n");
  NodeCacheSource source = Source();
  ASSERT_TRUE(source.LoadFull().ok());
  EXPECT_FALSE(source.Changed());
  Write(conf_, ".:53 {\n    forward . 10.0.0.2\n}\n");
  EXPECT_TRUE(source.Changed());
}

TEST_F(NodeCacheSourceTest, BadKubeDnsFileFailsTheLoadNamingTheFile) {
  Write(kube_ + "/stubDomains", R"({"acme.local": "10.0.0.53"})");
  NodeCacheSource source = Source();
  absl::StatusOr<proxy::ServeConfig> c = source.Load();
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr(absl::StrCat("-kubednscm ", kube_, ": ")));
  EXPECT_THAT(c.status().message(), HasSubstr("stubDomains"));
  // The failed load's inputs are remembered: no reload until they change again.
  EXPECT_FALSE(source.Changed());
}

TEST_F(NodeCacheSourceTest, MissingClusterDnsVariableFailsTheLoad) {
  absl::StatusOr<NodeCacheFlags> flags = ParseNodeCacheFlags(
      std::vector<std::string>{"-localip", "169.254.20.10", "-basecorefile", base_, "-conf", conf_,
                               "-kubednscm", kube_, "-upstreamsvc", "kube-dns-upstream"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  NodeCacheSource source(*flags, [](const char*) -> const char* { return nullptr; });
  absl::StatusOr<proxy::ServeConfig> c = source.Load();
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr(absl::StrCat(base_, ":8: ")));
  EXPECT_THAT(c.status().message(), HasSubstr("KUBE_DNS_UPSTREAM_SERVICE_HOST is not set"));
}

}  // namespace
}  // namespace nodedns::nodecache
