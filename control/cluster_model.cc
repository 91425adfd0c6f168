#include "control/cluster_model.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "control/events.h"
#include "core/device.h"
#include "core/disk.h"
#include "core/job.h"
#include "core/log.h"
#include "core/quantity.h"
#include "core/service.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::control {

using core::Cat;
using core::Json;
using core::Workload;
using core::WorkloadState;

namespace {

// The workload's gang (core::kGangLabel), or null when it belongs to none.
const std::string* GangOf(const Workload& w) {
  auto it = w.spec.labels.find(std::string(core::kGangLabel));
  return it == w.spec.labels.end() || it->second.empty() ? nullptr : &it->second;
}

// An integer label's value, or `otherwise` when it is missing or malformed.
int IntLabel(const Workload& w, std::string_view label, int otherwise) {
  auto it = w.spec.labels.find(std::string(label));
  int n = 0;
  if (it == w.spec.labels.end() || !absl::SimpleAtoi(it->second, &n)) return otherwise;
  return n;
}

}  // namespace

std::string ConstraintsText(const std::vector<core::LabelConstraint>& constraints) {
  std::string out;
  for (const core::LabelConstraint& c : constraints) {
    if (!out.empty()) out += ", ";
    switch (c.op) {
      case core::LabelConstraint::Op::kEquals:
        out += Cat(c.label, " = ", c.values.empty() ? "" : c.values[0]);
        break;
      case core::LabelConstraint::Op::kIn:
        out += Cat(c.label, " in [", absl::StrJoin(c.values, ", "), "]");
        break;
      case core::LabelConstraint::Op::kNotIn:
        out += Cat(c.label, " not in [", absl::StrJoin(c.values, ", "), "]");
        break;
      case core::LabelConstraint::Op::kExists:
        out += Cat(c.label, " exists");
        break;
    }
  }
  return out;
}

sched::Request WorkloadRequest(const Workload& w) {
  sched::Request r;
  r.id = w.spec.name;
  r.tenant = w.spec.tenant;
  r.priority = w.spec.priority;
  r.preemptible = w.spec.preemptible;
  r.resources = w.spec.resources;
  r.gpu = w.spec.gpu;
  r.devices = w.spec.devices;
  r.labels = sched::Labels(w.spec.labels.begin(), w.spec.labels.end());
  // A service's replicas spread across hosts (control/service_controller.h).
  if (auto it = w.spec.labels.find(std::string(core::kServiceLabel)); it != w.spec.labels.end()) {
    r.spread_key = std::string(sched::kSpreadByHost);
    r.spread_group = Cat("service/", it->second);
  }
  // A replica of a warm-started service resumes from its service's state where that is held.
  if (auto it = w.spec.labels.find(std::string(core::kWarmStateLabel)); it != w.spec.labels.end()) {
    r.warm_state = it->second;
  }
  if (const std::string* gang = GangOf(w)) {
    r.gang_id = *gang;
    r.gang_size = std::max(1, IntLabel(w, core::kGangSizeLabel, 1));
  }
  bool named = false;  // only_hosts holds a constraint's names (a later one narrows it)
  for (const auto& c : w.spec.constraints) {
    // Every host answers to its own name (core::kHostNameLabel), as host names, not labels.
    if (c.label == core::kHostNameLabel) {
      switch (c.op) {
        case core::LabelConstraint::Op::kEquals:
        case core::LabelConstraint::Op::kIn: {
          std::vector<std::string> names = c.values;
          if (named) {
            std::erase_if(names, [&](const std::string& n) {
              return std::find(r.only_hosts.begin(), r.only_hosts.end(), n) == r.only_hosts.end();
            });
            // None left: no host has two names.
            if (names.empty()) names.push_back("");
          }
          r.only_hosts = std::move(names);
          named = true;
          break;
        }
        case core::LabelConstraint::Op::kNotIn:
          r.not_hosts.insert(r.not_hosts.end(), c.values.begin(), c.values.end());
          break;
        case core::LabelConstraint::Op::kExists:
          break;  // every host has a name
      }
      continue;
    }
    sched::LabelSelector s;
    s.key = c.label;
    s.values = c.values;
    switch (c.op) {
      case core::LabelConstraint::Op::kEquals:
        s.op = sched::LabelSelector::Op::kEquals;
        break;
      case core::LabelConstraint::Op::kIn:
        s.op = sched::LabelSelector::Op::kIn;
        break;
      case core::LabelConstraint::Op::kNotIn:
        s.op = sched::LabelSelector::Op::kNotIn;
        break;
      case core::LabelConstraint::Op::kExists:
        s.op = sched::LabelSelector::Op::kExists;
        break;
    }
    r.host_selector.push_back(std::move(s));
  }
  return r;
}

bool HasDriver(const core::HostInventory& inventory, core::WorkloadKind kind) {
  if (inventory.drivers.empty()) return kind == core::WorkloadKind::kProcess;
  std::string_view want = core::WorkloadKindName(kind);
  return std::find(inventory.drivers.begin(), inventory.drivers.end(), want) !=
         inventory.drivers.end();
}

