// End-to-end tests of the compute drivers through the product: the real `berth serve --dev`
// binary with its local agent, the qemu and oci drivers and the host's image catalog, driven
// through the REST API (api::HttpClient) and the `berth` CLI. Each test gets its own server on
// port 0 with its own data directory; images come from scripts/build-test-images.sh.
//
// Needs root (runc, overlay mounts), qemu-system-x86_64 and runc; skips otherwise.
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "api/client/client.h"
#include "api/http/client.h"
#include "core/json.h"
#include "gtest/gtest.h"
#include "runtime/host/process.h"
#include "runtime/host/run.h"
#include "tests/e2e_util.h"
#include "tests/test_images.h"

namespace berth {
namespace {

namespace fs = std::filesystem;
using core::Json;

// A slow CI machine boots a TCG guest in well under this; it only bounds a broken run.
constexpr absl::Duration kDeadline = absl::Minutes(3);

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

using e2e::ImagesDir;

// The example model server's images (examples/build-images.py: a container rootfs and a VM disk
// with Python, PyTorch and a model trained when they are built), built once per test binary.
// Empty, with the reason in `why`, when they could not be built (no PyTorch on this host).
const std::string& ModelImagesDir(std::string* why) {
  static std::string reason;
  static const std::string* dir = [] {
    auto torch = runtime::host::RunCommand({"/usr/bin/python3", "-c", "import torch"});
    if (!torch.ok() || !torch->ok()) {
      reason = "needs /usr/bin/python3 with PyTorch (python3-torch: scripts/setup.sh installs it)";
      return new std::string();
    }
    auto r = runtime::host::RunCommand(
        {"/usr/bin/python3", BERTH_MODEL_IMAGES_SCRIPT, BERTH_MODEL_IMAGES_DIR},
        {.timeout = absl::Minutes(15)});
    if (!r.ok() || !r->ok()) {
      reason = "examples/build-images.py failed: " +
               (r.ok() ? r->err : std::string(r.status().message()));
      return new std::string();
    }
    return new std::string(BERTH_MODEL_IMAGES_DIR);
  }();
  if (dir->empty() && why != nullptr) *why = reason;
  return *dir;
}

std::string SkipReason() {
  if (geteuid() != 0) return "runc and overlay mounts need root";
  auto runc = runtime::host::RunCommand({"runc", "--version"});
  if (!runc.ok() || !runc->ok()) return "runc missing";
  auto qemu = runtime::host::RunCommand({"qemu-system-x86_64", "--version"});
  if (!qemu.ok() || !qemu->ok()) return "qemu-system-x86_64 missing";
  if (ImagesDir().empty()) return "test images could not be built";
  return "";
}

// One `berth serve --dev` process on its own data directory.
class DevServer {
 public:
  explicit DevServer(std::string dir) : dir_(std::move(dir)) {}
  ~DevServer() { Kill(SIGTERM); }

