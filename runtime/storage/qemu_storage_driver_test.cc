// Behaviour only the real driver has: crash safety of journaled operations, real filesystems,
// real block allocation.
#include "runtime/storage/qemu_storage_driver.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "core/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/host/executor.h"
#include "runtime/storage/storage_test_env.h"

namespace berth::runtime::storage {
namespace {

namespace fs = std::filesystem;
using core::Cat;
using host::RunCommand;

// Runs a host tool; its standard output, or an error quoting it.
absl::StatusOr<std::string> RunTool(const std::vector<std::string>& argv) {
  return host::RunOk(host::RealExecutor(), argv);
}

class QemuStorageDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeScratchDir();
    ASSERT_FALSE(dir_.empty());
    pool_ = PoolSpec{.name = "p", .directory = dir_ + "/pool", .capacity_mib = 4096};
  }
  void TearDown() override { fs::remove_all(dir_); }

  size_t CountFiles(const std::string& sub) {
    size_t n = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(pool_.directory + "/" + sub, ec)) {
      (void)e;
      ++n;
    }
    return n;
  }

  std::string dir_;
  PoolSpec pool_;
};

TEST_F(QemuStorageDriverTest, Ext4IsMadeWithoutMounting) {
  QemuStorageDriver impl;
  StorageDriver& driver = impl;
  ASSERT_TRUE(driver.EnsurePool(pool_).ok());
  for (VolumeFormat f : {VolumeFormat::kRaw, VolumeFormat::kQcow2}) {
    std::string name = Cat("v-", FormatName(f));
    CreateVolumeSpec spec{
        .pool = "p", .name = name, .format = f, .size_mib = 64, .filesystem = Filesystem::kExt4};
    auto v = driver.CreateVolume(spec);
    ASSERT_TRUE(v.ok()) << v.status();
    std::string raw = v->path;
    if (f == VolumeFormat::kQcow2) {
      raw = dir_ + "/check.raw";
      ASSERT_TRUE((RunTool({"qemu-img", "convert", "-O", "raw", v->path, raw}).ok()));
    }
    auto fsck = RunCommand({"e2fsck", "-f", "-n", raw});
    ASSERT_TRUE(fsck.ok());
    EXPECT_EQ(fsck->exit_code, 0) << fsck->out << fsck->err;
    auto sb = RunCommand({"dumpe2fs", "-h", raw});
    ASSERT_TRUE(sb.ok());
    EXPECT_EQ(sb->exit_code, 0);
    // 64 MiB in 1 KiB or 4 KiB blocks.
    EXPECT_TRUE(sb->out.find("Block count:              65536") != std::string::npos ||
                sb->out.find("Block count:              16384") != std::string::npos)
        << sb->out;
  }
}

TEST_F(QemuStorageDriverTest, XfsIsMadeWithoutMounting) {
  QemuStorageDriver impl;
  StorageDriver& driver = impl;
  ASSERT_TRUE(driver.EnsurePool(pool_).ok());
  CreateVolumeSpec spec{.pool = "p",
                        .name = "x",
                        .format = VolumeFormat::kRaw,
                        .size_mib = 300,
                        .filesystem = Filesystem::kXfs};
  auto v = driver.CreateVolume(spec);
  ASSERT_TRUE(v.ok()) << v.status();
  std::ifstream in(v->path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  EXPECT_EQ(std::string(magic, 4), "XFSB");
  spec.name = "small";
  spec.size_mib = 100;
  EXPECT_THAT(driver.CreateVolume(spec).status().message(),
              ::testing::HasSubstr("volume \"small\": size_mib must be >= 300 for filesystem xfs"));
}

TEST_F(QemuStorageDriverTest, AllocationGrowsWithWrites) {
  QemuStorageDriver impl;
  StorageDriver& driver = impl;
  ASSERT_TRUE(driver.EnsurePool(pool_).ok());
  auto v = driver.CreateVolume({.pool = "p", .name = "a", .size_mib = 256});
  ASSERT_TRUE(v.ok()) << v.status();
  int64_t before = driver.GetPool("p")->allocated_bytes;
  ASSERT_TRUE((RunTool({"qemu-io", "-f", "qcow2", "-c", "write -q 0 4M", v->path}).ok()));
  int64_t after = driver.GetPool("p")->allocated_bytes;
  EXPECT_GE(after - before, 4 * 1024 * 1024);
  EXPECT_EQ(driver.GetPool("p")->provisioned_mib, 256);
}

// Names in `dir` that look like a temporary file of a backup.
std::vector<std::string> TempLeftovers(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (e.path().filename().string().find(".tmp-") != std::string::npos) {
      out.push_back(e.path().string());
    }
  }
  return out;
}

