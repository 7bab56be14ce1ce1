// A strict JSON reader (RFC 8259) for the few JSON documents nodedns reads: node-cache's kube-dns
// ConfigMap files (nodecache/kubedns_config.h) and a running server's GET /audit answer
// (audit/live_audit.h). Small enough that no JSON library is a dependency; here, below both, so
// that the two read JSON the same way and neither depends on the other.
#ifndef NODEDNS_COMMON_JSON_H_
#define NODEDNS_COMMON_JSON_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace nodedns {

// A parsed JSON value: what it is, and where it starts, so that a caller can say what a value is
// when it has the wrong type, and where.
struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  // Not a std::pair: a pair of the still-incomplete JsonValue is ill-formed (clang rejects it).
  struct Member;
  Kind kind = Kind::kNull;
  std::string text;  // A string's value (UTF-8), a number's literal, "true" or "false".
  std::vector<JsonValue> items;
  std::vector<Member> members;  // In document order, duplicates kept.
  int line = 1;                 // Where the value starts, for messages.
  int column = 1;

  // The first member named `key` of an object; nullptr if absent or not an object. Callers that
  // must follow Go's encoding/json (the last duplicate wins) walk `members` instead.
  const JsonValue* Find(std::string_view key) const;
};

struct JsonValue::Member {
  std::string key;
  JsonValue value;
};

inline constexpr int kMaxJsonDepth = 32;

// Strict: exactly one value with optional whitespace around it; \uXXXX escapes (surrogate pairs
// combined, a lone surrogate becomes U+FFFD as in Go) to UTF-8; control characters in strings,
// trailing commas, comments and leading zeros are errors; nesting at most kMaxJsonDepth deep.
// Errors give "line L column C: ...".
absl::StatusOr<JsonValue> ParseJson(std::string_view text);

}  // namespace nodedns

#endif  // NODEDNS_COMMON_JSON_H_
