// The node-local DNS addresses on their interface, as node-cache's -setupinterface sets them up
// (kubernetes/dns pkg/netif): the interface (a dummy link, created when missing) carries each
// -localip as a host address (/32, /128) so that nodedns can bind them and pods reach them through
// iptables NOTRACK rules. Talks rtnetlink through libnl-route-3; needs CAP_NET_ADMIN.
//
// Unlike node-cache, which deletes the whole device at teardown whoever created it, teardown here
// deletes the interface only if this object created it, else the -localip host addresses (/32,
// /128) on it, whichever run added them (one left by an unclean exit goes at the next clean
// one). An operator's own bridge or dummy keeps its other addresses, and a -localip address
// with another prefix length, which nodedns never adds.
#ifndef NODEDNS_NODESETUP_LOCAL_ADDRESSES_H_
#define NODEDNS_NODESETUP_LOCAL_ADDRESSES_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct nl_sock;

namespace nodedns::nodesetup {

// What one Ensure() call had to change.
struct EnsureResult {
  bool created_interface = false;
  bool brought_up = false;
  std::vector<std::string> added;  // the IPs it added, as given
  bool changed() const { return created_interface || brought_up || !added.empty(); }
};

// What Check() found missing.
struct CheckResult {
  bool interface_missing = false;
  bool interface_down = false;
  std::vector<std::string> missing;  // IPs not on the interface (all of them when it is missing)
  bool ok() const { return !interface_missing && !interface_down && missing.empty(); }
};

// Not thread-safe: one owner (node-cache's main loop) calls it.
class LocalAddresses {
 public:
  // Validates `ips` (IPv4 or IPv6 literals) and opens a rtnetlink socket. Changes nothing.
  static absl::StatusOr<std::unique_ptr<LocalAddresses>> Create(std::string interface_name,
                                                                std::vector<std::string> ips);
  ~LocalAddresses();
  LocalAddresses(const LocalAddresses&) = delete;
  LocalAddresses& operator=(const LocalAddresses&) = delete;

  // Makes the interface exist (a "dummy" link when missing; an existing link of any kind is used
  // as it is), be up, and carry every IP as a host address. Idempotent: what is already there is
  // not an error. Errors name the interface and the cause; when the kernel cannot create a dummy
  // link the error says so. What it adds is remembered for Teardown(), across calls.
  absl::StatusOr<EnsureResult> Ensure();

  // Reports what Ensure() would have to fix, without changing anything.
  absl::StatusOr<CheckResult> Check();

  // After an Ensure(): deletes the interface if an Ensure() created it, else the -localip host
  // addresses on it; with `only_added`, only those Ensure() added (for a start that failed: what
  // was there before may be another instance's). A second call, without an Ensure() between,
  // does nothing.
  absl::Status Teardown(bool only_added = false);

  const std::string& interface_name() const { return name_; }

 private:
  struct SockDeleter {
    void operator()(nl_sock* s) const;
  };
  struct Ip {
    std::string text;
    int family;
    unsigned char bytes[16];
    int len;
  };
  LocalAddresses(std::string name, std::vector<Ip> ips, std::unique_ptr<nl_sock, SockDeleter> sock);

  // The interface's index, 0 when missing; `up` receives whether IFF_UP is set.
  absl::StatusOr<int> FindLink(bool* up);
  // Which of ips_ are on `ifindex` (same order as ips_), with any prefix length; `as_host`
  // (optional) receives which are there as host addresses (/32, /128).
  absl::StatusOr<std::vector<bool>> Present(int ifindex, std::vector<bool>* as_host = nullptr);

  std::string name_;
  std::vector<Ip> ips_;
  std::unique_ptr<nl_sock, SockDeleter> sock_;
  bool created_ = false;
  bool managed_ = false;            // an Ensure() ran since the last Teardown()
  std::vector<std::string> added_;  // texts of ips_ entries Ensure() added (no duplicates)
};

}  // namespace nodedns::nodesetup

#endif  // NODEDNS_NODESETUP_LOCAL_ADDRESSES_H_
