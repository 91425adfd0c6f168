// device-classes and device-capacity: devices of other classes (core/device.h). The first asks,
// once per host class, whether the host offers enough devices of every class the request names
// at all; the second, once per group of hosts in one free state, whether enough of them are
// free now. Both read counts the cluster keeps (HostClass::device_totals, DeviceClassState::
// free), so a request costs one compare per class it names.
#include <utility>

#include "sched/checker.h"

namespace berth::sched {
namespace {

// The request's classes as the cluster numbers them (-1: no host offers it), with the counts.
using Wants = absl::InlinedVector<std::pair<int, int>, 2>;

bool PrepareWants(const CheckContext& ctx, Wants& wants) {
  wants.clear();
  for (const core::DeviceRequest& d : ctx.request.devices) {
    wants.emplace_back(ctx.cluster.DeviceClassId(d.cls), d.count);
  }
  return !wants.empty();
}

// Whether a host's `devices` hold `count` free ones of each wanted class.
bool FreeDevicesHold(const HostDevices& devices, const Wants& wants) {
  for (const auto& [id, count] : wants) {
    int free = 0;
    for (const DeviceClassState& d : devices) {
      if (d.class_id == id) free = d.free;
    }
    if (free < count) return false;
  }
  return true;
}

class DeviceClassesChecker final : public Checker {
 public:
  CheckScope scope() const override { return CheckScope::kClass; }
  bool Prepare(const CheckContext& ctx) override { return PrepareWants(ctx, wants_); }
  int CheckClass(const CheckContext& ctx, int cls, ClassCheck& out) override {
    const std::vector<std::pair<int, int>>& totals = ctx.index.classes[cls].device_totals;
    for (const auto& [id, count] : wants_) {
      bool enough = false;
      for (const auto& [have, n] : totals) enough |= have == id && n >= count;
      if (!enough) return kDeviceClass;
    }
    return kFeasible;
  }

 private:
  Wants wants_;
};

class DeviceCapacityChecker final : public GroupChecker<DeviceCapacityChecker> {
 public:
  bool Prepare(const CheckContext& ctx) override { return PrepareWants(ctx, wants_); }
  // Every host of a group has the same free count per class (it is part of the group's key).
  int Check(const CheckContext& ctx, const GroupSummary& g, const ClassCheck& cls) const {
    return FreeDevicesHold(ctx.index.host_devices[g.min_host], wants_) ? kFeasible : kDeviceCount;
  }
  int CheckHost(const CheckContext& ctx, int h, const ClassCheck& cls, HostCheck& out) override {
    return FreeDevicesHold(ctx.index.host_devices[h], wants_) ? kFeasible : kDeviceCount;
  }

 private:
  Wants wants_;
};

}  // namespace

std::unique_ptr<Checker> NewDeviceClassesChecker() {
  return std::make_unique<DeviceClassesChecker>();
}
std::unique_ptr<Checker> NewDeviceCapacityChecker() {
  return std::make_unique<DeviceCapacityChecker>();
}

}  // namespace berth::sched
