#include "core/quantity.h"

#include <cstdint>
#include <limits>

#include "core/milli.h"
#include "gtest/gtest.h"

namespace berth::core {
namespace {

TEST(ParseCpu, AcceptsMilliAndWholeAndDecimal) {
  EXPECT_EQ(ParseCpu("500m").value(), MilliCpu(500));
  EXPECT_EQ(ParseCpu("2").value(), MilliCpu(2000));
  EXPECT_EQ(ParseCpu("1.5").value(), MilliCpu(1500));
  EXPECT_EQ(ParseCpu("0.25").value(), MilliCpu(250));
  EXPECT_EQ(ParseCpu("0").value(), MilliCpu(0));
}

TEST(ParseCpu, RejectsNegativeMalformedAndTooFine) {
  EXPECT_FALSE(ParseCpu("-1").ok());
  EXPECT_FALSE(ParseCpu("").ok());
  EXPECT_FALSE(ParseCpu("abc").ok());
  EXPECT_FALSE(ParseCpu("1.0005").ok());
  EXPECT_FALSE(ParseCpu("5mm").ok());
  EXPECT_NE(ParseCpu("-5").status().message().find("negative"), std::string::npos);
}

TEST(ParseSize, BinaryAndDecimalUnits) {
  EXPECT_EQ(ParseSizeMiB("64Mi").value(), 64);
  EXPECT_EQ(ParseSizeMiB("40Gi").value(), 40 * 1024);
  EXPECT_EQ(ParseSizeMiB("1Ti").value(), 1024 * 1024);
  EXPECT_EQ(ParseSizeMiB("1.5Gi").value(), 1536);
  EXPECT_EQ(ParseSizeMiB("1048576").value(), 1);
  EXPECT_EQ(ParseSizeMiB("1").value(), 1);  // rounds up to a whole MiB
  EXPECT_EQ(ParseSizeMiB("1G").value(), 954);
  EXPECT_EQ(ParseSizeMiB("512Ki").value(), 1);
}

TEST(ParseSize, RejectsBadInput) {
  EXPECT_FALSE(ParseSizeMiB("-5Mi").ok());
  EXPECT_FALSE(ParseSizeMiB("Mi").ok());
  EXPECT_FALSE(ParseSizeMiB("5Xi").ok());
  EXPECT_FALSE(ParseSizeMiB("99999999999999999999Gi").ok());
}

TEST(Format, RoundTrips) {
  EXPECT_EQ(FormatCpu(MilliCpu(500)), "500m");
  EXPECT_EQ(FormatCpu(MilliCpu(2000)), "2");
  EXPECT_EQ(FormatMiB(64), "64Mi");
  EXPECT_EQ(FormatMiB(40960), "40Gi");
  for (int64_t v : {1, 1023, 1024, 5000, 1048576}) {
    EXPECT_EQ(ParseSizeMiB(FormatMiB(v)).value(), v);
  }
}

TEST(Quantity, Arithmetic) {
  MilliCpu a(300);
  a += MilliCpu(200);
  EXPECT_EQ(a, MilliCpu(500));
  EXPECT_LT(MemoryMiB(1), MemoryMiB(2));
  EXPECT_EQ((DiskMiB(10) - DiskMiB(4)).value(), 6);
}

TEST(MilliText, ShowsThousandthsAsADecimalWithoutTrailingZeros) {
  EXPECT_EQ(MilliText(0), "0");
  EXPECT_EQ(MilliText(2000), "2");
  EXPECT_EQ(MilliText(1500), "1.5");
  EXPECT_EQ(MilliText(250), "0.25");
  EXPECT_EQ(MilliText(1005), "1.005");
  EXPECT_EQ(MilliText(-1500), "-1.5");
  EXPECT_EQ(MilliText(std::numeric_limits<int64_t>::min()), "-9223372036854775.808");
}

}  // namespace
}  // namespace berth::core
