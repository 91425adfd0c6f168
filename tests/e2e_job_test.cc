// Training jobs in the real binary (dev mode): a job of four process tasks placed as one gang,
// each checking the environment it was given (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT, BERTH_JOB, BERTH_TASK_INDEX) and exiting 0, ends succeeded with every task's log
// readable; a job whose task 1 always fails is retried as a whole gang after its backoff and ends
// failed after max_retries, naming the task and its exit code, every attempt's tasks kept with
// their logs; cancelling a finished job removes it and its tasks; the example trainer
// (examples/train/, PyTorch) resumes from its checkpoint after a failed task, and after a higher
// priority workload preempted it (checkpoint-aware preemption).
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/e2e_util.h"

namespace berth::e2e {
namespace {

// Checks what a task of a 4-task job "train" on one host must be told; says it, then exits 0, or
// 7 naming the first variable that is wrong.
constexpr char kCheck[] = R"SH(
fail() { echo "bad $1: '$2'"; exit 7; }
[ "$WORLD_SIZE" = 4 ] || fail WORLD_SIZE "$WORLD_SIZE"
case "$RANK" in 0|1|2|3) ;; *) fail RANK "$RANK" ;; esac
[ "$BERTH_TASK_INDEX" = "$RANK" ] || fail BERTH_TASK_INDEX "$BERTH_TASK_INDEX"
case "$LOCAL_RANK" in 0|1|2|3) ;; *) fail LOCAL_RANK "$LOCAL_RANK" ;; esac
[ "$MASTER_ADDR" = 127.0.0.1 ] || fail MASTER_ADDR "$MASTER_ADDR"
[ "$MASTER_PORT" -ge 1024 ] 2>/dev/null || fail MASTER_PORT "$MASTER_PORT"
[ "$BERTH_JOB" = train ] || fail BERTH_JOB "$BERTH_JOB"
echo "rank $RANK of $WORLD_SIZE local $LOCAL_RANK master $MASTER_ADDR:$MASTER_PORT"
)SH";

// Task 1 fails at once; task 0 waits to be stopped with its gang.
constexpr char kFailing[] = R"SH(
echo "attempt of rank $RANK"
[ "$RANK" = 1 ] && exit 3
exec /bin/sleep 600
)SH";

std::string JobYaml(const std::string& name, int parallelism, const std::string& script,
                    const std::string& restart) {
  nlohmann::json command = {"/bin/sh", "-c", script};
  return "name: " + name + "\nkind: job\nparallelism: " + std::to_string(parallelism) +
         "\nrestart: " + restart + "\ntemplate:\n  kind: process\n  command: " + command.dump() +
         "\n  resources: {cpu: 100m, memory: 32Mi}\n";
}

class JobE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists("/bin/sh")) GTEST_SKIP() << "needs /bin/sh for the tasks";
    dir_ = TempDir("e2e-job");
    server_ = std::make_unique<DevServer>(dir_);
    ASSERT_TRUE(server_->Start()) << ReadFile(dir_ + "/serve.log");
    ASSERT_TRUE(Eventually([&] {
      auto hosts = server_->client().ListHosts();
      return hosts.ok() && !hosts->items.empty();
    })) << ReadFile(dir_ + "/serve.log");
  }
  void TearDown() override {
    if (server_ && server_->pid() > 0) {
      for (const char* name : {"train", "flaky", "train-example"}) {
        // The first cancel ends a running job, the next removes it with its tasks.
        EXPECT_TRUE(Eventually([&] {
          auto d = server_->client().DeleteJob(name);
          return absl::IsNotFound(d.status()) || (d.ok() && d->deleted);
        })) << "job "
            << name << " was not removed";
      }
      DeleteAllWorkloads(*server_);
    }
    server_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  core::Job Get(const std::string& name) {
    auto job = server_->client().GetJob(name);
    return job.ok() ? *job : core::Job{};
  }
  std::string Dump(const std::string& name) {
    api::Raw raw;
    const std::string job = server_->client().GetJob(name, &raw).ok()
                                ? raw.body.dump(2)
                                : std::string("(job not readable)");
    return job + "\n" + ReadFile(dir_ + "/serve.log");
  }

  // A task's standard output, once readable (the agent moves it aside when the task is cleaned
  // up, so a read may fall between the two places).
  std::string Logs(const std::string& task) {
    Result logs;
    EXPECT_TRUE(Eventually([&] {
      logs = e2e::Run(dir_, {"job", "logs", task});
      return logs.exit_code == 0;
    })) << task
        << ": " << logs.err;
    return logs.out;
  }

  std::string dir_;
  std::unique_ptr<DevServer> server_;
};

