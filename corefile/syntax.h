// Reading a CoreDNS Corefile's syntax: the Caddyfile grammar of github.com/coredns/caddy, so that
// `nodedns node-cache` can take a cluster's existing NodeLocal DNSCache configuration.
//
// What Caddy does, and so what this does:
//   - Tokens are separated by whitespace (Unicode's, as Go's unicode.IsSpace: a non-breaking space
//     pasted from a web page separates tokens too). A carriage return outside quotes is dropped.
//   - `#` starts a comment to the end of the line, even in the middle of a word ("a#b" is "a").
//   - A token that starts with `"` runs to the next unescaped `"`, across lines if need be. Only
//     `\"` is an escape; any other backslash is kept as written. Backticks are ordinary characters
//     (Caddy v2 quotes with them; CoreDNS's Caddy does not).
//   - `{` and `}` are structure only as whole tokens ("{}" is an argument).
//   - `{$VAR}` and `{%VAR%}` in keys, directive names and arguments are replaced by the variable's
//     value; an unset variable is empty.
//   - A server block is one or more keys, separated by spaces or ", " (a trailing comma continues
//     the keys on the next line), then `{`, which may stand on the next line.
//   - A directive is a line: its name, then its arguments up to the end of that line. A `{` ending
//     the line opens a block of sub-directives, each again one line, closed by a `}` line.
//
// Where Caddy accepts something that its plugins then read in surprising ways, this is stricter,
// and the error says where: a `}` sharing a line with a directive or following `}` (except the
// empty block "{ }"), a `{` that does not end its line, a block without keys' braces, an
// unterminated quoted string (Caddy takes it to the end of the file), directive blocks nested
// more than kMaxBlockDepth deep (Caddy has no limit; no plugin reads more than one level).
// `import` and snippets ("(name) { ... }") are not supported: the file must say everything
// itself.
//
// Every error is one line, "FILENAME:LINE: message".
#ifndef NODEDNS_COREFILE_SYNTAX_H_
#define NODEDNS_COREFILE_SYNTAX_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace nodedns::corefile {

// How deep directive blocks may nest inside a server block: `forward . X {` is 1.
inline constexpr int kMaxBlockDepth = 16;

// The value of an environment variable, or nullopt when it is unset. Tests pass a map; the
// command passes ProcessEnvironment.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

// getenv(3).
std::optional<std::string> ProcessEnvironment(std::string_view name);

// One line of a server block or of a directive's block, after environment substitution.
struct Directive {
  std::string name;
  std::vector<std::string> args;
  bool has_block = false;        // A `{ ... }` followed the arguments, even an empty one.
  std::vector<Directive> block;  // Its sub-directives, in order.
  int line = 0;                  // Line of the name.
};

// One key of a server block, normalised as CoreDNS does: transport "dns://" (the only one nodedns
// serves) dropped, zone lowercased and fully qualified ("." for the root), port filled in.
struct ServerKey {
  std::string zone;  // "cluster.local.", "in-addr.arpa.", "."
  int port = 0;
  int line = 0;
  std::string text;  // As written, after environment substitution, for messages.
};

struct ServerBlock {
  std::vector<ServerKey> keys;
  std::vector<Directive> directives;
  int line = 0;  // Line of the first key.
};

struct Corefile {
  std::vector<ServerBlock> blocks;
};

// Parses Corefile text. `filename` only prefixes error messages; keys without a port get
// `default_port` (CoreDNS: 53, or its -dns.port flag).
absl::StatusOr<Corefile> ParseCorefile(std::string_view text, std::string_view filename,
                                       const EnvLookup& env, int default_port = 53);

// One server block key ("dns://.:53", "Cluster.Local", "in-addr.arpa:53"), normalised; the error
// message has no FILE:LINE prefix. Exposed because forward's FROM and cache's zones are zones too.
absl::StatusOr<ServerKey> ParseServerKey(std::string_view text, int default_port);

// A zone argument ("cluster.local", "."), lowercased and fully qualified; CIDR reverse notation
// and ports are refused. The error message has no FILE:LINE prefix.
absl::StatusOr<std::string> NormalizeZone(std::string_view text);

}  // namespace nodedns::corefile

#endif  // NODEDNS_COREFILE_SYNTAX_H_
