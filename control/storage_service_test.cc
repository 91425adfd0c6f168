#include "control/storage_service.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "control/fake_storage_host.h"
#include "core/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::control {
namespace {

using core::Cat;
using core::Json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

class StorageServiceTest : public ::testing::Test {
 protected:
  int64_t Revision() { return *store_.Revision(); }

  absl::StatusOr<Json> CreateDisk(std::string name, std::string size = "1Gi") {
    DiskCreateOptions o;
    o.name = std::move(name);
    o.size = std::move(size);
    return disks_.Create(o);
  }

  void PutWorkload(std::string_view name) {
    ASSERT_TRUE(store_.Put(Cat("/workloads/", name), R"({"name":"x"})").ok());
  }

  std::string StatusField(std::string_view disk, std::string_view field) {
    auto got = disks_.Get(disk);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok()) return "<missing>";
    return (*got)["status"].value(std::string(field), "<none>");
  }

  core::ManualClock clock_;
  state::MemoryStore store_{
      state::StoreOptions{.clock = &clock_, .lease_tick_interval = absl::ZeroDuration()}};
  FakeStorageHost host_;
  StorageService disks_{&store_, &clock_, &host_};
};

TEST_F(StorageServiceTest, CreateMakesTheVolumeAndStoresTheDisk) {
  DiskCreateOptions o;
  o.name = "data";
  o.size = "1Gi";
  o.filesystem = "ext4";
  auto disk = disks_.Create(o);
  ASSERT_TRUE(disk.ok()) << disk.status();

  EXPECT_EQ(host_.last_create.name, "data");
  EXPECT_EQ(host_.last_create.size_mib, 1024);
  EXPECT_EQ(host_.last_create.format, "qcow2");
  EXPECT_EQ(host_.last_create.filesystem, "ext4");
  EXPECT_EQ((*disk)["kind"], "disk");
  EXPECT_EQ((*disk)["spec"]["size"], "1Gi");
  EXPECT_EQ((*disk)["spec"]["filesystem"], "ext4");
  EXPECT_EQ((*disk)["status"]["state"], "ready");
  EXPECT_EQ((*disk)["status"]["size_mib"], 1024);
  EXPECT_EQ((*disk)["status"]["size"], "1Gi");
  EXPECT_EQ((*disk)["status"]["path"], "/pool/data.qcow2");
  EXPECT_EQ((*disk)["status"]["attached_to"], "");
  EXPECT_EQ((*disk)["revision"], Revision());

  auto stored = disks_.Get("data");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ((*stored)["status"], (*disk)["status"]);
  EXPECT_EQ((*stored)["created_at"], (*disk)["created_at"]);
  EXPECT_EQ(disks_.List()->size(), 1u);
}

TEST_F(StorageServiceTest, CreateParsesSizesAndFormats) {
  DiskCreateOptions o;
  o.name = "small";
  o.size = "512Mi";
  o.format = "raw";
  o.filesystem = "none";
  auto disk = disks_.Create(o);
  ASSERT_TRUE(disk.ok()) << disk.status();
  EXPECT_EQ(host_.last_create.size_mib, 512);
  EXPECT_EQ(host_.last_create.format, "raw");
  EXPECT_EQ(host_.last_create.filesystem, "");  // "none" means a blank disk
  EXPECT_EQ((*disk)["status"]["size"], "512Mi");

  ASSERT_TRUE(CreateDisk("big", "2Gi").ok());
  EXPECT_EQ(host_.last_create.size_mib, 2048);

  // A disk made from an image may leave its size to the image.
  DiskCreateOptions image;
  image.name = "root";
  image.from_image = "debian-12";
  auto root = disks_.Create(image);
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(host_.last_create.from_image, "debian-12");
  EXPECT_EQ(host_.last_create.size_mib, 0);
  EXPECT_EQ((*root)["status"]["size_mib"], 2048);
}

