#include "sched/explain.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <optional>
#include <tuple>
#include <utility>

#include "core/disk.h"
#include "core/quantity.h"
#include "core/strings.h"
#include "sched/fits.h"

namespace berth::sched {
namespace {

using core::Cat;
using Kind = core::GpuRequest::Kind;

// Milli-GPU as people count GPUs: "2", "0.5", "0.125".
std::string Gpus(int64_t milli) {
  std::string out = Cat(milli / 1000);
  int64_t frac = milli % 1000;
  if (frac != 0) {
    std::string f = Cat(1000 + frac).substr(1);
    while (!f.empty() && f.back() == '0') f.pop_back();
    out += "." + f;
  }
  return out;
}

std::string Cpu(int64_t milli) { return core::FormatCpu(core::MilliCpu(milli)); }
std::string MiB(int64_t mib) { return core::FormatMiB(mib); }

std::string Models(const core::GpuRequest& g) {
  if (g.models.empty()) return "GPU";
  std::string out;
  for (const std::string& m : g.models) out += Cat(out.empty() ? "" : " or ", m);
  return out;
}

// What the request asks of GPUs: "2 × A100", "0.5 of a GPU with 10Gi", "MIG 3g.40gb".
std::string GpuAsk(const core::GpuRequest& g) {
  switch (g.kind) {
    case Kind::kWhole:
      return Cat(g.count, " × ", Models(g),
                 g.min_memory_mib > 0 ? Cat(" with >= ", MiB(g.min_memory_mib)) : "");
    case Kind::kShare:
      return Cat(Gpus(g.milli), " of a ", Models(g),
                 g.memory_mib > 0 ? Cat(" with ", MiB(g.memory_mib)) : "");
    case Kind::kMig:
      return Cat("MIG ", g.mig_profile, g.models.empty() ? "" : Cat(" on ", Models(g)));
    case Kind::kNone:
      break;
  }
  return "no GPU";
}

std::string SelectorText(const LabelSelector& s) {
  std::string values;
  for (const std::string& v : s.values) values += Cat(values.empty() ? "" : ", ", v);
  switch (s.op) {
    case LabelSelector::Op::kEquals:
      return Cat(s.key, "=", values);
    case LabelSelector::Op::kIn:
      return Cat(s.key, " in (", values, ")");
    case LabelSelector::Op::kNotIn:
      return Cat(s.key, " not in (", values, ")");
    case LabelSelector::Op::kExists:
      return Cat(s.key, " exists");
  }
  return s.key;
}

// The checks, in pipeline order (checkers.cc), with the tenant's quota first: it decides
// before any host is looked at.
enum Check : int {
  kQuotaCheck,
  kExcluded,
  kHostState,
  kLabelsCheck,
  kGpuStatic,
  kGpuQuota,
  kDeviceStatic,
  kCpuCheck,
  kMemoryCheck,
  kDiskCheck,
  kGpuCapacity,
  kDeviceCapacity,
  kAffinityCheck,
  kNumChecks,
};

constexpr std::string_view kCheckNames[kNumChecks] = {
    "quota",        "excluded",        "host-state", "labels", "gpu",
    "gpu-quota",    "devices",         "cpu",        "memory", "disk",
    "gpu-capacity", "device-capacity", "affinity",
};

// What the request asks of other device classes: "1 × xilinx.com/fpga, 2 × acme.com/npu".
std::string DeviceAsk(const Request& r) {
  std::string out;
  for (const core::DeviceRequest& d : r.devices) {
    out += Cat(out.empty() ? "" : ", ", d.count, " × ", d.cls);
  }
  return out;
}

// The host's devices of class `cls`: (how many, how many free).
std::pair<int, int> DeviceCounts(const HostDevices& devices, std::string_view cls) {
  for (const DeviceClassState& d : devices) {
    if (d.cls == cls) return {int(d.ids.size()), d.free};
  }
  return {0, 0};
}

// What one host offers the request, check by check.
struct HostFacts {
  uint32_t failing = 0;  // bit per Check
  // GPU figures over the devices that pass the static checks (and the per-model quota).
  int usable_devices = 0;
  int holding = 0;  // of those, devices that hold one GPU's worth of the request now
  int64_t best_share_milli = 0;
  int64_t best_share_memory_mib = 0;
  int64_t largest_allowed_memory_mib = 0;
  bool any_model = false;
  // Devices of other classes: of the first class the host lacks, how many it has and has free.
  std::string short_class;
  int class_devices = 0;
  int class_free = 0;
};

// The tenant's quota, dimension by dimension: every dimension the request would pass.
void QuotaFindings(const Cluster& cluster, const Request& r, Explanation& out) {
  const Quota* q = cluster.FindQuota(r.tenant);
  if (q == nullptr) return;
  TenantUsage u = cluster.Usage(r.tenant);
  auto add = [&](std::string_view what, const std::string& asks, const std::string& used,
                 const std::string& limit, const std::string& raise_to,
                 const std::string& to_free) {
    out.failing.push_back(
        {"quota", 0,
         Cat("tenant ", r.tenant, " asks ", asks, " ", what, ", ", used, " of ", limit, " used")});
    out.to_fit.push_back(Cat("raise tenant ", r.tenant, "'s ", what, " quota to ", raise_to,
                             ", or stop its workloads holding ", to_free, " ", what));
  };
  const core::Resources& a = r.resources;
  if (q->cpu && u.resources.cpu + a.cpu > *q->cpu) {
    int64_t need = u.resources.cpu.value() + a.cpu.value();
    add("cpu", Cpu(a.cpu.value()), Cpu(u.resources.cpu.value()), Cpu(q->cpu->value()), Cpu(need),
        Cpu(need - q->cpu->value()));
  }
  if (q->memory && u.resources.memory + a.memory > *q->memory) {
    int64_t need = u.resources.memory.value() + a.memory.value();
    add("memory", MiB(a.memory.value()), MiB(u.resources.memory.value()), MiB(q->memory->value()),
        MiB(need), MiB(need - q->memory->value()));
  }
  if (q->disk && u.resources.disk + a.disk > *q->disk) {
    int64_t need = u.resources.disk.value() + a.disk.value();
    add("disk", MiB(a.disk.value()), MiB(u.resources.disk.value()), MiB(q->disk->value()),
        MiB(need), MiB(need - q->disk->value()));
  }
  int64_t milli = r.gpu.TotalMilli();
  if (milli > 0 && q->gpu_milli && u.gpu_milli + milli > *q->gpu_milli) {
    int64_t need = u.gpu_milli + milli;
    add("GPUs", Gpus(milli), Gpus(u.gpu_milli), Gpus(*q->gpu_milli), Gpus(need),
        Gpus(need - *q->gpu_milli));
  }
  for (const core::DeviceRequest& d : r.devices) {
    auto limit = q->devices_by_class.find(d.cls);
    if (limit == q->devices_by_class.end()) continue;
    auto used = u.devices_by_class.find(d.cls);
    const int64_t have = used == u.devices_by_class.end() ? 0 : used->second;
    if (have + d.count <= limit->second) continue;
    add(Cat(d.cls, " devices"), Cat(d.count), Cat(have), Cat(limit->second), Cat(have + d.count),
        Cat(have + d.count - limit->second));
  }
}

// Whether the tenant's quota for `model` has room for the request; the tenant-wide dimensions
// are QuotaFindings'.
bool ModelQuotaAdmits(const Cluster& cluster, const Request& r, const std::string& model) {
  const Quota* q = cluster.FindQuota(r.tenant);
  if (q == nullptr) return true;
  auto mq = q->gpu_milli_by_model.find(model);
  if (mq == q->gpu_milli_by_model.end()) return true;
  TenantUsage u = cluster.Usage(r.tenant);
  auto mu = u.gpu_milli_by_model.find(model);
  int64_t used = mu == u.gpu_milli_by_model.end() ? 0 : mu->second;
  return used + r.gpu.TotalMilli() <= mq->second;
}

HostFacts Evaluate(const Cluster& cluster, const Request& r, const ExplainOptions& options, int h,
                   const std::vector<std::vector<int>>& affinity_hosts) {
  HostFacts f;
  const HostState& host = cluster.host(h);
  auto fail = [&](Check c) { f.failing |= 1u << c; };
  if (size_t(h) < options.excluded.size() && options.excluded[h]) fail(kExcluded);
  if (!cluster.schedulable(h)) fail(kHostState);
  for (const LabelSelector& s : r.host_selector) {
    if (!s.Matches(host.labels)) {
      fail(kLabelsCheck);
      break;
    }
  }
  auto named = [&](const std::vector<std::string>& names) {
    return std::find(names.begin(), names.end(), host.name) != names.end();
  };
  if ((!r.only_hosts.empty() && !named(r.only_hosts)) || named(r.not_hosts)) fail(kLabelsCheck);
  const core::Resources free = host.Free();
  if (free.cpu < r.resources.cpu) fail(kCpuCheck);
  if (free.memory < r.resources.memory) fail(kMemoryCheck);
  if (free.disk < r.resources.disk) fail(kDiskCheck);
  if (r.gpu.kind != Kind::kNone) {
    bool static_ok = false, quota_ok = false;
    for (const GpuState& g : host.gpus) {
      DeviceFit fit = DeviceFitFor(g.device, r.gpu);
      if (fit.misfit == DeviceMisfit::kModel) continue;
      f.any_model = true;
      f.largest_allowed_memory_mib = std::max(f.largest_allowed_memory_mib, g.device.memory_mib);
      if (!fit.ok()) continue;
      static_ok = true;
      if (!ModelQuotaAdmits(cluster, r, g.device.model)) continue;
      quota_ok = true;
      f.usable_devices++;
      if (Holds(fit, r.gpu, DeviceFree::Of(g))) f.holding++;
      if (r.gpu.kind == Kind::kShare && g.device.mig_enabled == false) {
        if (g.free_milli > f.best_share_milli ||
            (g.free_milli == f.best_share_milli && g.free_memory_mib > f.best_share_memory_mib)) {
          f.best_share_milli = g.free_milli;
          f.best_share_memory_mib = g.free_memory_mib;
        }
      }
    }
    if (!static_ok) {
      fail(kGpuStatic);
    } else if (!quota_ok) {
      fail(kGpuQuota);
    } else if (f.holding < (r.gpu.kind == Kind::kWhole ? r.gpu.count : 1)) {
      fail(kGpuCapacity);
    }
  }
  for (const core::DeviceRequest& d : r.devices) {
    const auto [total, free] = DeviceCounts(cluster.devices(h), d.cls);
    if (total >= d.count && free >= d.count) continue;
    if (f.short_class.empty()) {
      f.short_class = d.cls;
      f.class_devices = total;
      f.class_free = free;
    }
    fail(total < d.count ? kDeviceStatic : kDeviceCapacity);
  }
  if (f.short_class.empty() && !r.devices.empty()) {
    f.short_class = r.devices.front().cls;
    std::tie(f.class_devices, f.class_free) = DeviceCounts(cluster.devices(h), f.short_class);
  }
  for (size_t t = 0; t < r.affinity.size(); ++t) {
    const std::vector<int>& with = affinity_hosts[t];
    const bool present = std::binary_search(with.begin(), with.end(), h);
    if (present == r.affinity[t].anti) {
      fail(kAffinityCheck);
      break;
    }
  }
  return f;
}

bool Fails(const HostFacts& f, Check c) { return (f.failing >> c) & 1u; }

}  // namespace

std::string Explanation::Text() const {
  std::string out;
  if (!fits_on.empty()) {
    out = Cat("fits now on ", fits_on, " (the next scheduling pass places it)");
  }
  for (const CheckFinding& c : failing) {
    if (!out.empty()) out += "\n";
    out += Cat(c.check, ": ", c.detail);
    if (c.hosts > 0) out += Cat("; ", c.hosts, " of ", hosts, hosts == 1 ? " host" : " hosts");
  }
  for (const std::string& t : to_fit) {
    if (!out.empty()) out += "\n";
    out += Cat("to fit: ", t);
  }
  return out;
}

Explanation ExplainRequest(const Cluster& cluster, const Request& r,
                           const ExplainOptions& options) {
  Explanation out;
  out.hosts = cluster.num_hosts();
  QuotaFindings(cluster, r, out);
  const bool quota_blocks = !out.failing.empty();

  // Hosts running a workload that matches each affinity term, sorted.
  std::vector<std::vector<int>> affinity_hosts(r.affinity.size());
  if (!r.affinity.empty()) {
    for (int h = 0; h < out.hosts; ++h) {
      for (const std::string& id : cluster.AllocationsOn(h)) {
        const Allocation* a = cluster.FindAllocation(id);
        if (a == nullptr) continue;
        for (size_t t = 0; t < r.affinity.size(); ++t) {
          auto it = a->request.labels.find(r.affinity[t].key);
          if (it != a->request.labels.end() && it->second == r.affinity[t].value &&
              (affinity_hosts[t].empty() || affinity_hosts[t].back() != h)) {
            affinity_hosts[t].push_back(h);
          }
        }
      }
    }
  }

  std::vector<HostFacts> facts;
  facts.reserve(out.hosts);
  int counts[kNumChecks] = {};
  for (int h = 0; h < out.hosts; ++h) {
    facts.push_back(Evaluate(cluster, r, options, h, affinity_hosts));
    for (int c = 0; c < kNumChecks; ++c) counts[c] += Fails(facts.back(), Check(c));
    if (facts.back().failing == 0 && out.fits_on.empty() && !quota_blocks) {
      out.fits_on = cluster.host(h).name;
    }
  }
  if (out.hosts == 0) {
    out.failing.push_back({"hosts", 0, "no hosts registered"});
    out.to_fit.push_back("register a host (berth agent, or berth serve --dev)");
    return out;
  }

  // The best host for a figure: the one with the most of it among the hosts that pass the
  // static checks (state, labels, GPU model), or among all when none does.
  const uint32_t kStatic = (1u << kExcluded) | (1u << kHostState) | (1u << kLabelsCheck) |
                           (1u << kGpuStatic) | (1u << kDeviceStatic);
  bool any_static_ok = false;
  for (const HostFacts& f : facts) any_static_ok |= (f.failing & kStatic) == 0;
  auto candidate = [&](int h) { return !any_static_ok || (facts[h].failing & kStatic) == 0; };
  // The candidate with the largest `value`, first of equals.
  auto best = [&](auto value) {
    int pick = -1;
    for (int h = 0; h < out.hosts; ++h) {
      if (!candidate(h)) continue;
      if (pick < 0 || value(h) > value(pick)) pick = h;
    }
    return pick;
  };
  auto name = [&](int h) { return cluster.host(h).name; };

  for (int c = kExcluded; c < kNumChecks; ++c) {
    if (counts[c] == 0) continue;
    CheckFinding f{std::string(kCheckNames[c]), counts[c], ""};
    switch (Check(c)) {
      case kExcluded:
        f.check = options.excluded_check;
        f.detail = options.excluded_reason;
        break;
      case kHostState:
        f.detail = "not taking workloads (cordoned, draining or down)";
        break;
      case kLabelsCheck: {
        std::string sel;
        for (const LabelSelector& s : r.host_selector) {
          sel += Cat(sel.empty() ? "" : ", ", SelectorText(s));
        }
        // Host names are asked apart from the labels; said as the constraint they came from.
        if (!r.only_hosts.empty()) {
          sel +=
              Cat(sel.empty() ? "" : ", ", SelectorText({.key = std::string(core::kHostNameLabel),
                                                         .op = LabelSelector::Op::kIn,
                                                         .values = r.only_hosts}));
        }
        if (!r.not_hosts.empty()) {
          sel +=
              Cat(sel.empty() ? "" : ", ", SelectorText({.key = std::string(core::kHostNameLabel),
                                                         .op = LabelSelector::Op::kNotIn,
                                                         .values = r.not_hosts}));
        }
        f.detail = Cat("host_selector ", sel, " does not match");
        break;
      }
      case kGpuStatic: {
        int with_model = 0;
        int largest = -1;
        for (int h = 0; h < out.hosts; ++h) {
          if (!facts[h].any_model) continue;
          with_model++;
          if (largest < 0 ||
              facts[h].largest_allowed_memory_mib > facts[largest].largest_allowed_memory_mib) {
            largest = h;
          }
        }
        if (with_model == 0) {
          f.detail = Cat("asks ", GpuAsk(r.gpu), ", 0 hosts have that model");
        } else if (r.gpu.kind == Kind::kMig) {
          f.detail = Cat("asks ", GpuAsk(r.gpu), ", ", with_model,
                         with_model == 1 ? " host has" : " hosts have",
                         " the model but no MIG-partitioned device offering the profile");
        } else {
          f.detail = Cat("asks ", GpuAsk(r.gpu), ", largest device of that model has ",
                         MiB(facts[largest].largest_allowed_memory_mib), " (", name(largest), ")");
        }
        break;
      }
      case kGpuQuota:
        f.detail = Cat("tenant ", r.tenant, "'s per-model GPU quota admits no device");
        break;
      case kDeviceStatic:
      case kDeviceCapacity: {
        const bool total = c == kDeviceStatic;
        int b = best([&](int h) { return total ? facts[h].class_devices : facts[h].class_free; });
        f.detail = Cat("asks ", DeviceAsk(r), ", best host has ", facts[b].class_devices,
                       " healthy ", facts[b].short_class,
                       total ? "" : Cat(", ", facts[b].class_free, " free"), " (", name(b), ")");
        break;
      }
      case kCpuCheck: {
        int b = best([&](int h) { return cluster.host(h).Free().cpu.value(); });
        const HostState& hs = cluster.host(b);
        f.detail = Cat("asks ", Cpu(r.resources.cpu.value()), ", best host has ",
                       Cpu(hs.Free().cpu.value()), " free of ", Cpu(hs.capacity.cpu.value()), " (",
                       hs.name, ")");
        break;
      }
      case kMemoryCheck: {
        int b = best([&](int h) { return cluster.host(h).Free().memory.value(); });
        const HostState& hs = cluster.host(b);
        f.detail = Cat("asks ", MiB(r.resources.memory.value()), ", best host has ",
                       MiB(hs.Free().memory.value()), " free of ", MiB(hs.capacity.memory.value()),
                       " (", hs.name, ")");
        break;
      }
      case kDiskCheck: {
        int b = best([&](int h) { return cluster.host(h).Free().disk.value(); });
        const HostState& hs = cluster.host(b);
        f.detail = Cat("asks ", MiB(r.resources.disk.value()), ", best host has ",
                       MiB(hs.Free().disk.value()), " free of ", MiB(hs.capacity.disk.value()),
                       " (", hs.name, ")");
        break;
      }
      case kGpuCapacity: {
        if (r.gpu.kind == Kind::kShare) {
          int b = best([&](int h) { return facts[h].best_share_milli; });
          f.detail =
              Cat("asks ", GpuAsk(r.gpu), ", best device has ", Gpus(facts[b].best_share_milli),
                  " free with ", MiB(facts[b].best_share_memory_mib), " (", name(b), ")");
        } else {
          int b = best([&](int h) { return facts[h].holding; });
          f.detail = Cat("asks ", GpuAsk(r.gpu), ", best host has ", facts[b].holding,
                         r.gpu.kind == Kind::kMig ? " free slots on " : " idle of ",
                         facts[b].usable_devices, r.gpu.kind == Kind::kMig ? " devices" : "", " (",
                         name(b), ")");
        }
        break;
      }
      case kAffinityCheck: {
        std::string terms;
        for (const WorkloadAffinity& a : r.affinity) {
          terms +=
              Cat(terms.empty() ? "" : ", ", a.anti ? "not with " : "with ", a.key, "=", a.value);
        }
        f.detail = Cat("asks to run ", terms);
        break;
      }
      case kQuotaCheck:
      case kNumChecks:
        break;
    }
    out.failing.push_back(std::move(f));
  }

  if (!out.fits_on.empty()) return out;

  // What would make it fit on some host: the host that fails the fewest checks, first of
  // equals, and for each of them what to change.
  int closest = -1;
  for (int h = 0; h < out.hosts; ++h) {
    int n = std::popcount(facts[h].failing);
    if (closest < 0 || n < std::popcount(facts[closest].failing)) closest = h;
  }
  const HostFacts& cf = facts[closest];
  if (cf.failing == 0) return out;  // only the quota stands in the way
  const HostState& ch = cluster.host(closest);
  std::vector<std::string> steps;
  for (int c = kExcluded; c < kNumChecks; ++c) {
    if (!Fails(cf, Check(c))) continue;
    switch (Check(c)) {
      case kExcluded:
        steps.push_back(Cat("a host where ", options.excluded_check, " holds (", ch.name, ": ",
                            options.excluded_reason, ")"));
        break;
      case kHostState:
        steps.push_back(Cat("uncordon ", ch.name));
        break;
      case kLabelsCheck:
        steps.push_back(Cat("label ", ch.name, " to match host_selector, or change it"));
        break;
      case kGpuStatic:
        steps.push_back(
            Cat("allow a GPU model or size ", ch.name, " has, or add a host with ", GpuAsk(r.gpu)));
        break;
      case kGpuQuota:
        steps.push_back(Cat("raise tenant ", r.tenant, "'s per-model GPU quota"));
        break;
      case kDeviceStatic:
        steps.push_back(Cat("add a host with ", DeviceAsk(r), " (", ch.name, " has ",
                            cf.class_devices, " healthy ", cf.short_class, ")"));
        break;
      case kDeviceCapacity:
        steps.push_back(Cat("free ", cf.short_class, " devices on ", ch.name, " (", cf.class_free,
                            " of ", cf.class_devices, " free)"));
        break;
      case kCpuCheck:
      case kMemoryCheck:
      case kDiskCheck: {
        struct Dim {
          int64_t asked, cap, free;
          std::string (*fmt)(int64_t);
        };
        const core::Resources free = ch.Free();
        const Dim d =
            c == kCpuCheck
                ? Dim{r.resources.cpu.value(), ch.capacity.cpu.value(), free.cpu.value(), Cpu}
            : c == kMemoryCheck
                ? Dim{r.resources.memory.value(), ch.capacity.memory.value(), free.memory.value(),
                      MiB}
                : Dim{r.resources.disk.value(), ch.capacity.disk.value(), free.disk.value(), MiB};
        std::string_view what = kCheckNames[c];
        if (d.asked > d.cap) {
          steps.push_back(Cat("lower ", what, " to at most ", d.fmt(d.cap), " (", ch.name, " has ",
                              d.fmt(d.cap), " in all), or add a host with ", d.fmt(d.asked)));
        } else {
          steps.push_back(Cat("free ", d.fmt(d.asked - d.free), " ", what, " on ", ch.name));
        }
        break;
      }
      case kGpuCapacity:
        if (r.gpu.kind == Kind::kWhole && cf.usable_devices < r.gpu.count) {
          steps.push_back(Cat("lower gpu.count to at most ", cf.usable_devices, " (", ch.name,
                              " has ", cf.usable_devices, " such devices), or add a host with ",
                              r.gpu.count));
        } else {
          steps.push_back(Cat("free GPU capacity on ", ch.name, " (", cf.holding,
                              " devices hold the request now)"));
        }
        break;
      case kAffinityCheck:
        steps.push_back(Cat("change the affinity terms, or the workloads on ", ch.name));
        break;
      case kQuotaCheck:
      case kNumChecks:
        break;
    }
  }
  std::string joined;
  for (const std::string& s : steps) joined += Cat(joined.empty() ? "" : ", and ", s);
  out.to_fit.push_back(std::move(joined));
  return out;
}

}  // namespace berth::sched
