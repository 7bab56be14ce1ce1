// Tests for the Caddyfile syntax layer (corefile/syntax.h): tokens, blocks, keys, environment.
#include "corefile/syntax.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace nodedns::corefile {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::optional<std::string> NoEnv(std::string_view) { return std::nullopt; }

absl::StatusOr<Corefile> Parse(std::string_view text) {
  return ParseCorefile(text, "Corefile", NoEnv);
}

// The only server block of `text`, which must parse.
ServerBlock OnlyBlock(std::string_view text) {
  absl::StatusOr<Corefile> c = Parse(text);
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok() || c->blocks.size() != 1) {
    ADD_FAILURE() << "expected one block";
    return ServerBlock();
  }
  return c->blocks[0];
}

std::string ErrorOf(std::string_view text) {
  absl::StatusOr<Corefile> c = Parse(text);
  if (c.ok()) return "(parsed)";
  return std::string(c.status().message());
}

TEST(CorefileSyntaxTest, DirectiveArgumentsEndAtTheNewline) {
  ServerBlock b = OnlyBlock(".:53 {\n  forward . 1.1.1.1 8.8.8.8\n  cache 30\n}\n");
  ASSERT_EQ(b.directives.size(), 2u);
  EXPECT_EQ(b.directives[0].name, "forward");
  EXPECT_THAT(b.directives[0].args, ElementsAre(".", "1.1.1.1", "8.8.8.8"));
  EXPECT_EQ(b.directives[0].line, 2);
  EXPECT_EQ(b.directives[1].name, "cache");
  EXPECT_THAT(b.directives[1].args, ElementsAre("30"));
  EXPECT_EQ(b.directives[1].line, 3);
  EXPECT_EQ(b.line, 1);
}

TEST(CorefileSyntaxTest, CommentsRunToTheEndOfTheLineEvenMidWord) {
  ServerBlock b = OnlyBlock(
      "# header\n.:53 { # opens\n  cache 30#no space\n  # whole line\n  errors # trailing\n}\n");
  ASSERT_EQ(b.directives.size(), 2u);
  EXPECT_THAT(b.directives[0].args, ElementsAre("30"));
  EXPECT_EQ(b.directives[1].name, "errors");
  EXPECT_THAT(b.directives[1].args, IsEmpty());
  EXPECT_EQ(b.directives[1].line, 5);
}

TEST(CorefileSyntaxTest, QuotedStringsKeepSpacesAndOnlyEscapeQuotes) {
  ServerBlock b =
      OnlyBlock(".:53 {\n  log \"a b\" \"say \\\"hi\\\"\" \"C:\\dir\" \"#x\" \"\"\n}\n");
  ASSERT_EQ(b.directives.size(), 1u);
  EXPECT_THAT(b.directives[0].args, ElementsAre("a b", "say \"hi\"", "C:\\dir", "#x", ""));
}

TEST(CorefileSyntaxTest, QuotedStringSpanningLinesKeepsLaterTokensOnItsLastLine) {
  // The argument after the closing quote is on line 3, the same line the string ends on, so it
  // still belongs to the directive; the next directive's line counts the string's newlines.
  ServerBlock b = OnlyBlock(".:53 {\n  log \"one\ntwo\" three\n  errors\n}\n");
  ASSERT_EQ(b.directives.size(), 2u);
  EXPECT_THAT(b.directives[0].args, ElementsAre("one\ntwo", "three"));
  EXPECT_EQ(b.directives[1].name, "errors");
  EXPECT_EQ(b.directives[1].line, 4);
}

TEST(CorefileSyntaxTest, BackticksAreOrdinaryCharacters) {
  ServerBlock b = OnlyBlock(".:53 {\n  log `a b`\n}\n");
  ASSERT_EQ(b.directives.size(), 1u);
  EXPECT_THAT(b.directives[0].args, ElementsAre("`a", "b`"));
}

