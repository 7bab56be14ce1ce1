// Tests for Go's flag syntax (nodecache/go_flags.h), against what Go's flag package does.
#include "nodecache/go_flags.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace nodedns::nodecache {
namespace {

using std::chrono::nanoseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const std::vector<GoFlagSpec>& Specs() {
  static const std::vector<GoFlagSpec>* specs = new std::vector<GoFlagSpec>{
      {"b", false, "a bool"},
      {"on", true, "a bool defaulting to true"},
      {"conf", std::string(), "a string"},
      {"dns.port", std::string("53"), "a string with a default"},
      {"n", int64_t{7}, "an int"},
      {"every", nanoseconds(60), "a duration"},
  };
  return *specs;
}

absl::StatusOr<GoFlagParse> Parse(std::vector<std::string> args) {
  return ParseGoFlags(Specs(), args);
}

TEST(GoFlagsTest, DefaultsWhenNothingGiven) {
  absl::StatusOr<GoFlagParse> p = Parse({});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->Bool("b"));
  EXPECT_TRUE(p->Bool("on"));
  EXPECT_EQ(p->String("conf"), "");
  EXPECT_EQ(p->String("dns.port"), "53");
  EXPECT_EQ(p->Int("n"), 7);
  EXPECT_EQ(p->Duration("every"), nanoseconds(60));
  EXPECT_THAT(p->set_order, IsEmpty());
  EXPECT_FALSE(p->IsSet("conf"));
}

TEST(GoFlagsTest, OneAndTwoDashesAreTheSame) {
  for (const char* arg : {"-conf=/a", "--conf=/a"}) {
    absl::StatusOr<GoFlagParse> p = Parse({arg});
    ASSERT_TRUE(p.ok()) << arg << ": " << p.status();
    EXPECT_EQ(p->String("conf"), "/a") << arg;
  }
  absl::StatusOr<GoFlagParse> p = Parse({"--conf", "/b", "-dns.port", "5353"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->String("conf"), "/b");
  EXPECT_EQ(p->String("dns.port"), "5353");
}

TEST(GoFlagsTest, ExplicitlySetFlagsAreRecordedEvenWhenEqualToTheDefault) {
  absl::StatusOr<GoFlagParse> p = Parse({"-dns.port=53", "-b", "-dns.port", "54"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->IsSet("dns.port"));
  EXPECT_TRUE(p->IsSet("b"));
  EXPECT_FALSE(p->IsSet("conf"));
  EXPECT_THAT(p->set_order, ElementsAre("dns.port", "b", "dns.port"));
  EXPECT_EQ(p->String("dns.port"), "54");  // The last one wins.
}

TEST(GoFlagsTest, ValueMayBeEmptyOrContainEqualsOrStartWithDash) {
  absl::StatusOr<GoFlagParse> p = Parse({"-conf="});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->String("conf"), "");
  EXPECT_TRUE(p->IsSet("conf"));
  p = Parse({"-conf=a=b"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->String("conf"), "a=b");
  p = Parse({"-conf", "-b"});  // Go takes the next argument whatever it looks like.
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->String("conf"), "-b");
  EXPECT_FALSE(p->Bool("b"));
}

TEST(GoFlagsTest, BoolAloneIsTrueAndTakesGoBoolSpellings) {
  absl::StatusOr<GoFlagParse> p = Parse({"-b"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->Bool("b"));
  for (const char* v : {"1", "t", "T", "TRUE", "true", "True"}) {
    p = Parse({std::string("-b=") + v});
    ASSERT_TRUE(p.ok()) << v;
    EXPECT_TRUE(p->Bool("b")) << v;
  }
  for (const char* v : {"0", "f", "F", "FALSE", "false", "False"}) {
    p = Parse({std::string("--on=") + v});
    ASSERT_TRUE(p.ok()) << v;
    EXPECT_FALSE(p->Bool("on")) << v;
  }
}

TEST(GoFlagsTest, BoolDoesNotTakeTheNextArgument) {
  // "-on false" is "-on" (true) and then the positional "false", which ends the flags.
  absl::StatusOr<GoFlagParse> p = Parse({"-on", "false", "-b"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->Bool("on"));
  EXPECT_FALSE(p->Bool("b"));
  EXPECT_THAT(p->positional, ElementsAre("false", "-b"));
}

TEST(GoFlagsTest, BadBoolValueIsAnError) {
  absl::StatusOr<GoFlagParse> p = Parse({"--b=yes"});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "invalid boolean value \"yes\" for --b: parse error");
}

TEST(GoFlagsTest, ParsingStopsAtFirstNonFlag) {
  absl::StatusOr<GoFlagParse> p = Parse({"-b", "serve", "-conf", "x"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->positional, ElementsAre("serve", "-conf", "x"));
  EXPECT_EQ(p->String("conf"), "");
}

TEST(GoFlagsTest, SingleDashIsPositionalAndDoubleDashIsConsumed) {
  absl::StatusOr<GoFlagParse> p = Parse({"-", "-b"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->positional, ElementsAre("-", "-b"));
  p = Parse({"-b", "--", "-on=false"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->Bool("b"));
  EXPECT_TRUE(p->Bool("on"));
  EXPECT_THAT(p->positional, ElementsAre("-on=false"));
  p = Parse({""});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->positional, ElementsAre(""));
}

TEST(GoFlagsTest, UnknownFlagIsNamedAsWritten) {
  absl::StatusOr<GoFlagParse> p = Parse({"-foo"});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.status().message(), "flag provided but not defined: -foo");
  p = Parse({"--foo=1"});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "flag provided but not defined: --foo");
}

TEST(GoFlagsTest, MissingValueIsAnError) {
  absl::StatusOr<GoFlagParse> p = Parse({"-b", "-conf"});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "flag needs an argument: -conf");
}

TEST(GoFlagsTest, BadSyntaxIsAnError) {
  for (const char* arg : {"---x", "-=x", "--=x", "---"}) {
    absl::StatusOr<GoFlagParse> p = Parse({arg});
    ASSERT_FALSE(p.ok()) << arg;
    EXPECT_EQ(p.status().message(), std::string("bad flag syntax: ") + arg);
  }
}

TEST(GoFlagsTest, HelpWhenNotDeclared) {
  for (const char* arg : {"-h", "-help", "--help", "--h", "-help=false"}) {
    absl::StatusOr<GoFlagParse> p = Parse({"-b", arg, "-nonsense"});
    ASSERT_TRUE(p.ok()) << arg << ": " << p.status();
    EXPECT_TRUE(p->help_requested) << arg;
  }
  // Errors before the help flag still win, as in Go.
  EXPECT_FALSE(Parse({"-nonsense", "-h"}).ok());
}

TEST(GoFlagsTest, DeclaredHelpIsAnOrdinaryFlag) {
  std::vector<GoFlagSpec> specs = {{"help", false, "mine"}};
  std::vector<std::string> args = {"-help"};
  absl::StatusOr<GoFlagParse> p = ParseGoFlags(specs, args);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->help_requested);
  EXPECT_TRUE(p->Bool("help"));
}

