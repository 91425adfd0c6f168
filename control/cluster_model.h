// ClusterModel: the control plane's in-memory view of the cluster, kept current from the store's
// watch, so that scheduling passes, the liveness check and an agent's assignments never decode
// the store. It holds every host (with its driver classes), allocation record, workload and
// quota as last written, indexed by state (the pending queue in placement order) and by
// assignment (the live workloads of each host), and a sched::Cluster with every recorded
// allocation committed, updated change by change, which a pass plans on.
//
// Consistency: each key is as the store last wrote it, applied in revision order; Sync() waits
// until the model has applied every revision the store had committed when it was called. Several
// servers may write the same store: their changes arrive through the same watch. After a
// compaction the watch cannot resume, and the model lists the store again. A transaction of
// several keys may be seen half applied for an instant; every write made from the model's
// figures is guarded by the revisions it read, so such a view costs a lost race, never a wrong
// placement.
//
// Thread-safety: thread-safe; one mutex guards the model, held only while applying one change or
// planning one batch (never across store calls). Watch callbacks decode outside it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control/control_plane.h"
#include "core/host.h"
#include "core/json.h"
#include "core/workload.h"
#include "sched/cluster.h"
#include "sched/mix.h"
#include "sched/scheduler.h"
#include "state/store.h"

namespace berth::control {

// The scheduler's request for a workload: its resources, GPUs, labels, constraints, spread and
// the warm state it resumes from.
sched::Request WorkloadRequest(const core::Workload& w);
// "berth.host in [h2], zone = a": the label constraints as a pending explanation shows them.
std::string ConstraintsText(const std::vector<core::LabelConstraint>& constraints);
// Whether the host has a driver for `kind` (a host that names none runs processes only).
bool HasDriver(const core::HostInventory& inventory, core::WorkloadKind kind);
// What the scheduler sees of a host: its capacity, labels and healthy GPUs.
sched::HostSpec SchedulerHostSpec(const core::Host& h);
// A stored or submitted quota; quantities read like resources ("8", "500m", "64Gi").
absl::StatusOr<sched::Quota> DecodeQuota(std::string_view tenant, const core::Json& j);

// One decision of a planned batch: place a workload (evicting victims first), or record why it
// stays pending. Everything a commit needs is copied out of the model.
struct PlannedStep {
  core::Workload workload;  // as the model holds it; revision is its mod revision
  bool place = false;
  sched::Plan plan;                        // when place
  std::vector<core::Workload> victims;     // when place: the workloads plan.victims names
  std::vector<core::GpuDevice> host_gpus;  // when place: the target host's devices
  std::string explanation;                 // when not
  // A gang member's gang (core::kGangLabel): the steps of one gang are consecutive in the plan
  // and commit in one transaction or not at all.
  std::string gang;
  // Variables the placement adds to the workload's env: a gang's rendezvous (MASTER_ADDR,
  // LOCAL_RANK), known only once its members have hosts.
  std::map<std::string, std::string> env;
};

struct BatchPlan {
  // In the order they must be committed: each was planned as if the ones before it committed.
  std::vector<PlannedStep> steps;
  // The allocation records the placements touch, as the model holds them, with their mod
  // revisions (0: no record yet).
  std::map<std::string, std::pair<HostAlloc, int64_t>> allocs;
  bool more = false;  // the batch limit cut the pass short: pending workloads were not looked at
};

struct PlanOptions {
  size_t max_steps = 4096;  // decisions per batch
  // Workloads whose restart backoff ends after this (status.retry_at) wait for a later pass.
  absl::Time now = absl::InfiniteFuture();
  // When workloads last checkpointed, as their agents reported (the others: never). A victim
  // loses the work since its last checkpoint or its start, and preemption prefers those that
  // lose least. Null: none reported.
  const std::map<std::string, absl::Time>* checkpoints = nullptr;
  // The warm states each host's agent reported, by host name. A workload labelled
  // berth.warm-state=KEY prefers the hosts that hold KEY among those it fits on and that run the
  // fewest replicas of its service (sched::SchedulerOptions::holds_warm_state). Null: none.
  const std::map<std::string, std::set<std::string>, std::less<>>* warm_states = nullptr;
};

// A host's liveness as the model holds it.
struct HostLiveness {
  std::string name;
  core::HostState state = core::HostState::kReady;
  int64_t revision = 0;
};

// What the model holds, for the memory figures.
struct ModelStats {
  size_t hosts = 0;
  size_t workloads = 0;
  size_t pending = 0;
  size_t allocations = 0;  // committed in the scheduler's cluster
  int64_t revision = 0;    // the store revision the model covers
  int64_t reloads = 0;     // full listings (the first, and after each compaction or stall)
};

class ClusterModel {
 public:
  // `store` must outlive the model. `sync_timeout`: how long Sync() waits for the watch before
  // it lists the store again.
  explicit ClusterModel(state::Store* store, absl::Duration sync_timeout = absl::Seconds(5));
  ~ClusterModel();
  ClusterModel(const ClusterModel&) = delete;
  ClusterModel& operator=(const ClusterModel&) = delete;

