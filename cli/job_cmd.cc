#include "cli/job_cmd.h"

#include "api/client/client.h"
#include "cli/cli.h"
#include "cli/session.h"
#include "cli/table.h"
#include "core/json.h"
#include "core/strings.h"

namespace berth::cli {

using core::Cat;
using core::Json;

namespace {

class Session : public CommandSession {
 public:
  using CommandSession::CommandSession;

  int Job() {
    const std::string sub = Arg(0);
    if (sub == "create") return Create();
    if (sub == "ls") return List();
    const std::string name = Arg(1);
    if (sub == "get") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.GetJob(name, r).status(); });
      if (!j) return 1;
      if (json_) {
        out_ << j->dump(2) << "\n";
      } else {
        PrintJob(*j);
      }
      return 0;
    }
    if (sub == "logs") return Logs(name);
    if (sub == "cancel") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.DeleteJob(name, r).status(); });
      if (!j) return 1;
      if (json_) {
        out_ << j->dump() << "\n";
      } else if (j->value("deleted", false)) {
        out_ << "job " << name << " removed\n";
      } else if ((*j)["status"].value("removing", false)) {
        out_ << "job " << name << " removing (its tasks are deleted first)\n";
      } else {
        out_ << "job " << name << " cancelled; its tasks are stopped and keep their logs (`berth "
             << "job cancel " << name << "` again removes it)\n";
      }
      return 0;
    }
    return Usage(Cat("unknown job command \"", sub, "\""));
  }

 private:
  int Create() {
    return CreateEach(
        "job",
        [](api::Client& c, const std::string& body, api::Raw* r) {
          return c.CreateJobFromText(body, "application/json", r).status();
        },
        [this](const Json& j) {
          out_ << "job " << j.value("name", "") << " created; `berth job get "
               << j.value("name", "") << "` shows its tasks\n";
        });
  }

  // A task's output: the task is one of the names `berth job get` lists.
  int Logs(const std::string& task) {
    auto w = Do([&](api::Client& c, api::Raw* r) { return c.GetWorkload(task, {}, r).status(); });
    if (!w) return 1;
    const Json& labels = (*w)["spec"].contains("labels") ? (*w)["spec"]["labels"] : Json::object();
    if (!labels.contains("berth.job")) {
      return Fail(Cat("workload \"", task,
                      "\" is not a job's task; `berth job get JOB` lists a job's tasks"));
    }
    api::Client* c = Api();
    if (!c) return 1;
    const std::string stream = inv_.Bool("stderr") ? "stderr" : "stdout";
    absl::StatusOr<std::string> text = c->Logs(task, stream);
    if (!text.ok()) return FailCall(inv_, *c, text.status());
    if (json_) {
      out_ << Json{{"name", task}, {"job", labels["berth.job"]}, {"stream", stream}, {"log", *text}}
                  .dump()
           << "\n";
    } else {
      out_ << *text << std::flush;
    }
    return 0;
  }

  int List() {
    auto j = Do([&](api::Client& c, api::Raw* r) { return c.ListJobs(r).status(); });
    if (!j) return 1;
    if (json_) {
      out_ << (*j)["items"].dump() << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"NAME", "KIND", "STATE", "COMPLETED", "RETRIES", "MESSAGE"}};
    for (const Json& job : (*j)["items"]) {
      const Json& spec = job["spec"];
      const Json& st = job["status"];
      const int completions = spec.value("completions", spec.value("parallelism", 0));
      rows.push_back({job.value("name", ""), spec["template"].value("kind", ""),
                      st.value("state", ""), Cat(st.value("succeeded", 0), "/", completions),
                      Cat(st.value("retries", 0), "/", spec["restart"].value("max_retries", 0)),
                      st.value("message", "")});
    }
    PrintTable(out_, rows);
    return 0;
  }

  void PrintJob(const Json& job) {
    const Json& spec = job["spec"];
    const Json& st = job["status"];
    const Json& restart = spec["restart"];
    out_ << "name:      " << job.value("name", "") << "\n"
         << "kind:      " << spec["template"].value("kind", "") << " tasks\n"
         << "state:     " << st.value("state", "") << "\n"
         << "gang:      " << spec.value("parallelism", 0) << " tasks, "
         << spec.value("completions", spec.value("parallelism", 0)) << " to complete, attempt "
         << st.value("attempt", 0) << ", MASTER_PORT " << st.value("master_port", 0) << "\n"
         << "restart:   " << restart.value("policy", "") << ", scope " << restart.value("scope", "")
         << ", " << st.value("retries", 0) << " of " << restart.value("max_retries", 0)
         << " retries spent, backoff " << restart.value("backoff", "") << "\n"
         << "status:    " << st.value("message", "") << "\n\n";
    std::vector<std::vector<std::string>> rows = {
        {"TASK", "INDEX", "ATTEMPT", "STATE", "HOST", "EXIT", "REASON"}};
    for (const Json& t : st["tasks"]) {
      const std::string host = t.value("host", "");
      rows.push_back({Cat(t.value("workload", ""), t.value("current", false) ? "" : " (earlier)"),
                      Cat(t.value("index", 0)), Cat(t.value("attempt", 0)), t.value("state", ""),
                      host.empty() ? "-" : host,
                      t["exit_code"].is_number_integer() ? Cat(t["exit_code"].get<int>()) : "-",
                      t.value("reason", "")});
    }
    PrintTable(out_, rows);
  }
};

