// Fuzz target: the kube-dns ConfigMap and the base Corefile, as node-cache turns them into the
// Corefile it loads. nodecache::ParseKubeDnsConfig (both files), then nodecache::GenerateCorefile
// over the base with the parsed configuration (or, when it does not parse, with none).
// Input: 1 control byte, then stubDomains, NUL, upstreamNameservers, NUL, the base Corefile (a
// missing part is empty; the base takes the rest, NULs included). The control byte:
//   bit 0: the stubDomains file exists; bit 1: upstreamNameservers exists;
//   bit 2: the -upstreamsvc cluster IP is set (10.96.0.11); bit 3: -localip is IPv6
//   (fd00::a,fd00::b) rather than 169.254.20.10,10.96.0.10.
// The resolv.conf check takes any nameserver name ending in ".conf" as a readable file.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "nodecache/corefile_template.h"
#include "nodecache/kubedns_config.h"
#include "tests/fuzz/fuzz_util.h"

namespace nodedns::fuzz {
namespace {

// Split at every '\n': N newlines make N + 1 lines, the last possibly empty.
std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> out;
  for (size_t start = 0;;) {
    const size_t nl = text.find('\n', start);
    out.emplace_back(text.substr(start, nl == std::string_view::npos ? nl : nl - start));
    if (nl == std::string_view::npos) return out;
    start = nl + 1;
  }
}

std::vector<std::string> Tokens(const std::string& line) {
  std::vector<std::string> out;
  for (absl::string_view t :
       absl::StrSplit(line, absl::ByAnyChar(" \t\r\v\f"), absl::SkipEmpty())) {
    out.emplace_back(t.data(), t.size());
  }
  return out;
}

bool TokensAre(const std::string& line, const std::vector<std::string>& want) {
  return Tokens(line) == want;
}

std::string Cr(const std::string& line) { return line.ends_with("\r") ? "\r" : ""; }

// corefile_template.h: "Lines 1..N of the result are the base's lines 1..N" with the listed
// substitutions, a `forward . __PILLAR__UPSTREAM__SERVERS__ {` / `force_tcp` / `}` run becoming
// `forward . SERVERS` (the first line's indentation and each line's "\r" kept) and two empty
// lines when there are upstream servers; then the stub-domain blocks, in domain order.
void CheckGenerated(std::string_view base, const nodecache::CorefileInputs& in,
                    const std::string& out) {
  const std::vector<std::string> want = Lines(base);
  const std::vector<std::string> got = Lines(out);
  const size_t n = want.size();
  const auto& stubs = in.kube_dns.stub_domains;
  FUZZ_CHECK(got.size() == n + 7 * stubs.size());
  const std::vector<std::string>& ups = in.kube_dns.upstream_nameservers;
  const std::string servers = ups.empty() ? nodecache::kDefaultUpstream : absl::StrJoin(ups, " ");
  const std::string local_ips = absl::StrReplaceAll(in.local_ip, {{",", " "}});
  for (size_t i = 0; i < n; ++i) {
    if (!ups.empty() && i + 2 < n &&
        TokensAre(want[i], {"forward", ".", nodecache::kUpstreamServersVar, "{"}) &&
        TokensAre(want[i + 1], {"force_tcp"}) && TokensAre(want[i + 2], {"}"})) {
      const std::string indent = want[i].substr(0, want[i].find_first_not_of(" \t"));
      FUZZ_CHECK(got[i] == indent + "forward . " + servers + Cr(want[i]));
      FUZZ_CHECK(got[i + 1] == Cr(want[i + 1]));
      FUZZ_CHECK(got[i + 2] == Cr(want[i + 2]));
      i += 2;
      continue;
    }
    std::string line = absl::StrReplaceAll(want[i], {{nodecache::kUpstreamServersVar, servers}});
    if (in.cluster_dns_ip) {
      line = absl::StrReplaceAll(line, {{nodecache::kClusterDnsVar, *in.cluster_dns_ip}});
    }
    line = absl::StrReplaceAll(
        line, {{nodecache::kLocalDnsVar, local_ips}, {nodecache::kDnsServerVar, ""}});
    FUZZ_CHECK(got[i] == line);
  }
  size_t at = n;
  for (const auto& [domain, ns] : stubs) {
    FUZZ_CHECK(got[at] == domain + ":" + in.port + " {");
    FUZZ_CHECK(got[at + 4] == "    forward . " + absl::StrJoin(ns, " "));
    FUZZ_CHECK(got[at + 5] == "}");
    at += 7;
  }
}

void CheckGenerateError(const absl::Status& s, const nodecache::CorefileInputs& in, size_t lines) {
  const absl::string_view am = s.message();
  const std::string_view m(am.data(), am.size());
  FUZZ_CHECK(m.find('\n') == std::string_view::npos);
  const std::string prefix = in.base_name + ":";
  FUZZ_CHECK(m.starts_with(prefix));
  size_t line = 0, digits = 0;
  for (; prefix.size() + digits < m.size() && digits < 9; ++digits) {
    const char c = m[prefix.size() + digits];
    if (c < '0' || c > '9') break;
    line = line * 10 + static_cast<size_t>(c - '0');
  }
  FUZZ_CHECK(digits > 0 && line >= 1 && line <= lines);
  FUZZ_CHECK(m.substr(prefix.size() + digits).starts_with(": "));
}

}  // namespace
}  // namespace nodedns::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nodedns;
  using namespace nodedns::fuzz;
  if (size == 0) return 0;
  const uint8_t control = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto take = [&rest] {
    const size_t nul = rest.find('\0');
    const std::string_view part = rest.substr(0, nul);
    rest = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
    return part;
  };
  const std::string_view stub_domains = take();
  const std::string_view upstreams = take();
  const std::string_view base = rest;
  std::map<std::string, std::string> files;
  if (control & 1) files[nodecache::kStubDomainsFile] = std::string(stub_domains);
  if (control & 2) files[nodecache::kUpstreamNameserversFile] = std::string(upstreams);
  files["ignored"] = "{not json";

  const auto file_check = [](const std::string& path) { return path.ends_with(".conf"); };
  const absl::StatusOr<nodecache::KubeDnsConfig> config =
      nodecache::ParseKubeDnsConfig(files, file_check);
  nodecache::CorefileInputs inputs;
  inputs.local_ip = (control & 8) ? "fd00::a,fd00::b" : "169.254.20.10,10.96.0.10";
  if (control & 4) inputs.cluster_dns_ip = "10.96.0.11";
  inputs.upstream_svc = "kube-dns-upstream";
  if (config.ok()) {
    FUZZ_CHECK(config->upstream_nameservers.size() <= nodecache::kMaxUpstreamNameservers);
    FUZZ_CHECK(nodecache::ValidateKubeDnsConfig(*config).ok());
    for (const auto& [domain, servers] : config->stub_domains) {
      FUZZ_CHECK(nodecache::IsDns1123Subdomain(domain));
      FUZZ_CHECK(!servers.empty());
    }
    inputs.kube_dns = *config;
  } else {
    // One line, naming the file.
    const absl::string_view am = config.status().message();
    const std::string_view m(am.data(), am.size());
    FUZZ_CHECK(m.find('\n') == std::string_view::npos);
    FUZZ_CHECK(m.starts_with(std::string(nodecache::kStubDomainsFile) + ": ") ||
               m.starts_with(std::string(nodecache::kUpstreamNameserversFile) + ": "));
  }

  const size_t lines = static_cast<size_t>(std::count(base.begin(), base.end(), '\n')) + 1;
  const absl::StatusOr<std::string> generated = nodecache::GenerateCorefile(base, inputs);
  if (generated.ok()) {
    CheckGenerated(base, inputs, *generated);
  } else {
    CheckGenerateError(generated.status(), inputs, lines);
  }
  return 0;
}
