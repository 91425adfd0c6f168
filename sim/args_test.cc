#include "sim/args.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::sim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseSeedsTest, RangesListsAndSingles) {
  EXPECT_THAT(*ParseSeeds("42..45"), ElementsAre(42, 43, 44, 45));
  EXPECT_THAT(*ParseSeeds("7"), ElementsAre(7));
  EXPECT_THAT(*ParseSeeds("1..3,9"), ElementsAre(1, 2, 3, 9));
  EXPECT_EQ(ParseSeeds("42..51")->size(), 10u);
}

TEST(ParseSeedsTest, RejectsMalformedInput) {
  for (const char* bad : {"", "a", "5..", "..5", "9..3", "1,,2", "-1", "1..2,2", "0..20000"}) {
    auto seeds = ParseSeeds(bad);
    EXPECT_FALSE(seeds.ok()) << bad;
    EXPECT_THAT(std::string(seeds.status().message()), HasSubstr("--seeds")) << bad;
  }
}

TEST(ParsePoliciesTest, SplitsOnCommasAndKeepsWeightedTerms) {
  EXPECT_THAT(*ParsePolicies("fgd,binpack"), ElementsAre("fgd", "binpack"));
  EXPECT_THAT(*ParsePolicies("fgd:1+topology:0.2,spread"),
              ElementsAre("fgd:1+topology:0.2", "spread"));
  EXPECT_FALSE(ParsePolicies("fgd,,binpack").ok());
  EXPECT_FALSE(ParsePolicies("fgd,fgd").ok());
}

TEST(ParseNumbersTest, IntegersPercentagesAndSwitches) {
  EXPECT_EQ(*ParseIntFlag("target", "130", 1, 1000), 130);
  EXPECT_FALSE(ParseIntFlag("target", "0", 1, 1000).ok());
  EXPECT_FALSE(ParseIntFlag("target", "12x", 1, 1000).ok());
  EXPECT_EQ(*ParsePercentFlag("cpu-only", "12.5"), 125);
  EXPECT_EQ(*ParsePercentFlag("cpu-only", "100"), 1000);
  EXPECT_FALSE(ParsePercentFlag("cpu-only", "100.1").ok());
  EXPECT_FALSE(ParsePercentFlag("cpu-only", "1.25").ok());
  EXPECT_TRUE(*ParseOnOff("preemption", "on"));
  EXPECT_FALSE(*ParseOnOff("preemption", "off"));
  EXPECT_FALSE(ParseOnOff("preemption", "maybe").ok());
}

}  // namespace
}  // namespace berth::sim
