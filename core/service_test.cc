#include "core/service.h"

#include "gtest/gtest.h"

namespace berth::core {
namespace {

Json Minimal() {
  return Json::parse(R"({
    "name": "web", "kind": "service", "replicas": 2, "port": 8080,
    "template": {"kind": "process", "command": ["/bin/sleep", "60"],
                 "resources": {"cpu": "100m", "memory": "32Mi"}},
    "health": {"http": "/healthz", "interval": "2s", "timeout": "1s", "failure_threshold": 3}
  })");
}

std::string ErrorOf(const Json& j) {
  auto spec = DecodeServiceSpec(j);
  EXPECT_FALSE(spec.ok()) << j.dump();
  if (spec.ok()) return "";
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(spec.status().message());
}

TEST(WarmStateKeyTest, ParsesServiceAndRevisionOnly) {
  EXPECT_EQ(ParseWarmStateKey("web.r12"), (WarmStateKey{.service = "web", .revision = 12}));
  // The last ".r" separates: a name may not hold one, so this is not a key.
  EXPECT_EQ(ParseWarmStateKey("web.r1.r2"), std::nullopt);
  for (std::string_view bad : {"", "web", "web.r", ".r1", "web.r1x", "web.rx", "Web.r1",
                               "web.r1234567890123456789", "../x.r1", "web.r-1"}) {
    EXPECT_EQ(ParseWarmStateKey(bad), std::nullopt) << bad;
  }
}

TEST(ServiceSpecTest, DecodesAndRoundTrips) {
  auto spec = DecodeServiceSpec(Minimal());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "web");
  EXPECT_EQ(spec->replicas, 2);
  EXPECT_EQ(spec->port, 8080);
  EXPECT_EQ(spec->workload_template.name, "web");
  EXPECT_EQ(spec->workload_template.kind, WorkloadKind::kProcess);
  EXPECT_EQ(spec->health.type, HealthCheck::Type::kHttp);
  EXPECT_EQ(spec->health.http_path, "/healthz");
  EXPECT_EQ(spec->health.interval, absl::Seconds(2));
  EXPECT_EQ(spec->health.start_period, absl::Seconds(30));
  auto again = DecodeServiceSpec(EncodeServiceSpec(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *spec);
}

TEST(ServiceSpecTest, DefaultsWithoutHealthOrPort) {
  Json j = Minimal();
  j.erase("health");
  j.erase("port");
  j.erase("replicas");
  j.erase("kind");
  auto spec = DecodeServiceSpec(j);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->replicas, 1);
  EXPECT_EQ(spec->port, 0);
  EXPECT_EQ(spec->health.type, HealthCheck::Type::kNone);
}

TEST(ServiceSpecTest, TcpHealth) {
  Json j = Minimal();
  j["health"] = {{"tcp", true}};
  auto spec = DecodeServiceSpec(j);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->health.type, HealthCheck::Type::kTcp);
}

TEST(ServiceSpecTest, ErrorsNameTheServiceAndTheField) {
  auto with = [](const char* path, Json value) {
    Json j = Minimal();
    j[Json::json_pointer(path)] = std::move(value);
    return j;
  };
  EXPECT_EQ(ErrorOf(with("/replicas", -1)),
            "service \"web\": replicas must be between 0 and 100, got -1");
  EXPECT_NE(ErrorOf(with("/replicas", 101)).find("replicas"), std::string::npos);
  EXPECT_NE(ErrorOf(with("/replicas", "two")).find("service \"web\": replicas"), std::string::npos);
  EXPECT_NE(ErrorOf(with("/port", 70000)).find("service \"web\": port"), std::string::npos);
  EXPECT_NE(ErrorOf(with("/health/interval", "soon")).find("health.interval"), std::string::npos);
  EXPECT_NE(ErrorOf(with("/health/timeout", "5s")).find("health.timeout must not exceed"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("/health/http", "healthz")).find("health.http"), std::string::npos);
  EXPECT_NE(ErrorOf(with("/health/http", "/a b")).find("health.http"), std::string::npos);
  EXPECT_NE(ErrorOf(with("/health/failure_threshold", 0)).find("health.failure_threshold"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("/health/tcp", true)).find("not both"), std::string::npos);
  EXPECT_NE(ErrorOf(with("/health/exec", "x")).find("health.exec"), std::string::npos);
  EXPECT_NE(ErrorOf(with("/kind", "process")).find("service \"web\": kind"), std::string::npos);
  EXPECT_NE(ErrorOf(with("/bogus", 1)).find("bogus"), std::string::npos);
  EXPECT_EQ(ErrorOf(with("/template/command", Json::array())),
            "service \"web\": template.command is required for kind process");
  EXPECT_NE(ErrorOf(with("/template/resources/cpu", "lots")).find("template.resources.cpu"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("/template/name", "x")).find("template.name"), std::string::npos);
  EXPECT_NE(ErrorOf(with("/template/env", Json{{"PORT", "1"}})).find("template.env.PORT"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("/template/labels", Json{{"berth.service", "x"}}))
                .find("template.labels.berth.service"),
            std::string::npos);
  Json no_port = Minimal();
  no_port.erase("port");
  EXPECT_NE(ErrorOf(no_port).find("service \"web\": health needs"), std::string::npos);
  Json no_template = Minimal();
  no_template.erase("template");
  EXPECT_NE(ErrorOf(no_template).find("template is required"), std::string::npos);
  EXPECT_NE(ErrorOf(with("/name", std::string(51, 'a'))).find("name must be at most 50"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("/name", "Bad_Name")).find("name"), std::string::npos);
}

