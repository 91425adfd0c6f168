// The one table of rankers (see ranker.h for how to add one).
#include "sched/ranker.h"

namespace berth::sched {

std::unique_ptr<Ranker> NewFirstFitRanker();
std::unique_ptr<Ranker> NewBinpackRanker();
std::unique_ptr<Ranker> NewSpreadRanker();
std::unique_ptr<Ranker> NewDotprodRanker();
std::unique_ptr<Ranker> NewGpuPackingRanker();
std::unique_ptr<Ranker> NewFgdRanker();
std::unique_ptr<Ranker> NewFgdRefRanker();
std::unique_ptr<Ranker> NewFgdPoolRanker();
std::unique_ptr<Ranker> NewTopologyRanker();

const std::vector<RankerEntry>& RankerTable() {
  static const std::vector<RankerEntry>* const kRankerTable = new std::vector<RankerEntry>{
      {"first-fit", NewFirstFitRanker, "every feasible host scores the same: lowest index wins"},
      {"binpack", NewBinpackRanker, "best fit: the host left with the least free capacity"},
      {"spread", NewSpreadRanker, "the least allocated host"},
      {"dotprod", NewDotprodRanker, "alignment of the host's free vector with the request"},
      {"gpu-packing", NewGpuPackingRanker, "shares onto shared GPUs, then busy hosts, then idle"},
      {"fgd", NewFgdRanker, "the host and GPU where the mix's fragmentation grows least"},
      {"fgd-ref", NewFgdRefRanker,
       "FGD exactly as published (ATC'23): popular classes, 100-step score, ties by host order"},
      {"fgd-pool", NewFgdPoolRanker,
       "fgd-ref counting only usable GPUs, keeping room in each model's pool for tied requests"},
      {"topology", NewTopologyRanker, "multi-GPU requests on one NVLink island, then NUMA node"},
  };
  return *kRankerTable;
}

const RankerEntry* FindRanker(std::string_view name) {
  for (const RankerEntry& e : RankerTable()) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

}  // namespace berth::sched
