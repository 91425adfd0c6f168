// gpu-devices: the static half of the fits rule (DeviceFitFor) for each device of the host's
// class: an allowed model, enough device memory for a whole device or a share, and for MIG a
// partitioned device offering the profile. Leaves each device's DeviceFit for the capacity
// check and the device search.
#include "sched/checker.h"

namespace berth::sched {
namespace {

class GpuDevicesChecker final : public Checker {
 public:
  CheckScope scope() const override { return CheckScope::kClass; }
  bool Prepare(const CheckContext& ctx) override {
    return ctx.request.gpu.kind != core::GpuRequest::Kind::kNone;
  }
  int CheckClass(const CheckContext& ctx, int cls, ClassCheck& out) override {
    const core::GpuRequest& gpu = ctx.request.gpu;
    const std::vector<core::GpuDevice>& devices = ctx.index.classes[cls].gpus;
    if (devices.empty()) return kNoGpu;
    out.gpu.assign(devices.size(), DeviceFit{});
    out.ok_mask = 0;
    bool model = false, fits = false;
    for (size_t i = 0; i < devices.size(); ++i) {
      DeviceFit fit = DeviceFitFor(devices[i], gpu);
      if (fit.misfit == DeviceMisfit::kModel) continue;
      model = true;
      if (!fit.ok()) continue;
      fits = true;
      out.gpu[i] = fit;
      if (i < 32) out.ok_mask |= 1u << i;
    }
    // The most specific reason that holds for every device: the model, else what the allowed
    // models lack.
    if (!model) return kGpuModel;
    if (!fits) return gpu.kind == core::GpuRequest::Kind::kMig ? kMigProfile : kGpuMemory;
    return kFeasible;
  }
};

}  // namespace

std::unique_ptr<Checker> NewGpuDevicesChecker() { return std::make_unique<GpuDevicesChecker>(); }

}  // namespace berth::sched
