// See netfilter_rules.h.
#include "nodesetup/netfilter_rules.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/string_view_compat.h"
#include "nodesetup/legacy_accept.h"

namespace nodedns::nodesetup {

namespace {

struct Families {
  std::vector<std::string> v4, v6;
};

Families Split(const NetfilterSpec& spec) {
  Families f;
  for (const auto& ip : spec.ips) (ip.find(':') == std::string::npos ? f.v4 : f.v6).push_back(ip);
  return f;
}

// "{ a, b }" or "a": nft's set syntax for one or several addresses.
std::string Set(const std::vector<std::string>& ips) {
  return ips.size() == 1 ? ips[0] : absl::StrCat("{ ", absl::StrJoin(ips, ", "), " }");
}

// The rule lines of one raw chain for one family ("ip" or "ip6").
void RawRules(const NetfilterSpec& spec, const char* fam, const std::vector<std::string>& ips,
              bool prerouting, std::string* out) {
  if (ips.empty()) return;
  const std::string set = Set(ips);
  const std::string dns = absl::StrCat("meta l4proto { tcp, udp } th dport ", spec.dns_port);
  const std::string dns_reply = absl::StrCat("meta l4proto { tcp, udp } th sport ", spec.dns_port);
  const std::string tail = absl::StrCat(" notrack comment \"", kRuleComment, "\"\n");
  if (prerouting) {
    absl::StrAppend(out, "    ", fam, " daddr ", set, " ", dns, tail);
    return;
  }
  // Replies to pods, queries from host-network clients, and the liveness probe (kubelet runs in
  // the host network) with its replies: the OUTPUT half of node-cache's rules.
  absl::StrAppend(out, "    ", fam, " saddr ", set, " ", dns_reply, tail);
  absl::StrAppend(out, "    ", fam, " daddr ", set, " ", dns, tail);
  if (spec.health_port != 0) {
    absl::StrAppend(out, "    ", fam, " daddr ", set, " tcp dport ", spec.health_port, tail);
    absl::StrAppend(out, "    ", fam, " saddr ", set, " tcp sport ", spec.health_port, tail);
  }
}

// The rule bodies of `listing` (an nft listing with handles) that carry kRuleComment, with
// their handles.
std::multimap<std::string, std::string> OurRules(const std::string& listing) {
  std::multimap<std::string, std::string> rules;
  const std::string marker = absl::StrCat("comment \"", kRuleComment, "\"");
  for (absl::string_view line : absl::StrSplit(listing, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!absl::StrContains(line, marker)) continue;
    const size_t h = line.rfind(" # handle ");
    if (h == absl::string_view::npos) continue;
    rules.emplace(std::string(line.substr(0, h)), std::string(line.substr(h + 10)));
  }
  return rules;
}

using internal::LegacyFamily;

const char* LegacyName(LegacyFamily f) {
  return f == LegacyFamily::kIpv4 ? "iptables-legacy" : "ip6tables-legacy";
}

}  // namespace

bool IsXtablesLockError(const absl::Status& status) {
  return absl::StartsWith(status.message(), "xtables lock");
}

std::string NotrackTableScript(const NetfilterSpec& spec) {
  const Families f = Split(spec);
  std::string s = absl::StrCat("add table inet ", spec.table, "\n", "delete table inet ",
                               spec.table, "\n", "table inet ", spec.table, " {\n");
  if (spec.owned) s += "  flags owner\n";
  s += "  chain prerouting {\n    type filter hook prerouting priority raw; policy accept;\n";
  RawRules(spec, "ip", f.v4, true, &s);
  RawRules(spec, "ip6", f.v6, true, &s);
  s += "  }\n  chain output {\n    type filter hook output priority raw; policy accept;\n";
  RawRules(spec, "ip", f.v4, false, &s);
  RawRules(spec, "ip6", f.v6, false, &s);
  s += "  }\n}\n";
  return s;
}

std::vector<std::string> AcceptRuleBodies(const NetfilterSpec& spec, const std::string& family,
                                          const std::string& chain) {
  const Families f = Split(spec);
  const std::vector<std::string>& ips = family == "ip" ? f.v4 : f.v6;
  // One rule per address and protocol, each in the shape iptables-nft decodes as
  // `-d IP -p PROTO -m PROTO --dport PORT -m comment --comment ... -j ACCEPT` (anonymous sets and
  // `th` would make its listing of the whole table fail).
  const bool in = chain == "INPUT";
  std::vector<std::string> bodies;
  for (const auto& ip : ips) {
    for (const char* proto : {"tcp", "udp"}) {
      bodies.push_back(absl::StrCat(family, in ? " daddr " : " saddr ", ip, " ", proto,
                                    in ? " dport " : " sport ", spec.dns_port,
                                    " counter accept comment \"", kRuleComment, "\""));
    }
  }
  return bodies;
}

void NetfilterRules::CtxDeleter::operator()(nft_ctx* c) const { nft_ctx_free(c); }

absl::StatusOr<std::unique_ptr<NetfilterRules>> NetfilterRules::Create(NetfilterSpec spec) {
  if (spec.ips.empty()) return absl::InvalidArgumentError("no local IP to set up rules for");
  // Canonical text (what nft prints back), so that listings compare equal.
  for (auto& ip : spec.ips) {
    unsigned char b[16];
    char text[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET, ip.c_str(), b) == 1) {
      inet_ntop(AF_INET, b, text, sizeof text);
    } else if (inet_pton(AF_INET6, ip.c_str(), b) == 1) {
      if (IN6_IS_ADDR_V4MAPPED(reinterpret_cast<in6_addr*>(b))) {
        inet_ntop(AF_INET, b + 12, text, sizeof text);  // Go, and node-cache, treat it as IPv4
      } else {
        inet_ntop(AF_INET6, b, text, sizeof text);
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("\"", ip, "\" is not an IP address"));
    }
    ip = text;
  }
  std::sort(spec.ips.begin(), spec.ips.end());
  spec.ips.erase(std::unique(spec.ips.begin(), spec.ips.end()), spec.ips.end());
  std::unique_ptr<nft_ctx, CtxDeleter> ctx(nft_ctx_new(NFT_CTX_DEFAULT));
  if (ctx == nullptr) return absl::InternalError("libnftables: cannot create a context");
  if (nft_ctx_buffer_output(ctx.get()) != 0 || nft_ctx_buffer_error(ctx.get()) != 0) {
    return absl::InternalError("libnftables: cannot buffer output");
  }
  auto rules = std::unique_ptr<NetfilterRules>(new NetfilterRules(std::move(spec), std::move(ctx)));
  rules->xtables_lock_fd_ = internal::OpenXtablesLock(rules->spec_.xtables_lock);
  rules->legacy_names_fd_[0] = internal::OpenLegacyTableNames(LegacyFamily::kIpv4);
  rules->legacy_names_fd_[1] = internal::OpenLegacyTableNames(LegacyFamily::kIpv6);
  return rules;
}