absl::StatusOr<sched::Quota> DecodeQuota(std::string_view tenant, const Json& j) {
  core::JsonContext ctx{"quota", std::string(tenant)};
  BERTH_RETURN_IF_ERROR(
      core::CheckObject(ctx, j, "", {"cpu", "memory", "disk", "gpu", "gpu_by_model", "devices"}));
  sched::Quota q;
  auto text = [](const Json& v) { return v.is_string() ? v.get<std::string>() : core::Preview(v); };
  if (j.contains("cpu")) {
    auto v = core::ParseCpu(text(j["cpu"]));
    if (!v.ok()) return ctx.Error("cpu", std::string(v.status().message()));
    q.cpu = *v;
  }
  if (j.contains("memory")) {
    auto v = core::ParseMemory(text(j["memory"]));
    if (!v.ok()) return ctx.Error("memory", std::string(v.status().message()));
    q.memory = *v;
  }
  if (j.contains("disk")) {
    auto v = core::ParseDisk(text(j["disk"]));
    if (!v.ok()) return ctx.Error("disk", std::string(v.status().message()));
    q.disk = *v;
  }
  // GPUs are counted like CPUs: "4" is four whole devices, "500m" half of one.
  if (j.contains("gpu")) {
    auto v = core::ParseCpu(text(j["gpu"]));
    if (!v.ok()) return ctx.Error("gpu", std::string(v.status().message()));
    q.gpu_milli = v->value();
  }
  if (j.contains("gpu_by_model")) {
    if (!j["gpu_by_model"].is_object())
      return ctx.Error("gpu_by_model", "must be a map of model to GPUs");
    for (auto it = j["gpu_by_model"].begin(); it != j["gpu_by_model"].end(); ++it) {
      auto v = core::ParseCpu(text(*it));
      if (!v.ok())
        return ctx.Error(Cat("gpu_by_model.", it.key()), std::string(v.status().message()));
      q.gpu_milli_by_model[it.key()] = v->value();
    }
  }
  if (j.contains("devices")) {
    if (!j["devices"].is_object()) return ctx.Error("devices", "must be a map of class to count");
    for (auto it = j["devices"].begin(); it != j["devices"].end(); ++it) {
      const std::string field = Cat("devices.", it.key());
      if (absl::Status s = core::CheckDeviceClass(it.key()); !s.ok()) {
        return ctx.Error(field, std::string(s.message()));
      }
      if (!it->is_number_integer() || it->get<int64_t>() < 0) {
        return ctx.Error(field, Cat("must be a count of devices >= 0, got ", core::Preview(*it)));
      }
      q.devices_by_class[it.key()] = it->get<int64_t>();
    }
  }
  return q;
}

