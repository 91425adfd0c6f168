#include "api/http/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "core/strings.h"

namespace berth::api {
namespace {

// Registration mistakes are programming errors: crash with the reason.
void Require(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "berth metrics: %s\n", what.c_str());
  std::abort();
}

bool ValidMetricName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// `{a="x",b="y"}` (with `extra` appended, for the histogram's le), or "" for no labels.
std::string RenderLabels(const Labels& labels, const std::pair<std::string, std::string>* extra) {
  if (labels.empty() && extra == nullptr) return "";
  std::string out = "{";
  bool first = true;
  auto add = [&](const std::string& name, const std::string& value) {
    if (!first) out.push_back(',');
    first = false;
    out += core::Cat(name, "=\"", EscapeLabelValue(value), "\"");
  };
  for (const auto& [name, value] : labels) add(name, value);
  if (extra != nullptr) add(extra->first, extra->second);
  out.push_back('}');
  return out;
}

void AtomicAdd(std::atomic<double>& target, double delta) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + delta, std::memory_order_relaxed)) {
  }
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatSampleValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<int64_t>(value));
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", value);
  // Prefer the shortest form that reads back to the same double.
  for (int precision = 6; precision < 17; ++precision) {
    char shorter[64];
    std::snprintf(shorter, sizeof(shorter), "%.*g", precision, value);
    if (std::strtod(shorter, nullptr) == value) return shorter;
  }
  return buf;
}

void Counter::Increment(double delta) {
  if (!(delta >= 0)) return;
  AtomicAdd(value_, delta);
}

void Gauge::Add(double delta) { AtomicAdd(value_, delta); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  size_t bucket = bounds_.size();
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (value <= bounds_[i]) {
      bucket = i;
      break;
    }
  }
  absl::MutexLock lock(&mu_);
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  absl::MutexLock lock(&mu_);
  uint64_t running = 0;
  for (uint64_t c : counts_) {
    running += c;
    s.cumulative.push_back(running);
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

template <typename T>
T& Family<T>::WithLabels(const Labels& labels) {
  absl::MutexLock lock(&mu_);
  auto it = series_.find(labels);
  if (it == series_.end()) {
    std::unique_ptr<T> metric;
    if constexpr (std::is_same_v<T, Histogram>) {
      metric = std::make_unique<Histogram>(bounds_);
    } else {
      metric = std::make_unique<T>();
    }
    it = series_.emplace(labels, std::move(metric)).first;
  }
  return *it->second;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

MetricsRegistry::Entry& MetricsRegistry::Register(const std::string& name, Entry::Kind kind) {
  Require(ValidMetricName(name), core::Cat("invalid metric name \"", name, "\""));
  auto [it, inserted] = families_.try_emplace(name);
  if (!inserted) {
    Require(it->second.kind == kind,
            core::Cat("metric \"", name, "\" registered with another type"));
  }
  it->second.kind = kind;
  return it->second;
}

Family<Counter>& MetricsRegistry::AddCounter(std::string name, std::string help) {
  absl::MutexLock lock(&mu_);
  Entry& e = Register(name, Entry::Kind::kCounter);
  if (!e.counter) e.counter.reset(new Family<Counter>(name, std::move(help), {}));
  return *e.counter;
}

Family<Gauge>& MetricsRegistry::AddGauge(std::string name, std::string help) {
  absl::MutexLock lock(&mu_);
  Entry& e = Register(name, Entry::Kind::kGauge);
  if (!e.gauge) e.gauge.reset(new Family<Gauge>(name, std::move(help), {}));
  return *e.gauge;
}

Family<Histogram>& MetricsRegistry::AddHistogram(std::string name, std::string help,
                                                 std::vector<double> bounds) {
  for (size_t i = 1; i < bounds.size(); ++i) {
    Require(bounds[i - 1] < bounds[i], core::Cat("histogram \"", name, "\": bounds must ascend"));
  }
  absl::MutexLock lock(&mu_);
  Entry& e = Register(name, Entry::Kind::kHistogram);
  if (!e.histogram) {
    e.histogram.reset(new Family<Histogram>(name, std::move(help), std::move(bounds)));
  }
  return *e.histogram;
}

std::vector<double> MetricsRegistry::LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

std::string MetricsRegistry::Render() const {
  std::string out;
  absl::MutexLock lock(&mu_);
  for (const auto& [name, entry] : families_) {
    // The binding is captured by an init-capture: clang 14 (the fuzzing build) cannot capture
    // structured bindings.
    auto header = [&out, &name = name](const std::string& help, const char* type) {
      out += core::Cat("# HELP ", name, " ", EscapeHelp(help), "\n");
      out += core::Cat("# TYPE ", name, " ", type, "\n");
    };
    switch (entry.kind) {
      case Entry::Kind::kCounter: {
        const Family<Counter>& f = *entry.counter;
        header(f.help_, "counter");
        absl::MutexLock family_lock(&f.mu_);
        for (const auto& [labels, metric] : f.series_) {
          out += core::Cat(name, RenderLabels(labels, nullptr), " ",
                           FormatSampleValue(metric->Value()), "\n");
        }
        break;
      }
      case Entry::Kind::kGauge: {
        const Family<Gauge>& f = *entry.gauge;
        header(f.help_, "gauge");
        absl::MutexLock family_lock(&f.mu_);
        for (const auto& [labels, metric] : f.series_) {
          out += core::Cat(name, RenderLabels(labels, nullptr), " ",
                           FormatSampleValue(metric->Value()), "\n");
        }
        break;
      }
      case Entry::Kind::kHistogram: {
        const Family<Histogram>& f = *entry.histogram;
        header(f.help_, "histogram");
        absl::MutexLock family_lock(&f.mu_);
        for (const auto& [labels, metric] : f.series_) {
          Histogram::Snapshot s = metric->Read();
          for (size_t i = 0; i < s.cumulative.size(); ++i) {
            std::pair<std::string, std::string> le{
                "le", i < s.bounds.size() ? FormatSampleValue(s.bounds[i]) : "+Inf"};
            out += core::Cat(name, "_bucket", RenderLabels(labels, &le), " ",
                             FormatSampleValue(static_cast<double>(s.cumulative[i])), "\n");
          }
          out += core::Cat(name, "_sum", RenderLabels(labels, nullptr), " ",
                           FormatSampleValue(s.sum), "\n");
          out += core::Cat(name, "_count", RenderLabels(labels, nullptr), " ",
                           FormatSampleValue(static_cast<double>(s.count)), "\n");
        }
        break;
      }
    }
  }
  return out;
}

}  // namespace berth::api