NetfilterRules::NetfilterRules(NetfilterSpec spec, std::unique_ptr<nft_ctx, CtxDeleter> ctx)
    : spec_(std::move(spec)), ctx_(std::move(ctx)) {}

NetfilterRules::~NetfilterRules() {
  for (int fd : {xtables_lock_fd_, legacy_names_fd_[0], legacy_names_fd_[1]}) {
    if (fd >= 0) close(fd);
  }
}

absl::Status NetfilterRules::Run(const std::string& script, std::string* out) {
  const int rc = nft_run_cmd_from_buffer(ctx_.get(), script.c_str());
  // Reading a buffer resets it; read both every time so that one run's text never leaks into the
  // next run's.
  const std::string output = nft_ctx_get_output_buffer(ctx_.get());
  std::string error = nft_ctx_get_error_buffer(ctx_.get());
  if (out != nullptr) *out = output;
  if (rc == 0) return absl::OkStatus();
  // nft's messages are "Error: WHY\nCOMMAND\n^^^"; the first line is the cause.
  error = std::string(absl::StripPrefix(error.substr(0, error.find('\n')), "Error: "));
  if (absl::StrContains(error, "No such file or directory")) return absl::NotFoundError(error);
  if (absl::StrContains(error, "Operation not permitted")) {
    return absl::PermissionDeniedError(error);
  }
  return absl::InternalError(error.empty() ? "nft command failed" : error);
}

