#include "core/gpu.h"

#include <algorithm>

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

}  // namespace berth::core
