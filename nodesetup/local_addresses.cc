// See local_addresses.h.
#include "nodesetup/local_addresses.h"

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace nodedns::nodesetup {

namespace {

struct LinkDeleter {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
struct AddrDeleter {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
struct NlAddrDeleter {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
struct CacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using LinkPtr = std::unique_ptr<rtnl_link, LinkDeleter>;
using AddrPtr = std::unique_ptr<rtnl_addr, AddrDeleter>;
using NlAddrPtr = std::unique_ptr<nl_addr, NlAddrDeleter>;
using CachePtr = std::unique_ptr<nl_cache, CacheDeleter>;

std::string NlError(int err) { return nl_geterror(err); }

}  // namespace

void LocalAddresses::SockDeleter::operator()(nl_sock* s) const { nl_socket_free(s); }

LocalAddresses::LocalAddresses(std::string name, std::vector<Ip> ips,
                               std::unique_ptr<nl_sock, SockDeleter> sock)
    : name_(std::move(name)), ips_(std::move(ips)), sock_(std::move(sock)) {}

LocalAddresses::~LocalAddresses() = default;

absl::StatusOr<std::unique_ptr<LocalAddresses>> LocalAddresses::Create(
    std::string interface_name, std::vector<std::string> ips) {
  if (interface_name.empty() || interface_name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(absl::StrCat(
        "interface name \"", interface_name, "\": must be 1 to ", IFNAMSIZ - 1, " characters"));
  }
  std::vector<Ip> parsed;
  for (auto& text : ips) {
    Ip ip{};
    if (inet_pton(AF_INET, text.c_str(), ip.bytes) == 1) {
      ip.family = AF_INET;
      ip.len = 4;
    } else if (inet_pton(AF_INET6, text.c_str(), ip.bytes) == 1) {
      ip.family = AF_INET6;
      ip.len = 16;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not an IP address"));
    }
    ip.text = std::move(text);
    // A repeated -localip would otherwise be "added" twice and removed twice.
    const bool dup = std::any_of(parsed.begin(), parsed.end(), [&](const Ip& p) {
      return p.family == ip.family && std::memcmp(p.bytes, ip.bytes, ip.len) == 0;
    });
    if (!dup) parsed.push_back(std::move(ip));
  }
  std::unique_ptr<nl_sock, SockDeleter> sock(nl_socket_alloc());
  if (!sock) return absl::ResourceExhaustedError("cannot allocate a netlink socket");
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) {
    return absl::UnavailableError(absl::StrCat("rtnetlink socket: ", NlError(err)));
  }
  return std::unique_ptr<LocalAddresses>(
      new LocalAddresses(std::move(interface_name), std::move(parsed), std::move(sock)));
}

absl::StatusOr<int> LocalAddresses::FindLink(bool* up) {
  rtnl_link* raw = nullptr;
  const int err = rtnl_link_get_kernel(sock_.get(), 0, name_.c_str(), &raw);
  LinkPtr link(raw);
  // The kernel answers ENODEV for an unknown name, which libnl reports as "object not found".
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) return 0;
  if (err < 0) {
    return absl::UnavailableError(
        absl::StrCat("interface ", name_, ": cannot look it up: ", NlError(err)));
  }
  if (up != nullptr) *up = (rtnl_link_get_flags(link.get()) & IFF_UP) != 0;
  return rtnl_link_get_ifindex(link.get());
}

absl::StatusOr<std::vector<bool>> LocalAddresses::Present(int ifindex, std::vector<bool>* as_host) {
  std::vector<bool> present(ips_.size(), false);
  if (as_host != nullptr) as_host->assign(ips_.size(), false);
  nl_cache* raw = nullptr;
  if (int err = rtnl_addr_alloc_cache(sock_.get(), &raw); err < 0) {
    return absl::UnavailableError(
        absl::StrCat("interface ", name_, ": cannot list addresses: ", NlError(err)));
  }
  CachePtr cache(raw);
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(a) != ifindex) continue;
    nl_addr* local = rtnl_addr_get_local(a);
    if (local == nullptr) continue;
    // Compare the address only: one an operator put there with another prefix length counts.
    for (size_t i = 0; i < ips_.size(); ++i) {
      if (nl_addr_get_family(local) == ips_[i].family &&
          nl_addr_get_len(local) == static_cast<unsigned>(ips_[i].len) &&
          std::memcmp(nl_addr_get_binary_addr(local), ips_[i].bytes, ips_[i].len) == 0) {
        present[i] = true;
        if (as_host != nullptr && rtnl_addr_get_prefixlen(a) == ips_[i].len * 8) {
          (*as_host)[i] = true;
        }
      }
    }
  }
  return present;
}

