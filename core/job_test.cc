#include "core/job.h"

#include "gtest/gtest.h"

namespace berth::core {
namespace {

Json Minimal() {
  return Json::parse(R"({
    "name": "train", "kind": "job", "parallelism": 4,
    "template": {"kind": "process", "command": ["/bin/sh", "-c", "exit 0"],
                 "resources": {"cpu": "100m", "memory": "32Mi"}},
    "restart": {"policy": "on-failure", "max_retries": 2, "backoff": "1s"}
  })");
}

std::string ErrorOf(const Json& j) {
  auto spec = DecodeJobSpec(j);
  EXPECT_FALSE(spec.ok()) << j.dump();
  if (spec.ok()) return "";
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(spec.status().message());
}

TEST(JobSpecTest, DecodesWithDefaultsAndRoundTrips) {
  auto spec = DecodeJobSpec(Minimal());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "train");
  EXPECT_EQ(spec->parallelism, 4);
  EXPECT_EQ(spec->completions, 0);
  EXPECT_EQ(spec->Completions(), 4);
  EXPECT_EQ(spec->workload_template.name, "train");
  EXPECT_EQ(spec->restart.policy, JobRestart::Policy::kOnFailure);
  EXPECT_EQ(spec->restart.max_retries, 2);
  EXPECT_EQ(spec->restart.backoff, absl::Seconds(1));
  EXPECT_EQ(spec->restart.scope, JobRestart::Scope::kGang);
  EXPECT_FALSE(spec->priority.has_value());
  auto again = DecodeJobSpec(EncodeJobSpec(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *spec);

  Json full = Minimal();
  full["completions"] = 2;
  full["priority"] = 50;
  full["placement_timeout"] = "5m";
  full["restart"] = {{"policy", "never"}, {"scope", "task"}};
  spec = DecodeJobSpec(full);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->Completions(), 2);
  EXPECT_EQ(spec->priority, 50);
  EXPECT_EQ(spec->placement_timeout, absl::Minutes(5));
  EXPECT_EQ(spec->restart.policy, JobRestart::Policy::kNever);
  EXPECT_EQ(spec->restart.scope, JobRestart::Scope::kTask);
  EXPECT_EQ(spec->restart.max_retries, 3);  // the default
  EXPECT_EQ(spec->restart.backoff, absl::Seconds(10));
  again = DecodeJobSpec(EncodeJobSpec(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *spec);

  full["checkpoint"] = {{"dir", "/ckpt/train"}, {"grace", "90s"}};
  spec = DecodeJobSpec(full);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(spec->checkpoint.has_value());
  EXPECT_EQ(spec->checkpoint->dir, "/ckpt/train");
  EXPECT_EQ(spec->checkpoint->grace, absl::Seconds(90));
  again = DecodeJobSpec(EncodeJobSpec(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *spec);
  full["checkpoint"] = {{"dir", "/ckpt"}};
  spec = DecodeJobSpec(full);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->checkpoint->grace, absl::Seconds(30));  // the default
}

TEST(JobSpecTest, ErrorsNameTheJobAndTheField) {
  auto with = [](const char* key, Json value) {
    Json j = Minimal();
    j[key] = std::move(value);
    return j;
  };
  EXPECT_EQ(ErrorOf(with("parallelism", 0)),
            "job \"train\": parallelism must be between 1 and 32, got 0");
  EXPECT_NE(ErrorOf(with("parallelism", 33)).find("parallelism"), std::string::npos);
  EXPECT_NE(ErrorOf(with("parallelism", "4")).find("job \"train\": parallelism"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("completions", 5)).find("completions must be at most parallelism (4)"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("replicas", 2)).find("replicas"), std::string::npos);
  EXPECT_NE(ErrorOf(with("kind", "service")).find("kind must be \"job\""), std::string::npos);
  EXPECT_NE(ErrorOf(with("priority", "high")).find("priority"), std::string::npos);
  EXPECT_NE(ErrorOf(with("placement_timeout", "soon")).find("placement_timeout"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("restart", {{"policy", "always"}})).find("restart.policy"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf(with("restart", {{"scope", "host"}})).find("restart.scope must be gang or task"),
      std::string::npos);
  EXPECT_NE(ErrorOf(with("restart", {{"max_retries", -1}})).find("restart.max_retries"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("restart", {{"backoff", "2h"}})).find("restart.backoff"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("restart", {{"retries", 2}})).find("restart"), std::string::npos);
  EXPECT_NE(
      ErrorOf(with("checkpoint", {{"dir", "ckpt"}})).find("checkpoint.dir must be an absolute"),
      std::string::npos);
  EXPECT_NE(ErrorOf(with("checkpoint", {{"grace", "10s"}})).find("checkpoint.dir"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("checkpoint", {{"dir", "/" + std::string(kMaxCheckpointDirLength, 'a')}}))
                .find("checkpoint.dir must be a path of at most 1024"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("checkpoint", {{"dir", "/a\nb"}})).find("checkpoint.dir"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("checkpoint", {{"dir", "/c"}, {"grace", "2h"}}))
                .find("checkpoint.grace must be between 0 and 1h"),
            std::string::npos);
  EXPECT_EQ(ErrorOf(with("checkpoint", {{"dir", "/c"}, {"disk", "vol"}})),
            "job \"train\": checkpoint.disk needs a template of kind container or vm (a disk is "
            "mounted or plugged in), got process; use a directory the hosts share");
  EXPECT_NE(ErrorOf(with("checkpoint", {{"dir", "/c"}, {"volume", "vol"}})).find("checkpoint"),
            std::string::npos);
  EXPECT_NE(ErrorOf(with("checkpoint", "/c")).find("checkpoint"), std::string::npos);

  Json j = Minimal();
  j.erase("template");
  EXPECT_NE(ErrorOf(j).find("template is required"), std::string::npos);
  j = Minimal();
  j["template"]["restart"] = "on-failure";
  EXPECT_NE(ErrorOf(j).find("template.restart is set by the job"), std::string::npos);
  j = Minimal();
  j["template"]["env"] = {{"RANK", "3"}};
  EXPECT_NE(ErrorOf(j).find("template.env.RANK is set by the job"), std::string::npos);
  j = Minimal();
  j["template"]["labels"] = {{"berth.gang", "x"}};
  EXPECT_NE(ErrorOf(j).find("template.labels.berth.gang"), std::string::npos);
  j = Minimal();
  j["template"]["labels"] = {{"berth.stop-grace", "10s"}};
  EXPECT_NE(ErrorOf(j).find("template.labels.berth.stop-grace is set by the job"),
            std::string::npos);
  j = Minimal();
  j["template"]["env"] = {{"BERTH_RESUME_FROM", "/x"}};
  EXPECT_NE(ErrorOf(j).find("template.env.BERTH_RESUME_FROM is set by the job"), std::string::npos);
  j = Minimal();
  j["template"]["resources"]["cpu"] = "-1";
  EXPECT_NE(ErrorOf(j).find("job \"train\": template.resources.cpu"), std::string::npos);
  j = Minimal();
  j["name"] = std::string(kMaxJobNameLength + 1, 'a');
  EXPECT_NE(ErrorOf(j).find("name must be at most"), std::string::npos);
  j = Minimal();
  j["name"] = "Bad_Name";
  EXPECT_NE(ErrorOf(j).find("name"), std::string::npos);
}

TEST(JobSpecTest, ACheckpointDiskGoesToAContainerOrVmTemplateOnly) {
  Json j = Minimal();
  j["template"] = {{"kind", "container"},
                   {"image", "trainer"},
                   {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}},
                   {"disks", {{{"disk", "data"}, {"mount", "/data"}}}}};
  j["checkpoint"] = {{"dir", "/ckpt"}, {"disk", "ckpt-vol"}, {"grace", "60s"}};
  auto spec = DecodeJobSpec(j);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(spec->checkpoint.has_value());
  EXPECT_EQ(spec->checkpoint->disk, "ckpt-vol");
  EXPECT_EQ(spec->checkpoint->grace, absl::Seconds(60));
  Json encoded = EncodeJobSpec(*spec);
  EXPECT_EQ(encoded["checkpoint"]["disk"], "ckpt-vol");
  auto again = DecodeJobSpec(encoded);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->checkpoint, spec->checkpoint);
  // Without a disk the field is left out.
  j["checkpoint"].erase("disk");
  EXPECT_FALSE(EncodeJobSpec(*DecodeJobSpec(j))["checkpoint"].contains("disk"));

