#include "control/failover.h"

#include <algorithm>

#include "control/cluster_model.h"
#include "control/control_plane.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::control {

using core::Cat;
using core::Workload;
using core::WorkloadState;

absl::Duration RestartBackoff(const core::RestartSpec& restart, int restarts) {
  absl::Duration wait = restart.backoff;
  for (int i = 0; i < restarts && wait < core::kMaxRestartBackoff; ++i) wait *= 2;
  return std::min(wait, core::kMaxRestartBackoff);
}

bool RestartAfterExit(Workload* w, absl::Time now) {
  const core::RestartSpec& restart = w->spec.restart;
  core::WorkloadStatus& s = w->status;
  if (restart.policy == core::RestartPolicy::kNever) return false;
  // An end the user asked for (stop, delete, a drain's stop) is final.
  if (s.desired != core::DesiredState::kRunning) return false;
  if (restart.policy == core::RestartPolicy::kOnFailure && s.state != WorkloadState::kFailed) {
    return false;
  }
  if (restart.max_retries && s.restarts >= *restart.max_retries) {
    s.reason =
        Cat(s.reason, "; not restarted: restart.max_retries (", *restart.max_retries, ") reached");
    return false;
  }
  const absl::Duration wait = RestartBackoff(restart, s.restarts);
  const int restarts = s.restarts + 1;
  const std::optional<int> exit_code = s.exit_code;
  PlaceAgain(w, Cat(s.reason.empty() ? core::WorkloadStateName(s.state) : s.reason, "; restart ",
                    restarts, restart.max_retries ? Cat(" of ", *restart.max_retries) : "", " in ",
                    absl::FormatDuration(wait)));
  s.restarts = restarts;
  s.retry_at = now + wait;
  s.exit_code = exit_code;
  return true;
}

bool ReplaceableOnHostLoss(const Workload& w) {
  return w.spec.restart.ReplaceOnHostLoss() && (w.status.desired == core::DesiredState::kRunning ||
                                                w.status.desired == core::DesiredState::kPaused);
}

void PlaceAgain(Workload* w, std::string reason) {
  core::WorkloadStatus next;
  next.generation = w->status.generation;
  next.restarts = w->status.restarts;
  next.state = WorkloadState::kPending;
  next.desired = core::DesiredState::kRunning;
  next.reason = std::move(reason);
  w->status = std::move(next);
}

absl::Time ControlPlane::ReplaceAfter(const core::Host& host) {
  absl::Time since = host.last_heartbeat;
  {
    absl::MutexLock lock(&mu_);
    since = std::max(since, started_at_);
  }
  return since + options_.host_ttl + options_.failover_grace;
}

absl::StatusOr<bool> ControlPlane::UpdateHost(core::Host h,
                                              const std::function<void(core::Host&)>& change,
                                              std::string_view event, std::string_view message,
                                              state::TxnRequest txn) {
  const int64_t rev = h.revision;
  change(h);
  BERTH_RETURN_IF_ERROR(hosts_.AddUpdate(&txn, h.name, h, rev));
  events_.Add(&txn.then_ops, "host", h.name, event, message);
  BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store_->Txn(txn));
  return resp.succeeded;
}

namespace {
constexpr int kMaxHostAttempts = 64;
}  // namespace

absl::StatusOr<core::Host> ControlPlane::CordonHost(std::string_view name, bool cordoned) {
  for (int attempt = 0; attempt < kMaxHostAttempts; ++attempt) {
    BERTH_ASSIGN_OR_RETURN(core::Host h, GetHost(name));
    if (h.cordoned == cordoned && (cordoned || !h.draining)) return h;
    BERTH_ASSIGN_OR_RETURN(
        bool done, UpdateHost(
                       h,
                       [&](core::Host& x) {
                         x.cordoned = cordoned;
                         // Lifting the cordon ends a drain; the workload it was moving finishes its
                         // move.
                         if (!cordoned) x.draining = false;
                       },
                       cordoned ? "cordoned" : "uncordoned",
                       cordoned ? "nothing new is placed here" : "open to new placements again"));
    if (done) return GetHost(name);
  }
  return absl::AbortedError(Cat("host \"", name, "\": too many concurrent updates, retry"));
}

absl::StatusOr<core::Host> ControlPlane::DrainHost(std::string_view name) {
  for (int attempt = 0; attempt < kMaxHostAttempts; ++attempt) {
    BERTH_ASSIGN_OR_RETURN(core::Host h, GetHost(name));
    if (h.draining) return h;
    BERTH_ASSIGN_OR_RETURN(bool done, UpdateHost(
                                          h,
                                          [](core::Host& x) {
                                            x.cordoned = true;
                                            x.draining = true;
                                            x.drain_moved = 0;
                                          },
                                          "drain",
                                          "cordoned; moving its restartable workloads elsewhere, "
                                          "one at a time"));
    if (done) {
      {
        absl::MutexLock lock(&mu_);
        kick_ = true;
      }
      return GetHost(name);
    }
  }
  return absl::AbortedError(Cat("host \"", name, "\": too many concurrent updates, retry"));
}

