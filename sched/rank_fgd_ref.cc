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
//
// fgd-pool: the same scoring with two changes for clusters of several GPU models, where the
// published method strands most GPUs (docs/placement-study.md):
//   * a class tied to GPU models counts no fragmentation on a host whose GPUs it may not use. The
//     published F_n(c) counts all of such a host's free GPU as fragmented for c, so consuming it
//     looks like a gain for every class tied elsewhere, which steers requests that may go
//     anywhere onto the pools that model-tied requests depend on;
//   * while the target holds classes tied to a model, a request free to choose its model gets
//     floor(10 · f) extra score steps on a host whose GPU model pool has the share f of its
//     capacity free (Ranker::ClusterScore): such requests spread over the pools in proportion to
//     their size, and every pool keeps room for the requests that can run only there.
#include <cmath>

#include "sched/cluster_index.h"
#include "sched/fgd_delta.h"
#include "sched/fits.h"
#include "sched/ranker.h"

namespace berth::sched {
namespace {

// The published score's range: Kubernetes' MaxNodeScore.
constexpr int64_t kRefMax = 100;
constexpr int64_t kStep = kScoreMax / kRefMax;
// fgd-pool's pool term spans this many score steps from a full pool to an idle one.
constexpr int64_t kPoolSteps = 10;

class FgdRefRanker final : public Ranker {
 public:
  explicit FgdRefRanker(bool pools) : pools_(pools) {}

  int64_t Score(RankContext& ctx, const Candidate& c) override {
    const int64_t cost =
        c.device_cost ? *c.device_cost : DeviceCost(ctx, c.host, c.changes, c.num_changes);
    return (kRefMax - cost) * kStep;
  }

  bool costs_devices() const override { return true; }
  DeviceOrder device_order() const override { return DeviceOrder::kLowestIndex; }

  // 100 − the published score, so that lower wins as the device search expects.
  int64_t DeviceCost(RankContext& ctx, int h, const GpuChange* changes, size_t n) override {
    const WorkloadMix& target = Target(ctx.mix);
    const int64_t w = target.total_weight();
    if (w == 0) return kRefMax - RefScore(0);
    int64_t grow =
        WeightedFragDelta(ctx.cluster, ctx.request, ctx.request_gpu_milli, target, h, changes, n);
    // The published measure changes by −weight · request for each class that cannot use the
    // host's models (all free GPU is its fragmentation, before and after); fgd-pool takes it back.
    if (pools_) grow += ctx.request_gpu_milli * ForeignWeight(ctx.cluster, target, h);
    // Δ = −grow / w milli-GPU; the score takes Δ / 1000.
    return kRefMax - RefScore(-double(grow) / (double(w) * 1000.0));
  }

  bool has_cluster_score(const Request& r) const override {
    return pools_ && r.gpu.kind != core::GpuRequest::Kind::kNone && r.gpu.models.empty();
  }

  int64_t ClusterScore(RankContext& ctx, int cls) override {
    const Cluster::Index& x = ctx.cluster;
    const std::vector<int>& pools = x.classes[cls].pools;
    if (pools.empty() || !TargetTiesModels(ctx.cluster, Target(ctx.mix))) return 0;
    // The free share of the host's pools, over its devices.
    double free = 0;
    for (int p : pools) {
      const ModelPool& pool = x.model_pools[p];
      free += 1.0 - double(pool.allocated_milli) / double(pool.capacity_milli);
    }
    return int64_t(std::floor(double(kPoolSteps) * free / double(pools.size()))) * kStep;
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

  // Σ weight of the target's GPU classes that may use none of host h's devices, per host class
  // for the target's plan.
  int64_t ForeignWeight(Cluster::Index& x, const WorkloadMix& target, int h) {
    const MixPlan& plan = x.Plan(target);
    if (foreign_version_ != plan.version) {
      foreign_version_ = plan.version;
      foreign_.clear();
    }
    const int cls = x.host_class[h];
    if (foreign_.size() <= size_t(cls)) foreign_.resize(x.classes.size(), -1);
    int64_t& v = foreign_[cls];
    if (v < 0) {
      v = 0;
      const size_t devices = x.classes[cls].gpus.size();
      const DeviceFit* statics = x.ClassFragStatics(cls, plan);
      for (size_t u = 0; u < plan.gpus.size(); ++u) {
        bool usable = false;
        for (size_t p = 0; p < devices && !usable; ++p) {
          usable = statics[u * devices + p].misfit != DeviceMisfit::kModel;
        }
        if (devices > 0 && !usable) v += plan.gpus[u].weight;
      }
    }
    return v;
  }

  // Whether some GPU class of the target allows only some models.
  bool TargetTiesModels(Cluster::Index& x, const WorkloadMix& target) {
    const MixPlan& plan = x.Plan(target);
    if (ties_version_ != plan.version) {
      ties_version_ = plan.version;
      ties_models_ = false;
      for (const MixGpu& mg : plan.gpus) ties_models_ |= !mg.gpu.models.empty();
    }
    return ties_models_;
  }

  const bool pools_;
  uint64_t source_version_ = 0;
  WorkloadMix target_;
  uint64_t foreign_version_ = 0;
  std::vector<int64_t> foreign_;  // by host class; -1 until computed
  uint64_t ties_version_ = 0;
  bool ties_models_ = false;
};

}  // namespace

std::unique_ptr<Ranker> NewFgdRefRanker() { return std::make_unique<FgdRefRanker>(false); }
std::unique_ptr<Ranker> NewFgdPoolRanker() { return std::make_unique<FgdRefRanker>(true); }

}  // namespace berth::sched
