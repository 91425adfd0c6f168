// One contract suite run against every StorageDriver: the qemu-img driver and the fake.
#include <functional>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/storage/storage_test_env.h"

namespace berth::runtime::storage {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

struct EnvFactory {
  std::string name;
  std::function<std::unique_ptr<StorageTestEnv>()> make;
  friend void PrintTo(const EnvFactory& f, std::ostream* os) { *os << f.name; }
};

class StorageContractTest : public ::testing::TestWithParam<EnvFactory> {
 protected:
  void SetUp() override {
    env_ = GetParam().make();
    ASSERT_FALSE(env_->dir().empty());
    PoolSpec pool;
    pool.name = "p1";
    pool.directory = env_->dir() + "/pool";
    pool.capacity_mib = 1024;
    pool.overcommit_permille = 1500;
    ASSERT_TRUE(driver().EnsurePool(pool).ok());
    ASSERT_TRUE(driver().Recover().ok());
  }
  StorageDriver& driver() { return env_->driver(); }
  VolumeInfo Create(const std::string& name, int64_t size_mib,
                    VolumeFormat format = VolumeFormat::kQcow2) {
    CreateVolumeSpec spec;
    spec.pool = "p1";
    spec.name = name;
    spec.size_mib = size_mib;
    spec.format = format;
    auto v = driver().CreateVolume(spec);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : VolumeInfo{};
  }
  int64_t VolumeCount() {
    auto p = driver().GetPool("p1");
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? p->volume_count : -1;
  }

  std::unique_ptr<StorageTestEnv> env_;
};

TEST_P(StorageContractTest, PoolAccountsThinProvisioning) {
  VolumeInfo v = Create("data", 512);
  EXPECT_EQ(v.size_mib, 512);
  EXPECT_EQ(v.format, VolumeFormat::kQcow2);
  auto pool = driver().GetPool("p1");
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ(pool->volume_count, 1);
  EXPECT_EQ(pool->provisioned_mib, 512);
  EXPECT_EQ(pool->limit_mib, 1536);
  EXPECT_EQ(pool->available_mib, 1024);
  // Thin: a blank volume holds far less than its virtual size.
  EXPECT_LT(pool->allocated_bytes, 16 * 1024 * 1024);
}

TEST_P(StorageContractTest, OvercommitLimitRefusesCreate) {
  Create("a", 1024);
  CreateVolumeSpec spec{.pool = "p1", .name = "b", .size_mib = 600};
  auto v = driver().CreateVolume(spec);
  ASSERT_EQ(v.status().code(), absl::StatusCode::kResourceExhausted) << v.status();
  EXPECT_THAT(v.status().message(), HasSubstr("volume \"b\": size_mib"));
  EXPECT_EQ(VolumeCount(), 1);
  spec.size_mib = 512;  // exactly up to the limit is fine
  EXPECT_TRUE(driver().CreateVolume(spec).ok());
}

TEST_P(StorageContractTest, BadInputNamesTheFieldAndChangesNothing) {
  CreateVolumeSpec spec{.pool = "p1", .name = "Bad_Name", .size_mib = 8};
  EXPECT_EQ(driver().CreateVolume(spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec.name = "ok";
  spec.size_mib = 0;
  auto s = driver().CreateVolume(spec).status();
  EXPECT_THAT(s.message(), HasSubstr("volume \"ok\": size_mib must be > 0, got 0"));
  spec.size_mib = 8;
  spec.format = VolumeFormat::kRaw;
  spec.backing_image = "/nonexistent/base.qcow2";
  s = driver().CreateVolume(spec).status();
  EXPECT_THAT(s.message(), HasSubstr("backing_image needs format qcow2"));
  spec.format = VolumeFormat::kQcow2;
  spec.filesystem = Filesystem::kExt4;
  s = driver().CreateVolume(spec).status();
  EXPECT_THAT(s.message(), HasSubstr("filesystem must be none"));
  spec.filesystem = Filesystem::kNone;
  s = driver().CreateVolume(spec).status();
  EXPECT_THAT(s.message(), HasSubstr("backing_image cannot be read"));
  spec.pool = "nope";
  spec.backing_image.clear();
  EXPECT_EQ(driver().CreateVolume(spec).status().code(), absl::StatusCode::kNotFound);
  PoolSpec bad_pool{.name = "p2", .directory = "relative", .capacity_mib = 1};
  EXPECT_THAT(driver().EnsurePool(bad_pool).message(), HasSubstr("pool \"p2\": directory"));
  bad_pool.directory = env_->dir() + "/p2";
  bad_pool.overcommit_permille = 500;
  EXPECT_THAT(driver().EnsurePool(bad_pool).message(), HasSubstr("overcommit_permille"));
  EXPECT_EQ(VolumeCount(), 0);
}

TEST_P(StorageContractTest, DuplicateNameRefused) {
  Create("dup", 8);
  CreateVolumeSpec spec{.pool = "p1", .name = "dup", .size_mib = 8};
  EXPECT_EQ(driver().CreateVolume(spec).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(VolumeCount(), 1);
}

TEST_P(StorageContractTest, CreatesFormattedVolumes) {
  for (VolumeFormat f : {VolumeFormat::kQcow2, VolumeFormat::kRaw}) {
    CreateVolumeSpec spec{.pool = "p1",
                          .name = std::string("fs-") + std::string(FormatName(f)),
                          .format = f,
                          .size_mib = 32,
                          .filesystem = Filesystem::kExt4};
    auto v = driver().CreateVolume(spec);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->size_mib, 32);
    EXPECT_EQ(v->format, f);
  }
  auto list = driver().ListVolumes("p1");
  ASSERT_TRUE(list.ok());
  EXPECT_THAT(*list, SizeIs(2));
}

TEST_P(StorageContractTest, CloneFromImageIsCopyOnWrite) {
  auto image = env_->MakeImage("base", 64);
  ASSERT_TRUE(image.ok()) << image.status();
  CreateVolumeSpec spec{.pool = "p1", .name = "clone", .backing_image = *image};
  auto v = driver().CreateVolume(spec);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->size_mib, 64);
  EXPECT_EQ(v->backing_file, *image);
  EXPECT_LT(v->allocated_bytes, 4 * 1024 * 1024);
  auto before = env_->Digest("p1", "clone");
  ASSERT_TRUE(env_->Write("p1", "clone", "x").ok());
  EXPECT_NE(*env_->Digest("p1", "clone"), *before);
  spec.name = "small";
  spec.size_mib = 32;
  EXPECT_THAT(driver().CreateVolume(spec).status().message(), HasSubstr("size_mib must be >="));
}

TEST_P(StorageContractTest, GrowsAndRefusesShrink) {
  Create("g", 64);
  auto v = driver().ResizeVolume("p1", "g", 128);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->size_mib, 128);
  auto s = driver().ResizeVolume("p1", "g", 100).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("volume \"g\": size_mib must be >= current 128"));
  EXPECT_EQ(driver().GetVolume("p1", "g")->size_mib, 128);
  s = driver().ResizeVolume("p1", "g", 4096).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(driver().GetVolume("p1", "g")->size_mib, 128);
}

