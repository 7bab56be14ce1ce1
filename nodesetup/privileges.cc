// See privileges.h.
#include "nodesetup/privileges.h"

#include <grp.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/string_view_compat.h"

namespace nodedns::nodesetup {

namespace {

struct CapDeleter {
  void operator()(_cap_struct* c) const { cap_free(c); }
};
using CapPtr = std::unique_ptr<_cap_struct, CapDeleter>;

absl::Status Errno(std::string_view what) {
  return absl::InternalError(absl::StrCat(Av(what), ": ", std::strerror(errno)));
}

bool ParseId(std::string_view s, uint32_t* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  // (uid_t)-1 means "unchanged" to setresuid: not an id.
  if (ec != std::errc() || p != s.data() + s.size() || v >= 0xffffffffu) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

}  // namespace

absl::StatusOr<RunAs> ParseRunAs(std::string_view text) {
  RunAs r;
  const size_t colon = text.find(':');
  uint32_t uid, gid;
  if (!ParseId(text.substr(0, colon), &uid) ||
      (colon != std::string_view::npos && !ParseId(text.substr(colon + 1), &gid))) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", Av(text), "\" is not UID or UID:GID (decimal ids)"));
  }
  r.uid = uid;
  r.gid = colon == std::string_view::npos ? uid : gid;
  return r;
}

absl::Status DropPrivileges(RunAs to, bool keep_setup_caps, bool keep_ptrace) {
  cap_value_t keep[3];
  int nkeep = 0;
  const auto permitted = [](cap_value_t c) {
    CapPtr now(cap_get_proc());
    cap_flag_value_t v = CAP_CLEAR;
    if (now != nullptr) cap_get_flag(now.get(), c, CAP_PERMITTED, &v);
    return v == CAP_SET;
  };
  // CAP_NET_ADMIN, and CAP_NET_RAW where the process has it (libiptc opens a raw socket).
  if (keep_setup_caps) {
    keep[nkeep++] = CAP_NET_ADMIN;
    if (permitted(CAP_NET_RAW)) keep[nkeep++] = CAP_NET_RAW;
  }
  // Pod discovery reads /proc/PID/root and /proc/PID/ns of other users' processes.
  if (keep_ptrace && permitted(CAP_SYS_PTRACE)) keep[nkeep++] = CAP_SYS_PTRACE;
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return Errno("prctl(PR_SET_KEEPCAPS)");
  // The bounding set can only shrink with CAP_SETPCAP; without it, what the container runtime
  // left is the limit.
  if (CAP_IS_SUPPORTED(CAP_SETPCAP)) {
    CapPtr now(cap_get_proc());
    cap_flag_value_t setpcap = CAP_CLEAR;
    if (now != nullptr) cap_get_flag(now.get(), CAP_SETPCAP, CAP_EFFECTIVE, &setpcap);
    if (setpcap == CAP_SET) {
      for (cap_value_t c = 0; c <= CAP_LAST_CAP; ++c) {
        if (std::find(keep, keep + nkeep, c) != keep + nkeep) continue;
        if (CAP_IS_SUPPORTED(c) && cap_drop_bound(c) != 0) return Errno("cap_drop_bound");
      }
    }
  }
  if (setgroups(0, nullptr) != 0) return Errno("setgroups");
  if (setresgid(to.gid, to.gid, to.gid) != 0) return Errno(absl::StrCat("setresgid ", to.gid));
  if (setresuid(to.uid, to.uid, to.uid) != 0) return Errno(absl::StrCat("setresuid ", to.uid));
  CapPtr caps(cap_init());  // all clear
  if (caps == nullptr) return Errno("cap_init");
  if (nkeep > 0 && (cap_set_flag(caps.get(), CAP_PERMITTED, nkeep, keep, CAP_SET) != 0 ||
                    cap_set_flag(caps.get(), CAP_EFFECTIVE, nkeep, keep, CAP_SET) != 0)) {
    return Errno("cap_set_flag");
  }
  if (cap_set_proc(caps.get()) != 0) return Errno("cap_set_proc");
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return Errno("prctl(PR_SET_KEEPCAPS, 0)");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Errno("prctl(PR_SET_NO_NEW_PRIVS)");
#ifdef NODEDNS_SANITIZED
  // The id change made the process undumpable, which is right in production (an unprivileged
  // process of the same uid must not ptrace one holding CAP_NET_ADMIN), but LeakSanitizer checks
  // for leaks at exit by ptrace-ing the process's own threads.
  prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
  // A drop that could be undone is no drop.
  if (to.uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
    return absl::InternalError("uid 0 could be regained after dropping privileges");
  }
  return absl::OkStatus();
}

std::string ThreadCapabilities() {
  CapPtr caps(cap_get_proc());
  if (caps == nullptr) return "?";
  char* text = cap_to_text(caps.get(), nullptr);
  if (text == nullptr) return "?";
  std::string out = text;
  cap_free(text);
  return out;
}

}  // namespace nodedns::nodesetup
