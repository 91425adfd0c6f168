// first-fit: every feasible host scores the same, so the lowest-index host wins; a share takes
// the lowest-index device that holds it.
#include "sched/ranker.h"

namespace berth::sched {
namespace {

class FirstFitRanker final : public Ranker {
 public:
  int64_t Score(RankContext&, const Candidate&) override { return 0; }
  SummaryRole summary_role(const Request&) const override { return SummaryRole::kConstant; }
  DeviceOrder device_order() const override { return DeviceOrder::kLowestIndex; }
};

}  // namespace

std::unique_ptr<Ranker> NewFirstFitRanker() { return std::make_unique<FirstFitRanker>(); }

}  // namespace berth::sched