  // Starts the server and waits until it serves on the address it wrote to server.json.
  ::testing::AssertionResult Start() {
    auto pid = runtime::host::SpawnDetached(
        {"env", "BERTH_DATA_DIR=" + dir_, BERTH_BINARY, "serve", "--dev", "--listen", "127.0.0.1:0",
         "--service-ports", e2e::ServicePortsOfThisProcess()},
        {.stdout_path = dir_ + "/serve.log", .stderr_path = dir_ + "/serve.log"});
    if (!pid.ok()) return ::testing::AssertionFailure() << pid.status();
    pid_ = pid->pid;
    const absl::Time deadline = absl::Now() + kDeadline;
    while (absl::Now() < deadline) {
      // server.json survives a SIGKILLed server: only this process's own counts.
      Json info = Json::parse(ReadWholeFile(dir_ + "/server.json"), nullptr, false);
      if (info.is_object() && info.value("pid", 0) == pid_) {
        url_ = info.value("url", "");
        std::string token = ReadWholeFile(dir_ + "/admin.token");
        while (!token.empty() && token.back() == '\n') token.pop_back();
        client_ = std::make_unique<api::Client>(
            url_, api::ClientOptions{.token = token, .timeout = absl::Seconds(60)});
        // Ready once the local agent has registered its host.
        auto hosts = client_->ListHosts();
        if (hosts.ok() && !hosts->items.empty()) return ::testing::AssertionSuccess();
      }
      if (!runtime::host::IsRunning({.pid = pid_})) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return ::testing::AssertionFailure()
           << "berth serve did not come up: " << ReadWholeFile(dir_ + "/serve.log");
  }

  void Kill(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    auto reaped = runtime::host::ReapChild(pid_, absl::Minutes(1));
    EXPECT_TRUE(reaped.ok()) << reaped.status();
    pid_ = 0;
  }

  api::Client& client() { return *client_; }

  // Runs the `berth` CLI against this server's data directory.
  runtime::host::RunResult Cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {"env", "BERTH_DATA_DIR=" + dir_, BERTH_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = runtime::host::RunCommand(argv, {.timeout = absl::Minutes(2)});
    runtime::host::RunResult failed;
    failed.exit_code = -1;
    if (!r.ok()) {
      failed.err = std::string(r.status().message());
      return failed;
    }
    if (r->cause != runtime::host::ExitCause::kExited) {
      failed.err = r->err + runtime::host::DescribeExit(*r);
      return failed;
    }
    return *r;
  }

  const std::string& dir() const { return dir_; }

 private:
  const std::string dir_;
  pid_t pid_ = 0;
  std::string url_;
  std::unique_ptr<api::Client> client_;
};

class ComputeE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason = SkipReason();
    if (!reason.empty()) GTEST_SKIP() << reason;
    std::string tmpl = (fs::path(::testing::TempDir()) / "berth-e2e-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    server_ = std::make_unique<DevServer>(dir_);
    // `berth image import` names files in the server's import directory (DATA_DIR/imports).
    const std::string images = ImagesDir();
    const fs::path imports = fs::path(dir_) / "imports";
    fs::create_directories(imports);
    for (const char* file : {"tiny-vm/vmlinuz", "tiny-vm/initrd.img", "busybox-rootfs.tar"}) {
      fs::copy_file(fs::path(images) / file, imports / fs::path(file).filename());
    }
    ASSERT_TRUE(server_->Start());
    // The server attaches its host's catalog once the local agent runs: retry briefly.
    runtime::host::RunResult vm;
    for (int i = 0; i < 100; ++i) {
      vm = server_->Cli(
          {"image", "import", "tiny-vm", "--kernel", "vmlinuz", "--initrd", "initrd.img"});
      if (vm.exit_code == 0) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_EQ(vm.exit_code, 0) << vm.err;
    auto box = server_->Cli({"image", "import", "busybox", "--rootfs", "busybox-rootfs.tar"});
    ASSERT_EQ(box.exit_code, 0) << box.err;
  }

  void TearDown() override {
    if (!server_) return;
    // Deleting stops every task (VMs get a graceful shutdown first).
    auto list = server_->client().ListWorkloads();
    if (list.ok()) {
      for (const auto& w : list->items) {
        auto deleted = server_->client().DeleteWorkload(w.spec.name);
        EXPECT_TRUE(deleted.ok()) << w.spec.name << ": " << deleted.status();
      }
      const absl::Time deadline = absl::Now() + kDeadline;
      while (absl::Now() < deadline) {
        auto now = server_->client().ListWorkloads();
        if (!now.ok() || now->items.empty()) break;
        absl::SleepFor(absl::Milliseconds(100));
      }
    }
    server_->Kill(SIGTERM);
    ReapLeftovers();
    server_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Kills whatever a failed test left running, from the agent's task records.
  void ReapLeftovers() {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_ + "/agent/tasks", ec)) {
      if (e.path().extension() != ".json") continue;
      Json j = Json::parse(ReadWholeFile(e.path()), nullptr, false);
      if (!j.is_object()) continue;
      const Json& s = j["handle"]["state"];
      if (s.contains("pid")) kill(s["pid"].get<pid_t>(), SIGKILL);
      if (s.contains("shim_pid")) kill(s["shim_pid"].get<pid_t>(), SIGKILL);
      if (s.contains("task_dir"))
        umount2((s["task_dir"].get<std::string>() + "/rootfs").c_str(), MNT_DETACH);
      // Best effort: the container may be gone already.
      auto deleted = runtime::host::RunCommand(
          {"runc", "--root", dir_ + "/agent/runc", "delete", "--force", j.value("task_id", "")});
      if (!deleted.ok() || !deleted->ok()) {
        std::cerr << "runc delete " << j.value("task_id", "") << ": "
                  << (deleted.ok() ? deleted->err : deleted.status().ToString()) << "\n";
      }
    }
  }