TEST_F(JobE2eTest, AGangOfFourIsToldItsRanksAndSucceeds) {
  Result created =
      e2e::Run(dir_, {"job", "create", "-f", "-"}, JobYaml("train", 4, kCheck, "{max_retries: 0}"));
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_NE(created.out.find("job train created"), std::string::npos) << created.out;
  ASSERT_TRUE(Eventually([&] { return core::IsJobFinished(Get("train").status.state); }))
      << Dump("train");
  core::Job job = Get("train");
  ASSERT_EQ(job.status.state, core::JobState::kSucceeded) << Dump("train");
  EXPECT_EQ(job.status.message, "4 of 4 tasks completed");
  ASSERT_EQ(job.status.tasks.size(), 4u) << Dump("train");
  std::set<std::string> hosts;
  for (int i = 0; i < 4; ++i) {
    const core::JobTaskStatus& t = job.status.tasks[static_cast<size_t>(i)];
    EXPECT_EQ(t.workload, "train-" + std::to_string(i));
    EXPECT_EQ(t.exit_code, 0) << t.reason;
    hosts.insert(t.host);
    // Each task's output stays readable after it finished (the agent moves it aside once the
    // task is cleaned up, so a read may fall between the two places).
    Result logs;
    EXPECT_TRUE(Eventually([&] {
      logs = e2e::Run(dir_, {"job", "logs", t.workload});
      return logs.exit_code == 0;
    })) << logs.err;
    EXPECT_NE(logs.out.find("rank " + std::to_string(i) + " of 4 local "), std::string::npos)
        << logs.out;
    EXPECT_NE(logs.out.find("master 127.0.0.1:" + std::to_string(job.status.master_port)),
              std::string::npos)
        << logs.out;
  }
  EXPECT_EQ(hosts.size(), 1u);
  // The four were one gang.
  std::set<std::string> gangs;
  for (const auto& t : job.status.tasks) {
    auto w = server_->client().GetWorkload(t.workload);
    ASSERT_TRUE(w.ok()) << w.status();
    gangs.insert(w->spec.labels.at("berth.gang"));
  }
  EXPECT_EQ(gangs, (std::set<std::string>{"train-a0"}));
  Result ls = e2e::Run(dir_, {"job", "ls", "--json"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  nlohmann::json items = nlohmann::json::parse(ls.out, nullptr, false);
  ASSERT_TRUE(items.is_array()) << ls.out;
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0]["status"]["state"], "succeeded");
  Result get = e2e::Run(dir_, {"job", "get", "train"});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_NE(get.out.find("succeeded"), std::string::npos) << get.out;
  // A workload that is not a task is refused by `job logs`, saying so.
  Result not_task = e2e::Run(dir_, {"job", "logs", "nope"});
  EXPECT_EQ(not_task.exit_code, 1);
}

TEST_F(JobE2eTest, AFailingTaskIsRetriedWithItsGangUntilMaxRetries) {
  Result created = e2e::Run(dir_, {"job", "create", "-f", "-"},
                            JobYaml("flaky", 2, kFailing, "{max_retries: 2, backoff: 200ms}"));
  ASSERT_EQ(created.exit_code, 0) << created.err;
  ASSERT_TRUE(Eventually([&] { return core::IsJobFinished(Get("flaky").status.state); }))
      << Dump("flaky");
  core::Job job = Get("flaky");
  ASSERT_EQ(job.status.state, core::JobState::kFailed) << Dump("flaky");
  EXPECT_EQ(job.status.retries, 2);
  EXPECT_EQ(job.status.attempt, 2);
  EXPECT_EQ(job.status.message,
            "task flaky-1-r2 failed: exited with code 3; no retries left (max_retries 2, 2 "
            "spent)")
      << Dump("flaky");
  // Three attempts of two tasks, all kept and stopped; each failed task's log is there.
  ASSERT_EQ(job.status.tasks.size(), 6u) << Dump("flaky");
  ASSERT_TRUE(Eventually([&] {
    for (const auto& t : Get("flaky").status.tasks) {
      if (t.state != "stopped" && t.state != "failed") return false;
    }
    return true;
  })) << Dump("flaky");
  for (const char* task : {"flaky-1", "flaky-1-r1", "flaky-1-r2"}) {
    Result logs;
    EXPECT_TRUE(Eventually([&] {
      logs = e2e::Run(dir_, {"job", "logs", task});
      return logs.exit_code == 0;
    })) << logs.err;
    EXPECT_NE(logs.out.find("attempt of rank 1"), std::string::npos) << task << ": " << logs.out;
  }
  // Cancelling the ended job removes it and its tasks.
  Result cancel = e2e::Run(dir_, {"job", "cancel", "flaky", "--json"});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  ASSERT_TRUE(Eventually([&] {
    return absl::IsNotFound(server_->client().GetJob("flaky").status());
  })) << Dump("flaky");
  auto left = server_->client().ListWorkloads();
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->items.empty());
}

