// The Caddyfile lexer and parser as github.com/coredns/caddy's caddyfile package behaves, and
// CoreDNS's normalisation of server block keys (core/dnsserver/register.go). See syntax.h.
#include "corefile/syntax.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/one_line.h"
#include "common/string_view_compat.h"

namespace nodedns::corefile {
namespace {

// Debian's Abseil is built with absl::string_view as its own class, not an alias of
// std::string_view, so the two do not convert implicitly.
struct Token {
  std::string text;
  int line = 0;      // Where the token starts.
  int end_line = 0;  // Where it ends: later than `line` for a quoted string with newlines.
};

absl::Status LineError(std::string_view filename, int line, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrFormat("%s:%d: %s", Av(filename), line, message));
}

// Length in bytes of the whitespace character at text[pos], or 0. Go's unicode.IsSpace, which
// Caddy's lexer uses: ASCII \t \n \v \f \r and space, and the Unicode White_Space characters,
// here decoded from UTF-8.
size_t SpaceLength(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) -> unsigned char {
    return pos + i < text.size() ? static_cast<unsigned char>(text[pos + i]) : 0;
  };
  const unsigned char c = byte(0);
  if (c == ' ' || (c >= '\t' && c <= '\r')) return 1;
  if (c == 0xC2 && (byte(1) == 0x85 || byte(1) == 0xA0)) return 2;  // NEL, NO-BREAK SPACE.
  if (c == 0xE1 && byte(1) == 0x9A && byte(2) == 0x80) return 3;    // OGHAM SPACE MARK.
  if (c == 0xE2 && byte(1) == 0x80) {
    const unsigned char c2 = byte(2);
    if ((c2 >= 0x80 && c2 <= 0x8A) || c2 == 0xA8 || c2 == 0xA9 || c2 == 0xAF) return 3;
  }
  if (c == 0xE2 && byte(1) == 0x81 && byte(2) == 0x9F) return 3;  // MEDIUM MATHEMATICAL SPACE.
  if (c == 0xE3 && byte(1) == 0x80 && byte(2) == 0x80) return 3;  // IDEOGRAPHIC SPACE.
  return 0;
}

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view text, std::string_view filename) {
  std::vector<Token> tokens;
  if (absl::StartsWith(Av(text), "\xEF\xBB\xBF")) text.remove_prefix(3);  // Byte order mark.
  int line = 1;
  size_t i = 0;
  bool comment = false;
  Token current;
  bool in_token = false;
  const auto finish = [&] {
    current.end_line = line;
    tokens.push_back(std::move(current));
    current = Token();
    in_token = false;
  };
  while (i < text.size()) {
    const char c = text[i];
    if (!in_token && !comment && c == '"') {
      // A quoted token ends at its closing quote, even with no whitespace after it.
      current.line = line;
      ++i;
      bool closed = false;
      while (i < text.size()) {
        const char q = text[i++];
        if (q == '\\' && i < text.size() && text[i] == '"') {
          current.text += '"';
          ++i;
          continue;
        }
        if (q == '"') {
          closed = true;
          break;
        }
        if (q == '\n') ++line;
        current.text += q;
      }
      if (!closed) return LineError(filename, current.line, "unterminated quoted string");
      current.end_line = line;
      tokens.push_back(std::move(current));
      current = Token();
      continue;
    }
    if (const size_t space = SpaceLength(text, i); space > 0) {
      i += space;
      if (c == '\r') continue;  // Caddy drops it without ending the word.
      if (c == '\n') {
        if (in_token) finish();
        ++line;
        comment = false;
        continue;
      }
      if (in_token) finish();
      continue;
    }
    ++i;
    if (c == '#') comment = true;
    if (comment) continue;
    if (!in_token) {
      in_token = true;
      current.line = line;
    }
    current.text += c;
  }
  if (in_token) finish();
  return tokens;
}

// Replaces every `start NAME end` in `s`, in one left-to-right pass. Caddy rescans the whole
// string after each replacement, so a value containing a reference is expanded again (and a
// variable referring to itself never terminates); here values are inserted as they are.
std::string ReplaceReferences(std::string s, std::string_view start, std::string_view end,
                              const EnvLookup& env) {
  size_t from = 0;
  while (true) {
    const size_t open = s.find(start, from);
    if (open == std::string::npos) break;
    const size_t close = s.find(end, open + start.size());
    if (close == std::string::npos) break;
    // Caddy stops substituting altogether at an empty name ("{$}").
    if (close == open + start.size()) break;
    const std::string name = s.substr(open + start.size(), close - open - start.size());
    const std::string value = env ? env(name).value_or("") : "";
    s.replace(open, close + end.size() - open, value);
    from = open + value.size();
  }
  return s;
}