TEST(ServiceSpecTest, Endpoint) {
  Json j = Minimal();
  j["endpoint"] = {{"host_port", 18080}};
  auto spec = DecodeServiceSpec(j);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->endpoint.host_port, 18080);
  EXPECT_EQ(spec->endpoint.drain_timeout, absl::Seconds(30));
  j["endpoint"]["drain_timeout"] = "5s";
  spec = DecodeServiceSpec(j);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->endpoint.drain_timeout, absl::Seconds(5));
  auto again = DecodeServiceSpec(EncodeServiceSpec(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *spec);
  EXPECT_EQ(DecodeServiceSpec(Minimal())->endpoint.host_port, 0);

  auto with = [](Json endpoint) {
    Json j = Minimal();
    j["endpoint"] = std::move(endpoint);
    return j;
  };
  EXPECT_EQ(ErrorOf(with({{"host_port", 80}})),
            "service \"web\": endpoint.host_port must be at least 1024 (lower ports are "
            "privileged), got 80");
  EXPECT_NE(ErrorOf(with({{"host_port", 70000}})).find("service \"web\": endpoint.host_port"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with({{"host_port", 0}})).find("endpoint.host_port"), std::string::npos);
  EXPECT_NE(ErrorOf(with({{"host_port", "high"}})).find("endpoint.host_port"), std::string::npos);
  EXPECT_NE(ErrorOf(with(Json::object())).find("endpoint.host_port is required"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with({{"host_port", 18080}, {"drain_timeout", "later"}}))
                .find("endpoint.drain_timeout"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with({{"host_port", 18080}, {"port", 1}})).find("endpoint.port"),
            std::string::npos);
  Json no_port = with({{"host_port", 18080}});
  no_port.erase("port");
  no_port.erase("health");
  EXPECT_NE(ErrorOf(no_port).find("service \"web\": endpoint needs the service's port"),
            std::string::npos);
}

Json Autoscaled() {
  Json j = Minimal();
  j.erase("replicas");
  j["endpoint"] = {{"host_port", 18080}};
  j["autoscale"] = {{"min", 0}, {"max", 8}, {"metric", "concurrency"}, {"target", 4}};
  return j;
}