  // Brings the model up to the store's current revision: the first call lists the store and
  // starts the watch; a watch that does not catch up within sync_timeout (it ended after a
  // compaction) is replaced by a fresh listing.
  [[nodiscard]] absl::Status Sync();

  // Plans a batch of pending workloads, highest priority first, then oldest, on the model's
  // cluster, and leaves the cluster as it found it (the placements arrive later through the
  // watch, once committed). The members of a gang (core::kGangLabel) are planned together when
  // the first of them comes up, through the scheduler's gang placement: all of its waiting
  // members or none, and only once every member exists; until then each says why it waits.
  // Steps that would change nothing (the same explanation again) are left out. Returns an
  // empty plan at once when nothing changed since a pass found nothing to do.
  [[nodiscard]] absl::StatusOr<BatchPlan> Plan(const sched::Policy& policy,
                                               const sched::WorkloadMix& mix,
                                               const PlanOptions& options);
  bool HasPending();

  // Reads of what the model holds (call Sync() first for the store's latest).
  std::optional<core::Host> FindHost(std::string_view name);
  std::optional<HostLiveness> Liveness(std::string_view name);
  // Every host, in name order.
  std::vector<HostLiveness> AllLiveness();
  // Counts changes to which hosts there are and to their states (a host added, removed, marked
  // down or up; a fresh listing): a caller that saw the same count needs no new walk over every
  // host to learn of new ones.
  uint64_t HostsVersion();
  // The hosts that are down, and those being drained or whose drain still moves a workload, in
  // name order: kept as indexes, so the liveness and drain checks cost what they find.
  std::vector<std::string> DownHosts();
  std::vector<std::string> DrainingHosts();
  // One page of the hosts that pass options.filter, in name order after options.after, at most
  // options.limit (0: all): `read` gets each host with the scheduler's cluster and the host's
  // index in it (-1 when the scheduler refused its spec), under the model's lock (it only copies
  // out, and never calls the model). `page` (may be null) gets the revision the model covers and
  // where the next page starts (control/list_options.h). Costs what the page holds (and what a
  // filter skips), not the fleet.
  void ReadHosts(const ListOptions& options, ListPage* page,
                 absl::FunctionRef<void(const core::Host&, const sched::Cluster&, int)> read);
  // The workloads placed on `host` that are not terminal, by name; `revision` gets the store
  // revision the model covers.
  std::vector<core::Workload> LiveWorkloadsOn(std::string_view host, int64_t* revision = nullptr);
  // What changed in those since store revision `since`: the workloads placed on `host`, not
  // terminal, written after it, and the names of those that left it after it (deleted, moved,
  // ended) and are not back. The whole set instead (`full`) when the model cannot tell: `since`
  // is 0, older than the model's load or than the departures it still remembers (the last
  // kMaxDepartures per host), or newer than what it covers.
  static constexpr size_t kMaxDepartures = 64;
  AssignmentChanges AssignmentsSince(std::string_view host, int64_t since);
  // The scheduler requests of every workload held, oldest first: what FGD's mix learns from when
  // a server starts to lead.
  std::vector<sched::Request> RequestsByAge();
  // Runs `read` on the scheduler's cluster as the model holds it (every recorded allocation
  // committed, quotas set), under the model's lock: `read` only copies out, and never calls the
  // model.
  void ReadCluster(absl::FunctionRef<void(const sched::Cluster&)> read);
  // The same, with every workload the model holds, by name, as of the same revision (what a
  // rebalance plan reads: the cluster, the pending queue and what each allocation is).
  void ReadClusterAndWorkloads(
      absl::FunctionRef<void(const sched::Cluster&,
                             const std::map<std::string, core::Workload, std::less<>>&)>
          read);
  // Whether the host has an allocation record (readable or not).
  bool HasAllocRecord(std::string_view host);
  ModelStats Stats();

