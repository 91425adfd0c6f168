// Who may call what: the admin token, the join token, and each host's own credential, over
// HTTP against an ApiServer on a loopback port.
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "api/api_server.h"
#include "api/client/client.h"
#include "api/http/client.h"
#include "api/http/http_test_util.h"
#include "core/clock.h"
#include "core/quantity.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::api {
namespace {

using core::Json;

constexpr char kAdmin[] = "admin-secret";
constexpr char kJoin[] = "join-secret";

wire::HostRegistration Registration(const std::string& name, const std::string& cpu = "2") {
  wire::HostRegistration reg{.name = name};
  reg.inventory.capacity.cpu = *core::ParseCpu(cpu);
  reg.inventory.capacity.memory = *core::ParseMemory("1Gi");
  return reg;
}

std::string Message(const absl::StatusOr<HttpResponse>& r) {
  if (!r.ok()) return std::string(r.status().message());
  Json j = Json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("error")) return r->body;
  return j["error"].value("message", "");
}

// The store as the server sees it: the test's store, telling when a watch on the workloads
// begins (a long-poll parked).
class WatchSignallingStore : public state::Store {
 public:
  explicit WatchSignallingStore(state::Store* inner) : inner_(inner) {}
  absl::StatusOr<state::GetResponse> Get(std::string_view key) override { return inner_->Get(key); }
  absl::StatusOr<state::ListResponse> List(std::string_view prefix,
                                           const state::ListOptions& options) override {
    return inner_->List(prefix, options);
  }
  absl::StatusOr<int64_t> Revision() override { return inner_->Revision(); }
  absl::StatusOr<state::TxnResponse> Txn(const state::TxnRequest& request) override {
    return inner_->Txn(request);
  }
  absl::StatusOr<std::unique_ptr<state::WatchHandle>> Watch(
      std::string_view prefix, int64_t start_revision, state::WatchCallback callback) override {
    auto watch = inner_->Watch(prefix, start_revision, std::move(callback));
    if (prefix == control::kWorkloadPrefix) {
      absl::MutexLock lock(&mu_);
      ++workload_watches_;
    }
    return watch;
  }
  absl::Status Compact(int64_t revision) override { return inner_->Compact(revision); }
  absl::StatusOr<int64_t> CompactedRevision() override { return inner_->CompactedRevision(); }
  absl::StatusOr<state::LeaseId> Grant(absl::Duration ttl) override { return inner_->Grant(ttl); }
  absl::Status KeepAlive(state::LeaseId id) override { return inner_->KeepAlive(id); }
  absl::Status Revoke(state::LeaseId id) override { return inner_->Revoke(id); }
  absl::StatusOr<state::LeaseInfo> GetLease(state::LeaseId id) override {
    return inner_->GetLease(id);
  }
  absl::StatusOr<int> ExpireLeases() override { return inner_->ExpireLeases(); }
  // Waits (up to a minute) until `n` watches on the workloads have begun.
  bool AwaitWorkloadWatches(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return workload_watches_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Minutes(1));
  }

 private:
  state::Store* inner_;
  absl::Mutex mu_;
  int workload_watches_ ABSL_GUARDED_BY(mu_) = 0;
};

class HostAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    control_ = std::make_unique<control::ControlPlane>(
        &watching_, control::ControlPlaneOptions{.clock = &clock_});
    ApiServerOptions o;
    o.admin_token = kAdmin;
    o.agent_tokens = {kJoin};
    server_ = std::make_unique<ApiServer>(o, control_.get(), nullptr);
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    port_ = *port;
    url_ = "http://127.0.0.1:" + std::to_string(*port);
  }

  // The typed client with `token`; raw Call/Status below are for the route-by-route matrix.
  std::unique_ptr<Client> As(const std::string& token) {
    return std::make_unique<Client>(url_, ClientOptions{.token = token});
  }
  absl::StatusOr<HttpResponse> Call(const std::string& token, std::string_view method,
                                    std::string_view path, std::string_view body = {}) {
    HttpClient c(url_, HttpClient::Options{.bearer_token = token});
    return c.Request(method, path, body);
  }
  int Status(const std::string& token, std::string_view method, std::string_view path,
             std::string_view body = {}) {
    auto r = Call(token, method, path, body);
    return r.ok() ? r->status : -1;
  }

  // Registers `name` with the join token; returns its credential.
  std::string Join(const std::string& name, const std::string& cpu = "2") {
    auto r = As(kJoin)->RegisterHost(Registration(name, cpu));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return "";
    EXPECT_FALSE(r->credential.empty());
    return r->credential;
  }

  // A workload placed on `host` (the only host when it is scheduled); returns its generation.
  int64_t Place(const std::string& name) {
    core::WorkloadSpec spec;
    spec.name = name;
    spec.kind = core::WorkloadKind::kProcess;
    spec.command = {"/bin/true"};
    spec.env = {{"API_KEY", "s3cret"}};
    spec.resources.cpu = core::MilliCpu(500);
    spec.resources.memory = core::MemoryMiB(64);
    auto created = As(kAdmin)->CreateWorkload(spec);
    EXPECT_TRUE(created.ok()) << created.status();
    EXPECT_EQ(*control_->ScheduleOnce(), 1);
    return control_->GetWorkload(name)->status.generation;
  }

  core::ManualClock clock_;
  state::MemoryStore store_;
  WatchSignallingStore watching_{&store_};
  std::unique_ptr<control::ControlPlane> control_;
  std::unique_ptr<ApiServer> server_;
  uint16_t port_ = 0;
  std::string url_;
};

