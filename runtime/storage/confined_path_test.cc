#include "runtime/storage/confined_path.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::runtime::storage {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Slurp(int fd) {
  std::string out;
  char buf[256];
  for (ssize_t n; (n = pread(fd, buf, sizeof buf, static_cast<off_t>(out.size()))) > 0;) {
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// A temporary tree: top/root is the confined directory, top/outside holds a secret beside it.
class ConfinedDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "berth-confined-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    top_ = tmpl;
    root_ = top_ + "/root";
    fs::create_directories(root_ + "/sub/deeper");
    fs::create_directories(top_ + "/outside");
    Write(top_ + "/outside/secret", "secret");
    Write(root_ + "/file", "inside");
    Write(root_ + "/sub/deeper/nested", "nested");
    auto dir = ConfinedDir::Open(root_ + "/", "the test directory");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(*std::move(dir));
  }
  void TearDown() override {
    dir_.reset();
    fs::remove_all(top_);
  }
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  }
  // Refused with InvalidArgument, with a message that names the root. OpenParent takes any
  // last component but a link, so names refused only for what that is are not checked there.
  void ExpectRefused(const std::string& name, bool by_parent_too = true) {
    auto fd = dir_->OpenFile(name);
    ASSERT_FALSE(fd.ok()) << "opened " << name;
    EXPECT_EQ(fd.status().code(), absl::StatusCode::kInvalidArgument) << fd.status();
    EXPECT_THAT(std::string(fd.status().message()),
                HasSubstr("must be a name inside the test directory " + root_));
    if (by_parent_too) {
      EXPECT_FALSE(dir_->OpenParent(name).ok()) << "parent of " << name;
    }
  }

  std::string top_, root_;
  std::optional<ConfinedDir> dir_;
};

TEST_F(ConfinedDirTest, OpensRelativeNamesAndAbsolutePathsBeneathTheRoot) {
  EXPECT_EQ(dir_->root(), root_);  // the trailing slash is dropped
  auto fd = dir_->OpenFile("file");
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(Slurp(fd->get()), "inside");
  auto nested = dir_->OpenFile(root_ + "/sub/deeper/nested");
  ASSERT_TRUE(nested.ok()) << nested.status();
  EXPECT_EQ(Slurp(nested->get()), "nested");
  EXPECT_EQ(*dir_->Relative(root_ + "/sub/deeper/nested"), "sub/deeper/nested");
  EXPECT_EQ(*dir_->Relative("sub/x"), "sub/x");
  // Non-ASCII UTF-8 is a fine name.
  EXPECT_EQ(*dir_->Relative("b\xc3\xa4"
                            "ckup"),
            "b\xc3\xa4"
            "ckup");
}

