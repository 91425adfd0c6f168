#include "api/yaml_json.h"

#include "gtest/gtest.h"

namespace berth::api {
namespace {

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
  EXPECT_EQ((*ParseBody(R"({"a": 1})"))["a"], 1);
  EXPECT_EQ((*ParseBody("a: 1\n"))["a"], 1);
  EXPECT_FALSE(ParseBody("{\"a\": ").ok());
  EXPECT_FALSE(ParseBody("").ok());
  EXPECT_FALSE(ParseBody("a: 1\n---\nb: 2\n").ok());
}

}  // namespace
}  // namespace berth::api
