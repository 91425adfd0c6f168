#include "control/control_plane.h"

#include <algorithm>
#include <set>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_format.h"
#include "control/cluster_model.h"
#include "control/failover.h"
#include "control/service_controller.h"
#include "core/guard.h"
#include "core/job.h"
#include "core/log.h"
#include "core/names.h"
#include "core/secret.h"
#include "core/service.h"
#include "core/status.h"
#include "core/strings.h"
#include "sched/cluster.h"
#include "sched/explain.h"
#include "sched/scheduler.h"

namespace berth::control {

using core::Cat;
using core::Json;
using core::Workload;
using core::WorkloadState;

std::string WorkloadKey(std::string_view name) { return Cat(kWorkloadPrefix, name); }
std::string HostKey(std::string_view name) { return Cat(kHostPrefix, name); }
std::string HostAllocKey(std::string_view name) { return Cat(kHostAllocPrefix, name); }
std::string HostCredentialKey(std::string_view name) { return Cat(kHostCredentialPrefix, name); }

std::optional<Action> ParseAction(std::string_view text) {
  if (text == "start") return Action::kStart;
  if (text == "stop") return Action::kStop;
  if (text == "pause") return Action::kPause;
  if (text == "resume") return Action::kResume;
  return std::nullopt;
}

absl::StatusOr<Json> HostAllocCodec::Encode(const HostAlloc& alloc) {
  return Json{{"workloads", alloc.workloads}};
}

absl::StatusOr<HostAlloc> HostAllocCodec::Decode(const Json& json) {
  if (!json.is_object() || !json.contains("workloads") || !json["workloads"].is_object()) {
    return absl::InvalidArgumentError("workloads: must be an object");
  }
  HostAlloc alloc;
  for (auto it = json["workloads"].begin(); it != json["workloads"].end(); ++it) {
    if (!it->is_number_integer()) {
      return absl::InvalidArgumentError(Cat("workloads.", it.key(), ": must be an integer"));
    }
    alloc.workloads[it.key()] = it->get<int64_t>();
  }
  return alloc;
}

absl::StatusOr<Json> HostCredentialCodec::Encode(const HostCredential& credential) {
  return Json{{"sha256", credential.sha256}, {"issued_at", core::EncodeTime(credential.issued_at)}};
}

absl::StatusOr<HostCredential> HostCredentialCodec::Decode(const Json& json) {
  if (!json.is_object() || !json.contains("sha256") || !json["sha256"].is_string()) {
    return absl::InvalidArgumentError("sha256: must be a string");
  }
  HostCredential credential;
  credential.sha256 = json["sha256"].get<std::string>();
  if (json.contains("issued_at")) credential.issued_at = core::DecodeTime(json["issued_at"]);
  return credential;
}

namespace {

constexpr int kMaxCasAttempts = 64;

absl::Status Conflict(std::string_view what) {
  return absl::AbortedError(Cat(what, ": too many concurrent updates, retry"));
}

}  // namespace

struct Snapshot {
  std::map<std::string, sched::Quota> quotas;  // by tenant
  std::vector<core::Host> hosts;
  std::map<std::string, std::pair<HostAlloc, int64_t>> allocs;  // by host, with mod revision
  // Hosts whose allocation record does not decode: nothing is placed there until it is fixed,
  // since what they hold is unknown.
  std::set<std::string> unreadable_allocs;
  std::map<std::string, std::pair<Workload, int64_t>> workloads;  // by name, with mod revision
  absl::Time now;  // when it was read: a restart's backoff ends by this clock
};

ControlPlane::ControlPlane(state::Store* store, ControlPlaneOptions options)
    : store_(store),
      options_(std::move(options)),
      policy_(sched::Policy::Parse(options_.policy)),
      clock_(options_.clock ? options_.clock : &core::SystemClock::Get()),
      events_(store, clock_),
      workloads_(store, "workload", std::string(kWorkloadPrefix)),
      hosts_(store, "host", std::string(kHostPrefix)),
      allocs_(store, "allocation record of host", std::string(kHostAllocPrefix)),
      credentials_(store, "credential of host", std::string(kHostCredentialPrefix)),
      model_(std::make_unique<ClusterModel>(store)),
      started_at_(clock_->Now()) {}

ControlPlane::~ControlPlane() { Stop(); }

absl::StatusOr<std::pair<Workload, int64_t>> ControlPlane::ReadWorkload(std::string_view name) {
  BERTH_ASSIGN_OR_RETURN(std::optional<WorkloadRepository::Item> item, workloads_.Find(name));
  if (!item) return absl::NotFoundError(Cat("workload \"", name, "\" not found"));
  item->value.revision = item->mod_revision;
  return std::make_pair(std::move(item->value), item->mod_revision);
}

absl::Status ControlPlane::AddRelease(state::TxnRequest* txn, std::string_view host,
                                      std::string_view name) {
  absl::StatusOr<std::optional<AllocRepository::Item>> alloc = allocs_.Find(host);
  if (!alloc.ok()) {
    // A damaged record is not made worse by leaving it: the scheduler keeps the host out of
    // placement until it is repaired (see ReadSnapshot).
    if (alloc.status().code() != absl::StatusCode::kDataLoss) return alloc.status();
    core::ReportError("control", Cat("release of workload ", name), alloc.status());
    return absl::OkStatus();
  }
  if (!alloc->has_value() || (*alloc)->value.workloads.erase(std::string(name)) == 0) {
    return absl::OkStatus();
  }
  return allocs_.AddUpdate(txn, host, (*alloc)->value, (*alloc)->mod_revision);
}

absl::StatusOr<Workload> ControlPlane::CreateWorkload(const core::WorkloadSpec& spec) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("workload", spec.name));
  if (spec.kind == core::WorkloadKind::kProcess && core::RequestsRoot(spec.user) &&
      !options_.allow_root_workloads) {
    return absl::PermissionDeniedError(
        Cat("workload \"", spec.name, "\": user \"", spec.user,
            "\" is root, and this server does not run root workloads (start it with "
            "--allow-root-workloads, or pick an unprivileged user)"));
  }
  Workload w;
  w.spec = spec;
  if (reference_check_) BERTH_RETURN_IF_ERROR(reference_check_(&w.spec));
  w.status.state = WorkloadState::kPending;
  w.status.desired = core::DesiredState::kRunning;
  w.status.reason = "waiting for placement";
  w.created_at = w.updated_at = clock_->Now();
  state::TxnRequest txn;
  BERTH_RETURN_IF_ERROR(workloads_.AddCreate(&txn, spec.name, w));
  events_.Add(&txn.then_ops, "workload", spec.name, "created",
              Cat(core::WorkloadKindName(spec.kind), " workload created"));
  BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store_->Txn(txn));
  if (resp.succeeded) {
    absl::MutexLock lock(&mix_mu_);
    mix_tracker_.Observe(WorkloadRequest(w));
  }
  if (!resp.succeeded) {
    return absl::AlreadyExistsError(Cat(
        "workload \"", spec.name, "\": name is already taken; delete it first or pick another"));
  }
  w.revision = resp.revision;
  return w;
}

absl::StatusOr<Workload> ControlPlane::GetWorkload(std::string_view name) {
  BERTH_ASSIGN_OR_RETURN(auto pair, ReadWorkload(name));
  return std::move(pair.first);
}

absl::StatusOr<std::vector<Workload>> ControlPlane::ListWorkloads(int64_t* revision) {
  // Unreadable objects are skipped rather than failing every list (and every scheduling
  // pass); said at debug level, as each pass would say it again.
  std::vector<absl::Status> undecodable;
  BERTH_ASSIGN_OR_RETURN(WorkloadRepository::ListResult list, workloads_.List(&undecodable));
  for (const absl::Status& s : undecodable) core::LogDebug("skipped: %s", s.ToString());
  std::vector<Workload> out;
  out.reserve(list.items.size());
  for (auto& item : list.items) {
    item.value.revision = item.mod_revision;
    out.push_back(std::move(item.value));
  }
  if (revision) *revision = list.revision;
  return out;
}