namespace {

bool StartsWith(std::string_view s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

bool IsPending(const Workload& w) {
  return w.status.state == WorkloadState::kPending &&
         w.status.desired == core::DesiredState::kRunning;
}

bool IsLiveOnHost(const Workload& w) {
  return !w.status.host.empty() && !core::IsTerminal(w.status.state);
}

uint32_t DriverBits(const core::HostInventory& inventory) {
  uint32_t bits = 0;
  for (auto kind :
       {core::WorkloadKind::kProcess, core::WorkloadKind::kVm, core::WorkloadKind::kContainer}) {
    if (HasDriver(inventory, kind)) bits |= 1u << static_cast<int>(kind);
  }
  return bits;
}

}  // namespace

sched::HostSpec SchedulerHostSpec(const core::Host& h) {
  sched::HostSpec spec;
  spec.name = h.name;
  spec.capacity = h.inventory.capacity;
  spec.labels = sched::Labels(h.inventory.labels.begin(), h.inventory.labels.end());
  // A host's own name is not one of its labels here (constraints on core::kHostNameLabel become
  // the request's host names, WorkloadRequest): a label no other host shares would make every
  // host a group of its own, and the scheduler would score each one apart.
  spec.labels.erase(std::string(core::kHostNameLabel));
  spec.gpus = h.inventory.gpus;
  // A device its host reports unhealthy takes no new work.
  std::erase_if(spec.gpus, [](const core::GpuDevice& g) { return !g.healthy; });
  for (const core::Device& d : h.inventory.devices) {
    if (d.healthy) spec.devices.push_back(d);
  }
  return spec;
}

bool ClusterModel::PendingKey::operator<(const PendingKey& o) const {
  if (priority != o.priority) return priority > o.priority;
  if (created_at != o.created_at) return created_at < o.created_at;
  return name < o.name;
}

struct ClusterModel::Change {
  enum class Kind { kNone, kHost, kAlloc, kWorkload, kQuota };
  Kind kind = Kind::kNone;
  std::string name;
  bool deleted = false;
  int64_t revision = 0;  // the key's mod revision, or the delete's revision
  absl::Status error;    // the value does not decode
  std::optional<core::Host> host;
  std::optional<HostAlloc> alloc;
  std::optional<Workload> workload;
  std::optional<sched::Quota> quota;
};

ClusterModel::ClusterModel(state::Store* store, absl::Duration sync_timeout)
    : store_(store), sync_timeout_(sync_timeout) {}

ClusterModel::~ClusterModel() {
  std::unique_ptr<state::WatchHandle> watch;
  {
    absl::MutexLock lock(&load_mu_);
    watch = std::move(watch_);
  }
  watch.reset();  // outside every lock: a running callback may be waiting for mu_
}

ClusterModel::Change ClusterModel::Decode(const state::KeyValue& kv, bool deleted) const {
  Change c;
  c.deleted = deleted;
  c.revision = kv.mod_revision;
  std::string_view key = kv.key;
  if (StartsWith(key, kHostPrefix)) {
    c.kind = Change::Kind::kHost;
    c.name = key.substr(kHostPrefix.size());
  } else if (StartsWith(key, kHostAllocPrefix)) {
    c.kind = Change::Kind::kAlloc;
    c.name = key.substr(kHostAllocPrefix.size());
  } else if (StartsWith(key, kWorkloadPrefix)) {
    c.kind = Change::Kind::kWorkload;
    c.name = key.substr(kWorkloadPrefix.size());
  } else if (StartsWith(key, kQuotaPrefix)) {
    c.kind = Change::Kind::kQuota;
    c.name = key.substr(kQuotaPrefix.size());
  } else {
    return c;
  }
  if (deleted) return c;
  Json j = Json::parse(kv.value, nullptr, false);
  if (j.is_discarded()) {
    c.error = absl::DataLossError(Cat(key, ": not JSON"));
    return c;
  }
  switch (c.kind) {
    case Change::Kind::kHost: {
      absl::StatusOr<core::Host> h = core::DecodeHost(j);
      if (!h.ok()) {
        c.error = h.status();
        break;
      }
      h->revision = kv.mod_revision;
      c.host = std::move(*h);
      break;
    }
    case Change::Kind::kAlloc: {
      absl::StatusOr<HostAlloc> a = HostAllocCodec::Decode(j);
      if (!a.ok()) {
        c.error = a.status();
        break;
      }
      c.alloc = std::move(*a);
      break;
    }
    case Change::Kind::kWorkload: {
      absl::StatusOr<Workload> w = core::DecodeWorkload(j);
      if (!w.ok()) {
        c.error = w.status();
        break;
      }
      w->revision = kv.mod_revision;
      c.workload = std::move(*w);
      break;
    }
    case Change::Kind::kQuota: {
      absl::StatusOr<sched::Quota> q = DecodeQuota(c.name, j);
      if (!q.ok()) {
        c.error = q.status();
        break;
      }
      c.quota = std::move(*q);
      break;
    }
    case Change::Kind::kNone:
      break;
  }
  return c;
}

absl::Status ClusterModel::Load() {
  // Listed at revisions from `start` on, then every change after `start` replayed: a key is
  // taken only when its revision is newer than what the model holds, so the replay converges on
  // the store as it stands at the last event, whatever order the listings interleaved with.
  for (int attempt = 0; attempt < 8; ++attempt) {
    BERTH_ASSIGN_OR_RETURN(int64_t start, store_->Revision());
    std::vector<Change> changes;
    for (std::string_view prefix : {kHostPrefix, kQuotaPrefix, kHostAllocPrefix, kWorkloadPrefix}) {
      BERTH_ASSIGN_OR_RETURN(state::ListResponse list, store_->List(prefix));
      for (const state::KeyValue& kv : list.kvs) changes.push_back(Decode(kv, false));
    }
    uint64_t generation;
    {
      absl::MutexLock lock(&mu_);
      generation = ++generation_;
      Clear();
      for (const Change& c : changes) Apply(c);
      // Every revision after `start` arrives through the watch.
      covered_ = start;
      history_from_ = start;
      ++reloads_;
      ++changes_;
    }
    absl::StatusOr<std::unique_ptr<state::WatchHandle>> watch = store_->Watch(
        "/", start + 1, [this, generation](const state::Event& e) { OnEvent(generation, e); });
    if (watch.ok()) {
      std::unique_ptr<state::WatchHandle> old = std::move(watch_);
      watch_ = std::move(*watch);
      old.reset();
      return absl::OkStatus();
    }
    // Compacted between the listing and the watch: list again.
    if (!state::CompactedRevision(watch.status()).has_value()) return watch.status();
  }
  return absl::UnavailableError("cluster model: the store compacts faster than it can be listed");
}

void ClusterModel::OnEvent(uint64_t generation, const state::Event& e) {
  const bool interesting = !StartsWith(e.kv.key, kEventPrefix);
  Change c;
  if (interesting) c = Decode(e.kv, e.type == state::Event::Type::kDelete);
  absl::MutexLock lock(&mu_);
  if (generation != generation_) return;
  if (interesting && c.kind != Change::Kind::kNone) Apply(c);
  // Covered once the revision's last event is in: a half-applied transaction is never reported
  // as caught up.
  covered_ = std::max(covered_, e.more_in_revision ? e.revision() - 1 : e.revision());
}

absl::Status ClusterModel::Sync() {
  {
    absl::MutexLock lock(&load_mu_);
    if (!loaded_) {
      BERTH_RETURN_IF_ERROR(Load());
      loaded_ = true;
    }
  }
  BERTH_ASSIGN_OR_RETURN(int64_t target, store_->Revision());
  {
    absl::MutexLock lock(&mu_);
    auto caught_up = [this, target]()
                         ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return covered_ >= target; };
    if (mu_.AwaitWithTimeout(absl::Condition(&caught_up), sync_timeout_)) return absl::OkStatus();
  }
  // The watch fell silent: it ended after a compaction (etcd ends a watch whose next revision is
  // gone), or the store stalls. A fresh listing brings the model up to date.
  core::LogError("cluster model: the watch did not reach revision %d in %s; listing again", target,
                 absl::FormatDuration(sync_timeout_));
  absl::MutexLock lock(&load_mu_);
  return Load();
}

void ClusterModel::Clear() {
  hosts_.clear();
  ++hosts_version_;
  down_.clear();
  draining_.clear();
  allocs_.clear();
  workloads_.clear();
  quotas_.clear();
  recorded_on_.clear();
  pending_.clear();
  live_on_.clear();
  departed_.clear();
  departed_floor_.clear();
  gangs_.clear();
  for (auto& set : lacking_) set.clear();
  host_at_.clear();
  cluster_ = sched::Cluster();
  rebuild_ = false;
  idle_at_ = -1;
}

