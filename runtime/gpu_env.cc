#include "runtime/gpu_env.h"

#include <algorithm>

#include "core/strings.h"

namespace berth::runtime {

std::vector<GrantedGpu> GrantedGpus(const TaskConfig& config) {
  std::vector<GrantedGpu> out;
  for (size_t i = 0; i < config.gpus.size(); ++i) {
    const core::GpuAssignment& g = config.gpus[i];
    out.push_back({.id = i < config.gpu_device_ids.size() ? config.gpu_device_ids[i] : "",
                   .milli = g.milli > 0 ? g.milli : core::kWholeGpuMilli,
                   .memory_mib = g.memory_mib});
  }
  return out;
}

std::map<std::string, std::string> GpuEnvironment(const std::vector<GrantedGpu>& gpus,
                                                  std::string_view mps_pipe_dir) {
  std::map<std::string, std::string> env;
  if (gpus.empty()) return env;
  std::string visible;
  int64_t min_milli = core::kWholeGpuMilli;
  std::string mem_limits;
  for (size_t i = 0; i < gpus.size(); ++i) {
    const GrantedGpu& g = gpus[i];
    if (!visible.empty()) visible += ',';
    visible += g.id;
    min_milli = std::min(min_milli, g.milli);
    if (g.milli < core::kWholeGpuMilli && g.memory_mib > 0) {
      if (!mem_limits.empty()) mem_limits += ',';
      mem_limits += core::Cat(static_cast<int>(i), "=", g.memory_mib, "M");
    }
  }
  env["NVIDIA_VISIBLE_DEVICES"] = visible;
  env["CUDA_VISIBLE_DEVICES"] = visible;
  if (min_milli < core::kWholeGpuMilli) {
    env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = std::to_string(std::max<int64_t>(1, min_milli / 10));
    if (!mem_limits.empty()) env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = mem_limits;
    if (!mps_pipe_dir.empty()) env["CUDA_MPS_PIPE_DIRECTORY"] = std::string(mps_pipe_dir);
  }
  return env;
}

}  // namespace berth::runtime
