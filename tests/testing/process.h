// Test-only process and file helpers: a child process with its output in a log file, a shell
// command's output, whole-file reads and writes.
#ifndef NODEDNS_TESTS_TESTING_PROCESS_H_
#define NODEDNS_TESTS_TESTING_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace nodedns::testing {

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& text);

// A child process with stdout and stderr in a log file. posix_spawn, not fork: the test binaries
// have threads (and, in sanitized builds, a runtime that dislikes fork).
class Process {
 public:
  Process() = default;
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  bool Start(const std::vector<std::string>& argv, const std::string& log);
  bool Running();
  // SIGTERM, then waits up to `timeout` before SIGKILL. Returns the wait status (nullopt if it
  // had to be killed).
  std::optional<int> Stop(std::chrono::milliseconds timeout);
  std::string Log() const { return ReadFile(log_); }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
  std::string log_;
};

// Runs a command and returns its stdout and stderr (kdig). Bounded by the command's own timeout.
std::string RunCommand(const std::string& cmd);

}  // namespace nodedns::testing

#endif  // NODEDNS_TESTS_TESTING_PROCESS_H_