absl::StatusOr<Workload> ControlPlane::DeleteWorkload(std::string_view name, bool* deleted) {
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    BERTH_ASSIGN_OR_RETURN(auto pair, ReadWorkload(name));
    auto& [w, rev] = pair;
    state::TxnRequest txn;
    bool host_live = false;
    if (!w.status.host.empty() && !core::IsTerminal(w.status.state)) {
      auto host = GetHost(w.status.host);
      host_live = host.ok() && host->state == core::HostState::kReady;
    }
    bool now = !host_live;
    if (now) {
      workloads_.AddDelete(&txn, name, rev);
      if (!w.status.host.empty()) BERTH_RETURN_IF_ERROR(AddRelease(&txn, w.status.host, name));
      events_.Add(&txn.then_ops, "workload", name, "deleted", "workload deleted");
    } else {
      if (w.status.desired == core::DesiredState::kDeleted) {
        if (deleted) *deleted = false;
        return w;
      }
      w.status.desired = core::DesiredState::kDeleted;
      w.status.reason = "deleting: waiting for the agent to stop it";
      w.updated_at = clock_->Now();
      BERTH_RETURN_IF_ERROR(workloads_.AddUpdate(&txn, name, w, rev));
      events_.Add(&txn.then_ops, "workload", name, "deleting",
                  Cat("asked host ", w.status.host, " to stop it"));
    }
    BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store_->Txn(txn));
    if (resp.succeeded) {
      if (deleted) *deleted = now;
      w.revision = resp.revision;
      return w;
    }
  }
  return Conflict(Cat("workload \"", name, "\""));
}

absl::StatusOr<Workload> ControlPlane::Act(std::string_view name, Action action) {
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    BERTH_ASSIGN_OR_RETURN(auto pair, ReadWorkload(name));
    auto& [w, rev] = pair;
    auto& s = w.status;
    std::string event_type, message;
    auto refuse = [&](std::string_view why) {
      return absl::FailedPreconditionError(Cat("workload \"", name, "\": ", why));
    };
    if (s.desired == core::DesiredState::kDeleted) return refuse("is being deleted");
    switch (action) {
      case Action::kStart:
        if (!core::IsTerminal(s.state)) {
          if (s.desired == core::DesiredState::kStopped) {
            return refuse(Cat("is still stopping (state ", core::WorkloadStateName(s.state),
                              "); start it once it has stopped"));
          }
          return w;  // already started: nothing to do
        }
        {
          const int64_t generation = s.generation;
          s = core::WorkloadStatus{};
          s.generation = generation;
        }
        s.state = WorkloadState::kPending;
        s.desired = core::DesiredState::kRunning;
        s.reason = "started again: waiting for placement";
        event_type = "started";
        message = "start requested";
        break;
      case Action::kStop:
        if (core::IsTerminal(s.state)) return w;
        if (s.desired == core::DesiredState::kStopped) return w;
        s.desired = core::DesiredState::kStopped;
        if (s.host.empty()) {
          s.state = WorkloadState::kStopped;
          s.reason = "stopped before it was placed";
          s.finished_at = clock_->Now();
        } else {
          s.reason = "stop requested";
        }
        event_type = "stop";
        message = "stop requested";
        break;
      case Action::kPause:
        if (s.state == WorkloadState::kPaused || s.desired == core::DesiredState::kPaused) return w;
        if (s.state != WorkloadState::kRunning && s.state != WorkloadState::kStarting &&
            s.state != WorkloadState::kScheduled) {
          return refuse(
              Cat("can be paused only while running, state is ", core::WorkloadStateName(s.state)));
        }
        if (s.desired != core::DesiredState::kRunning) return refuse("is stopping");
        s.desired = core::DesiredState::kPaused;
        s.reason = "pause requested";
        event_type = "pause";
        message = "pause requested";
        break;
      case Action::kResume:
        if (s.desired != core::DesiredState::kPaused && s.state != WorkloadState::kPaused) {
          if (s.state == WorkloadState::kRunning) return w;
          return refuse(Cat("is not paused, state is ", core::WorkloadStateName(s.state)));
        }
        s.desired = core::DesiredState::kRunning;
        s.reason = "resume requested";
        event_type = "resume";
        message = "resume requested";
        break;
    }
    w.updated_at = clock_->Now();
    state::TxnRequest txn;
    BERTH_RETURN_IF_ERROR(workloads_.AddUpdate(&txn, name, w, rev));
    events_.Add(&txn.then_ops, "workload", name, event_type, message);
    BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store_->Txn(txn));
    if (resp.succeeded) {
      w.revision = resp.revision;
      return w;
    }
  }
  return Conflict(Cat("workload \"", name, "\""));
}

absl::StatusOr<Workload> ControlPlane::ReportStatus(std::string_view host, std::string_view name,
                                                    const StatusReport& report) {
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    BERTH_ASSIGN_OR_RETURN(auto pair, ReadWorkload(name));
    auto& [w, rev] = pair;
    auto& s = w.status;
    if (s.host != host || s.generation != report.generation) {
      return absl::FailedPreconditionError(Cat("workload \"", name, "\": report for generation ",
                                               report.generation, " on host ", host,
                                               " is stale (now generation ", s.generation,
                                               " on host ", s.host.empty() ? "none" : s.host, ")"));
    }
    if (core::IsTerminal(s.state)) return w;  // a final state is never reopened by an agent
    bool changed = s.state != report.state || s.reason != report.reason;
    if (!changed && s.exit_code == report.exit_code) return w;
    WorkloadState before = s.state;
    s.state = report.state;
    s.reason = report.reason;
    s.exit_code = report.exit_code;
    s.oom_killed = report.oom_killed;
    if (report.state == WorkloadState::kRunning && s.started_at == absl::InfinitePast()) {
      s.started_at = clock_->Now();
    }
    bool terminal = core::IsTerminal(report.state);
    if (terminal) s.finished_at = clock_->Now();
    w.updated_at = clock_->Now();
    // The restart policy may send it back to pending (its host is released below).
    const bool restart = terminal && RestartAfterExit(&w, clock_->Now());

    state::TxnRequest txn;
    bool remove = terminal && s.desired == core::DesiredState::kDeleted;
    if (remove) {
      workloads_.AddDelete(&txn, name, rev);
    } else {
      BERTH_RETURN_IF_ERROR(workloads_.AddUpdate(&txn, name, w, rev));
    }
    if (terminal) BERTH_RETURN_IF_ERROR(AddRelease(&txn, host, name));
    if (before != report.state) {
      std::string message = report.reason.empty()
                                ? Cat(core::WorkloadStateName(before), " -> ",
                                      core::WorkloadStateName(report.state), " on ", host)
                                : report.reason;
      if (report.exit_code) message = Cat(message, " (exit code ", *report.exit_code, ")");
      events_.Add(&txn.then_ops, "workload", name, core::WorkloadStateName(report.state), message);
    }
    if (remove) events_.Add(&txn.then_ops, "workload", name, "deleted", "workload deleted");
    if (restart) events_.Add(&txn.then_ops, "workload", name, "restarting", s.reason);
    BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store_->Txn(txn));
    if (resp.succeeded) {
      w.revision = resp.revision;
      return w;
    }
  }
  return Conflict(Cat("workload \"", name, "\""));
}

namespace {

// The host name a credential "NAME:SECRET" claims to speak for; empty when it has no such form.
std::string_view ClaimedHost(std::string_view credential) {
  size_t colon = credential.find(':');
  if (colon == std::string_view::npos || colon == 0) return {};
  return credential.substr(0, colon);
}

}  // namespace

