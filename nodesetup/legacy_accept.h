// The accept rules of netfilter_rules.h for a node whose iptables is the legacy backend: the
// ip_tables / ip6_tables filter tables, which libnftables cannot reach, through libiptc.
//
// A legacy table is replaced whole by each writer (read, modify, write back), so two writers at
// once lose one's change: kube-proxy's iptables-restore and nodedns both hold the xtables lock
// (/run/xtables.lock, the iptables binaries' convention) around their read-modify-commit. The
// DaemonSet mounts the host's lock file for it; it is opened once, as root, before nodedns drops
// to its unprivileged uid. Without it the rules are not written (counted as iptables_lock),
// rather than risk undoing kube-proxy's.
//
// libiptc opens a raw socket for each table handle: CAP_NET_RAW as well as CAP_NET_ADMIN.
#ifndef NODEDNS_NODESETUP_LEGACY_ACCEPT_H_
#define NODEDNS_NODESETUP_LEGACY_ACCEPT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nodedns::nodesetup::internal {

enum class LegacyFamily { kIpv4, kIpv6 };

inline constexpr char kXtablesLock[] = "/run/xtables.lock";

// /proc/net/ip_tables_names or ip6_tables_names, opened (-1 when the module is not loaded). The
// file is root's (0440): opened before the privilege drop, it is re-read through the descriptor.
int OpenLegacyTableNames(LegacyFamily family);

// Whether iptables-legacy's filter table exists in this network namespace: listed in the file
// `names_fd` (OpenLegacyTableNames) holds. Reading the list never loads a module, which asking
// libiptc for the table would.
bool LegacyFilterInUse(int names_fd);

// The xtables lock file, opened (created if missing); -1 when it cannot be.
int OpenXtablesLock(const std::string& path = kXtablesLock);

// Makes `chain`'s rules marked kRuleComment be exactly one ACCEPT per address of `ips` (of
// `family`) and protocol (tcp, udp): destination `port` in INPUT, source `port` in OUTPUT,
// first in the chain; a chain that does not exist is left alone. Returns whether it had to
// change anything. `lock_fd` (OpenXtablesLock) is locked for up to 5 s first;
// absl::UnavailableError with a message starting "xtables lock" when it cannot be.
absl::StatusOr<bool> EnsureLegacyAccept(LegacyFamily family, const std::string& chain,
                                        const std::vector<std::string>& ips, uint16_t port,
                                        int lock_fd);

// Deletes `chain`'s rules marked kRuleComment.
absl::Status RemoveLegacyAccept(LegacyFamily family, const std::string& chain, int lock_fd);

}  // namespace nodedns::nodesetup::internal

#endif  // NODEDNS_NODESETUP_LEGACY_ACCEPT_H_
