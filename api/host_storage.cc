#include "api/host_storage.h"

#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "api/body_parser.h"
#include "api/http/client.h"
#include "api/http/message.h"
#include "api/route_util.h"
#include "core/disk.h"
#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::api {

using control::HostBackup;
using control::HostPool;
using control::HostVolume;
using control::StorageHost;
using core::Cat;
using core::Json;

namespace {

// A client's text in a message: quoted, bounded, valid UTF-8.
std::string Shown(std::string_view text) {
  return core::Preview(Json(std::string(text.substr(0, 128))));
}

constexpr int64_t kMaxSizeMib = int64_t{1} << 30;  // 1 PiB
constexpr absl::Duration kConnectTimeout = absl::Seconds(5);
// Copies (backup, restore, clone, a disk made from a large image) take minutes; the rest are
// quick.
constexpr absl::Duration kCopyTimeout = absl::Minutes(30);
constexpr absl::Duration kQuickTimeout = absl::Minutes(2);

// The arguments of one operation, as the agent decodes them.
struct Args {
  std::string name;
  std::string snapshot;
  std::string attached_to;
  std::string source;
  std::string format;
  std::string filesystem;
  std::string from_image;
  std::string file;
  std::string workload;
  int64_t size_mib = 0;
};

absl::StatusOr<Args> DecodeArgs(const Json& j, std::initializer_list<std::string_view> allowed) {
  Args a;
  core::JsonContext ctx{"disk", ""};
  if (j.is_object() && j.contains("name") && j["name"].is_string()) {
    ctx.name = j["name"].get<std::string>().substr(0, 128);
  }
  BERTH_RETURN_IF_ERROR(core::CheckObject(ctx, j, "", allowed));
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "name", &a.name));
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "snapshot", &a.snapshot));
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "attached_to", &a.attached_to));
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "source", &a.source));
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "format", &a.format));
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "filesystem", &a.filesystem));
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "from_image", &a.from_image));
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "file", &a.file));
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "workload", &a.workload));
  BERTH_RETURN_IF_ERROR(core::OptionalInt(ctx, j, "", "size_mib", 0, kMaxSizeMib, &a.size_mib));
  // Names build paths on the host: each must be a name, whoever asks.
  for (std::string_view field : allowed) {
    absl::Status valid;
    if (field == "name") valid = core::ValidateName("disk", a.name);
    if (field == "source") valid = core::ValidateName("disk", a.source);
    if (field == "attached_to" && !a.attached_to.empty()) {
      valid = core::ValidateName("workload", a.attached_to);
    }
    if (field == "workload") valid = core::ValidateName("workload", a.workload);
    if (!valid.ok()) return ctx.Error(field, std::string(valid.message()));
  }
  return a;
}

Json EncodeBackup(const HostBackup& b) {
  return Json{{"bytes", b.bytes}, {"sha256", b.sha256}, {"path", b.path}};
}

