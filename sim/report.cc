#include "sim/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/strings.h"
#include "nlohmann/json.hpp"

namespace berth::sim {
namespace {

using core::Cat;
using Json = nlohmann::ordered_json;

constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
// Dash patterns cycled with a different period from the palette, so no two of the first dozens
// of series look alike.
constexpr const char* kDashes[] = {"", "8 4", "2 3", "10 3 2 3", "5 5", "12 4 2 4 2 4", "1 4"};

std::string XmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// Rounded for JSON so reports stay readable; the rounding is deterministic.
double Round4(double v) {
  double r = std::round(v * 10000.0) / 10000.0;
  return r == 0 ? 0.0 : r;  // no "-0.0"
}

Json StatJson(const Stat& s) {
  Json o = Json::object();
  o["mean"] = Round4(s.mean);
  o["sd"] = Round4(s.sd);
  return o;
}

std::string PlusMinus(const Stat& s, int decimals) {
  return Cat(FormatFixed(s.mean, decimals), " ± ", FormatFixed(s.sd, decimals));
}

// A text table with columns padded to their widest cell (counting "±" as one column).
std::string RenderTable(const std::vector<std::vector<std::string>>& rows) {
  auto width = [](const std::string& s) {
    size_t w = 0;
    for (unsigned char c : s) {
      if ((c & 0xC0) != 0x80) ++w;  // count UTF-8 code points
    }
    return w;
  };
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], width(row[i]));
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - width(row[i]) + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

template <typename Run, typename F>
Stat StatOver(const std::vector<Run>& runs, size_t begin, size_t count, F value) {
  std::vector<double> values;
  values.reserve(count);
  for (size_t i = begin; i < begin + count; ++i) values.push_back(value(runs[i]));
  return MeanSd(values);
}

// The smallest "nice" step (1, 2, 2.5 or 5 times a power of ten) giving at most `max_ticks`.
double NiceStep(double range, int max_ticks) {
  if (range <= 0) return 1;
  double raw = range / max_ticks;
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * magnitude >= raw) return m * magnitude;
  }
  return 10 * magnitude;
}

std::string Num(double v) { return FormatFixed(v, 2); }

std::string TickLabel(double v, double step) {
  if (std::fabs(step - std::round(step)) < 1e-9) return FormatFixed(v, 0);
  return FormatFixed(v, step * 10 == std::round(step * 10) ? 1 : 2);
}

}  // namespace

Stat MeanSd(const std::vector<double>& values) {
  Stat s;
  if (values.empty()) return s;
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / static_cast<double>(values.size());
  if (values.size() < 2) return s;
  double sq = 0;
  for (double v : values) sq += (v - s.mean) * (v - s.mean);
  s.sd = std::sqrt(sq / static_cast<double>(values.size() - 1));
  return s;
}

std::string FormatFixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  std::string out(buf);
  // "-0.00" reads as a sign error; print zero without a sign.
  if (out[0] == '-' && out.find_first_not_of("-0.") == std::string::npos) out.erase(0, 1);
  return out;
}

