// Tests for the strict JSON reader (common/json.h) that audit/ (GET /audit) and nodecache/ (the
// kube-dns ConfigMap) read their documents with.
#include "common/json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace nodedns {
namespace {

using ::testing::HasSubstr;

TEST(JsonTest, ReadsNestedValues) {
  absl::StatusOr<JsonValue> v =
      ParseJson(" {\"a\": [\"x\", 1.5e3, -0, true, false, null, {}], \"b\": []}\n");
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->kind, JsonValue::Kind::kObject);
  ASSERT_EQ(v->members.size(), 2u);
  EXPECT_EQ(v->members[0].key, "a");
  const std::vector<JsonValue>& items = v->members[0].value.items;
  ASSERT_EQ(items.size(), 7u);
  EXPECT_EQ(items[0].kind, JsonValue::Kind::kString);
  EXPECT_EQ(items[1].kind, JsonValue::Kind::kNumber);
  EXPECT_EQ(items[1].text, "1.5e3");
  EXPECT_EQ(items[2].text, "-0");
  EXPECT_EQ(items[3].kind, JsonValue::Kind::kBool);
  EXPECT_EQ(items[5].kind, JsonValue::Kind::kNull);
  EXPECT_EQ(items[6].kind, JsonValue::Kind::kObject);
  EXPECT_EQ(v->members[0].value.line, 1);
  EXPECT_EQ(v->members[0].value.column, 8);
}

TEST(JsonTest, FindReadsAnObjectsMembers) {
  absl::StatusOr<JsonValue> v =
      ParseJson(" {\"a\":[1,-2.5e3,\"x\\u00e9\\ud83d\\ude00\\\\\\\"\",true,false,null],\"b\":{}} ");
  ASSERT_TRUE(v.ok()) << v.status();
  const JsonValue* a = v->Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->items.size(), 6u);
  EXPECT_EQ(a->items[1].text, "-2.5e3");
  EXPECT_EQ(a->items[2].text, "x\xc3\xa9\xf0\x9f\x98\x80\\\"");
  EXPECT_EQ(a->items[3].kind, JsonValue::Kind::kBool);
  EXPECT_EQ(a->items[5].kind, JsonValue::Kind::kNull);
  const JsonValue* b = v->Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->kind, JsonValue::Kind::kObject);
  EXPECT_EQ(v->Find("c"), nullptr);
  EXPECT_EQ(b->Find("a"), nullptr);  // Only the object's own members.
  EXPECT_EQ(a->Find("a"), nullptr);  // Not an object.
}

TEST(JsonTest, FindTakesTheFirstOfRepeatedKeys) {
  absl::StatusOr<JsonValue> v = ParseJson("{\"k\": 1, \"k\": 2}");
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->members.size(), 2u);  // Both kept, for callers that want Go's last-wins.
  const JsonValue* k = v->Find("k");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->text, "1");
}

TEST(JsonTest, StringEscapesBecomeUtf8) {
  absl::StatusOr<JsonValue> v =
      ParseJson(R"("a\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00\ud800x\udc00")");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->text,
            "a\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
            "\xef\xbf\xbdx\xef\xbf\xbd");  // Lone surrogates become U+FFFD, as in Go.
  // A high surrogate that ends the string has no low half to pair with.
  v = ParseJson(R"("\ud800")");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->text, "\xef\xbf\xbd");
}

TEST(JsonTest, MalformedTextIsAnErrorWithPosition) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (const Case& c : {
           Case{"", "line 1 column 1: unexpected end of JSON input"},
           Case{"not json", "line 1 column 1: unexpected character 'n'"},
           Case{"[1,]", "line 1 column 4: unexpected character ']'"},
           Case{"{\"a\":1,}", "line 1 column 8: expected a string as the object key"},
           Case{"{\"a\" 1}", "line 1 column 6: expected ':' after the object key"},
           Case{"[1 2]", "line 1 column 4: expected ',' or ']' in the array"},
           Case{"{\"a\":1 2}", "line 1 column 8: expected ',' or '}' in the object"},
           Case{"[\"x\"]\n]", "line 2 column 1: unexpected text after the JSON value"},
           Case{"{} {}", "line 1 column 4: unexpected text after the JSON value"},
           Case{"01", "line 1 column 2: a number cannot have a leading zero"},
           Case{"1.", "line 1 column 3: unexpected end of JSON input"},
           Case{"-", "line 1 column 2: unexpected end of JSON input"},
           Case{"\"a\tb\"", "line 1 column 3: control byte 0x9 in a string"},
           Case{"\"raw\ttab\"", "line 1 column 5: control byte 0x9 in a string"},
           Case{"\"\\x\"", "line 1 column 2: invalid escape '\\x' in a string"},
           Case{"\"\\u12g4\"", "line 1 column 6: a \\u escape needs four hex digits"},
           Case{"\"abc", "line 1 column 5: unterminated string"},
           Case{"tru", "line 1 column 1: unexpected character 't'"},
           Case{"// c\n[]", "line 1 column 1: unexpected character '/'"},
           Case{"\xef\xbb\xbf[]", "line 1 column 1: unexpected byte 0xef"},
           Case{"'a'", "line 1 column 1: unexpected character '''"},
       }) {
    absl::StatusOr<JsonValue> v = ParseJson(c.text);
    ASSERT_FALSE(v.ok()) << c.text;
    EXPECT_EQ(v.status().message(), c.error) << c.text;
  }
}

TEST(JsonTest, NestingIsLimited) {
  std::string ok(kMaxJsonDepth, '[');
  ok += std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(ParseJson(ok).ok());
  std::string deep(kMaxJsonDepth + 1, '[');
  deep += std::string(kMaxJsonDepth + 1, ']');
  absl::StatusOr<JsonValue> v = ParseJson(deep);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("nested more than 32 deep"));
  // Deeper still, around a scalar: refused at the limit, not at the innermost value.
  v = ParseJson(std::string(34, '[') + "1" + std::string(34, ']'));
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("nested more than 32 deep"));
}

}  // namespace
}  // namespace nodedns
