// Reading a resolv.conf file by path for `nodedns serve`; see resolv_conf.h.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "resolvconf/resolv_conf.h"

namespace nodedns::resolvconf {

using dns::SocketAddress;

namespace {

// glibc's __inet_aton_exact: inet_aton's forms ("127.1", "0x7f.0.0.1", octal), and nothing after
// them. inet_aton itself stops at the first whitespace character, so reject those first.
bool InetAtonExact(const char* text, in_addr* out) {
  for (const char* c = text; *c != '\0'; ++c) {
    if (absl::ascii_isspace(static_cast<unsigned char>(*c))) return false;
  }
  return inet_aton(text, out) != 0;
}

}  // namespace

// As glibc 2.36 reads them (resolv/res_init.c, res_vinit_1): "nameserver" at the very start of
// the line, then a blank or a tab; blanks and tabs skipped; the address is what follows up to the
// next blank, tab or newline (a NUL ends it too), read by __inet_aton_exact or, failing that, by
// inet_pton(AF_INET6) after cutting a "%zone". No port: always 53. The first three addresses
// (MAXNS) are the ones used. A link-local IPv6 address with a zone counts among the three, but we
// cannot use it (SocketAddress carries no scope id), so it is skipped.
absl::StatusOr<std::vector<SocketAddress>> ReadResolvConfNameservers(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::vector<SocketAddress> out;
  int seen = 0;  // addresses glibc takes, usable by us or not
  std::string line;
  while (seen < kMaxNameservers && std::getline(in, line)) {
    constexpr absl::string_view kKeyword = "nameserver";
    // Up to the first NUL, as glibc sees the line through C strings.
    std::string text(line.c_str());
    absl::string_view l = text;
    if (!absl::ConsumePrefix(&l, kKeyword)) continue;
    if (l.empty() || (l[0] != ' ' && l[0] != '\t')) continue;
    const size_t begin = l.find_first_not_of(" \t");
    if (begin == absl::string_view::npos) continue;
    l = l.substr(begin);
    l = l.substr(0, l.find_first_of(" \t\n"));
    const std::string token(l);
    SocketAddress addr;
    in_addr a4;
    in6_addr a6;
    if (InetAtonExact(token.c_str(), &a4)) {
      auto* sin = reinterpret_cast<sockaddr_in*>(&addr.storage);
      sin->sin_family = AF_INET;
      sin->sin_port = htons(53);
      sin->sin_addr = a4;
      addr.length = sizeof(sockaddr_in);
    } else {
      const size_t zone = token.find('%');
      const std::string v6 = token.substr(0, zone);
      if (v6.empty() || inet_pton(AF_INET6, v6.c_str(), &a6) != 1) continue;
      ++seen;
      if (zone != std::string::npos) continue;  // glibc uses it with its scope id; we cannot
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(&addr.storage);
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(53);
      sin6->sin6_addr = a6;
      addr.length = sizeof(sockaddr_in6);
      out.push_back(addr);
      continue;
    }
    ++seen;
    out.push_back(addr);
  }
  if (out.empty()) return absl::NotFoundError(absl::StrCat(path, " lists no usable nameserver"));
  return out;
}

absl::StatusOr<std::vector<std::string>> ReadResolvConfSearch(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return ParseResolvConf(text.str()).conf.search;
}

}  // namespace nodedns::resolvconf