std::string ReplaceEnv(std::string s, const EnvLookup& env) {
  s = ReplaceReferences(std::move(s), "{%", "%}", env);
  return ReplaceReferences(std::move(s), "{$", "}", env);
}

class Parser {
 public:
  Parser(std::vector<Token> tokens, std::string_view filename, const EnvLookup& env,
         int default_port)
      : tokens_(std::move(tokens)), filename_(filename), env_(env), default_port_(default_port) {}

  absl::StatusOr<Corefile> Parse() {
    Corefile corefile;
    while (pos_ < tokens_.size()) {
      ServerBlock block;
      if (absl::Status s = ParseServerBlock(&block); !s.ok()) return s;
      corefile.blocks.push_back(std::move(block));
    }
    return corefile;
  }

 private:
  bool SameLine(size_t a, size_t b) const { return tokens_[b].line == tokens_[a].end_line; }
  absl::Status Error(int line, absl::string_view message) const {
    return LineError(filename_, line, message);
  }

  absl::Status ParseServerBlock(ServerBlock* block) {
    block->line = tokens_[pos_].line;
    bool expecting_another = false;
    while (true) {
      if (pos_ >= tokens_.size()) {
        return Error(tokens_.back().end_line, expecting_another
                                                  ? "unexpected end of file after ','"
                                                  : "expected '{' after the server block keys");
      }
      const Token& t = tokens_[pos_];
      // Caddy substitutes keys before looking for the brace.
      std::string key = ReplaceEnv(t.text, env_);
      if (key == "import") return Error(t.line, "import is not supported by nodedns");
      if (key == "{") {
        if (expecting_another) return Error(t.line, "expected another key after ','");
        if (block->keys.empty()) return Error(t.line, "server block without keys");
        break;
      }
      if (!block->keys.empty() && !expecting_another && pos_ > 0 && !SameLine(pos_ - 1, pos_)) {
        return Error(t.line,
                     absl::StrCat("expected '{' after the server block keys, found '", t.text,
                                  "' (Corefiles without braces are not "
                                  "supported)"));
      }
      expecting_another = absl::EndsWith(key, ",");
      if (expecting_another) key.pop_back();
      ++pos_;
      if (key.empty()) continue;  // Caddy skips "" keys.
      if (key.size() >= 2 && key.front() == '(' && key.back() == ')') {
        return Error(t.line, absl::StrCat("snippet ", key, " is not supported by nodedns"));
      }
      absl::StatusOr<ServerKey> parsed = ParseServerKey(key, default_port_);
      if (!parsed.ok()) return Error(t.line, parsed.status().message());
      parsed->line = t.line;
      block->keys.push_back(*std::move(parsed));
    }
    const size_t open = pos_++;
    return ParseBody(open, /*server_level=*/true, &block->directives);
  }

  // Reads directives after the `{` at tokens_[open], through its closing `}`.
  absl::Status ParseBody(size_t open, bool server_level, std::vector<Directive>* out) {
    if (pos_ < tokens_.size() && SameLine(open, pos_) && tokens_[pos_].text != "}") {
      return Error(tokens_[pos_].line, absl::StrCat("unexpected '", tokens_[pos_].text,
                                                    "' after '{': '{' must end its line"));
    }
    while (true) {
      if (pos_ >= tokens_.size()) {
        return Error(tokens_[open].line, "'{' is never closed: missing '}'");
      }
      const Token& t = tokens_[pos_];
      if (t.text == "}") {
        ++pos_;
        // A server block's `}` may be followed by the next block's keys, as Caddy allows.
        if (!server_level && pos_ < tokens_.size() && SameLine(pos_ - 1, pos_)) {
          return Error(tokens_[pos_].line, absl::StrCat("unexpected '", tokens_[pos_].text,
                                                        "' after '}': '}' must end its line"));
        }
        return absl::OkStatus();
      }
      if (t.text == "{") {
        return Error(t.line, "unexpected '{': a block opens at the end of its directive's line");
      }
      Directive d;
      d.name = ReplaceEnv(t.text, env_);
      d.line = t.line;
      if (d.name == "import") return Error(t.line, "import is not supported by nodedns");
      size_t last = pos_++;
      while (pos_ < tokens_.size() && SameLine(last, pos_)) {
        const Token& arg = tokens_[pos_];
        if (arg.text == "}") {
          return Error(arg.line, "'}' must be on a line of its own");
        }
        if (arg.text == "{") {
          // Each level is a stack frame here and in ~Directive: a 1 MiB ConfigMap of "a {" lines
          // would overflow the stack.
          if (depth_ == kMaxBlockDepth) {
            return Error(arg.line,
                         absl::StrCat("blocks nested more than ", kMaxBlockDepth, " deep"));
          }
          const size_t block_open = pos_++;
          d.has_block = true;
          ++depth_;
          absl::Status s = ParseBody(block_open, /*server_level=*/false, &d.block);
          --depth_;
          if (!s.ok()) return s;
          break;
        }
        d.args.push_back(ReplaceEnv(arg.text, env_));
        last = pos_++;
      }
      out->push_back(std::move(d));
    }
  }

