#include "api/http/metrics.h"

#include <thread>

#include "gtest/gtest.h"

namespace berth::api {
namespace {

TEST(MetricsTest, RendersCountersAndGaugesWithHelpAndType) {
  MetricsRegistry registry;
  auto& requests = registry.AddCounter("berth_test_requests_total", "Requests seen.");
  requests.WithLabels({{"method", "GET"}, {"code", "200"}}).Increment();
  requests.WithLabels({{"method", "GET"}, {"code", "200"}}).Increment(2);
  requests.WithLabels({{"method", "POST"}, {"code", "201"}}).Increment(0.5);
  registry.AddGauge("berth_test_hosts", "Hosts known.").Default().Set(3);

  EXPECT_EQ(registry.Render(),
            "# HELP berth_test_hosts Hosts known.\n"
            "# TYPE berth_test_hosts gauge\n"
            "berth_test_hosts 3\n"
            "# HELP berth_test_requests_total Requests seen.\n"
            "# TYPE berth_test_requests_total counter\n"
            "berth_test_requests_total{method=\"GET\",code=\"200\"} 3\n"
            "berth_test_requests_total{method=\"POST\",code=\"201\"} 0.5\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  MetricsRegistry registry;
  auto& h = registry.AddHistogram("berth_test_latency_seconds", "Latency.", {0.1, 1});
  Histogram& series = h.WithLabels({{"route", "/v1/x"}});
  series.Observe(0.05);
  series.Observe(0.1);
  series.Observe(0.5);
  series.Observe(7);
  EXPECT_EQ(registry.Render(),
            "# HELP berth_test_latency_seconds Latency.\n"
            "# TYPE berth_test_latency_seconds histogram\n"
            "berth_test_latency_seconds_bucket{route=\"/v1/x\",le=\"0.1\"} 2\n"
            "berth_test_latency_seconds_bucket{route=\"/v1/x\",le=\"1\"} 3\n"
            "berth_test_latency_seconds_bucket{route=\"/v1/x\",le=\"+Inf\"} 4\n"
            "berth_test_latency_seconds_sum{route=\"/v1/x\"} 7.65\n"
            "berth_test_latency_seconds_count{route=\"/v1/x\"} 4\n");
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  MetricsRegistry registry;
  registry.AddCounter("berth_test_total", "Line one\nback\\slash")
      .WithLabels({{"path", "a\"b\\c\nd"}})
      .Increment();
  EXPECT_EQ(registry.Render(),
            "# HELP berth_test_total Line one\\nback\\\\slash\n"
            "# TYPE berth_test_total counter\n"
            "berth_test_total{path=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(MetricsTest, SampleValueFormatting) {
  EXPECT_EQ(FormatSampleValue(0), "0");
  EXPECT_EQ(FormatSampleValue(-4), "-4");
  EXPECT_EQ(FormatSampleValue(0.25), "0.25");
  EXPECT_EQ(FormatSampleValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatSampleValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatSampleValue(0.0 / 0.0), "NaN");
  EXPECT_EQ(FormatSampleValue(0.1 + 0.2), "0.30000000000000004");
}

TEST(MetricsTest, RegisteringTwiceReturnsTheSameFamily) {
  MetricsRegistry registry;
  auto& a = registry.AddCounter("berth_test_total", "x");
  auto& b = registry.AddCounter("berth_test_total", "x");
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(&a.WithLabels({{"k", "v"}}), &b.WithLabels({{"k", "v"}}));
  Counter& c = a.Default();
  c.Increment(-5);  // ignored: counters only go up
  EXPECT_EQ(c.Value(), 0);
}

TEST(MetricsDeathTest, TypeClashAndBadNamesCrash) {
  MetricsRegistry registry;
  registry.AddCounter("berth_test_total", "x");
  EXPECT_DEATH(registry.AddGauge("berth_test_total", "x"), "another type");
  EXPECT_DEATH(registry.AddGauge("9bad-name", "x"), "invalid metric name");
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  MetricsRegistry registry;
  auto& counter = registry.AddCounter("berth_test_total", "x");
  auto& gauge = registry.AddGauge("berth_test_gauge", "x");
  auto& hist = registry.AddHistogram("berth_test_hist", "x", {1});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        counter.WithLabels({{"t", std::to_string(t % 2)}}).Increment();
        gauge.Default().Add(1);
        hist.Default().Observe(0.5);
        if (i % 1000 == 0) registry.Render();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter.WithLabels({{"t", "0"}}).Value() + counter.WithLabels({{"t", "1"}}).Value(),
            kThreads * kPerThread);
  EXPECT_EQ(gauge.Default().Value(), kThreads * kPerThread);
  EXPECT_EQ(hist.Default().Read().count, static_cast<uint64_t>(kThreads * kPerThread));
}

}  // namespace
}  // namespace berth::api