absl::StatusOr<EnsureResult> LocalAddresses::Ensure() {
  EnsureResult result;
  managed_ = true;
  bool up = false;
  auto ifindex = FindLink(&up);
  if (!ifindex.ok()) return ifindex.status();
  if (*ifindex == 0) {
    // As node-cache: a missing interface becomes a dummy link, which holds addresses and never
    // carries traffic anywhere.
    LinkPtr link(rtnl_link_alloc());
    if (!link) return absl::ResourceExhaustedError("cannot allocate a netlink link");
    rtnl_link_set_name(link.get(), name_.c_str());
    if (int err = rtnl_link_set_type(link.get(), "dummy"); err < 0) {
      return absl::InternalError(
          absl::StrCat("interface ", name_, ": libnl cannot make a dummy link: ", NlError(err)));
    }
    const int err = rtnl_link_add(sock_.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL);
    if (err == -NLE_OPNOTSUPP || err == -NLE_NODEV || err == -NLE_OBJ_NOTFOUND) {
      // rtnetlink answers EOPNOTSUPP for a link kind it has no driver for (and module autoload
      // failed or is off); ENODEV-like answers come from the same missing driver.
      return absl::FailedPreconditionError(absl::StrCat(
          "interface ", name_,
          " does not exist and cannot be created: kernel has no dummy netdev "
          "support (",
          NlError(err), "); create interface ", name_, " yourself or load the dummy module"));
    }
    if (err < 0 && err != -NLE_EXIST) {  // NLE_EXIST: someone created it meanwhile; use it
      return absl::UnavailableError(
          absl::StrCat("interface ", name_, ": cannot create a dummy link: ", NlError(err)));
    }
    if (err == 0) created_ = result.created_interface = true;
    ifindex = FindLink(&up);
    if (!ifindex.ok()) return ifindex.status();
    if (*ifindex == 0) {
      return absl::UnavailableError(
          absl::StrCat("interface ", name_, ": created, but gone again before it was set up"));
    }
  }
  if (!up) {
    LinkPtr link(rtnl_link_alloc());
    LinkPtr change(rtnl_link_alloc());
    if (!link || !change) return absl::ResourceExhaustedError("cannot allocate a netlink link");
    rtnl_link_set_ifindex(link.get(), *ifindex);
    rtnl_link_set_flags(change.get(), IFF_UP);
    if (int err = rtnl_link_change(sock_.get(), link.get(), change.get(), 0); err < 0) {
      return absl::UnavailableError(
          absl::StrCat("interface ", name_, ": cannot bring it up: ", NlError(err)));
    }
    result.brought_up = true;
  }
  auto present = Present(*ifindex);
  if (!present.ok()) return present.status();
  for (size_t i = 0; i < ips_.size(); ++i) {
    if ((*present)[i]) continue;
    const Ip& ip = ips_[i];
    NlAddrPtr local(nl_addr_build(ip.family, ip.bytes, ip.len));
    AddrPtr addr(rtnl_addr_alloc());
    if (!local || !addr) return absl::ResourceExhaustedError("cannot allocate a netlink address");
    // A host prefix, so that the interface routes nothing but the address itself; scope global
    // (universe), as node-cache's netlink.NewIPNet leaves it: pods' packets reach it from
    // outside the host, which scope host would refuse.
    nl_addr_set_prefixlen(local.get(), ip.len * 8);
    rtnl_addr_set_ifindex(addr.get(), *ifindex);
    if (int err = rtnl_addr_set_local(addr.get(), local.get()); err < 0) {
      return absl::InternalError(absl::StrCat("address ", ip.text, ": ", NlError(err)));
    }
    rtnl_addr_set_scope(addr.get(), RT_SCOPE_UNIVERSE);
    // IPv6: no duplicate address detection, else the address stays "tentative" for a second or
    // more and binding it fails (EADDRNOTAVAIL) right after.
    if (ip.family == AF_INET6) rtnl_addr_set_flags(addr.get(), IFA_F_NODAD);
    const int err = rtnl_addr_add(sock_.get(), addr.get(), NLM_F_EXCL);
    if (err == -NLE_EXIST) continue;  // appeared since Present(): not ours to remove
    if (err < 0) {
      return absl::UnavailableError(
          absl::StrCat("interface ", name_, ": cannot add ", ip.text, ": ", NlError(err)));
    }
    result.added.push_back(ip.text);
    if (std::find(added_.begin(), added_.end(), ip.text) == added_.end()) {
      added_.push_back(ip.text);
    }
  }
  return result;
}

