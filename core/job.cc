#include "core/job.h"

#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::core {
namespace {

constexpr std::string_view kStateNames[] = {"pending",   "running", "retrying",
                                            "succeeded", "failed",  "cancelled"};

// A duration field such as "10s", within [min, max].
absl::Status JobDuration(const JsonContext& ctx, const Json& obj, std::string_view path,
                         const std::string& key, absl::Duration min, absl::Duration max,
                         absl::Duration* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  const std::string field = JoinPath(path, key);
  absl::Duration d;
  if (!it->is_string() || !absl::ParseDuration(it->get<std::string>(), &d)) {
    return ctx.Error(field, Cat("must be a duration like \"10s\", got ", Preview(*it)));
  }
  if (d < min || d > max) {
    return ctx.Error(field, Cat("must be between ", absl::FormatDuration(min), " and ",
                                absl::FormatDuration(max), ", got ", absl::FormatDuration(d)));
  }
  *out = d;
  return absl::OkStatus();
}

absl::Status DecodeJobRestart(const JsonContext& ctx, const Json& j, JobRestart* r) {
  BERTH_RETURN_IF_ERROR(
      CheckObject(ctx, j, "restart", {"policy", "max_retries", "backoff", "scope"}));
  std::string policy = std::string(JobRestartPolicyName(r->policy));
  BERTH_RETURN_IF_ERROR(OptionalString(ctx, j, "restart", "policy", &policy));
  if (policy == "on-failure") {
    r->policy = JobRestart::Policy::kOnFailure;
  } else if (policy == "never") {
    r->policy = JobRestart::Policy::kNever;
  } else {
    return ctx.Error("restart.policy",
                     Cat("must be on-failure or never, got ", Preview(j["policy"])));
  }
  int64_t retries = r->max_retries;
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, j, "restart", "max_retries", 0, kMaxJobRetries, &retries));
  r->max_retries = static_cast<int>(retries);
  BERTH_RETURN_IF_ERROR(
      JobDuration(ctx, j, "restart", "backoff", absl::ZeroDuration(), absl::Hours(1), &r->backoff));
  std::string scope = std::string(JobRestartScopeName(r->scope));
  BERTH_RETURN_IF_ERROR(OptionalString(ctx, j, "restart", "scope", &scope));
  if (scope == "gang") {
    r->scope = JobRestart::Scope::kGang;
  } else if (scope == "task") {
    r->scope = JobRestart::Scope::kTask;
  } else {
    return ctx.Error("restart.scope", Cat("must be gang or task, got ", Preview(j["scope"])));
  }
  return absl::OkStatus();
}

// The template's own errors read `workload "job": FIELD ...`; they are said as the job's.
absl::Status TemplateError(const JsonContext& ctx, const absl::Status& s) {
  std::string message(s.message());
  const std::string prefix = Cat("workload \"", ctx.name, "\": ");
  if (message.rfind(prefix, 0) == 0) message.erase(0, prefix.size());
  return absl::InvalidArgumentError(Cat("job \"", ctx.name, "\": template.", message));
}

}  // namespace

std::string_view JobRestartPolicyName(JobRestart::Policy policy) {
  return policy == JobRestart::Policy::kNever ? "never" : "on-failure";
}

std::string_view JobRestartScopeName(JobRestart::Scope scope) {
  return scope == JobRestart::Scope::kTask ? "task" : "gang";
}

std::string_view JobStateName(JobState state) { return kStateNames[static_cast<int>(state)]; }

