// The one rule for "does this fit": CPU, memory and disk against what a host has free, and one
// GPU's worth of a request (a whole idle device, a fractional share with its device memory, a
// free slot of a MIG profile, always of an allowed model) against one device. The scheduler's
// checkers and rankers, FGD's fragmentation measure, Cluster::Commit and the simulator all ask
// these functions, so a placement the scheduler offers is one the cluster accepts.
//
// The device rule is split in two so hot loops can cache the half that never changes:
// DeviceFitFor (model, device memory, MIG mode and profile geometry) and Holds (the device's
// free state). Thread-safety: pure functions.
#pragma once

#include <cstdint>

#include "core/gpu.h"
#include "core/resources.h"
#include "sched/model.h"

namespace berth::sched {

// Why the static half of the device rule turned a device down.
enum class DeviceMisfit : uint8_t {
  kNone,     // the device may hold the request, free state permitting
  kNoGpu,    // the request asks for no GPU
  kModel,    // the model is not among the allowed ones
  kMigMode,  // whole or share on a MIG-partitioned device, or MIG on an unpartitioned one
  kMemory,   // too little device memory for a whole device or a share
  kProfile,  // the MIG profile is not offered by this model and memory, or none is carved
};

// What never changes about whether a device may hold one GPU's worth of a request.
struct DeviceFit {
  DeviceMisfit misfit = DeviceMisfit::kNoGpu;
  uint8_t mig_starts = 0;  // bit s: the MIG profile may start at memory slice s
  uint8_t mig_run = 0;     // the profile's memory slices as a mask starting at slice 0
  int64_t mig_milli = 0;   // milli-GPU one instance of the profile counts for
  bool ok() const { return misfit == DeviceMisfit::kNone; }
};

// The free state of one device: a GpuState's, or a tentative one while a ranker weighs a change.
struct DeviceFree {
  int64_t milli = core::kWholeGpuMilli;
  int64_t memory_mib = 0;
  uint8_t mig_used = 0;  // bit i: MIG memory slice i is taken
  int shares = 0;        // workloads holding a share or MIG slice of the device
  static DeviceFree Of(const GpuState& g) {
    return {g.free_milli, g.free_memory_mib, g.mig_slices_used, g.shares};
  }
};

DeviceFit DeviceFitFor(const core::GpuDevice& device, const core::GpuRequest& request);

// The start slices of `profile` on which `device` has an instance of it carved, as its host
// reported them (GpuDevice::mig_instances; instances without a known slice stand for the
// profile's first allowed starts, one each). All slices when the host reported no instances (a
// declared device): the agent then says at start whether the instance exists.
uint8_t CarvedMigStarts(const core::GpuDevice& device, const core::MigProfile& profile);

// The first start slice where the profile's slices are all free, or -1.
int FreeMigStart(const DeviceFit& fit, uint8_t mig_used);
// The slices a MIG instance starting at `start` takes.
inline uint8_t MigRunAt(const DeviceFit& fit, int start) { return uint8_t(fit.mig_run << start); }

// Whether a device with static facts `fit`, in free state `free`, holds one GPU's worth of
// `request`: whole: idle (no share, all milli free); share: enough free milli and device memory;
// MIG: a free slot for the profile and its compute milli.
inline bool Holds(const DeviceFit& fit, const core::GpuRequest& request, const DeviceFree& free) {
  if (!fit.ok()) return false;
  switch (request.kind) {
    case core::GpuRequest::Kind::kWhole:
      return free.milli == core::kWholeGpuMilli && free.shares == 0;
    case core::GpuRequest::Kind::kShare:
      return free.milli >= request.milli && free.memory_mib >= request.memory_mib;
    case core::GpuRequest::Kind::kMig:
      return free.milli >= fit.mig_milli && FreeMigStart(fit, free.mig_used) >= 0;
    case core::GpuRequest::Kind::kNone:
      return false;
  }
  return false;
}

// Holds for a device as it is now.
bool GpuHolds(const GpuState& gpu, const core::GpuRequest& request);

// The first of CPU, memory and disk that `asked` exceeds in `free`.
enum class ResourceMisfit : uint8_t { kNone, kCpu, kMemory, kDisk };
inline ResourceMisfit ResourcesFit(const core::Resources& free, const core::Resources& asked) {
  if (free.cpu < asked.cpu) return ResourceMisfit::kCpu;
  if (free.memory < asked.memory) return ResourceMisfit::kMemory;
  if (free.disk < asked.disk) return ResourceMisfit::kDisk;
  return ResourceMisfit::kNone;
}

inline bool ResourcesFitIn(const core::Resources& free, const core::Resources& asked) {
  return ResourcesFit(free, asked) == ResourceMisfit::kNone;
}

// Whether `resources` and `gpu` could run on `host` as it is now: resources fit its free
// capacity and enough devices hold the GPU request (`count` of them for whole devices, else one).
bool HostFits(const HostState& host, const core::Resources& resources, const core::GpuRequest& gpu);

}  // namespace berth::sched
