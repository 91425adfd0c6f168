// labels: the host's labels match every selector of the request's host_selector.
#include "sched/checker.h"

namespace berth::sched {
namespace {

class LabelsChecker final : public Checker {
 public:
  CheckScope scope() const override { return CheckScope::kClass; }
  bool Prepare(const CheckContext& ctx) override { return !ctx.request.host_selector.empty(); }
  int CheckClass(const CheckContext& ctx, int cls, ClassCheck&) override {
    const Labels& labels = ctx.index.classes[cls].labels;
    for (const LabelSelector& sel : ctx.request.host_selector) {
      if (!sel.Matches(labels)) return kLabels;
    }
    return kFeasible;
  }
};

}  // namespace

std::unique_ptr<Checker> NewLabelsChecker() { return std::make_unique<LabelsChecker>(); }

}  // namespace berth::sched
