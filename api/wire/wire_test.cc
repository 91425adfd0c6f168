#include "api/wire/wire.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::api::wire {
namespace {

using core::Json;
using ::testing::HasSubstr;

// The message of a failed decode, or "" when it succeeded.
template <typename T>
std::string ErrorOf(const absl::StatusOr<T>& r) {
  return r.ok() ? "" : std::string(r.status().message());
}

core::HostInventory Inventory() {
  core::HostInventory inv;
  inv.capacity.cpu = core::MilliCpu(4000);
  inv.capacity.memory = core::MemoryMiB(8192);
  inv.labels = {{"rack", "r1"}};
  inv.drivers = {"process"};
  return inv;
}

TEST(Wire, StatusReportRoundTrips) {
  StatusReport r{.host = "h1",
                 .generation = 7,
                 .state = core::WorkloadState::kFailed,
                 .reason = "exited with code 3",
                 .exit_code = 3,
                 .oom_killed = true};
  auto back = DecodeStatusReport("web", EncodeStatusReport(r));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, r);
  // No exit code stays no exit code.
  r.exit_code.reset();
  back = DecodeStatusReport("web", EncodeStatusReport(r));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->exit_code.has_value());
}

TEST(Wire, StatusReportErrorsNameTheField) {
  Json good = EncodeStatusReport({.state = core::WorkloadState::kRunning});
  struct Case {
    std::string field;
    Json value;
  } cases[] = {
      {"state", "sleeping"}, {"generation", -1}, {"exit_code", "three"},
      {"oom_killed", "yes"}, {"host", 5},        {"colour", "red"},
  };
  for (const auto& tc : cases) {
    Json j = good;
    j[tc.field] = tc.value;
    std::string err = ErrorOf(DecodeStatusReport("web", j));
    EXPECT_NE(err.find("workload status \"web\""), std::string::npos) << err;
    EXPECT_NE(err.find(tc.field), std::string::npos) << tc.field << ": " << err;
  }
  EXPECT_NE(ErrorOf(DecodeStatusReport("web", Json::array())).find("body"), std::string::npos);
}

TEST(Wire, HostRegistrationRoundTripsAndNamesTheHost) {
  HostRegistration reg{.name = "h1", .inventory = Inventory()};
  auto back = DecodeHostRegistration(EncodeHostRegistration(reg));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->name, "h1");
  EXPECT_EQ(back->inventory.capacity.cpu, reg.inventory.capacity.cpu);
  EXPECT_EQ(back->inventory.labels, reg.inventory.labels);
  std::string err = ErrorOf(DecodeHostRegistration(Json{{"name", "h1"}}));
  EXPECT_NE(err.find("host \"h1\": inventory is required"), std::string::npos) << err;
  err = ErrorOf(DecodeHostRegistration(Json{{"name", "h1"}, {"inventory", {}}, {"x", 1}}));
  EXPECT_NE(err.find("\"x\""), std::string::npos) << err;
}

TEST(Wire, RegistrationReplyCarriesTheCredential) {
  RegistrationReply reply;
  reply.host.name = "h1";
  reply.host.inventory = Inventory();
  reply.host.revision = 12;
  reply.credential = "h1:secret";
  auto back = DecodeRegistrationReply(EncodeRegistrationReply(reply));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->host.name, "h1");
  EXPECT_EQ(back->host.revision, 12);
  EXPECT_EQ(back->credential, "h1:secret");
  reply.credential.clear();
  Json j = EncodeRegistrationReply(reply);
  EXPECT_FALSE(j.contains("credential"));
  EXPECT_EQ(DecodeRegistrationReply(j)->credential, "");
  // The server's TTL and grace travel with it; an older server says neither.
  EXPECT_EQ(DecodeRegistrationReply(j)->host_ttl, absl::ZeroDuration());
  reply.host_ttl = absl::Seconds(10);
  reply.failover_grace = absl::Milliseconds(2500);
  auto timed = DecodeRegistrationReply(EncodeRegistrationReply(reply));
  ASSERT_TRUE(timed.ok()) << timed.status();
  EXPECT_EQ(timed->host_ttl, absl::Seconds(10));
  EXPECT_EQ(timed->failover_grace, absl::Milliseconds(2500));
  j["host_ttl"] = "soon";
  EXPECT_NE(ErrorOf(DecodeRegistrationReply(j)).find("host_ttl"), std::string::npos);
}