std::string RenderSvgChart(const ChartSpec& spec, const std::vector<Series>& series) {
  constexpr double kWidth = 960, kHeight = 560;
  constexpr double kLeft = 80, kRight = 200, kTop = 50, kBottom = 70;
  const double plot_w = kWidth - kLeft - kRight;
  const double plot_h = kHeight - kTop - kBottom;
  double y_max = 0;
  for (const Series& s : series) {
    for (const auto& [x, y] : s.points) y_max = std::max(y_max, y);
  }
  const double y_step = NiceStep(y_max > 0 ? y_max : 1, 8);
  y_max = std::max(y_step, std::ceil(y_max / y_step - 1e-9) * y_step);
  const double x_min = spec.x_min;
  const double x_max = spec.x_max > spec.x_min ? spec.x_max : spec.x_min + 1;
  const double x_step = NiceStep(x_max - x_min, 12);
  auto px = [&](double x) { return kLeft + (x - x_min) / (x_max - x_min) * plot_w; };
  auto py = [&](double y) { return kTop + plot_h - y / y_max * plot_h; };

  std::string out =
      Cat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", Num(kWidth), "\" height=\"",
          Num(kHeight), "\" viewBox=\"0 0 ", Num(kWidth), " ", Num(kHeight),
          "\" font-family=\"sans-serif\" font-size=\"12\">\n",
          "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n", "<text x=\"",
          Num(kLeft + plot_w / 2), "\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">",
          XmlEscape(spec.title), "</text>\n");
  // Grid and ticks.
  for (double y = 0; y <= y_max + y_step / 2; y += y_step) {
    out += Cat("<line x1=\"", Num(kLeft), "\" y1=\"", Num(py(y)), "\" x2=\"", Num(kLeft + plot_w),
               "\" y2=\"", Num(py(y)), "\" stroke=\"#e0e0e0\"/>\n");
    out += Cat("<text x=\"", Num(kLeft - 8), "\" y=\"", Num(py(y) + 4), "\" text-anchor=\"end\">",
               TickLabel(y, y_step), "</text>\n");
  }
  for (double x = std::ceil(x_min / x_step - 1e-9) * x_step; x <= x_max + 1e-9; x += x_step) {
    out += Cat("<line x1=\"", Num(px(x)), "\" y1=\"", Num(kTop), "\" x2=\"", Num(px(x)), "\" y2=\"",
               Num(kTop + plot_h), "\" stroke=\"#f0f0f0\"/>\n");
    out += Cat("<text x=\"", Num(px(x)), "\" y=\"", Num(kTop + plot_h + 18),
               "\" text-anchor=\"middle\">", TickLabel(x, x_step), "</text>\n");
  }
  // Axes and their labels.
  out += Cat("<line x1=\"", Num(kLeft), "\" y1=\"", Num(kTop + plot_h), "\" x2=\"",
             Num(kLeft + plot_w), "\" y2=\"", Num(kTop + plot_h), "\" stroke=\"black\"/>\n");
  out += Cat("<line x1=\"", Num(kLeft), "\" y1=\"", Num(kTop), "\" x2=\"", Num(kLeft), "\" y2=\"",
             Num(kTop + plot_h), "\" stroke=\"black\"/>\n");
  out += Cat("<text x=\"", Num(kLeft + plot_w / 2), "\" y=\"", Num(kHeight - 20),
             "\" text-anchor=\"middle\" font-size=\"14\">", XmlEscape(spec.x_label), "</text>\n");
  out += Cat("<text x=\"20\" y=\"", Num(kTop + plot_h / 2),
             "\" text-anchor=\"middle\" font-size=\"14\" transform=\"rotate(-90 20 ",
             Num(kTop + plot_h / 2), ")\">", XmlEscape(spec.y_label), "</text>\n");
  // One line per series (colour and dash pattern by position, so lines stay apart in print too),
  // its band when given, and the legend.
  auto dash_attr = [](size_t i) -> std::string {
    const char* dash = kDashes[i % (sizeof(kDashes) / sizeof(kDashes[0]))];
    return dash[0] == '\0' ? std::string() : Cat(" stroke-dasharray=\"", dash, "\"");
  };
  // Draws every series through the given mapping, clipped to the x range [lo, hi].
  auto draw_series = [&](auto map_x, auto map_y, double lo, double hi) {
    std::string svg;
    for (size_t i = 0; i < series.size(); ++i) {
      const char* color = kPalette[i % (sizeof(kPalette) / sizeof(kPalette[0]))];
      const Series& s = series[i];
      if (s.band.size() == s.points.size() && !s.band.empty()) {
        std::string upper, lower;
        for (size_t k = 0; k < s.points.size(); ++k) {
          if (s.points[k].first < lo - 1e-9 || s.points[k].first > hi + 1e-9) continue;
          upper += Cat(upper.empty() ? "" : " ", Num(map_x(s.points[k].first)), ",",
                       Num(map_y(s.band[k].second)));
        }
        for (size_t k = s.points.size(); k-- > 0;) {
          if (s.points[k].first < lo - 1e-9 || s.points[k].first > hi + 1e-9) continue;
          lower += Cat(" ", Num(map_x(s.points[k].first)), ",", Num(map_y(s.band[k].first)));
        }
        if (!upper.empty()) {
          svg += Cat("<polygon fill=\"", color,
                     "\" fill-opacity=\"0.15\" stroke=\"none\" points=\"", upper, lower, "\"/>\n");
        }
      }
      std::string points;
      for (const auto& [x, y] : s.points) {
        if (x < lo - 1e-9 || x > hi + 1e-9) continue;
        if (!points.empty()) points.push_back(' ');
        points += Cat(Num(map_x(x)), ",", Num(map_y(y)));
      }
      svg += Cat("<polyline fill=\"none\" stroke=\"", color, "\" stroke-width=\"2\"", dash_attr(i),
                 " points=\"", points, "\"><title>", XmlEscape(s.name), "</title></polyline>\n");
    }
    return svg;
  };
  out += draw_series(px, py, x_min, x_max);
  for (size_t i = 0; i < series.size(); ++i) {
    const char* color = kPalette[i % (sizeof(kPalette) / sizeof(kPalette[0]))];
    double ly = kTop + 10 + 22 * static_cast<double>(i);
    out += Cat("<line x1=\"", Num(kLeft + plot_w + 20), "\" y1=\"", Num(ly), "\" x2=\"",
               Num(kLeft + plot_w + 50), "\" y2=\"", Num(ly), "\" stroke=\"", color,
               "\" stroke-width=\"3\"", dash_attr(i), "/>\n");
    out += Cat("<text x=\"", Num(kLeft + plot_w + 58), "\" y=\"", Num(ly + 4), "\">",
               XmlEscape(series[i].name), "</text>\n");
  }
  if (spec.zoom_x_max > spec.zoom_x_min) {
    // The inset sits in the plot's upper right, where falling curves leave room.
    const double zx0 = kLeft + plot_w * 0.52, zy0 = kTop + plot_h * 0.04;
    const double zw = plot_w * 0.45, zh = plot_h * 0.42;
    double lo = 0, hi = 0;
    bool any = false;
    for (const Series& s : series) {
      for (size_t k = 0; k < s.points.size(); ++k) {
        const double x = s.points[k].first;
        if (x < spec.zoom_x_min - 1e-9 || x > spec.zoom_x_max + 1e-9) continue;
        double a = s.points[k].second, b = a;
        if (s.band.size() == s.points.size()) {
          a = std::min(a, s.band[k].first);
          b = std::max(b, s.band[k].second);
        }
        lo = any ? std::min(lo, a) : a;
        hi = any ? std::max(hi, b) : b;
        any = true;
      }
    }
    if (any) {
      const double step = NiceStep(std::max(hi - lo, 1e-3), 4);
      const double ylo = std::floor(lo / step + 1e-9) * step;
      const double yhi = std::max(ylo + step, std::ceil(hi / step - 1e-9) * step);
      auto zx = [&](double x) {
        return zx0 + (x - spec.zoom_x_min) / (spec.zoom_x_max - spec.zoom_x_min) * zw;
      };
      auto zy = [&](double y) { return zy0 + zh - (y - ylo) / (yhi - ylo) * zh; };
      out += Cat("<rect x=\"", Num(zx0), "\" y=\"", Num(zy0), "\" width=\"", Num(zw),
                 "\" height=\"", Num(zh), "\" fill=\"white\" stroke=\"#808080\"/>\n");
      for (double y = ylo; y <= yhi + step / 2; y += step) {
        out += Cat("<line x1=\"", Num(zx0), "\" y1=\"", Num(zy(y)), "\" x2=\"", Num(zx0 + zw),
                   "\" y2=\"", Num(zy(y)), "\" stroke=\"#e8e8e8\"/>\n");
        out += Cat("<text x=\"", Num(zx0 - 4), "\" y=\"", Num(zy(y) + 4),
                   "\" text-anchor=\"end\" font-size=\"10\">", TickLabel(y, step), "</text>\n");
      }
      const double xstep = NiceStep(spec.zoom_x_max - spec.zoom_x_min, 5);
      for (double x = std::ceil(spec.zoom_x_min / xstep - 1e-9) * xstep;
           x <= spec.zoom_x_max + 1e-9; x += xstep) {
        out += Cat("<text x=\"", Num(zx(x)), "\" y=\"", Num(zy0 + zh + 12),
                   "\" text-anchor=\"middle\" font-size=\"10\">", TickLabel(x, xstep), "</text>\n");
      }
      out += Cat("<text x=\"", Num(zx0 + zw / 2), "\" y=\"", Num(zy0 - 4),
                 "\" text-anchor=\"middle\" font-size=\"11\">zoom: x from ",
                 TickLabel(spec.zoom_x_min, xstep), " to ", TickLabel(spec.zoom_x_max, xstep),
                 "</text>\n");
      out += draw_series(zx, zy, spec.zoom_x_min, spec.zoom_x_max);
    }
  }
  out += "</svg>\n";
  return out;
}

