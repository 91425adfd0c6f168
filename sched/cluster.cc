#include "sched/cluster.h"

#include <algorithm>
#include <bit>
#include <set>

#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"
#include "sched/cluster_index.h"
#include "sched/fgd.h"
#include "sched/fits.h"

namespace berth::sched {

uint8_t MigMask(const core::MigProfile& profile, int start) {
  return uint8_t(((1u << profile.memory_slices) - 1) << start);
}

int64_t MigMilli(const core::MigProfile& profile) {
  return profile.compute_slices * core::kWholeGpuMilli / 7;
}

namespace {

std::string ClassKey(const HostSpec& spec) {
  std::string key = core::Cat(spec.capacity.cpu.value(), "/", spec.capacity.memory.value(), "/",
                              spec.capacity.disk.value(), "|");
  for (const auto& [k, v] : spec.labels) key += core::Cat(k, "=", v, "\x1f");
  key += "|";
  for (const core::GpuDevice& g : spec.gpus) {
    key += core::Cat(g.index, ",", g.model, ",", g.memory_mib, ",", g.numa_node, ",",
                     g.nvlink_island, ",", g.mig_enabled);
    // The instances carved decide which MIG slices the device can hand out (CarvedMigStarts).
    for (const core::MigInstance& m : g.mig_instances)
      key += core::Cat(",", m.profile, "@", m.start_slice);
    key += ";";
  }
  if (!spec.devices.empty()) {
    std::map<std::string_view, int> per_class;
    for (const core::Device& d : spec.devices) per_class[d.cls]++;
    key += "|";
    for (const auto& [cls, n] : per_class) key += core::Cat(cls, "=", n, ";");
  }
  return key;
}

int64_t GpuMilliOf(const Placement& p) {
  int64_t sum = 0;
  for (const core::GpuAssignment& a : p.gpus) sum += a.milli;
  return sum;
}

std::string GpuModelOf(const HostState& host, const Placement& p) {
  if (p.gpus.empty()) return "";
  for (const GpuState& g : host.gpus) {
    if (g.device.index == p.gpus.front().index) return g.device.model;
  }
  return "";
}

int GpuPosition(const HostState& host, int device_index) {
  for (size_t i = 0; i < host.gpus.size(); ++i) {
    if (host.gpus[i].device.index == device_index) return int(i);
  }
  return -1;
}

// Position of device `id` in `d`, or -1.
int DevicePosition(const DeviceClassState& d, std::string_view id) {
  for (size_t i = 0; i < d.ids.size(); ++i) {
    if (d.ids[i] == id) return int(i);
  }
  return -1;
}

template <typename Devices>
auto DevicesOf(Devices& devices, std::string_view cls) -> decltype(&devices[0]) {
  for (auto& d : devices) {
    if (d.cls == cls) return &d;
  }
  return nullptr;
}

// The device half of CheckFits: the placement names, for each class the request asks for,
// exactly `count` distinct free devices of the host, and nothing else.
absl::Status CheckDevicesFit(const Request& r, const Placement& p, const HostState& host,
                             const HostDevices& devices) {
  size_t want = 0;
  for (const core::DeviceRequest& d : r.devices) want += size_t(d.count);
  if (p.devices.size() != want) {
    return core::FieldError(
        "workload", r.id, "placement.devices",
        core::Cat("must name ", int64_t(want), " devices, got ", int64_t(p.devices.size())));
  }
  for (const core::DeviceRequest& d : r.devices) {
    const DeviceClassState* offered = DevicesOf(devices, d.cls);
    std::set<std::string_view> named;
    for (const core::DeviceAssignment& a : p.devices) {
      if (a.cls != d.cls) continue;
      const int pos = offered == nullptr ? -1 : DevicePosition(*offered, a.id);
      if (pos < 0 || !named.insert(a.id).second) {
        return core::FieldError("workload", r.id, "placement.devices",
                                core::Cat("device ", a.cls, "=", a.id, " is unknown on host \"",
                                          host.name, "\" or named twice"));
      }
      if (offered->used[pos]) {
        return absl::FailedPreconditionError(core::Cat("workload \"", r.id, "\": device ", a.cls,
                                                       "=", a.id, " on host \"", host.name,
                                                       "\": held by another workload"));
      }
    }
    if (named.size() != size_t(d.count)) {
      return core::FieldError("workload", r.id, "placement.devices",
                              core::Cat("must name ", d.count, " devices of ", d.cls));
    }
  }
  return absl::OkStatus();
}

// Marks the placement's devices among a host's `devices` taken (`take`) or free again.
void MarkDevices(HostDevices& devices, const Placement& p, bool take) {
  for (const core::DeviceAssignment& a : p.devices) {
    DeviceClassState* d = DevicesOf(devices, a.cls);
    const int pos = DevicePosition(*d, a.id);
    d->used[pos] = take;
    d->free += take ? -1 : 1;
  }
}

}  // namespace

StateKeyVec Cluster::Index::StateKey(int h) const {
  const HostState& host = hosts[h];
  StateKeyVec key;
  key.reserve(5 + 3 * host.gpus.size());
  key.push_back(host_class[h]);
  key.push_back(schedulable[h] ? 1 : 0);
  key.push_back(host.allocated.cpu.value());
  key.push_back(host.allocated.memory.value());
  key.push_back(host.allocated.disk.value());
  for (const GpuState& g : host.gpus) {
    key.push_back(g.free_milli);
    key.push_back(g.free_memory_mib);
    key.push_back(g.mig_slices_used);
  }
  // Hosts with the same free count of each class group together: which ids are free does not
  // change whether a request fits, only which ids the placement names.
  for (const DeviceClassState& d : host_devices[h]) key.push_back(d.free);
  return key;
}

void Cluster::Index::Regroup(int h) {
  StateKeyVec key = StateKey(h);
  int old = host_group[h];
  if (old >= 0) {
    if (groups[old].key == key) return;
    HostGroup& g = groups[old];
    g.hosts.erase(h);
    if (g.counted) cluster_frag -= g.counted_frag;
    if (g.hosts.empty()) {
      IndexErase(old);
      group_by_key.erase(g.key);
      int pos = g.live_pos;
      int last = live_groups.back();
      live_groups[pos] = last;
      groups[last].live_pos = pos;
      live_groups.pop_back();
      g.live_pos = -1;
      g.key.clear();
      g.frag_version = 0;
      g.counted = false;
      free_groups.push_back(old);
    } else if (summary[old].min_host == h) {
      IndexErase(old);
      summary[old].min_host = *g.hosts.begin();
      IndexInsert(old);
    }
  }
  auto it = group_by_key.find(key);
  int id;
  bool created = it == group_by_key.end();
  if (!created) {
    id = it->second;
  } else {
    if (!free_groups.empty()) {
      id = free_groups.back();
      free_groups.pop_back();
    } else {
      id = int(groups.size());
      groups.emplace_back();
      summary.emplace_back();
    }
    HostGroup& g = groups[id];
    g.cls = host_class[h];
    g.gen = next_gen++;
    g.key = key;
    g.frag_version = 0;
    g.counted = false;
    if (cluster_frag_version != 0) {
      // Many changes without a Fragmentation call: stop tracking until the next one.
      if (frag_pending.size() >= 2 * groups.size() + 64) {
        cluster_frag_version = 0;
        frag_pending.clear();
      } else {
        frag_pending.emplace_back(id, g.gen);
      }
    }
    g.live_pos = int(live_groups.size());
    live_groups.push_back(id);
    group_by_key.emplace(std::move(key), id);
  }
  groups[id].hosts.insert(h);
  if (groups[id].counted) cluster_frag += groups[id].counted_frag;
  host_group[h] = id;
  if (created) {
    Summarize(id);
    IndexInsert(id);
  } else if (h < summary[id].min_host) {
    IndexErase(id);
    summary[id].min_host = h;
    IndexInsert(id);
  }
}

void Cluster::Index::IndexInsert(int group) {
  const GroupSummary& s = summary[group];
  if (pack.size() <= size_t(s.cls)) pack.resize(s.cls + 1);
  pack[s.cls][s.bucket].insert(PackEntry{s.pack_key, s.min_host, group});
  by_min_host.insert({s.min_host, group});
}

void Cluster::Index::IndexErase(int group) {
  const GroupSummary& s = summary[group];
  auto& buckets = pack[s.cls];
  auto it = buckets.find(s.bucket);
  it->second.erase(PackEntry{s.pack_key, s.min_host, group});
  if (it->second.empty()) buckets.erase(it);
  by_min_host.erase({s.min_host, group});
}

void Cluster::Index::Summarize(int group) {
  const HostGroup& g = groups[group];
  int h = *g.hosts.begin();
  const HostState& host = hosts[h];
  GroupSummary& s = summary[group];
  s = GroupSummary{};
  s.cls = g.cls;
  s.min_host = h;
  s.schedulable = schedulable[h];
  s.free = host.Free();
  s.gpu_used_milli = host.GpuCapacityMilli() - host.FreeGpuMilli();
  s.pack_key = PackKey(host.capacity, host.GpuCapacityMilli(), host.allocated, s.gpu_used_milli);
  for (size_t i = 0; i < host.gpus.size(); ++i) {
    const GpuState& gs = host.gpus[i];
    if (gs.device.mig_enabled) {
      if (gs.mig_slices_used != 0xff) s.mig_free = true;
    } else {
      if (gs.free_milli == core::kWholeGpuMilli && i < 32) s.idle_mask |= 1u << i;
      s.max_share_free = std::max(s.max_share_free, gs.free_milli);
    }
  }
  int idle = std::min(std::popcount(s.idle_mask), kMaxIdleBucket);
  int level = int(std::min<int64_t>(s.max_share_free / kShareLevel, 4));
  s.bucket = idle * 5 + level;
}

const MixPlan& Cluster::Index::Plan(const WorkloadMix& mix) {
  if (mix_plan.version == mix.version()) return mix_plan;
  mix_plan.version = mix.version();
  mix_plan.cpu_only_weight = 0;
  mix_plan.gpus.clear();
  for (const WorkloadMix::Entry& e : mix.entries()) {
    if (e.shape.gpu.kind == core::GpuRequest::Kind::kNone) {
      mix_plan.cpu_only_weight += e.weight;
      continue;
    }
    MixGpu* mg = nullptr;
    for (MixGpu& m : mix_plan.gpus) {
      if (m.gpu == e.shape.gpu) {
        mg = &m;
        break;
      }
    }
    if (mg == nullptr) {
      mg = &mix_plan.gpus.emplace_back();
      mg->gpu = e.shape.gpu;
      mg->need = e.shape.gpu.kind == core::GpuRequest::Kind::kWhole ? e.shape.gpu.count : 1;
    }
    mg->weight += e.weight;
    mg->uses.push_back({e.shape.resources, e.weight});
  }
  return mix_plan;
}

const DeviceFit* Cluster::Index::ClassFragStatics(int cls, const MixPlan& plan) {
  if (class_frag_static.size() < classes.size()) class_frag_static.resize(classes.size());
  ClassFragStatic& cs = class_frag_static[cls];
  if (cs.version != plan.version) {
    cs.version = plan.version;
    const std::vector<core::GpuDevice>& devices = classes[cls].gpus;
    cs.dev.resize(plan.gpus.size() * devices.size());
    for (size_t u = 0; u < plan.gpus.size(); ++u) {
      for (size_t p = 0; p < devices.size(); ++p) {
        cs.dev[u * devices.size() + p] = DeviceFitFor(devices[p], plan.gpus[u].gpu);
      }
    }
  }
  return cs.dev.data();
}

const HostGroup& Cluster::Index::Frag(int group, const WorkloadMix& mix) {
  HostGroup& g = groups[group];
  if (g.frag_version == mix.version()) return g;
  const MixPlan& plan = Plan(mix);
  const DeviceFit* statics = ClassFragStatics(g.cls, plan);
  const HostState& host = hosts[*g.hosts.begin()];
  const size_t n = host.gpus.size();
  const core::Resources free = host.Free();
  const int64_t free_gpu = host.FreeGpuMilli();
  g.frag_version = mix.version();
  g.gpu_frag.resize(plan.gpus.size());
  // A shape that cannot run wastes all free GPU milli, one that can the milli of the devices
  // too small for it; CPU-only shapes never run on a GPU.
  int64_t sum = plan.cpu_only_weight * free_gpu;
  for (size_t u = 0; u < plan.gpus.size(); ++u) {
    const MixGpu& mg = plan.gpus[u];
    const DeviceFit* st = statics + u * n;
    GpuFrag& gf = g.gpu_frag[u];
    gf.holding = 0;
    gf.unheld_milli = 0;
    for (size_t p = 0; p < n; ++p) {
      if (Holds(st[p], mg.gpu, DeviceFree::Of(host.gpus[p]))) {
        ++gf.holding;
      } else {
        gf.unheld_milli += host.gpus[p].free_milli;
      }
    }
    if (gf.holding < mg.need) {
      sum += mg.weight * free_gpu;
      continue;
    }
    for (const MixGpu::Use& use : mg.uses) {
      sum += use.weight * (ResourcesFitIn(free, use.resources) ? gf.unheld_milli : free_gpu);
    }
  }
  g.weighted_frag = sum;
  return g;
}

int64_t Cluster::Index::ClusterFrag(const WorkloadMix& mix) {
  auto count = [&](int gid) {
    HostGroup& g = groups[gid];
    g.counted_frag = Frag(gid, mix).weighted_frag;
    g.counted = true;
    cluster_frag += g.counted_frag * int64_t(g.hosts.size());
  };
  if (cluster_frag_version != mix.version()) {
    for (HostGroup& g : groups) g.counted = false;
    cluster_frag_version = mix.version();
    cluster_frag = 0;
    frag_pending.clear();
    for (int gid : live_groups) count(gid);
    return cluster_frag;
  }
  for (const auto& [gid, gen] : frag_pending) {
    const HostGroup& g = groups[gid];
    if (g.gen == gen && g.live_pos >= 0 && !g.counted) count(gid);
  }
  frag_pending.clear();
  return cluster_frag;
}

Cluster::Cluster() : index_(std::make_unique<Index>()) {}
Cluster::~Cluster() = default;
Cluster::Cluster(Cluster&&) noexcept = default;
Cluster& Cluster::operator=(Cluster&&) noexcept = default;

absl::StatusOr<int> Cluster::AddHost(const HostSpec& spec) {
  Index& x = *index_;
  BERTH_RETURN_IF_ERROR(core::ValidateHostName(spec.name));
  if (x.host_by_name.contains(spec.name)) {
    return absl::AlreadyExistsError(core::Cat("host \"", spec.name, "\": already in the cluster"));
  }
  if (spec.capacity.AnyNegative()) {
    return core::FieldError("host", spec.name, "capacity", "must not be negative");
  }
  std::set<int> indices;
  for (const core::GpuDevice& g : spec.gpus) {
    if (!indices.insert(g.index).second) {
      return core::FieldError("host", spec.name, core::Cat("gpus[", g.index, "].index"),
                              "must be unique on the host");
    }
    if (g.memory_mib < 0) {
      return core::FieldError("host", spec.name, core::Cat("gpus[", g.index, "].memory"),
                              core::Cat("must be >= 0, got ", g.memory_mib));
    }
  }
  std::set<std::pair<std::string_view, std::string_view>> device_ids;
  for (size_t i = 0; i < spec.devices.size(); ++i) {
    const core::Device& d = spec.devices[i];
    if (absl::Status s = core::CheckDeviceClass(d.cls); !s.ok()) {
      return core::FieldError("host", spec.name, core::Cat("devices[", i, "].class"),
                              std::string(s.message()));
    }
    if (!device_ids.emplace(d.cls, d.id).second) {
      return core::FieldError("host", spec.name, core::Cat("devices[", i, "].id"),
                              core::Cat("names ", d.cls, "=", d.id, " twice"));
    }
  }
  std::vector<DeviceClassState> devices;
  for (const core::Device& d : spec.devices) {
    const int class_id =
        x.device_class_ids.try_emplace(d.cls, int(x.device_class_ids.size())).first->second;
    auto found = std::find_if(devices.begin(), devices.end(),
                              [&](const DeviceClassState& c) { return c.class_id == class_id; });
    if (found == devices.end()) {
      found = devices.insert(devices.end(), DeviceClassState{.cls = d.cls, .class_id = class_id});
    }
    found->ids.push_back(d.id);
    found->used.push_back(false);
    found->free++;
  }
  std::sort(
      devices.begin(), devices.end(),
      [](const DeviceClassState& a, const DeviceClassState& b) { return a.class_id < b.class_id; });
  std::string ckey = ClassKey(spec);
  int cls;
  auto cit = x.class_by_key.find(ckey);
  if (cit != x.class_by_key.end()) {
    cls = cit->second;
  } else {
    cls = int(x.classes.size());
    HostClass c;
    c.capacity = spec.capacity;
    c.labels = spec.labels;
    c.gpus = spec.gpus;
    std::set<int> islands, numa;
    for (core::GpuDevice& g : c.gpus) {
      g.uuid.clear();
      g.pci_address.clear();
      islands.insert(g.nvlink_island);
      numa.insert(g.numa_node);
    }
    c.nvlink_islands = int(islands.size());
    c.numa_nodes = int(numa.size());
    for (const core::GpuDevice& g : c.gpus) {
      size_t pool = 0;
      while (pool < x.model_pools.size() && x.model_pools[pool].model != g.model) ++pool;
      if (pool == x.model_pools.size()) x.model_pools.push_back(ModelPool{g.model});
      c.pools.push_back(int(pool));
    }
    for (const DeviceClassState& d : devices) c.device_totals.emplace_back(d.class_id, d.free);
    x.classes.push_back(std::move(c));
    x.class_by_key.emplace(std::move(ckey), cls);
  }
  int h = int(x.hosts.size());
  HostState state;
  state.name = spec.name;
  state.capacity = spec.capacity;
  state.labels = spec.labels;
  state.gpus.reserve(spec.gpus.size());
  for (const core::GpuDevice& d : spec.gpus) {
    GpuState g;
    g.device = d;
    g.free_memory_mib = d.memory_mib;
    state.gpus.push_back(std::move(g));
  }
  x.hosts.push_back(std::move(state));
  x.host_devices.push_back(std::move(devices));
  x.host_class.push_back(cls);
  x.host_group.push_back(-1);
  x.schedulable.push_back(true);
  x.host_allocations.emplace_back();
  x.host_by_name.emplace(spec.name, h);
  x.totals.hosts++;
  x.totals.capacity += spec.capacity;
  x.totals.gpus += int(spec.gpus.size());
  x.totals.idle_gpus += int(spec.gpus.size());
  int64_t gpu_milli = int64_t(spec.gpus.size()) * core::kWholeGpuMilli;
  x.totals.gpu_milli_capacity += gpu_milli;
  for (int pool : x.classes[cls].pools) x.model_pools[pool].capacity_milli += core::kWholeGpuMilli;
  x.max_host_gpu_milli = std::max(x.max_host_gpu_milli, gpu_milli);
  x.hosts_version++;
  x.Regroup(h);
  return h;
}

int Cluster::num_hosts() const { return int(index_->hosts.size()); }
const HostState& Cluster::host(int i) const { return index_->hosts[i]; }
const HostDevices& Cluster::devices(int i) const { return index_->host_devices[i]; }

std::optional<int> Cluster::FindHost(std::string_view name) const {
  auto it = index_->host_by_name.find(std::string(name));
  if (it == index_->host_by_name.end()) return std::nullopt;
  return it->second;
}

void Cluster::SetSchedulable(int i, bool s) {
  if (index_->schedulable[i] == s) return;
  index_->schedulable[i] = s;
  index_->Regroup(i);
}

bool Cluster::schedulable(int i) const { return index_->schedulable[i]; }

absl::Status Cluster::CheckFits(const Request& r, const Placement& p) const {
  const Index& x = *index_;
  const std::string_view kind = "workload";
  if (p.host < 0 || p.host >= int(x.hosts.size())) {
    return core::FieldError(kind, r.id, "placement.host", core::Cat("no host with index ", p.host));
  }
  const HostState& host = x.hosts[p.host];
  if (!p.host_name.empty() && p.host_name != host.name) {
    return core::FieldError(
        kind, r.id, "placement.host_name",
        core::Cat("is \"", p.host_name, "\" but host ", p.host, " is \"", host.name, "\""));
  }
  if (!ResourcesFitIn(host.Free(), r.resources)) {
    return absl::FailedPreconditionError(core::Cat("workload \"", r.id, "\": does not fit host \"",
                                                   host.name, "\" (cpu, memory or disk)"));
  }
  using Kind = core::GpuRequest::Kind;
  size_t want = r.gpu.kind == Kind::kNone    ? 0
                : r.gpu.kind == Kind::kWhole ? size_t(r.gpu.count)
                                             : 1;
  if (p.gpus.size() != want) {
    return core::FieldError(
        kind, r.id, "placement.gpus",
        core::Cat("must name ", int64_t(want), " devices, got ", int64_t(p.gpus.size())));
  }
  std::set<int> seen;
  for (const core::GpuAssignment& a : p.gpus) {
    int pos = GpuPosition(host, a.index);
    if (pos < 0 || !seen.insert(a.index).second) {
      return core::FieldError(
          kind, r.id, "placement.gpus",
          core::Cat("device ", a.index, " is unknown on host \"", host.name, "\" or named twice"));
    }
    const GpuState& g = host.gpus[pos];
    auto busy = [&](std::string_view what) {
      return absl::FailedPreconditionError(core::Cat("workload \"", r.id, "\": gpu ", a.index,
                                                     " on host \"", host.name, "\": ", what));
    };
    // The assignment must be the request's own form and the device must hold it by the one
    // fits rule (sched/fits.h), narrowed for MIG to the start slice named.
    DeviceFit fit = DeviceFitFor(g.device, r.gpu);
    if (fit.misfit == DeviceMisfit::kModel) return busy("model not allowed");
    switch (r.gpu.kind) {
      case Kind::kWhole:
        if (a.milli != core::kWholeGpuMilli || !a.mig_profile.empty()) {
          return core::FieldError(kind, r.id, "placement.gpus", "whole devices take 1000 milli");
        }
        if (fit.misfit == DeviceMisfit::kMemory) {
          DeviceFit idle = fit;
          idle.misfit = DeviceMisfit::kNone;
          if (Holds(idle, r.gpu, DeviceFree::Of(g))) return busy("too little memory");
        }
        break;  // otherwise a device that does not hold it is "not idle", below
      case Kind::kShare:
        if (a.milli != r.gpu.milli || a.memory_mib != r.gpu.memory_mib) {
          return core::FieldError(kind, r.id, "placement.gpus",
                                  "share must match the request's milli and memory");
        }
        if (fit.misfit == DeviceMisfit::kMigMode) return busy("is partitioned into MIG instances");
        break;
      case Kind::kMig:
        if (!fit.ok()) return busy("does not offer the MIG profile");
        if (a.mig_profile != r.gpu.mig_profile || a.milli != fit.mig_milli ||
            a.mig_start_slice < 0 || a.mig_start_slice > 7 ||
            (fit.mig_starts & (1u << a.mig_start_slice)) == 0) {
          return core::FieldError(kind, r.id, "placement.gpus",
                                  "MIG assignment must name the profile and a valid start slice");
        }
        fit.mig_starts = uint8_t(1u << a.mig_start_slice);
        break;
      case Kind::kNone:
        break;
    }
    if (!Holds(fit, r.gpu, DeviceFree::Of(g))) {
      return busy(r.gpu.kind == Kind::kShare ? "share does not fit"
                  : r.gpu.kind == Kind::kMig ? "MIG slices already taken"
                                             : "not idle");
    }
  }
  return CheckDevicesFit(r, p, host, x.host_devices[p.host]);
}

absl::Status Cluster::Commit(const Request& r, const Placement& p, const CommitOptions& options) {
  Index& x = *index_;
  if (x.allocations.contains(r.id)) {
    return absl::AlreadyExistsError(core::Cat("workload \"", r.id, "\": already allocated"));
  }
  BERTH_RETURN_IF_ERROR(CheckFits(r, p));
  HostState& host = x.hosts[p.host];
  std::string model = GpuModelOf(host, p);
  if (options.enforce_quota) BERTH_RETURN_IF_ERROR(CheckQuota(r, model));
  host.allocated += r.resources;
  for (const core::GpuAssignment& a : p.gpus) {
    const int pos = GpuPosition(host, a.index);
    GpuState& g = host.gpus[pos];
    x.model_pools[x.classes[x.host_class[p.host]].pools[pos]].allocated_milli += a.milli;
    if (g.free_milli == core::kWholeGpuMilli) x.totals.idle_gpus--;
    g.free_milli -= a.milli;
    g.free_memory_mib -= a.memory_mib;
    if (!a.mig_profile.empty()) {
      std::optional<core::MigProfile> prof =
          core::FindMigProfile(g.device.model, g.device.memory_mib, a.mig_profile);
      g.mig_slices_used |= MigMask(*prof, a.mig_start_slice);
    }
    if (a.milli < core::kWholeGpuMilli) g.shares++;
  }
  int64_t milli = GpuMilliOf(p);
  x.totals.allocated += r.resources;
  x.totals.gpu_milli_allocated += milli;
  x.totals.allocations++;
  TenantUsage& u = x.usage[r.tenant];
  u.resources += r.resources;
  u.gpu_milli += milli;
  if (milli > 0) u.gpu_milli_by_model[model] += milli;
  MarkDevices(x.host_devices[p.host], p, /*take=*/true);
  for (const core::DeviceRequest& d : r.devices) u.devices_by_class[d.cls] += d.count;
  x.host_allocations[p.host].push_back(r.id);
  Placement stored = p;
  stored.host_name = host.name;
  x.allocations.emplace(r.id, Allocation{r, std::move(stored)});
  x.Regroup(p.host);
  return absl::OkStatus();
}

absl::Status Cluster::Release(std::string_view request_id) {
  Index& x = *index_;
  auto it = x.allocations.find(std::string(request_id));
  if (it == x.allocations.end()) {
    return absl::NotFoundError(core::Cat("workload \"", request_id, "\": not allocated"));
  }
  const Request& r = it->second.request;
  const Placement& p = it->second.placement;
  HostState& host = x.hosts[p.host];
  std::string model = GpuModelOf(host, p);
  host.allocated -= r.resources;
  for (const core::GpuAssignment& a : p.gpus) {
    const int pos = GpuPosition(host, a.index);
    GpuState& g = host.gpus[pos];
    x.model_pools[x.classes[x.host_class[p.host]].pools[pos]].allocated_milli -= a.milli;
    g.free_milli += a.milli;
    g.free_memory_mib += a.memory_mib;
    if (g.free_milli == core::kWholeGpuMilli) x.totals.idle_gpus++;
    if (!a.mig_profile.empty()) {
      std::optional<core::MigProfile> prof =
          core::FindMigProfile(g.device.model, g.device.memory_mib, a.mig_profile);
      g.mig_slices_used &= uint8_t(~MigMask(*prof, a.mig_start_slice));
    }
    if (a.milli < core::kWholeGpuMilli) g.shares--;
  }
  MarkDevices(x.host_devices[p.host], p, /*take=*/false);
  int64_t milli = GpuMilliOf(p);
  x.totals.allocated -= r.resources;
  x.totals.gpu_milli_allocated -= milli;
  x.totals.allocations--;
  auto uit = x.usage.find(r.tenant);
  if (uit != x.usage.end()) {
    TenantUsage& u = uit->second;
    u.resources -= r.resources;
    u.gpu_milli -= milli;
    if (milli > 0) {
      auto mit = u.gpu_milli_by_model.find(model);
      if (mit != u.gpu_milli_by_model.end() && (mit->second -= milli) == 0) {
        u.gpu_milli_by_model.erase(mit);
      }
    }
    for (const core::DeviceRequest& d : r.devices) {
      auto dit = u.devices_by_class.find(d.cls);
      if (dit != u.devices_by_class.end() && (dit->second -= d.count) == 0) {
        u.devices_by_class.erase(dit);
      }
    }
    if (u.resources == core::Resources{} && u.gpu_milli == 0 && u.devices_by_class.empty()) {
      x.usage.erase(uit);
    }
  }
  std::vector<std::string>& list = x.host_allocations[p.host];
  list.erase(std::find(list.begin(), list.end(), r.id));
  int h = p.host;
  x.allocations.erase(it);
  x.Regroup(h);
  return absl::OkStatus();
}

const Allocation* Cluster::FindAllocation(std::string_view id) const {
  auto it = index_->allocations.find(std::string(id));
  return it == index_->allocations.end() ? nullptr : &it->second;
}

const std::vector<std::string>& Cluster::AllocationsOn(int h) const {
  return index_->host_allocations[h];
}

int Cluster::num_allocations() const { return int(index_->allocations.size()); }

void Cluster::SetQuota(const std::string& tenant, const Quota& quota) {
  index_->quotas[tenant] = quota;
}

void Cluster::ClearQuota(const std::string& tenant) { index_->quotas.erase(tenant); }

const Quota* Cluster::FindQuota(std::string_view tenant) const {
  auto it = index_->quotas.find(tenant);
  return it == index_->quotas.end() ? nullptr : &it->second;
}

TenantUsage Cluster::Usage(std::string_view tenant) const {
  auto it = index_->usage.find(tenant);
  return it == index_->usage.end() ? TenantUsage{} : it->second;
}

std::vector<std::string> Cluster::Tenants() const {
  std::set<std::string> names;
  for (const auto& [t, q] : index_->quotas) names.insert(t);
  for (const auto& [t, u] : index_->usage) {
    if (!t.empty()) names.insert(t);
  }
  return {names.begin(), names.end()};
}

absl::Status Cluster::CheckQuota(const Request& r, std::string_view gpu_model) const {
  const Quota* q = FindQuota(r.tenant);
  if (q == nullptr) return absl::OkStatus();
  TenantUsage u = Usage(r.tenant);
  auto over = [&](std::string_view dim, int64_t used, int64_t asked, int64_t limit) {
    return absl::ResourceExhaustedError(core::Cat("tenant \"", r.tenant, "\": quota ", dim,
                                                  " exceeded: using ", used, " + asking ", asked,
                                                  " > limit ", limit));
  };
  if (q->cpu && u.resources.cpu + r.resources.cpu > *q->cpu) {
    return over("cpu (milli)", u.resources.cpu.value(), r.resources.cpu.value(), q->cpu->value());
  }
  if (q->memory && u.resources.memory + r.resources.memory > *q->memory) {
    return over("memory (MiB)", u.resources.memory.value(), r.resources.memory.value(),
                q->memory->value());
  }
  if (q->disk && u.resources.disk + r.resources.disk > *q->disk) {
    return over("disk (MiB)", u.resources.disk.value(), r.resources.disk.value(), q->disk->value());
  }
  int64_t milli = r.gpu.TotalMilli();
  if (q->gpu_milli && u.gpu_milli + milli > *q->gpu_milli) {
    return over("gpu (milli)", u.gpu_milli, milli, *q->gpu_milli);
  }
  if (!gpu_model.empty() && milli > 0) {
    auto mq = q->gpu_milli_by_model.find(std::string(gpu_model));
    if (mq != q->gpu_milli_by_model.end()) {
      auto mu = u.gpu_milli_by_model.find(std::string(gpu_model));
      int64_t used = mu == u.gpu_milli_by_model.end() ? 0 : mu->second;
      if (used + milli > mq->second) {
        return over(core::Cat("gpu ", gpu_model, " (milli)"), used, milli, mq->second);
      }
    }
  }
  for (const core::DeviceRequest& d : r.devices) {
    auto dq = q->devices_by_class.find(d.cls);
    if (dq == q->devices_by_class.end()) continue;
    auto du = u.devices_by_class.find(d.cls);
    const int64_t used = du == u.devices_by_class.end() ? 0 : du->second;
    if (used + d.count > dq->second) {
      return over(core::Cat("devices ", d.cls), used, d.count, dq->second);
    }
  }
  return absl::OkStatus();
}

int Cluster::DeviceClassId(std::string_view cls) const {
  auto it = index_->device_class_ids.find(core::AbslView(cls));
  return it == index_->device_class_ids.end() ? -1 : it->second;
}

ClusterTotals Cluster::Totals() const { return index_->totals; }

FragmentationReport Cluster::Fragmentation(const WorkloadMix& mix) const {
  Index& x = *index_;
  FragmentationReport report;
  report.free_milli = x.totals.gpu_milli_capacity - x.totals.gpu_milli_allocated;
  if (mix.total_weight() == 0) return report;
  report.fragmented_milli = double(x.ClusterFrag(mix)) / double(mix.total_weight());
  return report;
}

double Cluster::HostFragmentation(int h, const WorkloadMix& mix) const {
  if (mix.total_weight() == 0) return 0;
  const HostGroup& g = index_->Frag(index_->host_group[h], mix);
  return double(g.weighted_frag) / double(mix.total_weight());
}

int Cluster::num_groups() const { return int(index_->live_groups.size()); }

size_t Cluster::MemoryBytes() const {
  const Index& x = *index_;
  size_t bytes = sizeof(Index);
  for (const HostState& h : x.hosts) {
    bytes += sizeof(HostState) + h.name.capacity() + h.gpus.capacity() * sizeof(GpuState);
    for (const auto& [k, v] : h.labels) bytes += 64 + k.capacity() + v.capacity();
    for (const GpuState& g : h.gpus) {
      bytes +=
          g.device.uuid.capacity() + g.device.model.capacity() + g.device.pci_address.capacity();
    }
  }
  bytes += x.hosts.size() * (sizeof(int) * 2 + sizeof(std::vector<std::string>) + 48);
  for (const HostGroup& g : x.groups) {
    bytes += sizeof(HostGroup) + g.key.capacity() * sizeof(int64_t) +
             g.gpu_frag.capacity() * sizeof(GpuFrag) + g.hosts.size() * sizeof(int) * 2 +
             g.key.size() * sizeof(int64_t) + 32;
  }
  for (const auto& [id, a] : x.allocations) {
    bytes += 64 + sizeof(Allocation) + id.capacity() +
             a.placement.gpus.capacity() * sizeof(core::GpuAssignment);
  }
  return bytes;
}

}  // namespace berth::sched
