#include "runtime/oci/oci_driver.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "runtime/cdi.h"
#include "runtime/compute_driver_contract.h"
#include "runtime/host/executor.h"

namespace berth::runtime {
namespace {

namespace fs = std::filesystem;

// Builds the test images once per process (the script is idempotent and serialized by a lock).
const std::string& BusyboxRootfs() {
  static const std::string* dir = [] {
    std::string images = BERTH_TEST_IMAGES_DIR;
    auto r = host::RunCommand({BERTH_IMAGE_SCRIPT, images}, {.timeout = absl::Minutes(10)});
    if (!r.ok() || !r->ok()) return new std::string();
    return new std::string(images + "/busybox-rootfs");
  }();
  return *dir;
}

std::string OciSkipReason() {
  if (geteuid() != 0) return "runc needs root";
  if (!host::RunOk(host::RealExecutor(), {"runc", "--version"}).ok()) return "runc missing";
  if (BusyboxRootfs().empty()) return "test images could not be built";
  return "";
}

OciDriverOptions TestOptions() {
  return {.runc_root = "/run/berth-test/runc", .cgroup_parent = "/berth-test"};
}

TaskConfig Box(std::vector<std::string> argv) {
  TaskConfig c;
  c.kind = "container";
  c.image_path = BusyboxRootfs();
  c.command = argv[0];
  c.args.assign(argv.begin() + 1, argv.end());
  c.resources.cpu = core::MilliCpu(250);
  c.resources.memory = core::MemoryMiB(32);
  return c;
}

}  // namespace

struct OciTraits {
  std::string SkipReason() { return OciSkipReason(); }
  std::unique_ptr<ComputeDriver> MakeDriver() { return std::make_unique<OciDriver>(TestOptions()); }
  TaskConfig PrintLine(std::string_view line) { return Box({"/bin/echo", std::string(line)}); }
  TaskConfig RunLong() { return Box({"/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"}); }
  TaskConfig ExitWith(int code) { return Box({"/bin/sh", "-c", "exit " + std::to_string(code)}); }
  // PID 1 of a pid namespace ignores signals it has no handler for.
  std::optional<TaskConfig> IgnoreStopSignal() { return Box({"/bin/sleep", "3600"}); }
  std::vector<std::string> EchoArgv(std::string_view text) {
    return {"/bin/echo", std::string(text)};
  }
  void KillBehindDriversBack(const TaskHandle& handle) {
    pid_t pid = handle.state.at("pid").get<pid_t>();
    kill(pid, SIGKILL);
    pid_t shim = handle.state.at("shim_pid").get<pid_t>();
    host::WaitForProcessExit(
        {.pid = shim, .start_ticks = handle.state.at("shim_ticks").get<uint64_t>()},
        absl::Seconds(60));
  }
};

namespace contract {
INSTANTIATE_TYPED_TEST_SUITE_P(Oci, ComputeDriverContractTest, ::testing::Types<OciTraits>);
}  // namespace contract

namespace {

class OciDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason = OciSkipReason();
    if (!reason.empty()) GTEST_SKIP() << reason;
    std::string tmpl = (fs::path(::testing::TempDir()) / "berth-oci-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    driver_ = std::make_unique<OciDriver>(TestOptions());
  }
  void TearDown() override {
    if (driver_) {
      for (const std::string& id : driver_->Tasks()) (void)driver_->Destroy(id, {.force = true});
    }
    driver_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  TaskConfig Config(std::string id, TaskConfig c) {
    c.task_id = id;
    c.workload = id;
    c.task_dir = dir_ + "/" + id;
    return c;
  }

  std::string dir_;
  std::unique_ptr<OciDriver> driver_;
};

TEST_F(OciDriverTest, AllocatingPastTheMemoryLimitIsAnOomKill) {
  // 64 MiB of data in a tmpfs-backed /dev/shm counts against the container's 32 MiB.
  TaskConfig c = Box({"/bin/sh", "-c", "head -c 67108864 /dev/zero | tr '\\0' x > /dev/shm/fill"});
  ASSERT_TRUE(driver_->Start(Config("hog", c)).ok());
  auto exit = driver_->Wait("hog", contract::kContractDeadline);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->oom_killed) << exit->exit_code << " " << exit->signal;
  EXPECT_FALSE(exit->Successful());
}

TEST_F(OciDriverTest, StderrAndLimitsReachTheContainer) {
  TaskConfig c = Box({"/bin/sh", "-c",
                      "echo oops >&2; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
                      "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us"});
  ASSERT_TRUE(driver_->Start(Config("limits", c)).ok());
  auto exit = driver_->Wait("limits", contract::kContractDeadline);
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(contract::ReadWholeFile(dir_ + "/limits/stderr.log"), "oops\n");
  EXPECT_EQ(contract::ReadWholeFile(dir_ + "/limits/stdout.log"), "33554432\n25000\n");
}

TEST_F(OciDriverTest, WritesStayOutOfTheImage) {
  TaskConfig c = Box({"/bin/sh", "-c", "echo mine > /etc/written-by-task"});
  ASSERT_TRUE(driver_->Start(Config("writer", c)).ok());
  ASSERT_TRUE(driver_->Wait("writer", contract::kContractDeadline).ok());
  EXPECT_FALSE(fs::exists(BusyboxRootfs() + "/etc/written-by-task"));
  EXPECT_TRUE(fs::exists(dir_ + "/writer/upper/etc/written-by-task"));
}

// A fake device tree: two character devices made with mknod in the test's directory stand for
// two GPUs, a CDI spec points at them, and a container given the first sees exactly that node,
// its env and its driver file, while the device cgroup refuses the second even when the
// container makes a node for it itself. kmsg (1:11) opens for writing without privileges;
// loop-control (10:237) opens without capabilities too, and runc does not allow it by default.
// `true`, not `:`, opens them: a failed redirection ends the shell at a special built-in.
TEST_F(OciDriverTest, CdiDevicesReachTheContainerAndNothingElseDoes) {
  const std::string tree = dir_ + "/devtree";
  fs::create_directories(tree + "/lib");
  ASSERT_EQ(mknod((tree + "/fakegpu0").c_str(), S_IFCHR | 0666, makedev(1, 11)), 0);
  ASSERT_EQ(mknod((tree + "/fakegpu1").c_str(), S_IFCHR | 0666, makedev(10, 237)), 0);
  { std::ofstream(tree + "/lib/libfakecuda.so") << "fake driver library\n"; }
  auto spec = DecodeCdiSpec(nlohmann::json::parse(R"({
    "cdiVersion": "0.6.0", "kind": "example.com/gpu",
    "containerEdits": {
      "env": ["FAKE_DRIVER=loaded"],
      "mounts": [{"hostPath": ")" + tree + R"(/lib/libfakecuda.so",
                  "containerPath": "/usr/lib/libfakecuda.so", "options": ["ro", "bind"]}]
    },
    "devices": [
      {"name": "gpu0", "containerEdits": {"env": ["FAKE_GPU=0"],
        "deviceNodes": [{"path": "/dev/fakegpu0", "hostPath": ")" +
                                                  tree + R"(/fakegpu0"}]}},
      {"name": "gpu1", "containerEdits": {"env": ["FAKE_GPU=1"],
        "deviceNodes": [{"path": "/dev/fakegpu1", "hostPath": ")" +
                                                  tree + R"(/fakegpu1"}]}}
    ]})"),
                            "test");
  ASSERT_TRUE(spec.ok()) << spec.status();
  CdiRegistry registry;
  registry.Add(*spec);
  auto edits = registry.Resolve({"example.com/gpu=gpu0"});
  ASSERT_TRUE(edits.ok()) << edits.status();