absl::StatusOr<HostRegistration> ControlPlane::RegisterHost(const std::string& name,
                                                            const core::HostInventory& inventory,
                                                            const RegisterHostOptions& options) {
  BERTH_RETURN_IF_ERROR(core::ValidateHostName(name));
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    // A stored host that no longer decodes is replaced by this registration, as if it had been
    // down; a damaged credential refuses it (DataLoss), since it can no longer say who owns the
    // name.
    BERTH_ASSIGN_OR_RETURN(state::GetResponse got, store_->Get(hosts_.Key(name)));
    BERTH_ASSIGN_OR_RETURN(std::optional<CredentialRepository::Item> cred, credentials_.Find(name));
    HostRegistration out;
    core::Host& h = out.host;
    h.name = name;
    h.registered_at = clock_->Now();
    int64_t rev = 0;
    bool was_down = false;
    if (got.kv) {
      rev = got.kv->mod_revision;
      absl::StatusOr<HostRepository::Item> old = hosts_.Decode(*got.kv);
      if (old.ok()) {
        h.registered_at = old->value.registered_at;
        was_down = old->value.state == core::HostState::kDown;
        // An operator's cordon (and a drain under way) outlive the agent's restarts.
        h.cordoned = old->value.cordoned;
        h.draining = old->value.draining;
        h.drain_current = old->value.drain_current;
        h.drain_moved = old->value.drain_moved;
      } else {
        was_down = true;
        core::ReportError("control", Cat("registration of host ", name), old.status());
      }
    }
    const bool presented = !options.credential.empty();
    const bool matches =
        presented && cred && ClaimedHost(options.credential) == name &&
        core::ConstantTimeEquals(core::Sha256Hex(options.credential), cred->value.sha256);
    if (presented && !matches) {
      return absl::PermissionDeniedError(
          Cat("host \"", name, "\": the credential presented is not this host's"));
    }
    if (got.kv && cred && !presented) {
      return absl::AlreadyExistsError(
          Cat("host \"", name,
              "\" is already registered with its own credential: its agent registers again with "
              "the credential from its first registration (DATA_DIR/host.credential); to give the "
              "name to a new machine, remove the host first with `berth host rm ",
              name, "` once it is down"));
    }
    if (got.kv && !cred && !was_down) {
      return absl::AlreadyExistsError(
          Cat("host \"", name,
              "\" is registered and live without a credential; it can join again once it is "
              "down (no heartbeat for ",
              absl::FormatDuration(options_.host_ttl), "), or after `berth host rm ", name, "`"));
    }
    state::TxnRequest txn;
    h.inventory = inventory;
    h.state = core::HostState::kReady;
    h.last_heartbeat = clock_->Now();
    BERTH_RETURN_IF_ERROR(hosts_.AddWrite(&txn, name, h, rev));
    if (matches) {
      // The credential stays; the guard keeps a concurrent removal or reissue from being lost.
      txn.compares.push_back(
          state::Compare::ModRevision(credentials_.Key(name), cred->mod_revision));
    } else {
      BERTH_ASSIGN_OR_RETURN(std::string secret, core::RandomHexToken(24));
      out.credential = Cat(name, ":", secret);
      BERTH_RETURN_IF_ERROR(credentials_.AddWrite(
          &txn, name,
          HostCredential{.sha256 = core::Sha256Hex(out.credential), .issued_at = clock_->Now()},
          cred ? cred->mod_revision : 0));
    }
    events_.Add(&txn.then_ops, "host", name,
                got.kv ? (was_down ? "up" : "reregistered") : "registered",
                Cat(core::FormatCpu(inventory.capacity.cpu), " cpu, ",
                    core::FormatMiB(inventory.capacity.memory.value()), " memory, ",
                    inventory.gpus.size(), " gpus"));
    // A host whose KVM does not work still runs VMs, much slower: say so where operators look.
    if (auto it = inventory.fingerprint.find("vm_accel_fallback");
        it != inventory.fingerprint.end() && it->second == "true") {
      auto reason = inventory.fingerprint.find("vm_accel_reason");
      events_.Add(&txn.then_ops, "host", name, "vm-accel-fallback",
                  Cat("VMs use tcg: ",
                      reason == inventory.fingerprint.end() ? "kvm unusable" : reason->second));
    }
    BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store_->Txn(txn));
    if (resp.succeeded) {
      absl::MutexLock lock(&mu_);
      leases_.Renew(name, clock_->Now());
      // Its agent says again what it holds, with its next heartbeat.
      if (auto it = warm_states_.find(name); it != warm_states_.end()) warm_states_.erase(it);
      if (auto it = warm_checked_.find(name); it != warm_checked_.end()) warm_checked_.erase(it);
      h.revision = resp.revision;
      return out;
    }
  }
  return Conflict(Cat("host \"", name, "\""));
}

absl::StatusOr<std::string> ControlPlane::AuthenticateHost(std::string_view credential) {
  std::string_view name = ClaimedHost(credential);
  absl::Status unknown = absl::UnauthenticatedError(
      "invalid host credential: the host was removed or never registered with it");
  if (name.empty() || !core::ValidateHostName(name).ok()) return unknown;
  absl::StatusOr<std::optional<CredentialRepository::Item>> cred = credentials_.Find(name);
  if (!cred.ok()) {
    if (cred.status().code() != absl::StatusCode::kDataLoss) return cred.status();
    // Said to the operator; the caller only learns that this credential is not accepted.
    core::ReportError("control", Cat("authentication of host ", name), cred.status());
    return unknown;
  }
  if (!cred->has_value() ||
      !core::ConstantTimeEquals(core::Sha256Hex(credential), (*cred)->value.sha256)) {
    return unknown;
  }
  return std::string(name);
}

absl::Status ControlPlane::RemoveHost(std::string_view name) {
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    BERTH_ASSIGN_OR_RETURN(core::Host h, GetHost(name));
    if (h.state == core::HostState::kReady) {
      return absl::FailedPreconditionError(
          Cat("host \"", name, "\" is live (last heartbeat ",
              absl::FormatDuration(absl::Trunc(clock_->Now() - h.last_heartbeat, absl::Seconds(1))),
              " ago): stop its agent first; it can be removed once it is down (no heartbeat for ",
              absl::FormatDuration(options_.host_ttl), ")"));
    }
    state::TxnRequest txn;
    hosts_.AddDelete(&txn, name, h.revision);
    // Unguarded: whatever these hold, they go with the host.
    txn.then_ops.push_back(state::Op::Delete(credentials_.Key(name)));
    txn.then_ops.push_back(state::Op::Delete(allocs_.Key(name)));
    events_.Add(&txn.then_ops, "host", name, "removed", "removed; its credential is revoked");
    BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store_->Txn(txn));
    if (resp.succeeded) {
      absl::MutexLock lock(&mu_);
      leases_.Forget(name);
      if (auto it = marked_down_.find(name); it != marked_down_.end()) marked_down_.erase(it);
      if (auto it = usage_.find(name); it != usage_.end()) usage_.erase(it);
      if (auto it = task_apis_.find(name); it != task_apis_.end()) task_apis_.erase(it);
      if (auto it = checkpoints_.find(name); it != checkpoints_.end()) checkpoints_.erase(it);
      if (auto it = warm_states_.find(name); it != warm_states_.end()) warm_states_.erase(it);
      if (auto it = warm_checked_.find(name); it != warm_checked_.end()) warm_checked_.erase(it);
      if (auto it = usage_history_.find(name); it != usage_history_.end()) {
        usage_history_.erase(it);
      }
      return absl::OkStatus();
    }
  }
  return Conflict(Cat("host \"", name, "\""));
}