 private:
  struct HostEntry {
    core::Host host;  // revision: its mod revision
    int index = -1;   // in cluster_; -1 when the scheduler refused its spec
    uint32_t drivers = 0;
  };
  struct AllocEntry {
    HostAlloc alloc;
    int64_t mod_revision = 0;
    bool readable = true;
  };
  // Pending order: priority descending, then creation, then name.
  struct PendingKey {
    int priority = 0;
    absl::Time created_at;
    std::string name;
    bool operator<(const PendingKey& o) const;
  };
  // A change decoded outside the lock.
  struct Change;
  static constexpr size_t kKinds = 3;  // core::WorkloadKind's values

  absl::Status Load() ABSL_EXCLUSIVE_LOCKS_REQUIRED(load_mu_);
  void OnEvent(uint64_t generation, const state::Event& e) ABSL_LOCKS_EXCLUDED(mu_);
  Change Decode(const state::KeyValue& kv, bool deleted) const;
  void Apply(const Change& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyHost(const Change& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyAlloc(const Change& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyWorkload(const Change& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyQuota(const Change& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Commits or releases a workload's allocation in cluster_ to match the records.
  void Reconcile(const std::string& workload) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void IndexWorkload(const core::Workload& w, bool add) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddToCluster(HostEntry* entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The address a gang's members reach a member on `host` at: the host's inventory address, or
  // its name when it reports none.
  std::string GangAddress(const std::string& host) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateSchedulable(const HostEntry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keeps hosts_version_, down_ and draining_ as `after` replaces `before` (null: absent).
  void IndexHost(const std::string& name, const core::Host* before, const core::Host* after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Builds cluster_ again from the maps, after a change it cannot take in place (a host's
  // inventory changed or a host was removed).
  void RebuildIfNeeded() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Clear() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  state::Store* const store_;
  const absl::Duration sync_timeout_;
  absl::Mutex load_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // serializes Load
  std::unique_ptr<state::WatchHandle> watch_ ABSL_GUARDED_BY(load_mu_);
  bool loaded_ ABSL_GUARDED_BY(load_mu_) = false;

  absl::Mutex mu_;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // of the current watch; older ones are ignored
  int64_t covered_ ABSL_GUARDED_BY(mu_) = 0;      // every revision up to it is applied
  int64_t reloads_ ABSL_GUARDED_BY(mu_) = 0;
  // Counts changes a pass cares about (not events); a pass that found nothing to do remembers it.
  int64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t idle_at_ ABSL_GUARDED_BY(mu_) = -1;
  // The earliest retry_at of a workload the last pass left waiting on its backoff.
  absl::Time retry_wake_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::map<std::string, HostEntry, std::less<>> hosts_ ABSL_GUARDED_BY(mu_);
  uint64_t hosts_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string, std::less<>> down_ ABSL_GUARDED_BY(mu_);
  std::set<std::string, std::less<>> draining_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, AllocEntry, std::less<>> allocs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, core::Workload, std::less<>> workloads_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::pair<sched::Quota, int64_t>> quotas_ ABSL_GUARDED_BY(mu_);
  // Which host's allocation record lists each workload.
  std::unordered_map<std::string, std::string> recorded_on_ ABSL_GUARDED_BY(mu_);
  std::set<PendingKey> pending_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::set<std::string>, std::less<>> live_on_ ABSL_GUARDED_BY(mu_);
  // Per host, the latest workloads that left its live set (name, revision), oldest first, at
  // most kMaxDepartures; and the revision of the newest one dropped from that bound.
  struct Departure {
    std::string name;
    int64_t revision = 0;
  };
  std::map<std::string, std::deque<Departure>, std::less<>> departed_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t, std::less<>> departed_floor_ ABSL_GUARDED_BY(mu_);
  // The revision the model was loaded at: it knows no departure before it.
  int64_t history_from_ ABSL_GUARDED_BY(mu_) = 0;
  // Gang id -> the workloads held that carry it, in any state.
  std::map<std::string, std::set<std::string>, std::less<>> gangs_ ABSL_GUARDED_BY(mu_);
  // Driver classes: for each workload kind, the cluster indices of hosts without its driver.
  std::array<std::set<int>, kKinds> lacking_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> host_at_ ABSL_GUARDED_BY(mu_);  // cluster index -> host name
  sched::Cluster cluster_ ABSL_GUARDED_BY(mu_);
  bool rebuild_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace berth::control
