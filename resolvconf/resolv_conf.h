// Reading resolv.conf(5), for `nodedns audit` (a pod's files) and `nodedns serve` (the node's).
//
// ParseResolvConf reads a file the way glibc's res_init.c does, and also records how musl's
// resolvconf.c would read the same bytes where the two differ (musl drops lines of 255 characters
// or more, and understands only ndots/attempts/timeout). Problems are reported as findings with
// line numbers instead of failing, because the audit's job is to explain them.
//
// ReadResolvConfSearch and ReadResolvConfNameservers read a file by path into what `serve` needs.
#ifndef NODEDNS_RESOLVCONF_RESOLV_CONF_H_
#define NODEDNS_RESOLVCONF_RESOLV_CONF_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dns/socket_address.h"
#include "resolvconf/finding.h"

namespace nodedns::resolvconf {

// Where glibc, musl and so both commands look when not told otherwise.
inline constexpr char kDefaultPath[] = "/etc/resolv.conf";

// glibc limits and defaults (resolv/resolv.h, res_init.c).
inline constexpr int kGlibcDefaultNdots = 1;
inline constexpr int kGlibcDefaultTimeout = 5;   // RES_TIMEOUT, seconds.
inline constexpr int kGlibcDefaultAttempts = 2;  // RES_DFLRETRY.
inline constexpr int kGlibcMaxNdots = 15;        // RES_MAXNDOTS: larger ndots:N is clamped.
inline constexpr int kGlibcMaxTimeout = 30;      // RES_MAXRETRANS.
inline constexpr int kGlibcMaxAttempts = 5;      // RES_MAXRETRY.
inline constexpr int kMaxNameservers = 3;        // MAXNS in both glibc and musl.
// musl's __get_resolv_conf reads with a 256-byte fgets buffer and ignores any line that does not
// fit (content of 255 characters or more), rather than misinterpret a truncated line.
inline constexpr size_t kMuslMaxLineLength = 254;
inline constexpr int kMuslMaxNdots = 15;
inline constexpr int kMuslMaxTimeout = 60;
inline constexpr int kMuslMaxAttempts = 10;

// The settings of one resolv.conf. Fields without a prefix are glibc's view of the file; the
// musl_* fields are musl's view where it differs.
struct ResolvConf {
  std::vector<std::string> nameservers;  // Valid addresses in file order (all, not only 3).
  std::vector<int> nameserver_lines;     // Line of each entry of `nameservers`.
  std::vector<std::string> search;       // From the last `search` or `domain` line.
  int search_line = 0;                   // Line the search list came from; 0 if none.
  int ndots = kGlibcDefaultNdots;
  int ndots_line = 0;  // Line of the last ndots: option; 0 if defaulted.
  int timeout = kGlibcDefaultTimeout;
  int attempts = kGlibcDefaultAttempts;
  int timeout_line = 0;
  int attempts_line = 0;
  bool rotate = false;
  bool single_request = false;
  bool single_request_reopen = false;
  bool edns0 = false;
  bool use_vc = false;
  bool no_aaaa = false;
  bool trust_ad = false;
  bool no_tld_query = false;
  bool no_reload = false;
  bool inet6 = false;
  int rotate_line = 0;
  std::vector<std::string> unknown_options;

  // musl's view: it uses the last search/domain line it can read whole, and parses only
  // ndots/attempts/timeout from options lines it can read whole.
  std::vector<std::string> musl_search;
  int musl_ndots = kGlibcDefaultNdots;
  int musl_timeout = kGlibcDefaultTimeout;
  int musl_attempts = kGlibcDefaultAttempts;
};

struct ParsedResolvConf {
  ResolvConf conf;
  std::vector<Finding> findings;  // Parse-level findings (malformed lines, unknown options...).
};

// Parses resolv.conf text. Never fails: anything glibc would ignore or misread becomes a finding.
ParsedResolvConf ParseResolvConf(std::string_view text);

// The options glibc would act on, as resolv.conf would spell them ("ndots:5", "rotate", ...).
std::vector<std::string> EffectiveOptions(const ResolvConf& conf);

// A canonical one-line rendering of everything that affects resolution; files with equal
// canonical forms behave identically. Used to group files in the summary.
std::string CanonicalForm(const ResolvConf& conf);

// Stable 16-hex-digit FNV-1a 64 hash of CanonicalForm().
std::string ConfigHash(const ResolvConf& conf);

// The search domains of the file at `path` as glibc reads them (ParseResolvConf's `search`: the
// last `search` or `domain` line). A missing file is an error; a file without a search line gives
// an empty list.
absl::StatusOr<std::vector<std::string>> ReadResolvConfSearch(const std::string& path);

// The nameserver lines of the file at `path` as glibc's res_init reads them, port 53; at most
// kMaxNameservers (MAXNS), as glibc uses. Stricter than ParseResolvConf's `nameservers`, which
// lists every address for the audit to explain: these are the servers `serve` sends queries to.
// An error if the file is missing or lists no address we can use.
absl::StatusOr<std::vector<dns::SocketAddress>> ReadResolvConfNameservers(const std::string& path);

}  // namespace nodedns::resolvconf

#endif  // NODEDNS_RESOLVCONF_RESOLV_CONF_H_
