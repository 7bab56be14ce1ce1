// The netfilter rules node-cache's -setupiptables installs, through libnftables: pod queries to
// the node-local addresses skip connection tracking (and with it kube-proxy's DNAT and the
// conntrack table, whose exhaustion is what NodeLocal DNSCache exists to avoid), and are accepted
// by an iptables filter table that would otherwise drop untracked packets.
//
// Two parts, because nftables has no "final accept" across tables:
//  - NOTRACK: nodedns's own table `inet nodedns`, one family for IPv4 and IPv6, base chains at
//    the raw priority (-300, before conntrack at -200) on prerouting (pods) and output (host
//    network clients, the health probe, the replies). It works whatever kube-proxy's backend is
//    (iptables-legacy, iptables-nft, nftables): conntrack is one for the node. The whole table is
//    replaced in one transaction, so a sync never leaves half a rule set.
//    By default the table has the `owner` flag (Linux 5.12): the kernel deletes it when the
//    netlink socket that made it closes, i.e. when nodedns exits in any way, SIGKILL and OOM kill
//    included, and nobody else can change it. Pods using the kube-dns ClusterIP then reach CoreDNS
//    through kube-proxy as if nodedns were not installed, instead of losing DNS to rules left
//    behind; and a second nodedns on the node cannot take the table over: it fails with a clear
//    error. With `owned = false` (node-cache's -skipteardown) the table outlives the process, as
//    node-cache's rules do.
//  - ACCEPT: an accept in `inet nodedns` would end only that table's chain; a drop in the host's
//    iptables filter table (an INPUT policy of DROP that accepts only ESTABLISHED packets, as some
//    node images set) would still drop the untracked queries. So when the host's iptables uses
//    nf_tables (tables `ip filter`/`ip6 filter` exist), the accept rules are inserted at the top of
//    their INPUT and OUTPUT chains, in the form iptables-nft reads back (`iptables-nft-save` shows
//    them as `-d IP/32 -p udp -m udp --dport 53 -m comment --comment ... -j ACCEPT`). Where
//    iptables-legacy's filter tables exist, the same rules go there through libiptc, under the
//    xtables lock (legacy_accept.h).
//
// Needs CAP_NET_ADMIN in the network namespace (and CAP_NET_RAW for the legacy tables). Not
// thread-safe: one owner (node-cache's main loop) calls it. The libnftables context holds the
// netlink socket that owns the table for the object's life.
#ifndef NODEDNS_NODESETUP_NETFILTER_RULES_H_
#define NODEDNS_NODESETUP_NETFILTER_RULES_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct nft_ctx;

namespace nodedns::nodesetup::internal {
enum class LegacyFamily;
}  // namespace nodedns::nodesetup::internal

namespace nodedns::nodesetup {

inline constexpr char kNftTable[] = "nodedns";
// The second name, for a handover (proxy/handover.h): the successor installs the same rules in
// the table the predecessor does not hold, before the predecessor's goes with it. Two processes
// at most ever hold one each.
inline constexpr char kNftTableAlternate[] = "nodedns_b";
// Marks every rule nodedns adds; in the iptables filter chains, it is how nodedns finds its own.
inline constexpr char kRuleComment[] = "nodedns: node-local DNS";

struct NetfilterSpec {
  std::vector<std::string> ips;  // IPv4 and/or IPv6 literals (the -localip list)
  uint16_t dns_port = 53;
  uint16_t health_port = 0;       // 0: no rules for the health port
  bool owned = true;              // the kernel deletes the table when this process exits
  std::string table = kNftTable;  // kNftTable or kNftTableAlternate (UseFreeTable)
  std::string xtables_lock = "/run/xtables.lock";  // for iptables-legacy's tables
};

// Whether an Ensure() error is the xtables lock's (coredns_nodecache_setup_errors_total's
// iptables_lock) rather than the rules' (iptables).
bool IsXtablesLockError(const absl::Status& status);

// The nft script that replaces `inet nodedns` with the rules for `spec` in one transaction (add,
// delete, define: the add makes the delete valid when the table is absent). Pure; for tests and
// for the log.
std::string NotrackTableScript(const NetfilterSpec& spec);

// The accept rules for one iptables filter chain, as nft rule bodies (without add/insert).
// `family` is "ip" or "ip6"; `chain` is "INPUT" or "OUTPUT". Empty when `spec` has no IP of that
// family.
std::vector<std::string> AcceptRuleBodies(const NetfilterSpec& spec, const std::string& family,
                                          const std::string& chain);

// What one Ensure() call had to do.
struct RulesResult {
  bool table_replaced = false;  // `inet nodedns` was missing or differed
  // "ip filter INPUT", "iptables-legacy filter INPUT" etc.: chains whose rules were put back
  std::vector<std::string> accept_restored;
  bool changed() const { return table_replaced || !accept_restored.empty(); }
};

class NetfilterRules {
 public:
  // Validates the IPs and opens a libnftables context. Changes nothing.
  static absl::StatusOr<std::unique_ptr<NetfilterRules>> Create(NetfilterSpec spec);
  ~NetfilterRules();
  NetfilterRules(const NetfilterRules&) = delete;
  NetfilterRules& operator=(const NetfilterRules&) = delete;