  std::vector<Token> tokens_;
  std::string_view filename_;
  const EnvLookup& env_;
  int default_port_;
  size_t pos_ = 0;
  int depth_ = 0;  // Directive blocks open around pos_.
};

bool IsAllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> ProcessEnvironment(std::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

absl::StatusOr<std::string> NormalizeZone(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("empty zone");
  if (text.find('/') != std::string_view::npos) {
    // CoreDNS expands "10.0.0.0/24" to the in-addr.arpa zones it covers.
    return absl::InvalidArgumentError(absl::StrCat(
        "reverse-zone CIDR '", Av(text), "' is not supported by nodedns: write the arpa zone"));
  }
  if (text.find(':') != std::string_view::npos || text.find(',') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("'", Av(text), "' is not a zone name"));
  }
  std::string zone = absl::AsciiStrToLower(Av(text));
  if (zone != "." && zone.back() != '.') zone += '.';
  // A zone in wire form is at most 255 bytes; CoreDNS checks the text's length the same way.
  if (zone.size() > 255) {
    return absl::InvalidArgumentError(absl::StrCat("zone is too long: '", Av(text), "'"));
  }
  if (zone != ".") {
    for (absl::string_view label :
         absl::StrSplit(absl::string_view(zone).substr(0, zone.size() - 1), '.')) {
      if (label.empty() || label.size() > 63) {
        return absl::InvalidArgumentError(
            absl::StrCat("zone is not a valid domain name: '", Av(text), "'"));
      }
    }
  }
  return zone;
}

absl::StatusOr<ServerKey> ParseServerKey(std::string_view text, int default_port) {
  ServerKey key;
  key.text = std::string(text);
  std::string_view rest = text;
  if (const size_t scheme = rest.find("://"); scheme != std::string_view::npos) {
    const std::string transport = absl::AsciiStrToLower(Av(rest.substr(0, scheme)));
    if (transport != "dns") {
      return absl::InvalidArgumentError(absl::StrCat("unsupported transport '", transport,
                                                     "://' in server block key '", Av(text),
                                                     "': nodedns serves plain DNS only"));
    }
    rest.remove_prefix(scheme + 3);
  }
  key.port = default_port;
  if (const size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    const std::string_view port = rest.substr(colon + 1);
    int value = 0;
    // CoreDNS keeps a non-numeric tail in the zone name; nobody means that.
    if (!IsAllDigits(port) || !absl::SimpleAtoi(Av(port), &value) || value < 1 || value > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid port in server block key '", Av(text), "'"));
    }
    key.port = value;
    rest = rest.substr(0, colon);
  }
  absl::StatusOr<std::string> zone = NormalizeZone(rest);
  if (!zone.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("server block key '", Av(text), "': ", zone.status().message()));
  }
  key.zone = *std::move(zone);
  return key;
}

absl::StatusOr<Corefile> ParseCorefile(std::string_view text, std::string_view filename,
                                       const EnvLookup& env, int default_port) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(text, filename);
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<Corefile> corefile =
      Parser(*std::move(tokens), filename, env, default_port).Parse();
  // Messages quote tokens, and a quoted token may span lines.
  if (!corefile.ok()) return OneLine(corefile.status());
  return corefile;
}

}  // namespace nodedns::corefile
