#include "core/log.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::core {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/berth_log_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    file_ = dir_ + "/berth.log";
  }
  void TearDown() override {
    ASSERT_TRUE(InitLogging(LogLevel::kInfo).ok());
    std::filesystem::remove_all(dir_);
  }
  std::string ReadLog() {
    std::ifstream in(file_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::string dir_;
  std::string file_;
};

TEST(ParseLogLevelTest, AcceptsTheFiveNamesAndNamesThemOnError) {
  EXPECT_EQ(*ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("info"), LogLevel::kInfo);
  EXPECT_EQ(*ParseLogLevel("warn"), LogLevel::kWarn);
  EXPECT_EQ(*ParseLogLevel("error"), LogLevel::kError);
  EXPECT_EQ(*ParseLogLevel("off"), LogLevel::kOff);
  absl::StatusOr<LogLevel> bad = ParseLogLevel("loud");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("loud"));
  EXPECT_THAT(bad.status().message(), HasSubstr("debug, info, warn, error, off"));
}

TEST_F(LogTest, FileGetsLinesAtOrAboveTheLevelOneLineEach) {
  ASSERT_TRUE(InitLogging(LogLevel::kWarn, file_).ok());
  LogInfo("workload %s: quiet", "a");
  LogWarn("workload %s: loud", "b");
  LogError("workload %s: first\nsecond", "c");
  std::string log = ReadLog();
  EXPECT_THAT(log, Not(HasSubstr("quiet")));
  EXPECT_THAT(log, HasSubstr("warning workload b: loud"));
  EXPECT_THAT(log, HasSubstr("workload c: first\\nsecond"));
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 2) << log;
  struct stat st;
  ASSERT_EQ(stat(file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(LogTest, DebugLevelWritesDebugAndOffWritesNothing) {
  ASSERT_TRUE(InitLogging(LogLevel::kDebug, file_).ok());
  EXPECT_TRUE(LogEnabled(LogLevel::kDebug));
  LogDebug("host %s: probe", "h1");
  ASSERT_TRUE(InitLogging(LogLevel::kOff, file_).ok());
  EXPECT_FALSE(LogEnabled(LogLevel::kError));
  LogError("host %s: never", "h1");
  std::string log = ReadLog();
  EXPECT_THAT(log, HasSubstr("debug   host h1: probe"));
  EXPECT_THAT(log, Not(HasSubstr("never")));
}

TEST_F(LogTest, UnopenableFileIsRefusedAndChangesNothing) {
  ASSERT_TRUE(InitLogging(LogLevel::kError, file_).ok());
  absl::Status s = InitLogging(LogLevel::kDebug, dir_ + "/missing/dir/berth.log");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("missing/dir/berth.log"));
  EXPECT_FALSE(LogEnabled(LogLevel::kDebug));
  LogError("still %s", "here");
  EXPECT_THAT(ReadLog(), HasSubstr("still here"));
}

TEST_F(LogTest, ReportErrorLogsAndCountsByWhereButNotOk) {
  ASSERT_TRUE(InitLogging(LogLevel::kInfo, file_).ok());
  int64_t before = ErrorCounts()["test.where"];
  ReportError("test.where", "disk d1: remove", absl::NotFoundError("no such file"));
  ReportError("test.where", "disk d2: remove", absl::OkStatus());
  EXPECT_FALSE(OkOrReport("test.where", "disk d3: remove", absl::InternalError("boom")));
  EXPECT_TRUE(OkOrReport("test.where", "disk d4: remove", absl::OkStatus()));
  EXPECT_EQ(ErrorCounts()["test.where"], before + 2);
  std::string log = ReadLog();
  EXPECT_THAT(log, HasSubstr("test.where: disk d1: remove: NOT_FOUND: no such file"));
  EXPECT_THAT(log, HasSubstr("test.where: disk d3: remove: INTERNAL: boom"));
  EXPECT_THAT(log, Not(HasSubstr("disk d2")));
  EXPECT_THAT(log, Not(HasSubstr("disk d4")));
}

}  // namespace
}  // namespace berth::core