  j["checkpoint"]["disk"] = "Bad Name";
  EXPECT_NE(ErrorOf(j).find("job \"train\": checkpoint.disk must be a disk's name"),
            std::string::npos);
  j["checkpoint"]["disk"] = "data";
  EXPECT_NE(ErrorOf(j).find("checkpoint.disk names disk \"data\", which template.disks gives "
                            "every task"),
            std::string::npos);
  j["checkpoint"] = {{"dir", "/data"}, {"disk", "ckpt-vol"}};
  EXPECT_NE(ErrorOf(j).find("checkpoint.disk goes at checkpoint.dir \"/data\", where "
                            "template.disks mounts disk \"data\""),
            std::string::npos);
  j["checkpoint"]["disk"] = 7;
  EXPECT_NE(ErrorOf(j).find("checkpoint.disk"), std::string::npos);
}

TEST(JobTest, StoredObjectRoundTrips) {
  Job job;
  job.spec = *DecodeJobSpec(Minimal());
  job.status.state = JobState::kRetrying;
  job.status.message = "retry 1 of 2";
  job.status.attempt = 1;
  job.status.retries = 1;
  job.status.preemptions = 2;
  job.status.master_port = 17001;
  job.status.current = {"", "train-1-r1", "", ""};
  job.status.tasks.push_back({.workload = "train-0",
                              .index = 0,
                              .attempt = 0,
                              .host = "h1",
                              .state = "failed",
                              .exit_code = 3,
                              .reason = "exited with code 3"});
  job.status.retry_at = absl::FromUnixSeconds(1700000000);
  job.revision = 7;
  auto back = DecodeJob(EncodeJob(job));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->spec, job.spec);
  EXPECT_EQ(back->status, job.status);
  EXPECT_EQ(back->revision, 7);
  Json bad = EncodeJob(job);
  bad["status"]["state"] = "sleeping";
  EXPECT_FALSE(DecodeJob(bad).ok());
}

}  // namespace
}  // namespace berth::core
