// spread: the least allocated host after placing; a share takes the loosest device.
#include "sched/ranker.h"

namespace berth::sched {
namespace {

class SpreadRanker final : public Ranker {
 public:
  int64_t Score(RankContext&, const Candidate& c) override { return kScoreMax - c.util_after; }
  SummaryRole summary_role(const Request&) const override { return SummaryRole::kSpread; }
  int64_t SummaryScore(const RankContext&, const GroupSummary&, int64_t util_after) const override {
    return kScoreMax - util_after;
  }
  DeviceOrder device_order() const override { return DeviceOrder::kLoosest; }
};

}  // namespace

std::unique_ptr<Ranker> NewSpreadRanker() { return std::make_unique<SpreadRanker>(); }

}  // namespace berth::sched
