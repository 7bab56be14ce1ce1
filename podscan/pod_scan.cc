// Pods from /proc. See pod_scan.h.
#include "podscan/pod_scan.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/string_view_compat.h"

namespace nodedns::podscan {
namespace {

// resolv.conf, hostname, cgroup and fib_trie are small; a fib_trie of a node-sized table is tens
// of KiB. Anything past this is not one of them.
constexpr size_t kMaxFileBytes = 1 << 20;

// Reads a whole file; returns 0 or the errno of the failing call.
int ReadFile(const std::string& path, std::string& out) {
  out.clear();
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  char buf[8192];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      return err;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxFileBytes) {
      close(fd);
      return EFBIG;
    }
  }
  close(fd);
  return 0;
}

// readlink of a /proc/PID/ns/* link; returns 0 or errno.
int ReadNamespace(const std::string& path, uint64_t& inode) {
  char buf[64];
  const ssize_t n = readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) return errno;
  std::optional<uint64_t> parsed =
      ParseNamespaceLink(std::string_view(buf, static_cast<size_t>(n)));
  if (!parsed) return EINVAL;
  inode = *parsed;
  return 0;
}

bool Vanished(int err) { return err == ENOENT || err == ESRCH; }

bool IsHex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isxdigit(static_cast<unsigned char>(c));
  });
}

// "0f1e2d3c_…" or "0f1e2d3c-…" (36 characters) → the dashed form; empty if it is not a UID.
std::string PodUid(std::string_view s) {
  if (s.size() != 36) return "";
  std::string uid(s);
  for (size_t i = 0; i < uid.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash) {
      if (uid[i] != '-' && uid[i] != '_') return "";
      uid[i] = '-';
    } else if (!absl::ascii_isxdigit(static_cast<unsigned char>(uid[i]))) {
      return "";
    }
  }
  return absl::AsciiStrToLower(uid);
}

struct Container {
  uint64_t mnt_ns = 0;
};

}  // namespace

std::optional<uint64_t> ParseNamespaceLink(std::string_view link) {
  const size_t open = link.find(":[");
  if (open == std::string_view::npos || link.size() < open + 4 || link.back() != ']') {
    return std::nullopt;
  }
  uint64_t inode = 0;
  if (!absl::SimpleAtoi(Av(link.substr(open + 2, link.size() - open - 3)), &inode)) {
    return std::nullopt;
  }
  return inode;
}

CgroupInfo ParseCgroup(std::string_view text) {
  CgroupInfo info;
  for (absl::string_view line : absl::StrSplit(Av(text), '\n')) {
    // "hierarchy-ID:controllers:path"; the path may itself contain ':' (it does not in kubelet's
    // layouts, but split at the second colon only).
    const size_t first = line.find(':');
    if (first == absl::string_view::npos) continue;
    const size_t second = line.find(':', first + 1);
    if (second == absl::string_view::npos) continue;
    const absl::string_view path = line.substr(second + 1);
    if (!absl::StrContains(path, "kubepods")) continue;
    CgroupInfo here;
    bool under_kubepods = false;
    for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
      absl::string_view p = part;
      if (p == "kubepods" || p == "kubepods.slice") {
        under_kubepods = true;
        continue;
      }
      if (!under_kubepods) continue;
      // systemd: kubepods-burstable.slice, kubepods-burstable-pod<uid>.slice,
      // kubepods-pod<uid>.slice (guaranteed).
      if (absl::ConsumeSuffix(&p, ".slice")) {
        absl::ConsumePrefix(&p, "kubepods-");
        if (absl::ConsumePrefix(&p, "besteffort")) here.qos = "besteffort";
        if (absl::ConsumePrefix(&p, "burstable")) here.qos = "burstable";
        absl::ConsumePrefix(&p, "-");
        if (absl::ConsumePrefix(&p, "pod")) here.pod_uid = PodUid(Sv(p));
        continue;
      }
      if (absl::ConsumeSuffix(&p, ".scope")) {
        // cri-containerd-<id>, docker-<id>, crio-<id>, crio-conmon-<id> (conmon is not the
        // container; its id is the container's all the same).
        const size_t dash = p.rfind('-');
        if (dash != absl::string_view::npos) p = p.substr(dash + 1);
        if (p.size() == 64 && IsHex(Sv(p))) here.container_id = std::string(p);
        continue;
      }
      // cgroupfs: kubepods/besteffort/pod<uid>/<id>.
      if (p == "besteffort" || p == "burstable") {
        here.qos = std::string(p);
      } else if (absl::ConsumePrefix(&p, "pod")) {
        here.pod_uid = PodUid(Sv(p));
      } else if (p.size() == 64 && IsHex(Sv(p))) {
        here.container_id = std::string(p);
      }
    }
    if (here.pod_uid.empty()) continue;
    if (here.qos.empty()) here.qos = "guaranteed";
    // cgroup v1 has one line per hierarchy, all naming the same pod; the first complete one wins.
    if (info.pod_uid.empty() || (info.container_id.empty() && !here.container_id.empty())) {
      info = std::move(here);
    }
  }
  return info;
}

