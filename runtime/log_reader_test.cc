#include "runtime/log_reader.h"

#include <filesystem>
#include <fstream>
#include <thread>

#include "gtest/gtest.h"

namespace berth::runtime {
namespace {

class LogReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::path(::testing::TempDir()) / "berth-logs-XXXXXX");
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/stdout.log";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Append(const std::string& s) { std::ofstream(path_, std::ios::app) << s; }
  void Replace(const std::string& s) { std::ofstream(path_, std::ios::trunc) << s; }

  std::string dir_;
  std::string path_;
};

TEST_F(LogReaderTest, ReadsFromOffsetInChunks) {
  Append("hello world\n");
  absl::StatusOr<LogChunk> c = ReadLogChunk(path_, 6, 3);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->data, "wor");
  EXPECT_EQ(c->next_offset, 9);
  EXPECT_FALSE(c->restarted);
  c = ReadLogChunk(path_, c->next_offset, 100);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->data, "ld\n");
  EXPECT_EQ(c->next_offset, 12);
  c = ReadLogChunk(path_, 12, 100);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->data, "");
}

TEST_F(LogReaderTest, ShrunkFileRestartsFromZero) {
  Append("a long first version\n");
  Replace("new\n");
  absl::StatusOr<LogChunk> c = ReadLogChunk(path_, 21, 100);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->restarted);
  EXPECT_EQ(c->data, "new\n");
}

TEST_F(LogReaderTest, ErrorsNameTheProblem) {
  EXPECT_EQ(ReadLogChunk(path_, 0, 10).status().code(), absl::StatusCode::kNotFound);
  Append("x");
  EXPECT_EQ(ReadLogChunk(path_, -1, 10).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadLogChunk(path_, 0, -1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TailOffset(path_ + ".missing", 3).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(LogReaderTest, TailOffsetFindsLastLines) {
  Append("one\ntwo\nthree\n");
  EXPECT_EQ(*TailOffset(path_, 1), 8);
  EXPECT_EQ(*TailOffset(path_, 2), 4);
  EXPECT_EQ(*TailOffset(path_, 3), 0);
  EXPECT_EQ(*TailOffset(path_, 10), 0);
  EXPECT_EQ(*TailOffset(path_, 0), 14);
  Append("partial");
  EXPECT_EQ(*TailOffset(path_, 1), 14);
  EXPECT_EQ(*TailOffset(path_, 2), 8);
}

TEST_F(LogReaderTest, TailOffsetAcrossBufferBoundaries) {
  std::string line(5000, 'x');
  for (int i = 0; i < 5; ++i) Append(line + "\n");
  EXPECT_EQ(*TailOffset(path_, 2), 3 * 5001);
}

TEST_F(LogReaderTest, FollowerSeesAppendsAndWaitsForMissingFile) {
  LogFollower f(path_, 0, LogFollowerOptions{.poll_interval = absl::Milliseconds(5)});
  absl::StatusOr<std::string> got = f.Next(absl::Milliseconds(20));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "");
  Append("first\n");
  got = f.Next(absl::Seconds(60));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "first\n");
  std::thread writer([&] { Append("second\n"); });
  std::string all;
  while (all.size() < 7) {
    got = f.Next(absl::Seconds(60));
    ASSERT_TRUE(got.ok());
    ASSERT_FALSE(got->empty()) << "timed out waiting for the append";
    all += *got;
  }
  writer.join();
  EXPECT_EQ(all, "second\n");
  EXPECT_EQ(f.offset(), 13);
}

TEST_F(LogReaderTest, CancelEndsABlockedNext) {
  Append("");
  LogFollower f(path_, 0);
  std::thread canceller([&] { f.Cancel(); });
  absl::StatusOr<std::string> got = f.Next(absl::Seconds(600));
  canceller.join();
  // Either the cancel landed before the first check or it woke the wait.
  EXPECT_EQ(got.status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace berth::runtime
