// node-cache's Corefile generation; see corefile_template.h.
#include "nodecache/corefile_template.h"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "nodecache/node_cache_flags.h"
#include "common/string_view_compat.h"

namespace nodedns::nodecache {

namespace {

constexpr std::string_view kPillarPrefix = "__PILLAR__";

int LineOf(std::string_view text, size_t pos) {
  int line = 1;
  for (size_t i = 0; i < pos && i < text.size(); ++i) line += text[i] == '\n';
  return line;
}

// The first `needle` not inside a comment: Caddy's lexer reads a '#' that starts a token as a
// comment to the end of the line. A token in a comment is harmless, so it needs no value.
size_t FindOutsideComments(std::string_view text, std::string_view needle) {
  for (size_t at = text.find(needle); at != std::string_view::npos;
       at = text.find(needle, at + 1)) {
    size_t line_start = text.rfind('\n', at);
    line_start = line_start == std::string_view::npos ? 0 : line_start + 1;
    bool in_comment = false;
    for (size_t i = line_start; i < at; ++i) {
      if (text[i] == '#' &&
          (i == line_start || absl::ascii_isspace(static_cast<unsigned char>(text[i - 1])))) {
        in_comment = true;
        break;
      }
    }
    if (!in_comment) return at;
  }
  return std::string_view::npos;
}

std::vector<std::string_view> Tokens(std::string_view line) {
  std::vector<std::string_view> out;
  for (absl::string_view t :
       absl::StrSplit(Av(line), absl::ByAnyChar(" \t\r\v\f"), absl::SkipEmpty())) {
    out.push_back(Sv(t));
  }
  return out;
}

bool TokensAre(std::string_view line, std::initializer_list<std::string_view> want) {
  std::vector<std::string_view> got = Tokens(line);
  return got.size() == want.size() && std::equal(got.begin(), got.end(), want.begin());
}

// Rewrites each `forward . __PILLAR__UPSTREAM__SERVERS__ {` / `force_tcp` / `}` run of lines into
// `forward . SERVERS` and two empty lines, keeping the first line's indentation and every line's
// "\r" if the file has them.
std::string DropForceTcp(std::string_view base, std::string_view servers) {
  std::vector<std::string_view> lines;
  for (absl::string_view l : absl::StrSplit(Av(base), '\n')) lines.push_back(Sv(l));
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i + 2 < lines.size() && TokensAre(lines[i], {"forward", ".", kUpstreamServersVar, "{"}) &&
        TokensAre(lines[i + 1], {"force_tcp"}) && TokensAre(lines[i + 2], {"}"})) {
      std::string_view line = lines[i];
      std::string_view indent = line.substr(0, line.find_first_not_of(" \t"));
      auto cr = [](std::string_view l) { return l.ends_with("\r") ? "\r" : ""; };
      absl::StrAppend(&out, Av(indent), "forward . ", Av(servers), cr(line), "\n", cr(lines[i + 1]),
                      "\n", cr(lines[i + 2]));
      i += 2;
    } else {
      absl::StrAppend(&out, Av(lines[i]));
    }
    if (i + 1 < lines.size()) out += '\n';
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> GenerateCorefile(std::string_view base, const CorefileInputs& inputs) {
  std::string text(base);
  const std::vector<std::string>& upstreams = inputs.kube_dns.upstream_nameservers;
  if (upstreams.empty()) {
    text = absl::StrReplaceAll(text, {{kUpstreamServersVar, kDefaultUpstream}});
  } else {
    const std::string servers = absl::StrJoin(upstreams, " ");
    text = DropForceTcp(text, servers);
    // Where no force_tcp block held the variable (the stock Corefile's `.:53` block has none).
    text = absl::StrReplaceAll(text, {{kUpstreamServersVar, servers}});
  }

  if (!inputs.cluster_dns_ip.has_value()) {
    if (size_t at = FindOutsideComments(text, kClusterDnsVar); at != std::string::npos) {
      return absl::FailedPreconditionError(
          absl::StrCat(inputs.base_name, ":", LineOf(text, at), ": ", kClusterDnsVar,
                       " needs the cluster IP of -upstreamsvc ", inputs.upstream_svc, ", but ",
                       UpstreamServiceEnvVar(inputs.upstream_svc), " is not set"));
    }
  } else {
    text = absl::StrReplaceAll(text, {{kClusterDnsVar, *inputs.cluster_dns_ip}});
  }
  const std::string local_ips = absl::StrReplaceAll(inputs.local_ip, {{",", " "}});
  text = absl::StrReplaceAll(text, {{kLocalDnsVar, local_ips}, {kDnsServerVar, ""}});

  if (size_t at = FindOutsideComments(text, kPillarPrefix); at != std::string::npos) {
    size_t end = at + kPillarPrefix.size();
    while (end < text.size() &&
           (absl::ascii_isalnum(static_cast<unsigned char>(text[end])) || text[end] == '_')) {
      ++end;
    }
    return absl::FailedPreconditionError(
        absl::StrCat(inputs.base_name, ":", LineOf(text, at), ": ", text.substr(at, end - at),
                     " was not substituted (replace it when installing the manifest)"));
  }

  for (const auto& [domain, servers] : inputs.kube_dns.stub_domains) {
    absl::StrAppend(&text, "\n", domain, ":", inputs.port, " {\n", "    errors\n", "    cache ",
                    kStubDomainCacheTtl, "\n", "    bind ", local_ips, "\n", "    forward . ",
                    absl::StrJoin(servers, " "), "\n", "}\n");
  }
  return text;
}

}  // namespace nodedns::nodecache
