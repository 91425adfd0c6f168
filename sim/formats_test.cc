#include "sim/formats.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/generate.h"

namespace berth::sim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(AlibabaFormatTest, ParsesNodeList) {
  auto cluster = ParseCluster(
      "sn,cpu_milli,memory_mib,gpu,model\n"
      "openb-node-0001,64000,262144,2,G2\n"
      "openb-node-0002,96000,786432,8,V100M32\r\n"
      "openb-node-0003,32000,131072,0,\n",
      TraceFormat::kAlibabaGpu2023, "nodes.csv");
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_EQ(cluster->hosts.size(), 3u);
  EXPECT_EQ(cluster->hosts[0].name, "openb-node-0001");
  EXPECT_EQ(cluster->hosts[0].cpu_milli, 64000);
  EXPECT_EQ(cluster->hosts[0].memory_mib, 262144);
  EXPECT_EQ(cluster->hosts[1].gpu_count, 8);
  EXPECT_EQ(cluster->hosts[1].gpu_model, "V100M32");
  EXPECT_EQ(cluster->hosts[2].gpu_count, 0);
  EXPECT_EQ(cluster->TotalGpus(), 10);
  EXPECT_EQ(cluster->TotalGpuMilli(), 10000);
}

TEST(AlibabaFormatTest, ParsesFullPodList) {
  auto trace = ParseTrace(
      "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
      "deletion_time,scheduled_time\n"
      "openb-pod-0000,12000,16384,1,1000,,LS,Running,0,12537496,0\n"
      "openb-pod-0001,6000,12288,1,460,V100M16|V100M32|V100M16,BE,Succeeded,100,200,150\n"
      "openb-pod-0002,8000,30000,0,0,,LS,Running,120,,\n"
      "openb-pod-0003,88000,327680,8,1000,G3,LS,Running,121,500,130\n",
      TraceFormat::kAlibabaGpu2023, "pods.csv");
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->requests.size(), 4u);
  const SimRequest& shared = trace->requests[1];
  EXPECT_EQ(shared.num_gpu, 1);
  EXPECT_EQ(shared.gpu_milli, 460);
  EXPECT_THAT(shared.gpu_models, ElementsAre("V100M16", "V100M32"));  // a set
  EXPECT_EQ(shared.qos, "BE");
  EXPECT_EQ(shared.phase, "Succeeded");
  EXPECT_EQ(shared.creation_time, 100);
  EXPECT_EQ(shared.deletion_time, 200);
  EXPECT_EQ(shared.scheduled_time, 150);
  EXPECT_EQ(trace->requests[0].gpu_models.size(), 0u);  // empty spec: any model
  EXPECT_EQ(trace->requests[2].TotalGpuMilli(), 0);
  EXPECT_EQ(trace->requests[2].deletion_time, kNoTime);
  EXPECT_EQ(trace->requests[3].TotalGpuMilli(), 8000);
}

TEST(AlibabaFormatTest, ParsesFiveColumnPodList) {
  auto trace = ParseTrace(
      "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n"
      "p1,4000,8192,1,250\n"
      "p2,4000,8192,2,1000\n",
      TraceFormat::kAlibabaGpu2023, "pods.csv");
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->requests.size(), 2u);
  EXPECT_EQ(trace->requests[0].gpu_milli, 250);
  EXPECT_EQ(trace->requests[0].creation_time, kNoTime);
  EXPECT_EQ(trace->requests[1].TotalGpuMilli(), 2000);
}

