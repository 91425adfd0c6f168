// ControlPlane: the server's business logic over the Store. It owns the rules of the workload
// life cycle (create, actions, agent status reports, delete), host registration and liveness,
// the scheduling pass that turns pending workloads into placements through sched/, and the
// event log. Every change is one compare-and-set transaction that writes the object, the host's
// allocation record and the event together, so nothing is ever allocated twice and a crash
// never leaves half a change. (A host that goes down is one transaction, then its workloads fail
// in batches that each stand alone, so no transaction outgrows a store's limit.) Objects are
// written through state::Repository, one per key prefix. The API layer only parses,
// authenticates and maps errors.
//
// Thread-safety: all public methods are thread-safe; concurrent writers are serialized by the
// store's compare-and-set and retried.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control/events.h"
#include "control/host_leases.h"
#include "control/list_options.h"
#include "core/clock.h"
#include "core/host.h"
#include "core/json.h"
#include "core/workload.h"
#include "sched/mix.h"
#include "sched/scheduler.h"
#include "state/repository.h"
#include "state/store.h"

namespace berth::control {

// Store layout.
inline constexpr std::string_view kWorkloadPrefix = "/workloads/";
inline constexpr std::string_view kHostPrefix = "/hosts/";
inline constexpr std::string_view kHostAllocPrefix = "/hostalloc/";
inline constexpr std::string_view kQuotaPrefix = "/quotas/";
// A host's credential: {"sha256": digest of the credential, "issued_at": time}.
inline constexpr std::string_view kHostCredentialPrefix = "/hostcreds/";

// A host's allocation record: the workloads placed there, each with its placement generation.
// Every placement and release writes it with compare-and-set, so two placements racing for the
// same host's capacity conflict in the store. Stored as {"workloads": {NAME: GENERATION}}.
struct HostAlloc {
  std::map<std::string, int64_t> workloads;
};
struct HostAllocCodec {
  static absl::StatusOr<core::Json> Encode(const HostAlloc& alloc);
  static absl::StatusOr<HostAlloc> Decode(const core::Json& json);
};

// A host's credential as stored: the digest only, never the secret.
struct HostCredential {
  std::string sha256;
  absl::Time issued_at = absl::InfinitePast();
};
struct HostCredentialCodec {
  static absl::StatusOr<core::Json> Encode(const HostCredential& credential);
  static absl::StatusOr<HostCredential> Decode(const core::Json& json);
};

struct ControlPlaneOptions {
  core::Clock* clock = nullptr;                 // defaults to the system clock
  absl::Duration host_ttl = absl::Seconds(10);  // a host without heartbeats this long is down
  // How long after host_ttl the workloads of a down host that may run elsewhere (restart
  // always/on-failure, fenced) wait before they are placed again: the time their agent, if it
  // is alive but cut off, has to stop them (it fences itself at host_ttl).
  absl::Duration failover_grace = absl::Seconds(3);
  // The scheduling pass's policy. FGD scores against the mix of the workloads created here
  // (the last 1,000, learned again from the store at start).
  std::string policy = std::string(sched::kDefaultPolicy);
  size_t max_events = 10000;  // older events are trimmed
  // Whether process workloads may run as root (`user: root`, uid 0 or gid 0). Off, such a create
  // is refused with PermissionDenied naming the `user` field; every other process workload runs
  // as an unprivileged account on its host.
  bool allow_root_workloads = false;
  // The usage history kept per host in memory (UsageHistory): one report per resolution at
  // most, for the last `usage_history`.
  absl::Duration usage_resolution = absl::Seconds(10);
  absl::Duration usage_history = absl::Hours(1);
  // Decisions (placements and explanations) one scheduling pass plans and commits at most; the
  // loop runs the next pass at once when a pass stops at it.
  size_t schedule_batch = 4096;
  // Placements per transaction at most, under the store's own limit (Store::MaxTxnOps()).
  size_t placements_per_txn = 1000;
  // How often at most a host's warm states are checked against the services that want them
  // (ReportWarmStates): each check reads those services from the store.
  absl::Duration warm_state_check_interval = absl::Minutes(1);
};

// One usage report of a host, as kept in its history.
struct UsageSample {
  absl::Time time;
  core::HostUsage usage;
};

// Where a host's agent serves its task API (logs, console, stats and exec of the workloads it
// runs), as its latest heartbeat reported it: the address the heartbeat came from, the port the
// agent named and the bearer token it takes. Kept in memory only, never stored or shown.
struct TaskApiEndpoint {
  std::string address;  // IP address, as the server saw the heartbeat's peer
  uint16_t port = 0;
  std::string token;
};

// An agent's report about one workload it runs.
struct StatusReport {
  int64_t generation = 0;  // the placement generation the agent acted on
  core::WorkloadState state = core::WorkloadState::kRunning;
  std::string reason;
  std::optional<int> exit_code;
  bool oom_killed = false;
};

// How a host registration proves who it is.
struct RegisterHostOptions {
  // The host credential the request carried; empty when it came with a join token only. A new
  // host needs none; an existing host needs its own.
  std::string credential;
};

struct HostRegistration {
  core::Host host;
  // The host's new credential ("NAME:HEX"), set only when this registration issued one: the one
  // time it is seen, since the store keeps only its SHA-256.
  std::string credential;
};

// A host as a list shows it: with what its placed workloads hold and what its agent last
// measured (none when it sent nothing).
struct HostListing {
  core::Host host;
  core::HostAllocation allocated;
  std::optional<core::HostUsage> used;
};

enum class Action { kStart, kStop, kPause, kResume };
std::optional<Action> ParseAction(std::string_view text);

// A host's assignments as a change since a store revision (ControlPlane::AssignmentsSince).
struct AssignmentChanges {
  std::vector<core::Workload> items;  // the whole set when `full`, else those written since
  std::vector<std::string> removed;   // left the host since (not when `full`)
  int64_t revision = 0;               // the store revision the answer covers
  bool full = true;
};

struct Snapshot;  // internal: a consistent read of hosts, allocations and workloads
class ClusterModel;
struct BatchPlan;
struct PlannedStep;

class ControlPlane {
 public:
  ControlPlane(state::Store* store, ControlPlaneOptions options);
  ~ControlPlane();
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  // Workloads. Errors: InvalidArgument (bad spec), AlreadyExists, NotFound,
  // FailedPrecondition (action not allowed in the current state), PermissionDenied (a root
  // process workload where allow_root_workloads is off).
  absl::StatusOr<core::Workload> CreateWorkload(const core::WorkloadSpec& spec);
  absl::StatusOr<core::Workload> GetWorkload(std::string_view name);
  absl::StatusOr<std::vector<core::Workload>> ListWorkloads(int64_t* revision = nullptr);
  // Deletes at once when nothing runs; otherwise asks the agent to stop and the object goes
  // when it reports. Returns the object as it stands after the call (state may still be live).
  absl::StatusOr<core::Workload> DeleteWorkload(std::string_view name, bool* deleted = nullptr);
  absl::StatusOr<core::Workload> Act(std::string_view name, Action action);
  // Agent report; stale generations are refused with FailedPrecondition.
  absl::StatusOr<core::Workload> ReportStatus(std::string_view host, std::string_view name,
                                              const StatusReport& report);