absl::StatusOr<Json> RunOperation(StorageHost& host, const HostTaskDisks& tasks,
                                  std::string_view op, const Json& body) {
  if (op == "plug" && tasks.plug) {
    BERTH_ASSIGN_OR_RETURN(Args a, DecodeArgs(body, {"workload", "name"}));
    BERTH_ASSIGN_OR_RETURN(HostVolume v, host.Get(a.name));
    BERTH_RETURN_IF_ERROR(tasks.plug(a.workload, v, a.name));
    return Json::object();
  }
  if (op == "unplug" && tasks.unplug) {
    BERTH_ASSIGN_OR_RETURN(Args a, DecodeArgs(body, {"workload", "name"}));
    BERTH_RETURN_IF_ERROR(tasks.unplug(a.workload, a.name));
    return Json::object();
  }
  if (op == "live-snapshot" && tasks.snapshot) {
    BERTH_ASSIGN_OR_RETURN(Args a, DecodeArgs(body, {"workload", "name", "snapshot"}));
    BERTH_RETURN_IF_ERROR(tasks.snapshot(a.workload, a.name, a.snapshot));
    return Json::object();
  }
  if (op == "create") {
    BERTH_ASSIGN_OR_RETURN(
        Args a, DecodeArgs(body, {"name", "format", "size_mib", "filesystem", "from_image"}));
    control::HostVolumeSpec spec{.name = a.name,
                                 .format = a.format.empty() ? "qcow2" : a.format,
                                 .size_mib = a.size_mib,
                                 .filesystem = a.filesystem,
                                 .from_image = a.from_image};
    BERTH_ASSIGN_OR_RETURN(HostVolume v, host.Create(spec));
    return EncodeHostVolume(v);
  }
  if (op == "get") {
    BERTH_ASSIGN_OR_RETURN(Args a, DecodeArgs(body, {"name"}));
    BERTH_ASSIGN_OR_RETURN(HostVolume v, host.Get(a.name));
    return EncodeHostVolume(v);
  }
  if (op == "resize") {
    BERTH_ASSIGN_OR_RETURN(Args a, DecodeArgs(body, {"name", "size_mib", "attached_to"}));
    BERTH_ASSIGN_OR_RETURN(HostVolume v, host.Resize(a.name, a.size_mib, a.attached_to));
    return EncodeHostVolume(v);
  }
  if (op == "snapshot") {
    BERTH_ASSIGN_OR_RETURN(Args a, DecodeArgs(body, {"name", "snapshot"}));
    BERTH_RETURN_IF_ERROR(host.Snapshot(a.name, a.snapshot));
    return Json::object();
  }
  if (op == "revert") {
    BERTH_ASSIGN_OR_RETURN(Args a, DecodeArgs(body, {"name", "snapshot", "attached_to"}));
    BERTH_RETURN_IF_ERROR(host.Revert(a.name, a.snapshot, a.attached_to));
    return Json::object();
  }
  if (op == "delete-snapshot") {
    BERTH_ASSIGN_OR_RETURN(Args a, DecodeArgs(body, {"name", "snapshot"}));
    BERTH_RETURN_IF_ERROR(host.DeleteSnapshot(a.name, a.snapshot));
    return Json::object();
  }
  if (op == "clone") {
    BERTH_ASSIGN_OR_RETURN(Args a, DecodeArgs(body, {"source", "snapshot", "name", "format"}));
    BERTH_ASSIGN_OR_RETURN(HostVolume v, host.Clone(a.source, a.snapshot, a.name, a.format));
    return EncodeHostVolume(v);
  }
  if (op == "backup") {
    BERTH_ASSIGN_OR_RETURN(Args a, DecodeArgs(body, {"name", "file"}));
    BERTH_ASSIGN_OR_RETURN(HostBackup b, host.Backup(a.name, a.file, nullptr));
    return EncodeBackup(b);
  }
  if (op == "restore") {
    BERTH_ASSIGN_OR_RETURN(Args a, DecodeArgs(body, {"file", "name", "format"}));
    BERTH_ASSIGN_OR_RETURN(HostVolume v, host.Restore(a.file, a.name, a.format, nullptr));
    return EncodeHostVolume(v);
  }
  if (op == "delete") {
    BERTH_ASSIGN_OR_RETURN(Args a, DecodeArgs(body, {"name", "attached_to"}));
    BERTH_RETURN_IF_ERROR(host.Delete(a.name, a.attached_to));
    return Json::object();
  }
  if (op == "pools") {
    BERTH_RETURN_IF_ERROR(DecodeArgs(body, {}).status());
    BERTH_ASSIGN_OR_RETURN(std::vector<HostPool> pools, host.Pools());
    Json items = Json::array();
    for (const HostPool& p : pools) items.push_back(EncodeHostPool(p));
    return Json{{"items", std::move(items)}};
  }
  return absl::NotFoundError(
      Cat("storage operation ", Shown(op),
          " does not exist: create, get, resize, snapshot, revert, delete-snapshot, clone, "
          "backup, restore, delete or pools"));
}

