// bench_start: how much time Berth's drivers add to starting a container and a VM. Each round
// starts the same workload twice: by hand (runc run / qemu -daemonize + QMP handshake, the least
// any caller must do) and through ComputeDriver::Start, which returns once the task is running.
// Prints medians and Berth's added latency; the last line is one JSON object.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "runtime/image/command.h"
#include "runtime/oci/oci_config.h"
#include "runtime/oci/oci_driver.h"
#include "runtime/qemu/qemu_argv.h"
#include "runtime/qemu/qemu_driver.h"
#include "runtime/qemu/qmp_client.h"

namespace fs = std::filesystem;
using namespace berth::runtime;

namespace {

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

const char* kRuncRoot = "/run/berth-bench/runc";

absl::Duration ContainerByHand(const std::string& rootfs, const std::string& dir, int i) {
  std::string id = "bench-hand-" + std::to_string(i);
  fs::create_directories(dir + "/bundle");
  ContainerLaunchSpec spec{
      .id = id, .rootfs = rootfs, .read_only_rootfs = true, .args = {"/bin/sleep", "3600"}};
  spec.cpu = berth::core::MilliCpu(250);
  spec.memory = berth::core::MemoryMiB(32);
  spec.cgroups_path = "/berth-bench/" + id;
  (void)WriteFileAtomically(dir + "/bundle/config.json", BuildOciConfig(spec)->dump());
  absl::Time t0 = absl::Now();
  auto pid = SpawnProcess({"runc", "--root", kRuncRoot, "run", "--bundle", dir + "/bundle",
                           "--pid-file", dir + "/pid", id},
                          {});
  while (!fs::exists(dir + "/pid")) absl::SleepFor(absl::Milliseconds(1));
  absl::Duration took = absl::Now() - t0;
  (void)RunCommand({"runc", "--root", kRuncRoot, "kill", id, "KILL"});
  if (pid.ok()) (void)ReapChild(*pid, absl::Seconds(30));
  (void)RunCommand({"runc", "--root", kRuncRoot, "delete", "--force", id});
  fs::remove_all(dir);
  return took;
}

absl::Duration VmByHand(const std::string& image, const std::string& dir) {
  fs::create_directories(dir);
  VmLaunchSpec s{.name = "bench-hand",
                 .accel = DetectAccel(),
                 .memory_mib = 128,
                 .kernel = image + "/vmlinuz",
                 .initrd = image + "/initrd.img",
                 .cmdline = "console=ttyS0 quiet panic=-1",
                 .serial_log = dir + "/console.log",
                 .qmp_socket = dir + "/qmp.sock",
                 .pidfile = dir + "/qemu.pid"};
  auto argv = BuildQemuArgv(s);
  absl::Time t0 = absl::Now();
  (void)RunCommand(*argv);
  auto qmp = QmpClient::Connect(s.qmp_socket, {});
  absl::Duration took = absl::Now() - t0;
  if (qmp.ok()) (void)(*qmp)->Execute("quit");
  auto pid = ReadFileToString(s.pidfile);
  if (pid.ok()) WaitForProcessExit(std::atoi(pid->c_str()), 0, absl::Seconds(30));
  fs::remove_all(dir);
  return took;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds_container = argc > 1 ? std::atoi(argv[1]) : 15;
  int rounds_vm = argc > 2 ? std::atoi(argv[2]) : 5;
  std::string images = BERTH_TEST_IMAGES_DIR;
  auto built = RunCommand({BERTH_IMAGE_SCRIPT, images}, {.timeout = absl::Minutes(10)});
  if (!built.ok() || !built->ok()) {
    std::fprintf(stderr, "cannot build test images\n");
    return 1;
  }
  std::string base = fs::temp_directory_path() / ("berth-bench-" + std::to_string(getpid()));
  fs::create_directories(base);

  std::vector<double> c_hand, c_berth, v_hand, v_berth;
  OciDriver oci({.runc_root = "/run/berth-bench/oci", .cgroup_parent = "/berth-bench"});
  for (int i = 0; i < rounds_container; ++i) {
    c_hand.push_back(Ms(ContainerByHand(images + "/busybox-rootfs", base + "/hand", i)));
    TaskConfig c{.task_id = "bench-" + std::to_string(i),
                 .workload = "bench",
                 .kind = "container",
                 .command = "/bin/sleep",
                 .args = {"3600"},
                 .image_path = images + "/busybox-rootfs"};
    c.resources.cpu = berth::core::MilliCpu(250);
    c.resources.memory = berth::core::MemoryMiB(32);
    c.task_dir = base + "/" + c.task_id;
    absl::Time t0 = absl::Now();
    auto h = oci.Start(c);
    c_berth.push_back(Ms(absl::Now() - t0));
    if (!h.ok()) {
      std::fprintf(stderr, "oci start: %s\n", std::string(h.status().message()).c_str());
      return 1;
    }
    (void)oci.Destroy(c.task_id, {.force = true});
  }
  QemuDriver qemu;
  for (int i = 0; i < rounds_vm; ++i) {
    v_hand.push_back(Ms(VmByHand(images + "/tiny-vm", base + "/vmhand")));
    TaskConfig c{.task_id = "vm-" + std::to_string(i),
                 .workload = "bench-vm",
                 .kind = "vm",
                 .image_path = images + "/tiny-vm"};
    c.resources.memory = berth::core::MemoryMiB(128);
    c.task_dir = base + "/" + c.task_id;
    absl::Time t0 = absl::Now();
    auto h = qemu.Start(c);
    v_berth.push_back(Ms(absl::Now() - t0));
    if (!h.ok()) {
      std::fprintf(stderr, "qemu start: %s\n", std::string(h.status().message()).c_str());
      return 1;
    }
    (void)qemu.Destroy(c.task_id, {.force = true});
  }
  fs::remove_all(base);

  double ch = Median(c_hand), cb = Median(c_berth), vh = Median(v_hand), vb = Median(v_berth);
  std::printf(
      "container start (median of %d): by hand %.1f ms, berth %.1f ms, added %.1f ms "
      "(target <= 20 ms), ratio %.2f\n",
      rounds_container, ch, cb, cb - ch, ch > 0 ? cb / ch : 0);
  std::printf(
      "vm start        (median of %d): by hand %.1f ms, berth %.1f ms, added %.1f ms "
      "(target <= 50 ms), ratio %.2f\n",
      rounds_vm, vh, vb, vb - vh, vh > 0 ? vb / vh : 0);
  nlohmann::json out = {{"bench", "start"},         {"container_by_hand_ms", ch},
                        {"container_berth_ms", cb}, {"container_added_ms", cb - ch},
                        {"vm_by_hand_ms", vh},      {"vm_berth_ms", vb},
                        {"vm_added_ms", vb - vh}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
