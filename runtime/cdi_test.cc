#include "runtime/cdi.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::runtime {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// The shape `nvidia-ctk cdi generate` writes, cut down to two GPUs.
json NvidiaSpec() {
  return json::parse(R"({
    "cdiVersion": "0.5.0",
    "kind": "nvidia.com/gpu",
    "devices": [
      {"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0"}]}},
      {"name": "GPU-aaaa", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0"}]}},
      {"name": "1", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia1"}]}}
    ],
    "containerEdits": {
      "env": ["NVIDIA_VISIBLE_DEVICES=void"],
      "deviceNodes": [{"path": "/dev/nvidiactl"}, {"path": "/dev/nvidia-uvm"}],
      "mounts": [{"hostPath": "/usr/bin/nvidia-smi", "containerPath": "/usr/bin/nvidia-smi",
                  "options": ["ro", "nosuid", "nodev", "bind"]}],
      "hooks": [{"hookName": "createContainer", "path": "/usr/bin/nvidia-ctk",
                 "args": ["nvidia-ctk", "hook", "update-ldcache"]}]
    }
  })");
}

TEST(Cdi, DecodesWhatNvidiaCtkWrites) {
  auto spec = DecodeCdiSpec(NvidiaSpec(), "/etc/cdi/nvidia.json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->kind, "nvidia.com/gpu");
  ASSERT_EQ(spec->devices.size(), 3u);
  EXPECT_EQ(spec->devices[1].name, "GPU-aaaa");
  EXPECT_EQ(spec->edits.device_nodes.size(), 2u);
  EXPECT_EQ(spec->edits.mounts[0].options.back(), "bind");
  EXPECT_EQ(spec->edits.hooks[0].hook_name, "createContainer");
  EXPECT_EQ(spec->edits.hooks[0].args.size(), 3u);
}

TEST(Cdi, ResolvingAppliesSpecEditsOnceAndEachDevicesOwn) {
  CdiRegistry registry;
  registry.Add(*DecodeCdiSpec(NvidiaSpec(), "a"));
  EXPECT_TRUE(registry.Has("nvidia.com/gpu=1"));
  EXPECT_FALSE(registry.Has("nvidia.com/gpu=2"));
  EXPECT_EQ(registry.Devices("nvidia.com/gpu").size(), 3u);
  EXPECT_TRUE(registry.Devices("xilinx.com/fpga").empty());
  auto edits = registry.Resolve({"nvidia.com/gpu=0", "nvidia.com/gpu=1"});
  ASSERT_TRUE(edits.ok()) << edits.status();
  std::vector<std::string> paths;
  for (const auto& n : edits->device_nodes) paths.push_back(n.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia0",
                                             "/dev/nvidia1"}));
  EXPECT_EQ(edits->hooks.size(), 1u);
  EXPECT_EQ(edits->mounts.size(), 1u);
  auto missing = registry.Resolve({"nvidia.com/gpu=7"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("nvidia.com/gpu=7"));
}

TEST(Cdi, ALaterSpecReplacesADeviceOfTheSameName) {
  CdiRegistry registry;
  registry.Add(*DecodeCdiSpec(NvidiaSpec(), "/etc/cdi/nvidia.json"));
  json later = json::parse(R"({"cdiVersion": "0.6.0", "kind": "nvidia.com/gpu",
      "devices": [{"name": "1", "containerEdits": {"env": ["LATER=1"]}}]})");
  registry.Add(*DecodeCdiSpec(later, "/var/run/cdi/nvidia.json"));
  EXPECT_EQ(registry.SourceOf("nvidia.com/gpu=1"), "/var/run/cdi/nvidia.json");
  EXPECT_EQ(registry.SourceOf("nvidia.com/gpu=0"), "/etc/cdi/nvidia.json");
  auto edits = registry.Resolve({"nvidia.com/gpu=1"});
  ASSERT_TRUE(edits.ok());
  EXPECT_EQ(edits->env, std::vector<std::string>{"LATER=1"});
}

