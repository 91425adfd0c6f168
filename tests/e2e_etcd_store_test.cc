// `berth serve --store etcd://...`: the server keeps its state in a real etcd cluster the test
// starts on loopback, so what it acknowledged survives a SIGKILL of the server without any
// local database; a malformed or unreachable store is refused before anything serves.
#include <signal.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "state/etcd/etcd_test_util.h"
#include "tests/e2e_util.h"

namespace berth::e2e {
namespace {

constexpr char kPending[] = R"(name: kept
kind: process
command: ["/bin/sleep", "3600"]
resources: {cpu: 500m, memory: 64Mi}
)";

TEST(ServeEtcdStoreTest, AcknowledgedWritesLiveInEtcdAndSurviveAKill) {
  auto cluster = state::testing::EtcdCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::string url = "etcd://" + (*cluster)->endpoint(0);
  const std::string dir = TempDir("e2e-etcd-store");
  {
    // No --dev: no host registers, so the workload stays pending and nothing runs.
    DevServer server(dir, {"--store", url});
    ASSERT_TRUE(server.Start()) << ReadFile(dir + "/serve.log");
    auto created = server.client().CreateWorkloadFromText(kPending, "application/yaml");
    ASSERT_TRUE(created.ok()) << created.status();
    server.Kill(SIGKILL);
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/berth.db")) << "the state went to SQLite";
  {
    DevServer again(dir, {"--store", url});
    ASSERT_TRUE(again.Start()) << ReadFile(dir + "/serve.log");
    auto kept = again.client().GetWorkload("kept");
    ASSERT_TRUE(kept.ok()) << kept.status();
    EXPECT_EQ(kept->spec.name, "kept");
    auto deleted = again.client().DeleteWorkload("kept");
    EXPECT_TRUE(deleted.ok()) << deleted.status();
  }
  std::filesystem::remove_all(dir);
}

TEST(ServeEtcdStoreTest, AMalformedOrUnreachableStoreIsRefused) {
  const std::string dir = TempDir("e2e-etcd-bad");
  Result bad = e2e::Run(dir, {"serve", "--listen", "127.0.0.1:0", "--store", "mysql://db"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--store"), std::string::npos) << bad.err;
  // Port 1 on loopback: nothing answers, so the server says so and exits 1.
  Result unreachable =
      e2e::Run(dir, {"serve", "--listen", "127.0.0.1:0", "--store", "etcd://127.0.0.1:1"});
  EXPECT_EQ(unreachable.exit_code, 1) << unreachable.err;
  EXPECT_NE(unreachable.err.find("cannot open the store"), std::string::npos) << unreachable.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/server.json"));
  // A lease shorter than a second or longer than ten minutes is refused before anything starts.
  for (const char* ttl : {"0s", "500ms", "11m", "soon"}) {
    Result refused = e2e::Run(dir, {"serve", "--listen", "127.0.0.1:0", "--lease-ttl", ttl});
    EXPECT_EQ(refused.exit_code, 2) << ttl << ": " << refused.err;
    EXPECT_NE(refused.err.find("--lease-ttl"), std::string::npos) << refused.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/server.json"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace berth::e2e