TEST(GoFlagsTest, BadIntAndDurationValuesNameTheFlag) {
  absl::StatusOr<GoFlagParse> p = Parse({"-n", "x"});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "invalid value \"x\" for flag -n: parse error");
  p = Parse({"--every=60"});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(),
            "invalid value \"60\" for flag --every: time: missing unit in duration \"60\"");
}

TEST(GoFlagsTest, IntsFollowStrconvBaseZero) {
  EXPECT_EQ(*ParseGoInt("42"), 42);
  EXPECT_EQ(*ParseGoInt("-42"), -42);
  EXPECT_EQ(*ParseGoInt("+42"), 42);
  EXPECT_EQ(*ParseGoInt("0x1F"), 31);
  EXPECT_EQ(*ParseGoInt("0o17"), 15);
  EXPECT_EQ(*ParseGoInt("017"), 15);
  EXPECT_EQ(*ParseGoInt("0b101"), 5);
  EXPECT_EQ(*ParseGoInt("1_000"), 1000);
  EXPECT_EQ(*ParseGoInt("0x_1f"), 31);
  EXPECT_EQ(*ParseGoInt("0"), 0);
  EXPECT_EQ(*ParseGoInt("-9223372036854775808"), INT64_MIN);
  EXPECT_EQ(*ParseGoInt("9223372036854775807"), INT64_MAX);
  for (const char* bad : {"", "-", "08", "1_", "_1", "1__0", "0x", "1.5", "12a", " 1"}) {
    EXPECT_FALSE(ParseGoInt(bad).ok()) << bad;
  }
  EXPECT_EQ(ParseGoInt("9223372036854775808").status().message(), "value out of range");
  EXPECT_EQ(ParseGoInt("99999999999999999999999").status().message(), "value out of range");
}