  // Hosts. A new name is registered and issued a credential that speaks for that host alone.
  // Registering an existing name again (an agent restarting) needs that host's credential:
  // without one it is AlreadyExists, with another host's PermissionDenied. A host recorded
  // without a credential (by an older server) is issued one by a join once it is down.
  absl::StatusOr<HostRegistration> RegisterHost(const std::string& name,
                                                const core::HostInventory& inventory,
                                                const RegisterHostOptions& options = {});
  // The host a credential speaks for, or Unauthenticated when it speaks for none.
  absl::StatusOr<std::string> AuthenticateHost(std::string_view credential);
  // Cordons a host (nothing new is placed there) or lifts it (which also ends a drain).
  // NotFound when there is no such host.
  absl::StatusOr<core::Host> CordonHost(std::string_view name, bool cordoned);
  // Cordons the host and starts moving its restartable workloads (restart policy always or
  // on-failure) elsewhere, one at a time: each is stopped here, then placed again, and the next
  // waits until it runs elsewhere. Progress is on the host (drain_current, drain_moved); the
  // drain ends when none is left. NotFound when there is no such host.
  absl::StatusOr<core::Host> DrainHost(std::string_view name);
  // One step of every drain in progress (the control loop runs it each second).
  absl::Status DrainHostsOnce();
  // Removes a host that is down, with its credential. FailedPrecondition while it is ready,
  // NotFound when there is no such host.
  absl::Status RemoveHost(std::string_view name);
  // A heartbeat, with what the agent measured on its host when it sent one (kept in memory,
  // the latest per host; see HostUsages).
  // A heartbeat without `task_api` forgets the one reported before (an older agent took over).
  absl::Status Heartbeat(std::string_view name,
                         const std::optional<core::HostUsage>& usage = std::nullopt,
                         const std::optional<TaskApiEndpoint>& task_api = std::nullopt);
  // The warm states (SERVICE.rREVISION) the host's agent keeps, as its latest heartbeat said:
  // the scheduler prefers the hosts that hold the state a replica resumes from (PlanOptions).
  // An empty list forgets those reported before. Returns those of `keys` that no service wants
  // any longer (UnwantedWarmStates), for the agent to delete: looked for at most every
  // options.warm_state_check_interval per host, and never when the services cannot be read (the
  // store's error is logged). Keys that are not warm-state keys are ignored.
  std::vector<std::string> ReportWarmStates(std::string_view host, std::vector<std::string> keys);
  // A state just saved on `host` (the save's answer came from its agent): held from now on, so
  // the replicas created at once are placed there and copied from there, before the host's next
  // heartbeat reports it.
  void NoteWarmState(std::string_view host, const std::string& key);
  // The warm states each host reported, by host name (hosts that hold none are absent).
  std::map<std::string, std::set<std::string>, std::less<>> WarmStates();
  // Where the host's agent serves its task API, as its latest heartbeat to this server said;
  // none when it said nothing (an older agent, or one that heartbeats another server).
  std::optional<TaskApiEndpoint> TaskApi(std::string_view host);
  // Where the server reaches `host`: the address its inventory declares, else the one its
  // heartbeats come from (its task API's), else `otherwise`.
  std::string ReachableAddress(const core::Host& host, std::string_view otherwise);
  // What the placed workloads hold on every registered host, by host name.
  absl::StatusOr<std::map<std::string, core::HostAllocation>> HostAllocations();
  // The latest usage each host's agent reported, by host name; hosts that sent none are absent.
  std::map<std::string, core::HostUsage> HostUsages();
  // The host's usage reports of the last options.usage_history, at most one per
  // options.usage_resolution, oldest first (in memory: a restarted server starts empty).
  // NotFound for a host that is not registered.
  absl::StatusOr<std::vector<UsageSample>> UsageHistory(std::string_view host);
  absl::StatusOr<core::Host> GetHost(std::string_view name);
  absl::StatusOr<std::vector<core::Host>> ListHosts(int64_t* revision = nullptr);
  // Workloads placed on `host` that are not yet terminal: what its agent must run.
  absl::StatusOr<std::vector<core::Workload>> Assignments(std::string_view host,
                                                          int64_t* revision = nullptr);
  // The same as a change since store revision `since` (ClusterModel::AssignmentsSince).
  absl::StatusOr<AssignmentChanges> AssignmentsSince(std::string_view host, int64_t since);