TEST(ServiceSpecTest, AutoscaleDefaultsAndRoundTrips) {
  auto spec = DecodeServiceSpec(Autoscaled());
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(spec->autoscale.has_value());
  const AutoscaleSpec& a = *spec->autoscale;
  EXPECT_EQ(a.min, 0);
  EXPECT_EQ(a.max, 8);
  EXPECT_EQ(a.metric, AutoscaleSpec::Metric::kConcurrency);
  EXPECT_EQ(a.target, 4);
  EXPECT_EQ(a.stable_window, absl::Seconds(60));
  EXPECT_EQ(a.panic_window, absl::Seconds(6));
  EXPECT_EQ(a.scale_down_delay, absl::ZeroDuration());
  EXPECT_EQ(a.idle_to_zero, absl::Seconds(60));
  EXPECT_EQ(spec->replicas, 1);  // starts with one replica though min is 0
  EXPECT_EQ(spec->endpoint.wait_timeout, absl::Seconds(60));
  auto again = DecodeServiceSpec(EncodeServiceSpec(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *spec);

  Json j = Autoscaled();
  j["replicas"] = 0;
  j["endpoint"]["wait_timeout"] = "5s";
  j["autoscale"] = {{"min", 2},
                    {"max", 4},
                    {"metric", "rps"},
                    {"target", 2.5},
                    {"stable_window", "30s"},
                    {"panic_window", "3s"},
                    {"scale_down_delay", "1m"}};
  EXPECT_NE(ErrorOf(j).find("service \"web\": replicas with autoscale is the number to start "
                            "with, between autoscale.min (2) and autoscale.max (4), got 0"),
            std::string::npos);
  j.erase("replicas");
  spec = DecodeServiceSpec(j);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->replicas, 2);  // min
  EXPECT_EQ(spec->autoscale->metric, AutoscaleSpec::Metric::kRps);
  EXPECT_EQ(spec->autoscale->target, 2.5);
  EXPECT_EQ(spec->autoscale->scale_down_delay, absl::Minutes(1));
  EXPECT_EQ(spec->endpoint.wait_timeout, absl::Seconds(5));
  again = DecodeServiceSpec(EncodeServiceSpec(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *spec);
}

TEST(ServiceSpecTest, AutoscaleErrorsNameTheField) {
  auto with = [](const std::string& key, Json value) {
    Json j = Autoscaled();
    j["autoscale"][key] = std::move(value);
    return j;
  };
  EXPECT_EQ(ErrorOf(with("max", 0)),
            "service \"web\": autoscale.max must be between 1 and 100, got 0");
  Json no_max = Autoscaled();
  no_max["autoscale"].erase("max");
  EXPECT_NE(ErrorOf(no_max).find("autoscale.max is required"), std::string::npos);
  Json below = with("min", 5);
  below["autoscale"]["max"] = 3;
  EXPECT_NE(ErrorOf(below).find("autoscale.max must be at least autoscale.min (5), got 3"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("metric", "memory"))
                .find("autoscale.metric must be concurrency, rps, cpu or gpu, got \"memory\""),
            std::string::npos);
  // Utilization targets are fractions of what a replica holds; gpu needs replicas with GPUs.
  Json cpu = with("metric", "cpu");
  cpu["autoscale"]["target"] = 0.7;
  auto decoded = DecodeServiceSpec(cpu);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->autoscale->metric, AutoscaleSpec::Metric::kCpu);
  EXPECT_EQ(EncodeServiceSpec(*decoded)["autoscale"]["metric"], "cpu");
  cpu["autoscale"]["target"] = 1.5;
  EXPECT_NE(ErrorOf(cpu).find("autoscale.target for metric cpu is the utilization one replica "
                              "should run at, between 0.01 and 1 (0.7: 70 %), got 1.5"),
            std::string::npos);
  Json gpu = with("metric", "gpu");
  gpu["autoscale"]["target"] = 0.5;
  EXPECT_NE(ErrorOf(gpu).find("autoscale.metric gpu needs replicas that hold a GPU"),
            std::string::npos);
  gpu["template"]["resources"]["gpu"] = {{"count", 1}};
  decoded = DecodeServiceSpec(gpu);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->autoscale->metric, AutoscaleSpec::Metric::kGpu);
  EXPECT_NE(ErrorOf(with("target", 0)).find("autoscale.target must be between 0.01"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("target", "four")).find("autoscale.target must be a number"),
            std::string::npos);
  Json no_target = Autoscaled();
  no_target["autoscale"].erase("target");
  EXPECT_NE(ErrorOf(no_target).find("autoscale.target is required"), std::string::npos);
  EXPECT_NE(ErrorOf(with("stable_window", "2s")).find("autoscale.stable_window must be between"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("panic_window", "2m"))
                .find("autoscale.panic_window must not exceed autoscale.stable_window (1m)"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("scale_down_delay", "soon")).find("autoscale.scale_down_delay"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("window", "1m")).find("autoscale.window"), std::string::npos);
  Json idle_with_min = with("idle_to_zero", "30s");
  idle_with_min["autoscale"]["min"] = 1;
  EXPECT_NE(ErrorOf(idle_with_min).find("autoscale.idle_to_zero applies only with autoscale.min 0"),
            std::string::npos);
  Json no_endpoint = Autoscaled();
  no_endpoint.erase("endpoint");
  EXPECT_NE(ErrorOf(no_endpoint).find("service \"web\": autoscale needs an endpoint"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("idle_to_zero", "0s")).find("autoscale.idle_to_zero must be between"),
            std::string::npos);
  Json wait = Autoscaled();
  wait["endpoint"]["wait_timeout"] = "1h";
  EXPECT_NE(ErrorOf(wait).find("endpoint.wait_timeout must be between 1s and 10m"),
            std::string::npos);
}

Json WarmVm() {
  Json j = Minimal();
  j["template"] = {
      {"kind", "vm"}, {"image", "tiny-vm"}, {"resources", {{"cpu", 1}, {"memory", "256Mi"}}}};
  j["warm_start"] = "snapshot";
  return j;
}

