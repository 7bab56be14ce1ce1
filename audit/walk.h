// Simulation of the stub resolver's search-list walk for one name, under glibc's rules
// (resolv/res_query.c, __res_context_search) and musl's (src/network/lookup_name.c,
// name_from_dns_search), plus the default model of which candidate names exist in a Kubernetes
// cluster. The walk is what getaddrinfo(AF_UNSPEC) sends: an A and an AAAA query per candidate.
#ifndef NODEDNS_AUDIT_WALK_H_
#define NODEDNS_AUDIT_WALK_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "resolvconf/resolv_conf.h"

namespace nodedns::audit {

enum class Resolver { kGlibc, kMusl };
std::string_view ResolverName(Resolver resolver);  // "glibc" or "musl".

// What a server is expected to answer for one candidate name (both A and AAAA).
enum class Outcome {
  kAnswer,    // The name exists (AAAA may be empty for IPv4-only services; still not NXDOMAIN).
  kNxdomain,  // The name does not exist.
  kNodata,    // The name exists but has neither A nor AAAA (NOERROR, empty answer).
  kServfail,  // Any other rcode (SERVFAIL, REFUSED...); only seen with --resolve. glibc moves on
              // to the next search domain (got_servfail), musl stops (EAI_AGAIN).
};
std::string_view OutcomeName(Outcome outcome);  // "answer", "nxdomain", "nodata", "servfail".

// Decides the outcome for a candidate query name. `typed` is the name as the user wrote it
// (possibly with a trailing dot); `qname` is the candidate without a trailing dot.
using ExistenceOracle = std::function<Outcome(std::string_view typed, std::string_view qname)>;

// The pod's namespace and cluster zone, read off a Kubernetes search path
// "<ns>.svc.<zone> svc.<zone> <zone> ...".
struct KubernetesContext {
  std::string namespace_name;
  std::string zone;
};
std::optional<KubernetesContext> DetectKubernetes(const std::vector<std::string>& search);

// True when `typed` (without trailing dot) is judged to be a name outside the cluster, e.g.
// api.example.com; false for cluster-relative names such as "svc" or "svc.ns". See
// docs/audit.md, "Expected existence".
bool LooksExternal(std::string_view typed, const std::optional<KubernetesContext>& k8s);

// The default existence model (documented in docs/audit.md):
//  * In a Kubernetes pod: a name in the cluster zone exists only as <svc>.<ns>.svc.<zone>; a name
//    judged external (LooksExternal) exists only exactly as typed; everything else is NXDOMAIN.
//  * Elsewhere: a single-label name exists under the first search domain, a dotted name exists
//    only as typed.
ExistenceOracle DefaultExistence(const resolvconf::ResolvConf& conf);

struct Query {
  std::string qname;  // Without trailing dot.
  std::string qtype;  // "A" or "AAAA".
  Outcome expected;
};

struct Walk {
  std::string name;  // As typed.
  Resolver resolver;
  std::vector<Query> queries;  // In the order the resolver sends them.
  bool parallel = true;        // A and AAAA of one candidate sent together.
  bool tcp = false;            // glibc use-vc.
  int total = 0;               // queries.size().
  int nxdomain = 0;            // Queries expected to get NXDOMAIN.
  int wasted = 0;              // Queries for candidates that did not answer (NXDOMAIN + NODATA).
  std::optional<std::string> answered_by;  // Candidate that answered; nullopt if the walk fails.
  Outcome final_outcome = Outcome::kNxdomain;  // What the application sees.
};

// Simulates the walk of `name` under `resolver`'s rules for `conf`.
Walk SimulateWalk(const resolvconf::ResolvConf& conf, std::string_view name, Resolver resolver,
                  const ExistenceOracle& oracle);

// Counts dots the way both libcs do: every '.', including a trailing one.
int CountDots(std::string_view name);

}  // namespace nodedns::audit

#endif  // NODEDNS_AUDIT_WALK_H_