absl::StatusOr<std::string> NetfilterRules::List(const std::string& what, bool handles) {
  nft_ctx_output_set_flags(ctx_.get(),
                           NFT_CTX_OUTPUT_STATELESS | (handles ? NFT_CTX_OUTPUT_HANDLE : 0));
  std::string out;
  absl::Status st = Run(absl::StrCat("list ", what), &out);
  nft_ctx_output_set_flags(ctx_.get(), 0);
  if (!st.ok()) return st;
  return out;
}

absl::Status NetfilterRules::HeldElsewhere(const std::string& name,
                                           const absl::StatusOr<std::string>& listing) const {
  const std::string table = absl::StrCat("table inet ", name);
  if (!listing.ok() && !absl::IsNotFound(listing.status())) {
    return absl::Status(listing.status().code(),
                        absl::StrCat("listing ", table, ": ", listing.status().message()));
  }
  if (!listing.ok() || (table_made_ && name == spec_.table) ||
      !absl::StrContains(*listing, "flags owner")) {
    return absl::OkStatus();
  }
  // Another process's socket holds it: the kernel would refuse the replacement (EPERM) anyway;
  // say who. nft names the owner when its pid is visible from here (not from another
  // container's PID namespace, where it prints "(null)").
  std::string who;
  if (const size_t p = listing->find("# progname "); p != std::string::npos) {
    const std::string prog = listing->substr(p + 11, listing->find('\n', p) - p - 11);
    if (!prog.empty() && prog != "(null)") who = absl::StrCat(" (", prog, ")");
  }
  return absl::FailedPreconditionError(
      absl::StrCat(table, " is held by another running process", who,
                   ": only one nodedns may set up this node's rules"));
}

