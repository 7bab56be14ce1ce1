// The kube-dns ConfigMap as node-cache reads it; see kubedns_config.h.
#include "nodecache/kubedns_config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json.h"
#include "common/one_line.h"
#include "nodecache/node_cache_flags.h"
#include "common/string_view_compat.h"

namespace nodedns::nodecache {

namespace {

std::string_view KindName(JsonValue::Kind kind) {
  switch (kind) {
    case JsonValue::Kind::kNull:
      return "null";
    case JsonValue::Kind::kBool:
      return "a boolean";
    case JsonValue::Kind::kNumber:
      return "a number";
    case JsonValue::Kind::kString:
      return "a string";
    case JsonValue::Kind::kArray:
      return "an array";
    case JsonValue::Kind::kObject:
      return "an object";
  }
  return "?";
}

std::string Where(const JsonValue& v) {
  return absl::StrCat("line ", v.line, " column ", v.column);
}

// An array of strings, as json.Unmarshal into []string reads one (except that a null element,
// which Go leaves as "", is an error here: an empty nameserver fails later anyway).
absl::StatusOr<std::vector<std::string>> StringArray(const JsonValue& v, std::string_view what) {
  if (v.kind != JsonValue::Kind::kArray) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(v), ": ", Av(what), " must be an array of strings, not ", Av(KindName(v.kind))));
  }
  std::vector<std::string> out;
  for (const JsonValue& item : v.items) {
    if (item.kind != JsonValue::Kind::kString) {
      return absl::InvalidArgumentError(absl::StrCat(Where(item), ": ", Av(what),
                                                     " must be an array of strings, but holds ",
                                                     Av(KindName(item.kind))));
    }
    out.push_back(item.text);
  }
  return out;
}

// Go's net.SplitHostPort.
bool SplitHostPort(std::string_view hostport, std::string_view* host, std::string_view* port) {
  size_t i = hostport.rfind(':');
  if (i == std::string_view::npos) return false;
  size_t j = 0, k = 0;
  if (!hostport.empty() && hostport[0] == '[') {
    size_t end = hostport.find(']');
    if (end == std::string_view::npos || end + 1 != i) return false;
    *host = hostport.substr(1, end - 1);
    j = 1;
    k = end + 1;
  } else {
    *host = hostport.substr(0, i);
    if (host->find(':') != std::string_view::npos) return false;
  }
  if (hostport.substr(j).find('[') != std::string_view::npos) return false;
  if (hostport.substr(k).find(']') != std::string_view::npos) return false;
  *port = hostport.substr(i + 1);
  return true;
}

bool ValidPort(std::string_view port) {
  if (port.empty() || port.size() > 5) return false;
  uint32_t v = 0;
  for (char c : port) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v >= 1 && v <= 65535;
}

std::string_view StripZone(std::string_view host) {
  size_t percent = host.rfind('%');
  return percent == std::string_view::npos ? host : host.substr(0, percent);
}

// kube-dns's validateStubDomains for one nameserver.
absl::Status ValidateStubNameserver(std::string_view ns) {
  std::string_view host = ns, port;
  if (!SplitHostPort(ns, &host, &port)) {
    host = ns;
    port = {};
  } else if (!ValidPort(port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid nameserver \"", Av(ns), "\": the port must be a number 1..65535"));
  }
  if (!ParseIpLiteral(host) && !IsDns1123Subdomain(ns)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid nameserver \"", Av(ns), "\": want IP, IP:port or [IPv6]:port"));
  }
  return absl::OkStatus();
}

// kube-dns's ValidateNameserverIpAndPort.
absl::Status ValidateUpstreamNameserver(std::string_view ns) {
  if (ParseIpLiteral(ns)) return absl::OkStatus();
  std::string_view host, port;
  if (!SplitHostPort(ns, &host, &port) || !ParseIpLiteral(host)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid nameserver \"", Av(ns), "\": want IP, IP:port or [IPv6]:port"));
  }
  if (!ValidPort(port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid nameserver \"", Av(ns), "\": the port must be a number 1..65535"));
  }
  return absl::OkStatus();
}

