#include "control/host_leases.h"

namespace berth::control {

void HostLeases::Disarm(Map::iterator it) {
  if (!it->second.armed) return;
  by_time_.erase({it->second.last, &it->first});
  it->second.armed = false;
}

void HostLeases::Arm(Map::iterator it) {
  if (it->second.armed) return;
  by_time_.insert({it->second.last, &it->first});
  it->second.armed = true;
}

void HostLeases::Renew(std::string_view name, absl::Time at) {
  auto it = leases_.find(name);
  if (it == leases_.end()) {
    it = leases_.emplace(std::string(name), Lease{}).first;
  } else {
    Disarm(it);
  }
  it->second.last = at;
  Arm(it);
}

void HostLeases::TrackIfUnknown(std::string_view name, absl::Time at) {
  if (leases_.find(name) != leases_.end()) return;
  auto it = leases_.emplace(std::string(name), Lease{.last = at}).first;
  Arm(it);
}

void HostLeases::Rearm(std::string_view name) {
  if (auto it = leases_.find(name); it != leases_.end()) Arm(it);
}

void HostLeases::Forget(std::string_view name) {
  auto it = leases_.find(name);
  if (it == leases_.end()) return;
  Disarm(it);
  leases_.erase(it);
}

void HostLeases::Clear() {
  by_time_.clear();
  leases_.clear();
}

std::optional<absl::Time> HostLeases::Last(std::string_view name) const {
  auto it = leases_.find(name);
  if (it == leases_.end()) return std::nullopt;
  return it->second.last;
}

std::vector<HostLeases::Expired> HostLeases::TakeExpired(absl::Time deadline) {
  std::vector<Expired> out;
  while (!by_time_.empty() && by_time_.begin()->first < deadline) {
    const std::string& name = *by_time_.begin()->second;
    auto it = leases_.find(name);
    out.push_back({name, it->second.last});
    Disarm(it);
  }
  return out;
}

}  // namespace berth::control
