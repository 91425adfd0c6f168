// Synthetic clusters and traces with a controllable mix, for tests, examples and capacity
// studies: host shapes and counts, and the share of CPU-only, fractional-GPU, multi-GPU and
// model-constrained requests. Output depends only on the options (seeded, platform-independent
// randomness), so a checked-in file can be regenerated exactly.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/model.h"

namespace berth::sim {

// `count` identical hosts.
struct HostShape {
  int64_t count = 0;
  int gpus = 0;
  std::string model;  // empty when gpus == 0
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int64_t gpu_memory_mib = 0;  // per device; 0 = unknown
};

// Parses "COUNT:GPUS:MODEL:CPU:MEMORY[:GPU_MEMORY],..." such as
// "500:8:A100:96:512Gi:80Gi,500:4:V100:64:256Gi,200:0::32:128Gi".
absl::StatusOr<std::vector<HostShape>> ParseHostShapes(std::string_view text);
// "12.5" for 125 per-mille: how a share flag was written, for error messages.
std::string FormatFixedPermille(int64_t permille);
// The canonical spelling ParseHostShapes accepts.
std::string FormatHostShapes(const std::vector<HostShape>& shapes);

// 1,200 hosts with 6,000 GPUs: the cluster size the speed target names.
inline constexpr std::string_view kDefaultHostShapes =
    "500:8:A100:96:512Gi:80Gi,500:4:V100:64:256Gi:32Gi,200:0::32:128Gi";
// The GPU models and host sizes of the 2023 Alibaba GPU trace's cluster as published (1,213 GPU
// hosts with 6,212 GPUs of seven models, most of them 8-GPU hosts, plus CPU-only hosts), rounded
// to whole hosts per model: 1,523 hosts, 6,218 GPUs.
inline constexpr std::string_view kOpenbHostShapes =
    "549:8:G2:96:512Gi:16Gi,421:2:T4:64:256Gi:16Gi,39:8:G3:96:512Gi:32Gi,"
    "26:8:V100M32:96:512Gi:32Gi,49:4:V100M16:64:256Gi:16Gi,133:2:P100:64:256Gi:16Gi,"
    "1:2:A10:64:256Gi:24Gi,305:0::96:512Gi";

struct GenerateOptions {
  std::vector<HostShape> hosts;  // empty: kDefaultHostShapes
  int64_t requests = 10000;
  // Shares of all requests, in per-mille; the rest ask for exactly one whole GPU.
  int64_t cpu_only_permille = 200;
  int64_t fractional_permille = 350;
  int64_t multi_gpu_permille = 50;
  // Share of GPU requests that allow only some GPU models, in per-mille.
  int64_t constrained_permille = 150;
  // Share of requests with priority 1 instead of 0, in per-mille.
  int64_t high_priority_permille = 0;
  // Mean seconds between arrivals (uniform in [0, 2 * mean]).
  int64_t mean_gap_s = 20;
  // CPU each request asks for, in % of the drawn size (capped at what some host can hold):
  // above 100 makes CPU, not GPU, the resource that runs out first on more hosts.
  int64_t cpu_scale_pct = 100;
  uint64_t seed = 42;
};

// A named set of generator options (`berth sim generate --profile NAME`); flags given with it
// override its values. Documented in docs/sim.md.
struct GenerateProfile {
  std::string_view name;
  std::string_view doc;
  GenerateOptions options;
};
// Every profile, "default" (the options' defaults) first.
const std::vector<GenerateProfile>& GenerateProfiles();
// The options of profile `name`; InvalidArgument naming the known ones.
absl::StatusOr<GenerateOptions> ProfileOptions(std::string_view name);

// InvalidArgument when the shares do not add up to at most 1000 or a host shape is malformed.
absl::Status ValidateGenerateOptions(const GenerateOptions& options);
absl::StatusOr<SimCluster> GenerateCluster(const GenerateOptions& options);
// Requests that each fit on at least one host of `cluster` when it is empty.
absl::StatusOr<SimTrace> GenerateTrace(const GenerateOptions& options, const SimCluster& cluster);

}  // namespace berth::sim
