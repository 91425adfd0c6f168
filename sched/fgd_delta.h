// The change of fragmentation FGD weighs (fgd.h): Σ_c w_c (F_n(c) after − F_n(c) before) for host
// `h` taking `changes` for `request`, computed incrementally from the group's cached figures
// (Cluster::Index::Frag). Shared by the fgd and fgd-ref rankers, which differ in the mix they
// pass and in how they turn the change into a score. Zero for an empty mix.
//
// Thread-safety: like the Cluster::Index it reads and whose caches it fills, none.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sched/ranker.h"

namespace berth::sched {

int64_t WeightedFragDelta(Cluster::Index& x, const Request& request, int64_t request_gpu_milli,
                          const WorkloadMix& mix, int h, const GpuChange* changes, size_t n);

}  // namespace berth::sched
