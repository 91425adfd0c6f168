#include "sim/generate.h"

#include <algorithm>
#include <map>

#include "core/quantity.h"
#include "core/status.h"
#include "core/strings.h"
#include "sim/formats.h"
#include "sim/rng.h"

namespace berth::sim {
namespace {

using core::Cat;

constexpr int64_t kGiB = 1024;

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (true) {
    size_t end = text.find(sep, pos);
    if (end == std::string_view::npos) {
      parts.push_back(text.substr(pos));
      return parts;
    }
    parts.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
}

absl::StatusOr<int64_t> ParseCount(std::string_view text, std::string_view what,
                                   std::string_view shape) {
  int64_t v = 0;
  bool ok = !text.empty() && text.size() < 10;
  for (char c : text) {
    if (c < '0' || c > '9') ok = false;
    if (ok) v = v * 10 + (c - '0');
  }
  if (!ok) {
    return absl::InvalidArgumentError(Cat("--hosts \"", shape, "\": ", what,
                                          " must be a non-negative integer, got \"", text, "\""));
  }
  return v;
}

// What the requests of one GPU model can ask for and still fit on some host of that model.
struct ModelLimits {
  std::string model;
  int64_t gpus = 0;  // on all hosts of the model: the weight for choosing it
  int max_gpus_per_host = 0;
  // For a request of n GPUs: the largest per-GPU CPU and memory that fit some host with >= n.
  int64_t CpuPerGpu(const SimCluster& c, int n) const { return Limit(c, n, true); }
  int64_t MemPerGpu(const SimCluster& c, int n) const { return Limit(c, n, false); }

