// Placement throughput of sched/: for clusters of 1,000, 10,000 and 100,000 hosts and a
// realistic AI request mix (CPU-only, fractional GPU, 1/2/4/8 whole GPUs, some pinned to a
// model), replays one seeded stream of arrivals and departures per policy, single-threaded,
// and reports placements per second of thread CPU time (the machine may be shared), the ratio to a
// plain first-fit scan over every host measured in the same run, memory per host, and the quality
// of the result (requests left unplaced, GPU allocation, FGD fragmentation). The last line is one
// JSON object.
//
// Usage: bench_placement [--quick] [--seconds=S] [--hosts=N] [--policy=P]
//   S: time limit per run (default 8); N, P: run only that cluster size / policy (and the scan).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "sched/fgd.h"
#include "sched/fits.h"
#include "sched/scheduler.h"
#include "sched/test_hosts.h"

namespace berth::sched {
namespace {

using Clock = std::chrono::steady_clock;

// CPU time of this thread: on a shared machine it measures the work done, not the waiting.
double ThreadSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

HostSpec MakeHost(int i) {
  std::string name = "host-" + std::to_string(i);
  HostSpec h;
  int kind = i % 10;
  if (kind < 6) {
    h = testing::GpuHost(name, 8, "A100-SXM4-80GB", 81920);
  } else if (kind < 8) {
    h = testing::GpuHost(name, 8, "H100-SXM5-80GB", 81920);
  } else if (kind < 9) {
    h = testing::GpuHost(name, 4, "T4", 16384);
    h.capacity = testing::Res(64000, 262144, 1048576);
  } else {
    h = testing::GpuHost(name, 0);
    h.capacity = testing::Res(96000, 393216, 2097152);
  }
  h.labels["zone"] = "zone-" + std::to_string(i % 3);
  return h;
}

struct Arrival {
  Request request;
  int64_t lifetime;  // in arrivals
};

// The AI mix: a quarter CPU-only, a third fractional GPU, the rest whole GPUs, one in ten of
// those pinned to H100.
Request MakeRequest(std::mt19937_64& rng, int n) {
  std::string id = "w-" + std::to_string(n);
  int x = int(rng() % 100);
  Request r;
  if (x < 25) {
    static const int64_t cpu[] = {2000, 4000, 8000, 16000};
    int k = int(rng() % 4);
    r = testing::CpuRequest(id, cpu[k], cpu[k] * 4);
  } else if (x < 60) {
    static const int64_t milli[] = {100, 250, 500, 500, 750};
    int k = int(rng() % 5);
    r = testing::ShareRequest(id, milli[k], milli[k] * 40);
    r.resources = testing::Res(4000, 32768);
  } else {
    int count = x < 75 ? 1 : x < 85 ? 2 : x < 93 ? 4 : 8;
    r = testing::WholeGpuRequest(id, count);
    r.resources = testing::Res(12000 * count, 98304 * count);
    if (rng() % 10 == 0) r.gpu.models = {"H100-SXM5-80GB"};
  }
  r.tenant = "team-" + std::to_string(rng() % 4);
  return r;
}

std::vector<Arrival> MakeStream(int hosts, int placements, uint64_t seed) {
  std::mt19937_64 rng(seed);
  // Mean lifetime chosen so the live set settles near two thirds of the GPUs.
  std::exponential_distribution<double> life(1.0 / (4.0 * hosts));
  std::vector<Arrival> out;
  for (int n = 0; n < placements; ++n) {
    Request r = MakeRequest(rng, n);
    out.push_back({std::move(r), int64_t(life(rng)) + 1});
  }
  return out;
}

struct RunResult {
  std::string policy;
  int hosts = 0;
  int attempted = 0;
  int placed = 0;
  int unplaced = 0;
  double seconds = 0;  // thread CPU time of the replay
  double wall_seconds = 0;
  double per_second = 0;  // per CPU second
  double gpu_allocated = 0;
  double fragmentation = 0;
  int groups = 0;
  double bytes_per_host = 0;
  bool cut_short = false;
};

// A plain first-fit scan over every host in index order, without groups or caches: the
// baseline each policy is compared with.
std::optional<Placement> PlainFirstFit(const Cluster& c, const Request& r) {
  for (int h = 0; h < c.num_hosts(); ++h) {
    const HostState& host = c.host(h);
    if (!ResourcesFitIn(host.Free(), r.resources)) continue;
    Placement p{h, host.name, {}};
    if (r.gpu.kind == core::GpuRequest::Kind::kNone) return p;
    for (const GpuState& g : host.gpus) {
      if (!GpuHolds(g, r.gpu)) continue;
      core::GpuAssignment a;
      a.index = g.device.index;
      if (r.gpu.kind == core::GpuRequest::Kind::kWhole) {
        a.milli = core::kWholeGpuMilli;
      } else {
        a.milli = r.gpu.milli;
        a.memory_mib = r.gpu.memory_mib;
      }
      p.gpus.push_back(a);
      if (r.gpu.kind != core::GpuRequest::Kind::kWhole || int(p.gpus.size()) == r.gpu.count) {
        return p;
      }
    }
  }
  return std::nullopt;
}

RunResult Run(int hosts, const std::vector<Arrival>& stream, const std::string& policy,
              const WorkloadMix& mix, double limit_seconds) {
  Cluster c;
  for (int i = 0; i < hosts; ++i) {
    if (!c.AddHost(MakeHost(i)).ok()) std::abort();
  }
  std::optional<Scheduler> s;
  if (policy != "plain-scan") {
    SchedulerOptions o;
    o.policy = *Policy::Parse(policy);
    o.mix = &mix;
    s.emplace(&c, o);
  }
  RunResult res;
  res.policy = policy;
  res.hosts = hosts;
  // Departures due at each arrival index.
  std::vector<std::vector<int>> due(stream.size() + 1);
  auto start = Clock::now();
  double cpu_start = ThreadSeconds();
  size_t n = 0;
  for (; n < stream.size(); ++n) {
    for (int d : due[n]) {
      if (!c.Release(stream[d].request.id).ok()) std::abort();
    }
    const Request& r = stream[n].request;
    bool placed = false;
    if (s) {
      absl::StatusOr<Decision> d = s->Place(r);
      placed = d.ok() && d->scheduled;
    } else if (std::optional<Placement> p = PlainFirstFit(c, r)) {
      placed = c.Commit(r, *p).ok();
    }
    if (placed) {
      res.placed++;
      size_t end = n + size_t(stream[n].lifetime);
      if (end < due.size()) due[end].push_back(int(n));
    } else {
      res.unplaced++;
    }
    if ((n & 255) == 255 && ThreadSeconds() - cpu_start > limit_seconds) {
      res.cut_short = true;
      ++n;
      break;
    }
  }
  res.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  res.seconds = ThreadSeconds() - cpu_start;
  res.attempted = int(n);
  res.per_second = res.attempted / res.seconds;
  ClusterTotals t = c.Totals();
  res.gpu_allocated = double(t.gpu_milli_allocated) / double(t.gpu_milli_capacity);
  res.fragmentation = c.Fragmentation(mix).ratio();
  res.groups = c.num_groups();
  res.bytes_per_host = double(c.MemoryBytes()) / hosts;
  return res;
}

}  // namespace
}  // namespace berth::sched

