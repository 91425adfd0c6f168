#include "api/body_parser.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::api {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(YamlJson, TypesPlainScalarsAndKeepsQuotedOnes) {
  auto docs = ParseYamlDocuments(R"(
name: hello
kind: process            # a comment
command: ["/bin/sh", "-c", "echo hello; sleep 3600"]
resources: {cpu: 500m, memory: 64Mi}
priority: 5
ratio: 0.5
preemptible: false
label: "5"
nothing: ~
)");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 1u);
  const core::Json& j = (*docs)[0];
  EXPECT_EQ(j["name"], "hello");
  EXPECT_EQ(j["command"][2], "echo hello; sleep 3600");
  EXPECT_EQ(j["resources"]["cpu"], "500m");
  EXPECT_EQ(j["priority"], 5);
  EXPECT_DOUBLE_EQ(j["ratio"].get<double>(), 0.5);
  EXPECT_EQ(j["preemptible"], false);
  EXPECT_EQ(j["label"], "5");
  EXPECT_TRUE(j["nothing"].is_null());
}

TEST(YamlJson, SplitsDocumentsAndReportsErrors) {
  auto docs = ParseYamlDocuments("a: 1\n---\nb: 2\n---\n");
  ASSERT_TRUE(docs.ok());
  EXPECT_EQ(docs->size(), 2u);
  auto bad = ParseYamlDocuments("a: [1, 2\nb: 3\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("malformed YAML at line"), std::string::npos);
  auto dup = ParseYamlDocuments("a: 1\na: 2\n");
  EXPECT_FALSE(dup.ok());
}

TEST(YamlJson, BodyIsJsonOrYaml) {
  const core::JsonContext ctx{"workload", ""};
  EXPECT_EQ((*ParseBody(R"({"a": 1})", ctx))["a"], 1);
  EXPECT_EQ((*ParseBody("a: 1\n", ctx))["a"], 1);
  EXPECT_FALSE(ParseBody("{\"a\": ", ctx).ok());
  EXPECT_FALSE(ParseBody("", ctx).ok());
  EXPECT_FALSE(ParseBody("a: 1\n---\nb: 2\n", ctx).ok());
}

// The error for `text` as a body, or "" when it parsed.
std::string BodyError(std::string_view text, const BodyLimits& limits = {}) {
  auto v = ParseBody(text, {"workload", ""}, limits);
  if (v.ok()) return "";
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument) << v.status();
  return std::string(v.status().message());
}

TEST(BodyLimitsTest, RefusesYamlAliasesAndAnchors) {
  // A self-referencing alias once sent the conversion into endless recursion.
  EXPECT_THAT(BodyError("a: &a [*a]"), HasSubstr("not supported"));
  EXPECT_THAT(BodyError("a: &x 1\nb: *x\n"), HasSubstr("field \"a\": YAML anchors (&x)"));
  EXPECT_THAT(BodyError("a: *x\n"), HasSubstr("not supported"));
}

TEST(BodyLimitsTest, BillionLaughsStopsAtTheFirstAlias) {
  std::string text = "a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n";
  for (int i = 1; i <= 8; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev;
    for (int k = 0; k < 8; ++k) text += ", " + prev;
    text += "]\n";
  }
  EXPECT_THAT(BodyError(text), HasSubstr("not supported"));
}

TEST(BodyLimitsTest, LoneCommaIsMalformedYaml) {
  // yaml-cpp's parser grew without bound on this one byte.
  EXPECT_THAT(BodyError(","), HasSubstr("malformed YAML at line 1"));
  EXPECT_THAT(BodyError(",,,,:,[,{,}"), HasSubstr("malformed YAML"));
  auto docs = ParseYamlDocuments(",");
  ASSERT_FALSE(docs.ok());
  EXPECT_THAT(std::string(docs.status().message()), StartsWith("malformed YAML at line 1"));
}

TEST(BodyLimitsTest, RefusesDeepNesting) {
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_THAT(BodyError(deep), HasSubstr("more than 64 deep"));
  std::string deep_obj;
  for (int i = 0; i < 100000; ++i) deep_obj += "{\"a\":";
  deep_obj += "1" + std::string(100000, '}');
  EXPECT_THAT(BodyError(deep_obj), HasSubstr("more than 64 deep"));
  std::string deep_yaml = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_THAT(BodyError("a: " + deep_yaml), HasSubstr("more than 64 deep"));
  // Exactly at the limit is fine.
  EXPECT_EQ(BodyError(std::string(64, '[') + std::string(64, ']')), "");
  EXPECT_THAT(BodyError(std::string(65, '[') + std::string(65, ']')), HasSubstr("deep"));
}

TEST(BodyLimitsTest, RefusesTooManyValues) {
  std::string many = "[";
  for (int i = 0; i < 100001; ++i) many += i == 0 ? "0" : ",0";
  many += "]";
  EXPECT_THAT(BodyError(many), HasSubstr("more than 100000 values"));
  std::string yaml = "a:\n";
  for (int i = 0; i < 100001; ++i) yaml += "- 0\n";
  EXPECT_THAT(BodyError(yaml), HasSubstr("more than 100000 values"));
}

