// Table and JSON rendering of audit results. See report.h.
#include "audit/report.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "resolvconf/resolv_conf.h"

namespace nodedns::audit {

using resolvconf::ConfigHash;
using resolvconf::EffectiveOptions;
using resolvconf::ResolvConf;

namespace internal {
namespace {

std::string JsonStringList(const std::vector<std::string>& items) {
  std::vector<std::string> quoted;
  quoted.reserve(items.size());
  for (const std::string& s : items) quoted.push_back(JsonString(s));
  return absl::StrCat("[", absl::StrJoin(quoted, ","), "]");
}

std::string JsonBool(bool b) { return b ? "true" : "false"; }

std::string ConfigJson(const FileReport& r) {
  const ResolvConf& c = r.conf;
  std::string k8s = "null";
  if (r.k8s.has_value()) {
    k8s = absl::StrCat("{\"namespace\":", JsonString(r.k8s->namespace_name),
                       ",\"zone\":", JsonString(r.k8s->zone), "}");
  }
  return absl::StrCat(
      "{\"hash\":", JsonString(ConfigHash(c)), ",\"nameservers\":", JsonStringList(c.nameservers),
      ",\"search\":", JsonStringList(c.search), ",\"ndots\":", c.ndots, ",\"timeout\":", c.timeout,
      ",\"attempts\":", c.attempts, ",\"options\":", JsonStringList(EffectiveOptions(c)),
      ",\"unknown_options\":", JsonStringList(c.unknown_options),
      ",\"musl\":{\"search\":", JsonStringList(c.musl_search), ",\"ndots\":", c.musl_ndots,
      ",\"timeout\":", c.musl_timeout, ",\"attempts\":", c.musl_attempts, "},\"kubernetes\":", k8s,
      "}");
}

std::string FindingJson(const Finding& f) {
  return absl::StrCat("{\"id\":", JsonString(f.id),
                      ",\"severity\":", JsonString(SeverityName(f.severity)), ",\"line\":", f.line,
                      ",\"message\":", JsonString(f.message), ",\"fix\":", JsonString(f.fix), "}");
}

std::string WalkJson(const Walk& w) {
  std::vector<std::string> queries;
  for (const Query& q : w.queries) {
    queries.push_back(absl::StrCat("{\"qname\":", JsonString(q.qname),
                                   ",\"qtype\":", JsonString(q.qtype),
                                   ",\"expected\":", JsonString(OutcomeName(q.expected)), "}"));
  }
  return absl::StrCat(
      "{\"name\":", JsonString(w.name), ",\"resolver\":", JsonString(ResolverName(w.resolver)),
      ",\"parallel\":", JsonBool(w.parallel), ",\"tcp\":", JsonBool(w.tcp), ",\"queries\":[",
      absl::StrJoin(queries, ","), "],\"total\":", w.total, ",\"nxdomain\":", w.nxdomain,
      ",\"wasted\":", w.wasted,
      ",\"answered_by\":", w.answered_by.has_value() ? JsonString(*w.answered_by) : "null",
      ",\"result\":", JsonString(OutcomeName(w.final_outcome)), "}");
}

// With --live: what the proxy counted for the client; null for a resolv.conf.
std::string LiveJson(const FileReport& r) {
  if (!r.live.has_value()) return "null";
  const LiveWaste& w = *r.live;
  std::vector<std::string> names;
  for (const auto& [name, count] : w.names) {
    names.push_back(absl::StrCat("{\"name\":", JsonString(name), ",\"wasted\":", count, "}"));
  }
  return absl::StrCat("{\"server\":", JsonString(w.server),
                      ",\"cluster_domain\":", JsonString(w.cluster_domain),
                      ",\"wasted\":", w.wasted, ",\"error\":", w.error, ",\"names\":[",
                      absl::StrJoin(names, ","), "],", QueriesJsonMembers(w), "}");
}

std::string SeverityLabel(Severity s) {
  switch (s) {
    case Severity::kError:
      return "ERROR  ";
    case Severity::kWarning:
      return "WARNING";
    case Severity::kInfo:
      return "INFO   ";
  }
  return "INFO   ";
}

}  // namespace
}  // namespace internal

std::string QueriesSeenText(const LiveWaste& w) {
  if (!w.queries.has_value()) {
    return "not among the busiest clients nodedns keeps counts of (a top-K per worker)";
  }
  std::string out = absl::StrCat(*w.queries, " seen");
  if (w.query_sample > 1) absl::StrAppend(&out, " (estimated from one in ", w.query_sample, ")");
  if (w.queries_error > 0) absl::StrAppend(&out, ", over by at most ", w.queries_error);
  if (*w.queries > 0 && w.wasted > 0) {
    // An estimate can fall below the exact NXDOMAIN count.
    const double share =
        std::min(100.0, 100.0 * static_cast<double>(w.wasted) / static_cast<double>(*w.queries));
    absl::StrAppend(&out, absl::StrFormat("; %.0f%% of them wasted", share));
  }
  return out;
}

std::string QueriesJsonMembers(const LiveWaste& w) {
  return absl::StrCat("\"queries\":", w.queries.has_value() ? absl::StrCat(*w.queries) : "null",
                      ",\"queries_error\":", w.queries_error, ",\"query_sample\":", w.query_sample);
}

void RenderFileTable(const FileReport& r, std::ostream& out) {
  out << "== " << r.path;
  if (r.live.has_value()) {
    out << " (client seen by nodedns at " << r.live->server << ", zone " << r.live->cluster_domain
        << ")";
  } else if (r.k8s.has_value()) {
    out << " (Kubernetes pod: namespace " << r.k8s->namespace_name << ", zone " << r.k8s->zone
        << ")";
  }
  out << "\n";
  RenderFileBody(r, out);
}

void RenderFileBody(const FileReport& r, std::ostream& out) {
  const ResolvConf& c = r.conf;
  if (r.live.has_value()) {
    // The proxy sees queries, not the client's resolv.conf: no configuration lines.
    if (r.live->query_sample > 0) out << "  queries:     " << QueriesSeenText(*r.live) << "\n";
    out << "  wasted:      " << r.live->wasted << " NXDOMAIN replies below "
        << r.live->cluster_domain;
    if (r.live->error > 0) out << " (top-K estimate, over by at most " << r.live->error << ")";
    out << "\n";
  } else {
    out << "  nameservers: "
        << (c.nameservers.empty() ? "(none)" : absl::StrJoin(c.nameservers, " ")) << "\n";
    out << "  search:      " << (c.search.empty() ? "(none)" : absl::StrJoin(c.search, " "))
        << "\n";
    out << "  options:     " << absl::StrJoin(EffectiveOptions(c), " ") << "\n";
    out << "  config hash: " << ConfigHash(c) << "\n";
  }
  if (r.findings.empty()) {
    out << "  findings:    none\n";
  } else {
    out << "  findings:\n";
    for (const Finding& f : r.findings) {
      out << "    " << internal::SeverityLabel(f.severity) << " " << f.id;
      if (f.line > 0) out << " (line " << f.line << ")";
      out << ": " << f.message << "\n";
      out << "            fix: " << f.fix << "\n";
    }
  }
  if (r.live.has_value() && !r.live->names.empty()) {
    out << "  names (NXDOMAIN replies per name looked up, as the proxy counted them):\n";
    int step = 0;
    for (const auto& [name, count] : r.live->names) {
      out << absl::StrFormat("          %d. %-50s %-7d nxdomain\n", ++step, name, count);
    }
  }
  if (!r.walks.empty()) {
    out << "  walks (outcome per candidate, from the " << r.outcome_source << "):\n";
  }
  for (const Walk& w : r.walks) {
    bool only_a = true;
    for (const Query& q : w.queries) only_a = only_a && q.qtype == "A";
    std::string mode =
        only_a ? "A only (no-aaaa)" : (w.parallel ? "A+AAAA in parallel" : "A then AAAA");
    if (w.tcp) mode += ", over TCP";
    out << absl::StrFormat("    %-5s %s: %d queries (%s), %d expected NXDOMAIN, result %s\n",
                           ResolverName(w.resolver), w.name, w.total, mode, w.nxdomain,
                           w.answered_by.has_value() ? absl::StrCat("answer from ", *w.answered_by)
                                                     : std::string(OutcomeName(w.final_outcome)));
    // One line per candidate: A and AAAA of a candidate share an outcome.
    int step = 0;
    for (size_t i = 0; i < w.queries.size(); ++i) {
      const Query& q = w.queries[i];
      std::string types = q.qtype;
      if (i + 1 < w.queries.size() && w.queries[i + 1].qname == q.qname &&
          w.queries[i + 1].qtype != q.qtype) {
        types = absl::StrCat(q.qtype, "+", w.queries[i + 1].qtype);
        ++i;
      }
      out << absl::StrFormat("          %d. %-50s %-7s %s\n", ++step, q.qname, types,
                             OutcomeName(q.expected));
    }
  }
}

std::string JsonString(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  size_t copied = 0;  // s[copied, i) goes out as it is
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) continue;
    out.append(s.data() + copied, i - copied);
    copied = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        out += absl::StrFormat("\\u%04x", c);
    }
  }
  out.append(s.data() + copied, s.size() - copied);
  out += '"';
  return out;
}

