// See nodedns_process.h.
#include "tests/testing/nodedns_process.h"

#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "gtest/gtest.h"

namespace nodedns::testing {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void StartNodedns(Process& process, const std::vector<std::string>& argv, const std::string& log) {
  ASSERT_TRUE(process.Start(argv, log));
  const auto deadline = Clock::now() + milliseconds(20000);
  while (Clock::now() < deadline) {
    if (process.Log().find("serving on") != std::string::npos) return;
    ASSERT_TRUE(process.Running()) << "nodedns exited:\n" << process.Log();
    std::this_thread::sleep_for(milliseconds(20));
  }
  FAIL() << "nodedns did not start within 20 s:\n" << process.Log();
}

void StopNodedns(Process& process) {
  const auto st = process.Stop(milliseconds(10000));
  const std::string log = process.Log();
  ASSERT_TRUE(st.has_value()) << "nodedns did not exit within 10 s of SIGTERM:\n" << log;
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
      << "nodedns did not exit 0 on SIGTERM (wait status " << *st << "):\n"
      << log;
  for (const char* bad : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                          "runtime error:", "WARNING: ThreadSanitizer"}) {
    EXPECT_EQ(log.find(bad), std::string::npos) << "sanitizer report in nodedns log:\n" << log;
  }
}

}  // namespace nodedns::testing
