// Services on a fleet (tests/cluster/cluster.h, two hosts): the server probes each replica at the
// address its host's heartbeats come from, where the host's agent publishes a VM replica's port,
// and its endpoint forwards there. A warm-started VM service saves its first replica on that
// replica's host; the replica a scale-up adds goes to the other host (a service spreads), whose
// agent copies the state through the server and resumes from it. Needs root and the test
// images; skips otherwise.

#include <iostream>
#include <string>

#include "api/http/client.h"
#include "gtest/gtest.h"
#include "tests/cluster/cluster.h"
#include "tests/cluster/test_images.h"

namespace berth::cluster {
namespace {

using e2e::Eventually;

class ClusterServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string skip = SkipReason();
    if (!skip.empty()) GTEST_SKIP() << skip;
    const std::string images = ImagesDir();
    cluster_ = std::make_unique<Cluster>(ClusterOptions{
        .hosts = 2,
        .images = {
            {"tiny-vm",
             {.kernel = images + "/tiny-vm/vmlinuz", .initrd = images + "/tiny-vm/initrd.img"}}}});
    ASSERT_EQ(cluster_->Start(), "");
  }
  void TearDown() override {
    if (!cluster_) return;
    auto deleted = cluster_->client().DeleteService("web");
    if (deleted.ok()) {
      EXPECT_TRUE(Eventually(
          [&] { return absl::IsNotFound(cluster_->client().GetService("web").status()); }));
    }
    EXPECT_TRUE(cluster_->DeleteAllWorkloads());
    cluster_.reset();
  }

  std::string Dump() {
    api::Raw raw;
    return cluster_->client().GetService("web", &raw).ok() ? raw.body.dump() : std::string();
  }
  // GET /healthz at address:port: the body of a 200, else "".
  static std::string Answer(const std::string& address, int port) {
    api::HttpClient http("http://" + address + ":" + std::to_string(port),
                         api::HttpClientOptions{.timeout = absl::Seconds(5)});
    auto r = http.Get("/healthz");
    return r.ok() && r->status == 200 ? r->body : std::string();
  }

  std::unique_ptr<Cluster> cluster_;
};

TEST_F(ClusterServiceTest, AReplicaOnAnotherHostResumesFromTheWarmStateCopiedThere) {
  // The guest "loads a model" (random bytes: each booted guest answers another checksum).
  const std::string guest =
      "mkdir -p /www && head -c 16777216 /dev/urandom > /model && "
      "sha256sum /model | cut -c1-64 > /www/healthz && exec httpd -f -p 8080 -h /www";
  const int endpoint = e2e::FreeEndpointPort();
  ASSERT_GT(endpoint, 0);
  const std::string yaml = R"(name: web
kind: service
replicas: 1
port: 8080
warm_start: snapshot
health: {http: /healthz, interval: 500ms, timeout: 400ms, failure_threshold: 3, start_period: 3m}
endpoint: {host_port: )" + std::to_string(endpoint) +
                           R"(}
template:
  kind: vm
  image: tiny-vm
  command: ["sh", "-c", ")" +
                           guest + R"("]
  resources: {cpu: 1, memory: 192Mi}
)";
  auto created = cluster_->client().CreateServiceFromText(yaml, "application/yaml");
  ASSERT_TRUE(created.ok()) << created.status();
  auto service = [&] { return cluster_->client().GetService("web"); };
  // Ready, which the server learned by probing the replica at its host's address, and saved.
  ASSERT_TRUE(Eventually(
      [&] {
        auto s = service();
        return s.ok() && s->status.ready == 1 && s->status.warm && s->status.warm->revision == 1;
      },
      240))
      << Dump();
  auto s = service();
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->status.replicas.size(), 1u);
  const std::string first_host = s->status.replicas[0].host;
  EXPECT_EQ(s->status.warm->host, first_host);
  const int first = cluster_->IndexOf(first_host);
  const std::string checksum = Answer(cluster_->HostAddress(first), s->status.replicas[0].port);
  ASSERT_EQ(checksum.size(), 65u) << "the replica answers at its host's address: " << checksum;
  // The endpoint, on the server, forwards to it across the bed's network.
  EXPECT_EQ(Answer(cluster_->ServerAddress(), endpoint), checksum) << Dump();

  // The next replica spreads to the other host, which copies the state and resumes from it.
  ASSERT_TRUE(cluster_->client().ScaleService("web", 2).ok());
  ASSERT_TRUE(Eventually(
      [&] {
        auto now = service();
        return now.ok() && now->status.ready == 2;
      },
      240))
      << Dump();
  s = service();
  ASSERT_TRUE(s.ok());
  const core::ReplicaStatus* second = nullptr;
  for (const auto& r : s->status.replicas) {
    if (r.host != first_host) second = &r;
  }
  ASSERT_NE(second, nullptr) << "the replicas spread over both hosts: " << Dump();
  auto w = cluster_->client().GetWorkload(second->workload);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_NE(w->status.reason.find("resumed from warm state web.r1"), std::string::npos)
      << w->status.reason << "\n"
      << e2e::ReadFile(cluster_->AgentLog(cluster_->IndexOf(second->host)));
  const int other = cluster_->IndexOf(second->host);
  EXPECT_EQ(Answer(cluster_->HostAddress(other), second->port), checksum)
      << "the replica on " << second->host << " did not resume the first one's guest";
  const std::string log = e2e::ReadFile(cluster_->AgentLog(other));
  const size_t copied = log.find("copied warm state web.r1 from another host");
  ASSERT_NE(copied, std::string::npos) << log;
  EXPECT_EQ(s->status.warm->restores, 1);
  std::cout << "warm state of " << (s->status.warm->bytes >> 20)
            << " MiB: " << log.substr(copied, log.find('\n', copied) - copied) << std::endl;
}

}  // namespace
}  // namespace berth::cluster