TEST(ServiceSpecTest, WarmStartFromASnapshotIsForVmsWithAHealthCheckOnly) {
  auto spec = DecodeServiceSpec(WarmVm());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->warm_start, ServiceSpec::WarmStart::kSnapshot);
  auto back = DecodeServiceSpec(EncodeServiceSpec(*spec));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, *spec);
  Json none = WarmVm();
  none["warm_start"] = "none";
  EXPECT_EQ(DecodeServiceSpec(none)->warm_start, ServiceSpec::WarmStart::kNone);
  EXPECT_FALSE(EncodeServiceSpec(*DecodeServiceSpec(none)).contains("warm_start"));

  Json bad = WarmVm();
  bad["warm_start"] = "hot";
  EXPECT_EQ(ErrorOf(bad),
            "service \"web\": warm_start must be \"snapshot\" or \"none\", got \"hot\"");
  Json process = Minimal();
  process["warm_start"] = "snapshot";
  EXPECT_NE(ErrorOf(process).find(
                "warm_start snapshot needs a vm template (template.kind: vm), got process"),
            std::string::npos);
  Json no_health = WarmVm();
  no_health.erase("health");
  EXPECT_NE(ErrorOf(no_health).find("warm_start snapshot needs a health check"), std::string::npos);
  Json disks = WarmVm();
  disks["template"]["disks"] = Json::array({{{"disk", "data"}}});
  EXPECT_NE(ErrorOf(disks).find("cannot be used with template.disks"), std::string::npos);
  // Replicas on Berth networks cannot have the health check warm starts need.
  Json networks = WarmVm();
  networks["template"]["networks"] = Json::array({{{"network", "net1"}}});
  EXPECT_NE(ErrorOf(networks).find("health is not available yet for replicas on Berth networks"),
            std::string::npos);
  Json gpu = WarmVm();
  gpu["template"]["resources"]["gpu"] = {{"count", 1}};
  EXPECT_NE(ErrorOf(gpu).find("cannot be used with template.resources.gpu"), std::string::npos);
  Json label = WarmVm();
  label["template"]["labels"] = {{"berth.warm-state", "web.r1"}};
  EXPECT_NE(ErrorOf(label).find("template.labels.berth.warm-state is set by the service"),
            std::string::npos);
}

TEST(ServiceTest, StoredObjectRoundTrips) {
  Service svc;
  svc.spec = *DecodeServiceSpec(Minimal());
  svc.status.ready = 1;
  svc.status.next_index = 3;
  svc.status.replicas.push_back({.workload = "web-1",
                                 .host = "h1",
                                 .port = 20001,
                                 .state = "running",
                                 .ready = true,
                                 .failures = 0,
                                 .reason = ""});
  svc.status.replicas.push_back(
      {.workload = "web-2", .state = "pending", .failures = 2, .draining = true});
  svc.status.endpoint = {
      .address = "127.0.0.1:18080", .serving = true, .backends = 1, .message = "serving"};
  svc.created_at = absl::FromUnixSeconds(1'700'000'000);
  auto back = DecodeService(EncodeService(svc));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->status, svc.status);
  EXPECT_FALSE(back->status.autoscale.has_value());

  svc.spec = *DecodeServiceSpec(Autoscaled());
  svc.status.autoscale = AutoscaleStatus{.desired = 3,
                                         .stable_value = 7.25,
                                         .panic_value = 9.5,
                                         .panic = true,
                                         .waiting = 2,
                                         .decision = "panic",
                                         .observed_at = absl::FromUnixSeconds(1'700'000'100),
                                         .last_request_at = absl::FromUnixSeconds(1'700'000'099),
                                         .last_activation = absl::Milliseconds(1250),
                                         .activations = 4};
  back = DecodeService(EncodeService(svc));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->spec, svc.spec);
  EXPECT_EQ(back->status, svc.status);
  EXPECT_EQ(back->created_at, svc.created_at);

  svc.spec = *DecodeServiceSpec(WarmVm());
  svc.status.warm = WarmStateStatus{.revision = 2,
                                    .key = "web.r2",
                                    .host = "h1",
                                    .replica = "web-4",
                                    .bytes = 70 << 20,
                                    .took = absl::Milliseconds(850),
                                    .taken_at = absl::FromUnixSeconds(1'700'000'200),
                                    .restores = 3,
                                    .error = "earlier failure",
                                    .retry_at = absl::FromUnixSeconds(1'700'000'230)};
  back = DecodeService(EncodeService(svc));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->spec, svc.spec);
  EXPECT_EQ(back->status, svc.status);
}

}  // namespace
}  // namespace berth::core