bool IsJobFinished(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

absl::StatusOr<JobSpec> DecodeJobSpec(const Json& json) {
  JsonContext ctx{"job", ""};
  if (!json.is_object()) return ctx.Error("body", "must be a JSON object");
  if (auto it = json.find("name"); it != json.end() && it->is_string()) {
    ctx.name = it->get<std::string>();
  }
  BERTH_RETURN_IF_ERROR(CheckObject(ctx, json, "",
                                    {"name", "kind", "template", "parallelism", "completions",
                                     "restart", "priority", "placement_timeout", "checkpoint"}));
  if (!json.contains("name")) return ctx.Error("name", "is required");
  if (!json["name"].is_string()) return ctx.Error("name", "must be a string");
  JobSpec spec;
  spec.name = ctx.name;
  BERTH_RETURN_IF_ERROR(ValidateName("job", spec.name));
  if (spec.name.size() > kMaxJobNameLength) {
    return ctx.Error("name",
                     Cat("must be at most ", kMaxJobNameLength,
                         " characters (tasks are named NAME-INDEX), got ", spec.name.size()));
  }
  if (auto it = json.find("kind"); it != json.end() && !it->is_null()) {
    if (*it != "job") {
      return ctx.Error("kind", Cat("must be \"job\" (or left out), got ", Preview(*it)));
    }
  }
  if (!json.contains("template") || !json["template"].is_object()) {
    return ctx.Error("template",
                     "is required: the workload spec of each task (kind, command or image, "
                     "resources)");
  }
  Json tmpl = json["template"];
  if (tmpl.contains("name")) {
    return ctx.Error("template.name",
                     "is set by the job (tasks are named NAME-INDEX); leave it out");
  }
  if (tmpl.contains("restart")) {
    return ctx.Error("template.restart",
                     "is set by the job: retry tasks with the job's restart "
                     "({policy, max_retries, backoff, scope}); leave it out");
  }
  tmpl["name"] = spec.name;
  absl::StatusOr<WorkloadSpec> w = DecodeWorkloadSpec(tmpl);
  if (!w.ok()) return TemplateError(ctx, w.status());
  for (std::string_view reserved :
       {kJobLabel, kTaskLabel, kAttemptLabel, kGangLabel, kGangSizeLabel, kStopGraceLabel}) {
    if (w->labels.contains(std::string(reserved))) {
      return ctx.Error(Cat("template.labels.", reserved), "is set by the job; leave it out");
    }
  }
  for (std::string_view reserved :
       {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "BERTH_JOB",
        "BERTH_TASK_INDEX", "BERTH_CHECKPOINT_DIR", "BERTH_RESUME_FROM"}) {
    if (w->env.contains(std::string(reserved))) {
      return ctx.Error(Cat("template.env.", reserved),
                       "is set by the job for each task; leave it out");
    }
  }
  spec.workload_template = *std::move(w);
  int64_t parallelism = spec.parallelism;
  BERTH_RETURN_IF_ERROR(
      OptionalInt(ctx, json, "", "parallelism", 1, kMaxParallelism, &parallelism));
  spec.parallelism = static_cast<int>(parallelism);
  int64_t completions = 0;
  BERTH_RETURN_IF_ERROR(
      OptionalInt(ctx, json, "", "completions", 1, kMaxParallelism, &completions));
  if (completions > spec.parallelism) {
    return ctx.Error(
        "completions",
        Cat("must be at most parallelism (", spec.parallelism,
            "): the tasks of one gang are the ones that can complete, got ", completions));
  }
  spec.completions = static_cast<int>(completions);
  if (auto it = json.find("restart"); it != json.end() && !it->is_null()) {
    BERTH_RETURN_IF_ERROR(DecodeJobRestart(ctx, *it, &spec.restart));
  }
  if (auto it = json.find("priority"); it != json.end() && !it->is_null()) {
    int64_t priority = 0;
    BERTH_RETURN_IF_ERROR(OptionalInt(ctx, json, "", "priority", -1000000, 1000000, &priority));
    spec.priority = static_cast<int>(priority);
  }
  BERTH_RETURN_IF_ERROR(JobDuration(ctx, json, "", "placement_timeout", absl::ZeroDuration(),
                                    absl::Hours(24 * 7), &spec.placement_timeout));
  if (auto it = json.find("checkpoint"); it != json.end() && !it->is_null()) {
    BERTH_RETURN_IF_ERROR(CheckObject(ctx, *it, "checkpoint", {"dir", "grace", "disk"}));
    JobCheckpoint c;
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "checkpoint", "dir", &c.dir));
    if (c.dir.empty() || c.dir.front() != '/') {
      return ctx.Error("checkpoint.dir",
                       Cat("must be an absolute path (where every task finds the checkpoints), "
                           "got \"",
                           c.dir.substr(0, 64), "\""));
    }
    if (c.dir.size() > kMaxCheckpointDirLength ||
        c.dir.find_first_of(std::string_view("\0\n", 2)) != std::string::npos) {
      return ctx.Error("checkpoint.dir", Cat("must be a path of at most ", kMaxCheckpointDirLength,
                                             " characters on one line"));
    }
    BERTH_RETURN_IF_ERROR(JobDuration(ctx, *it, "checkpoint", "grace", absl::ZeroDuration(),
                                      kMaxStopGrace, &c.grace));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "checkpoint", "disk", &c.disk));
    if (!c.disk.empty()) {
      if (absl::Status s = ValidateName("disk", c.disk); !s.ok()) {
        return ctx.Error("checkpoint.disk", Cat("must be a disk's name (", s.message(), ")"));
      }
      const WorkloadKind kind = spec.workload_template.kind;
      if (kind != WorkloadKind::kContainer && kind != WorkloadKind::kVm) {
        return ctx.Error("checkpoint.disk",
                         Cat("needs a template of kind container or vm (a disk is mounted or "
                             "plugged in), got ",
                             WorkloadKindName(kind), "; use a directory the hosts share"));
      }
      for (const DiskAttachment& d : spec.workload_template.disks) {
        if (d.disk == c.disk) {
          return ctx.Error("checkpoint.disk",
                           Cat("names disk \"", c.disk,
                               "\", which template.disks gives every task; a disk has one "
                               "holder, so name it in one place only"));
        }
        if (kind == WorkloadKind::kContainer && d.mount == c.dir) {
          return ctx.Error("checkpoint.disk",
                           Cat("goes at checkpoint.dir \"", c.dir,
                               "\", where template.disks mounts disk \"", d.disk, "\""));
        }
      }
    }
    spec.checkpoint = std::move(c);
  }
  return spec;
}