TEST_F(HostAuthTest, RegistrationIssuesACredentialForThatHostAloneAndStoresOnlyItsDigest) {
  const std::string a = Join("node-a");
  ASSERT_EQ(a.rfind("node-a:", 0), 0u) << a;
  EXPECT_GE(a.size(), std::string("node-a:").size() + 48);
  const std::string b = Join("node-b");
  EXPECT_NE(a, b);
  // Nothing in the store holds a credential itself.
  auto all = store_.List("/");
  ASSERT_TRUE(all.ok());
  bool digest_seen = false;
  for (const auto& kv : all->kvs) {
    EXPECT_EQ(kv.value.find(a.substr(7)), std::string::npos) << kv.key;
    EXPECT_EQ(kv.value.find(b.substr(7)), std::string::npos) << kv.key;
    if (kv.key == control::HostCredentialKey("node-a")) {
      digest_seen = Json::parse(kv.value)["sha256"].get<std::string>().size() == 64;
    }
  }
  EXPECT_TRUE(digest_seen);
}

TEST_F(HostAuthTest, EachAgentRouteAnswersOnlyItsOwnHost) {
  const std::string a = Join("node-a");
  const int64_t generation = Place("job");  // on node-a, the only host so far
  const std::string b = Join("node-b");
  const std::string report =
      wire::EncodeStatusReport({.host = "node-a", .generation = generation}).dump();
  const std::string report_as_b =
      wire::EncodeStatusReport({.host = "node-b", .generation = generation}).dump();
  const std::string register_a = wire::EncodeHostRegistration(Registration("node-a")).dump();

  // Route by route, as raw HTTP: which routes each token reaches is the point here.
  struct Row {
    std::string method, path, body;
    int join, host_a, host_b, admin;
  } rows[] = {
      {"PUT", "/v1/hosts/node-a/heartbeat", "", 403, 200, 403, 200},
      {"GET", "/v1/hosts/node-a/assignments", "", 403, 200, 403, 200},
      {"GET", "/v1/hosts/node-b/assignments", "", 403, 403, 200, 200},
      {"PUT", "/v1/workloads/job/status", report, 403, 200, 403, 200},
      {"PUT", "/v1/workloads/job/status", report_as_b, 403, 403, 403, 409},
      {"POST", "/v1/hosts", register_a, 409, 200, 403, 409},
      {"GET", "/v1/hosts", "", 403, 403, 403, 200},
      {"GET", "/v1/hosts/node-a", "", 403, 403, 403, 200},
      {"GET", "/v1/workloads", "", 403, 403, 403, 200},
      {"GET", "/v1/workloads/job", "", 403, 403, 403, 200},
      {"POST", "/v1/workloads/job/actions/stop", "", 403, 403, 403, 200},
      {"GET", "/v1/events", "", 403, 403, 403, 200},
      {"GET", "/metrics", "", 403, 403, 403, 200},
      {"PUT", "/v1/tenants/t/quota", R"({"cpu":"1"})", 403, 403, 403, 200},
      {"DELETE", "/v1/hosts/node-b", "", 403, 403, 403, 409},
  };
  for (const Row& row : rows) {
    const std::string what = row.method + " " + row.path + " " + row.body;
    EXPECT_EQ(Status(kJoin, row.method, row.path, row.body), row.join) << "join: " << what;
    EXPECT_EQ(Status(a, row.method, row.path, row.body), row.host_a) << "host a: " << what;
    EXPECT_EQ(Status(b, row.method, row.path, row.body), row.host_b) << "host b: " << what;
    EXPECT_EQ(Status(kAdmin, row.method, row.path, row.body), row.admin) << "admin: " << what;
  }
  // Host a reads its own assignments, the environment included; b sees none of it.
  auto own = Call(a, "GET", "/v1/hosts/node-a/assignments");
  ASSERT_EQ(own->status, 200);
  EXPECT_NE(own->body.find("s3cret"), std::string::npos);
  auto other = Call(b, "GET", "/v1/hosts/node-a/assignments");
  EXPECT_EQ(other->status, 403);
  EXPECT_EQ(other->body.find("s3cret"), std::string::npos);
  EXPECT_NE(Message(other).find("only for itself"), std::string::npos) << Message(other);
}

