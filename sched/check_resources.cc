// resources: the host's free CPU, memory and disk cover the request (ResourcesFit, the one
// fits rule); the first dimension short is the reason.
#include "sched/checker.h"

namespace berth::sched {
namespace {

class ResourcesChecker final : public GroupChecker<ResourcesChecker> {
 public:
  bool Prepare(const CheckContext&) override { return true; }
  // A group's hosts have identical free resources, so its summary answers for each.
  int Check(const CheckContext& ctx, const GroupSummary& g, const ClassCheck&) const {
    switch (ResourcesFit(g.free, ctx.request.resources)) {
      case ResourceMisfit::kNone:
        return kFeasible;
      case ResourceMisfit::kCpu:
        return kCpu;
      case ResourceMisfit::kMemory:
        return kMemory;
      case ResourceMisfit::kDisk:
        return kDisk;
    }
    return kFeasible;
  }
};

}  // namespace

std::unique_ptr<Checker> NewResourcesChecker() { return std::make_unique<ResourcesChecker>(); }

}  // namespace berth::sched
