// bench_start: how much time Berth adds to starting a container and a VM. Each round starts the
// same workload by hand (runc run / qemu -daemonize + QMP handshake, the least any caller must
// do) and through Berth, at two levels:
//   driver  ComputeDriver::Start, which returns once the task is running
//   api     create -> running through the REST API of a real `berth serve --dev` (scheduling,
//           the agent's assignment watch, image resolution, the driver, status reports)
// Prints medians and Berth's added latency; the last line is one JSON object.
// Usage: bench_start [CONTAINER_ROUNDS [VM_ROUNDS]]
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/time/clock.h"
#ifdef BERTH_BINARY
#include "api/client/client.h"
#endif
#include "core/log.h"
#include "nlohmann/json.hpp"
#include "runtime/host/executor.h"
#include "runtime/host/file.h"
#include "runtime/oci/oci_config.h"
#include "runtime/oci/oci_driver.h"
#include "runtime/qemu/accel_probe.h"
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

// A clean-up step whose failure does not spoil the figures: said on stderr, not returned.
template <typename R>
void Check(std::string_view what, const R& result) {
  if constexpr (std::is_same_v<R, absl::Status>) {
    if (!result.ok()) berth::core::LogWarn("bench: %s: %s", std::string(what), result.ToString());
  } else {
    if (!result.ok()) {
      berth::core::LogWarn("bench: %s: %s", std::string(what), result.status().ToString());
    }
  }
}

absl::Duration ContainerByHand(const std::string& rootfs, const std::string& dir, int i) {
  std::string id = "bench-hand-" + std::to_string(i);
  fs::create_directories(dir + "/bundle");
  ContainerLaunchSpec spec{
      .id = id, .rootfs = rootfs, .read_only_rootfs = true, .args = {"/bin/sleep", "3600"}};
  spec.cpu = berth::core::MilliCpu(250);
  spec.memory = berth::core::MemoryMiB(32);
  spec.cgroups_path = "/berth-bench/" + id;
  Check("write config.json",
        host::WriteFileAtomically(dir + "/bundle/config.json", BuildOciConfig(spec)->dump()));
  absl::Time t0 = absl::Now();
  auto pid = host::SpawnDetached({"runc", "--root", kRuncRoot, "run", "--bundle", dir + "/bundle",
                                  "--pid-file", dir + "/pid", id},
                                 {});
  while (!fs::exists(dir + "/pid")) absl::SleepFor(absl::Milliseconds(1));
  absl::Duration took = absl::Now() - t0;
  Check("runc kill", host::RunCommand({"runc", "--root", kRuncRoot, "kill", id, "KILL"}));
  if (pid.ok()) Check("reap runc", host::ReapChild(pid->pid, absl::Seconds(30)));
  Check("runc delete", host::RunCommand({"runc", "--root", kRuncRoot, "delete", "--force", id}));
  fs::remove_all(dir);
  return took;
}

absl::Duration VmByHand(const std::string& image, const std::string& dir) {
  fs::create_directories(dir);
  VmLaunchSpec s{.name = "bench-hand",
                 .accel = DetectAccelOnce("qemu-system-x86_64").accel,
                 .memory_mib = 128,
                 .kernel = image + "/vmlinuz",
                 .initrd = image + "/initrd.img",
                 .cmdline = "console=ttyS0 quiet panic=-1",
                 .serial_log = dir + "/console.log",
                 .qmp_socket = dir + "/qmp.sock",
                 .pidfile = dir + "/qemu.pid"};
  auto argv = BuildQemuArgv(s);
  absl::Time t0 = absl::Now();
  Check("start qemu", host::RunCommand(*argv));
  auto qmp = QmpClient::Connect(s.qmp_socket, {});
  absl::Duration took = absl::Now() - t0;
  if (qmp.ok()) Check("qmp quit", (*qmp)->Execute("quit"));
  auto pid = host::ReadFile(s.pidfile);
  if (pid.ok()) host::WaitForProcessExit({.pid = std::atoi(pid->c_str())}, absl::Seconds(30));
  fs::remove_all(dir);
  return took;
}

