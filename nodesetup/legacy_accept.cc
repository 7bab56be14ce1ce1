// See legacy_accept.h.
#include "nodesetup/legacy_accept.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

// libip6tc.h has no extern "C" of its own.
extern "C" {
#include <libiptc/libip6tc.h>
#include <libiptc/libiptc.h>
#include <linux/netfilter/xt_comment.h>
#include <linux/netfilter/xt_tcpudp.h>
}

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nodesetup/netfilter_rules.h"

namespace nodedns::nodesetup::internal {

namespace {

struct V4 {
  using Entry = ipt_entry;
  static constexpr int kAf = AF_INET;
  static constexpr int kLen = 4;
  static constexpr const char* kNames = "/proc/net/ip_tables_names";
  static xtc_handle* Init() { return iptc_init("filter"); }
  static void Free(xtc_handle* h) { iptc_free(h); }
  static int IsChain(const char* c, xtc_handle* h) { return iptc_is_chain(c, h); }
  static const Entry* First(const char* c, xtc_handle* h) { return iptc_first_rule(c, h); }
  static const Entry* Next(const Entry* e, xtc_handle* h) { return iptc_next_rule(e, h); }
  static int Insert(const char* c, const Entry* e, xtc_handle* h) {
    return iptc_insert_entry(c, e, 0, h);
  }
  static int Delete(const char* c, unsigned n, xtc_handle* h) {
    return iptc_delete_num_entry(c, n, h);
  }
  static int Commit(xtc_handle* h) { return iptc_commit(h); }
  static const char* Error(int e) { return iptc_strerror(e); }
  static void Set(Entry* e, bool dst, const unsigned char* a, uint8_t proto) {
    std::memcpy(dst ? &e->ip.dst : &e->ip.src, a, kLen);
    std::memset(dst ? &e->ip.dmsk : &e->ip.smsk, 0xff, kLen);
    e->ip.proto = proto;
  }
  static std::string Key(const Entry* e) {
    return absl::StrCat(absl::string_view(reinterpret_cast<const char*>(&e->ip.src), kLen),
                        absl::string_view(reinterpret_cast<const char*>(&e->ip.dst), kLen), "/",
                        e->ip.proto);
  }
};

struct V6 {
  using Entry = ip6t_entry;
  static constexpr int kAf = AF_INET6;
  static constexpr int kLen = 16;
  static constexpr const char* kNames = "/proc/net/ip6_tables_names";
  static xtc_handle* Init() { return ip6tc_init("filter"); }
  static void Free(xtc_handle* h) { ip6tc_free(h); }
  static int IsChain(const char* c, xtc_handle* h) { return ip6tc_is_chain(c, h); }
  static const Entry* First(const char* c, xtc_handle* h) { return ip6tc_first_rule(c, h); }
  static const Entry* Next(const Entry* e, xtc_handle* h) { return ip6tc_next_rule(e, h); }
  static int Insert(const char* c, const Entry* e, xtc_handle* h) {
    return ip6tc_insert_entry(c, e, 0, h);
  }
  static int Delete(const char* c, unsigned n, xtc_handle* h) {
    return ip6tc_delete_num_entry(c, n, h);
  }
  static int Commit(xtc_handle* h) { return ip6tc_commit(h); }
  static const char* Error(int e) { return ip6tc_strerror(e); }
  static void Set(Entry* e, bool dst, const unsigned char* a, uint8_t proto) {
    std::memcpy(dst ? &e->ipv6.dst : &e->ipv6.src, a, kLen);
    std::memset(dst ? &e->ipv6.dmsk : &e->ipv6.smsk, 0xff, kLen);
    e->ipv6.proto = proto;
    e->ipv6.flags |= IP6T_F_PROTO;  // ip6tables matches the protocol only with this flag
  }
  static std::string Key(const Entry* e) {
    return absl::StrCat(absl::string_view(reinterpret_cast<const char*>(&e->ipv6.src), kLen),
                        absl::string_view(reinterpret_cast<const char*>(&e->ipv6.dst), kLen), "/",
                        e->ipv6.proto);
  }
};

// One rule: the entry, a tcp or udp match on the port, the comment match, ACCEPT.
template <typename F>
std::vector<unsigned char> BuildRule(bool in, const unsigned char* addr, uint8_t proto,
                                     uint16_t port) {
  const size_t head = XT_ALIGN(sizeof(typename F::Entry));
  const size_t ports =
      XT_ALIGN(sizeof(xt_entry_match) + (proto == IPPROTO_TCP ? sizeof(xt_tcp) : sizeof(xt_udp)));
  const size_t comment = XT_ALIGN(sizeof(xt_entry_match) + sizeof(xt_comment_info));
  const size_t target = XT_ALIGN(sizeof(xt_standard_target));
  std::vector<unsigned char> buf(head + ports + comment + target, 0);
  auto* e = reinterpret_cast<typename F::Entry*>(buf.data());
  F::Set(e, in, addr, proto);
  e->target_offset = head + ports + comment;
  e->next_offset = buf.size();
  auto* m = reinterpret_cast<xt_entry_match*>(buf.data() + head);
  m->u.user.match_size = ports;
  if (proto == IPPROTO_TCP) {
    std::strcpy(m->u.user.name, "tcp");
    auto* t = reinterpret_cast<xt_tcp*>(m->data);
    t->spts[1] = t->dpts[1] = 0xffff;
    (in ? t->dpts : t->spts)[0] = (in ? t->dpts : t->spts)[1] = port;
  } else {
    std::strcpy(m->u.user.name, "udp");
    auto* u = reinterpret_cast<xt_udp*>(m->data);
    u->spts[1] = u->dpts[1] = 0xffff;
    (in ? u->dpts : u->spts)[0] = (in ? u->dpts : u->spts)[1] = port;
  }
  auto* c = reinterpret_cast<xt_entry_match*>(buf.data() + head + ports);
  c->u.user.match_size = comment;
  std::strcpy(c->u.user.name, "comment");
  std::strncpy(reinterpret_cast<xt_comment_info*>(c->data)->comment, kRuleComment,
               XT_MAX_COMMENT_LEN - 1);
  auto* t = reinterpret_cast<xt_standard_target*>(buf.data() + e->target_offset);
  t->target.u.user.target_size = target;
  std::strcpy(t->target.u.user.name, "ACCEPT");  // libiptc maps it to the standard verdict
  return buf;
}

// Whether `e` carries the comment match with kRuleComment, and then its key (addresses,
// protocol, the port match's bytes).
template <typename F>
bool Ours(const typename F::Entry* e, std::string* key) {
  bool ours = false;
  std::string ports;
  const auto* base = reinterpret_cast<const unsigned char*>(e);
  for (size_t off = sizeof(typename F::Entry); off < e->target_offset;) {
    const auto* m = reinterpret_cast<const xt_entry_match*>(base + off);
    if (m->u.match_size == 0) break;
    const std::string_view name = m->u.user.name;
    if (name == "comment" &&
        std::strncmp(reinterpret_cast<const xt_comment_info*>(m->data)->comment, kRuleComment,
                     XT_MAX_COMMENT_LEN) == 0) {
      ours = true;
    } else if (name == "tcp" || name == "udp") {
      ports.assign(reinterpret_cast<const char*>(m->data), 2 * 2 * sizeof(uint16_t));
    }
    off += m->u.match_size;
  }
  if (ours) *key = absl::StrCat(F::Key(e), "/", ports);
  return ours;
}

// flock on the xtables lock's descriptor, waited for up to 5 s, released when it goes.
class XtablesLock {
 public:
  static absl::StatusOr<XtablesLock> Take(int fd) {
    if (fd < 0) {
      return absl::UnavailableError(
          absl::StrCat("xtables lock ", kXtablesLock, ": not open (mount it from the host)"));
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK || std::chrono::steady_clock::now() > deadline) {
        return absl::UnavailableError(
            absl::StrCat("xtables lock ", kXtablesLock, ": held by another process for 5 s"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return XtablesLock(fd);
  }
  XtablesLock(XtablesLock&& o) : fd_(std::exchange(o.fd_, -1)) {}
  ~XtablesLock() {
    if (fd_ >= 0) flock(fd_, LOCK_UN);
  }

 private:
  explicit XtablesLock(int fd) : fd_(fd) {}
  int fd_;
};

template <typename F>
struct HandleDeleter {
  void operator()(xtc_handle* h) const { F::Free(h); }
};

template <typename F>
absl::StatusOr<bool> Sync(const std::string& chain, const std::vector<std::string>* ips,
                          uint16_t port, int lock_fd) {
  // The rules wanted (none when removing), by key.
  std::vector<std::vector<unsigned char>> want;
  const bool in = chain == "INPUT";
  if (ips != nullptr) {
    for (const auto& ip : *ips) {
      unsigned char a[16];
      if (inet_pton(F::kAf, ip.c_str(), a) != 1) continue;  // the other family
      for (uint8_t proto : {IPPROTO_TCP, IPPROTO_UDP}) {
        want.push_back(BuildRule<F>(in, a, proto, port));
      }
    }
  }
  auto lock = XtablesLock::Take(lock_fd);
  if (!lock.ok()) return lock.status();
  std::unique_ptr<xtc_handle, HandleDeleter<F>> h(F::Init());
  if (h == nullptr) {
    return absl::UnavailableError(absl::StrCat("iptables-legacy filter table: ", F::Error(errno)));
  }
  if (!F::IsChain(chain.c_str(), h.get())) return false;
  std::vector<std::string> have_keys, want_keys;
  std::vector<unsigned> have_nums;
  unsigned num = 0;  // libiptc counts rules from 0 (the iptables command line from 1)
  for (const auto* e = F::First(chain.c_str(), h.get()); e != nullptr;
       e = F::Next(e, h.get()), ++num) {
    std::string key;
    if (Ours<F>(e, &key)) {
      have_keys.push_back(key);
      have_nums.push_back(num);
    }
  }
  for (const auto& w : want) {
    std::string key;
    Ours<F>(reinterpret_cast<const typename F::Entry*>(w.data()), &key);
    want_keys.push_back(key);
  }
  std::sort(have_keys.begin(), have_keys.end());
  std::sort(want_keys.begin(), want_keys.end());
  if (have_keys == want_keys) return false;
  // Replace ours in one commit: the kernel swaps the whole table at once.
  for (auto n = have_nums.rbegin(); n != have_nums.rend(); ++n) {
    if (!F::Delete(chain.c_str(), *n, h.get())) {
      return absl::InternalError(absl::StrCat("iptables-legacy ", chain, ": ", F::Error(errno)));
    }
  }
  for (auto w = want.rbegin(); w != want.rend(); ++w) {
    if (!F::Insert(chain.c_str(), reinterpret_cast<const typename F::Entry*>(w->data()), h.get())) {
      return absl::InternalError(absl::StrCat("iptables-legacy ", chain, ": ", F::Error(errno)));
    }
  }
  if (!F::Commit(h.get())) {
    return absl::UnavailableError(
        absl::StrCat("iptables-legacy ", chain, ": commit: ", F::Error(errno)));
  }
  return true;
}

}  // namespace

int OpenLegacyTableNames(LegacyFamily family) {
  return open(family == LegacyFamily::kIpv4 ? V4::kNames : V6::kNames, O_RDONLY | O_CLOEXEC);
}

bool LegacyFilterInUse(int names_fd) {
  if (names_fd < 0) return false;
  char buf[4096];
  std::string text;
  for (off_t off = 0;;) {
    const ssize_t n = pread(names_fd, buf, sizeof buf, off);
    if (n <= 0) break;
    text.append(buf, n);
    off += n;
  }
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line == "filter") return true;
  }
  return false;
}

int OpenXtablesLock(const std::string& path) {
  // O_CREAT as iptables does (the DaemonSet's hostPath mount is FileOrCreate).
  return open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
}

absl::StatusOr<bool> EnsureLegacyAccept(LegacyFamily family, const std::string& chain,
                                        const std::vector<std::string>& ips, uint16_t port,
                                        int lock_fd) {
  return family == LegacyFamily::kIpv4 ? Sync<V4>(chain, &ips, port, lock_fd)
                                       : Sync<V6>(chain, &ips, port, lock_fd);
}

absl::Status RemoveLegacyAccept(LegacyFamily family, const std::string& chain, int lock_fd) {
  return (family == LegacyFamily::kIpv4 ? Sync<V4>(chain, nullptr, 0, lock_fd)
                                        : Sync<V6>(chain, nullptr, 0, lock_fd))
      .status();
}

}  // namespace nodedns::nodesetup::internal
