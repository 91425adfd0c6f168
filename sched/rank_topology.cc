// topology: a request for several whole devices prefers devices on one NVLink island, then on
// one NUMA node; it also picks such devices on each host (the tightest domain that holds them).
#include <algorithm>
#include <bit>
#include <map>

#include "sched/ranker.h"

namespace berth::sched {
namespace {

class TopologyRanker final : public Ranker {
 public:
  int64_t Score(RankContext& ctx, const Candidate& c) override {
    if (ctx.request.gpu.kind != core::GpuRequest::Kind::kWhole || c.num_changes < 2) {
      return kScoreMax;
    }
    const HostState& host = ctx.cluster.hosts[c.host];
    uint64_t islands = 0, numa = 0;
    for (size_t i = 0; i < c.num_changes; ++i) {
      const core::GpuDevice& d = host.gpus[c.changes[i].pos].device;
      islands |= uint64_t(1) << (d.nvlink_island & 63);
      numa |= uint64_t(1) << (d.numa_node & 63);
    }
    int n_islands = std::popcount(islands);
    if (n_islands <= 1) return kScoreMax;
    return std::popcount(numa) == 1 ? kScoreMax / 2 : kScoreMax / (2 * n_islands);
  }

  // Constant unless the request spans several whole devices.
  SummaryRole summary_role(const Request& r) const override {
    bool multi = r.gpu.kind == core::GpuRequest::Kind::kWhole && r.gpu.count >= 2;
    return multi ? SummaryRole::kVaries : SummaryRole::kConstant;
  }
  int64_t SummaryScore(const RankContext&, const GroupSummary&, int64_t) const override {
    return kScoreMax;
  }

  bool ChooseWholeDevices(const RankContext& ctx, int h, absl::Span<const int> idle, int count,
                          int* chosen) const override {
    const HostState& host = ctx.cluster.hosts[h];
    // The tightest NVLink island that holds the whole request, else the tightest NUMA node.
    for (bool by_island : {true, false}) {
      std::map<int, std::vector<int>> domains;
      for (int i : idle) {
        const core::GpuDevice& d = host.gpus[i].device;
        domains[by_island ? d.nvlink_island : d.numa_node].push_back(i);
      }
      const std::vector<int>* best = nullptr;
      for (const auto& [id, members] : domains) {
        if (int(members.size()) >= count && (best == nullptr || members.size() < best->size())) {
          best = &members;
        }
      }
      if (best != nullptr) {
        std::copy(best->begin(), best->begin() + count, chosen);
        return true;
      }
    }
    return false;
  }
};

}  // namespace

std::unique_ptr<Ranker> NewTopologyRanker() { return std::make_unique<TopologyRanker>(); }

}  // namespace berth::sched
