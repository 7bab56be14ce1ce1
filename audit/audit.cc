// Offline resolv.conf audit: findings derived from the parsed configuration and the simulated
// walks. See audit.h and docs/audit.md (which lists every finding id).
#include "audit/audit.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "resolvconf/resolv_conf.h"

namespace nodedns::audit {

using resolvconf::ConfigHash;
using resolvconf::kMaxNameservers;
using resolvconf::ParsedResolvConf;
using resolvconf::ParseResolvConf;
using resolvconf::ResolvConf;

namespace internal {
namespace {

int SearchChars(const std::vector<std::string>& search) {
  if (search.empty()) return 0;
  int chars = static_cast<int>(search.size()) - 1;  // Separating spaces count (kubelet does).
  for (const std::string& d : search) chars += static_cast<int>(d.size());
  return chars;
}

bool UsesNodeLocalCache(const ResolvConf& conf) {
  return std::find(conf.nameservers.begin(), conf.nameservers.end(), kNodeLocalCacheAddress) !=
         conf.nameservers.end();
}

// True when `name` is expected to be found through a search domain rather than as typed, i.e. it
// needs ndots > its dot count to avoid a wasted as-is query first.
bool ResolvedBySearch(const ResolvConf& conf, const std::string& name,
                      const ExistenceOracle& oracle) {
  if (name.empty() || name.back() == '.') return false;
  for (const std::string& d : conf.search) {
    if (d.empty() || d == ".") continue;
    if (oracle(name, absl::StrCat(name, ".", d)) == Outcome::kAnswer) return true;
  }
  return false;
}

class Analyzer {
 public:
  Analyzer(FileReport& report, const std::vector<std::string>& names, const ExistenceOracle& oracle)
      : r_(report), names_(names), oracle_(oracle) {}

  void Run() {
    Nameservers();
    SearchLimits();
    Ndots();
    ConntrackRace();
    NodeLocalCache();
    SlowFailure();
    ResolverMismatch();
  }

 private:
  void Add(std::string id, Severity severity, int line, std::string message, std::string fix) {
    r_.findings.push_back(
        Finding{std::move(id), severity, line, std::move(message), std::move(fix)});
  }

  void Nameservers() {
    const ResolvConf& c = r_.conf;
    if (c.nameservers.empty()) {
      Add("no-nameserver", Severity::kWarning, 0,
          "no usable nameserver line; glibc and musl then query 127.0.0.1, which is rarely "
          "what a pod wants",
          "add a 'nameserver' line (in Kubernetes: dnsPolicy ClusterFirst or "
          "dnsConfig.nameservers)");
    }
    if (static_cast<int>(c.nameservers.size()) > kMaxNameservers) {
      std::vector<std::string> ignored(c.nameservers.begin() + kMaxNameservers,
                                       c.nameservers.end());
      Add("too-many-nameservers", Severity::kWarning, c.nameserver_lines[kMaxNameservers],
          absl::StrFormat("%d nameservers listed; glibc and musl use only the first %d and "
                          "silently ignore %s",
                          c.nameservers.size(), kMaxNameservers, absl::StrJoin(ignored, ", ")),
          "list at most 3 nameservers (kubelet also rejects more than 3)");
    }
  }

  void SearchLimits() {
    const ResolvConf& c = r_.conf;
    const int domains = static_cast<int>(c.search.size());
    const int chars = SearchChars(c.search);
    if (domains > kKubeletMaxSearchDomains || chars > kKubeletMaxSearchChars) {
      Add("search-over-kubelet-limit", Severity::kError, c.search_line,
          absl::StrFormat("search list has %d domains and %d characters; kubelet allows at most "
                          "%d domains and %d characters and drops the rest when it writes a pod's "
                          "resolv.conf",
                          domains, chars, kKubeletMaxSearchDomains, kKubeletMaxSearchChars),
          "shorten the search list (the node's resolv.conf search line and "
          "dnsConfig.searches are both appended)");
    } else if (domains > kLegacyMaxSearchDomains || chars > kLegacyMaxSearchChars) {
      Add("search-over-legacy-limit", Severity::kWarning, c.search_line,
          absl::StrFormat("search list has %d domains and %d characters; glibc before 2.26 used "
                          "only the first %d domains / %d characters, and kubelet without "
                          "ExpandedDNSConfig enforces the same limits",
                          domains, chars, kLegacyMaxSearchDomains, kLegacyMaxSearchChars),
          "keep the search list to 6 domains and 256 characters if old images or old kubelets "
          "are in use");
    }
  }