absl::Status ControlPlane::Heartbeat(std::string_view name,
                                     const std::optional<core::HostUsage>& usage,
                                     const std::optional<TaskApiEndpoint>& task_api) {
  // The lease lives in memory; the store hears of a heartbeat only when it brings a host back.
  // The model answers whether the host exists and is up without a store read; a host it does
  // not hold yet (registered an instant ago, or the model is not loaded) is read from the store.
  std::optional<HostLiveness> known = model_->Liveness(name);
  if (!known) {
    BERTH_RETURN_IF_ERROR(model_->Sync());
    known = model_->Liveness(name);
  }
  if (!known) BERTH_RETURN_IF_ERROR(GetHost(name).status());  // NotFound, said as GetHost says it
  bool marked_down = false;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    leases_.Renew(name, now);
    marked_down = marked_down_.contains(name);
    if (task_api) {
      task_apis_[std::string(name)] = *task_api;
    } else if (auto it = task_apis_.find(name); it != task_apis_.end()) {
      task_apis_.erase(it);
    }
    if (usage) {
      usage_[std::string(name)] = *usage;
      std::map<std::string, absl::Time> checkpointed;
      for (const core::WorkloadUsage& w : usage->workloads) {
        if (w.checkpoint_at) checkpointed[w.name] = *w.checkpoint_at;
      }
      if (checkpointed.empty()) {
        checkpoints_.erase(std::string(name));
      } else {
        checkpoints_[std::string(name)] = std::move(checkpointed);
      }
      std::deque<UsageSample>& history = usage_history_[std::string(name)];
      if (history.empty() || now - history.back().time >= options_.usage_resolution) {
        history.push_back({now, *usage});
      }
      while (!history.empty() && now - history.front().time > options_.usage_history) {
        history.pop_front();
      }
    }
  }
  // A host this server marked down an instant ago may still look ready in the model.
  if (known && known->state == core::HostState::kReady && !marked_down) return absl::OkStatus();
  BERTH_ASSIGN_OR_RETURN(core::Host h, GetHost(name));
  if (h.state != core::HostState::kDown) {
    absl::MutexLock lock(&mu_);
    marked_down_.erase(std::string(name));
    return absl::OkStatus();
  }
  {
    // Back from the dead: it is schedulable again. The workloads failed while it was down are
    // no longer assigned, so its agent stops them; any not failed yet stay assigned to it.
    h.state = core::HostState::kReady;
    h.last_heartbeat = clock_->Now();
    state::TxnRequest txn;
    BERTH_RETURN_IF_ERROR(hosts_.AddUpdate(&txn, name, h, h.revision));
    events_.Add(&txn.then_ops, "host", name, "up", "heartbeats resumed");
    BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store_->Txn(txn));
    if (resp.succeeded) {
      absl::MutexLock lock(&mu_);
      marked_down_.erase(std::string(name));
    } else {
      // A concurrent change wins; the next heartbeat tries again.
      core::LogDebug(
          "host %s: marking it up lost a race with another write; retried at the next "
          "heartbeat",
          core::AbslView(name));
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> ControlPlane::ReportWarmStates(std::string_view host,
                                                        std::vector<std::string> keys) {
  std::set<std::string> held;
  for (std::string& key : keys) {
    if (core::ParseWarmStateKey(key)) held.insert(std::move(key));
  }
  const absl::Time now = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    if (held.empty()) {
      if (auto it = warm_states_.find(host); it != warm_states_.end()) warm_states_.erase(it);
      if (auto it = warm_checked_.find(host); it != warm_checked_.end()) warm_checked_.erase(it);
      return {};
    }
    warm_states_[std::string(host)] = held;
    auto checked = warm_checked_.find(host);
    if (checked != warm_checked_.end() &&
        now - checked->second < options_.warm_state_check_interval) {
      return {};
    }
    warm_checked_[std::string(host)] = now;
  }
  absl::StatusOr<std::vector<std::string>> unwanted =
      UnwantedWarmStates(store_, std::vector<std::string>(held.begin(), held.end()));
  if (!unwanted.ok()) {
    core::LogWarn("host %s: its warm states are kept until the services can be read: %s",
                  core::AbslView(host), unwanted.status().ToString());
    return {};
  }
  if (!unwanted->empty()) {
    // Its agent deletes them now: no replica is to be placed there for them.
    absl::MutexLock lock(&mu_);
    if (auto it = warm_states_.find(host); it != warm_states_.end()) {
      for (const std::string& key : *unwanted) it->second.erase(key);
      if (it->second.empty()) warm_states_.erase(it);
    }
  }
  return *std::move(unwanted);
}

void ControlPlane::NoteWarmState(std::string_view host, const std::string& key) {
  if (!core::ParseWarmStateKey(key)) return;
  absl::MutexLock lock(&mu_);
  warm_states_[std::string(host)].insert(key);
}

std::map<std::string, std::set<std::string>, std::less<>> ControlPlane::WarmStates() {
  absl::MutexLock lock(&mu_);
  return warm_states_;
}

absl::StatusOr<core::Host> ControlPlane::GetHost(std::string_view name) {
  BERTH_ASSIGN_OR_RETURN(std::optional<HostRepository::Item> item, hosts_.Find(name));
  if (!item) return absl::NotFoundError(Cat("host \"", name, "\" not found"));
  core::Host h = std::move(item->value);
  h.revision = item->mod_revision;
  absl::MutexLock lock(&mu_);
  if (std::optional<absl::Time> last = leases_.Last(name)) h.last_heartbeat = *last;
  return h;
}

absl::StatusOr<std::vector<core::Host>> ControlPlane::ListHosts(int64_t* revision) {
  // From the model, like a page without a limit (control_plane_lists.cc).
  ListPage page;
  BERTH_ASSIGN_OR_RETURN(std::vector<core::Host> out, ListHosts(ListOptions{}, &page));
  if (revision) *revision = page.revision;
  return out;
}

absl::StatusOr<std::vector<Workload>> ControlPlane::Assignments(std::string_view host,
                                                                int64_t* revision) {
  // From the model's index of live workloads by host: no other workload is read.
  BERTH_RETURN_IF_ERROR(model_->Sync());
  return model_->LiveWorkloadsOn(host, revision);
}

absl::StatusOr<AssignmentChanges> ControlPlane::AssignmentsSince(std::string_view host,
                                                                 int64_t since) {
  BERTH_RETURN_IF_ERROR(model_->Sync());
  return model_->AssignmentsSince(host, since);
}

absl::StatusOr<std::vector<core::Event>> ControlPlane::ListEvents(int64_t after, size_t limit,
                                                                  int64_t* revision) {
  return events_.List(after, limit, revision);
}

absl::Status ControlPlane::TrimEvents() { return events_.Trim(options_.max_events); }

namespace {

std::string GpuText(int64_t milli) { return core::FormatCpu(core::MilliCpu(milli)); }

Json EncodeQuota(const sched::Quota& q) {
  Json j = Json::object();
  if (q.cpu) j["cpu"] = core::FormatCpu(*q.cpu);
  if (q.memory) j["memory"] = core::FormatMiB(q.memory->value());
  if (q.disk) j["disk"] = core::FormatMiB(q.disk->value());
  if (q.gpu_milli) j["gpu"] = GpuText(*q.gpu_milli);
  if (!q.gpu_milli_by_model.empty()) {
    Json m = Json::object();
    for (const auto& [model, milli] : q.gpu_milli_by_model) m[model] = GpuText(milli);
    j["gpu_by_model"] = m;
  }
  if (!q.devices_by_class.empty()) j["devices"] = q.devices_by_class;
  return j;
}

}  // namespace

absl::StatusOr<Json> ControlPlane::SetQuota(std::string_view tenant, const Json& quota) {
  if (!core::ValidateName("tenant", tenant).ok()) {
    return absl::InvalidArgumentError(
        Cat("quota \"", tenant, "\": tenant must be a name like \"team-a\""));
  }
  BERTH_ASSIGN_OR_RETURN(sched::Quota q, DecodeQuota(tenant, quota));
  Json stored = EncodeQuota(q);
  state::TxnRequest txn;
  txn.then_ops.push_back(state::Op::Put(Cat(kQuotaPrefix, tenant), stored.dump()));
  events_.Add(&txn.then_ops, "tenant", tenant, "quota", Cat("quota set to ", stored.dump()));
  // No compares: the put always commits when the store answers.
  BERTH_RETURN_IF_ERROR(store_->Txn(txn).status());
  return stored;
}

