// Tests for the `nodedns audit` command: CLI parsing, input expansion (files, directories,
// globs), names, exit codes and error messages (audit/audit_command.h).
#include "audit/audit_command.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace nodedns::audit {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kPodNdots5[] =
    "search default.svc.cluster.local svc.cluster.local cluster.local\n"
    "nameserver 10.96.0.10\n"
    "options ndots:5\n";
constexpr char kPodClean[] =
    "search default.svc.cluster.local svc.cluster.local cluster.local\n"
    "nameserver 169.254.20.10\n"
    "nameserver 10.96.0.10\n"
    "options ndots:2 timeout:2 attempts:2\n";

class AuditCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("nodedns_audit_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& rel, const std::string& text) {
    fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }

  int Run(const AuditFlags& flags) {
    out_.str("");
    err_.str("");
    return RunAuditCommand(flags, out_, err_);
  }

  fs::path dir_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(AuditCommandTest, WarningFindingsExitOneByDefault) {
  AuditFlags flags;
  flags.resolv_confs = {Write("pod.conf", kPodNdots5)};
  EXPECT_EQ(Run(flags), kExitFindings);
  EXPECT_THAT(out_.str(), HasSubstr("ndots-k8s-default"));
  EXPECT_EQ(err_.str(), "");
}

TEST_F(AuditCommandTest, FailOnErrorIgnoresWarnings) {
  AuditFlags flags;
  flags.resolv_confs = {Write("pod.conf", kPodNdots5)};
  flags.fail_on = "error";
  EXPECT_EQ(Run(flags), kExitOk);
}

TEST_F(AuditCommandTest, FailOnInfoCountsInfoFindings) {
  AuditFlags flags;
  // Only info findings: node-local cache unused and single-request-reopen missing.
  flags.resolv_confs = {Write("pod.conf",
                              "search default.svc.cluster.local svc.cluster.local cluster.local\n"
                              "nameserver 10.96.0.10\noptions ndots:2\n")};
  EXPECT_EQ(Run(flags), kExitOk);
  flags.fail_on = "info";
  EXPECT_EQ(Run(flags), kExitFindings);
}

TEST_F(AuditCommandTest, CleanConfigExitsZeroEvenWithFailOnInfo) {
  AuditFlags flags;
  flags.resolv_confs = {Write("pod.conf", kPodClean)};
  flags.fail_on = "info";
  EXPECT_EQ(Run(flags), kExitOk) << out_.str();
  EXPECT_THAT(out_.str(), HasSubstr("findings:    none"));
}

TEST_F(AuditCommandTest, MissingFileExitsTwoWithOneLineNamingThePath) {
  AuditFlags flags;
  const std::string missing = (dir_ / "does-not-exist.conf").string();
  flags.resolv_confs = {missing};
  EXPECT_EQ(Run(flags), kExitBadInput);
  EXPECT_EQ(err_.str(),
            "nodedns audit: cannot read '" + missing + "': No such file or directory\n");
  EXPECT_EQ(out_.str(), "");
}

TEST_F(AuditCommandTest, UnreadableFileExitsTwoNamingThePath) {
  // A path through a regular file cannot be opened, even by root.
  const std::string file = Write("plain.conf", kPodClean);
  AuditFlags flags;
  flags.resolv_confs = {file + "/resolv.conf"};
  EXPECT_EQ(Run(flags), kExitBadInput);
  EXPECT_THAT(err_.str(), HasSubstr("'" + file + "/resolv.conf'"));
  EXPECT_THAT(err_.str(), HasSubstr("Not a directory"));
}