// ---- fill ------------------------------------------------------------------------------------

std::vector<double> FillReport::CurveGrid() const {
  std::vector<double> grid;
  int64_t from = target_pct >= 75 ? 75 : 0;
  for (int64_t x = from; x <= target_pct; ++x) grid.push_back(static_cast<double>(x));
  return grid;
}

std::string FillTable(const FillReport& report, bool timings) {
  const size_t k = report.seeds.size();
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"policy", "unallocated GPU % @100%", "frag/idle GPU % @100%",
                                     "fragmented GPU % @100%", "dropped requests"};
  if (timings) header.push_back("seconds/run");
  rows.push_back(header);
  for (size_t p = 0; p < report.policies.size(); ++p) {
    size_t b = p * k;
    std::vector<std::string> row = {
        report.policies[p],
        PlusMinus(
            StatOver(report.runs, b, k, [](const FillResult& r) { return r.UnallocatedAt100(); }),
            2),
        PlusMinus(StatOver(report.runs, b, k,
                           [](const FillResult& r) { return r.At(100).frag_ratio_pct; }),
                  2),
        PlusMinus(StatOver(report.runs, b, k,
                           [](const FillResult& r) { return r.At(100).fragmented_pct; }),
                  2),
        PlusMinus(StatOver(report.runs, b, k,
                           [](const FillResult& r) { return static_cast<double>(r.dropped); }),
                  1)};
    if (timings) {
      row.push_back(
          PlusMinus(StatOver(report.runs, b, k, [](const FillResult& r) { return r.seconds; }), 3));
    }
    rows.push_back(row);
  }
  std::string out = Cat("fill: ", report.hosts, " hosts, ", report.gpus, " GPUs, ", report.requests,
                        " requests padded to ", report.target_pct, "% of GPU capacity, ", k,
                        " seeds; mean ± sd\n");
  return out + RenderTable(rows);
}

