#include "core/gpu.h"

#include <algorithm>

#include "core/secret.h"

namespace berth::core {
namespace {

constexpr int64_t kGiB = 1024;

std::vector<MigProfile> Profiles40() {
  return {
      {"1g.5gb", 1, 1, 5 * kGiB, {0, 1, 2, 3, 4, 5, 6}},
      {"1g.10gb", 1, 2, 10 * kGiB, {0, 2, 4, 6}},
      {"2g.10gb", 2, 2, 10 * kGiB, {0, 2, 4}},
      {"3g.20gb", 3, 4, 20 * kGiB, {0, 4}},
      {"4g.20gb", 4, 4, 20 * kGiB, {0}},
      {"7g.40gb", 7, 8, 40 * kGiB, {0}},
  };
}

std::vector<MigProfile> Profiles80() {
  return {
      {"1g.10gb", 1, 1, 10 * kGiB, {0, 1, 2, 3, 4, 5, 6}},
      {"1g.20gb", 1, 2, 20 * kGiB, {0, 2, 4, 6}},
      {"2g.20gb", 2, 2, 20 * kGiB, {0, 2, 4}},
      {"3g.40gb", 3, 4, 40 * kGiB, {0, 4}},
      {"4g.40gb", 4, 4, 40 * kGiB, {0}},
      {"7g.80gb", 7, 8, 80 * kGiB, {0}},
  };
}

bool SupportsMig(std::string_view model) {
  std::string lower(model);
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  return lower.find("a100") != std::string::npos || lower.find("h100") != std::string::npos ||
         lower.find("a30") != std::string::npos || lower.find("h200") != std::string::npos ||
         lower.find("h800") != std::string::npos || lower.find("a800") != std::string::npos;
}

}  // namespace

std::vector<MigProfile> MigProfilesFor(std::string_view gpu_model, int64_t device_memory_mib) {
  if (!SupportsMig(gpu_model)) return {};
  if (device_memory_mib > 60 * kGiB) return Profiles80();
  return Profiles40();
}

std::optional<MigProfile> FindMigProfile(std::string_view gpu_model, int64_t device_memory_mib,
                                         std::string_view name) {
  for (MigProfile& p : MigProfilesFor(gpu_model, device_memory_mib)) {
    if (p.name == name) return p;
  }
  return std::nullopt;
}

bool IsKnownMigProfile(std::string_view name) {
  for (const auto& p : Profiles40()) {
    if (p.name == name) return true;
  }
  for (const auto& p : Profiles80()) {
    if (p.name == name) return true;
  }
  return false;
}

int64_t GpuRequest::TotalMilli() const {
  switch (kind) {
    case Kind::kNone:
      return 0;
    case Kind::kWhole:
      return int64_t{count} * kWholeGpuMilli;
    case Kind::kShare:
      return milli;
    case Kind::kMig: {
      std::optional<MigProfile> p = FindMigProfile("A100", 80 * kGiB, mig_profile);
      if (!p) p = FindMigProfile("A100", 40 * kGiB, mig_profile);
      return p ? p->compute_slices * kWholeGpuMilli / 7 : 0;
    }
  }
  return 0;
}

bool GpuRequest::AllowsModel(std::string_view model) const {
  if (models.empty()) return true;
  return std::find(models.begin(), models.end(), model) != models.end();
}

std::string DeclaredGpuUuid(std::string_view host, int index) {
  std::string hex = Sha256Hex(std::string("berth/declared-gpu/") + std::string(host) + "/" +
                              std::to_string(index));
  return "GPU-" + hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

void ResolveGpuDeviceIds(const std::vector<GpuDevice>& gpus,
                         std::vector<GpuAssignment>* assignments) {
  for (GpuAssignment& a : *assignments) {
    const GpuDevice* device = nullptr;
    for (const GpuDevice& d : gpus) {
      if (d.index == a.index) device = &d;
    }
    if (device == nullptr) continue;
    if (a.mig_profile.empty()) {
      a.device_id = device->uuid;
      continue;
    }
    a.device_id.clear();
    std::vector<const MigInstance*> same;
    for (const MigInstance& m : device->mig_instances) {
      if (m.profile != a.mig_profile) continue;
      if (m.start_slice >= 0 && m.start_slice == a.mig_start_slice) a.device_id = m.uuid;
      same.push_back(&m);
    }
    if (!a.device_id.empty() || same.empty() || same.front()->start_slice >= 0) continue;
    std::optional<MigProfile> p = FindMigProfile(device->model, device->memory_mib, a.mig_profile);
    if (!p) continue;
    auto at = std::find(p->start_slices.begin(), p->start_slices.end(), a.mig_start_slice);
    size_t n = static_cast<size_t>(at - p->start_slices.begin());
    if (at != p->start_slices.end() && n < same.size()) a.device_id = same[n]->uuid;
  }
}

}  // namespace berth::core