absl::Status ControlPlane::DrainHostsOnce() {
  // The model indexes the hosts being drained: with none, a step reads nothing.
  BERTH_RETURN_IF_ERROR(model_->Sync());
  std::optional<std::vector<Workload>> all;
  for (const std::string& name : model_->DrainingHosts()) {
    absl::StatusOr<core::Host> h = GetHost(name);
    if (absl::IsNotFound(h.status())) continue;  // removed meanwhile
    BERTH_RETURN_IF_ERROR(h.status());
    if (!h->draining && h->drain_current.empty()) continue;
    if (!all) {
      BERTH_ASSIGN_OR_RETURN(all, ListWorkloads());
    }
    BERTH_RETURN_IF_ERROR(DrainStep(*h, *all));
  }
  return absl::OkStatus();
}

absl::Status ControlPlane::DrainStep(const core::Host& h, const std::vector<Workload>& all) {
  auto find = [&](std::string_view name) -> const Workload* {
    for (const Workload& w : all) {
      if (w.spec.name == name) return &w;
    }
    return nullptr;
  };
  if (!h.drain_current.empty()) {
    const Workload* current = find(h.drain_current);
    if (current != nullptr && current->status.desired != core::DesiredState::kDeleted &&
        current->status.host == h.name && core::IsTerminal(current->status.state)) {
      // Stopped here: now it may start elsewhere (the host is cordoned).
      Workload w = *current;
      PlaceAgain(&w, Cat("moved off host ", h.name, " by its drain: waiting for placement"));
      w.updated_at = clock_->Now();
      state::TxnRequest txn;
      txn.compares.push_back(state::Compare::ModRevision(hosts_.Key(h.name), h.revision));
      BERTH_RETURN_IF_ERROR(workloads_.AddUpdate(&txn, w.spec.name, w, current->revision));
      BERTH_RETURN_IF_ERROR(AddRelease(&txn, h.name, w.spec.name));
      events_.Add(&txn.then_ops, "workload", w.spec.name, "moving",
                  Cat("stopped on ", h.name, " by its drain; placing it elsewhere"));
      return store_->Txn(txn).status();  // a lost race is retried by the next pass
    }
    // Moved once it was started again after the drain's stop, on another host (or here, when
    // the cordon was lifted meanwhile), and got past starting.
    const bool settled =
        current == nullptr || current->status.desired == core::DesiredState::kDeleted ||
        (current->status.desired == core::DesiredState::kRunning && !current->status.host.empty() &&
         (current->status.host != h.name || !h.cordoned) &&
         current->status.state != WorkloadState::kScheduled &&
         current->status.state != WorkloadState::kStarting);
    if (!settled) return absl::OkStatus();  // still on its way: one at a time
    const std::string where =
        current == nullptr || current->status.host.empty()
            ? std::string("gone")
            : Cat(core::WorkloadStateName(current->status.state), " on ", current->status.host);
    return UpdateHost(
               h,
               [](core::Host& x) {
                 x.drain_current.clear();
                 ++x.drain_moved;
               },
               "drain", Cat("moved ", h.drain_current, ": ", where))
        .status();
  }
  if (!h.draining) return absl::OkStatus();
  const Workload* next = nullptr;
  int staying = 0;
  for (const Workload& w : all) {
    if (w.status.host != h.name || core::IsTerminal(w.status.state)) continue;
    const bool movable = w.spec.restart.policy != core::RestartPolicy::kNever &&
                         (w.status.desired == core::DesiredState::kRunning ||
                          w.status.desired == core::DesiredState::kPaused);
    if (!movable) {
      ++staying;
    } else if (next == nullptr) {
      next = &w;
    }
  }
  if (next == nullptr) {
    return UpdateHost(
               h, [](core::Host& x) { x.draining = false; }, "drained",
               Cat("moved ", h.drain_moved, " workloads; ", staying,
                   " stay (restart policy never, or stopping)"))
        .status();
  }
  // Stopped here first, so the workload never runs in two places; started elsewhere once its
  // agent says it stopped (above).
  Workload w = *next;
  w.status.desired = core::DesiredState::kStopped;
  w.status.reason = Cat("draining host ", h.name, ": stopping here to start elsewhere");
  w.updated_at = clock_->Now();
  state::TxnRequest txn;
  BERTH_RETURN_IF_ERROR(workloads_.AddUpdate(&txn, w.spec.name, w, next->revision));
  events_.Add(&txn.then_ops, "workload", w.spec.name, "stop", w.status.reason);
  return UpdateHost(
             h, [&](core::Host& x) { x.drain_current = w.spec.name; }, "drain",
             Cat("moving ", w.spec.name), std::move(txn))
      .status();
}

}  // namespace berth::control
