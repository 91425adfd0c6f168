#include "core/workload.h"

#include "gtest/gtest.h"

namespace berth::core {
namespace {

absl::StatusOr<WorkloadSpec> Decode(const char* text) {
  return DecodeWorkloadSpec(Json::parse(text));
}

void ExpectError(const char* text, const std::string& field) {
  auto spec = Decode(text);
  ASSERT_FALSE(spec.ok()) << text;
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(spec.status().message().find(field), std::string::npos)
      << spec.status().message() << " should name " << field;
}

TEST(WorkloadSpec, DecodesTheHelloSpec) {
  auto spec = Decode(R"({"name":"hello","kind":"process",
      "command":["/bin/sh","-c","echo hello; sleep 3600"],
      "resources":{"cpu":"500m","memory":"64Mi"}})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "hello");
  EXPECT_EQ(spec->kind, WorkloadKind::kProcess);
  EXPECT_EQ(spec->command.size(), 3u);
  EXPECT_EQ(spec->resources.cpu, MilliCpu(500));
  EXPECT_EQ(spec->resources.memory, MemoryMiB(64));
  EXPECT_EQ(spec->tenant, "default");
}

TEST(WorkloadSpec, RoundTripsThroughJson) {
  auto spec = Decode(R"({"name":"train","kind":"vm","image":"trainer-vm",
      "resources":{"cpu":2,"memory":"4Gi","gpu":{"count":2,"models":["A100"]}},
      "priority":10,"preemptible":false,"labels":{"team":"a"},
      "constraints":[{"label":"rack","op":"in","values":["r1","r2"]}],
      "ports":[{"host":8080,"guest":80}]})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto again = DecodeWorkloadSpec(EncodeWorkloadSpec(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *spec);
  EXPECT_EQ(spec->gpu.kind, GpuRequest::Kind::kWhole);
  EXPECT_EQ(spec->gpu.count, 2);
}

TEST(WorkloadSpec, GpuForms) {
  auto share = Decode(R"({"name":"s","kind":"container","image":"i",
      "resources":{"gpu":{"share":"250m","memory":"8Gi"}}})");
  ASSERT_TRUE(share.ok()) << share.status();
  EXPECT_EQ(share->gpu.kind, GpuRequest::Kind::kShare);
  EXPECT_EQ(share->gpu.milli, 250);
  EXPECT_EQ(share->gpu.memory_mib, 8192);
  auto mig = Decode(
      R"({"name":"m","kind":"container","image":"i","resources":{"gpu":{"mig":"3g.40gb"}}})");
  ASSERT_TRUE(mig.ok()) << mig.status();
  EXPECT_EQ(mig->gpu.kind, GpuRequest::Kind::kMig);
  auto count = Decode(R"({"name":"c","kind":"container","image":"i","resources":{"gpu":4}})");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->gpu.count, 4);
}