// POST /v1/storage/POOL/OP to the agent at `target`: the answer's JSON, or its error with the
// host named (Unavailable when it cannot be reached or refused the token).
absl::StatusOr<Json> CallPool(const TaskApiTarget& target, std::string_view pool,
                              std::string_view op, const Json& body, absl::Duration timeout) {
  HttpClient http(target.url, HttpClientOptions{.bearer_token = target.token,
                                                .timeout = timeout,
                                                .connect_timeout = kConnectTimeout,
                                                .max_body_bytes = 1 << 20});
  absl::StatusOr<HttpResponse> answer = http.Post(Cat("/v1/storage/", pool, "/", op), body.dump());
  if (!answer.ok()) {
    return absl::UnavailableError(Cat("host \"", target.host, "\": its agent at ", target.url,
                                      " cannot be reached: ", answer.status().message()));
  }
  if (answer->status == 401) {
    return absl::UnavailableError(
        Cat("host \"", target.host,
            "\": its agent refused the token of its latest heartbeat (it restarted?); try again "
            "after its next heartbeat"));
  }
  if (absl::Status s = StatusFromResponse(answer->status, answer->body); !s.ok()) {
    return absl::Status(s.code(), Cat("host \"", target.host, "\": ", s.message()));
  }
  Json j = Json::parse(answer->body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InternalError(Cat("host \"", target.host, "\": malformed storage answer"));
  }
  return j;
}

class RemoteStorageHost : public StorageHost {
 public:
  RemoteStorageHost(std::function<absl::StatusOr<TaskApiTarget>()> target, std::string pool)
      : target_(std::move(target)), pool_(std::move(pool)) {}

  // The agent prepared its pools when it started.
  absl::Status Prepare() override { return absl::OkStatus(); }
  absl::StatusOr<HostVolume> Create(const control::HostVolumeSpec& spec) override {
    return Volume("create",
                  {{"name", spec.name},
                   {"format", spec.format},
                   {"size_mib", spec.size_mib},
                   {"filesystem", spec.filesystem},
                   {"from_image", spec.from_image}},
                  spec.from_image.empty() ? kQuickTimeout : kCopyTimeout);
  }
  absl::StatusOr<HostVolume> Get(std::string_view name) override {
    return Volume("get", {{"name", name}}, kQuickTimeout);
  }
  absl::StatusOr<HostVolume> Resize(std::string_view name, int64_t size_mib,
                                    std::string_view attached_to) override {
    return Volume("resize", {{"name", name}, {"size_mib", size_mib}, {"attached_to", attached_to}},
                  kQuickTimeout);
  }
  absl::Status Snapshot(std::string_view name, std::string_view snapshot) override {
    return Call("snapshot", {{"name", name}, {"snapshot", snapshot}}, kQuickTimeout).status();
  }
  absl::Status Revert(std::string_view name, std::string_view snapshot,
                      std::string_view attached_to) override {
    return Call("revert", {{"name", name}, {"snapshot", snapshot}, {"attached_to", attached_to}},
                kQuickTimeout)
        .status();
  }
  absl::Status DeleteSnapshot(std::string_view name, std::string_view snapshot) override {
    return Call("delete-snapshot", {{"name", name}, {"snapshot", snapshot}}, kQuickTimeout)
        .status();
  }
  absl::StatusOr<HostVolume> Clone(std::string_view source, std::string_view snapshot,
                                   std::string_view name, std::string_view format) override {
    return Volume("clone",
                  {{"source", source}, {"snapshot", snapshot}, {"name", name}, {"format", format}},
                  kCopyTimeout);
  }
  absl::StatusOr<HostBackup> Backup(std::string_view name, const std::string& file,
                                    const control::Progress& progress) override {
    BERTH_ASSIGN_OR_RETURN(Json j, Call("backup", {{"name", name}, {"file", file}}, kCopyTimeout));
    HostBackup b;
    core::JsonContext ctx{"disk", std::string(name)};
    BERTH_RETURN_IF_ERROR(core::CheckObject(ctx, j, "backup", {"bytes", "sha256", "path"}));
    BERTH_RETURN_IF_ERROR(core::OptionalInt(ctx, j, "backup", "bytes", 0, INT64_MAX, &b.bytes));
    BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "backup", "sha256", &b.sha256));
    BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "backup", "path", &b.path));
    // The agent copies in one piece: the caller hears of the end only.
    if (progress) progress(1000);
    return b;
  }
  absl::StatusOr<HostVolume> Restore(const std::string& file, std::string_view name,
                                     std::string_view format,
                                     const control::Progress& progress) override {
    BERTH_ASSIGN_OR_RETURN(
        HostVolume v,
        Volume("restore", {{"file", file}, {"name", name}, {"format", format}}, kCopyTimeout));
    if (progress) progress(1000);
    return v;
  }
  absl::Status Delete(std::string_view name, std::string_view attached_to) override {
    return Call("delete", {{"name", name}, {"attached_to", attached_to}}, kQuickTimeout).status();
  }
  absl::StatusOr<std::vector<HostPool>> Pools() override {
    BERTH_ASSIGN_OR_RETURN(Json j, Call("pools", Json::object(), kQuickTimeout));
    if (!j.is_object() || !j.contains("items") || !j["items"].is_array()) {
      return absl::InternalError(Cat("pool ", pool_, ": malformed answer from its host"));
    }
    std::vector<HostPool> out;
    for (const Json& item : j["items"]) {
      BERTH_ASSIGN_OR_RETURN(HostPool p, DecodeHostPool(pool_, item));
      out.push_back(std::move(p));
    }
    return out;
  }

 private:
  absl::StatusOr<Json> Call(std::string_view op, const Json& body, absl::Duration timeout) {
    BERTH_ASSIGN_OR_RETURN(TaskApiTarget target, target_());
    return CallPool(target, pool_, op, body, timeout);
  }
  absl::StatusOr<HostVolume> Volume(std::string_view op, const Json& body, absl::Duration timeout) {
    BERTH_ASSIGN_OR_RETURN(Json j, Call(op, body, timeout));
    return DecodeHostVolume(pool_, j);
  }

  const std::function<absl::StatusOr<TaskApiTarget>()> target_;
  const std::string pool_;
};

}  // namespace

