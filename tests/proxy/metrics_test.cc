// The counter list drives the Prometheus output, and every metric is documented.
#include "proxy/metrics.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace nodedns::proxy {
namespace {

TEST(MetricsTest, SumsWorkersAndGroupsFamilies) {
  WorkerCounters a, b;
  a.queries_udp.Inc(3);
  b.queries_udp.Inc(4);
  b.queries_tcp.Inc();
  a.CountRcode(3);
  const WorkerCounters* ws[] = {&a, &b};
  const Gauge g[] = {{"nodedns_cache_entries", "Entries", 42}};
  const std::string out = RenderPrometheus(ws, g);
  EXPECT_NE(out.find("nodedns_queries_total{transport=\"udp\"} 7\n"), std::string::npos) << out;
  EXPECT_NE(out.find("nodedns_queries_total{transport=\"tcp\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("nodedns_replies_total{rcode=\"NXDOMAIN\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("nodedns_cache_entries 42\n"), std::string::npos);
  // The forwarders' counters are the workers' too.
  a.tcp_forwarders.stalled.Inc();
  b.tcp_forwarders.stalled.Inc(2);
  b.udp_forwarders.truncated.Inc();
  const std::string again = RenderPrometheus(ws, g);
  EXPECT_NE(again.find("nodedns_upstream_tcp_stalled_total 3\n"), std::string::npos) << again;
  EXPECT_NE(again.find("nodedns_upstream_udp_truncated_total 1\n"), std::string::npos);
  // One HELP/TYPE per family, even with several label sets.
  size_t n = 0;
  for (size_t p = out.find("# TYPE nodedns_queries_total"); p != std::string::npos;
       p = out.find("# TYPE nodedns_queries_total", p + 1)) {
    ++n;
  }
  EXPECT_EQ(n, 1u);
}

TEST(MetricsTest, RendersLargeGaugesExactly) {
  const Gauge g[] = {{"nodedns_cache_entries", "Entries", 1'000'000},
                     {"nodedns_cache_capacity_bytes", "Capacity", 536'870'912},
                     {"nodedns_ratio", "A fraction", 0.125}};
  const std::string out = RenderPrometheus({}, g);
  EXPECT_NE(out.find("nodedns_cache_entries 1000000\n"), std::string::npos) << out;
  EXPECT_NE(out.find("nodedns_cache_capacity_bytes 536870912\n"), std::string::npos) << out;
  EXPECT_NE(out.find("nodedns_ratio 0.125\n"), std::string::npos) << out;
}

TEST(MetricsTest, EveryCounterIsDocumentedInOperationsGuide) {
  std::ifstream in(NODEDNS_SOURCE_DIR "/docs/operations.md");
  ASSERT_TRUE(in) << "docs/operations.md is missing";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  int checked = 0;
  ForEachWorkerCounter([&](const char* metric, const char*, const char*, auto) {
    ++checked;
    EXPECT_NE(doc.find(std::string("`") + metric + "`"), std::string::npos)
        << metric << " is not in docs/operations.md";
  });
  EXPECT_GT(checked, 40);  // the worker's list and both forwarders'
  for (const HealthFamily& f : kUpstreamHealthFamilies) {
    EXPECT_NE(doc.find(std::string("`") + f.metric + "`"), std::string::npos)
        << f.metric << " is not in docs/operations.md";
  }
}

}  // namespace
}  // namespace nodedns::proxy
