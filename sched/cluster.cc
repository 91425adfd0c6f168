#include "sched/cluster.h"

#include "sched/cluster_index.h"

namespace berth::sched {

Cluster::Cluster() : index_(std::make_unique<Index>()) {}
Cluster::~Cluster() = default;
Cluster::Cluster(Cluster&&) noexcept = default;
Cluster& Cluster::operator=(Cluster&&) noexcept = default;

absl::StatusOr<int> Cluster::AddHost(const HostSpec& spec) {
  return absl::UnimplementedError("Cluster::AddHost");
}
int Cluster::num_hosts() const { return int(index_->hosts.size()); }
const HostState& Cluster::host(int i) const { return index_->hosts[i]; }
std::optional<int> Cluster::FindHost(std::string_view name) const { return std::nullopt; }
void Cluster::SetSchedulable(int i, bool s) {}
bool Cluster::schedulable(int i) const { return true; }
absl::Status Cluster::Commit(const Request&, const Placement&, const CommitOptions&) {
  return absl::UnimplementedError("Cluster::Commit");
}
absl::Status Cluster::Release(std::string_view) { return absl::UnimplementedError("Release"); }
absl::Status Cluster::CheckFits(const Request&, const Placement&) const {
  return absl::UnimplementedError("CheckFits");
}
const Allocation* Cluster::FindAllocation(std::string_view) const { return nullptr; }
const std::vector<std::string>& Cluster::AllocationsOn(int h) const {
  return index_->host_allocations[h];
}
int Cluster::num_allocations() const { return int(index_->allocations.size()); }
void Cluster::SetQuota(const std::string&, const Quota&) {}
void Cluster::ClearQuota(const std::string&) {}
const Quota* Cluster::FindQuota(std::string_view) const { return nullptr; }
TenantUsage Cluster::Usage(std::string_view) const { return {}; }
std::vector<std::string> Cluster::Tenants() const { return {}; }
absl::Status Cluster::CheckQuota(const Request&, std::string_view) const {
  return absl::UnimplementedError("CheckQuota");
}
ClusterTotals Cluster::Totals() const { return {}; }
FragmentationReport Cluster::Fragmentation(const WorkloadMix&) const { return {}; }
double Cluster::HostFragmentation(int, const WorkloadMix&) const { return 0; }
int Cluster::num_groups() const { return 0; }
size_t Cluster::MemoryBytes() const { return 0; }

}  // namespace berth::sched