  // One page of the workloads (hosts) that pass options.filter, in name order; `page` (may be
  // null) gets the revision read and where the next page starts (control/list_options.h).
  // Entries that do not decode are skipped, as in the full lists.
  absl::StatusOr<std::vector<core::Workload>> ListWorkloads(const ListOptions& options,
                                                            ListPage* page);
  absl::StatusOr<std::vector<core::Host>> ListHosts(const ListOptions& options, ListPage* page);
  // The same page of hosts, each with its allocation and usage: from the cluster model, so a
  // page costs what it holds, whatever the fleet.
  absl::StatusOr<std::vector<HostListing>> ListHostDetails(const ListOptions& options,
                                                           ListPage* page);

  // Events with revision > after, oldest first, at most `limit`.
  absl::StatusOr<std::vector<core::Event>> ListEvents(int64_t after, size_t limit,
                                                      int64_t* revision = nullptr);

  // One scheduling pass over the pending workloads (at most options.schedule_batch decisions),
  // planned on the cluster model and committed in as few transactions as the store takes;
  // returns how many were placed.
  absl::StatusOr<int> ScheduleOnce();
  // Marks hosts without a heartbeat for host_ttl as down and fails their workloads; returns
  // how many hosts went down.
  absl::StatusOr<int> CheckHostsOnce();
  // Tenant quotas: hard limits on cpu, memory, disk, GPUs in all and GPUs per model, e.g.
  // {"cpu": "64", "memory": "512Gi", "gpu": "8", "gpu_by_model": {"A100-SXM4-80GB": "4"}}.
  // A request over its tenant's quota stays pending with the reason "quota".
  absl::StatusOr<core::Json> SetQuota(std::string_view tenant, const core::Json& quota);
  absl::Status DeleteQuota(std::string_view tenant);
  // Every tenant with a quota or placed workloads: {"name", "quota", "used"}.
  absl::StatusOr<core::Json> Tenants();