absl::Status ControlPlane::DeleteQuota(std::string_view tenant) {
  if (!core::ValidateName("tenant", tenant).ok()) {
    return absl::InvalidArgumentError(
        Cat("quota \"", tenant, "\": tenant must be a name like \"team-a\""));
  }
  state::TxnRequest txn;
  std::string key = Cat(kQuotaPrefix, tenant);
  txn.compares.push_back(state::Compare::CreateRevision(key, 0));
  txn.else_ops.push_back(state::Op::Delete(key));
  events_.Add(&txn.else_ops, "tenant", tenant, "quota", "quota removed");
  BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store_->Txn(txn));
  if (resp.succeeded) return absl::NotFoundError(Cat("tenant \"", tenant, "\" has no quota"));
  return absl::OkStatus();
}

absl::StatusOr<Snapshot> ControlPlane::ReadSnapshot() {
  Snapshot snap;
  snap.now = clock_->Now();
  BERTH_ASSIGN_OR_RETURN(state::ListResponse quotas, store_->List(kQuotaPrefix));
  for (const auto& kv : quotas.kvs) {
    std::string tenant = kv.key.substr(kQuotaPrefix.size());
    auto q = DecodeQuota(tenant, Json::parse(kv.value, nullptr, false));
    if (!q.ok()) {
      // Placed as if the tenant had no quota; said (and counted) on every pass until fixed.
      core::ReportError("control", "scheduling pass", q.status());
      continue;
    }
    snap.quotas[tenant] = *q;
  }
  BERTH_ASSIGN_OR_RETURN(snap.hosts, ListHosts());
  BERTH_ASSIGN_OR_RETURN(state::ListResponse allocs, store_->List(allocs_.prefix()));
  for (const auto& kv : allocs.kvs) {
    absl::StatusOr<AllocRepository::Item> item = allocs_.Decode(kv);
    if (!item.ok()) {
      core::ReportError("control", "scheduling pass", item.status());
      snap.unreadable_allocs.insert(allocs_.NameOf(kv.key));
      continue;
    }
    snap.allocs[item->name] = {std::move(item->value), item->mod_revision};
  }
  BERTH_ASSIGN_OR_RETURN(std::vector<Workload> all, ListWorkloads());
  for (auto& w : all) {
    int64_t rev = w.revision;
    std::string name = w.spec.name;
    snap.workloads.emplace(std::move(name), std::make_pair(std::move(w), rev));
  }
  return snap;
}