std::string FillCurvesCsv(const FillReport& report) {
  const size_t k = report.seeds.size();
  std::string out =
      "policy,arrived_pct,unallocated_gpu_pct_mean,unallocated_gpu_pct_sd,"
      "allocated_gpu_pct_mean,fragmented_gpu_pct_mean,frag_ratio_pct_mean,frag_ratio_pct_sd\n";
  for (size_t p = 0; p < report.policies.size(); ++p) {
    for (double x : report.CurveGrid()) {
      auto stat = [&](auto value) {
        return StatOver(report.runs, p * k, k, [&](const FillResult& r) { return value(r.At(x)); });
      };
      Stat unalloc = stat([](const FillStep& s) { return 100.0 - s.allocated_pct; });
      Stat alloc = stat([](const FillStep& s) { return s.allocated_pct; });
      Stat frag = stat([](const FillStep& s) { return s.fragmented_pct; });
      Stat ratio = stat([](const FillStep& s) { return s.frag_ratio_pct; });
      out += Cat(report.policies[p], ",", FormatFixed(x, 0), ",", FormatFixed(unalloc.mean, 4), ",",
                 FormatFixed(unalloc.sd, 4), ",", FormatFixed(alloc.mean, 4), ",",
                 FormatFixed(frag.mean, 4), ",", FormatFixed(ratio.mean, 4), ",",
                 FormatFixed(ratio.sd, 4), "\n");
    }
  }
  return out;
}