void ClusterModel::Apply(const Change& c) {
  switch (c.kind) {
    case Change::Kind::kHost:
      ApplyHost(c);
      break;
    case Change::Kind::kAlloc:
      ApplyAlloc(c);
      break;
    case Change::Kind::kWorkload:
      ApplyWorkload(c);
      break;
    case Change::Kind::kQuota:
      ApplyQuota(c);
      break;
    case Change::Kind::kNone:
      return;
  }
}

void ClusterModel::AddToCluster(HostEntry* entry) {
  absl::StatusOr<int> index = cluster_.AddHost(SchedulerHostSpec(entry->host));
  if (!index.ok()) {
    core::ReportError("control", Cat("host ", entry->host.name, " in the cluster model"),
                      index.status());
    entry->index = -1;
    return;
  }
  entry->index = *index;
  if (host_at_.size() <= size_t(*index)) host_at_.resize(*index + 1);
  host_at_[*index] = entry->host.name;
  for (size_t kind = 0; kind < kKinds; ++kind) {
    if (!(entry->drivers & (1u << kind))) lacking_[kind].insert(*index);
  }
  UpdateSchedulable(*entry);
}

void ClusterModel::UpdateSchedulable(const HostEntry& entry) {
  if (entry.index < 0) return;
  auto alloc = allocs_.find(entry.host.name);
  bool readable = alloc == allocs_.end() || alloc->second.readable;
  // A cordoned host keeps what it runs and takes nothing new.
  cluster_.SetSchedulable(
      entry.index, entry.host.state == core::HostState::kReady && !entry.host.cordoned && readable);
}

namespace {

bool Draining(const core::Host& h) { return h.draining || !h.drain_current.empty(); }

}  // namespace

void ClusterModel::IndexHost(const std::string& name, const core::Host* before,
                             const core::Host* after) {
  if ((before == nullptr) != (after == nullptr) ||
      (before != nullptr && before->state != after->state)) {
    ++hosts_version_;
  }
  if (after != nullptr && after->state == core::HostState::kDown) {
    down_.insert(name);
  } else if (before != nullptr && before->state == core::HostState::kDown) {
    down_.erase(name);
  }
  if (after != nullptr && Draining(*after)) {
    draining_.insert(name);
  } else if (before != nullptr && Draining(*before)) {
    draining_.erase(name);
  }
}

void ClusterModel::ApplyHost(const Change& c) {
  auto it = hosts_.find(c.name);
  if (it != hosts_.end() && it->second.host.revision >= c.revision) return;  // replayed
  ++changes_;
  if (c.deleted || !c.error.ok()) {
    // A host that does not decode is as good as gone: nothing is placed there.
    if (!c.error.ok()) core::LogDebug("cluster model: skipped: %s", c.error.ToString());
    if (it == hosts_.end()) return;
    IndexHost(c.name, &it->second.host, nullptr);
    hosts_.erase(it);
    rebuild_ = true;  // the scheduler's cluster cannot drop a host in place
    return;
  }
  if (it == hosts_.end()) {
    IndexHost(c.name, nullptr, &*c.host);
    HostEntry& entry = hosts_[c.name];
    entry.host = *c.host;
    entry.drivers = DriverBits(entry.host.inventory);
    if (rebuild_) return;
    AddToCluster(&entry);
    // Allocation records may have arrived before the host (a listing, a replay).
    if (auto alloc = allocs_.find(c.name); alloc != allocs_.end()) {
      for (const auto& [name, generation] : alloc->second.alloc.workloads) Reconcile(name);
    }
    return;
  }
  HostEntry& entry = it->second;
  // What the scheduler sees comes from the inventory alone; a state change keeps it.
  const bool same = core::EncodeHostInventory(entry.host.inventory) ==
                    core::EncodeHostInventory(c.host->inventory);
  IndexHost(c.name, &entry.host, &*c.host);
  entry.host = *c.host;
  entry.drivers = DriverBits(entry.host.inventory);
  if (!same) {
    rebuild_ = true;
    return;
  }
  if (!rebuild_) UpdateSchedulable(entry);
}

void ClusterModel::ApplyAlloc(const Change& c) {
  auto it = allocs_.find(c.name);
  if (it != allocs_.end() && it->second.mod_revision >= c.revision) return;
  ++changes_;
  std::set<std::string> touched;
  if (it != allocs_.end()) {
    for (const auto& [name, generation] : it->second.alloc.workloads) {
      auto owner = recorded_on_.find(name);
      if (owner != recorded_on_.end() && owner->second == c.name) recorded_on_.erase(owner);
      touched.insert(name);
    }
  }
  if (c.deleted) {
    if (it != allocs_.end()) allocs_.erase(it);
  } else {
    AllocEntry& entry = allocs_[c.name];
    entry.mod_revision = c.revision;
    entry.readable = c.error.ok();
    entry.alloc = c.error.ok() ? *c.alloc : HostAlloc{};
    if (!c.error.ok()) core::ReportError("control", "cluster model", c.error);
    for (const auto& [name, generation] : entry.alloc.workloads) {
      recorded_on_.emplace(name, c.name);
      touched.insert(name);
    }
  }
  if (rebuild_) return;
  for (const std::string& name : touched) Reconcile(name);
  if (auto host = hosts_.find(c.name); host != hosts_.end()) UpdateSchedulable(host->second);
}