namespace {

// Builds the scheduler's model: ready hosts with their current allocations.
absl::Status BuildCluster(const Snapshot& snap, sched::Cluster* cluster,
                          std::map<int, const core::Host*>* by_index) {
  for (const auto& [tenant, quota] : snap.quotas) cluster->SetQuota(tenant, quota);
  for (const auto& h : snap.hosts) {
    BERTH_ASSIGN_OR_RETURN(int index, cluster->AddHost(SchedulerHostSpec(h)));
    (*by_index)[index] = &h;
    if (h.state != core::HostState::kReady || h.cordoned ||
        snap.unreadable_allocs.contains(h.name)) {
      cluster->SetSchedulable(index, false);
    }
  }
  for (const auto& [host, entry] : snap.allocs) {
    const HostAlloc& alloc = entry.first;
    auto index = cluster->FindHost(host);
    if (!index) continue;
    for (const auto& [name, generation] : alloc.workloads) {
      auto it = snap.workloads.find(name);
      if (it == snap.workloads.end()) continue;
      const Workload& w = it->second.first;
      sched::Placement p;
      p.host = *index;
      p.host_name = host;
      p.gpus = w.status.gpus;
      p.devices = w.status.devices;
      // A record that no longer fits (its host's inventory shrank) is still what the store
      // holds; the snapshot keeps the rest of it. Said at debug level: every pass sees it again.
      if (absl::Status s = cluster->Commit(WorkloadRequest(w), p); !s.ok()) {
        core::LogDebug("workload %s: on host %s beyond what the host now offers: %s", name, host,
                       s.ToString());
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int> ControlPlane::ScheduleOnce() {
  BERTH_RETURN_IF_ERROR(model_->Sync());
  more_pending_ = false;
  if (!model_->HasPending()) return 0;
  BERTH_RETURN_IF_ERROR(policy_.status());
  const sched::WorkloadMix mix = CurrentMix();
  std::map<std::string, absl::Time> checkpoints;
  std::map<std::string, std::set<std::string>, std::less<>> warm_states;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [host, times] : checkpoints_) checkpoints.insert(times.begin(), times.end());
    warm_states = warm_states_;
  }
  BERTH_ASSIGN_OR_RETURN(BatchPlan plan, model_->Plan(*policy_, mix,
                                                      {.max_steps = options_.schedule_batch,
                                                       .now = clock_->Now(),
                                                       .checkpoints = &checkpoints,
                                                       .warm_states = &warm_states}));
  more_pending_ = plan.more;
  return ApplySchedulePlan(plan);
}

namespace {

// Store operations (compares, or writes in one branch) a placement step takes, besides the
// allocation records: its workload's guard and write and its event, and as much per victim.
size_t StepOps(const PlannedStep& step) { return 2 + 2 * step.victims.size(); }

}  // namespace

absl::StatusOr<bool> ControlPlane::CommitPlacements(
    const std::vector<const PlannedStep*>& steps,
    std::map<std::string, std::pair<HostAlloc, int64_t>>* allocs) {
  // Allocation records as these steps leave them, guarded by their revisions before them.
  std::map<std::string, std::pair<HostAlloc, int64_t>> touched;
  auto alloc_of = [&](const std::string& h) -> HostAlloc& {
    auto it = touched.find(h);
    if (it != touched.end()) return it->second.first;
    return (touched[h] = allocs->at(h)).first;
  };
  state::TxnRequest txn;
  const absl::Time now = clock_->Now();
  for (const PlannedStep* step : steps) {
    const Workload& w = step->workload;
    // Victims first: each goes back to pending and leaves its host's allocation record.
    for (const Workload& victim : step->victims) {
      Workload v = victim;
      alloc_of(v.status.host).workloads.erase(v.spec.name);
      v.status = core::WorkloadStatus{};
      v.status.state = WorkloadState::kPending;
      v.status.desired = core::DesiredState::kRunning;
      v.status.reason =
          Cat(core::kPreemptedReasonPrefix, w.spec.name, " (priority ", w.spec.priority, ")");
      v.status.generation = victim.status.generation;
      v.updated_at = now;
      BERTH_RETURN_IF_ERROR(workloads_.AddUpdate(&txn, v.spec.name, v, victim.revision));
      events_.Add(&txn.then_ops, "workload", v.spec.name, "preempted", v.status.reason);
    }
    const sched::Plan& p = step->plan;
    const std::string& host = p.placement.host_name;
    Workload placed = w;
    placed.status.state = WorkloadState::kScheduled;
    placed.status.host = host;
    placed.status.gpus = p.placement.gpus;
    placed.status.devices = p.placement.devices;
    core::ResolveGpuDeviceIds(step->host_gpus, &placed.status.gpus);
    placed.status.generation += 1;
    placed.status.explanation.clear();
    placed.status.reason = Cat("placed on ", host);
    for (const auto& [key, value] : step->env) placed.spec.env[key] = value;
    placed.updated_at = now;
    alloc_of(host).workloads[w.spec.name] = placed.status.generation;
    BERTH_RETURN_IF_ERROR(workloads_.AddUpdate(&txn, w.spec.name, placed, w.revision));
    std::string gpus;
    for (const auto& g : placed.status.gpus) {
      gpus = Cat(gpus, gpus.empty() ? " gpus " : ",", g.index,
                 g.milli < core::kWholeGpuMilli ? Cat("(", g.milli, "m)") : "");
    }
    events_.Add(&txn.then_ops, "workload", w.spec.name, "scheduled", Cat("placed on ", host, gpus));
  }
  for (const auto& [h, entry] : touched) {
    BERTH_RETURN_IF_ERROR(allocs_.AddWrite(&txn, h, entry.first, entry.second));
  }
  BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store_->Txn(txn));
  if (!resp.succeeded) return false;
  for (auto& [h, entry] : touched) {
    entry.second = resp.revision;
    (*allocs)[h] = std::move(entry);
  }
  return true;
}

absl::StatusOr<int> ControlPlane::ApplySchedulePlan(const BatchPlan& plan) {
  // Allocation records as the transactions committed so far left them, with their revisions.
  std::map<std::string, std::pair<HostAlloc, int64_t>> allocs = plan.allocs;
  const size_t max_ops = store_->MaxTxnOps();
  int placed = 0;
  // Placements, in plan order, cut into transactions the store takes.
  std::vector<const PlannedStep*> chunk;
  std::set<std::string> chunk_hosts;
  size_t chunk_ops = 0;
  bool lost = false;
  auto flush = [&]() -> absl::Status {
    if (chunk.empty() || lost) return absl::OkStatus();
    BERTH_ASSIGN_OR_RETURN(bool ok, CommitPlacements(chunk, &allocs));
    if (ok) {
      placed += int(chunk.size());
    } else {
      // Someone else changed what some step read. Step by step (a gang's steps together), the
      // steps before that one still commit; the ones after it were planned as if it committed,
      // so the next pass plans them again on the model as it then stands.
      for (size_t i = 0; i < chunk.size();) {
        std::vector<const PlannedStep*> unit = {chunk[i++]};
        while (!unit[0]->gang.empty() && i < chunk.size() && chunk[i]->gang == unit[0]->gang) {
          unit.push_back(chunk[i++]);
        }
        BERTH_ASSIGN_OR_RETURN(bool one, CommitPlacements(unit, &allocs));
        if (!one) break;
        placed += int(unit.size());
      }
      lost = true;
    }
    chunk.clear();
    chunk_hosts.clear();
    chunk_ops = 0;
    return absl::OkStatus();
  };
  for (size_t i = 0; i < plan.steps.size();) {
    // A gang's placements (consecutive in the plan) go into one transaction: all or none.
    std::vector<const PlannedStep*> unit = {&plan.steps[i++]};
    if (!unit[0]->place) continue;
    while (!unit[0]->gang.empty() && i < plan.steps.size() && plan.steps[i].place &&
           plan.steps[i].gang == unit[0]->gang) {
      unit.push_back(&plan.steps[i++]);
    }
    size_t ops = 0;
    std::set<std::string> unit_hosts;
    for (const PlannedStep* step : unit) {
      ops += StepOps(*step);
      unit_hosts.insert(step->plan.placement.host_name);
      for (const Workload& v : step->victims) unit_hosts.insert(v.status.host);
    }
    size_t new_hosts = 0;
    for (const std::string& h : unit_hosts) new_hosts += chunk_hosts.contains(h) ? 0 : 1;
    const bool full = chunk.size() + unit.size() > options_.placements_per_txn ||
                      (max_ops != 0 && chunk_ops + ops + new_hosts > max_ops);
    if (full) BERTH_RETURN_IF_ERROR(flush());
    if (lost) break;
    chunk.insert(chunk.end(), unit.begin(), unit.end());
    chunk_hosts.insert(unit_hosts.begin(), unit_hosts.end());
    chunk_ops = 0;
    for (const PlannedStep* s : chunk) chunk_ops += StepOps(*s);
    chunk_ops += chunk_hosts.size();
  }
  BERTH_RETURN_IF_ERROR(flush());
  // Explanations of the workloads that stay pending, batched the same way. Losing a race here
  // changes nothing the other steps rely on: the next pass explains again.
  std::vector<const PlannedStep*> explained;
  for (const PlannedStep& step : plan.steps) {
    if (!step.place) explained.push_back(&step);
  }
  const size_t per_txn = std::max<size_t>(
      1, std::min(options_.placements_per_txn, max_ops == 0 ? SIZE_MAX : max_ops / 2));
  for (size_t done = 0; done < explained.size();) {
    const size_t end = std::min(explained.size(), done + per_txn);
    auto build = [&](size_t from, size_t to) -> absl::StatusOr<state::TxnRequest> {
      state::TxnRequest txn;
      for (size_t i = from; i < to; ++i) {
        Workload w = explained[i]->workload;
        w.status.explanation = explained[i]->explanation;
        w.status.reason = "no host fits: see explanation";
        BERTH_RETURN_IF_ERROR(workloads_.AddUpdate(&txn, w.spec.name, w, w.revision));
        events_.Add(&txn.then_ops, "workload", w.spec.name, "unschedulable",
                    explained[i]->explanation);
      }
      return txn;
    };
    BERTH_ASSIGN_OR_RETURN(state::TxnRequest txn, build(done, end));
    BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store_->Txn(txn));
    if (!resp.succeeded && end - done > 1) {
      for (size_t i = done; i < end; ++i) {
        BERTH_ASSIGN_OR_RETURN(state::TxnRequest one, build(i, i + 1));
        // Only a store failure stops the plan; a lost compare is ignored, as said above.
        BERTH_RETURN_IF_ERROR(store_->Txn(one).status());
      }
    }
    done = end;
  }
  return placed;
}

absl::StatusOr<Json> ControlPlane::Tenants() {
  // From the model's cluster, which holds every quota and recorded allocation.
  BERTH_RETURN_IF_ERROR(model_->Sync());
  Json out = Json::array();
  model_->ReadCluster([&](const sched::Cluster& cluster) {
    for (const std::string& tenant : cluster.Tenants()) {
      sched::TenantUsage u = cluster.Usage(tenant);
      Json used = {{"cpu", core::FormatCpu(u.resources.cpu)},
                   {"memory", core::FormatMiB(u.resources.memory.value())},
                   {"disk", core::FormatMiB(u.resources.disk.value())},
                   {"gpu", GpuText(u.gpu_milli)}};
      if (!u.gpu_milli_by_model.empty()) {
        Json m = Json::object();
        for (const auto& [model, milli] : u.gpu_milli_by_model) m[model] = GpuText(milli);
        used["gpu_by_model"] = m;
      }
      if (!u.devices_by_class.empty()) used["devices"] = u.devices_by_class;
      const sched::Quota* q = cluster.FindQuota(tenant);
      out.push_back(
          {{"name", tenant}, {"quota", q ? EncodeQuota(*q) : Json(nullptr)}, {"used", used}});
    }
  });
  return out;
}

absl::StatusOr<Json> ControlPlane::Explain(std::string_view name) {
  BERTH_ASSIGN_OR_RETURN(Workload w, GetWorkload(name));
  Json out = {{"name", w.spec.name}, {"state", core::WorkloadStateName(w.status.state)}};
  if (w.status.state != WorkloadState::kPending) {
    out["explanation"] = Cat("not pending: ", core::WorkloadStateName(w.status.state),
                             w.status.host.empty() ? "" : Cat(" on ", w.status.host));
    return out;
  }
  BERTH_ASSIGN_OR_RETURN(Snapshot snap, ReadSnapshot());
  sched::Cluster cluster;
  std::map<int, const core::Host*> by_index;
  BERTH_RETURN_IF_ERROR(BuildCluster(snap, &cluster, &by_index));
  // As in the scheduling pass, a host without a driver for the workload's kind cannot take it.
  sched::ExplainOptions options;
  options.excluded.assign(cluster.num_hosts(), false);
  options.excluded_check = "driver";
  options.excluded_reason = Cat("no ", core::WorkloadKindName(w.spec.kind), " driver");
  for (const auto& [index, host] : by_index) {
    options.excluded[index] = !HasDriver(host->inventory, w.spec.kind);
  }
  sched::Explanation e = sched::ExplainRequest(cluster, WorkloadRequest(w), options);
  out["explanation"] = e.Text();
  Json checks = Json::array();
  for (const sched::CheckFinding& f : e.failing) {
    checks.push_back({{"check", f.check}, {"hosts", f.hosts}, {"detail", f.detail}});
  }
  out["failing"] = std::move(checks);
  out["to_fit"] = e.to_fit;
  out["hosts"] = e.hosts;
  if (!e.fits_on.empty()) out["fits_on"] = e.fits_on;
  return out;
}

namespace {

// Each device of another class on host `h` of `cluster`, with the workload holding it.
void AddDeviceHolders(const sched::Cluster& cluster, int h, core::HostAllocation* a) {
  for (const sched::DeviceClassState& d : cluster.devices(h)) {
    for (const std::string& id : d.ids) a->devices.push_back({.cls = d.cls, .id = id});
  }
  for (const std::string& id : cluster.AllocationsOn(h)) {
    const sched::Allocation* alloc = cluster.FindAllocation(id);
    if (alloc == nullptr) continue;
    for (const core::DeviceAssignment& da : alloc->placement.devices) {
      for (core::DeviceAllocation& d : a->devices) {
        if (d.cls == da.cls && d.id == da.id) d.holder = id;
      }
    }
  }
}

// What the placed workloads hold on host `i` of `cluster`.
core::HostAllocation AllocationOf(const sched::Cluster& cluster, int i) {
  core::HostAllocation a;
  const sched::HostState& hs = cluster.host(i);
  a.resources = hs.allocated;
  a.gpu_milli = hs.GpuCapacityMilli() - hs.FreeGpuMilli();
  a.workloads = int(cluster.AllocationsOn(i).size());
  for (const sched::GpuState& g : hs.gpus) {
    a.gpus.push_back({.index = g.device.index,
                      .milli = core::kWholeGpuMilli - g.free_milli,
                      .memory_mib = g.device.memory_mib - g.free_memory_mib,
                      .holders = {}});
  }
  for (const std::string& id : cluster.AllocationsOn(i)) {
    const sched::Allocation* alloc = cluster.FindAllocation(id);
    if (alloc == nullptr) continue;
    for (const core::GpuAssignment& ga : alloc->placement.gpus) {
      for (core::GpuDeviceAllocation& d : a.gpus) {
        if (d.index == ga.index) d.holders.push_back(id);
      }
    }
  }
  AddDeviceHolders(cluster, i, &a);
  return a;
}

}  // namespace

absl::StatusOr<std::map<std::string, core::HostAllocation>> ControlPlane::HostAllocations() {
  // From the model's cluster: nothing is decoded, whatever the fleet.
  BERTH_RETURN_IF_ERROR(model_->Sync());
  std::map<std::string, core::HostAllocation> out;
  model_->ReadCluster([&](const sched::Cluster& cluster) {
    for (int i = 0; i < cluster.num_hosts(); ++i)
      out[cluster.host(i).name] = AllocationOf(cluster, i);
  });
  return out;
}

absl::StatusOr<std::vector<HostListing>> ControlPlane::ListHostDetails(const ListOptions& options,
                                                                       ListPage* page) {
  // From the model: the page's hosts only, with what is allocated on each computed from the
  // scheduler's cluster as it holds it; nothing is decoded and no other host is looked at.
  BERTH_RETURN_IF_ERROR(model_->Sync());
  std::vector<HostListing> out;
  model_->ReadHosts(options, page,
                    [&](const core::Host& h, const sched::Cluster& cluster, int index) {
                      HostListing& l = out.emplace_back();
                      l.host = h;
                      if (index >= 0) l.allocated = AllocationOf(cluster, index);
                    });
  absl::MutexLock lock(&mu_);
  for (HostListing& l : out) {
    if (std::optional<absl::Time> last = leases_.Last(l.host.name)) l.host.last_heartbeat = *last;
    if (auto it = usage_.find(l.host.name); it != usage_.end()) l.used = it->second;
  }
  return out;
}

absl::StatusOr<std::vector<UsageSample>> ControlPlane::UsageHistory(std::string_view host) {
  BERTH_RETURN_IF_ERROR(GetHost(host).status());
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  std::vector<UsageSample> out;
  auto it = usage_history_.find(host);
  if (it == usage_history_.end()) return out;
  for (const UsageSample& s : it->second) {
    if (now - s.time <= options_.usage_history) out.push_back(s);
  }
  return out;
}

std::optional<TaskApiEndpoint> ControlPlane::TaskApi(std::string_view host) {
  absl::MutexLock lock(&mu_);
  auto it = task_apis_.find(host);
  if (it == task_apis_.end()) return std::nullopt;
  return it->second;
}

std::string ControlPlane::ReachableAddress(const core::Host& host, std::string_view otherwise) {
  if (!host.inventory.address.empty()) return host.inventory.address;
  if (auto api = TaskApi(host.name); api && !api->address.empty()) return api->address;
  return std::string(otherwise);
}

std::map<std::string, core::HostUsage> ControlPlane::HostUsages() {
  absl::MutexLock lock(&mu_);
  return std::map<std::string, core::HostUsage>(usage_.begin(), usage_.end());
}

namespace {

// Workloads failed per transaction when their host is down. Each takes two operations (its
// write and its event) beside the host's guard and the allocation record, which keeps a
// transaction well under etcd's default limit of 128 operations.
constexpr size_t kFailBatch = 50;

}  // namespace

absl::StatusOr<int> ControlPlane::CheckHostsOnce() {
  // From the model and the in-memory leases, indexed by when each was renewed: a check decodes
  // nothing and costs what it finds, not the fleet.
  BERTH_RETURN_IF_ERROR(model_->Sync());
  const absl::Time now = clock_->Now();
  // Hosts the leases do not know yet (the first check, a registration through another server)
  // get a lease from when this server started leading: after a restart, or a new term as
  // leader, every host gets a full TTL. Looked for only when the model's hosts changed.
  const uint64_t version = model_->HostsVersion();
  std::vector<HostLiveness> all;
  bool walk = false;
  {
    absl::MutexLock lock(&mu_);
    walk = version != leases_version_;
  }
  if (walk) all = model_->AllLiveness();
  std::vector<HostLeases::Expired> lapsed;
  {
    absl::MutexLock lock(&mu_);
    if (walk) {
      for (const HostLiveness& h : all) {
        if (h.state == core::HostState::kDown) continue;
        leases_.TrackIfUnknown(h.name, started_at_);
        // A host found down when its lease lapsed, and up again since without a heartbeat
        // here (the model lagged behind a write): watched again, from its last heartbeat.
        leases_.Rearm(h.name);
      }
      leases_version_ = version;
    }
    // A lease renewed exactly host_ttl ago is still good.
    lapsed = leases_.TakeExpired(now - options_.host_ttl);
  }
  std::vector<std::pair<HostLiveness, absl::Time>> expired;
  for (HostLeases::Expired& e : lapsed) {
    std::optional<HostLiveness> h = model_->Liveness(e.name);
    if (!h) {
      // Removed: its lease goes with it.
      absl::MutexLock lock(&mu_);
      leases_.Forget(e.name);
      continue;
    }
    // Down already: nothing to do until a heartbeat renews (and arms) its lease.
    if (h->state == core::HostState::kDown) continue;
    expired.emplace_back(std::move(*h), e.last);
  }
  // Every expiry taken is dealt with, or armed again for the next pass (which an error here
  // ends early).
  size_t handled = 0;
  absl::Cleanup rearm = [&] {
    if (handled == expired.size()) return;
    absl::MutexLock lock(&mu_);
    for (size_t i = handled; i < expired.size(); ++i) leases_.Rearm(expired[i].first.name);
  };
  for (const std::string& name : model_->DownHosts()) {
    // A host marked down earlier whose workloads were not all failed yet (a batch lost a race,
    // or the server stopped between batches): finish the job.
    std::vector<Workload> left = model_->LiveWorkloadsOn(name);
    if (left.empty() && !model_->HasAllocRecord(name)) continue;
    std::optional<core::Host> host = model_->FindHost(name);
    if (!host || host->state != core::HostState::kDown) continue;
    BERTH_RETURN_IF_ERROR(
        FailWorkloadsOfDownHost(*host, std::move(left), Cat("host ", name, " is down")));
  }
  int down = 0;
  for (; handled < expired.size(); ++handled) {
    const auto& [h, last] = expired[handled];
    std::optional<core::Host> host = model_->FindHost(h.name);
    if (!host) continue;
    std::string why = Cat("host ", h.name, " is down: no heartbeat for ",
                          absl::FormatDuration(absl::Trunc(now - last, absl::Seconds(1))));
    // First the host, so that nothing more is placed there; then its workloads, in batches.
    core::Host updated = *host;
    updated.state = core::HostState::kDown;
    state::TxnRequest txn;
    BERTH_RETURN_IF_ERROR(hosts_.AddUpdate(&txn, h.name, updated, h.revision));
    events_.Add(&txn.then_ops, "host", h.name, "down", why);
    BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store_->Txn(txn));
    if (!resp.succeeded) {
      // It changed meanwhile (a heartbeat): the next pass looks again.
      absl::MutexLock lock(&mu_);
      leases_.Rearm(h.name);
      continue;
    }
    ++down;
    {
      absl::MutexLock lock(&mu_);
      marked_down_.insert(h.name);
    }
    updated.revision = resp.revision;
    BERTH_RETURN_IF_ERROR(FailWorkloadsOfDownHost(updated, model_->LiveWorkloadsOn(h.name), why));
  }
  return down;
}

