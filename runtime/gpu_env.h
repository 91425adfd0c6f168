// The environment that hands a task its GPUs, the same for every driver: CUDA_VISIBLE_DEVICES and
// NVIDIA_VISIBLE_DEVICES list the stable ids of exactly the devices the task was granted, and a
// share of a GPU (less than the whole device) runs the task as a CUDA MPS client held to its
// share of the device's threads and memory.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/compute_driver.h"

namespace berth::runtime {

// One GPU as a task is given it.
struct GrantedGpu {
  std::string id;          // "GPU-<uuid>" or "MIG-<uuid>"
  int64_t milli = 1000;    // share of the device; < 1000 makes the task an MPS client
  int64_t memory_mib = 0;  // with a share: device memory the share may pin (0 = no limit)
};

// The GPUs of `config`, one per entry of config.gpus, with the ids of config.gpu_device_ids.
std::vector<GrantedGpu> GrantedGpus(const TaskConfig& config);

// The variables for `gpus` (none when empty). With a share: CUDA_MPS_ACTIVE_THREAD_PERCENTAGE
// (the smallest share, in percent, at least 1), CUDA_MPS_PINNED_DEVICE_MEM_LIMIT ("0=10240M",
// indexed as the task sees its devices) and, when `mps_pipe_dir` is set, CUDA_MPS_PIPE_DIRECTORY
// (where the share's MPS control daemon listens).
std::map<std::string, std::string> GpuEnvironment(const std::vector<GrantedGpu>& gpus,
                                                  std::string_view mps_pipe_dir = "");

}  // namespace berth::runtime