Json EncodeHostVolume(const HostVolume& v) {
  return Json{{"format", v.format},
              {"size_mib", v.size_mib},
              {"allocated_bytes", v.allocated_bytes},
              {"path", v.path},
              {"backing_file", v.backing_file},
              {"snapshots", v.snapshots},
              {"filesystem", v.filesystem}};
}

absl::StatusOr<HostVolume> DecodeHostVolume(std::string_view host, const Json& j) {
  core::JsonContext ctx{"host volume", std::string(host)};
  BERTH_RETURN_IF_ERROR(core::CheckObject(ctx, j, "",
                                          {"format", "size_mib", "allocated_bytes", "path",
                                           "backing_file", "snapshots", "filesystem"}));
  HostVolume v;
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "format", &v.format));
  BERTH_RETURN_IF_ERROR(core::OptionalInt(ctx, j, "", "size_mib", 0, INT64_MAX, &v.size_mib));
  BERTH_RETURN_IF_ERROR(
      core::OptionalInt(ctx, j, "", "allocated_bytes", 0, INT64_MAX, &v.allocated_bytes));
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "path", &v.path));
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "backing_file", &v.backing_file));
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "filesystem", &v.filesystem));
  if (auto it = j.find("snapshots"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return ctx.Error("snapshots", "must be a list of names");
    for (const Json& s : *it) {
      if (!s.is_string()) return ctx.Error("snapshots", "must be a list of names");
      v.snapshots.push_back(s.get<std::string>());
    }
  }
  return v;
}

Json EncodeHostPool(const HostPool& p) {
  return Json{{"name", p.name},
              {"directory", p.directory},
              {"capacity_mib", p.capacity_mib},
              {"overcommit_permille", p.overcommit_permille},
              {"volume_count", p.volume_count},
              {"provisioned_mib", p.provisioned_mib},
              {"allocated_bytes", p.allocated_bytes},
              {"limit_mib", p.limit_mib},
              {"available_mib", p.available_mib}};
}