TEST(WorkloadSpec, RefusesBadInputNamingTheField) {
  ExpectError(R"({"name":"hello","kind":"process","command":["x"],"resources":{"memory":"-5Mi"}})",
              "workload \"hello\": resources.memory");
  ExpectError(R"({"name":"hello","kind":"process","command":["x"],"colour":"red"})",
              "field \"colour\"");
  ExpectError(R"({"name":"hello","kind":"process","command":["x"],"resources":{"cpus":1}})",
              "resources.cpus");
  ExpectError(R"({"name":"hello","kind":"teapot","command":["x"]})", "kind");
  ExpectError(R"({"name":"Hello_World","kind":"process","command":["x"]})", "name");
  ExpectError(R"({"kind":"process","command":["x"]})", "name");
  ExpectError(R"({"name":"a","kind":"process"})", "command");
  ExpectError(R"({"name":"a","kind":"vm","image":"tiny"})", "resources.memory");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"resources":{"gpu":{"count":-2}}})",
              "resources.gpu.count");
  ExpectError(
      R"({"name":"a","kind":"process","command":["x"],"resources":{"gpu":{"share":"1500m"}}})",
      "resources.gpu.share");
  ExpectError(
      R"({"name":"a","kind":"process","command":["x"],"resources":{"gpu":{"mig":"9g.1gb"}}})",
      "resources.gpu.mig");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"resources":{"cpu":"lots"}})",
              "resources.cpu");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"priority":-1})", "priority");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"ports":[{"host":0,"guest":80}]})",
              "ports[0].host");
  // A container with ports shares its host's network: no port is mapped to another, and on
  // Berth networks it is reached through port forwards instead.
  ExpectError(R"({"name":"a","kind":"container","image":"i","ports":[{"host":8080,"guest":80}]})",
              "ports[0].guest must equal host (8080) for kind container");
  ExpectError(R"({"name":"a","kind":"container","image":"i","networks":[{"network":"n"}],
                  "ports":[{"host":8080,"guest":8080}]})",
              "ports[0] do not apply to a container on Berth networks");
  ASSERT_TRUE(
      Decode(R"({"name":"a","kind":"container","image":"i","ports":[{"host":8080,"guest":8080}]})")
          .ok());
  // A container stored before that rule keeps decoding: what was acknowledged is not lost.
  Workload stored;
  stored.spec.name = "old";
  stored.spec.kind = WorkloadKind::kContainer;
  stored.spec.image = "i";
  stored.spec.ports = {{.host_port = 21000, .guest_port = 8080}};
  auto back = DecodeWorkload(EncodeWorkload(stored));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->spec.ports[0].guest_port, 8080);
  ExpectError(R"([1,2])", "body");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],
                  "labels":{"berth.stop-grace":"soon"}})",
              "labels.berth.stop-grace must be a duration from 0s to 1h");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],
                  "labels":{"berth.stop-grace":"2h"}})",
              "labels.berth.stop-grace");
  auto graced = Decode(R"({"name":"a","kind":"process","command":["x"],
                           "labels":{"berth.stop-grace":"90s"}})");
  ASSERT_TRUE(graced.ok()) << graced.status();
}

TEST(WorkloadSpec, DevicesOfAClassRoundTripAndBadOnesNameTheField) {
  auto spec = Decode(R"({"name":"f","kind":"container","image":"i",
      "devices":[{"class":"xilinx.com/fpga","count":2},{"class":"acme.com/npu"}]})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->devices,
            (std::vector<DeviceRequest>{{"xilinx.com/fpga", 2}, {"acme.com/npu", 1}}));
  auto again = DecodeWorkloadSpec(EncodeWorkloadSpec(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *spec);
  ExpectError(R"({"name":"f","kind":"process","command":["x"],"devices":[{"class":"fpga"}]})",
              "devices[0].class");
  ExpectError(R"({"name":"f","kind":"process","command":["x"],"devices":[{"count":1}]})",
              "devices[0].class");
  ExpectError(
      R"({"name":"f","kind":"process","command":["x"],"devices":[{"class":"x.com/f","count":0}]})",
      "devices[0].count");
  ExpectError(
      R"({"name":"f","kind":"process","command":["x"],"devices":[{"class":"x.com/f","count":"2"}]})",
      "devices[0].count");
  ExpectError(R"({"name":"f","kind":"process","command":["x"],
      "devices":[{"class":"x.com/f"},{"class":"x.com/f"}]})",
              "devices[1].class");
  ExpectError(
      R"({"name":"f","kind":"process","command":["x"],"devices":[{"class":"nvidia.com/gpu"}]})",
      "devices[0].class");
  ExpectError(
      R"({"name":"f","kind":"process","command":["x"],"devices":[{"class":"x.com/f","size":1}]})",
      "devices[0].size");
  ExpectError(R"({"name":"f","kind":"process","command":["x"],"devices":{"class":"x.com/f"}})",
              "devices");
  ExpectError(R"({"name":"v","kind":"vm","image":"i","resources":{"memory":"256Mi"},
      "devices":[{"class":"x.com/f"}]})",
              "devices");
}

TEST(WorkloadStatus, DevicesRoundTrip) {
  WorkloadStatus s;
  s.devices = {{.cls = "xilinx.com/fpga", .id = "u250-1"}};
  auto again = DecodeWorkloadStatus(EncodeWorkloadStatus(s));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->devices, s.devices);
}