  // Why a workload is pending, with figures (sched/explain.h): {"name", "state",
  // "explanation" (the text `berth workload explain` prints), "failing": [{"check", "hosts",
  // "detail"}], "to_fit": [...], "hosts", "fits_on" when a host takes it now}. A workload that
  // is not pending has only name, state and explanation ("not pending: running on h").
  absl::StatusOr<core::Json> Explain(std::string_view name);

  // Runs the scheduling pass whenever workloads or hosts change, and the liveness check every
  // second, on a background thread until Stop(). Start() may follow Stop() (a server that leads
  // again); each start gives every host a full host_ttl to heartbeat.
  void Start();
  void Stop();
  // Background passes that failed or threw (a throw is a bug), each logged to stderr once per
  // distinct message; the loop goes on after each.
  int64_t loop_failures() const { return loop_failures_.load(); }

  // Checks a new workload's references to objects other services own (networks, security
  // groups, disks); an error refuses the create. It may add the placement constraints those
  // imply to the spec (a fleet pins a workload to where its disks are). Set before Start(), from
  // one thread.
  void SetReferenceCheck(std::function<absl::Status(core::WorkloadSpec*)> check) {
    reference_check_ = std::move(check);
  }
  state::Store* store() const { return store_; }
  const ControlPlaneOptions& options() const { return options_; }
  // The in-memory cluster model passes plan on (control/cluster_model.h).
  ClusterModel& model() { return *model_; }
  core::Clock* clock() const { return clock_; }

 private:
  absl::StatusOr<std::pair<core::Workload, int64_t>> ReadWorkload(std::string_view name);
  absl::StatusOr<Snapshot> ReadSnapshot();
  // Commits a batch plan: placements in transactions of as many steps as the store takes, each
  // guarded by the revisions the model read; a transaction that loses a race is tried again
  // step by step, and the plan stops at the first step that loses one (the steps after it were
  // planned as if it committed). Explanations follow, batched the same way. Returns how many
  // workloads were placed.
  absl::StatusOr<int> ApplySchedulePlan(const BatchPlan& plan);
  // Commits `steps` in one transaction; false when a guard did not hold. `allocs` holds the
  // allocation records as committed so far, and gets what this transaction wrote.
  absl::StatusOr<bool> CommitPlacements(
      const std::vector<const PlannedStep*>& steps,
      std::map<std::string, std::pair<HostAlloc, int64_t>>* allocs);
  absl::Status TrimEvents();
  // Adds to `txn` the removal of workload `name` from host `host`'s allocation record, guarded
  // by the record's revision; nothing when the record does not hold it.
  absl::Status AddRelease(state::TxnRequest* txn, std::string_view host, std::string_view name);
  // Fails `on_host` (the live workloads of `host`, which is down at host.revision) in batches
  // small enough for any store, and removes the host's allocation record with the last batch.
  // Stops quietly at a batch that loses a race; the next pass of CheckHostsOnce finishes.
  // Workloads that may run elsewhere (ReplaceOnHostLoss) wait for failover_grace after host_ttl
  // and then go back to pending, to be placed on another host; the others fail.
  absl::Status FailWorkloadsOfDownHost(const core::Host& host, std::vector<core::Workload> on_host,
                                       const std::string& why);
  // When the workloads of `host`, down, may be placed elsewhere: host_ttl and failover_grace
  // after its last heartbeat (or after this server started leading, if later).
  absl::Time ReplaceAfter(const core::Host& host);
  // One drain step on host `h` given every workload (control/drain.cc).
  absl::Status DrainStep(const core::Host& h, const std::vector<core::Workload>& all);
  // Writes `h` (read at h.revision) with `change` applied and an event; false on a lost race.
  absl::StatusOr<bool> UpdateHost(core::Host h, const std::function<void(core::Host&)>& change,
                                  std::string_view event, std::string_view message,
                                  state::TxnRequest txn = {});
  void Loop();
  // Counts a failed step of the loop and says it on stderr unless it repeats the last one.
  void NoteLoopFailure(std::string_view what, const absl::Status& s);