absl::StatusOr<HostPool> DecodeHostPool(std::string_view host, const Json& j) {
  core::JsonContext ctx{"host pool", std::string(host)};
  BERTH_RETURN_IF_ERROR(
      core::CheckObject(ctx, j, "",
                        {"name", "directory", "capacity_mib", "overcommit_permille", "volume_count",
                         "provisioned_mib", "allocated_bytes", "limit_mib", "available_mib"}));
  HostPool p;
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "name", &p.name));
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "directory", &p.directory));
  BERTH_RETURN_IF_ERROR(
      core::OptionalInt(ctx, j, "", "capacity_mib", 0, INT64_MAX, &p.capacity_mib));
  BERTH_RETURN_IF_ERROR(
      core::OptionalInt(ctx, j, "", "overcommit_permille", 0, INT64_MAX, &p.overcommit_permille));
  BERTH_RETURN_IF_ERROR(
      core::OptionalInt(ctx, j, "", "volume_count", 0, INT64_MAX, &p.volume_count));
  BERTH_RETURN_IF_ERROR(
      core::OptionalInt(ctx, j, "", "provisioned_mib", 0, INT64_MAX, &p.provisioned_mib));
  BERTH_RETURN_IF_ERROR(
      core::OptionalInt(ctx, j, "", "allocated_bytes", 0, INT64_MAX, &p.allocated_bytes));
  BERTH_RETURN_IF_ERROR(core::OptionalInt(ctx, j, "", "limit_mib", 0, INT64_MAX, &p.limit_mib));
  BERTH_RETURN_IF_ERROR(
      core::OptionalInt(ctx, j, "", "available_mib", 0, INT64_MAX, &p.available_mib));
  return p;
}

void AddHostStorageRoutes(Router& router, std::map<std::string, StorageHost*> pools,
                          HostTaskDisks tasks) {
  router.Handle("POST", "/v1/storage/{pool}/{op}", [pools, tasks](const HttpRequest& req) {
    const std::string pool = req.Param("pool");
    const std::string op = req.Param("op");
    auto it = pools.find(pool);
    if (it == pools.end()) {
      std::vector<std::string> names;
      for (const auto& [name, _] : pools) names.push_back(name);
      return HttpResponse::FromStatus(absl::NotFoundError(
          Cat("pool ", Shown(pool), ": this host has no such pool (it has ",
              names.empty() ? std::string("none") : absl::StrJoin(names, ", "), ")")));
    }
    auto body = ParseBody(req.body, {"disk operation", op.substr(0, 64)});
    if (!body.ok()) return HttpResponse::FromStatus(body.status());
    absl::StatusOr<Json> result = RunOperation(*it->second, tasks, op, *body);
    if (!result.ok()) return HttpResponse::FromStatus(result.status());
    return JsonResponse(200, *result);
  });
}

Json EncodeHostDisks(const std::vector<control::HostDisk>& disks) {
  Json items = Json::array();
  for (const control::HostDisk& d : disks) {
    items.push_back(Json{{"name", d.name},
                         {"pool", d.pool},
                         {"format", d.format},
                         {"filesystem", d.filesystem},
                         {"read_only", d.read_only},
                         {"mount", d.mount}});
  }
  return Json{{"disks", std::move(items)}};
}

absl::StatusOr<std::vector<control::HostDisk>> DecodeHostDisks(std::string_view host,
                                                               const Json& j) {
  core::JsonContext ctx{"host disks", std::string(host)};
  BERTH_RETURN_IF_ERROR(core::CheckObject(ctx, j, "", {"disks"}));
  if (!j.contains("disks") || !j["disks"].is_array()) return ctx.Error("disks", "must be a list");
  std::vector<control::HostDisk> out;
  for (size_t i = 0; i < j["disks"].size(); ++i) {
    const Json& item = j["disks"][i];
    const std::string path = Cat("disks[", static_cast<int>(i), "]");
    BERTH_RETURN_IF_ERROR(core::CheckObject(
        ctx, item, path, {"name", "pool", "format", "filesystem", "read_only", "mount"}));
    control::HostDisk d;
    BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, item, path, "name", &d.name));
    BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, item, path, "pool", &d.pool));
    BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, item, path, "format", &d.format));
    BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, item, path, "filesystem", &d.filesystem));
    BERTH_RETURN_IF_ERROR(core::OptionalBool(ctx, item, path, "read_only", &d.read_only));
    BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, item, path, "mount", &d.mount));
    // The agent builds paths from the name: it must be a disk's.
    if (absl::Status s = core::ValidateName("disk", d.name); !s.ok()) {
      return ctx.Error(core::JoinPath(path, "name"), std::string(s.message()));
    }
    if (!d.pool.empty() && d.pool != core::kSharedPool) {
      return ctx.Error(core::JoinPath(path, "pool"), "must be empty or \"shared\"");
    }
    out.push_back(std::move(d));
  }
  return out;
}

