// `audit --node`: pods, their resolv.conf findings, live waste and fixes. See node_audit.h.
#include "audit/node_audit.h"

#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "audit/report.h"

namespace nodedns::audit {
namespace internal {
namespace {

std::string JsonStrings(const std::vector<std::string>& items) {
  std::vector<std::string> quoted;
  for (const std::string& s : items) quoted.push_back(JsonString(s));
  return absl::StrCat("[", absl::StrJoin(quoted, ","), "]");
}

std::string JsonInts(const std::vector<int>& items) {
  return absl::StrCat("[", absl::StrJoin(items, ","), "]");
}

// Queries one lookup of each sample name costs, per resolver, from the simulated walks.
struct Cost {
  std::string name;
  int glibc = 0;
  int musl = 0;
  int glibc_wasted = 0;
  int musl_wasted = 0;
};

std::vector<Cost> Costs(const FileReport& f) {
  std::vector<Cost> out;
  for (const Walk& w : f.walks) {
    auto it = std::find_if(out.begin(), out.end(), [&](const Cost& c) { return c.name == w.name; });
    if (it == out.end()) {
      out.push_back(Cost{.name = w.name});
      it = out.end() - 1;
    }
    (w.resolver == Resolver::kGlibc ? it->glibc : it->musl) = w.total;
    (w.resolver == Resolver::kGlibc ? it->glibc_wasted : it->musl_wasted) = w.wasted;
  }
  return out;
}

// How the summary names a pod: its name, else its UID, else its network namespace.
}  // namespace

void AddCount(std::vector<std::pair<std::string, uint64_t>>& counts, const std::string& name,
              uint64_t n) {
  auto it =
      std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == name; });
  if (it == counts.end()) {
    counts.emplace_back(name, n);
  } else {
    it->second += n;
  }
}

namespace {

std::string PodLabel(const PodReport& p) {
  if (!p.pod.name.empty()) return p.pod.name;
  if (!p.pod.cgroup.pod_uid.empty()) return "uid:" + p.pod.cgroup.pod_uid;
  return absl::StrCat("netns:", p.pod.net_ns);
}

}  // namespace
}  // namespace internal

std::string PodSpecFix(const FileReport& file, bool wasted) {
  int ndots = file.suggested_ndots.value_or(0);
  if (ndots == 0 && wasted && file.conf.ndots > 2 && file.k8s.has_value()) ndots = 2;
  if (ndots == 0) return "";
  // dnsConfig.options merge with the ClusterFirst defaults (kubelet keeps the search path and
  // nameserver, replaces ndots): the pod keeps its cluster names.
  return absl::StrFormat(
      "spec:\n  dnsConfig:\n    options:\n    - name: ndots\n      value: \"%d\"\n", ndots);
}

NodeReport AuditNode(podscan::ScanResult scan, std::string proc,
                     const std::vector<std::string>& names, const LiveAudit* live) {
  NodeReport report;
  report.proc = std::move(proc);
  if (live != nullptr) {
    report.cluster_domain = live->cluster_domain;
    report.uptime_seconds = live->uptime_seconds;
    report.query_sample = live->query_sample;
    report.live = live->server;
  }
  std::vector<bool> attributed(live != nullptr ? live->reports.size() : 0, false);
  // kubelet writes the same resolv.conf for every ClusterFirst pod of a namespace: each distinct
  // text is audited once (its walks are most of the cost), and the pods get copies.
  std::map<std::string, FileReport, std::less<>> audited;
  for (podscan::DiscoveredPod& pod : scan.pods) {
    PodReport p;
    p.has_resolv_conf = !pod.resolv_conf_path.empty();
    if (p.has_resolv_conf) {
      auto it = audited.find(pod.resolv_conf);
      if (it == audited.end()) {
        it = audited.emplace(pod.resolv_conf, AuditText("", pod.resolv_conf, names)).first;
      }
      p.file = it->second;
      p.file.path = pod.resolv_conf_path;
    } else {
      p.file.path = "(no readable /etc/resolv.conf)";
    }
    if (live != nullptr) {
      LiveWaste w;
      w.server = live->server;
      w.cluster_domain = live->cluster_domain;
      for (size_t i = 0; i < live->reports.size(); ++i) {
        const FileReport& client = live->reports[i];
        if (!client.live.has_value() || std::find(pod.addresses.begin(), pod.addresses.end(),
                                                  client.path) == pod.addresses.end()) {
          continue;
        }
        attributed[i] = true;
        w.wasted += client.live->wasted;
        w.error += client.live->error;
        for (const auto& [name, count] : client.live->names) {
          internal::AddCount(w.names, name, count);
        }
      }
      std::stable_sort(w.names.begin(), w.names.end(),
                       [](const auto& a, const auto& b) { return a.second > b.second; });
      AddQueries(*live, pod.addresses, w);
      for (const LiveRewrites& r : live->rewrites) {
        if (std::find(pod.addresses.begin(), pod.addresses.end(), r.client) ==
            pod.addresses.end()) {
          continue;
        }
        p.rewritten += r.rewritten;
        for (const auto& [name, count] : r.names)
          internal::AddCount(p.rewritten_names, name, count);
      }
      std::stable_sort(p.rewritten_names.begin(), p.rewritten_names.end(),
                       [](const auto& a, const auto& b) { return a.second > b.second; });
      if (w.wasted > 0) p.file.findings.push_back(SearchPathWasteFinding(w));
      p.observed = std::move(w);
    }
    p.fix = PodSpecFix(p.file, p.observed.has_value() && p.observed->wasted > 0);
    p.pod = std::move(pod);
    report.pods.push_back(std::move(p));
  }
  for (size_t i = 0; i < attributed.size(); ++i) {
    const FileReport& client = live->reports[i];
    if (!attributed[i] && client.live.has_value())
      report.unattributed_wasted += client.live->wasted;
  }
  scan.pods.clear();
  report.scan = std::move(scan);
  return report;
}

