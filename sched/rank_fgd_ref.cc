// fgd-ref: the published FGD method as its authors' simulator scores it (Weng et al., "Beware of
// Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent", USENIX
// ATC 2023), kept so that results can be compared with the paper's baseline:
//   * the target workload is PopularClasses(mix): classes keyed by CPU, GPU count, share and
//     model, the most popular covering 95 % of requests; so fragmentation looks at CPU and GPU
//     only (memory and disk are not part of a class);
//   * a host scores floor(100 · sigmoid(Δ / 1000)), Δ = F_n(M) before − after, in milli-GPU:
//     hosts whose Δ differ by a few tens of milli-GPU tie, and ties go to the lowest host index
//     (the simulator draws the host order at random per seed);
//   * a share goes to the device with the best such score, the lowest index among equals; whole
//     devices are the lowest-index idle ones.
#include <cmath>

#include "sched/fgd_delta.h"
#include "sched/ranker.h"

namespace berth::sched {
namespace {

// The published score's range: Kubernetes' MaxNodeScore.
constexpr int64_t kRefMax = 100;

class FgdRefRanker final : public Ranker {
 public:
  int64_t Score(RankContext& ctx, const Candidate& c) override {
    const int64_t cost =
        c.device_cost ? *c.device_cost : DeviceCost(ctx, c.host, c.changes, c.num_changes);
    return (kRefMax - cost) * (kScoreMax / kRefMax);
  }

  bool costs_devices() const override { return true; }
  DeviceOrder device_order() const override { return DeviceOrder::kLowestIndex; }

  // 100 − the published score, so that lower wins as the device search expects.
  int64_t DeviceCost(RankContext& ctx, int h, const GpuChange* changes, size_t n) override {
    const WorkloadMix& target = Target(ctx.mix);
    const int64_t w = target.total_weight();
    if (w == 0) return kRefMax - RefScore(0);
    const int64_t grow =
        WeightedFragDelta(ctx.cluster, ctx.request, ctx.request_gpu_milli, target, h, changes, n);
    // Δ = −grow / w milli-GPU; the score takes Δ / 1000.
    return kRefMax - RefScore(-double(grow) / (double(w) * 1000.0));
  }

  // floor(100 · sigmoid(x)).
  static int64_t RefScore(double x) {
    return int64_t(std::floor(double(kRefMax) / (1.0 + std::exp(-x))));
  }

 private:
  const WorkloadMix& Target(const WorkloadMix& mix) {
    if (mix.version() != source_version_) {
      target_ = PopularClasses(mix);
      source_version_ = mix.version();
    }
    return target_;
  }

  uint64_t source_version_ = 0;
  WorkloadMix target_;
};

}  // namespace

std::unique_ptr<Ranker> NewFgdRefRanker() { return std::make_unique<FgdRefRanker>(); }

}  // namespace berth::sched
