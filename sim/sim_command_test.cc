#include "sim/sim_command.h"

#include <filesystem>
#include <sstream>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "sim/fake_engine.h"
#include "sim/formats.h"

namespace berth::sim {
namespace {

using ::testing::HasSubstr;

struct Result {
  int code = 0;
  std::string out;
  std::string err;
};

Result Sim(std::vector<std::string> args) {
  std::ostringstream out, err;
  SimCommandOptions options;
  options.engine_factory = FakeEngine::Factory();
  int code = RunSimCommand(args, out, err, options);
  return Result{code, out.str(), err.str()};
}

// The directories TempDir made in this process, removed when the tests end.
class TempDirs : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const auto& d : dirs) std::filesystem::remove_all(d);
  }
  std::vector<std::string> dirs;
};
TempDirs* const temp_dirs =
    static_cast<TempDirs*>(::testing::AddGlobalTestEnvironment(new TempDirs));

std::string TempDir(const std::string& name) {
  std::string dir = ::testing::TempDir() + "/berth_sim_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  temp_dirs->dirs.push_back(dir);
  return dir;
}

std::string Read(const std::string& path) {
  auto text = ReadFile(path);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

class SimCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    Result r = Sim({"generate", "--out", dir_, "--format", "all", "--hosts",
                    "6:8:A100:96:512Gi,6:4:V100:64:256Gi,2:0::32:128Gi", "--requests", "300",
                    "--seed", "7"});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  std::vector<std::string> Fill(std::vector<std::string> extra,
                                std::string policies = "fake,first-fit",
                                std::string seeds = "42..45") {
    std::vector<std::string> args = {
        "fill",     "--cluster",        dir_ + "/nodes.csv", "--trace", dir_ + "/pods.csv",
        "--format", "alibaba-gpu-2023", "--policy",          policies,  "--seeds",
        seeds,      "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  std::string dir_;
};

TEST_F(SimCommandTest, GenerateWritesBothFormatFamilies) {
  for (const char* name : {"nodes.csv", "pods.csv", "cluster.yaml", "trace.yaml", "cluster.json",
                           "trace.json", "cluster.csv", "trace.csv"}) {
    EXPECT_TRUE(std::filesystem::exists(dir_ + "/" + name)) << name;
  }
  EXPECT_EQ(Read(dir_ + "/nodes.csv").rfind("sn,cpu_milli,memory_mib,gpu,model\n", 0), 0u);
  auto yaml = LoadTrace(dir_ + "/trace.yaml", TraceFormat::kAuto);
  auto csv = LoadTrace(dir_ + "/pods.csv", TraceFormat::kAuto);
  ASSERT_TRUE(yaml.ok() && csv.ok());
  EXPECT_EQ(yaml->requests.size(), 300u);
  EXPECT_EQ(csv->requests.size(), 300u);
}

TEST_F(SimCommandTest, FillPrintsTableAndJson) {
  Result table = Sim(Fill({}));
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("unallocated GPU % @100%"));
  EXPECT_THAT(table.out, HasSubstr("fake"));
  EXPECT_THAT(table.out, HasSubstr("±"));

  Result json = Sim(Fill({"--json"}));
  ASSERT_EQ(json.code, 0) << json.err;
  auto j = nlohmann::json::parse(json.out);
  ASSERT_TRUE(j["policies"].contains("fake"));
  ASSERT_TRUE(j["policies"].contains("first-fit"));
  const auto& fake = j["policies"]["fake"];
  EXPECT_GE(fake["unallocated_gpu_pct_at_100"]["mean"].get<double>(), 0);
  EXPECT_LE(fake["unallocated_gpu_pct_at_100"]["mean"].get<double>(), 100);
  EXPECT_GE(fake["unallocated_gpu_pct_at_100"]["sd"].get<double>(), 0);
  EXPECT_GE(fake["seconds_per_run"]["mean"].get<double>(), 0);
  EXPECT_EQ(j["seeds"].size(), 4u);
  EXPECT_EQ(j["hosts"], 14);
  EXPECT_EQ(j["gpus"], 72);
}

TEST_F(SimCommandTest, ReportsProgressOnStderr) {
  std::vector<std::string> args = Fill({});
  args.erase(std::find(args.begin(), args.end(), "--quiet"));
  Result r = Sim(args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("8/8 runs done"));
}

TEST_F(SimCommandTest, IdenticalInputsGiveByteIdenticalOutputs) {
  std::string a = dir_ + "/a", b = dir_ + "/b";
  Result first = Sim(Fill({"--out", a, "--no-timings", "--jobs", "1"}));
  Result second = Sim(Fill({"--out", b, "--no-timings", "--jobs", "3"}));
  ASSERT_EQ(first.code, 0) << first.err;
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_EQ(first.out, second.out);
  for (const char* name : {"summary.txt", "summary.json", "curves.csv", "chart.svg"}) {
    std::string x = Read(a + "/" + name);
    EXPECT_FALSE(x.empty()) << name;
    EXPECT_EQ(x, Read(b + "/" + name)) << name;
  }
  // The same trace in Berth's YAML gives the same results as the Alibaba CSV.
  Result yaml = Sim({"fill", "--cluster", dir_ + "/cluster.yaml", "--trace", dir_ + "/trace.yaml",
                     "--policy", "fake,first-fit", "--seeds", "42..45", "--quiet", "--no-timings"});
  ASSERT_EQ(yaml.code, 0) << yaml.err;
  EXPECT_EQ(yaml.out, first.out);
  // A different seed list changes the results.
  Result other = Sim(Fill({"--no-timings"}, "fake,first-fit", "1..4"));
  ASSERT_EQ(other.code, 0) << other.err;
  EXPECT_NE(other.out, first.out);
}

TEST_F(SimCommandTest, WritesCsvAndSvgWhereAsked) {
  Result r = Sim(Fill({"--csv", dir_ + "/c.csv", "--svg", dir_ + "/c.svg"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Read(dir_ + "/c.csv").rfind("policy,arrived_pct,unallocated_gpu_pct_mean", 0), 0u);
  EXPECT_THAT(Read(dir_ + "/c.svg"), HasSubstr("<polyline"));
}

TEST_F(SimCommandTest, ReplayRunsAndIsDeterministic) {
  std::vector<std::string> args = {"replay",
                                   "--cluster",
                                   dir_ + "/cluster.json",
                                   "--trace",
                                   dir_ + "/trace.json",
                                   "--policy",
                                   "fake",
                                   "--seeds",
                                   "1..2",
                                   "--quiet",
                                   "--no-timings",
                                   "--json"};
  Result a = Sim(args);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, Sim(args).out);
  auto j = nlohmann::json::parse(a.out);
  EXPECT_EQ(j["mode"], "replay");
  EXPECT_TRUE(j["policies"]["fake"].contains("queue_delay_s_p90"));
  EXPECT_EQ(j["defrag"], false);
  EXPECT_TRUE(j["policies"]["fake"].contains("stranded_gpu_pct"));
  EXPECT_TRUE(j["policies"]["fake"].contains("moves_per_hour"));
  std::vector<std::string> defrag = args;
  defrag.insert(defrag.end(), {"--defrag", "--migration-cost", "30"});
  Result d = Sim(defrag);
  ASSERT_EQ(d.code, 0) << d.err;
  auto dj = nlohmann::json::parse(d.out);
  EXPECT_EQ(dj["defrag"], true);
  EXPECT_EQ(dj["migration_cost_s"], 30);
  defrag.back() = "-1";
  EXPECT_EQ(Sim(defrag).code, 2);
  args.push_back("--queue");
  args.push_back("fifo");
  args.push_back("--preemption");
  args.push_back("on");
  EXPECT_EQ(Sim(args).code, 0);
}

TEST_F(SimCommandTest, UsageErrorsExitTwoAndNameTheFlag) {
  Result unknown = Sim(Fill({"--bogus"}));
  EXPECT_EQ(unknown.code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("--bogus"));
  Result missing = Sim({"fill", "--trace", dir_ + "/pods.csv"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_THAT(missing.err, HasSubstr("--cluster is required"));
  Result seeds = Sim({"fill", "--cluster", "c", "--trace", "t", "--seeds", "9..1"});
  EXPECT_EQ(seeds.code, 2);
  EXPECT_THAT(seeds.err, HasSubstr("--seeds"));
  Result policy = Sim(Fill({}, "nonsense"));
  EXPECT_EQ(policy.code, 2);
  EXPECT_THAT(policy.err, HasSubstr("nonsense"));
  Result queue = Sim({"replay", "--cluster", "c", "--trace", "t", "--queue", "lifo"});
  EXPECT_EQ(queue.code, 2);
  EXPECT_THAT(queue.err, HasSubstr("--queue"));
  Result generate = Sim({"generate", "--out", dir_, "--cpu-only", "150"});
  EXPECT_EQ(generate.code, 2);
  EXPECT_THAT(generate.err, HasSubstr("--cpu-only"));
  EXPECT_EQ(Sim({}).code, 2);
  EXPECT_EQ(Sim({"frobnicate"}).code, 2);
  Result order = Sim(Fill({"--host-order", "sorted"}));
  EXPECT_EQ(order.code, 2);
  EXPECT_THAT(order.err, HasSubstr("--host-order"));
  Result profile = Sim({"generate", "--out", dir_, "--profile", "alibaba"});
  EXPECT_EQ(profile.code, 2);
  EXPECT_THAT(profile.err, HasSubstr("--profile"));
}

// Both host orders run; a profile's values apply and flags given with it override them.
TEST_F(SimCommandTest, HostOrderAndProfiles) {
  for (const char* order : {"random", "input"}) {
    Result r = Sim(Fill({"--host-order", order, "--no-timings"}));
    EXPECT_EQ(r.code, 0) << order << ": " << r.err;
  }
  const std::string out = dir_ + "/openb";
  Result g = Sim({"generate", "--out", out, "--profile", "openb", "--requests", "40"});
  ASSERT_EQ(g.code, 0) << g.err;
  auto cluster = LoadCluster(out + "/nodes.csv", TraceFormat::kAuto);
  auto trace = LoadTrace(out + "/pods.csv", TraceFormat::kAuto);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(cluster->hosts.size(), 1523u);
  EXPECT_EQ(trace->requests.size(), 40u);
}

TEST_F(SimCommandTest, OtherFailuresExitOne) {
  Result r = Sim({"fill", "--cluster", dir_ + "/missing.csv", "--trace", dir_ + "/pods.csv",
                  "--policy", "fake", "--quiet"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("missing.csv"));
}

TEST_F(SimCommandTest, HelpForEveryCommand) {
  for (const char* command : {"generate", "fill", "replay"}) {
    Result r = Sim({command, "--help"});
    EXPECT_EQ(r.code, 0) << command;
    EXPECT_THAT(r.out, HasSubstr(std::string("Usage: berth sim ") + command));
  }
  EXPECT_EQ(Sim({"--help"}).code, 0);
}

}  // namespace
}  // namespace berth::sim