TEST(Cdi, BadSpecsNameTheSourceAndField) {
  struct Case {
    std::function<void(json&)> edit;
    std::string field;
  };
  std::vector<Case> cases = {
      {[](json& j) { j.erase("kind"); }, "kind is required"},
      {[](json& j) { j["kind"] = "gpu"; }, "kind must read vendor.com/class"},
      {[](json& j) { j["devices"] = json::array(); }, "devices must name at least one device"},
      {[](json& j) { j["devices"][0]["name"] = "-x"; }, "devices[0].name"},
      {[](json& j) { j["devices"][2]["name"] = "0"; }, "devices[2].name names \"0\" twice"},
      {[](json& j) { j["devices"][0]["containerEdits"]["deviceNodes"][0]["path"] = "dev/x"; },
       "devices[0].containerEdits.deviceNodes[0].path"},
      {[](json& j) { j["devices"][0]["containerEdits"]["deviceNodes"][0]["major"] = -1; },
       "deviceNodes[0].major"},
      {[](json& j) { j["containerEdits"]["env"][0] = "NOVALUE"; }, "containerEdits.env[0]"},
      {[](json& j) { j["containerEdits"]["hooks"][0]["hookName"] = "whenever"; },
       "containerEdits.hooks[0].hookName"},
      {[](json& j) { j["containerEdits"]["mounts"][0].erase("containerPath"); },
       "containerEdits.mounts[0].containerPath is required"},
      {[](json& j) { j["containerEdits"]["intelRdt"] = json::object(); },
       "containerEdits.intelRdt"},
  };
  for (const Case& c : cases) {
    json j = NvidiaSpec();
    c.edit(j);
    auto s = DecodeCdiSpec(j, "/etc/cdi/bad.json").status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(std::string(s.message()), HasSubstr("CDI spec \"/etc/cdi/bad.json\"")) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.field)) << s;
  }
}

TEST(Cdi, QualifiedNamesSplit) {
  std::string kind, name;
  ASSERT_TRUE(SplitCdiName("xilinx.com/fpga=u250-0", &kind, &name).ok());
  EXPECT_EQ(kind, "xilinx.com/fpga");
  EXPECT_EQ(name, "u250-0");
  for (const char* bad : {"xilinx.com/fpga", "fpga=0", "x.com/fpga=", "x.com/=0", "/f=0"}) {
    EXPECT_FALSE(SplitCdiName(bad, &kind, &name).ok()) << bad;
  }
}

TEST(Cdi, DeviceNodesTakeTheirNumbersFromTheHostFile) {
  CdiEdits edits;
  edits.device_nodes = {{.path = "/dev/fake0", .host_path = "/dev/null"},
                        {.path = "/dev/given", .type = "c", .major = 10, .minor = 229}};
  ASSERT_TRUE(CompleteDeviceNodes(&edits).ok());
  struct stat st {};
  ASSERT_EQ(stat("/dev/null", &st), 0);
  EXPECT_EQ(edits.device_nodes[0].type, "c");
  EXPECT_EQ(edits.device_nodes[0].major, static_cast<int64_t>(major(st.st_rdev)));
  EXPECT_EQ(edits.device_nodes[0].minor, static_cast<int64_t>(minor(st.st_rdev)));
  EXPECT_EQ(edits.device_nodes[0].file_mode, static_cast<int64_t>(st.st_mode & 07777));
  EXPECT_EQ(edits.device_nodes[1].file_mode, 0666);

  CdiEdits missing;
  missing.device_nodes = {{.path = "/dev/berth-test-no-such-device"}};
  auto s = CompleteDeviceNodes(&missing);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("/dev/berth-test-no-such-device"));
  CdiEdits regular;
  regular.device_nodes = {{.path = "/dev/x", .host_path = "/etc/hostname"}};
  EXPECT_THAT(std::string(CompleteDeviceNodes(&regular).message()), HasSubstr("not a device"));
}

}  // namespace
}  // namespace berth::runtime
