// Reports of a comparison of policies over seeds: a summary table (mean ± sd per policy), a CSV
// of the curves, an SVG chart (one line per policy) and a JSON summary. Every function is a pure
// function of its inputs, so identical runs give byte-identical reports; only the `seconds`
// figures vary between runs, and `timings = false` leaves them out.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"
#include "sim/fill.h"
#include "sim/replay.h"

namespace berth::sim {

struct Stat {
  double mean = 0;
  double sd = 0;  // sample standard deviation; 0 for fewer than two values
};
Stat MeanSd(const std::vector<double>& values);

// Fixed-point decimal text ("12.35"), the same on every platform.
std::string FormatFixed(double value, int decimals);

// One line of a chart.
struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), x ascending
  // Optional shaded band, one (low, high) per point (e.g. the spread across seeds); empty: none.
  std::vector<std::pair<double, double>> band = {};
};

struct ChartSpec {
  std::string title;
  std::string x_label;
  std::string y_label;
  double x_min = 0;
  double x_max = 1;
  // The y axis starts at 0 and ends at the first tick at or above the largest value.
  // When zoom_x_max > zoom_x_min, an inset panel repeats the series over that x range with its
  // own y range fitted to the values there, so close curves can be told apart.
  double zoom_x_min = 0;
  double zoom_x_max = 0;
};

// A self-contained SVG document: axes with ticks and labels, one polyline per series (each with
// its own colour and dash pattern, and its band shaded when given), a legend, and the optional
// zoom inset.
std::string RenderSvgChart(const ChartSpec& spec, const std::vector<Series>& series);

// Everything a fill comparison produced. runs[p * seeds.size() + s] is policy p with seed s.
struct FillReport {
  std::vector<std::string> policies;
  std::vector<uint64_t> seeds;
  std::vector<FillResult> runs;
  int64_t hosts = 0;
  int64_t gpus = 0;
  int64_t requests = 0;  // in the trace, before padding
  int64_t target_pct = 130;

  const FillResult& Run(size_t policy, size_t seed) const {
    return runs[policy * seeds.size() + seed];
  }
  // Arrived-workload points of the curve: every 1% from 75% (or 0% for targets below 75%) to
  // the target.
  std::vector<double> CurveGrid() const;
};

std::string FillTable(const FillReport& report, bool timings);
// policy,arrived_pct,unallocated_gpu_pct_mean,unallocated_gpu_pct_sd,... one row per grid point.
std::string FillCurvesCsv(const FillReport& report);
// Unallocated GPU % against arrived workload on the curve grid, one series per policy: the mean
// over seeds, with a band from the seeds' lowest to highest value.
std::vector<Series> FillSeries(const FillReport& report);
// Unallocated GPU % against arrived workload, one line per policy (mean over seeds).
std::string FillChartSvg(const FillReport& report);
// FillSeries as JSON: [{"policy", "arrived_pct": [...], "unallocated_gpu_pct_mean": [...],
// "unallocated_gpu_pct_low": [...], "unallocated_gpu_pct_high": [...]}], values to 4 decimals.
core::Json FillCurvesJson(const FillReport& report);
// {"mode":"fill",...,"policies":{"fgd":{"unallocated_gpu_pct_at_100":{"mean":..,"sd":..},
//  "seconds_per_run":{"mean":..,"sd":..},...}}}, one line.
std::string FillJson(const FillReport& report, bool timings);

// Everything a replay comparison produced, laid out like FillReport.
struct ReplayReport {
  std::vector<std::string> policies;
  std::vector<uint64_t> seeds;
  std::vector<ReplayResult> runs;
  int64_t hosts = 0;
  int64_t gpus = 0;
  int64_t requests = 0;
  bool backfill = true;
  bool priorities = true;
  bool preemption = false;
  bool defrag = false;
  int64_t migration_cost_s = 0;

  const ReplayResult& Run(size_t policy, size_t seed) const {
    return runs[policy * seeds.size() + seed];
  }
};

std::string ReplayTable(const ReplayReport& report, bool timings);
// policy,seed,time,allocated_gpu_pct,running,queued: the utilization timeline of every run.
std::string ReplayTimelineCsv(const ReplayReport& report);
// GPU allocation % over time, one line per policy (its first seed).
std::string ReplayChartSvg(const ReplayReport& report);
std::string ReplayJson(const ReplayReport& report, bool timings);

}  // namespace berth::sim
