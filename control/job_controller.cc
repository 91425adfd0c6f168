#include "control/job_controller.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <tuple>

#include "absl/strings/numbers.h"
#include "core/guard.h"
#include "core/log.h"
#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::control {

using core::Cat;
using core::Job;
using core::JobState;
using core::Workload;
using core::WorkloadState;

std::string JobKey(std::string_view name) { return Cat(kJobPrefix, name); }

namespace {

constexpr int kMaxCasAttempts = 16;

std::string OwnerOf(const Workload& w) {
  auto it = w.spec.labels.find(std::string(core::kJobLabel));
  return it == w.spec.labels.end() ? std::string() : it->second;
}

int IntLabel(const Workload& w, std::string_view label) {
  auto it = w.spec.labels.find(std::string(label));
  int n = 0;
  if (it == w.spec.labels.end() || !absl::SimpleAtoi(it->second, &n)) return -1;
  return n;
}

// A task that did its part: it exited 0 while the job still wanted it to run.
bool Succeeded(const Workload& w) {
  return w.status.state == WorkloadState::kStopped && w.status.exit_code &&
         *w.status.exit_code == 0 && w.status.desired == core::DesiredState::kRunning;
}

// What ended a task, for the job's message.
std::string EndOf(const Workload& w) {
  std::string why = std::string(core::WorkloadStateName(w.status.state));
  if (!w.status.reason.empty()) why = Cat(why, ": ", w.status.reason);
  if (w.status.exit_code && w.status.reason.find("code") == std::string::npos) {
    why = Cat(why, " (exit code ", *w.status.exit_code, ")");
  }
  return why;
}

absl::Status NotFound(std::string_view name) {
  return absl::NotFoundError(Cat("job \"", name, "\" not found"));
}

// Whether `port` can be bound on this host's loopback right now.
bool BindsOnLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

}  // namespace

// What one pass reads once and shares between jobs.
struct JobController::PassState {
  std::vector<Workload> workloads;
  std::map<std::string, std::string> host_address;  // host name -> where tasks reach it
  std::set<int> used_ports;                         // MASTER_PORTs of running jobs
};

JobController::JobController(ControlPlane* control, JobControllerOptions options)
    : control_(control),
      options_(std::move(options)),
      clock_(options_.clock ? options_.clock : control->clock()),
      events_(control->store(), clock_),
      jobs_(control->store(), "job", std::string(kJobPrefix)),
      loop_({.name = "job controller", .period = options_.period, .active = options_.active},
            [this] { return ReconcileOnce().status(); }) {
  const int span = std::max(1, options_.port_max - options_.port_min + 1);
  absl::MutexLock lock(&pass_mu_);
  port_cursor_ = static_cast<int>(std::random_device{}() % span);
}

JobController::~JobController() { Stop(); }

absl::StatusOr<Job> JobController::Create(const core::JobSpec& spec) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("job", spec.name));
  if (spec.parallelism < 1 || spec.parallelism > core::kMaxParallelism) {
    return core::FieldError(
        "job", spec.name, "parallelism",
        Cat("must be between 1 and ", core::kMaxParallelism, ", got ", spec.parallelism));
  }
  Job job;
  job.spec = spec;
  job.status.current.assign(static_cast<size_t>(spec.parallelism), "");
  job.status.message = "creating its tasks";
  job.created_at = job.updated_at = clock_->Now();
  state::TxnRequest txn;
  BERTH_RETURN_IF_ERROR(jobs_.AddCreate(&txn, spec.name, job));
  events_.Add(&txn.then_ops, "job", spec.name, "created",
              Cat("job created: ", spec.parallelism, " tasks of a ",
                  core::WorkloadKindName(spec.workload_template.kind), " workload as one gang"));
  BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, control_->store()->Txn(txn));
  if (!resp.succeeded) {
    return absl::AlreadyExistsError(
        Cat("job \"", spec.name, "\": name is already taken; delete it first or pick another"));
  }
  job.revision = resp.revision;
  return job;
}

absl::StatusOr<Job> JobController::Get(std::string_view name) {
  BERTH_ASSIGN_OR_RETURN(std::optional<JobRepository::Item> item, jobs_.Find(name));
  if (!item) return NotFound(name);
  item->value.revision = item->mod_revision;
  return std::move(item->value);
}