std::vector<FindingPods> PodsByFinding(const NodeReport& report) {
  std::vector<FindingPods> out;
  for (const PodReport& p : report.pods) {
    std::vector<std::string_view> seen;  // a finding may occur on several lines of one file
    for (const Finding& f : p.file.findings) {
      if (std::find(seen.begin(), seen.end(), f.id) != seen.end()) continue;
      seen.push_back(f.id);
      auto it = std::find_if(out.begin(), out.end(), [&](const auto& e) { return e.id == f.id; });
      if (it == out.end()) {
        out.push_back(FindingPods{.id = f.id, .severity = f.severity, .pods = {}});
        it = out.end() - 1;
      }
      it->pods.push_back(internal::PodLabel(p));
    }
  }
  return out;
}

std::optional<Severity> WorstSeverity(const NodeReport& report) {
  std::optional<Severity> worst;
  for (const PodReport& p : report.pods) {
    for (const Finding& f : p.file.findings) {
      if (!worst.has_value() || f.severity > *worst) worst = f.severity;
    }
  }
  return worst;
}

namespace internal {
namespace {

uint64_t PodsWasted(const NodeReport& report) {
  uint64_t total = 0;
  for (const PodReport& p : report.pods) total += p.observed ? p.observed->wasted : 0;
  return total;
}

// Queries seen from the pods, as counted (pods not among the counted clients add nothing).
uint64_t PodsQueries(const NodeReport& report) {
  uint64_t total = 0;
  for (const PodReport& p : report.pods) total += p.observed ? p.observed->queries.value_or(0) : 0;
  return total;
}

uint64_t PodsRewritten(const NodeReport& report) {
  uint64_t total = 0;
  for (const PodReport& p : report.pods) total += p.rewritten;
  return total;
}

}  // namespace
}  // namespace internal

