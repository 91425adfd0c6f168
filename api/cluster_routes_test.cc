// Several API servers on one store: a follower forwards writes to the leader, says 503 with
// X-Berth-Unapplied when it has no leader to send them to, and GET /v1/status tells who leads.
// The typed client moves along its server list: on to the next server when a connection cannot
// be made, a read asked again when its answer was lost, a write whose answer was lost not resent.
#include "api/cluster_routes.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>

#include "api/api_server.h"
#include "api/client/client.h"
#include "control/control_plane.h"
#include "control/leader.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::api {
namespace {

core::WorkloadSpec Spec(const std::string& name) {
  core::WorkloadSpec spec;
  spec.name = name;
  spec.kind = core::WorkloadKind::kProcess;
  spec.command = {"/bin/true"};
  spec.resources.cpu = core::MilliCpu(100);
  spec.resources.memory = core::MemoryMiB(16);
  return spec;
}

// One server: its election (stepped by the test), fenced control plane and API.
struct Server {
  Server(state::Store* store, const std::string& id)
      : election(store, {.id = id}, control::LeaderElectionOptions{.lease_ttl = absl::Minutes(5)}),
        fenced(store, [this] { return election.token(); }),
        control(&fenced, control::ControlPlaneOptions{.policy = "binpack"}),
        api(ApiServerOptions{.admin_token = "admin"}, &control, nullptr) {
    AddClusterRoutes(api.router(), &election,
                     StoreDescription{.kind = "memory", .endpoints = {"here"}},
                     ClusterRoutesOptions{.forward_connect_timeout = absl::Seconds(1)});
  }
  std::string Start() {
    auto port = api.Start();
    EXPECT_TRUE(port.ok()) << port.status();
    url = "http://127.0.0.1:" + std::to_string(port.value_or(0));
    election.SetAddress(url);
    return url;
  }
  control::LeaderElection election;
  control::FencedStore fenced;
  control::ControlPlane control;
  ApiServer api;
  std::string url;
};

// A loopback listener that takes each request and closes the connection without answering: the
// answer to whatever was sent is lost.
class BlackHole {
 public:
  BlackHole() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      while (true) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0 || stop_) {
          if (c >= 0) close(c);
          return;
        }
        char buf[4096];
        if (read(c, buf, sizeof buf) > 0) ++requests_;
        close(c);
      }
    });
  }
  ~BlackHole() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

// A port nothing listens on: a connect is refused.
std::string RefusingUrl() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), len);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
}

class ClusterRoutesTest : public ::testing::Test {
 protected:
  ClusterRoutesTest() : a_(&store_, "server-a"), b_(&store_, "server-b") {}
  void SetUp() override {
    a_.Start();
    b_.Start();
    ASSERT_TRUE(a_.election.Step().ok());
    ASSERT_TRUE(b_.election.Step().ok());
    ASSERT_TRUE(a_.election.IsLeader());
    ASSERT_FALSE(b_.election.IsLeader());
  }
  void TearDown() override {
    a_.api.Stop();
    b_.api.Stop();
  }
  Client Admin(const std::string& urls, absl::Duration failover_wait = absl::Seconds(20)) {
    return Client(urls, ClientOptions{.token = "admin",
                                      .timeout = absl::Seconds(10),
                                      .connect_timeout = absl::Seconds(2),
                                      .failover_wait = failover_wait});
  }

  state::MemoryStore store_;
  Server a_, b_;
};

TEST_F(ClusterRoutesTest, AFollowerForwardsWritesToTheLeaderAndAnswersReadsItself) {
  Client via_b = Admin(b_.url);
  auto created = via_b.CreateWorkload(Spec("one"));
  ASSERT_TRUE(created.ok()) << created.status();
  // The follower's own control plane cannot write: the leader did.
  EXPECT_TRUE(absl::IsUnavailable(b_.control.CreateWorkload(Spec("direct")).status()));
  auto read = via_b.GetWorkload("one");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->status.state, core::WorkloadState::kPending);
  // Errors come back from the leader as they are.
  EXPECT_TRUE(absl::IsAlreadyExists(via_b.CreateWorkload(Spec("one")).status()));
  auto deleted = via_b.DeleteWorkload("one");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_TRUE(absl::IsNotFound(via_b.GetWorkload("one").status()));
}

