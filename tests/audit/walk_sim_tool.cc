// Test helper for walk_integration_test.sh: prints the simulated glibc and musl walks for one
// name, with outcomes taken from a facts file instead of the default Kubernetes model, so that
// the simulation can be compared with what real resolvers send to a real server.
//
// Usage: walk_sim_tool RESOLV_CONF FACTS NAME
//   FACTS: lines "<qname> answer|nodata"; every other name is NXDOMAIN.
// Output: one line per resolver: "<resolver> total=<n> nxdomain=<n> noerror=<n> <qname>,..."
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "audit/walk.h"
#include "resolvconf/resolv_conf.h"

int main(int argc, char** argv) {
  using namespace nodedns::audit;
  using nodedns::resolvconf::ParseResolvConf;
  using nodedns::resolvconf::ResolvConf;
  if (argc != 4) {
    std::cerr << "usage: walk_sim_tool RESOLV_CONF FACTS NAME\n";
    return 2;
  }
  std::ifstream conf_in(argv[1]);
  std::ifstream facts_in(argv[2]);
  if (!conf_in || !facts_in) {
    std::cerr << "walk_sim_tool: cannot read " << (conf_in ? argv[2] : argv[1]) << "\n";
    return 2;
  }
  std::stringstream conf_text;
  conf_text << conf_in.rdbuf();
  ResolvConf conf = ParseResolvConf(conf_text.str()).conf;
  std::map<std::string, Outcome> facts;
  std::string qname, outcome;
  while (facts_in >> qname >> outcome) {
    facts[qname] = outcome == "nodata" ? Outcome::kNodata : Outcome::kAnswer;
  }
  ExistenceOracle oracle = [&facts](std::string_view, std::string_view q) {
    auto it = facts.find(std::string(q));
    return it == facts.end() ? Outcome::kNxdomain : it->second;
  };
  for (Resolver r : {Resolver::kGlibc, Resolver::kMusl}) {
    Walk w = SimulateWalk(conf, argv[3], r, oracle);
    std::cout << ResolverName(r) << " total=" << w.total << " nxdomain=" << w.nxdomain
              << " noerror=" << (w.total - w.nxdomain) << " ";
    std::string last;
    bool first = true;
    for (const Query& q : w.queries) {
      if (q.qname == last) continue;
      std::cout << (first ? "" : ",") << q.qname;
      last = q.qname;
      first = false;
    }
    std::cout << "\n";
  }
  return 0;
}
