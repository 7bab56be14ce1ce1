// A file with given contents under /tmp for the life of the object: for code that reads a path,
// such as the resolv.conf readers.
#ifndef NODEDNS_TESTS_TESTING_TEMP_FILE_H_
#define NODEDNS_TESTS_TESTING_TEMP_FILE_H_

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace nodedns::testing {

class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char name[] = "/tmp/nodedns-test-XXXXXX";
    const int fd = mkstemp(name);
    path_ = name;
    ::close(fd);
    std::ofstream(path_) << content;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace nodedns::testing

#endif  // NODEDNS_TESTS_TESTING_TEMP_FILE_H_
