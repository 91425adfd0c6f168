#include "control/fleet_storage.h"

#include <algorithm>
#include <map>
#include <utility>

#include "core/disk.h"
#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::control {

using core::Cat;

namespace {

constexpr char kWhere[] = "fleet storage";

// Whether the workload's task runs on its host (its agent said so). One being started is not:
// its agent asks for its disks (AttachFor) as it starts it, and sees what is recorded then.
bool TaskRuns(const core::Workload& w) {
  return !w.status.host.empty() && (w.status.state == core::WorkloadState::kRunning ||
                                    w.status.state == core::WorkloadState::kPaused);
}

}  // namespace

FleetStorage::FleetStorage(state::Store* store, core::Clock* clock, ControlPlane* control,
                           RemoteStorageFactory remote, TaskDisksFactory task_disks)
    : store_(store),
      control_(control),
      remote_(std::move(remote)),
      task_disks_(std::move(task_disks)),
      storage_(store, clock, static_cast<StorageHosts*>(this)) {
  storage_.SetLiveDisks(Live());
}

bool FleetStorage::MountsShared(const core::Host& h) {
  auto it = h.inventory.labels.find(std::string(core::kSharedPoolLabel));
  return it != h.inventory.labels.end() && it->second == "true";
}

absl::StatusOr<std::vector<core::Host>> FleetStorage::Usable(bool shared) {
  BERTH_ASSIGN_OR_RETURN(std::vector<core::Host> hosts, control_->ListHosts());
  std::erase_if(hosts, [&](const core::Host& h) {
    return h.state != core::HostState::kReady || !control_->TaskApi(h.name) ||
           (shared && !MountsShared(h));
  });
  return hosts;
}

absl::Status FleetStorage::Start() {
  BERTH_ASSIGN_OR_RETURN(std::vector<core::Disk> disks, storage_.Disks());
  for (const core::Disk& d : disks) {
    if (d.status.attached_to.empty()) continue;
    auto w = control_->GetWorkload(d.status.attached_to);
    if (w.ok() && w->status.desired != core::DesiredState::kDeleted) continue;
    if (!w.ok() && !absl::IsNotFound(w.status())) continue;  // nothing released on a guess
    core::ReportError(kWhere, Cat("disk ", d.name, ": release it from a deleted workload"),
                      storage_.Release(d.name, d.status.attached_to));
  }
  return absl::OkStatus();
}

absl::StatusOr<DiskPlace> FleetStorage::Choose(std::string_view disk, const DiskPlace& place) {
  if (!place.pool.empty() && place.pool != core::kSharedPool) {
    return core::FieldError("disk", disk, "pool",
                            Cat("must be empty (the host's own pool) or \"", core::kSharedPool,
                                "\", got \"", place.pool.substr(0, 64), "\""));
  }
  const bool shared = !place.pool.empty();
  if (!place.host.empty()) {
    auto h = control_->GetHost(place.host);
    if (!h.ok()) {
      if (!absl::IsNotFound(h.status())) return h.status();
      return core::FieldError("disk", disk, "host",
                              Cat("no host named \"", place.host.substr(0, 64),
                                  "\" is registered; `berth host ls` lists them"));
    }
    if (shared && !MountsShared(*h)) {
      return core::FieldError("disk", disk, "host",
                              Cat("host \"", place.host,
                                  "\" does not mount the shared pool (start its agent with "
                                  "--shared-pool DIR), or leave out --pool shared"));
    }
    if (h->state != core::HostState::kReady) {
      return absl::FailedPreconditionError(
          Cat("disk \"", disk, "\": host \"", place.host, "\" is down; pick another host"));
    }
    if (!control_->TaskApi(place.host)) {
      return absl::FailedPreconditionError(
          Cat("disk \"", disk, "\": host \"", place.host,
              "\" has no task API yet (its agent has not sent a heartbeat with one, or runs with "
              "--task-api-listen none), so it cannot make disks"));
    }
    return DiskPlace{.host = place.host, .pool = place.pool};
  }
  BERTH_ASSIGN_OR_RETURN(std::vector<core::Host> hosts, Usable(shared));
  // Cordoned hosts take no new work: their disks would pin workloads where none may go.
  std::erase_if(hosts, [](const core::Host& h) { return h.cordoned; });
  if (hosts.empty()) {
    return absl::FailedPreconditionError(
        Cat("disk \"", disk, "\": no ready, uncordoned host with a task API",
            shared ? " mounts the shared pool (berth agent --shared-pool DIR)" : " can make it",
            "; `berth host ls` shows the hosts"));
  }
  // The host with the fewest disks, by name among equals.
  BERTH_ASSIGN_OR_RETURN(std::vector<core::Disk> disks, storage_.Disks());
  std::map<std::string, int> count;
  for (const core::Disk& d : disks) ++count[d.spec.host];
  const core::Host* best = &hosts.front();
  for (const core::Host& h : hosts) {
    if (count[h.name] < count[best->name] ||
        (count[h.name] == count[best->name] && h.name < best->name)) {
      best = &h;
    }
  }
  return DiskPlace{.host = best->name, .pool = place.pool};
}

