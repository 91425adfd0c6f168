// A small Prometheus registry: counters, gauges and histograms in families keyed by label sets,
// rendered in the Prometheus text exposition format (version 0.0.4) for GET /metrics.
//
// The registry owns every family and metric; references it hands out stay valid for its
// lifetime. Everything is thread-safe: register, update and render from any thread.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace berth::api {

// Label name/value pairs. The order is the order of rendering; two sets with the same pairs in
// different orders are different series, so callers keep one order per family.
using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  // Adds `delta` (must be >= 0; negative deltas are ignored).
  void Increment(double delta = 1);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // `bounds` are the upper bounds of the buckets, ascending; +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then one for +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;

 private:
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::vector<uint64_t> counts_ ABSL_GUARDED_BY(mu_);  // per bucket, not cumulative; +Inf last
  double sum_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

// All series of one metric name. T is Counter, Gauge or Histogram.
template <typename T>
class Family {
 public:
  // The series for `labels`, created on first use.
  T& WithLabels(const Labels& labels);
  T& Default() { return WithLabels({}); }

 private:
  friend class MetricsRegistry;
  Family(std::string name, std::string help, std::vector<double> bounds)
      : name_(std::move(name)), help_(std::move(help)), bounds_(std::move(bounds)) {}

  const std::string name_;
  const std::string help_;
  const std::vector<double> bounds_;  // histograms only
  mutable absl::Mutex mu_;
  std::map<Labels, std::unique_ptr<T>> series_ ABSL_GUARDED_BY(mu_);
};

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Registers (or returns the already registered) family `name`. Crashes if `name` is not a
  // valid metric name or is registered with another type: both are programming errors.
  Family<Counter>& AddCounter(std::string name, std::string help);
  Family<Gauge>& AddGauge(std::string name, std::string help);
  Family<Histogram>& AddHistogram(std::string name, std::string help, std::vector<double> bounds);

  // The text exposition of every family, sorted by name; series in label order.
  std::string Render() const;

  // Default latency buckets in seconds, 1 ms to 60 s.
  static std::vector<double> LatencyBuckets();

 private:
  struct Entry {
    enum class Kind { kCounter, kGauge, kHistogram } kind;
    std::unique_ptr<Family<Counter>> counter;
    std::unique_ptr<Family<Gauge>> gauge;
    std::unique_ptr<Family<Histogram>> histogram;
  };
  Entry& Register(const std::string& name, Entry::Kind kind) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Entry> families_ ABSL_GUARDED_BY(mu_);
};

// Escapes a label value for the exposition format (backslash, double quote, newline).
std::string EscapeLabelValue(std::string_view value);
// Formats a sample value: integers without a fraction, +Inf, -Inf, NaN, otherwise shortest %g.
std::string FormatSampleValue(double value);

}  // namespace berth::api
