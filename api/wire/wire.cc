#include "api/wire/wire.h"

#include <climits>

#include "core/object_json.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::api::wire {

using core::Cat;
using core::Json;
using core::JsonContext;

namespace {

// Runs each check in order and returns the first failure.
absl::Status FirstError(std::initializer_list<absl::Status> checks) {
  for (const absl::Status& s : checks) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// The revision and the raw items of a list body; `kind` names the list in errors.
absl::StatusOr<const Json*> ListItems(const JsonContext& ctx, const Json& j, int64_t* revision,
                                      std::string* continue_token) {
  BERTH_RETURN_IF_ERROR(core::CheckObject(ctx, j, "", {"items", "revision", "continue"}));
  BERTH_RETURN_IF_ERROR(core::OptionalInt(ctx, j, "", "revision", 0, INT64_MAX, revision));
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "continue", continue_token));
  auto it = j.find("items");
  if (it == j.end() || !it->is_array()) return ctx.Error("items", "must be a list");
  return &*it;
}

// Decodes every item of a list with `decode`; an error names the item's index.
template <typename T, typename Decode>
absl::StatusOr<List<T>> DecodeList(std::string_view kind, const Json& j, Decode decode) {
  JsonContext ctx{Cat(kind, " list"), ""};
  List<T> list;
  BERTH_ASSIGN_OR_RETURN(const Json* items,
                         ListItems(ctx, j, &list.revision, &list.continue_token));
  list.items.reserve(items->size());
  for (size_t i = 0; i < items->size(); ++i) {
    absl::StatusOr<T> item = decode((*items)[i]);
    if (!item.ok()) {
      return ctx.Error(Cat("items[", i, "]"), std::string(item.status().message()));
    }
    list.items.push_back(std::move(*item));
  }
  return list;
}

template <typename T, typename Encode>
Json EncodeList(const List<T>& list, Encode encode) {
  Json items = Json::array();
  for (const T& item : list.items) items.push_back(encode(item));
  Json j = {{"items", std::move(items)}, {"revision", list.revision}};
  if (!list.continue_token.empty()) j["continue"] = list.continue_token;
  return j;
}

// Adds `value` under `key` unless it is empty.
void PutIfSet(Json& j, const char* key, const std::string& value) {
  if (!value.empty()) j[key] = value;
}

}  // namespace

Json EncodeStatusReport(const StatusReport& report) {
  Json j = {{"host", report.host},
            {"generation", report.generation},
            {"state", std::string(core::WorkloadStateName(report.state))},
            {"reason", report.reason},
            {"oom_killed", report.oom_killed}};
  if (report.exit_code) j["exit_code"] = *report.exit_code;
  return j;
}

absl::StatusOr<StatusReport> DecodeStatusReport(std::string_view workload, const Json& j) {
  JsonContext ctx{"workload status", std::string(workload)};
  BERTH_RETURN_IF_ERROR(core::CheckObject(
      ctx, j, "", {"host", "generation", "state", "reason", "exit_code", "oom_killed"}));
  StatusReport report;
  std::string state_name;
  int64_t exit_code = 0;
  BERTH_RETURN_IF_ERROR(FirstError({
      core::OptionalString(ctx, j, "", "host", &report.host),
      core::OptionalInt(ctx, j, "", "generation", 0, INT64_MAX, &report.generation),
      core::OptionalString(ctx, j, "", "state", &state_name),
      core::OptionalString(ctx, j, "", "reason", &report.reason),
      core::OptionalInt(ctx, j, "", "exit_code", INT32_MIN, INT32_MAX, &exit_code),
      core::OptionalBool(ctx, j, "", "oom_killed", &report.oom_killed),
  }));
  auto state = core::ParseWorkloadState(state_name);
  if (!state) return ctx.Error("state", Cat("is not a workload state, got \"", state_name, "\""));
  report.state = *state;
  if (j.contains("exit_code") && !j["exit_code"].is_null()) {
    report.exit_code = static_cast<int>(exit_code);
  }
  return report;
}

Json EncodeHostRegistration(const HostRegistration& registration) {
  return {{"name", registration.name},
          {"inventory", core::EncodeHostInventory(registration.inventory)}};
}

absl::StatusOr<HostRegistration> DecodeHostRegistration(const Json& j) {
  JsonContext ctx{"host", ""};
  // The name first, so that every later error can name the host.
  if (j.is_object()) BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "name", &ctx.name));
  BERTH_RETURN_IF_ERROR(core::CheckObject(ctx, j, "", {"name", "inventory"}));
  if (!j.contains("inventory")) return ctx.Error("inventory", "is required");
  HostRegistration registration;
  registration.name = ctx.name;
  BERTH_ASSIGN_OR_RETURN(registration.inventory,
                         core::DecodeHostInventory(ctx.name, j["inventory"]));
  return registration;
}

