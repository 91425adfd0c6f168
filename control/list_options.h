// What a list of workloads or hosts asks the control plane for: filters the server applies
// (state, host, kind, tenant, label selectors) and one page of what passes them, in name order.
// Pages resume after the last name of the one before, so a caller that pages through a list
// while objects come and go sees every object that lived throughout exactly once, and never one
// twice. Value types only; thread-compatible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/host.h"
#include "core/workload.h"
#include "sched/model.h"

namespace berth::control {

struct ListFilter {
  std::optional<core::WorkloadState> state;    // workloads in this state
  std::optional<core::HostState> host_state;   // hosts in this state
  std::string host;                            // workloads placed on this host
  std::optional<core::WorkloadKind> kind;      // workloads of this kind
  std::string tenant;                          // workloads of this tenant
  std::vector<sched::LabelSelector> selector;  // every one matches the object's labels
  std::string prefix;                          // workloads and hosts whose name starts so

  bool Empty() const {
    return !state && !host_state && host.empty() && !kind && tenant.empty() && selector.empty() &&
           prefix.empty();
  }
};

struct ListOptions {
  ListFilter filter;
  size_t limit = 0;   // at most this many items; 0: all of them
  std::string after;  // only names that sort after this one (the `next` of the page before)
};

// What a listing saw besides its items.
struct ListPage {
  // The store revision of the listing's first read: a blocking query waits for changes past it.
  int64_t revision = 0;
  // Set when the limit cut the list short: the last name of this page, to pass as `after`. A
  // page may be followed by an empty one when nothing after it passes the filter.
  std::string next;
};

bool MatchesWorkload(const ListFilter& filter, const core::Workload& workload);
bool MatchesHost(const ListFilter& filter, const core::Host& host);

// Parses a label selector in Kubernetes' syntax: requirements separated by commas, each
// `key=value` (or `key==value`), `key!=value` (also matches objects without the key), `key`
// (the key is set), `key in (a,b)` or `key notin (a,b)`. InvalidArgument naming the
// requirement that does not parse (the caller adds where the selector came from).
absl::StatusOr<std::vector<sched::LabelSelector>> ParseLabelSelector(std::string_view text);

}  // namespace berth::control
