// Search-list walk simulation and the default existence model. See walk.h; the rules cited below
// are from glibc resolv/res_query.c (__res_context_search) and musl src/network/lookup_name.c
// (name_from_dns_search, name_from_dns).
#include "audit/walk.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/string_view_compat.h"
#include "resolvconf/resolv_conf.h"

namespace nodedns::audit {

using resolvconf::ResolvConf;

namespace internal {
namespace {

std::string StripTrailingDot(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return std::string(name);
}

// Top-level domains common enough that a one-dot name ending in one (example.com) is taken to be
// external rather than <service>.<namespace>. Kept short on purpose: it is a heuristic.
constexpr std::string_view kCommonTlds[] = {"com",   "net", "org", "io", "dev",  "app",
                                            "cloud", "co",  "uk",  "de", "fr",   "eu",
                                            "info",  "biz", "us",  "ai", "local"};

// Builds the walk by recording the queries for each candidate the resolver tries.
class WalkBuilder {
 public:
  WalkBuilder(std::string_view typed, Resolver resolver, bool send_aaaa,
              const ExistenceOracle& oracle)
      : typed_(typed), send_aaaa_(send_aaaa), oracle_(oracle) {
    walk_.name = std::string(typed);
    walk_.resolver = resolver;
  }

  Outcome Try(const std::string& qname) {
    Outcome outcome = oracle_(typed_, qname);
    walk_.queries.push_back(Query{qname, "A", outcome});
    if (send_aaaa_) walk_.queries.push_back(Query{qname, "AAAA", outcome});
    if (outcome == Outcome::kAnswer) {
      walk_.answered_by = qname;
    } else if (outcome == Outcome::kNodata) {
      got_nodata_ = true;
    }
    last_ = outcome;
    return outcome;
  }

  Walk Finish(bool nodata_sticks) {
    walk_.total = static_cast<int>(walk_.queries.size());
    for (const Query& q : walk_.queries) {
      if (q.expected == Outcome::kNxdomain) ++walk_.nxdomain;
      if (q.expected != Outcome::kAnswer) ++walk_.wasted;
    }
    if (walk_.answered_by.has_value()) {
      walk_.final_outcome = Outcome::kAnswer;
    } else if (nodata_sticks && got_nodata_) {
      walk_.final_outcome = Outcome::kNodata;
    } else {
      walk_.final_outcome = last_;
    }
    return std::move(walk_);
  }

  Walk& walk() { return walk_; }

 private:
  std::string_view typed_;
  bool send_aaaa_;
  const ExistenceOracle& oracle_;
  Walk walk_;
  bool got_nodata_ = false;
  Outcome last_ = Outcome::kNxdomain;
};

// glibc __res_context_search:
//  * a trailing dot, or dots >= ndots: the name is tried as is first; a trailing dot stops there;
//  * otherwise (and after a failed as-is try) every search domain is tried in order; both
//    NXDOMAIN (HOST_NOT_FOUND) and NODATA (NO_DATA, remembered in got_nodata) keep the walk going,
//    so that a wildcard of another type cannot hide the name further down the list; a SERVFAIL
//    answer (got_servfail) moves on to the next domain too;
//  * a search entry of "." (the root) counts as the as-is try;
//  * finally the name as is, unless already tried, or unless it has no dot and no-tld-query is set.
// getaddrinfo(AF_UNSPEC) asks A and AAAA for each candidate (T_QUERY_A_AND_AAAA) and a candidate
// fails only when neither answer has records.
Walk GlibcWalk(const ResolvConf& conf, std::string_view name, const ExistenceOracle& oracle) {
  WalkBuilder b(name, Resolver::kGlibc, !conf.no_aaaa, oracle);
  // single-request(-reopen) makes glibc wait for the A answer before sending AAAA.
  b.walk().parallel = !conf.no_aaaa && !conf.single_request && !conf.single_request_reopen;
  b.walk().tcp = conf.use_vc;
  const int dots = CountDots(name);
  const bool trailing_dot = !name.empty() && name.back() == '.';
  const std::string base = StripTrailingDot(name);
  bool tried_as_is = false;
  bool root_on_list = false;
  bool searched = false;
  if (dots >= conf.ndots || trailing_dot) {
    if (b.Try(base) == Outcome::kAnswer || trailing_dot) return b.Finish(true);
    tried_as_is = true;
  }
  // RES_DEFNAMES and RES_DNSRCH are on by default, so any name without a trailing dot searches.
  for (const std::string& domain : conf.search) {
    searched = true;
    std::string_view d = domain;
    if (!d.empty() && d.front() == '.') d.remove_prefix(1);
    std::string candidate = base;
    if (d.empty()) {
      root_on_list = true;
    } else {
      candidate = absl::StrCat(base, ".", Av(d));
    }
    if (b.Try(candidate) == Outcome::kAnswer) return b.Finish(true);
  }
  if ((dots > 0 || !searched || !conf.no_tld_query) && !(tried_as_is || root_on_list)) {
    b.Try(base);
  }
  return b.Finish(true);
}

// musl name_from_dns_search:
//  * a trailing dot, or dots >= ndots: no search at all, only the name as is;
//  * otherwise each search domain in turn (skipped if the result would exceed 255 characters);
//    name_from_dns returns 0 only for NXDOMAIN, so the walk stops at the first candidate that is
//    not NXDOMAIN, including NODATA (EAI_NODATA) and SERVFAIL;
//  * then the name as is, last.
// A and AAAA are always sent together (__res_msend_rc); musl has no single-request or no-aaaa.
Walk MuslWalk(const ResolvConf& conf, std::string_view name, const ExistenceOracle& oracle) {
  WalkBuilder b(name, Resolver::kMusl, /*send_aaaa=*/true, oracle);
  b.walk().parallel = true;
  const int dots = CountDots(name);
  const bool trailing_dot = !name.empty() && name.back() == '.';
  const std::string base = StripTrailingDot(name);
  if (!(dots >= conf.musl_ndots || trailing_dot)) {
    for (const std::string& domain : conf.musl_search) {
      // "name." + "." is not a valid name: __res_mkquery fails and musl moves on.
      if (domain == ".") continue;
      if (static_cast<int>(domain.size()) >= 255 - static_cast<int>(base.size())) continue;
      if (b.Try(absl::StrCat(base, ".", domain)) != Outcome::kNxdomain) return b.Finish(false);
    }
  }
  b.Try(base);
  return b.Finish(false);
}

}  // namespace
}  // namespace internal

std::string_view ResolverName(Resolver resolver) {
  return resolver == Resolver::kGlibc ? "glibc" : "musl";
}

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kAnswer:
      return "answer";
    case Outcome::kNxdomain:
      return "nxdomain";
    case Outcome::kNodata:
      return "nodata";
    case Outcome::kServfail:
      return "servfail";
  }
  return "nxdomain";
}

