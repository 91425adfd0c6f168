// fgd: Fragmentation Gradient Descent. The host (and, for a share or MIG slice, the device) where
// the mix's fragmentation F_n(M) (fgd.h) grows least; the growth is computed incrementally from
// the group's cached per-GPU-request figures (Cluster::Index::Frag).
#include <algorithm>

#include "sched/fgd_delta.h"
#include "sched/fits.h"
#include "sched/ranker.h"

namespace berth::sched {
namespace {

class FgdRanker final : public Ranker {
 public:
  int64_t Score(RankContext& ctx, const Candidate& c) override {
    const int64_t w = ctx.mix.total_weight();
    if (w == 0) return 0;
    const int64_t delta =
        c.device_cost ? *c.device_cost : DeviceCost(ctx, c.host, c.changes, c.num_changes);
    __int128 num = __int128(delta) + __int128(ctx.request_gpu_milli) * w;
    __int128 den = __int128(ctx.cluster.max_host_gpu_milli + ctx.request_gpu_milli) * w;
    if (den <= 0) return 0;
    __int128 v = __int128(kScoreMax) - num * kScoreMax / den;
    return int64_t(std::clamp<__int128>(v, 0, kScoreMax));
  }

  bool costs_devices() const override { return true; }

  // Σ_c w_c ΔF_c of the change, against the group's cached figures.
  int64_t DeviceCost(RankContext& ctx, int h, const GpuChange* changes, size_t n) override {
    return WeightedFragDelta(ctx.cluster, ctx.request, ctx.request_gpu_milli, ctx.mix, h, changes,
                             n);
  }
};

}  // namespace

int64_t WeightedFragDelta(Cluster::Index& x, const Request& request, int64_t request_gpu_milli,
                          const WorkloadMix& mix, int h, const GpuChange* changes, size_t n) {
  if (mix.total_weight() == 0) return 0;
  const HostGroup& g = x.Frag(x.host_group[h], mix);
  const MixPlan& plan = x.Plan(mix);
  const HostState& host = x.hosts[h];
  const size_t devices = host.gpus.size();
  const DeviceFit* statics = x.ClassFragStatics(x.host_class[h], plan);
  const core::Resources free_after = host.Free() - request.resources;
  const int64_t u_after = host.FreeGpuMilli() - request_gpu_milli;
  // Σ_c w_c F_c after the change, less the group's cached Σ_c w_c F_c before it. CPU-only
  // shapes can never use a GPU: all free GPU milli is theirs to waste.
  int64_t sum = plan.cpu_only_weight * u_after;
  for (size_t u = 0; u < plan.gpus.size(); ++u) {
    const MixGpu& mg = plan.gpus[u];
    const GpuFrag& gf = g.gpu_frag[u];
    int holding = gf.holding;
    int64_t unheld = gf.unheld_milli;
    for (size_t k = 0; k < n; ++k) {
      const GpuChange& c = changes[k];
      const GpuState& gs = host.gpus[c.pos];
      const DeviceFit& fit = statics[u * devices + c.pos];
      const DeviceFree now = DeviceFree::Of(gs);
      const DeviceFree then{gs.free_milli - c.milli, gs.free_memory_mib - c.memory_mib,
                            uint8_t(gs.mig_slices_used | c.mig_mask),
                            gs.shares + (c.milli < core::kWholeGpuMilli ? 1 : 0)};
      bool held_before = Holds(fit, mg.gpu, now);
      bool held_after = Holds(fit, mg.gpu, then);
      holding += int(held_after) - int(held_before);
      unheld += (held_after ? 0 : then.milli) - (held_before ? 0 : now.milli);
    }
    if (holding < mg.need) {
      sum += mg.weight * u_after;
      continue;
    }
    for (const MixGpu::Use& use : mg.uses) {
      sum += use.weight * (ResourcesFitIn(free_after, use.resources) ? unheld : u_after);
    }
  }
  return sum - g.weighted_frag;
}

std::unique_ptr<Ranker> NewFgdRanker() { return std::make_unique<FgdRanker>(); }

}  // namespace berth::sched