// The task API `host` reported to this server, as a target.
absl::StatusOr<TaskApiTarget> TargetOf(control::ControlPlane* control, const std::string& host) {
  std::optional<control::TaskApiEndpoint> api = control->TaskApi(host);
  if (!api) {
    return absl::UnavailableError(
        Cat("host \"", host,
            "\" has not reported a task API to this server, so its disks cannot be reached: "
            "its agent runs with --task-api-listen none, or has not sent a heartbeat yet"));
  }
  return TaskApiTarget{
      .host = host, .url = TaskApiUrl(api->address, api->port), .token = api->token};
}

control::RemoteStorageFactory RemoteStorageOf(control::ControlPlane* control) {
  return [control](const std::string& host,
                   const std::string& pool) -> std::shared_ptr<control::StorageHost> {
    return NewRemoteStorageHost([control, host] { return TargetOf(control, host); }, pool);
  };
}

control::TaskDisksFactory RemoteTaskDisksOf(control::ControlPlane* control) {
  return [control](const std::string& host) {
    auto call = [control, host](std::string_view pool, std::string_view op,
                                const Json& body) -> absl::Status {
      BERTH_ASSIGN_OR_RETURN(TaskApiTarget target, TargetOf(control, host));
      // A VM pauses briefly while QEMU plugs or snapshots.
      return CallPool(target, pool.empty() ? kHostPool : pool, op, body, kQuickTimeout).status();
    };
    return control::TaskDisks{
        .plug =
            [call](std::string_view workload, std::string_view disk, std::string_view pool) {
              return call(pool, "plug", Json{{"workload", workload}, {"name", disk}});
            },
        .unplug =
            [call](std::string_view workload, std::string_view disk, std::string_view pool) {
              return call(pool, "unplug", Json{{"workload", workload}, {"name", disk}});
            },
        .snapshot =
            [call](std::string_view workload, std::string_view disk, std::string_view pool,
                   std::string_view snapshot) {
              return call(pool, "live-snapshot",
                          Json{{"workload", workload}, {"name", disk}, {"snapshot", snapshot}});
            }};
  };
}

void AddFleetStorageRoutes(Router& router, control::FleetStorage* fleet) {
  router.Handle("POST", "/v1/hosts/{name}/disk-attach", [fleet](const HttpRequest& req) {
    const std::string host = req.Param("name");
    if (auto denied = OnlyItself(req, host)) return *denied;
    absl::StatusOr<Json> body = StrictBody(req, "host", host, {"workload"});
    if (!body.ok()) return HttpResponse::FromStatus(body.status());
    const Json& w = (*body)["workload"];
    if (!body->contains("workload") || !w.is_string() || w.get<std::string>().empty()) {
      return HttpResponse::FromStatus(
          core::JsonContext{"host", host}.Error("workload", "is required: a workload's name"));
    }
    const std::string workload = w.get<std::string>();
    if (absl::Status valid = core::ValidateName("workload", workload); !valid.ok()) {
      return HttpResponse::FromStatus(valid);
    }
    absl::StatusOr<std::vector<control::HostDisk>> disks = fleet->AttachFor(host, workload);
    if (!disks.ok()) return HttpResponse::FromStatus(disks.status());
    return JsonOk(200, EncodeHostDisks(*disks));
  });
}

std::unique_ptr<StorageHost> NewRemoteStorageHost(
    std::function<absl::StatusOr<TaskApiTarget>()> target, std::string pool) {
  return std::make_unique<RemoteStorageHost>(std::move(target), std::move(pool));
}

}  // namespace berth::api
