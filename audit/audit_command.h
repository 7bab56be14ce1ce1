// The `nodedns audit` subcommand: command-line flags (CLI11), input expansion (files, directories,
// globs), name lists and exit codes. The audit itself is in audit.h, the output in report.h.
//
// Exit codes: 0 no finding at or above --fail-on; 1 some finding at or above it; 2 bad input
// (unreadable or missing file, bad flag value, invalid name; with --live, a server that cannot be
// reached or whose GET /audit answer cannot be read; with --node, a proc root that cannot be
// read).
#ifndef NODEDNS_AUDIT_AUDIT_COMMAND_H_
#define NODEDNS_AUDIT_AUDIT_COMMAND_H_

#include <ostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "audit/live_oracle.h"

namespace nodedns::audit {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFindings = 1;
inline constexpr int kExitBadInput = 2;

struct AuditFlags {
  std::vector<std::string> resolv_confs;  // Files, directories or globs; default /etc/resolv.conf.
  std::string names_file;                 // One name per line; '#' starts a comment line.
  std::vector<std::string> names;         // Positional names.
  std::string format = "table";           // table | json
  std::string fail_on = "warning";        // info | warning | error
  std::string resolve;                    // ADDR:PORT: ask this server instead of the model.
  std::string live;                       // ADDR:PORT of a running `nodedns serve --health`.
  bool node = false;                      // Every pod on this node, found from --proc.
  std::string proc;                       // The proc root for --node (default /proc).
};

// Adds the `audit` subcommand and its options (documented in --help) to `app`; returns it.
CLI::App* AddAuditCommand(CLI::App& app, AuditFlags& flags);

// Runs the audit; returns the process exit code (0, 1 or 2). Writes the report to out, errors to
// err (one line each, naming the offending path or value).
int RunAuditCommand(const AuditFlags& flags, std::ostream& out, std::ostream& err);

// For main(): prints a CLI11 parse error (or the --help text) the way CLI11 does and returns the
// audit's exit code for it: 0 for --help, 2 for any bad flag.
int ExitCodeForParseError(CLI::App& app, const CLI::ParseError& e, std::ostream& out,
                          std::ostream& err);

namespace internal {
// Expands --resolv-conf arguments: a directory gives its regular files (not recursive, sorted),
// a glob (containing * ? or [) its matches; a missing path or a glob without match is an error.
absl::StatusOr<std::vector<std::string>> ExpandInputs(const std::vector<std::string>& args);
// Reads a whole (small) file; the error message names the path.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path);
// GET `path` from an HTTP server (a running nodedns's health port); the body on a 200 answer.
// Bounded: 5 s to connect and answer, 16 MiB at most.
absl::StatusOr<std::string> HttpGet(const ServerAddress& server, const std::string& path);
// Names from the positional arguments and --names file, or the default sample.
absl::StatusOr<std::vector<std::string>> CollectNames(const AuditFlags& flags);
}  // namespace internal

}  // namespace nodedns::audit

#endif  // NODEDNS_AUDIT_AUDIT_COMMAND_H_