TEST(Wire, TaskApiReportRoundTripsAndItsBoundsNameTheField) {
  const std::string token(kTaskApiTokenLength, 'a');
  TaskApiReport report{.port = 7071, .token = token};
  auto back = DecodeTaskApiReport("h1", EncodeTaskApiReport(report));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, report);
  EXPECT_TRUE(DecodeTaskApiReport("h1", Json{{"port", 1}, {"token", token}}).ok());
  EXPECT_TRUE(DecodeTaskApiReport("h1", Json{{"port", 65535}, {"token", token}}).ok());
  // Each bad value is refused with the host and the field named.
  for (const Json& port : {Json(0), Json(65536), Json(-1), Json("7071"), Json(70.5), Json()}) {
    std::string err = ErrorOf(DecodeTaskApiReport("h1", Json{{"port", port}, {"token", token}}));
    EXPECT_NE(err.find("task_api.port"), std::string::npos) << port.dump() << ": " << err;
    EXPECT_NE(err.find("\"h1\""), std::string::npos) << err;
  }
  EXPECT_NE(ErrorOf(DecodeTaskApiReport("h1", Json{{"token", token}})).find("task_api.port"),
            std::string::npos);
  const std::string upper(kTaskApiTokenLength, 'A');
  for (const Json& bad : {Json(token.substr(1)), Json(token + "a"), Json(upper),
                          Json(std::string(kTaskApiTokenLength, 'g')), Json(12), Json("")}) {
    std::string err = ErrorOf(DecodeTaskApiReport("h1", Json{{"port", 80}, {"token", bad}}));
    EXPECT_NE(err.find("task_api.token"), std::string::npos) << bad.dump() << ": " << err;
  }
  EXPECT_NE(ErrorOf(DecodeTaskApiReport("h1", Json{{"port", 80}})).find("task_api.token"),
            std::string::npos);
  std::string unknown =
      ErrorOf(DecodeTaskApiReport("h1", Json{{"port", 80}, {"token", token}, {"url", "x"}}));
  EXPECT_NE(unknown.find("task_api.url"), std::string::npos) << unknown;
  EXPECT_NE(ErrorOf(DecodeTaskApiReport("h1", Json::array())).find("task_api"), std::string::npos);
}

TEST(Wire, HeartbeatWarmStatesRoundTripAndTheirBoundsNameTheField) {
  const std::vector<std::string> keys = {"api.r4", "web.r12"};
  HeartbeatReport report{.warm_states = keys};
  const Json body = EncodeHeartbeatReport(report);
  EXPECT_EQ(body, (Json{{"warm_states", {"api.r4", "web.r12"}}}));
  auto back = DecodeWarmStates("h1", "warm_states", body.at("warm_states"));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, keys);
  // Without warm states, the field is left out.
  EXPECT_EQ(EncodeHeartbeatReport({}), Json::object());
  for (const Json& bad : {Json("web.r1"), Json{{"k", "v"}}, Json::array({"web"}),
                          Json::array({"web.r1", 3}), Json::array({"../x.r1"})}) {
    std::string err = ErrorOf(DecodeWarmStates("h1", "warm_states", bad));
    EXPECT_NE(err.find("warm_states"), std::string::npos) << bad.dump() << ": " << err;
    EXPECT_NE(err.find("\"h1\""), std::string::npos) << err;
  }
  Json many = Json::array();
  for (size_t i = 0; i <= core::kMaxReportedWarmStates; ++i)
    many.push_back("s" + std::to_string(i) + ".r1");
  EXPECT_NE(ErrorOf(DecodeWarmStates("h1", "warm_states", many)).find("at most 256"),
            std::string::npos);
  many.erase(many.size() - 1);
  EXPECT_TRUE(DecodeWarmStates("h1", "warm_states", many).ok());

  // The reply names the states to drop, when there are any.
  EXPECT_EQ(EncodeHeartbeatReply("h1", {}), (Json{{"name", "h1"}, {"status", "ok"}}));
  auto none = DecodeHeartbeatReply("h1", Json{{"name", "h1"}, {"status", "ok"}});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->drop_warm_states.empty());
  auto drop = DecodeHeartbeatReply("h1", EncodeHeartbeatReply("h1", {.drop_warm_states = keys}));
  ASSERT_TRUE(drop.ok()) << drop.status();
  EXPECT_EQ(drop->drop_warm_states, keys);
  EXPECT_NE(ErrorOf(DecodeHeartbeatReply("h1", Json{{"drop_warm_states", "web.r1"}}))
                .find("drop_warm_states"),
            std::string::npos);
}

TEST(Wire, ExecRequestAndReplyRoundTrip) {
  ExecRequest req{
      .argv = {"sh", "-c", "echo $X"}, .env = {{"X", "1"}}, .timeout = absl::Seconds(90)};
  auto back = DecodeExecRequest("web", EncodeExecRequest(req));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, req);
  ExecReply reply{.exit_code = 2, .stdout_data = "out", .stderr_data = "err"};
  auto rb = DecodeExecReply("web", EncodeExecReply(reply));
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_EQ(*rb, reply);
}

