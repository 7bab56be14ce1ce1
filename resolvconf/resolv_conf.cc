// Parses resolv.conf the way glibc's resolv/res_init.c (res_vinit_1, res_setoptions) does, and
// records musl's src/network/resolvconf.c view where it differs. See resolv_conf.h.
#include "resolvconf/resolv_conf.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/string_view_compat.h"

namespace nodedns::resolvconf {
namespace internal {
namespace {

// glibc splits resolv.conf words on blanks only (space and tab), never on other whitespace.
std::vector<std::string> SplitBlanks(std::string_view s) {
  std::vector<std::string> out;
  for (absl::string_view piece : absl::StrSplit(Av(s), absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
    out.emplace_back(piece);
  }
  return out;
}

// glibc accepts a nameserver when inet_aton() parses it as IPv4 or inet_pton() as IPv6 (with an
// optional %scope suffix, which it strips before parsing).
bool IsValidNameserver(const std::string& token) {
  in_addr a4;
  if (inet_aton(token.c_str(), &a4) != 0) return true;
  std::string v6 = token.substr(0, token.find('%'));
  in6_addr a6;
  return !v6.empty() && inet_pton(AF_INET6, v6.c_str(), &a6) == 1;
}

// Parses the value of ndots:/timeout:/attempts:. glibc uses atoi(), so "ndots:x" silently means
// ndots:0; we accept only a plain non-negative decimal and report anything else.
bool ParseOptionValue(std::string_view text, int* value) {
  if (text.empty() || text.size() > 9) return false;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return absl::SimpleAtoi(Av(text), value);
}

// musl's options parsing: strstr() for "<key>:" anywhere in the line, a digit right after it,
// then strtoul() and a clamp. Returns true and sets *value when musl would take a value.
bool MuslOptionValue(std::string_view line, std::string_view key, int max, int* value) {
  size_t pos = line.find(key);
  if (pos == std::string_view::npos) return false;
  size_t start = pos + key.size();
  size_t end = start;
  while (end < line.size() && absl::ascii_isdigit(static_cast<unsigned char>(line[end]))) ++end;
  if (end == start) return false;
  uint64_t v = 0;
  std::string_view digits = line.substr(start, std::min<size_t>(end - start, 18));
  if (!absl::SimpleAtoi(Av(digits), &v)) return false;
  *value = v > static_cast<uint64_t>(max) ? max : static_cast<int>(v);
  return true;
}

struct BoolOption {
  std::string_view name;
  bool ResolvConf::*field;
};

// The flag options glibc's res_setoptions understands (glibc 2.36+: trust-ad since 2.31, no-aaaa
// since 2.36). musl ignores all of them.
constexpr BoolOption kBoolOptions[] = {
    {"rotate", &ResolvConf::rotate},
    {"single-request-reopen", &ResolvConf::single_request_reopen},
    {"single-request", &ResolvConf::single_request},
    {"edns0", &ResolvConf::edns0},
    {"use-vc", &ResolvConf::use_vc},
    {"no-aaaa", &ResolvConf::no_aaaa},
    {"trust-ad", &ResolvConf::trust_ad},
    {"no-tld-query", &ResolvConf::no_tld_query},
    {"no_tld_query", &ResolvConf::no_tld_query},
    {"no-reload", &ResolvConf::no_reload},
    {"inet6", &ResolvConf::inet6},
};

class Parser {
 public:
  ParsedResolvConf Run(std::string_view text) {
    int line_no = 0;
    bool reported_crlf = false;
    for (absl::string_view raw : absl::StrSplit(Av(text), '\n')) {
      ++line_no;
      std::string_view line = Sv(raw);
      if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
        if (!reported_crlf) {
          reported_crlf = true;
          Add("crlf-line-endings", Severity::kWarning, line_no,
              "file has CRLF line endings; glibc keeps the '\\r' as part of the last word of "
              "each line (e.g. the last search domain becomes 'cluster.local\\r')",
              "convert the file to LF line endings (dos2unix)");
        }
      }
      ParseLine(line_no, line);
    }
    // A final newline produces one empty trailing piece; it is harmless either way.
    return std::move(result_);
  }

 private:
  void Add(std::string id, Severity severity, int line, std::string message, std::string fix) {
    result_.findings.push_back(
        Finding{std::move(id), severity, line, std::move(message), std::move(fix)});
  }

  void ParseLine(int line_no, std::string_view line) {
    if (line.empty()) return;
    // glibc: only a ';' or '#' in the first column starts a comment.
    if (line[0] == ';' || line[0] == '#') return;
    if (absl::StripLeadingAsciiWhitespace(Av(line)).empty()) return;
    if (line[0] == ' ' || line[0] == '\t') {
      Add("malformed-line", Severity::kWarning, line_no,
          absl::StrFormat("line starts with whitespace; glibc and musl match keywords only in the "
                          "first column and ignore this line: '%s'",
                          absl::StripAsciiWhitespace(Av(line))),
          "remove the leading whitespace");
      return;
    }
    bool musl_fits = line.size() <= kMuslMaxLineLength;
    size_t kw_end = line.find_first_of(" \t");
    std::string_view keyword = line.substr(0, kw_end);
    std::string_view rest = kw_end == std::string_view::npos ? "" : line.substr(kw_end + 1);
    std::vector<std::string> words = SplitBlanks(rest);

    if (keyword != "nameserver" && keyword != "search" && keyword != "domain" &&
        keyword != "options" && keyword != "sortlist") {
      Add("unknown-keyword", Severity::kWarning, line_no,
          absl::StrFormat("unknown keyword '%s'; glibc and musl ignore this line", keyword),
          "remove the line or fix the keyword (nameserver, search, domain, options, sortlist)");
      return;
    }
    if (!musl_fits) {
      Add("line-too-long-musl", Severity::kWarning, line_no,
          absl::StrFormat("line is %d characters long; musl ignores lines of %d characters or more "
                          "entirely, so musl-based images (e.g. Alpine) do not see this '%s' line",
                          line.size(), kMuslMaxLineLength + 1, keyword),
          "shorten the line below 255 characters (fewer or shorter search domains)");
    }
    if (words.empty()) {
      Add("malformed-line", Severity::kWarning, line_no,
          absl::StrFormat("'%s' without a value; glibc ignores the line", keyword),
          absl::StrFormat("give '%s' a value or remove the line", keyword));
      // musl takes an empty search/domain line as an empty search list.
      if ((keyword == "search" || keyword == "domain") && musl_fits) {
        result_.conf.musl_search.clear();
      }
      return;
    }
    if (keyword == "nameserver") {
      ParseNameserver(line_no, words);
    } else if (keyword == "search" || keyword == "domain") {
      ParseSearch(line_no, keyword, words, musl_fits);
    } else if (keyword == "options") {
      ParseOptions(line_no, words);
      if (musl_fits) ParseMuslOptions(line);
    }
  }

  void ParseNameserver(int line_no, const std::vector<std::string>& words) {
    const std::string& addr = words[0];
    if (!IsValidNameserver(addr)) {
      Add("malformed-line", Severity::kError, line_no,
          absl::StrFormat("nameserver '%s' is not an IPv4 or IPv6 address; glibc and musl ignore "
                          "it",
                          addr),
          "use a numeric IP address (host names are not allowed here)");
      return;
    }
    if (words.size() > 1) {
      Add("malformed-line", Severity::kInfo, line_no,
          absl::StrFormat("extra text after nameserver %s is ignored: '%s'", addr,
                          absl::StrJoin(words.begin() + 1, words.end(), " ")),
          "put one address per nameserver line; put comments on their own line");
    }
    result_.conf.nameservers.push_back(addr);
    result_.conf.nameserver_lines.push_back(line_no);
  }

  void ParseSearch(int line_no, std::string_view keyword, const std::vector<std::string>& words,
                   bool musl_fits) {
    ResolvConf& conf = result_.conf;
    if (conf.search_line != 0) {
      Add("search-overridden", Severity::kWarning, line_no,
          absl::StrFormat("'%s' on line %d replaces the search list from line %d (the last "
                          "search or domain line wins)",
                          keyword, line_no, conf.search_line),
          "keep a single search line listing every domain");
    }
    conf.search_line = line_no;
    if (keyword == "domain") {
      // glibc keeps only the first word of a domain line; musl splits it like a search line.
      conf.search = {words[0]};
      if (words.size() > 1) {
        Add("malformed-line", Severity::kWarning, line_no,
            absl::StrFormat("'domain' takes one name; glibc ignores '%s' but musl treats it as "
                            "more search domains",
                            absl::StrJoin(words.begin() + 1, words.end(), " ")),
            "use 'search' to list several domains");
      }
    } else {
      conf.search = words;
    }
    for (const std::string& w : words) {
      if (w[0] == '#' || w[0] == ';') {
        Add("inline-comment", Severity::kWarning, line_no,
            absl::StrFormat("'%s' is not a comment here: glibc and musl treat only '#' or ';' in "
                            "the first column as a comment, so it becomes a search domain",
                            w),
            "move the comment to its own line");
        break;
      }
    }
    if (musl_fits) conf.musl_search = words;
  }

  void ParseOptions(int line_no, const std::vector<std::string>& words) {
    ResolvConf& conf = result_.conf;
    for (const std::string& w : words) {
      if (w[0] == '#' || w[0] == ';') {
        Add("inline-comment", Severity::kInfo, line_no,
            absl::StrFormat("'%s' is not a comment: glibc reads the rest of the line as options",
                            w),
            "move the comment to its own line");
        // Keep going: glibc treats the comment words as (unknown) options.
      }
      if (ParseNumericOption(line_no, w, "ndots:", kGlibcMaxNdots, &conf.ndots, &conf.ndots_line) ||
          ParseNumericOption(line_no, w, "timeout:", kGlibcMaxTimeout, &conf.timeout,
                             &conf.timeout_line) ||
          ParseNumericOption(line_no, w, "attempts:", kGlibcMaxAttempts, &conf.attempts,
                             &conf.attempts_line)) {
        continue;
      }
      bool known = false;
      for (const BoolOption& opt : kBoolOptions) {
        if (w == opt.name) {
          conf.*(opt.field) = true;
          if (opt.name == "rotate") conf.rotate_line = line_no;
          known = true;
          break;
        }
      }
      if (known) continue;
      conf.unknown_options.push_back(w);
      Add("unknown-option", Severity::kInfo, line_no,
          absl::StrFormat("unknown option '%s'; glibc and musl ignore it", w),
          "remove it, or check its spelling against resolv.conf(5)");
    }
  }

  // Handles "<key>N" (key includes the colon). Returns false if `word` is not this option.
  bool ParseNumericOption(int line_no, const std::string& word, std::string_view key, int max,
                          int* field, int* field_line) {
    if (!absl::StartsWith(word, Av(key))) return false;
    std::string_view value_text = std::string_view(word).substr(key.size());
    int value = 0;
    if (!ParseOptionValue(value_text, &value)) {
      Add("malformed-option", Severity::kWarning, line_no,
          absl::StrFormat("'%s' does not have a non-negative integer value; glibc reads it with "
                          "atoi() (so a non-number means 0) and musl ignores it",
                          word),
          absl::StrFormat("write it as %sN with a number N", key));
      if (absl::StartsWith(Av(value_text), "-")) return true;  // glibc result is not meaningful.
      // atoi() semantics: leading digits, else 0.
      value = 0;
      size_t i = 0;
      while (i < value_text.size() && i < 9 &&
             absl::ascii_isdigit(static_cast<unsigned char>(value_text[i]))) {
        value = value * 10 + (value_text[i] - '0');
        ++i;
      }
    }
    if (value > max) {
      Add("option-clamped", Severity::kInfo, line_no,
          absl::StrFormat("%s%d is above glibc's maximum; glibc uses %s%d", key, value, key, max),
          absl::StrFormat("write %s%d (or less) to say what actually happens", key, max));
      value = max;
    }
    *field = value;
    *field_line = line_no;
    return true;
  }

  void ParseMuslOptions(std::string_view line) {
    ResolvConf& conf = result_.conf;
    MuslOptionValue(line, "ndots:", kMuslMaxNdots, &conf.musl_ndots);
    MuslOptionValue(line, "attempts:", kMuslMaxAttempts, &conf.musl_attempts);
    MuslOptionValue(line, "timeout:", kMuslMaxTimeout, &conf.musl_timeout);
  }

  ParsedResolvConf result_;
};

}  // namespace
}  // namespace internal

ParsedResolvConf ParseResolvConf(std::string_view text) { return internal::Parser().Run(text); }

std::vector<std::string> EffectiveOptions(const ResolvConf& conf) {
  std::vector<std::string> out;
  out.push_back(absl::StrCat("ndots:", conf.ndots));
  out.push_back(absl::StrCat("timeout:", conf.timeout));
  out.push_back(absl::StrCat("attempts:", conf.attempts));
  for (const internal::BoolOption& opt : internal::kBoolOptions) {
    if (opt.name == "no_tld_query") continue;  // Same flag as no-tld-query.
    if (conf.*(opt.field)) out.emplace_back(opt.name);
  }
  return out;
}

std::string CanonicalForm(const ResolvConf& conf) {
  return absl::StrCat("nameservers=", absl::StrJoin(conf.nameservers, ","),
                      ";search=", absl::StrJoin(conf.search, ","),
                      ";options=", absl::StrJoin(EffectiveOptions(conf), ","),
                      ";musl_search=", absl::StrJoin(conf.musl_search, ","),
                      ";musl=ndots:", conf.musl_ndots, ",timeout:", conf.musl_timeout,
                      ",attempts:", conf.musl_attempts);
}

std::string ConfigHash(const ResolvConf& conf) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64 offset basis.
  for (unsigned char c : CanonicalForm(conf)) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return absl::StrFormat("%016x", h);
}

}  // namespace nodedns::resolvconf