absl::Status ControlPlane::FailWorkloadsOfDownHost(const core::Host& host,
                                                   std::vector<Workload> on_host,
                                                   const std::string& why) {
  absl::Time now = clock_->Now();
  // What may run elsewhere waits out the grace: by then its agent, if alive but cut off from
  // the servers, has stopped it (fencing), so it never runs in two places.
  const size_t waiting =
      now < ReplaceAfter(host) ? std::erase_if(on_host, ReplaceableOnHostLoss) : 0;
  if (on_host.empty() && waiting > 0) return absl::OkStatus();
  size_t done = 0;
  do {
    const size_t end = std::min(on_host.size(), done + kFailBatch);
    const bool last = end == on_host.size();
    state::TxnRequest txn;
    // Every batch holds only while the host is still down as this pass saw it: a host that came
    // back keeps the workloads not failed yet, with their allocations.
    txn.compares.push_back(state::Compare::ModRevision(hosts_.Key(host.name), host.revision));
    for (size_t i = done; i < end; ++i) {
      Workload& w = on_host[i];
      bool remove = w.status.desired == core::DesiredState::kDeleted;
      int64_t rev = w.revision;
      if (ReplaceableOnHostLoss(w)) {
        PlaceAgain(&w, Cat(why, "; placing it elsewhere (restart: ",
                           core::RestartPolicyName(w.spec.restart.policy), ")"));
        w.updated_at = now;
        BERTH_RETURN_IF_ERROR(workloads_.AddUpdate(&txn, w.spec.name, w, rev));
        events_.Add(&txn.then_ops, "workload", w.spec.name, "rescheduled", w.status.reason);
        continue;
      }
      w.status.state = WorkloadState::kFailed;
      w.status.reason = why;
      w.status.finished_at = now;
      w.updated_at = now;
      if (remove) {
        workloads_.AddDelete(&txn, w.spec.name, rev);
      } else {
        BERTH_RETURN_IF_ERROR(workloads_.AddUpdate(&txn, w.spec.name, w, rev));
      }
      events_.Add(&txn.then_ops, "workload", w.spec.name, "failed", why);
    }
    // The allocation record loses each batch's workloads; the last batch removes it.
    absl::StatusOr<std::optional<AllocRepository::Item>> alloc = allocs_.Find(host.name);
    if (!alloc.ok()) {
      if (alloc.status().code() != absl::StatusCode::kDataLoss) return alloc.status();
      core::ReportError("control", Cat("host ", host.name, " down"), alloc.status());
      if (last && waiting == 0) txn.then_ops.push_back(state::Op::Delete(allocs_.Key(host.name)));
    } else if (alloc->has_value()) {
      AllocRepository::Item& item = **alloc;
      // The record goes with the last batch unless workloads wait out the grace on it.
      if (last && waiting == 0) {
        allocs_.AddDelete(&txn, host.name, item.mod_revision);
      } else {
        for (size_t i = done; i < end; ++i) item.value.workloads.erase(on_host[i].spec.name);
        BERTH_RETURN_IF_ERROR(allocs_.AddUpdate(&txn, host.name, item.value, item.mod_revision));
      }
    }
    if (txn.then_ops.empty()) return absl::OkStatus();  // nothing on the host, no record
    BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store_->Txn(txn));
    // A lost race (a workload changed, the host came back): the next pass reads again.
    if (!resp.succeeded) return absl::OkStatus();
    done = end;
  } while (done < on_host.size());
  return absl::OkStatus();
}