absl::StatusOr<std::vector<Job>> JobController::List(int64_t* revision) {
  std::vector<absl::Status> undecodable;
  BERTH_ASSIGN_OR_RETURN(JobRepository::ListResult list, jobs_.List(&undecodable));
  for (const absl::Status& s : undecodable) core::LogDebug("skipped: %s", s.ToString());
  std::vector<Job> out;
  for (auto& item : list.items) {
    item.value.revision = item.mod_revision;
    out.push_back(std::move(item.value));
  }
  if (revision) *revision = list.revision;
  return out;
}

absl::StatusOr<JobDeletion> JobController::Delete(std::string_view name) {
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    BERTH_ASSIGN_OR_RETURN(std::optional<JobRepository::Item> item, jobs_.Find(name));
    if (!item) return NotFound(name);
    JobDeletion out;
    out.job = item->value;
    core::JobStatus& s = out.job.status;
    state::TxnRequest txn;
    bool gone = false;
    if (!core::IsJobFinished(s.state)) {
      s.state = JobState::kCancelled;
      s.message = "cancelled: its tasks are stopped (cancel it again to remove it)";
      s.finished_at = clock_->Now();
      events_.Add(&txn.then_ops, "job", name, "cancelled", "cancelled; stopping its tasks");
    } else {
      if (s.removing) {
        out.job.revision = item->mod_revision;
        return out;
      }
      BERTH_ASSIGN_OR_RETURN(std::vector<Workload> all, control_->ListWorkloads());
      gone = std::none_of(all.begin(), all.end(),
                          [&](const Workload& w) { return OwnerOf(w) == name; });
      if (gone) {
        jobs_.AddDelete(&txn, name, item->mod_revision);
        events_.Add(&txn.then_ops, "job", name, "deleted", "job deleted");
      } else {
        s.removing = true;
        s.message = "removing: its tasks are deleted first";
        events_.Add(&txn.then_ops, "job", name, "removing", "deleting its tasks");
      }
    }
    if (!gone) {
      out.job.updated_at = clock_->Now();
      BERTH_RETURN_IF_ERROR(jobs_.AddUpdate(&txn, name, out.job, item->mod_revision));
    }
    BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, control_->store()->Txn(txn));
    if (resp.succeeded) {
      out.deleted = gone;
      out.job.revision = resp.revision;
      return out;
    }
  }
  return absl::AbortedError(Cat("job \"", name, "\": too many concurrent updates, retry"));
}

absl::StatusOr<int> JobController::ReconcileOnce() {
  absl::MutexLock lock(&pass_mu_);
  std::vector<absl::Status> undecodable;
  BERTH_ASSIGN_OR_RETURN(JobRepository::ListResult list, jobs_.List(&undecodable));
  for (const absl::Status& s : undecodable) core::LogDebug("skipped: %s", s.ToString());
  if (list.items.empty()) return 0;
  PassState pass;
  BERTH_ASSIGN_OR_RETURN(pass.workloads, control_->ListWorkloads());
  BERTH_ASSIGN_OR_RETURN(std::vector<core::Host> hosts, control_->ListHosts());
  for (const core::Host& h : hosts) {
    // Alone, the host is every task's: its loopback reaches them all.
    pass.host_address[h.name] =
        hosts.size() == 1 ? "127.0.0.1" : control_->ReachableAddress(h, h.name);
  }
  for (const JobRepository::Item& item : list.items) {
    const core::JobStatus& s = item.value.status;
    if (!core::IsJobFinished(s.state) && s.master_port > 0) pass.used_ports.insert(s.master_port);
  }
  int actions = 0;
  absl::Status first_error;
  for (const JobRepository::Item& item : list.items) {
    absl::StatusOr<int> n = ReconcileJob(item, pass);
    if (n.ok()) {
      actions += *n;
    } else if (first_error.ok()) {
      first_error = n.status();
    }
  }
  if (!first_error.ok()) return first_error;
  return actions;
}