absl::StatusOr<CheckResult> LocalAddresses::Check() {
  CheckResult result;
  bool up = false;
  auto ifindex = FindLink(&up);
  if (!ifindex.ok()) return ifindex.status();
  if (*ifindex == 0) {
    result.interface_missing = true;
    for (const auto& ip : ips_) result.missing.push_back(ip.text);
    return result;
  }
  result.interface_down = !up;
  auto present = Present(*ifindex);
  if (!present.ok()) return present.status();
  for (size_t i = 0; i < ips_.size(); ++i) {
    if (!(*present)[i]) result.missing.push_back(ips_[i].text);
  }
  return result;
}

absl::Status LocalAddresses::Teardown(bool only_added) {
  const bool created = std::exchange(created_, false);
  if (!std::exchange(managed_, false)) return absl::OkStatus();
  const std::vector<std::string> added = std::exchange(added_, {});
  auto ifindex = FindLink(nullptr);
  if (!ifindex.ok()) return ifindex.status();
  if (*ifindex == 0) return absl::OkStatus();  // someone removed it already
  if (created) {
    LinkPtr link(rtnl_link_alloc());
    if (!link) return absl::ResourceExhaustedError("cannot allocate a netlink link");
    rtnl_link_set_ifindex(link.get(), *ifindex);
    if (int err = rtnl_link_delete(sock_.get(), link.get()); err < 0) {
      return absl::UnavailableError(
          absl::StrCat("interface ", name_, ": cannot delete it: ", NlError(err)));
    }
    return absl::OkStatus();
  }
  // The -localip host addresses, whichever run added them: one left by an unclean exit is
  // removed by the next clean one. An address with another prefix length is someone else's.
  std::vector<bool> as_host;
  if (auto present = Present(*ifindex, &as_host); !present.ok()) return present.status();
  absl::Status status;
  for (size_t i = 0; i < ips_.size(); ++i) {
    if (!as_host[i]) continue;
    const Ip& ip = ips_[i];
    if (only_added && std::find(added.begin(), added.end(), ip.text) == added.end()) continue;
    NlAddrPtr local(nl_addr_build(ip.family, ip.bytes, ip.len));
    AddrPtr addr(rtnl_addr_alloc());
    if (!local || !addr) return absl::ResourceExhaustedError("cannot allocate a netlink address");
    nl_addr_set_prefixlen(local.get(), ip.len * 8);
    rtnl_addr_set_ifindex(addr.get(), *ifindex);
    rtnl_addr_set_local(addr.get(), local.get());
    const int err = rtnl_addr_delete(sock_.get(), addr.get(), 0);
    // Gone already (EADDRNOTAVAIL): nothing to undo.
    if (err < 0 && err != -NLE_NOADDR && err != -NLE_OBJ_NOTFOUND && status.ok()) {
      status = absl::UnavailableError(
          absl::StrCat("interface ", name_, ": cannot remove ", ip.text, ": ", NlError(err)));
    }
  }
  return status;
}

}  // namespace nodedns::nodesetup
