#include "runtime/image/catalog.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/host/file.h"
#include "runtime/host/run.h"

namespace berth::runtime {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("berth-catalog-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "src");
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string Write(const std::string& rel, const std::string& data) {
    fs::path p = root_ / "src" / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << data;
    return p.string();
  }
  std::string CatalogDir() const { return (root_ / "catalog").string(); }

  fs::path root_;
};

TEST_F(CatalogTest, ImportsKernelPairAndListsIt) {
  auto catalog = ImageCatalog::Open(CatalogDir());
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  auto e = (*catalog)->Import("tiny-vm", {.kernel = Write("vmlinuz", "kernel-bytes"),
                                          .initrd = Write("initrd", "initrd-bytes"),
                                          .cmdline = "console=ttyS0"});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->kind, ImageKind::kKernel);
  EXPECT_EQ(*host::ReadFile(e->kernel), "kernel-bytes");
  EXPECT_EQ(*host::ReadFile(e->initrd), "initrd-bytes");
  EXPECT_EQ(e->size_bytes, 24);

  // A second catalog over the same directory sees it (the index is on disk).
  auto again = ImageCatalog::Open(CatalogDir());
  ASSERT_TRUE(again.ok());
  auto list = (*again)->List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].name, "tiny-vm");
  EXPECT_EQ(list[0].kernel, e->kernel);
  EXPECT_EQ(list[0].cmdline, "console=ttyS0");
  EXPECT_EQ(list[0].imported_at, e->imported_at);
}

// A file source given as a link (/boot/vmlinuz, or /proc/PID/fd/N for a file opened beforehand)
// is imported as the file's bytes, never as a link that would dangle or point outside.
TEST_F(CatalogTest, ImportsTheFileALinkNames) {
  auto catalog = ImageCatalog::Open(CatalogDir());
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  const std::string real = Write("vmlinuz-6.1", "kernel-bytes");
  const fs::path link = root_ / "src" / "vmlinuz";
  fs::create_symlink(real, link);
  auto e = (*catalog)->Import("linked", {.kernel = link.string()});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_FALSE(fs::is_symlink(e->kernel));
  EXPECT_EQ(*host::ReadFile(e->kernel), "kernel-bytes");

  FILE* opened = fopen(real.c_str(), "r");
  ASSERT_NE(opened, nullptr);
  auto by_fd = (*catalog)->Import("by-fd", {.kernel = "/proc/" + std::to_string(getpid()) + "/fd/" +
                                                      std::to_string(fileno(opened))});
  fclose(opened);
  ASSERT_TRUE(by_fd.ok()) << by_fd.status();
  EXPECT_FALSE(fs::is_symlink(by_fd->kernel));
  EXPECT_EQ(*host::ReadFile(by_fd->kernel), "kernel-bytes");
}

TEST_F(CatalogTest, RefusesDuplicateUnlessReplace) {
  auto catalog = *ImageCatalog::Open(CatalogDir());
  ASSERT_TRUE(catalog->Import("k", {.kernel = Write("a", "one")}).ok());
  auto dup = catalog->Import("k", {.kernel = Write("b", "two")});
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(*host::ReadFile(catalog->Get("k")->kernel), "one");
  auto replaced = catalog->Import("k", {.kernel = Write("b", "two"), .replace = true});
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  EXPECT_EQ(*host::ReadFile(replaced->kernel), "two");
  EXPECT_EQ(catalog->List().size(), 1u);
}

TEST_F(CatalogTest, ValidatesOptions) {
  auto catalog = *ImageCatalog::Open(CatalogDir());
  auto none = catalog->Import("x", {});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr("image \"x\": source"));
  auto two = catalog->Import("x", {.kernel = Write("k", "k"), .disk = Write("d", "d")});
  EXPECT_EQ(two.status().code(), absl::StatusCode::kInvalidArgument);
  auto missing = catalog->Import("x", {.kernel = "/nonexistent/vmlinuz"});
  EXPECT_THAT(missing.status().message(), HasSubstr("kernel"));
  auto bad_name = catalog->Import("Bad_Name", {.kernel = Write("k", "k")});
  EXPECT_EQ(bad_name.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(catalog->List().empty());
}

TEST_F(CatalogTest, ImportsQcow2AndRejectsOtherFormats) {
  auto catalog = *ImageCatalog::Open(CatalogDir());
  std::string qcow = (root_ / "src" / "d.qcow2").string();
  auto r = host::RunCommand({"qemu-img", "create", "-q", "-f", "qcow2", qcow, "64M"});
  ASSERT_TRUE(r.ok() && r->ok()) << host::ResultStatus({"qemu-img"}, r);
  auto e = catalog->Import("disk1", {.disk = qcow});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->disk_format, "qcow2");
  EXPECT_EQ(e->size_bytes, 64 << 20);
  EXPECT_TRUE(fs::exists(e->disk));

  std::string vmdk = (root_ / "src" / "d.vmdk").string();
  r = host::RunCommand({"qemu-img", "create", "-q", "-f", "vmdk", vmdk, "1M"});
  ASSERT_TRUE(r.ok() && r->ok());
  auto bad = catalog->Import("disk2", {.disk = vmdk});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("qcow2 or raw"));
  EXPECT_FALSE(catalog->Get("disk2").ok());
}

TEST_F(CatalogTest, ImportsRootfsFromDirectoryAndTar) {
  auto catalog = *ImageCatalog::Open(CatalogDir());
  Write("tree/bin/hello", "#!/bin/sh\necho hi\n");
  Write("tree/etc/hostname", "box\n");
  auto dir = catalog->Import("from-dir", {.rootfs = (root_ / "src" / "tree").string()});
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(*host::ReadFile(dir->rootfs + "/etc/hostname"), "box\n");

  std::string tar = (root_ / "src" / "tree.tar").string();
  auto r = host::RunCommand({"tar", "-cf", tar, "-C", (root_ / "src" / "tree").string(), "."});
  ASSERT_TRUE(r.ok() && r->ok());
  auto from_tar = catalog->Import("from-tar", {.rootfs = tar});
  ASSERT_TRUE(from_tar.ok()) << from_tar.status();
  EXPECT_EQ(*host::ReadFile(from_tar->rootfs + "/bin/hello"), "#!/bin/sh\necho hi\n");

  auto not_tar = catalog->Import("bad", {.rootfs = Write("junk", "not a tar")});
  EXPECT_EQ(not_tar.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(CatalogDir() + "/images/bad"));
}

TEST_F(CatalogTest, RemoveDeletesEntryAndFiles) {
  auto catalog = *ImageCatalog::Open(CatalogDir());
  auto e = catalog->Import("k", {.kernel = Write("a", "one")});
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(catalog->Remove("k").ok());
  EXPECT_FALSE(fs::exists(e->dir));
  EXPECT_EQ(catalog->Get("k").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(catalog->Remove("k").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(catalog->Remove("k", {.missing_ok = true}).ok());
  auto reopened = *ImageCatalog::Open(CatalogDir());
  EXPECT_TRUE(reopened->List().empty());
}

TEST_F(CatalogTest, MalformedIndexIsDataLoss) {
  fs::create_directories(CatalogDir());
  std::ofstream(CatalogDir() + "/index.json") << "{not json";
  auto catalog = ImageCatalog::Open(CatalogDir());
  EXPECT_EQ(catalog.status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace berth::runtime
