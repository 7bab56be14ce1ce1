// The real `nodedns` binary with bad command lines: issue 3 asks for "a one-line error naming the
// flag and exit code 2", before anything is served. Each case runs the binary (NODEDNS_BINARY,
// from CMake) with stderr in a file and checks the exit code, that stderr is exactly one line,
// and that the line names the flag.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

extern char** environ;

namespace nodedns {
namespace {

struct Result {
  int exit_code = -1;  // -1: did not exit on its own within the time limit, or killed
  std::string err;
};

// Runs nodedns with `args`, stdout to /dev/null, stderr captured; kills it after 10 s.
Result RunNodedns(const std::vector<std::string>& args) {
  char path[] = "/tmp/nodedns-cli-test-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, path, O_WRONLY | O_TRUNC, 0);
  std::vector<std::string> argv = {NODEDNS_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargs;
  for (auto& a : argv) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, cargs[0], &fa, nullptr, cargs.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  Result r;
  if (rc != 0) {
    ADD_FAILURE() << "cannot run " << NODEDNS_BINARY;
    unlink(path);
    return r;
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool exited = false;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ADD_FAILURE() << "nodedns still running after 10 s: it started serving";
  } else if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  }
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  r.err = s.str();
  unlink(path);
  return r;
}

// A TCP port on 127.0.0.1 that is free now (the socket is closed before returning).
uint16_t FreeTcpPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// A listening TCP socket on 127.0.0.1 without SO_REUSEPORT: nobody else can bind its port.
class HeldPort {
 public:
  HeldPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd_, 1);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~HeldPort() { close(fd_); }
  std::string Address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// Flags that make a serve command line complete and independent of the machine's resolv.conf.
std::vector<std::string> Serve(std::vector<std::string> flags) {
  std::vector<std::string> args = {"serve"};
  auto given = [&](const std::string& flag) {
    for (const auto& f : flags) {
      if (f.rfind(flag, 0) == 0) return true;
    }
    return false;
  };
  if (!given("--listen")) {
    args.insert(args.end(), {"--listen", "127.0.0.1:" + std::to_string(FreeTcpPort())});
  }
  if (!given("--forward")) args.insert(args.end(), {"--forward", ".=127.0.0.1:53"});
  if (!given("--workers")) args.insert(args.end(), {"--workers", "1"});
  args.insert(args.end(), {"--node-search", "none"});
  args.insert(args.end(), flags.begin(), flags.end());
  return args;
}

void ExpectOneLineError(const std::vector<std::string>& args, const std::string& flag) {
  std::string cmd;
  for (const auto& a : args) cmd += " " + a;
  SCOPED_TRACE("nodedns" + cmd);
  const Result r = RunNodedns(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr:\n" << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.back(), '\n') << r.err;
  EXPECT_NE(r.err.find(flag), std::string::npos) << "the message does not name " << flag << ":\n"
                                                 << r.err;
  EXPECT_EQ(r.err.find("serving on"), std::string::npos) << "served before failing:\n" << r.err;
}

TEST(CliTest, UnknownFlagIsOneLineNamingItAndExitCode2) {
  ExpectOneLineError(Serve({"--bogus"}), "--bogus");
  ExpectOneLineError(Serve({"--bogus=1"}), "--bogus");
  ExpectOneLineError({"serve", "--listen"}, "--listen");  // a flag without its value
}

TEST(CliTest, BadListenIsOneLineAndExitCode2) {
  ExpectOneLineError(Serve({"--listen", "127.0.0.1:99999"}), "--listen");
  ExpectOneLineError(Serve({"--listen=localhost"}), "--listen");
  // Parses, but cannot be bound: 192.0.2.1 (TEST-NET-1) is no address of this machine.
  ExpectOneLineError(Serve({"--listen", "192.0.2.1:5053"}), "--listen");
  // Held by another socket without SO_REUSEPORT.
  HeldPort held;
  ExpectOneLineError(Serve({"--listen", held.Address()}), "--listen");
}

TEST(CliTest, BadForwardIsOneLineAndExitCode2) {
  ExpectOneLineError(Serve({"--forward", "nonsense"}), "--forward");
  ExpectOneLineError(Serve({"--forward", ".=not-an-address"}), "--forward");
  ExpectOneLineError(Serve({"--forward", ".=/nonexistent/resolv.conf"}), "--forward");
  ExpectOneLineError(Serve({"--forward", "a..b=127.0.0.1"}), "--forward");
  ExpectOneLineError(Serve({"--force-tcp", "cluster.local"}), "--force-tcp");
}

TEST(CliTest, UnusableHealthAddressFailsBeforeServingWithExitCode2) {
  ExpectOneLineError(Serve({"--health", "nope"}), "--health");
  HeldPort held;  // in use: bind or listen fails, which used to surface only after workers ran
  ExpectOneLineError(Serve({"--health", held.Address()}), "--health");
  ExpectOneLineError(Serve({"--health", "192.0.2.1:9253"}), "--health");
}

TEST(CliTest, BadWorkersIsOneLineAndExitCode2) {
  ExpectOneLineError(Serve({"--workers", "abc"}), "--workers");
  ExpectOneLineError(Serve({"--workers", "-1"}), "--workers");
  ExpectOneLineError(Serve({"--workers", "100000"}), "--workers");
}

TEST(CliTest, OtherParseErrorsAreOneLineToo) {
  ExpectOneLineError({}, "subcommand");
  ExpectOneLineError(Serve({"--cache-size", "0"}), "--cache-size");
  ExpectOneLineError(Serve({"--search-rewrite", "maybe"}), "--search-rewrite");
}

TEST(CliTest, BadStaleAndOverloadTimersAreOneLineAndExitCode2) {
  ExpectOneLineError(Serve({"--stale-answer-client-timeout", "-1"}),
                     "--stale-answer-client-timeout");
  ExpectOneLineError(Serve({"--stale-answer-client-timeout", "60001"}),
                     "--stale-answer-client-timeout");
  ExpectOneLineError(Serve({"--stale-refresh-time", "1h"}), "--stale-refresh-time");
  ExpectOneLineError(Serve({"--stale-refresh-time", "3601"}), "--stale-refresh-time");
  ExpectOneLineError(Serve({"--overload-queue-delay", "10001"}), "--overload-queue-delay");
  ExpectOneLineError(Serve({"--overload-queue-delay", "x"}), "--overload-queue-delay");
  ExpectOneLineError(Serve({"--overload-interval", "-5"}), "--overload-interval");
}

TEST(CliTest, BadUpstreamHealthFlagsAreOneLineAndExitCode2) {
  ExpectOneLineError(Serve({"--upstream-max-fails", "-1"}), "--upstream-max-fails");
  ExpectOneLineError(Serve({"--upstream-max-fails", "two"}), "--upstream-max-fails");
  ExpectOneLineError(Serve({"--upstream-max-fails", "1001"}), "--upstream-max-fails");
  ExpectOneLineError(Serve({"--upstream-health-check", "0"}), "--upstream-health-check");
  ExpectOneLineError(Serve({"--upstream-health-check", "5s"}), "--upstream-health-check");
  ExpectOneLineError(Serve({"--upstream-health-check", "60001"}), "--upstream-health-check");
}

TEST(CliTest, BadChaosTextIsOneLineAndExitCode2) {
  ExpectOneLineError(Serve({"--chaos-text", std::string(401, 'x')}), "--chaos-text");
  ExpectOneLineError(Serve({"--chaos-text", "tab\there"}), "--chaos-text");
  ExpectOneLineError(Serve({"--chaos-text", "caf\xc3\xa9"}), "--chaos-text");
  ExpectOneLineError(Serve({"--chaos-text"}), "--chaos-text");  // no value
}

TEST(CliTest, BadAllowIsOneLineAndExitCode2) {
  ExpectOneLineError(Serve({"--allow", "10.0.0.0/33"}), "--allow");
  ExpectOneLineError(Serve({"--allow", "10.1.2.3/8"}), "--allow");  // host bits set
  ExpectOneLineError(Serve({"--allow", "nonsense"}), "--allow");
  ExpectOneLineError(Serve({"--allow", "10.0.0.0/8,,192.168.0.0/16"}), "--allow");
  ExpectOneLineError(Serve({"--allow", ""}), "--allow");
  ExpectOneLineError(Serve({"--allow", "10.0.0.0/8", "--allow", "::ffff:10.0.0.0/104"}), "--allow");
  ExpectOneLineError(Serve({"--allow"}), "--allow");  // no value
}

TEST(CliTest, BadMissLimitsAreOneLineAndExitCode2) {
  ExpectOneLineError(Serve({"--max-waiting-queries", "0"}), "--max-waiting-queries");
  ExpectOneLineError(Serve({"--max-waiting-queries", "-5"}), "--max-waiting-queries");
  ExpectOneLineError(Serve({"--max-waiting-queries", "100000000"}), "--max-waiting-queries");
  ExpectOneLineError(Serve({"--max-waiting-queries", "many"}), "--max-waiting-queries");
  ExpectOneLineError(Serve({"--client-miss-share", "0"}), "--client-miss-share");
  ExpectOneLineError(Serve({"--client-miss-share", "101"}), "--client-miss-share");
  ExpectOneLineError(Serve({"--client-miss-share", "50%"}), "--client-miss-share");
}

TEST(CliTest, HelpAndVersionExit0) {
  Result r = RunNodedns({"serve", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.err, "");
  r = RunNodedns({"--version"});
  EXPECT_EQ(r.exit_code, 0);
}

}  // namespace
}  // namespace nodedns
