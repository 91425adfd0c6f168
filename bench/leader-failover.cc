// bench/run leader-failover [ROUNDS]: how long Berth's control plane stops placing work when its
// leading server dies. Three `berth serve --store etcd://...` processes share a three-member etcd
// cluster on loopback, with one `berth agent`. Each round SIGKILLs the leading server and at once
// creates a workload through the survivors (retrying every 20 ms while they answer "no leader
// yet"), and measures the seconds from the kill until that workload is placed; the killed server
// then starts again for the next round.
// Baseline, measured in the same run: etcd's own leader election, the seconds from SIGKILL of
// the etcd leader until the other two members agree on a new one. Prints each round, the median
// and max, their ratio to the baseline, and one JSON object as its last line.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "api/client/client.h"
#include "api/http/client.h"
#include "nlohmann/json.hpp"
#include "state/etcd/etcd_test_util.h"
#include "tests/e2e_util.h"

namespace berth {
namespace {

using e2e::DevServer;
using e2e::Eventually;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// The member id of the leader that etcd member `endpoint` knows, or "" (none, or no answer).
std::string EtcdLeader(const std::string& endpoint, std::string* self_id = nullptr) {
  api::HttpClient http(
      "http://" + endpoint,
      api::HttpClient::Options{.timeout = absl::Seconds(2), .connect_timeout = absl::Seconds(1)});
  auto r = http.Post("/v3/maintenance/status", "{}");
  if (!r.ok() || r->status != 200) return "";
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (!j.is_object()) return "";
  if (self_id != nullptr && j.contains("header")) *self_id = j["header"].value("member_id", "");
  std::string leader = j.value("leader", "");
  return leader == "0" ? "" : leader;
}

// Seconds from SIGKILL of etcd's leader until the other members agree on a new one.
absl::StatusOr<double> EtcdElection(state::testing::EtcdCluster& etcd) {
  const std::string leader = EtcdLeader(etcd.endpoint(0));
  int member = -1;
  for (int i = 0; i < etcd.size(); ++i) {
    std::string id;
    EtcdLeader(etcd.endpoint(i), &id);
    if (id == leader) member = i;
  }
  if (member < 0) return absl::InternalError("cannot tell which etcd member leads");
  const absl::Time t0 = absl::Now();
  if (absl::Status s = etcd.Kill(member); !s.ok()) return s;
  bool agreed = Eventually(
      [&] {
        std::string seen;
        for (int i = 0; i < etcd.size(); ++i) {
          if (i == member) continue;
          std::string l = EtcdLeader(etcd.endpoint(i));
          if (l.empty() || l == leader || (!seen.empty() && l != seen)) return false;
          seen = l;
        }
        return true;
      },
      60);
  const double took = absl::ToDoubleSeconds(absl::Now() - t0);
  if (absl::Status s = etcd.Restart(member); !s.ok()) return s;
  if (!agreed) return absl::DeadlineExceededError("etcd elected no new leader in 60s");
  return took;
}

int Main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  auto cluster = state::testing::EtcdCluster::Start(3);
  if (!cluster.ok()) {
    std::fprintf(stderr, "bench_leader-failover: %s\n", cluster.status().ToString().c_str());
    return 1;
  }
  state::testing::EtcdCluster& etcd = **cluster;
  std::string store = "etcd://";
  for (const auto& e : etcd.endpoints()) store += (store.size() > 7 ? "," : "") + e;
  const std::string dir = e2e::TempDir("bench-leader-failover");
  std::vector<std::unique_ptr<DevServer>> servers;
  // A server restarts on its old port, so the agent's and clients' lists stay right.
  auto start = [&](int i) {
    const std::string d = dir + "/server" + std::to_string(i);
    std::string port;
    if (servers[i]) port = servers[i]->url().substr(servers[i]->url().rfind(':') + 1);
    servers[i] = std::make_unique<DevServer>(d, std::vector<std::string>{"--store", store});
    if (!port.empty()) servers[i]->SetListen("127.0.0.1:" + port);
    return servers[i]->Start();
  };
  for (int i = 0; i < 3; ++i) {
    const std::string d = dir + "/server" + std::to_string(i);
    std::filesystem::create_directories(d);
    for (const char* name : {"admin.token", "join.token"}) {
      std::ofstream(d + "/" + name) << name << "-" << getpid() << "\n";
      chmod((d + "/" + name).c_str(), 0600);
    }
    servers.emplace_back();
    if (!start(i)) {
      std::fprintf(stderr, "bench_leader-failover: server %d did not start: %s\n", i,
                   e2e::ReadFile(d + "/serve.log").c_str());
      return 1;
    }
  }
  const std::string token = servers[0]->token();
  auto urls = [&](int skip) {
    std::string list;
    for (int i = 0; i < 3; ++i) {
      if (i != skip) list += (list.empty() ? "" : ",") + servers[i]->url();
    }
    return list;
  };
  pid_t agent =
      e2e::Spawn({"agent", "--server", urls(-1), "--join-token-file", dir + "/server0/join.token",
                  "--data-dir", dir + "/agent", "--name", "bench-host"},
                 dir + "/agent.log");
  // The index of the leading server once `members` servers run, or -1.
  auto leader = [&](size_t members) {
    int found = -1;
    Eventually([&] {
      api::Client c(urls(-1),
                    api::ClientOptions{.token = token, .connect_timeout = absl::Seconds(1)});
      auto s = c.ClusterStatus();
      if (!s.ok() || !(*s)["leader"].is_object() || (*s)["members"].size() != members) {
        return false;
      }
      for (int i = 0; i < 3; ++i) {
        if (servers[i]->url() == (*s)["leader"].value("address", "")) found = i;
      }
      return found >= 0;
    });
    return found;
  };
  auto host_ready = [&] {
    return Eventually([&] {
      api::Client c(urls(-1), api::ClientOptions{.token = token});
      auto h = c.GetHost("bench-host");
      return h.ok() && h->host.state == core::HostState::kReady;
    });
  };
  int rc = 0;
  std::vector<double> failover;
  std::vector<double> election;
  if (!host_ready()) {
    std::fprintf(stderr, "bench_leader-failover: the agent never joined: %s\n",
                 e2e::ReadFile(dir + "/agent.log").c_str());
    rc = 1;
  }
  for (int round = 0; rc == 0 && round < rounds; ++round) {
    const int old = leader(3);
    if (old < 0 || !host_ready()) {
      std::fprintf(stderr, "bench_leader-failover: round %d: no leader or no host\n", round);
      rc = 1;
      break;
    }
    api::Client survivors(urls(old), api::ClientOptions{.token = token,
                                                        .connect_timeout = absl::Seconds(1),
                                                        .failover_wait = absl::ZeroDuration()});
    core::WorkloadSpec spec;
    spec.name = "probe-" + std::to_string(round);
    spec.kind = core::WorkloadKind::kProcess;
    spec.command = {"/bin/true"};
    spec.resources.cpu = core::MilliCpu(10);
    spec.resources.memory = core::MemoryMiB(4);
    const absl::Time t0 = absl::Now();
    servers[old]->Kill(SIGKILL);
    bool created = false;
    bool placed = Eventually(
        [&] {
          if (!created) {
            auto w = survivors.CreateWorkload(spec);
            created = w.ok() || absl::IsAlreadyExists(w.status());
            return false;
          }
          auto w = survivors.GetWorkload(spec.name);
          return w.ok() && !w->status.host.empty();
        },
        120);
    const double took = absl::ToDoubleSeconds(absl::Now() - t0);
    if (!placed) {
      std::fprintf(stderr, "bench_leader-failover: round %d: never placed\n", round);
      rc = 1;
      break;
    }
    failover.push_back(took);
    std::printf("round %d: leader killed -> next placement %.3f s\n", round, took);
    std::fflush(stdout);
    if (!start(old)) {
      std::fprintf(stderr, "bench_leader-failover: server %d did not restart\n", old);
      rc = 1;
      break;
    }
    auto e = EtcdElection(etcd);
    if (!e.ok()) {
      std::fprintf(stderr, "bench_leader-failover: %s\n", e.status().ToString().c_str());
      rc = 1;
      break;
    }
    election.push_back(*e);
    std::printf("round %d: etcd leader killed -> new etcd leader %.3f s\n", round, *e);
    std::fflush(stdout);
  }
  // Clean up: the probes, the agent, the servers, etcd, the directory.
  for (auto& s : servers) {
    if (s && s->pid() > 0) {
      e2e::DeleteAllWorkloads(*s);
      break;
    }
  }
  e2e::KillAndReap(agent, SIGTERM);
  servers.clear();
  cluster->reset();
  std::filesystem::remove_all(dir);
  if (rc != 0 || failover.empty()) return rc == 0 ? 1 : rc;
  const double median = Median(failover);
  const double max = *std::max_element(failover.begin(), failover.end());
  const double base = Median(election);
  std::printf("%-34s %8s %8s\n", "", "median", "max");
  std::printf("%-34s %7.3fs %7.3fs\n", "berth leader killed -> placement", median, max);
  std::printf("%-34s %7.3fs %7.3fs\n", "etcd leader killed -> new leader", base,
              *std::max_element(election.begin(), election.end()));
  std::printf("ratio berth failover / etcd election (medians): %.2f (lease ttl 3s)\n",
              median / base);
  std::printf(
      "{\"bench\":\"leader-failover\",\"rounds\":%zu,\"failover_median_s\":%.3f,"
      "\"failover_max_s\":%.3f,\"etcd_election_median_s\":%.3f,\"ratio\":%.3f,"
      "\"lease_ttl_s\":3}\n",
      failover.size(), median, max, base, median / base);
  return 0;
}

}  // namespace
}  // namespace berth

int main(int argc, char** argv) { return berth::Main(argc, argv); }