TEST_F(HostAuthTest, AnotherHostCannotFailAWorkloadOrClaimAHost) {
  Join("node-a");
  const int64_t generation = Place("job");
  const std::string b = Join("node-b", "100000");
  const int64_t before = *store_.Revision();
  // A status report for a workload on another host, under either name.
  for (const char* host : {"node-a", "node-b"}) {
    auto r = As(b)->ReportStatus(
        "job", {.host = host, .generation = generation, .state = core::WorkloadState::kFailed});
    EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << host << ": " << r.status();
  }
  // Re-registering another host's name with its own credential, or with the join token.
  auto claim = As(b)->RegisterHost(Registration("node-a", "100000"));
  EXPECT_TRUE(absl::IsPermissionDenied(claim.status())) << claim.status();
  auto rejoin = As(kJoin)->RegisterHost(Registration("node-a", "100000"));
  EXPECT_EQ(HttpStatusFor(rejoin.status().code()), 409) << rejoin.status();
  const std::string rejoin_message(rejoin.status().message());
  EXPECT_NE(rejoin_message.find("its own credential"), std::string::npos) << rejoin_message;
  EXPECT_NE(rejoin_message.find("berth host rm node-a"), std::string::npos) << rejoin_message;
  EXPECT_EQ(*store_.Revision(), before);
  EXPECT_EQ(control_->GetWorkload("job")->status.state, core::WorkloadState::kScheduled);
  EXPECT_EQ(control_->GetHost("node-a")->inventory.capacity.cpu.value(), 2000);
}

TEST_F(HostAuthTest, AHostRegistersAgainWithItsCredentialAndKeepsIt) {
  const std::string a = Join("node-a");
  Raw raw;
  auto again = As(a)->RegisterHost(Registration("node-a", "4"), &raw);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->credential.empty());
  EXPECT_FALSE(raw.body.contains("credential"));
  EXPECT_EQ(control_->GetHost("node-a")->inventory.capacity.cpu.value(), 4000);
  EXPECT_TRUE(As(a)->Heartbeat("node-a").ok());
  // A credential with its secret changed is no credential at all.
  std::string forged = a;
  forged.back() = forged.back() == '0' ? '1' : '0';
  EXPECT_TRUE(absl::IsUnauthenticated(As(forged)->Heartbeat("node-a")));
  EXPECT_TRUE(absl::IsUnauthenticated(As("node-a:")->Heartbeat("node-a")));
}

TEST_F(HostAuthTest, RemovingAHostNeedsItDownAndRevokesItsCredential) {
  const std::string a = Join("node-a");
  auto admin = As(kAdmin);
  absl::Status live = admin->DeleteHost("node-a");
  EXPECT_EQ(HttpStatusFor(live.code()), 409) << live;
  EXPECT_NE(live.message().find("is live"), std::string::npos) << live;
  EXPECT_TRUE(absl::IsNotFound(admin->DeleteHost("nope")));

  clock_.Advance(absl::Seconds(16));
  ASSERT_EQ(*control_->CheckHostsOnce(), 1);
  Raw removed;
  ASSERT_TRUE(admin->DeleteHost("node-a", &removed).ok());
  EXPECT_EQ(removed.body["deleted"], true);
  EXPECT_TRUE(absl::IsNotFound(admin->GetHost("node-a").status()));
  EXPECT_FALSE(store_.Get(control::HostCredentialKey("node-a"))->kv.has_value());
  // The old credential is dead; the name can join afresh with the join token.
  EXPECT_TRUE(absl::IsUnauthenticated(As(a)->Heartbeat("node-a")));
  EXPECT_TRUE(absl::IsUnauthenticated(As(a)->RegisterHost(Registration("node-a")).status()));
  const std::string fresh = Join("node-a");
  EXPECT_NE(fresh, a);
  EXPECT_TRUE(As(fresh)->Heartbeat("node-a").ok());
}

TEST_F(HostAuthTest, AHostRecordedWithoutACredentialJoinsOnlyOnceDown) {
  // As an older server left it: a host record and no credential.
  core::HostInventory inv;
  inv.capacity.cpu = *core::ParseCpu("2");
  inv.capacity.memory = *core::ParseMemory("1Gi");
  core::Host old{.name = "node-a", .inventory = inv};
  ASSERT_TRUE(store_.Put(control::HostKey("node-a"), core::EncodeHost(old).dump()).ok());
  auto live = As(kJoin)->RegisterHost(Registration("node-a"));
  EXPECT_EQ(HttpStatusFor(live.status().code()), 409) << live.status();
  EXPECT_NE(live.status().message().find("once it is down"), std::string::npos) << live.status();
  clock_.Advance(absl::Seconds(16));
  ASSERT_EQ(*control_->CheckHostsOnce(), 1);
  const std::string a = Join("node-a");
  EXPECT_TRUE(As(a)->Heartbeat("node-a").ok());
}