TEST_F(QemuStorageDriverTest, BackupRefusesExistingFilesDirectoriesAndLinksAndLeavesNothing) {
  QemuStorageDriver impl;
  StorageDriver& driver = impl;
  ASSERT_TRUE(driver.EnsurePool(pool_).ok());
  ASSERT_TRUE((driver.CreateVolume({.pool = "p", .name = "v", .size_mib = 8}).ok()));
  fs::create_directories(dir_ + "/out/a-directory");
  fs::create_directories(dir_ + "/elsewhere");
  std::ofstream(dir_ + "/out/taken") << "keep me";
  std::ofstream(dir_ + "/out/sum-taken.sha256") << "keep me too";
  std::ofstream(dir_ + "/elsewhere/target") << "outside";
  fs::create_symlink(dir_ + "/elsewhere/target", dir_ + "/out/link");
  fs::create_symlink(dir_ + "/elsewhere/new", dir_ + "/out/dangling");
  for (const std::string leaf : {"taken", "sum-taken", "a-directory", "link", "dangling"}) {
    SCOPED_TRACE(leaf);
    auto b = driver.ExportBackup("p", "v", {.destination = dir_ + "/out/" + leaf});
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), absl::StatusCode::kAlreadyExists) << b.status();
  }
  auto missing_dir = driver.ExportBackup("p", "v", {.destination = dir_ + "/nodir/x.backup"});
  EXPECT_EQ(missing_dir.status().code(), absl::StatusCode::kInvalidArgument);
  // Nothing changed, nothing was followed, nothing was left behind.
  std::ifstream taken(dir_ + "/out/taken");
  std::string text;
  std::getline(taken, text);
  EXPECT_EQ(text, "keep me");
  EXPECT_FALSE(fs::exists(dir_ + "/out/sum-taken"));
  EXPECT_FALSE(fs::exists(dir_ + "/elsewhere/new"));
  EXPECT_EQ(fs::file_size(dir_ + "/elsewhere/target"), 7u);
  EXPECT_TRUE(fs::is_empty(dir_ + "/out/a-directory"));
  EXPECT_THAT(TempLeftovers(dir_), ::testing::IsEmpty());
  EXPECT_TRUE(fs::is_empty(pool_.directory + "/.tmp"));
}

TEST_F(QemuStorageDriverTest, FailedBackupLeavesNoTemporaryFile) {
  QemuStorageDriver::Options opts;
  opts.fault_hook = [](std::string_view step) -> absl::Status {
    if (step == "converted") return absl::InternalError("disk full");
    return absl::OkStatus();
  };
  QemuStorageDriver impl(opts);
  StorageDriver& driver = impl;
  ASSERT_TRUE(driver.EnsurePool(pool_).ok());
  ASSERT_TRUE((driver.CreateVolume({.pool = "p", .name = "v", .size_mib = 8}).ok()));
  fs::create_directories(dir_ + "/out");
  auto b = driver.ExportBackup("p", "v", {.destination = dir_ + "/out/v.backup"});
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(fs::is_empty(dir_ + "/out"));
}

