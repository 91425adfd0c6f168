#include "runtime/host/file.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::runtime::host {
namespace {

namespace fs = std::filesystem;

class FileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "berth-host-file-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { fs::remove_all(dir_); }
  size_t Entries() const {
    return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), {}));
  }
  std::string dir_;
};

TEST_F(FileTest, AtomicWriteReplacesWithMode) {
  std::string path = dir_ + "/record";
  ASSERT_TRUE(WriteFileAtomically(path, "one").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "two", {.mode = 0600}).ok());
  EXPECT_EQ(*ReadFile(path), "two");
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(Entries(), 1u);  // no temporary file left behind
  fs::remove(path);
  EXPECT_EQ(ReadFile(path).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(FileTest, FailedWriteLeavesOldContent) {
  std::string path = dir_ + "/record";
  ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
  // A file size limit makes the write itself fail part-way (EFBIG instead of SIGXFSZ).
  struct sigaction ignore {
  }, previous{};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGXFSZ, &ignore, &previous);
  struct rlimit saved {};
  getrlimit(RLIMIT_FSIZE, &saved);
  struct rlimit small = saved;
  small.rlim_cur = 16;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  absl::Status s = WriteFileAtomically(path, std::string(4096, 'n'));
  setrlimit(RLIMIT_FSIZE, &saved);
  sigaction(SIGXFSZ, &previous, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), ::testing::HasSubstr(path));
  EXPECT_EQ(*ReadFile(path), "old");
  EXPECT_EQ(Entries(), 1u);
}

TEST_F(FileTest, MissingDirectoryIsAnError) {
  absl::Status s = WriteFileAtomically(dir_ + "/no/such/record", "x");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), ::testing::HasSubstr("no/such/record"));
}

TEST_F(FileTest, UnsyncedWriteStillReplaces) {
  std::string path = dir_ + "/config.json";
  ASSERT_TRUE(WriteFileAtomically(path, "{}", {.sync = false}).ok());
  EXPECT_EQ(*ReadFile(path), "{}");
}

}  // namespace
}  // namespace berth::runtime::host
