#include "runtime/oci/oci_driver.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include "gtest/gtest.h"
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

TEST_F(OciDriverTest, MissingRootfsIsInvalidArgument) {
  TaskConfig c = Box({"/bin/true"});
  c.image_path = dir_ + "/nope";
  EXPECT_EQ(driver_->Start(Config("bad", c)).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace berth::runtime