int main(int argc, char** argv) {
  using namespace berth::sched;
  bool quick = false;
  double limit = 8;
  std::string only;
  int only_hosts = 0;
  bool no_baseline = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    if (std::strncmp(argv[i], "--seconds=", 10) == 0) limit = std::atof(argv[i] + 10);
    if (std::strncmp(argv[i], "--policy=", 9) == 0) only = argv[i] + 9;
    if (std::strcmp(argv[i], "--no-baseline") == 0) no_baseline = true;
    if (std::strncmp(argv[i], "--hosts=", 8) == 0) only_hosts = std::atoi(argv[i] + 8);
  }
  struct Size {
    int hosts;
    int placements;
    std::vector<std::string> policies;
  };
  const std::vector<std::string> all = {
      "plain-scan",  "first-fit", "binpack", "spread",   "dotprod",
      "gpu-packing", "fgd",       "fgd-ref", "topology", std::string(kDefaultPolicy)};
  std::vector<Size> sizes = {
      {1000, quick ? 5000 : 20000, all},
      {10000, quick ? 10000 : 40000, all},
      {100000,
       quick ? 5000 : 20000,
       {"plain-scan", "first-fit", "binpack", "fgd", "fgd-ref", std::string(kDefaultPolicy)}},
  };
  nlohmann::json out;
  out["benchmark"] = "placement";
  out["unit"] = "placements/s";
  std::printf("%-8s %-20s %9s %9s %12s %8s %8s %8s %8s %8s %10s\n", "hosts", "policy", "tried",
              "unplaced", "placements/s", "vs-scan", "gpu-use", "frag", "groups", "B/host",
              "cpu-s");
  for (const Size& size : sizes) {
    if (only_hosts != 0 && size.hosts != only_hosts) continue;
    std::vector<Arrival> stream = MakeStream(size.hosts, size.placements, 42);
    // FGD's mix: the stream's own shapes, as a tracker with a long window would learn them.
    WorkloadMix mix;
    for (const Arrival& a : stream) mix.Add(Shape::Of(a.request), 1);
    double baseline = 0;
    nlohmann::json runs = nlohmann::json::object();
    for (const std::string& policy : size.policies) {
      if (!only.empty() && policy != only && (policy != "plain-scan" || no_baseline)) continue;
      RunResult r = Run(size.hosts, stream, policy, mix, limit);
      if (policy == "plain-scan") baseline = r.per_second;
      double ratio = baseline > 0 ? r.per_second / baseline : 0;
      std::printf("%-8d %-20s %9d %9d %12.0f %7.1fx %7.1f%% %7.1f%% %8d %8.0f %9.2f%s\n", r.hosts,
                  r.policy.c_str(), r.attempted, r.unplaced, r.per_second, ratio,
                  100 * r.gpu_allocated, 100 * r.fragmentation, r.groups, r.bytes_per_host,
                  r.seconds, r.cut_short ? " (time limit)" : "");
      std::fflush(stdout);
      runs[policy] = {{"placements_per_second", int64_t(r.per_second)},
                      {"ratio_to_plain_scan", ratio},
                      {"cpu_seconds", r.seconds},
                      {"wall_seconds", r.wall_seconds},
                      {"attempted", r.attempted},
                      {"unplaced", r.unplaced},
                      {"gpu_allocated", r.gpu_allocated},
                      {"fragmentation", r.fragmentation},
                      {"groups", r.groups},
                      {"bytes_per_host", int64_t(r.bytes_per_host)},
                      {"cut_short", r.cut_short}};
    }
    out["hosts_" + std::to_string(size.hosts)] = runs;
  }
  out["default_policy"] = std::string(kDefaultPolicy);
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