  state::Store* const store_;
  std::function<absl::Status(core::WorkloadSpec*)> reference_check_;
  // What the workloads ask for, for FGD; fed at create and from the store at start.
  absl::Mutex mix_mu_;
  sched::MixTracker mix_tracker_ ABSL_GUARDED_BY(mix_mu_);
  sched::WorkloadMix CurrentMix();
  const ControlPlaneOptions options_;
  const absl::StatusOr<sched::Policy> policy_;  // options_.policy, parsed once
  core::Clock* const clock_;
  const EventLog events_;
  // Workloads are stored as EncodeWorkload writes them (with the revision they had when
  // written, which readers replace with the store's).
  using WorkloadRepository =
      state::Repository<core::Workload, state::FunctionCodec<core::Workload, core::EncodeWorkload,
                                                             core::DecodeWorkload>>;
  using HostRepository =
      state::Repository<core::Host,
                        state::FunctionCodec<core::Host, core::EncodeHost, core::DecodeHost>>;
  using AllocRepository = state::Repository<HostAlloc, HostAllocCodec>;
  using CredentialRepository = state::Repository<HostCredential, HostCredentialCodec>;
  WorkloadRepository workloads_;
  HostRepository hosts_;
  AllocRepository allocs_;
  CredentialRepository credentials_;
  const std::unique_ptr<ClusterModel> model_;
  std::atomic<bool> more_pending_{false};  // the last pass stopped at its batch limit

  absl::Mutex mu_;
  // The in-memory leases: the last heartbeat of each host, indexed by time for the liveness
  // check.
  HostLeases leases_ ABSL_GUARDED_BY(mu_);
  // The model's HostsVersion() when the leases last took in every host the model holds.
  uint64_t leases_version_ ABSL_GUARDED_BY(mu_) = 0;
  // Hosts this server marked down, until a heartbeat marks them up (the model may lag by an
  // instant behind the write).
  std::set<std::string, std::less<>> marked_down_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, core::HostUsage, std::less<>> usage_ ABSL_GUARDED_BY(mu_);
  // The checkpoint times of the workloads whose agents reported one, by host then workload: the
  // few that checkpoint, kept apart so a pass need not walk every host's usage.
  std::map<std::string, std::map<std::string, absl::Time>, std::less<>> checkpoints_
      ABSL_GUARDED_BY(mu_);
  // The warm states each host's agent reported, by host, and when each host's were last checked
  // against the services (ReportWarmStates).
  std::map<std::string, std::set<std::string>, std::less<>> warm_states_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time, std::less<>> warm_checked_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, TaskApiEndpoint, std::less<>> task_apis_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::deque<UsageSample>, std::less<>> usage_history_ ABSL_GUARDED_BY(mu_);
  absl::Time started_at_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool kick_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<state::WatchHandle> watch_;
  std::thread loop_;
  std::atomic<int64_t> loop_failures_{0};
  std::string last_loop_failure_;  // only the loop's thread touches it
};

std::string WorkloadKey(std::string_view name);
std::string HostKey(std::string_view name);
std::string HostAllocKey(std::string_view name);
std::string HostCredentialKey(std::string_view name);

}  // namespace berth::control