TEST(BodyLimitsTest, RefusesOutOfRangeNumbers) {
  EXPECT_THAT(BodyError(R"({"name": 1e400})"), HasSubstr("field \"name\": number is out of range"));
  EXPECT_THAT(BodyError(R"({"a": -1e400})"), HasSubstr("out of range"));
  EXPECT_THAT(BodyError(R"({"a": 18446744073709551615})"), HasSubstr("out of range"));
  EXPECT_THAT(BodyError(R"({"a": 1e19})"), HasSubstr("out of range"));
  EXPECT_THAT(BodyError("name: x\nsize: 1e400\n"), HasSubstr("workload \"x\": field \"size\""));
  EXPECT_EQ((*ParseBody(R"({"a": 9223372036854775807, "b": 1e18})", {"w", ""}))["a"], INT64_MAX);
}

TEST(BodyLimitsTest, RefusesInvalidUtf8NamingTheField) {
  EXPECT_THAT(BodyError("{\"name\": \"x\", \"labels\": {\"rack\": \"\xff\"}}"),
              StartsWith("workload \"x\": field \"labels.rack\": not valid UTF-8"));
  EXPECT_THAT(BodyError("{\"name\": \"x\", \"labels\": {\"\xc0\x80\": \"a\"}}"),
              HasSubstr("field \"labels\": not valid UTF-8"));
  EXPECT_THAT(BodyError("{\"a\": \"\\ud800\"}"), HasSubstr("not valid UTF-8"));
  EXPECT_THAT(BodyError("name: x\nlabels:\n  rack: \"\xed\xa0\x80\"\n"),
              HasSubstr("workload \"x\": field \"labels"));
  EXPECT_THAT(BodyError("name: x\nlabels:\n  rack: \"\xed\xa0\x80\"\n"),
              HasSubstr("not valid UTF-8"));
  EXPECT_THAT(BodyError("labels:\n  \xff: a\n"), HasSubstr("not valid UTF-8"));
}

TEST(BodyLimitsTest, RefusesHugeStrings) {
  std::string huge(300 << 10, 'a');
  EXPECT_THAT(BodyError(R"({"a": ")" + huge + "\"}"), HasSubstr("longer than 262144 bytes"));
  EXPECT_THAT(BodyError("a: " + huge + "\n"), HasSubstr("field \"a\": a string is longer"));
  EXPECT_THAT(BodyError("{\"" + huge + "\": 1}"), HasSubstr("a key is longer"));
  BodyLimits small;
  small.max_bytes = 1000;
  EXPECT_THAT(BodyError(std::string(2000, ' ') + "{}", small), HasSubstr("larger than 1000"));
}

TEST(BodyLimitsTest, RefusesDuplicateKeysAndTags) {
  EXPECT_THAT(BodyError(R"({"a": 1, "a": 2})"), HasSubstr("duplicate key \"a\""));
  EXPECT_THAT(BodyError("a: !!binary aGk=\n"), HasSubstr("YAML tags"));
  EXPECT_EQ((*ParseBody("a: !!str 5\nb: ! 6\nc: |\n  7\n", {"w", ""}))["a"], "5");
  EXPECT_THAT(BodyError("? [a]\n: 1\n"), HasSubstr("keys must be plain text"));
}

// The YAML reproducers finish quickly with bounded memory: the parser stops at the first
// refused event, so even the whole 1 MiB body limit of them costs little.
TEST(BodyLimitsTest, HostileYamlStaysSmall) {
  std::string bombs;
  while (bombs.size() < (1 << 20)) bombs += "a: &a [*a, *a, *a]\n";
  EXPECT_THAT(BodyError(bombs), HasSubstr("not supported"));
  EXPECT_THAT(BodyError(std::string(1 << 20, ',')), HasSubstr("malformed YAML"));
  EXPECT_THAT(BodyError(std::string(1 << 20, '[')), HasSubstr("deep"));
  EXPECT_THAT(BodyError(std::string(1 << 20, '{')), HasSubstr("malformed JSON"));
  EXPECT_THAT(BodyError("a: " + std::string(1 << 20, '[')), HasSubstr("deep"));
}

TEST(BodyLimitsTest, ValuesThatComeOutAlwaysSerialize) {
  auto v = ParseBody("name: \"caf\\xe9 \\u263a\"\nn: 12345678901234567890\n", {"w", ""});
  EXPECT_FALSE(v.ok());  // past int64, and too large a float to stand in for one
  v = ParseBody("name: \"caf\\xe9 \\u263a\"\nn: 1234567890123456789.5\n", {"w", ""});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)["name"], "caf\xc3\xa9 \xe2\x98\xba");
  EXPECT_TRUE((*v)["n"].is_number_float());
  EXPECT_NO_THROW(v->dump());
}

TEST(BodyLimitsTest, Utf8Validator) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain \xc3\xa9 \xe2\x98\xba \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));      // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xe2\x98"));          // cut short
  EXPECT_EQ(ValidUtf8Prefix("ab\xc3\xa9\xff"), 4u);
}

}  // namespace
}  // namespace berth::api