TEST_F(ClusterRoutesTest, StatusNamesTheLeaderTheMembersAndTheStore) {
  for (const std::string& url : {a_.url, b_.url}) {
    auto status = Admin(url).ClusterStatus();
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ((*status)["leader"]["id"], "server-a");
    EXPECT_EQ((*status)["leader"]["address"], a_.url);
    EXPECT_GT((*status)["leader"]["term"].get<int64_t>(), 0);
    EXPECT_EQ((*status)["members"].size(), 2u);
    EXPECT_EQ((*status)["store"]["kind"], "memory");
    EXPECT_EQ((*status)["server"]["leader"], url == a_.url);
  }
  // Status needs the admin token like every other route.
  Client anonymous(b_.url);
  EXPECT_TRUE(absl::IsUnauthenticated(anonymous.ClusterStatus().status()));
}

TEST_F(ClusterRoutesTest, AFollowerWithoutAReachableLeaderAppliesNothingAndSaysSo) {
  a_.api.Stop();  // the leader's API is gone; b still names it
  HttpClient raw(b_.url, HttpClient::Options{.bearer_token = "admin"});
  auto answer = raw.Post("/v1/workloads", core::EncodeWorkloadSpec(Spec("lost")).dump());
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->status, 503);
  EXPECT_EQ(answer->Header(kUnappliedHeader).value_or(""), "true");
  // The typed client sends it again for failover_wait, then gives up with Unavailable.
  Client via_b = Admin(b_.url, absl::Milliseconds(300));
  EXPECT_TRUE(absl::IsUnavailable(via_b.CreateWorkload(Spec("lost")).status()));
  EXPECT_FALSE(store_.Get(control::WorkloadKey("lost"))->kv.has_value());
}

TEST_F(ClusterRoutesTest, TheClientMovesOnWhenAServerCannotBeReached) {
  Client client = Admin(RefusingUrl() + "," + a_.url);
  auto created = client.CreateWorkload(Spec("moved-on"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(client.base_url(), a_.url);
  EXPECT_TRUE(client.GetWorkload("moved-on").ok());
  // Servers without a scheme get http://.
  Client bare = Admin(a_.url.substr(7));
  EXPECT_TRUE(bare.GetWorkload("moved-on").ok());
}

TEST_F(ClusterRoutesTest, AWriteWhoseAnswerWasLostIsNotSentTwiceButAReadIs) {
  BlackHole hole;
  Client writes = Admin(hole.url() + "," + a_.url);
  auto created = writes.CreateWorkload(Spec("maybe"));
  ASSERT_FALSE(created.ok());
  EXPECT_TRUE(absl::IsUnavailable(created.status())) << created.status();
  EXPECT_NE(created.status().message().find("may have been applied"), std::string::npos)
      << created.status();
  EXPECT_FALSE(store_.Get(control::WorkloadKey("maybe"))->kv.has_value());
  Client reads = Admin(hole.url() + "," + a_.url);
  auto list = reads.ListWorkloads();
  EXPECT_TRUE(list.ok()) << list.status();
  EXPECT_GE(hole.requests(), 1);
}

TEST_F(ClusterRoutesTest, AnUnappliedAnswerIsSentOnToTheNextServer) {
  state::MemoryStore other;
  Server c(&other, "server-c");  // never stepped: it knows no leader
  c.Start();
  Client client = Admin(c.url + "," + a_.url);
  auto created = client.CreateWorkload(Spec("second-try"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(store_.Get(control::WorkloadKey("second-try"))->kv.has_value());
  c.api.Stop();
}

TEST_F(ClusterRoutesTest, ADeposedLeaderRefusesWritesAsUnapplied) {
  // b takes over while a, which has not noticed yet, still believes it leads.
  ASSERT_TRUE(store_.Delete(control::kLeaderKey).ok());
  ASSERT_TRUE(b_.election.Step().ok());
  ASSERT_TRUE(b_.election.IsLeader());
  ASSERT_TRUE(a_.election.IsLeader());
  HttpClient raw(a_.url, HttpClient::Options{.bearer_token = "admin"});
  auto answer = raw.Post("/v1/workloads", core::EncodeWorkloadSpec(Spec("late")).dump());
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->status, 503) << answer->body;
  EXPECT_EQ(answer->Header(kUnappliedHeader).value_or(""), "true");
  EXPECT_FALSE(store_.Get(control::WorkloadKey("late"))->kv.has_value());
  // The typed client sends it on to the next server, the new leader.
  auto created = Admin(a_.url + "," + b_.url).CreateWorkload(Spec("late"));
  ASSERT_TRUE(created.ok()) << created.status();
}

}  // namespace
}  // namespace berth::api