TEST(CorefileSyntaxTest, UnicodeSpacesSeparateTokensAndCarriageReturnsVanish) {
  // A no-break space (U+00A0) as pasted from a web page, and CRLF line ends.
  ServerBlock b = OnlyBlock(
      ".:53 {\r\n  cache\xC2\xA0"
      "30\r\n}\r\n");
  ASSERT_EQ(b.directives.size(), 1u);
  EXPECT_THAT(b.directives[0].args, ElementsAre("30"));
  // Caddy drops a carriage return without ending the word it is in.
  ServerBlock cr = OnlyBlock(".:53 {\n  log a\rb\n}\n");
  ASSERT_EQ(cr.directives.size(), 1u);
  EXPECT_THAT(cr.directives[0].args, ElementsAre("ab"));
}

TEST(CorefileSyntaxTest, ByteOrderMarkIsIgnored) {
  ServerBlock b = OnlyBlock("\xEF\xBB\xBF.:53 {\n}\n");
  ASSERT_EQ(b.keys.size(), 1u);
  EXPECT_EQ(b.keys[0].zone, ".");
}

TEST(CorefileSyntaxTest, BracesAloneOnTheirLinesOpenAndCloseBlocks) {
  ServerBlock b = OnlyBlock(
      "cluster.local:53\n{\n  forward . 10.0.0.10 {\n    force_tcp\n    max_fails 3\n  }\n"
      "  cache {\n  }\n  loop { }\n}\n");
  ASSERT_EQ(b.directives.size(), 3u);
  const Directive& f = b.directives[0];
  EXPECT_TRUE(f.has_block);
  ASSERT_EQ(f.block.size(), 2u);
  EXPECT_EQ(f.block[0].name, "force_tcp");
  EXPECT_EQ(f.block[0].line, 4);
  EXPECT_EQ(f.block[1].name, "max_fails");
  EXPECT_THAT(f.block[1].args, ElementsAre("3"));
  EXPECT_TRUE(b.directives[1].has_block);
  EXPECT_THAT(b.directives[1].block, IsEmpty());
  EXPECT_TRUE(b.directives[2].has_block);
  EXPECT_FALSE(OnlyBlock(".:53 {\n  errors\n}\n").directives[0].has_block);
}

TEST(CorefileSyntaxTest, BraceInsideAWordIsAnArgument) {
  ServerBlock b = OnlyBlock(".:53 {\n  log . {}\n}\n");
  ASSERT_EQ(b.directives.size(), 1u);
  EXPECT_THAT(b.directives[0].args, ElementsAre(".", "{}"));
  EXPECT_FALSE(b.directives[0].has_block);
}

TEST(CorefileSyntaxTest, ClosingBraceOnADirectiveLineIsAnError) {
  EXPECT_EQ(ErrorOf(".:53 {\n  errors }\n"), "Corefile:2: '}' must be on a line of its own");
  EXPECT_EQ(ErrorOf(".:53 {\n  forward . 1.1.1.1 {\n    force_tcp }\n  }\n"),
            "Corefile:3: '}' must be on a line of its own");
}

TEST(CorefileSyntaxTest, TokensAfterAnOpeningBraceAreAnError) {
  EXPECT_EQ(ErrorOf(".:53 { errors\n}\n"),
            "Corefile:1: unexpected 'errors' after '{': '{' must end its line");
  EXPECT_EQ(ErrorOf(".:53 {\n  forward . 1.1.1.1 { force_tcp\n  }\n}\n"),
            "Corefile:2: unexpected 'force_tcp' after '{': '{' must end its line");
}

TEST(CorefileSyntaxTest, TokensAfterASubBlocksClosingBraceAreAnError) {
  EXPECT_EQ(ErrorOf(".:53 {\n  cache {\n  } errors\n}\n"),
            "Corefile:3: unexpected 'errors' after '}': '}' must end its line");
}

TEST(CorefileSyntaxTest, OpeningBraceOnItsOwnLineAfterADirectiveIsAnError) {
  EXPECT_EQ(ErrorOf(".:53 {\n  cache\n  {\n  }\n}\n"),
            "Corefile:3: unexpected '{': a block opens at the end of its directive's line");
}

TEST(CorefileSyntaxTest, UnclosedBlocksAndStringsAreErrors) {
  EXPECT_EQ(ErrorOf(".:53 {\n  errors\n"), "Corefile:1: '{' is never closed: missing '}'");
  EXPECT_EQ(ErrorOf(".:53 {\n  cache {\n    keepttl\n}\n"),
            "Corefile:1: '{' is never closed: missing '}'");
  EXPECT_EQ(ErrorOf(".:53 {\n  log \"abc\n}\n"), "Corefile:2: unterminated quoted string");
}