TEST_F(ConfinedDirTest, MissingFileIsNotFound) {
  EXPECT_EQ(dir_->OpenFile("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ConfinedDirTest, RefusesDotDotEscapes) {
  for (const std::string& name :
       {std::string("../outside/secret"), std::string("sub/../../outside/secret"),
        std::string("sub/.."), root_ + "/../outside/secret", root_ + "/sub/../file",
        std::string("./file"), std::string(".."), std::string(".")}) {
    SCOPED_TRACE(name);
    ExpectRefused(name);
  }
}

TEST_F(ConfinedDirTest, RefusesAbsolutePathsElsewhere) {
  for (const std::string& name :
       {std::string("/etc/shadow"), std::string("/etc/passwd"), std::string("/proc/self/environ"),
        std::string("/proc/self/fd/0"), top_ + "/outside/secret", root_ + "other/file", root_,
        root_ + "/", std::string("/")}) {
    SCOPED_TRACE(name);
    ExpectRefused(name);
  }
}

TEST_F(ConfinedDirTest, RefusesASymlinkInsideTheRootThatPointsOut) {
  fs::create_symlink(top_ + "/outside/secret", root_ + "/link");
  fs::create_symlink("../outside/secret", root_ + "/rel-link");
  fs::create_symlink("/proc/self/environ", root_ + "/environ");
  fs::create_symlink(top_ + "/outside/not-yet", root_ + "/dangling");
  ExpectRefused("link");
  ExpectRefused("rel-link");
  ExpectRefused("environ");
  ExpectRefused(root_ + "/link");
  ExpectRefused("dangling");  // a create there would make a file outside
  EXPECT_FALSE(fs::exists(top_ + "/outside/not-yet"));
}

TEST_F(ConfinedDirTest, RefusesASymlinkInTheMiddleOfAPath) {
  fs::create_directory_symlink(top_ + "/outside", root_ + "/out");
  fs::create_directory_symlink("/proc/self", root_ + "/proc");
  // Even a link that stays inside: a name must not pass through any link, so a link swapped in
  // during the lookup cannot lead anywhere either.
  fs::create_directory_symlink(root_ + "/sub", root_ + "/alias");
  ExpectRefused("out/secret");
  ExpectRefused("proc/environ");
  ExpectRefused("alias/deeper/nested");
  auto parent = dir_->OpenParent("out/new-file");
  ASSERT_FALSE(parent.ok());
  EXPECT_EQ(parent.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(top_ + "/outside/new-file"));
}

TEST_F(ConfinedDirTest, RefusesEmptyNulControlAndNonUtf8Names) {
  for (const std::string& name :
       {std::string(), std::string("a\0b", 3), std::string("file\0", 5), std::string("a\nb"),
        std::string("\x7f"), std::string("\xff\xfe"), std::string("bad\xc3"),
        std::string("\xc0\xaf"),      // overlong "/"
        std::string("\xed\xa0\x80"),  // a surrogate
        std::string("sub//deeper/nested"), std::string("sub/"), std::string(5000, 'a')}) {
    SCOPED_TRACE(name);
    auto rel = dir_->Relative(name);
    ASSERT_FALSE(rel.ok());
    EXPECT_EQ(rel.status().code(), absl::StatusCode::kInvalidArgument);
    ExpectRefused(name);
  }
  // Messages stay printable: the bytes of a bad name are escaped.
  std::string message(dir_->Relative(std::string("\xff\n", 2)).status().message());
  EXPECT_THAT(message, HasSubstr("\\xff\\n"));
}

TEST_F(ConfinedDirTest, RefusesWhatIsNotARegularFileWithoutBlocking) {
  ASSERT_EQ(mkfifo((root_ + "/fifo").c_str(), 0600), 0);
  // A FIFO without a writer would block a plain open for reading.
  ExpectRefused("fifo", false);
  ExpectRefused("sub", false);
}

TEST_F(ConfinedDirTest, OpenParentGivesTheDirectoryAndTheLeaf) {
  auto top = dir_->OpenParent("new.backup");
  ASSERT_TRUE(top.ok()) << top.status();
  EXPECT_EQ(top->leaf, "new.backup");
  EXPECT_EQ(top->path, root_ + "/new.backup");
  auto nested = dir_->OpenParent(root_ + "/sub/deeper/new.backup");
  ASSERT_TRUE(nested.ok()) << nested.status();
  EXPECT_EQ(nested->leaf, "new.backup");
  EXPECT_EQ(nested->path, root_ + "/sub/deeper/new.backup");
  // A file made at the directory descriptor lands beneath the root.
  std::string via_proc = FdPath(nested->dir.get()) + "/made";
  Write(via_proc, "made");
  EXPECT_TRUE(fs::exists(root_ + "/sub/deeper/made"));
  // A missing directory is the client's mistake.
  auto missing = dir_->OpenParent("nodir/new.backup");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("nodir"));
}

TEST_F(ConfinedDirTest, FdPathNamesTheOpenedFileForOtherProcesses) {
  auto fd = dir_->OpenFile("file");
  ASSERT_TRUE(fd.ok());
  const std::string path = FdPath(fd->get());
  EXPECT_THAT(path, HasSubstr("/proc/" + std::to_string(getpid()) + "/fd/"));
  // Renaming the file away does not change what the path reaches.
  fs::rename(root_ + "/file", top_ + "/outside/moved");
  Write(root_ + "/file", "replacement");
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "inside");
}

TEST(ConfinedDirOpenTest, RootMustBeAnAbsoluteExistingDirectory) {
  EXPECT_EQ(ConfinedDir::Open("relative/dir", "d").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ConfinedDir::Open("/nonexistent-berth-dir/x", "d").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace berth::runtime::storage
