// Fuzz target: a resolv.conf, as `nodedns audit` reads a pod's and `nodedns serve` the node's.
// resolvconf::ParseResolvConf (glibc's reading and musl's), the whole audit with its JSON and
// table reports, the serve side's readers (resolvconf::ReadResolvConfSearch and
// ReadResolvConfNameservers, from a memfd) and the search rewrite's settings built from the node's
// search line.
// Input: the file's bytes, nothing else.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit.h"
#include "audit/report.h"
#include "dns/wire.h"
#include "proxy/search_rewrite.h"
#include "resolvconf/resolv_conf.h"
#include "tests/fuzz/fuzz_util.h"

namespace nodedns::fuzz {
namespace {

// A strict RFC 8259 syntax check (UTF-8 is not checked: JsonString passes bytes >= 0x80 through).
class JsonChecker {
 public:
  explicit JsonChecker(std::string_view s) : s_(s) {}
  bool Valid() {
    Ws();
    if (!Value(0)) return false;
    Ws();
    return i_ == s_.size();
  }

 private:
  bool Value(int depth) {
    if (depth > 64 || i_ >= s_.size()) return false;
    switch (s_[i_]) {
      case '{':
        return Container(depth, '}', true);
      case '[':
        return Container(depth, ']', false);
      case '"':
        return String();
      case 't':
        return Word("true");
      case 'f':
        return Word("false");
      case 'n':
        return Word("null");
      default:
        return Number();
    }
  }
  bool Container(int depth, char close, bool object) {
    ++i_;
    Ws();
    if (i_ < s_.size() && s_[i_] == close) return ++i_, true;
    for (;;) {
      if (object) {
        if (i_ >= s_.size() || s_[i_] != '"' || !String()) return false;
        Ws();
        if (i_ >= s_.size() || s_[i_] != ':') return false;
        ++i_;
        Ws();
      }
      if (!Value(depth + 1)) return false;
      Ws();
      if (i_ >= s_.size()) return false;
      if (s_[i_] == close) return ++i_, true;
      if (s_[i_] != ',') return false;
      ++i_;
      Ws();
    }
  }
  bool String() {
    ++i_;
    while (i_ < s_.size()) {
      const unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') continue;
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      if (e == 'u') {
        for (int k = 0; k < 4; ++k, ++i_) {
          if (i_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_]))) return false;
        }
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return false;
      }
    }
    return false;
  }
  bool Word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  bool Number() {
    const size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    const size_t digits = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    if (i_ == digits || (s_[digits] == '0' && i_ - digits > 1)) return false;
    if (i_ < s_.size() && s_[i_] == '.') {
      const size_t frac = ++i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
      if (i_ == frac) return false;
    }
    return i_ > start;
  }
  void Ws() {
    while (i_ < s_.size() &&
           (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) {
      ++i_;
    }
  }
  std::string_view s_;
  size_t i_ = 0;
};

// An address as glibc reads a nameserver (inet_aton, or inet_pton after cutting a %scope): the
// family and the address bytes, or an empty string if glibc does not take it.
std::string GlibcAddress(const std::string& a) {
  in_addr v4;
  if (inet_aton(a.c_str(), &v4) != 0) return "4" + std::string(reinterpret_cast<char*>(&v4), 4);
  const std::string v6 = a.substr(0, a.find('%'));
  in6_addr a6;
  if (!v6.empty() && inet_pton(AF_INET6, v6.c_str(), &a6) == 1) {
    return "6" + std::string(reinterpret_cast<char*>(&a6), 16);
  }
  return "";
}

std::string SocketAddressBytes(const dns::SocketAddress& a) {
  if (a.family() == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&a.storage);
    return "4" + std::string(reinterpret_cast<const char*>(&sin->sin_addr), 4);
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
  return "6" + std::string(reinterpret_cast<const char*>(&sin6->sin6_addr), 16);
}

bool ValidAddress(const std::string& a) { return !GlibcAddress(a).empty(); }

void CheckConf(const resolvconf::ParsedResolvConf& p, int lines) {
  const resolvconf::ResolvConf& c = p.conf;
  FUZZ_CHECK(c.nameservers.size() == c.nameserver_lines.size());
  for (size_t i = 0; i < c.nameservers.size(); ++i) {
    FUZZ_CHECK(ValidAddress(c.nameservers[i]));
    FUZZ_CHECK(c.nameserver_lines[i] >= 1 && c.nameserver_lines[i] <= lines);
    if (i > 0) FUZZ_CHECK(c.nameserver_lines[i] > c.nameserver_lines[i - 1]);
  }
  FUZZ_CHECK(c.search_line >= 0 && c.search_line <= lines);
  FUZZ_CHECK((c.search_line == 0) == c.search.empty());
  for (const auto* list : {&c.search, &c.musl_search}) {
    for (const std::string& d : *list) {
      FUZZ_CHECK(!d.empty() && d.find_first_of(" \t\n") == std::string::npos);
    }
  }
  FUZZ_CHECK(c.ndots >= 0 && c.ndots <= resolvconf::kGlibcMaxNdots);
  FUZZ_CHECK(c.timeout >= 0 && c.timeout <= resolvconf::kGlibcMaxTimeout);
  FUZZ_CHECK(c.attempts >= 0 && c.attempts <= resolvconf::kGlibcMaxAttempts);
  FUZZ_CHECK(c.musl_ndots >= 0 && c.musl_ndots <= resolvconf::kMuslMaxNdots);
  FUZZ_CHECK(c.musl_timeout >= 0 && c.musl_timeout <= resolvconf::kMuslMaxTimeout);
  FUZZ_CHECK(c.musl_attempts >= 0 && c.musl_attempts <= resolvconf::kMuslMaxAttempts);
  for (const int line : {c.ndots_line, c.timeout_line, c.attempts_line, c.rotate_line}) {
    FUZZ_CHECK(line >= 0 && line <= lines);
  }
  for (const resolvconf::Finding& f : p.findings) {
    FUZZ_CHECK(f.line >= 0 && f.line <= lines);
    FUZZ_CHECK(!f.id.empty() && !f.message.empty());
  }
  const std::string hash = resolvconf::ConfigHash(c);
  FUZZ_CHECK(hash.size() == 16 && hash.find_first_not_of("0123456789abcdef") == std::string::npos);
}

