// Who may query nodedns (--allow): a short list of address prefixes, prepared once from the flag,
// checked against the source of every UDP query and every TCP connection. A node-local cache
// answering the whole Internet would be an open resolver (RFC 5358: reflection and amplification);
// the default admits the addresses pods and the node itself have.
#ifndef NODEDNS_PROXY_ALLOW_LIST_H_
#define NODEDNS_PROXY_ALLOW_LIST_H_

#include <endian.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodedns::proxy {

// The default of --allow (and node-cache's -allow): loopback, link-local (169.254.0.0/16, where
// NodeLocal DNSCache listens, and fe80::/10), RFC 1918, RFC 6598 shared address space (some pod
// networks use it) and IPv6 ULA. Every pod network in common use falls under one of them; a
// cluster with public pod addresses lists its pod CIDR. 10/8 first: the most common pod range,
// and the list is walked in order.
inline constexpr char kDefaultAllow[] =
    "10.0.0.0/8,127.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,169.254.0.0/16,::1/128,"
    "fc00::/7,fe80::/10";

class AllowList {
 public:
  // The default list (kDefaultAllow).
  AllowList();
  // A comma-separated list of CIDRs or bare addresses, or "any" (every address; the same as
  // 0.0.0.0/0,::/0). The element "default" stands for kDefaultAllow, so that a pod CIDR outside
  // it is added as "default,CIDR". IPv4-mapped IPv6 clients are matched against the IPv4 prefixes,
  // so those are written as IPv4. Errors name the offending element.
  static absl::StatusOr<AllowList> Parse(absl::string_view spec);
  // Several --allow values together (each a list as Parse takes it); none: the default.
  static absl::StatusOr<AllowList> ParseAll(const std::vector<std::string>& specs);

  // Whether a query from `a` is admitted: a compare per prefix of its family, at most.
  bool Allows(const sockaddr_storage& a) const;
  // Every address is admitted: the front ends skip the check.
  bool open() const { return all_v4_ && all_v6_; }
  // "10.0.0.0/8,...", in the order given (for logs and tests).
  std::string ToString() const;
  bool operator==(const AllowList&) const = default;

 private:
  struct V4 {
    uint32_t net;  // host byte order, host bits zero
    uint32_t mask;
    bool operator==(const V4&) const = default;
  };
  struct V6 {
    uint64_t net_hi, net_lo;  // host byte order
    uint64_t mask_hi, mask_lo;
    bool operator==(const V6&) const = default;
  };
  absl::Status Add(absl::string_view cidr);

  std::vector<V4> v4_;
  std::vector<V6> v6_;
  bool all_v4_ = false;
  bool all_v6_ = false;
  std::vector<std::string> text_;
};

inline bool AllowList::Allows(const sockaddr_storage& a) const {
  uint32_t v4 = 0;
  if (a.ss_family == AF_INET) {
    if (all_v4_) return true;
    v4 = ntohl(reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr);
  } else if (a.ss_family == AF_INET6) {
    const uint8_t* b = reinterpret_cast<const sockaddr_in6&>(a).sin6_addr.s6_addr;
    uint64_t hi = 0, lo = 0;
    std::memcpy(&hi, b, 8);
    std::memcpy(&lo, b + 8, 8);
    hi = be64toh(hi);
    lo = be64toh(lo);
    if (hi != 0 || (lo >> 32) != 0xffff) {
      if (all_v6_) return true;
      for (const V6& p : v6_) {
        if ((hi & p.mask_hi) == p.net_hi && (lo & p.mask_lo) == p.net_lo) return true;
      }
      return false;
    }
    // ::ffff:a.b.c.d, an IPv4 client of a dual-stack socket: the IPv4 rules apply.
    if (all_v4_) return true;
    v4 = static_cast<uint32_t>(lo);
  } else {
    return false;
  }
  for (const V4& p : v4_) {
    if ((v4 & p.mask) == p.net) return true;
  }
  return false;
}

}  // namespace nodedns::proxy

#endif  // NODEDNS_PROXY_ALLOW_LIST_H_