void ClusterModel::IndexWorkload(const Workload& w, bool add) {
  if (IsPending(w)) {
    PendingKey key{w.spec.priority, w.created_at, w.spec.name};
    if (add) {
      pending_.insert(std::move(key));
    } else {
      pending_.erase(key);
    }
  }
  if (const std::string* gang = GangOf(w)) {
    if (add) {
      gangs_[*gang].insert(w.spec.name);
    } else if (auto it = gangs_.find(*gang); it != gangs_.end()) {
      it->second.erase(w.spec.name);
      if (it->second.empty()) gangs_.erase(it);
    }
  }
  if (IsLiveOnHost(w)) {
    if (add) {
      live_on_[w.status.host].insert(w.spec.name);
    } else if (auto it = live_on_.find(w.status.host); it != live_on_.end()) {
      it->second.erase(w.spec.name);
      if (it->second.empty()) live_on_.erase(it);
    }
  }
}

void ClusterModel::ApplyWorkload(const Change& c) {
  auto it = workloads_.find(c.name);
  if (it != workloads_.end() && it->second.revision >= c.revision) return;
  ++changes_;
  std::string was_on;
  if (it != workloads_.end()) {
    if (IsLiveOnHost(it->second)) was_on = it->second.status.host;
    IndexWorkload(it->second, false);
    if (c.deleted || !c.error.ok()) workloads_.erase(it);
  }
  if (!c.error.ok()) core::LogDebug("cluster model: skipped: %s", c.error.ToString());
  bool still_on = false;
  if (!c.deleted && c.error.ok()) {
    Workload& w = workloads_[c.name];
    w = *c.workload;
    IndexWorkload(w, true);
    still_on = IsLiveOnHost(w) && w.status.host == was_on;
  }
  if (!was_on.empty() && !still_on) {
    std::deque<Departure>& left = departed_[was_on];
    left.push_back({c.name, c.revision});
    if (left.size() > kMaxDepartures) {
      departed_floor_[was_on] = left.front().revision;
      left.pop_front();
    }
  }
  if (!rebuild_) Reconcile(c.name);
}

void ClusterModel::ApplyQuota(const Change& c) {
  auto it = quotas_.find(c.name);
  if (it != quotas_.end() && it->second.second >= c.revision) return;
  ++changes_;
  if (c.deleted || !c.error.ok()) {
    // Placed as if the tenant had no quota, as the store-reading paths do.
    if (!c.error.ok()) core::ReportError("control", "cluster model", c.error);
    if (it != quotas_.end()) quotas_.erase(it);
    cluster_.ClearQuota(c.name);
    return;
  }
  quotas_[c.name] = {*c.quota, c.revision};
  cluster_.SetQuota(c.name, *c.quota);
}

void ClusterModel::Reconcile(const std::string& name) {
  if (cluster_.FindAllocation(name) != nullptr) {
    if (absl::Status s = cluster_.Release(name); !s.ok()) {
      core::LogDebug("cluster model: release of %s: %s", name, s.ToString());
    }
  }
  auto w = workloads_.find(name);
  auto owner = recorded_on_.find(name);
  if (w == workloads_.end() || owner == recorded_on_.end()) return;
  auto host = hosts_.find(owner->second);
  if (host == hosts_.end() || host->second.index < 0) return;
  sched::Placement p;
  p.host = host->second.index;
  p.host_name = owner->second;
  p.gpus = w->second.status.gpus;
  p.devices = w->second.status.devices;
  // A record that no longer fits (its host's inventory shrank) is still what the store holds.
  if (absl::Status s = cluster_.Commit(WorkloadRequest(w->second), p); !s.ok()) {
    core::LogDebug("workload %s: on host %s beyond what the host now offers: %s", name,
                   owner->second, s.ToString());
  }
}

void ClusterModel::RebuildIfNeeded() {
  if (!rebuild_) return;
  rebuild_ = false;
  cluster_ = sched::Cluster();
  host_at_.clear();
  for (auto& set : lacking_) set.clear();
  for (const auto& [tenant, quota] : quotas_) cluster_.SetQuota(tenant, quota.first);
  for (auto& [name, entry] : hosts_) AddToCluster(&entry);
  for (const auto& [name, host] : recorded_on_) Reconcile(name);
}

std::string ClusterModel::GangAddress(const std::string& host) {
  auto it = hosts_.find(host);
  if (it == hosts_.end() || it->second.host.inventory.address.empty()) return host;
  return it->second.host.inventory.address;
}

bool ClusterModel::HasPending() {
  absl::MutexLock lock(&mu_);
  return !pending_.empty();
}