void RenderNodeTable(const NodeReport& report, std::ostream& out) {
  using internal::Costs;
  for (const PodReport& p : report.pods) {
    const podscan::DiscoveredPod& pod = p.pod;
    out << "== pod " << (pod.name.empty() ? "(no /etc/hostname)" : pod.name);
    if (!pod.cgroup.pod_uid.empty()) {
      out << " (uid " << pod.cgroup.pod_uid << (pod.cgroup.qos.empty() ? "" : ", ")
          << pod.cgroup.qos << ")";
    } else {
      out << " (network namespace " << pod.net_ns << ", no pod cgroup)";
    }
    out << "\n";
    out << "  addresses:   "
        << (pod.addresses.empty() ? "(none)" : absl::StrJoin(pod.addresses, " ")) << "\n";
    out << "  containers:  " << pod.containers << " (pids " << absl::StrJoin(pod.pids, " ")
        << ")\n";
    if (pod.resolv_confs_differ) {
      out << "  note:        its containers read different resolv.conf files; the first is shown\n";
    }
    if (p.observed.has_value()) {
      if (p.observed->query_sample > 0) {
        out << "  queries:     " << QueriesSeenText(*p.observed) << "\n";
      }
      out << "  observed:    " << p.observed->wasted << " NXDOMAIN replies below "
          << p.observed->cluster_domain << " (nodedns at " << *report.live << ")";
      if (p.observed->error > 0) {
        out << ", over by at most " << p.observed->error;
      }
      out << "\n";
      int step = 0;
      for (const auto& [name, count] : p.observed->names) {
        out << absl::StrFormat("          %d. %-50s %d nxdomain\n", ++step, name, count);
      }
      out << "  rewritten:   " << p.rewritten
          << " replies answered by the search rewrite (each spared the client the rest of its "
             "walk)\n";
      step = 0;
      for (const auto& [name, count] : p.rewritten_names) {
        out << absl::StrFormat("          %d. %-50s %d rewritten\n", ++step, name, count);
      }
    }
    if (p.has_resolv_conf) {
      std::vector<internal::Cost> costs = Costs(p.file);
      if (!costs.empty()) {
        out << "  cost per lookup (queries glibc / musl, of which wasted):\n";
        for (const internal::Cost& c : costs) {
          out << absl::StrFormat("          %-50s %d / %d  (%d / %d)\n", c.name, c.glibc, c.musl,
                                 c.glibc_wasted, c.musl_wasted);
        }
      }
      // The file's own lines: configuration, findings (with the live one); the walks are the
      // costs above.
      out << "  resolv.conf: " << p.file.path;
      if (p.file.k8s.has_value()) {
        out << " (namespace " << p.file.k8s->namespace_name << ", zone " << p.file.k8s->zone << ")";
      }
      out << "\n";
      FileReport shown = p.file;
      shown.walks.clear();
      RenderFileBody(shown, out);
    } else {
      out << "  resolv.conf: none readable in any of its containers\n";
    }
    if (!p.fix.empty()) {
      out << "  fix (pod spec):\n";
      for (absl::string_view line : absl::StrSplit(p.fix, '\n', absl::SkipEmpty())) {
        out << "    " << line << "\n";
      }
    }
    out << "\n";
  }
  const podscan::ScanResult& s = report.scan;
  out << "== node summary (" << report.proc << "): " << report.pods.size() << " pod(s)";
  size_t with_findings = 0;
  for (const PodReport& p : report.pods) with_findings += p.file.findings.empty() ? 0 : 1;
  out << ", " << with_findings << " with findings\n";
  for (const FindingPods& f : PodsByFinding(report)) {
    out << absl::StrFormat("  %-30s %-7s %d pod(s): %s\n", f.id, SeverityName(f.severity),
                           f.pods.size(), absl::StrJoin(f.pods, " "));
  }
  if (report.live.has_value()) {
    const uint64_t wasted = internal::PodsWasted(report);
    if (report.query_sample > 0) {
      out << "  queries:     " << internal::PodsQueries(report) << " seen from these pods";
      if (report.query_sample > 1) out << " (estimated from one in " << report.query_sample << ")";
      out << "\n";
    }
    out << "  wasted:      " << wasted << " NXDOMAIN replies from these pods";
    if (report.uptime_seconds.has_value() && *report.uptime_seconds > 0) {
      out << absl::StrFormat(" (%.2f/s over nodedns's %.0f s)", wasted / *report.uptime_seconds,
                             *report.uptime_seconds);
    }
    out << "; " << report.unattributed_wasted << " from addresses of no pod found\n";
    out << "  rewritten:   " << internal::PodsRewritten(report)
        << " replies to these pods answered by the search rewrite\n";
  }
  if (!s.host_network.empty()) {
    std::vector<std::string> uids;
    for (const podscan::HostNetworkPod& h : s.host_network) uids.push_back(h.cgroup.pod_uid);
    out << "  skipped:     " << s.host_network.size()
        << " hostNetwork pod(s) (their address is the node's): " << absl::StrJoin(uids, " ")
        << "\n";
  }
  out << "  scanned:     " << s.processes << " processes, " << s.host_processes << " on the host, "
      << s.host_private_mounts << " host services with a private mount namespace, " << s.vanished
      << " gone mid-scan, " << s.denied << " unreadable\n";
}