TEST(AlibabaFormatTest, ErrorsNameFileLineObjectAndField) {
  auto bad_share = ParseTrace("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np1,1,1,2,500\n",
                              TraceFormat::kAlibabaGpu2023, "pods.csv");
  ASSERT_FALSE(bad_share.ok());
  EXPECT_THAT(Message(bad_share.status()), HasSubstr("pods.csv line 2"));
  EXPECT_THAT(Message(bad_share.status()), HasSubstr("\"p1\""));
  EXPECT_THAT(Message(bad_share.status()), HasSubstr("gpu_milli"));

  auto bad_number = ParseCluster("sn,cpu_milli,memory_mib,gpu,model\nn1,lots,1,1,A\n",
                                 TraceFormat::kAlibabaGpu2023, "nodes.csv");
  ASSERT_FALSE(bad_number.ok());
  EXPECT_THAT(Message(bad_number.status()), HasSubstr("host \"n1\": cpu_milli"));

  auto missing = ParseTrace("name,cpu_milli\np1,1\n", TraceFormat::kAlibabaGpu2023, "pods.csv");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(Message(missing.status()), HasSubstr("missing column \"memory_mib\""));

  auto negative = ParseCluster("sn,cpu_milli,memory_mib,gpu,model\nn1,1,1,-3,A\n",
                               TraceFormat::kAlibabaGpu2023, "nodes.csv");
  ASSERT_FALSE(negative.ok());
  EXPECT_THAT(Message(negative.status()), HasSubstr("gpus must be >= 0, got -3"));
}

TEST(BerthFormatTest, ParsesHandWrittenYaml) {
  auto cluster = ParseCluster(R"(
hosts:
  - name: a100
    cpu: 96
    memory: 512Gi
    gpus: 8
    gpu_model: A100
    gpu_memory: 80Gi
    labels: {zone: a}
    count: 3
  - name: cpu-1
    cpu: 500m
    memory: 1Gi
)",
                              TraceFormat::kBerthYaml, "cluster.yaml");
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_EQ(cluster->hosts.size(), 4u);
  EXPECT_EQ(cluster->hosts[0].name, "a100-1");
  EXPECT_EQ(cluster->hosts[2].name, "a100-3");
  EXPECT_EQ(cluster->hosts[0].cpu_milli, 96000);
  EXPECT_EQ(cluster->hosts[0].memory_mib, 512 * 1024);
  EXPECT_EQ(cluster->hosts[0].gpu_memory_mib, 80 * 1024);
  EXPECT_EQ(cluster->hosts[0].labels.at("zone"), "a");
  EXPECT_EQ(cluster->hosts[3].cpu_milli, 500);

  auto trace = ParseTrace(R"(
requests:
  - {name: train, cpu: 8, memory: 32Gi, gpus: 2, gpu_models: [A100], priority: 5,
     arrival: 10, departure: 70}
  - {name: infer, cpu: 2, memory: 4Gi, gpus: 1, gpu_milli: 250}
  - {name: etl, cpu: 4, memory: 8Gi}
)",
                          TraceFormat::kBerthYaml, "trace.yaml");
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->requests.size(), 3u);
  EXPECT_EQ(trace->requests[0].TotalGpuMilli(), 2000);
  EXPECT_EQ(trace->requests[0].priority, 5);
  EXPECT_EQ(trace->requests[0].creation_time, 10);
  EXPECT_EQ(trace->requests[0].deletion_time, 70);
  EXPECT_THAT(trace->requests[0].gpu_models, ElementsAre("A100"));
  EXPECT_EQ(trace->requests[1].gpu_milli, 250);
  EXPECT_EQ(trace->requests[2].num_gpu, 0);
}

