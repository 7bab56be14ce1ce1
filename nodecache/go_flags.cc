// Go's flag syntax; see go_flags.h. Error texts follow Go's flag package so that messages users
// search for still match, but name the flag with the dashes the user typed.
#include "nodecache/go_flags.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/one_line.h"
#include "common/string_view_compat.h"

namespace nodedns::nodecache {

namespace {

constexpr uint64_t kTwoTo63 = uint64_t{1} << 63;

const GoFlagSpec* FindSpec(std::span<const GoFlagSpec> specs, std::string_view name) {
  for (const GoFlagSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

// Go's %q for the ASCII text flag defaults are made of; other bytes pass through, which is what a
// terminal shows for UTF-8 anyway.
std::string GoQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

bool IsDigitInBase(char c, int base) {
  int v;
  if (c >= '0' && c <= '9') {
    v = c - '0';
  } else if (c >= 'a' && c <= 'z') {
    v = c - 'a' + 10;
  } else if (c >= 'A' && c <= 'Z') {
    v = c - 'A' + 10;
  } else {
    return false;
  }
  return v < base;
}

int DigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10;
  return c - 'A' + 10;
}

absl::Status SetValue(GoFlagValue& value, std::string_view text) {
  if (std::holds_alternative<bool>(value)) {
    absl::StatusOr<bool> b = ParseGoBool(text);
    if (!b.ok()) return b.status();
    value = *b;
  } else if (std::holds_alternative<std::string>(value)) {
    value = std::string(text);
  } else if (std::holds_alternative<int64_t>(value)) {
    absl::StatusOr<int64_t> i = ParseGoInt(text);
    if (!i.ok()) return i.status();
    value = *i;
  } else {
    absl::StatusOr<std::chrono::nanoseconds> d = ParseGoDuration(text);
    if (!d.ok()) return d.status();
    value = *d;
  }
  return absl::OkStatus();
}

template <typename T>
const T& Get(const GoFlagParse& p, std::string_view name) {
  auto it = p.values.find(name);
  if (it == p.values.end() || !std::holds_alternative<T>(it->second)) std::abort();
  return std::get<T>(it->second);
}

}  // namespace

bool GoFlagParse::IsSet(std::string_view name) const {
  return std::find(set_order.begin(), set_order.end(), name) != set_order.end();
}
bool GoFlagParse::Bool(std::string_view name) const { return Get<bool>(*this, name); }
const std::string& GoFlagParse::String(std::string_view name) const {
  return Get<std::string>(*this, name);
}
int64_t GoFlagParse::Int(std::string_view name) const { return Get<int64_t>(*this, name); }
std::chrono::nanoseconds GoFlagParse::Duration(std::string_view name) const {
  return Get<std::chrono::nanoseconds>(*this, name);
}

// Without the one-line escaping; see below.
static absl::StatusOr<GoFlagParse> ParseGoFlagsRaw(std::span<const GoFlagSpec> specs,
                                                   std::span<const std::string> args) {
  GoFlagParse out;
  for (const GoFlagSpec& spec : specs) out.values[spec.name] = spec.default_value;
  size_t i = 0;
  while (i < args.size()) {
    std::string_view arg = args[i];
    // "" and "-" are positional: Go needs at least two characters starting with '-'.
    if (arg.size() < 2 || arg[0] != '-') break;
    size_t dashes = 1;
    if (arg[1] == '-') {
      dashes = 2;
      if (arg.size() == 2) {  // "--": consumed, and everything after is positional.
        ++i;
        break;
      }
    }
    std::string_view name = arg.substr(dashes);
    if (name.empty() || name[0] == '-' || name[0] == '=') {
      return absl::InvalidArgumentError(absl::StrCat("bad flag syntax: ", Av(arg)));
    }
    ++i;
    bool has_value = false;
    std::string_view value;
    // From 1: a name cannot start with '=' (rejected above).
    if (size_t eq = name.find('=', 1); eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const std::string written = absl::StrCat(Av(arg.substr(0, dashes)), Av(name));
    const GoFlagSpec* spec = FindSpec(specs, name);
    if (spec == nullptr) {
      // Go asks for usage on these even with a value ("-help=false").
      if (name == "help" || name == "h") {
        GoFlagParse help;
        help.help_requested = true;
        return help;
      }
      return absl::InvalidArgumentError(absl::StrCat("flag provided but not defined: ", written));
    }
    GoFlagValue& slot = out.values[spec->name];
    if (std::holds_alternative<bool>(slot)) {
      // A bool never takes the next argument: "-b false" is "-b" then the positional "false".
      if (absl::Status s = SetValue(slot, has_value ? value : "true"); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("invalid boolean value \"", Av(value),
                                                       "\" for ", written, ": ", s.message()));
      }
    } else {
      // Whatever comes next is the value, even if it starts with '-' ("-conf -x" reads "-x").
      if (!has_value && i < args.size()) {
        value = args[i++];
        has_value = true;
      }
      if (!has_value) {
        return absl::InvalidArgumentError(absl::StrCat("flag needs an argument: ", written));
      }
      if (absl::Status s = SetValue(slot, value); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("invalid value \"", Av(value),
                                                       "\" for flag ", written, ": ", s.message()));
      }
    }
    out.set_order.push_back(spec->name);
  }
  out.positional.assign(args.begin() + i, args.end());
  return out;
}

absl::StatusOr<GoFlagParse> ParseGoFlags(std::span<const GoFlagSpec> specs,
                                         std::span<const std::string> args) {
  absl::StatusOr<GoFlagParse> parsed = ParseGoFlagsRaw(specs, args);
  // Messages quote arguments, which may hold a newline.
  if (!parsed.ok()) return OneLine(parsed.status());
  return parsed;
}

std::string GoFlagUsage(std::span<const GoFlagSpec> specs) {
  std::vector<const GoFlagSpec*> sorted;
  for (const GoFlagSpec& spec : specs) sorted.push_back(&spec);
  std::sort(sorted.begin(), sorted.end(),
            [](const GoFlagSpec* a, const GoFlagSpec* b) { return a->name < b->name; });
  std::string out;
  for (const GoFlagSpec* spec : sorted) {
    std::string line = absl::StrCat("  -", spec->name);
    std::string help = spec->help;
    // Go's UnquoteUsage: a `quoted` word in the help names the value, and loses its quotes.
    std::string type;
    if (size_t open = help.find('`'); open != std::string::npos) {
      if (size_t close = help.find('`', open + 1); close != std::string::npos) {
        type = help.substr(open + 1, close - open - 1);
        help = absl::StrCat(help.substr(0, open), type, help.substr(close + 1));
      }
    }
    if (type.empty()) {
      if (std::holds_alternative<std::string>(spec->default_value)) type = "string";
      if (std::holds_alternative<int64_t>(spec->default_value)) type = "int";
      if (std::holds_alternative<std::chrono::nanoseconds>(spec->default_value)) type = "duration";
    }
    if (!type.empty()) absl::StrAppend(&line, " ", type);
    absl::StrAppend(&line, line.size() <= 4 ? "\t" : "\n    \t",
                    absl::StrReplaceAll(help, {{"\n", "\n    \t"}}));
    std::string def;
    if (const bool* b = std::get_if<bool>(&spec->default_value); b && *b) def = "true";
    if (const std::string* s = std::get_if<std::string>(&spec->default_value); s && !s->empty()) {
      def = GoQuote(*s);
    }
    if (const int64_t* n = std::get_if<int64_t>(&spec->default_value); n && *n != 0) {
      def = absl::StrCat(*n);
    }
    if (const auto* d = std::get_if<std::chrono::nanoseconds>(&spec->default_value);
        d && d->count() != 0) {
      def = FormatGoDuration(*d);
    }
    if (!def.empty()) absl::StrAppend(&line, " (default ", def, ")");
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

absl::StatusOr<bool> ParseGoBool(std::string_view text) {
  if (text == "1" || text == "t" || text == "T" || text == "true" || text == "TRUE" ||
      text == "True") {
    return true;
  }
  if (text == "0" || text == "f" || text == "F" || text == "false" || text == "FALSE" ||
      text == "False") {
    return false;
  }
  return absl::InvalidArgumentError("parse error");
}

absl::StatusOr<int64_t> ParseGoInt(std::string_view text) {
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  int base = 10;
  bool prefixed = false;  // An '_' may follow a base prefix directly.
  if (s.size() >= 2 && s[0] == '0') {
    char p = s[1] | 0x20;
    if (p == 'x' || p == 'o' || p == 'b') {
      base = p == 'x' ? 16 : p == 'o' ? 8 : 2;
      s.remove_prefix(2);
      prefixed = true;
    } else {
      base = 8;  // Leading 0: octal, and the 0 is itself a digit.
    }
  }
  if (s.empty()) return absl::InvalidArgumentError("parse error");
  uint64_t v = 0;
  bool range_error = false;
  // Go's underscoreOK: an '_' must follow a digit or the base prefix, and be followed by a digit.
  bool after_digit_or_prefix = prefixed;
  bool last_was_underscore = false;
  bool any_digit = false;
  for (char c : s) {
    if (c == '_') {
      if (!after_digit_or_prefix) return absl::InvalidArgumentError("parse error");
      after_digit_or_prefix = false;
      last_was_underscore = true;
      continue;
    }
    if (!IsDigitInBase(c, base)) return absl::InvalidArgumentError("parse error");
    uint64_t d = static_cast<uint64_t>(DigitValue(c));
    if (v > (std::numeric_limits<uint64_t>::max() - d) / static_cast<uint64_t>(base)) {
      range_error = true;
    } else {
      v = v * static_cast<uint64_t>(base) + d;
    }
    after_digit_or_prefix = true;
    last_was_underscore = false;
    any_digit = true;
  }
  if (last_was_underscore || !any_digit) return absl::InvalidArgumentError("parse error");
  if (range_error || v > (negative ? kTwoTo63 : kTwoTo63 - 1)) {
    return absl::InvalidArgumentError("value out of range");
  }
  return negative ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
}

absl::StatusOr<std::chrono::nanoseconds> ParseGoDuration(std::string_view text) {
  const std::string quoted = GoQuote(text);
  const absl::Status invalid =
      absl::InvalidArgumentError(absl::StrCat("time: invalid duration ", quoted));
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::chrono::nanoseconds(0);
  if (s.empty()) return invalid;
  uint64_t total = 0;
  while (!s.empty()) {
    if (!(s[0] == '.' || (s[0] >= '0' && s[0] <= '9'))) return invalid;
    uint64_t whole = 0;
    size_t before = s.size();
    while (!s.empty() && s[0] >= '0' && s[0] <= '9') {
      if (whole > (kTwoTo63 - 1) / 10) return invalid;
      whole = whole * 10 + static_cast<uint64_t>(s[0] - '0');
      if (whole > kTwoTo63) return invalid;
      s.remove_prefix(1);
    }
    bool has_whole = s.size() != before;
    // The fraction's digits, kept as Go keeps them: once more would overflow, the rest are read
    // but ignored.
    uint64_t fraction = 0;
    double scale = 1;
    bool has_fraction = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      bool overflowed = false;
      while (!s.empty() && s[0] >= '0' && s[0] <= '9') {
        has_fraction = true;
        if (!overflowed) {
          if (fraction > (kTwoTo63 - 1) / 10) {
            overflowed = true;
          } else {
            uint64_t next = fraction * 10 + static_cast<uint64_t>(s[0] - '0');
            if (next > kTwoTo63) {
              overflowed = true;
            } else {
              fraction = next;
              scale *= 10;
            }
          }
        }
        s.remove_prefix(1);
      }
    }
    if (!has_whole && !has_fraction) return invalid;
    size_t unit_len = 0;
    while (unit_len < s.size() && s[unit_len] != '.' &&
           !(s[unit_len] >= '0' && s[unit_len] <= '9')) {
      ++unit_len;
    }
    if (unit_len == 0) {
      return absl::InvalidArgumentError(absl::StrCat("time: missing unit in duration ", quoted));
    }
    std::string_view unit_name = s.substr(0, unit_len);
    s.remove_prefix(unit_len);
    uint64_t unit;
    if (unit_name == "ns") {
      unit = 1;
    } else if (unit_name == "us" || unit_name == "\xc2\xb5s" || unit_name == "\xce\xbcs") {
      unit = 1000;
    } else if (unit_name == "ms") {
      unit = 1000 * 1000;
    } else if (unit_name == "s") {
      unit = 1000 * 1000 * 1000;
    } else if (unit_name == "m") {
      unit = uint64_t{60} * 1000 * 1000 * 1000;
    } else if (unit_name == "h") {
      unit = uint64_t{3600} * 1000 * 1000 * 1000;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("time: unknown unit ", GoQuote(unit_name), " in duration ", quoted));
    }
    if (whole > kTwoTo63 / unit) return invalid;
    whole *= unit;
    if (fraction > 0) {
      // Go computes this in float64 and truncates; so do we, so that "1.0000000001s" agrees.
      whole += static_cast<uint64_t>(static_cast<double>(fraction) *
                                     (static_cast<double>(unit) / scale));
      if (whole > kTwoTo63) return invalid;
    }
    total += whole;
    if (total > kTwoTo63) return invalid;
  }
  if (negative) return std::chrono::nanoseconds(static_cast<int64_t>(0 - total));
  if (total > kTwoTo63 - 1) return invalid;
  return std::chrono::nanoseconds(static_cast<int64_t>(total));
}

std::string FormatGoDuration(std::chrono::nanoseconds d) {
  const int64_t n = d.count();
  if (n == 0) return "0s";
  uint64_t u = n < 0 ? 0 - static_cast<uint64_t>(n) : static_cast<uint64_t>(n);
  // The integer part and up to `precision` fraction digits, trailing zeros dropped.
  auto with_fraction = [](uint64_t v, int precision) {
    uint64_t pow = 1;
    for (int i = 0; i < precision; ++i) pow *= 10;
    std::string frac = absl::StrCat(v % pow);
    frac.insert(0, static_cast<size_t>(precision) - frac.size(), '0');
    while (!frac.empty() && frac.back() == '0') frac.pop_back();
    return frac.empty() ? absl::StrCat(v / pow) : absl::StrCat(v / pow, ".", frac);
  };
  std::string out;
  if (u < 1000) {
    out = absl::StrCat(u, "ns");
  } else if (u < 1000 * 1000) {
    out = absl::StrCat(with_fraction(u, 3), "\xc2\xb5s");
  } else if (u < 1000 * 1000 * 1000) {
    out = absl::StrCat(with_fraction(u, 6), "ms");
  } else {
    const uint64_t second = 1000 * 1000 * 1000;
    std::string seconds = with_fraction(u % (60 * second), 9);
    uint64_t minutes = u / (60 * second);
    if (minutes == 0) {
      out = absl::StrCat(seconds, "s");
    } else if (minutes < 60) {
      out = absl::StrCat(minutes, "m", seconds, "s");
    } else {
      out = absl::StrCat(minutes / 60, "h", minutes % 60, "m", seconds, "s");
    }
  }
  return n < 0 ? absl::StrCat("-", out) : out;
}

}  // namespace nodedns::nodecache
