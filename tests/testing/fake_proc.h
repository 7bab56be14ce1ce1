// A fixture proc tree under /tmp for the life of the object, for code that scans /proc
// (podscan/pod_scan.h): one directory per PID with ns/mnt and ns/net as symlinks whose text is
// what the kernel's readlink gives ("mnt:[N]"), a cgroup file, net/ and root/etc/.
#ifndef NODEDNS_TESTS_TESTING_FAKE_PROC_H_
#define NODEDNS_TESTS_TESTING_FAKE_PROC_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace nodedns::testing {

class FakeProc {
 public:
  FakeProc() {
    char tmpl[] = "/tmp/nodedns-proc-XXXXXX";
    if (mkdtemp(tmpl) != nullptr) root_ = tmpl;
  }
  ~FakeProc() {
    std::error_code ec;
    if (!root_.empty()) std::filesystem::remove_all(root_, ec);
  }
  FakeProc(const FakeProc&) = delete;
  FakeProc& operator=(const FakeProc&) = delete;

  const std::string& root() const { return root_; }
  std::string Dir(int pid) const { return root_ + "/" + std::to_string(pid); }

  // A process in mount namespace `mnt` and network namespace `net`, with `cgroup` as its
  // /proc/PID/cgroup.
  void Process(int pid, int mnt, int net, const std::string& cgroup = "0::/\n") {
    const std::string dir = Dir(pid);
    std::filesystem::create_directories(dir + "/ns");
    std::filesystem::create_directories(dir + "/net");
    std::filesystem::create_directories(dir + "/root/etc");
    std::filesystem::create_symlink("mnt:[" + std::to_string(mnt) + "]", dir + "/ns/mnt");
    std::filesystem::create_symlink("net:[" + std::to_string(net) + "]", dir + "/ns/net");
    Write(pid, "cgroup", cgroup);
  }
  // A file under /proc/PID, e.g. "root/etc/resolv.conf".
  void Write(int pid, const std::string& file, const std::string& text) {
    std::ofstream(Dir(pid) + "/" + file) << text;
  }
  // An IPv4 address of the process's network namespace, as /proc/PID/net/fib_trie shows it.
  void Address(int pid, const std::string& v4) {
    Write(pid, "net/fib_trie", "Local:\n  |-- " + v4 + "\n     /32 host LOCAL\n");
  }

 private:
  std::string root_;
};

}  // namespace nodedns::testing

#endif  // NODEDNS_TESTS_TESTING_FAKE_PROC_H_
