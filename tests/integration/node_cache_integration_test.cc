// `nodedns node-cache` end to end: NodeLocal DNSCache's own ConfigMap, arguments and kube-dns
// ConfigMap, with Knot DNS standing in for CoreDNS (the cluster zone) and for the node's
// resolvers, and a ScriptedUpstream where a test must see how it was asked (force_tcp, stub
// domains).
//
// The stock Corefile is tests/nodecache/testdata/stock/Corefile.base.unsubstituted (the ConfigMap
// of kubernetes/kubernetes cluster/addons/dns/nodelocaldns/nodelocaldns.yaml). Each test installs
// it as its README says (sed of __PILLAR__DNS__DOMAIN__, __PILLAR__LOCAL__DNS__ and
// __PILLAR__DNS__SERVER__: here cluster.local, 127.0.0.1 and 127.0.0.2) and moves its fixed ports
// (53, 8080, 9253, and the cluster DNS's 53) to free loopback ports, with -dns.port for the
// stub-domain blocks node-cache writes; nothing else is changed.
// The arguments are the DaemonSet's, plus -setupinterface=false -setupiptables=false: these tests
// run in the host's network namespace and must not touch its interfaces or rules
// (node_setup_integration_test covers both in a private one).
#include <arpa/inet.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/dns_builder.h"
#include "tests/testing/knot.h"
#include "tests/testing/net.h"
#include "tests/testing/nodedns_process.h"
#include "tests/testing/process.h"
#include "tests/testing/scripted_upstream.h"

namespace {

using nodedns::testing::Action;
using nodedns::testing::AnswerAddresses;
using nodedns::testing::Build;
using nodedns::testing::BuildQuery;
using nodedns::testing::Bytes;
using nodedns::testing::FreePorts;
using nodedns::testing::HttpGet;
using nodedns::testing::KnotServer;
using nodedns::testing::MessageSpec;
using nodedns::testing::MetricValue;
using nodedns::testing::Parse;
using nodedns::testing::Process;
using nodedns::testing::ReadFile;
using nodedns::testing::ReplySpecFor;
using nodedns::testing::ScriptedUpstream;
using nodedns::testing::SeenQuery;
using nodedns::testing::TcpExchange;
using nodedns::testing::UdpExchangeTo;
using nodedns::testing::WriteFile;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr char kLocalIp[] = "127.0.0.1";      // __PILLAR__LOCAL__DNS__ (169.254.20.10)
constexpr char kDnsServerIp[] = "127.0.0.2";  // __PILLAR__DNS__SERVER__ (the kube-dns IP)

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

uint8_t Rcode(const Bytes& reply) { return reply.size() > 3 ? reply[3] & 0xf : 0xff; }

// The smallest TTL of a reply's records.
uint32_t MinTtl(const Bytes& reply) {
  auto p = Parse(reply);
  if (!p) return UINT32_MAX;
  uint32_t m = UINT32_MAX;
  for (uint32_t t : nodedns::testing::AllTtls(p.get())) m = std::min(m, t);
  return m;
}

// A strict reading of Prometheus text format 0.0.4: every sample's family has # HELP and # TYPE
// first, label sets are well formed, values are numbers, histograms' buckets never decrease and
// end with +Inf equal to _count. Returns the problems found.
std::vector<std::string> PrometheusProblems(const std::string& text) {
  std::vector<std::string> problems;
  std::map<std::string, std::string> type_of;
  std::set<std::string> helped;
  const std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*)?\})? (-?[0-9.eE+-]+|\+Inf|NaN)$)");
  std::map<std::string, double> last_bucket;  // series (without le) → last cumulative count
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      helped.insert(line.substr(7, line.find(' ', 7) - 7));
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      const std::string rest = line.substr(7);
      type_of[rest.substr(0, rest.find(' '))] = rest.substr(rest.find(' ') + 1);
      continue;
    }
    std::smatch m;
    if (!std::regex_match(line, m, sample)) {
      problems.push_back("bad line: " + line);
      continue;
    }
    std::string family = m[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (family.size() > s.size() && family.ends_with(s) &&
          type_of.contains(family.substr(0, family.size() - s.size())) &&
          type_of[family.substr(0, family.size() - s.size())] == "histogram") {
        family = family.substr(0, family.size() - s.size());
      }
    }
    if (!type_of.contains(family) || !helped.contains(family)) {
      problems.push_back("no HELP/TYPE before: " + line);
    }
    if (std::string(m[1]).ends_with("_bucket")) {
      const std::string labels = m[3];
      const std::string series = std::regex_replace(labels, std::regex(R"(,?le="[^"]*")"), "");
      const double v = std::stod(m[7]);
      if (last_bucket.contains(series) && v < last_bucket[series]) {
        problems.push_back("bucket decreases: " + line);
      }
      last_bucket[series] = v;
    }
  }
  return problems;
}

class NodeCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!nodedns::testing::HaveKnot()) {
      GTEST_SKIP() << "needs Knot DNS: " << nodedns::testing::KnotdPath();
    }
    char tmpl[] = "/tmp/nodedns-nc-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // Readable by all, as a ConfigMap volume is: run as root, nodedns drops to uid 65534 once it
    // serves (-runas), and reloads read these files as that user.
    ASSERT_EQ(chmod(tmpl, 0755), 0);
    const auto ports = FreePorts(5);
    ASSERT_EQ(ports.size(), 5u);
    knot_port_ = ports[0];
    dns_port_ = ports[1];
    health_port_ = ports[2];
    prom_port_ = ports[3];
    nodecache_metrics_port_ = ports[4];
    ASSERT_NO_FATAL_FAILURE(knot_.Start(
        dir_ + "/knot", knot_port_,
        {{"cluster.local",
          "$ORIGIN cluster.local.\n$TTL 300\n@ SOA ns hostmaster 1 7200 1800 86400 60\n@ NS ns\n"
          "ns A 10.96.0.10\nkubernetes.default.svc A 10.96.0.1\n"},
         {"example.test",
          "$ORIGIN example.test.\n$TTL 300\n@ SOA ns hostmaster 1 7200 1800 86400 60\n@ NS ns\n"
          "ns A 192.0.2.53\nwww A 192.0.2.1\nother A 192.0.2.2\n"}}));
    setenv("KUBE_DNS_UPSTREAM_SERVICE_HOST", "127.0.0.1", 1);
    std::filesystem::create_directories(dir_ + "/etc/coredns");
    std::filesystem::create_directories(dir_ + "/etc/kube-dns");
  }

  void TearDown() override {
    Stop();
    knot_.Stop();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // The stock ConfigMap's Corefile as installed (README's sed), with its ports moved; the
  // cluster DNS (kube-dns-upstream) at `cluster_dns_port` (Knot unless given). Without
  // `install_local_ips`, the install left __PILLAR__LOCAL__DNS__ and __PILLAR__DNS__SERVER__ for
  // node-cache to substitute (but health's address, which must be one IP, is set).
  std::string StockBase(std::optional<uint16_t> cluster_dns_port = {},
                        bool install_local_ips = true) {
    std::string s = ReadFile(std::string(NODEDNS_SOURCE_DIR) +
                             "/tests/nodecache/testdata/stock/Corefile.base.unsubstituted");
    s = Replace(s, "__PILLAR__DNS__DOMAIN__", "cluster.local");
    s = Replace(s, "health __PILLAR__LOCAL__DNS__:", std::string("health ") + kLocalIp + ":");
    if (install_local_ips) {
      s = Replace(s, "__PILLAR__LOCAL__DNS__", kLocalIp);
      s = Replace(s, "__PILLAR__DNS__SERVER__", kDnsServerIp);
    }
    s = Replace(s, ":53 {", ":" + std::to_string(dns_port_) + " {");
    s = Replace(s, ":8080", ":" + std::to_string(health_port_));
    s = Replace(s, "prometheus :9253", "prometheus 127.0.0.1:" + std::to_string(prom_port_));
    s = Replace(
        s, "__PILLAR__CLUSTER__DNS__",
        "__PILLAR__CLUSTER__DNS__:" + std::to_string(cluster_dns_port.value_or(knot_port_)));
    return s;
  }

  std::string Base() const { return dir_ + "/etc/coredns/Corefile.base"; }

  // The DaemonSet's args (and the two setup flags; `extra` after them).
  std::vector<std::string> Args(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> a = {NODEDNS_BINARY,
                                  "node-cache",
                                  "-localip",
                                  std::string(kLocalIp) + "," + kDnsServerIp,
                                  "-conf",
                                  dir_ + "/etc/Corefile",
                                  "-upstreamsvc",
                                  "kube-dns-upstream",
                                  "-pidfile",
                                  dir_ + "/node-cache.pid",
                                  "-basecorefile",
                                  Base(),
                                  "-kubednscm",
                                  dir_ + "/etc/kube-dns",
                                  "-metrics-listen-address",
                                  "127.0.0.1:" + std::to_string(nodecache_metrics_port_),
                                  "-dns.port",
                                  std::to_string(dns_port_),
                                  "-setupinterface=false",
                                  "-setupiptables=false"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // The kube-dns ConfigMap: upstreamNameservers for '.', Knot by default (the node's
  // resolv.conf is not the test's to change).
  void KubeDns(const std::string& stub_domains_json, const std::string& upstreams_json = "") {
    WriteFile(dir_ + "/etc/kube-dns/stubDomains", stub_domains_json);
    WriteFile(dir_ + "/etc/kube-dns/upstreamNameservers",
              upstreams_json.empty() ? "[\"127.0.0.1:" + std::to_string(knot_port_) + "\"]"
                                     : upstreams_json);
  }

  void Start(const std::vector<std::string>& extra = {}) {
    started_ = true;
    ASSERT_NO_FATAL_FAILURE(
        nodedns::testing::StartNodedns(nodedns_, Args(extra), dir_ + "/nodedns.log"));
  }
  void Stop() {
    if (!started_) return;
    started_ = false;
    nodedns::testing::StopNodedns(nodedns_);
  }

  // SIGUSR1, then waits for the log to report the outcome (`want` "reloaded" or "reload failed").
  void Reload(const std::string& want) {
    const size_t before = Count(nodedns_.Log(), want);
    ASSERT_EQ(kill(nodedns_.pid(), SIGUSR1), 0);
    const auto deadline = Clock::now() + milliseconds(10000);
    while (Count(nodedns_.Log(), want) == before) {
      ASSERT_LT(Clock::now(), deadline) << "no '" << want << "' in the log:\n" << nodedns_.Log();
      std::this_thread::sleep_for(milliseconds(20));
    }
    std::this_thread::sleep_for(milliseconds(100));  // the workers take it between callbacks
  }
  static size_t Count(const std::string& s, const std::string& what) {
    size_t n = 0;
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
    return n;
  }

  Bytes Ask(const std::string& name, uint16_t type = 1, const char* addr = kLocalIp) {
    auto r = UdpExchangeTo(addr, dns_port_, BuildQuery(name, type));
    EXPECT_TRUE(r.has_value()) << "no reply for " << name << " from " << addr;
    return r.value_or(Bytes{});
  }

  std::string Metrics(uint16_t port) {
    auto m = HttpGet(port, "/metrics");
    EXPECT_TRUE(m.has_value()) << "GET /metrics on " << port;
    return m.value_or("");
  }

  // Runs the binary to completion with `args` and returns (exit code, stderr+stdout).
  std::pair<int, std::string> RunToExit(const std::vector<std::string>& args) {
    Process p;
    const std::string log = dir_ + "/exit.log";
    EXPECT_TRUE(p.Start(args, log));
    const auto deadline = Clock::now() + milliseconds(10000);
    while (p.Running() && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(20));
    const auto st = p.Stop(milliseconds(100));
    const int code = st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
    return {code, ReadFile(log)};
  }

  std::string dir_;
  KnotServer knot_;
  Process nodedns_;
  bool started_ = false;
  uint16_t knot_port_ = 0, dns_port_ = 0, health_port_ = 0, prom_port_ = 0,
           nodecache_metrics_port_ = 0;
};

TEST_F(NodeCacheTest, StockConfigMapServesClusterAndExternalNamesOnBothAddresses) {
  WriteFile(Base(), StockBase());
  KubeDns("{}");
  ASSERT_NO_FATAL_FAILURE(Start());
  for (const char* addr : {kLocalIp, kDnsServerIp}) {
    EXPECT_EQ(AnswerAddresses(Ask("kubernetes.default.svc.cluster.local.", 1, addr)),
              std::vector<std::string>{"10.96.0.1"})
        << addr;
    EXPECT_EQ(AnswerAddresses(Ask("www.example.test.", 1, addr)),
              std::vector<std::string>{"192.0.2.1"})
        << addr;
  }
  auto tcp = TcpExchange(dns_port_, BuildQuery("www.example.test.", 1));
  ASSERT_TRUE(tcp.has_value());
  EXPECT_EQ(AnswerAddresses(*tcp), std::vector<std::string>{"192.0.2.1"});
  // What node-cache writes for CoreDNS, and the liveness probe's URL.
  const std::string written = ReadFile(dir_ + "/etc/Corefile");
  EXPECT_NE(written.find("forward . 127.0.0.1:" + std::to_string(knot_port_)), std::string::npos)
      << written;
  EXPECT_EQ(HttpGet(health_port_, "/health"), std::optional<std::string>("OK\n"));
  EXPECT_NE(ReadFile(dir_ + "/node-cache.pid").find(std::to_string(nodedns_.pid())),
            std::string::npos);
}

TEST_F(NodeCacheTest, DualStackLocalIpsServeBothFamilies) {
  // node-cache substitutes __PILLAR__LOCAL__DNS__ itself when the install left it: here with an
  // IPv4 and an IPv6 address (node-cache wants one family; nodedns serves both).
  WriteFile(Base(), StockBase({}, /*install_local_ips=*/false));
  KubeDns("{}");
  std::vector<std::string> args = Args();
  args[3] = "127.0.0.1,::1";  // -localip
  started_ = true;
  ASSERT_NO_FATAL_FAILURE(nodedns::testing::StartNodedns(nodedns_, args, dir_ + "/nodedns.log"));
  for (const char* addr : {"127.0.0.1", "::1"}) {
    EXPECT_EQ(AnswerAddresses(Ask("kubernetes.default.svc.cluster.local.", 1, addr)),
              std::vector<std::string>{"10.96.0.1"})
        << addr;
  }
  const std::string m = Metrics(prom_port_);
  EXPECT_EQ(MetricValue(
                m, "coredns_dns_requests_total{server=\"dns://[::1]:" + std::to_string(dns_port_) +
                       "\",zone=\"cluster.local.\",view=\"\",proto=\"udp\",family=\"2\","
                       "type=\"A\"}"),
            1);
}

TEST_F(NodeCacheTest, CacheBlocksCapTtlsPerZone) {
  WriteFile(Base(), StockBase());
  KubeDns("{}");
  ASSERT_NO_FATAL_FAILURE(Start());
  // cluster.local: `success 9984 30`, `denial 9984 5`; '.': `cache 30`. Knot says 300 and 60.
  EXPECT_LE(MinTtl(Ask("kubernetes.default.svc.cluster.local.")), 30u);
  EXPECT_GT(MinTtl(Ask("kubernetes.default.svc.cluster.local.")), 0u);
  const Bytes nx = Ask("missing.default.svc.cluster.local.");
  EXPECT_EQ(Rcode(nx), 3);
  EXPECT_LE(MinTtl(nx), 5u);
  EXPECT_LE(MinTtl(Ask("www.example.test.")), 30u);
  // Served from the cache the second time: Knot would still say 300.
  EXPECT_LE(MinTtl(Ask("www.example.test.")), 30u);
}

TEST_F(NodeCacheTest, ForceTcpReachesTheClusterDnsOverTcpOnly) {
  ScriptedUpstream cluster([](const SeenQuery& q) {
    MessageSpec s = ReplySpecFor(q);
    s.answer = {q.name + " 30 IN A 10.96.0.99"};
    return Action::Reply(Build(s));
  });
  WriteFile(Base(), StockBase(cluster.port()));
  KubeDns("{}");
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(AnswerAddresses(Ask("svc1.ns.svc.cluster.local.")),
            std::vector<std::string>{"10.96.0.99"});
  Ask("1.0.96.10.in-addr.arpa.", 12);
  EXPECT_EQ(cluster.Count("svc1.ns.svc.cluster.local.", /*tcp=*/true), 1);
  EXPECT_EQ(cluster.Count("svc1.ns.svc.cluster.local.", /*tcp=*/false), 0);
  EXPECT_EQ(cluster.Count("1.0.96.10.in-addr.arpa.", /*tcp=*/true), 1);
  EXPECT_EQ(cluster.Count("1.0.96.10.in-addr.arpa.", /*tcp=*/false), 0);
  // '.' goes to the kube-dns ConfigMap's upstreamNameservers over UDP (node-cache's swap).
  EXPECT_EQ(AnswerAddresses(Ask("www.example.test.")), std::vector<std::string>{"192.0.2.1"});
}

TEST_F(NodeCacheTest, StubDomainsComeFromTheKubeDnsConfigMapAndFollowItsChanges) {
  ScriptedUpstream stub([](const SeenQuery& q) {
    MessageSpec s = ReplySpecFor(q);
    s.answer = {q.name + " 30 IN A 198.51.100.7"};
    return Action::Reply(Build(s));
  });
  WriteFile(Base(), StockBase());
  const std::string stub_ns = "\"127.0.0.1:" + std::to_string(stub.port()) + "\"";
  KubeDns("{\"corp.test\": [" + stub_ns + "]}");
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(AnswerAddresses(Ask("host.corp.test.")), std::vector<std::string>{"198.51.100.7"});
  EXPECT_EQ(stub.Count("host.corp.test.", false), 1);
  // Knot does not serve lab.test: REFUSED until the ConfigMap names a stub for it.
  EXPECT_EQ(Rcode(Ask("host.lab.test.")), 5);
  KubeDns("{\"corp.test\": [" + stub_ns + "], \"lab.test\": [" + stub_ns + "]}");
  ASSERT_NO_FATAL_FAILURE(Reload("reloaded"));
  EXPECT_EQ(AnswerAddresses(Ask("host.lab.test.")), std::vector<std::string>{"198.51.100.7"});
  // A broken ConfigMap is a failed reload, counted as node-cache counts it.
  KubeDns("{\"corp.test\": [\"not an address\"]}");
  ASSERT_NO_FATAL_FAILURE(Reload("reload failed"));
  const std::string m = Metrics(prom_port_);
  EXPECT_EQ(MetricValue(m, "coredns_nodecache_setup_errors_total{errortype=\"configmap\"}"), 1);
  EXPECT_EQ(MetricValue(m, "coredns_reload_failed_total"), 1);
  EXPECT_EQ(AnswerAddresses(Ask("x.lab.test.")), std::vector<std::string>{"198.51.100.7"});
}

TEST_F(NodeCacheTest, ReloadKeepsTheCacheAndAppliesTheNewUpstreams) {
  WriteFile(Base(), StockBase());
  KubeDns("{}");
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(AnswerAddresses(Ask("www.example.test.")), std::vector<std::string>{"192.0.2.1"});
  // '.' now forwards to a port nobody answers on.
  const uint16_t dead = FreePorts(1).at(0);
  KubeDns("{}", "[\"127.0.0.1:" + std::to_string(dead) + "\"]");
  ASSERT_NO_FATAL_FAILURE(Reload("reloaded"));
  const double hits = MetricValue(Metrics(prom_port_), "nodedns_cache_hits_total");
  // Cached before the reload: still answered, from the cache.
  EXPECT_EQ(AnswerAddresses(Ask("www.example.test.")), std::vector<std::string>{"192.0.2.1"});
  EXPECT_EQ(MetricValue(Metrics(prom_port_), "nodedns_cache_hits_total"), hits + 1);
  // Not cached: goes to the new (dead) upstream.
  EXPECT_EQ(Rcode(Ask("other.example.test.")), 2);
  EXPECT_EQ(MetricValue(Metrics(prom_port_), "coredns_reload_failed_total"), 0);
}

TEST_F(NodeCacheTest, ChangedInputsAreReloadedWithoutASignal) {
  // `reload 2s 1s` (CoreDNS's minimum): the inputs are polled every 2 s.
  WriteFile(Base(), Replace(StockBase(), "reload\n", "reload 2s 1s\n"));
  KubeDns("{}");
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(Rcode(Ask("host.lab.test.")), 5);  // Knot does not serve lab.test
  ScriptedUpstream stub([](const SeenQuery& q) {
    MessageSpec s = ReplySpecFor(q);
    s.answer = {q.name + " 30 IN A 198.51.100.8"};
    return Action::Reply(Build(s));
  });
  KubeDns("{\"lab.test\": [\"127.0.0.1:" + std::to_string(stub.port()) + "\"]}");
  const auto deadline = Clock::now() + milliseconds(10000);
  while (Count(nodedns_.Log(), "reloaded") == 0) {
    ASSERT_LT(Clock::now(), deadline) << "no reload within 10 s:\n" << nodedns_.Log();
    std::this_thread::sleep_for(milliseconds(50));
  }
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(AnswerAddresses(Ask("host2.lab.test.")), std::vector<std::string>{"198.51.100.8"});
  // Unchanged inputs are not reloaded again.
  std::this_thread::sleep_for(milliseconds(2500));
  EXPECT_EQ(Count(nodedns_.Log(), "reloaded"), 1u) << nodedns_.Log();
}

TEST_F(NodeCacheTest, BadReloadKeepsServingTheOldConfiguration) {
  WriteFile(Base(), StockBase());
  KubeDns("{}");
  ASSERT_NO_FATAL_FAILURE(Start());
  WriteFile(Base(), StockBase() + "\nexample.org:" + std::to_string(dns_port_) +
                        " {\n    bind 127.0.0.1 127.0.0.2\n    rewrite name a b\n}\n");
  ASSERT_NO_FATAL_FAILURE(Reload("reload failed"));
  const std::string log = nodedns_.Log();
  EXPECT_NE(log.find("/etc/Corefile:"), std::string::npos) << log;
  EXPECT_NE(log.find("rewrite"), std::string::npos) << log;
  EXPECT_EQ(MetricValue(Metrics(prom_port_), "coredns_reload_failed_total"), 1);
  EXPECT_EQ(AnswerAddresses(Ask("other.example.test.")), std::vector<std::string>{"192.0.2.2"});
  // A reload that needs a restart (a new listen port) fails the same way.
  WriteFile(Base(), Replace(StockBase(), ":" + std::to_string(dns_port_) + " {", ":5 {"));
  ASSERT_NO_FATAL_FAILURE(Reload("reload failed"));
  EXPECT_NE(nodedns_.Log().find("needs a restart"), std::string::npos);
  EXPECT_EQ(MetricValue(Metrics(prom_port_), "coredns_reload_failed_total"), 2);
}

TEST_F(NodeCacheTest, MaxConcurrentIsNodeWide) {
  // One upstream query at a time for '.', whatever worker a query lands on: six distinct names
  // from six sockets (spread over the workers by SO_REUSEPORT) while the upstream sits on the
  // first for 1 s.
  ScriptedUpstream slow([](const SeenQuery& q) {
    MessageSpec s = ReplySpecFor(q);
    s.answer = {q.name + " 30 IN A 192.0.2.77"};
    return Action::Reply(Build(s), milliseconds(1000));
  });
  const std::string port = std::to_string(dns_port_);
  WriteFile(dir_ + "/etc/Corefile",
            ".:" + port + " {\n    bind 127.0.0.1\n    forward . 127.0.0.1:" +
                std::to_string(slow.port()) + " {\n        max_concurrent 1\n    }\n" +
                "    prometheus 127.0.0.1:" + std::to_string(prom_port_) + "\n}\n");
  std::filesystem::remove(Base());
  ASSERT_NO_FATAL_FAILURE(Start({"-quiet=false"}));
  std::vector<std::thread> clients;
  std::vector<int> rcodes(6, -1);
  for (int i = 0; i < 6; ++i) {
    clients.emplace_back([&, i] {
      if (i > 0) std::this_thread::sleep_for(milliseconds(200));  // after the first is sent
      const Bytes r = Ask("n" + std::to_string(i) + ".example.");
      rcodes[i] = r.empty() ? -1 : Rcode(r);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(rcodes[0], 0);
  for (int i = 1; i < 6; ++i) EXPECT_EQ(rcodes[i], 5) << "query " << i;
  EXPECT_EQ(slow.queries(), 1);
  EXPECT_EQ(MetricValue(Metrics(prom_port_), "coredns_forward_max_concurrent_rejects_total"), 5);
}

TEST_F(NodeCacheTest, TwoUpstreamsFailOverToTheOneThatAnswers) {
  WriteFile(Base(), StockBase());
  const uint16_t dead = FreePorts(1).at(0);
  KubeDns("{}", "[\"127.0.0.1:" + std::to_string(dead) +
                    "\", \"127.0.0.1:" + std::to_string(knot_port_) + "\"]");
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(AnswerAddresses(Ask("www.example.test.")), std::vector<std::string>{"192.0.2.1"});
}

TEST_F(NodeCacheTest, MetricsCountWhatWasSentWithCoreDnsNamesAndLabels) {
  WriteFile(Base(), StockBase());
  KubeDns("{}");
  ASSERT_NO_FATAL_FAILURE(Start());
  for (int i = 0; i < 3; ++i) Ask("kubernetes.default.svc.cluster.local.");  // 1 miss, 2 hits
  Ask("kubernetes.default.svc.cluster.local.", 28, kDnsServerIp);            // NODATA
  Ask("missing.default.svc.cluster.local.");                                 // NXDOMAIN
  Ask("www.example.test.");
  ASSERT_TRUE(TcpExchange(dns_port_, BuildQuery("www.example.test.", 1)).has_value());
  const std::string local = "server=\"dns://127.0.0.1:" + std::to_string(dns_port_) + "\"";
  const std::string other = "server=\"dns://127.0.0.2:" + std::to_string(dns_port_) + "\"";
  for (uint16_t port : {prom_port_, nodecache_metrics_port_}) {
    const std::string m = Metrics(port);
    EXPECT_EQ(PrometheusProblems(m), std::vector<std::string>{});
    auto v = [&](const std::string& s) { return MetricValue(m, s); };
    EXPECT_EQ(v("coredns_dns_requests_total{" + local +
                ",zone=\"cluster.local.\",view=\"\",proto=\"udp\",family=\"1\",type=\"A\"}"),
              4);
    EXPECT_EQ(v("coredns_dns_requests_total{" + other +
                ",zone=\"cluster.local.\",view=\"\",proto=\"udp\",family=\"1\",type=\"AAAA\"}"),
              1);
    EXPECT_EQ(v("coredns_dns_requests_total{" + local +
                ",zone=\".\",view=\"\",proto=\"tcp\",family=\"1\",type=\"A\"}"),
              1);
    EXPECT_EQ(v("coredns_dns_responses_total{" + local +
                ",zone=\"cluster.local.\",view=\"\",rcode=\"NOERROR\",plugin=\"cache\"}"),
              2);
    EXPECT_EQ(v("coredns_dns_responses_total{" + local +
                ",zone=\"cluster.local.\",view=\"\",rcode=\"NXDOMAIN\",plugin=\"forward\"}"),
              1);
    EXPECT_EQ(v("coredns_cache_hits_total{" + local +
                ",type=\"success\",zones=\"cluster.local.\",view=\"\"}"),
              2);
    EXPECT_EQ(v("coredns_cache_misses_total{" + local + ",zones=\"cluster.local.\",view=\"\"}"), 2);
    EXPECT_EQ(v("coredns_dns_request_duration_seconds_count{" + local +
                ",zone=\"cluster.local.\",view=\"\"}"),
              4);
    EXPECT_GE(
        v("coredns_proxy_request_duration_seconds_count{proxy_name=\"forward\",to=\"127.0.0.1:" +
          std::to_string(knot_port_) + "\",rcode=\"NOERROR\"}"),
        3);  // cluster A and AAAA over TCP, www over UDP
    EXPECT_EQ(v("coredns_cache_entries{server=\"\",type=\"denial\",zones=\"\",view=\"\"}"), 2);
    EXPECT_EQ(v("coredns_forward_max_concurrent_rejects_total"), 0);
    EXPECT_EQ(v("coredns_nodecache_setup_errors_total{errortype=\"iptables\"}"), 0);
    EXPECT_GE(v("nodedns_queries_total{transport=\"udp\"}"), 6);
  }
}

TEST_F(NodeCacheTest, HelmChartCorefilesServe) {
  // The deliveryhero node-local-dns chart's variants (tests/corefile/testdata), given whole as
  // -conf with no base Corefile, as a ConfigMap mounted at /etc/Corefile would be.
  for (const char* variant :
       {"helm_prefetch", "helm_serve_stale", "helm_prefer_udp", "helm_extra_block"}) {
    SCOPED_TRACE(variant);
    std::string s = ReadFile(std::string(NODEDNS_SOURCE_DIR) + "/tests/corefile/testdata/" +
                             variant + ".Corefile");
    ASSERT_FALSE(s.empty());
    // Loopback addresses and free ports for the chart's; the cluster DNS and the node's
    // resolvers are Knot. The extra block (no bind: all addresses) gets the others' bind.
    const std::string knot = "127.0.0.1:" + std::to_string(knot_port_);
    s = Replace(s, "bind 0.0.0.0", "bind 127.0.0.1");
    s = std::regex_replace(s, std::regex(R"(169\.254\.20\.[0-9]+)"), "127.0.0.1");
    s = Replace(s, "172.20.0.10", "127.0.0.2");
    for (const char* cluster_dns :
         {"10.96.0.11", "172.20.0.11", "/etc/resolv.conf", "1.1.1.1 [2606:4700:4700::1111]:53",
          "10.150.0.1:8600 10.150.0.2:8600"}) {
      s = Replace(s, cluster_dns, knot);
    }
    s = Replace(s, ":53 {", ":" + std::to_string(dns_port_) + " {");
    s = Replace(s, "forward . " + knot + "\n    }",
                "forward . " + knot + "\n    bind 127.0.0.1\n    }");
    s = Replace(s, ":9253", "127.0.0.1:" + std::to_string(prom_port_));
    s = std::regex_replace(s, std::regex(":808[0-9]"), "127.0.0.1:" + std::to_string(health_port_));
    WriteFile(dir_ + "/etc/Corefile", s);
    std::filesystem::remove(Base());
    ASSERT_NO_FATAL_FAILURE(Start());
    EXPECT_EQ(AnswerAddresses(Ask("kubernetes.default.svc.cluster.local.")),
              std::vector<std::string>{"10.96.0.1"});
    EXPECT_EQ(AnswerAddresses(Ask("www.example.test.")), std::vector<std::string>{"192.0.2.1"});
    Stop();
  }
}

TEST_F(NodeCacheTest, BadFlagsAndFilesExitTwoWithOneLine) {
  WriteFile(Base(), StockBase());
  KubeDns("{}");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {Args({"-nosuchflag"}), "flag provided but not defined: -nosuchflag"},
      {Args({"-runas", "nobody"}), "invalid -runas: \"nobody\" is not UID or UID:GID"},
      {Args({"-localip", "1.2.3"}), "1.2.3"},
      {Args({"-dns.port", "x"}), "dns.port"},
  };
  for (const Case& c : cases) {
    const auto [code, out] = RunToExit(c.args);
    EXPECT_EQ(code, 2) << out;
    EXPECT_NE(out.find(c.message), std::string::npos) << out;
    EXPECT_EQ(Count(out, "\n"), 1u) << out;
  }
  // An unknown directive: FILE:LINE of the written Corefile.
  WriteFile(Base(),
            StockBase() + "\nfoo.test:" + std::to_string(dns_port_) + " {\n    whoami\n}\n");
  const auto [code, out] = RunToExit(Args());
  EXPECT_EQ(code, 2) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("/etc/Corefile:[0-9]+: .*whoami"))) << out;
}

}  // namespace