TEST(WorkloadSpec, UserIsANameOrNumericIdsAndRoundTrips) {
  auto named = Decode(R"({"name":"a","kind":"process","command":["x"],"user":"svc.train-1"})");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->user, "svc.train-1");
  auto again = DecodeWorkloadSpec(EncodeWorkloadSpec(*named));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *named);
  // YAML writes `user: 1000` as a number.
  auto number = Decode(R"({"name":"a","kind":"process","command":["x"],"user":1000})");
  ASSERT_TRUE(number.ok()) << number.status();
  EXPECT_EQ(number->user, "1000");
  auto absent = Decode(R"({"name":"a","kind":"process","command":["x"]})");
  ASSERT_TRUE(absent.ok());
  EXPECT_EQ(absent->user, "");
  EXPECT_FALSE(EncodeWorkloadSpec(*absent).contains("user"));

  EXPECT_EQ(*ParseUserSpec("alice"), (UserSpec{.name = "alice"}));
  EXPECT_EQ(*ParseUserSpec("1000"), (UserSpec{.uid = 1000u}));
  EXPECT_EQ(*ParseUserSpec("1000:2000"), (UserSpec{.uid = 1000u, .gid = 2000u}));
  for (const char* bad : {"", ":", "1000:", ":5", "1:2:3", "4294967295", "-x", "a b", "a:b",
                          "a/../b", "averyveryveryveryveryverylongname"}) {
    EXPECT_FALSE(ParseUserSpec(bad).ok()) << bad;
  }
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"user":"a b"})",
              "workload \"a\": user");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"user":"1:2:3"})", "user");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"user":""})", "user");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"user":["root"]})", "user");
  ExpectError(R"({"name":"a","kind":"container","image":"busybox","user":"alice"})", "user");
  ExpectError(R"({"name":"a","kind":"vm","image":"t","resources":{"memory":"1Gi"},"user":"1"})",
              "user");
}

TEST(WorkloadSpec, RequestsRootMeansUidOrGidZeroOrTheRootName) {
  EXPECT_TRUE(RequestsRoot("root"));
  EXPECT_TRUE(RequestsRoot("0"));
  EXPECT_TRUE(RequestsRoot("0:1000"));
  EXPECT_TRUE(RequestsRoot("1000:0"));
  EXPECT_FALSE(RequestsRoot(""));
  EXPECT_FALSE(RequestsRoot("nobody"));
  EXPECT_FALSE(RequestsRoot("1000"));
  EXPECT_FALSE(RequestsRoot("65534:65534"));
  EXPECT_FALSE(RequestsRoot("rooted"));
}

TEST(WorkloadSpec, NetworksAndDisks) {
  auto spec = Decode(R"({"name":"web","kind":"container","image":"busybox",
      "networks":["blue",{"network":"red","address":"10.1.0.9","security_groups":["web"]}],
      "disks":[{"disk":"data","mount":"/data","read_only":true}]})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->networks.size(), 2u);
  EXPECT_EQ(spec->networks[0].network, "blue");
  EXPECT_EQ(spec->networks[1].address, "10.1.0.9");
  EXPECT_EQ(spec->networks[1].security_groups, std::vector<std::string>{"web"});
  ASSERT_EQ(spec->disks.size(), 1u);
  EXPECT_TRUE(spec->disks[0].read_only);
  auto again = DecodeWorkloadSpec(EncodeWorkloadSpec(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *spec);

  ExpectError(R"({"name":"p","kind":"process","command":["x"],"networks":["blue"]})", "networks");
  ExpectError(R"({"name":"c","kind":"container","image":"i","networks":[{"network":"b",
      "address":"10.0.0.300"}]})",
              "networks[0].address");
  ExpectError(R"({"name":"c","kind":"container","image":"i","networks":["b","b"]})",
              "networks[1].network");
  ExpectError(R"({"name":"c","kind":"container","image":"i","networks":[{"net":"b"}]})", "net");
  ExpectError(R"({"name":"c","kind":"container","image":"i","disks":["data"]})", "disks[0].mount");
  ExpectError(R"({"name":"c","kind":"container","image":"i","disks":[{"disk":"d",
      "mount":"../etc"}]})",
              "disks[0].mount");
  ExpectError(R"({"name":"v","kind":"vm","image":"i","resources":{"memory":"64Mi"},
      "disks":[{"disk":"d","mount":"/data"}]})",
              "disks[0].mount");
  ExpectError(R"({"name":"v","kind":"vm","image":"i","resources":{"memory":"64Mi"},
      "disks":["Bad_Name"]})",
              "disks[0].disk");
}

