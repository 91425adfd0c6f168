// The rules that let a workload outlive its task or its host: what a workload's restart policy
// (core::RestartSpec) makes of an exit, and how a workload goes back to pending to be placed
// again (after an exit, when its host is lost, when its host is drained). Pure functions of the
// stored workload and the time; ControlPlane writes what they decide (control/failover.cc also
// holds its cordon and drain methods).
#pragma once

#include <string>

#include "absl/time/time.h"
#include "core/workload.h"

namespace berth::control {

// How long the restart after `restarts` earlier ones waits: backoff doubled per restart, at most
// core::kMaxRestartBackoff.
absl::Duration RestartBackoff(const core::RestartSpec& restart, int restarts);

// Called with `w` as an agent's terminal report left it (state stopped or failed). When the
// workload's policy restarts it, `w` goes back to pending with its backoff (retry_at) and one
// more restart counted, and true is returned; the caller releases its host. A workload the user
// stopped or deleted never restarts; one past max_retries stays failed, its reason saying so.
bool RestartAfterExit(core::Workload* w, absl::Time now);

// Whether a live workload of a lost host may be started elsewhere: its policy restarts it, its
// agent fences it, and nobody asked it to stop.
bool ReplaceableOnHostLoss(const core::Workload& w);

// Puts `w` back to pending for the scheduler, keeping its generation (the next placement bumps
// it, so reports about the old copy are refused as stale) and restart count.
void PlaceAgain(core::Workload* w, std::string reason);

}  // namespace berth::control
