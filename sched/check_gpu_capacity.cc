// gpu-capacity: enough devices hold the request in their free state now (Holds, the one fits
// rule): `count` idle devices for whole GPUs, one device with the free milli and memory for a
// share, one with a free slot for a MIG profile. The group summary settles most groups; the
// host check lists the devices that hold the request for the device search.
#include "sched/checker.h"

namespace berth::sched {
namespace {

using Kind = core::GpuRequest::Kind;

// Bits set in `v`, without the library call std::popcount becomes on a baseline x86 target.
inline int BitCount(uint32_t v) {
  v = v - ((v >> 1) & 0x55555555u);
  v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
  return int((((v + (v >> 4)) & 0x0f0f0f0fu) * 0x01010101u) >> 24);
}

int ShortOf(Kind kind) {
  switch (kind) {
    case Kind::kWhole:
      return kGpuCount;
    case Kind::kShare:
      return kGpuShare;
    case Kind::kMig:
      return kMigSlot;
    case Kind::kNone:
      break;
  }
  return kFeasible;
}

class GpuCapacityChecker final : public GroupChecker<GpuCapacityChecker> {
 public:
  bool Prepare(const CheckContext& ctx) override { return ctx.request.gpu.kind != Kind::kNone; }
  int Check(const CheckContext& ctx, const GroupSummary& g, const ClassCheck& cls) const {
    const core::GpuRequest& gpu = ctx.request.gpu;
    switch (gpu.kind) {
      case Kind::kNone:
        return kFeasible;
      case Kind::kWhole:
        // The summary's masks cover the first 32 devices only.
        if (ctx.index.classes[g.cls].gpus.size() > 32) return kMaybe;
        return BitCount(g.idle_mask & cls.ok_mask) >= gpu.count ? kFeasible : kGpuCount;
      case Kind::kShare:
        return g.max_share_free >= gpu.milli ? kMaybe : kGpuShare;
      case Kind::kMig:
        return g.mig_free ? kMaybe : kMigSlot;
    }
    return kMaybe;
  }
  int CheckHost(const CheckContext& ctx, int h, const ClassCheck& cls, HostCheck& out) override {
    const core::GpuRequest& gpu = ctx.request.gpu;
    const std::vector<GpuState>& gpus = ctx.index.hosts[h].gpus;
    out.holding.clear();
    for (size_t i = 0; i < gpus.size() && i < cls.gpu.size(); ++i) {
      if (Holds(cls.gpu[i], gpu, DeviceFree::Of(gpus[i]))) out.holding.push_back(int(i));
    }
    const int need = gpu.kind == Kind::kWhole ? gpu.count : 1;
    return int(out.holding.size()) >= need ? kFeasible : ShortOf(gpu.kind);
  }
};

}  // namespace

std::unique_ptr<Checker> NewGpuCapacityChecker() { return std::make_unique<GpuCapacityChecker>(); }

}  // namespace berth::sched
