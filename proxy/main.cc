// nodedns: the command line. The only code not linked into tests.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "CLI/CLI.hpp"
#include "audit/audit_command.h"
#include "nodecache/node_cache_command.h"
#include "proxy/serve_command.h"
#include "proxy/server.h"

int main(int argc, char** argv) {
  // NodeLocal DNSCache's command line is Go flag syntax (-localip x), which CLI11 does not read:
  // the subcommand takes its arguments whole.
  if (argc > 1 && std::string_view(argv[1]) == "node-cache") {
    const std::vector<std::string> args(argv + 2, argv + argc);
    return nodedns::nodecache::RunNodeCacheCommand(args);
  }
  CLI::App app("nodedns: a node-local DNS caching proxy for Kubernetes", "nodedns");
  app.footer(
      "nodedns node-cache [-flags]: run as a drop-in for NodeLocal DNSCache (its flags and "
      "Corefile; `nodedns node-cache -help`, docs/deploy.md)");
  app.require_subcommand(1);
  app.set_version_flag("--version", "nodedns 0.1.0");
  // A bad flag is one line on stderr (the error names the flag) and exit code 2; CLI11's default
  // adds "Run with --help for more information." as a second line.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    std::string line = e.what();
    std::replace(line.begin(), line.end(), '\n', ' ');
    return "nodedns: " + line + "\n";
  });
  nodedns::proxy::ServeFlags serve_flags;
  CLI::App* serve = nodedns::proxy::AddServeCommand(app, serve_flags);
  nodedns::audit::AuditFlags audit_flags;
  CLI::App* audit = nodedns::audit::AddAuditCommand(app, audit_flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return nodedns::audit::ExitCodeForParseError(app, e, std::cout, std::cerr);
  }
  if (audit->parsed()) return nodedns::audit::RunAuditCommand(audit_flags, std::cout, std::cerr);
  if (serve->parsed()) {
    auto config = nodedns::proxy::BuildServeConfig(serve_flags);
    if (!config.ok()) {
      std::fprintf(stderr, "nodedns serve: %s\n", std::string(config.status().message()).c_str());
      return 2;
    }
    auto predecessor = nodedns::proxy::FindPredecessor(*config);
    auto server = nodedns::proxy::Server::Create(*std::move(config), std::move(predecessor));
    if (!server.ok()) {
      std::fprintf(stderr, "nodedns serve: %s\n", std::string(server.status().message()).c_str());
      return 2;
    }
    const absl::Status st = (*server)->Run();
    if (!st.ok()) {
      std::fprintf(stderr, "nodedns serve: %s\n", std::string(st.message()).c_str());
      return 1;
    }
    return 0;
  }
  return 2;
}