TEST_P(StorageContractTest, SnapshotRevertRestoresEarlierData) {
  Create("s", 16);
  ASSERT_TRUE(env_->Write("p1", "s", "aa").ok());
  auto first = env_->Digest("p1", "s");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(driver().CreateSnapshot("p1", "s", "one").ok());
  ASSERT_TRUE(env_->Write("p1", "s", "bb").ok());
  auto second = env_->Digest("p1", "s");
  ASSERT_NE(*first, *second);

  auto snaps = driver().ListSnapshots("p1", "s");
  ASSERT_TRUE(snaps.ok());
  ASSERT_THAT(*snaps, SizeIs(1));
  EXPECT_EQ((*snaps)[0].name, "one");
  EXPECT_EQ(driver().CreateSnapshot("p1", "s", "one").code(), absl::StatusCode::kAlreadyExists);

  SnapshotOptions attached;
  attached.attachment.attached_to = "workload \"vm-1\"";
  auto s = driver().RevertSnapshot("p1", "s", "one", attached);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("attached_to"));
  EXPECT_EQ(*env_->Digest("p1", "s"), *second);

  ASSERT_TRUE(driver().RevertSnapshot("p1", "s", "one").ok());
  EXPECT_EQ(*env_->Digest("p1", "s"), *first);
  EXPECT_EQ(driver().RevertSnapshot("p1", "s", "two").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(driver().DeleteSnapshot("p1", "s", "one").ok());
  EXPECT_THAT(*driver().ListSnapshots("p1", "s"), SizeIs(0));
}

TEST_P(StorageContractTest, SnapshotsNeedQcow2) {
  Create("r", 8, VolumeFormat::kRaw);
  auto s = driver().CreateSnapshot("p1", "r", "one");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("format must be qcow2"));
}