void RenderTable(const std::vector<FileReport>& reports, std::ostream& out) {
  for (const FileReport& r : reports) {
    RenderFileTable(r, out);
    out << "\n";
  }
  if (reports.size() > 1) {
    std::vector<ConfigGroup> groups = GroupByConfig(reports);
    out << "== summary: " << reports.size()
        << (reports.front().live.has_value() ? " clients, " : " files, ") << groups.size()
        << " distinct configuration(s)\n";
    for (const ConfigGroup& g : groups) {
      const ResolvConf& c = g.example->conf;
      const bool live = g.example->live.has_value();
      out << absl::StrFormat(
          "  %s  %d %s  worst: %s  %s\n", g.config_hash, g.files.size(),
          live ? "client(s)" : "file(s)", g.has_findings ? SeverityName(g.worst) : "none",
          live ? absl::StrCat("live: clients of nodedns at ", g.example->live->server)
               : absl::StrCat("ndots:", c.ndots, "  search: ",
                              c.search.empty() ? "(none)" : absl::StrJoin(c.search, " ")));
      if (!g.finding_ids.empty()) {
        out << "      findings: " << absl::StrJoin(g.finding_ids, ", ") << "\n";
      }
      out << (live ? "      clients: " : "      files: ") << absl::StrJoin(g.files, " ") << "\n";
    }
  }
}