TEST(CorefileSyntaxTest, BlocksNestedTooDeepAreAnError) {
  // docs/fuzzing.md: 100000 levels overflowed the stack.
  const auto nested = [](int depth) {
    std::string text = ".:53 {\n";
    for (int i = 0; i < depth; ++i) text += "a {\n";
    for (int i = 0; i < depth; ++i) text += "}\n";
    return text + "}\n";
  };
  EXPECT_TRUE(Parse(nested(kMaxBlockDepth)).ok());
  EXPECT_EQ(ErrorOf(nested(kMaxBlockDepth + 1)), "Corefile:18: blocks nested more than 16 deep");
  EXPECT_EQ(ErrorOf(nested(100000)), "Corefile:18: blocks nested more than 16 deep");
}

TEST(CorefileSyntaxTest, ErrorsAreOneLineEvenWhenATokenIsNot) {
  EXPECT_EQ(ErrorOf("\"a\nb:x\" {\n}\n"), "Corefile:1: invalid port in server block key 'a\\nb:x'");
  EXPECT_EQ(ErrorOf("a.example\n\"b\r\nc\"\n"),
            "Corefile:2: expected '{' after the server block keys, found 'b\\r\\nc' (Corefiles "
            "without braces are not supported)");
}

TEST(CorefileSyntaxTest, KeysWithoutBracesAreAnError) {
  EXPECT_EQ(ErrorOf(".:53\nforward . 1.1.1.1\n"),
            "Corefile:2: expected '{' after the server block keys, found 'forward' (Corefiles "
            "without braces are not supported)");
  EXPECT_EQ(ErrorOf(".:53"), "Corefile:1: expected '{' after the server block keys");
}

TEST(CorefileSyntaxTest, SeveralKeysBySpacesAndCommasAcrossLines) {
  ServerBlock b =
      OnlyBlock("Cluster.Local:53 in-addr.arpa:53,\n  dns://ip6.arpa, example.org {\n}\n");
  ASSERT_EQ(b.keys.size(), 4u);
  EXPECT_EQ(b.keys[0].zone, "cluster.local.");
  EXPECT_EQ(b.keys[0].port, 53);
  EXPECT_EQ(b.keys[0].text, "Cluster.Local:53");
  EXPECT_EQ(b.keys[1].zone, "in-addr.arpa.");
  EXPECT_EQ(b.keys[2].zone, "ip6.arpa.");
  EXPECT_EQ(b.keys[2].port, 53);
  EXPECT_EQ(b.keys[2].line, 2);
  EXPECT_EQ(b.keys[3].zone, "example.org.");
}

TEST(CorefileSyntaxTest, KeyWithoutPortTakesTheCallersDefault) {
  absl::StatusOr<Corefile> c = ParseCorefile("example.org {\n}\n.:1053 {\n}\n", "f", NoEnv, 5353);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->blocks.size(), 2u);
  EXPECT_EQ(c->blocks[0].keys[0].port, 5353);
  EXPECT_EQ(c->blocks[1].keys[0].port, 1053);
  EXPECT_EQ(c->blocks[1].line, 3);
}

TEST(CorefileSyntaxTest, CommaAtTheEndOfTheKeysIsAnError) {
  EXPECT_EQ(ErrorOf(".:53, {\n}\n"), "Corefile:1: expected another key after ','");
}

TEST(CorefileSyntaxTest, OtherTransportsAreUnsupported) {
  for (const char* scheme : {"tls", "https", "grpc", "quic"}) {
    EXPECT_EQ(ErrorOf(std::string(scheme) + "://.:853 {\n}\n"),
              std::string("Corefile:1: unsupported transport '") + scheme +
                  "://' in server block key '" + scheme +
                  "://.:853': nodedns serves plain DNS only");
  }
}

