// bench_overlay: what a Berth network costs across hosts. On the two-host bed of tests/cluster/
// (each host a network namespace, joined by a bridge), busybox containers on one Berth network:
// a server on host 1, a client beside it on host 1 (the baseline: one bridge, no tunnel) and one
// on host 2 (the VXLAN tunnel both ways). For each client: round-trip time (ping, median of the
// runs' averages) and TCP throughput (MiB pushed through nc, timed around the exec less an empty
// exec's time).
//
// Usage: bench/run overlay [--runs N] [--mib M]
// Needs root (network namespaces), runc and the test images.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "runtime/host/run.h"
#include "tests/cluster/cluster.h"

namespace {

using berth::cluster::Cluster;
using berth::core::Json;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty()      ? 0
         : v.size() % 2 ? v[v.size() / 2]
                        : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

berth::core::WorkloadSpec Box(const std::string& name, const std::string& script) {
  return *berth::core::DecodeWorkloadSpec({{"name", name},
                                           {"kind", "container"},
                                           {"image", "busybox"},
                                           {"command", {"/bin/sh", "-c", script}},
                                           {"resources", {{"cpu", "100m"}, {"memory", "64Mi"}}},
                                           {"networks", {"blue"}}});
}

struct Figures {
  double rtt_ms = 0;
  double mib_per_s = 0;
};

}  // namespace

int main(int argc, char** argv) {
  int runs = 5, mib = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--runs")) runs = std::max(1, atoi(argv[i + 1]));
    if (!strcmp(argv[i], "--mib")) mib = std::max(1, atoi(argv[i + 1]));
  }
  const std::string images = BERTH_TEST_IMAGES_DIR;
  auto built = berth::runtime::host::RunCommand({BERTH_IMAGE_SCRIPT, images},
                                                {.timeout = absl::Minutes(10)});
  if (!built.ok() || !built->ok()) {
    std::fprintf(stderr, "bench_overlay: the test images could not be built\n");
    return 1;
  }
  Cluster cluster(berth::cluster::ClusterOptions{
      .hosts = 2, .images = {{"busybox", {.rootfs = images + "/busybox-rootfs.tar"}}}});
  if (std::string started = cluster.Start(); !started.empty()) {
    std::fprintf(stderr, "bench_overlay: %s\n", started.c_str());
    return 1;
  }
  auto& client = cluster.client();
  const Json net = {{"name", "blue"}, {"subnet", "10.81.0.0/24"}};
  if (!client.Call("POST", "/v1/networks", &net).ok()) {
    std::fprintf(stderr, "bench_overlay: cannot create the network\n");
    return 1;
  }
  // Places each workload on its host by cordoning the other for its creation.
  auto place = [&](int host, const berth::core::WorkloadSpec& spec) {
    const std::string other = Cluster::HostName(1 - host);
    if (!client.Call("POST", "/v1/hosts/" + other + "/cordon").ok()) return false;
    bool ok = client.CreateWorkload(spec).ok() && berth::e2e::Eventually([&] {
                auto w = client.GetWorkload(spec.name);
                return w.ok() && w->status.state == berth::core::WorkloadState::kRunning;
              });
    return client.Call("POST", "/v1/hosts/" + other + "/uncordon").ok() && ok;
  };
  if (!place(0, Box("srv", "while true; do nc -l -p 9000 >/dev/null; done")) ||
      !place(0, Box("near", "exec sleep 3600")) || !place(1, Box("far", "exec sleep 3600"))) {
    std::fprintf(stderr, "bench_overlay: the containers did not start\n");
    return 1;
  }
  auto n = client.Call("GET", "/v1/networks/blue");
  const std::string srv = n.ok() ? (*n)["status"]["addresses"].value("srv", "") : "";
  auto sh = [&](const std::string& who, const std::string& script) -> std::string {
    auto r = client.Exec(who, {.argv = {"/bin/sh", "-c", script}, .timeout = absl::Minutes(2)});
    return r.ok() ? r->stdout_data : "";
  };
  auto measure = [&](const std::string& who) {
    std::vector<double> rtts, rates;
    for (int run = 0; run < runs; ++run) {
      // "round-trip min/avg/max = 0.062/0.081/0.110 ms"
      const std::string ping = sh(who, "ping -c 20 -i 0.05 " + srv + " | tail -1");
      const size_t eq = ping.find("= ");
      if (eq != std::string::npos) {
        const size_t a = ping.find('/', eq), b = ping.find('/', a + 1);
        double avg = 0;
        if (a != std::string::npos && b != std::string::npos &&
            absl::SimpleAtod(ping.substr(a + 1, b - a - 1), &avg)) {
          rtts.push_back(avg);
        }
      }
      // `mib` MiB pushed through a TCP connection to the server, timed around the exec, less
      // what an empty exec takes (busybox's date has no sub-second clock).
      auto timed = [&](const std::string& script) {
        const auto start = std::chrono::steady_clock::now();
        sh(who, script);
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      };
      const double empty = timed("true");
      const double took = timed("dd if=/dev/zero bs=1048576 count=" + std::to_string(mib) +
                                " 2>/dev/null | nc " + srv + " 9000") -
                          empty;
      if (took > 0) rates.push_back(mib / took);
    }
    return Figures{Median(rtts), Median(rates)};
  };
  const Figures near = measure("near"), far = measure("far");
  std::printf("same host (bridge):      rtt %.3f ms, %.0f MiB/s\n", near.rtt_ms, near.mib_per_s);
  std::printf("across hosts (VXLAN):    rtt %.3f ms, %.0f MiB/s\n", far.rtt_ms, far.mib_per_s);
  const double rtt_ratio = near.rtt_ms > 0 ? far.rtt_ms / near.rtt_ms : 0;
  const double rate_ratio = near.mib_per_s > 0 ? far.mib_per_s / near.mib_per_s : 0;
  std::printf("across/same: rtt x%.2f, throughput x%.2f (%d runs, %d MiB each)\n", rtt_ratio,
              rate_ratio, runs, mib);
  std::printf("%s\n", Json{{"benchmark", "overlay"},
                           {"runs", runs},
                           {"mib", mib},
                           {"same_host_rtt_ms", near.rtt_ms},
                           {"same_host_mib_per_s", near.mib_per_s},
                           {"across_hosts_rtt_ms", far.rtt_ms},
                           {"across_hosts_mib_per_s", far.mib_per_s},
                           {"rtt_ratio", rtt_ratio},
                           {"throughput_ratio", rate_ratio}}
                          .dump()
                          .c_str());
  for (const char* w : {"srv", "near", "far"}) {
    if (!client.DeleteWorkload(w).ok()) std::fprintf(stderr, "bench_overlay: delete %s\n", w);
  }
  berth::e2e::Eventually([&] {
    auto left = client.ListWorkloads();
    return left.ok() && left->items.empty();
  });
  return (near.mib_per_s > 0 && far.mib_per_s > 0) ? 0 : 1;
}