Json EncodeRegistrationReply(const RegistrationReply& reply) {
  Json j = core::EncodeHost(reply.host);
  if (!reply.credential.empty()) j["credential"] = reply.credential;
  if (reply.host_ttl > absl::ZeroDuration()) {
    j["host_ttl"] = absl::FormatDuration(reply.host_ttl);
    j["failover_grace"] = absl::FormatDuration(reply.failover_grace);
  }
  return j;
}

absl::StatusOr<RegistrationReply> DecodeRegistrationReply(const Json& j) {
  JsonContext ctx{"host registration", ""};
  if (!j.is_object()) return ctx.Error("body", "must be a JSON object");
  RegistrationReply reply;
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "credential", &reply.credential));
  for (const char* key : {"host_ttl", "failover_grace"}) {
    std::string text;
    BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", key, &text));
    absl::Duration d = absl::ZeroDuration();
    if (!text.empty() && (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration())) {
      return ctx.Error(key, Cat("must be a duration like \"10s\", got \"", text, "\""));
    }
    (std::string_view(key) == "host_ttl" ? reply.host_ttl : reply.failover_grace) = d;
  }
  Json host = j;
  host.erase("credential");
  host.erase("host_ttl");
  host.erase("failover_grace");
  BERTH_ASSIGN_OR_RETURN(reply.host, core::DecodeHost(host));
  return reply;
}

absl::StatusOr<HostDetail> DecodeHostDetail(const Json& j) {
  JsonContext ctx{"host", ""};
  if (!j.is_object()) return ctx.Error("body", "must be a JSON object");
  ctx.name = j.value("name", "");
  HostDetail detail;
  Json host = j;
  if (auto it = j.find("workloads"); it != j.end()) {
    if (!it->is_array()) return ctx.Error("workloads", "must be a list of names");
    for (const Json& name : *it) {
      if (!name.is_string()) return ctx.Error("workloads", "must be a list of names");
      detail.workloads.push_back(name.get<std::string>());
    }
    host.erase("workloads");
  }
  BERTH_ASSIGN_OR_RETURN(detail.host, core::DecodeHost(host));
  return detail;
}

Json EncodeExecRequest(const ExecRequest& request) {
  Json j = {{"argv", request.argv}, {"timeout", absl::FormatDuration(request.timeout)}};
  if (!request.env.empty()) j["env"] = request.env;
  return j;
}

absl::StatusOr<ExecRequest> DecodeExecRequest(std::string_view workload, const Json& j) {
  JsonContext ctx{"workload exec", std::string(workload)};
  BERTH_RETURN_IF_ERROR(core::CheckObject(ctx, j, "", {"argv", "env", "timeout"}));
  ExecRequest exec;
  if (!j.contains("argv") || !j["argv"].is_array() || j["argv"].empty()) {
    return ctx.Error("argv", "must be a non-empty list of strings");
  }
  // The host hands argv and env to execve (or to runc's command line), where a NUL ends a
  // string and the first '=' ends a variable's name: refused here, so the command that runs is
  // the one asked for.
  for (const Json& a : j["argv"]) {
    if (!a.is_string()) return ctx.Error("argv", "must be a non-empty list of strings");
    std::string arg = a.get<std::string>();
    if (arg.find('\0') != std::string::npos) {
      return ctx.Error(Cat("argv[", exec.argv.size(), "]"), "must not hold a NUL character");
    }
    exec.argv.push_back(std::move(arg));
  }
  if (j.contains("env")) {
    if (!j["env"].is_object()) return ctx.Error("env", "must be a map of strings");
    for (const auto& [k, v] : j["env"].items()) {
      if (k.empty() || k.find_first_of(std::string_view("=\0", 2)) != std::string::npos) {
        return ctx.Error(Cat("env.", k), "the name must be non-empty, without '=' or NUL");
      }
      if (!v.is_string()) return ctx.Error(Cat("env.", k), "must be a string");
      std::string value = v.get<std::string>();
      if (value.find('\0') != std::string::npos) {
        return ctx.Error(Cat("env.", k), "must not hold a NUL character");
      }
      exec.env[k] = std::move(value);
    }
  }
  if (j.contains("timeout")) {
    absl::Duration d;
    if (!j["timeout"].is_string() || !absl::ParseDuration(j["timeout"].get<std::string>(), &d) ||
        d <= absl::ZeroDuration()) {
      return ctx.Error("timeout", "must be a duration like 30s");
    }
    exec.timeout = d;
  }
  return exec;
}