std::vector<Series> FillSeries(const FillReport& report) {
  const size_t k = report.seeds.size();
  std::vector<double> grid = report.CurveGrid();
  std::vector<Series> series;
  for (size_t p = 0; p < report.policies.size(); ++p) {
    Series s{report.policies[p], {}};
    for (double x : grid) {
      Stat unalloc = StatOver(report.runs, p * k, k,
                              [&](const FillResult& r) { return 100.0 - r.At(x).allocated_pct; });
      s.points.emplace_back(x, unalloc.mean);
      // The band spans the seeds' lowest and highest values.
      double lo = 0, hi = 0;
      for (size_t i = 0; i < k; ++i) {
        const double v = 100.0 - report.runs[p * k + i].At(x).allocated_pct;
        lo = i == 0 ? v : std::min(lo, v);
        hi = i == 0 ? v : std::max(hi, v);
      }
      s.band.emplace_back(lo, hi);
    }
    series.push_back(std::move(s));
  }
  return series;
}

std::string FillChartSvg(const FillReport& report) {
  const size_t k = report.seeds.size();
  std::vector<double> grid = report.CurveGrid();
  std::vector<Series> series = FillSeries(report);
  ChartSpec spec;
  spec.title = Cat("Unallocated GPU vs arrived workload (", report.hosts, " hosts, ", report.gpus,
                   " GPUs, mean and range of ", k, " seeds)");
  spec.x_label = "Arrived workload (% of cluster GPU capacity)";
  spec.y_label = "Unallocated GPU (% of cluster GPU capacity)";
  spec.x_min = grid.empty() ? 0 : grid.front();
  spec.x_max = grid.empty() ? 1 : grid.back();
  // The headline figure is read at arrived = 100 %: the inset zooms on 95-105 %.
  if (spec.x_min <= 95 && spec.x_max >= 105) {
    spec.zoom_x_min = 95;
    spec.zoom_x_max = 105;
  }
  return RenderSvgChart(spec, series);
}

std::string FillJson(const FillReport& report, bool timings) {
  const size_t k = report.seeds.size();
  Json j = Json::object();
  j["mode"] = "fill";
  j["hosts"] = report.hosts;
  j["gpus"] = report.gpus;
  j["requests"] = report.requests;
  j["target_pct"] = report.target_pct;
  j["seeds"] = report.seeds;
  Json policies = Json::object();
  for (size_t p = 0; p < report.policies.size(); ++p) {
    size_t b = p * k;
    Json o = Json::object();
    o["runs"] = k;
    o["unallocated_gpu_pct_at_100"] = StatJson(
        StatOver(report.runs, b, k, [](const FillResult& r) { return r.UnallocatedAt100(); }));
    o["frag_ratio_pct_at_100"] = StatJson(
        StatOver(report.runs, b, k, [](const FillResult& r) { return r.At(100).frag_ratio_pct; }));
    o["fragmented_gpu_pct_at_100"] = StatJson(
        StatOver(report.runs, b, k, [](const FillResult& r) { return r.At(100).fragmented_pct; }));
    o["dropped"] = StatJson(StatOver(
        report.runs, b, k, [](const FillResult& r) { return static_cast<double>(r.dropped); }));
    o["offered"] = StatJson(StatOver(
        report.runs, b, k, [](const FillResult& r) { return static_cast<double>(r.offered); }));
    if (timings) {
      o["seconds_per_run"] =
          StatJson(StatOver(report.runs, b, k, [](const FillResult& r) { return r.seconds; }));
    }
    policies[report.policies[p]] = o;
  }
  j["policies"] = policies;
  return j.dump() + "\n";
}