// Whether /usr/bin/python3 has PyTorch, which the example trainer needs.
bool HasTorch() {
  return std::system("/usr/bin/python3 -c 'import torch.distributed' >/dev/null 2>&1") == 0;
}

// examples/train/job.yaml with its paths pointed at `dir` (the script copied where the tasks'
// user, nobody, reads it; the checkpoints where it writes), `args` added to the trainer's, and
// each task asking `cpu`; empty (after a test failure) when the example no longer has what the
// test changes.
std::string ExampleJobYaml(const std::string& dir, const std::string& args,
                           const std::string& cpu) {
  namespace fs = std::filesystem;
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  fs::create_directories(dir + "/examples/train");
  fs::copy_file("examples/train/train.py", dir + "/examples/train/train.py",
                fs::copy_options::overwrite_existing);
  fs::create_directories(dir + "/checkpoints");
  fs::permissions(dir + "/checkpoints", fs::perms::all);
  std::string yaml = ReadFile("examples/train/job.yaml");
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"/srv/berth-examples", dir + "/examples"},
           {"/srv/checkpoints/train-example", dir + "/checkpoints"},
           {R"("--steps", "300")", R"("--steps", "300", )" + args},
           {"resources: {cpu: 1,", "resources: {cpu: " + cpu + ","}}) {
    if (yaml.find(from) == std::string::npos) {
      ADD_FAILURE() << from << " is not in examples/train/job.yaml";
      return "";
    }
    for (size_t at = yaml.find(from); at != std::string::npos; at = yaml.find(from, at)) {
      yaml.replace(at, from.size(), to);
      at += to.size();
    }
  }
  return yaml;
}

// The example trainer (examples/train/) with PyTorch: the four tasks of its data-parallel job as
// one gang; rank 1 fails once at step 60, the gang is retried after its backoff, and the new
// attempt resumes from the checkpoint rank 0 wrote at step 50 and trains to the end.
TEST_F(JobE2eTest, TheExampleTrainerResumesFromItsCheckpointAfterAFailedTask) {
  if (!HasTorch()) {
    GTEST_SKIP() << "needs /usr/bin/python3 with PyTorch (python3-torch: scripts/setup.sh "
                    "installs it)";
  }
  const std::string yaml = ExampleJobYaml(dir_, R"("--fail-once-at", "60")", "400m");
  ASSERT_FALSE(yaml.empty());
  Result created = e2e::Run(dir_, {"job", "create", "-f", "-"}, yaml);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  ASSERT_TRUE(
      Eventually([&] { return core::IsJobFinished(Get("train-example").status.state); }, 240))
      << Dump("train-example");
  core::Job job = Get("train-example");
  ASSERT_EQ(job.status.state, core::JobState::kSucceeded) << Dump("train-example");
  EXPECT_EQ(job.status.retries, 1);
  EXPECT_EQ(job.status.attempt, 1);
  EXPECT_NE(Logs("train-example-1").find("rank 1: failing at step 60 as asked"), std::string::npos);
  for (const char* task :
       {"train-example-0-r1", "train-example-1-r1", "train-example-2-r1", "train-example-3-r1"}) {
    const std::string out = Logs(task);
    EXPECT_NE(out.find("joined a group of 4"), std::string::npos) << task << ": " << out;
    EXPECT_NE(out.find("resumed from step 50 (" + dir_ + "/checkpoints/checkpoint.pt)"),
              std::string::npos)
        << task << ": " << out;
    EXPECT_NE(out.find("done: 300 steps, held-out loss 0.0"), std::string::npos)
        << task << ": " << out;
  }
}

