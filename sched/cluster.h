// The cluster model the scheduler places into: hosts, their free state, live allocations,
// tenant quotas. Mutable and incremental, so the simulator can replay thousands of arrivals and
// departures and the server can rebuild it from stored hosts and allocations: AddHost, then
// Commit each existing allocation, then ask a Scheduler (scheduler.h) for plans.
//
// Hosts whose hardware, labels and free state are identical are kept in one group, so the
// scheduler scores each distinct state once instead of once per host; Commit and Release move a
// host between groups. Per-group fragmentation values are cached for the mix in use.
//
// Ownership: the Cluster owns everything it holds. Thread-safety: not thread-safe; even const
// methods may update internal caches, so callers serialize all access.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/quantity.h"
#include "core/resources.h"
#include "sched/mix.h"
#include "sched/model.h"

namespace berth::sched {

// Per-tenant hard limits; an unset dimension is unlimited.
struct Quota {
  std::optional<core::MilliCpu> cpu;
  std::optional<core::MemoryMiB> memory;
  std::optional<core::DiskMiB> disk;
  std::optional<int64_t> gpu_milli;                   // all GPU models together
  std::map<std::string, int64_t> gpu_milli_by_model;  // "A100-SXM4-80GB" -> 16000
  std::map<std::string, int64_t> devices_by_class;    // "xilinx.com/fpga" -> 4 devices
};

// What a tenant holds now.
struct TenantUsage {
  core::Resources resources;
  int64_t gpu_milli = 0;
  std::map<std::string, int64_t> gpu_milli_by_model;
  std::map<std::string, int64_t> devices_by_class;
};

// A live allocation: the request as it was placed and where.
struct Allocation {
  Request request;
  Placement placement;
};

// Cluster-wide sums, for reports and the simulator.
struct ClusterTotals {
  int hosts = 0;
  int allocations = 0;
  core::Resources capacity;
  core::Resources allocated;
  int gpus = 0;
  int idle_gpus = 0;  // devices with nothing on them
  int64_t gpu_milli_capacity = 0;
  int64_t gpu_milli_allocated = 0;
};

// Cluster-wide FGD fragmentation for a mix: sum over hosts of F_n(M), in milli-GPU.
struct FragmentationReport {
  double fragmented_milli = 0;  // Σ_n F_n(M)
  int64_t free_milli = 0;       // Σ_n unallocated GPU milli
  // Share of free GPU capacity that the mix cannot use; 0 when nothing is free.
  double ratio() const { return free_milli == 0 ? 0.0 : fragmented_milli / double(free_milli); }
};

struct CommitOptions {
  bool enforce_quota = false;  // fail with ResourceExhausted when the tenant would exceed quota
};

class Cluster {
 public:
  Cluster();
  ~Cluster();
  Cluster(Cluster&&) noexcept;
  Cluster& operator=(Cluster&&) noexcept;
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Adds an idle host and returns its index. InvalidArgument for negative capacity, duplicate
  // GPU indices or a bad name; AlreadyExists for a duplicate name.
  absl::StatusOr<int> AddHost(const HostSpec& spec);
  int num_hosts() const;
  const HostState& host(int index) const;
  // The host's devices of other classes. Kept beside HostState, not in it, so that scans over
  // hosts touch no more memory for them.
  const HostDevices& devices(int index) const;
  std::optional<int> FindHost(std::string_view name) const;
  // A host that is not schedulable keeps its allocations but takes no new ones.
  void SetSchedulable(int index, bool schedulable);
  bool schedulable(int index) const;

  // Takes the placement's resources on its host. Fails, changing nothing, when the id is
  // already allocated (AlreadyExists), the placement names an unknown host or device
  // (InvalidArgument), or anything would go over capacity (FailedPrecondition).
  absl::Status Commit(const Request& request, const Placement& placement,
                      const CommitOptions& options = {});
  // Gives back everything allocation `request_id` holds. NotFound if there is none.
  absl::Status Release(std::string_view request_id);
  // OK when Commit(request, placement) would succeed on capacity (quota not checked).
  absl::Status CheckFits(const Request& request, const Placement& placement) const;

  const Allocation* FindAllocation(std::string_view request_id) const;
  // Ids of the allocations on a host, oldest first.
  const std::vector<std::string>& AllocationsOn(int host) const;
  int num_allocations() const;

  void SetQuota(const std::string& tenant, const Quota& quota);
  void ClearQuota(const std::string& tenant);
  const Quota* FindQuota(std::string_view tenant) const;
  // The number the cluster gives device class `cls` (HostState::devices), or -1 when no host
  // has offered a device of it.
  int DeviceClassId(std::string_view cls) const;
  TenantUsage Usage(std::string_view tenant) const;
  // Tenants with a quota or an allocation, sorted.
  std::vector<std::string> Tenants() const;
  // OK, or ResourceExhausted `tenant "t": quota gpu exceeded: ...` if placing `request` with
  // GPUs of `gpu_model` would pass the tenant's quota. Empty model: host-independent checks only.
  absl::Status CheckQuota(const Request& request, std::string_view gpu_model) const;

  ClusterTotals Totals() const;
  FragmentationReport Fragmentation(const WorkloadMix& mix) const;
  // F_n(M) of one host, in milli-GPU.
  double HostFragmentation(int host, const WorkloadMix& mix) const;

  // Distinct (hardware, labels, free state) groups; the scheduler scores each once.
  int num_groups() const;
  // Approximate heap bytes held, for the benchmark's memory-per-host figure.
  size_t MemoryBytes() const;

  // Internal state shared with the scheduler (defined in sched/cluster_index.h).
  struct Index;
  Index& index() const { return *index_; }

 private:
  std::unique_ptr<Index> index_;
};

}  // namespace berth::sched