std::string FileReportJson(const FileReport& r) {
  std::vector<std::string> findings;
  for (const Finding& f : r.findings) findings.push_back(internal::FindingJson(f));
  std::vector<std::string> walks;
  for (const Walk& w : r.walks) walks.push_back(internal::WalkJson(w));
  return absl::StrCat(
      "{\"path\":", JsonString(r.path), ",\"outcome_source\":", JsonString(r.outcome_source),
      ",\"config\":", internal::ConfigJson(r), ",\"findings\":[", absl::StrJoin(findings, ","),
      "],\"walks\":[", absl::StrJoin(walks, ","), "],\"live\":", internal::LiveJson(r), "}");
}

void RenderJson(const std::vector<FileReport>& reports, std::ostream& out) {
  std::vector<std::string> files;
  for (const FileReport& r : reports) files.push_back(FileReportJson(r));
  std::vector<std::string> summary;
  for (const ConfigGroup& g : GroupByConfig(reports)) {
    summary.push_back(absl::StrCat(
        "{\"config_hash\":", JsonString(g.config_hash), ",\"count\":", g.files.size(),
        ",\"files\":", internal::JsonStringList(g.files),
        ",\"worst_severity\":", g.has_findings ? JsonString(SeverityName(g.worst)) : "null",
        ",\"finding_ids\":", internal::JsonStringList(g.finding_ids), "}"));
  }
  std::optional<Severity> worst = WorstSeverity(reports);
  out << "{\"version\":" << kJsonSchemaVersion << ",\"files\":[" << absl::StrJoin(files, ",")
      << "],\"summary\":[" << absl::StrJoin(summary, ",")
      << "],\"worst_severity\":" << (worst.has_value() ? JsonString(SeverityName(*worst)) : "null")
      << "}\n";
}

}  // namespace nodedns::audit
