// `nodedns audit --live ADDR:PORT`: the GET /audit document of a running `nodedns serve`
// (rendered by proxy/wasted_queries.cc) read back into one FileReport per client, so that the
// offline renderers (report.h: the same table, the same JSON schema) and --fail-on apply to it.
// Each client that wasted queries gets the warning `search-path-waste` (docs/audit.md, "Live").
#ifndef NODEDNS_AUDIT_LIVE_AUDIT_H_
#define NODEDNS_AUDIT_LIVE_AUDIT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "audit/audit.h"

namespace nodedns::audit {

inline constexpr char kSearchPathWasteId[] = "search-path-waste";
// The GET /audit document version this reader understands.
inline constexpr int kLiveAuditVersion = 1;

// One client of the document's "rewrites": lookups the search rewrite answered for it.
struct LiveRewrites {
  std::string client;
  uint64_t rewritten = 0;
  uint64_t error = 0;  // Space-Saving: `rewritten` may exceed the truth by at most this
  std::vector<std::pair<std::string, uint64_t>> names;  // the names typed, most first
};

// One client of the document's "queries": all its queries, estimated from a sample.
struct LiveQueries {
  std::string client;
  uint64_t queries = 0;
  uint64_t error = 0;
};

struct LiveAudit {
  std::string server;  // ADDR:PORT, as given
  std::string cluster_domain;
  // The server's uptime when it answered (absent from documents of older servers).
  std::optional<double> uptime_seconds;
  std::vector<FileReport> reports;     // One per client, in the server's order (most waste first).
  std::vector<LiveRewrites> rewrites;  // Empty from servers whose document has none.
  // One query in `query_sample` was counted for `queries`; 0 (and no queries) from servers that
  // count none.
  uint32_t query_sample = 0;
  std::vector<LiveQueries> queries;
};

// Adds the queries of `addresses` (the clients of `live`'s "queries") to `w`: `w.queries` stays
// nullopt when none of them is listed.
void AddQueries(const LiveAudit& live, const std::vector<std::string>& addresses, LiveWaste& w);

// Parses the GET /audit JSON fetched from `server` (ADDR:PORT, recorded in the reports):
// {"version":1,"cluster_domain":"...","clients":[{"client":"...","wasted":N,"error":N,
// "names":[{"name":"...","wasted":N}]}]}. Unknown fields are ignored; anything else that does
// not match is an error naming what is wrong.
absl::StatusOr<LiveAudit> ParseLiveAudit(std::string_view json, const std::string& server);

// The `search-path-waste` warning for a client (or a pod) whose replies `w` counts.
Finding SearchPathWasteFinding(const LiveWaste& w);

}  // namespace nodedns::audit

#endif  // NODEDNS_AUDIT_LIVE_AUDIT_H_