// Root reads mode-000 files through CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH. Linux keeps
// capabilities per thread, so this drops both from the calling thread's effective set for its
// scope and restores them after (they stay permitted, so raising them again needs no privilege).
// Without them root is checked like any other owner: a mode-000 file is unreadable, and the
// permission-denied path runs as root too (CI) instead of being skipped.
class WithoutDacOverride {
 public:
  WithoutDacOverride() {
    ok_ = syscall(SYS_capget, &header_, saved_) == 0;
    if (!ok_) return;
    __user_cap_data_struct reduced[2] = {saved_[0], saved_[1]};
    reduced[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
    ok_ = syscall(SYS_capset, &header_, reduced) == 0;
  }
  ~WithoutDacOverride() {
    if (ok_) syscall(SYS_capset, &header_, saved_);
  }
  WithoutDacOverride(const WithoutDacOverride&) = delete;
  WithoutDacOverride& operator=(const WithoutDacOverride&) = delete;
  bool ok() const { return ok_; }

 private:
  __user_cap_header_struct header_{_LINUX_CAPABILITY_VERSION_3, 0};  // pid 0: this thread
  __user_cap_data_struct saved_[2] = {};
  bool ok_ = false;
};

TEST_F(AuditCommandTest, PermissionDeniedFileExitsTwoNamingThePath) {
  const std::string file = Write("secret.conf", kPodClean);
  fs::permissions(file, fs::perms::none);
  AuditFlags flags;
  flags.resolv_confs = {file};
  WithoutDacOverride no_override;
  ASSERT_TRUE(no_override.ok()) << "capget/capset: " << strerror(errno);
  EXPECT_EQ(Run(flags), kExitBadInput);
  EXPECT_THAT(err_.str(), HasSubstr("cannot read '" + file + "': Permission denied"));
}

TEST_F(AuditCommandTest, DirectoryGivesOneReportPerFileAndGroupedSummary) {
  Write("pods/a", kPodNdots5);
  Write("pods/b", kPodClean);
  Write("pods/c", std::string("# another pod\n") + kPodNdots5);
  AuditFlags flags;
  flags.resolv_confs = {(dir_ / "pods").string()};
  flags.format = "json";
  EXPECT_EQ(Run(flags), kExitFindings);
  const std::string json = out_.str();
  const std::string a = (dir_ / "pods/a").string();
  const std::string b = (dir_ / "pods/b").string();
  const std::string c = (dir_ / "pods/c").string();
  EXPECT_THAT(json, HasSubstr("{\"path\":\"" + a + "\""));
  EXPECT_THAT(json, HasSubstr("{\"path\":\"" + b + "\""));
  EXPECT_THAT(json, HasSubstr("{\"path\":\"" + c + "\""));
  EXPECT_THAT(json, HasSubstr("\"count\":2,\"files\":[\"" + a + "\",\"" + c + "\"]"));
  EXPECT_THAT(json, HasSubstr("\"count\":1,\"files\":[\"" + b + "\"]"));
}

TEST_F(AuditCommandTest, GlobSelectsMatchingFilesOnly) {
  Write("pods/x/resolv.conf", kPodNdots5);
  Write("pods/y/resolv.conf", kPodClean);
  Write("pods/y/hosts", "127.0.0.1 localhost\n");
  AuditFlags flags;
  flags.resolv_confs = {(dir_ / "pods/*/resolv.conf").string()};
  EXPECT_EQ(Run(flags), kExitFindings);
  EXPECT_THAT(out_.str(), HasSubstr("== summary: 2 files, 2 distinct configuration(s)"));
  EXPECT_EQ(out_.str().find("hosts"), std::string::npos);
}

TEST_F(AuditCommandTest, GlobWithoutMatchExitsTwo) {
  AuditFlags flags;
  const std::string pattern = (dir_ / "nothing/*.conf").string();
  flags.resolv_confs = {pattern};
  EXPECT_EQ(Run(flags), kExitBadInput);
  EXPECT_EQ(err_.str(), "nodedns audit: no file matches '" + pattern + "'\n");
}

TEST_F(AuditCommandTest, EmptyDirectoryExitsTwo) {
  fs::create_directories(dir_ / "empty");
  AuditFlags flags;
  flags.resolv_confs = {(dir_ / "empty").string()};
  EXPECT_EQ(Run(flags), kExitBadInput);
  EXPECT_THAT(err_.str(), HasSubstr("contains no files"));
}

TEST_F(AuditCommandTest, NamesFileReplacesTheDefaultSample) {
  AuditFlags flags;
  flags.resolv_confs = {Write("pod.conf", kPodClean)};
  flags.names_file = Write("names.txt", "# names to check\nmy-svc\n\n  db.payments  \n");
  flags.format = "json";
  Run(flags);
  EXPECT_THAT(out_.str(), HasSubstr("{\"name\":\"my-svc\",\"resolver\":\"glibc\""));
  EXPECT_THAT(out_.str(), HasSubstr("{\"name\":\"db.payments\",\"resolver\":\"musl\""));
  EXPECT_EQ(out_.str().find("api.example.com"), std::string::npos);
}

TEST_F(AuditCommandTest, MissingNamesFileExitsTwo) {
  AuditFlags flags;
  flags.resolv_confs = {Write("pod.conf", kPodClean)};
  flags.names_file = (dir_ / "nope.txt").string();
  EXPECT_EQ(Run(flags), kExitBadInput);
  EXPECT_THAT(err_.str(), HasSubstr("nope.txt"));
}

TEST_F(AuditCommandTest, InvalidNameExitsTwo) {
  AuditFlags flags;
  flags.resolv_confs = {Write("pod.conf", kPodClean)};
  flags.names = {"a..b"};
  EXPECT_EQ(Run(flags), kExitBadInput);
  EXPECT_EQ(err_.str(), "nodedns audit: invalid name 'a..b'\n");
}

TEST_F(AuditCommandTest, BadFormatOrFailOnExitsTwo) {
  AuditFlags flags;
  flags.resolv_confs = {Write("pod.conf", kPodClean)};
  flags.format = "yaml";
  EXPECT_EQ(Run(flags), kExitBadInput);
  flags.format = "table";
  flags.fail_on = "critical";
  EXPECT_EQ(Run(flags), kExitBadInput);
}

TEST(AuditCliTest, ParsesRepeatedResolvConfFormatAndPositionalNames) {
  CLI::App app{"nodedns"};
  AuditFlags flags;
  AddAuditCommand(app, flags);
  std::vector<std::string> args = {"nodedns",       "audit", "--resolv-conf", "a.conf",
                                   "--resolv-conf", "dir/",  "--format",      "json",
                                   "--fail-on",     "error", "kubernetes",    "api.example.com."};
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  ASSERT_NO_THROW(app.parse(static_cast<int>(argv.size()), argv.data()));
  EXPECT_THAT(flags.resolv_confs, ElementsAre("a.conf", "dir/"));
  EXPECT_THAT(flags.names, ElementsAre("kubernetes", "api.example.com."));
  EXPECT_EQ(flags.format, "json");
  EXPECT_EQ(flags.fail_on, "error");
}

TEST(AuditCliTest, BadFlagValueMapsToExitTwo) {
  CLI::App app{"nodedns"};
  AuditFlags flags;
  AddAuditCommand(app, flags);
  const char* argv[] = {"nodedns", "audit", "--format", "yaml"};
  std::ostringstream out, err;
  try {
    app.parse(4, argv);
    FAIL() << "expected a parse error";
  } catch (const CLI::ParseError& e) {
    EXPECT_EQ(ExitCodeForParseError(app, e, out, err), kExitBadInput);
    EXPECT_THAT(err.str(), HasSubstr("yaml"));
  }
}

TEST(AuditCliTest, HelpMapsToExitZeroAndDocumentsTheFlags) {
  CLI::App app{"nodedns"};
  AuditFlags flags;
  CLI::App* cmd = AddAuditCommand(app, flags);
  EXPECT_EQ(cmd->get_name(), "audit");
  const char* argv[] = {"nodedns", "audit", "--help"};
  std::ostringstream out, err;
  try {
    app.parse(3, argv);
    FAIL() << "expected --help to throw CallForHelp";
  } catch (const CLI::ParseError& e) {
    EXPECT_EQ(ExitCodeForParseError(app, e, out, err), kExitOk);
  }
  for (const char* flag : {"--resolv-conf", "--names", "--format", "--fail-on", "--resolve"}) {
    EXPECT_THAT(out.str(), HasSubstr(flag));
  }
  EXPECT_THAT(out.str(), HasSubstr("Exit codes"));
}

}  // namespace
}  // namespace nodedns::audit