  void Ndots() {
    const ResolvConf& c = r_.conf;
    int needed = 1;
    std::vector<std::string> needy;
    for (const std::string& name : names_) {
      if (ResolvedBySearch(c, name, oracle_)) {
        needed = std::max(needed, CountDots(name) + 1);
        needy.push_back(name);
      }
    }
    // In a pod, <service>.<namespace> is the everyday cross-namespace form; with ndots:1 musl
    // would not search it at all, so never suggest less than 2 there.
    if (r_.k8s.has_value()) needed = std::max(needed, 2);
    int glibc_total = 0;
    int glibc_nx = 0;
    for (const Walk& w : r_.walks) {
      if (w.resolver != Resolver::kGlibc) continue;
      glibc_total += w.total;
      glibc_nx += w.nxdomain;
    }
    const std::string cost = absl::StrFormat(
        "for the %d sample name(s) glibc sends %d queries, %d of them expected NXDOMAIN",
        names_.size(), glibc_total, glibc_nx);
    const std::string fix = absl::StrFormat(
        "set ndots to %d (pod spec: dnsConfig: {options: [{name: ndots, value: \"%d\"}]}), or "
        "write external names fully qualified with a trailing dot (api.example.com.)",
        needed, needed);
    if (r_.k8s.has_value() && c.ndots >= 5) {
      r_.suggested_ndots = needed;
      Add("ndots-k8s-default", Severity::kWarning, c.ndots_line,
          absl::StrFormat("ndots:%d with the Kubernetes search path: every name with fewer than "
                          "%d dots walks all %d search domains (each an A and an AAAA query) "
                          "before it is tried as typed; %s",
                          c.ndots, c.ndots, c.search.size(), cost),
          fix);
    } else if (c.ndots > needed) {
      r_.suggested_ndots = needed;
      Add("ndots-above-need", Severity::kInfo, c.ndots_line,
          absl::StrFormat("ndots:%d is more than the names need (%d%s%s); %s", c.ndots, needed,
                          needy.empty() ? "" : " for ", absl::StrJoin(needy, ", "), cost),
          fix);
    }
  }

  void ConntrackRace() {
    const ResolvConf& c = r_.conf;
    if (!r_.k8s.has_value() || UsesNodeLocalCache(c)) return;
    if (c.single_request || c.single_request_reopen || c.use_vc || c.no_aaaa) return;
    Add("single-request-reopen-missing", Severity::kInfo, 0,
        "glibc sends A and AAAA at once from one UDP socket; through kube-proxy's DNAT the two "
        "packets can race in conntrack and one is dropped, costing a full timeout (5 s)",
        "add 'options single-request-reopen' (dnsConfig.options) for glibc images, or point pods "
        "at a node-local cache (169.254.20.10), whose traffic bypasses conntrack");
  }

  void NodeLocalCache() {
    const ResolvConf& c = r_.conf;
    if (UsesNodeLocalCache(c)) {
      if (c.nameservers.size() == 1) {
        // The cache restarts (upgrades, crashes, OOM kills); the ClusterIP falls back to CoreDNS
        // through kube-proxy while it is gone (docs/deploy.md), the link-local address does not.
        Add("node-local-cache-only", Severity::kWarning, c.nameserver_lines[0],
            absl::StrFormat("%s is the only nameserver: while the node-local cache restarts "
                            "(upgrade, crash, OOM kill) this pod's lookups fail",
                            kNodeLocalCacheAddress),
            "add the kube-dns ClusterIP as a second nameserver (kubelet "
            "--cluster-dns=169.254.20.10,CLUSTER_IP, or dnsConfig.nameservers); the stub "
            "resolver moves to it at once when nothing listens on the first");
      }
      if (c.rotate && c.nameservers.size() > 1) {
        Add("rotate-with-node-local-cache", Severity::kWarning, c.rotate_line,
            "'options rotate' spreads queries over all nameservers, so only part of them go to "
            "the node-local cache and the rest miss its cache",
            "remove 'rotate'; keep the node-local cache as the first nameserver");
      }
      return;
    }
    if (r_.k8s.has_value()) {
      Add("node-local-cache-unused", Severity::kInfo, 0,
          absl::StrFormat("this looks like a Kubernetes pod resolv.conf (namespace %s, zone %s) "
                          "but the node-local cache %s is not a nameserver",
                          r_.k8s->namespace_name, r_.k8s->zone, kNodeLocalCacheAddress),
          "run nodedns (or node-local-dns) and set kubelet's clusterDNS to 169.254.20.10, with "
          "the kube-dns ClusterIP second for while the cache restarts");
    }
  }

