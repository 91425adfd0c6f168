// affinity: for each affinity term of the request, the host runs a workload whose label
// matches (affinity) or runs none (anti-affinity); the first term violated is the reason.
#include "absl/container/flat_hash_set.h"
#include "sched/checker.h"

namespace berth::sched {
namespace {

class AffinityChecker final : public Checker {
 public:
  CheckScope scope() const override { return CheckScope::kHost; }
  // Finds, once per request, the hosts running a workload that matches each term.
  bool Prepare(const CheckContext& ctx) override {
    const std::vector<WorkloadAffinity>& terms = ctx.request.affinity;
    matches_.assign(terms.size(), {});
    if (terms.empty()) return false;
    const Cluster::Index& x = ctx.index;
    for (int h = 0; h < int(x.hosts.size()); ++h) {
      for (const std::string& id : x.host_allocations[h]) {
        const Labels& labels = x.allocations.find(id)->second.request.labels;
        for (size_t t = 0; t < terms.size(); ++t) {
          auto it = labels.find(terms[t].key);
          if (it != labels.end() && it->second == terms[t].value) matches_[t].insert(h);
        }
      }
    }
    return true;
  }
  int CheckHost(const CheckContext& ctx, int h, const ClassCheck&, HostCheck&) override {
    const std::vector<WorkloadAffinity>& terms = ctx.request.affinity;
    for (size_t t = 0; t < terms.size(); ++t) {
      const bool present = matches_[t].contains(h);
      if (terms[t].anti && present) return kAntiAffinity;
      if (!terms[t].anti && !present) return kAffinity;
    }
    return kFeasible;
  }

 private:
  std::vector<absl::flat_hash_set<int>> matches_;  // per term of the request being checked
};

}  // namespace

std::unique_ptr<Checker> NewAffinityChecker() { return std::make_unique<AffinityChecker>(); }

}  // namespace berth::sched