// An agent's long-poll for its assignments wakes for its own host's work, not for every
// placement in the fleet.
TEST_F(HostAuthTest, AnAgentsLongPollWakesOnlyForItsOwnWork) {
  const std::string a = Join("node-a");
  Join("node-b");
  ASSERT_TRUE(control_->CordonHost("node-a", true).ok());
  Raw first;
  ASSERT_TRUE(As(a)->Assignments("node-a", {}, &first).ok());
  ASSERT_GT(first.index, 0);
  absl::StatusOr<wire::WorkloadList> polled;
  std::thread poll([&] {
    polled = As(a)->Assignments("node-a", {.index = first.index, .wait = absl::Seconds(60)});
  });
  ASSERT_TRUE(watching_.AwaitWorkloadWatches(1));
  // Created and placed on node-b (node-a is cordoned): nothing for node-a, which sleeps on. Had
  // it woken, its answer would be the empty list it had.
  Place("elsewhere");
  EXPECT_EQ(control_->GetWorkload("elsewhere")->status.host, "node-b");
  ASSERT_TRUE(control_->CordonHost("node-b", true).ok());
  ASSERT_TRUE(control_->CordonHost("node-a", false).ok());
  Place("here");
  poll.join();
  ASSERT_TRUE(polled.ok()) << polled.status();
  ASSERT_EQ(polled->items.size(), 1u);
  EXPECT_EQ(polled->items[0].spec.name, "here");
}

// With ?since=, a poll answers only what changed after the agent's last answer, long-polling
// the same way; a bad `since` is 400.
TEST_F(HostAuthTest, AnAgentsPollSinceItsLastAnswerGetsOnlyTheChange) {
  const std::string a = Join("node-a");
  Place("one");
  Place("two");
  auto whole = As(a)->AssignmentsSince("node-a", 0);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(whole->since, 0);
  EXPECT_EQ(whole->items.size(), 2u);
  Raw first;
  auto quiet = As(a)->AssignmentsSince("node-a", whole->revision, {}, &first);
  ASSERT_TRUE(quiet.ok()) << quiet.status();
  EXPECT_EQ(quiet->since, whole->revision);
  EXPECT_TRUE(quiet->items.empty() && quiet->removed.empty());
  // A long poll from there wakes with the change only.
  absl::StatusOr<wire::Assignments> polled;
  std::thread poll([&] {
    polled = As(a)->AssignmentsSince("node-a", whole->revision,
                                     {.index = first.index, .wait = absl::Seconds(60)});
  });
  ASSERT_TRUE(watching_.AwaitWorkloadWatches(1));
  ASSERT_TRUE(As(kAdmin)->DeleteWorkload("one").ok());
  poll.join();
  ASSERT_TRUE(polled.ok()) << polled.status();
  EXPECT_EQ(polled->since, whole->revision);
  std::vector<std::string> changed;
  for (const auto& w : polled->items) changed.push_back(w.spec.name);
  // "one" is asked to stop first (an item), or already gone (removed); "two" is unchanged.
  if (polled->removed.empty()) {
    EXPECT_EQ(changed, std::vector<std::string>{"one"});
  } else {
    EXPECT_EQ(polled->removed, std::vector<std::string>{"one"});
  }
  for (const char* bad : {"abc", "-1", "1.5", "99999999999999999999999"}) {
    EXPECT_EQ(Status(a, "GET", std::string("/v1/hosts/node-a/assignments?since=") + bad, ""), 400)
        << bad;
  }
}

TEST_F(HostAuthTest, ARepeatedAuthorizationHeaderIsRefused) {
  boost::asio::io_context ioc;
  testing::RawConnection raw(ioc, port_);
  raw.Send(testing::Get("/v1/workloads", std::string("Authorization: Bearer ") + kAdmin +
                                             "\r\nAuthorization: Bearer " + kAdmin + "\r\n"));
  auto r = raw.Read();
  EXPECT_EQ(r.result_int(), 400u);
  EXPECT_NE(r.body().find("Authorization"), std::string::npos) << r.body();
  testing::RawConnection once(ioc, port_);
  once.Send(testing::Get("/v1/workloads", std::string("Authorization: Bearer ") + kAdmin + "\r\n"));
  EXPECT_EQ(once.Read().result_int(), 200u);
}

}  // namespace
}  // namespace berth::api
