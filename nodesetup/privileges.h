// Giving up root once node setup is done. nodedns node-cache starts as root because binding the
// local IPs' port 53, adding the interface and installing the netfilter rules need it; the rest of
// its life (answering pods, parsing their packets, serving HTTP) needs nothing, except the
// periodic re-sync of the interface and rules, which needs CAP_NET_ADMIN (and CAP_NET_RAW for
// iptables-legacy's tables) and runs on the main thread. So the drop leaves those on the calling
// thread only:
//  - setresuid/setresgid (glibc applies them to every thread of the process) move all threads to
//    the unprivileged ids, and the kernel clears the capabilities of every thread whose ids all
//    leave 0 unless that thread asked to keep them (PR_SET_KEEPCAPS, which is per thread);
//  - the calling thread asked, and then narrows its permitted and effective sets to `keep`;
//  - no_new_privs on the calling thread, and the bounding set narrowed to `keep` where
//    CAP_SETPCAP allows (a container without it already has a narrow bounding set).
// Threads created afterwards inherit the caller's credentials, so call it once the serving
// threads run (Server::SetOnServing), from the thread that runs the sync loop.
#ifndef NODEDNS_NODESETUP_PRIVILEGES_H_
#define NODEDNS_NODESETUP_PRIVILEGES_H_

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nodedns::nodesetup {

struct RunAs {
  uid_t uid = 65534;
  gid_t gid = 65534;
};

// "UID" or "UID:GID", decimal (the group defaults to the uid). Names are not accepted: the image
// has no user database to speak of, and a numeric id means the same on every node.
absl::StatusOr<RunAs> ParseRunAs(std::string_view text);

// Drops the process to `to` as described above, keeping on the calling thread, when
// `keep_setup_caps`, CAP_NET_ADMIN and (if the process has it) CAP_NET_RAW, and when `keep_ptrace`
// CAP_SYS_PTRACE (if the process has it: pod discovery, started from the calling thread after
// the drop, reads other users' /proc/PID/root). Fails (and the caller must not serve on) when any
// step fails, or when it can still regain uid 0 afterwards.
absl::Status DropPrivileges(RunAs to, bool keep_setup_caps, bool keep_ptrace = false);

// The calling thread's capabilities in libcap's text form ("=" when none), for the log.
std::string ThreadCapabilities();

}  // namespace nodedns::nodesetup

#endif  // NODEDNS_NODESETUP_PRIVILEGES_H_
