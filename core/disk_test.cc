#include "core/disk.h"

#include "gtest/gtest.h"

namespace berth::core {
namespace {

void ExpectFieldError(const Json& j, const std::string& field) {
  auto disk = DecodeDisk(j);
  ASSERT_FALSE(disk.ok()) << j.dump();
  EXPECT_EQ(disk.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(disk.status().message().find(field), std::string::npos)
      << disk.status().message() << " should name " << field;
  EXPECT_NE(disk.status().message().find("disk \"d1\""), std::string::npos)
      << disk.status().message() << " should name the disk";
}

Disk Sample() {
  Disk d;
  d.name = "d1";
  d.spec = {.size = "1Gi", .format = "qcow2", .filesystem = "ext4", .cloned_from = "src@s1"};
  d.status.size_mib = 1024;
  d.status.allocated_bytes = 4096;
  d.status.path = "/pool/d1.qcow2";
  d.status.snapshots = {"s1", "s2"};
  d.status.attached_to = "vm-1";
  d.revision = 7;
  d.created_at = absl::FromUnixMillis(1700000000123);
  d.updated_at = absl::FromUnixMillis(1700000001456);
  return d;
}

TEST(Disk, RoundTrips) {
  Disk d = Sample();
  Json j = EncodeDisk(d);
  EXPECT_EQ(j["kind"], "disk");
  EXPECT_EQ(j["status"]["size"], "1Gi");
  EXPECT_FALSE(j["status"].contains("reason"));
  EXPECT_FALSE(j["spec"].contains("restored_from"));
  auto back = DecodeDisk(j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, d);

  d.status.state = DiskState::kFailed;
  d.status.reason = "volume is gone";
  back = DecodeDisk(EncodeDisk(d));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, d);

  // A fleet's disk names its host and pool; a dev server's names neither.
  EXPECT_FALSE(j["spec"].contains("host"));
  EXPECT_FALSE(j["spec"].contains("pool"));
  d.spec.host = "node-2";
  d.spec.pool = "shared";
  j = EncodeDisk(d);
  EXPECT_EQ(j["spec"]["host"], "node-2");
  EXPECT_EQ(j["spec"]["pool"], "shared");
  back = DecodeDisk(j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, d);
}

TEST(Disk, RefusesAPoolThatIsNeitherTheHostsNorShared) {
  Json j = EncodeDisk(Sample());
  j["spec"]["pool"] = "nfs9";
  ExpectFieldError(j, "spec.pool");
}

// The shape servers before typed disks stored: no revision, every field present.
TEST(Disk, LoadsTheShapeEarlierServersStored) {
  Json old = Json::parse(R"({"kind":"disk","name":"data","spec":{"size":"2Gi","format":"raw",
      "filesystem":"","from_image":"","restored_from":"b.tar.zst"},
      "status":{"state":"ready","size_mib":2048,"size":"2Gi","allocated_bytes":0,
      "path":"/p/data.raw","backing_file":"","snapshots":[],"attached_to":""},
      "created_at":"2026-01-02T03:04:05.000Z","updated_at":"2026-01-02T03:04:06.000Z"})");
  auto d = DecodeDisk(old);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->name, "data");
  EXPECT_EQ(d->spec.format, "raw");
  EXPECT_EQ(d->spec.restored_from, "b.tar.zst");
  EXPECT_EQ(d->status.size_mib, 2048);
  EXPECT_EQ(d->revision, 0);
  EXPECT_EQ(absl::FormatTime("%Y-%m-%dT%H:%M:%S", d->created_at, absl::UTCTimeZone()),
            "2026-01-02T03:04:05");
  // Written back, it has the same shape (plus the revision the API shows).
  Json again = EncodeDisk(*d);
  again.erase("revision");
  EXPECT_EQ(again, old);
}

TEST(Disk, ErrorsNameTheField) {
  Json j = EncodeDisk(Sample());
  Json bad = j;
  bad["spec"]["size"] = 5;
  ExpectFieldError(bad, "spec.size");
  bad = j;
  bad["spec"]["format"] = "vmdk";
  ExpectFieldError(bad, "spec.format");
  bad = j;
  bad["status"]["state"] = "melting";
  ExpectFieldError(bad, "status.state");
  bad = j;
  bad["status"]["size_mib"] = -1;
  ExpectFieldError(bad, "status.size_mib");
  bad = j;
  bad["status"]["snapshots"][1] = 3;
  ExpectFieldError(bad, "status.snapshots[1]");
  bad = j;
  bad["status"]["extra"] = true;
  ExpectFieldError(bad, "status.extra");
  bad = j;
  bad["created_at"] = "yesterday";
  ExpectFieldError(bad, "created_at");
  bad = j;
  bad["kind"] = "network";
  ExpectFieldError(bad, "kind");
  EXPECT_FALSE(DecodeDisk(Json::array()).ok());
}

}  // namespace
}  // namespace berth::core
