// Disks on a fleet (tests/cluster/cluster.h, every agent mounting one shared pool directory): a
// disk made in one host's pool pins its container there, where the host's agent made the volume
// and mounts it; deleting the workload releases the disk and deleting the disk removes the
// volume from that host. A VM on a disk of the shared pool, its host killed with its work, runs
// on another host with the data it wrote. A job's checkpoint disk on the shared pool follows its
// task 0 to the host its retry runs on. Needs root, runc and the test images; skips otherwise.
#include <filesystem>
#include <string>

#include "api/wire/wire.h"
#include "gtest/gtest.h"
#include "tests/cluster/cluster.h"
#include "tests/cluster/test_images.h"

namespace berth::cluster {
namespace {

using core::Json;
using e2e::Eventually;

class ClusterStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string skip = SkipReason();
    if (!skip.empty()) GTEST_SKIP() << skip;
    const std::string images = ImagesDir();
    cluster_ = std::make_unique<Cluster>(
        ClusterOptions{.hosts = 3,
                       .images = {{"busybox", {.rootfs = images + "/busybox-rootfs.tar"}},
                                  {"tiny-vm",
                                   {.kernel = images + "/tiny-vm/vmlinuz",
                                    .initrd = images + "/tiny-vm/initrd.img"}}},
                       .shared_pool = true});
    ASSERT_EQ(cluster_->Start(), "");
  }
  void TearDown() override {
    if (!cluster_) return;
    EXPECT_TRUE(cluster_->DeleteAllWorkloads());
    cluster_.reset();
  }

  std::string Where(const std::string& workload) {
    auto w = cluster_->client().GetWorkload(workload);
    if (!w.ok() || w->status.state != core::WorkloadState::kRunning) return "";
    return w->status.host;
  }
  Json Disk(const std::string& name) {
    auto d = cluster_->client().GetDisk(name);
    return d.ok() ? *d : Json();
  }

  std::unique_ptr<Cluster> cluster_;
};

