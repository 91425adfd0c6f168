#include "sched/model.h"

#include <algorithm>

#include "core/status.h"
#include "core/strings.h"

namespace berth::sched {

bool LabelSelector::Matches(const Labels& labels) const {
  auto it = labels.find(key);
  switch (op) {
    case Op::kExists:
      return it != labels.end();
    case Op::kEquals:
      return it != labels.end() && !values.empty() && it->second == values.front();
    case Op::kIn:
      return it != labels.end() &&
             std::find(values.begin(), values.end(), it->second) != values.end();
    case Op::kNotIn:
      return it == labels.end() ||
             std::find(values.begin(), values.end(), it->second) == values.end();
  }
  return false;
}

int64_t HostState::FreeGpuMilli() const {
  int64_t sum = 0;
  for (const GpuState& g : gpus) sum += g.free_milli;
  return sum;
}

int64_t HostState::GpuMemoryMiB() const {
  int64_t sum = 0;
  for (const GpuState& g : gpus) sum += g.device.memory_mib;
  return sum;
}

int64_t HostState::FreeGpuMemoryMiB() const {
  int64_t sum = 0;
  for (const GpuState& g : gpus) sum += g.free_memory_mib;
  return sum;
}

std::string FormatReasons(const std::vector<ReasonCount>& reasons) {
  std::string out;
  for (const ReasonCount& r : reasons) {
    if (!out.empty()) out += "; ";
    out += core::Cat(r.reason, ": ", r.hosts, r.hosts == 1 ? " host" : " hosts");
  }
  return out;
}

absl::Status ValidateRequest(const Request& r) {
  const std::string_view kind = "workload";
  if (r.id.empty()) return core::FieldError(kind, r.id, "id", "must not be empty");
  if (r.resources.cpu.value() < 0) {
    return core::FieldError(kind, r.id, "cpu",
                            core::Cat("must be >= 0, got ", r.resources.cpu.value(), "m"));
  }
  if (r.resources.memory.value() < 0) {
    return core::FieldError(kind, r.id, "memory",
                            core::Cat("must be >= 0, got ", r.resources.memory.value(), "Mi"));
  }
  if (r.resources.disk.value() < 0) {
    return core::FieldError(kind, r.id, "disk",
                            core::Cat("must be >= 0, got ", r.resources.disk.value(), "Mi"));
  }
  const core::GpuRequest& g = r.gpu;
  switch (g.kind) {
    case core::GpuRequest::Kind::kNone:
      break;
    case core::GpuRequest::Kind::kWhole:
      if (g.count < 1) {
        return core::FieldError(kind, r.id, "gpu.count", core::Cat("must be >= 1, got ", g.count));
      }
      if (g.min_memory_mib < 0) {
        return core::FieldError(kind, r.id, "gpu.min_memory",
                                core::Cat("must be >= 0, got ", g.min_memory_mib, "Mi"));
      }
      break;
    case core::GpuRequest::Kind::kShare:
      if (g.milli < 1 || g.milli > 999) {
        return core::FieldError(kind, r.id, "gpu.share",
                                core::Cat("must be between 1 and 999 milli, got ", g.milli));
      }
      if (g.memory_mib < 0) {
        return core::FieldError(kind, r.id, "gpu.memory",
                                core::Cat("must be >= 0, got ", g.memory_mib, "Mi"));
      }
      break;
    case core::GpuRequest::Kind::kMig:
      if (!core::IsKnownMigProfile(g.mig_profile)) {
        return core::FieldError(
            kind, r.id, "gpu.mig_profile",
            core::Cat("must be a MIG profile like \"1g.10gb\" or \"3g.40gb\", got \"",
                      g.mig_profile, "\""));
      }
      break;
  }
  if (r.gang_size < 0) {
    return core::FieldError(kind, r.id, "gang.size", core::Cat("must be >= 0, got ", r.gang_size));
  }
  for (size_t i = 0; i < r.devices.size(); ++i) {
    const core::DeviceRequest& d = r.devices[i];
    if (absl::Status s = core::CheckDeviceClass(d.cls); !s.ok()) {
      return core::FieldError(kind, r.id, core::Cat("devices[", i, "].class"),
                              std::string(s.message()));
    }
    if (d.count < 1) {
      return core::FieldError(kind, r.id, core::Cat("devices[", i, "].count"),
                              core::Cat("must be >= 1, got ", d.count));
    }
    for (size_t k = 0; k < i; ++k) {
      if (r.devices[k].cls == d.cls) {
        return core::FieldError(kind, r.id, core::Cat("devices[", i, "].class"),
                                core::Cat("names ", d.cls, " twice"));
      }
    }
  }
  for (const LabelSelector& s : r.host_selector) {
    if (s.key.empty())
      return core::FieldError(kind, r.id, "host_selector.key", "must not be empty");
    if (s.op == LabelSelector::Op::kEquals && s.values.size() != 1) {
      return core::FieldError(kind, r.id, core::Cat("host_selector[", s.key, "]"),
                              core::Cat("equals needs exactly one value, got ", s.values.size()));
    }
  }
  for (const WorkloadAffinity& a : r.affinity) {
    if (a.key.empty()) return core::FieldError(kind, r.id, "affinity.key", "must not be empty");
  }
  return absl::OkStatus();
}

}  // namespace berth::sched
