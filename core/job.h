// Training jobs (`kind: job`): a workload template run as `parallelism` tasks placed together as
// one gang (every task or none), each told its rank and where task 0 listens, retried with a
// backoff after a failure, until `completions` tasks exited 0 (`succeeded`) or the retries ran
// out (`failed`). The job controller (control/job_controller.h) converges the tasks on the spec.
// Specs decode strictly, and errors name the job and the field (`job "train": restart.backoff
// ...`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/json.h"
#include "core/workload.h"

namespace berth::core {

// The labels the job controller puts on the tasks it creates: the owning job, the task's index
// (its RANK) and the attempt it belongs to.
inline constexpr std::string_view kJobLabel = "berth.job";
inline constexpr std::string_view kTaskLabel = "berth.task";
inline constexpr std::string_view kAttemptLabel = "berth.attempt";
// A gang: workloads carrying the same berth.gang are placed all at once or not at all, once
// berth.gang-size of them wait for placement (control/cluster_model.h). The member whose
// berth.task is 0 is the gang's rendezvous: members placed with it get MASTER_ADDR (its host's
// address, or 127.0.0.1 when they all share its host) and LOCAL_RANK (their order among the
// members placed on their host).
inline constexpr std::string_view kGangLabel = "berth.gang";
inline constexpr std::string_view kGangSizeLabel = "berth.gang-size";
// A task's name is JOB-INDEX (or JOB-INDEX-rATTEMPT for a retry), so a job name leaves room.
inline constexpr size_t kMaxJobNameLength = 48;
// A gang commits in one store transaction (etcd takes 128 operations: two per task and one per
// host), which bounds its size.
inline constexpr int kMaxParallelism = 32;
inline constexpr int kMaxJobRetries = 100;
// How long a task may take to stop after SIGTERM (the ACPI shutdown of a VM) before it is killed,
// when it is not the agent's default (`berth agent --stop-grace`): a duration such as "60s", up
// to kMaxStopGrace. The job controller puts it on the tasks of a job with a checkpoint; any
// workload may carry it.
inline constexpr std::string_view kStopGraceLabel = "berth.stop-grace";
inline constexpr absl::Duration kMaxStopGrace = absl::Hours(1);

// Where the tasks of a job write their checkpoints, as the tasks see it (a directory every host
// the tasks may run on shares), and how long a stopped task has to write one: a task told to stop
// (its job cancelled, its gang stopped after a failure, or preempted by a higher priority
// workload) gets SIGTERM and `grace` before it is killed. Every task is told the directory in
// BERTH_CHECKPOINT_DIR; the tasks of an attempt after the first (a retry, or the gang placed
// again after a preemption) are also told BERTH_RESUME_FROM, the same directory.
//
// `disk` names a Berth disk that holds the checkpoints, for a template of kind container or vm.
// A disk has one holder at a time, so task 0 (rank 0, the one a data-parallel trainer lets write
// checkpoints) holds it: a container has it mounted at `dir`, a VM sees it as its next virtio
// disk. A later attempt's task 0 takes it over once the earlier holder has stopped; until then
// the attempt waits, so it always resumes from the checkpoint written last.
struct JobCheckpoint {
  std::string dir;
  absl::Duration grace = absl::Seconds(30);
  std::string disk;  // empty: `dir` is a directory the hosts share
  bool operator==(const JobCheckpoint&) const = default;
};
inline constexpr size_t kMaxCheckpointDirLength = 1024;
// The variable that tells a task its checkpoint directory. The agent reports when anything in it
// last changed (core::WorkloadUsage::checkpoint_at), and preemption prefers victims that lose
// the least work by it.
inline constexpr std::string_view kCheckpointDirEnv = "BERTH_CHECKPOINT_DIR";
// How the reason of a workload the scheduler preempted begins while it waits to be placed again
// ("preempted by NAME (priority N)"); the job controller tells a preempted task by it.
inline constexpr std::string_view kPreemptedReasonPrefix = "preempted by ";

// What a failed task does to its job: `on-failure` retries (after `backoff`, at most
// `max_retries` times over the job's life), `never` fails the job at once. `scope: gang` (the
// default) stops every task and places the whole gang again, as a distributed trainer that lost
// a peer needs; `scope: task` starts only the failed task again.
struct JobRestart {
  enum class Policy { kOnFailure, kNever };
  enum class Scope { kGang, kTask };
  Policy policy = Policy::kOnFailure;
  int max_retries = 3;
  absl::Duration backoff = absl::Seconds(10);
  Scope scope = Scope::kGang;
  bool operator==(const JobRestart&) const = default;
};
std::string_view JobRestartPolicyName(JobRestart::Policy policy);
std::string_view JobRestartScopeName(JobRestart::Scope scope);

struct JobSpec {
  std::string name;
  WorkloadSpec workload_template;  // its name is the job's; tasks get their own
  int parallelism = 1;             // tasks in the gang
  int completions = 0;             // tasks that must exit 0; 0 (left out) = parallelism
  JobRestart restart;
  std::optional<int> priority;  // the tasks' priority; unset = the template's
  // How long the gang may wait for room before the job fails; zero = as long as it takes.
  absl::Duration placement_timeout = absl::ZeroDuration();
  std::optional<JobCheckpoint> checkpoint;
  bool operator==(const JobSpec&) const = default;

