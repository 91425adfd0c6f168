#include "sched/fgd.h"

#include <optional>

namespace berth::sched {
namespace {

bool MigSlotFree(uint8_t used, const core::MigProfile& p) {
  for (int start : p.start_slices) {
    uint8_t mask = uint8_t(((1u << p.memory_slices) - 1) << start);
    if ((used & mask) == 0) return true;
  }
  return false;
}

}  // namespace

bool GpuHolds(const GpuState& gpu, const Shape& shape) {
  const core::GpuRequest& r = shape.gpu;
  if (!r.AllowsModel(gpu.device.model)) return false;
  switch (r.kind) {
    case core::GpuRequest::Kind::kNone:
      return false;
    case core::GpuRequest::Kind::kWhole:
      return !gpu.device.mig_enabled && gpu.free_milli == core::kWholeGpuMilli && gpu.shares == 0 &&
             gpu.device.memory_mib >= r.min_memory_mib;
    case core::GpuRequest::Kind::kShare:
      return !gpu.device.mig_enabled && gpu.free_milli >= r.milli &&
             gpu.free_memory_mib >= r.memory_mib;
    case core::GpuRequest::Kind::kMig: {
      if (!gpu.device.mig_enabled) return false;
      std::optional<core::MigProfile> p =
          core::FindMigProfile(gpu.device.model, gpu.device.memory_mib, r.mig_profile);
      return p && MigSlotFree(gpu.mig_slices_used, *p);
    }
  }
  return false;
}

bool ShapeFits(const HostState& host, const Shape& shape) {
  if (!host.Free().Fits(shape.resources)) return false;
  switch (shape.gpu.kind) {
    case core::GpuRequest::Kind::kNone:
      return true;
    case core::GpuRequest::Kind::kWhole: {
      int holding = 0;
      for (const GpuState& g : host.gpus) holding += GpuHolds(g, shape) ? 1 : 0;
      return holding >= shape.gpu.count;
    }
    default:
      for (const GpuState& g : host.gpus) {
        if (GpuHolds(g, shape)) return true;
      }
      return false;
  }
}

int64_t ShapeFragmentation(const HostState& host, const Shape& shape) {
  if (shape.gpu.kind == core::GpuRequest::Kind::kNone || !ShapeFits(host, shape)) {
    return host.FreeGpuMilli();
  }
  int64_t frag = 0;
  for (const GpuState& g : host.gpus) {
    if (!GpuHolds(g, shape)) frag += g.free_milli;
  }
  return frag;
}

int64_t WeightedFragmentation(const HostState& host, const WorkloadMix& mix) {
  int64_t sum = 0;
  for (const WorkloadMix::Entry& e : mix.entries()) {
    sum += e.weight * ShapeFragmentation(host, e.shape);
  }
  return sum;
}

}  // namespace berth::sched