TEST_F(StorageServiceTest, CreateRefusesBadInputNamingTheFieldAndStoresNothing) {
  struct Case {
    DiskCreateOptions options;
    std::string field;
  };
  auto with = [](auto change) {
    DiskCreateOptions o;
    o.name = "d1";
    o.size = "1Gi";
    change(o);
    return o;
  };
  std::vector<Case> cases = {
      {with([](DiskCreateOptions& o) { o.size = "lots"; }), "size"},
      {with([](DiskCreateOptions& o) { o.size = "0"; }), "size"},
      {with([](DiskCreateOptions& o) { o.size = ""; }), "size"},
      {with([](DiskCreateOptions& o) { o.format = "vmdk"; }), "format"},
      {with([](DiskCreateOptions& o) { o.filesystem = "ntfs"; }), "filesystem"},
      {with([](DiskCreateOptions& o) {
         o.from_image = "debian-12";
         o.format = "raw";
       }),
       "format"},
      {with([](DiskCreateOptions& o) { o.name = "Bad_Name"; }), "name"},
      // A dev server's one host holds every disk: no other host, no shared pool.
      {with([](DiskCreateOptions& o) { o.place.host = "node-2"; }), "host"},
      {with([](DiskCreateOptions& o) { o.place.pool = "shared"; }), "pool"},
  };
  const int64_t before = Revision();
  for (const auto& c : cases) {
    auto got = disks_.Create(c.options);
    ASSERT_FALSE(got.ok()) << c.field;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
    EXPECT_THAT(Msg(got.status()), HasSubstr(c.field)) << got.status();
    if (c.field != "name") {
      EXPECT_THAT(Msg(got.status()), HasSubstr(Cat("disk \"d1\": ", c.field)));
    }
  }
  EXPECT_EQ(host_.CallsOf("Create"), 0);
  EXPECT_EQ(Revision(), before);
  EXPECT_THAT(*disks_.List(), IsEmpty());
}