TEST(Wire, ExecRequestErrorsNameTheField) {
  EXPECT_NE(ErrorOf(DecodeExecRequest("web", Json{{"argv", Json::array()}})).find("argv"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf(DecodeExecRequest("web", Json{{"argv", {"ls"}}, {"env", {{"A", 1}}}})).find("env.A"),
      std::string::npos);
  EXPECT_NE(
      ErrorOf(DecodeExecRequest("web", Json{{"argv", {"ls"}}, {"timeout", "-1s"}})).find("timeout"),
      std::string::npos);
  // What execve cannot carry as given: a NUL anywhere, a name that is empty or holds '='.
  EXPECT_NE(ErrorOf(DecodeExecRequest("web", Json{{"argv", {"ls", std::string("a\0b", 3)}}}))
                .find("argv[1]"),
            std::string::npos);
  EXPECT_NE(ErrorOf(DecodeExecRequest("web", Json{{"argv", {"ls"}}, {"env", {{"A=B", "c"}}}}))
                .find("env.A=B"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf(DecodeExecRequest("web", Json{{"argv", {"ls"}}, {"env", {{"", "c"}}}})).find("env."),
      std::string::npos);
  EXPECT_NE(ErrorOf(DecodeExecRequest(
                        "web", Json{{"argv", {"ls"}}, {"env", {{"A", std::string("b\0c", 3)}}}}))
                .find("env.A"),
            std::string::npos);
  auto defaulted = DecodeExecRequest("web", Json{{"argv", {"ls"}}});
  ASSERT_TRUE(defaulted.ok());
  EXPECT_EQ(defaulted->timeout, absl::Seconds(30));
}

TEST(Wire, ListsRoundTripAndNameTheBadItem) {
  core::Workload w;
  w.spec.name = "web";
  w.spec.kind = core::WorkloadKind::kProcess;
  w.spec.command = {"/bin/true"};
  w.revision = 3;
  auto list = DecodeWorkloadList(EncodeWorkloadList({{w}, 42}));
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->revision, 42);
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(list->items[0].spec.name, "web");
  EXPECT_EQ(list->items[0].spec.command, w.spec.command);
  EXPECT_TRUE(list->continue_token.empty());
  EXPECT_FALSE(EncodeWorkloadList({{w}, 42}).contains("continue"));
  // A page cut short carries the token of the next one.
  auto page = DecodeWorkloadList(EncodeWorkloadList({{w}, 42, "d29ya2xvYWRzOjQyOndlYg"}));
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->continue_token, "d29ya2xvYWRzOjQyOndlYg");
  EXPECT_NE(
      ErrorOf(DecodeWorkloadList(Json{{"items", Json::array()}, {"continue", 7}})).find("continue"),
      std::string::npos);

  core::Host h;
  h.name = "h1";
  h.inventory = Inventory();
  auto hosts = DecodeHostList(EncodeHostList({{h}, 5}));
  ASSERT_TRUE(hosts.ok()) << hosts.status();
  EXPECT_EQ(hosts->items.at(0).name, "h1");

  core::Event e{.revision = 9, .kind = "workload", .object = "web", .type = "created"};
  auto events = DecodeEventList(EncodeEventList({{e}, 9}));
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_EQ(events->items.at(0).object, "web");

  Json bad = EncodeWorkloadList({{w}, 1});
  bad["items"].push_back(Json{{"name", "x"}});
  EXPECT_NE(ErrorOf(DecodeWorkloadList(bad)).find("items[1]"), std::string::npos);
  EXPECT_NE(ErrorOf(DecodeJsonList("disk", Json{{"items", 3}})).find("items"), std::string::npos);
  EXPECT_NE(ErrorOf(DecodeJsonList("disk", Json{{"items", {1}}})).find("items[0]"),
            std::string::npos);
}

TEST(Wire, ErrorBodyRoundTrips) {
  auto e = DecodeErrorBody(EncodeErrorBody({.code = "not_found", .message = "no such"}));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->code, "not_found");
  EXPECT_EQ(e->message, "no such");
  EXPECT_FALSE(DecodeErrorBody(Json{{"oops", 1}}).ok());
}

