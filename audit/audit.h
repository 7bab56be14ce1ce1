// The offline audit of resolv.conf files: parse each file, simulate the glibc and musl search
// walks for a set of names, derive findings (ndots, search limits, nameservers, timeouts,
// node-local cache use) and group files with identical configurations. Rendering lives in
// report.h; the CLI in audit_command.h.
#ifndef NODEDNS_AUDIT_AUDIT_H_
#define NODEDNS_AUDIT_AUDIT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/finding.h"
#include "audit/walk.h"
#include "resolvconf/resolv_conf.h"

namespace nodedns::audit {

// The address node-local-dns (and nodedns) listens on by convention in Kubernetes clusters.
inline constexpr std::string_view kNodeLocalCacheAddress = "169.254.20.10";
// A lookup whose failure takes longer than this is reported as slow.
inline constexpr int kSlowFailureSeconds = 10;
// kubelet limits with ExpandedDNSConfig (KEP-2595, default since 1.26): 32 domains and 2048
// characters counted with the separating spaces.
inline constexpr int kKubeletMaxSearchDomains = 32;
inline constexpr int kKubeletMaxSearchChars = 2048;
// glibc before 2.26 (MAXDNSRCH) and kubelet without ExpandedDNSConfig: 6 domains, 256 chars.
inline constexpr int kLegacyMaxSearchDomains = 6;
inline constexpr int kLegacyMaxSearchChars = 256;

// Names used when none are given: a short service name, a cross-namespace name and an external
// name.
std::vector<std::string> DefaultSampleNames();

// What a running nodedns saw from one client: `nodedns audit --live`, read from GET /audit
// (audit/live_audit.h).
struct LiveWaste {
  std::string server;          // The health endpoint asked, ADDR:PORT.
  std::string cluster_domain;  // The proxy's --cluster-domain.
  uint64_t wasted = 0;         // NXDOMAIN replies to the client for names below cluster_domain.
  uint64_t error = 0;          // Space-Saving: `wasted` may exceed the truth by at most this.
  // The names the client looked up (search suffix stripped), with their NXDOMAINs, largest first.
  std::vector<std::pair<std::string, uint64_t>> names;
  // All queries the proxy saw from the client, estimated from one in `query_sample`
  // (--audit-query-sample); nullopt when the proxy does not count them or the client is not
  // among those it keeps (a top-K).
  std::optional<uint64_t> queries;
  uint64_t queries_error = 0;  // Space-Saving: `queries` may exceed the estimate by at most this
  uint32_t query_sample = 0;
};

struct FileReport {
  // The file; with --live, the client's address (and `conf` is that of an empty file).
  std::string path;
  resolvconf::ResolvConf conf;
  std::optional<KubernetesContext> k8s;
  std::vector<Finding> findings;  // Sorted by line, then by decreasing severity.
  std::vector<Walk> walks;        // For each name: glibc, then musl.
  // Where the walk outcomes come from: "model" (docs/audit.md, "Expected existence") or
  // "server ADDR:PORT" with --resolve.
  std::string outcome_source = "model";
  std::optional<LiveWaste> live;  // Set by --live only.
  // The ndots the sample names need (at least 2 in a pod), set when an ndots finding suggests
  // lowering it: what the pod-spec fix of `audit --node` writes.
  std::optional<int> suggested_ndots;
};

// Audits one file's contents. `oracle` defaults to DefaultExistence(conf) when empty.
FileReport AuditText(std::string path, std::string_view text, const std::vector<std::string>& names,
                     ExistenceOracle oracle = nullptr);

// glibc's worst-case time in seconds for one lookup when no nameserver answers: every attempt
// tries every nameserver (at most 3), waiting timeout for the first and
// (timeout << i) / nscount for nameserver i > 0 (res_send.c, send_dg).
int GlibcWorstCaseSeconds(const resolvconf::ResolvConf& conf);

// Files with the same ConfigHash.
struct ConfigGroup {
  std::string config_hash;
  std::vector<std::string> files;
  const FileReport* example = nullptr;  // First file of the group.
  Severity worst = Severity::kInfo;
  bool has_findings = false;
  std::vector<std::string> finding_ids;  // Distinct, in first-seen order.
};
std::vector<ConfigGroup> GroupByConfig(const std::vector<FileReport>& reports);

// Highest severity across reports; nullopt when there is no finding at all.
std::optional<Severity> WorstSeverity(const std::vector<FileReport>& reports);

}  // namespace nodedns::audit

#endif  // NODEDNS_AUDIT_AUDIT_H_
