#include "core/names.h"

#include "gtest/gtest.h"

namespace berth::core {
namespace {

TEST(ValidateName, AcceptsDnsLabels) {
  EXPECT_TRUE(ValidateName("workload", "train-7").ok());
  EXPECT_TRUE(ValidateName("workload", "a").ok());
}

TEST(ValidateName, RejectsIllegalNamesAndSaysWhich) {
  absl::Status s = ValidateName("workload", "Bad_Name");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("workload \"Bad_Name\": name"), std::string::npos);
  EXPECT_FALSE(ValidateName("workload", "").ok());
  EXPECT_FALSE(ValidateName("workload", "-x").ok());
  EXPECT_FALSE(ValidateName("workload", "x-").ok());
  EXPECT_FALSE(ValidateName("workload", std::string(64, 'a')).ok());
  EXPECT_FALSE(ValidateName("workload", "a.b").ok());
  EXPECT_TRUE(ValidateHostName("node-1.example").ok());
}

TEST(NewId, IsHexAndDistinct) {
  std::string a = NewId(), b = NewId();
  EXPECT_EQ(a.size(), 16u);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace berth::core
