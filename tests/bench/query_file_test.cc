// Tests for the dnsperf-format query-file parser and the query wire builder (bench/query_file.h).
#include "bench/query_file.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nodedns::bench {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseQueryTextTest, ParsesNamesAndTypes) {
  absl::StatusOr<std::vector<QuerySpec>> queries = ParseQueryText(
      "svc1.ns2.svc.cluster.local A\n"
      "host7.example.com.\taaaa\n"
      "  example.com   MX  \r\n"
      ". NS\n"
      "x.example TYPE65\n");
  ASSERT_TRUE(queries.ok()) << queries.status();
  ASSERT_EQ(queries->size(), 5u);
  EXPECT_EQ((*queries)[0].name, "svc1.ns2.svc.cluster.local");
  EXPECT_EQ((*queries)[0].qtype, 1);
  EXPECT_EQ((*queries)[0].line, 1);
  EXPECT_EQ((*queries)[1].name, "host7.example.com.");
  EXPECT_EQ((*queries)[1].qtype, 28);
  EXPECT_EQ((*queries)[2].name, "example.com");
  EXPECT_EQ((*queries)[2].qtype, 15);
  EXPECT_EQ((*queries)[3].qtype, 2);
  EXPECT_EQ((*queries)[4].qtype, 65);
}

TEST(ParseQueryTextTest, SkipsCommentsAndBlankLinesButCountsThem) {
  absl::StatusOr<std::vector<QuerySpec>> queries = ParseQueryText(
      "; dnsperf comment\n"
      "\n"
      "   \t\n"
      "# shell-style comment\n"
      "a.example A\n"
      "  ; indented comment\n"
      "b.example AAAA");  // No final newline.
  ASSERT_TRUE(queries.ok()) << queries.status();
  ASSERT_EQ(queries->size(), 2u);
  EXPECT_EQ((*queries)[0].line, 5);
  EXPECT_EQ((*queries)[1].line, 7);
}

TEST(ParseQueryTextTest, BadTypeNamesItsLine) {
  absl::StatusOr<std::vector<QuerySpec>> queries =
      ParseQueryText("a.example A\n; comment\nb.example BOGUS\n");
  ASSERT_FALSE(queries.ok());
  EXPECT_EQ(queries.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(queries.status().message(), HasSubstr("line 3"));
  EXPECT_THAT(queries.status().message(), HasSubstr("BOGUS"));
}

TEST(ParseQueryTextTest, OutOfRangeNumericTypeIsAnError) {
  EXPECT_FALSE(ParseQueryText("a.example TYPE70000\n").ok());
  EXPECT_FALSE(ParseQueryText("a.example TYPE0\n").ok());
  EXPECT_FALSE(ParseQueryText("a.example IN\n").ok());  // A class, not a type.
}

TEST(ParseQueryTextTest, WrongFieldCountNamesItsLine) {
  absl::StatusOr<std::vector<QuerySpec>> one_field = ParseQueryText("a.example A\njustaname\n");
  ASSERT_FALSE(one_field.ok());
  EXPECT_THAT(one_field.status().message(), HasSubstr("line 2"));
  absl::StatusOr<std::vector<QuerySpec>> three = ParseQueryText("\n\na.example A extra\n");
  ASSERT_FALSE(three.ok());
  EXPECT_THAT(three.status().message(), HasSubstr("line 3"));
}

TEST(ParseQueryTextTest, BadNameNamesItsLine) {
  const std::string long_label(64, 'x');
  absl::StatusOr<std::vector<QuerySpec>> queries =
      ParseQueryText("ok.example A\n" + long_label + ".example A\n");
  ASSERT_FALSE(queries.ok());
  EXPECT_THAT(queries.status().message(), HasSubstr("line 2"));
  EXPECT_FALSE(ParseQueryText("a..example A\n").ok());
}

TEST(ParseQueryTextTest, EmptyInputIsAnError) {
  EXPECT_FALSE(ParseQueryText("").ok());
  EXPECT_FALSE(ParseQueryText("; only a comment\n\n").ok());
}

TEST(LoadQueryFileTest, ReadsFileAndPrefixesErrorsWithPath) {
  const std::string path =
      ::testing::TempDir() + "/query_file_test_" + std::to_string(getpid()) + ".txt";
  {
    std::ofstream out(path);
    out << "a.example A\nb.example NOPE\n";
  }
  absl::StatusOr<std::vector<QuerySpec>> queries = LoadQueryFile(path);
  ASSERT_FALSE(queries.ok());
  EXPECT_THAT(queries.status().message(), HasSubstr(path + ": line 2"));
  std::remove(path.c_str());
  EXPECT_EQ(LoadQueryFile(path).status().code(), absl::StatusCode::kNotFound);
}

TEST(BuildQueryWireTest, BuildsRecursiveQuery) {
  absl::StatusOr<std::vector<uint8_t>> wire = BuildQueryWire({"ab.c", 28, 1}, {});
  ASSERT_TRUE(wire.ok()) << wire.status();
  EXPECT_THAT(*wire, ElementsAre(0, 0,                    // ID
                                 0x01, 0x00,              // RD
                                 0, 1, 0, 0, 0, 0,        // QD=1 AN=0 NS=0
                                 0, 0,                    // AR=0
                                 2, 'a', 'b', 1, 'c', 0,  // QNAME
                                 0, 28, 0, 1));           // AAAA IN
  EXPECT_EQ(QuestionEnd(*wire), wire->size());
}

TEST(BuildQueryWireTest, AppendsOptRecordWithEdns) {
  absl::StatusOr<std::vector<uint8_t>> wire = BuildQueryWire({"c", 1, 1}, {true, 1232});
  ASSERT_TRUE(wire.ok()) << wire.status();
  ASSERT_EQ(wire->size(), 12u + 3 + 4 + 11);
  EXPECT_EQ((*wire)[11], 1);  // ARCOUNT
  EXPECT_THAT(std::vector<uint8_t>(wire->begin() + 19, wire->end()),
              ElementsAre(0, 0, 41, 1232 >> 8, 1232 & 0xff, 0, 0, 0, 0, 0, 0));
  EXPECT_EQ(QuestionEnd(*wire), 19u);  // The OPT record is not part of the question.
}

}  // namespace
}  // namespace nodedns::bench