#ifdef BERTH_BINARY
std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A `berth serve --dev` on its own data directory, with the test images in its catalog.
class DevServer {
 public:
  explicit DevServer(std::string dir) : dir_(std::move(dir)) {}
  ~DevServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      Check("reap berth serve", host::ReapChild(pid_, absl::Minutes(1)));
    }
  }

  bool Start(const std::string& images) {
    for (std::vector<std::string> import :
         {std::vector<std::string>{"tiny-vm", "--kernel", images + "/tiny-vm/vmlinuz", "--initrd",
                                   images + "/tiny-vm/initrd.img"},
          std::vector<std::string>{"busybox", "--rootfs", images + "/busybox-rootfs"}}) {
      std::vector<std::string> argv = {"env", "BERTH_DATA_DIR=" + dir_, BERTH_BINARY, "image",
                                       "import"};
      argv.insert(argv.end(), import.begin(), import.end());
      auto r = host::RunCommand(argv, {.timeout = absl::Minutes(2)});
      if (!r.ok() || !r->ok()) return false;
    }
    auto pid = host::SpawnDetached(
        {"env", "BERTH_DATA_DIR=" + dir_, BERTH_BINARY, "serve", "--dev", "--listen",
         "127.0.0.1:0"},
        {.stdout_path = dir_ + "/serve.log", .stderr_path = dir_ + "/serve.log"});
    if (!pid.ok()) return false;
    pid_ = pid->pid;
    const absl::Time deadline = absl::Now() + absl::Minutes(1);
    while (absl::Now() < deadline) {
      nlohmann::json info =
          nlohmann::json::parse(ReadWholeFile(dir_ + "/server.json"), nullptr, false);
      if (info.is_object() && info.value("pid", 0) == pid_) {
        std::string token = ReadWholeFile(dir_ + "/admin.token");
        while (!token.empty() && token.back() == '\n') token.pop_back();
        client = std::make_unique<berth::api::Client>(info.value("url", ""),
                                                      berth::api::ClientOptions{.token = token});
        auto hosts = client->ListHosts();
        if (hosts.ok() && !hosts->items.empty()) return true;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }

  // Creates the workload and waits (blocking queries, no polling delay) until it runs. Returns
  // the time from the create request to the answer that shows it running.
  absl::StatusOr<absl::Duration> CreateUntilRunning(const nlohmann::json& spec) {
    const std::string name = spec["name"];
    absl::Time t0 = absl::Now();
    berth::api::Raw raw;
    auto created = client->CreateWorkloadFromText(spec.dump(), "application/json", &raw);
    if (!created.ok()) return created.status();
    berth::api::Watch watch{.index = raw.index, .wait = absl::Seconds(10)};
    while (absl::Now() - t0 < absl::Minutes(2)) {
      auto w = client->GetWorkload(name, watch, &raw);
      if (!w.ok()) return w.status();
      absl::Time seen = absl::Now();
      if (w->status.state == berth::core::WorkloadState::kRunning) return seen - t0;
      if (w->status.state == berth::core::WorkloadState::kFailed) {
        return absl::InternalError(w->status.reason);
      }
      if (raw.index > 0) watch.index = raw.index;
    }
    return absl::DeadlineExceededError(name + " did not start");
  }

  // Deletes the workload and waits until it is gone.
  void Delete(const std::string& name) {
    auto deleted = client->DeleteWorkload(name);
    if (!deleted.ok())
      std::cerr << "bench start: delete " << name << ": " << deleted.status() << "\n";
    const absl::Time deadline = absl::Now() + absl::Minutes(2);
    while (absl::Now() < deadline) {
      if (absl::IsNotFound(client->GetWorkload(name).status())) return;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  std::unique_ptr<berth::api::Client> client;

 private:
  const std::string dir_;
  pid_t pid_ = 0;
};
#endif  // BERTH_BINARY

}  // namespace

int main(int argc, char** argv) {
  int rounds_container = argc > 1 ? std::atoi(argv[1]) : 15;
  int rounds_vm = argc > 2 ? std::atoi(argv[2]) : 5;
  std::string images = BERTH_TEST_IMAGES_DIR;
  auto built = host::RunCommand({BERTH_IMAGE_SCRIPT, images}, {.timeout = absl::Minutes(10)});
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
    Check("destroy container", oci.Destroy(c.task_id, {.force = true}));
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
    Check("destroy vm", qemu.Destroy(c.task_id, {.force = true}));
  }

  // Through the API of a real dev server: create -> running against the same launch by hand.
  std::vector<double> ac_hand, ac_berth, av_hand, av_berth;
#ifdef BERTH_BINARY
  {
    fs::create_directories(base + "/server");
    DevServer server(base + "/server");
    if (!server.Start(images)) {
      std::fprintf(stderr, "berth serve --dev did not come up: %s\n",
                   ReadWholeFile(base + "/server/serve.log").c_str());
      return 1;
    }
    for (int i = 0; i < rounds_container; ++i) {
      ac_hand.push_back(Ms(ContainerByHand(images + "/busybox-rootfs", base + "/hand", i)));
      const std::string name = "bench-c-" + std::to_string(i);
      nlohmann::json spec = {
          {"name", name},
          {"kind", "container"},
          {"image", "busybox"},
          {"command", {"/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"}},
          {"resources", {{"cpu", "250m"}, {"memory", "32Mi"}}}};
      auto took = server.CreateUntilRunning(spec);
      if (!took.ok()) {
        std::fprintf(stderr, "api container: %s\n", std::string(took.status().message()).c_str());
        return 1;
      }
      ac_berth.push_back(Ms(*took));
      server.Delete(name);
    }
    for (int i = 0; i < rounds_vm; ++i) {
      av_hand.push_back(Ms(VmByHand(images + "/tiny-vm", base + "/vmhand")));
      const std::string name = "bench-vm-" + std::to_string(i);
      nlohmann::json spec = {{"name", name},
                             {"kind", "vm"},
                             {"image", "tiny-vm"},
                             {"resources", {{"cpu", "1"}, {"memory", "128Mi"}}}};
      auto took = server.CreateUntilRunning(spec);
      if (!took.ok()) {
        std::fprintf(stderr, "api vm: %s\n", std::string(took.status().message()).c_str());
        return 1;
      }
      av_berth.push_back(Ms(*took));
      server.Delete(name);
    }
  }
#endif  // BERTH_BINARY
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
  double ach = Median(ac_hand), acb = Median(ac_berth), avh = Median(av_hand),
         avb = Median(av_berth);
  std::printf(
      "api container   (median of %d): by hand %.1f ms, create->running %.1f ms, added %.1f ms "
      "(target <= 20 ms), ratio %.2f\n",
      rounds_container, ach, acb, acb - ach, ach > 0 ? acb / ach : 0);
  std::printf(
      "api vm          (median of %d): by hand %.1f ms, create->running %.1f ms, added %.1f ms "
      "(target <= 50 ms), ratio %.2f\n",
      rounds_vm, avh, avb, avb - avh, avh > 0 ? avb / avh : 0);
  nlohmann::json out = {{"bench", "start"},
                        {"container_by_hand_ms", ch},
                        {"container_berth_ms", cb},
                        {"container_added_ms", cb - ch},
                        {"vm_by_hand_ms", vh},
                        {"vm_berth_ms", vb},
                        {"vm_added_ms", vb - vh},
                        {"api_container_by_hand_ms", ach},
                        {"api_container_berth_ms", acb},
                        {"api_container_added_ms", acb - ach},
                        {"api_vm_by_hand_ms", avh},
                        {"api_vm_berth_ms", avb},
                        {"api_vm_added_ms", avb - avh}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
