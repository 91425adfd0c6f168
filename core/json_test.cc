#include "core/json.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::core {
namespace {

using ::testing::HasSubstr;

TEST(PreviewTest, ShortValuesPrintAsJson) {
  EXPECT_EQ(Preview(Json(5)), "5");
  EXPECT_EQ(Preview(Json("a")), "\"a\"");
  EXPECT_EQ(Preview(Json::parse(R"({"a":[1,2]})")), R"({"a":[1,2]})");
}

TEST(PreviewTest, StaysBoundedWhateverTheValue) {
  Json deep = 1;
  for (int i = 0; i < 100000; ++i) deep = Json::array({std::move(deep)});
  std::string p = Preview(deep);
  EXPECT_LE(p.size(), 67u);
  EXPECT_THAT(p, HasSubstr("[...]"));
  Json wide = Json::array();
  for (int i = 0; i < 10000; ++i) wide.push_back(i);
  EXPECT_LE(Preview(wide).size(), 67u);
  EXPECT_THAT(Preview(wide), ::testing::EndsWith("..."));
  EXPECT_LE(Preview(Json(std::string(1 << 20, 'x'))).size(), 67u);
  // Invalid UTF-8 is replaced rather than thrown about.
  EXPECT_NO_THROW(Preview(Json(std::string("\xff\xfe"))));
  EXPECT_NO_THROW(Preview(Json::object({{std::string("\xff"), 1}})));
}

TEST(OptionalFieldTest, TypesAndRangesNameTheField) {
  JsonContext ctx{"host", "h"};
  Json j = Json::parse(R"({"s": 1, "i": "x", "b": 0, "big": 70000, "ok": 7, "n": null})");
  std::string s = "keep";
  int64_t i = -1;
  bool b = false;
  EXPECT_THAT(std::string(OptionalString(ctx, j, "inv", "s", &s).message()),
              HasSubstr("host \"h\": inv.s must be a string, got 1"));
  EXPECT_THAT(std::string(OptionalInt(ctx, j, "", "i", 0, 10, &i).message()),
              HasSubstr("i must be an integer"));
  EXPECT_THAT(std::string(OptionalBool(ctx, j, "", "b", &b).message()),
              HasSubstr("b must be true or false"));
  EXPECT_THAT(std::string(OptionalInt(ctx, j, "", "big", 0, 65536, &i).message()),
              HasSubstr("must be between 0 and 65536, got 70000"));
  EXPECT_TRUE(OptionalInt(ctx, j, "", "ok", 0, 10, &i).ok());
  EXPECT_EQ(i, 7);
  EXPECT_TRUE(OptionalString(ctx, j, "", "n", &s).ok());
  EXPECT_TRUE(OptionalString(ctx, j, "", "absent", &s).ok());
  EXPECT_EQ(s, "keep");
}

}  // namespace
}  // namespace berth::core