core::Json FillCurvesJson(const FillReport& report) {
  core::Json curves = core::Json::array();
  for (const Series& s : FillSeries(report)) {
    core::Json arrived = core::Json::array(), mean = core::Json::array(), low = core::Json::array(),
               high = core::Json::array();
    for (size_t i = 0; i < s.points.size(); ++i) {
      arrived.push_back(Round4(s.points[i].first));
      mean.push_back(Round4(s.points[i].second));
      low.push_back(Round4(s.band[i].first));
      high.push_back(Round4(s.band[i].second));
    }
    curves.push_back(core::Json{{"policy", s.name},
                                {"arrived_pct", std::move(arrived)},
                                {"unallocated_gpu_pct_mean", std::move(mean)},
                                {"unallocated_gpu_pct_low", std::move(low)},
                                {"unallocated_gpu_pct_high", std::move(high)}});
  }
  return curves;
}

// ---- replay ----------------------------------------------------------------------------------

std::string ReplayTable(const ReplayReport& report, bool timings) {
  const size_t k = report.seeds.size();
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {
      "policy",      "GPU alloc % (mean)", "wait p50 s",       "wait p90 s",
      "wait p99 s",  "completion p50 s",   "completion p99 s", "never started",
      "preemptions", "stranded GPU %",     "moves/h"};
  if (timings) header.push_back("seconds/run");
  rows.push_back(header);
  for (size_t p = 0; p < report.policies.size(); ++p) {
    size_t b = p * k;
    auto st = [&](auto f) { return StatOver(report.runs, b, k, f); };
    std::vector<std::string> row = {
        report.policies[p],
        PlusMinus(st([](const ReplayResult& r) { return r.mean_allocated_pct; }), 2),
        PlusMinus(
            st([](const ReplayResult& r) { return ReplayResult::Percentile(r.queue_delays, 50); }),
            0),
        PlusMinus(
            st([](const ReplayResult& r) { return ReplayResult::Percentile(r.queue_delays, 90); }),
            0),
        PlusMinus(
            st([](const ReplayResult& r) { return ReplayResult::Percentile(r.queue_delays, 99); }),
            0),
        PlusMinus(st([](const ReplayResult& r) {
                    return ReplayResult::Percentile(r.completion_times, 50);
                  }),
                  0),
        PlusMinus(st([](const ReplayResult& r) {
                    return ReplayResult::Percentile(r.completion_times, 99);
                  }),
                  0),
        PlusMinus(st([](const ReplayResult& r) { return double(r.never_started); }), 1),
        PlusMinus(st([](const ReplayResult& r) { return double(r.preemptions); }), 1),
        PlusMinus(st([](const ReplayResult& r) { return r.stranded_gpu_pct; }), 2),
        PlusMinus(st([](const ReplayResult& r) { return r.moves_per_hour; }), 1)};
    if (timings) row.push_back(PlusMinus(st([](const ReplayResult& r) { return r.seconds; }), 3));
    rows.push_back(row);
  }
  std::string out =
      Cat("replay: ", report.hosts, " hosts, ", report.gpus, " GPUs, ", report.requests,
          " requests, queue ", report.backfill ? "FIFO with backfill" : "strict FIFO",
          ", priorities ", report.priorities ? "on" : "off", ", preemption ",
          report.preemption ? "on" : "off", ", defragmentation ",
          report.defrag ? Cat("on (", report.migration_cost_s, " s per move)") : std::string("off"),
          ", ", k, " seeds; mean ± sd\n");
  return out + RenderTable(rows);
}

std::string ReplayTimelineCsv(const ReplayReport& report) {
  std::string out = "policy,seed,time,allocated_gpu_pct,running,queued\n";
  for (size_t p = 0; p < report.policies.size(); ++p) {
    for (size_t s = 0; s < report.seeds.size(); ++s) {
      for (const ReplaySample& x : report.Run(p, s).timeline) {
        out += Cat(report.policies[p], ",", report.seeds[s], ",", x.time, ",",
                   FormatFixed(x.allocated_pct, 4), ",", x.running, ",", x.queued, "\n");
      }
    }
  }
  return out;
}