Json EncodeTaskApiReport(const TaskApiReport& report) {
  return {{"port", report.port}, {"token", report.token}};
}

absl::StatusOr<TaskApiReport> DecodeTaskApiReport(std::string_view host, const Json& j) {
  JsonContext ctx{"host", std::string(host)};
  BERTH_RETURN_IF_ERROR(core::CheckObject(ctx, j, "task_api", {"port", "token"}));
  TaskApiReport report;
  auto port = j.find("port");
  if (port == j.end() || !port->is_number_integer() || port->get<int64_t>() < 1 ||
      port->get<int64_t>() > 65535) {
    return ctx.Error("task_api.port", Cat("must be a port number from 1 to 65535, got ",
                                          port == j.end() ? "nothing" : core::Preview(*port)));
  }
  report.port = static_cast<uint16_t>(port->get<int64_t>());
  auto token = j.find("token");
  bool hex = token != j.end() && token->is_string() &&
             token->get_ref<const std::string&>().size() == kTaskApiTokenLength;
  if (hex) {
    for (char c : token->get_ref<const std::string&>()) {
      hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    }
  }
  if (!hex) {
    // The value is a secret: the message says what is wrong with it, not what it is.
    return ctx.Error("task_api.token",
                     Cat("must be ", kTaskApiTokenLength, " lower-case hex digits"));
  }
  report.token = token->get<std::string>();
  return report;
}