TEST(CorefileSyntaxTest, BadKeysAreErrors) {
  EXPECT_EQ(ErrorOf("\n10.0.0.0/24 {\n}\n"),
            "Corefile:2: server block key '10.0.0.0/24': reverse-zone CIDR '10.0.0.0/24' is not "
            "supported by nodedns: write the arpa zone");
  EXPECT_EQ(ErrorOf(".:dns {\n}\n"), "Corefile:1: invalid port in server block key '.:dns'");
  EXPECT_EQ(ErrorOf(".:70000 {\n}\n"), "Corefile:1: invalid port in server block key '.:70000'");
  EXPECT_EQ(ErrorOf(".: {\n}\n"), "Corefile:1: invalid port in server block key '.:'");
  EXPECT_EQ(ErrorOf(":53 {\n}\n"), "Corefile:1: server block key ':53': empty zone");
  EXPECT_EQ(ErrorOf("a..b {\n}\n"),
            "Corefile:1: server block key 'a..b': zone is not a valid domain name: 'a..b'");
  EXPECT_EQ(ErrorOf("a.org,b.org {\n}\n"),
            "Corefile:1: server block key 'a.org,b.org': 'a.org,b.org' is not a zone name");
}

TEST(CorefileSyntaxTest, ImportAndSnippetsAreNotSupported) {
  EXPECT_EQ(ErrorOf("(common) {\n  errors\n}\n"),
            "Corefile:1: snippet (common) is not supported by nodedns");
  EXPECT_EQ(ErrorOf(".:53 {\n  import common\n}\n"),
            "Corefile:2: import is not supported by nodedns");
  EXPECT_EQ(ErrorOf("import /etc/coredns/custom/*.server\n"),
            "Corefile:1: import is not supported by nodedns");
}

TEST(CorefileSyntaxTest, EnvironmentIsSubstitutedInKeysNamesAndArguments) {
  const std::map<std::string, std::string> vars = {
      {"DOMAIN", "cluster.local"}, {"UP", "10.0.0.10"}, {"PLUGIN", "cache"}, {"WIN", "30"}};
  EnvLookup env = [&](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  absl::StatusOr<Corefile> c = ParseCorefile(
      "{$DOMAIN}:53 {\n  forward . {$UP}:53 x{$UNSET}y\n  {$PLUGIN} {%WIN%}\n  log \"{$UP}\"\n}\n",
      "Corefile", env);
  ASSERT_TRUE(c.ok()) << c.status();
  const ServerBlock& b = c->blocks[0];
  EXPECT_EQ(b.keys[0].zone, "cluster.local.");
  EXPECT_THAT(b.directives[0].args, ElementsAre(".", "10.0.0.10:53", "xy"));
  EXPECT_EQ(b.directives[1].name, "cache");
  EXPECT_THAT(b.directives[1].args, ElementsAre("30"));
  EXPECT_THAT(b.directives[2].args, ElementsAre("10.0.0.10"));
}

TEST(CorefileSyntaxTest, EnvironmentValuesAreNotExpandedAgain) {
  EnvLookup env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "SELF") return "{$SELF}";
    return std::nullopt;
  };
  absl::StatusOr<Corefile> c = ParseCorefile(".:53 {\n  log {$SELF}\n}\n", "Corefile", env);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->blocks[0].directives[0].args, ElementsAre("{$SELF}"));
}

TEST(CorefileSyntaxTest, EmptyVariableNameStopsSubstitutionAsInCaddy) {
  EnvLookup env = [](std::string_view name) -> std::optional<std::string> { return "v"; };
  absl::StatusOr<Corefile> c = ParseCorefile(".:53 {\n  log {$A}{$}{$B}\n}\n", "Corefile", env);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->blocks[0].directives[0].args, ElementsAre("v{$}{$B}"));
}

TEST(CorefileSyntaxTest, EmptyFileHasNoBlocks) {
  absl::StatusOr<Corefile> c = Parse("# nothing\n\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->blocks, IsEmpty());
}

TEST(CorefileSyntaxTest, NextBlockMayFollowAClosingBraceOnTheSameLine) {
  absl::StatusOr<Corefile> c = Parse("a.org {\n} b.org {\n}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->blocks.size(), 2u);
  EXPECT_EQ(c->blocks[1].keys[0].zone, "b.org.");
}

}  // namespace
}  // namespace nodedns::corefile
