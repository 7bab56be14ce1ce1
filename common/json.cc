// A strict JSON reader; see json.h.
#include "common/json.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace nodedns {
namespace {

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : text_(text) {}

  absl::StatusOr<JsonValue> ParseDocument() {
    SkipSpace();
    absl::StatusOr<JsonValue> v = ParseValue(1);
    if (!v.ok()) return v;
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text after the JSON value");
    return v;
  }

 private:
  // `what` is a std::string: Debian's absl::StrCat takes no std::string_view.
  absl::Status Error(const std::string& what) const {
    int line = 1, column = 1;
    for (size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return absl::InvalidArgumentError(absl::StrCat("line ", line, " column ", column, ": ", what));
  }

  absl::Status Unexpected() const {
    if (pos_ >= text_.size()) return Error("unexpected end of JSON input");
    unsigned char c = static_cast<unsigned char>(text_[pos_]);
    if (c < 0x20 || c >= 0x7F) return Error(absl::StrCat("unexpected byte 0x", absl::Hex(c)));
    return Error(absl::StrCat("unexpected character '", std::string(1, static_cast<char>(c)), "'"));
  }

  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  // Values are located in increasing order, so counting on from the last one keeps this linear.
  void Locate(JsonValue* v) {
    for (; located_ < pos_; ++located_) {
      if (text_[located_] == '\n') {
        ++line_;
        column_ = 1;
      } else {
        ++column_;
      }
    }
    v->line = line_;
    v->column = column_;
  }

  absl::StatusOr<JsonValue> ParseValue(int depth) {
    if (depth > kMaxJsonDepth) {
      return Error(absl::StrCat("nested more than ", kMaxJsonDepth, " deep"));
    }
    JsonValue v;
    Locate(&v);
    if (pos_ >= text_.size()) return Unexpected();
    char c = text_[pos_];
    if (c == '{') {
      v.kind = JsonValue::Kind::kObject;
      ++pos_;
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        return v;
      }
      while (true) {
        SkipSpace();
        if (pos_ >= text_.size() || text_[pos_] != '"') {
          return pos_ < text_.size() ? Error("expected a string as the object key") : Unexpected();
        }
        absl::StatusOr<std::string> key = ParseString();
        if (!key.ok()) return key.status();
        SkipSpace();
        if (pos_ >= text_.size() || text_[pos_] != ':') {
          return pos_ < text_.size() ? Error("expected ':' after the object key") : Unexpected();
        }
        ++pos_;
        SkipSpace();
        absl::StatusOr<JsonValue> member = ParseValue(depth + 1);
        if (!member.ok()) return member.status();
        v.members.push_back({*std::move(key), *std::move(member)});
        SkipSpace();
        if (pos_ < text_.size() && text_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < text_.size() && text_[pos_] == '}') {
          ++pos_;
          return v;
        }
        return pos_ < text_.size() ? Error("expected ',' or '}' in the object") : Unexpected();
      }
    }
    if (c == '[') {
      v.kind = JsonValue::Kind::kArray;
      ++pos_;
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        return v;
      }
      while (true) {
        SkipSpace();
        absl::StatusOr<JsonValue> item = ParseValue(depth + 1);
        if (!item.ok()) return item.status();
        v.items.push_back(*std::move(item));
        SkipSpace();
        if (pos_ < text_.size() && text_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < text_.size() && text_[pos_] == ']') {
          ++pos_;
          return v;
        }
        return pos_ < text_.size() ? Error("expected ',' or ']' in the array") : Unexpected();
      }
    }
    if (c == '"') {
      v.kind = JsonValue::Kind::kString;
      absl::StatusOr<std::string> s = ParseString();
      if (!s.ok()) return s.status();
      v.text = *std::move(s);
      return v;
    }
    for (std::string_view word : {"true", "false", "null"}) {
      if (text_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        v.kind = word == "null" ? JsonValue::Kind::kNull : JsonValue::Kind::kBool;
        if (word != "null") v.text = std::string(word);
        return v;
      }
    }
    if (c == '-' || absl::ascii_isdigit(static_cast<unsigned char>(c))) return ParseNumber(v);
    return Unexpected();
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  absl::StatusOr<JsonValue> ParseNumber(JsonValue v) {
    const size_t start = pos_;
    auto digits = [&] {
      size_t from = pos_;
      while (pos_ < text_.size() && absl::ascii_isdigit(static_cast<unsigned char>(text_[pos_]))) {
        ++pos_;
      }
      return pos_ - from;
    };
    if (text_[pos_] == '-') ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '0') {
      ++pos_;
      if (pos_ < text_.size() && absl::ascii_isdigit(static_cast<unsigned char>(text_[pos_]))) {
        return Error("a number cannot have a leading zero");
      }
    } else if (digits() == 0) {
      return Unexpected();
    }
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) return Unexpected();
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (digits() == 0) return Unexpected();
    }
    v.kind = JsonValue::Kind::kNumber;
    v.text = std::string(text_.substr(start, pos_ - start));
    return v;
  }

  absl::StatusOr<uint32_t> ParseHex4() {
    if (text_.size() - pos_ < 4) {
      pos_ = text_.size();
      return Unexpected();
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[pos_];
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
        return Error("a \\u escape needs four hex digits");
      }
      v = v * 16 + static_cast<uint32_t>(absl::ascii_isdigit(static_cast<unsigned char>(c))
                                             ? c - '0'
                                             : (c | 0x20) - 'a' + 10);
      ++pos_;
    }
    return v;
  }

  // At the opening quote.
  absl::StatusOr<std::string> ParseString() {
    ++pos_;
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) return Error("unterminated string");
      unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) return Error(absl::StrCat("control byte 0x", absl::Hex(c), " in a string"));
      if (c != '\\') {
        out += static_cast<char>(c);
        ++pos_;
        continue;
      }
      ++pos_;
      if (pos_ >= text_.size()) return Error("unterminated string");
      char e = text_[pos_++];
      switch (e) {
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
          absl::StatusOr<uint32_t> cp = ParseHex4();
          if (!cp.ok()) return cp.status();
          uint32_t code = *cp;
          if (code >= 0xD800 && code < 0xDC00 && text_.substr(pos_, 2) == "\\u") {
            size_t saved = pos_;
            pos_ += 2;
            absl::StatusOr<uint32_t> low = ParseHex4();
            if (!low.ok()) return low.status();
            if (*low >= 0xDC00 && *low < 0xE000) {
              code = 0x10000 + ((code - 0xD800) << 10) + (*low - 0xDC00);
            } else {
              pos_ = saved;  // Not a pair: the second escape stands alone.
            }
          }
          // Go turns a lone surrogate into U+FFFD rather than failing.
          if (code >= 0xD800 && code < 0xE000) code = 0xFFFD;
          AppendUtf8(code, &out);
          break;
        }
        default:
          pos_ -= 2;  // At the backslash.
          return Error(absl::StrCat("invalid escape '\\", std::string(1, e), "' in a string"));
      }
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
  size_t located_ = 0;  // Locate's position, and its line and column.
  int line_ = 1;
  int column_ = 1;
};

}  // namespace

const JsonValue* JsonValue::Find(std::string_view key) const {
  if (kind != Kind::kObject) return nullptr;
  for (const Member& m : members) {
    if (m.key == key) return &m.value;
  }
  return nullptr;
}

absl::StatusOr<JsonValue> ParseJson(std::string_view text) {
  return JsonParser(text).ParseDocument();
}

}  // namespace nodedns
