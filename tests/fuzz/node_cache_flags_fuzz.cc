// Fuzz target: node-cache's command line, as `nodedns node-cache` takes a DaemonSet's args.
// nodecache::ParseNodeCacheFlags (Go flag syntax, node-cache's and CoreDNS's flags, validation).
// Input: the arguments (without the program name), separated by NUL bytes; a trailing NUL ends
// the last argument rather than adding an empty one.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_split.h"
#include "nodecache/go_flags.h"
#include "nodecache/node_cache_flags.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nodedns;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  if (text.ends_with('\0')) text.remove_suffix(1);
  if (size > 0) {
    for (absl::string_view a : absl::StrSplit(absl::string_view(text.data(), text.size()), '\0')) {
      args.emplace_back(a.data(), a.size());
    }
  }
  const absl::StatusOr<nodecache::NodeCacheFlags> flags = nodecache::ParseNodeCacheFlags(args);
  if (!flags.ok()) {
    // go_flags.h: "Errors are one line".
    const absl::string_view am = flags.status().message();
    const std::string_view m(am.data(), am.size());
    FUZZ_CHECK(!m.empty());
    FUZZ_CHECK(m.find('\n') == std::string_view::npos);
    return 0;
  }
  if (flags->help_requested) {
    FUZZ_CHECK(!nodecache::UsageText().empty());
    return 0;
  }
  // What ParseNodeCacheFlags promises of a command line it accepts.
  FUZZ_CHECK(!flags->local_ips.empty());
  bool seen4 = false, seen6 = false;
  for (const std::string& ip : flags->local_ips) {
    bool ipv6 = false;
    FUZZ_CHECK(nodecache::ParseIpLiteral(ip, &ipv6));
    (ipv6 ? seen6 : seen4) = true;
  }
  // The families reported are exactly those present (IPv4, IPv6 or both).
  FUZZ_CHECK(seen4 == flags->local_ips_ipv4 && seen6 == flags->local_ips_ipv6);
  for (const std::string* port : {&flags->dns_port, &flags->health_port}) {
    FUZZ_CHECK(!port->empty() && port->find_first_not_of("0123456789") == std::string::npos);
  }
  FUZZ_CHECK(flags->sync_interval.count() > 0);
  FUZZ_CHECK(flags->EffectiveSyncIntervalSeconds() >= 1);
  // Go's Duration.String reads back as the same duration.
  const auto again = nodecache::ParseGoDuration(nodecache::FormatGoDuration(flags->sync_interval));
  FUZZ_CHECK(again.ok() && *again == flags->sync_interval);
  FUZZ_CHECK(&flags->EffectiveCorefile() ==
             (flags->IsSet("conf") ? &flags->conf : &flags->corefile));
  return 0;
}
