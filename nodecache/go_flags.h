// Go's `flag` package command-line syntax, for commands that must accept the same arguments as a
// Go program (`nodedns node-cache` takes NodeLocal DNSCache's DaemonSet args unchanged).
//
// The rules are Go's (flag.FlagSet.parseOne), not getopt's: one or two dashes mean the same;
// "-name=value" always works, "-name value" only for non-bool flags; a bool given as "-name" is
// true, so "-name false" sets it true and then stops at the positional "false". Parsing stops at
// the first non-flag argument, at "-" alone, or after "--"; the rest are positional.
#ifndef NODEDNS_NODECACHE_GO_FLAGS_H_
#define NODEDNS_NODECACHE_GO_FLAGS_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"

namespace nodedns::nodecache {

// A flag's value; which alternative the default holds is the flag's kind (bool, string, int,
// duration). Durations are Go's time.Duration: signed nanoseconds.
using GoFlagValue = std::variant<bool, std::string, int64_t, std::chrono::nanoseconds>;

struct GoFlagSpec {
  std::string name;  // Without dashes.
  GoFlagValue default_value;
  std::string help;
};

struct GoFlagParse {
  // -h, -help or --help was given and no flag of that name is declared: the caller prints usage
  // and exits 0, as Go's flag.ExitOnError does. Nothing else in this struct is meaningful then.
  bool help_requested = false;
  // Every declared flag: its default, or the last value given.
  std::map<std::string, GoFlagValue, std::less<>> values;
  // Names of the flags given, in command-line order, repeated if given again (Go's flag.Visit
  // tells only whether; the order lets aliases sharing one variable resolve "last one wins").
  std::vector<std::string> set_order;
  // What follows the flags.
  std::vector<std::string> positional;

  bool IsSet(std::string_view name) const;
  // The value of a declared flag of that kind; a wrong name or kind is a programming error and
  // aborts.
  bool Bool(std::string_view name) const;
  const std::string& String(std::string_view name) const;
  int64_t Int(std::string_view name) const;
  std::chrono::nanoseconds Duration(std::string_view name) const;
};

// Parses `args` (without the program name) against `specs`. Errors are one line, Go's wording,
// naming the flag as the user wrote it: "flag provided but not defined: -foo", "flag needs an
// argument: -conf", "invalid value \"x\" for flag -dns.port: parse error", "bad flag syntax: ---x".
absl::StatusOr<GoFlagParse> ParseGoFlags(std::span<const GoFlagSpec> specs,
                                         std::span<const std::string> args);

// Go's flag.PrintDefaults layout: "  -name type\n    \thelp (default ...)\n" per flag, sorted by
// name; zero defaults are not shown.
std::string GoFlagUsage(std::span<const GoFlagSpec> specs);

// Go's strconv.ParseBool: 1 0 t f T F true false TRUE FALSE True False.
absl::StatusOr<bool> ParseGoBool(std::string_view text);
// Go's strconv.ParseInt(text, 0, 64): optional sign, then decimal, 0x/0X hex, 0o/0O or leading-0
// octal, 0b/0B binary; '_' only between digits (or after the base prefix).
absl::StatusOr<int64_t> ParseGoInt(std::string_view text);
// Go's time.ParseDuration: "0", or an optional sign and one or more decimal numbers (fraction
// allowed) each with a unit of ns, us, µs (U+00B5 or U+03BC), ms, s, m, h: "300ms", "-1.5h",
// "2h45m". A bare number other than 0 is an error, as is a result beyond int64 nanoseconds.
absl::StatusOr<std::chrono::nanoseconds> ParseGoDuration(std::string_view text);
// Go's time.Duration.String: "1h2m0.5s", "1.5ms", "60ns", "0s".
std::string FormatGoDuration(std::chrono::nanoseconds d);

}  // namespace nodedns::nodecache

#endif  // NODEDNS_NODECACHE_GO_FLAGS_H_
