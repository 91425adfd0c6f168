// The control plane at fleet scale, without HTTP: a ControlPlane on the real SQLite store (durable
// commits) in a temporary directory, with N hosts (64 CPUs, 512 GiB, 8 GPUs) and M pending
// workloads (1 CPU / 1 GiB; 15 % one whole GPU, 15 % half a GPU). Reports scheduling passes'
// placed/s against the pure placement engine placing the same requests on the same hosts in the
// same run, the cluster model's load time and memory per host and per workload, what a
// heartbeat, a liveness check, an assignments read and a registration cost, and the store's
// transactions per pass. Hosts and workloads are written to the store in bulk (that is setup, not
// what is measured). The last line is one JSON object.
//
// Usage: bench_control [--hosts=N[,N...]] [--workloads=M]   (default 1000,10000 and 20000)
#include <malloc.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "control/cluster_model.h"
#include "control/control_plane.h"
#include "core/status.h"
#include "nlohmann/json.hpp"
#include "sched/scheduler.h"
#include "state/sqlite_store.h"

namespace berth::control {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU time of the whole process (the watch's thread decodes what a pass commits): on a shared
// machine it measures the work done, not the waiting for a core.
double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

size_t HeapBytes() { return mallinfo2().uordblks; }

core::HostInventory Inventory() {
  core::HostInventory inv;
  inv.capacity.cpu = *core::ParseCpu("64");
  inv.capacity.memory = *core::ParseMemory("512Gi");
  inv.capacity.disk = core::DiskMiB(1 << 20);
  inv.drivers = {"process", "container", "vm"};
  for (int g = 0; g < 8; ++g) {
    core::GpuDevice d;
    d.index = g;
    d.model = "A100-SXM4-80GB";
    d.memory_mib = 81920;
    d.nvlink_island = g / 4;
    inv.gpus.push_back(d);
  }
  return inv;
}

core::WorkloadSpec Spec(int i, std::mt19937_64& rng) {
  core::Json j = {{"name", "w-" + std::to_string(i)},
                  {"kind", "process"},
                  {"command", {"/bin/true"}},
                  {"resources", {{"cpu", "1"}, {"memory", "1Gi"}}}};
  int x = int(rng() % 100);
  if (x < 15) {
    j["resources"]["gpu"] = 1;
  } else if (x < 30) {
    j["resources"]["gpu"] = {{"share", "500m"}};
  }
  return *core::DecodeWorkloadSpec(j);
}

// Writes `puts` in transactions of 1,000 keys.
absl::Status PutAll(state::Store* store, std::vector<std::pair<std::string, std::string>> puts) {
  for (size_t done = 0; done < puts.size(); done += 1000) {
    state::TxnRequest txn;
    for (size_t i = done; i < std::min(puts.size(), done + 1000); ++i) {
      txn.then_ops.push_back(state::Op::Put(puts[i].first, puts[i].second));
    }
    absl::StatusOr<state::TxnResponse> resp = store->Txn(txn);
    if (!resp.ok()) return resp.status();
  }
  return absl::OkStatus();
}

// Counts a call that failed; a run reports how many did ("errors"), so its rates are read with
// that in view.
template <typename T>
void Tally(const T& result, int64_t* errors) {
  if (!core::ToStatus(result).ok()) ++*errors;
}

nlohmann::json Run(const std::string& dir, int hosts, int workloads) {
  int64_t errors = 0;
  nlohmann::json out = {{"hosts", hosts}, {"workloads", workloads}};
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto store = state::SqliteStore::Open(dir + "/berth.db");
  if (!store.ok()) {
    std::cerr << store.status() << "\n";
    return out;
  }
  const core::HostInventory inventory = Inventory();
  std::vector<std::pair<std::string, std::string>> puts;
  const absl::Time now = absl::Now();
  for (int h = 0; h < hosts; ++h) {
    core::Host host;
    host.name = "host-" + std::to_string(h);
    host.inventory = inventory;
    host.registered_at = host.last_heartbeat = now;
    puts.emplace_back(HostKey(host.name), core::EncodeHost(host).dump());
  }
  if (absl::Status s = PutAll(store->get(), std::move(puts)); !s.ok()) {
    std::cerr << s << "\n";
    return out;
  }

  ControlPlaneOptions options;
  ControlPlane cp(store->get(), options);
  // The model with hosts only, then with the workloads streamed in through its watch.
  const size_t heap_before = HeapBytes();
  auto start = Clock::now();
  if (!cp.model().Sync().ok()) return out;
  const double load_hosts_s = Since(start);
  const size_t heap_hosts = HeapBytes();

  std::mt19937_64 rng(42);
  std::vector<core::Workload> all;
  puts.clear();
  for (int i = 0; i < workloads; ++i) {
    core::Workload w;
    w.spec = Spec(i, rng);
    w.status.state = core::WorkloadState::kPending;
    w.status.desired = core::DesiredState::kRunning;
    w.status.reason = "waiting for placement";
    w.created_at = w.updated_at = now + absl::Microseconds(i);
    puts.emplace_back(WorkloadKey(w.spec.name), core::EncodeWorkload(w).dump());
    all.push_back(std::move(w));
  }
  if (absl::Status s = PutAll(store->get(), std::move(puts)); !s.ok()) {
    std::cerr << s << "\n";
    return out;
  }
  start = Clock::now();
  if (!cp.model().Sync().ok()) return out;
  const double follow_s = Since(start);
  const size_t heap_all = HeapBytes();
  out["model_load_hosts_s"] = load_hosts_s;
  out["model_follow_workloads_s"] = follow_s;
  out["model_bytes_per_host"] = double(heap_hosts - heap_before) / hosts;
  out["model_bytes_per_workload"] = double(heap_all - heap_hosts) / std::max(workloads, 1);

  // The pure engine: the same requests on the same hosts, in the same order.
  {
    sched::Cluster cluster;
    for (int h = 0; h < hosts; ++h) {
      sched::HostSpec spec;
      spec.name = "host-" + std::to_string(h);
      spec.capacity = inventory.capacity;
      spec.gpus = inventory.gpus;
      Tally(cluster.AddHost(spec), &errors);
    }
    sched::WorkloadMix mix;
    sched::Scheduler scheduler(
        &cluster,
        sched::SchedulerOptions{.policy = *sched::Policy::Parse(std::string(sched::kDefaultPolicy)),
                                .mix = &mix,
                                .always_explain = false});
    int placed = 0;
    start = Clock::now();
    const double cpu = CpuSeconds();
    for (const core::Workload& w : all) {
      absl::StatusOr<sched::Decision> d = scheduler.Place(WorkloadRequest(w));
      placed += d.ok() && d->scheduled;
    }
    const double s = Since(start);
    out["engine_placed"] = placed;
    out["engine_placed_per_s"] = placed / s;
    out["engine_placed_per_cpu_s"] = placed / (CpuSeconds() - cpu);
  }

  // Scheduling passes until nothing is left to place.
  {
    const int64_t rev_before = *(*store)->Revision();
    int placed = 0, passes = 0;
    start = Clock::now();
    const double cpu = CpuSeconds();
    while (true) {
      absl::StatusOr<int> n = cp.ScheduleOnce();
      if (!n.ok()) {
        std::cerr << n.status() << "\n";
        break;
      }
      ++passes;
      placed += *n;
      if (*n == 0) break;
    }
    const double s = Since(start);
    out["passes"] = passes;
    out["placed"] = placed;
    out["placed_per_s"] = placed / s;
    out["placed_per_cpu_s"] = placed / (CpuSeconds() - cpu);
    out["transactions"] = *(*store)->Revision() - rev_before;
    out["ratio_to_engine"] = double(out["placed_per_s"]) / double(out["engine_placed_per_s"]);
    out["cpu_ratio_to_engine"] =
        double(out["placed_per_cpu_s"]) / double(out["engine_placed_per_cpu_s"]);
  }

  // What a pass, a liveness check and an assignments read each paid before the model: decoding
  // every host and every workload from the store.
  {
    start = Clock::now();
    absl::StatusOr<std::vector<core::Host>> listed_hosts = cp.ListHosts();
    absl::StatusOr<std::vector<core::Workload>> listed = cp.ListWorkloads();
    out["decode_all_ms"] = Since(start) * 1000;
    if (!listed_hosts.ok() || !listed.ok()) return out;
  }

  // Heartbeats of live hosts: in memory only.
  {
    const int64_t rev_before = *(*store)->Revision();
    const int beats = std::max(hosts, 20000);
    start = Clock::now();
    const double cpu = CpuSeconds();
    for (int i = 0; i < beats; ++i) {
      Tally(cp.Heartbeat("host-" + std::to_string(i % hosts)), &errors);
    }
    const double s = Since(start);
    out["heartbeats_per_s"] = beats / s;
    out["heartbeat_cpu_us"] = (CpuSeconds() - cpu) * 1e6 / beats;
    out["heartbeat_store_writes"] = *(*store)->Revision() - rev_before;
  }
  {
    start = Clock::now();
    const double cpu = CpuSeconds();
    constexpr int kChecks = 20;
    for (int i = 0; i < kChecks; ++i) Tally(cp.CheckHostsOnce(), &errors);
    out["liveness_check_ms"] = Since(start) * 1000 / kChecks;
    out["liveness_check_cpu_ms"] = (CpuSeconds() - cpu) * 1000 / kChecks;
  }
  {
    start = Clock::now();
    constexpr int kReads = 2000;
    size_t seen = 0;
    for (int i = 0; i < kReads; ++i) {
      absl::StatusOr<std::vector<core::Workload>> a =
          cp.Assignments("host-" + std::to_string(i % hosts));
      if (a.ok()) seen += a->size();
    }
    out["assignments_ms"] = Since(start) * 1000 / kReads;
    out["assignments_per_host"] = double(seen) / kReads;
  }
  {
    // Durable registrations of new hosts, one transaction each.
    constexpr int kRegistrations = 200;
    start = Clock::now();
    for (int i = 0; i < kRegistrations; ++i) {
      Tally(cp.RegisterHost("new-" + std::to_string(i), inventory), &errors);
    }
    out["registrations_per_s"] = kRegistrations / Since(start);
    start = Clock::now();
    // What the new hosts make placeable: nothing is pending.
    Tally(cp.ScheduleOnce(), &errors);
    out["pass_after_registrations_ms"] = Since(start) * 1000;
  }
  ModelStats stats = cp.model().Stats();
  out["model_reloads"] = stats.reloads;
  out["errors"] = errors;
  return out;
}

}  // namespace
}  // namespace berth::control