  void SlowFailure() {
    const ResolvConf& c = r_.conf;
    int seconds = GlibcWorstCaseSeconds(c);
    if (seconds <= kSlowFailureSeconds) return;
    int line = std::max(c.timeout_line, c.attempts_line);
    Add("slow-failure", Severity::kWarning, line,
        absl::StrFormat("when no nameserver answers, one glibc lookup takes up to %d s "
                        "(timeout:%d, attempts:%d, %d nameserver(s)); musl gives up after "
                        "timeout:%d s in total",
                        seconds, c.timeout, c.attempts,
                        std::min<int>(std::max<size_t>(c.nameservers.size(), 1), kMaxNameservers),
                        c.musl_timeout),
        "lower timeout and attempts (e.g. options timeout:2 attempts:2) so failures surface "
        "within 10 s");
  }

  void ResolverMismatch() {
    // Walks come in (glibc, musl) pairs, one pair per name.
    for (size_t i = 0; i + 1 < r_.walks.size(); i += 2) {
      const Walk& g = r_.walks[i];
      const Walk& m = r_.walks[i + 1];
      bool g_ok = g.answered_by.has_value();
      bool m_ok = m.answered_by.has_value();
      if (g_ok == m_ok) continue;
      const Walk& ok = g_ok ? g : m;
      const Walk& bad = g_ok ? m : g;
      Add("resolver-mismatch", Severity::kWarning, 0,
          absl::StrFormat("'%s' resolves with %s (as %s) but fails with %s (%s)", g.name,
                          ResolverName(ok.resolver), *ok.answered_by, ResolverName(bad.resolver),
                          bad.resolver == Resolver::kMusl
                              ? "musl does not search when dots >= ndots, stops at NODATA and "
                                "ignores lines of 255+ characters"
                              : "glibc reads the file differently"),
          absl::StrFormat("use the fully qualified name '%s.' in the application",
                          *ok.answered_by));
    }
  }

  FileReport& r_;
  const std::vector<std::string>& names_;
  const ExistenceOracle& oracle_;
};

}  // namespace
}  // namespace internal

std::vector<std::string> DefaultSampleNames() {
  return {"kubernetes", "kubernetes.default", "api.example.com"};
}

int GlibcWorstCaseSeconds(const ResolvConf& conf) {
  const int nscount =
      std::min<int>(std::max<int>(static_cast<int>(conf.nameservers.size()), 1), kMaxNameservers);
  int per_attempt = 0;
  for (int ns = 0; ns < nscount; ++ns) {
    int seconds = conf.timeout << ns;
    if (ns > 0) seconds /= nscount;
    per_attempt += std::max(seconds, 1);
  }
  return per_attempt * conf.attempts;
}

FileReport AuditText(std::string path, std::string_view text, const std::vector<std::string>& names,
                     ExistenceOracle oracle) {
  ParsedResolvConf parsed = ParseResolvConf(text);
  FileReport report;
  report.path = std::move(path);
  report.conf = std::move(parsed.conf);
  report.findings = std::move(parsed.findings);
  report.k8s = DetectKubernetes(report.conf.search);
  if (!oracle) oracle = DefaultExistence(report.conf);
  for (const std::string& name : names) {
    report.walks.push_back(SimulateWalk(report.conf, name, Resolver::kGlibc, oracle));
    report.walks.push_back(SimulateWalk(report.conf, name, Resolver::kMusl, oracle));
  }
  internal::Analyzer(report, names, oracle).Run();
  std::stable_sort(report.findings.begin(), report.findings.end(),
                   [](const Finding& a, const Finding& b) {
                     if (a.line != b.line) return a.line < b.line;
                     return a.severity > b.severity;
                   });
  return report;
}

std::vector<ConfigGroup> GroupByConfig(const std::vector<FileReport>& reports) {
  std::vector<ConfigGroup> groups;
  std::map<std::string, size_t> index;
  for (const FileReport& r : reports) {
    std::string hash = ConfigHash(r.conf);
    auto [it, inserted] = index.emplace(hash, groups.size());
    if (inserted) {
      groups.push_back(ConfigGroup{hash, {}, &r, Severity::kInfo, false, {}});
    }
    ConfigGroup& g = groups[it->second];
    g.files.push_back(r.path);
    for (const Finding& f : r.findings) {
      if (!g.has_findings || f.severity > g.worst) g.worst = f.severity;
      g.has_findings = true;
      if (std::find(g.finding_ids.begin(), g.finding_ids.end(), f.id) == g.finding_ids.end()) {
        g.finding_ids.push_back(f.id);
      }
    }
  }
  return groups;
}

std::optional<Severity> WorstSeverity(const std::vector<FileReport>& reports) {
  std::optional<Severity> worst;
  for (const FileReport& r : reports) {
    for (const Finding& f : r.findings) {
      if (!worst.has_value() || f.severity > *worst) worst = f.severity;
    }
  }
  return worst;
}

}  // namespace nodedns::audit
