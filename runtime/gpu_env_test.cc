#include "runtime/gpu_env.h"

#include "gtest/gtest.h"

namespace berth::runtime {
namespace {

using Env = std::map<std::string, std::string>;

TEST(GpuEnv, WholeGpusAreListedByTheirIds) {
  Env env = GpuEnvironment({{.id = "GPU-a"}, {.id = "MIG-b"}});
  EXPECT_EQ(env, (Env{{"CUDA_VISIBLE_DEVICES", "GPU-a,MIG-b"},
                      {"NVIDIA_VISIBLE_DEVICES", "GPU-a,MIG-b"}}));
  EXPECT_TRUE(GpuEnvironment({}).empty());
}

TEST(GpuEnv, ASharePinsItsThreadsAndMemoryAndFindsItsDaemon) {
  Env env = GpuEnvironment({{.id = "GPU-a", .milli = 250, .memory_mib = 10240}}, "/run/mps/GPU-a");
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "GPU-a");
  EXPECT_EQ(env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"], "25");
  EXPECT_EQ(env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"], "0=10240M");
  EXPECT_EQ(env["CUDA_MPS_PIPE_DIRECTORY"], "/run/mps/GPU-a");
  // A tiny share still gets a thread.
  Env tiny = GpuEnvironment({{.id = "GPU-a", .milli = 5}});
  EXPECT_EQ(tiny["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"], "1");
  EXPECT_FALSE(tiny.contains("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"));
  EXPECT_FALSE(tiny.contains("CUDA_MPS_PIPE_DIRECTORY"));
}

TEST(GpuEnv, GrantedGpusPairAssignmentsWithIds) {
  TaskConfig c;
  c.gpus = {{.index = 2, .milli = 1000}, {.index = 0, .milli = 300, .memory_mib = 512}};
  c.gpu_device_ids = {"GPU-c", "GPU-a"};
  std::vector<GrantedGpu> g = GrantedGpus(c);
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].id, "GPU-c");
  EXPECT_EQ(g[1].milli, 300);
  EXPECT_EQ(g[1].memory_mib, 512);
}

}  // namespace
}  // namespace berth::runtime