int main(int argc, char** argv) {
  std::vector<int> host_counts = {1000, 10000};
  int workloads = 20000;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--hosts=", 0) == 0) {
      host_counts.clear();
      std::string list = arg.substr(8);
      for (size_t pos = 0; pos <= list.size();) {
        size_t comma = list.find(',', pos);
        if (comma == std::string::npos) comma = list.size();
        host_counts.push_back(std::atoi(list.substr(pos, comma - pos).c_str()));
        pos = comma + 1;
      }
    } else if (arg.rfind("--workloads=", 0) == 0) {
      workloads = std::atoi(arg.substr(12).c_str());
    } else {
      std::cerr << "usage: bench_control [--hosts=N[,N...]] [--workloads=M]\n";
      return 2;
    }
  }
  const std::string dir =
      std::filesystem::temp_directory_path() / ("berth-bench-control-" + std::to_string(getpid()));
  nlohmann::json runs = nlohmann::json::array();
  for (int hosts : host_counts) {
    nlohmann::json r = berth::control::Run(dir, hosts, workloads);
    std::filesystem::remove_all(dir);
    std::printf(
        "%6d hosts %6d workloads: placed %s/s (%s per CPU-s) in %s passes, %s txns (engine %s/s, "
        "%s per CPU-s, ratio %.3f); "
        "model %.0f B/host %.0f B/workload; heartbeat %s/s (%.1f us CPU, %s store writes); "
        "liveness check %.2f ms (%.2f ms CPU); assignments %.3f ms (decoding the store %.0f ms); "
        "registrations %s/s\n",
        hosts, workloads, std::to_string(int(r.value("placed_per_s", 0.0))).c_str(),
        std::to_string(int(r.value("placed_per_cpu_s", 0.0))).c_str(),
        r.value("passes", nlohmann::json(0)).dump().c_str(),
        r.value("transactions", nlohmann::json(0)).dump().c_str(),
        std::to_string(int(r.value("engine_placed_per_s", 0.0))).c_str(),
        std::to_string(int(r.value("engine_placed_per_cpu_s", 0.0))).c_str(),
        r.value("ratio_to_engine", 0.0), r.value("model_bytes_per_host", 0.0),
        r.value("model_bytes_per_workload", 0.0),
        std::to_string(int(r.value("heartbeats_per_s", 0.0))).c_str(),
        r.value("heartbeat_cpu_us", 0.0),
        r.value("heartbeat_store_writes", nlohmann::json(0)).dump().c_str(),
        r.value("liveness_check_ms", 0.0), r.value("liveness_check_cpu_ms", 0.0),
        r.value("assignments_ms", 0.0), r.value("decode_all_ms", 0.0),
        std::to_string(int(r.value("registrations_per_s", 0.0))).c_str());
    std::fflush(stdout);
    runs.push_back(std::move(r));
  }
  nlohmann::json out = {{"benchmark", "control"}, {"runs", runs}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
