#include "runtime/qemu/qemu_driver.h"

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/compute_driver_contract.h"
#include "runtime/host/executor.h"

namespace berth::runtime {
namespace {

namespace fs = std::filesystem;
using contract::PollUntil;
using contract::ReadWholeFile;

// Builds the test images once per process (the script is idempotent and serialized by a lock).
const std::string& TinyVmDir() {
  static const std::string* dir = [] {
    std::string images = BERTH_TEST_IMAGES_DIR;
    auto r = host::RunCommand({BERTH_IMAGE_SCRIPT, images}, {.timeout = absl::Minutes(10)});
    if (!r.ok() || !r->ok()) return new std::string();
    return new std::string(images + "/tiny-vm");
  }();
  return *dir;
}

std::string QemuSkipReason() {
  if (!host::RunOk(host::RealExecutor(), {"qemu-system-x86_64", "--version"}).ok()) {
    return "qemu-system-x86_64 missing";
  }
  if (TinyVmDir().empty()) return "test images could not be built (kernel unreadable?)";
  return "";
}

TaskConfig TinyVm() {
  TaskConfig c;
  c.kind = "vm";
  c.image_path = TinyVmDir();
  c.resources.cpu = core::MilliCpu(1000);
  c.resources.memory = core::MemoryMiB(128);
  return c;
}

}  // namespace

struct QemuTraits {
  std::string SkipReason() { return QemuSkipReason(); }
  std::unique_ptr<ComputeDriver> MakeDriver() { return std::make_unique<QemuDriver>(); }
  TaskConfig PrintLine(std::string_view line) {
    TaskConfig c = TinyVm();
    c.command = "echo";
    c.args = {std::string(line)};
    return c;
  }
  TaskConfig RunLong() { return TinyVm(); }
  TaskConfig ExitWith(int code) {
    TaskConfig c = TinyVm();
    c.command = "sh";
    c.args = {"-c", "exit " + std::to_string(code)};
    return c;
  }
  std::optional<TaskConfig> IgnoreStopSignal() {
    TaskConfig c = TinyVm();
    c.env["BERTH_VM_CMDLINE"] = "berth.ignore_powerdown=1";
    return c;
  }
  std::vector<std::string> EchoArgv(std::string_view text) { return {"echo", std::string(text)}; }
  void KillBehindDriversBack(const TaskHandle& handle) {
    pid_t pid = handle.state.at("pid").get<pid_t>();
    uint64_t ticks = handle.state.at("start_ticks").get<uint64_t>();
    kill(pid, SIGKILL);
    host::WaitForProcessExit({.pid = pid, .start_ticks = ticks}, absl::Seconds(60));
  }
};

}  // namespace berth::runtime

namespace berth::runtime::contract {
INSTANTIATE_TYPED_TEST_SUITE_P(Qemu, ComputeDriverContractTest, ::testing::Types<QemuTraits>);
}  // namespace berth::runtime::contract

namespace berth::runtime {
namespace {

class QemuDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason = QemuSkipReason();
    if (!reason.empty()) GTEST_SKIP() << reason;
    std::string tmpl = (fs::path(::testing::TempDir()) / "berth-qemu-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (driver_) {
      for (const std::string& id : driver_->Tasks()) {
        (void)driver_->Destroy(id, {.force = true});
      }
    }
    driver_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  TaskConfig Config(std::string id, TaskConfig c = TinyVm()) {
    c.task_id = id;
    c.workload = id;
    c.task_dir = dir_ + "/" + id;
    return c;
  }
  bool ConsoleShows(const std::string& id, const std::string& text) {
    return PollUntil([&] {
      return ReadWholeFile(dir_ + "/" + id + "/stdout.log").find(text) != std::string::npos;
    });
  }

