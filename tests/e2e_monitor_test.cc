// A server without a local agent and hosts registered through the API with the join token:
// `berth workload explain` names what a workload asks and what the best host has, `berth host
// ls` shows allocated/capacity, /metrics carries per-host allocated and used series, and the
// read-only token scrapes but cannot change anything.
#include <regex>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "tests/e2e_util.h"

namespace berth::e2e {
namespace {

using nlohmann::json;

class MonitorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("e2e-monitor");
    server_ = std::make_unique<DevServer>(dir_, std::vector<std::string>{});
    ASSERT_TRUE(server_->Start()) << ReadFile(dir_ + "/serve.log");
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string Token(const std::string& file) {
    std::string t = ReadFile(dir_ + "/" + file);
    while (!t.empty() && t.back() == '\n') t.pop_back();
    return t;
  }
  // Registers a host that no agent runs (its workloads stay scheduled) and returns a client
  // holding its credential.
  std::unique_ptr<api::Client> Register(const std::string& name, const std::string& cpu, int gpus) {
    auto joiner = std::make_unique<api::Client>(server_->url(),
                                                api::ClientOptions{.token = Token("join.token")});
    api::wire::HostRegistration reg;
    reg.name = name;
    reg.inventory.capacity =
        core::Resources{*core::ParseCpu(cpu), core::MemoryMiB(4096), core::DiskMiB(10240)};
    reg.inventory.drivers = {"process"};
    for (int i = 0; i < gpus; ++i) {
      core::GpuDevice d;
      d.index = i;
      d.model = "A100-SXM4-80GB";
      d.memory_mib = 81920;
      reg.inventory.gpus.push_back(d);
    }
    auto reply = joiner->RegisterHost(reg);
    EXPECT_TRUE(reply.ok()) << reply.status();
    if (!reply.ok()) return nullptr;
    return std::make_unique<api::Client>(server_->url(),
                                         api::ClientOptions{.token = reply->credential});
  }
  Result Cli(std::vector<std::string> args) { return e2e::Run(dir_, std::move(args)); }