absl::StatusOr<BatchPlan> ClusterModel::Plan(const sched::Policy& policy,
                                             const sched::WorkloadMix& mix,
                                             const PlanOptions& options) {
  BatchPlan out;
  absl::MutexLock lock(&mu_);
  // Nothing changed since a pass that placed nothing, and no restart's backoff has run out.
  if (pending_.empty() || (idle_at_ == changes_ && options.now < retry_wake_)) return out;
  retry_wake_ = absl::InfiniteFuture();
  RebuildIfNeeded();
  // Read by the scheduler under mu_, which this function holds throughout.
  auto lost_work = [this, &options](const std::string& id) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    auto w = workloads_.find(id);
    if (w == workloads_.end() || options.now == absl::InfiniteFuture()) return int64_t{0};
    absl::Time since = w->second.status.started_at;
    if (options.checkpoints != nullptr) {
      auto c = options.checkpoints->find(id);
      if (c != options.checkpoints->end() && c->second > since) since = c->second;
    }
    if (since == absl::InfinitePast() || since > options.now) return int64_t{0};
    return absl::ToInt64Seconds(options.now - since);
  };
  std::function<bool(const std::string&, const std::string&)> holds_warm_state;
  if (options.warm_states != nullptr && !options.warm_states->empty()) {
    holds_warm_state = [&options](const std::string& host, const std::string& key) {
      auto it = options.warm_states->find(host);
      return it != options.warm_states->end() && it->second.contains(key);
    };
  }
  sched::Scheduler scheduler(&cluster_,
                             sched::SchedulerOptions{.policy = policy,
                                                     .mix = &mix,
                                                     .always_explain = false,
                                                     .lost_work = lost_work,
                                                     .holds_warm_state = holds_warm_state});
  // What the plan did to cluster_, undone in reverse before returning: the model shows what the
  // store holds, and these placements reach it only once committed.
  struct Undo {
    std::string placed;                      // a placement to release, or
    std::optional<sched::Allocation> freed;  // a victim to commit again
  };
  std::vector<Undo> undo;
  // Hosts without a driver for a kind are taken out while requests of that kind are planned;
  // the mask changes only when the kind does, never per host per request.
  int masked_kind = -1;
  std::vector<int> masked;
  auto unmask = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (int index : masked) cluster_.SetSchedulable(index, true);
    masked.clear();
    masked_kind = -1;
  };
  auto mask = [&](core::WorkloadKind kind) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (static_cast<int>(kind) == masked_kind) return;
    unmask();
    masked_kind = static_cast<int>(kind);
    for (int index : lacking_[masked_kind]) {
      if (cluster_.schedulable(index)) {
        cluster_.SetSchedulable(index, false);
        masked.push_back(index);
      }
    }
  };
  auto touch_alloc = [&](const std::string& host) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (out.allocs.contains(host)) return;
    auto it = allocs_.find(host);
    out.allocs[host] = it == allocs_.end()
                           ? std::make_pair(HostAlloc{}, int64_t{0})
                           : std::make_pair(it->second.alloc, it->second.mod_revision);
  };
  // Gangs: planned once, when their first waiting member comes up. Returns false when the batch
  // has no room left for the gang's steps.
  std::set<std::string> gangs_planned;
  auto plan_gang = [&](const std::string& gang) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> bool {
    std::vector<const Workload*> waiting;  // pending, in task order
    std::vector<const Workload*> placed;   // live on a host already
    int size = 1;
    for (const std::string& name : gangs_.at(gang)) {
      const Workload& m = workloads_.at(name);
      size = std::max(size, IntLabel(m, core::kGangSizeLabel, 1));
      if (IsPending(m)) {
        waiting.push_back(&m);
      } else if (IsLiveOnHost(m) && m.status.desired == core::DesiredState::kRunning) {
        placed.push_back(&m);
      }
    }
    std::stable_sort(waiting.begin(), waiting.end(), [](const Workload* a, const Workload* b) {
      return IntLabel(*a, core::kTaskLabel, 0) < IntLabel(*b, core::kTaskLabel, 0);
    });
    for (const Workload* m : waiting) {
      if (m->status.retry_at > options.now) {
        // One member still backs off: the gang waits for it.
        retry_wake_ = std::min(retry_wake_, m->status.retry_at);
        return true;
      }
    }
    if (!out.steps.empty() && out.steps.size() + waiting.size() > options.max_steps) return false;
    std::string why;
    const core::WorkloadKind kind = waiting.front()->spec.kind;
    if (waiting.size() + placed.size() < static_cast<size_t>(size)) {
      why = Cat("gang ", gang, ": waiting for its members: ", waiting.size() + placed.size(),
                " of ", size, " exist");
    } else if (std::any_of(waiting.begin(), waiting.end(),
                           [&](const Workload* m) { return m->spec.kind != kind; })) {
      why =
          Cat("gang ", gang, ": its members are of different kinds and cannot be placed together");
    } else {
      std::vector<sched::Request> requests;
      for (const Workload* m : waiting) requests.push_back(WorkloadRequest(*m));
      mask(kind);
      absl::StatusOr<sched::GangDecision> gd = scheduler.ScheduleGang(requests);
      if (!gd.ok()) {
        why = Cat("gang ", gang, ": ", gd.status().message());
      } else if (!gd->scheduled) {
        why = Cat("gang ", gang, ": its ", waiting.size(),
                  " waiting members are placed all at once or not at all; ", gd->failed_member,
                  " fits no host: ", sched::FormatReasons(gd->reasons));
        if (!masked.empty()) {
          why =
              Cat(why, "; no ", core::WorkloadKindName(kind), " driver: ", masked.size(), " hosts");
        }
      } else {
        size_t committed = 0;
        for (; committed < waiting.size(); ++committed) {
          if (!cluster_.Commit(requests[committed], gd->plans[committed].placement).ok()) break;
          undo.push_back({.placed = waiting[committed]->spec.name, .freed = std::nullopt});
        }
        if (committed < waiting.size()) return true;  // the plan's undo releases the rest
        // The rendezvous: where the member of task 0 runs, and each member's rank on its host.
        std::string master_host;
        bool one_host = true;
        std::map<std::string, int> on_host;
        for (size_t i = 0; i < waiting.size(); ++i) {
          if (IntLabel(*waiting[i], core::kTaskLabel, -1) == 0) {
            master_host = gd->plans[i].placement.host_name;
          }
        }
        for (const Workload* m : placed) {
          if (IntLabel(*m, core::kTaskLabel, -1) == 0) master_host = m->status.host;
        }
        for (size_t i = 0; i < waiting.size(); ++i) {
          one_host = one_host && gd->plans[i].placement.host_name == master_host;
        }
        for (const Workload* m : placed) one_host = one_host && m->status.host == master_host;
        for (size_t i = 0; i < waiting.size(); ++i) {
          const Workload& m = *waiting[i];
          PlannedStep step;
          step.workload = m;
          step.place = true;
          step.gang = gang;
          step.plan = std::move(gd->plans[i]);
          const std::string& host = step.plan.placement.host_name;
          touch_alloc(host);
          if (auto h = hosts_.find(host); h != hosts_.end()) {
            step.host_gpus = h->second.host.inventory.gpus;
          }
          if (m.spec.labels.contains(std::string(core::kTaskLabel))) {
            step.env["LOCAL_RANK"] = Cat(on_host[host]++);
            if (!master_host.empty()) {
              step.env["MASTER_ADDR"] = one_host ? "127.0.0.1" : GangAddress(master_host);
            }
          }
          out.steps.push_back(std::move(step));
        }
        return true;
      }
    }
    for (const Workload* m : waiting) {
      if (m->status.explanation == why) continue;
      PlannedStep step;
      step.workload = *m;
      step.gang = gang;
      step.explanation = why;
      out.steps.push_back(std::move(step));
    }
    return true;
  };
  for (const PendingKey& key : pending_) {
    if (out.steps.size() >= options.max_steps) {
      out.more = true;
      break;
    }
    const Workload& w = workloads_.at(key.name);
    if (const std::string* gang = GangOf(w)) {
      if (!gangs_planned.insert(*gang).second) continue;
      if (!plan_gang(*gang)) {
        out.more = true;
        break;
      }
      continue;
    }
    if (w.status.retry_at > options.now) {
      // Restarting after a backoff that has not run out yet: a later pass takes it.
      retry_wake_ = std::min(retry_wake_, w.status.retry_at);
      continue;
    }
    sched::Request request = WorkloadRequest(w);
    mask(w.spec.kind);
    absl::StatusOr<sched::Decision> decision = scheduler.ScheduleWithPreemption(request);
    if (!decision.ok()) {
      // A request the engine refuses outright (e.g. an impossible GPU form) stays pending with
      // the engine's reason.
      decision = sched::Decision{};
      decision->reasons.push_back({std::string(decision.status().message()), 0});
    }
    if (!decision->scheduled) {
      std::string why = decision->Explain();
      if (!masked.empty()) {
        why = Cat(why, why.empty() ? "" : "; ", "no ", core::WorkloadKindName(w.spec.kind),
                  " driver: ", masked.size(), " hosts");
      }
      if (hosts_.empty()) why = "no hosts registered";
      // Which labels it asks for: a fleet pins a workload to its disks' host or pool this way.
      if (why.find("host labels") != std::string::npos && !w.spec.constraints.empty()) {
        why = Cat(why, " (its constraints: ", ConstraintsText(w.spec.constraints), ")");
      }
      if (w.status.explanation == why) continue;
      PlannedStep step;
      step.workload = w;
      step.explanation = std::move(why);
      out.steps.push_back(std::move(step));
      continue;
    }
    PlannedStep step;
    bool victim_missing = false;
    for (const std::string& victim : decision->plan.victims) {
      auto it = workloads_.find(victim);
      if (it == workloads_.end()) {
        victim_missing = true;
        break;
      }
      step.victims.push_back(it->second);
    }
    if (victim_missing) continue;
    // The scheduler planned on this model, so its victims are there and the placement fits; a
    // step the model refuses anyway is left for the next pass rather than applied.
    bool modeled = true;
    for (const std::string& victim : decision->plan.victims) {
      const sched::Allocation* held = cluster_.FindAllocation(victim);
      if (held == nullptr) {
        modeled = false;
        continue;
      }
      sched::Allocation saved = *held;
      if (cluster_.Release(victim).ok()) {
        undo.push_back({.placed = {}, .freed = std::move(saved)});
      } else {
        modeled = false;
      }
    }
    if (!modeled || !cluster_.Commit(request, decision->plan.placement).ok()) continue;
    undo.push_back({.placed = w.spec.name, .freed = std::nullopt});
    const std::string& host = decision->plan.placement.host_name;
    touch_alloc(host);
    for (const Workload& v : step.victims) touch_alloc(v.status.host);
    if (auto h = hosts_.find(host); h != hosts_.end())
      step.host_gpus = h->second.host.inventory.gpus;
    step.workload = w;
    step.place = true;
    step.plan = std::move(decision->plan);
    out.steps.push_back(std::move(step));
  }
  unmask();
  for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
    absl::Status s = it->freed ? cluster_.Commit(it->freed->request, it->freed->placement)
                               : cluster_.Release(it->placed);
    if (!s.ok()) {
      // The cluster no longer matches the records: build it again from them.
      core::ReportError("control", "cluster model: undoing a plan", s);
      rebuild_ = true;
    }
  }
  if (out.steps.empty() && !out.more) idle_at_ = changes_;
  return out;
}

