#include "runtime/mps.h"

#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/host/process.h"

namespace berth::runtime {
namespace {

namespace fs = std::filesystem;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class MpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "berth-mps-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    mps_ = std::make_unique<MpsDaemons>(MpsOptions{.control_binary = BERTH_FAKE_MPS_CONTROL,
                                                   .root_dir = dir_ + "/mps",
                                                   .stop_grace = absl::Seconds(30)});
  }
  void TearDown() override {
    for (const char* holder : {"a", "b"}) EXPECT_TRUE(mps_->Release(holder).ok());
    fs::remove_all(dir_);
  }
  host::ProcessIdentity Daemon(const std::string& gpu) {
    auto j = nlohmann::json::parse(Read(mps_->GpuDir(gpu) + "/daemon.json"), nullptr, false);
    if (!j.is_object()) return {};
    return {.pid = j.value("pid", 0), .start_ticks = j.value("start", uint64_t{0})};
  }
  // The daemon writes its log once it runs; poll for it.
  std::string ControlLog(const std::string& gpu) {
    const std::string path = mps_->GpuDir(gpu) + "/log/control.log";
    for (int i = 0; i < 600 && Read(path).empty(); ++i) absl::SleepFor(absl::Milliseconds(50));
    return Read(path);
  }
  std::string dir_;
  std::unique_ptr<MpsDaemons> mps_;
};

TEST_F(MpsTest, OneDaemonPerSharedGpuUntilItsLastHolderLetsGo) {
  ASSERT_TRUE(mps_->Available().ok());
  auto a = mps_->Acquire("GPU-aaaa", "a");
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = mps_->Acquire("GPU-aaaa", "b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(*a, mps_->GpuDir("GPU-aaaa") + "/pipe");
  EXPECT_EQ(mps_->Running(), std::vector<std::string>{"GPU-aaaa"});
  EXPECT_EQ(ControlLog("GPU-aaaa"),
            "daemon gpu=GPU-aaaa pipe=" + *a + " log=" + mps_->GpuDir("GPU-aaaa") + "/log\n");
  const host::ProcessIdentity daemon = Daemon("GPU-aaaa");
  ASSERT_TRUE(host::IsRunning(daemon));

  ASSERT_TRUE(mps_->Release("a").ok());
  EXPECT_TRUE(host::IsRunning(daemon));  // b still holds the GPU
  ASSERT_TRUE(mps_->Release("b").ok());
  EXPECT_TRUE(host::WaitForProcessExit(daemon, absl::Seconds(60)));
  EXPECT_TRUE(mps_->Running().empty());
  EXPECT_FALSE(fs::exists(mps_->GpuDir("GPU-aaaa")));
  EXPECT_TRUE(mps_->Release("b").ok());  // idempotent
}

TEST_F(MpsTest, ADaemonThatDiedIsStartedAgain) {
  ASSERT_TRUE(mps_->Acquire("GPU-bbbb", "a").ok());
  ASSERT_FALSE(ControlLog("GPU-bbbb").empty());
  const host::ProcessIdentity first = Daemon("GPU-bbbb");
  ASSERT_TRUE(host::SignalProcess(first, SIGKILL).ok());
  ASSERT_TRUE(host::WaitForProcessExit(first, absl::Seconds(60)));
  EXPECT_EQ(mps_->Check(), std::vector<std::string>{"GPU-bbbb"});
  const host::ProcessIdentity second = Daemon("GPU-bbbb");
  EXPECT_NE(second, first);
  EXPECT_TRUE(host::IsRunning(second));
  EXPECT_TRUE(mps_->Check().empty());
}

TEST_F(MpsTest, WithoutTheControlBinaryNothingIsRecorded) {
  MpsDaemons missing({.control_binary = dir_ + "/no-such-mps-control", .root_dir = dir_ + "/m"});
  EXPECT_FALSE(missing.Available().ok());
  auto s = missing.Acquire("GPU-cccc", "a");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("no-such-mps-control"), std::string::npos) << s.status();
  EXPECT_FALSE(fs::exists(missing.GpuDir("GPU-cccc")));
}

}  // namespace
}  // namespace berth::runtime
