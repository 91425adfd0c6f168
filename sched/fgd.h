// Fragmentation measure of FGD ("Beware of Fragmentation: Scheduling GPU-Sharing Workloads with
// Fragmentation Gradient Descent", USENIX ATC 2023). For a host n and a request shape c:
//   F_n(c) = all of n's unallocated GPU milli, when c cannot run on n at all (c is CPU-only,
//            does not fit n's CPU, memory or disk, its allowed models exclude n's GPUs, or its
//            GPUs do not fit);
//          = otherwise the sum of free milli of n's GPUs too small to hold c's per-GPU share.
// F_n(M) = Σ_c p_c F_n(c) for a mix M. Values here are integers: F in milli-GPU, and the mix
// form returns Σ_c weight_c F_n(c) (divide by the mix's total weight for F_n(M)).
//
// Whether a shape runs and which devices hold it is the fits rule of sched/fits.h.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>

#include "sched/mix.h"
#include "sched/model.h"

namespace berth::sched {

// F_n(c) in milli-GPU.
int64_t ShapeFragmentation(const HostState& host, const Shape& shape);
// Σ_c weight_c · F_n(c).
int64_t WeightedFragmentation(const HostState& host, const WorkloadMix& mix);

}  // namespace berth::sched
