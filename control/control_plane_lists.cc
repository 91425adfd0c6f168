// ControlPlane's paged, filtered lists (control/list_options.h): a page of workloads reads the
// store in key order from where the last one ended, a page of hosts the cluster model, so the
// cost follows the page, not the whole prefix.
#include <algorithm>

#include "control/cluster_model.h"
#include "control/control_plane.h"
#include "core/log.h"
#include "core/status.h"

namespace berth::control {

namespace {

// Keys read per store request while a filter skips entries: enough that a selective filter
// needs few round trips, small enough that a page is never a read of everything at once.
constexpr int64_t kFilteredChunk = 1000;

// Reads `repo`'s entries in name order after options.after, decodes each, fixes it up with
// `adjust` (the object and its mod revision), and keeps those `keep` accepts, until
// options.limit are kept or the prefix ends.
template <typename T, typename Repo, typename Adjust, typename Keep>
absl::StatusOr<std::vector<T>> ScanPage(state::Store* store, const Repo& repo,
                                        const ListOptions& options, ListPage* page,
                                        const Adjust& adjust, const Keep& keep) {
  const bool filtered = !options.filter.Empty();
  const int64_t limit = static_cast<int64_t>(options.limit);
  state::ListOptions read;
  if (!options.after.empty()) read.start_after = repo.Key(options.after);
  // Unfiltered, one read of exactly the page tells whether more follow.
  if (limit > 0) read.limit = filtered ? std::max(limit, kFilteredChunk) : limit;
  std::vector<T> out;
  bool first = true;
  while (true) {
    BERTH_ASSIGN_OR_RETURN(state::ListResponse response, store->List(repo.prefix(), read));
    if (first && page != nullptr) page->revision = response.revision;
    first = false;
    for (size_t i = 0; i < response.kvs.size(); ++i) {
      auto item = repo.Decode(response.kvs[i]);
      if (!item.ok()) {
        // As in the full lists: one damaged entry does not hide the others.
        core::LogDebug("skipped: %s", item.status().ToString());
        continue;
      }
      T value = std::move(item->value);
      adjust(value, item->mod_revision);
      if (!keep(value)) continue;
      out.push_back(std::move(value));
      if (limit > 0 && static_cast<int64_t>(out.size()) == limit) {
        if ((i + 1 < response.kvs.size() || response.more) && page != nullptr) {
          page->next = item->name;
        }
        return out;
      }
    }
    if (!response.more || response.kvs.empty()) return out;
    read.start_after = response.kvs.back().key;
  }
}

}  // namespace

absl::StatusOr<std::vector<core::Workload>> ControlPlane::ListWorkloads(const ListOptions& options,
                                                                        ListPage* page) {
  return ScanPage<core::Workload>(
      store_, workloads_, options, page, [](core::Workload& w, int64_t rev) { w.revision = rev; },
      [&](const core::Workload& w) { return MatchesWorkload(options.filter, w); });
}

absl::StatusOr<std::vector<core::Host>> ControlPlane::ListHosts(const ListOptions& options,
                                                                ListPage* page) {
  // Hosts are few beside workloads and every one is in the cluster model: a page is read from
  // it in name order, without a store read or a decode.
  BERTH_RETURN_IF_ERROR(model_->Sync());
  std::vector<core::Host> out;
  model_->ReadHosts(options, page,
                    [&](const core::Host& h, const sched::Cluster&, int) { out.push_back(h); });
  absl::MutexLock lock(&mu_);
  for (core::Host& h : out) {
    if (std::optional<absl::Time> last = leases_.Last(h.name)) h.last_heartbeat = *last;
  }
  return out;
}

}  // namespace berth::control
