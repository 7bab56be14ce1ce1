// The kube-dns ConfigMap (kube-system/kube-dns) as node-cache reads it: the ConfigMap is mounted
// as a directory (-kubednscm), whose files `stubDomains` (a JSON object: domain -> array of
// nameservers) and `upstreamNameservers` (a JSON array of nameservers) are what node-cache uses.
// node-cache validates them twice before generating its Corefile, and so do we: first kube-dns's
// own rules (pkg/dns/config Config.Validate, run when the directory is synced), then
// ValidateNodeLocalCacheConfig (the CoreDNS forward plugin's address forms).
#ifndef NODEDNS_NODECACHE_KUBEDNS_CONFIG_H_
#define NODEDNS_NODECACHE_KUBEDNS_CONFIG_H_

#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nodedns::nodecache {

inline constexpr char kDefaultKubeDnsConfigDir[] = "/etc/kube-dns";
inline constexpr char kStubDomainsFile[] = "stubDomains";
inline constexpr char kUpstreamNameserversFile[] = "upstreamNameservers";
// kube-dns's limit on upstreamNameservers (resolv.conf's MAXNS).
inline constexpr size_t kMaxUpstreamNameservers = 3;

struct KubeDnsConfig {
  // Sorted by domain, so the generated Corefile is the same every time (node-cache ranges over a
  // Go map: its stub-domain blocks come out in random order).
  std::map<std::string, std::vector<std::string>> stub_domains;
  std::vector<std::string> upstream_nameservers;
};

// Whether a nameserver that is not an address can be read as a resolv.conf file (CoreDNS's
// forward plugin accepts file paths and reads the nameservers from them).
using ResolvConfFileCheck = std::function<bool(const std::string& path)>;

// The directory node-cache syncs the kube-dns ConfigMap from: -kubednscm when not empty, else
// /etc/kube-dns unless `does_not_exist` says so (node-cache treats any stat error other than
// ENOENT as "exists"), else "" (no kube-dns config: the Corefile gets no stub domains).
std::string KubeDnsConfigDir(std::string_view kubednscm_flag,
                             const std::function<bool(const std::string&)>& does_not_exist);

// Parses and validates the ConfigMap's files, given as name -> contents; a missing file means
// empty, files other than the two above are ignored. Errors are one line (line breaks in what
// they quote are escaped, "\n") and name the file and the key or entry:
// `stubDomains: "acme.local": invalid nameserver "1.2.3.4:x": ...`.
absl::StatusOr<KubeDnsConfig> ParseKubeDnsConfig(const std::map<std::string, std::string>& files,
                                                 const ResolvConfFileCheck& file_check);

// Reads the two files from `dir` (which must be a directory; missing files are empty) and parses
// them with ParseKubeDnsConfig, checking file-path nameservers for a readable regular file.
absl::StatusOr<KubeDnsConfig> ReadKubeDnsConfigDir(const std::string& dir);

// kube-dns's Config.Validate for the two fields node-cache uses: stub domains are DNS-1123
// subdomains and each of their nameservers an IP, IP:port or [IPv6]:port (or a DNS-1123 name,
// which only a file of that name can satisfy later); at most 3 upstream nameservers, each an IP,
// IP:port or [IPv6]:port. Stricter than kube-dns in one place: a port must be 1..65535 (kube-dns
// lets a stub's "IP:" and "IP:0" through, which CoreDNS cannot use).
absl::Status ValidateKubeDnsConfig(const KubeDnsConfig& config);

// CoreDNS's forward plugin address forms (plugin/pkg/parse HostPortOrFile and Transport) as
// node-cache's validateForwardProxy accepts them: an IP (a %zone allowed), IP:port,
// [IPv6]:port, each optionally prefixed by dns://, or a path of a resolv.conf `file_check`
// accepts. tls:// is valid to node-cache but unsupported by nodedns: an error saying so; other
// transports (quic, grpc, https, unix) are errors as in node-cache.
absl::Status ValidateForwardProxy(std::span<const std::string> nameservers,
                                  const ResolvConfFileCheck& file_check);

// Kubernetes' IsDNS1123Subdomain: at most 253 characters, dot-separated labels of lower-case
// letters, digits and '-', each starting and ending with a letter or digit.
bool IsDns1123Subdomain(std::string_view name);

}  // namespace nodedns::nodecache

#endif  // NODEDNS_NODECACHE_KUBEDNS_CONFIG_H_