  std::string dir_;
  std::unique_ptr<QemuDriver> driver_ = std::make_unique<QemuDriver>();
};

TEST(VmDiskNodeTest, AnyDiskNameGivesAValidNodeNameThatClashesWithNoOtherId) {
  const std::vector<std::string> names = {"data",  "image",  "tap0",  "net0",
                                          "2nd",   "a-b",    "qmp",   std::string(63, 'z'),
                                          "extra", "extra2", "extra3"};
  std::set<std::string> seen = {"image", "tap0", "net0", "qmp", "serial0"};
  for (const std::string& name : names) {
    for (bool hotplug : {false, true}) {
      const std::string node = VmDiskNode(name, hotplug);
      // QEMU: a node name starts with a letter and has at most 31 characters.
      EXPECT_TRUE(std::isalpha(static_cast<unsigned char>(node[0]))) << node;
      EXPECT_LE((node + "-file").size(), 31u) << name;
      EXPECT_TRUE(seen.insert(node).second) << name << " clashes as " << node;
    }
  }
  // Stable across releases: a VM re-adopted after an upgrade is found under the same names.
  EXPECT_EQ(VmDiskNode("data", true), "hp855b556730a34a05");
  EXPECT_EQ(VmDiskNode("data", false), "vd855b556730a34a05");
}

TEST_F(QemuDriverTest, BootsPausesResumesAndPowersOff) {
  auto h = driver_->Start(Config("tiny"));
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(ConsoleShows("tiny", "BERTH-GUEST-READY"));
  auto path = driver_->ConsolePath("tiny");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(*path, dir_ + "/tiny/stdout.log");

  ASSERT_TRUE(driver_->Pause("tiny").ok());
  auto paused = driver_->GetVmStats("tiny");
  ASSERT_TRUE(paused.ok()) << paused.status();
  EXPECT_EQ(paused->qmp_status, "paused");
  // While paused the vCPU thread burns no CPU: its time stays put across many samples.
  absl::Duration first = paused->guest_cpu;
  for (int i = 0; i < 20; ++i) {
    auto again = driver_->GetVmStats("tiny");
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->guest_cpu, first);
  }
  ASSERT_TRUE(driver_->Resume("tiny").ok());
  auto running = driver_->GetVmStats("tiny");
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->qmp_status, "running");

  ASSERT_TRUE(driver_->Stop("tiny", {.grace = absl::Seconds(120)}).ok());
  ASSERT_TRUE(ConsoleShows("tiny", "BERTH-GUEST-POWERDOWN"));
  auto exit = driver_->Wait("tiny", absl::ZeroDuration());
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->signal, 0) << exit->reason;  // graceful, not killed
  EXPECT_EQ(driver_->Inspect("tiny")->details["shutdown_reason"], "guest-shutdown");
}

TEST_F(QemuDriverTest, GuestPanicIsReportedAsFailure) {
  TaskConfig c = TinyVm();
  c.command = "sh";
  c.args = {"-c", "echo c > /proc/sysrq-trigger"};
  ASSERT_TRUE(driver_->Start(Config("panic", c)).ok());
  auto exit = driver_->Wait("panic", contract::kContractDeadline);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_FALSE(exit->Successful());
  EXPECT_EQ(exit->reason, "guest kernel panicked");
}

TEST_F(QemuDriverTest, SnapshotAndRestoreContinuesTheGuest) {
  TaskConfig c = TinyVm();
  c.command = "sh";
  c.args = {"-c", "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done"};
  ASSERT_TRUE(driver_->Start(Config("snap", c)).ok());
  ASSERT_TRUE(ConsoleShows("snap", "tick-3"));
  const std::string snapshot = dir_ + "/snap.state";
  ASSERT_TRUE(driver_->Snapshot("snap", {.path = snapshot}).ok());
  EXPECT_GT(fs::file_size(snapshot), 0u);
  ASSERT_TRUE(driver_->Destroy("snap", {.force = true}).ok());

  auto restored = driver_->Restore(Config("snap2", c), {.snapshot_path = snapshot});
  ASSERT_TRUE(restored.ok()) << restored.status();
  // The restored guest did not boot again: it goes on counting, with no boot marker printed.
  ASSERT_TRUE(ConsoleShows("snap2", "tick-"));
  EXPECT_EQ(ReadWholeFile(dir_ + "/snap2/stdout.log").find("BERTH-GUEST-READY"), std::string::npos);
  EXPECT_EQ(driver_->Inspect("snap2")->state, TaskState::kRunning);
}

