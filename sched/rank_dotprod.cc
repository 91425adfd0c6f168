// dotprod: alignment (cosine) of the host's free vector (CPU, memory, GPU milli, each as a
// fraction of the host's capacity) with the request's.
#include <cmath>

#include "sched/ranker.h"

namespace berth::sched {
namespace {

class DotprodRanker final : public Ranker {
 public:
  int64_t Score(RankContext& ctx, const Candidate& c) override {
    const HostState& host = ctx.cluster.hosts[c.host];
    const core::Resources& free = c.summary.free;
    const core::Resources& asked = ctx.request.resources;
    const int64_t gpu_cap = host.GpuCapacityMilli();
    double req[3] = {0, 0, 0}, fre[3] = {0, 0, 0};
    if (host.capacity.cpu.value() > 0) {
      req[0] = double(asked.cpu.value()) / double(host.capacity.cpu.value());
      fre[0] = double(free.cpu.value()) / double(host.capacity.cpu.value());
    }
    if (host.capacity.memory.value() > 0) {
      req[1] = double(asked.memory.value()) / double(host.capacity.memory.value());
      fre[1] = double(free.memory.value()) / double(host.capacity.memory.value());
    }
    if (gpu_cap > 0) {
      req[2] = double(ctx.request_gpu_milli) / double(gpu_cap);
      fre[2] = double(gpu_cap - c.summary.gpu_used_milli) / double(gpu_cap);
    }
    double dot = req[0] * fre[0] + req[1] * fre[1] + req[2] * fre[2];
    double nr = std::sqrt(req[0] * req[0] + req[1] * req[1] + req[2] * req[2]);
    double nf = std::sqrt(fre[0] * fre[0] + fre[1] * fre[1] + fre[2] * fre[2]);
    return (nr > 0 && nf > 0) ? int64_t(dot / (nr * nf) * double(kScoreMax)) : 0;
  }
};

}  // namespace

std::unique_ptr<Ranker> NewDotprodRanker() { return std::make_unique<DotprodRanker>(); }

}  // namespace berth::sched
