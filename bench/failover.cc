// bench_failover: seconds from a host's death (SIGKILL of its agent and every process in its
// network namespace) to its workloads (restart: always) running on other hosts, on the
// three-host bed of tests/cluster/ with the server's default host TTL and failover grace, over
// several runs; median and max. The baseline, measured in the same run, is a fresh placement
// (create to running) in the same cluster: failover costs the TTL, the grace, up to one
// liveness pass (1s) and then about one such placement.
//
// With --vm-shared-disk the workloads are VMs (the tiny test guest, under TCG where KVM cannot
// run it), each booting from its own disk in the shared pool every agent mounts: they start on
// another host from the same disk.
//
// Usage: bench/run failover [--runs N] [--workloads K] [--host-ttl D] [--failover-grace D]
//                           [--vm-shared-disk]
// Needs root (network namespaces).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tests/cluster/cluster.h"
#include "tests/cluster/test_images.h"

namespace {

using berth::cluster::Cluster;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty()      ? 0
         : v.size() % 2 ? v[v.size() / 2]
                        : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

berth::core::WorkloadSpec Sleeper(const std::string& name, const std::string& marker) {
  auto spec = berth::core::DecodeWorkloadSpec({{"name", name},
                                               {"kind", "process"},
                                               {"command", {"/bin/sleep", marker}},
                                               {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}},
                                               {"restart", "always"}});
  return *spec;
}

// A VM of the test images on its own shared-pool disk `disk`.
berth::core::WorkloadSpec VmOnDisk(const std::string& name, const std::string& disk) {
  auto spec =
      berth::core::DecodeWorkloadSpec({{"name", name},
                                       {"kind", "vm"},
                                       {"image", "tiny-vm"},
                                       {"command", {"/bin/sh", "-c", "exec sleep 3600"}},
                                       {"resources", {{"cpu", "500m"}, {"memory", "256Mi"}}},
                                       {"disks", {disk}},
                                       {"restart", "always"}});
  return *spec;
}