absl::StatusOr<std::shared_ptr<StorageHost>> FleetStorage::For(std::string_view disk,
                                                               const core::DiskSpec& spec) {
  if (spec.host.empty()) {
    return absl::FailedPreconditionError(
        Cat("disk \"", disk,
            "\" names no host (a dev server made it); on a fleet it cannot be reached"));
  }
  if (spec.pool.empty()) {
    auto h = control_->GetHost(spec.host);
    if (!h.ok()) {
      if (!absl::IsNotFound(h.status())) return h.status();
      return absl::NotFoundError(
          Cat("disk \"", disk, "\": its host \"", spec.host, "\" is no longer registered"));
    }
    if (h->state != core::HostState::kReady) {
      return absl::UnavailableError(Cat("disk \"", disk, "\" lives on host \"", spec.host,
                                        "\", which is down; try again once it is back"));
    }
    return remote_(spec.host, "default");
  }
  BERTH_ASSIGN_OR_RETURN(std::vector<core::Host> hosts, Usable(/*shared=*/true));
  if (hosts.empty()) {
    return absl::UnavailableError(
        Cat("disk \"", disk, "\" is in the shared pool, and no ready host mounts it now"));
  }
  std::string through = hosts.front().name;
  for (const core::Host& h : hosts) {
    if (h.name == spec.host) through = h.name;
  }
  return remote_(through, std::string(core::kSharedPool));
}

absl::StatusOr<std::vector<HostPool>> FleetStorage::Pools() {
  BERTH_ASSIGN_OR_RETURN(std::vector<core::Host> hosts, Usable(/*shared=*/false));
  std::vector<HostPool> out;
  bool shared_listed = false;
  for (const core::Host& h : hosts) {
    std::vector<std::string> pools = {"default"};
    if (MountsShared(h) && !shared_listed) pools.push_back(std::string(core::kSharedPool));
    for (const std::string& pool : pools) {
      absl::StatusOr<std::vector<HostPool>> got = remote_(h.name, pool)->Pools();
      if (!got.ok()) {
        // One unreachable host leaves its pools out of the list; the rest are still shown.
        core::ReportError(kWhere, Cat("host ", h.name, ": its pool ", pool), got.status());
        continue;
      }
      for (HostPool& p : *got) {
        if (pool == core::kSharedPool) {
          p.name = std::string(core::kSharedPool);
          shared_listed = true;
        } else {
          p.name = Cat(h.name, "/", p.name);
        }
        out.push_back(std::move(p));
      }
    }
  }
  return out;
}

