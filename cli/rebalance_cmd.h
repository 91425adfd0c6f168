// `berth rebalance plan`: a dry-run defragmentation plan for the pending workloads that no host
// takes, from GET /v1/rebalance/plan: per workload the moves of running workloads that would
// make room, where it would then go, or why there is no plan. Nothing is moved; carrying a plan
// out is not implemented. Takes --json and --help like every command.
#pragma once

#include "core/flags.h"

namespace berth::cli {

core::Command RebalanceCommand();

}  // namespace berth::cli