// Polls `done` every 10 ms for up to `limit`; false when it never held.
bool WaitFor(const std::function<bool()>& done, absl::Duration limit = absl::Minutes(2)) {
  const Clock::time_point end = Clock::now() + absl::ToChronoSeconds(limit);
  while (Clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5, workloads = 3;
  bool vms = false;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--vm-shared-disk")) vms = true;
  }
  // The server's defaults (`berth serve --help`).
  std::string ttl = "10s", grace = "3s";
  for (int i = 1; i + 1 < argc; ++i) {
    if (!strcmp(argv[i], "--runs")) runs = std::max(1, atoi(argv[i + 1]));
    if (!strcmp(argv[i], "--workloads")) workloads = std::max(1, atoi(argv[i + 1]));
    if (!strcmp(argv[i], "--host-ttl")) ttl = argv[i + 1];
    if (!strcmp(argv[i], "--failover-grace")) grace = argv[i + 1];
  }
  berth::cluster::ClusterOptions options{.hosts = 3, .host_ttl = ttl, .failover_grace = grace};
  if (vms) {
    const std::string images = berth::cluster::ImagesDir();
    if (images.empty()) {
      std::fprintf(stderr, "bench_failover: the test images could not be built\n");
      return 1;
    }
    options.images = {
        {"tiny-vm",
         {.kernel = images + "/tiny-vm/vmlinuz", .initrd = images + "/tiny-vm/initrd.img"}}};
    options.shared_pool = true;
  }
  Cluster cluster(options);
  if (std::string started = cluster.Start(); !started.empty()) {
    std::fprintf(stderr, "bench_failover: %s\n", started.c_str());
    return 1;
  }
  berth::api::Client& api = cluster.client();
  auto running_on = [&](const std::string& name) -> std::string {
    auto w = api.GetWorkload(name);
    if (!w.ok() || w->status.state != berth::core::WorkloadState::kRunning) return "";
    return w->status.host;
  };
  if (vms) {
    for (int k = 0; k < workloads; ++k) {
      auto disk = api.CreateDisk(
          {.name = "fo-disk-" + std::to_string(k), .size = "64Mi", .pool = "shared"});
      if (!disk.ok()) {
        std::fprintf(stderr, "bench_failover: %s\n", disk.status().ToString().c_str());
        return 1;
      }
    }
  }
  std::printf(
      "failover: %d runs, %d %s (restart: always) on the killed host, "
      "host TTL %s, failover grace %s\n",
      runs, workloads, vms ? "VMs on shared-pool disks" : "process workloads", ttl.c_str(),
      grace.c_str());
  std::vector<double> failover, detect, baseline;
  for (int run = 0; run < runs; ++run) {
    const int victim = run % cluster.hosts();
    const std::string victim_name = Cluster::HostName(victim);
    for (int i = 0; i < cluster.hosts(); ++i) {
      if (i != victim && !api.HostAction(Cluster::HostName(i), "cordon").ok()) return 1;
    }
    std::vector<std::string> names;
    const Clock::time_point created = Clock::now();
    for (int k = 0; k < workloads; ++k) {
      names.push_back("fo-" + std::to_string(run) + "-" + std::to_string(k));
      const std::string marker =
          "3600." + std::to_string(getpid()) + std::to_string(run) + std::to_string(k);
      const berth::core::WorkloadSpec spec =
          vms ? VmOnDisk(names.back(), "fo-disk-" + std::to_string(k))
              : Sleeper(names.back(), marker);
      if (auto made = api.CreateWorkload(spec); !made.ok()) {
        std::fprintf(stderr, "bench_failover: %s\n", made.status().ToString().c_str());
        return 1;
      }
    }
    if (!WaitFor([&] {
          return std::all_of(names.begin(), names.end(),
                             [&](const std::string& n) { return running_on(n) == victim_name; });
        })) {
      std::fprintf(stderr, "bench_failover: workloads never ran on %s\n", victim_name.c_str());
      return 1;
    }
    baseline.push_back(Seconds(Clock::now() - created));
    for (int i = 0; i < cluster.hosts(); ++i) {
      if (i != victim && !api.HostAction(Cluster::HostName(i), "uncordon").ok()) return 1;
    }

    const Clock::time_point killed = Clock::now();
    cluster.KillHost(victim);
    Clock::time_point down{};
    const bool moved = WaitFor([&] {
      if (down == Clock::time_point{} && cluster.HostState(victim) == "down") down = Clock::now();
      return std::all_of(names.begin(), names.end(), [&](const std::string& n) {
        const std::string on = running_on(n);
        return !on.empty() && on != victim_name;
      });
    });
    if (!moved) {
      std::fprintf(stderr, "bench_failover: run %d: workloads never ran elsewhere\n", run);
      return 1;
    }
    failover.push_back(Seconds(Clock::now() - killed));
    detect.push_back(Seconds(down - killed));
    std::printf(
        "  run %d: host %s killed; marked down after %.2fs; %d workloads running "
        "elsewhere after %.2fs (placement baseline %.2fs)\n",
        run + 1, victim_name.c_str(), detect.back(), workloads, failover.back(), baseline.back());
    std::fflush(stdout);
    // Reset for the next run: the workloads go, the host comes back.
    for (const std::string& n : names) {
      if (!api.DeleteWorkload(n).ok()) return 1;
    }
    cluster.StartAgent(victim);
    if (!WaitFor([&] {
          auto list = api.ListWorkloads();
          return cluster.HostState(victim) == "ready" && list.ok() && list->items.empty();
        })) {
      std::fprintf(stderr, "bench_failover: host %s did not come back\n", victim_name.c_str());
      return 1;
    }
  }
  absl::Duration ttl_d, grace_d;
  if (!absl::ParseDuration(ttl, &ttl_d) || !absl::ParseDuration(grace, &grace_d)) return 1;
  const double bound = absl::ToDoubleSeconds(ttl_d + grace_d);
  const double median = Median(failover),
               worst = *std::max_element(failover.begin(), failover.end());
  const double placement = Median(baseline);
  std::printf(
      "failover: median %.2fs, max %.2fs over %d runs; host marked down after %.2fs (median)\n"
      "  bounded by host TTL + grace = %.1fs after the host's last heartbeat (which came up to\n"
      "  one heartbeat interval before the kill), plus up to 1s to the next liveness pass, plus\n"
      "  one placement and start (baseline, create to running, median %.2fs)\n"
      "  ratio failover / (TTL + grace + baseline): %.2f\n",
      median, worst, runs, Median(detect), bound, placement, median / (bound + placement));
  std::printf(
      "{\"bench\":\"failover\",\"vm_shared_disk\":%s,\"runs\":%d,\"workloads\":%d,\"host_ttl_s\":%."
      "1f,"
      "\"grace_s\":%.1f,\"median_s\":%.3f,\"max_s\":%.3f,\"detect_median_s\":%.3f,"
      "\"baseline_placement_s\":%.3f,\"ratio\":%.3f}\n",
      vms ? "true" : "false", runs, workloads, absl::ToDoubleSeconds(ttl_d),
      absl::ToDoubleSeconds(grace_d), median, worst, Median(detect), placement,
      median / (bound + placement));
  return 0;
}