absl::Status NetfilterRules::CheckNotHeld() {
  for (const char* name : {kNftTable, kNftTableAlternate}) {
    if (absl::Status st = HeldElsewhere(name, List(absl::StrCat("table inet ", name), false));
        !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

absl::Status NetfilterRules::UseFreeTable() {
  absl::Status last;
  for (const char* name : {kNftTable, kNftTableAlternate}) {
    last = HeldElsewhere(name, List(absl::StrCat("table inet ", name), false));
    if (last.ok()) {
      spec_.table = name;
      return absl::OkStatus();
    }
    if (!absl::IsFailedPrecondition(last)) return last;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("tables inet ", kNftTable, " and inet ", kNftTableAlternate,
                   " are both held by other running processes: only one nodedns, and its "
                   "successor during a handover, may set up this node's rules"));
}

bool NetfilterRules::AnotherInstanceHolds() {
  const std::string other = spec_.table == kNftTable ? kNftTableAlternate : kNftTable;
  return absl::IsFailedPrecondition(
      HeldElsewhere(other, List(absl::StrCat("table inet ", other), false)));
}

absl::Status NetfilterRules::ReleaseTable() {
  if (!std::exchange(table_made_, false)) return absl::OkStatus();
  absl::Status st = Run(absl::StrCat("delete table inet ", spec_.table));
  return absl::IsNotFound(st) ? absl::OkStatus() : st;
}

absl::StatusOr<bool> NetfilterRules::EnsureTable() {
  const std::string table = absl::StrCat("table inet ", spec_.table);
  auto now = List(table, false);
  if (now.ok() && table_made_ && *now == table_listing_) return false;
  if (absl::Status st = HeldElsewhere(spec_.table, now); !st.ok()) return st;
  if (absl::Status st = Run(NotrackTableScript(spec_)); !st.ok()) {
    return absl::Status(st.code(), absl::StrCat("installing ", table, ": ", st.message()));
  }
  table_made_ = true;
  auto listed = List(table, false);
  if (!listed.ok()) return listed.status();
  table_listing_ = *listed;
  return true;
}

absl::StatusOr<bool> NetfilterRules::SyncAccept(const std::string& family, const std::string& chain,
                                                bool remove) {
  const std::vector<std::string> bodies = AcceptRuleBodies(spec_, family, chain);
  if (bodies.empty()) return false;  // no address of this family
  std::vector<std::string> want = remove ? std::vector<std::string>() : bodies;
  const std::string where = absl::StrCat(family, " filter ", chain);
  auto listing = List(absl::StrCat("chain ", where), true);
  if (absl::IsNotFound(listing.status())) return false;  // no iptables-nft filter table here
  if (!listing.ok()) {
    return absl::Status(listing.status().code(),
                        absl::StrCat("listing ", where, ": ", listing.status().message()));
  }
  const auto have = OurRules(*listing);
  std::vector<std::string> have_bodies;
  for (const auto& [body, handle] : have) have_bodies.push_back(body);
  std::vector<std::string> sorted_want = want;
  std::sort(sorted_want.begin(), sorted_want.end());
  if (have_bodies == sorted_want) return false;  // the multimap iterates sorted
  // Replace ours (stale ones from an earlier run included) in one transaction.
  std::string script;
  for (const auto& [body, handle] : have) {
    absl::StrAppend(&script, "delete rule ", where, " handle ", handle, "\n");
  }
  for (const auto& body : want) absl::StrAppend(&script, "insert rule ", where, " ", body, "\n");
  if (absl::Status st = Run(script); !st.ok()) {
    return absl::Status(st.code(),
                        absl::StrCat("installing accept rules in ", where, ": ", st.message()));
  }
  return true;
}

absl::StatusOr<RulesResult> NetfilterRules::Ensure() {
  RulesResult r;
  auto table = EnsureTable();
  if (!table.ok()) return table.status();
  r.table_replaced = *table;
  for (const char* family : {"ip", "ip6"}) {
    for (const char* chain : {"INPUT", "OUTPUT"}) {
      auto changed = SyncAccept(family, chain, /*remove=*/false);
      if (!changed.ok()) return changed.status();
      if (*changed) r.accept_restored.push_back(absl::StrCat(family, " filter ", chain));
    }
  }
  for (LegacyFamily f : {LegacyFamily::kIpv4, LegacyFamily::kIpv6}) {
    if (!LegacyInUse(f)) continue;
    for (const char* chain : {"INPUT", "OUTPUT"}) {
      auto changed =
          internal::EnsureLegacyAccept(f, chain, spec_.ips, spec_.dns_port, xtables_lock_fd_);
      if (!changed.ok()) return changed.status();
      if (*changed) r.accept_restored.push_back(absl::StrCat(LegacyName(f), " filter ", chain));
    }
  }
  return r;
}

absl::Status NetfilterRules::Teardown() {
  // Only what an Ensure() put in place: the accept rules follow the table, and a refused start
  // (another nodedns holds the table) must not touch that instance's rules.
  if (!std::exchange(table_made_, false)) return absl::OkStatus();
  absl::Status first = Run(absl::StrCat("delete table inet ", spec_.table));
  if (absl::IsNotFound(first)) first = absl::OkStatus();
  for (const char* family : {"ip", "ip6"}) {
    for (const char* chain : {"INPUT", "OUTPUT"}) {
      first.Update(SyncAccept(family, chain, /*remove=*/true).status());
    }
  }
  for (LegacyFamily f : {LegacyFamily::kIpv4, LegacyFamily::kIpv6}) {
    if (!LegacyInUse(f)) continue;
    for (const char* chain : {"INPUT", "OUTPUT"}) {
      first.Update(internal::RemoveLegacyAccept(f, chain, xtables_lock_fd_));
    }
  }
  return first;
}

bool NetfilterRules::LegacyInUse(internal::LegacyFamily family) const {
  return internal::LegacyFilterInUse(legacy_names_fd_[family == LegacyFamily::kIpv4 ? 0 : 1]);
}

}  // namespace nodedns::nodesetup