std::optional<core::Host> ClusterModel::FindHost(std::string_view name) {
  absl::MutexLock lock(&mu_);
  auto it = hosts_.find(name);
  if (it == hosts_.end()) return std::nullopt;
  return it->second.host;
}

std::optional<HostLiveness> ClusterModel::Liveness(std::string_view name) {
  absl::MutexLock lock(&mu_);
  auto it = hosts_.find(name);
  if (it == hosts_.end()) return std::nullopt;
  return HostLiveness{it->first, it->second.host.state, it->second.host.revision};
}

std::vector<HostLiveness> ClusterModel::AllLiveness() {
  absl::MutexLock lock(&mu_);
  std::vector<HostLiveness> out;
  out.reserve(hosts_.size());
  for (const auto& [name, entry] : hosts_) {
    out.push_back({name, entry.host.state, entry.host.revision});
  }
  return out;
}

uint64_t ClusterModel::HostsVersion() {
  absl::MutexLock lock(&mu_);
  return hosts_version_;
}

std::vector<std::string> ClusterModel::DownHosts() {
  absl::MutexLock lock(&mu_);
  return std::vector<std::string>(down_.begin(), down_.end());
}

std::vector<std::string> ClusterModel::DrainingHosts() {
  absl::MutexLock lock(&mu_);
  return std::vector<std::string>(draining_.begin(), draining_.end());
}