  // Fails as Ensure() would when another live process owns the table; changes nothing. For a
  // start that must refuse before it touches the node, and install the rules only once its
  // sockets are bound (queries NOTRACKed to an address nobody listens on would be lost).
  absl::Status CheckNotHeld();
  // For a successor that a running nodedns handed its sockets to: that one still holds its table
  // while it drains. Picks the name (kNftTable, kNftTableAlternate) nobody else holds; fails when
  // both are held. Changes nothing.
  absl::Status UseFreeTable();
  const std::string& table() const { return spec_.table; }
  // The successor serves now: deletes this object's table only (its twin in the other name stays;
  // the accept rules and addresses are the successor's). Teardown() then does nothing.
  absl::Status ReleaseTable();
  // Whether another live process holds the other table name: a successor that bound next to this
  // one after a failed handover. Its addresses and accept rules are this one's too; a teardown
  // must leave them.
  bool AnotherInstanceHolds();

  // Makes the rules be there: the table as NotrackTableScript() defines it, and the accept rules
  // in each iptables filter chain that exists (iptables-nft's, iptables-legacy's). Idempotent and
  // cheap when nothing changed (one listing per table). Rules left by an earlier run (an unclean
  // exit with -skipteardown) are replaced. Fails, changing nothing, when another live process owns
  // the table.
  absl::StatusOr<RulesResult> Ensure();

  // Deletes the table and the accept rules, if an Ensure() of this object installed the table
  // (only those still there). A second call does nothing.
  absl::Status Teardown();

 private:
  struct CtxDeleter {
    void operator()(nft_ctx* c) const;
  };
  NetfilterRules(NetfilterSpec spec, std::unique_ptr<nft_ctx, CtxDeleter> ctx);

  // Runs an nft script. `out` (when given) receives the listing output.
  absl::Status Run(const std::string& script, std::string* out = nullptr);
  // `list ...`; absl::NotFoundError when the object does not exist.
  absl::StatusOr<std::string> List(const std::string& what, bool handles);
  absl::StatusOr<bool> EnsureTable();
  // Whether `name` is an owned table of another process (an error naming it) or free.
  absl::Status HeldElsewhere(const std::string& name,
                             const absl::StatusOr<std::string>& listing) const;
  // Makes `family filter chain`'s rules marked kRuleComment be AcceptRuleBodies(), or none with
  // `remove`; whether it changed anything.
  absl::StatusOr<bool> SyncAccept(const std::string& family, const std::string& chain, bool remove);
  bool LegacyInUse(internal::LegacyFamily family) const;

  NetfilterSpec spec_;
  std::unique_ptr<nft_ctx, CtxDeleter> ctx_;
  // Opened at Create, before any privilege drop: the xtables lock, and the lists of
  // iptables-legacy's tables (IPv4, IPv6).
  int xtables_lock_fd_ = -1;
  int legacy_names_fd_[2] = {-1, -1};
  bool table_made_ = false;
  std::string table_listing_;  // the table as listed right after this object defined it
};

}  // namespace nodedns::nodesetup

#endif  // NODEDNS_NODESETUP_NETFILTER_RULES_H_
