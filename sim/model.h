// The simulator's view of a cluster and a workload trace: plain value types that every trace
// format loads into and the generator writes out. Quantities are fixed-point integers (milli-CPU,
// MiB, milli-GPU); times are whole seconds. Values own their strings; no thread-safety concerns.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace berth::sim {

// One simulated server.
struct SimHost {
  std::string name;
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int gpu_count = 0;
  std::string gpu_model;       // empty for a host without GPUs
  int64_t gpu_memory_mib = 0;  // per device; 0 when unknown
  std::map<std::string, std::string> labels;

  bool operator==(const SimHost&) const = default;
};

struct SimCluster {
  std::vector<SimHost> hosts;

  int64_t TotalGpuMilli() const;
  int64_t TotalGpus() const;
  bool operator==(const SimCluster&) const = default;
};

// Time value meaning "not given" (a pod that never ends, or a 5-column pod file).
inline constexpr int64_t kNoTime = -1;

// One workload request in a trace. GPU demand follows the Alibaba v2023 convention: `num_gpu`
// devices with `gpu_milli` of each (1000 = whole device; below 1000 only when num_gpu == 1).
struct SimRequest {
  std::string name;
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int num_gpu = 0;
  int64_t gpu_milli = 0;
  std::vector<std::string> gpu_models;  // allowed models, sorted and unique; empty = any
  int priority = 0;                     // larger runs first and may preempt smaller
  std::string qos;
  std::string phase;
  int64_t creation_time = kNoTime;
  int64_t deletion_time = kNoTime;
  int64_t scheduled_time = kNoTime;

  // Milli-GPUs the request takes in total.
  int64_t TotalGpuMilli() const { return num_gpu * gpu_milli; }
  bool operator==(const SimRequest&) const = default;
};

struct SimTrace {
  std::vector<SimRequest> requests;
  bool operator==(const SimTrace&) const = default;
};

}  // namespace berth::sim