sched::WorkloadMix ControlPlane::CurrentMix() {
  absl::MutexLock lock(&mix_mu_);
  return mix_tracker_.mix();
}

void ControlPlane::Start() {
  {
    // Start may follow a Stop (a server that leads again): the loop starts afresh, and every
    // host gets a full host_ttl from now to check in with this server.
    absl::MutexLock lock(&mu_);
    stopping_ = false;
    kick_ = true;
    leases_.Clear();
    leases_version_ = 0;
    started_at_ = clock_->Now();
  }
  // The mix FGD scores against, from the workloads the store holds (oldest first), read from
  // the model: a server that leads again decodes nothing.
  if (absl::Status synced = model_->Sync(); synced.ok()) {
    std::vector<sched::Request> requests = model_->RequestsByAge();
    absl::MutexLock lock(&mix_mu_);
    mix_tracker_ = sched::MixTracker();
    for (const sched::Request& r : requests) mix_tracker_.Observe(r);
  } else {
    NoteLoopFailure("cluster model", synced);
  }
  auto rev = store_->Revision();
  auto watch = store_->Watch("/", rev.ok() ? *rev + 1 : 0, [this](const state::Event& e) {
    if (e.kv.key.rfind(kEventPrefix, 0) == 0) return;
    absl::MutexLock lock(&mu_);
    kick_ = true;
  });
  if (watch.ok()) watch_ = std::move(*watch);
  loop_ = std::thread([this] { Loop(); });
}

void ControlPlane::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  watch_.reset();
  if (loop_.joinable()) loop_.join();
}

void ControlPlane::NoteLoopFailure(std::string_view what, const absl::Status& s) {
  if (s.ok()) return;
  ++loop_failures_;
  // The loop retries every second: say each distinct failure once, not once a second.
  std::string line = Cat(what, ": ", s.message());
  if (line == last_loop_failure_) return;
  last_loop_failure_ = line;
  core::LogError("control plane: %s", line);
}

void ControlPlane::Loop() {
  absl::Time last_check = absl::InfinitePast();
  int passes = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return kick_ || stopping_; };
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(1));
      if (stopping_) return;
      kick_ = false;
    }
    // A pass that throws is a bug; it is logged and counted, and the next pass runs as usual.
    absl::Status pass = core::RunGuarded("control plane pass", [&] {
      NoteLoopFailure("scheduling pass", ScheduleOnce().status());
      if (more_pending_) {
        // The pass stopped at its batch limit: the next one runs at once.
        absl::MutexLock lock(&mu_);
        kick_ = true;
      }
      // The injected clock, so a test's paused clock decides when hosts are checked.
      if (clock_->Now() - last_check >= absl::Seconds(1)) {
        last_check = clock_->Now();
        NoteLoopFailure("host liveness check", CheckHostsOnce().status());
        NoteLoopFailure("drain", DrainHostsOnce());
        if (++passes % 60 == 0) NoteLoopFailure("event trim", TrimEvents());
      }
    });
    if (!pass.ok()) ++loop_failures_;
  }
}

}  // namespace berth::control
