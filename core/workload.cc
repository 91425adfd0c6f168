#include "core/workload.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

#include "absl/strings/numbers.h"
#include "core/job.h"
#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::core {
namespace {

constexpr std::string_view kKindNames[] = {"process", "vm", "container"};
constexpr std::string_view kStateNames[] = {"pending", "scheduled", "starting", "running",
                                            "paused",  "stopping",  "stopped",  "failed"};
constexpr std::string_view kDesiredNames[] = {"running", "paused", "stopped", "deleted"};
constexpr std::string_view kRestartNames[] = {"never", "on-failure", "always"};

std::string TypeName(const Json& j) { return j.type_name(); }

// Quantities arrive as strings ("500m", "64Mi") or JSON numbers (cores; bytes).
absl::StatusOr<std::string> QuantityText(const JsonContext& ctx, const Json& j,
                                         std::string_view field) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_number_integer()) return std::to_string(j.get<int64_t>());
  if (j.is_number_float()) {
    double v = j.get<double>();
    if (v < 0) return ctx.Error(field, Cat("must not be negative, got ", Preview(j)));
    // Three decimals is the finest any quantity accepts.
    char buf[64];
    snprintf(buf, sizeof buf, "%.3f", v);
    return std::string(buf);
  }
  return ctx.Error(field, Cat("must be a quantity string or number, got ", TypeName(j)));
}

absl::Status WithField(const JsonContext& ctx, std::string_view field, const absl::Status& s) {
  if (s.ok()) return s;
  return ctx.Error(field, std::string(s.message()));
}