TEST_F(ClusterStorageTest, ADiskInAHostsPoolPinsItsContainerThereAndHoldsItsData) {
  auto made = cluster_->client().CreateDisk({.name = "notes",
                                             .size = "64Mi",
                                             .format = "raw",
                                             .filesystem = "ext4",
                                             .host = Cluster::HostName(1)});
  ASSERT_TRUE(made.ok()) << made.status();
  // The host's agent made the volume, in its own pool.
  const std::string volume = cluster_->AgentDir(1) + "/pools/default/volumes/notes.raw";
  EXPECT_TRUE(std::filesystem::exists(volume)) << made->dump();
  EXPECT_EQ((*made)["status"]["path"], volume);

  auto spec = core::DecodeWorkloadSpec(
      {{"name", "writer"},
       {"kind", "container"},
       {"image", "busybox"},
       {"command", {"/bin/sh", "-c", "echo kept > /data/note && sync && exec sleep 3600"}},
       {"resources", {{"cpu", "100m"}, {"memory", "64Mi"}}},
       {"disks", {{{"disk", "notes"}, {"mount", "/data"}}}}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(cluster_->client().CreateWorkload(*spec).ok());
  ASSERT_TRUE(Eventually([&] { return !Where("writer").empty(); }, 60))
      << cluster_->server().Dump("writer").dump() << e2e::ReadFile(cluster_->AgentLog(1));
  EXPECT_EQ(Where("writer"), Cluster::HostName(1));
  EXPECT_EQ(Disk("notes")["status"]["attached_to"], "writer");
  ASSERT_TRUE(Eventually([&] {
    auto r = cluster_->client().Exec("writer", {.argv = {"cat", "/data/note"}});
    return r.ok() && r->stdout_data == "kept\n";
  }));
  // A running holder keeps its disk: the fleet refuses to take it away.
  auto detach = cluster_->client().Call("POST", "/v1/disks/notes/detach");
  EXPECT_FALSE(detach.ok());
  EXPECT_NE(std::string(detach.status().message()).find("stop the workload first"),
            std::string::npos)
      << detach.status();

  // Deleting the workload releases the disk; deleting the disk removes the volume.
  ASSERT_TRUE(cluster_->client().DeleteWorkload("writer").ok());
  ASSERT_TRUE(Eventually([&] { return Disk("notes")["status"]["attached_to"] == ""; }));
  ASSERT_TRUE(Eventually([&] { return e2e::MountsBelow(cluster_->AgentDir(1)).empty(); }));
  ASSERT_TRUE(cluster_->client().Call("DELETE", "/v1/disks/notes").ok());
  EXPECT_FALSE(std::filesystem::exists(volume));
}

TEST_F(ClusterStorageTest, AVmOnASharedDiskRunsOnAnotherHostWithItsDataWhenItsHostDies) {
  auto made = cluster_->client().CreateDisk(
      {.name = "state", .size = "64Mi", .format = "raw", .filesystem = "ext4", .pool = "shared"});
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_TRUE(std::filesystem::exists(cluster_->SharedPoolDir() + "/volumes/state.raw"));
  // The first boot writes the disk; every boot says what it found there.
  auto spec = core::DecodeWorkloadSpec(
      {{"name", "keeper"},
       {"kind", "vm"},
       {"image", "tiny-vm"},
       {"command",
        {"/bin/sh", "-c",
         // WROTE only once the data is on the disk: the host may die right after.
         "mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && "
         "if [ -f /mnt/boots ]; then echo FOUND=$(cat /mnt/boots); umount /mnt; "
         "else echo first > /mnt/boots && umount /mnt && sync && echo WROTE; fi; "
         "exec sleep 3600"}},
       {"resources", {{"cpu", 1}, {"memory", "256Mi"}}},
       {"disks", {"state"}},
       {"restart", {{"policy", "always"}}}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(cluster_->client().CreateWorkload(*spec).ok());
  auto logs = [&] { return cluster_->client().Logs("keeper").value_or(""); };
  ASSERT_TRUE(Eventually([&] { return logs().find("WROTE") != std::string::npos; }, 180))
      << logs() << cluster_->server().Dump("keeper").dump();
  const std::string first = Where("keeper");
  ASSERT_FALSE(first.empty());

  // Its host dies with its work: the VM boots on another host from the same disk.
  cluster_->KillHost(cluster_->IndexOf(first));
  ASSERT_TRUE(Eventually(
      [&] {
        const std::string now = Where("keeper");
        return !now.empty() && now != first;
      },
      120))
      << cluster_->server().Dump("keeper").dump();
  EXPECT_TRUE(Eventually([&] { return logs().find("FOUND=first") != std::string::npos; }, 180))
      << logs() << cluster_->server().Dump("keeper").dump() << Disk("state").dump()
      << e2e::ReadFile(cluster_->AgentLog(cluster_->IndexOf(Where("keeper"))));
  EXPECT_EQ(Disk("state")["status"]["attached_to"], "keeper");

  // On its new host, a second disk is plugged into the running VM, and pulled out again.
  ASSERT_TRUE(
      cluster_->client().CreateDisk({.name = "extra", .size = "16Mi", .pool = "shared"}).ok());
  const Json to_keeper = {{"workload", "keeper"}};
  auto plugged = cluster_->client().Call("POST", "/v1/disks/extra/attach", &to_keeper);
  ASSERT_TRUE(plugged.ok()) << plugged.status();
  auto events = cluster_->client().Call("GET", "/v1/events?kind=disk&object=extra");
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_NE(events->dump().find("plugged into the running VM"), std::string::npos)
      << events->dump();
  auto pulled = cluster_->client().Call("POST", "/v1/disks/extra/detach");
  EXPECT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(Disk("extra")["status"]["attached_to"], "");
}

// A job's checkpoint disk on a fleet (the shared pool): task 0 of the first attempt writes its
// checkpoint there and fails; its host is cordoned, so the retry runs on another host, where the
// disk is released from the first task and given to the new task 0, which resumes from it.
TEST_F(ClusterStorageTest, AJobsCheckpointDiskFollowsTaskZeroToAnotherHost) {
  auto made = cluster_->client().CreateDisk(
      {.name = "ckpt", .size = "32Mi", .format = "raw", .filesystem = "ext4", .pool = "shared"});
  ASSERT_TRUE(made.ok()) << made.status();
  const Json job = e2e::CheckpointDiskJob("ckpt", "4s");
  auto created = cluster_->client().CreateJobFromText(job.dump());
  ASSERT_TRUE(created.ok()) << created.status();
  std::string first;
  ASSERT_TRUE(Eventually([&] {
    auto w = cluster_->client().GetWorkload("ft-0");
    if (!w.ok() || w->status.state != core::WorkloadState::kFailed) return false;
    first = w->status.host;
    return true;
  })) << cluster_->server().Dump("ft-0").dump();
  ASSERT_FALSE(first.empty());
  auto cordoned = cluster_->client().Call("POST", "/v1/hosts/" + first + "/cordon");
  ASSERT_TRUE(cordoned.ok()) << cordoned.status();
  std::string message;
  const std::string state = e2e::WaitForJobEnd(cluster_->client(), "ft", 180, &message);
  ASSERT_EQ(state, "succeeded") << message << cluster_->server().Dump("ft-0-r1").dump();
  auto retry = cluster_->client().GetWorkload("ft-0-r1");
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_NE(retry->status.host, first)
      << "the retry ran where the first attempt's host was cordoned";
  EXPECT_NE(cluster_->client().Logs("ft-0-r1").value_or("").find("resumed-7"), std::string::npos)
      << cluster_->client().Logs("ft-0-r1").value_or("");
  EXPECT_EQ(Disk("ckpt")["status"]["attached_to"], "ft-0-r1");
  auto removed = cluster_->client().DeleteJob("ft");
  EXPECT_TRUE(removed.ok()) << removed.status();
}

}  // namespace
}  // namespace berth::cluster