// A file the serve side reads by path: the bytes in a memfd, opened as /proc/self/fd/N.
class MemFile {
 public:
  explicit MemFile(std::string_view bytes) : fd_(memfd_create("resolv.conf", MFD_CLOEXEC)) {
    FUZZ_CHECK(fd_ >= 0);
    for (size_t done = 0; done < bytes.size();) {
      const ssize_t n = write(fd_, bytes.data() + done, bytes.size() - done);
      FUZZ_CHECK(n > 0);
      done += static_cast<size_t>(n);
    }
  }
  ~MemFile() { close(fd_); }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

}  // namespace
}  // namespace nodedns::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nodedns;
  using namespace nodedns::fuzz;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;

  const resolvconf::ParsedResolvConf parsed = resolvconf::ParseResolvConf(text);
  CheckConf(parsed, lines);
  // The same file read again, or with one more newline at the end, means the same thing.
  const std::string canonical = resolvconf::CanonicalForm(parsed.conf);
  FUZZ_CHECK(resolvconf::CanonicalForm(resolvconf::ParseResolvConf(text).conf) == canonical);
  FUZZ_CHECK(resolvconf::CanonicalForm(resolvconf::ParseResolvConf(text + "\n").conf) == canonical);

  // The audit: a walk per sample name and resolver, reports that render, JSON that parses.
  const std::vector<std::string> names = audit::DefaultSampleNames();
  std::vector<audit::FileReport> reports;
  reports.push_back(audit::AuditText("/fuzz/resolv.conf", text, names));
  const audit::FileReport& report = reports.back();
  FUZZ_CHECK(report.walks.size() == 2 * names.size());
  for (const audit::Walk& w : report.walks) {
    FUZZ_CHECK(w.total == static_cast<int>(w.queries.size()));
    FUZZ_CHECK(w.nxdomain >= 0 && w.nxdomain <= w.wasted && w.wasted <= w.total);
    FUZZ_CHECK(w.answered_by.has_value() == (w.final_outcome == audit::Outcome::kAnswer));
  }
  for (size_t i = 1; i < report.findings.size(); ++i) {
    FUZZ_CHECK(report.findings[i - 1].line <= report.findings[i].line);
  }
  FUZZ_CHECK(audit::GlibcWorstCaseSeconds(report.conf) >= 0);
  FUZZ_CHECK(audit::GroupByConfig(reports).size() == 1);
  std::ostringstream json, table;
  audit::RenderJson(reports, json);
  audit::RenderTable(reports, table);
  FUZZ_CHECK(JsonChecker(json.str()).Valid());
  const std::string quoted = audit::JsonString(text);
  FUZZ_CHECK(JsonChecker(quoted).Valid() && quoted.front() == '"');

  // nodedns serve: the node's search line (the rewrite's node domains) and its nameservers.
  const MemFile file(text);
  const auto search = resolvconf::ReadResolvConfSearch(file.path());
  FUZZ_CHECK(search.ok() && *search == parsed.conf.search);
  const auto settings = proxy::SearchRewriteSettings::Make("cluster.local", *search);
  if (settings.ok()) {
    FUZZ_CHECK(settings->node_search_wire.size() <= search->size());
    for (const std::vector<uint8_t>& d : settings->node_search_wire) {
      FUZZ_CHECK(dns::PlainNameLength(d, 0) == d.size());
      FUZZ_CHECK(Lowercase(d) == d);
      FUZZ_CHECK(d != settings->zone_wire);
    }
  }
  const auto servers = resolvconf::ReadResolvConfNameservers(file.path());
  if (servers.ok()) {
    FUZZ_CHECK(!servers->empty() && servers->size() <= resolvconf::kMaxNameservers);
    // "as glibc reads them" (docs/operations.md): port 53, and only addresses glibc would use.
    // (docs/fuzzing.md, finding 1, fixed: ADDR:PORT, indented and '#'-cut lines were used.)
    std::vector<std::string> glibc;
    for (const std::string& n : parsed.conf.nameservers) glibc.push_back(GlibcAddress(n));
    for (const dns::SocketAddress& a : *servers) {
      FUZZ_CHECK(a.port() == 53);
      FUZZ_CHECK(std::find(glibc.begin(), glibc.end(), SocketAddressBytes(a)) != glibc.end());
    }
  }
  return 0;
}
