// The pods on this node, found from /proc without asking the Kubernetes API (docs/audit.md,
// "Node mode"). nodedns runs on every node with hostPID, so every container's processes are in
// its /proc:
//
//   * a container is a mount namespace other than the host's (PID 1's); a pod is the network
//     namespace its containers share (the sandbox holds it). A process in the host's network
//     namespace with a mount namespace of its own is a hostNetwork pod's container (its cgroup
//     names a pod) or a host service with a private mount namespace (systemd's PrivateTmp and the
//     like): both are skipped, the first listed, the second counted.
//   * what a pod's stubs read: /proc/PID/root/etc/resolv.conf (the path resolves in the process's
//     own mount namespace, so it is the file kubelet bind-mounted there) and /etc/hostname (the
//     pod name, as kubelet writes it unless the pod sets spec.hostname);
//   * who it is: /proc/PID/cgroup (pod UID, container id and QoS class where the path shows them:
//     the cgroupfs and systemd layouts of kubelet, cgroup v1 and v2);
//   * where it is: /proc/PID/net/fib_trie and /proc/PID/net/if_inet6, which show the addresses
//     of the process's network namespace (the pod IPs) without entering it.
//
// A process may exit between any two reads, and a file may be denied: such entries are skipped and
// counted (ScanResult::vanished, ::denied), never fatal. Reading another user's /proc/PID/root
// needs CAP_SYS_PTRACE (ptrace read mode); the DaemonSet adds it.
//
// Thread model: ScanNode() is a pure function of the proc tree it reads; call it from any thread.
// The parsers are pure and usable alone (tests feed them text).
#ifndef NODEDNS_PODSCAN_POD_SCAN_H_
#define NODEDNS_PODSCAN_POD_SCAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nodedns::podscan {

// What kubelet's cgroup path says about a container.
struct CgroupInfo {
  std::string pod_uid;       // "0f1e…" with dashes, as in metadata.uid; empty when not a pod
  std::string container_id;  // 64 hex digits of the runtime's id; empty when not shown
  std::string qos;           // "guaranteed", "burstable" or "besteffort"; empty when not a pod
};

// A pod: the containers sharing one network namespace.
struct DiscoveredPod {
  uint64_t net_ns = 0;                     // inode of the network namespace
  std::string name;                        // /etc/hostname; empty when no container has one
  CgroupInfo cgroup;                       // of the first container whose cgroup names a pod
  std::vector<std::string> container_ids;  // distinct, as found
  std::vector<int> pids;                   // every process seen, ascending
  int containers = 0;                      // distinct mount namespaces
  std::vector<std::string> addresses;      // IPv4 then IPv6, loopback and link-local excluded
  // The resolv.conf its containers read (a sandbox image has none): kubelet gives all of them one
  // file, so where they differ (a container caught before its mounts were made sees the host's)
  // the file most containers read, the one of the earliest PID on a tie. `resolv_conf_path` is
  // the /proc path it was read from; empty when no container had a readable one.
  std::string resolv_conf;
  std::string resolv_conf_path;
  bool resolv_confs_differ = false;  // some container read another file
};

// A container in the host's network namespace whose cgroup names a pod.
struct HostNetworkPod {
  CgroupInfo cgroup;
  std::vector<int> pids;
};

struct ScanResult {
  std::vector<DiscoveredPod> pods;           // ordered by name, then network namespace
  std::vector<HostNetworkPod> host_network;  // ordered by pod UID
  uint64_t processes = 0;                    // numeric /proc entries looked at
  uint64_t host_processes = 0;               // in the host's mount namespace
  uint64_t host_private_mounts = 0;          // host network, own mount namespace, no pod cgroup
  uint64_t vanished = 0;                     // entries that went away mid-scan (ENOENT, ESRCH)
  uint64_t denied = 0;  // entries that could not be read (EACCES, EPERM, other errors)
};

struct ScanOptions {
  std::string proc = "/proc";  // the proc root (a test's fixture tree, or the host's /proc)
  int host_pid = 1;            // whose namespaces are the host's
};

// Fails (nullopt, `error` set) only when the proc root or the host process cannot be read: then
// nothing can be told apart. Everything else is skipped and counted.
std::optional<ScanResult> ScanNode(const ScanOptions& options, std::string* error);

// ---------------------------------------------------------------------------------------------
// The pieces, pure.

// "net:[4026531992]" (readlink of /proc/PID/ns/net) → 4026531992; nullopt for anything else.
std::optional<uint64_t> ParseNamespaceLink(std::string_view link);

// /proc/PID/cgroup (any version: "0::/path" or "N:controllers:/path" lines). Reads kubelet's
// layouts: cgroupfs ".../kubepods/burstable/pod<uid>/<id>" and systemd
// ".../kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope" (also
// "docker-", "crio-"), guaranteed pods having no QoS level.
CgroupInfo ParseCgroup(std::string_view text);

// The local IPv4 addresses of /proc/PID/net/fib_trie ("/32 host LOCAL" leaves), 127/8 and
// 169.254/16 excluded, deduplicated in order of appearance.
std::vector<std::string> ParseFibTrieLocal(std::string_view text);

// The IPv6 addresses of /proc/PID/net/if_inet6 in text form, loopback and link-local excluded.
std::vector<std::string> ParseIfInet6(std::string_view text);

}  // namespace nodedns::podscan

#endif  // NODEDNS_PODSCAN_POD_SCAN_H_
