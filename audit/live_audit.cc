// GET /audit read back into FileReports. See live_audit.h.
#include "audit/live_audit.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "audit/string_view_compat.h"
#include "resolvconf/resolv_conf.h"

namespace nodedns::audit {

using resolvconf::ParseResolvConf;
using resolvconf::ResolvConf;

namespace internal {
namespace {

constexpr int kMaxDepth = 32;

class JsonParser {
 public:
  explicit JsonParser(std::string_view s) : s_(s) {}

  absl::StatusOr<JsonValue> Document() {
    JsonValue v;
    if (!Value(v, 0)) return Error();
    Space();
    if (pos_ != s_.size()) return Error();
    return v;
  }

 private:
  absl::Status Error() const {
    return absl::InvalidArgumentError(absl::StrCat("not valid JSON (near byte ", pos_, ")"));
  }
  void Space() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Eat(char c) {
    Space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool Literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool Digits() {
    const size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    return pos_ > start;
  }
  bool Hex4(uint32_t& out) {
    out = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      if (pos_ >= s_.size()) return false;
      const char c = s_[pos_];
      uint32_t d;
      if (c >= '0' && c <= '9') {
        d = static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        d = static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
      out = out << 4 | d;
    }
    return true;
  }
  static void AppendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | cp >> 6);
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | cp >> 12);
      out += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | cp >> 18);
      out += static_cast<char>(0x80 | (cp >> 12 & 0x3f));
      out += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  bool String(std::string& out) {
    Space();
    if (pos_ >= s_.size() || s_[pos_] != '"') return false;
    ++pos_;
    while (pos_ < s_.size()) {
      const char c = s_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) return false;
      switch (const char e = s_[pos_++]) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(cp) || (cp >= 0xdc00 && cp < 0xe000)) return false;
          if (cp >= 0xd800 && cp < 0xdc00) {  // a high surrogate: its low half must follow
            uint32_t low;
            if (!Literal("\\u") || !Hex4(low) || low < 0xdc00 || low >= 0xe000) return false;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }
  bool Number(JsonValue& v) {
    const size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
    } else if (!Digits()) {
      return false;
    }
    if (pos_ < s_.size() && s_[pos_] == '.' && (++pos_, !Digits())) return false;
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!Digits()) return false;
    }
    v.kind = JsonValue::Kind::kNumber;
    v.text = std::string(s_.substr(start, pos_ - start));
    return true;
  }
  bool Value(JsonValue& v, int depth) {
    if (depth > kMaxDepth) return false;
    Space();
    if (pos_ >= s_.size()) return false;
    switch (s_[pos_]) {
      case '{':
        ++pos_;
        v.kind = JsonValue::Kind::kObject;
        if (Eat('}')) return true;
        do {
          std::string key;
          JsonValue member;
          if (!String(key) || !Eat(':') || !Value(member, depth + 1)) return false;
          v.members.push_back({std::move(key), std::move(member)});
        } while (Eat(','));
        return Eat('}');
      case '[':
        ++pos_;
        v.kind = JsonValue::Kind::kArray;
        if (Eat(']')) return true;
        do {
          if (!Value(v.items.emplace_back(), depth + 1)) return false;
        } while (Eat(','));
        return Eat(']');
      case '"':
        v.kind = JsonValue::Kind::kString;
        return String(v.text);
      default:
        break;
    }
    for (const char* word : {"true", "false"}) {
      if (Literal(word)) {
        v.kind = JsonValue::Kind::kBool;
        v.text = word;
        return true;
      }
    }
    if (Literal("null")) return true;  // kNull is the default
    return Number(v);
  }

  std::string_view s_;
  size_t pos_ = 0;
};

// A non-negative integer member, or nullopt.
std::optional<uint64_t> Count(const JsonValue& object, std::string_view key) {
  const JsonValue* v = object.Find(key);
  uint64_t n = 0;
  if (v == nullptr || v->kind != JsonValue::Kind::kNumber || v->text.empty() ||
      v->text.find_first_not_of("0123456789") != std::string::npos ||
      !absl::SimpleAtoi(v->text, &n)) {
    return std::nullopt;
  }
  return n;
}

