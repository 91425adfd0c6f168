// Scheduled snapshots driven by a ManualClock: when they are due, what they are called, how many
// are kept, and how failures and restarts move the schedule. No test waits on real time.
#include "control/snapshot_schedule.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "core/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::control {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Writes a small file per snapshot, or fails while `fail` is set.
class FakeSnapshotter : public state::Snapshotter {
 public:
  absl::StatusOr<state::SnapshotInfo> SaveSnapshot(const std::string& path,
                                                   const state::SnapshotProgress&) override {
    ++calls;
    if (fail) return absl::UnavailableError("store unreachable");
    std::ofstream(path) << "snapshot " << calls;
    return state::SnapshotInfo{.bytes = 10, .revision = calls, .keys = 1};
  }
  int calls = 0;
  bool fail = false;
};

class SnapshotScheduleTest : public ::testing::Test {
 protected:
  SnapshotScheduleTest() {
    const char* base = getenv("TEST_TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/berth-sched-XXXXXX";
    dir_ = mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~SnapshotScheduleTest() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  SnapshotScheduleOptions Options(int keep) {
    return {.dir = dir_ + "/snapshots", .every = absl::Hours(1), .keep = keep, .clock = &clock_};
  }
  std::vector<std::string> Names(const SnapshotSchedule& schedule) {
    std::vector<std::string> names;
    for (const std::string& path : schedule.List()) {
      names.push_back(fs::path(path).filename().string());
    }
    return names;
  }

  std::string dir_;
  core::ManualClock clock_{absl::FromUnixSeconds(1'700'000'000)};  // 2023-11-14T22:13:20Z
  FakeSnapshotter source_;
};

TEST_F(SnapshotScheduleTest, FirstAtOnceThenEveryIntervalByTheClock) {
  SnapshotSchedule schedule(&source_, Options(24));
  fs::create_directories(dir_ + "/snapshots");
  auto first = schedule.RunDue();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ(**first, dir_ + "/snapshots/berth-20231114T221320Z.snapshot");
  EXPECT_TRUE(fs::exists(**first));

  clock_.Advance(absl::Minutes(59));
  auto early = schedule.RunDue();
  ASSERT_TRUE(early.ok());
  EXPECT_FALSE(early->has_value());
  EXPECT_EQ(source_.calls, 1);

  clock_.Advance(absl::Minutes(1));
  auto second = schedule.RunDue();
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(second->has_value());
  EXPECT_THAT(Names(schedule),
              ElementsAre("berth-20231114T221320Z.snapshot", "berth-20231114T231320Z.snapshot"));
}

TEST_F(SnapshotScheduleTest, OnlyWhileActive) {
  bool leads = false;
  SnapshotScheduleOptions options = Options(24);
  options.active = [&leads] { return leads; };
  SnapshotSchedule schedule(&source_, options);
  fs::create_directories(dir_ + "/snapshots");
  auto idle = schedule.RunDue();
  ASSERT_TRUE(idle.ok()) << idle.status();
  EXPECT_FALSE(idle->has_value());
  EXPECT_EQ(source_.calls, 0);
  leads = true;
  auto first = schedule.RunDue();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->has_value());
  EXPECT_EQ(source_.calls, 1);
  leads = false;
  clock_.Advance(absl::Hours(2));
  auto deposed = schedule.RunDue();
  ASSERT_TRUE(deposed.ok());
  EXPECT_FALSE(deposed->has_value());
  EXPECT_EQ(source_.calls, 1);
}

TEST_F(SnapshotScheduleTest, KeepsTheNewestAndDeletesTheOldest) {
  SnapshotSchedule schedule(&source_, Options(24));
  fs::create_directories(dir_ + "/snapshots");
  // Someone else's file in the directory is left alone.
  std::ofstream(dir_ + "/snapshots/notes.txt") << "mine";
  for (int i = 0; i < 30; ++i) {
    auto ran = schedule.RunDue();
    ASSERT_TRUE(ran.ok()) << ran.status();
    ASSERT_TRUE(ran->has_value()) << i;
    clock_.Advance(absl::Hours(1));
  }
  EXPECT_EQ(source_.calls, 30);
  std::vector<std::string> kept = Names(schedule);
  ASSERT_EQ(kept.size(), 24u);
  // The first six (22:13 on the 14th to 03:13 on the 15th) are gone.
  EXPECT_EQ(kept.front(), "berth-20231115T041320Z.snapshot");
  EXPECT_EQ(kept.back(), "berth-20231116T031320Z.snapshot");
  EXPECT_TRUE(fs::exists(dir_ + "/snapshots/notes.txt"));
}

TEST_F(SnapshotScheduleTest, AFailureIsRetriedAfterAMinute) {
  SnapshotSchedule schedule(&source_, Options(3));
  fs::create_directories(dir_ + "/snapshots");
  source_.fail = true;
  auto failed = schedule.RunDue();
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(schedule.List().empty());
  clock_.Advance(absl::Seconds(59));
  EXPECT_FALSE(schedule.RunDue()->has_value());
  EXPECT_EQ(source_.calls, 1);
  source_.fail = false;
  clock_.Advance(absl::Seconds(1));
  auto retried = schedule.RunDue();
  ASSERT_TRUE(retried.ok());
  EXPECT_TRUE(retried->has_value());
}

TEST_F(SnapshotScheduleTest, ARestartKeepsTheCadenceOfTheNewestSnapshot) {
  {
    SnapshotSchedule schedule(&source_, Options(5));
    fs::create_directories(dir_ + "/snapshots");
    ASSERT_TRUE(schedule.RunDue()->has_value());
  }
  // A crash left a temporary file behind.
  const std::string leftover = dir_ + "/snapshots/.berth-20231114T231320Z.snapshot.tmp-1-0";
  std::ofstream(leftover) << "half";
  clock_.Advance(absl::Minutes(30));
  SnapshotSchedule restarted(&source_, Options(5));
  EXPECT_FALSE(restarted.RunDue()->has_value()) << "due 1h after the newest, not at start";
  clock_.Advance(absl::Minutes(30));
  ASSERT_TRUE(restarted.RunDue()->has_value());
  EXPECT_EQ(restarted.List().size(), 2u);
  EXPECT_FALSE(fs::exists(leftover));
}

TEST_F(SnapshotScheduleTest, StartMakesTheDirectoryAndTheThreadTakesTheFirst) {
  SnapshotScheduleOptions options = Options(2);
  options.poll = absl::Milliseconds(10);
  SnapshotSchedule schedule(&source_, options);
  ASSERT_TRUE(schedule.Start().ok());
  // The thread polls the (paused) clock; the first snapshot is due at once.
  for (int i = 0; i < 6000 && schedule.List().empty(); ++i) absl::SleepFor(absl::Milliseconds(10));
  schedule.Stop();
  EXPECT_EQ(schedule.List().size(), 1u);
  EXPECT_EQ(source_.calls, 1);
}

}  // namespace
}  // namespace berth::control