Json EncodeJobSpec(const JobSpec& spec) {
  Json tmpl = EncodeWorkloadSpec(spec.workload_template);
  tmpl.erase("name");
  Json j = {{"name", spec.name},
            {"kind", "job"},
            {"template", tmpl},
            {"parallelism", spec.parallelism},
            {"restart",
             {{"policy", JobRestartPolicyName(spec.restart.policy)},
              {"max_retries", spec.restart.max_retries},
              {"backoff", absl::FormatDuration(spec.restart.backoff)},
              {"scope", JobRestartScopeName(spec.restart.scope)}}}};
  if (spec.completions > 0) j["completions"] = spec.completions;
  if (spec.priority) j["priority"] = *spec.priority;
  if (spec.placement_timeout > absl::ZeroDuration()) {
    j["placement_timeout"] = absl::FormatDuration(spec.placement_timeout);
  }
  if (spec.checkpoint) {
    j["checkpoint"] = {{"dir", spec.checkpoint->dir},
                       {"grace", absl::FormatDuration(spec.checkpoint->grace)}};
    if (!spec.checkpoint->disk.empty()) j["checkpoint"]["disk"] = spec.checkpoint->disk;
  }
  return j;
}

Json EncodeJobStatus(const JobStatus& s) {
  Json tasks = Json::array();
  for (const JobTaskStatus& t : s.tasks) {
    Json tj = {{"workload", t.workload}, {"index", t.index}, {"attempt", t.attempt},
               {"host", t.host},         {"state", t.state}, {"reason", t.reason},
               {"current", t.current}};
    tj["exit_code"] = t.exit_code ? Json(*t.exit_code) : Json(nullptr);
    tasks.push_back(std::move(tj));
  }
  return {{"state", JobStateName(s.state)},
          {"message", s.message},
          {"attempt", s.attempt},
          {"retries", s.retries},
          {"preemptions", s.preemptions},
          {"succeeded", s.succeeded},
          {"master_port", s.master_port},
          {"current", s.current},
          {"tasks", tasks},
          {"retry_at", EncodeTime(s.retry_at)},
          {"attempt_started_at", EncodeTime(s.attempt_started_at)},
          {"finished_at", EncodeTime(s.finished_at)},
          {"removing", s.removing}};
}

