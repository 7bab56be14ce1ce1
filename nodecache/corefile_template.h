// The Corefile node-cache generates from its base Corefile (the node-local-dns ConfigMap, mounted
// as -basecorefile) and the kube-dns ConfigMap: node-cache's updateCorefile as a pure function.
//
// The substitutions, in node-cache's order:
//   __PILLAR__UPSTREAM__SERVERS__  /etc/resolv.conf without upstreamNameservers; with them, the
//                                  servers, and a `forward . __PILLAR__UPSTREAM__SERVERS__ {
//                                  force_tcp }` block loses its force_tcp (custom upstreams are
//                                  asked over UDP);
//   __PILLAR__CLUSTER__DNS__       the -upstreamsvc service's cluster IP;
//   __PILLAR__LOCAL__DNS__         the -localip value with ',' replaced by ' ';
//   __PILLAR__DNS__SERVER__        removed (the IPs are all in __PILLAR__LOCAL__DNS__ already);
// then one server block per stub domain is appended.
//
// Where we differ from node-cache, to fail at start rather than run a Corefile that cannot work:
// - The force_tcp block is found whatever its indentation and spacing (node-cache matches one
//   exact text, 4- and 12-space indented, and silently keeps force_tcp otherwise). It becomes
//   `forward . SERVERS` on the same line and the `force_tcp` and `}` lines become empty, so every
//   line of the base keeps its number (node-cache's replacement removes two lines).
// - Without a cluster DNS IP, __PILLAR__CLUSTER__DNS__ is an error naming the service's
//   environment variable (node-cache writes "<nil>").
// - Any other __PILLAR__...__ token left in the base is an error naming it and its line: those
//   (like __PILLAR__DNS__DOMAIN__) are the operator's to substitute when installing the manifest.
//   Tokens inside Corefile comments are left alone and never an error.
#ifndef NODEDNS_NODECACHE_COREFILE_TEMPLATE_H_
#define NODEDNS_NODECACHE_COREFILE_TEMPLATE_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nodecache/kubedns_config.h"

namespace nodedns::nodecache {

inline constexpr char kUpstreamServersVar[] = "__PILLAR__UPSTREAM__SERVERS__";
inline constexpr char kClusterDnsVar[] = "__PILLAR__CLUSTER__DNS__";
inline constexpr char kLocalDnsVar[] = "__PILLAR__LOCAL__DNS__";
inline constexpr char kDnsServerVar[] = "__PILLAR__DNS__SERVER__";
// What the forward plugin reads nameservers from when kube-dns names no upstreams.
inline constexpr char kDefaultUpstream[] = "/etc/resolv.conf";
// The cache TTL node-cache gives stub-domain blocks.
inline constexpr int kStubDomainCacheTtl = 30;

struct CorefileInputs {
  std::string base_name = "Corefile.base";  // The base file's name, for error messages.
  std::string local_ip;                     // -localip as given (comma-separated).
  std::string port = "53";                  // -dns.port.
  // The -upstreamsvc service's cluster IP; nullopt when its environment variable is missing.
  std::optional<std::string> cluster_dns_ip;
  std::string upstream_svc = "kube-dns";  // -upstreamsvc, named in the error when the IP is absent.
  KubeDnsConfig kube_dns;
};

// The Corefile text for `base` (the base Corefile's contents). Lines 1..N of the result are the
// base's lines 1..N; stub-domain blocks follow, in domain order. Errors are one line,
// "BASE_NAME:LINE: ...".
absl::StatusOr<std::string> GenerateCorefile(std::string_view base, const CorefileInputs& inputs);

}  // namespace nodedns::nodecache

#endif  // NODEDNS_NODECACHE_COREFILE_TEMPLATE_H_
