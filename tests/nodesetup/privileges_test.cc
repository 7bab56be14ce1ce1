// DropPrivileges in a forked child (it cannot be undone): the ids change for every thread, only
// the calling thread keeps CAP_NET_ADMIN, and root cannot be regained. The child reports through
// its exit code, one bit per failed check, so a failure says which.
#include "nodesetup/privileges.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nodedns::nodesetup {
namespace {

using ::testing::HasSubstr;

TEST(ParseRunAsTest, TakesUidAndOptionalGid) {
  auto a = ParseRunAs("65534");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->uid, 65534u);
  EXPECT_EQ(a->gid, 65534u);
  auto b = ParseRunAs("1000:2000");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->uid, 1000u);
  EXPECT_EQ(b->gid, 2000u);
  for (const char* bad : {"", "nobody", "1:", ":1", "-1", "4294967295", "12a", "1:2:3"}) {
    auto r = ParseRunAs(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) EXPECT_THAT(r.status().message(), HasSubstr("is not UID or UID:GID")) << bad;
  }
}

// CapEff of one thread, from /proc.
uint64_t CapEff(const std::string& status_path) {
  std::ifstream in(status_path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  }
  return ~0ull;
}

constexpr uint64_t kNetAdminBit = 1ull << 12;  // CAP_NET_ADMIN
constexpr uint64_t kNetRawBit = 1ull << 13;    // CAP_NET_RAW (root has it here)

int ChildChecks(bool keep) {
  std::atomic<int> worker_tid{0};
  std::atomic<bool> done{false};
  std::thread worker([&] {
    worker_tid = gettid();
    while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  while (worker_tid == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  int fails = 0;
  if (!DropPrivileges({.uid = 65534, .gid = 65533}, keep).ok()) fails |= 1;
  uid_t r, e, s;
  getresuid(&r, &e, &s);
  if (r != 65534 || e != 65534 || s != 65534) fails |= 2;
  gid_t gr, ge, gs;
  getresgid(&gr, &ge, &gs);
  if (gr != 65533 || ge != 65533 || gs != 65533) fails |= 4;
  const uint64_t mine = CapEff("/proc/thread-self/status");
  if (mine != (keep ? kNetAdminBit | kNetRawBit : 0)) fails |= 8;
  const uint64_t theirs =
      CapEff("/proc/self/task/" + std::to_string(worker_tid.load()) + "/status");
  if (theirs != 0) fails |= 16;
  if (setuid(0) == 0) fails |= 32;
  done = true;
  worker.join();
  return fails;
}

void RunChild(bool keep) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(ChildChecks(keep));
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << "failed checks (bits): 1 drop, 2 uid, 4 gid, 8 own caps, "
                                   "16 other thread's caps, 32 regained root";
}

TEST(DropPrivilegesTest, KeepsSetupCapsOnTheCallingThreadOnly) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to drop it";
  RunChild(true);
}

TEST(DropPrivilegesTest, DropsEverythingWhenNothingIsKept) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to drop it";
  RunChild(false);
}

}  // namespace
}  // namespace nodedns::nodesetup