std::vector<std::string> ParseFibTrieLocal(std::string_view text) {
  std::vector<std::string> out;
  std::string leaf;
  for (absl::string_view line : absl::StrSplit(Av(text), '\n')) {
    absl::string_view s = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&s, "|-- ")) {
      leaf = std::string(s);
      continue;
    }
    if (leaf.empty() || !absl::StartsWith(s, "/32 host LOCAL")) continue;
    in_addr a{};
    if (inet_pton(AF_INET, leaf.c_str(), &a) != 1) continue;
    const uint32_t host = ntohl(a.s_addr);
    if ((host >> 24) == 127 || (host >> 16) == 0xA9FE) continue;  // 127/8, 169.254/16
    if (std::find(out.begin(), out.end(), leaf) == out.end()) out.push_back(leaf);
  }
  return out;
}

std::vector<std::string> ParseIfInet6(std::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(Av(text), '\n')) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 6 || f[0].size() != 32 || !IsHex(std::string_view(f[0].data(), 32))) continue;
    uint32_t scope = 0;
    if (!absl::SimpleHexAtoi(f[3], &scope)) continue;
    // IPV6_ADDR_LOOPBACK 0x10, IPV6_ADDR_LINKLOCAL 0x20 (include/net/ipv6.h).
    if (scope == 0x10 || scope == 0x20) continue;
    in6_addr a{};
    for (int i = 0; i < 16; ++i) {
      uint32_t byte = 0;
      absl::SimpleHexAtoi(f[0].substr(static_cast<size_t>(i) * 2, 2), &byte);
      a.s6_addr[i] = static_cast<uint8_t>(byte);
    }
    char buf[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, &a, buf, sizeof buf) == nullptr) continue;
    std::string addr(buf);
    if (addr == "::1" || absl::StartsWithIgnoreCase(addr, "fe80:")) continue;
    if (std::find(out.begin(), out.end(), addr) == out.end()) out.push_back(addr);
  }
  return out;
}