const std::string* StringMember(const JsonValue& object, std::string_view key) {
  const JsonValue* v = object.Find(key);
  return v != nullptr && v->kind == JsonValue::Kind::kString ? &v->text : nullptr;
}

Finding WasteFinding(const LiveWaste& w) {
  std::vector<std::string> names;
  for (const auto& [name, count] : w.names) names.push_back(absl::StrCat(name, " ", count));
  std::string message =
      absl::StrCat(w.wasted, " replies to this client were NXDOMAIN for names below ",
                   w.cluster_domain, ": the steps of search-list walks that found nothing");
  if (w.error > 0) {
    absl::StrAppend(&message, " (top-K estimate: at most ", w.error,
                    " of them may belong to clients no longer listed)");
  }
  if (!names.empty())
    absl::StrAppend(&message, "; by name looked up: ", absl::StrJoin(names, ", "));
  return Finding{
      .id = kSearchPathWasteId,
      .severity = Severity::kWarning,
      .line = 0,
      .message = std::move(message),
      .fix =
          "fully qualify these names with a trailing dot, or lower ndots (pod spec: "
          "dnsConfig: {options: [{name: ndots, value: \"2\"}]}); `nodedns audit "
          "--resolv-conf` on the pod's resolv.conf shows its walk",
  };
}

}  // namespace

const JsonValue* JsonValue::Find(std::string_view key) const {
  if (kind != Kind::kObject) return nullptr;
  for (const Member& m : members) {
    if (m.key == key) return &m.value;
  }
  return nullptr;
}

absl::StatusOr<JsonValue> ParseJson(std::string_view text) { return JsonParser(text).Document(); }

}  // namespace internal

absl::StatusOr<LiveAudit> ParseLiveAudit(std::string_view json, const std::string& server) {
  using internal::Count;
  using internal::JsonValue;
  using internal::StringMember;
  absl::StatusOr<JsonValue> doc = internal::ParseJson(json);
  if (!doc.ok()) return doc.status();
  if (doc->kind != JsonValue::Kind::kObject) {
    return absl::InvalidArgumentError("the /audit answer is not a JSON object");
  }
  const std::optional<uint64_t> version = Count(*doc, "version");
  if (version != uint64_t{kLiveAuditVersion}) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported /audit version (this nodedns reads version ", kLiveAuditVersion, ")"));
  }
  const std::string* zone = StringMember(*doc, "cluster_domain");
  const JsonValue* clients = doc->Find("clients");
  if (zone == nullptr || clients == nullptr || clients->kind != JsonValue::Kind::kArray) {
    return absl::InvalidArgumentError("the /audit answer lacks cluster_domain or clients");
  }
  LiveAudit out;
  out.cluster_domain = *zone;
  const ResolvConf empty = ParseResolvConf("").conf;
  for (const JsonValue& c : clients->items) {
    const std::string* addr = StringMember(c, "client");
    const std::optional<uint64_t> wasted = Count(c, "wasted");
    const std::optional<uint64_t> error = Count(c, "error");
    const JsonValue* names = c.Find("names");
    if (addr == nullptr || !wasted || !error || names == nullptr ||
        names->kind != JsonValue::Kind::kArray) {
      return absl::InvalidArgumentError(
          "a client in the /audit answer lacks client, wasted, error or names");
    }
    LiveWaste w{
        .server = server, .cluster_domain = *zone, .wasted = *wasted, .error = *error, .names = {}};
    for (const JsonValue& n : names->items) {
      const std::string* name = StringMember(n, "name");
      const std::optional<uint64_t> count = Count(n, "wasted");
      if (name == nullptr || !count) {
        return absl::InvalidArgumentError("a name in the /audit answer lacks name or wasted");
      }
      w.names.emplace_back(*name, *count);
    }
    FileReport r;
    r.path = *addr;
    r.conf = empty;
    r.outcome_source = "live " + server;
    if (w.wasted > 0) r.findings.push_back(internal::WasteFinding(w));
    r.live = std::move(w);
    out.reports.push_back(std::move(r));
  }
  return out;
}

}  // namespace nodedns::audit
