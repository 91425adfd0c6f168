#include "sched/fits.h"

#include <optional>

#include "sched/cluster_index.h"

namespace berth::sched {

using Kind = core::GpuRequest::Kind;

uint8_t CarvedMigStarts(const core::GpuDevice& d, const core::MigProfile& profile) {
  if (d.mig_instances.empty()) return 0xff;  // not known (declared): any allowed start
  uint8_t starts = 0;
  size_t unplaced = 0;
  for (const core::MigInstance& m : d.mig_instances) {
    if (m.profile != profile.name) continue;
    if (m.start_slice >= 0 && m.start_slice < 8) {
      starts |= uint8_t(1u << m.start_slice);
    } else {
      ++unplaced;
    }
  }
  // Instances whose slices were not read stand for the profile's first allowed starts, one each,
  // as core::ResolveGpuDeviceIds matches them.
  for (size_t i = 0; i < unplaced && i < profile.start_slices.size(); ++i) {
    starts |= uint8_t(1u << profile.start_slices[i]);
  }
  return starts;
}

DeviceFit DeviceFitFor(const core::GpuDevice& d, const core::GpuRequest& r) {
  DeviceFit fit;
  if (r.kind == Kind::kNone) return fit;  // kNoGpu
  if (!r.AllowsModel(d.model)) {
    fit.misfit = DeviceMisfit::kModel;
    return fit;
  }
  switch (r.kind) {
    case Kind::kWhole:
    case Kind::kShare: {
      int64_t need = r.kind == Kind::kWhole ? r.min_memory_mib : r.memory_mib;
      fit.misfit = d.mig_enabled         ? DeviceMisfit::kMigMode
                   : d.memory_mib < need ? DeviceMisfit::kMemory
                                         : DeviceMisfit::kNone;
      break;
    }
    case Kind::kMig: {
      if (!d.mig_enabled) {
        fit.misfit = DeviceMisfit::kMigMode;
        break;
      }
      std::optional<core::MigProfile> p =
          core::FindMigProfile(d.model, d.memory_mib, r.mig_profile);
      if (!p) {
        fit.misfit = DeviceMisfit::kProfile;
        break;
      }
      fit.mig_run = uint8_t((1u << p->memory_slices) - 1);
      for (int start : p->start_slices) fit.mig_starts |= uint8_t(1u << start);
      fit.mig_starts &= CarvedMigStarts(d, *p);
      // A device whose instances are known but has none of the profile cannot hold it.
      fit.misfit = fit.mig_starts == 0 ? DeviceMisfit::kProfile : DeviceMisfit::kNone;
      fit.mig_milli = MigMilli(*p);
      break;
    }
    case Kind::kNone:
      break;
  }
  return fit;
}

int FreeMigStart(const DeviceFit& fit, uint8_t mig_used) {
  for (int start = 0; start < 8; ++start) {
    if ((fit.mig_starts & (1u << start)) && (mig_used & MigRunAt(fit, start)) == 0) return start;
  }
  return -1;
}

bool GpuHolds(const GpuState& gpu, const core::GpuRequest& request) {
  return Holds(DeviceFitFor(gpu.device, request), request, DeviceFree::Of(gpu));
}

bool HostFits(const HostState& host, const core::Resources& resources,
              const core::GpuRequest& gpu) {
  if (ResourcesFit(host.Free(), resources) != ResourceMisfit::kNone) return false;
  if (gpu.kind == Kind::kNone) return true;
  const int need = gpu.kind == Kind::kWhole ? gpu.count : 1;
  int holding = 0;
  for (const GpuState& g : host.gpus) {
    if (GpuHolds(g, gpu) && ++holding >= need) return true;
  }
  return holding >= need;
}

}  // namespace berth::sched