std::optional<ScanResult> ScanNode(const ScanOptions& options, std::string* error) {
  const std::string& proc = options.proc;
  uint64_t host_mnt = 0;
  uint64_t host_net = 0;
  // PID 1's namespaces are the host's. Where PID 1 cannot be read (a supervisor that holds
  // capabilities the scanner lacks, so that even root fails the ptrace check), kthreadd, PID 2
  // with parent 0, lives in the initial namespaces of every kernel thread.
  std::string host = proc + "/" + std::to_string(options.host_pid);
  int err = ReadNamespace(host + "/ns/mnt", host_mnt);
  if (err != 0 && options.host_pid == 1) {
    std::string stat;
    const std::string kthreadd = proc + "/2";
    // "2 (kthreadd) S 0 ...": the state, then the parent's PID.
    const size_t paren =
        ReadFile(kthreadd + "/stat", stat) == 0 ? stat.rfind(')') : std::string::npos;
    if (paren != std::string::npos && stat.compare(paren + 3, 3, " 0 ") == 0 &&
        ReadNamespace(kthreadd + "/ns/mnt", host_mnt) == 0) {
      host = kthreadd;
      err = 0;
    }
  }
  if (err != 0) {
    if (error) *error = "cannot read " + host + "/ns/mnt: " + std::strerror(err);
    return std::nullopt;
  }
  if (err = ReadNamespace(host + "/ns/net", host_net); err != 0) {
    if (error) *error = "cannot read " + host + "/ns/net: " + std::strerror(err);
    return std::nullopt;
  }
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(proc.c_str()), closedir);
  if (!dir) {
    if (error) *error = "cannot read directory " + proc + ": " + std::strerror(errno);
    return std::nullopt;
  }
  ScanResult result;
  // Per pod (network namespace): the pod, and the mount namespaces already read.
  struct Building {
    DiscoveredPod pod;
    std::vector<uint64_t> mounts;
    bool addresses_read = false;
    // Each distinct resolv.conf read, with the containers reading it and where it was first read.
    struct Text {
      std::string text;
      std::string path;
      int containers = 0;
    };
    std::vector<Text> texts;
  };
  absl::flat_hash_map<uint64_t, Building> pods;
  std::map<std::string, HostNetworkPod> host_network;
  std::string text;
  auto count_failure = [&](int err) {
    if (Vanished(err)) {
      ++result.vanished;
    } else {
      ++result.denied;
    }
  };
  // In PID order, so that a pod's containers and its first resolv.conf do not depend on the
  // directory's order.
  std::vector<int> pids;
  while (dirent* entry = readdir(dir.get())) {
    int pid = 0;
    if (absl::SimpleAtoi(entry->d_name, &pid) && pid > 0) pids.push_back(pid);
  }
  dir.reset();
  std::sort(pids.begin(), pids.end());
  for (const int pid : pids) {
    ++result.processes;
    const std::string base = proc + "/" + std::to_string(pid);
    uint64_t mnt = 0;
    uint64_t net = 0;
    if (int err = ReadNamespace(base + "/ns/mnt", mnt); err != 0) {
      count_failure(err);
      continue;
    }
    if (mnt == host_mnt) {
      ++result.host_processes;
      continue;
    }
    if (int err = ReadNamespace(base + "/ns/net", net); err != 0) {
      count_failure(err);
      continue;
    }
    CgroupInfo cgroup;
    if (int err = ReadFile(base + "/cgroup", text); err != 0) {
      count_failure(err);
      continue;
    }
    cgroup = ParseCgroup(text);
    if (net == host_net) {
      if (cgroup.pod_uid.empty()) {
        ++result.host_private_mounts;
      } else {
        HostNetworkPod& h = host_network[cgroup.pod_uid];
        if (h.cgroup.pod_uid.empty()) h.cgroup = cgroup;
        h.pids.push_back(pid);
      }
      continue;
    }
    Building& b = pods[net];
    b.pod.net_ns = net;
    b.pod.pids.push_back(pid);
    if (!cgroup.container_id.empty() &&
        std::find(b.pod.container_ids.begin(), b.pod.container_ids.end(), cgroup.container_id) ==
            b.pod.container_ids.end()) {
      b.pod.container_ids.push_back(cgroup.container_id);
    }
    if (b.pod.cgroup.pod_uid.empty() && !cgroup.pod_uid.empty()) {
      b.pod.cgroup = cgroup;
      b.pod.cgroup.container_id.clear();
    }
    if (!b.addresses_read) {
      int err4 = ReadFile(base + "/net/fib_trie", text);
      std::vector<std::string> v4 =
          err4 == 0 ? ParseFibTrieLocal(text) : std::vector<std::string>{};
      int err6 = ReadFile(base + "/net/if_inet6", text);
      // No if_inet6 at all: IPv6 is off in that namespace, not a failure.
      std::vector<std::string> v6 = err6 == 0 ? ParseIfInet6(text) : std::vector<std::string>{};
      if (err4 == 0) {
        b.addresses_read = true;
        b.pod.addresses = std::move(v4);
        b.pod.addresses.insert(b.pod.addresses.end(), v6.begin(), v6.end());
      } else if (err4 != ENOENT || access(base.c_str(), F_OK) != 0) {
        count_failure(err4);
        continue;
      }
    }
    if (std::find(b.mounts.begin(), b.mounts.end(), mnt) != b.mounts.end()) continue;
    b.mounts.push_back(mnt);
    ++b.pod.containers;
    // A container without these files (a sandbox image has neither) is not a failure; a process
    // that exited in between is.
    const int resolv_err = ReadFile(base + "/root/etc/resolv.conf", text);
    if (resolv_err == 0) {
      auto it = std::find_if(b.texts.begin(), b.texts.end(),
                             [&](const Building::Text& t) { return t.text == text; });
      if (it == b.texts.end()) {
        b.texts.push_back({text, base + "/root/etc/resolv.conf", 0});
        it = b.texts.end() - 1;
      }
      ++it->containers;
    } else if (resolv_err != ENOENT || access(base.c_str(), F_OK) != 0) {
      count_failure(resolv_err);
      continue;
    }
    if (b.pod.name.empty() && ReadFile(base + "/root/etc/hostname", text) == 0) {
      b.pod.name = std::string(absl::StripAsciiWhitespace(Av(text)));
      if (b.pod.name.size() > 253) b.pod.name.resize(253);
    }
  }
  for (auto& [net, b] : pods) {
    // kubelet gives every container of a pod the same file, so a second one is a container caught
    // before its mounts were set up (it still sees the host's): the file most containers read
    // wins, the earliest PID on a tie.
    const Building::Text* chosen = nullptr;
    for (const Building::Text& t : b.texts) {
      if (chosen == nullptr || t.containers > chosen->containers) chosen = &t;
    }
    if (chosen != nullptr) {
      b.pod.resolv_conf = chosen->text;
      b.pod.resolv_conf_path = chosen->path;
      b.pod.resolv_confs_differ = b.texts.size() > 1;
    }
    std::sort(b.pod.pids.begin(), b.pod.pids.end());
    result.pods.push_back(std::move(b.pod));
  }
  std::sort(result.pods.begin(), result.pods.end(),
            [](const DiscoveredPod& a, const DiscoveredPod& b) {
              return std::tie(a.name, a.net_ns) < std::tie(b.name, b.net_ns);
            });
  for (auto& [uid, h] : host_network) {
    std::sort(h.pids.begin(), h.pids.end());
    result.host_network.push_back(std::move(h));
  }
  return result;
}

}  // namespace nodedns::podscan