  std::string dir_;
  std::unique_ptr<DevServer> server_;
};

TEST_F(MonitorTest, ExplainNamesWhatIsAskedAndWhatTheBestHostHas) {
  auto host = Register("host-a", "2", 0);
  ASSERT_NE(host, nullptr);
  Result created = e2e::Run(dir_, {"workload", "create", "-f", "-"},
                            "name: big\nkind: process\ncommand: [/bin/true]\n"
                            "resources: {cpu: 64, memory: 64Mi}\n");
  ASSERT_EQ(created.exit_code, 0) << created.err;
  Result why;
  ASSERT_TRUE(Eventually([&] {
    why = Cli({"workload", "explain", "big"});
    return why.exit_code == 0 && why.out.find("cpu:") != std::string::npos;
  })) << why.out
      << why.err;
  EXPECT_NE(why.out.find("cpu: asks 64, best host has 2 free of 2 (host-a)"), std::string::npos)
      << why.out;
  EXPECT_NE(why.out.find("to fit: lower cpu to at most 2"), std::string::npos) << why.out;

  Result j = Cli({"workload", "explain", "big", "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  json body = json::parse(j.out);
  ASSERT_TRUE(body["failing"].is_array()) << j.out;
  ASSERT_EQ(body["failing"].size(), 1u) << j.out;
  EXPECT_EQ(body["failing"][0]["check"], "cpu");
  EXPECT_EQ(body["failing"][0]["hosts"], 1);
}

TEST_F(MonitorTest, TopShowsTheFirstPageOfEachListAndCountsTheRest) {
  for (int i = 0; i < 23; ++i) {
    ASSERT_NE(Register(absl::StrFormat("host-%02d", i), "1", 0), nullptr);
  }
  api::Client admin(server_->url(), api::ClientOptions{.token = Token("admin.token")});
  for (int i = 0; i < 42; ++i) {
    const std::string spec = absl::StrFormat(
        R"({"name":"w-%02d","kind":"process","command":["/bin/true"],"resources":{"cpu":"8"}})", i);
    ASSERT_TRUE(admin.CreateWorkloadFromText(spec).ok()) << spec;
  }
  Result top = Cli({"top", "--once"});
  ASSERT_EQ(top.exit_code, 0) << top.err;
  EXPECT_NE(top.out.find("berth top: 23 hosts, 42 workloads (42 pending)"), std::string::npos)
      << top.out;
  EXPECT_NE(top.out.find("host-19"), std::string::npos) << top.out;
  EXPECT_EQ(top.out.find("host-20"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("... and 3 more (berth host ls)"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("w-39"), std::string::npos) << top.out;
  EXPECT_EQ(top.out.find("w-40"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("... and 2 more (berth workload ls)"), std::string::npos) << top.out;
  Result topj = Cli({"top", "--json"});
  ASSERT_EQ(topj.exit_code, 0) << topj.err;
  json frame = json::parse(topj.out);
  EXPECT_EQ(frame["hosts"].size(), 20u);
  EXPECT_EQ(frame["workloads"].size(), 40u);
  EXPECT_EQ(frame["summary"]["hosts"]["total"], 23);
  EXPECT_EQ(frame["summary"]["workloads"]["by_state"]["pending"], 42);
}

TEST_F(MonitorTest, HostLsAndMetricsShowAllocatedAgainstCapacityAndUsed) {
  auto host = Register("gpu-a", "8", 2);
  ASSERT_NE(host, nullptr);
  core::HostUsage usage;
  usage.cpu = core::MilliCpu(1500);
  usage.memory = core::MemoryMiB(2048);
  usage.gpus = {{.index = 0, .utilization_percent = 87, .memory_used_mib = 40960}};
  ASSERT_TRUE(host->Heartbeat("gpu-a", usage).ok());
  Result created = e2e::Run(dir_, {"workload", "create", "-f", "-"},
                            "name: train\nkind: process\ncommand: [/bin/true]\n"
                            "resources: {cpu: 2, memory: 1Gi, gpu: {count: 1}}\n");
  ASSERT_EQ(created.exit_code, 0) << created.err;
  ASSERT_TRUE(Eventually([&] { return server_->State("train") == "scheduled"; }))
      << server_->Dump("train").dump();

  Result ls = Cli({"host", "ls"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_NE(ls.out.find("2/8"), std::string::npos) << ls.out;         // CPU
  EXPECT_NE(ls.out.find("1Gi/4Gi"), std::string::npos) << ls.out;     // memory
  EXPECT_NE(ls.out.find("1/2 x A100"), std::string::npos) << ls.out;  // GPUs
  EXPECT_NE(ls.out.find("1500m/2Gi"), std::string::npos) << ls.out;   // used
  Result lsj = Cli({"host", "ls", "--json"});
  ASSERT_EQ(lsj.exit_code, 0) << lsj.err;
  json hosts = json::parse(lsj.out);
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_EQ(hosts[0]["allocated"]["gpus"][0]["holders"], json::array({"train"})) << lsj.out;

  // `berth top` shows the same hosts and the workloads; --json one frame as objects.
  Result top = Cli({"top", "--once"});
  ASSERT_EQ(top.exit_code, 0) << top.err;
  EXPECT_NE(top.out.find("berth top: 1 hosts, 1 workloads (1 scheduled)"), std::string::npos)
      << top.out;
  EXPECT_NE(top.out.find("1/2 x A100"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("train"), std::string::npos) << top.out;
  Result topj = Cli({"top", "--json"});
  ASSERT_EQ(topj.exit_code, 0) << topj.err;
  json frame = json::parse(topj.out);
  EXPECT_EQ(frame["hosts"].size(), 1u);
  EXPECT_EQ(frame["workloads"][0]["name"], "train");
  EXPECT_EQ(frame["summary"]["workloads"]["total"], 1) << topj.out;
  EXPECT_EQ(Cli({"top", "--interval", "0s"}).exit_code, 2);

  // Per-workload series: allocated for every placed workload, used as its host's agent measured
  // it. A host speaks only for its own workloads: a figure for one it does not hold is dropped.
  usage.workloads = {
      {.name = "train",
       .cpu = core::MilliCpu(800),
       .memory = core::MemoryMiB(512),
       .gpu_memory = core::MemoryMiB(30720),
       .disk_read_per_second = 1048576,
       .disk_write_per_second = 4096,
       .net_rx_per_second = 250000,
       .net_tx_per_second = 0},
      {.name = "elsewhere", .cpu = core::MilliCpu(100), .memory = core::MemoryMiB(1)}};
  ASSERT_TRUE(host->Heartbeat("gpu-a", usage).ok());

  // The read-only token scrapes; the admin token is not needed.
  api::Client reader(server_->url(), api::ClientOptions{.token = Token("read.token")});
  auto metrics = reader.MetricsText();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  for (const char* series : {
           "berth_host_capacity{host=\"gpu-a\",resource=\"cpu\"} 8",
           "berth_host_allocated{host=\"gpu-a\",resource=\"cpu\"} 2",
           "berth_host_allocated{host=\"gpu-a\",resource=\"gpu\"} 1",
           "berth_host_used{host=\"gpu-a\",resource=\"cpu\"} 1.5",
           "berth_host_used{host=\"gpu-a\",resource=\"memory_bytes\"} 2147483648",
           "berth_host_gpu_allocated{host=\"gpu-a\",gpu=\"0\"} 1",
           "berth_host_gpu_utilization{host=\"gpu-a\",gpu=\"0\"} 0.87",
           "berth_workload_allocated{workload=\"train\",host=\"gpu-a\",resource=\"cpu\"} 2",
           "berth_workload_allocated{workload=\"train\",host=\"gpu-a\",resource=\"gpu\"} 1",
           "berth_workload_used{workload=\"train\",host=\"gpu-a\",resource=\"cpu\"} 0.8",
           "berth_workload_used{workload=\"train\",host=\"gpu-a\",resource=\"memory_bytes\"} "
           "536870912",
           "berth_workload_used{workload=\"train\",host=\"gpu-a\",resource=\"gpu_memory_bytes\"} "
           "32212254720",
           "berth_workload_used{workload=\"train\",host=\"gpu-a\",resource=\"disk_read_bytes_per_"
           "second\"} 1048576",
           "berth_workload_used{workload=\"train\",host=\"gpu-a\",resource=\"disk_write_bytes_per_"
           "second\"} 4096",
           "berth_workload_used{workload=\"train\",host=\"gpu-a\",resource=\"net_rx_bytes_per_"
           "second\"} 250000",
           "berth_workload_used{workload=\"train\",host=\"gpu-a\",resource=\"net_tx_bytes_per_"
           "second\"} 0",
           "berth_workload_series_omitted{} 0",
       }) {
    EXPECT_NE(metrics->find(series), std::string::npos) << series << "\n" << *metrics;
  }
  EXPECT_EQ(metrics->find("workload=\"elsewhere\""), std::string::npos) << *metrics;
  // Every series the shipped Grafana dashboard queries is one the server exports.
  std::string dashboard = ReadFile("docs/grafana-dashboard.json");
  ASSERT_FALSE(dashboard.empty());
  std::regex name(R"(berth_[a-z_]+)");
  int names = 0;
  for (auto it = std::sregex_iterator(dashboard.begin(), dashboard.end(), name);
       it != std::sregex_iterator(); ++it, ++names) {
    EXPECT_NE(metrics->find("\n" + it->str() + "{"), std::string::npos)
        << it->str() << " is not exported";
  }
  EXPECT_GT(names, 5);

  // Without a token, no scrape; the read-only token changes nothing.
  api::Client anonymous(server_->url());
  EXPECT_TRUE(absl::IsUnauthenticated(anonymous.MetricsText().status()));
  auto stop = reader.StopWorkload("train");
  EXPECT_TRUE(absl::IsPermissionDenied(stop.status())) << stop.status();
  EXPECT_TRUE(absl::IsPermissionDenied(reader.Logs("train").status()));
  EXPECT_TRUE(reader.ListWorkloads().ok());
}

}  // namespace
}  // namespace berth::e2e