  int Completions() const { return completions > 0 ? completions : parallelism; }
};

// Decodes and validates a job spec ({"name", "kind": "job", "template", "parallelism",
// "completions", "restart", "priority", "placement_timeout", "checkpoint"}); errors name the job
// and the field, those of the template with a `template.` prefix.
absl::StatusOr<JobSpec> DecodeJobSpec(const Json& json);
Json EncodeJobSpec(const JobSpec& spec);

// pending: waiting for its gang to be placed; running: every task placed; retrying: waiting out
// the backoff before the next attempt; then one of the three ends.
enum class JobState { kPending, kRunning, kRetrying, kSucceeded, kFailed, kCancelled };
std::string_view JobStateName(JobState state);
bool IsJobFinished(JobState state);

// One task workload the job made, as the controller last saw it. A job keeps the tasks of
// earlier attempts (finished, with their logs) until it is removed.
struct JobTaskStatus {
  std::string workload;
  int index = 0;
  int attempt = 0;
  std::string host;
  std::string state;  // the workload's state
  std::optional<int> exit_code;
  std::string reason;
  bool current = false;  // of the attempt the job runs now (or ended with)
  bool operator==(const JobTaskStatus&) const = default;
};

struct JobStatus {
  JobState state = JobState::kPending;
  std::string message;
  int attempt = 0;  // gang attempts started so far, minus one
  int retries = 0;  // retries spent (max_retries bounds them)
  // Times the gang was stopped and placed again because a task was preempted (no retry spent).
  int preemptions = 0;
  int succeeded = 0;    // tasks of the current attempt that exited 0
  int master_port = 0;  // MASTER_PORT of the current attempt
  // The current workload of each task index; empty while it waits to be (re)created.
  std::vector<std::string> current;
  std::vector<JobTaskStatus> tasks;
  absl::Time retry_at = absl::InfinitePast();  // the next attempt starts no earlier
  absl::Time attempt_started_at = absl::InfinitePast();
  absl::Time finished_at = absl::InfinitePast();
  bool removing = false;  // its tasks are deleted, then the job
  bool operator==(const JobStatus&) const = default;
};

struct Job {
  JobSpec spec;
  JobStatus status;
  int64_t revision = 0;
  absl::Time created_at = absl::InfinitePast();
  absl::Time updated_at = absl::InfinitePast();
};

Json EncodeJobStatus(const JobStatus& status);
absl::StatusOr<JobStatus> DecodeJobStatus(const Json& json);
Json EncodeJob(const Job& job);
absl::StatusOr<Job> DecodeJob(const Json& json);

}  // namespace berth::core