TEST(WorkloadSpec, RestartPolicyDecodesRoundTripsAndRefusesBadValues) {
  auto absent = Decode(R"({"name":"a","kind":"process","command":["x"]})");
  ASSERT_TRUE(absent.ok()) << absent.status();
  EXPECT_EQ(absent->restart.policy, RestartPolicy::kNever);
  EXPECT_FALSE(absent->restart.ReplaceOnHostLoss());
  EXPECT_FALSE(EncodeWorkloadSpec(*absent).contains("restart"));

  auto full = Decode(R"({"name":"a","kind":"process","command":["x"],
      "restart":{"policy":"on-failure","max_retries":3,"backoff":"2s","fence":false}})");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->restart.policy, RestartPolicy::kOnFailure);
  EXPECT_EQ(full->restart.max_retries, 3);
  EXPECT_EQ(full->restart.backoff, absl::Seconds(2));
  EXPECT_FALSE(full->restart.fence);
  EXPECT_FALSE(full->restart.ReplaceOnHostLoss());  // unfenced: it may still run there
  auto again = DecodeWorkloadSpec(EncodeWorkloadSpec(*full));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *full);

  auto shorthand = Decode(R"({"name":"a","kind":"process","command":["x"],"restart":"always"})");
  ASSERT_TRUE(shorthand.ok()) << shorthand.status();
  EXPECT_EQ(shorthand->restart.policy, RestartPolicy::kAlways);
  EXPECT_TRUE(shorthand->restart.fence);
  EXPECT_TRUE(shorthand->restart.ReplaceOnHostLoss());
  EXPECT_EQ(shorthand->restart.backoff, kDefaultRestartBackoff);
  EXPECT_FALSE(shorthand->restart.max_retries.has_value());

  ExpectError(R"({"name":"a","kind":"process","command":["x"],"restart":"sometimes"})",
              "restart.policy");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"restart":{"policy":1}})",
              "restart.policy");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"restart":{"max_retries":-1}})",
              "restart.max_retries");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"restart":{"max_retries":"3"}})",
              "restart.max_retries");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"restart":{"backoff":"soon"}})",
              "restart.backoff");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"restart":{"backoff":"-1s"}})",
              "restart.backoff");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"restart":{"backoff":"1h"}})",
              "restart.backoff");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"restart":{"fence":"no"}})",
              "restart.fence");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"restart":{"tries":1}})",
              "restart.tries");
  ExpectError(R"({"name":"a","kind":"process","command":["x"],"restart":[1]})", "restart");
}

TEST(Workload, StoredObjectRoundTrips) {
  Workload w;
  w.spec = *Decode(R"({"name":"x","kind":"process","command":["true"]})");
  w.status.state = WorkloadState::kRunning;
  w.status.host = "h1";
  w.status.exit_code = 3;
  w.status.gpus.push_back({.index = 1, .milli = 250, .memory_mib = 100, .device_id = "GPU-b"});
  w.status.gpus.push_back({.index = 0,
                           .milli = 428,
                           .mig_profile = "3g.40gb",
                           .mig_start_slice = 4,
                           .device_id = "MIG-4a8c2e6f"});
  w.status.restarts = 2;
  w.status.retry_at = absl::FromUnixMillis(1700000005000);
  w.created_at = absl::FromUnixMillis(1700000000123);
  auto back = DecodeWorkload(EncodeWorkload(w));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->status.state, WorkloadState::kRunning);
  EXPECT_EQ(back->status.host, "h1");
  EXPECT_EQ(*back->status.exit_code, 3);
  EXPECT_EQ(back->status.gpus, w.status.gpus);
  EXPECT_EQ(back->created_at, w.created_at);
  EXPECT_EQ(back->status.restarts, 2);
  EXPECT_EQ(back->status.retry_at, w.status.retry_at);
}

}  // namespace
}  // namespace berth::core
