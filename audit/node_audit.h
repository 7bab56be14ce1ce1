// `nodedns audit --node`: the offline audit applied to every pod found on this node
// (podscan/pod_scan.h), joined with what a running nodedns saw from each pod's addresses (GET
// /audit, live_audit.h), with a pod-spec fix per pod and a node summary. docs/audit.md, "Node
// mode", has the table and the JSON schema.
#ifndef NODEDNS_AUDIT_NODE_AUDIT_H_
#define NODEDNS_AUDIT_NODE_AUDIT_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "audit/audit.h"
#include "audit/live_audit.h"
#include "podscan/pod_scan.h"

namespace nodedns::audit {

// Version of the `audit --node` JSON document (and of GET /audit/pods).
inline constexpr int kNodeJsonSchemaVersion = 1;

struct PodReport {
  podscan::DiscoveredPod pod;
  // The pod's resolv.conf audited like a file (path: where it was read, under /proc); findings
  // gain `search-path-waste` when the live counts show waste from the pod's addresses. Without a
  // readable resolv.conf: no findings, no walks, `has_resolv_conf` false.
  FileReport file;
  bool has_resolv_conf = false;
  // With --live: the waste of every address of the pod, added up, and the lookups the search
  // rewrite answered for them (each saved the client the rest of its search walk).
  std::optional<LiveWaste> observed;
  uint64_t rewritten = 0;
  std::vector<std::pair<std::string, uint64_t>> rewritten_names;  // most first
  // What to change, as a pod-spec snippet (YAML); empty when there is nothing to change.
  std::string fix;
};

struct NodeReport {
  std::string proc;                      // the proc root scanned
  std::vector<PodReport> pods;           // in the scan's order (by name)
  podscan::ScanResult scan;              // counts and host-network pods; `pods` moved out
  std::optional<std::string> live;       // the --live server, ADDR:PORT
  std::string cluster_domain;            // from GET /audit
  uint64_t unattributed_wasted = 0;      // live waste from addresses of no pod found (host network,
                                         // pods on other nodes, pods gone since)
  std::optional<double> uptime_seconds;  // the server's, for a per-second rate
  uint32_t query_sample = 0;             // the server's --audit-query-sample
};

// `live`: the parsed GET /audit of the local serve, or null.
NodeReport AuditNode(podscan::ScanResult scan, std::string proc,
                     const std::vector<std::string>& names, const LiveAudit* live);

// The pod-spec snippet for one pod's findings (exposed for tests).
std::string PodSpecFix(const FileReport& file, bool wasted);

// The node summary's findings: each finding id, in first-seen order, with the pods that have it
// (by name, else `uid:<uid>`, else `netns:<inode>`; one entry per pod, so two pods of one name
// are two entries).
struct FindingPods {
  std::string id;
  Severity severity;
  std::vector<std::string> pods;
};
std::vector<FindingPods> PodsByFinding(const NodeReport& report);

std::optional<Severity> WorstSeverity(const NodeReport& report);

void RenderNodeTable(const NodeReport& report, std::ostream& out);
void RenderNodeJson(const NodeReport& report, std::ostream& out);

}  // namespace nodedns::audit

#endif  // NODEDNS_AUDIT_NODE_AUDIT_H_