absl::StatusOr<int> JobController::ReconcileJob(const JobRepository::Item& item, PassState& pass) {
  Job next = item.value;
  const core::JobSpec& spec = next.spec;
  core::JobStatus& status = next.status;
  const std::string& name = spec.name;
  const absl::Time now = clock_->Now();
  std::map<std::string, const Workload*> owned;
  for (const Workload& w : pass.workloads) {
    if (OwnerOf(w) == name) owned[w.spec.name] = &w;
  }
  std::vector<Event> events;
  int actions = 0;

  if (status.removing) {
    if (owned.empty()) {
      state::TxnRequest txn;
      jobs_.AddDelete(&txn, name, item.mod_revision);
      events_.Add(&txn.then_ops, "job", name, "deleted", "job deleted");
      BERTH_RETURN_IF_ERROR(control_->store()->Txn(txn).status());
      return 0;
    }
    for (const auto& [task, w] : owned) {
      if (w->status.desired == core::DesiredState::kDeleted) continue;
      absl::StatusOr<Workload> d = control_->DeleteWorkload(task);
      if (!d.ok() && d.status().code() != absl::StatusCode::kNotFound) return d.status();
      ++actions;
    }
    return actions;
  }

  const int parallelism = spec.parallelism;
  status.current.resize(static_cast<size_t>(parallelism));
  // Stops a task that still runs (or waits to be placed); its workload stays, with its logs.
  auto stop = [&](const std::string& task) -> absl::Status {
    auto it = owned.find(task);
    if (it == owned.end() || core::IsTerminal(it->second->status.state) ||
        it->second->status.desired != core::DesiredState::kRunning) {
      return absl::OkStatus();
    }
    absl::StatusOr<Workload> s = control_->Act(task, Action::kStop);
    if (!s.ok() && !absl::IsNotFound(s.status()) && !absl::IsFailedPrecondition(s.status())) {
      return s.status();
    }
    ++actions;
    return absl::OkStatus();
  };
  auto stop_current = [&]() -> absl::Status {
    for (const std::string& task : status.current) {
      if (!task.empty()) BERTH_RETURN_IF_ERROR(stop(task));
    }
    return absl::OkStatus();
  };
  auto finish = [&](JobState state, std::string message) -> absl::Status {
    status.state = state;
    status.message = message;
    status.finished_at = now;
    events.emplace_back(std::string(core::JobStateName(state)), std::move(message));
    return stop_current();
  };

  if (core::IsJobFinished(status.state)) {
    // Cancelled, or tasks left over from the end: none keeps running.
    for (const auto& [task, w] : owned) BERTH_RETURN_IF_ERROR(stop(task));
  } else {
    // The current attempt: how many tasks did their part, which failed, and which the scheduler
    // preempted (back to pending, to wait for room again).
    int succeeded = 0;
    std::vector<std::pair<int, std::string>> failed;     // index, what ended it
    std::vector<std::pair<int, std::string>> preempted;  // index, what preempted it
    for (int i = 0; i < parallelism; ++i) {
      const std::string& task = status.current[static_cast<size_t>(i)];
      if (task.empty()) continue;
      auto it = owned.find(task);
      if (it == owned.end()) {
        failed.emplace_back(i, Cat("task ", task, " was deleted"));
      } else if (Succeeded(*it->second)) {
        ++succeeded;
      } else if (core::IsTerminal(it->second->status.state)) {
        failed.emplace_back(i, Cat("task ", task, " ", EndOf(*it->second)));
      } else if (it->second->status.state == WorkloadState::kPending &&
                 it->second->status.generation > 0) {
        // Placed once and waiting again: the scheduler gave its room to a higher priority
        // workload (tasks are never restarted in place; the job does that). The reason says by
        // whom until the next scheduling pass explains why it still waits.
        const std::string& reason = it->second->status.reason;
        preempted.emplace_back(i, reason.rfind(core::kPreemptedReasonPrefix, 0) == 0
                                      ? Cat("task ", task, " was ", reason)
                                      : Cat("task ", task, " was preempted"));
      }
    }
    status.succeeded = succeeded;
    const core::JobRestart& restart = spec.restart;
    if (succeeded >= spec.Completions()) {
      BERTH_RETURN_IF_ERROR(
          finish(JobState::kSucceeded, Cat(succeeded, " of ", parallelism, " tasks completed")));
    } else if (!preempted.empty()) {
      // A gang short of a member cannot go on: every task stops (with the checkpoint's grace to
      // write one) and the whole gang waits to be placed again, resuming from the checkpoint. No
      // retry is spent: a peer that ended meanwhile most likely ended because the preempted task
      // stopped (a trainer's collective fails, or it stops with its group). With `scope: task`,
      // only the preempted tasks start again (a failure of another is handled next).
      ++status.preemptions;
      if (restart.scope == core::JobRestart::Scope::kGang) {
        BERTH_RETURN_IF_ERROR(stop_current());
        std::fill(status.current.begin(), status.current.end(), std::string());
        ++status.attempt;
      } else {
        for (const auto& [index, why] : preempted) {
          BERTH_RETURN_IF_ERROR(stop(status.current[static_cast<size_t>(index)]));
          status.current[static_cast<size_t>(index)] = "";
        }
      }
      status.retry_at = now;
      status.state = JobState::kPending;
      status.message =
          Cat(preempted.front().second, "; ",
              restart.scope == core::JobRestart::Scope::kGang ? "the gang stops" : "it stops",
              spec.checkpoint
                  ? Cat(" (", absl::FormatDuration(spec.checkpoint->grace), " to checkpoint)")
                  : std::string(),
              " and waits to be placed again",
              spec.checkpoint ? Cat(", resuming from ", spec.checkpoint->dir) : std::string());
      events.emplace_back("preempted", status.message);
    } else if (!failed.empty()) {
      const std::string& why = failed.front().second;
      const int wanted =
          restart.scope == core::JobRestart::Scope::kGang ? 1 : static_cast<int>(failed.size());
      if (restart.policy == core::JobRestart::Policy::kNever) {
        BERTH_RETURN_IF_ERROR(finish(JobState::kFailed, Cat(why, "; restart policy never")));
      } else if (status.retries + wanted > restart.max_retries) {
        BERTH_RETURN_IF_ERROR(
            finish(JobState::kFailed, Cat(why, "; no retries left (max_retries ",
                                          restart.max_retries, ", ", status.retries, " spent)")));
      } else {
        status.retries += wanted;
        if (restart.scope == core::JobRestart::Scope::kGang) {
          BERTH_RETURN_IF_ERROR(stop_current());
          std::fill(status.current.begin(), status.current.end(), std::string());
          ++status.attempt;
        } else {
          for (const auto& [index, ended] : failed) status.current[static_cast<size_t>(index)] = "";
        }
        status.retry_at = now + restart.backoff;
        status.state = JobState::kRetrying;
        status.message = Cat(why, "; retry ", status.retries, " of ", restart.max_retries, " (",
                             core::JobRestartScopeName(restart.scope), ") in ",
                             absl::FormatDuration(restart.backoff));
        events.emplace_back("retrying", status.message);
      }
    }
  }

  // Tasks to create: every index without a current task, once the backoff ran out.
  if (!core::IsJobFinished(status.state) && now >= status.retry_at) {
    std::vector<int> missing;
    for (int i = 0; i < parallelism; ++i) {
      if (status.current[static_cast<size_t>(i)].empty()) missing.push_back(i);
    }
    // The checkpoint disk passes to the new task 0 once every earlier task 0 has stopped (and
    // so has written its last checkpoint); until then no task of the attempt is created.
    if (!missing.empty() && missing.front() == 0 && spec.checkpoint &&
        !spec.checkpoint->disk.empty()) {
      const std::string& disk = spec.checkpoint->disk;
      std::vector<std::string> earlier;
      std::string holding;
      for (const auto& [task, w] : owned) {
        if (IntLabel(*w, core::kTaskLabel) != 0) continue;
        if (!core::IsTerminal(w->status.state)) holding = task;
        earlier.push_back(task);
      }
      if (!holding.empty()) {
        status.message = Cat("waiting for task ", holding, " to stop: it holds checkpoint disk ",
                             disk, ", which the next task 0 resumes from");
        missing.clear();
      } else {
        for (const std::string& task : earlier) {
          if (!options_.release_disk) break;
          // A disk that is gone is the new task's to report (its reference check names it).
          absl::Status released = options_.release_disk(disk, task);
          if (!released.ok() && !absl::IsNotFound(released)) return released;
        }
      }
    }
    const bool whole = static_cast<int>(missing.size()) == parallelism;
    if (whole) status.master_port = AllocatePort(pass);
    // The placement timeout counts from the latest tasks' creation.
    if (!missing.empty()) status.attempt_started_at = now;
    std::string failure;
    if (whole && status.master_port == 0) {
      failure = Cat("no free port for MASTER_PORT in ", options_.port_min, "-", options_.port_max);
    }
    for (int i : missing) {
      if (!failure.empty()) break;
      absl::StatusOr<std::string> made = CreateTask(next, i, whole, pass);
      if (!made.ok()) {
        failure = Cat("cannot create task ", i, ": ", made.status().message());
        break;
      }
      status.current[static_cast<size_t>(i)] = *made;
      ++actions;
    }
    if (whole && !failure.empty()) {
      // A gang short of a member would wait for it forever: the next pass makes it whole again.
      for (std::string& task : status.current) {
        if (task.empty()) continue;
        absl::StatusOr<Workload> d = control_->DeleteWorkload(task);
        if (!d.ok() && !absl::IsNotFound(d.status())) return d.status();
        task.clear();
      }
    }
    if (!missing.empty() && failure.empty()) {
      events.emplace_back("tasks-created", whole
                                               ? Cat("attempt ", status.attempt, ": ", parallelism,
                                                     " tasks created as one gang (MASTER_PORT ",
                                                     status.master_port, ")")
                                               : Cat(missing.size(), " task(s) created again"));
    }
    if (!failure.empty()) status.message = failure;
  }

  // Where the job stands, from its current tasks.
  if (!core::IsJobFinished(status.state)) {
    int waiting = 0, running = 0, empty = 0;
    std::string explanation;
    for (const std::string& task : status.current) {
      if (task.empty()) {
        ++empty;
        continue;
      }
      auto it = owned.find(task);
      if (it == owned.end()) {
        ++waiting;  // just created
        continue;
      }
      const Workload& w = *it->second;
      if (w.status.state == WorkloadState::kPending) {
        ++waiting;
        if (explanation.empty()) {
          explanation = w.status.explanation.empty() ? w.status.reason : w.status.explanation;
        }
      } else if (!core::IsTerminal(w.status.state)) {
        ++running;
      }
    }
    if (empty > 0) {
      // Backing off before a retry, or its tasks could not be made: the message says which.
      status.state = now < status.retry_at ? JobState::kRetrying : JobState::kPending;
    } else if (waiting > 0) {
      status.state = JobState::kPending;
      status.message = Cat("waiting for the gang to be placed (", waiting, " of ", parallelism,
                           " tasks wait)", explanation.empty() ? "" : ": ", explanation);
      if (spec.placement_timeout > absl::ZeroDuration() &&
          status.attempt_started_at != absl::InfinitePast() &&
          now - status.attempt_started_at >= spec.placement_timeout) {
        BERTH_RETURN_IF_ERROR(
            finish(JobState::kFailed,
                   Cat("not placed within ", absl::FormatDuration(spec.placement_timeout), ": ",
                       explanation.empty() ? "no host fits" : explanation)));
      }
    } else {
      status.state = JobState::kRunning;
      status.message =
          Cat(running, " of ", parallelism, " tasks running, ", status.succeeded, " completed");
    }
  }

  // Every task the job made, the finished ones of earlier attempts included.
  status.tasks.clear();
  const std::set<std::string> current(status.current.begin(), status.current.end());
  std::set<std::string> listed;
  auto add_task = [&](const std::string& task, const Workload* w) {
    if (task.empty() || !listed.insert(task).second) return;
    core::JobTaskStatus t;
    t.workload = task;
    t.current = current.contains(task);
    if (w != nullptr) {
      t.index = std::max(0, IntLabel(*w, core::kTaskLabel));
      t.attempt = std::max(0, IntLabel(*w, core::kAttemptLabel));
      t.host = w->status.host;
      t.state = std::string(core::WorkloadStateName(w->status.state));
      t.exit_code = w->status.exit_code;
      t.reason = w->status.state == WorkloadState::kPending && !w->status.explanation.empty()
                     ? w->status.explanation
                     : w->status.reason;
    } else {
      t.state = "pending";
      t.reason = "just created";
      for (size_t i = 0; i < status.current.size(); ++i) {
        if (status.current[i] == task) t.index = static_cast<int>(i);
      }
    }
    status.tasks.push_back(std::move(t));
  };
  for (const auto& [task, w] : owned) add_task(task, w);
  for (const std::string& task : status.current) {
    if (!owned.contains(task)) add_task(task, nullptr);
  }
  std::sort(status.tasks.begin(), status.tasks.end(),
            [](const core::JobTaskStatus& a, const core::JobTaskStatus& b) {
              return std::tie(a.index, a.attempt, a.workload) <
                     std::tie(b.index, b.attempt, b.workload);
            });
  BERTH_RETURN_IF_ERROR(WriteJob(item, std::move(next), events));
  return actions;
}