void ClusterModel::ReadHosts(
    const ListOptions& options, ListPage* page,
    absl::FunctionRef<void(const core::Host&, const sched::Cluster&, int)> read) {
  absl::MutexLock lock(&mu_);
  RebuildIfNeeded();
  if (page != nullptr) page->revision = covered_;
  size_t kept = 0;
  const std::string* last = nullptr;
  auto it = options.after.empty() ? hosts_.begin() : hosts_.upper_bound(options.after);
  for (; it != hosts_.end(); ++it) {
    const HostEntry& entry = it->second;
    if (!MatchesHost(options.filter, entry.host)) continue;
    if (options.limit > 0 && kept == options.limit) {
      // Something passes after the page: the next one starts after the page's last name.
      if (page != nullptr && last != nullptr) page->next = *last;
      break;
    }
    read(entry.host, cluster_, entry.index);
    last = &it->first;
    ++kept;
  }
}

std::vector<Workload> ClusterModel::LiveWorkloadsOn(std::string_view host, int64_t* revision) {
  absl::MutexLock lock(&mu_);
  std::vector<Workload> out;
  if (revision) *revision = covered_;
  auto it = live_on_.find(host);
  if (it == live_on_.end()) return out;
  out.reserve(it->second.size());
  for (const std::string& name : it->second) out.push_back(workloads_.at(name));
  return out;
}

AssignmentChanges ClusterModel::AssignmentsSince(std::string_view host, int64_t since) {
  absl::MutexLock lock(&mu_);
  AssignmentChanges out;
  out.revision = covered_;
  int64_t floor = history_from_;
  if (auto f = departed_floor_.find(host); f != departed_floor_.end()) {
    floor = std::max(floor, f->second);
  }
  out.full = since <= 0 || since < floor || since > covered_;
  auto live = live_on_.find(host);
  if (live != live_on_.end()) {
    for (const std::string& name : live->second) {
      const Workload& w = workloads_.at(name);
      if (out.full || w.revision > since) out.items.push_back(w);
    }
  }
  if (out.full) return out;
  std::set<std::string> removed;
  if (auto left = departed_.find(host); left != departed_.end()) {
    for (const Departure& d : left->second) {
      if (d.revision <= since) continue;
      if (live != live_on_.end() && live->second.contains(d.name)) continue;
      removed.insert(d.name);
    }
  }
  out.removed.assign(removed.begin(), removed.end());
  return out;
}

std::vector<sched::Request> ClusterModel::RequestsByAge() {
  absl::MutexLock lock(&mu_);
  std::vector<const Workload*> all;
  all.reserve(workloads_.size());
  for (const auto& [name, w] : workloads_) all.push_back(&w);
  std::stable_sort(all.begin(), all.end(), [](const Workload* a, const Workload* b) {
    return a->created_at < b->created_at;
  });
  std::vector<sched::Request> out;
  out.reserve(all.size());
  for (const Workload* w : all) out.push_back(WorkloadRequest(*w));
  return out;
}

void ClusterModel::ReadCluster(absl::FunctionRef<void(const sched::Cluster&)> read) {
  absl::MutexLock lock(&mu_);
  RebuildIfNeeded();
  read(cluster_);
}

void ClusterModel::ReadClusterAndWorkloads(
    absl::FunctionRef<void(const sched::Cluster&,
                           const std::map<std::string, Workload, std::less<>>&)>
        read) {
  absl::MutexLock lock(&mu_);
  RebuildIfNeeded();
  read(cluster_, workloads_);
}

bool ClusterModel::HasAllocRecord(std::string_view host) {
  absl::MutexLock lock(&mu_);
  return allocs_.contains(host);
}

ModelStats ClusterModel::Stats() {
  absl::MutexLock lock(&mu_);
  return ModelStats{.hosts = hosts_.size(),
                    .workloads = workloads_.size(),
                    .pending = pending_.size(),
                    .allocations = size_t(cluster_.num_allocations()),
                    .revision = covered_,
                    .reloads = reloads_};
}

}  // namespace berth::control
