// The one table of feasibility checkers, in pipeline order (see checker.h for how to add one).
#include "sched/checker.h"

namespace berth::sched {

namespace {

constexpr std::string_view kReasonNames[kNumReasons] = {
    "host not schedulable",
    "host labels",
    "no gpus",
    "gpu model not allowed",
    "insufficient gpu memory",
    "mig profile not offered",
    "quota",
    "no devices of the class",
    "cpu",
    "memory",
    "disk",
    "insufficient gpus",
    "insufficient gpu share",
    "no free mig slot",
    "insufficient devices",
    "affinity",
    "anti-affinity",
};

}  // namespace

std::string_view ReasonName(int reason) {
  return reason >= 0 && reason < kNumReasons ? kReasonNames[reason] : std::string_view();
}

std::unique_ptr<Checker> NewHostStateChecker();
std::unique_ptr<Checker> NewLabelsChecker();
std::unique_ptr<Checker> NewGpuDevicesChecker();
std::unique_ptr<Checker> NewGpuQuotaChecker();
std::unique_ptr<Checker> NewResourcesChecker();
std::unique_ptr<Checker> NewGpuCapacityChecker();
std::unique_ptr<Checker> NewAffinityChecker();
std::unique_ptr<Checker> NewDeviceClassesChecker();
std::unique_ptr<Checker> NewDeviceCapacityChecker();

// The order is the policy for rejecting a host: a cordoned host is reported as such whatever
// else is wrong with it; static checks (answered once per host class) come before capacity,
// so a host that can never run the request is not reported as merely full; CPU, memory and
// disk (one compare each on a group summary) before the GPU device search; checks that look
// at other workloads last, since they need each host on its own.
const std::vector<CheckerEntry>& CheckerTable() {
  static const std::vector<CheckerEntry>* const kCheckerTable = new std::vector<CheckerEntry>{
      {"host-state", NewHostStateChecker, "the host takes new workloads (not cordoned, draining)"},
      {"labels", NewLabelsChecker, "the host's labels match the request's host_selector"},
      {"gpu-devices", NewGpuDevicesChecker,
       "some device has an allowed model, enough device memory, the MIG mode and profile"},
      {"gpu-quota", NewGpuQuotaChecker, "the tenant's per-model GPU quota admits some device"},
      {"device-classes", NewDeviceClassesChecker,
       "the host offers enough healthy devices of each class the request names"},
      {"resources", NewResourcesChecker, "free CPU, memory and disk cover the request"},
      {"gpu-capacity", NewGpuCapacityChecker,
       "enough devices hold the request now: idle whole devices, a share, a free MIG slot"},
      {"device-capacity", NewDeviceCapacityChecker,
       "enough devices of each class the request names are free now"},
      {"affinity", NewAffinityChecker,
       "workloads on the host satisfy the request's affinity and anti-affinity terms"},
  };
  return *kCheckerTable;
}

const CheckerEntry* FindChecker(std::string_view name) {
  for (const CheckerEntry& e : CheckerTable()) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

}  // namespace berth::sched