  TaskConfig c = Box({"/bin/sh", "-c",
                      "ls /dev | grep fakegpu; echo gpu=$FAKE_GPU driver=$FAKE_DRIVER "
                      "cuda=$CUDA_VISIBLE_DEVICES; cat /usr/lib/libfakecuda.so; "
                      "true > /dev/fakegpu0 && echo own-node-opens; "
                      "mknod /tmp/other c 10 237 && echo made-other; "
                      "true > /tmp/other || echo other-node-refused"});
  c.gpus = {{.index = 0, .milli = 1000, .device_id = "GPU-fake-0"}};
  c.gpu_device_ids = {"GPU-fake-0"};
  c.device_edits = *edits;
  ASSERT_TRUE(driver_->Start(Config("cdi", c)).ok());
  auto exit = driver_->Wait("cdi", contract::kContractDeadline);
  ASSERT_TRUE(exit.ok()) << exit.status();
  const std::string out = contract::ReadWholeFile(dir_ + "/cdi/stdout.log");
  const std::string err = contract::ReadWholeFile(dir_ + "/cdi/stderr.log");
  EXPECT_EQ(out,
            "fakegpu0\n"
            "gpu=0 driver=loaded cuda=GPU-fake-0\n"
            "fake driver library\n"
            "own-node-opens\n"
            "made-other\n"
            "other-node-refused\n")
      << err;
  EXPECT_NE(err.find("Operation not permitted"), std::string::npos) << err;
}

TEST_F(OciDriverTest, ACdiNodeWithoutItsHostFileFailsTheStartAndLeavesNothing) {
  TaskConfig c = Box({"/bin/true"});
  c.device_edits.device_nodes = {{.path = "/dev/fakegpu9", .host_path = dir_ + "/no-such-node"}};
  auto started = driver_->Start(Config("nodev", c));
  EXPECT_EQ(started.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(started.status().message().find("no-such-node"), std::string::npos) << started.status();
  EXPECT_TRUE(driver_->Tasks().empty());
}

TEST_F(OciDriverTest, MissingRootfsIsInvalidArgument) {
  TaskConfig c = Box({"/bin/true"});
  c.image_path = dir_ + "/nope";
  EXPECT_EQ(driver_->Start(Config("bad", c)).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace berth::runtime