TEST_F(StorageServiceTest, CreateStoresNothingWhenTheHostFails) {
  host_.fail["Create"] = absl::ResourceExhaustedError("pool full");
  const int64_t before = Revision();
  auto got = CreateDisk("d1");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(Msg(got.status()), HasSubstr("pool full"));
  EXPECT_EQ(Revision(), before);
  EXPECT_THAT(*disks_.List(), IsEmpty());
  EXPECT_EQ(disks_.Get("d1").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StorageServiceTest, CreateRefusesATakenNameWithoutTouchingTheHost) {
  ASSERT_TRUE(CreateDisk("d1").ok());
  const int64_t before = Revision();
  auto again = CreateDisk("d1", "5Gi");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(host_.CallsOf("Create"), 1);
  EXPECT_EQ(host_.volumes.at("d1").size_mib, 1024);
  EXPECT_EQ(Revision(), before);
}

TEST_F(StorageServiceTest, ResizeGrowsAndRefusesToShrink) {
  ASSERT_TRUE(CreateDisk("d1", "2Gi").ok());
  const int64_t before = Revision();

  auto smaller = disks_.Resize("d1", "1Gi");
  EXPECT_EQ(smaller.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(smaller.status()), HasSubstr("disk \"d1\": size must not shrink"));
  auto junk = disks_.Resize("d1", "huge");
  EXPECT_EQ(junk.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(junk.status()), HasSubstr("disk \"d1\": size"));
  EXPECT_EQ(host_.CallsOf("Resize"), 0);
  EXPECT_EQ(Revision(), before);

  auto grown = disks_.Resize("d1", "4Gi");
  ASSERT_TRUE(grown.ok()) << grown.status();
  EXPECT_EQ(host_.volumes.at("d1").size_mib, 4096);
  EXPECT_EQ((*grown)["spec"]["size"], "4Gi");
  EXPECT_EQ((*grown)["status"]["size"], "4Gi");
  EXPECT_EQ(StatusField("d1", "size"), "4Gi");
  EXPECT_EQ(disks_.Resize("nope", "4Gi").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StorageServiceTest, ResizeKeepsTheDiskWhenTheHostFails) {
  ASSERT_TRUE(CreateDisk("d1", "1Gi").ok());
  auto before = *disks_.Get("d1");
  host_.fail["Resize"] = absl::InternalError("qemu-img failed");
  EXPECT_EQ(disks_.Resize("d1", "8Gi").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(*disks_.Get("d1"), before);
}

TEST_F(StorageServiceTest, SnapshotThenRevert) {
  ASSERT_TRUE(CreateDisk("d1").ok());
  auto snap = disks_.Snapshot("d1", "before-upgrade");
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_THAT((*snap)["status"]["snapshots"], ElementsAre("before-upgrade"));
  EXPECT_THAT((*disks_.Get("d1"))["status"]["snapshots"], ElementsAre("before-upgrade"));

  auto reverted = disks_.Revert("d1", "before-upgrade");
  ASSERT_TRUE(reverted.ok()) << reverted.status();
  EXPECT_EQ(host_.calls.back(), "Get d1");
  EXPECT_EQ(host_.CallsOf("Revert"), 1);
  EXPECT_THAT(host_.calls, testing::Contains("Revert d1@before-upgrade"));

  // A snapshot the host does not know is its error, and the disk stays as it was.
  auto before = *disks_.Get("d1");
  EXPECT_EQ(disks_.Revert("d1", "never-taken").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*disks_.Get("d1"), before);

  auto empty = disks_.Snapshot("d1", "");
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(empty.status()), HasSubstr("disk \"d1\": snapshot"));
  EXPECT_EQ(disks_.Snapshot("d1", "Bad Name").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StorageServiceTest, RevertIsRefusedWhileAttached) {
  ASSERT_TRUE(CreateDisk("d1").ok());
  ASSERT_TRUE(disks_.Snapshot("d1", "s1").ok());
  PutWorkload("w1");
  ASSERT_TRUE(disks_.Attach("d1", "w1").ok());
  auto got = disks_.Revert("d1", "s1");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(got.status()), HasSubstr("status.attached_to is \"w1\""));
  EXPECT_EQ(host_.CallsOf("Revert"), 0);
}

TEST_F(StorageServiceTest, AttachNeedsAnExistingWorkloadAndOneHolder) {
  ASSERT_TRUE(CreateDisk("d1").ok());
  const int64_t before = Revision();
  auto missing = disks_.Attach("d1", "w1");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(missing.status()), HasSubstr("workload \"w1\" not found"));
  auto empty = disks_.Attach("d1", "");
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(empty.status()), HasSubstr("disk \"d1\": workload"));
  EXPECT_EQ(Revision(), before);

  PutWorkload("w1");
  PutWorkload("w2");
  auto attached = disks_.Attach("d1", "w1");
  ASSERT_TRUE(attached.ok()) << attached.status();
  EXPECT_EQ((*attached)["status"]["attached_to"], "w1");
  EXPECT_EQ(StatusField("d1", "attached_to"), "w1");

  // The same holder again is a no-op; another holder is refused.
  const int64_t attached_rev = Revision();
  EXPECT_TRUE(disks_.Attach("d1", "w1").ok());
  EXPECT_EQ(Revision(), attached_rev);
  auto second = disks_.Attach("d1", "w2");
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(second.status()), HasSubstr("status.attached_to is \"w1\""));
  EXPECT_EQ(StatusField("d1", "attached_to"), "w1");
  EXPECT_EQ(Revision(), attached_rev);

  EXPECT_EQ(disks_.Attach("nope", "w1").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StorageServiceTest, DeleteIsRefusedWhileAttachedAndWorksAfterDetach) {
  ASSERT_TRUE(CreateDisk("d1").ok());
  PutWorkload("w1");
  ASSERT_TRUE(disks_.Attach("d1", "w1").ok());

  absl::Status refused = disks_.Delete("d1");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(refused), HasSubstr("attached_to"));
  EXPECT_EQ(host_.CallsOf("Delete"), 0);
  EXPECT_TRUE(host_.volumes.contains("d1"));
  EXPECT_TRUE(disks_.Get("d1").ok());

  auto detached = disks_.Detach("d1");
  ASSERT_TRUE(detached.ok()) << detached.status();
  EXPECT_EQ((*detached)["status"]["attached_to"], "");
  EXPECT_EQ(StatusField("d1", "attached_to"), "");

  ASSERT_TRUE(disks_.Delete("d1").ok());
  EXPECT_FALSE(host_.volumes.contains("d1"));
  EXPECT_EQ(disks_.Get("d1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(*disks_.List(), IsEmpty());
}

TEST_F(StorageServiceTest, DetachIsRefusedWhileTheHoldersTaskCannotGiveTheDiskUp) {
  ASSERT_TRUE(CreateDisk("d1").ok());
  PutWorkload("w1");
  PutWorkload("w2");
  // w1 runs as a container: its task has the disk mounted and cannot let go while it runs.
  bool w1_runs = true;
  disks_.SetLiveDisks(
      LiveDisks{.attach = [&](std::string_view, const Json&) -> absl::Status {
                  return absl::NotFoundError("no task");
                },
                .detach = [&](std::string_view workload, std::string_view) -> absl::Status {
                  if (workload == "w1" && w1_runs) {
                    return absl::UnimplementedError("the oci driver takes disks only at start");
                  }
                  return absl::NotFoundError("no task");
                }});
  ASSERT_TRUE(disks_.Attach("d1", "w1").ok());
  const int64_t before = Revision();
  auto refused = disks_.Detach("d1");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(refused.status()),
              HasSubstr("disk \"d1\": status.attached_to is workload \"w1\", whose task holds"));
  EXPECT_THAT(Msg(refused.status()), HasSubstr("stop the workload first"));
  EXPECT_EQ(Revision(), before);
  // So no second workload can take it, and it cannot be deleted under its holder.
  EXPECT_EQ(disks_.Attach("d1", "w2").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(disks_.Delete("d1").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(StatusField("d1", "attached_to"), "w1");

  // Once w1's task is gone (stopped), the detach goes through.
  w1_runs = false;
  ASSERT_TRUE(disks_.Detach("d1").ok());
  EXPECT_EQ(StatusField("d1", "attached_to"), "");
}

TEST_F(StorageServiceTest, RestoreBringsTheDiskBackInItsFormatWithItsFilesystem) {
  host_.backup_format = "raw";
  host_.backup_filesystem = "ext4";
  auto restored = disks_.Restore("d1.backup", "back", nullptr);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ((*restored)["spec"]["format"], "raw");
  EXPECT_EQ((*restored)["spec"]["filesystem"], "ext4");
  EXPECT_EQ((*restored)["spec"]["restored_from"], "d1.backup");
  auto stored = disks_.Get("back");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ((*stored)["spec"]["format"], "raw");
  EXPECT_EQ((*stored)["spec"]["filesystem"], "ext4");
}

TEST_F(StorageServiceTest, ReleaseClearsOnlyTheNamedHolder) {
  ASSERT_TRUE(CreateDisk("d1").ok());
  PutWorkload("w1");
  ASSERT_TRUE(disks_.Attach("d1", "w1").ok());
  const int64_t attached = Revision();
  // Another workload's task going away leaves w1's disk alone.
  ASSERT_TRUE(disks_.Release("d1", "w2").ok());
  EXPECT_EQ(Revision(), attached);
  EXPECT_EQ(StatusField("d1", "attached_to"), "w1");
  ASSERT_TRUE(disks_.Release("d1", "w1").ok());
  EXPECT_EQ(StatusField("d1", "attached_to"), "");
  EXPECT_EQ(disks_.Release("nope", "w1").code(), absl::StatusCode::kNotFound);
}

TEST_F(StorageServiceTest, DeleteKeepsTheDiskWhenTheHostFailsButNotWhenTheVolumeIsGone) {
  ASSERT_TRUE(CreateDisk("d1").ok());
  ASSERT_TRUE(CreateDisk("d2").ok());
  host_.fail["Delete"] = absl::UnavailableError("pool busy");
  EXPECT_EQ(disks_.Delete("d1").code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(disks_.Get("d1").ok());

  host_.fail.clear();
  host_.volumes.erase("d2");  // already gone on the host: the object still goes
  ASSERT_TRUE(disks_.Delete("d2").ok());
  EXPECT_EQ(disks_.Get("d2").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StorageServiceTest, CloneFromCurrentDataUsesATemporarySnapshot) {
  ASSERT_TRUE(CreateDisk("src", "2Gi").ok());
  ASSERT_TRUE(disks_.Snapshot("src", "s1").ok());

  auto now = disks_.Clone("src", "", "copy");
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ((*now)["spec"]["cloned_from"], "src");
  EXPECT_EQ((*now)["status"]["size_mib"], 2048);
  EXPECT_THAT(host_.calls, testing::Contains("Clone src@clone-copy"));
  EXPECT_THAT(host_.volumes.at("src").snapshots, ElementsAre("s1"));  // the temporary one went

  auto old = disks_.Clone("src", "s1", "old");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ((*old)["spec"]["cloned_from"], "src@s1");
  EXPECT_EQ(disks_.Clone("src", "s1", "old").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(disks_.List()->size(), 3u);
}

TEST_F(StorageServiceTest, BackupHandsTheNameToTheHostAndLeavesTheDiskAsItWas) {
  ASSERT_TRUE(CreateDisk("d1").ok());
  auto empty = disks_.Backup("d1", "", nullptr);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(empty.status()), HasSubstr("disk \"d1\": file"));
  EXPECT_EQ(host_.CallsOf("Backup"), 0);

  auto before = *disks_.Get("d1");
  int last_permille = -1;
  auto done = disks_.Backup("d1", "d1.qcow2", [&](int p) { last_permille = p; });
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(host_.last_file, "d1.qcow2");  // where it leads is the host's to decide
  EXPECT_EQ((*done)["bytes"], 4096);
  EXPECT_EQ((*done)["file"], "/backups/d1.qcow2");  // as the host resolved it
  EXPECT_EQ(last_permille, 1000);
  auto after = *disks_.Get("d1");
  before.erase("revision");
  after.erase("revision");
  EXPECT_EQ(after, before);
}

// The host refuses names outside its directories (main/storenet_host.cc, tested end to end in
// tests/storage_network_e2e_test.cc); the service passes the refusal on and records nothing.
TEST_F(StorageServiceTest, PathsTheHostRefusesChangeNothing) {
  ASSERT_TRUE(CreateDisk("d1").ok());
  const int64_t before = Revision();
  host_.fail["Backup"] = absl::InvalidArgumentError(
      "disk \"d1\": file must be a name inside the backup directory /b, got \"/etc/shadow\"");
  host_.fail["Restore"] = absl::InvalidArgumentError(
      "disk \"r\": file must be a name inside the backup directory /b, got \"/proc/self/environ\"");
  host_.fail["Create"] = absl::InvalidArgumentError(
      "disk \"img\": from_image must be a name inside the image catalog /i, got \"/etc/shadow\"");
  auto backup = disks_.Backup("d1", "/etc/shadow", nullptr);
  EXPECT_EQ(backup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(host_.last_file, "/etc/shadow");
  auto restore = disks_.Restore("/proc/self/environ", "r", nullptr);
  EXPECT_EQ(restore.status().code(), absl::StatusCode::kInvalidArgument);
  DiskCreateOptions o;
  o.name = "img";
  o.from_image = "/etc/shadow";
  EXPECT_EQ(disks_.Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Revision(), before);
  EXPECT_EQ(disks_.List()->size(), 1u);
}

TEST_F(StorageServiceTest, StartMarksDisksWhoseVolumeIsGoneAsFailed) {
  ASSERT_TRUE(CreateDisk("gone").ok());
  ASSERT_TRUE(CreateDisk("kept").ok());
  PutWorkload("w1");
  ASSERT_TRUE(disks_.Attach("kept", "w1").ok());
  host_.volumes.erase("gone");
  host_.volumes.at("kept").allocated_bytes = 777;

  ASSERT_TRUE(disks_.Start().ok());
  EXPECT_EQ(host_.CallsOf("Prepare"), 1);
  EXPECT_EQ(StatusField("gone", "state"), "failed");
  EXPECT_THAT(StatusField("gone", "reason"), HasSubstr("not found"));
  EXPECT_EQ(StatusField("kept", "state"), "ready");
  EXPECT_EQ(StatusField("kept", "attached_to"), "w1");
  EXPECT_EQ((*disks_.Get("kept"))["status"]["allocated_bytes"], 777);

  // A second start finds nothing new and writes nothing.
  const int64_t rev = Revision();
  ASSERT_TRUE(disks_.Start().ok());
  EXPECT_EQ(Revision(), rev);
}

TEST_F(StorageServiceTest, StartStopsWhenTheHostCannotPrepare) {
  ASSERT_TRUE(CreateDisk("d1").ok());
  host_.volumes.clear();
  host_.fail["Prepare"] = absl::PermissionDeniedError("pool not writable");
  const int64_t rev = Revision();
  EXPECT_EQ(disks_.Start().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Revision(), rev);
  EXPECT_EQ(StatusField("d1", "state"), "ready");
}

}  // namespace
}  // namespace berth::control

namespace berth::control {
namespace {

TEST_F(StorageServiceTest, PoolsReportThinProvisioningAccounting) {
  ASSERT_TRUE(CreateDisk("a", "1Gi").ok());
  ASSERT_TRUE(CreateDisk("b", "512Mi").ok());
  auto pools = disks_.Pools();
  ASSERT_TRUE(pools.ok()) << pools.status();
  ASSERT_EQ(pools->size(), 1u);
  const Json& p = (*pools)[0];
  EXPECT_EQ(p["name"], "default");
  EXPECT_EQ(p["volume_count"], 2);
  EXPECT_EQ(p["provisioned_mib"], 1536);
  EXPECT_EQ(p["available_mib"], 20480 - 1536);
  EXPECT_DOUBLE_EQ(p["overcommit"].get<double>(), 2.0);
  host_.fail["Pools"] = absl::UnavailableError("pool directory unreadable");
  EXPECT_EQ(disks_.Pools().status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace berth::control