void RenderNodeJson(const NodeReport& report, std::ostream& out) {
  std::vector<std::string> pods;
  for (const PodReport& p : report.pods) {
    const podscan::DiscoveredPod& pod = p.pod;
    std::vector<std::string> costs;
    for (const internal::Cost& c : internal::Costs(p.file)) {
      costs.push_back(absl::StrCat("{\"name\":", JsonString(c.name), ",\"glibc\":", c.glibc,
                                   ",\"musl\":", c.musl, ",\"glibc_wasted\":", c.glibc_wasted,
                                   ",\"musl_wasted\":", c.musl_wasted, "}"));
    }
    std::string observed = "null";
    if (p.observed.has_value()) {
      std::vector<std::string> names;
      for (const auto& [name, count] : p.observed->names) {
        names.push_back(absl::StrCat("{\"name\":", JsonString(name), ",\"wasted\":", count, "}"));
      }
      std::vector<std::string> rewritten;
      for (const auto& [name, count] : p.rewritten_names) {
        rewritten.push_back(
            absl::StrCat("{\"name\":", JsonString(name), ",\"rewritten\":", count, "}"));
      }
      observed =
          absl::StrCat("{", QueriesJsonMembers(*p.observed), ",\"wasted\":", p.observed->wasted,
                       ",\"error\":", p.observed->error, ",\"names\":[", absl::StrJoin(names, ","),
                       "],\"rewritten\":", p.rewritten, ",\"rewritten_names\":[",
                       absl::StrJoin(rewritten, ","), "]}");
    }
    pods.push_back(absl::StrCat(
        "{\"name\":", JsonString(pod.name), ",\"uid\":", JsonString(pod.cgroup.pod_uid),
        ",\"qos\":", JsonString(pod.cgroup.qos), ",\"net_ns\":", pod.net_ns, ",\"containers\":",
        pod.containers, ",\"container_ids\":", internal::JsonStrings(pod.container_ids),
        ",\"pids\":", internal::JsonInts(pod.pids),
        ",\"addresses\":", internal::JsonStrings(pod.addresses),
        ",\"resolv_confs_differ\":", pod.resolv_confs_differ ? "true" : "false",
        ",\"resolv_conf\":", p.has_resolv_conf ? FileReportJson(p.file) : "null", ",\"cost\":[",
        absl::StrJoin(costs, ","), "],\"observed\":", observed,
        ",\"fix\":", p.fix.empty() ? "null" : JsonString(p.fix), "}"));
  }
  std::vector<std::string> findings;
  for (const FindingPods& f : PodsByFinding(report)) {
    findings.push_back(absl::StrCat("{\"id\":", JsonString(f.id),
                                    ",\"severity\":", JsonString(SeverityName(f.severity)),
                                    ",\"pods\":", internal::JsonStrings(f.pods), "}"));
  }
  std::vector<std::string> host_network;
  for (const podscan::HostNetworkPod& h : report.scan.host_network) {
    host_network.push_back(absl::StrCat("{\"uid\":", JsonString(h.cgroup.pod_uid),
                                        ",\"qos\":", JsonString(h.cgroup.qos),
                                        ",\"pids\":", internal::JsonInts(h.pids), "}"));
  }
  const podscan::ScanResult& s = report.scan;
  std::string wasted = "null";
  std::string rate = "null";
  if (report.live.has_value()) {
    wasted = absl::StrCat(internal::PodsWasted(report));
    if (report.uptime_seconds.has_value() && *report.uptime_seconds > 0) {
      rate = absl::StrFormat("%.3f", internal::PodsWasted(report) / *report.uptime_seconds);
    }
  }
  const std::optional<Severity> worst = WorstSeverity(report);
  out << "{\"version\":" << kNodeJsonSchemaVersion << ",\"proc\":" << JsonString(report.proc)
      << ",\"live\":" << (report.live ? JsonString(*report.live) : "null") << ",\"cluster_domain\":"
      << (report.live ? JsonString(report.cluster_domain) : std::string("null")) << ",\"pods\":["
      << absl::StrJoin(pods, ",") << "],\"host_network_pods\":[" << absl::StrJoin(host_network, ",")
      << "],\"summary\":{\"pods\":" << report.pods.size() << ",\"findings\":["
      << absl::StrJoin(findings, ",") << "],\"wasted\":" << wasted
      << ",\"wasted_per_second\":" << rate
      << ",\"queries\":" << (report.live ? absl::StrCat(internal::PodsQueries(report)) : "null")
      << ",\"rewritten\":" << (report.live ? absl::StrCat(internal::PodsRewritten(report)) : "null")
      << ",\"unattributed_wasted\":"
      << (report.live ? absl::StrCat(report.unattributed_wasted) : "null")
      << "},\"scan\":{\"processes\":" << s.processes << ",\"host_processes\":" << s.host_processes
      << ",\"host_private_mounts\":" << s.host_private_mounts << ",\"vanished\":" << s.vanished
      << ",\"denied\":" << s.denied
      << "},\"worst_severity\":" << (worst.has_value() ? JsonString(SeverityName(*worst)) : "null")
      << "}\n";
}

}  // namespace nodedns::audit
