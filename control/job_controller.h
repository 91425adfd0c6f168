// JobController: runs each training job (core/job.h) as a gang of task workloads. A job owns its
// tasks as a service owns its replicas: they carry the label berth.job=NAME and are named
// NAME-INDEX (NAME-INDEX-rN for the Nth retry of a task). Each pass, for every job, the
// controller
//   * creates the tasks of an attempt, marked as one gang (core::kGangLabel), so that the
//     scheduling pass places all of them at once or none (control/cluster_model.h), each with
//     RANK, WORLD_SIZE, MASTER_PORT (a free port of its range, per attempt), BERTH_JOB and
//     BERTH_TASK_INDEX in its env; MASTER_ADDR and LOCAL_RANK are added when the gang is placed;
//   * counts the tasks of the current attempt that exited 0: `completions` of them end the job
//     `succeeded` (the others are stopped);
//   * after a task failure, within restart.max_retries: with scope gang stops every task and,
//     once restart.backoff passed, creates a new attempt's gang; with scope task creates only
//     the failed task again (a gang of one). Past max_retries (or with policy never) the job ends
//     `failed`, its message saying which task failed and why;
//   * fails a job whose gang waited longer than placement_timeout, with the scheduler's reason;
//   * keeps finished tasks (stopped, with their logs) until the job is removed;
//   * gives a job's checkpoint disk to task 0 of each attempt: the attempt waits until the
//     earlier task 0 has stopped, and the disk is released from it first.
// Cancelling (Delete) a running job stops its tasks and ends it `cancelled`; deleting a finished
// job deletes its tasks, then the job. Every job change is one compare-and-set write with its
// event; tasks are created, stopped and deleted through the ControlPlane, like any workload.
//
// Ownership: borrows the ControlPlane, which must outlive it.
// Thread-safety: public methods are thread-safe. Passes run on one thread at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control/control_plane.h"
#include "control/events.h"
#include "control/pass_loop.h"
#include "core/clock.h"
#include "core/job.h"
#include "state/repository.h"

namespace berth::control {

inline constexpr std::string_view kJobPrefix = "/jobs/";

struct JobControllerOptions {
  core::Clock* clock = nullptr;  // defaults to the control plane's
  // MASTER_PORT is chosen from this range, skipping ports of other running jobs and those
  // `port_free` refuses.
  int port_min = 17000;
  int port_max = 19999;
  // Whether a port looks free; null = it can be bound on this host's loopback (the server's
  // host, which is the tasks' host in dev mode).
  std::function<bool(int)> port_free;
  absl::Duration period = absl::Milliseconds(250);  // how often the loop runs a pass
  // Whether this server should act now (the leader, with several servers); null = always.
  std::function<bool()> active;
  // Records that `workload`, a task whose run has ended, no longer holds `disk`
  // (StorageService::Release): how a job's checkpoint disk passes from an earlier attempt's
  // task 0 to the next. Null: never handed over (the next task 0 cannot take the disk).
  std::function<absl::Status(const std::string& disk, const std::string& workload)> release_disk;
};

// DELETE's answer: the job as it stands, and whether it is gone already (false: cancelled and
// kept, or its tasks are being deleted first).
struct JobDeletion {
  core::Job job;
  bool deleted = false;
};

class JobController {
 public:
  JobController(ControlPlane* control, JobControllerOptions options);
  ~JobController();
  JobController(const JobController&) = delete;
  JobController& operator=(const JobController&) = delete;

  // Errors: InvalidArgument (naming the field), AlreadyExists, NotFound.
  absl::StatusOr<core::Job> Create(const core::JobSpec& spec);
  absl::StatusOr<core::Job> Get(std::string_view name);
  absl::StatusOr<std::vector<core::Job>> List(int64_t* revision = nullptr);
  // A job still running is cancelled: it ends `cancelled`, its tasks are stopped and kept with
  // their logs. A finished job is removed: its tasks are deleted, then the job.
  absl::StatusOr<JobDeletion> Delete(std::string_view name);

  // One pass over every job; returns how many tasks it created, stopped or deleted.
  absl::StatusOr<int> ReconcileOnce();

  // Runs a pass every options.period on a background thread until Stop().
  void Start();
  void Stop();
  int64_t loop_failures() const { return loop_.failures(); }

 private:
  using JobRepository =
      state::Repository<core::Job,
                        state::FunctionCodec<core::Job, core::EncodeJob, core::DecodeJob>>;
  struct PassState;                                   // job_controller.cc
  using Event = std::pair<std::string, std::string>;  // type, message

  absl::StatusOr<int> ReconcileJob(const JobRepository::Item& item, PassState& pass)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_);
  // Creates task `index` of `job` for the current attempt; returns its name.
  absl::StatusOr<std::string> CreateTask(const core::Job& job, int index, bool whole_gang,
                                         PassState& pass) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_);
  // A port in the range no running job holds and port_free accepts; 0 when there is none.
  int AllocatePort(PassState& pass) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_);
  // Writes the job as the pass leaves it with its events (if anything changed); a lost race is
  // left to the next pass.
  absl::Status WriteJob(const JobRepository::Item& item, core::Job next,
                        const std::vector<Event>& events);

  ControlPlane* const control_;
  JobControllerOptions options_;
  core::Clock* const clock_;
  const EventLog events_;
  JobRepository jobs_;

  absl::Mutex pass_mu_;  // one pass at a time
  int port_cursor_ ABSL_GUARDED_BY(pass_mu_) = 0;

  PassLoop loop_;  // last: stopped before the members its passes use go
};

std::string JobKey(std::string_view name);

}  // namespace berth::control