absl::Status ValidateForwardAddress(const std::string& ns, const ResolvConfFileCheck& file_check) {
  static constexpr std::string_view kOtherTransports[] = {"quic://", "grpc://", "https3://",
                                                          "https://", "unix://"};
  for (std::string_view prefix : kOtherTransports) {
    if (absl::StartsWith(ns, Av(prefix))) {
      return absl::InvalidArgumentError(absl::StrCat("unsupported transport ",
                                                     Av(prefix.substr(0, prefix.size() - 3)),
                                                     " of nameserver \"", ns, "\""));
    }
  }
  if (absl::StartsWith(ns, "tls://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("nameserver \"", ns, "\": DNS over TLS (tls://) is not supported by nodedns"));
  }
  std::string_view rest = ns;
  const bool prefixed = rest.starts_with("dns://");
  if (prefixed) rest.remove_prefix(6);
  if (rest.empty()) return absl::InvalidArgumentError(absl::StrCat("invalid address \"", ns, "\""));
  std::string_view host, port;
  if (SplitHostPort(rest, &host, &port)) {
    if (ParseIpLiteral(StripZone(host))) {
      if (!ValidPort(port)) {
        return absl::InvalidArgumentError(
            absl::StrCat("nameserver \"", ns, "\": the port must be a number 1..65535"));
      }
      return absl::OkStatus();
    }
  } else {
    // CoreDNS (since 1.11) also takes a bracketed address without a port.
    std::string_view bare = rest;
    if (bare.size() >= 2 && bare.front() == '[' && bare.back() == ']') {
      bare = bare.substr(1, bare.size() - 2);
    }
    if (ParseIpLiteral(StripZone(bare))) return absl::OkStatus();
  }
  // Not an address: CoreDNS reads it as a resolv.conf (with or without the dns:// prefix).
  if (file_check && file_check(std::string(rest))) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("not an IP address or file \"", Av(rest), "\"",
                   prefixed ? absl::StrCat(" (in \"", ns, "\")") : ""));
}

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and beyond U+10FFFF are invalid, as Go's utf8.Valid says.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

}  // namespace

bool IsDns1123Subdomain(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t label_start = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i < name.size() && name[i] != '.') {
      char c = name[i];
      if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
            absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-')) {
        return false;
      }
      continue;
    }
    if (i == label_start) return false;  // Empty label.
    if (name[label_start] == '-' || name[i - 1] == '-') return false;
    label_start = i + 1;
  }
  return true;
}

std::string KubeDnsConfigDir(std::string_view kubednscm_flag,
                             const std::function<bool(const std::string&)>& does_not_exist) {
  if (!kubednscm_flag.empty()) return std::string(kubednscm_flag);
  if (!does_not_exist(kDefaultKubeDnsConfigDir)) return kDefaultKubeDnsConfigDir;
  return "";
}