 private:
  int64_t Limit(const SimCluster& c, int n, bool cpu) const {
    int64_t best = 0;
    for (const SimHost& h : c.hosts) {
      if (h.gpu_model != model || h.gpu_count < n || h.gpu_count == 0) continue;
      int64_t per = (cpu ? h.cpu_milli : h.memory_mib) / h.gpu_count;
      best = std::max(best, per);
    }
    return best;
  }
};

// "host-0042": zero-padded so names sort in creation order.
std::string Padded(std::string_view prefix, int64_t n, int width) {
  std::string digits = Cat(n);
  if (static_cast<int>(digits.size()) < width) digits.insert(0, width - digits.size(), '0');
  return Cat(prefix, digits);
}

// Requests come in the round sizes people ask for, which keeps the number of distinct request
// shapes (and so the cost of measuring fragmentation) realistic.
constexpr int64_t kCpuSizes[] = {1, 2, 4, 6, 8, 12, 16};
constexpr int64_t kMemorySizes[] = {2, 4, 8, 16, 32, 64};  // GiB
constexpr int64_t kMemoryPerCpu[] = {1, 2, 4};             // GiB per core

// One of `sizes` no larger than `cap`, uniformly; the smallest when none is.
template <size_t N>
int64_t PickSize(Rng& rng, const int64_t (&sizes)[N], int64_t cap) {
  size_t fitting = 0;
  while (fitting < N && sizes[fitting] <= cap) ++fitting;
  if (fitting == 0) return sizes[0];
  return sizes[rng.UniformInt(0, static_cast<int64_t>(fitting) - 1)];
}

}  // namespace

absl::StatusOr<std::vector<HostShape>> ParseHostShapes(std::string_view text) {
  std::vector<HostShape> shapes;
  for (std::string_view item : Split(text, ',')) {
    if (item.empty()) continue;
    std::vector<std::string_view> f = Split(item, ':');
    if (f.size() != 5 && f.size() != 6) {
      return absl::InvalidArgumentError(
          Cat("--hosts \"", item, "\": must be COUNT:GPUS:MODEL:CPU:MEMORY[:GPU_MEMORY]"));
    }
    HostShape s;
    BERTH_ASSIGN_OR_RETURN(s.count, ParseCount(f[0], "COUNT", item));
    BERTH_ASSIGN_OR_RETURN(int64_t gpus, ParseCount(f[1], "GPUS", item));
    if (gpus > 1024) {
      return absl::InvalidArgumentError(Cat("--hosts \"", item, "\": GPUS must be <= 1024"));
    }
    s.gpus = static_cast<int>(gpus);
    s.model = std::string(f[2]);
    if (s.gpus > 0 && s.model.empty()) {
      return absl::InvalidArgumentError(
          Cat("--hosts \"", item, "\": MODEL must be set when GPUS > 0"));
    }
    if (s.gpus == 0) s.model.clear();
    auto cpu = core::ParseCpu(f[3]);
    if (!cpu.ok()) {
      return absl::InvalidArgumentError(
          Cat("--hosts \"", item, "\": CPU ", std::string(cpu.status().message())));
    }
    s.cpu_milli = cpu->value();
    auto mem = core::ParseSizeMiB(f[4]);
    if (!mem.ok()) {
      return absl::InvalidArgumentError(
          Cat("--hosts \"", item, "\": MEMORY ", std::string(mem.status().message())));
    }
    s.memory_mib = *mem;
    if (f.size() == 6) {
      auto gmem = core::ParseSizeMiB(f[5]);
      if (!gmem.ok()) {
        return absl::InvalidArgumentError(
            Cat("--hosts \"", item, "\": GPU_MEMORY ", std::string(gmem.status().message())));
      }
      s.gpu_memory_mib = *gmem;
    }
    shapes.push_back(std::move(s));
  }
  if (shapes.empty()) return absl::InvalidArgumentError("--hosts must name at least one shape");
  return shapes;
}

std::string FormatHostShapes(const std::vector<HostShape>& shapes) {
  std::string out;
  for (const HostShape& s : shapes) {
    if (!out.empty()) out.push_back(',');
    out += Cat(s.count, ":", s.gpus, ":", s.model, ":",
               core::FormatCpu(core::MilliCpu(s.cpu_milli)), ":", core::FormatMiB(s.memory_mib));
    if (s.gpu_memory_mib > 0) out += Cat(":", core::FormatMiB(s.gpu_memory_mib));
  }
  return out;
}

absl::Status ValidateGenerateOptions(const GenerateOptions& o) {
  auto check = [](std::string_view flag, int64_t permille) -> absl::Status {
    if (permille < 0 || permille > 1000) {
      return absl::InvalidArgumentError(
          Cat(flag, " must be between 0 and 100 (percent), got ", FormatFixedPermille(permille)));
    }
    return absl::OkStatus();
  };
  BERTH_RETURN_IF_ERROR(check("--cpu-only", o.cpu_only_permille));
  BERTH_RETURN_IF_ERROR(check("--fractional", o.fractional_permille));
  BERTH_RETURN_IF_ERROR(check("--multi-gpu", o.multi_gpu_permille));
  BERTH_RETURN_IF_ERROR(check("--constrained", o.constrained_permille));
  BERTH_RETURN_IF_ERROR(check("--high-priority", o.high_priority_permille));
  if (o.cpu_only_permille + o.fractional_permille + o.multi_gpu_permille > 1000) {
    return absl::InvalidArgumentError(Cat(
        "--cpu-only + --fractional + --multi-gpu must be at most 100 (percent), got ",
        FormatFixedPermille(o.cpu_only_permille + o.fractional_permille + o.multi_gpu_permille)));
  }
  if (o.requests < 0 || o.requests > 100000000) {
    return absl::InvalidArgumentError(
        Cat("--requests must be between 0 and 100000000, got ", o.requests));
  }
  if (o.cpu_scale_pct < 1 || o.cpu_scale_pct > 1000) {
    return absl::InvalidArgumentError(
        Cat("--cpu-scale must be between 1 and 1000 (percent), got ", o.cpu_scale_pct));
  }
  if (o.mean_gap_s < 0) {
    return absl::InvalidArgumentError(Cat("--mean-gap must be >= 0, got ", o.mean_gap_s));
  }
  int64_t hosts = 0;
  for (const HostShape& s : o.hosts) hosts += s.count;
  if (hosts > 10000000) {
    return absl::InvalidArgumentError(Cat("--hosts: at most 10000000 hosts, got ", hosts));
  }
  return absl::OkStatus();
}

std::string FormatFixedPermille(int64_t permille) {
  std::string sign = permille < 0 ? "-" : "";
  int64_t v = permille < 0 ? -permille : permille;
  if (v % 10 == 0) return Cat(sign, v / 10);
  return Cat(sign, v / 10, ".", v % 10);
}

namespace {

// An openb profile: the trace's cluster and request mix, with the GPU requests split as given
// (per-mille of GPU requests) among fractional, multi-GPU and (the rest) one whole GPU.
GenerateOptions Openb(int64_t cpu_only, int64_t fractional_of_gpu, int64_t multi_of_gpu,
                      int64_t constrained, int64_t cpu_scale_pct = 100) {
  GenerateOptions o;
  o.hosts = *ParseHostShapes(kOpenbHostShapes);
  o.cpu_only_permille = cpu_only;
  const int64_t gpu = 1000 - cpu_only;
  o.fractional_permille = gpu * fractional_of_gpu / 1000;
  o.multi_gpu_permille = gpu * multi_of_gpu / 1000;
  o.constrained_permille = constrained;
  o.cpu_scale_pct = cpu_scale_pct;
  // Arrivals about a second apart keep a replay of the whole trace near saturation.
  o.requests = 20000;
  o.mean_gap_s = 1;
  return o;
}

}  // namespace

const std::vector<GenerateProfile>& GenerateProfiles() {
  // The openb mix: 13.3 % of pods CPU-only (the trace's share), 37 % of GPU pods fractional (the
  // share that, with whole-GPU pods, gives the trace's mean of about 0.8 GPU per running GPU
  // pod), 3 % of GPU pods on 2, 4 or 8 GPUs, 10 % of GPU pods tied to a model. The variants move
  // one of these over the ranges the FGD paper's sensitivity study covers.
  static const std::vector<GenerateProfile>* const kProfiles = new std::vector<GenerateProfile>{
      {"default", "the generator's defaults (below): a small, lightly loaded mix", {}},
      {"openb", "the 2023 Alibaba GPU trace's cluster and mix", Openb(133, 370, 30, 100)},
      {"openb-frac25", "openb, 25 % of GPU requests fractional", Openb(133, 250, 30, 100)},
      {"openb-frac50", "openb, 50 % of GPU requests fractional", Openb(133, 500, 30, 100)},
      {"openb-frac75", "openb, 75 % of GPU requests fractional", Openb(133, 750, 30, 100)},
      {"openb-frac100", "openb, every GPU request fractional", Openb(133, 1000, 0, 100)},
      {"openb-multi20", "openb, 20 % of GPU requests on 2, 4 or 8 GPUs", Openb(133, 370, 200, 100)},
      {"openb-multi50", "openb, 50 % of GPU requests on 2, 4 or 8 GPUs", Openb(133, 370, 500, 100)},
      {"openb-model33", "openb, 33 % of GPU requests tied to a GPU model",
       Openb(133, 370, 30, 330)},
      {"openb-cpu0", "openb without CPU-only requests", Openb(0, 370, 30, 100)},
      {"openb-cpu30", "openb, 30 % of requests CPU-only", Openb(300, 370, 30, 100)},
      {"openb-cpu2x", "openb, every request asking for twice the CPU (capped to fit a host)",
       Openb(133, 370, 30, 100, 200)},
  };
  return *kProfiles;
}

absl::StatusOr<GenerateOptions> ProfileOptions(std::string_view name) {
  std::string known;
  for (const GenerateProfile& p : GenerateProfiles()) {
    if (p.name == name) return p.options;
    known += Cat(known.empty() ? "" : ", ", p.name);
  }
  return absl::InvalidArgumentError(
      Cat("--profile must be one of ", known, ", got \"", name, "\""));
}

absl::StatusOr<SimCluster> GenerateCluster(const GenerateOptions& options) {
  BERTH_RETURN_IF_ERROR(ValidateGenerateOptions(options));
  std::vector<HostShape> shapes = options.hosts;
  if (shapes.empty()) {
    BERTH_ASSIGN_OR_RETURN(shapes, ParseHostShapes(kDefaultHostShapes));
  }
  int64_t total = 0;
  for (const HostShape& s : shapes) total += s.count;
  const int width = std::max<int>(4, static_cast<int>(Cat(total).size()));
  SimCluster cluster;
  cluster.hosts.reserve(static_cast<size_t>(total));
  int64_t next = 1;
  for (const HostShape& s : shapes) {
    for (int64_t i = 0; i < s.count; ++i, ++next) {
      SimHost h;
      h.name = Padded("host-", next, width);
      h.cpu_milli = s.cpu_milli;
      h.memory_mib = s.memory_mib;
      h.gpu_count = s.gpus;
      h.gpu_model = s.model;
      h.gpu_memory_mib = s.gpu_memory_mib;
      h.labels["pool"] = s.gpus == 0 ? "cpu" : s.model;
      cluster.hosts.push_back(std::move(h));
    }
  }
  return cluster;
}

absl::StatusOr<SimTrace> GenerateTrace(const GenerateOptions& options, const SimCluster& cluster) {
  BERTH_RETURN_IF_ERROR(ValidateGenerateOptions(options));
  Rng rng(options.seed);
  // GPU models in name order, so the draw does not depend on host order.
  std::map<std::string, ModelLimits> by_model;
  int64_t max_cpu = 0, max_mem = 0;
  for (const SimHost& h : cluster.hosts) {
    max_cpu = std::max(max_cpu, h.cpu_milli);
    max_mem = std::max(max_mem, h.memory_mib);
    if (h.gpu_count == 0) continue;
    ModelLimits& m = by_model[h.gpu_model];
    m.model = h.gpu_model;
    m.gpus += h.gpu_count;
    m.max_gpus_per_host = std::max(m.max_gpus_per_host, h.gpu_count);
  }
  std::vector<const ModelLimits*> models;
  std::vector<int64_t> model_weights;
  for (const auto& [name, m] : by_model) {
    models.push_back(&m);
    model_weights.push_back(m.gpus);
  }
  static constexpr int64_t kShares[] = {100, 200, 250, 300, 400, 500, 600, 700, 750, 800, 900};
  static constexpr int kMulti[] = {2, 4, 8};
  static constexpr int64_t kMultiWeights[] = {50, 30, 20};
  static constexpr int64_t kDurations[] = {60, 600, 3600, 4 * 3600, 24 * 3600};
  static constexpr const char* kQos[] = {"LS", "BE", "Burstable"};
  const int width = std::max<int>(5, static_cast<int>(Cat(options.requests).size()));

  SimTrace trace;
  trace.requests.reserve(static_cast<size_t>(options.requests));
  int64_t now = 0;
  for (int64_t i = 0; i < options.requests; ++i) {
    SimRequest r;
    r.name = Padded("req-", i + 1, width);
    const int64_t kind = rng.UniformInt(0, 999);
    const bool cpu_only = kind < options.cpu_only_permille || models.empty();
    const bool fractional =
        !cpu_only && kind < options.cpu_only_permille + options.fractional_permille;
    const bool multi =
        !cpu_only && !fractional &&
        kind < options.cpu_only_permille + options.fractional_permille + options.multi_gpu_permille;
    if (cpu_only) {
      const int64_t cores = PickSize(rng, kCpuSizes, std::max<int64_t>(1, max_cpu / 4000));
      r.cpu_milli = std::min(max_cpu, cores * 1000 * options.cpu_scale_pct / 100);
      r.memory_mib =
          std::min(max_mem / 4, cores * PickSize(rng, kMemoryPerCpu, max_mem / kGiB) * kGiB);
    } else {
      const ModelLimits& m = *models[rng.Weighted(model_weights)];
      r.num_gpu = 1;
      r.gpu_milli = 1000;
      if (fractional) {
        r.gpu_milli = kShares[rng.UniformInt(0, std::size(kShares) - 1)];
      } else if (multi) {
        std::vector<int64_t> weights;
        for (size_t k = 0; k < std::size(kMulti); ++k) {
          weights.push_back(kMulti[k] <= m.max_gpus_per_host ? kMultiWeights[k] : 0);
        }
        bool any = false;
        for (int64_t w : weights) any = any || w > 0;
        if (any) r.num_gpu = kMulti[rng.Weighted(weights)];
      }
      const int64_t cpu_cap = m.CpuPerGpu(cluster, r.num_gpu) * r.num_gpu;
      r.cpu_milli =
          r.num_gpu * PickSize(rng, kCpuSizes, m.CpuPerGpu(cluster, r.num_gpu) / 1000) * 1000;
      r.cpu_milli = std::min(cpu_cap, r.cpu_milli * options.cpu_scale_pct / 100);
      r.memory_mib =
          r.num_gpu * PickSize(rng, kMemorySizes, m.MemPerGpu(cluster, r.num_gpu) / kGiB) * kGiB;
      if (rng.Chance(options.constrained_permille)) {
        r.gpu_models.push_back(m.model);
        // Sometimes a second acceptable model that can also hold the request.
        if (models.size() > 1 && rng.Chance(300)) {
          const ModelLimits& other = *models[rng.UniformInt(0, models.size() - 1)];
          if (other.max_gpus_per_host >= r.num_gpu &&
              other.CpuPerGpu(cluster, r.num_gpu) * r.num_gpu >= r.cpu_milli &&
              other.MemPerGpu(cluster, r.num_gpu) * r.num_gpu >= r.memory_mib) {
            r.gpu_models.push_back(other.model);
          }
        }
        std::sort(r.gpu_models.begin(), r.gpu_models.end());
        r.gpu_models.erase(std::unique(r.gpu_models.begin(), r.gpu_models.end()),
                           r.gpu_models.end());
      }
    }
    r.priority = rng.Chance(options.high_priority_permille) ? 1 : 0;
    r.qos = kQos[rng.UniformInt(0, 2)];
    r.phase = "Succeeded";
    now += rng.UniformInt(0, 2 * options.mean_gap_s);
    r.creation_time = now;
    r.scheduled_time = now;
    const int64_t bucket = kDurations[rng.Weighted({20, 30, 30, 15, 5})];
    r.deletion_time = now + rng.UniformInt(bucket / 2, bucket);
    trace.requests.push_back(std::move(r));
  }
  return trace;
}

}  // namespace berth::sim
