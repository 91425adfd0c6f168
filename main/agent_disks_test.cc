#include "main/agent_disks.h"

#include <string>
#include <vector>

#include "control/fake_storage_host.h"
#include "core/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth {
namespace {

using control::HostDisk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

core::WorkloadSpec Spec(const std::string& name, const std::string& kind,
                        std::vector<std::string> disks) {
  core::WorkloadSpec s;
  s.name = name;
  s.kind = *core::ParseWorkloadKind(kind);
  for (const auto& d : disks) s.disks.push_back({.disk = d, .mount = "/mnt/" + d});
  return s;
}

class AgentDisksTest : public ::testing::Test {
 protected:
  AgentDisksTest() : disks_(Options()) {}
  AgentDisksOptions Options() {
    AgentDisksOptions o;
    o.host = "h1";
    o.fetch = [this](std::string_view workload) -> absl::StatusOr<std::vector<HostDisk>> {
      asked_.push_back(std::string(workload));
      return answer_;
    };
    o.pools = {{"default", &own_}, {"shared", &shared_}};
    o.mount = [this](std::string_view workload, const HostDisk& d,
                     const std::string& image) -> absl::StatusOr<std::string> {
      if (!mount_error_.ok()) return mount_error_;
      mounted_.push_back(core::Cat(workload, ":", image));
      return core::Cat("/mounts/", workload, "/", d.name);
    };
    o.unmount = [this](std::string_view workload) { unmounted_.push_back(std::string(workload)); };
    return o;
  }
  void SetUp() override {
    ASSERT_TRUE((own_.Create({.name = "fs", .format = "raw", .size_mib = 8}).ok()));
    ASSERT_TRUE((own_.Create({.name = "boot", .format = "qcow2", .size_mib = 8}).ok()));
    ASSERT_TRUE((shared_.Create({.name = "data", .format = "qcow2", .size_mib = 8}).ok()));
  }

  control::FakeStorageHost own_, shared_;
  absl::StatusOr<std::vector<HostDisk>> answer_ = std::vector<HostDisk>{};
  absl::Status mount_error_;
  std::vector<std::string> asked_, mounted_, unmounted_;
  AgentDisks disks_;
};

TEST_F(AgentDisksTest, AVmGetsItsDisksFromThePoolEachLivesIn) {
  answer_ = std::vector<HostDisk>{
      {.name = "boot", .format = "qcow2"},
      {.name = "data", .pool = "shared", .format = "qcow2", .read_only = true}};
  runtime::TaskConfig config;
  ASSERT_TRUE(disks_.Attach(Spec("vm1", "vm", {"boot"}), &config).ok());
  EXPECT_THAT(asked_, ElementsAre("vm1"));
  ASSERT_EQ(config.disks.size(), 2u);
  EXPECT_EQ(config.disks[0].path, "/pool/boot.qcow2");
  EXPECT_EQ(config.disks[1].name, "data");
  EXPECT_TRUE(config.disks[1].read_only);
  EXPECT_THAT(mounted_, IsEmpty());  // a VM takes the image itself
}

TEST_F(AgentDisksTest, AContainerMountsItsRawDisksAndAWorkloadWithoutDisksAsksNothing) {
  runtime::TaskConfig config;
  ASSERT_TRUE(disks_.Attach(Spec("plain", "container", {}), &config).ok());
  EXPECT_THAT(asked_, IsEmpty());
  answer_ = std::vector<HostDisk>{
      {.name = "fs", .format = "raw", .filesystem = "ext4", .mount = "/mnt/fs"}};
  ASSERT_TRUE(disks_.Attach(Spec("c1", "container", {"fs"}), &config).ok());
  EXPECT_THAT(mounted_, ElementsAre("c1:/pool/fs.raw"));
  ASSERT_EQ(config.disks.size(), 1u);
  EXPECT_EQ(config.disks[0].path, "/mounts/c1/fs");
  EXPECT_EQ(config.disks[0].mount_path, "/mnt/fs");
  disks_.Detach("c1");
  EXPECT_THAT(unmounted_, ElementsAre("c1"));
}

TEST_F(AgentDisksTest, WhatCannotBeGivenFailsTheStartWithTheReasonAndLeavesNoMount) {
  runtime::TaskConfig config;
  // A disk in no pool of this host.
  answer_ = std::vector<HostDisk>{{.name = "gone", .format = "qcow2"}};
  absl::Status s = disks_.Attach(Spec("vm1", "vm", {"gone"}), &config);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("workload \"vm1\": disk \"gone\" on host h1"));
  // A mount that fails.
  answer_ = std::vector<HostDisk>{
      {.name = "fs", .format = "raw", .filesystem = "ext4", .mount = "/mnt/fs"}};
  mount_error_ = absl::InternalError("mount: no loop device");
  s = disks_.Attach(Spec("c1", "container", {"fs"}), &config);
  EXPECT_THAT(s.message(), HasSubstr("no loop device"));
  EXPECT_THAT(unmounted_, ElementsAre("vm1", "c1"));
  // The server's refusal (another holder) is the start's error.
  answer_ = absl::FailedPreconditionError("disk \"fs\": status.attached_to is \"c0\"");
  s = disks_.Attach(Spec("c2", "container", {"fs"}), &config);
  EXPECT_THAT(s.message(), HasSubstr("attached_to is \"c0\""));
  EXPECT_TRUE(config.disks.empty());
}

TEST_F(AgentDisksTest, AHostWithoutTheSharedPoolSaysHowToMountIt) {
  AgentDisksOptions o = Options();
  o.pools.erase("shared");
  AgentDisks disks(o);
  answer_ = std::vector<HostDisk>{{.name = "data", .pool = "shared", .format = "qcow2"}};
  runtime::TaskConfig config;
  absl::Status s = disks.Attach(Spec("vm1", "vm", {"data"}), &config);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("--shared-pool"));
}

}  // namespace
}  // namespace berth