// Without the one-line escaping; see below.
static absl::Status ValidateKubeDnsConfigRaw(const KubeDnsConfig& config) {
  for (const auto& [domain, nameservers] : config.stub_domains) {
    if (!IsDns1123Subdomain(domain)) {
      return absl::InvalidArgumentError(
          absl::StrCat(kStubDomainsFile, ": invalid domain name \"", domain,
                       "\" (want lower-case letters, digits, '-' and '.', no trailing dot)"));
    }
    for (const std::string& ns : nameservers) {
      if (absl::Status s = ValidateStubNameserver(ns); !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(kStubDomainsFile, ": \"", domain, "\": ", s.message()));
      }
    }
  }
  if (config.upstream_nameservers.size() > kMaxUpstreamNameservers) {
    return absl::InvalidArgumentError(
        absl::StrCat(kUpstreamNameserversFile, ": ", config.upstream_nameservers.size(),
                     " entries; kube-dns allows at most ", kMaxUpstreamNameservers));
  }
  for (const std::string& ns : config.upstream_nameservers) {
    if (absl::Status s = ValidateUpstreamNameserver(ns); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(kUpstreamNameserversFile, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

// Messages quote domains and nameservers, which a JSON string may give a newline.
absl::Status ValidateKubeDnsConfig(const KubeDnsConfig& config) {
  return OneLine(ValidateKubeDnsConfigRaw(config));
}

// Without the one-line escaping; see below.
static absl::Status ValidateForwardProxyRaw(std::span<const std::string> nameservers,
                                            const ResolvConfFileCheck& file_check) {
  for (const std::string& ns : nameservers) {
    if (absl::Status s = ValidateForwardAddress(ns, file_check); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ValidateForwardProxy(std::span<const std::string> nameservers,
                                  const ResolvConfFileCheck& file_check) {
  return OneLine(ValidateForwardProxyRaw(nameservers, file_check));
}

// Without the one-line escaping; see below.
static absl::StatusOr<KubeDnsConfig> ParseKubeDnsConfigRaw(
    const std::map<std::string, std::string>& files, const ResolvConfFileCheck& file_check) {
  KubeDnsConfig config;
  if (auto it = files.find(kStubDomainsFile); it != files.end()) {
    absl::StatusOr<JsonValue> json = ParseJson(it->second);
    if (!json.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kStubDomainsFile, ": ", json.status().message()));
    }
    // null is what json.Unmarshal reads as "no map": no stub domains.
    if (json->kind != JsonValue::Kind::kNull) {
      if (json->kind != JsonValue::Kind::kObject) {
        return absl::InvalidArgumentError(
            absl::StrCat(kStubDomainsFile, ": ", Where(*json), ": want an object of domain -> ",
                         "array of nameservers, not ", Av(KindName(json->kind))));
      }
      for (const JsonValue::Member& m : json->members) {
        absl::StatusOr<std::vector<std::string>> servers =
            StringArray(m.value, absl::StrCat("\"", m.key, "\""));
        if (!servers.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(kStubDomainsFile, ": ", servers.status().message()));
        }
        // A repeated key: the last one wins, as in json.Unmarshal.
        config.stub_domains[m.key] = *std::move(servers);
      }
    }
  }
  if (auto it = files.find(kUpstreamNameserversFile); it != files.end()) {
    absl::StatusOr<JsonValue> json = ParseJson(it->second);
    if (!json.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kUpstreamNameserversFile, ": ", json.status().message()));
    }
    if (json->kind != JsonValue::Kind::kNull) {
      absl::StatusOr<std::vector<std::string>> servers = StringArray(*json, "the value");
      if (!servers.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(kUpstreamNameserversFile, ": ", servers.status().message()));
      }
      config.upstream_nameservers = *std::move(servers);
    }
  }
  if (absl::Status s = ValidateKubeDnsConfig(config); !s.ok()) return s;
  for (const auto& [domain, nameservers] : config.stub_domains) {
    // node-cache would write "forward . " with no address, which CoreDNS refuses to load.
    if (nameservers.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kStubDomainsFile, ": \"", domain, "\" has no nameservers"));
    }
    if (absl::Status s = ValidateForwardProxy(nameservers, file_check); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kStubDomainsFile, ": \"", domain, "\": ", s.message()));
    }
  }
  if (absl::Status s = ValidateForwardProxy(config.upstream_nameservers, file_check); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(kUpstreamNameserversFile, ": ", s.message()));
  }
  return config;
}

absl::StatusOr<KubeDnsConfig> ParseKubeDnsConfig(const std::map<std::string, std::string>& files,
                                                 const ResolvConfFileCheck& file_check) {
  absl::StatusOr<KubeDnsConfig> config = ParseKubeDnsConfigRaw(files, file_check);
  // Messages quote keys, which a JSON string may give a newline.
  if (!config.ok()) return OneLine(config.status());
  return config;
}

absl::StatusOr<KubeDnsConfig> ReadKubeDnsConfigDir(const std::string& dir) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(dir, ": ", std::strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("config path ", dir, " is not a directory"));
  }
  std::map<std::string, std::string> files;
  for (const char* name : {kStubDomainsFile, kUpstreamNameserversFile}) {
    const std::string path = absl::StrCat(dir, "/", name);
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      if (errno == ENOENT) continue;
      return absl::PermissionDeniedError(absl::StrCat(path, ": ", std::strerror(errno)));
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    std::string data = buf.str();
    // node-cache refuses the whole directory when a file is not UTF-8.
    if (!ValidUtf8(data)) {
      return absl::InvalidArgumentError(absl::StrCat("non-utf8 data in ", path));
    }
    files[name] = std::move(data);
  }
  // Relative paths are relative to the working directory, as for CoreDNS.
  auto readable_file = [](const std::string& path) {
    struct stat fst;
    return stat(path.c_str(), &fst) == 0 && S_ISREG(fst.st_mode) && access(path.c_str(), R_OK) == 0;
  };
  return ParseKubeDnsConfig(files, readable_file);
}

}  // namespace nodedns::nodecache