  // The workload as the server encodes it; null when it cannot be read.
  Json Workload(const std::string& name) {
    api::Raw raw;
    return server_->client().GetWorkload(name, {}, &raw).ok() ? raw.body : Json();
  }

  // Polls the workload until `pred` holds; returns the last view.
  Json WaitFor(const std::string& name, const std::function<bool(const Json&)>& pred) {
    const absl::Time deadline = absl::Now() + kDeadline;
    Json w;
    while (absl::Now() < deadline) {
      w = Workload(name);
      if (w.is_object() && pred(w)) return w;
      absl::SleepFor(absl::Milliseconds(50));
    }
    ADD_FAILURE() << "workload " << name << " never reached the expected state: " << w.dump();
    return w;
  }
  Json WaitForState(const std::string& name, const std::string& state) {
    return WaitFor(name, [&](const Json& w) { return w["status"]["state"] == state; });
  }

  // Polls `read` (a log or the console) until it holds `text`.
  bool WaitForText(const std::function<absl::StatusOr<std::string>()>& read,
                   const std::string& text) {
    const absl::Time deadline = absl::Now() + kDeadline;
    while (absl::Now() < deadline) {
      auto r = read();
      if (r.ok() && r->find(text) != std::string::npos) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  Json Stats(const std::string& name) {
    auto stats = server_->client().Stats(name);
    return stats.ok() ? *stats : Json();
  }
  bool WaitForConsole(const std::string& name, const std::string& text) {
    return WaitForText([&] { return server_->client().Console(name); }, text);
  }
  bool WaitForLogs(const std::string& name, const std::string& text) {
    return WaitForText([&] { return server_->client().Logs(name); }, text);
  }

  int64_t GuestCpuMs(const std::string& name) {
    Json s = Stats(name);
    return s.is_object() ? s.value("guest_cpu_ms", int64_t{-1}) : -1;
  }

  // Polls until the VM's guest CPU time has grown by at least `by` past `from`.
  bool GuestCpuAdvances(const std::string& name, int64_t from, int64_t by) {
    const absl::Time deadline = absl::Now() + kDeadline;
    while (absl::Now() < deadline) {
      if (GuestCpuMs(name) >= from + by) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  // Events of one workload with the given type ("starting", "running", ...).
  int CountEvents(const std::string& name, const std::string& type) {
    auto events = server_->client().ListEvents({.limit = 100000});
    int n = 0;
    if (!events.ok()) return n;
    for (const auto& e : events->items) {
      if (e.object == name && e.type == type) ++n;
    }
    return n;
  }

  std::string WriteSpec(const std::string& file, const std::string& yaml) {
    std::string path = dir_ + "/" + file;
    std::ofstream(path) << yaml;
    return path;
  }

  // Puts `from` (a file or a directory) in the server's image import directory as `name`: hard
  // links where the build tree shares a file system with the test's directory (the import copies
  // them into the catalog anyway), else a copy.
  ::testing::AssertionResult Stage(const std::string& from, const std::string& name) {
    const std::string to = dir_ + "/imports/" + name;
    auto linked = runtime::host::RunCommand({"cp", "-al", from, to});
    if (linked.ok() && linked->ok()) return ::testing::AssertionSuccess();
    std::error_code ec;
    fs::remove_all(to, ec);
    auto copied = runtime::host::RunCommand({"cp", "-a", "--sparse=always", from, to},
                                            {.timeout = absl::Minutes(5)});
    if (copied.ok() && copied->ok()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "cannot copy " << from << ": "
           << (copied.ok() ? copied->err : copied.status().ToString());
  }

  // examples/serve/FILE with its endpoint's host port (`port` in the file) made `to`.
  std::string ExampleSpec(const std::string& file, int port, int to) {
    std::string yaml = ReadWholeFile("examples/serve/" + file);
    const std::string from = "host_port: " + std::to_string(port);
    const size_t at = yaml.find(from);
    EXPECT_NE(at, std::string::npos) << from << " is not in examples/serve/" << file;
    if (at != std::string::npos) yaml.replace(at, from.size(), "host_port: " + std::to_string(to));
    return WriteSpec(file, yaml);
  }

  // The model's predictions for all ones and all zeros from the server on `port`, "" when it
  // does not answer them as the model trained at build time would (y = sum(i/8 * x_i)).
  std::string PredictionError(int port) {
    api::HttpClient http("http://127.0.0.1:" + std::to_string(port),
                         api::HttpClientOptions{.timeout = absl::Seconds(30)});
    auto r = http.Post("/predict", R"({"inputs": [[1,1,1,1,1,1,1,1],[0,0,0,0,0,0,0,0]]})");
    if (!r.ok()) return r.status().ToString();
    Json j = Json::parse(r->body, nullptr, false);
    if (r->status != 200 || !j.is_object() || !j["outputs"].is_array() ||
        j["outputs"].size() != 2 || !j["outputs"][0].is_number()) {
      return std::to_string(r->status) + " " + r->body;
    }
    const double ones = j["outputs"][0].get<double>(), zeros = j["outputs"][1].get<double>();
    if (std::abs(ones - 4.5) > 0.75 || std::abs(zeros) > 0.75) return "wrong answer: " + r->body;
    return "";
  }

  // Polls service `name` until `pred` holds of it or the deadline passes.
  bool WaitForService(const std::string& name, absl::Duration within,
                      const std::function<bool(const core::Service&)>& pred) {
    const absl::Time deadline = absl::Now() + within;
    while (absl::Now() < deadline) {
      auto s = server_->client().GetService(name);
      if (s.ok() && pred(*s)) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }
  std::string ServiceDump(const std::string& name) {
    api::Raw raw;
    return server_->client().GetService(name, &raw).ok() ? raw.body.dump() : std::string();
  }
  void DeleteService(const std::string& name) {
    auto deleted = server_->client().DeleteService(name);
    ASSERT_TRUE(deleted.ok()) << deleted.status();
    const absl::Time deadline = absl::Now() + kDeadline;
    while (absl::Now() < deadline &&
           !absl::IsNotFound(server_->client().GetService(name).status())) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    EXPECT_TRUE(absl::IsNotFound(server_->client().GetService(name).status())) << ServiceDump(name);
  }

  std::string dir_;
  std::unique_ptr<DevServer> server_;
};

// The specs the CLI must accept, word for word.
constexpr char kRequirementSpecs[] = R"(name: tiny
kind: vm
image: tiny-vm
resources: {cpu: 1, memory: 256Mi}
---
name: box
kind: container
image: busybox
command: ["/bin/sh", "-c", "echo up; sleep 3600"]
resources: {cpu: 250m, memory: 32Mi}
)";

TEST_F(ComputeE2eTest, RequiredSpecsRunAndAreReadoptedAfterAgentSigkill) {
  std::string extra = R"(---
name: doomed
kind: container
image: busybox
command: ["/bin/sleep", "3600"]
resources: {cpu: 100m, memory: 16Mi}
)";
  auto created = server_->Cli(
      {"workload", "create", "-f", WriteSpec("specs.yaml", kRequirementSpecs + extra)});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  for (const char* name : {"tiny", "box", "doomed"}) WaitForState(name, "running");

  // The VM's serial console shows the guest's marker, through the API and `berth vm console`.
  ASSERT_TRUE(WaitForConsole("tiny", "BERTH-GUEST-READY"));
  auto console = server_->Cli({"vm", "console", "tiny"});
  EXPECT_EQ(console.exit_code, 0) << console.err;
  EXPECT_NE(console.out.find("BERTH-GUEST-READY"), std::string::npos);
  auto logs = server_->Cli({"workload", "logs", "tiny"});
  EXPECT_NE(logs.out.find("BERTH-GUEST-READY"), std::string::npos);
  // The container's output, and a command run inside it.
  ASSERT_TRUE(WaitForLogs("box", "up\n"));
  auto exec = server_->Cli({"workload", "exec", "box", "--", "/bin/sh", "-c", "echo in-$HOSTNAME"});
  EXPECT_EQ(exec.exit_code, 0) << exec.err;
  EXPECT_EQ(exec.out, "in-box\n");

  Json tiny_before = Stats("tiny"), box_before = Stats("box"), doomed = Stats("doomed");
  ASSERT_GT(tiny_before.value("pid", 0), 0) << tiny_before.dump();
  ASSERT_GT(box_before.value("pid", 0), 0) << box_before.dump();
  ASSERT_GT(doomed.value("pid", 0), 0) << doomed.dump();
  const int tiny_starts = CountEvents("tiny", "starting");
  const int box_starts = CountEvents("box", "starting");
  EXPECT_EQ(tiny_starts, 1);
  EXPECT_EQ(box_starts, 1);

  // The whole dev server dies at once; one container dies while it is down.
  server_->Kill(SIGKILL);
  ASSERT_EQ(kill(doomed["pid"].get<pid_t>(), SIGKILL), 0);
  ASSERT_TRUE(server_->Start());

  Json failed = WaitFor("doomed", [](const Json& w) { return w["status"]["state"] == "failed"; });
  EXPECT_FALSE(failed["status"].value("reason", "").empty());
  for (const char* name : {"tiny", "box"}) {
    Json w = Workload(name);
    EXPECT_EQ(w["status"]["state"], "running") << name << ": " << w.dump();
  }
  Json tiny_after = Stats("tiny"), box_after = Stats("box");
  EXPECT_EQ(tiny_after.value("pid", -1), tiny_before["pid"].get<int>());
  EXPECT_EQ(box_after.value("pid", -1), box_before["pid"].get<int>());
  EXPECT_EQ(tiny_after.value("started_at", Json()), tiny_before["started_at"]);
  EXPECT_EQ(kill(tiny_before["pid"].get<pid_t>(), 0), 0);
  EXPECT_EQ(CountEvents("tiny", "starting"), tiny_starts);
  EXPECT_EQ(CountEvents("box", "starting"), box_starts);
  // The re-adopted tasks are still driven: QMP answers and runc exec reaches the container.
  EXPECT_EQ(tiny_after.value("qmp_status", ""), "running") << tiny_after.dump();
  auto again = server_->Cli({"workload", "exec", "box", "--", "/bin/echo", "still-here"});
  EXPECT_EQ(again.out, "still-here\n") << again.err;
}

TEST_F(ComputeE2eTest, PausedVmBurnsNoGuestCpuThenResumesAndPowersOffGracefully) {
  // The guest spins, so its CPU time grows whenever it runs.
  auto created = server_->Cli({"workload", "create", "-f", WriteSpec("spin.yaml", R"(name: spin
kind: vm
image: tiny-vm
command: ["/bin/sh", "-c", "echo spinning; while :; do :; done"]
resources: {cpu: 1, memory: 128Mi}
)")});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  WaitForState("spin", "running");
  ASSERT_TRUE(WaitForConsole("spin", "BERTH-GUEST-READY"));
  int64_t cpu = GuestCpuMs("spin");
  ASSERT_GE(cpu, 0) << Stats("spin").dump();
  ASSERT_TRUE(GuestCpuAdvances("spin", cpu, 200));

  auto paused = server_->Cli({"workload", "pause", "spin"});
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  WaitForState("spin", "paused");
  EXPECT_EQ(Stats("spin").value("qmp_status", ""), "paused");
  // Over a full second of wall time, a paused guest gains no CPU time (a running one gains
  // nearly all of it, as measured above). The wait is the measurement, not synchronization.
  const int64_t at_pause = GuestCpuMs("spin");
  absl::SleepFor(absl::Seconds(1));
  const int64_t later = GuestCpuMs("spin");
  EXPECT_LE(later - at_pause, 20) << at_pause << " -> " << later;

  auto resumed = server_->Cli({"workload", "resume", "spin"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  WaitForState("spin", "running");
  EXPECT_EQ(Stats("spin").value("qmp_status", ""), "running");
  EXPECT_TRUE(GuestCpuAdvances("spin", later, 200));

  // Graceful stop: the guest sees the power button and powers itself off.
  auto stopped = server_->Cli({"workload", "stop", "spin"});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
  WaitForState("spin", "stopped");
  auto console = server_->client().Console("spin");
  ASSERT_TRUE(console.ok()) << console.status();
  EXPECT_NE(console->find("BERTH-GUEST-POWERDOWN"), std::string::npos);
}

TEST_F(ComputeE2eTest, ContainerExitCodesOomKillsExecAndImages) {
  auto created = server_->Cli({"workload", "create", "-f", WriteSpec("boxes.yaml", R"(name: seven
kind: container
image: busybox
command: ["/bin/sh", "-c", "echo bye; exit 7"]
resources: {cpu: 250m, memory: 32Mi}
---
name: hog
kind: container
image: busybox
command: ["/bin/sh", "-c", "head -c 67108864 /dev/zero | tr '\\0' x > /dev/shm/fill"]
resources: {cpu: 250m, memory: 32Mi}
---
name: shell
kind: container
image: busybox
command: ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
resources: {cpu: 250m, memory: 32Mi}
)")});
  ASSERT_EQ(created.exit_code, 0) << created.err;

  Json seven = WaitForState("seven", "failed");
  EXPECT_EQ(seven["status"].value("exit_code", -1), 7) << seven.dump();
  EXPECT_FALSE(seven["status"].value("oom_killed", true));
  Json hog = WaitForState("hog", "failed");
  EXPECT_TRUE(hog["status"].value("oom_killed", false)) << hog.dump();

  WaitForState("shell", "running");
  auto reply = server_->client().Exec(
      "shell", {.argv = {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}});
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->exit_code, 3);
  EXPECT_EQ(reply->stdout_data, "out\n");
  EXPECT_EQ(reply->stderr_data, "err\n");
  auto cli = server_->Cli({"workload", "exec", "shell", "--", "/bin/sh", "-c", "exit 5"});
  EXPECT_EQ(cli.exit_code, 5);
  // Bad requests name the field; a container has no serial console.
  auto bad = server_->client().Exec("shell", {});
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_NE(bad.status().message().find("argv"), std::string::npos) << bad.status();
  auto no_console = server_->client().Console("shell");
  EXPECT_TRUE(absl::IsFailedPrecondition(no_console.status())) << no_console.status();
  Json stats = Stats("shell");
  EXPECT_EQ(stats.value("state", ""), "running");
  EXPECT_GT(stats.value("rss_bytes", int64_t{0}), 0);

  // The catalog: import from a tar, list, use, remove; an unknown image fails the workload.
  auto tar =
      server_->Cli({"image", "import", "from-tar", "--rootfs", "busybox-rootfs.tar", "--json"});
  ASSERT_EQ(tar.exit_code, 0) << tar.err;
  auto ls = server_->Cli({"image", "ls", "--json"});
  ASSERT_EQ(ls.exit_code, 0);
  std::vector<std::string> names;
  for (const Json& e : Json::parse(ls.out)) names.push_back(e["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"busybox", "from-tar", "tiny-vm"}));
  auto rm = server_->Cli({"image", "rm", "from-tar"});
  EXPECT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_NE(server_->Cli({"image", "rm", "from-tar"}).exit_code, 0);
  auto missing = server_->Cli({"workload", "create", "-f", WriteSpec("missing.yaml", R"(name: ghost
kind: container
image: from-tar
command: ["/bin/true"]
resources: {cpu: 100m, memory: 16Mi}
)")});
  ASSERT_EQ(missing.exit_code, 0) << missing.err;
  Json ghost = WaitForState("ghost", "failed");
  EXPECT_NE(ghost["status"].value("reason", "").find("from-tar"), std::string::npos);
}

// A VM service with warm_start: snapshot. Its first replica boots and "loads a model" (random
// bytes whose checksum it serves, so each booted guest answers differently); once it is ready its
// state is saved, and the replica a scale-up adds resumes from that state: it answers with the
// same checksum without having loaded anything, and sooner than the first was ready.
TEST_F(ComputeE2eTest, AWarmStartedVmReplicaResumesFromTheFirstReplicasSnapshot) {
  const std::string guest =
      "mkdir -p /www && head -c 33554432 /dev/urandom > /model && "
      "sha256sum /model | cut -c1-64 > /www/healthz && exec httpd -f -p 8080 -h /www";
  auto created = server_->Cli({"service", "create", "-f", WriteSpec("warm.yaml", R"(name: web
kind: service
replicas: 1
port: 8080
warm_start: snapshot
health: {http: /healthz, interval: 500ms, timeout: 400ms, failure_threshold: 3, start_period: 3m}
template:
  kind: vm
  image: tiny-vm
  command: ["sh", "-c", ")" + guest + R"("]
  resources: {cpu: 1, memory: 256Mi}
)")});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  const absl::Time t0 = absl::Now();
  auto service = [&] { return server_->client().GetService("web"); };
  auto dump = [&] {
    api::Raw raw;
    return server_->client().GetService("web", &raw).ok() ? raw.body.dump() : std::string();
  };
  const absl::Time deadline = absl::Now() + kDeadline;
  // The first replica is ready, and its state saved.
  absl::Duration cold = absl::InfiniteDuration();
  while (absl::Now() < deadline) {
    auto s = service();
    if (s.ok() && s->status.ready == 1 && cold == absl::InfiniteDuration()) cold = absl::Now() - t0;
    if (s.ok() && s->status.warm && s->status.warm->revision == 1) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  auto s = service();
  ASSERT_TRUE(s.ok() && s->status.warm && s->status.warm->revision == 1) << dump();
  EXPECT_EQ(s->status.warm->key, "web.r1");
  EXPECT_EQ(s->status.warm->replica, "web-0");
  EXPECT_GT(s->status.warm->bytes, 32 << 20)
      << "the state holds the guest's memory, model included";
  EXPECT_TRUE(fs::exists(dir_ + "/agent/warm/web.r1.state")) << dump();
  auto answer = [&](int port) -> std::string {
    api::HttpClient http("http://127.0.0.1:" + std::to_string(port),
                         api::HttpClientOptions{.timeout = absl::Seconds(5)});
    auto r = http.Get("/healthz");
    return r.ok() && r->status == 200 ? r->body : std::string();
  };
  auto shown = server_->Cli({"service", "get", "web"});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("warm:      state web.r1 of replica web-0 on host "), std::string::npos)
      << shown.out;
  ASSERT_EQ(s->status.replicas.size(), 1u);
  const std::string first = answer(s->status.replicas[0].port);
  ASSERT_EQ(first.size(), 65u) << first;  // the model's checksum and a newline

  // A second replica resumes from the state: same guest memory, same checksum.
  const absl::Time t1 = absl::Now();
  ASSERT_TRUE(server_->client().ScaleService("web", 2).ok());
  absl::Duration warm = absl::InfiniteDuration();
  while (absl::Now() < deadline && warm == absl::InfiniteDuration()) {
    auto now = service();
    if (now.ok() && now->status.ready == 2) warm = absl::Now() - t1;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_NE(warm, absl::InfiniteDuration()) << dump();
  auto second = server_->client().GetWorkload("web-1");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->spec.labels.at("berth.warm-state"), "web.r1");
  EXPECT_NE(second->status.reason.find("resumed from warm state web.r1"), std::string::npos)
      << second->status.reason;
  s = service();
  ASSERT_TRUE(s.ok());
  int second_port = 0;
  for (const auto& r : s->status.replicas) {
    if (r.workload == "web-1") second_port = r.port;
  }
  ASSERT_GT(second_port, 0) << dump();
  EXPECT_EQ(answer(second_port), first) << "the resumed replica did not keep the first's model";
  EXPECT_EQ(s->status.warm->restores, 1);
  std::cout << "warm start: first replica ready " << absl::FormatDuration(cold)
            << " after create (boot and model load); the resumed one " << absl::FormatDuration(warm)
            << " after the scale-up" << std::endl;

  auto deleted = server_->client().DeleteService("web");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  while (absl::Now() < deadline && !absl::IsNotFound(service().status())) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(absl::IsNotFound(service().status())) << dump();
}

// The example model server packaged as a container image (examples/build-images.py): the
// service of examples/serve/service-container.yaml gets two ready replicas, each of which, and
// the endpoint in front of them, answers with the model trained when the image was built.
TEST_F(ComputeE2eTest, TheExampleModelServerContainerImageServesPredictions) {
  std::string why;
  const std::string images = ModelImagesDir(&why);
  if (images.empty()) GTEST_SKIP() << why;
  ASSERT_TRUE(Stage(images + "/model-server-rootfs.tar", "model-server-rootfs.tar"));
  auto imported =
      server_->Cli({"image", "import", "model-server", "--rootfs", "model-server-rootfs.tar"});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  const int endpoint = e2e::FreeEndpointPort();
  ASSERT_GT(endpoint, 0);
  const absl::Time t0 = absl::Now();
  auto created = server_->Cli(
      {"service", "create", "-f", ExampleSpec("service-container.yaml", 18091, endpoint)});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  ASSERT_TRUE(WaitForService("model-container", kDeadline, [](const core::Service& s) {
    return s.status.ready == 2 && s.status.endpoint.serving && s.status.endpoint.backends == 2;
  })) << ServiceDump("model-container");
  std::cout << "container model server: two replicas ready "
            << absl::FormatDuration(absl::Now() - t0) << " after create" << std::endl;
  auto s = server_->client().GetService("model-container");
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->status.replicas.size(), 2u);
  for (const auto& r : s->status.replicas) {
    auto w = server_->client().GetWorkload(r.workload);
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(w->spec.kind, core::WorkloadKind::kContainer);
    EXPECT_EQ(w->spec.image, "model-server");
    EXPECT_EQ(PredictionError(r.port), "") << r.workload;
  }
  for (int i = 0; i < 4; ++i) EXPECT_EQ(PredictionError(endpoint), "") << "through the endpoint";
  DeleteService("model-container");
}

// The example model server packaged as a VM image that boots by itself (a disk with extlinux,
// Debian's kernel, Python and PyTorch): the service of examples/serve/service-vm.yaml boots a
// first replica, saves it once the model is loaded, and the replica a scale-up adds resumes from
// that state and answers predictions without booting. Both times are printed.
TEST_F(ComputeE2eTest, TheExampleModelServerVmImageBootsAndAScaledUpReplicaResumesWarm) {
  std::string why;
  const std::string images = ModelImagesDir(&why);
  if (images.empty()) GTEST_SKIP() << why;
  ASSERT_TRUE(Stage(images + "/model-server-vm/disk.raw", "model-server-vm.raw"));
  auto imported =
      server_->Cli({"image", "import", "model-server-vm", "--disk", "model-server-vm.raw"});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  const int endpoint = e2e::FreeEndpointPort();
  ASSERT_GT(endpoint, 0);
  const absl::Time t0 = absl::Now();
  auto created =
      server_->Cli({"service", "create", "-f", ExampleSpec("service-vm.yaml", 18092, endpoint)});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  // A cold boot under TCG of a guest that loads PyTorch takes a while on a loaded machine.
  const absl::Duration within = absl::Minutes(8);
  absl::Duration cold = absl::InfiniteDuration();
  ASSERT_TRUE(WaitForService("model-vm", within, [&](const core::Service& s) {
    if (s.status.ready == 1 && cold == absl::InfiniteDuration()) cold = absl::Now() - t0;
    return s.status.warm && s.status.warm->revision == 1;
  })) << ServiceDump("model-vm");
  EXPECT_EQ(PredictionError(endpoint), "") << "through the endpoint";

  const absl::Time t1 = absl::Now();
  ASSERT_TRUE(server_->client().ScaleService("model-vm", 2).ok());
  ASSERT_TRUE(WaitForService("model-vm", within, [](const core::Service& s) {
    return s.status.ready == 2;
  })) << ServiceDump("model-vm");
  const absl::Duration warm = absl::Now() - t1;
  auto second = server_->client().GetWorkload("model-vm-1");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(second->status.reason.find("resumed from warm state model-vm.r1"), std::string::npos)
      << second->status.reason;
  auto s = server_->client().GetService("model-vm");
  ASSERT_TRUE(s.ok());
  for (const auto& r : s->status.replicas) EXPECT_EQ(PredictionError(r.port), "") << r.workload;
  EXPECT_EQ(s->status.warm->restores, 1);
  std::cout << "VM model server: first replica ready " << absl::FormatDuration(cold)
            << " after create (boot, PyTorch and the model loaded); the resumed one "
            << absl::FormatDuration(warm) << " after the scale-up; state "
            << (s->status.warm->bytes >> 20) << " MiB" << std::endl;
  DeleteService("model-vm");
}

}  // namespace
}  // namespace berth
