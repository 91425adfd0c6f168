// gpu-packing: a share or MIG slice goes to an already-shared device with the tightest fit, then
// to a free device on a host already in use, then to an idle host; whole devices go to hosts
// already in use, fullest first; CPU-only work to hosts without GPUs, else to busy ones.
#include "sched/ranker.h"

namespace berth::sched {
namespace {

using Kind = core::GpuRequest::Kind;

class GpuPackingRanker final : public Ranker {
 public:
  int64_t Score(RankContext& ctx, const Candidate& c) override {
    const HostState& host = ctx.cluster.hosts[c.host];
    const Kind kind = ctx.request.gpu.kind;
    const int64_t gpu_cap = host.GpuCapacityMilli();
    const int64_t gpu_used = c.summary.gpu_used_milli;
    const int64_t third = kScoreMax / 3;
    if (kind == Kind::kNone) {
      return gpu_cap == 0 ? kScoreMax : Util(gpu_used, gpu_cap) / 2;
    }
    if (kind != Kind::kWhole && c.num_changes > 0) {
      const GpuState& g = host.gpus[c.changes[0].pos];
      if (g.free_milli < core::kWholeGpuMilli) {
        int64_t left = g.free_milli - c.changes[0].milli;
        return 2 * third + third * (core::kWholeGpuMilli - left) / core::kWholeGpuMilli;
      }
      if (gpu_used > 0) return third + third * Util(gpu_used, gpu_cap) / kScoreMax;
      return 0;
    }
    if (gpu_used > 0) {
      return third + 2 * third * Util(gpu_used + ctx.request_gpu_milli, gpu_cap) / kScoreMax;
    }
    return 0;
  }
};

}  // namespace

std::unique_ptr<Ranker> NewGpuPackingRanker() { return std::make_unique<GpuPackingRanker>(); }

}  // namespace berth::sched