Json EncodeWarmStates(const std::vector<std::string>& keys) {
  Json out = Json::array();
  for (const std::string& key : keys) out.push_back(key);
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeWarmStates(std::string_view host,
                                                          std::string_view field, const Json& j) {
  JsonContext ctx{"host", std::string(host)};
  if (!j.is_array()) return ctx.Error(field, Cat("must be a list, got ", core::Preview(j)));
  if (j.size() > core::kMaxReportedWarmStates) {
    return ctx.Error(field, Cat("must hold at most ", core::kMaxReportedWarmStates,
                                " warm states, got ", j.size()));
  }
  std::vector<std::string> keys;
  for (size_t i = 0; i < j.size(); ++i) {
    const Json& key = j[i];
    if (!key.is_string() || !core::ParseWarmStateKey(key.get_ref<const std::string&>())) {
      return ctx.Error(
          Cat(field, "[", i, "]"),
          Cat("must be a warm state's key, SERVICE.rREVISION, got ", core::Preview(key)));
    }
    keys.push_back(key.get<std::string>());
  }
  return keys;
}

Json EncodeHeartbeatReport(const HeartbeatReport& report) {
  Json body = Json::object();
  if (report.usage) body["usage"] = core::EncodeHostUsage(*report.usage);
  if (report.task_api) body["task_api"] = EncodeTaskApiReport(*report.task_api);
  if (!report.warm_states.empty()) body["warm_states"] = EncodeWarmStates(report.warm_states);
  return body;
}

Json EncodeHeartbeatReply(std::string_view host, const HeartbeatReply& reply) {
  Json out = {{"name", std::string(host)}, {"status", "ok"}};
  if (!reply.drop_warm_states.empty()) {
    out["drop_warm_states"] = EncodeWarmStates(reply.drop_warm_states);
  }
  return out;
}

absl::StatusOr<HeartbeatReply> DecodeHeartbeatReply(std::string_view host, const Json& j) {
  HeartbeatReply reply;
  if (!j.is_object()) {
    return JsonContext{"host", std::string(host)}.Error(
        "heartbeat reply", Cat("must be an object, got ", core::Preview(j)));
  }
  if (auto it = j.find("drop_warm_states"); it != j.end()) {
    BERTH_ASSIGN_OR_RETURN(reply.drop_warm_states, DecodeWarmStates(host, "drop_warm_states", *it));
  }
  return reply;
}

Json EncodeExecReply(const ExecReply& reply) {
  return {
      {"exit_code", reply.exit_code}, {"stdout", reply.stdout_data}, {"stderr", reply.stderr_data}};
}

absl::StatusOr<ExecReply> DecodeExecReply(std::string_view workload, const Json& j) {
  JsonContext ctx{"workload exec reply", std::string(workload)};
  BERTH_RETURN_IF_ERROR(core::CheckObject(ctx, j, "", {"exit_code", "stdout", "stderr"}));
  ExecReply reply;
  int64_t code = 0;
  BERTH_RETURN_IF_ERROR(FirstError({
      core::OptionalInt(ctx, j, "", "exit_code", INT32_MIN, INT32_MAX, &code),
      core::OptionalString(ctx, j, "", "stdout", &reply.stdout_data),
      core::OptionalString(ctx, j, "", "stderr", &reply.stderr_data),
  }));
  reply.exit_code = static_cast<int>(code);
  return reply;
}

Json EncodeWorkloadList(const WorkloadList& list) {
  return EncodeList(list, [](const core::Workload& w) { return core::EncodeWorkload(w); });
}
absl::StatusOr<WorkloadList> DecodeWorkloadList(const Json& j) {
  return DecodeList<core::Workload>("workload", j,
                                    [](const Json& item) { return core::DecodeWorkload(item); });
}

Json EncodeAssignments(const Assignments& a) {
  Json j = EncodeWorkloadList({a.items, a.revision});
  if (a.since > 0) {
    j["since"] = a.since;
    j["removed"] = a.removed;
  }
  return j;
}

absl::StatusOr<Assignments> DecodeAssignments(std::string_view host, const Json& j) {
  JsonContext ctx{"host assignments", std::string(host)};
  if (!j.is_object()) return ctx.Error("", Cat("must be an object, got ", core::Preview(j)));
  Assignments out;
  BERTH_RETURN_IF_ERROR(core::OptionalInt(ctx, j, "", "since", 0, INT64_MAX, &out.since));
  BERTH_RETURN_IF_ERROR(core::OptionalStringList(ctx, j, "", "removed", &out.removed));
  Json rest = j;
  rest.erase("since");
  rest.erase("removed");
  BERTH_ASSIGN_OR_RETURN(WorkloadList list, DecodeWorkloadList(rest));
  out.items = std::move(list.items);
  out.revision = list.revision;
  return out;
}

Json EncodeServiceList(const ServiceList& list) {
  return EncodeList(list, [](const core::Service& s) { return core::EncodeService(s); });
}
absl::StatusOr<ServiceList> DecodeServiceList(const Json& j) {
  return DecodeList<core::Service>("service", j,
                                   [](const Json& item) { return core::DecodeService(item); });
}

Json EncodeServiceScale(const ServiceScale& request) { return {{"replicas", request.replicas}}; }

absl::StatusOr<ServiceScale> DecodeServiceScale(std::string_view service, const Json& j) {
  JsonContext ctx{"service", std::string(service)};
  BERTH_RETURN_IF_ERROR(core::CheckObject(ctx, j, "", {"replicas"}));
  if (!j.contains("replicas") || j["replicas"].is_null()) {
    return ctx.Error("replicas", "is required (the number of replicas to keep)");
  }
  int64_t replicas = 0;
  BERTH_RETURN_IF_ERROR(
      core::OptionalInt(ctx, j, "", "replicas", 0, core::kMaxReplicas, &replicas));
  return ServiceScale{.replicas = static_cast<int>(replicas)};
}

Json EncodeJobList(const JobList& list) {
  return EncodeList(list, [](const core::Job& job) { return core::EncodeJob(job); });
}
absl::StatusOr<JobList> DecodeJobList(const Json& j) {
  return DecodeList<core::Job>("job", j, [](const Json& item) { return core::DecodeJob(item); });
}
Json EncodeJobDeletion(const JobDeletion& deletion) {
  Json j = core::EncodeJob(deletion.job);
  j["deleted"] = deletion.deleted;
  return j;
}
absl::StatusOr<JobDeletion> DecodeJobDeletion(const Json& j) {
  JobDeletion d;
  if (!j.is_object()) return absl::InvalidArgumentError("job deletion: must be an object");
  Json job = j;
  job.erase("deleted");
  BERTH_ASSIGN_OR_RETURN(d.job, core::DecodeJob(job));
  d.deleted = j.value("deleted", false);
  return d;
}
Json EncodeServiceDeletion(const ServiceDeletion& deletion) {
  Json j = core::EncodeService(deletion.service);
  j["deleted"] = deletion.deleted;
  return j;
}

absl::StatusOr<ServiceDeletion> DecodeServiceDeletion(const Json& j) {
  ServiceDeletion d;
  if (!j.is_object()) return absl::InvalidArgumentError("service deletion: must be an object");
  Json service = j;
  service.erase("deleted");
  BERTH_ASSIGN_OR_RETURN(d.service, core::DecodeService(service));
  d.deleted = j.value("deleted", false);
  return d;
}

Json EncodeHostList(const HostList& list) {
  return EncodeList(list, [](const core::Host& h) { return core::EncodeHost(h); });
}
absl::StatusOr<HostList> DecodeHostList(const Json& j) {
  return DecodeList<core::Host>("host", j, [](const Json& item) { return core::DecodeHost(item); });
}

Json EncodeEventList(const EventList& list) {
  return EncodeList(list, [](const core::Event& e) { return core::EncodeEvent(e); });
}
absl::StatusOr<EventList> DecodeEventList(const Json& j) {
  return DecodeList<core::Event>("event", j, [](const Json& item) -> absl::StatusOr<core::Event> {
    if (!item.is_object()) return absl::InvalidArgumentError("must be an object");
    return core::DecodeEvent(item);
  });
}

absl::StatusOr<JsonList> DecodeJsonList(std::string_view kind, const Json& j) {
  return DecodeList<Json>(kind, j, [](const Json& item) -> absl::StatusOr<Json> {
    if (!item.is_object()) return absl::InvalidArgumentError("must be an object");
    return item;
  });
}

absl::StatusOr<Deleted> DecodeDeleted(std::string_view kind, const Json& j) {
  JsonContext ctx{std::string(kind), ""};
  if (!j.is_object()) return ctx.Error("body", "must be a JSON object");
  Deleted d;
  BERTH_RETURN_IF_ERROR(FirstError({
      core::OptionalString(ctx, j, "", "name", &d.name),
      core::OptionalBool(ctx, j, "", "deleted", &d.deleted),
  }));
  return d;
}

Json EncodeErrorBody(const ErrorBody& error) {
  return {{"error", {{"code", error.code}, {"message", error.message}}}};
}

absl::StatusOr<ErrorBody> DecodeErrorBody(const Json& j) {
  JsonContext ctx{"error response", ""};
  BERTH_RETURN_IF_ERROR(core::CheckObject(ctx, j, "", {"error", "status"}));
  if (!j.contains("error")) return ctx.Error("error", "is required");
  BERTH_RETURN_IF_ERROR(core::CheckObject(ctx, j["error"], "error", {"code", "message"}));
  ErrorBody e;
  BERTH_RETURN_IF_ERROR(FirstError({
      core::OptionalString(ctx, j["error"], "error", "code", &e.code),
      core::OptionalString(ctx, j["error"], "error", "message", &e.message),
  }));
  return e;
}

Json EncodeDiskCreate(const DiskCreate& request) {
  Json j = Json::object();
  PutIfSet(j, "name", request.name);
  PutIfSet(j, "size", request.size);
  PutIfSet(j, "format", request.format);
  PutIfSet(j, "filesystem", request.filesystem);
  PutIfSet(j, "from_image", request.from_image);
  PutIfSet(j, "host", request.host);
  PutIfSet(j, "pool", request.pool);
  return j;
}

Json EncodeNetworkCreate(const NetworkCreate& request) {
  Json j = Json::object();
  PutIfSet(j, "name", request.name);
  PutIfSet(j, "subnet", request.subnet);
  PutIfSet(j, "gateway", request.gateway);
  if (request.nat) j["nat"] = *request.nat;
  return j;
}

Json EncodeSecurityRule(const SecurityRule& rule) {
  Json j = Json::object();
  PutIfSet(j, "proto", rule.protocol);
  PutIfSet(j, "ports", rule.ports);
  PutIfSet(j, "from", rule.from_cidr);
  PutIfSet(j, "from_group", rule.from_group);
  return j;
}

Json EncodePortForwardCreate(const PortForwardCreate& request) {
  Json j = Json::object();
  PutIfSet(j, "proto", request.protocol);
  PutIfSet(j, "workload", request.workload);
  PutIfSet(j, "host", request.host);
  if (request.host_port != 0) j["host_port"] = request.host_port;
  if (request.port != 0) j["port"] = request.port;
  return j;
}

Json EncodeImageImport(const ImageImport& request) {
  Json j = Json::object();
  PutIfSet(j, "name", request.name);
  PutIfSet(j, "kernel", request.kernel);
  PutIfSet(j, "initrd", request.initrd);
  PutIfSet(j, "cmdline", request.cmdline);
  PutIfSet(j, "disk", request.disk);
  PutIfSet(j, "rootfs", request.rootfs);
  if (request.replace) j["replace"] = true;
  return j;
}

}  // namespace berth::api::wire