absl::StatusOr<std::string> JobController::CreateTask(const Job& job, int index, bool whole_gang,
                                                      PassState& pass) {
  const core::JobSpec& spec = job.spec;
  int attempt = 0;  // earlier tasks of this index
  for (const Workload& w : pass.workloads) {
    if (OwnerOf(w) == spec.name && IntLabel(w, core::kTaskLabel) == index) ++attempt;
  }
  core::WorkloadSpec w = spec.workload_template;
  w.name = attempt == 0 ? Cat(spec.name, "-", index) : Cat(spec.name, "-", index, "-r", attempt);
  if (spec.priority) w.priority = *spec.priority;
  w.labels[std::string(core::kJobLabel)] = spec.name;
  w.labels[std::string(core::kTaskLabel)] = Cat(index);
  w.labels[std::string(core::kAttemptLabel)] = Cat(attempt);
  // The whole gang is placed together; a task created again alone is a gang of one.
  w.labels[std::string(core::kGangLabel)] =
      whole_gang ? Cat(spec.name, "-a", job.status.attempt) : w.name;
  w.labels[std::string(core::kGangSizeLabel)] = Cat(whole_gang ? spec.parallelism : 1);
  w.env["RANK"] = Cat(index);
  w.env["WORLD_SIZE"] = Cat(spec.parallelism);
  w.env["MASTER_PORT"] = Cat(job.status.master_port);
  w.env["BERTH_JOB"] = spec.name;
  w.env["BERTH_TASK_INDEX"] = Cat(index);
  if (spec.checkpoint) {
    w.env[std::string(core::kCheckpointDirEnv)] = spec.checkpoint->dir;
    // A task after the first of its index (a retry, or its gang placed again after a
    // preemption) picks up where the last checkpoint left off.
    if (attempt > 0) w.env["BERTH_RESUME_FROM"] = spec.checkpoint->dir;
    w.labels[std::string(core::kStopGraceLabel)] = absl::FormatDuration(spec.checkpoint->grace);
    if (index == 0 && !spec.checkpoint->disk.empty()) {
      w.disks.push_back(
          {.disk = spec.checkpoint->disk,
           .mount = w.kind == core::WorkloadKind::kContainer ? spec.checkpoint->dir : ""});
    }
  }
  if (!whole_gang) {
    // Alone, it rejoins the rendezvous of the running tasks: where task 0 runs now.
    for (const Workload& other : pass.workloads) {
      if (other.spec.name != job.status.current[0] || other.status.host.empty()) continue;
      auto addr = pass.host_address.find(other.status.host);
      if (addr != pass.host_address.end()) w.env["MASTER_ADDR"] = addr->second;
    }
  }
  absl::StatusOr<Workload> made = control_->CreateWorkload(w);
  if (made.ok()) return w.name;
  if (!absl::IsAlreadyExists(made.status())) return made.status();
  // Made by an earlier pass whose job write lost a race: it is this job's own.
  absl::StatusOr<Workload> existing = control_->GetWorkload(w.name);
  if (existing.ok() && OwnerOf(*existing) == spec.name) return w.name;
  return absl::AlreadyExistsError(
      Cat("workload \"", w.name, "\" exists and is not this job's; delete it or rename the job"));
}

