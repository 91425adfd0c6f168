// Host and request builders for the sched tests and the placement benchmark.
#pragma once

#include <string>
#include <vector>

#include "core/gpu.h"
#include "sched/model.h"

namespace berth::sched::testing {

inline core::Resources Res(int64_t milli_cpu, int64_t memory_mib, int64_t disk_mib = 0) {
  return core::Resources{core::MilliCpu(milli_cpu), core::MemoryMiB(memory_mib),
                         core::DiskMiB(disk_mib)};
}

// A host with `gpus` devices of `model`, four per NVLink island and per NUMA node.
inline HostSpec GpuHost(std::string name, int gpus, std::string model = "A100-SXM4-80GB",
                        int64_t gpu_memory_mib = 81920, bool mig = false) {
  HostSpec h;
  h.name = std::move(name);
  h.capacity = Res(128000, 1048576, 4194304);
  for (int i = 0; i < gpus; ++i) {
    core::GpuDevice d;
    d.index = i;
    d.model = model;
    d.memory_mib = gpu_memory_mib;
    d.nvlink_island = i / 4;
    d.numa_node = i / 4;
    d.mig_enabled = mig;
    h.gpus.push_back(d);
  }
  return h;
}

inline Request CpuRequest(std::string id, int64_t milli_cpu, int64_t memory_mib) {
  Request r;
  r.id = std::move(id);
  r.resources = Res(milli_cpu, memory_mib);
  return r;
}

inline Request WholeGpuRequest(std::string id, int count, std::vector<std::string> models = {}) {
  Request r;
  r.id = std::move(id);
  r.resources = Res(8000 * count, 65536 * count);
  r.gpu.kind = core::GpuRequest::Kind::kWhole;
  r.gpu.count = count;
  r.gpu.models = std::move(models);
  return r;
}

inline Request ShareRequest(std::string id, int64_t milli, int64_t gpu_memory_mib = 0) {
  Request r;
  r.id = std::move(id);
  r.resources = Res(2000, 16384);
  r.gpu.kind = core::GpuRequest::Kind::kShare;
  r.gpu.milli = milli;
  r.gpu.memory_mib = gpu_memory_mib;
  return r;
}

inline Request MigRequest(std::string id, std::string profile) {
  Request r;
  r.id = std::move(id);
  r.resources = Res(2000, 16384);
  r.gpu.kind = core::GpuRequest::Kind::kMig;
  r.gpu.mig_profile = std::move(profile);
  return r;
}

}  // namespace berth::sched::testing
