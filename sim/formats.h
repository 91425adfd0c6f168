// Reading and writing clusters and workload traces. Two families of formats:
//  * Berth's own (documented in docs/sim.md): YAML, JSON or CSV, with quantities as people write
//    them ("96", "500m", "512Gi").
//  * The Alibaba GPU cluster trace v2023 CSV files: node lists `sn,cpu_milli,memory_mib,gpu,model`
//    and pod lists `name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,
//    creation_time,deletion_time,scheduled_time` (or only the first five columns).
// Every function is a pure transformation or reads/writes one named file; all are thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sim/model.h"

namespace berth::sim {

enum class TraceFormat {
  kAuto,  // from the file name and, for CSV, the header line
  kBerthYaml,
  kBerthJson,
  kBerthCsv,
  kAlibabaGpu2023,  // "alibaba-gpu-2023"
};

// Accepts "auto", "yaml", "json", "csv", "berth" (same as auto among Berth's formats) and
// "alibaba-gpu-2023". `berth` only narrows auto-detection to Berth's own formats.
absl::StatusOr<TraceFormat> ParseTraceFormat(std::string_view text);
std::string_view TraceFormatName(TraceFormat format);

// Resolves kAuto (and "berth") for a file from its extension and first line.
TraceFormat DetectFormat(std::string_view path, std::string_view contents, TraceFormat requested);

// Parses text already in memory. `source` names it in error messages ("nodes.csv").
absl::StatusOr<SimCluster> ParseCluster(std::string_view text, TraceFormat format,
                                        std::string_view source);
absl::StatusOr<SimTrace> ParseTrace(std::string_view text, TraceFormat format,
                                    std::string_view source);

// Reads a file and parses it; kAuto detects the format.
absl::StatusOr<SimCluster> LoadCluster(const std::string& path, TraceFormat format);
absl::StatusOr<SimTrace> LoadTrace(const std::string& path, TraceFormat format);

// Canonical text of a cluster or trace in `format` (not kAuto). Parsing the result gives back
// an equal value (Alibaba files drop labels, GPU memory and priorities, which they cannot hold).
std::string FormatCluster(const SimCluster& cluster, TraceFormat format);
std::string FormatTrace(const SimTrace& trace, TraceFormat format);

// Checks one host or request; errors name the object and field:
// `request "train-7": gpu_milli must be between 1 and 1000 when num_gpu > 0, got 1500`.
absl::Status ValidateHost(const SimHost& host);
absl::Status ValidateRequest(const SimRequest& request);

// Reads or writes a whole file.
absl::StatusOr<std::string> ReadFile(const std::string& path);
absl::Status WriteFile(const std::string& path, std::string_view contents);

}  // namespace berth::sim
