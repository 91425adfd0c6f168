#include "control/job_controller.h"

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::control {
namespace {

using core::Cat;
using core::JobState;
using core::WorkloadState;

core::HostInventory Inventory(std::string address = "", std::string cpu = "8") {
  core::HostInventory inv;
  inv.capacity.cpu = *core::ParseCpu(cpu);
  inv.capacity.memory = *core::ParseMemory("8Gi");
  inv.capacity.disk = core::DiskMiB(10240);
  inv.drivers = {"process", "container"};
  inv.address = std::move(address);
  return inv;
}

core::JobSpec Spec(int parallelism, core::Json restart = core::Json::object(),
                   std::string cpu = "1") {
  core::Json j = {{"name", "train"},
                  {"parallelism", parallelism},
                  {"restart", restart},
                  {"template",
                   {{"kind", "process"},
                    {"command", {"/bin/train"}},
                    {"resources", {{"cpu", cpu}, {"memory", "64Mi"}}}}}};
  auto spec = core::DecodeJobSpec(j);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

class JobControllerTest : public ::testing::Test {
 protected:
  JobControllerTest()
      : store_(state::StoreOptions{.clock = &clock_}),
        cp_(&store_, ControlPlaneOptions{.clock = &clock_, .policy = "binpack"}),
        jobs_(&cp_, JobControllerOptions{.clock = &clock_,
                                         .port_min = 17000,
                                         .port_max = 17009,
                                         .port_free = [](int) { return true; }}) {}
  void SetUp() override {
    ASSERT_TRUE(cp_.RegisterHost("h1", Inventory("10.0.0.1")).ok());
    ASSERT_TRUE(cp_.RegisterHost("h2", Inventory("10.0.0.2")).ok());
  }

  std::map<std::string, core::Workload> Tasks() {
    std::map<std::string, core::Workload> out;
    auto all = cp_.ListWorkloads();
    EXPECT_TRUE(all.ok()) << all.status();
    if (!all.ok()) return out;
    for (auto& w : *all) {
      if (w.spec.labels.contains("berth.job")) out[w.spec.name] = w;
    }
    return out;
  }
  void Report(const core::Workload& w, WorkloadState state, std::optional<int> code = {}) {
    auto r = cp_.ReportStatus(w.status.host, w.spec.name,
                              {.generation = w.status.generation,
                               .state = state,
                               .reason = code ? Cat("exited with code ", *code) : "",
                               .exit_code = code});
    ASSERT_TRUE(r.ok()) << r.status();
  }
  // Places what is pending and has the agents start what was placed and stop what was asked to.
  void Agents() {
    ASSERT_TRUE(cp_.ScheduleOnce().ok());
    for (const auto& [name, w] : Tasks()) {
      if (core::IsTerminal(w.status.state) || w.status.host.empty()) continue;
      if (w.status.desired != core::DesiredState::kRunning) {
        Report(w, WorkloadState::kStopped);
      } else if (w.status.state == WorkloadState::kScheduled) {
        Report(w, WorkloadState::kRunning);
      }
    }
  }
  void Exit(const std::string& name, int code) {
    core::Workload w = *cp_.GetWorkload(name);
    Report(w, code == 0 ? WorkloadState::kStopped : WorkloadState::kFailed, code);
  }
  core::Job Job() {
    auto job = jobs_.Get("train");
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : core::Job{};
  }
  std::vector<std::string> EventTypes() {
    std::vector<std::string> out;
    auto events = cp_.ListEvents(0, 1000);
    EXPECT_TRUE(events.ok()) << events.status();
    if (!events.ok()) return out;
    for (const auto& e : *events) {
      if (e.kind == "job") out.push_back(e.type);
    }
    return out;
  }

  core::ManualClock clock_;
  state::MemoryStore store_;
  ControlPlane cp_;
  JobController jobs_;
};

TEST_F(JobControllerTest, CreatesOneGangOfTasksWithTheirRanks) {
  ASSERT_TRUE(jobs_.Create(Spec(4)).ok());
  EXPECT_EQ(*jobs_.ReconcileOnce(), 4);
  auto tasks = Tasks();
  ASSERT_EQ(tasks.size(), 4u);
  const int port = Job().status.master_port;
  EXPECT_GE(port, 17000);
  EXPECT_LE(port, 17009);
  for (int i = 0; i < 4; ++i) {
    const core::Workload& w = tasks.at(Cat("train-", i));
    EXPECT_EQ(w.spec.labels.at("berth.job"), "train");
    EXPECT_EQ(w.spec.labels.at("berth.gang"), "train-a0");
    EXPECT_EQ(w.spec.labels.at("berth.gang-size"), "4");
    EXPECT_EQ(w.spec.env.at("RANK"), Cat(i));
    EXPECT_EQ(w.spec.env.at("BERTH_TASK_INDEX"), Cat(i));
    EXPECT_EQ(w.spec.env.at("WORLD_SIZE"), "4");
    EXPECT_EQ(w.spec.env.at("MASTER_PORT"), Cat(port));
    EXPECT_EQ(w.spec.env.at("BERTH_JOB"), "train");
    EXPECT_EQ(w.spec.restart.policy, core::RestartPolicy::kNever);
  }
  EXPECT_EQ(Job().status.state, JobState::kPending);
  // The gang fits one host: binpack keeps it there, and task 0 is reached on loopback.
  Agents();
  std::set<std::string> hosts, local_ranks;
  for (const auto& [name, w] : Tasks()) {
    EXPECT_EQ(w.status.state, WorkloadState::kRunning) << name;
    EXPECT_EQ(w.spec.env.at("MASTER_ADDR"), "127.0.0.1") << name;
    hosts.insert(w.status.host);
    local_ranks.insert(w.spec.env.at("LOCAL_RANK"));
  }
  EXPECT_EQ(hosts.size(), 1u);
  EXPECT_EQ(local_ranks, (std::set<std::string>{"0", "1", "2", "3"}));
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  core::Job job = Job();
  EXPECT_EQ(job.status.state, JobState::kRunning);
  EXPECT_EQ(job.status.message, "4 of 4 tasks running, 0 completed");
  ASSERT_EQ(job.status.tasks.size(), 4u);
  EXPECT_TRUE(job.status.tasks[0].current);
  EXPECT_EQ(*jobs_.ReconcileOnce(), 0);  // steady
}

TEST_F(JobControllerTest, SucceedsOnceCompletionsTasksExitedZero) {
  core::JobSpec spec = Spec(3);
  spec.completions = 2;
  ASSERT_TRUE(jobs_.Create(spec).ok());
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  Agents();
  Exit("train-0", 0);
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  EXPECT_EQ(Job().status.state, JobState::kRunning);
  EXPECT_EQ(Job().status.succeeded, 1);
  Exit("train-2", 0);
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  core::Job job = Job();
  EXPECT_EQ(job.status.state, JobState::kSucceeded);
  EXPECT_EQ(job.status.message, "2 of 3 tasks completed");
  // The task still running is stopped; every task stays with its logs.
  auto tasks = Tasks();
  ASSERT_EQ(tasks.size(), 3u);
  EXPECT_EQ(tasks.at("train-1").status.desired, core::DesiredState::kStopped);
  auto types = EventTypes();
  EXPECT_NE(std::find(types.begin(), types.end(), "succeeded"), types.end());
}

TEST_F(JobControllerTest, AFailedTaskRestartsTheWholeGangAfterTheBackoff) {
  ASSERT_TRUE(jobs_.Create(Spec(2, {{"max_retries", 2}, {"backoff", "10s"}})).ok());
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  Agents();
  const int first_port = Job().status.master_port;
  Exit("train-1", 3);
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  core::Job job = Job();
  EXPECT_EQ(job.status.state, JobState::kRetrying);
  EXPECT_EQ(job.status.retries, 1);
  EXPECT_EQ(job.status.attempt, 1);
  EXPECT_NE(job.status.message.find("task train-1 failed: exited with code 3"), std::string::npos)
      << job.status.message;
  EXPECT_NE(job.status.message.find("retry 1 of 2 (gang) in 10s"), std::string::npos)
      << job.status.message;
  // The rest of the gang is stopped; nothing new before the backoff ran out.
  EXPECT_EQ(Tasks().at("train-0").status.desired, core::DesiredState::kStopped);
  Agents();
  clock_.Advance(absl::Seconds(9));
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  EXPECT_EQ(Tasks().size(), 2u);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(*jobs_.ReconcileOnce(), 2);
  auto tasks = Tasks();
  ASSERT_EQ(tasks.size(), 4u);
  for (const char* name : {"train-0-r1", "train-1-r1"}) {
    const core::Workload& w = tasks.at(name);
    EXPECT_EQ(w.spec.labels.at("berth.gang"), "train-a1");
    EXPECT_EQ(w.spec.labels.at("berth.attempt"), "1");
  }
  job = Job();
  EXPECT_EQ(job.status.state, JobState::kPending);
  EXPECT_NE(job.status.master_port, first_port);  // the first attempt's may still be held
  ASSERT_EQ(job.status.tasks.size(), 4u);
  // The first attempt's tasks are kept, no longer current.
  EXPECT_EQ(job.status.tasks[0].workload, "train-0");
  EXPECT_FALSE(job.status.tasks[0].current);
  EXPECT_EQ(job.status.tasks[1].workload, "train-0-r1");
  EXPECT_TRUE(job.status.tasks[1].current);
  EXPECT_EQ(job.status.tasks[2].exit_code, 3);
  Agents();
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  EXPECT_EQ(Job().status.state, JobState::kRunning);
}

TEST_F(JobControllerTest, APreemptedTaskStopsItsGangWhichResumesFromItsCheckpoint) {
  core::JobSpec spec = Spec(2, {{"max_retries", 0}}, "8");  // a task fills a host
  spec.checkpoint = core::JobCheckpoint{.dir = "/ckpt", .grace = absl::Seconds(45)};
  ASSERT_TRUE(jobs_.Create(spec).ok());
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  Agents();
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  ASSERT_EQ(Job().status.state, JobState::kRunning) << Job().status.message;
  for (const auto& [name, w] : Tasks()) {
    EXPECT_EQ(w.spec.env.at("BERTH_CHECKPOINT_DIR"), "/ckpt") << name;
    EXPECT_FALSE(w.spec.env.contains("BERTH_RESUME_FROM")) << name;  // nothing to resume yet
    EXPECT_EQ(w.spec.labels.at("berth.stop-grace"), "45s") << name;
  }
  // A higher priority workload takes one task's host.
  auto urgent =
      core::DecodeWorkloadSpec(core::Json{{"name", "urgent"},
                                          {"kind", "process"},
                                          {"command", {"/bin/urgent"}},
                                          {"priority", 100},
                                          {"resources", {{"cpu", "8"}, {"memory", "64Mi"}}}});
  ASSERT_TRUE(urgent.ok()) << urgent.status();
  ASSERT_TRUE(cp_.CreateWorkload(*urgent).ok());
  ASSERT_TRUE(cp_.ScheduleOnce().ok());
  ASSERT_EQ(cp_.GetWorkload("urgent")->status.state, WorkloadState::kScheduled);
  std::string victim;
  for (const auto& [name, w] : Tasks()) {
    if (w.status.state == WorkloadState::kPending) victim = name;
  }
  ASSERT_FALSE(victim.empty());
  // The whole gang stops and is made again, as attempt 1 told to resume; no retry is spent,
  // so a job with max_retries 0 goes on.
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  core::Job job = Job();
  EXPECT_EQ(job.status.preemptions, 1);
  EXPECT_EQ(job.status.retries, 0);
  EXPECT_EQ(job.status.attempt, 1);
  EXPECT_EQ(job.status.state, JobState::kPending);
  EXPECT_NE(job.status.message.find("waiting for the gang to be placed"), std::string::npos)
      << job.status.message;
  // The event says what happened.
  auto events = cp_.ListEvents(0, 1000);
  ASSERT_TRUE(events.ok()) << events.status();
  std::string said;
  for (const auto& e : *events) {
    if (e.kind == "job" && e.type == "preempted") said = e.message;
  }
  EXPECT_EQ(said, Cat("task ", victim,
                      " was preempted by urgent (priority 100); the gang stops (45s to "
                      "checkpoint) and waits to be placed again, resuming from /ckpt"));
  auto tasks = Tasks();
  ASSERT_EQ(tasks.size(), 4u);
  for (const char* name : {"train-0", "train-1"}) {
    EXPECT_EQ(tasks.at(name).status.desired, core::DesiredState::kStopped) << name;
  }
  for (const char* name : {"train-0-r1", "train-1-r1"}) {
    const core::Workload& w = tasks.at(name);
    EXPECT_EQ(w.spec.env.at("BERTH_RESUME_FROM"), "/ckpt") << name;
    EXPECT_EQ(w.spec.labels.at("berth.gang"), "train-a1") << name;
  }
  // The stopped task is not placed again: only the new gang waits, for the urgent one's room.
  Agents();
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  EXPECT_EQ(Job().status.state, JobState::kPending);
  EXPECT_EQ(cp_.GetWorkload(victim)->status.state, WorkloadState::kStopped);
  // The urgent workload ends; the new gang takes both hosts.
  Report(*cp_.GetWorkload("urgent"), WorkloadState::kStopped, 0);
  Agents();
  Agents();
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  EXPECT_EQ(Job().status.state, JobState::kRunning) << Job().status.message;
}

TEST_F(JobControllerTest, TheCheckpointDiskGoesToTaskZeroAndPassesToTheNextAttemptOnceItStopped) {
  std::vector<std::pair<std::string, std::string>> released;  // disk, workload
  JobController jobs(
      &cp_, JobControllerOptions{.clock = &clock_,
                                 .port_free = [](int) { return true; },
                                 .release_disk =
                                     [&released](const std::string& disk, const std::string& w) {
                                       released.emplace_back(disk, w);
                                       return absl::OkStatus();
                                     }});
  auto spec = core::DecodeJobSpec(
      core::Json{{"name", "train"},
                 {"parallelism", 2},
                 {"restart", {{"max_retries", 1}, {"backoff", "0s"}}},
                 {"checkpoint", {{"dir", "/ckpt"}, {"disk", "ckpt"}, {"grace", "30s"}}},
                 {"template",
                  {{"kind", "container"},
                   {"image", "trainer"},
                   {"resources", {{"cpu", "1"}, {"memory", "64Mi"}}}}}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(jobs.Create(*spec).ok());
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  Agents();
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  ASSERT_EQ(Job().status.state, JobState::kRunning) << Job().status.message;
  // Task 0 holds the disk, mounted at the checkpoint directory; the other task has none.
  auto tasks = Tasks();
  ASSERT_EQ(tasks.at("train-0").spec.disks.size(), 1u);
  EXPECT_EQ(tasks.at("train-0").spec.disks[0].disk, "ckpt");
  EXPECT_EQ(tasks.at("train-0").spec.disks[0].mount, "/ckpt");
  EXPECT_TRUE(tasks.at("train-1").spec.disks.empty());
  EXPECT_TRUE(released.empty());

  // Task 1 fails: the gang stops, and the next attempt waits while task 0 writes its last
  // checkpoint (it has not stopped yet).
  Exit("train-1", 3);
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  EXPECT_EQ(Tasks().size(), 2u);
  EXPECT_EQ(Job().status.message,
            "waiting for task train-0 to stop: it holds checkpoint disk ckpt, which the next task "
            "0 resumes from");
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  EXPECT_EQ(Tasks().size(), 2u);
  EXPECT_TRUE(released.empty());

  // Once it stopped, the disk is released from it and the new task 0 takes it.
  Agents();
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  EXPECT_EQ(released, (std::vector<std::pair<std::string, std::string>>{{"ckpt", "train-0"}}));
  tasks = Tasks();
  ASSERT_EQ(tasks.size(), 4u);
  ASSERT_EQ(tasks.at("train-0-r1").spec.disks.size(), 1u);
  EXPECT_EQ(tasks.at("train-0-r1").spec.disks[0].disk, "ckpt");
  EXPECT_EQ(tasks.at("train-0-r1").spec.env.at("BERTH_RESUME_FROM"), "/ckpt");
  EXPECT_TRUE(tasks.at("train-1-r1").spec.disks.empty());
  Agents();
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  EXPECT_EQ(Job().status.state, JobState::kRunning) << Job().status.message;

  // A VM's task 0 gets the disk as a disk, with no mount: the guest mounts it.
  core::Json vm = EncodeJobSpec(*spec);
  vm["name"] = "tune";
  vm["template"] = {
      {"kind", "vm"}, {"image", "tiny-vm"}, {"resources", {{"cpu", "1"}, {"memory", "64Mi"}}}};
  auto vm_spec = core::DecodeJobSpec(vm);
  ASSERT_TRUE(vm_spec.ok()) << vm_spec.status();
  ASSERT_TRUE(jobs.Create(*vm_spec).ok());
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  auto tune = cp_.GetWorkload("tune-0");
  ASSERT_TRUE(tune.ok()) << tune.status();
  ASSERT_EQ(tune->spec.disks.size(), 1u);
  EXPECT_EQ(tune->spec.disks[0].disk, "ckpt");
  EXPECT_EQ(tune->spec.disks[0].mount, "");
}

TEST_F(JobControllerTest, AJobFailsWithTheReasonOnceItsRetriesRanOut) {
  ASSERT_TRUE(jobs_.Create(Spec(2, {{"max_retries", 1}, {"backoff", "0s"}})).ok());
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  Agents();
  Exit("train-0", 1);
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());  // retry 1: a new gang at once
  Agents();
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  ASSERT_EQ(Job().status.state, JobState::kRunning);
  Exit("train-1-r1", 2);
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  core::Job job = Job();
  EXPECT_EQ(job.status.state, JobState::kFailed);
  EXPECT_EQ(job.status.message,
            "task train-1-r1 failed: exited with code 2; no retries left (max_retries 1, 1 "
            "spent)");
  EXPECT_NE(job.status.finished_at, absl::InfinitePast());
  auto tasks = Tasks();
  EXPECT_EQ(tasks.size(), 4u);  // finished tasks keep their logs
  EXPECT_EQ(tasks.at("train-0-r1").status.desired, core::DesiredState::kStopped);
  Agents();
  EXPECT_EQ(*jobs_.ReconcileOnce(), 0);  // nothing more happens
  EXPECT_EQ(Tasks().size(), 4u);
}

TEST_F(JobControllerTest, PolicyNeverFailsAtTheFirstFailure) {
  ASSERT_TRUE(jobs_.Create(Spec(2, {{"policy", "never"}})).ok());
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  Agents();
  Exit("train-0", 9);
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  EXPECT_EQ(Job().status.state, JobState::kFailed);
  EXPECT_EQ(Job().status.message, "task train-0 failed: exited with code 9; restart policy never");
}

TEST_F(JobControllerTest, ScopeTaskStartsOnlyTheFailedTaskAgain) {
  ASSERT_TRUE(jobs_.Create(Spec(3, {{"scope", "task"}, {"backoff", "0s"}})).ok());
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  Agents();
  Exit("train-2", 1);
  EXPECT_EQ(*jobs_.ReconcileOnce(), 1);
  auto tasks = Tasks();
  ASSERT_EQ(tasks.size(), 4u);
  EXPECT_EQ(tasks.at("train-0").status.desired, core::DesiredState::kRunning);
  EXPECT_EQ(tasks.at("train-1").status.state, WorkloadState::kRunning);
  const core::Workload& again = tasks.at("train-2-r1");
  EXPECT_EQ(again.spec.labels.at("berth.gang-size"), "1");
  EXPECT_EQ(again.spec.env.at("RANK"), "2");
  // It rejoins the running rendezvous: task 0's host, on a cluster of two hosts by address.
  const std::string host0 = tasks.at("train-0").status.host;
  EXPECT_EQ(again.spec.env.at("MASTER_ADDR"), host0 == "h1" ? "10.0.0.1" : "10.0.0.2");
  EXPECT_EQ(again.spec.env.at("MASTER_PORT"), tasks.at("train-0").spec.env.at("MASTER_PORT"));
  EXPECT_EQ(Job().status.retries, 1);
  Agents();
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  EXPECT_EQ(Job().status.state, JobState::kRunning);
}

TEST_F(JobControllerTest, CancelStopsTheTasksAndASecondCancelRemovesTheJob) {
  ASSERT_TRUE(jobs_.Create(Spec(2)).ok());
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  Agents();
  auto cancelled = jobs_.Delete("train");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_FALSE(cancelled->deleted);
  EXPECT_EQ(cancelled->job.status.state, JobState::kCancelled);
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  for (const auto& [name, w] : Tasks()) {
    EXPECT_EQ(w.status.desired, core::DesiredState::kStopped) << name;
  }
  Agents();
  EXPECT_EQ(Tasks().size(), 2u);  // kept, with their logs
  auto removing = jobs_.Delete("train");
  ASSERT_TRUE(removing.ok()) << removing.status();
  EXPECT_FALSE(removing->deleted);
  EXPECT_TRUE(removing->job.status.removing);
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  EXPECT_TRUE(Tasks().empty());
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  EXPECT_TRUE(absl::IsNotFound(jobs_.Get("train").status()));
  EXPECT_TRUE(absl::IsNotFound(jobs_.Delete("train").status()));
}

TEST_F(JobControllerTest, BadInputChangesNothing) {
  ASSERT_TRUE(jobs_.Create(Spec(2)).ok());
  auto again = jobs_.Create(Spec(2));
  EXPECT_TRUE(absl::IsAlreadyExists(again.status())) << again.status();
  core::JobSpec bad = Spec(2);
  bad.name = "other";
  bad.parallelism = 0;
  auto refused = jobs_.Create(bad);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status()));
  EXPECT_EQ(refused.status().message(),
            "job \"other\": parallelism must be between 1 and 32, got 0");
  EXPECT_TRUE(absl::IsNotFound(jobs_.Get("other").status()));
  // A workload holding a task's name is not adopted: the job says why it waits.
  core::WorkloadSpec squatter = Spec(1).workload_template;
  squatter.name = "train-1";
  ASSERT_TRUE(cp_.CreateWorkload(squatter).ok());
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  EXPECT_NE(Job().status.message.find("workload \"train-1\" exists and is not this job's"),
            std::string::npos)
      << Job().status.message;
}

TEST_F(JobControllerTest, AGangThatNeverFitsFailsAtItsPlacementTimeout) {
  core::JobSpec spec = Spec(2, core::Json::object(), "9");
  spec.placement_timeout = absl::Minutes(1);
  ASSERT_TRUE(jobs_.Create(spec).ok());
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  ASSERT_TRUE(cp_.ScheduleOnce().ok());
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  core::Job job = Job();
  EXPECT_EQ(job.status.state, JobState::kPending);
  EXPECT_NE(job.status.message.find("waiting for the gang to be placed (2 of 2 tasks wait): "
                                    "gang train-a0"),
            std::string::npos)
      << job.status.message;
  clock_.Advance(absl::Minutes(1));
  ASSERT_TRUE(jobs_.ReconcileOnce().ok());
  job = Job();
  EXPECT_EQ(job.status.state, JobState::kFailed);
  EXPECT_NE(job.status.message.find("not placed within 1m: gang train-a0"), std::string::npos)
      << job.status.message;
  for (const auto& [name, w] : Tasks()) {
    EXPECT_EQ(w.status.state, WorkloadState::kStopped) << name;
  }
}

}  // namespace
}  // namespace berth::control
