#include "runtime/fake_driver.h"

#include <memory>

#include "gtest/gtest.h"
#include "runtime/compute_driver_contract.h"

namespace berth::runtime {
namespace {

struct FakeTraits {
  std::shared_ptr<FakeHost> host = std::make_shared<FakeHost>();

  std::string SkipReason() { return ""; }
  std::unique_ptr<ComputeDriver> MakeDriver() { return std::make_unique<FakeDriver>(host); }
  TaskConfig PrintLine(std::string_view line) {
    return TaskConfig{.command = "print", .args = {std::string(line)}};
  }
  TaskConfig RunLong() { return TaskConfig{.command = "sleep"}; }
  TaskConfig ExitWith(int code) {
    return TaskConfig{.command = "exit", .args = {std::to_string(code)}};
  }
  std::optional<TaskConfig> IgnoreStopSignal() { return TaskConfig{.command = "ignore-term"}; }
  std::vector<std::string> EchoArgv(std::string_view text) { return {"echo", std::string(text)}; }
  void KillBehindDriversBack(const TaskHandle& handle) {
    ASSERT_TRUE(host->KillTask(handle.task_id, 9).ok());
  }
};

}  // namespace

namespace contract {
INSTANTIATE_TYPED_TEST_SUITE_P(Fake, ComputeDriverContractTest, ::testing::Types<FakeTraits>);
}  // namespace contract

namespace {

class FakeDriverTest : public ::testing::Test {
 protected:
  TaskConfig Config(std::string id, std::string command = "sleep") {
    return TaskConfig{.task_id = std::move(id), .workload = "w", .command = std::move(command)};
  }
  core::ManualClock clock_;
  std::shared_ptr<FakeHost> host_ = std::make_shared<FakeHost>(&clock_);
  std::unique_ptr<FakeDriver> driver_ = std::make_unique<FakeDriver>(host_);
};

TEST_F(FakeDriverTest, ExitTaskReportsCodeAndTime) {
  ASSERT_TRUE(driver_->Start(Config("a")).ok());
  clock_.Advance(absl::Seconds(7));
  ASSERT_TRUE(host_->ExitTask("a", 42).ok());
  absl::StatusOr<ExitResult> exit = driver_->Wait("a", absl::ZeroDuration());
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->exit_code, 42);
  EXPECT_EQ(exit->finished_at - driver_->Inspect("a")->started_at, absl::Seconds(7));
  EXPECT_EQ(host_->ExitTask("a", 1).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(FakeDriverTest, OomKillIsReportedAndPublished) {
  contract::EventRecorder recorder;
  contract::RecordingSubscription subscription(driver_.get(), &recorder);
  ASSERT_TRUE(driver_->Start(Config("a")).ok());
  ASSERT_TRUE(host_->OomKill("a").ok());
  absl::StatusOr<ExitResult> exit = driver_->Wait("a", absl::ZeroDuration());
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->oom_killed);
  EXPECT_EQ(exit->signal, 9);
  std::optional<TaskEvent> event = recorder.WaitFor("a", TaskEventType::kOomKilled);
  ASSERT_TRUE(event.has_value());
  EXPECT_TRUE(event->exit->oom_killed);
}

TEST_F(FakeDriverTest, FailNextStartStartsNothing) {
  host_->FailNextStart(absl::UnavailableError("no capacity"));
  EXPECT_EQ(driver_->Start(Config("a")).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(driver_->Inspect("a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(host_->starts(), 0);
  EXPECT_TRUE(driver_->Start(Config("a")).ok());
  EXPECT_EQ(host_->starts(), 1);
}

TEST_F(FakeDriverTest, RecoverDoesNotRestart) {
  absl::StatusOr<TaskHandle> handle = driver_->Start(Config("a"));
  ASSERT_TRUE(handle.ok());
  driver_.reset();
  EXPECT_TRUE(host_->IsRunning("a"));
  driver_ = std::make_unique<FakeDriver>(host_);
  ASSERT_TRUE(driver_->Recover(*handle).ok());
  EXPECT_EQ(host_->starts(), 1);
  // The recovered task still reports a later exit.
  ASSERT_TRUE(host_->ExitTask("a", 5).ok());
  EXPECT_EQ(driver_->Wait("a", absl::ZeroDuration())->exit_code, 5);
}

TEST_F(FakeDriverTest, RecoverOfVanishedTaskReportsItLost) {
  absl::StatusOr<TaskHandle> handle = driver_->Start(Config("a"));
  ASSERT_TRUE(handle.ok());
  driver_.reset();
  host_->Vanish("a");
  driver_ = std::make_unique<FakeDriver>(host_);
  ASSERT_TRUE(driver_->Recover(*handle).ok());
  absl::StatusOr<ExitResult> exit = driver_->Wait("a", absl::ZeroDuration());
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->exit_code, -1);
  EXPECT_FALSE(exit->reason.empty());
  EXPECT_TRUE(driver_->Destroy("a", DestroyOptions{}).ok());
}

TEST_F(FakeDriverTest, StartValidatesConfig) {
  EXPECT_EQ(driver_->Start(Config("a", "")).status().code(), absl::StatusCode::kInvalidArgument);
  TaskConfig bad = Config("b", "exit");
  bad.args = {"x"};
  EXPECT_EQ(driver_->Start(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(FakeDriverTest, HandleJsonRejectsMissingFields) {
  EXPECT_EQ(TaskHandleFromJson(nlohmann::json::array()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TaskHandleFromJson({{"driver", "fake"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<TaskHandle> h =
      TaskHandleFromJson({{"driver", "fake"}, {"task_id", "a"}, {"state", {{"pid", 3}}}});
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->state["pid"], 3);
}

}  // namespace
}  // namespace berth::runtime