std::string ReplayChartSvg(const ReplayReport& report) {
  std::vector<Series> series;
  double t0 = 0, t1 = 0;
  bool first = true;
  for (size_t p = 0; p < report.policies.size() && !report.seeds.empty(); ++p) {
    const auto& timeline = report.Run(p, 0).timeline;
    if (!timeline.empty()) {
      if (first || timeline.front().time < t0) t0 = static_cast<double>(timeline.front().time);
      if (first || timeline.back().time > t1) t1 = static_cast<double>(timeline.back().time);
      first = false;
    }
  }
  for (size_t p = 0; p < report.policies.size() && !report.seeds.empty(); ++p) {
    const auto& timeline = report.Run(p, 0).timeline;
    Series s{report.policies[p], {}};
    // At most ~2000 points per line: a browser draws that instantly.
    size_t stride = std::max<size_t>(1, timeline.size() / 2000);
    for (size_t i = 0; i < timeline.size(); i += stride) {
      s.points.emplace_back((timeline[i].time - t0) / 3600.0, timeline[i].allocated_pct);
    }
    if (!timeline.empty() && (timeline.size() - 1) % stride != 0) {
      s.points.emplace_back((timeline.back().time - t0) / 3600.0, timeline.back().allocated_pct);
    }
    series.push_back(std::move(s));
  }
  ChartSpec spec;
  spec.title = Cat("GPU allocation over time (", report.hosts, " hosts, ", report.gpus,
                   " GPUs, seed ", report.seeds.empty() ? 0 : report.seeds[0], ")");
  spec.x_label = "Time (hours since the first arrival)";
  spec.y_label = "Allocated GPU (% of cluster GPU capacity)";
  spec.x_min = 0;
  spec.x_max = std::max(1e-3, (t1 - t0) / 3600.0);
  return RenderSvgChart(spec, series);
}

std::string ReplayJson(const ReplayReport& report, bool timings) {
  const size_t k = report.seeds.size();
  Json j = Json::object();
  j["mode"] = "replay";
  j["hosts"] = report.hosts;
  j["gpus"] = report.gpus;
  j["requests"] = report.requests;
  j["backfill"] = report.backfill;
  j["priorities"] = report.priorities;
  j["preemption"] = report.preemption;
  j["defrag"] = report.defrag;
  if (report.defrag) j["migration_cost_s"] = report.migration_cost_s;
  j["seeds"] = report.seeds;
  Json policies = Json::object();
  for (size_t p = 0; p < report.policies.size(); ++p) {
    size_t b = p * k;
    auto st = [&](auto f) { return StatJson(StatOver(report.runs, b, k, f)); };
    Json o = Json::object();
    o["runs"] = k;
    o["mean_allocated_gpu_pct"] = st([](const ReplayResult& r) { return r.mean_allocated_pct; });
    for (double q : {50.0, 90.0, 99.0}) {
      std::string suffix = Cat("p", static_cast<int>(q));
      o["queue_delay_s_" + suffix] =
          st([q](const ReplayResult& r) { return ReplayResult::Percentile(r.queue_delays, q); });
      o["completion_time_s_" + suffix] = st(
          [q](const ReplayResult& r) { return ReplayResult::Percentile(r.completion_times, q); });
    }
    o["finished"] = st([](const ReplayResult& r) { return double(r.finished); });
    o["never_started"] = st([](const ReplayResult& r) { return double(r.never_started); });
    o["preemptions"] = st([](const ReplayResult& r) { return double(r.preemptions); });
    o["stranded_gpu_pct"] = st([](const ReplayResult& r) { return r.stranded_gpu_pct; });
    o["moves"] = st([](const ReplayResult& r) { return double(r.moves); });
    o["moves_per_hour"] = st([](const ReplayResult& r) { return r.moves_per_hour; });
    if (timings) o["seconds_per_run"] = st([](const ReplayResult& r) { return r.seconds; });
    policies[report.policies[p]] = o;
  }
  j["policies"] = policies;
  return j.dump() + "\n";
}

}  // namespace berth::sim
