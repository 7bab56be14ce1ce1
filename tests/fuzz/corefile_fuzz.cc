// Fuzz target: a Corefile, as `nodedns node-cache` reads the node-local-dns ConfigMap.
// corefile::ParseCorefile, corefile::InterpretCorefile, then nodecache::TranslateCorefile with a
// fake resolv.conf reader (paths ending in "resolv.conf" hold one nameserver, any other path is
// an error). `{$VAR}` and `{%VAR%}` read a fixed environment: CLUSTER_DOMAIN, LOCAL_DNS,
// UPSTREAM and PORT are set, everything else is unset.
// Input: the file's bytes, nothing else.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "corefile/config.h"
#include "corefile/syntax.h"
#include "dns/socket_address.h"
#include "nodecache/serve_config.h"
#include "tests/fuzz/fuzz_util.h"

namespace nodedns::fuzz {
namespace {

constexpr std::string_view kFilename = "Corefile";

std::optional<std::string> FakeEnv(std::string_view name) {
  if (name == "CLUSTER_DOMAIN") return "cluster.local";
  if (name == "LOCAL_DNS") return "169.254.20.10";
  if (name == "UPSTREAM") return "10.96.0.11";
  if (name == "PORT") return "5353";
  return std::nullopt;
}

absl::StatusOr<std::vector<dns::SocketAddress>> FakeNameservers(const std::string& path) {
  if (path.ends_with("resolv.conf")) {
    auto a = dns::SocketAddress::Parse("10.0.0.53", 53);
    FUZZ_CHECK(a.ok());
    return std::vector<dns::SocketAddress>{*a};
  }
  return absl::NotFoundError("no such file or directory");
}

bool LineInRange(int line, int lines) { return line >= 1 && line <= lines; }
bool LineOrZero(int line, int lines) { return line == 0 || LineInRange(line, lines); }

// "Corefile:LINE: ..." with LINE in 1..lines+1, or "Corefile: ..."; one line (syntax.h: "Every
// error is one line").
void CheckError(const absl::Status& s, int lines) {
  FUZZ_CHECK(!s.ok());
  const absl::string_view am = s.message();
  const std::string_view m(am.data(), am.size());
  FUZZ_CHECK(m.find('\n') == std::string_view::npos);
  FUZZ_CHECK(m.starts_with(kFilename) && m.size() > kFilename.size() && m[kFilename.size()] == ':');
  const std::string_view rest = m.substr(kFilename.size() + 1);
  if (rest.starts_with(" ")) return;  // "Corefile: ..."
  size_t digits = 0;
  long line = 0;
  while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9' && digits < 9) {
    line = line * 10 + (rest[digits] - '0');
    ++digits;
  }
  FUZZ_CHECK(digits > 0);
  FUZZ_CHECK(line >= 1 && line <= lines + 1);
  FUZZ_CHECK(rest.substr(digits).starts_with(": "));
}

void CheckKey(const corefile::ServerKey& k, int lines) {
  FUZZ_CHECK(!k.zone.empty() && k.zone.back() == '.');
  FUZZ_CHECK(k.port >= 1 && k.port <= 65535);
  FUZZ_CHECK(LineInRange(k.line, lines));
}

void CheckDirectives(const std::vector<corefile::Directive>& ds, int lines) {
  for (const corefile::Directive& d : ds) {
    FUZZ_CHECK(LineInRange(d.line, lines));
    FUZZ_CHECK(d.has_block || d.block.empty());
    CheckDirectives(d.block, lines);
  }
}

void CheckConfig(const corefile::ServerBlockConfig& b, int lines) {
  FUZZ_CHECK(!b.keys.empty());
  for (const corefile::ServerKey& k : b.keys) CheckKey(k, lines);
  FUZZ_CHECK(LineInRange(b.line, lines));
  for (const corefile::BindAddress& a : b.bind) FUZZ_CHECK(LineInRange(a.line, lines));
  if (b.forward) {
    const corefile::ForwardConfig& f = *b.forward;
    FUZZ_CHECK(LineInRange(f.line, lines));
    FUZZ_CHECK(!f.from.empty() && f.from.back() == '.');
    FUZZ_CHECK(!f.to.empty() && f.to.size() <= corefile::kForwardMaxUpstreams);
    for (const corefile::ForwardTarget& t : f.to) {
      FUZZ_CHECK(t.address.has_value() != !t.resolv_conf_path.empty());
    }
    for (const std::string& z : f.except) FUZZ_CHECK(!z.empty() && z.back() == '.');
    FUZZ_CHECK(f.max_concurrent >= 0 && f.max_fails >= 0);
  }
  if (b.cache) {
    const corefile::CacheConfig& c = *b.cache;
    FUZZ_CHECK(LineInRange(c.line, lines));
    FUZZ_CHECK(!c.zones.empty());
    for (const std::string& z : c.zones) FUZZ_CHECK(!z.empty() && z.back() == '.');
    for (const corefile::CacheTier* t : {&c.success, &c.denial}) {
      FUZZ_CHECK(LineOrZero(t->line, lines));
      FUZZ_CHECK(t->capacity >= 0);
      FUZZ_CHECK(t->max_ttl > absl::ZeroDuration() && t->min_ttl >= absl::ZeroDuration());
    }
    if (c.prefetch) {
      FUZZ_CHECK(LineInRange(c.prefetch->line, lines));
      FUZZ_CHECK(c.prefetch->percentage >= 10 && c.prefetch->percentage <= 90);
    }
    if (c.serve_stale) FUZZ_CHECK(LineInRange(c.serve_stale->line, lines));
  }
  if (b.health) FUZZ_CHECK(LineInRange(b.health->line, lines));
  if (b.prometheus) FUZZ_CHECK(LineInRange(b.prometheus->line, lines));
  if (b.ready) FUZZ_CHECK(LineInRange(b.ready->line, lines));
  if (b.reload) {
    FUZZ_CHECK(LineInRange(b.reload->line, lines));
    FUZZ_CHECK(b.reload->interval >= corefile::kReloadMinInterval);
    FUZZ_CHECK(b.reload->jitter >= absl::ZeroDuration() &&
               b.reload->jitter <= b.reload->interval / 2);
  }
  if (b.errors) {
    FUZZ_CHECK(LineInRange(b.errors->line, lines));
    for (const auto& r : b.errors->consolidate) FUZZ_CHECK(LineInRange(r.line, lines));
  }
  for (const corefile::LogConfig& l : b.log) FUZZ_CHECK(LineInRange(l.line, lines));
  FUZZ_CHECK(LineOrZero(b.loop_line, lines));
}

void CheckTranslated(const nodecache::NodeCacheConfig& n,
                     const std::vector<corefile::ServerBlockConfig>& blocks) {
  const proxy::ServeConfig& c = n.serve;
  FUZZ_CHECK(!c.listen.empty());
  FUZZ_CHECK(!c.zones.empty());
  // Longest zone first, the root last (proxy::MatchZone takes the first that matches).
  for (size_t i = 1; i < c.zones.size(); ++i) {
    FUZZ_CHECK(c.zones[i - 1].zone_wire.size() >= c.zones[i].zone_wire.size());
    FUZZ_CHECK(c.zones[i - 1].zone_wire != c.zones[i].zone_wire);
  }
  FUZZ_CHECK(c.zones.back().zone == "." && c.zones.back().zone_wire.size() == 1);
  for (const proxy::ForwardZone& z : c.zones) {
    FUZZ_CHECK(!z.upstreams.empty());
    FUZZ_CHECK(!z.zone_wire.empty() && z.zone_wire.size() <= dns::kMaxNameWire);
    FUZZ_CHECK(dns::PlainNameLength(z.zone_wire, 0) == z.zone_wire.size());
    FUZZ_CHECK(z.cache_policy.has_value());
  }
  FUZZ_CHECK(c.cache.capacity_bytes >= nodecache::kMinCacheBytes);
  FUZZ_CHECK(dns::PlainNameLength(c.cluster_domain_wire, 0) == c.cluster_domain_wire.size());
  for (const std::string& w : n.warnings) {
    FUZZ_CHECK(w.starts_with(std::string(kFilename) + ":"));
    FUZZ_CHECK(w.find('\n') == std::string::npos);
  }
  // The shortest `reload` interval in milliseconds (at least 2 s, clamped to 32 bits); 0 means
  // there is none, so no interval may wrap to it.
  int64_t want = 0;
  for (const corefile::ServerBlockConfig& b : blocks) {
    if (!b.reload) continue;
    const int64_t ms = std::min<int64_t>(absl::ToInt64Milliseconds(b.reload->interval), UINT32_MAX);
    want = want == 0 ? ms : std::min(want, ms);
  }
  FUZZ_CHECK(static_cast<int64_t>(n.reload_interval_ms) == want);
}

}  // namespace
}  // namespace nodedns::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nodedns;
  using namespace nodedns::fuzz;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;

  const absl::StatusOr<corefile::Corefile> parsed =
      corefile::ParseCorefile(text, kFilename, FakeEnv, 53);
  if (!parsed.ok()) {
    CheckError(parsed.status(), lines);
    return 0;
  }
  for (const corefile::ServerBlock& b : parsed->blocks) {
    FUZZ_CHECK(!b.keys.empty());
    FUZZ_CHECK(LineInRange(b.line, lines));
    for (const corefile::ServerKey& k : b.keys) CheckKey(k, lines);
    CheckDirectives(b.directives, lines);
  }
  // Deterministic.
  const absl::StatusOr<corefile::Corefile> again =
      corefile::ParseCorefile(text, kFilename, FakeEnv, 53);
  FUZZ_CHECK(again.ok() && again->blocks.size() == parsed->blocks.size());

  const auto blocks = corefile::InterpretCorefile(*parsed, kFilename);
  if (!blocks.ok()) {
    CheckError(blocks.status(), lines);
    return 0;
  }
  FUZZ_CHECK(blocks->size() == parsed->blocks.size());
  for (const corefile::ServerBlockConfig& b : *blocks) CheckConfig(b, lines);

  nodecache::TranslateOptions options;
  options.filename = std::string(kFilename);
  options.read_nameservers = FakeNameservers;
  options.node_search = {"ec2.internal"};
  const auto translated = nodecache::TranslateCorefile(*blocks, options);
  if (!translated.ok()) {
    CheckError(translated.status(), lines);
    return 0;
  }
  CheckTranslated(*translated, *blocks);
  return 0;
}