int CountDots(std::string_view name) {
  return static_cast<int>(std::count(name.begin(), name.end(), '.'));
}

std::optional<KubernetesContext> DetectKubernetes(const std::vector<std::string>& search) {
  for (const std::string& raw : search) {
    std::string domain = absl::AsciiStrToLower(internal::StripTrailingDot(raw));
    size_t pos = domain.find(".svc.");
    if (pos == std::string::npos || pos == 0) continue;
    std::string ns = domain.substr(0, pos);
    std::string zone = domain.substr(pos + 5);
    if (ns.find('.') != std::string::npos || zone.empty()) continue;
    // kubelet always writes "<ns>.svc.<zone> svc.<zone> <zone>"; requiring the second entry
    // avoids mistaking an unrelated domain that happens to contain ".svc." for a pod config.
    const std::string svc_zone = "svc." + zone;
    bool has_svc_zone = std::any_of(search.begin(), search.end(), [&](const std::string& d) {
      return absl::AsciiStrToLower(internal::StripTrailingDot(d)) == svc_zone;
    });
    if (has_svc_zone) return KubernetesContext{ns, zone};
  }
  return std::nullopt;
}

bool LooksExternal(std::string_view typed, const std::optional<KubernetesContext>& k8s) {
  std::string name = absl::AsciiStrToLower(internal::StripTrailingDot(typed));
  std::vector<std::string> labels = absl::StrSplit(name, '.');
  if (labels.size() < 2) return false;
  if (k8s.has_value() && (name == k8s->zone || absl::EndsWith(name, "." + k8s->zone))) {
    return false;
  }
  // <svc>.<ns>.svc and <svc>.<ns>.svc.<zone>-like names are cluster names.
  if (labels.back() == "svc" || absl::StrContains(name, ".svc.")) return false;
  if (labels.size() == 2) {
    // One dot: <service>.<namespace>, unless the last label is a well-known TLD.
    return std::find(std::begin(internal::kCommonTlds), std::end(internal::kCommonTlds),
                     labels.back()) != std::end(internal::kCommonTlds);
  }
  return true;
}

ExistenceOracle DefaultExistence(const ResolvConf& conf) {
  std::optional<KubernetesContext> k8s = DetectKubernetes(conf.search);
  std::string first_search =
      conf.search.empty() ? std::string()
                          : absl::AsciiStrToLower(internal::StripTrailingDot(conf.search[0]));
  return [k8s, first_search](std::string_view typed, std::string_view qname_in) -> Outcome {
    std::string qname = absl::AsciiStrToLower(Av(qname_in));
    std::string base = absl::AsciiStrToLower(internal::StripTrailingDot(typed));
    if (k8s.has_value()) {
      const std::string& zone = k8s->zone;
      if (absl::EndsWith(qname, "." + zone)) {
        // Inside the cluster zone only <svc>.<ns>.svc.<zone> is modelled as existing.
        std::string rel = qname.substr(0, qname.size() - zone.size() - 1);
        std::vector<std::string> labels = absl::StrSplit(rel, '.');
        bool service =
            labels.size() == 3 && labels[2] == "svc" && !labels[0].empty() && !labels[1].empty();
        return service ? Outcome::kAnswer : Outcome::kNxdomain;
      }
      if (qname == zone) return Outcome::kNxdomain;
      return (qname == base && LooksExternal(typed, k8s)) ? Outcome::kAnswer : Outcome::kNxdomain;
    }
    if (CountDots(base) == 0) {
      if (first_search.empty()) return Outcome::kNxdomain;
      return qname == base + "." + first_search ? Outcome::kAnswer : Outcome::kNxdomain;
    }
    return qname == base ? Outcome::kAnswer : Outcome::kNxdomain;
  };
}

Walk SimulateWalk(const ResolvConf& conf, std::string_view name, Resolver resolver,
                  const ExistenceOracle& oracle) {
  return resolver == Resolver::kGlibc ? internal::GlibcWalk(conf, name, oracle)
                                      : internal::MuslWalk(conf, name, oracle);
}

}  // namespace nodedns::audit
