// End-to-end smoke test of the load harness: starts nodedns-echo on an ephemeral loopback port and
// runs nodedns-loadgen against it for about a second in closed-window and in open-loop mode.
// It checks that the harness works (every query answered, sane percentiles), never how fast it is:
// CI machines are shared and slow, and sanitizer builds are slower still.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nodedns::bench {
namespace {

using ::testing::HasSubstr;

// A child process running nodedns-echo on 127.0.0.1:0; learns the port from its first line.
class EchoServer {
 public:
  EchoServer() {
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      execl(NODEDNS_ECHO_BIN, NODEDNS_ECHO_BIN, "--listen", "127.0.0.1:0", nullptr);
      _exit(127);
    }
    close(out[1]);
    FILE* stream = fdopen(out[0], "r");
    char line[256] = {};
    if (stream != nullptr && fgets(line, sizeof(line), stream) != nullptr) {
      const std::string text(line);
      const std::string marker = "listening on ";
      if (const size_t at = text.find(marker); at != std::string::npos) {
        address_ = text.substr(at + marker.size());
        while (!address_.empty() && std::isspace(static_cast<unsigned char>(address_.back()))) {
          address_.pop_back();
        }
      }
    }
    if (stream != nullptr) fclose(stream);  // The echo writes nothing else to stdout.
  }
  ~EchoServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
  }
  const std::string& address() const { return address_; }

 private:
  pid_t pid_ = -1;
  std::string address_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Extracts a number from the loadgen's flat JSON ("key":123); keys are unique in its output.
std::optional<double> JsonNumber(const std::string& json, const std::string& key) {
  const std::string needle = "\"" + key + "\":";
  const size_t at = json.find(needle);
  if (at == std::string::npos) return std::nullopt;
  const char* start = json.c_str() + at + needle.size();
  char* end = nullptr;
  const double value = std::strtod(start, &end);
  if (end == start) return std::nullopt;
  return value;
}

// Each test gets its own file: ctest runs these tests in parallel processes, and a shared name let
// one test truncate the file while another's loadgen was reading it.
std::string UniqueTempPath(const std::string& stem) {
  return ::testing::TempDir() + "/" + stem + "_" + std::to_string(getpid()) + "_" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".txt";
}

std::string WriteQueryFile() {
  const std::string path = UniqueTempPath("loadgen_smoke_queries");
  std::ofstream out(path);
  out << "; a few names of the kinds the harness sends\n"
         "svc1.ns2.svc.cluster.local A\n"
         "host7.example.com AAAA\n"
         "x.wild.example.com A\n";
  return path;
}

class LoadgenSmokeTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(echo_.address().empty()) << "nodedns-echo did not start"; }

  // Runs the loadgen with --json and checks the invariants every successful run must satisfy.
  void RunAndCheck(const std::string& mode_flags) {
    const auto start = std::chrono::steady_clock::now();
    // A generous timeout: under ASan on a busy machine a reply can take a while, and a slow
    // reply is not what this test is about.
    const CommandResult run =
        RunCommand(std::string(NODEDNS_LOADGEN_BIN) + " --server " + echo_.address() +
                   " --queries=" + queries_ + " --duration 1 --timeout 5 --json " + mode_flags);
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
    const std::optional<double> sent = JsonNumber(run.output, "sent");
    const std::optional<double> answered = JsonNumber(run.output, "answered");
    const std::optional<double> lost = JsonNumber(run.output, "lost");
    ASSERT_TRUE(sent && answered && lost) << run.output;
    EXPECT_GT(*sent, 0) << run.output;
    EXPECT_EQ(*lost, 0) << run.output;
    EXPECT_EQ(*answered, *sent) << run.output;
    EXPECT_EQ(JsonNumber(run.output, "mismatched"), 0) << run.output;
    EXPECT_EQ(JsonNumber(run.output, "NOERROR"), *answered) << run.output;
    const double p50 = JsonNumber(run.output, "p50").value_or(-1);
    const double p90 = JsonNumber(run.output, "p90").value_or(-1);
    const double p99 = JsonNumber(run.output, "p99").value_or(-1);
    const double p999 = JsonNumber(run.output, "p999").value_or(-1);
    const double max = JsonNumber(run.output, "max").value_or(-1);
    EXPECT_GE(p50, 0) << run.output;
    EXPECT_LE(p50, p90) << run.output;
    EXPECT_LE(p90, p99) << run.output;
    EXPECT_LE(p99, p999) << run.output;
    EXPECT_LE(p999, max) << run.output;
    EXPECT_GT(JsonNumber(run.output, "qps").value_or(0), 0) << run.output;
  }

  EchoServer echo_;
  std::string queries_ = WriteQueryFile();
};

TEST_F(LoadgenSmokeTest, ClosedWindowEveryQueryAnswered) { RunAndCheck("--window 64"); }

TEST_F(LoadgenSmokeTest, ClosedWindowWithEdnsAndSeveralSockets) {
  RunAndCheck("--window=32 --edns --sockets 3 --batch 8");
}

TEST_F(LoadgenSmokeTest, OpenLoopEveryQueryAnsweredAtTheRequestedRate) {
  RunAndCheck("--rate 5000");
  const CommandResult run = RunCommand(std::string(NODEDNS_LOADGEN_BIN) + " -s " + echo_.address() +
                                       " -d " + queries_ + " -l 0 --count 500 -Q 2000 --json");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(JsonNumber(run.output, "sent"), 500) << run.output;
  EXPECT_EQ(JsonNumber(run.output, "answered"), 500) << run.output;
  // 500 queries at 2000/s take a quarter second to send; the schedule, not the server, sets it.
  EXPECT_NEAR(JsonNumber(run.output, "send_elapsed_s").value_or(0), 0.25, 0.1) << run.output;
}

TEST_F(LoadgenSmokeTest, HumanOutputByDefault) {
  const CommandResult run = RunCommand(std::string(NODEDNS_LOADGEN_BIN) + " -s " + echo_.address() +
                                       " -d " + queries_ + " --count 100 -l 0");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("sent 100, answered 100, lost 0"));
  EXPECT_THAT(run.output, HasSubstr("p99.9"));
}

TEST(LoadgenCliTest, UnansweredQueriesCountAsLost) {
  // Nothing listens on the discard port of loopback in the test environment.
  const std::string queries = WriteQueryFile();
  const CommandResult run = RunCommand(std::string(NODEDNS_LOADGEN_BIN) + " -s 127.0.0.1:9 -d " +
                                       queries + " --count 20 -l 0 --timeout 0.2 --json");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(JsonNumber(run.output, "answered"), 0) << run.output;
  EXPECT_EQ(JsonNumber(run.output, "lost"), JsonNumber(run.output, "sent")) << run.output;
}

TEST(LoadgenCliTest, BadQueryFileIsReportedWithItsLine) {
  const std::string path = UniqueTempPath("loadgen_bad_queries");
  {
    std::ofstream out(path);
    out << "a.example A\n\nb.example NOTATYPE\n";
  }
  const CommandResult run =
      RunCommand(std::string(NODEDNS_LOADGEN_BIN) + " -s 127.0.0.1:9 -d " + path + " --json");
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_THAT(run.output, HasSubstr(path + ": line 3"));
}

}  // namespace
}  // namespace nodedns::bench