TEST(GoFlagsTest, DurationsFollowTimeParseDuration) {
  using std::chrono::hours;
  using std::chrono::milliseconds;
  using std::chrono::minutes;
  using std::chrono::seconds;
  EXPECT_EQ(*ParseGoDuration("0"), nanoseconds(0));
  EXPECT_EQ(*ParseGoDuration("-0"), nanoseconds(0));
  EXPECT_EQ(*ParseGoDuration("300ms"), milliseconds(300));
  EXPECT_EQ(*ParseGoDuration("1.5h"), minutes(90));
  EXPECT_EQ(*ParseGoDuration("2h45m"), hours(2) + minutes(45));
  EXPECT_EQ(*ParseGoDuration("-1s"), seconds(-1));
  EXPECT_EQ(*ParseGoDuration("+1s"), seconds(1));
  EXPECT_EQ(*ParseGoDuration(".5s"), milliseconds(500));
  EXPECT_EQ(*ParseGoDuration("5.s"), seconds(5));
  EXPECT_EQ(*ParseGoDuration("60ns"), nanoseconds(60));
  EXPECT_EQ(*ParseGoDuration("1us"), nanoseconds(1000));
  EXPECT_EQ(*ParseGoDuration("1\xc2\xb5s"), nanoseconds(1000));  // U+00B5 micro sign.
  EXPECT_EQ(*ParseGoDuration("1\xce\xbcs"), nanoseconds(1000));  // U+03BC Greek mu.
  EXPECT_EQ(*ParseGoDuration("1h1m1s1ms1us1ns"),
            hours(1) + minutes(1) + seconds(1) + milliseconds(1) + nanoseconds(1001));
  EXPECT_EQ(*ParseGoDuration("9223372036854775807ns"), nanoseconds(INT64_MAX));
  EXPECT_EQ(*ParseGoDuration("-9223372036854775808ns"), nanoseconds(INT64_MIN));
}

TEST(GoFlagsTest, BadDurationsAreErrorsWithGoWording) {
  EXPECT_EQ(ParseGoDuration("60").status().message(), "time: missing unit in duration \"60\"");
  EXPECT_EQ(ParseGoDuration("1d").status().message(),
            "time: unknown unit \"d\" in duration \"1d\"");
  EXPECT_EQ(ParseGoDuration("").status().message(), "time: invalid duration \"\"");
  for (const char* bad :
       {"-", "s", ".s", "1.5", "00", "1s2", "9223372036854775808ns", "3000000h", " 1s"}) {
    EXPECT_FALSE(ParseGoDuration(bad).ok()) << bad;
  }
}

TEST(GoFlagsTest, DurationsFormatLikeGo) {
  EXPECT_EQ(FormatGoDuration(nanoseconds(0)), "0s");
  EXPECT_EQ(FormatGoDuration(nanoseconds(60)), "60ns");
  EXPECT_EQ(FormatGoDuration(nanoseconds(1500)), "1.5\xc2\xb5s");
  EXPECT_EQ(FormatGoDuration(std::chrono::milliseconds(300)), "300ms");
  EXPECT_EQ(FormatGoDuration(std::chrono::seconds(60)), "1m0s");
  EXPECT_EQ(FormatGoDuration(std::chrono::milliseconds(3723500)), "1h2m3.5s");
  EXPECT_EQ(FormatGoDuration(std::chrono::seconds(-90)), "-1m30s");
}

TEST(GoFlagsTest, UsageLooksLikePrintDefaults) {
  std::vector<GoFlagSpec> specs = {
      {"x", false, "short bool"},
      {"conf", std::string(), "the `file` to read"},
      {"dns.port", std::string("53"), "port"},
      {"every", nanoseconds(60), "how often"},
      {"on", true, "multi\nline"},
  };
  EXPECT_EQ(GoFlagUsage(specs),
            "  -conf file\n    \tthe file to read\n"
            "  -dns.port string\n    \tport (default \"53\")\n"
            "  -every duration\n    \thow often (default 60ns)\n"
            "  -on\n    \tmulti\n    \tline (default true)\n"
            "  -x\tshort bool\n");
}

}  // namespace
}  // namespace nodedns::nodecache
