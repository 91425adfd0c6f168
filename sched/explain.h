// "Why is my workload pending?" with figures: every check a request fails, with what it asks and
// what the best host offers (`cpu: asks 64, best host has 2 free of 2 (host-a)`), the tenant's
// quota reported as quota rather than as a per-host problem, and what would make it fit.
//
// The scheduler's Decision counts the first rejecting checker per host, which is what its fast
// search can afford; an explanation is asked for one workload at a time, so it walks every host
// once and asks every check of each, through the same fits rule (fits.h) and the same quota
// rule (Cluster::CheckQuota) the checkers use.
//
// Thread-safety: ExplainRequest reads the cluster; callers serialize access to it as for any
// Cluster call.
#pragma once

#include <string>
#include <vector>

#include "sched/cluster.h"
#include "sched/model.h"

namespace berth::sched {

// One failing check, with its figures.
struct CheckFinding {
  // "quota", "host-state", "labels", "gpu", "gpu-quota", "cpu", "memory", "disk",
  // "gpu-capacity", "affinity".
  std::string check;
  // Hosts this check turns down; a host failing several checks counts under each. Zero for the
  // tenant's quota, which is not a property of any host.
  int hosts = 0;
  std::string detail;  // "asks 64, best host has 2 free of 2 (host-a)"
  bool operator==(const CheckFinding&) const = default;
};

struct Explanation {
  int hosts = 0;                      // hosts looked at
  std::string fits_on;                // a host that takes the request as the cluster is now
  std::vector<CheckFinding> failing;  // in pipeline order, the quota first
  std::vector<std::string> to_fit;    // what would make it fit
  // One line per failing check ("cpu: asks 64, ... ; 1 of 1 hosts"), then "to fit: ..." lines.
  std::string Text() const;
};

// Hosts the caller rules out for reasons the cluster model does not hold (the server: hosts
// without a driver for the workload's kind). They count as failing check `excluded_check`.
struct ExplainOptions {
  std::vector<bool> excluded;  // by host index; shorter than the host list: the rest are not
  std::string excluded_check = "excluded";
  std::string excluded_reason;  // "no container driver"
};

// Explains `request` against `cluster` as it is now. The request is assumed valid
// (ValidateRequest).
Explanation ExplainRequest(const Cluster& cluster, const Request& request,
                           const ExplainOptions& options = {});

}  // namespace berth::sched