// Checkpoint-aware preemption with the example trainer: the job's four tasks fill the host; a
// higher priority workload preempts one; the gang gets SIGTERM with the checkpoint's grace, every
// rank stops after the same step and rank 0 checkpoints it; the job waits, spending no retry,
// until the preemptor ends, then its new attempt is told BERTH_RESUME_FROM, resumes from exactly
// that step, and trains to the end.
TEST_F(JobE2eTest, APreemptedExampleJobCheckpointsAndResumesWhereItStopped) {
  if (!HasTorch()) {
    GTEST_SKIP() << "needs /usr/bin/python3 with PyTorch (python3-torch: scripts/setup.sh "
                    "installs it)";
  }
  auto hosts = server_->client().ListHosts();
  ASSERT_TRUE(hosts.ok() && hosts->items.size() == 1) << hosts.status();
  const int64_t quarter = hosts->items[0].inventory.capacity.cpu.value() / 4;
  ASSERT_GT(quarter, 0);
  const std::string yaml =
      ExampleJobYaml(dir_, R"("--step-delay", "0.05")", std::to_string(quarter) + "m");
  ASSERT_FALSE(yaml.empty());
  Result created = e2e::Run(dir_, {"job", "create", "-f", "-"}, yaml);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  // Training, with a first checkpoint written.
  ASSERT_TRUE(Eventually(
      [&] {
        return Get("train-example").status.state == core::JobState::kRunning &&
               std::filesystem::exists(dir_ + "/checkpoints/checkpoint.pt");
      },
      120))
      << Dump("train-example");
  Result urgent = e2e::Run(dir_, {"workload", "create", "-f", "-"},
                           "name: urgent\nkind: process\npriority: 100\n"
                           "command: [/bin/sh, -c, 'sleep 3']\n"
                           "resources: {cpu: " +
                               std::to_string(quarter) + "m, memory: 32Mi}\n");
  ASSERT_EQ(urgent.exit_code, 0) << urgent.err;
  ASSERT_TRUE(
      Eventually([&] { return core::IsJobFinished(Get("train-example").status.state); }, 240))
      << Dump("train-example");
  core::Job job = Get("train-example");
  ASSERT_EQ(job.status.state, core::JobState::kSucceeded) << Dump("train-example");
  EXPECT_EQ(job.status.preemptions, 1) << Dump("train-example");
  EXPECT_EQ(job.status.retries, 0);
  EXPECT_EQ(job.status.attempt, 1);
  // Rank 0 of the first attempt checkpointed the step both ranks stopped after.
  const std::string first = Logs("train-example-0");
  const size_t at = first.find("rank 0: stopping at step ");
  ASSERT_NE(at, std::string::npos) << first;
  const int stopped = std::atoi(first.c_str() + at + std::strlen("rank 0: stopping at step "));
  EXPECT_GT(stopped, 0) << first;
  EXPECT_NE(first.find("checkpoint at step " + std::to_string(stopped)), std::string::npos)
      << first;
  for (int rank = 1; rank < 4; ++rank) {
    EXPECT_NE(
        Logs("train-example-" + std::to_string(rank))
            .find("rank " + std::to_string(rank) + ": stopping at step " + std::to_string(stopped)),
        std::string::npos)
        << "rank " << rank;
  }
  for (const char* task :
       {"train-example-0-r1", "train-example-1-r1", "train-example-2-r1", "train-example-3-r1"}) {
    const std::string out = Logs(task);
    EXPECT_NE(out.find("resumed from step " + std::to_string(stopped) + " (" + dir_ +
                       "/checkpoints/checkpoint.pt)"),
              std::string::npos)
        << task << ": " << out;
    EXPECT_NE(out.find("done: 300 steps"), std::string::npos) << task << ": " << out;
  }
  EXPECT_NE(Get("train-example").status.message.find("tasks completed"), std::string::npos);
}

}  // namespace
}  // namespace berth::e2e