int JobController::AllocatePort(PassState& pass) {
  const int span = options_.port_max - options_.port_min + 1;
  for (int k = 0; k < span; ++k) {
    const int port = options_.port_min + (port_cursor_ + k) % span;
    if (pass.used_ports.contains(port)) continue;
    const bool free = options_.port_free ? options_.port_free(port) : BindsOnLoopback(port);
    if (!free) continue;
    port_cursor_ = (port_cursor_ + k + 1) % span;
    pass.used_ports.insert(port);
    return port;
  }
  return 0;
}

absl::Status JobController::WriteJob(const JobRepository::Item& item, Job job,
                                     const std::vector<Event>& events) {
  if (job.status == item.value.status && events.empty()) return absl::OkStatus();
  job.updated_at = clock_->Now();
  state::TxnRequest txn;
  BERTH_RETURN_IF_ERROR(jobs_.AddUpdate(&txn, job.spec.name, job, item.mod_revision));
  for (const auto& [type, message] : events) {
    events_.Add(&txn.then_ops, "job", job.spec.name, type, message);
  }
  BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, control_->store()->Txn(txn));
  if (!resp.succeeded) {
    // Cancelled or removed under the pass: the next pass reads it again. The tasks it created
    // are recorded as workloads and adopted by name.
    core::LogDebug("job %s: status write lost a race; the next pass writes it", job.spec.name);
  }
  return absl::OkStatus();
}

void JobController::Start() { loop_.Start(); }

void JobController::Stop() { loop_.Stop(); }

}  // namespace berth::control