TEST_F(QemuStorageDriverTest, BackupLabelsGoIntoTheSidecarAfterTheChecksum) {
  QemuStorageDriver impl;
  StorageDriver& driver = impl;
  ASSERT_TRUE(driver.EnsurePool(pool_).ok());
  ASSERT_TRUE(
      (driver.CreateVolume({.pool = "p", .name = "v", .format = VolumeFormat::kRaw, .size_mib = 8})
           .ok()));
  // A label that would break the sidecar's lines is refused before anything is written.
  auto bad = driver.ExportBackup(
      "p", "v", {.destination = dir_ + "/bad.backup", .labels = {{"two words", "x"}}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
  EXPECT_FALSE(fs::exists(dir_ + "/bad.backup"));
  auto b = driver.ExportBackup("p", "v",
                               {.destination = dir_ + "/v.backup", .labels = {{"format", "raw"}}});
  ASSERT_TRUE(b.ok()) << b.status();
  std::ifstream in(dir_ + "/v.backup.sha256");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, b->sha256 + "\nformat raw\n");
  BackupSidecar parsed = ParseBackupSidecar(text);
  EXPECT_EQ(parsed.sha256, b->sha256);
  EXPECT_EQ(parsed.labels, (std::map<std::string, std::string>{{"format", "raw"}}));
  // The checksum still checks the restore, labels or not.
  auto r = driver.RestoreBackup({.pool = "p", .name = "r", .source = dir_ + "/v.backup"});
  EXPECT_TRUE(r.ok()) << r.status();
}

TEST_F(QemuStorageDriverTest, RestoreTakesOnlySelfContainedRegularFiles) {
  QemuStorageDriver impl;
  StorageDriver& driver = impl;
  ASSERT_TRUE(driver.EnsurePool(pool_).ok());
  ASSERT_TRUE((driver.CreateVolume({.pool = "p", .name = "v", .size_mib = 8}).ok()));
  ASSERT_TRUE((driver.ExportBackup("p", "v", {.destination = dir_ + "/good.backup"}).ok()));
  fs::create_symlink(dir_ + "/good.backup", dir_ + "/link.backup");
  ASSERT_EQ(mkfifo((dir_ + "/fifo.backup").c_str(), 0600), 0);
  // A qcow2 image whose backing file is a host file the restore would read.
  std::ofstream(dir_ + "/secret") << "secret";
  ASSERT_TRUE((RunTool({"qemu-img", "create", "-q", "-f", "qcow2", "-b", dir_ + "/secret", "-F",
                        "raw", dir_ + "/chained.qcow2", "1M"})
                   .ok()));
  for (const std::string leaf : {"link.backup", "fifo.backup", "chained.qcow2"}) {
    SCOPED_TRACE(leaf);
    auto r = driver.RestoreBackup({.pool = "p", .name = "r", .source = dir_ + "/" + leaf});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_THAT(r.status().message(), ::testing::HasSubstr("volume \"r\": source"));
  }
  EXPECT_EQ(driver.GetPool("p")->volume_count, 1);
  auto ok = driver.RestoreBackup({.pool = "p", .name = "r", .source = dir_ + "/good.backup"});
  EXPECT_TRUE(ok.ok()) << ok.status();
}

// Two hosts mount one pool directory, each under its own instance: host b's recovery at its
// start leaves alone what host a has in flight, and a's own recovery rolls it back.
TEST_F(QemuStorageDriverTest, SharedPoolHostsRecoverOnlyTheirOwnOperations) {
  PoolSpec a_spec = pool_;
  a_spec.instance = "host-a";
  PoolSpec b_spec = pool_;
  b_spec.instance = "host-b";
  {
    QemuStorageDriver::Options crash;
    crash.fault_hook = [](std::string_view step) -> absl::Status {
      return step == "built" ? absl::AbortedError("crash") : absl::OkStatus();
    };
    QemuStorageDriver impl(crash);
    StorageDriver& a = impl;
    ASSERT_TRUE(a.EnsurePool(a_spec).ok());
    auto made = a.CreateVolume({.pool = "p", .name = "v", .size_mib = 8});
    ASSERT_EQ(made.status().code(), absl::StatusCode::kAborted) << made.status();
  }
  EXPECT_EQ(CountFiles(".journal/host-a"), 1u);
  EXPECT_GE(CountFiles(".tmp/host-a"), 1u);
  QemuStorageDriver b_impl;
  StorageDriver& b = b_impl;
  ASSERT_TRUE(b.EnsurePool(b_spec).ok());
  ASSERT_TRUE(b.Recover().ok());
  EXPECT_EQ(CountFiles(".journal/host-a"), 1u) << "b rolled back a's operation";
  EXPECT_GE(CountFiles(".tmp/host-a"), 1u);
  // Both see the pool's volumes: b makes one, a sees it.
  ASSERT_TRUE((b.CreateVolume({.pool = "p", .name = "w", .size_mib = 8}).ok()));
  QemuStorageDriver a_impl;
  StorageDriver& a = a_impl;
  ASSERT_TRUE(a.EnsurePool(a_spec).ok());
  ASSERT_TRUE(a.Recover().ok());
  EXPECT_EQ(CountFiles(".journal/host-a"), 0u);
  EXPECT_EQ(CountFiles(".tmp/host-a"), 0u);
  EXPECT_TRUE(a.GetVolume("p", "w").ok());
  EXPECT_EQ(a.GetVolume("p", "v").status().code(), absl::StatusCode::kNotFound);
  // An instance names directories: it must be a host's name (an FQDN is one).
  PoolSpec bad = pool_;
  for (const char* name : {"../x", "..", "a/b"}) {
    bad.instance = name;
    EXPECT_EQ(QemuStorageDriver().EnsurePool(bad).code(), absl::StatusCode::kInvalidArgument)
        << name;
  }
  PoolSpec fqdn = pool_;
  fqdn.instance = "gpu-07.example.com";
  EXPECT_TRUE(QemuStorageDriver().EnsurePool(fqdn).ok());
}

// Each case is one journaled operation; the test crashes it at every step in turn.
struct CrashCase {
  std::string name;
  std::function<absl::Status(StorageDriver&, const std::string& dir)> run;
  // The volume (or backup file) the operation makes.
  std::string volume;
  std::string backup;
  friend void PrintTo(const CrashCase& c, std::ostream* os) { *os << c.name; }
};

class CrashTest : public QemuStorageDriverTest, public ::testing::WithParamInterface<CrashCase> {};

TEST_P(CrashTest, RecoverLeavesNoOrphanAtAnyStep) {
  const CrashCase& c = GetParam();
  // Seed: a source volume with a snapshot and a backup of it, made without faults.
  {
    QemuStorageDriver impl;
    StorageDriver& driver = impl;
    ASSERT_TRUE(driver.EnsurePool(pool_).ok());
    ASSERT_TRUE((driver.CreateVolume({.pool = "p", .name = "src", .size_mib = 32}).ok()));
    ASSERT_TRUE(driver.CreateSnapshot("p", "src", "s1").ok());
    ASSERT_TRUE((driver.ExportBackup("p", "src", {.destination = dir_ + "/seed.backup"}).ok()));
  }
  bool finished = false;
  int crashed_runs = 0;
  for (int crash_at = 1; !finished && crash_at < 20; ++crash_at) {
    int steps = 0;
    std::string crashed_step;
    QemuStorageDriver::Options opts;
    opts.fault_hook = [&](std::string_view step) -> absl::Status {
      if (++steps == crash_at) {
        crashed_step = std::string(step);
        return absl::AbortedError(Cat("crash at ", step));
      }
      return absl::OkStatus();
    };
    {
      QemuStorageDriver driver(opts);
      ASSERT_TRUE(driver.EnsurePool(pool_).ok());
      absl::Status s = c.run(driver, dir_);
      if (s.ok()) {
        finished = true;
      } else {
        ASSERT_EQ(s.code(), absl::StatusCode::kAborted) << s;
        ++crashed_runs;
      }
    }
    // A new agent starts.
    QemuStorageDriver impl;
    StorageDriver& driver = impl;
    ASSERT_TRUE(driver.EnsurePool(pool_).ok());
    ASSERT_TRUE(driver.Recover().ok());
    EXPECT_EQ(CountFiles(".journal"), 0u) << "crash at " << crashed_step;
    EXPECT_EQ(CountFiles(".tmp"), 0u) << "crash at " << crashed_step;
    if (!c.volume.empty()) {
      auto v = driver.GetVolume("p", c.volume);
      if (v.ok()) {
        auto check = RunCommand({"qemu-img", "check", "-q", v->path});
        EXPECT_EQ(check->exit_code, 0) << "crash at " << crashed_step << ": " << check->err;
        EXPECT_EQ(v->size_mib, 32);
        ASSERT_TRUE(driver.DeleteVolume("p", c.volume).ok());  // for the next round
      } else {
        EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound);
      }
      EXPECT_EQ(driver.GetPool("p")->volume_count, 1) << "crash at " << crashed_step;
    }
    if (!c.backup.empty()) {
      std::string path = dir_ + "/" + c.backup;
      bool has_file = fs::exists(path);
      bool has_sum = fs::exists(path + ".sha256");
      EXPECT_EQ(has_file, has_sum) << "crash at " << crashed_step;
      size_t leftovers = 0;
      for (const auto& e : fs::directory_iterator(dir_)) {
        if (e.path().filename().string().find(".tmp-") != std::string::npos) {
          ADD_FAILURE() << "leftover " << e.path();
          ++leftovers;
        }
      }
      EXPECT_EQ(leftovers, 0u) << "crash at " << crashed_step;
      if (has_file) {
        RestoreSpec restore{.pool = "p", .name = "check", .source = path};
        auto restored = driver.RestoreBackup(restore);
        EXPECT_TRUE(restored.ok()) << restored.status();
        ASSERT_TRUE(driver.DeleteVolume("p", "check").ok());
        fs::remove(path);
        fs::remove(path + ".sha256");
      }
    }
  }
  EXPECT_TRUE(finished);
  EXPECT_GE(crashed_runs, 3);
}

INSTANTIATE_TEST_SUITE_P(
    Operations, CrashTest,
    ::testing::Values(
        CrashCase{
            "create_ext4_qcow2",
            [](StorageDriver& d, const std::string&) {
              return d
                  .CreateVolume(
                      {.pool = "p", .name = "v", .size_mib = 32, .filesystem = Filesystem::kExt4})
                  .status();
            },
            "v", ""},
        CrashCase{"clone_from_snapshot",
                  [](StorageDriver& d, const std::string&) {
                    return d
                        .CloneFromSnapshot(
                            {.pool = "p", .source_volume = "src", .snapshot = "s1", .name = "v"})
                        .status();
                  },
                  "v", ""},
        CrashCase{"restore",
                  [](StorageDriver& d, const std::string& dir) {
                    return d
                        .RestoreBackup({.pool = "p", .name = "v", .source = dir + "/seed.backup"})
                        .status();
                  },
                  "v", ""},
        CrashCase{
            "backup",
            [](StorageDriver& d, const std::string& dir) {
              return d.ExportBackup("p", "src", {.destination = dir + "/out.backup"}).status();
            },
            "", "out.backup"}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace berth::runtime::storage
