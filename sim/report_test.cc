#include "sim/report.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace berth::sim {
namespace {

using ::testing::HasSubstr;

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

FillResult Run(double unallocated_at_100, double seconds) {
  FillResult r;
  r.seconds = seconds;
  for (int arrived = 10; arrived <= 130; arrived += 10) {
    FillStep s;
    s.arrived_pct = arrived;
    s.allocated_pct = arrived >= 100 ? 100 - unallocated_at_100 : arrived;
    s.frag_ratio_pct = 5;
    r.steps.push_back(s);
  }
  r.offered = static_cast<int64_t>(r.steps.size());
  return r;
}

FillReport Report() {
  FillReport report;
  report.policies = {"fgd", "binpack"};
  report.seeds = {1, 2};
  report.runs = {Run(4, 0.1), Run(6, 0.3), Run(10, 0.2), Run(10, 0.2)};
  report.hosts = 10;
  report.gpus = 80;
  report.requests = 100;
  return report;
}

TEST(StatsTest, MeanAndSampleSd) {
  Stat s = MeanSd({2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_DOUBLE_EQ(s.mean, 5);
  EXPECT_NEAR(s.sd, 2.138, 1e-3);
  EXPECT_EQ(MeanSd({3}).sd, 0);
  EXPECT_EQ(FormatFixed(1.005, 1), "1.0");
  EXPECT_EQ(FormatFixed(-0.0001, 2), "0.00");
}

TEST(FillReportTest, TableShowsMeanAndSdPerPolicy) {
  std::string table = FillTable(Report(), true);
  EXPECT_THAT(table, HasSubstr("fgd"));
  EXPECT_THAT(table, HasSubstr("5.00 ± 1.41"));  // fgd: 4 and 6
  EXPECT_THAT(table, HasSubstr("10.00 ± 0.00"));
  EXPECT_THAT(table, HasSubstr("seconds/run"));
  EXPECT_THAT(FillTable(Report(), false), ::testing::Not(HasSubstr("seconds")));
}

TEST(FillReportTest, JsonHoldsMeanSdAndSeconds) {
  auto j = nlohmann::json::parse(FillJson(Report(), true));
  EXPECT_EQ(j["mode"], "fill");
  EXPECT_DOUBLE_EQ(j["policies"]["fgd"]["unallocated_gpu_pct_at_100"]["mean"].get<double>(), 5);
  EXPECT_NEAR(j["policies"]["fgd"]["unallocated_gpu_pct_at_100"]["sd"].get<double>(), 1.4142, 1e-4);
  EXPECT_DOUBLE_EQ(j["policies"]["binpack"]["seconds_per_run"]["mean"].get<double>(), 0.2);
  EXPECT_FALSE(nlohmann::json::parse(FillJson(Report(), false))["policies"]["fgd"].contains(
      "seconds_per_run"));
}

TEST(FillReportTest, CurveCsvHasOneRowPerPolicyAndGridPoint) {
  FillReport report = Report();
  std::string csv = FillCurvesCsv(report);
  EXPECT_EQ(Count(csv, "\n"), 1 + 2 * 56u);  // header + 75..130 for two policies
  EXPECT_THAT(csv, HasSubstr("fgd,100,5.0000,1.4142,95.0000"));
  EXPECT_THAT(csv, HasSubstr("binpack,75,20.0000,0.0000,80.0000"));  // At(75) is the 80% step
}

TEST(SvgTest, OneLinePerPolicyWithLabelledAxes) {
  std::string svg = FillChartSvg(Report());
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_THAT(svg, HasSubstr("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_THAT(svg, HasSubstr("</svg>"));
  // One line per policy in the chart and again in the zoom inset around arrived = 100 %.
  EXPECT_EQ(Count(svg, "<polyline"), 4u);
  EXPECT_THAT(svg, HasSubstr("zoom: x from 95 to 105"));
  EXPECT_THAT(svg, HasSubstr("Arrived workload (% of cluster GPU capacity)"));
  EXPECT_THAT(svg, HasSubstr("Unallocated GPU (% of cluster GPU capacity)"));
  EXPECT_THAT(svg, HasSubstr(">fgd</text>"));
  EXPECT_THAT(svg, HasSubstr(">binpack</text>"));
  EXPECT_EQ(svg, FillChartSvg(Report()));
}

// Policies differ in colour and dash pattern, and each has a band for the spread of its seeds.
TEST(SvgTest, LinesDifferInColourAndDashAndShowTheSeedSpread) {
  std::string svg = FillChartSvg(Report());
  // fgd's seeds leave 4 and 6 % unallocated at arrived >= 100 %: a band of non-zero height.
  EXPECT_EQ(Count(svg, "<polygon"), 4u);  // a band per policy, in the chart and the inset
  EXPECT_THAT(svg, HasSubstr("stroke=\"#1f77b4\" stroke-width=\"2\" points="));
  EXPECT_THAT(svg, HasSubstr("stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"8 4\""));
  // Without seeds to spread or a range around 100 %, neither band nor inset.
  std::string plain =
      RenderSvgChart(ChartSpec{"t", "x", "y", 0, 50}, {Series{"a", {{0, 1}, {50, 2}}}});
  EXPECT_EQ(Count(plain, "<polygon"), 0u);
  EXPECT_THAT(plain, ::testing::Not(HasSubstr("zoom")));
}

TEST(SvgTest, EscapesNames) {
  std::string svg =
      RenderSvgChart(ChartSpec{"a<b", "x & y", "y", 0, 1}, {Series{"p\"1", {{0, 1}, {1, 2}}}});
  EXPECT_THAT(svg, HasSubstr("a&lt;b"));
  EXPECT_THAT(svg, HasSubstr("x &amp; y"));
  EXPECT_THAT(svg, HasSubstr("p&quot;1"));
}

TEST(ReplayReportTest, SummaryAndTimeline) {
  ReplayReport report;
  report.policies = {"fgd"};
  report.seeds = {1};
  ReplayResult r;
  r.queue_delays = {0, 10, 20};
  r.completion_times = {5, 15, 30};
  r.mean_allocated_pct = 42.5;
  r.timeline = {{0, 50, 1, 0}, {3600, 25, 1, 2}};
  report.runs = {r};
  std::string table = ReplayTable(report, false);
  EXPECT_THAT(table, HasSubstr("42.50 ± 0.00"));
  auto j = nlohmann::json::parse(ReplayJson(report, true));
  EXPECT_DOUBLE_EQ(j["policies"]["fgd"]["queue_delay_s_p50"]["mean"].get<double>(), 10);
  EXPECT_DOUBLE_EQ(j["policies"]["fgd"]["completion_time_s_p99"]["mean"].get<double>(), 30);
  EXPECT_THAT(ReplayTimelineCsv(report), HasSubstr("fgd,1,3600,25.0000,1,2"));
  std::string svg = ReplayChartSvg(report);
  EXPECT_EQ(Count(svg, "<polyline"), 1u);
  EXPECT_THAT(svg, HasSubstr("Time (hours since the first arrival)"));
}

}  // namespace
}  // namespace berth::sim