core::RunFn Run(std::vector<std::string> words) {
  return [words](core::Invocation& inv) {
    Session session(inv, words);
    return session.Job();
  };
}

}  // namespace

core::Command JobCommand() {
  const core::ArgDef name = {.name = "NAME", .help = "the job's name"};
  core::Command g{
      .name = "job",
      .aliases = {"jobs"},
      .section = "Workloads",
      .summary = "training jobs: gangs of tasks placed together, retried, run to completion",
      .description =
          "A job runs `parallelism` tasks of a workload template as one gang: all of them are\n"
          "placed at once or none. Each task gets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,\n"
          "MASTER_PORT, BERTH_JOB and BERTH_TASK_INDEX; a failed task restarts the gang (or\n"
          "only itself with scope: task) after the backoff, up to max_retries; e.g.\n"
          "  name: train\n  kind: job\n  parallelism: 4\n"
          "  restart: {policy: on-failure, max_retries: 3, backoff: 10s, scope: gang}\n"
          "  template:\n    kind: process\n"
          "    command: [\"/usr/bin/python3\", \"/srv/train.py\"]\n"
          "    resources: {cpu: 1, memory: 1Gi}\n"
          "See docs/jobs.md."};
  g.flags = ServerFlags();
  g.subcommands = {
      core::Command{.name = "create",
                    .aliases = {"apply"},
                    .summary = "create the jobs in a YAML or JSON file (--- separates several)",
                    .synopsis = "-f FILE",
                    .flags = {SpecFileFlag()},
                    .run = Run({"create"})},
      core::Command{.name = "ls",
                    .aliases = {"list"},
                    .summary = "list jobs with their state and completed tasks",
                    .run = Run({"ls"})},
      core::Command{.name = "get",
                    .summary = "show a job: its state, retries, and every task with its host and "
                               "exit code",
                    .args = {name},
                    .run = Run({"get"})},
      core::Command{.name = "logs",
                    .summary = "print a task's output (finished tasks keep theirs)",
                    .flags = {{.name = "stderr",
                               .type = core::FlagType::kBool,
                               .help = "the standard error stream instead of standard output"}},
                    .args = {{.name = "TASK", .help = "a task as `berth job get` lists it"}},
                    .run = Run({"logs"})},
      core::Command{.name = "cancel",
                    .aliases = {"rm", "delete"},
                    .summary = "cancel a running job (its tasks stop, their logs stay); cancel a "
                               "finished job to remove it",
                    .args = {name},
                    .run = Run({"cancel"})},
  };
  return g;
}

}  // namespace berth::cli