TEST_P(StorageContractTest, CloneFromSnapshotCopiesSnapshotData) {
  Create("src", 16);
  ASSERT_TRUE(env_->Write("p1", "src", "old").ok());
  auto at_snapshot = env_->Digest("p1", "src");
  ASSERT_TRUE(driver().CreateSnapshot("p1", "src", "base").ok());
  ASSERT_TRUE(env_->Write("p1", "src", "new").ok());
  CloneFromSnapshotSpec spec{
      .pool = "p1", .source_volume = "src", .snapshot = "base", .name = "copy"};
  auto v = driver().CloneFromSnapshot(spec);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->size_mib, 16);
  EXPECT_EQ(*env_->Digest("p1", "copy"), *at_snapshot);
  spec.name = "copy2";
  spec.snapshot = "missing";
  EXPECT_EQ(driver().CloneFromSnapshot(spec).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StorageContractTest, BackupAndRestorePreserveData) {
  Create("b", 32);
  ASSERT_TRUE(env_->Write("p1", "b", "backup-me").ok());
  auto digest = env_->Digest("p1", "b");
  std::vector<int> progress;
  BackupOptions opts{.destination = env_->dir() + "/b.backup",
                     .progress = [&](int p) { progress.push_back(p); }};
  auto backup = driver().ExportBackup("p1", "b", opts);
  ASSERT_TRUE(backup.ok()) << backup.status();
  EXPECT_EQ(backup->sha256.size(), 64u);
  EXPECT_GT(backup->bytes, 0);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), 1000);
  EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));

  RestoreSpec bad{.pool = "p1",
                  .name = "restored",
                  .source = backup->path,
                  .expected_sha256 = std::string(64, 'f')};
  EXPECT_EQ(driver().RestoreBackup(bad).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(driver().GetVolume("p1", "restored").status().code(), absl::StatusCode::kNotFound);

  RestoreSpec spec{.pool = "p1", .name = "restored", .source = backup->path};
  auto v = driver().RestoreBackup(spec);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->size_mib, 32);
  EXPECT_EQ(*env_->Digest("p1", "restored"), *digest);
  spec.name = "restored-raw";
  spec.format = VolumeFormat::kRaw;
  spec.expected_sha256 = backup->sha256;
  ASSERT_TRUE(driver().RestoreBackup(spec).ok());
  EXPECT_EQ(*env_->Digest("p1", "restored-raw"), *digest);
}

TEST_P(StorageContractTest, BackupNeverReplacesAnExistingBackup) {
  Create("b", 8);
  ASSERT_TRUE(env_->Write("p1", "b", "first").ok());
  const std::string path = env_->dir() + "/b.backup";
  auto first = driver().ExportBackup("p1", "b", {.destination = path});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(env_->Write("p1", "b", "second").ok());
  auto again = driver().ExportBackup("p1", "b", {.destination = path});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  EXPECT_THAT(again.status().message(), HasSubstr("already exists"));
  // The first backup is still the one there.
  RestoreSpec spec{.pool = "p1", .name = "r", .source = path, .expected_sha256 = first->sha256};
  ASSERT_TRUE(driver().RestoreBackup(spec).ok());
}

TEST_P(StorageContractTest, DeleteRefusedWhileAttached) {
  Create("d", 8);
  DeleteVolumeOptions attached;
  attached.attachment.attached_to = "workload \"vm-1\"";
  auto s = driver().DeleteVolume("p1", "d", attached);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("volume \"d\": cannot delete while attached_to is"));
  EXPECT_TRUE(driver().GetVolume("p1", "d").ok());
  ASSERT_TRUE(driver().DeleteVolume("p1", "d").ok());
  EXPECT_EQ(driver().GetVolume("p1", "d").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(driver().DeleteVolume("p1", "d").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(VolumeCount(), 0);
}

TEST_P(StorageContractTest, DeleteRefusedWhileACloneUsesTheVolume) {
  VolumeInfo base = Create("base", 16);
  ASSERT_TRUE(env_->Write("p1", "base", "b").ok());
  CreateVolumeSpec spec{.pool = "p1", .name = "child", .backing_image = base.path};
  auto child = driver().CreateVolume(spec);
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ(*env_->Digest("p1", "child"), *env_->Digest("p1", "base"));
  auto s = driver().DeleteVolume("p1", "base");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("volume \"base\": cannot delete while volume \"child\""));
  ASSERT_TRUE(driver().DeleteVolume("p1", "child").ok());
  EXPECT_TRUE(driver().DeleteVolume("p1", "base").ok());
}

INSTANTIATE_TEST_SUITE_P(Drivers, StorageContractTest,
                         ::testing::Values(EnvFactory{"qemu", MakeQemuStorageEnv},
                                           EnvFactory{"fake", MakeFakeStorageEnv}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace berth::runtime::storage
