// GET /audit read back into FileReports. See live_audit.h.
#include "audit/live_audit.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json.h"
#include "common/string_view_compat.h"
#include "resolvconf/resolv_conf.h"

namespace nodedns::audit {

using resolvconf::ParseResolvConf;
using resolvconf::ResolvConf;

namespace internal {
namespace {

// A non-negative integer member, or nullopt.
std::optional<uint64_t> Count(const JsonValue& object, std::string_view key) {
  const JsonValue* v = object.Find(key);
  uint64_t n = 0;
  if (v == nullptr || v->kind != JsonValue::Kind::kNumber || v->text.empty() ||
      v->text.find_first_not_of("0123456789") != std::string::npos ||
      !absl::SimpleAtoi(v->text, &n)) {
    return std::nullopt;
  }
  return n;
}

const std::string* StringMember(const JsonValue& object, std::string_view key) {
  const JsonValue* v = object.Find(key);
  return v != nullptr && v->kind == JsonValue::Kind::kString ? &v->text : nullptr;
}

}  // namespace
}  // namespace internal

namespace internal {
namespace {

// A "names" array of GET /audit, [{"name", COUNT_KEY}], appended to `out`; false if malformed.
bool ReadNames(const JsonValue& names, std::string_view count_key,
               std::vector<std::pair<std::string, uint64_t>>& out) {
  for (const JsonValue& n : names.items) {
    const std::string* name = StringMember(n, "name");
    const std::optional<uint64_t> count = Count(n, count_key);
    if (name == nullptr || !count) return false;
    out.emplace_back(*name, *count);
  }
  return true;
}

}  // namespace
}  // namespace internal

Finding SearchPathWasteFinding(const LiveWaste& w) {
  std::vector<std::string> names;
  for (const auto& [name, count] : w.names) names.push_back(absl::StrCat(name, " ", count));
  std::string message =
      absl::StrCat(w.wasted, " replies to this client were NXDOMAIN for names below ",
                   w.cluster_domain, ": the steps of search-list walks that found nothing");
  if (w.error > 0) {
    absl::StrAppend(&message, " (top-K estimate: at most ", w.error,
                    " of them may belong to clients no longer listed)");
  }
  if (!names.empty())
    absl::StrAppend(&message, "; by name looked up: ", absl::StrJoin(names, ", "));
  return Finding{
      .id = kSearchPathWasteId,
      .severity = Severity::kWarning,
      .line = 0,
      .message = std::move(message),
      .fix =
          "fully qualify these names with a trailing dot, or lower ndots (pod spec: "
          "dnsConfig: {options: [{name: ndots, value: \"2\"}]}); `nodedns audit "
          "--resolv-conf` on the pod's resolv.conf shows its walk",
  };
}

void AddQueries(const LiveAudit& live, const std::vector<std::string>& addresses, LiveWaste& w) {
  w.query_sample = live.query_sample;
  for (const LiveQueries& q : live.queries) {
    if (std::find(addresses.begin(), addresses.end(), q.client) == addresses.end()) continue;
    w.queries = w.queries.value_or(0) + q.queries;
    w.queries_error += q.error;
  }
}

absl::StatusOr<LiveAudit> ParseLiveAudit(std::string_view json, const std::string& server) {
  using internal::Count;
  using internal::StringMember;
  absl::StatusOr<JsonValue> doc = ParseJson(json);
  if (!doc.ok()) {
    // ParseJson's message says where and what; the prefix tells whoever ran --live that the
    // answer was not JSON at all (a table, an error page), not a JSON of the wrong shape.
    return absl::InvalidArgumentError(absl::StrCat("not valid JSON: ", doc.status().message()));
  }
  if (doc->kind != JsonValue::Kind::kObject) {
    return absl::InvalidArgumentError("the /audit answer is not a JSON object");
  }
  const std::optional<uint64_t> version = Count(*doc, "version");
  if (version != uint64_t{kLiveAuditVersion}) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported /audit version (this nodedns reads version ", kLiveAuditVersion, ")"));
  }
  const std::string* zone = StringMember(*doc, "cluster_domain");
  const JsonValue* clients = doc->Find("clients");
  if (zone == nullptr || clients == nullptr || clients->kind != JsonValue::Kind::kArray) {
    return absl::InvalidArgumentError("the /audit answer lacks cluster_domain or clients");
  }
  LiveAudit out;
  out.server = server;
  out.cluster_domain = *zone;
  if (const std::optional<uint64_t> up = Count(*doc, "uptime_seconds")) {
    out.uptime_seconds = static_cast<double>(*up);
  }
  if (const JsonValue* queries = doc->Find("queries")) {
    const std::optional<uint64_t> sample = Count(*doc, "query_sample");
    if (queries->kind != JsonValue::Kind::kArray || !sample || *sample > UINT32_MAX) {
      return absl::InvalidArgumentError(
          "the /audit answer's queries is not an array with a query_sample");
    }
    out.query_sample = static_cast<uint32_t>(*sample);
    for (const JsonValue& c : queries->items) {
      const std::string* addr = StringMember(c, "client");
      const std::optional<uint64_t> n = Count(c, "queries");
      const std::optional<uint64_t> error = Count(c, "error");
      if (addr == nullptr || !n || !error) {
        return absl::InvalidArgumentError(
            "a client in the /audit answer's queries lacks client, queries or error");
      }
      out.queries.push_back(LiveQueries{.client = *addr, .queries = *n, .error = *error});
    }
  }
  const ResolvConf empty = ParseResolvConf("").conf;
  for (const JsonValue& c : clients->items) {
    const std::string* addr = StringMember(c, "client");
    const std::optional<uint64_t> wasted = Count(c, "wasted");
    const std::optional<uint64_t> error = Count(c, "error");
    const JsonValue* names = c.Find("names");
    if (addr == nullptr || !wasted || !error || names == nullptr ||
        names->kind != JsonValue::Kind::kArray) {
      return absl::InvalidArgumentError(
          "a client in the /audit answer lacks client, wasted, error or names");
    }
    LiveWaste w;
    w.server = server;
    w.cluster_domain = *zone;
    w.wasted = *wasted;
    w.error = *error;
    AddQueries(out, {*addr}, w);
    if (!internal::ReadNames(*names, "wasted", w.names)) {
      return absl::InvalidArgumentError("a name in the /audit answer lacks name or wasted");
    }
    FileReport r;
    r.path = *addr;
    r.conf = empty;
    r.outcome_source = "live " + server;
    if (w.wasted > 0) r.findings.push_back(SearchPathWasteFinding(w));
    r.live = std::move(w);
    out.reports.push_back(std::move(r));
  }
  if (const JsonValue* rewrites = doc->Find("rewrites")) {
    if (rewrites->kind != JsonValue::Kind::kArray) {
      return absl::InvalidArgumentError("the /audit answer's rewrites is not an array");
    }
    for (const JsonValue& c : rewrites->items) {
      const std::string* addr = StringMember(c, "client");
      const std::optional<uint64_t> n = Count(c, "rewritten");
      const std::optional<uint64_t> error = Count(c, "error");
      const JsonValue* names = c.Find("names");
      if (addr == nullptr || !n || !error || names == nullptr ||
          names->kind != JsonValue::Kind::kArray) {
        return absl::InvalidArgumentError(
            "a client in the /audit answer's rewrites lacks client, rewritten, error or names");
      }
      LiveRewrites r{.client = *addr, .rewritten = *n, .error = *error, .names = {}};
      if (!internal::ReadNames(*names, "rewritten", r.names)) {
        return absl::InvalidArgumentError(
            "a name in the /audit answer's rewrites lacks name or rewritten");
      }
      out.rewrites.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace nodedns::audit
