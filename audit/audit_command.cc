// `nodedns audit`: CLI11 wiring, input expansion and exit codes. See audit_command.h.
#include "audit/audit_command.h"

#include <arpa/inet.h>
#include <glob.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "audit/audit.h"
#include "audit/live_audit.h"
#include "audit/live_oracle.h"
#include "audit/node_audit.h"
#include "audit/report.h"
#include "common/string_view_compat.h"
#include "podscan/pod_scan.h"
#include "resolvconf/resolv_conf.h"

namespace nodedns::audit {
namespace internal {

absl::StatusOr<std::string> HttpGet(const ServerAddress& server, const std::string& path) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, server.ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(server.port));
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, server.ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(server.port));
    len = sizeof *v6;
  } else {
    return absl::InvalidArgumentError("'" + server.ip + "' is not an IP address");
  }
  const int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(std::strerror(errno));
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    const std::string why = std::strerror(errno);
    close(fd);
    return absl::UnavailableError("cannot connect: " + why);
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: nodedns\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("cannot send the request");
  }
  std::string response;
  char buf[16384];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
    if (response.size() > (size_t{16} << 20)) break;
  }
  close(fd);
  const size_t head_end = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos || response.size() < 12) {
    return absl::UnavailableError("no HTTP answer (is this nodedns's --health port?)");
  }
  if (response.compare(9, 3, "200") != 0) {
    return absl::UnavailableError("HTTP " + response.substr(9, 3) + " for " + path);
  }
  return response.substr(head_end + 4);
}

namespace {

// A resolv.conf is a few hundred bytes; refuse anything absurd rather than read it whole.
constexpr size_t kMaxFileBytes = 1 << 20;

absl::Status ErrnoError(std::string_view what, const std::string& path, int err) {
  return absl::InvalidArgumentError(absl::StrCat(Av(what), " '", path, "': ", std::strerror(err)));
}

absl::Status AppendDirectory(const std::string& dir, std::vector<std::string>& out) {
  std::error_code ec;
  std::vector<std::string> files;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec)
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read directory '", dir, "': ", ec.message()));
  for (const auto& entry : it) {
    std::error_code type_ec;
    if (entry.is_regular_file(type_ec)) files.push_back(entry.path().string());
  }
  if (files.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("directory '", dir, "' contains no files"));
  }
  std::sort(files.begin(), files.end());
  out.insert(out.end(), files.begin(), files.end());
  return absl::OkStatus();
}

absl::Status AppendPath(const std::string& path, std::vector<std::string>& out) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return ErrnoError("cannot read", path, errno);
  if (S_ISDIR(st.st_mode)) return AppendDirectory(path, out);
  out.push_back(path);
  return absl::OkStatus();
}

bool IsValidName(std::string_view name) {
  std::string_view body = name;
  if (!body.empty() && body.back() == '.') body.remove_suffix(1);
  if (body.empty() || body.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(Av(body), '.')) {
    if (label.empty() || label.size() > 63) return false;
  }
  for (char c : name) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '\0') return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ExpandInputs(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const std::string& arg : args) {
    if (arg.find_first_of("*?[") != std::string::npos) {
      glob_t g{};
      int rc = glob(arg.c_str(), 0, nullptr, &g);
      if (rc != 0) {
        globfree(&g);
        return absl::InvalidArgumentError(absl::StrCat(
            rc == GLOB_NOMATCH ? "no file matches '" : "cannot expand glob '", arg, "'"));
      }
      std::vector<std::string> matches(g.gl_pathv, g.gl_pathv + g.gl_pathc);
      globfree(&g);
      for (const std::string& m : matches) {
        if (absl::Status s = AppendPath(m, out); !s.ok()) return s;
      }
      continue;
    }
    if (absl::Status s = AppendPath(arg, out); !s.ok()) return s;
  }
  return out;
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return ErrnoError("cannot read", path, errno);
  std::string data;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    data.append(buf, n);
    if (data.size() > kMaxFileBytes) {
      std::fclose(f);
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read '", path, "': larger than ", kMaxFileBytes, " bytes"));
    }
  }
  bool failed = std::ferror(f) != 0;
  int err = errno;
  std::fclose(f);
  if (failed) return ErrnoError("cannot read", path, err);
  return data;
}

