// gpu-quota: a tenant with a per-model GPU quota may use only devices of models whose quota
// has room for the request; the others drop out of the device search.
#include "sched/checker.h"

namespace berth::sched {
namespace {

class GpuQuotaChecker final : public Checker {
 public:
  CheckScope scope() const override { return CheckScope::kClass; }
  bool Prepare(const CheckContext& ctx) override {
    if (ctx.request.gpu.kind == core::GpuRequest::Kind::kNone) return false;
    const Quota* q = ctx.cluster.FindQuota(ctx.request.tenant);
    return q != nullptr && !q->gpu_milli_by_model.empty();
  }
  int CheckClass(const CheckContext& ctx, int cls, ClassCheck& out) override {
    const std::vector<core::GpuDevice>& devices = ctx.index.classes[cls].gpus;
    bool any = false;
    for (size_t i = 0; i < out.gpu.size() && i < devices.size(); ++i) {
      if (!out.gpu[i].ok()) continue;
      if (ctx.cluster.CheckQuota(ctx.request, devices[i].model).ok()) {
        any = true;
        continue;
      }
      out.gpu[i] = DeviceFit{};  // no fit: the device search passes it by
      if (i < 32) out.ok_mask &= ~(1u << i);
    }
    return any ? kFeasible : kQuotaModel;
  }
};

}  // namespace

std::unique_ptr<Checker> NewGpuQuotaChecker() { return std::make_unique<GpuQuotaChecker>(); }

}  // namespace berth::sched