absl::Status GetString(const JsonContext& ctx, const Json& obj, std::string_view path,
                       const char* key, std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) {
    return ctx.Error(JoinPath(path, key), Cat("must be a string, got ", TypeName(*it)));
  }
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status GetStringList(const JsonContext& ctx, const Json& obj, std::string_view path,
                           const char* key, std::vector<std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  std::string field = JoinPath(path, key);
  if (it->is_string()) {  // a single string is a list of one
    out->push_back(it->get<std::string>());
    return absl::OkStatus();
  }
  if (!it->is_array())
    return ctx.Error(field, Cat("must be a list of strings, got ", TypeName(*it)));
  for (size_t i = 0; i < it->size(); ++i) {
    if (!(*it)[i].is_string()) {
      return ctx.Error(Cat(field, "[", i, "]"), Cat("must be a string, got ", TypeName((*it)[i])));
    }
    out->push_back((*it)[i].get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status GetStringMap(const JsonContext& ctx, const Json& obj, std::string_view path,
                          const char* key, std::map<std::string, std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  std::string field = JoinPath(path, key);
  if (!it->is_object())
    return ctx.Error(field, Cat("must be a map of strings, got ", TypeName(*it)));
  for (auto kv = it->begin(); kv != it->end(); ++kv) {
    if (kv->is_string()) {
      (*out)[kv.key()] = kv->get<std::string>();
    } else if (kv->is_number() || kv->is_boolean()) {
      (*out)[kv.key()] = kv->dump();
    } else {
      return ctx.Error(JoinPath(field, kv.key()), Cat("must be a string, got ", TypeName(*kv)));
    }
  }
  return absl::OkStatus();
}

absl::Status GetInt(const JsonContext& ctx, const Json& obj, std::string_view path, const char* key,
                    int64_t* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer()) {
    return ctx.Error(JoinPath(path, key), Cat("must be an integer, got ", Preview(*it)));
  }
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

absl::Status DecodeRestart(const JsonContext& ctx, const Json& j, RestartSpec* out) {
  if (j.is_null()) return absl::OkStatus();
  // `restart: always` is short for `restart: {policy: always}`.
  Json obj = j.is_string() ? Json{{"policy", j}} : j;
  if (!obj.is_object()) {
    return ctx.Error("restart", Cat("must be a policy or an object, got ", TypeName(obj)));
  }
  BERTH_RETURN_IF_ERROR(
      CheckObject(ctx, obj, "restart", {"policy", "max_retries", "backoff", "fence"}));
  std::string policy = "never";
  BERTH_RETURN_IF_ERROR(GetString(ctx, obj, "restart", "policy", &policy));
  auto* found = std::find(std::begin(kRestartNames), std::end(kRestartNames), policy);
  if (found == std::end(kRestartNames)) {
    return ctx.Error("restart.policy",
                     Cat("must be one of always, on-failure, never, got \"", policy, "\""));
  }
  out->policy = static_cast<RestartPolicy>(found - std::begin(kRestartNames));
  if (auto it = obj.find("max_retries"); it != obj.end() && !it->is_null()) {
    int64_t n = 0;
    BERTH_RETURN_IF_ERROR(GetInt(ctx, obj, "restart", "max_retries", &n));
    if (n < 0 || n > 1000000) {
      return ctx.Error("restart.max_retries", Cat("must be between 0 and 1000000, got ", n));
    }
    out->max_retries = static_cast<int>(n);
  }
  if (auto it = obj.find("backoff"); it != obj.end() && !it->is_null()) {
    absl::Duration d;
    if (!it->is_string() || !absl::ParseDuration(it->get<std::string>(), &d)) {
      return ctx.Error("restart.backoff",
                       Cat("must be a duration like \"5s\", got ", Preview(*it)));
    }
    if (d < absl::ZeroDuration() || d > kMaxRestartBackoff) {
      return ctx.Error("restart.backoff",
                       Cat("must be between 0s and ", absl::FormatDuration(kMaxRestartBackoff),
                           ", got ", absl::FormatDuration(d)));
    }
    out->backoff = d;
  }
  if (auto it = obj.find("fence"); it != obj.end() && !it->is_null()) {
    if (!it->is_boolean()) return ctx.Error("restart.fence", "must be true or false");
    out->fence = it->get<bool>();
  }
  return absl::OkStatus();
}

absl::Status DecodeGpu(const JsonContext& ctx, const Json& j, GpuRequest* gpu) {
  const std::string path = "resources.gpu";
  if (j.is_null()) return absl::OkStatus();
  if (j.is_number_integer()) {
    int64_t count = j.get<int64_t>();
    if (count < 0) return ctx.Error(path, Cat("must be >= 0, got ", count));
    if (count > 0) {
      gpu->kind = GpuRequest::Kind::kWhole;
      gpu->count = static_cast<int>(count);
    }
    return absl::OkStatus();
  }
  BERTH_RETURN_IF_ERROR(
      CheckObject(ctx, j, path, {"count", "models", "min_memory", "share", "memory", "mig"}));
  int64_t count = 0;
  BERTH_RETURN_IF_ERROR(GetInt(ctx, j, path, "count", &count));
  if (count < 0) return ctx.Error(path + ".count", Cat("must be >= 0, got ", count));
  if (count > 64) return ctx.Error(path + ".count", Cat("must be <= 64, got ", count));
  BERTH_RETURN_IF_ERROR(GetStringList(ctx, j, path, "models", &gpu->models));
  int forms = 0;
  if (count > 0) {
    ++forms;
    gpu->kind = GpuRequest::Kind::kWhole;
    gpu->count = static_cast<int>(count);
  }
  if (auto it = j.find("min_memory"); it != j.end()) {
    BERTH_ASSIGN_OR_RETURN(std::string text, QuantityText(ctx, *it, path + ".min_memory"));
    auto mib = ParseSizeMiB(text);
    BERTH_RETURN_IF_ERROR(WithField(ctx, path + ".min_memory", mib.status()));
    gpu->min_memory_mib = *mib;
  }
  if (auto it = j.find("share"); it != j.end()) {
    ++forms;
    BERTH_ASSIGN_OR_RETURN(std::string text, QuantityText(ctx, *it, path + ".share"));
    // A share reads like a CPU amount: "250m" or "0.25" of one device.
    auto milli = ParseCpu(text);
    BERTH_RETURN_IF_ERROR(WithField(ctx, path + ".share", milli.status()));
    if (milli->value() <= 0 || milli->value() >= kWholeGpuMilli) {
      return ctx.Error(path + ".share",
                       Cat("must be between 1m and 999m of one GPU (use count for whole GPUs), "
                           "got \"",
                           text, "\""));
    }
    gpu->kind = GpuRequest::Kind::kShare;
    gpu->milli = milli->value();
  }
  if (auto it = j.find("memory"); it != j.end()) {
    BERTH_ASSIGN_OR_RETURN(std::string text, QuantityText(ctx, *it, path + ".memory"));
    auto mib = ParseSizeMiB(text);
    BERTH_RETURN_IF_ERROR(WithField(ctx, path + ".memory", mib.status()));
    if (gpu->kind != GpuRequest::Kind::kShare) {
      return ctx.Error(path + ".memory", "applies only with share (device memory of a GPU share)");
    }
    gpu->memory_mib = *mib;
  }
  if (auto it = j.find("mig"); it != j.end()) {
    ++forms;
    if (!it->is_string()) return ctx.Error(path + ".mig", "must be a MIG profile like \"3g.40gb\"");
    std::string profile = it->get<std::string>();
    if (!IsKnownMigProfile(profile)) {
      return ctx.Error(path + ".mig", Cat("is not a known MIG profile (like 1g.10gb, 3g.40gb, "
                                          "7g.80gb), got \"",
                                          profile, "\""));
    }
    gpu->kind = GpuRequest::Kind::kMig;
    gpu->mig_profile = profile;
  }
  if (forms > 1) {
    return ctx.Error(path, "must ask for exactly one of count, share or mig");
  }
  if (forms == 0 && (!gpu->models.empty() || gpu->min_memory_mib > 0)) {
    return ctx.Error(path,
                     "names models or min_memory but asks for no GPU (set count, share or mig)");
  }
  return absl::OkStatus();
}

absl::Status DecodeResources(const JsonContext& ctx, const Json& j, WorkloadSpec* spec) {
  BERTH_RETURN_IF_ERROR(CheckObject(ctx, j, "resources", {"cpu", "memory", "disk", "gpu"}));
  if (auto it = j.find("cpu"); it != j.end()) {
    BERTH_ASSIGN_OR_RETURN(std::string text, QuantityText(ctx, *it, "resources.cpu"));
    auto v = ParseCpu(text);
    BERTH_RETURN_IF_ERROR(WithField(ctx, "resources.cpu", v.status()));
    spec->resources.cpu = *v;
  }
  if (auto it = j.find("memory"); it != j.end()) {
    BERTH_ASSIGN_OR_RETURN(std::string text, QuantityText(ctx, *it, "resources.memory"));
    auto v = ParseMemory(text);
    BERTH_RETURN_IF_ERROR(WithField(ctx, "resources.memory", v.status()));
    spec->resources.memory = *v;
  }
  if (auto it = j.find("disk"); it != j.end()) {
    BERTH_ASSIGN_OR_RETURN(std::string text, QuantityText(ctx, *it, "resources.disk"));
    auto v = ParseDisk(text);
    BERTH_RETURN_IF_ERROR(WithField(ctx, "resources.disk", v.status()));
    spec->resources.disk = *v;
  }
  if (auto it = j.find("gpu"); it != j.end()) {
    BERTH_RETURN_IF_ERROR(DecodeGpu(ctx, *it, &spec->gpu));
  }
  return absl::OkStatus();
}

absl::Status DecodeConstraints(const JsonContext& ctx, const Json& j, WorkloadSpec* spec) {
  if (j.is_null()) return absl::OkStatus();
  if (!j.is_array()) return ctx.Error("constraints", "must be a list");
  for (size_t i = 0; i < j.size(); ++i) {
    std::string path = Cat("constraints[", i, "]");
    const Json& c = j[i];
    BERTH_RETURN_IF_ERROR(CheckObject(ctx, c, path, {"label", "op", "values", "value"}));
    LabelConstraint lc;
    BERTH_RETURN_IF_ERROR(GetString(ctx, c, path, "label", &lc.label));
    if (lc.label.empty()) return ctx.Error(path + ".label", "must not be empty");
    std::string op = "equals";
    BERTH_RETURN_IF_ERROR(GetString(ctx, c, path, "op", &op));
    if (op == "equals" || op == "==") {
      lc.op = LabelConstraint::Op::kEquals;
    } else if (op == "in") {
      lc.op = LabelConstraint::Op::kIn;
    } else if (op == "not_in" || op == "notin") {
      lc.op = LabelConstraint::Op::kNotIn;
    } else if (op == "exists") {
      lc.op = LabelConstraint::Op::kExists;
    } else {
      return ctx.Error(path + ".op",
                       Cat("must be one of equals, in, not_in, exists, got \"", op, "\""));
    }
    BERTH_RETURN_IF_ERROR(GetStringList(ctx, c, path, "values", &lc.values));
    BERTH_RETURN_IF_ERROR(GetStringList(ctx, c, path, "value", &lc.values));
    if (lc.op != LabelConstraint::Op::kExists && lc.values.empty()) {
      return ctx.Error(path + ".values", Cat("must name at least one value for op ", op));
    }
    spec->constraints.push_back(std::move(lc));
  }
  return absl::OkStatus();
}

absl::Status DecodePorts(const JsonContext& ctx, const Json& j, WorkloadSpec* spec) {
  if (j.is_null()) return absl::OkStatus();
  if (!j.is_array()) return ctx.Error("ports", "must be a list");
  for (size_t i = 0; i < j.size(); ++i) {
    std::string path = Cat("ports[", i, "]");
    BERTH_RETURN_IF_ERROR(CheckObject(ctx, j[i], path, {"host", "guest", "protocol"}));
    PortMapping p;
    int64_t host = 0, guest = 0;
    BERTH_RETURN_IF_ERROR(GetInt(ctx, j[i], path, "host", &host));
    BERTH_RETURN_IF_ERROR(GetInt(ctx, j[i], path, "guest", &guest));
    BERTH_RETURN_IF_ERROR(GetString(ctx, j[i], path, "protocol", &p.protocol));
    if (host < 1 || host > 65535)
      return ctx.Error(path + ".host", Cat("must be 1-65535, got ", host));
    if (guest < 1 || guest > 65535) {
      return ctx.Error(path + ".guest", Cat("must be 1-65535, got ", guest));
    }
    if (p.protocol != "tcp" && p.protocol != "udp") {
      return ctx.Error(path + ".protocol", Cat("must be tcp or udp, got \"", p.protocol, "\""));
    }
    p.host_port = static_cast<int>(host);
    p.guest_port = static_cast<int>(guest);
    spec->ports.push_back(p);
  }
  return absl::OkStatus();
}

absl::Status DecodeNetworks(const JsonContext& ctx, const Json& j, WorkloadSpec* spec) {
  if (j.is_null()) return absl::OkStatus();
  if (!j.is_array()) return ctx.Error("networks", "must be a list");
  for (size_t i = 0; i < j.size(); ++i) {
    std::string path = Cat("networks[", i, "]");
    NetworkAttachment n;
    if (j[i].is_string()) {  // `networks: [blue]` is short for `[{network: blue}]`
      n.network = j[i].get<std::string>();
    } else {
      BERTH_RETURN_IF_ERROR(
          CheckObject(ctx, j[i], path, {"network", "address", "security_groups"}));
      BERTH_RETURN_IF_ERROR(GetString(ctx, j[i], path, "network", &n.network));
      BERTH_RETURN_IF_ERROR(GetString(ctx, j[i], path, "address", &n.address));
      BERTH_RETURN_IF_ERROR(GetStringList(ctx, j[i], path, "security_groups", &n.security_groups));
    }
    if (!ValidateName("network", n.network).ok()) {
      return ctx.Error(path + ".network",
                       Cat("must name a network (like \"blue\"), got \"", n.network, "\""));
    }
    in_addr a{};
    if (!n.address.empty() && inet_pton(AF_INET, n.address.c_str(), &a) != 1) {
      return ctx.Error(path + ".address",
                       Cat("must be an IPv4 address like 10.0.0.5, got \"", n.address, "\""));
    }
    for (size_t g = 0; g < n.security_groups.size(); ++g) {
      if (!ValidateName("security group", n.security_groups[g]).ok()) {
        return ctx.Error(Cat(path, ".security_groups[", g, "]"),
                         Cat("must name a security group, got \"", n.security_groups[g], "\""));
      }
    }
    for (const auto& other : spec->networks) {
      if (other.network == n.network) {
        return ctx.Error(path + ".network", Cat("names \"", n.network, "\" twice"));
      }
    }
    spec->networks.push_back(std::move(n));
  }
  return absl::OkStatus();
}

absl::Status DecodeDisks(const JsonContext& ctx, const Json& j, WorkloadSpec* spec) {
  if (j.is_null()) return absl::OkStatus();
  if (!j.is_array()) return ctx.Error("disks", "must be a list");
  for (size_t i = 0; i < j.size(); ++i) {
    std::string path = Cat("disks[", i, "]");
    DiskAttachment d;
    if (j[i].is_string()) {  // `disks: [data]` is short for `[{disk: data}]`
      d.disk = j[i].get<std::string>();
    } else {
      BERTH_RETURN_IF_ERROR(CheckObject(ctx, j[i], path, {"disk", "mount", "read_only"}));
      BERTH_RETURN_IF_ERROR(GetString(ctx, j[i], path, "disk", &d.disk));
      BERTH_RETURN_IF_ERROR(GetString(ctx, j[i], path, "mount", &d.mount));
      if (auto it = j[i].find("read_only"); it != j[i].end() && !it->is_null()) {
        if (!it->is_boolean()) return ctx.Error(path + ".read_only", "must be true or false");
        d.read_only = it->get<bool>();
      }
    }
    if (!ValidateName("disk", d.disk).ok()) {
      return ctx.Error(path + ".disk",
                       Cat("must name a disk (like \"data\"), got \"", d.disk, "\""));
    }
    if (!d.mount.empty() && (d.mount[0] != '/' || d.mount.find("..") != std::string::npos)) {
      return ctx.Error(path + ".mount",
                       Cat("must be an absolute path without \"..\", got \"", d.mount, "\""));
    }
    for (const auto& other : spec->disks) {
      if (other.disk == d.disk)
        return ctx.Error(path + ".disk", Cat("names \"", d.disk, "\" twice"));
    }
    spec->disks.push_back(std::move(d));
  }
  return absl::OkStatus();
}

Json EncodeGpu(const GpuRequest& g) {
  Json j = Json::object();
  switch (g.kind) {
    case GpuRequest::Kind::kNone:
      return nullptr;
    case GpuRequest::Kind::kWhole:
      j["count"] = g.count;
      if (g.min_memory_mib > 0) j["min_memory"] = FormatMiB(g.min_memory_mib);
      break;
    case GpuRequest::Kind::kShare:
      j["share"] = Cat(g.milli, "m");
      if (g.memory_mib > 0) j["memory"] = FormatMiB(g.memory_mib);
      break;
    case GpuRequest::Kind::kMig:
      j["mig"] = g.mig_profile;
      break;
  }
  if (!g.models.empty()) j["models"] = g.models;
  return j;
}

absl::Status DecodeDevices(const JsonContext& ctx, const Json& j, WorkloadSpec* spec) {
  if (j.is_null()) return absl::OkStatus();
  if (!j.is_array() || j.size() > kMaxDeviceRequests) {
    return ctx.Error("devices", Cat("must be a list of at most ", kMaxDeviceRequests,
                                    " requests like {class: xilinx.com/fpga, count: 1}"));
  }
  for (size_t i = 0; i < j.size(); ++i) {
    std::string path = Cat("devices[", i, "]");
    BERTH_RETURN_IF_ERROR(CheckObject(ctx, j[i], path, {"class", "count"}));
    DeviceRequest d;
    BERTH_RETURN_IF_ERROR(GetString(ctx, j[i], path, "class", &d.cls));
    if (d.cls.empty()) return ctx.Error(path + ".class", "is required (like xilinx.com/fpga)");
    if (absl::Status s = CheckDeviceClass(d.cls); !s.ok()) {
      return ctx.Error(path + ".class", std::string(s.message()));
    }
    if (d.cls == "nvidia.com/gpu") {
      return ctx.Error(path + ".class", "GPUs are asked for with resources.gpu");
    }
    int64_t count = 1;
    BERTH_RETURN_IF_ERROR(GetInt(ctx, j[i], path, "count", &count));
    if (count < 1 || count > int64_t(kMaxHostDevices)) {
      return ctx.Error(path + ".count",
                       Cat("must be between 1 and ", kMaxHostDevices, ", got ", count));
    }
    d.count = static_cast<int>(count);
    for (const DeviceRequest& other : spec->devices) {
      if (other.cls == d.cls) return ctx.Error(path + ".class", Cat("names ", d.cls, " twice"));
    }
    spec->devices.push_back(std::move(d));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<UserSpec> ParseUserSpec(std::string_view text) {
  auto parse_id = [](std::string_view part, std::string_view what) -> absl::StatusOr<uint32_t> {
    uint64_t v = 0;
    // 4294967295 is (uid_t)-1, which setuid and chown read as "leave unchanged".
    if (part.empty() || part.find_first_not_of("0123456789") != std::string_view::npos ||
        !absl::SimpleAtoi(std::string(part), &v) || v >= 4294967295u) {
      return absl::InvalidArgumentError(Cat("must be a user name or uid[:gid]; ", what, " \"", part,
                                            "\" is not a number below ", "4294967295"));
    }
    return static_cast<uint32_t>(v);
  };
  if (text.empty()) return absl::InvalidArgumentError("must not be empty when given");
  UserSpec user;
  if (text.find_first_not_of("0123456789:") == std::string_view::npos) {
    size_t colon = text.find(':');
    BERTH_ASSIGN_OR_RETURN(user.uid, parse_id(text.substr(0, colon), "uid"));
    if (colon != std::string_view::npos) {
      BERTH_ASSIGN_OR_RETURN(user.gid, parse_id(text.substr(colon + 1), "gid"));
    }
    return user;
  }
  // Portable account names: letters, digits, '.', '_', '-', not starting with '-', at most 32.
  bool ok = text.size() <= 32 && text.front() != '-';
  for (char c : text) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        Cat("must be a user name (letters, digits, '.', '_', '-'; at most 32) or uid[:gid], "
            "got \"",
            text, "\""));
  }
  user.name = std::string(text);
  return user;
}

bool RequestsRoot(std::string_view user) {
  absl::StatusOr<UserSpec> u = ParseUserSpec(user);
  if (!u.ok()) return false;
  return u->name == "root" || u->uid == 0u || u->gid == 0u;
}

std::string_view WorkloadKindName(WorkloadKind kind) { return kKindNames[static_cast<int>(kind)]; }

std::optional<WorkloadKind> ParseWorkloadKind(std::string_view text) {
  for (int i = 0; i < 3; ++i) {
    if (kKindNames[i] == text) return static_cast<WorkloadKind>(i);
  }
  return std::nullopt;
}

std::string_view WorkloadStateName(WorkloadState state) {
  return kStateNames[static_cast<int>(state)];
}

std::optional<WorkloadState> ParseWorkloadState(std::string_view text) {
  for (int i = 0; i < 8; ++i) {
    if (kStateNames[i] == text) return static_cast<WorkloadState>(i);
  }
  return std::nullopt;
}

bool IsTerminal(WorkloadState state) {
  return state == WorkloadState::kStopped || state == WorkloadState::kFailed;
}

std::string_view DesiredStateName(DesiredState state) {
  return kDesiredNames[static_cast<int>(state)];
}

std::optional<DesiredState> ParseDesiredState(std::string_view text) {
  for (int i = 0; i < 4; ++i) {
    if (kDesiredNames[i] == text) return static_cast<DesiredState>(i);
  }
  return std::nullopt;
}

namespace {

// Where a spec comes from: a client (every rule applies), or the store, which keeps what was
// acknowledged under the rules of its day (a rule added since must not lose it).
enum class SpecSource { kClient, kStored };

absl::StatusOr<WorkloadSpec> DecodeSpec(const Json& json, SpecSource source) {
  JsonContext ctx{"workload", ""};
  WorkloadSpec spec;
  if (!json.is_object()) return ctx.Error("body", "must be a JSON object");
  if (auto it = json.find("name"); it != json.end() && it->is_string()) {
    ctx.name = it->get<std::string>();
  }
  BERTH_RETURN_IF_ERROR(
      CheckObject(ctx, json, "",
                  {"name", "kind", "command", "env", "working_dir", "user", "image", "cmdline",
                   "resources", "tenant", "priority", "preemptible", "labels", "constraints",
                   "ports", "networks", "disks", "restart", "devices"}));
  if (!json.contains("name")) return ctx.Error("name", "is required");
  if (!json["name"].is_string()) return ctx.Error("name", "must be a string");
  spec.name = ctx.name;
  BERTH_RETURN_IF_ERROR(ValidateName("workload", spec.name));

  std::string kind;
  BERTH_RETURN_IF_ERROR(GetString(ctx, json, "", "kind", &kind));
  if (kind.empty()) return ctx.Error("kind", "is required (process, vm or container)");
  auto k = ParseWorkloadKind(kind);
  if (!k) {
    return ctx.Error("kind", Cat("must be one of process, vm, container, got \"", kind, "\""));
  }
  spec.kind = *k;
  BERTH_RETURN_IF_ERROR(GetStringList(ctx, json, "", "command", &spec.command));
  BERTH_RETURN_IF_ERROR(GetStringMap(ctx, json, "", "env", &spec.env));
  BERTH_RETURN_IF_ERROR(GetString(ctx, json, "", "working_dir", &spec.working_dir));
  if (auto it = json.find("user"); it != json.end() && !it->is_null()) {
    // YAML turns `user: 1000` into a number; a uid is meant.
    if (it->is_number_integer()) {
      spec.user = it->dump();
    } else {
      BERTH_RETURN_IF_ERROR(GetString(ctx, json, "", "user", &spec.user));
    }
    if (absl::StatusOr<UserSpec> user = ParseUserSpec(spec.user); !user.ok()) {
      return ctx.Error("user", std::string(user.status().message()));
    }
  }
  BERTH_RETURN_IF_ERROR(GetString(ctx, json, "", "image", &spec.image));
  BERTH_RETURN_IF_ERROR(GetString(ctx, json, "", "cmdline", &spec.cmdline));
  BERTH_RETURN_IF_ERROR(GetString(ctx, json, "", "tenant", &spec.tenant));
  if (spec.tenant.empty()) spec.tenant = "default";
  BERTH_RETURN_IF_ERROR(ValidateName("tenant", spec.tenant).ok()
                            ? absl::OkStatus()
                            : ctx.Error("tenant", "must be a name like \"team-a\""));
  int64_t priority = 0;
  BERTH_RETURN_IF_ERROR(GetInt(ctx, json, "", "priority", &priority));
  if (priority < 0 || priority > 1000) {
    return ctx.Error("priority", Cat("must be between 0 and 1000, got ", priority));
  }
  spec.priority = static_cast<int>(priority);
  if (auto it = json.find("preemptible"); it != json.end() && !it->is_null()) {
    if (!it->is_boolean()) return ctx.Error("preemptible", "must be true or false");
    spec.preemptible = it->get<bool>();
  }
  BERTH_RETURN_IF_ERROR(GetStringMap(ctx, json, "", "labels", &spec.labels));
  if (auto it = spec.labels.find(std::string(kStopGraceLabel)); it != spec.labels.end()) {
    absl::Duration grace;
    if (!absl::ParseDuration(it->second, &grace) || grace < absl::ZeroDuration() ||
        grace > kMaxStopGrace) {
      return ctx.Error(Cat("labels.", kStopGraceLabel),
                       Cat("must be a duration from 0s to ", absl::FormatDuration(kMaxStopGrace),
                           " (how long a stop waits after SIGTERM), got \"", it->second, "\""));
    }
  }
  if (auto it = json.find("resources"); it != json.end() && !it->is_null()) {
    BERTH_RETURN_IF_ERROR(DecodeResources(ctx, *it, &spec));
  }
  if (auto it = json.find("constraints"); it != json.end()) {
    BERTH_RETURN_IF_ERROR(DecodeConstraints(ctx, *it, &spec));
  }
  if (auto it = json.find("ports"); it != json.end()) {
    BERTH_RETURN_IF_ERROR(DecodePorts(ctx, *it, &spec));
  }
  if (auto it = json.find("networks"); it != json.end()) {
    BERTH_RETURN_IF_ERROR(DecodeNetworks(ctx, *it, &spec));
  }
  if (auto it = json.find("disks"); it != json.end()) {
    BERTH_RETURN_IF_ERROR(DecodeDisks(ctx, *it, &spec));
  }
  if (auto it = json.find("restart"); it != json.end()) {
    BERTH_RETURN_IF_ERROR(DecodeRestart(ctx, *it, &spec.restart));
  }
  if (auto it = json.find("devices"); it != json.end()) {
    BERTH_RETURN_IF_ERROR(DecodeDevices(ctx, *it, &spec));
  }

  switch (spec.kind) {
    case WorkloadKind::kProcess:
      if (spec.command.empty()) return ctx.Error("command", "is required for kind process");
      if (!spec.image.empty()) return ctx.Error("image", "does not apply to kind process");
      if (!spec.networks.empty()) {
        return ctx.Error("networks", "do not apply to kind process (use a container or a vm)");
      }
      if (!spec.disks.empty()) {
        return ctx.Error("disks", "do not apply to kind process (use a container or a vm)");
      }
      break;
    case WorkloadKind::kContainer:
      if (spec.image.empty()) return ctx.Error("image", "is required for kind container");
      if (!spec.user.empty()) {
        return ctx.Error("user",
                         "applies only to kind process (a container runs as its image's "
                         "user, inside its own namespaces)");
      }
      for (size_t i = 0; i < spec.disks.size(); ++i) {
        if (spec.disks[i].mount.empty()) {
          return ctx.Error(Cat("disks[", i, "].mount"),
                           "is required for kind container (where the disk appears, like /data)");
        }
      }
      // A container with ports shares its host's network (runc cannot map a port there); on
      // Berth networks it has an address of its own, reached through port forwards.
      for (size_t i = 0; source == SpecSource::kClient && i < spec.ports.size(); ++i) {
        const PortMapping& p = spec.ports[i];
        if (!spec.networks.empty()) {
          return ctx.Error(Cat("ports[", i, "]"),
                           "do not apply to a container on Berth networks (it listens on its "
                           "own address; reach it from the host with `berth portfwd add`)");
        }
        if (p.guest_port != p.host_port) {
          return ctx.Error(Cat("ports[", i, "].guest"),
                           Cat("must equal host (", p.host_port,
                               ") for kind container: a "
                               "container with ports shares its host's network and listens on "
                               "the host port itself, got ",
                               p.guest_port));
        }
      }
      break;
    case WorkloadKind::kVm:
      if (spec.image.empty()) return ctx.Error("image", "is required for kind vm");
      if (!spec.user.empty()) return ctx.Error("user", "applies only to kind process");
      if (spec.resources.memory.value() == 0) {
        return ctx.Error("resources.memory", "is required for kind vm (like 256Mi)");
      }
      if (!spec.devices.empty()) {
        return ctx.Error("devices",
                         "do not apply to kind vm (devices of a class reach processes and "
                         "containers; a VM gets GPUs with resources.gpu)");
      }
      for (size_t i = 0; i < spec.disks.size(); ++i) {
        if (!spec.disks[i].mount.empty()) {
          return ctx.Error(Cat("disks[", i, "].mount"),
                           "does not apply to kind vm (the guest sees a virtio disk; mount it "
                           "inside)");
        }
      }
      break;
  }
  if (spec.resources.cpu.value() == 0 && spec.kind == WorkloadKind::kVm) {
    spec.resources.cpu = MilliCpu(1000);
  }
  return spec;
}

}  // namespace

absl::StatusOr<WorkloadSpec> DecodeWorkloadSpec(const Json& json) {
  return DecodeSpec(json, SpecSource::kClient);
}

Json EncodeWorkloadSpec(const WorkloadSpec& spec) {
  Json j = Json::object();
  j["name"] = spec.name;
  j["kind"] = std::string(WorkloadKindName(spec.kind));
  if (!spec.command.empty()) j["command"] = spec.command;
  if (!spec.env.empty()) j["env"] = spec.env;
  if (!spec.working_dir.empty()) j["working_dir"] = spec.working_dir;
  if (!spec.user.empty()) j["user"] = spec.user;
  if (!spec.image.empty()) j["image"] = spec.image;
  if (!spec.cmdline.empty()) j["cmdline"] = spec.cmdline;
  Json r = Json::object();
  r["cpu"] = FormatCpu(spec.resources.cpu);
  r["memory"] = FormatMiB(spec.resources.memory.value());
  if (spec.resources.disk.value() > 0) r["disk"] = FormatMiB(spec.resources.disk.value());
  if (spec.gpu.kind != GpuRequest::Kind::kNone) r["gpu"] = EncodeGpu(spec.gpu);
  j["resources"] = r;
  j["tenant"] = spec.tenant;
  j["priority"] = spec.priority;
  j["preemptible"] = spec.preemptible;
  if (!spec.labels.empty()) j["labels"] = spec.labels;
  if (!spec.constraints.empty()) {
    Json cs = Json::array();
    static constexpr std::string_view kOps[] = {"equals", "in", "not_in", "exists"};
    for (const auto& c : spec.constraints) {
      Json cj = {{"label", c.label}, {"op", std::string(kOps[static_cast<int>(c.op)])}};
      if (!c.values.empty()) cj["values"] = c.values;
      cs.push_back(cj);
    }
    j["constraints"] = cs;
  }
  if (!spec.ports.empty()) {
    Json ps = Json::array();
    for (const auto& p : spec.ports) {
      ps.push_back({{"host", p.host_port}, {"guest", p.guest_port}, {"protocol", p.protocol}});
    }
    j["ports"] = ps;
  }
  if (!spec.networks.empty()) {
    Json ns = Json::array();
    for (const auto& n : spec.networks) {
      Json nj = {{"network", n.network}};
      if (!n.address.empty()) nj["address"] = n.address;
      if (!n.security_groups.empty()) nj["security_groups"] = n.security_groups;
      ns.push_back(nj);
    }
    j["networks"] = ns;
  }
  if (!spec.disks.empty()) {
    Json ds = Json::array();
    for (const auto& d : spec.disks) {
      Json dj = {{"disk", d.disk}};
      if (!d.mount.empty()) dj["mount"] = d.mount;
      if (d.read_only) dj["read_only"] = true;
      ds.push_back(dj);
    }
    j["disks"] = ds;
  }
  if (spec.restart != RestartSpec{}) {
    Json r = {{"policy", std::string(RestartPolicyName(spec.restart.policy))},
              {"backoff", absl::FormatDuration(spec.restart.backoff)},
              {"fence", spec.restart.fence}};
    if (spec.restart.max_retries) r["max_retries"] = *spec.restart.max_retries;
    j["restart"] = r;
  }
  if (!spec.devices.empty()) {
    Json ds = Json::array();
    for (const auto& d : spec.devices) ds.push_back({{"class", d.cls}, {"count", d.count}});
    j["devices"] = ds;
  }
  return j;
}

std::string_view RestartPolicyName(RestartPolicy policy) {
  return kRestartNames[static_cast<int>(policy)];
}

Json EncodeTime(absl::Time t) {
  if (t == absl::InfinitePast()) return nullptr;
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

absl::Time DecodeTime(const Json& j) {
  if (!j.is_string()) return absl::InfinitePast();
  absl::Time t;
  std::string err;
  if (!absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", j.get<std::string>(), &t, &err)) {
    return absl::InfinitePast();
  }
  return t;
}

Json EncodeWorkloadStatus(const WorkloadStatus& s) {
  Json j = Json::object();
  j["state"] = std::string(WorkloadStateName(s.state));
  j["desired"] = std::string(DesiredStateName(s.desired));
  j["reason"] = s.reason;
  j["host"] = s.host;
  Json gpus = Json::array();
  for (const auto& g : s.gpus) {
    Json gj = {{"index", g.index}, {"milli", g.milli}};
    if (g.memory_mib > 0) gj["memory_mib"] = g.memory_mib;
    if (!g.mig_profile.empty()) {
      gj["mig_profile"] = g.mig_profile;
      gj["mig_start_slice"] = g.mig_start_slice;
    }
    if (!g.device_id.empty()) gj["device_id"] = g.device_id;
    gpus.push_back(gj);
  }
  j["gpus"] = gpus;
  if (!s.devices.empty()) {
    Json devices = Json::array();
    for (const auto& d : s.devices) devices.push_back({{"class", d.cls}, {"id", d.id}});
    j["devices"] = devices;
  }
  j["exit_code"] = s.exit_code ? Json(*s.exit_code) : Json(nullptr);
  j["oom_killed"] = s.oom_killed;
  j["generation"] = s.generation;
  if (!s.explanation.empty()) j["explanation"] = s.explanation;
  if (s.restarts > 0) j["restarts"] = s.restarts;
  if (s.retry_at != absl::InfinitePast()) j["retry_at"] = EncodeTime(s.retry_at);
  j["started_at"] = EncodeTime(s.started_at);
  j["finished_at"] = EncodeTime(s.finished_at);
  return j;
}

absl::StatusOr<WorkloadStatus> DecodeWorkloadStatus(const Json& j) {
  JsonContext ctx{"workload status", ""};
  if (!j.is_object()) return ctx.Error("status", "must be an object");
  WorkloadStatus s;
  auto state = ParseWorkloadState(j.value("state", "pending"));
  if (!state) return ctx.Error("state", Cat("is not a workload state: ", j.value("state", "")));
  s.state = *state;
  auto desired = ParseDesiredState(j.value("desired", "running"));
  if (!desired) return ctx.Error("desired", "is not a desired state");
  s.desired = *desired;
  s.reason = j.value("reason", "");
  s.host = j.value("host", "");
  if (auto it = j.find("gpus"); it != j.end() && it->is_array()) {
    for (const Json& g : *it) {
      GpuAssignment a;
      a.index = g.value("index", 0);
      a.milli = g.value("milli", int64_t{0});
      a.memory_mib = g.value("memory_mib", int64_t{0});
      a.mig_profile = g.value("mig_profile", "");
      a.mig_start_slice = g.value("mig_start_slice", -1);
      a.device_id = g.value("device_id", "");
      s.gpus.push_back(a);
    }
  }
  if (auto it = j.find("devices"); it != j.end() && it->is_array()) {
    for (const Json& d : *it) {
      if (!d.is_object()) continue;
      s.devices.push_back({.cls = d.value("class", ""), .id = d.value("id", "")});
    }
  }
  if (auto it = j.find("exit_code"); it != j.end() && it->is_number_integer()) {
    s.exit_code = it->get<int>();
  }
  s.oom_killed = j.value("oom_killed", false);
  s.generation = j.value("generation", int64_t{0});
  s.explanation = j.value("explanation", "");
  if (auto it = j.find("restarts"); it != j.end() && it->is_number_integer()) {
    s.restarts = it->get<int>();
  }
  if (auto it = j.find("retry_at"); it != j.end()) s.retry_at = DecodeTime(*it);
  if (auto it = j.find("started_at"); it != j.end()) s.started_at = DecodeTime(*it);
  if (auto it = j.find("finished_at"); it != j.end()) s.finished_at = DecodeTime(*it);
  return s;
}

Json EncodeWorkload(const Workload& w) {
  Json j = Json::object();
  j["name"] = w.spec.name;
  j["kind"] = std::string(WorkloadKindName(w.spec.kind));
  j["spec"] = EncodeWorkloadSpec(w.spec);
  j["status"] = EncodeWorkloadStatus(w.status);
  j["revision"] = w.revision;
  j["created_at"] = EncodeTime(w.created_at);
  j["updated_at"] = EncodeTime(w.updated_at);
  return j;
}

absl::StatusOr<Workload> DecodeWorkload(const Json& j) {
  Workload w;
  if (!j.is_object() || !j.contains("spec")) {
    return absl::InvalidArgumentError("workload: stored object lacks spec");
  }
  BERTH_ASSIGN_OR_RETURN(w.spec, DecodeSpec(j["spec"], SpecSource::kStored));
  if (j.contains("status")) {
    BERTH_ASSIGN_OR_RETURN(w.status, DecodeWorkloadStatus(j["status"]));
  }
  w.revision = j.value("revision", int64_t{0});
  if (j.contains("created_at")) w.created_at = DecodeTime(j["created_at"]);
  if (j.contains("updated_at")) w.updated_at = DecodeTime(j["updated_at"]);
  return w;
}

}  // namespace berth::core
