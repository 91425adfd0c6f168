#include "sched/fgd.h"

#include "sched/fits.h"

namespace berth::sched {

int64_t ShapeFragmentation(const HostState& host, const Shape& shape) {
  if (shape.gpu.kind == core::GpuRequest::Kind::kNone ||
      !HostFits(host, shape.resources, shape.gpu)) {
    return host.FreeGpuMilli();
  }
  int64_t frag = 0;
  for (const GpuState& g : host.gpus) {
    if (!GpuHolds(g, shape.gpu)) frag += g.free_milli;
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