absl::Status FleetStorage::CheckAndPin(core::WorkloadSpec* spec) {
  BERTH_ASSIGN_OR_RETURN(std::vector<core::Disk> disks, CheckWorkloadDisks(storage_, *spec));
  std::string pinned_host, pinned_by;
  bool needs_shared = false;
  for (size_t i = 0; i < disks.size(); ++i) {
    const core::Disk& d = disks[i];
    const std::string field = Cat("disks[", static_cast<int>(i), "].disk");
    if (d.spec.host.empty()) {
      return core::FieldError("workload", spec->name, field,
                              Cat("names disk \"", d.name,
                                  "\", which names no host (a dev server made it); make a new "
                                  "disk on the fleet"));
    }
    if (!d.spec.pool.empty()) {
      needs_shared = true;
      continue;
    }
    if (!pinned_host.empty() && pinned_host != d.spec.host) {
      return core::FieldError(
          "workload", spec->name, field,
          Cat("names disk \"", d.name, "\" on host \"", d.spec.host, "\", but disk \"", pinned_by,
              "\" is on host \"", pinned_host,
              "\": a workload's disks must share a host (or be in the shared pool)"));
    }
    pinned_host = d.spec.host;
    pinned_by = d.name;
  }
  auto add = [&](core::LabelConstraint c) {
    for (const core::LabelConstraint& have : spec->constraints) {
      if (have == c) return;
    }
    spec->constraints.push_back(std::move(c));
  };
  if (!pinned_host.empty()) {
    add({.label = std::string(core::kHostNameLabel),
         .op = core::LabelConstraint::Op::kIn,
         .values = {pinned_host}});
  }
  if (needs_shared) {
    add({.label = std::string(core::kSharedPoolLabel),
         .op = core::LabelConstraint::Op::kEquals,
         .values = {"true"}});
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<HostDisk>> FleetStorage::AttachFor(std::string_view host,
                                                              std::string_view workload) {
  BERTH_ASSIGN_OR_RETURN(core::Workload w, control_->GetWorkload(workload));
  if (w.status.host != host || core::IsTerminal(w.status.state)) {
    return absl::FailedPreconditionError(
        Cat("workload \"", workload, "\" is not placed on host \"", host, "\"",
            w.status.host.empty() ? "" : Cat(" (it is on \"", w.status.host, "\")")));
  }
  BERTH_ASSIGN_OR_RETURN(core::Host h, control_->GetHost(host));
  auto refuse = [&](size_t i, const absl::Status& s) {
    return absl::Status(s.code(), Cat("workload \"", workload, "\": disks[", static_cast<int>(i),
                                      "].disk: ", s.message()));
  };
  for (size_t i = 0; i < w.spec.disks.size(); ++i) {
    const std::string& name = w.spec.disks[i].disk;
    absl::StatusOr<core::Disk> d = storage_.GetDisk(name);
    if (!d.ok()) return refuse(i, d.status());
    if (d->spec.pool.empty() && d->spec.host != host) {
      return refuse(
          i, absl::FailedPreconditionError(Cat("disk \"", name, "\" is in host \"", d->spec.host,
                                               "\"'s pool, not this host's")));
    }
    if (!d->spec.pool.empty() && !MountsShared(h)) {
      return refuse(i, absl::FailedPreconditionError(
                           Cat("disk \"", name, "\" is in the shared pool, which host \"", host,
                               "\" does not mount (berth agent --shared-pool DIR)")));
    }
    if (absl::StatusOr<core::Json> held = storage_.Attach(name, workload); !held.ok()) {
      return refuse(i, held.status());
    }
  }
  // Every disk it holds: those its spec names, and those `berth disk attach` gave it.
  BERTH_ASSIGN_OR_RETURN(std::vector<core::Disk> disks, storage_.Disks());
  std::vector<HostDisk> out;
  for (const core::Disk& d : disks) {
    if (d.status.attached_to != workload) continue;
    HostDisk hd{.name = d.name,
                .pool = d.spec.pool,
                .format = d.spec.format,
                .filesystem = d.spec.filesystem};
    for (const core::DiskAttachment& a : w.spec.disks) {
      if (a.disk != d.name) continue;
      hd.read_only = a.read_only;
      hd.mount = a.mount;
    }
    // A disk attached later and not in the spec reaches a VM only: a container names where
    // each disk goes.
    if (w.spec.kind != core::WorkloadKind::kVm && hd.mount.empty()) continue;
    if (d.spec.pool.empty() && d.spec.host != host) continue;
    out.push_back(std::move(hd));
  }
  return out;
}

void FleetStorage::Release(const std::string& workload) {
  absl::StatusOr<std::vector<core::Disk>> disks = storage_.Disks();
  if (!disks.ok()) {
    core::ReportError(kWhere, Cat("workload ", workload, ": its disks"), disks.status());
    return;
  }
  for (const core::Disk& d : *disks) {
    if (d.status.attached_to != workload) continue;
    core::ReportError(kWhere, Cat("workload ", workload, ": release disk ", d.name),
                      storage_.Release(d.name, workload));
  }
}

LiveDisks FleetStorage::Live() {
  // The host whose running task holds (or is to hold) a disk; NotFound when none runs, so the
  // change is only recorded and seen at the next start.
  auto running = [this](std::string_view workload) -> absl::StatusOr<std::string> {
    auto w = control_->GetWorkload(workload);
    if (!w.ok()) return absl::IsNotFound(w.status()) ? absl::NotFoundError("gone") : w.status();
    if (!TaskRuns(*w)) return absl::NotFoundError("no running task");
    if (!task_disks_) {
      return absl::FailedPreconditionError(
          Cat("workload \"", workload, "\" runs on host \"", w->status.host,
              "\"; stop it first (`berth workload stop ", workload, "`)"));
    }
    return w->status.host;
  };
  // Where a disk lives, read from the store: the hooks run under the service's lock.
  auto pool_of = [this](std::string_view disk) -> std::string {
    auto got = store_->Get(DiskKey(disk));
    if (!got.ok() || !got->kv) return "";
    auto d = core::DecodeDisk(core::Json::parse(got->kv->value, nullptr, false));
    return d.ok() ? d->spec.pool : "";
  };
  return LiveDisks{
      .attach = [this, running](std::string_view workload, const core::Json& disk) -> absl::Status {
        BERTH_ASSIGN_OR_RETURN(std::string host, running(workload));
        absl::StatusOr<core::Disk> d = core::DecodeDisk(disk);
        if (!d.ok()) return d.status();
        if (d->spec.pool.empty() && d->spec.host != host) {
          return absl::FailedPreconditionError(Cat("disk \"", d->name, "\" is in host \"",
                                                   d->spec.host, "\"'s pool and workload \"",
                                                   workload, "\" runs on host \"", host,
                                                   "\"; a workload reaches only disks of its "
                                                   "own host or the shared pool"));
        }
        return task_disks_(host).plug(workload, d->name, d->spec.pool);
      },
      .detach = [this, running, pool_of](std::string_view workload,
                                         std::string_view disk) -> absl::Status {
        BERTH_ASSIGN_OR_RETURN(std::string host, running(workload));
        return task_disks_(host).unplug(workload, disk, pool_of(disk));
      },
      .snapshot = [this, running, pool_of](std::string_view workload, std::string_view disk,
                                           std::string_view snapshot) -> absl::Status {
        BERTH_ASSIGN_OR_RETURN(std::string host, running(workload));
        return task_disks_(host).snapshot(workload, disk, pool_of(disk), snapshot);
      }};
}

}  // namespace berth::control