TEST(Wire, ResourceRequestsLeaveEmptyFieldsOut) {
  EXPECT_EQ(EncodeDiskCreate({.name = "d", .size = "1Gi"}), (Json{{"name", "d"}, {"size", "1Gi"}}));
  EXPECT_EQ(EncodeNetworkCreate({.name = "n", .subnet = "10.0.0.0/24", .nat = false}),
            (Json{{"name", "n"}, {"subnet", "10.0.0.0/24"}, {"nat", false}}));
  EXPECT_EQ(EncodeSecurityRule({.protocol = "tcp", .ports = "22", .from_cidr = "0.0.0.0/0"}),
            (Json{{"proto", "tcp"}, {"ports", "22"}, {"from", "0.0.0.0/0"}}));
  EXPECT_EQ(EncodePortForwardCreate({.host_port = 8080, .workload = "web", .port = 80}),
            (Json{{"host_port", 8080}, {"workload", "web"}, {"port", 80}}));
  EXPECT_EQ(EncodePortForwardCreate({.host_port = 80, .workload = "web", .port = 80, .host = "h1"}),
            (Json{{"host_port", 80}, {"workload", "web"}, {"port", 80}, {"host", "h1"}}));
}

TEST(Wire, AssignmentsRoundTripWholeOrAsAChange) {
  core::Workload w;
  w.spec.name = "web";
  w.spec.kind = core::WorkloadKind::kProcess;
  w.spec.command = {"/bin/true"};
  w.revision = 7;
  Assignments whole{.items = {w}, .revision = 9};
  Json j = EncodeAssignments(whole);
  EXPECT_FALSE(j.contains("since"));
  EXPECT_FALSE(j.contains("removed"));
  auto back = DecodeAssignments("h1", j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->since, 0);
  ASSERT_EQ(back->items.size(), 1u);
  EXPECT_EQ(back->items[0].spec.name, "web");
  EXPECT_EQ(back->revision, 9);
  Assignments change{.items = {}, .revision = 12, .since = 9, .removed = {"old", "gone"}};
  back = DecodeAssignments("h1", EncodeAssignments(change));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->since, 9);
  EXPECT_EQ(back->removed, (std::vector<std::string>{"old", "gone"}));
  j = EncodeAssignments(change);
  j["removed"] = "old";
  EXPECT_THAT(DecodeAssignments("h1", j).status().message(), HasSubstr("removed"));
  j = EncodeAssignments(change);
  j["since"] = -3;
  EXPECT_THAT(DecodeAssignments("h1", j).status().message(), HasSubstr("since"));
  j = EncodeAssignments(change);
  j["extra"] = 1;
  EXPECT_FALSE(DecodeAssignments("h1", j).ok());
}

TEST(Wire, ServiceScaleRoundTripsAndNamesTheField) {
  auto back = DecodeServiceScale("web", EncodeServiceScale({.replicas = 3}));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->replicas, 3);
  EXPECT_EQ(ErrorOf(DecodeServiceScale("web", Json{{"replicas", -1}})),
            "service \"web\": replicas must be between 0 and 100, got -1");
  EXPECT_EQ(ErrorOf(DecodeServiceScale("web", Json::object())),
            "service \"web\": replicas is required (the number of replicas to keep)");
  EXPECT_NE(ErrorOf(DecodeServiceScale("web", Json{{"replicas", 1}, {"x", 1}})).find("\"x\""),
            std::string::npos);
  EXPECT_NE(ErrorOf(DecodeServiceScale("web", Json{{"replicas", "2"}})).find("replicas"),
            std::string::npos);
}

TEST(Wire, JobListAndDeletionRoundTrip) {
  core::Job job;
  job.spec = *core::DecodeJobSpec(Json::parse(
      R"({"name": "train", "parallelism": 2, "template": {"kind": "process", "command": ["x"]}})"));
  job.status.state = core::JobState::kRunning;
  job.status.current = {"train-0", "train-1"};
  job.revision = 4;
  auto list = DecodeJobList(EncodeJobList({{job}, 8}));
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(list->revision, 8);
  EXPECT_EQ(list->items[0].spec, job.spec);
  EXPECT_EQ(list->items[0].status, job.status);
  auto d = DecodeJobDeletion(EncodeJobDeletion({job, true}));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->deleted);
  EXPECT_EQ(d->job.status, job.status);
}

TEST(Wire, ServiceListAndDeletionRoundTrip) {
  core::Service svc;
  svc.spec = *core::DecodeServiceSpec(Json::parse(
      R"({"name": "web", "replicas": 2, "template": {"kind": "process", "command": ["x"]}})"));
  svc.status.ready = 1;
  svc.revision = 9;
  auto list = DecodeServiceList(EncodeServiceList({{svc}, 12}));
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(list->revision, 12);
  EXPECT_EQ(list->items[0].spec, svc.spec);
  EXPECT_EQ(list->items[0].status, svc.status);
  auto d = DecodeServiceDeletion(EncodeServiceDeletion({svc, true}));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->deleted);
  EXPECT_EQ(d->service.spec, svc.spec);
}

}  // namespace
}  // namespace berth::api::wire