absl::StatusOr<std::vector<std::string>> CollectNames(const AuditFlags& flags) {
  std::vector<std::string> names = flags.names;
  if (!flags.names_file.empty()) {
    absl::StatusOr<std::string> text = ReadSmallFile(flags.names_file);
    if (!text.ok()) return text.status();
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (line.empty() || line[0] == '#') continue;
      names.emplace_back(line);
    }
  }
  if (names.empty() && flags.names_file.empty()) names = DefaultSampleNames();
  if (names.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("names file '", flags.names_file, "' contains no names"));
  }
  for (const std::string& name : names) {
    if (!IsValidName(name)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid name '", name, "'"));
    }
  }
  return names;
}

}  // namespace internal

CLI::App* AddAuditCommand(CLI::App& app, AuditFlags& flags) {
  CLI::App* cmd = app.add_subcommand(
      "audit",
      "Audit resolv.conf files offline: parse them as glibc and musl do, simulate the search-list "
      "walk for some names and report findings (ndots, search limits, nameservers, timeouts, "
      "node-local cache) with fixes.");
  cmd->add_option("--resolv-conf", flags.resolv_confs,
                  absl::StrCat("resolv.conf to audit: a file, a directory (its files) or a glob; "
                               "repeatable (default: ",
                               resolvconf::kDefaultPath, ")"))
      ->type_name("FILE|DIR|GLOB")
      ->type_size(1)
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  cmd->add_option("--names", flags.names_file,
                  "file with one name per line to simulate ('#' comment lines allowed)")
      ->type_name("FILE");
  cmd->add_option("NAME", flags.names,
                  "names to simulate (default: kubernetes, kubernetes.default, api.example.com)");
  cmd->add_option("--format", flags.format, "output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  cmd->add_option("--fail-on", flags.fail_on, "exit 1 when a finding has this severity or higher")
      ->check(CLI::IsMember({"info", "warning", "error"}))
      ->capture_default_str();
  cmd->add_option(
         "--resolve", flags.resolve,
         "send the walk's queries to this DNS server (IPv4:PORT or [IPv6]:PORT) and report "
         "its real answers instead of the modelled ones")
      ->type_name("ADDR:PORT");
  cmd->add_option("--live", flags.live,
                  "show what a running `nodedns serve --health ADDR:PORT` has seen (GET /audit): "
                  "one entry per client whose search-list walks wasted queries, with the names "
                  "behind them and a search-path-waste warning; resolv.conf files are not read")
      ->type_name("ADDR:PORT");
  cmd->add_flag("--node", flags.node,
                "audit every pod on this node, found from /proc (needs hostPID and "
                "CAP_SYS_PTRACE): each pod's resolv.conf, its findings, the waste a running "
                "nodedns saw from its addresses (with --live) and a pod-spec fix");
  cmd->add_option("--proc", flags.proc, "with --node: the proc root to scan (default /proc)")
      ->type_name("DIR");
  cmd->footer(
      "Exit codes: 0 no finding at or above --fail-on, 1 findings at or above it, 2 bad input "
      "(unreadable file, bad flag; with --live: server unreachable or its answer unreadable). "
      "JSON schema and finding ids: docs/audit.md.");
  return cmd;
}

namespace {

// GET /audit of a running nodedns, parsed; the error is the one line to print.
absl::StatusOr<LiveAudit> FetchLive(const std::string& live) {
  absl::StatusOr<ServerAddress> server = ParseServerAddress(live);
  if (!server.ok()) return absl::InvalidArgumentError(server.status().message());
  absl::StatusOr<std::string> body = internal::HttpGet(*server, "/audit");
  if (!body.ok())
    return absl::InvalidArgumentError(absl::StrCat(live, ": ", body.status().message()));
  absl::StatusOr<LiveAudit> seen = ParseLiveAudit(*body, live);
  if (!seen.ok())
    return absl::InvalidArgumentError(absl::StrCat(live, ": ", seen.status().message()));
  return seen;
}

int RunNodeAudit(const AuditFlags& flags, Severity fail_on, std::ostream& out, std::ostream& err) {
  if (!flags.resolv_confs.empty() || !flags.resolve.empty()) {
    err << "nodedns audit: --node reads each pod's own resolv.conf and models its answers: drop "
        << (flags.resolv_confs.empty() ? "--resolve" : "--resolv-conf") << "\n";
    return kExitBadInput;
  }
  absl::StatusOr<std::vector<std::string>> names = internal::CollectNames(flags);
  if (!names.ok()) {
    err << "nodedns audit: " << names.status().message() << "\n";
    return kExitBadInput;
  }
  std::optional<LiveAudit> live;
  if (!flags.live.empty()) {
    absl::StatusOr<LiveAudit> seen = FetchLive(flags.live);
    if (!seen.ok()) {
      err << "nodedns audit: --live " << seen.status().message() << "\n";
      return kExitBadInput;
    }
    live = std::move(*seen);
  }
  const std::string proc = flags.proc.empty() ? "/proc" : flags.proc;
  std::string error;
  std::optional<podscan::ScanResult> scan = podscan::ScanNode({.proc = proc}, &error);
  if (!scan.has_value()) {
    err << "nodedns audit: --node: " << error << "\n";
    return kExitBadInput;
  }
  NodeReport report = AuditNode(std::move(*scan), proc, *names, live ? &*live : nullptr);
  if (flags.format == "json") {
    RenderNodeJson(report, out);
  } else {
    RenderNodeTable(report, out);
  }
  std::optional<Severity> worst = WorstSeverity(report);
  return (worst.has_value() && *worst >= fail_on) ? kExitFindings : kExitOk;
}

}  // namespace

int RunAuditCommand(const AuditFlags& flags, std::ostream& out, std::ostream& err) {
  if (flags.format != "table" && flags.format != "json") {
    err << "nodedns audit: --format must be table or json, not '" << flags.format << "'\n";
    return kExitBadInput;
  }
  std::optional<Severity> fail_on = ParseSeverity(flags.fail_on);
  if (!fail_on.has_value()) {
    err << "nodedns audit: --fail-on must be info, warning or error, not '" << flags.fail_on
        << "'\n";
    return kExitBadInput;
  }
  if (flags.node) return RunNodeAudit(flags, *fail_on, out, err);
  if (!flags.proc.empty()) {
    err << "nodedns audit: --proc is for --node only\n";
    return kExitBadInput;
  }
  if (!flags.live.empty()) {
    absl::StatusOr<LiveAudit> seen = FetchLive(flags.live);
    if (!seen.ok()) {
      err << "nodedns audit: --live " << seen.status().message() << "\n";
      return kExitBadInput;
    }
    // The offline renderers: one report per client, each with a search-path-waste warning.
    if (flags.format == "json") {
      RenderJson(seen->reports, out);
    } else if (seen->reports.empty()) {
      out << "== no wasted queries seen by nodedns at " << flags.live << " (NXDOMAIN below "
          << seen->cluster_domain << ")\n";
    } else {
      RenderTable(seen->reports, out);
    }
    std::optional<Severity> worst = WorstSeverity(seen->reports);
    return (worst.has_value() && *worst >= *fail_on) ? kExitFindings : kExitOk;
  }
  std::unique_ptr<LiveOracle> live;
  if (!flags.resolve.empty()) {
    absl::StatusOr<ServerAddress> server = ParseServerAddress(flags.resolve);
    if (!server.ok()) {
      err << "nodedns audit: " << server.status().message() << "\n";
      return kExitBadInput;
    }
    live = std::make_unique<LiveOracle>(*server);
  }
  absl::StatusOr<std::vector<std::string>> names = internal::CollectNames(flags);
  if (!names.ok()) {
    err << "nodedns audit: " << names.status().message() << "\n";
    return kExitBadInput;
  }
  std::vector<std::string> args = flags.resolv_confs;
  if (args.empty()) args.push_back(resolvconf::kDefaultPath);
  absl::StatusOr<std::vector<std::string>> paths = internal::ExpandInputs(args);
  if (!paths.ok()) {
    err << "nodedns audit: " << paths.status().message() << "\n";
    return kExitBadInput;
  }
  std::vector<FileReport> reports;
  reports.reserve(paths->size());
  for (const std::string& path : *paths) {
    absl::StatusOr<std::string> text = internal::ReadSmallFile(path);
    if (!text.ok()) {
      err << "nodedns audit: " << text.status().message() << "\n";
      return kExitBadInput;
    }
    reports.push_back(AuditText(path, *text, *names, live ? live->AsOracle() : nullptr));
    if (live) {
      if (!live->status().ok()) {
        err << "nodedns audit: " << live->status().message() << "\n";
        return kExitBadInput;
      }
      reports.back().outcome_source = "server " + live->Describe();
    }
  }
  if (flags.format == "json") {
    RenderJson(reports, out);
  } else {
    RenderTable(reports, out);
  }
  std::optional<Severity> worst = WorstSeverity(reports);
  return (worst.has_value() && *worst >= *fail_on) ? kExitFindings : kExitOk;
}

int ExitCodeForParseError(CLI::App& app, const CLI::ParseError& e, std::ostream& out,
                          std::ostream& err) {
  int code = app.exit(e, out, err);
  return code == static_cast<int>(CLI::ExitCodes::Success) ? kExitOk : kExitBadInput;
}

}  // namespace nodedns::audit