TEST(BerthFormatTest, ErrorsNamePositionObjectAndField) {
  auto bad =
      ParseTrace("requests:\n  - {name: x, cpu: lots}\n", TraceFormat::kBerthYaml, "trace.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Message(bad.status()), HasSubstr("requests[0]"));
  EXPECT_THAT(Message(bad.status()), HasSubstr("request \"x\": cpu"));
  EXPECT_FALSE(ParseTrace("{", TraceFormat::kBerthJson, "t.json").ok());
  EXPECT_FALSE(ParseTrace("requests: [", TraceFormat::kBerthYaml, "t.yaml").ok());
  EXPECT_FALSE(ParseCluster("{\"nodes\": []}", TraceFormat::kBerthJson, "c.json").ok());
  auto csv = ParseCluster("name,cpu,memory,gpus\nh1,2,1Gi,x\n", TraceFormat::kBerthCsv, "c.csv");
  ASSERT_FALSE(csv.ok());
  EXPECT_THAT(Message(csv.status()), HasSubstr("c.csv line 2: host \"h1\": gpus"));
}

class RoundTripTest : public ::testing::TestWithParam<TraceFormat> {};

TEST_P(RoundTripTest, GeneratedFilesParseBackEqual) {
  GenerateOptions o;
  o.hosts = *ParseHostShapes("3:8:A100:96:512Gi:80Gi,2:2:T4:32:128Gi,1:0::16:64Gi");
  o.requests = 200;
  o.high_priority_permille = 100;
  SimCluster cluster = *GenerateCluster(o);
  SimTrace trace = *GenerateTrace(o, cluster);
  const TraceFormat format = GetParam();
  auto cluster_back = ParseCluster(FormatCluster(cluster, format), format, "cluster");
  auto trace_back = ParseTrace(FormatTrace(trace, format), format, "trace");
  ASSERT_TRUE(cluster_back.ok()) << cluster_back.status();
  ASSERT_TRUE(trace_back.ok()) << trace_back.status();
  if (format == TraceFormat::kAlibabaGpu2023) {
    // The Alibaba files hold no labels, GPU memory or priority.
    for (SimHost& h : cluster.hosts) {
      h.labels.clear();
      h.gpu_memory_mib = 0;
    }
    for (SimRequest& r : trace.requests) r.priority = 0;
  } else {
    // Berth's formats carry no pod phase.
    for (SimRequest& r : trace.requests) r.phase.clear();
  }
  EXPECT_EQ(*cluster_back, cluster);
  EXPECT_EQ(*trace_back, trace);
  // Auto-detection finds the same format from the text.
  auto detected = ParseTrace(FormatTrace(trace, format), TraceFormat::kAuto, "trace");
  ASSERT_TRUE(detected.ok()) << detected.status();
  EXPECT_EQ(detected->requests.size(), trace.requests.size());
}

INSTANTIATE_TEST_SUITE_P(AllFormats, RoundTripTest,
                         ::testing::Values(TraceFormat::kAlibabaGpu2023, TraceFormat::kBerthYaml,
                                           TraceFormat::kBerthJson, TraceFormat::kBerthCsv));

TEST(DetectFormatTest, UsesExtensionThenHeader) {
  EXPECT_EQ(DetectFormat("c.yaml", "", TraceFormat::kAuto), TraceFormat::kBerthYaml);
  EXPECT_EQ(DetectFormat("c.json", "", TraceFormat::kAuto), TraceFormat::kBerthJson);
  EXPECT_EQ(DetectFormat("n.csv", "sn,cpu_milli,memory_mib,gpu,model\n", TraceFormat::kAuto),
            TraceFormat::kAlibabaGpu2023);
  EXPECT_EQ(DetectFormat("c.csv", "name,cpu,memory\n", TraceFormat::kAuto), TraceFormat::kBerthCsv);
  EXPECT_EQ(DetectFormat("c.csv", "name,cpu\n", TraceFormat::kBerthYaml), TraceFormat::kBerthYaml);
  EXPECT_FALSE(ParseTraceFormat("xml").ok());
  EXPECT_EQ(*ParseTraceFormat("alibaba-gpu-2023"), TraceFormat::kAlibabaGpu2023);
}

TEST(FilesTest, CheckedInSamplesLoad) {
  auto nodes = LoadCluster("sim/testdata/small/nodes.csv", TraceFormat::kAlibabaGpu2023);
  auto pods = LoadTrace("sim/testdata/small/pods.csv", TraceFormat::kAlibabaGpu2023);
  auto yaml = LoadCluster("sim/testdata/small/cluster.yaml", TraceFormat::kAuto);
  auto trace_yaml = LoadTrace("sim/testdata/small/trace.yaml", TraceFormat::kAuto);
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  ASSERT_TRUE(pods.ok()) << pods.status();
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  ASSERT_TRUE(trace_yaml.ok()) << trace_yaml.status();
  EXPECT_EQ(nodes->hosts.size(), yaml->hosts.size());
  EXPECT_EQ(pods->requests.size(), trace_yaml->requests.size());
  EXPECT_FALSE(LoadCluster("sim/testdata/does-not-exist.csv", TraceFormat::kAuto).ok());
}

}  // namespace
}  // namespace berth::sim
