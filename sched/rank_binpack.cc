// binpack: best fit, the host left with the least free capacity after placing (PackKey in
// cluster_index.h weighs CPU, memory and GPUs); a share takes the tightest device.
#include "sched/ranker.h"

namespace berth::sched {
namespace {

class BinpackRanker final : public Ranker {
 public:
  int64_t Score(RankContext&, const Candidate& c) override { return c.util_after; }
  SummaryRole summary_role(const Request&) const override { return SummaryRole::kPack; }
  int64_t SummaryScore(const RankContext&, const GroupSummary&, int64_t util_after) const override {
    return util_after;
  }
};

}  // namespace

std::unique_ptr<Ranker> NewBinpackRanker() { return std::make_unique<BinpackRanker>(); }

}  // namespace berth::sched