absl::StatusOr<JobStatus> DecodeJobStatus(const Json& j) {
  JsonContext ctx{"job status", ""};
  if (!j.is_object()) return ctx.Error("status", "must be an object");
  JobStatus s;
  std::string state = "pending";
  BERTH_RETURN_IF_ERROR(OptionalString(ctx, j, "", "state", &state));
  bool known = false;
  for (size_t i = 0; i < std::size(kStateNames); ++i) {
    if (state == kStateNames[i]) {
      s.state = static_cast<JobState>(i);
      known = true;
    }
  }
  if (!known) return ctx.Error("state", Cat("is not a job state: ", Preview(j["state"])));
  BERTH_RETURN_IF_ERROR(OptionalString(ctx, j, "", "message", &s.message));
  int64_t attempt = 0, retries = 0, succeeded = 0, port = 0, preemptions = 0;
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, j, "", "attempt", 0, INT32_MAX, &attempt));
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, j, "", "retries", 0, INT32_MAX, &retries));
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, j, "", "preemptions", 0, INT32_MAX, &preemptions));
  s.preemptions = static_cast<int>(preemptions);
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, j, "", "succeeded", 0, INT32_MAX, &succeeded));
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, j, "", "master_port", 0, 65535, &port));
  s.attempt = static_cast<int>(attempt);
  s.retries = static_cast<int>(retries);
  s.succeeded = static_cast<int>(succeeded);
  s.master_port = static_cast<int>(port);
  if (auto it = j.find("current"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return ctx.Error("current", "must be an array of workload names");
    for (const Json& name : *it) {
      if (!name.is_string()) return ctx.Error("current", "must be an array of workload names");
      s.current.push_back(name.get<std::string>());
    }
  }
  if (auto it = j.find("tasks"); it != j.end() && it->is_array()) {
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& tj = (*it)[i];
      const std::string path = Cat("tasks[", i, "]");
      if (!tj.is_object()) return ctx.Error(path, "must be an object");
      JobTaskStatus t;
      int64_t index = 0, task_attempt = 0;
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, tj, path, "workload", &t.workload));
      BERTH_RETURN_IF_ERROR(OptionalInt(ctx, tj, path, "index", 0, kMaxParallelism, &index));
      BERTH_RETURN_IF_ERROR(OptionalInt(ctx, tj, path, "attempt", 0, INT32_MAX, &task_attempt));
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, tj, path, "host", &t.host));
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, tj, path, "state", &t.state));
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, tj, path, "reason", &t.reason));
      BERTH_RETURN_IF_ERROR(OptionalBool(ctx, tj, path, "current", &t.current));
      if (auto code = tj.find("exit_code"); code != tj.end() && code->is_number_integer()) {
        t.exit_code = code->get<int>();
      }
      t.index = static_cast<int>(index);
      t.attempt = static_cast<int>(task_attempt);
      s.tasks.push_back(std::move(t));
    }
  }
  if (j.contains("retry_at")) s.retry_at = DecodeTime(j["retry_at"]);
  if (j.contains("attempt_started_at")) s.attempt_started_at = DecodeTime(j["attempt_started_at"]);
  if (j.contains("finished_at")) s.finished_at = DecodeTime(j["finished_at"]);
  BERTH_RETURN_IF_ERROR(OptionalBool(ctx, j, "", "removing", &s.removing));
  return s;
}

Json EncodeJob(const Job& job) {
  return {{"name", job.spec.name},
          {"kind", "job"},
          {"spec", EncodeJobSpec(job.spec)},
          {"status", EncodeJobStatus(job.status)},
          {"revision", job.revision},
          {"created_at", EncodeTime(job.created_at)},
          {"updated_at", EncodeTime(job.updated_at)}};
}

absl::StatusOr<Job> DecodeJob(const Json& j) {
  if (!j.is_object() || !j.contains("spec")) {
    return absl::InvalidArgumentError("job: stored object lacks spec");
  }
  Job job;
  BERTH_ASSIGN_OR_RETURN(job.spec, DecodeJobSpec(j["spec"]));
  if (j.contains("status")) {
    BERTH_ASSIGN_OR_RETURN(job.status, DecodeJobStatus(j["status"]));
  }
  job.revision = j.value("revision", int64_t{0});
  if (j.contains("created_at")) job.created_at = DecodeTime(j["created_at"]);
  if (j.contains("updated_at")) job.updated_at = DecodeTime(j["updated_at"]);
  return job;
}

}  // namespace berth::core
