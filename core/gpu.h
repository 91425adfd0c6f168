// GPU devices and GPU requests. A device is a whole physical GPU; it may be shared in
// milli-shares (1000 = the whole device) or partitioned into MIG instances with the profiles
// NVIDIA defines for A100 and H100. A request asks for whole GPUs, a share of one, or a MIG slice.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/quantity.h"

namespace berth::core {

inline constexpr int64_t kWholeGpuMilli = 1000;

// A MIG profile: how many of the GPU's 7 compute slices and 8 memory slices it takes, and the
// slice positions an instance of it may start at (NVIDIA's placement rules).
struct MigProfile {
  std::string_view name;          // "1g.10gb"
  int compute_slices;             // of 7
  int memory_slices;              // of 8
  int64_t memory_mib;             // device memory of one instance
  std::vector<int> start_slices;  // allowed first memory slice
};

// Profiles valid on a device of `gpu_model` with `device_memory_mib` of memory, or empty if the
// model does not support MIG. Known: A100 40GB, A100 80GB, H100 80GB (and other 80GB parts).
std::vector<MigProfile> MigProfilesFor(std::string_view gpu_model, int64_t device_memory_mib);
// The profile named `name` on that device, or nullopt.
std::optional<MigProfile> FindMigProfile(std::string_view gpu_model, int64_t device_memory_mib,
                                         std::string_view name);
// True when `name` is the name of a MIG profile on any supported device ("3g.40gb").
bool IsKnownMigProfile(std::string_view name);

// A MIG instance carved on a device, as the host's nvidia-smi reports it.
struct MigInstance {
  std::string profile;   // "3g.40gb"
  int start_slice = -1;  // first memory slice it occupies; -1 when unknown
  std::string uuid;      // "MIG-..."
  bool operator==(const MigInstance&) const = default;
};

struct GpuDevice {
  int index = 0;                           // index as nvidia-smi reports it
  std::string uuid;                        // "GPU-..." where known
  std::string model;                       // "A100-SXM4-80GB", "H100", "T4", ...
  int64_t memory_mib = 0;                  // device memory
  int numa_node = 0;                       // host NUMA node the device hangs off
  int nvlink_island = 0;                   // devices with the same island talk over NVLink
  bool mig_enabled = false;                // partitioned into MIG instances
  std::string pci_address;                 // "0000:3b:00.0", for vfio-pci passthrough
  std::vector<MigInstance> mig_instances;  // the instances carved on it, where known
  bool healthy = true;                     // false: its host saw it fail; it takes no new work
  std::string health;                      // why it is not healthy
};

// The id Berth gives a GPU that the agent's config declares without a UUID: "GPU-" and a UUID
// derived from the host name and the index, so it is the same after every restart and differs
// between hosts.
std::string DeclaredGpuUuid(std::string_view host, int index);

// What a workload asks of GPUs.
struct GpuRequest {
  enum class Kind { kNone, kWhole, kShare, kMig };
  Kind kind = Kind::kNone;
  int count = 0;                    // kWhole: number of devices
  std::vector<std::string> models;  // allowed models; empty = any
  int64_t min_memory_mib = 0;       // kWhole: minimum device memory
  int64_t milli = 0;                // kShare: share of one device, 1..999
  int64_t memory_mib = 0;           // kShare: device memory the share needs
  std::string mig_profile;          // kMig: profile name

  bool operator==(const GpuRequest&) const = default;
  // Milli-GPUs this request takes in total (MIG counts its compute slices as sevenths).
  int64_t TotalMilli() const;
  bool AllowsModel(std::string_view model) const;
};

// What the scheduler gave a workload on one device.
struct GpuAssignment {
  int index = 0;            // device index on the host
  int64_t milli = 0;        // share of the device (1000 = whole)
  int64_t memory_mib = 0;   // device memory reserved for a share
  std::string mig_profile;  // set for a MIG slice
  int mig_start_slice = -1;
  // The device's stable id as the workload sees it: the GPU's UUID ("GPU-..."), or for a MIG
  // slice the instance's ("MIG-..."); empty when the host reported none.
  std::string device_id;
  bool operator==(const GpuAssignment&) const = default;
};

// Fills each assignment's device_id from the host's devices `gpus`: the UUID of the device at
// its index, or for a MIG slice the UUID of the instance of its profile at its start slice. Where
// the host did not say where its instances start, the n-th instance of the profile stands for
// the profile's n-th allowed start slice, so two slices the scheduler keeps apart never share one.
// Leaves device_id empty where nothing matches.
void ResolveGpuDeviceIds(const std::vector<GpuDevice>& gpus,
                         std::vector<GpuAssignment>* assignments);

}  // namespace berth::core
