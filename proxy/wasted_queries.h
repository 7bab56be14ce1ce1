// Who pays for the search path: a bounded top-K of clients by wasted queries — NXDOMAIN replies
// for names under the cluster domain, which is what a pod's search-list walk costs — and, per
// client, the names those queries came from (the name with the search suffix stripped).
//
// Per-client metric labels would explode Prometheus cardinality (coredns/coredns#3572), so this is
// a Space-Saving top-K (Metwally et al.): K counters, the smallest replaced when a new client
// arrives, each count an overestimate by at most its recorded error. Fixed arrays, no allocation:
// Note() runs on the reply path of NXDOMAIN hits.
#ifndef NODEDNS_PROXY_WASTED_QUERIES_H_
#define NODEDNS_PROXY_WASTED_QUERIES_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dns/wire.h"
#include "proxy/published.h"

namespace nodedns::proxy {

// Splits a name under the cluster zone into the name the client typed: strips `<ns>.svc.<zone>`,
// `svc.<zone>` or `<zone>` (the Kubernetes search list, first match). Returns the length of the
// base name's labels (without a root byte) or 0 if `qname` is not under `zone` with a base left.
// `N.x.svc.<zone>` reads both as N in namespace x and as `N.x` under `svc.<zone>`; the second
// reading's length goes to *alternative (equal to the result when there is no second reading).
size_t SearchBaseLength(std::span<const uint8_t> qname, std::span<const uint8_t> zone_wire,
                        size_t* alternative = nullptr);

// Whether `qname` (a parsed wire name, root byte included) is a search-list expansion as GET
// /audit classifies one: strictly below the cluster zone, i.e. SearchBaseLength() > 0. Runs for
// every query (nodedns_search_expansion_queries_total), so a word-at-a-time tail compare comes
// first and names outside the zone cost no label walk.
inline bool IsSearchExpansion(std::span<const uint8_t> qname, std::span<const uint8_t> zone_wire) {
  if (zone_wire.size() <= 1 || qname.size() <= zone_wire.size()) return false;
  const size_t stem = qname.size() - zone_wire.size();
  if (!dns::NameEqualsIgnoreCase(qname.data() + stem, zone_wire.data(), zone_wire.size())) {
    return false;
  }
  size_t off = 0;
  while (off < stem) off += size_t{qname[off]} + 1;  // on a label boundary?
  return off == stem;
}

// Owned and written by one worker; Publish() copies it for readers on other threads.
class WastedQueryTracker {
 public:
  static constexpr size_t kClients = 32;
  static constexpr size_t kNamesPerClient = 4;

  struct NameCount {
    uint8_t name[dns::kMaxNameWire];  // base name labels, lowercase, no root byte
    uint8_t length = 0;
    uint64_t count = 0;
  };
  struct ClientCount {
    uint8_t addr[16];  // IPv4 in the first 4 bytes, or IPv6
    uint8_t family = 0;
    uint64_t count = 0;
    uint64_t error = 0;  // Space-Saving: count may exceed the truth by at most this
    std::array<NameCount, kNamesPerClient> names;
  };

  // Worker thread: an NXDOMAIN reply to `client` for a name whose base (SearchBaseLength) is
  // `base`.
  // `alternative` is the other reading of an ambiguous name (see SearchBaseLength); it wins if
  // the client already has it on record, which is what a search walk produces (the first search
  // element, `<ns>.svc.<zone>`, is always asked first).
  void Note(const sockaddr_storage& client, std::span<const uint8_t> base,
            std::span<const uint8_t> alternative = {});
  // Worker thread: makes the current counts visible to Snapshot().
  void Publish() { published_.Publish(std::span(clients_).first(used_)); }
  // Any thread: the last published counts.
  std::vector<ClientCount> Snapshot() const { return published_.Snapshot(); }

 private:
  std::array<ClientCount, kClients> clients_{};
  size_t used_ = 0;
  Published<ClientCount> published_;
};

// Merges the workers' snapshots (a client may talk to several workers) and renders the GET /audit
// JSON document: {"version":1,"cluster_domain":...,"clients":[{"client","wasted","error",
// "names":[{"name","wasted"}]}]} sorted by wasted queries, largest first. `more`: further members
// of the document ("\"shed\":[...]"), appended after "clients".
std::string RenderWastedQueriesJson(
    const std::vector<std::vector<WastedQueryTracker::ClientCount>>& per_worker,
    const std::string& cluster_domain, std::string_view more = {});

// The "rewrites" member of the GET /audit document: the workers' top-K of lookups answered by the
// search rewrite, merged per client: "rewrites":[{"client","rewritten","error",
// "names":[{"name","rewritten"}]}], most first.
std::string RenderRewritesJson(
    const std::vector<std::vector<WastedQueryTracker::ClientCount>>& per_worker);

// The same data as a table, for people with curl (GET /audit.txt). `nodedns audit --live` reads
// the JSON and renders it with the offline audit's renderers (audit/live_audit.h).
std::string RenderWastedQueriesTable(
    const std::vector<std::vector<WastedQueryTracker::ClientCount>>& per_worker,
    const std::string& cluster_domain);

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_WASTED_QUERIES_H_