TEST_F(QemuDriverTest, ADiskPluggedInAndPulledOutCanBePluggedInAgainAtOnce) {
  const std::string image = dir_ + "/extra.raw";
  const std::string first = dir_ + "/first.raw";
  for (const std::string& path : {image, first}) {
    auto made = host::RunCommand({"qemu-img", "create", "-q", "-f", "raw", path, "16M"});
    ASSERT_TRUE(made.ok() && made->ok()) << path;
  }
  TaskConfig c = TinyVm();
  // A disk from the start (vda), so the plugged one is vdb.
  c.disks = {{.name = "first", .path = first, .format = "raw"}};
  c.command = "sh";
  c.args = {"-c", "while true; do ls /sys/block | tr '\\n' , ; echo; sleep 0.3; done"};
  ASSERT_TRUE(driver_->Start(Config("hot", c)).ok());
  ASSERT_TRUE(ConsoleShows("hot", "BERTH-GUEST-READY"));
  const TaskDisk disk{.name = "extra", .path = image, .format = "raw"};
  // Each pull-out frees the disk's block nodes, so the same names are free for the next plug
  // straight away, however long QEMU took to let the device go.
  const std::string console = dir_ + "/hot/stdout.log";
  auto shows_after = [&](size_t from, const std::string& text) {
    return PollUntil([&] { return ReadWholeFile(console).find(text, from) != std::string::npos; });
  };
  for (int round = 0; round < 3; ++round) {
    const size_t before = ReadWholeFile(console).size();
    ASSERT_TRUE(driver_->AttachDisk("hot", disk).ok()) << "round " << round;
    // While it is plugged in, a second plug of the same disk is refused and the first stays.
    absl::Status twice = driver_->AttachDisk("hot", disk);
    EXPECT_FALSE(twice.ok());
    EXPECT_NE(twice.message().find("extra"), std::string::npos) << twice;
    ASSERT_TRUE(shows_after(before, "\nvda,vdb,\n")) << "round " << round;
    const size_t plugged = ReadWholeFile(console).size();
    absl::Status pulled = driver_->DetachDisk("hot", "extra");
    ASSERT_TRUE(pulled.ok()) << "round " << round << ": " << pulled;
    ASSERT_TRUE(shows_after(plugged, "\nvda,\n")) << "round " << round;
    EXPECT_EQ(driver_->DetachDisk("hot", "extra").code(), absl::StatusCode::kNotFound);
  }
}

// A disk image boots through an overlay of each VM's own: two VMs run from one image at once
// (QEMU would refuse the second its write lock on the image itself), and the image is unchanged.
TEST_F(QemuDriverTest, TwoVmsBootFromOneDiskImageThroughOverlaysOfTheirOwn) {
  const std::string image = dir_ + "/boot.raw";
  auto made = host::RunCommand({"qemu-img", "create", "-q", "-f", "raw", image, "16M"});
  ASSERT_TRUE(made.ok() && made->ok());
  const auto before = fs::last_write_time(image);
  TaskConfig c = TinyVm();
  c.image_path = image;
  for (const char* name : {"one", "two"}) {
    auto started = driver_->Start(Config(name, c));
    ASSERT_TRUE(started.ok()) << name << ": " << started.status();
    auto info = host::RunCommand(
        {"qemu-img", "info", "-U", "--output=json", dir_ + "/" + name + "/image-overlay.qcow2"});
    ASSERT_TRUE(info.ok() && info->ok()) << name;
    auto j = nlohmann::json::parse(info->out, nullptr, false);
    EXPECT_EQ(j.value("format", ""), "qcow2") << info->out;
    EXPECT_EQ(j.value("backing-filename", ""), image) << info->out;
  }
  EXPECT_EQ(driver_->Inspect("one")->state, TaskState::kRunning);
  EXPECT_EQ(driver_->Inspect("two")->state, TaskState::kRunning);
  EXPECT_EQ(fs::last_write_time(image), before);
}

TEST_F(QemuDriverTest, BadImageIsInvalidArgument) {
  TaskConfig c = TinyVm();
  c.image_path = dir_ + "/missing";
  auto h = driver_->Start(Config("bad", c));
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(driver_->Tasks().empty());
}

}  // namespace
}  // namespace berth::runtime
