// Seconds for one `berth sim fill` run (single core) of the default generated cluster: 1,200
// hosts with 6,000 GPUs and 10,000 requests padded to 130% of GPU capacity, for each policy,
// with the ratio to first-fit measured in the same run. Usage: bench_sim [POLICY,...] [REPEATS]
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "sim/args.h"
#include "sim/fill.h"
#include "sim/generate.h"
#include "sim/report.h"
#include "sim/sched_engine.h"

int main(int argc, char** argv) {
  using namespace berth::sim;
  std::string policy_list = argc > 1 ? argv[1] : "first-fit,binpack,spread,dotprod,gpu-packing,fgd";
  int repeats = argc > 2 ? std::max(1, std::atoi(argv[2])) : 3;
  auto policies = ParsePolicies(policy_list);
  if (!policies.ok()) {
    std::fprintf(stderr, "%s\n", std::string(policies.status().message()).c_str());
    return 2;
  }
  if (std::find(policies->begin(), policies->end(), "first-fit") == policies->end()) {
    policies->insert(policies->begin(), "first-fit");  // the baseline
  }
  GenerateOptions options;  // 1,200 hosts, 6,000 GPUs, 10,000 requests
  auto cluster = GenerateCluster(options);
  auto trace = cluster.ok() ? GenerateTrace(options, *cluster) : cluster.status();
  if (!trace.ok()) {
    std::fprintf(stderr, "%s\n", std::string(trace.status().message()).c_str());
    return 1;
  }
  std::printf(
      "fill: %zu hosts, %lld GPUs, %zu requests padded to 130%%; best of %d runs, one core\n",
      cluster->hosts.size(), static_cast<long long>(cluster->TotalGpus()), trace->requests.size(),
      repeats);
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
  json["benchmark"] = "sim";
  json["hosts"] = cluster->hosts.size();
  json["gpus"] = cluster->TotalGpus();
  json["requests"] = trace->requests.size();
  double baseline = 0;
  for (const std::string& policy : *policies) {
    double best = 1e300;
    FillResult last;
    for (int i = 0; i < repeats; ++i) {
      FillOptions fill;
      fill.policy = policy;
      fill.seed = 42 + static_cast<uint64_t>(i);
      auto result = RunFill(*cluster, *trace, fill, SchedEngineFactory());
      if (!result.ok()) {
        std::fprintf(stderr, "%s: %s\n", policy.c_str(),
                     std::string(result.status().message()).c_str());
        return 1;
      }
      best = std::min(best, result->seconds);
      last = *std::move(result);
    }
    if (policy == "first-fit") baseline = best;
    double ratio = baseline > 0 ? best / baseline : 0;
    std::printf(
        "  %-12s %8.3f s/run  %6.2fx first-fit  (%lld offered, unallocated %.2f%% @100%%)\n",
        policy.c_str(), best, ratio, static_cast<long long>(last.offered), last.UnallocatedAt100());
    nlohmann::ordered_json p = nlohmann::ordered_json::object();
    p["seconds_per_run"] = best;
    p["ratio_to_first_fit"] = ratio;
    p["offered"] = last.offered;
    p["unallocated_gpu_pct_at_100"] = last.UnallocatedAt100();
    json["policies"][policy] = p;
  }
  std::printf("%s\n", json.dump().c_str());
  return 0;
}
