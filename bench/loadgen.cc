// nodedns-loadgen: a UDP DNS load generator that one core can drive past 300k qps, for comparing
// nodedns with other caching forwarders (bench/compare). dnsperf tops out near 130k qps on one
// core here, below the fast peers, which is why this exists; its flags mirror dnsperf's where
// they overlap (-s, -p is folded into -s ADDR:PORT, -d, -l, -q, -Q, -t).
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "bench/load_runner.h"
#include "bench/query_file.h"
#include "dns/socket_address.h"

namespace nodedns::bench {
namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

int Main(int argc, char** argv) {
  CLI::App app{
      "UDP DNS load generator: closed-window (maximum throughput) or open-loop (--rate) load "
      "with sendmmsg/recvmmsg batching; reports answers/s and latency percentiles."};
  std::string server = "127.0.0.1:53";
  std::string query_path;
  LoadConfig config;
  WireOptions wire_options;
  bool json = false;
  app.add_option("-s,--server", server, "Target ADDR:PORT ([ADDR]:PORT for IPv6)")
      ->capture_default_str();
  app.add_option("-d,--queries", query_path, "dnsperf-format query file ('name type' per line)")
      ->required();
  app.add_option("-l,--duration", config.duration_s,
                 "Seconds of sending (0: until --count queries are sent)")
      ->capture_default_str();
  app.add_option("-n,--count", config.count, "Stop after sending this many queries (0: no limit)")
      ->capture_default_str();
  app.add_option("-q,--window", config.window, "Closed-window mode: queries kept outstanding")
      ->capture_default_str();
  app.add_option("-Q,--rate", config.rate, "Open-loop mode: send this many queries per second")
      ->capture_default_str();
  app.add_option("-t,--timeout", config.timeout_s, "Seconds before a query counts as lost")
      ->capture_default_str();
  app.add_option("--batch", config.batch, "Messages per sendmmsg/recvmmsg call")
      ->capture_default_str();
  app.add_option("--sockets", config.sockets,
                 "UDP source sockets (source ports); open loop adds more when rate x timeout "
                 "needs more than 65536 IDs")
      ->capture_default_str();
  app.add_flag("--edns", wire_options.edns, "Add an EDNS(0) OPT record to each query");
  app.add_option("--edns-size", wire_options.edns_udp_size, "EDNS UDP payload size")
      ->capture_default_str();
  app.add_flag("--json", json, "Print one JSON object instead of the human summary");
  CLI11_PARSE(app, argc, argv);

  absl::StatusOr<dns::SocketAddress> address =
      dns::SocketAddress::Parse(server, 0, /*allow_zero_port=*/true);
  if (!address.ok()) {
    std::cerr << "nodedns-loadgen: --server: " << address.status().message() << "\n";
    return 2;
  }
  if (address->port() == 0) {
    std::cerr << "nodedns-loadgen: --server: port 0\n";
    return 2;
  }
  config.server = *address;
  absl::StatusOr<std::vector<QuerySpec>> specs = LoadQueryFile(query_path);
  if (!specs.ok()) {
    std::cerr << "nodedns-loadgen: " << specs.status().message() << "\n";
    return 2;
  }
  config.queries.reserve(specs->size());
  for (const QuerySpec& spec : *specs) {
    absl::StatusOr<std::vector<uint8_t>> wire = BuildQueryWire(spec, wire_options);
    if (!wire.ok()) {
      std::cerr << "nodedns-loadgen: " << query_path << ": line " << spec.line << ": "
                << wire.status().message() << "\n";
      return 2;
    }
    config.queries.push_back(*std::move(wire));
  }
  config.sockets = config.SocketsForOpenLoop();
  if (absl::Status status = ValidateConfig(config); !status.ok()) {
    std::cerr << "nodedns-loadgen: " << status.message() << "\n";
    return 2;
  }

  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  absl::StatusOr<LoadResult> result = RunLoad(config, &g_stop);
  if (!result.ok()) {
    std::cerr << "nodedns-loadgen: " << result.status().message() << "\n";
    return 1;
  }
  if (json) {
    std::cout << FormatJson(config, *result) << std::endl;
  } else {
    std::cout << FormatHuman(config, *result) << std::flush;
  }
  return 0;
}

}  // namespace
}  // namespace nodedns::bench

int main(int argc, char** argv) { return nodedns::bench::Main(argc, argv); }
