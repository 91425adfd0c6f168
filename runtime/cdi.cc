#include "runtime/cdi.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <set>

#include "core/device.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::runtime {
namespace {

using core::Cat;
using nlohmann::json;

constexpr size_t kMaxDevices = 4096;
constexpr size_t kMaxEdits = 4096;  // entries of each list of one containerEdits
constexpr size_t kMaxString = 4096;

// Decodes fields of one document, naming the source and the path of every problem.
class Decoder {
 public:
  explicit Decoder(std::string_view source) : source_(source) {}

  absl::Status Error(std::string_view path, std::string_view msg) const {
    return absl::InvalidArgumentError(Cat("CDI spec \"", source_, "\": ", path, " ", msg));
  }

  absl::Status Fields(const json& j, std::string_view path,
                      std::initializer_list<std::string_view> known) const {
    if (!j.is_object()) return Error(path.empty() ? "document" : path, "must be a map");
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
        return Error(Join(path, it.key()), "is not a field this version of Berth applies");
      }
    }
    return absl::OkStatus();
  }

  absl::Status String(const json& j, std::string_view path, std::string_view key, bool required,
                      std::string* out) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      return required ? Error(Join(path, key), "is required") : absl::OkStatus();
    }
    if (!it->is_string() || it->get_ref<const std::string&>().size() > kMaxString) {
      return Error(Join(path, key), Cat("must be a string of at most ", kMaxString, " bytes"));
    }
    *out = it->get<std::string>();
    if (required && out->empty()) return Error(Join(path, key), "must not be empty");
    return absl::OkStatus();
  }

  absl::Status Int(const json& j, std::string_view path, std::string_view key, int64_t lo,
                   int64_t hi, int64_t* out) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_number_integer() || it->get<int64_t>() < lo || it->get<int64_t>() > hi) {
      return Error(Join(path, key), Cat("must be an integer in ", lo, "..", hi));
    }
    *out = it->get<int64_t>();
    return absl::OkStatus();
  }

  absl::Status Strings(const json& j, std::string_view path, std::string_view key,
                       std::vector<std::string>* out) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_array() || it->size() > kMaxEdits) {
      return Error(Join(path, key), Cat("must be a list of at most ", kMaxEdits, " strings"));
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const json& v = (*it)[i];
      if (!v.is_string() || v.get_ref<const std::string&>().size() > kMaxString) {
        return Error(Cat(Join(path, key), "[", i, "]"), "must be a string");
      }
      out->push_back(v.get<std::string>());
    }
    return absl::OkStatus();
  }

  // The list at j[key] (empty when absent), bounded.
  absl::StatusOr<std::vector<const json*>> List(const json& j, std::string_view path,
                                                std::string_view key, size_t max) const {
    std::vector<const json*> out;
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return out;
    if (!it->is_array() || it->size() > max) {
      return Error(Join(path, key), Cat("must be a list of at most ", max, " entries"));
    }
    for (const json& v : *it) out.push_back(&v);
    return out;
  }

  absl::StatusOr<CdiEdits> Edits(const json& j, const std::string& path) const {
    CdiEdits e;
    BERTH_RETURN_IF_ERROR(Fields(j, path, {"env", "deviceNodes", "mounts", "hooks"}));
    BERTH_RETURN_IF_ERROR(Strings(j, path, "env", &e.env));
    for (size_t i = 0; i < e.env.size(); ++i) {
      if (e.env[i].find('=') == std::string::npos || e.env[i][0] == '=') {
        return Error(Cat(Join(path, "env"), "[", i, "]"),
                     Cat("must read KEY=value, got \"", e.env[i], "\""));
      }
    }
    BERTH_ASSIGN_OR_RETURN(auto nodes, List(j, path, "deviceNodes", kMaxEdits));
    for (size_t i = 0; i < nodes.size(); ++i) {
      const json& n = *nodes[i];
      std::string p = Cat(Join(path, "deviceNodes"), "[", i, "]");
      BERTH_RETURN_IF_ERROR(Fields(
          n, p,
          {"path", "hostPath", "type", "major", "minor", "fileMode", "permissions", "uid", "gid"}));
      CdiDeviceNode d;
      BERTH_RETURN_IF_ERROR(String(n, p, "path", true, &d.path));
      BERTH_RETURN_IF_ERROR(String(n, p, "hostPath", false, &d.host_path));
      BERTH_RETURN_IF_ERROR(String(n, p, "type", false, &d.type));
      BERTH_RETURN_IF_ERROR(Int(n, p, "major", 0, (1 << 12) - 1, &d.major));
      BERTH_RETURN_IF_ERROR(Int(n, p, "minor", 0, (1 << 20) - 1, &d.minor));
      BERTH_RETURN_IF_ERROR(Int(n, p, "fileMode", 0, 07777, &d.file_mode));
      BERTH_RETURN_IF_ERROR(Int(n, p, "uid", 0, UINT32_MAX, &d.uid));
      BERTH_RETURN_IF_ERROR(Int(n, p, "gid", 0, UINT32_MAX, &d.gid));
      BERTH_RETURN_IF_ERROR(String(n, p, "permissions", false, &d.permissions));
      if (!Absolute(d.path)) return Error(p + ".path", "must be an absolute path without \"..\"");
      if (!d.host_path.empty() && !Absolute(d.host_path)) {
        return Error(p + ".hostPath", "must be an absolute path without \"..\"");
      }
      if (!d.type.empty() && d.type != "c" && d.type != "b" && d.type != "u") {
        return Error(p + ".type", Cat("must be c, b or u, got \"", d.type, "\""));
      }
      if (d.type == "u") d.type = "c";
      if (d.permissions.find_first_not_of("rwm") != std::string::npos) {
        return Error(p + ".permissions",
                     Cat("must be letters of \"rwm\", got \"", d.permissions, "\""));
      }
      e.device_nodes.push_back(std::move(d));
    }
    BERTH_ASSIGN_OR_RETURN(auto mounts, List(j, path, "mounts", kMaxEdits));
    for (size_t i = 0; i < mounts.size(); ++i) {
      const json& m = *mounts[i];
      std::string p = Cat(Join(path, "mounts"), "[", i, "]");
      BERTH_RETURN_IF_ERROR(Fields(m, p, {"hostPath", "containerPath", "type", "options"}));
      CdiMount mount;
      BERTH_RETURN_IF_ERROR(String(m, p, "hostPath", true, &mount.host_path));
      BERTH_RETURN_IF_ERROR(String(m, p, "containerPath", true, &mount.container_path));
      BERTH_RETURN_IF_ERROR(String(m, p, "type", false, &mount.type));
      BERTH_RETURN_IF_ERROR(Strings(m, p, "options", &mount.options));
      if (!Absolute(mount.container_path)) {
        return Error(p + ".containerPath", "must be an absolute path without \"..\"");
      }
      e.mounts.push_back(std::move(mount));
    }
    BERTH_ASSIGN_OR_RETURN(auto hooks, List(j, path, "hooks", kMaxEdits));
    for (size_t i = 0; i < hooks.size(); ++i) {
      const json& h = *hooks[i];
      std::string p = Cat(Join(path, "hooks"), "[", i, "]");
      BERTH_RETURN_IF_ERROR(Fields(h, p, {"hookName", "path", "args", "env", "timeout"}));
      CdiHook hook;
      BERTH_RETURN_IF_ERROR(String(h, p, "hookName", true, &hook.hook_name));
      BERTH_RETURN_IF_ERROR(String(h, p, "path", true, &hook.path));
      BERTH_RETURN_IF_ERROR(Strings(h, p, "args", &hook.args));
      BERTH_RETURN_IF_ERROR(Strings(h, p, "env", &hook.env));
      BERTH_RETURN_IF_ERROR(Int(h, p, "timeout", 1, 3600, &hook.timeout));
      if (!IsCdiHookName(hook.hook_name)) {
        return Error(p + ".hookName",
                     Cat("is not an OCI hook point, got \"", hook.hook_name, "\""));
      }
      if (!Absolute(hook.path)) return Error(p + ".path", "must be an absolute path");
      e.hooks.push_back(std::move(hook));
    }
    return e;
  }

 private:
  static std::string Join(std::string_view path, std::string_view key) {
    return path.empty() ? std::string(key) : Cat(path, ".", key);
  }
  static bool Absolute(const std::string& p) {
    return !p.empty() && p[0] == '/' && p.find("/../") == std::string::npos &&
           !(p.size() >= 3 && p.compare(p.size() - 3, 3, "/..") == 0);
  }

  std::string_view source_;
};

bool ValidDeviceName(std::string_view s) { return core::CheckDeviceId(s).ok(); }

absl::Status CheckKind(std::string_view kind) {
  if (core::CheckDeviceClass(kind).ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      Cat("must read vendor.com/class (like nvidia.com/gpu), got \"", kind, "\""));
}

}  // namespace

void CdiEdits::Append(const CdiEdits& more) {
  env.insert(env.end(), more.env.begin(), more.env.end());
  device_nodes.insert(device_nodes.end(), more.device_nodes.begin(), more.device_nodes.end());
  mounts.insert(mounts.end(), more.mounts.begin(), more.mounts.end());
  hooks.insert(hooks.end(), more.hooks.begin(), more.hooks.end());
}

bool IsCdiHookName(std::string_view name) {
  return name == "prestart" || name == "createRuntime" || name == "createContainer" ||
         name == "startContainer" || name == "poststart" || name == "poststop";
}

absl::StatusOr<CdiSpec> DecodeCdiSpec(const json& doc, std::string_view source) {
  Decoder d(source);
  BERTH_RETURN_IF_ERROR(
      d.Fields(doc, "", {"cdiVersion", "kind", "annotations", "devices", "containerEdits"}));
  CdiSpec spec;
  spec.source = std::string(source);
  BERTH_RETURN_IF_ERROR(d.String(doc, "", "cdiVersion", true, &spec.version));
  BERTH_RETURN_IF_ERROR(d.String(doc, "", "kind", true, &spec.kind));
  if (absl::Status s = CheckKind(spec.kind); !s.ok())
    return d.Error("kind", std::string(s.message()));
  if (auto it = doc.find("containerEdits"); it != doc.end() && !it->is_null()) {
    BERTH_ASSIGN_OR_RETURN(spec.edits, d.Edits(*it, "containerEdits"));
  }
  BERTH_ASSIGN_OR_RETURN(auto devices, d.List(doc, "", "devices", kMaxDevices));
  if (devices.empty()) return d.Error("devices", "must name at least one device");
  std::set<std::string> names;
  for (size_t i = 0; i < devices.size(); ++i) {
    const json& dj = *devices[i];
    std::string p = Cat("devices[", i, "]");
    BERTH_RETURN_IF_ERROR(d.Fields(dj, p, {"name", "annotations", "containerEdits"}));
    CdiDevice dev;
    BERTH_RETURN_IF_ERROR(d.String(dj, p, "name", true, &dev.name));
    if (!ValidDeviceName(dev.name)) {
      return d.Error(p + ".name", Cat("must be letters, digits and - . _ : (starting with a "
                                      "letter or digit), got \"",
                                      dev.name, "\""));
    }
    if (!names.insert(dev.name).second) {
      return d.Error(p + ".name", Cat("names \"", dev.name, "\" twice"));
    }
    auto edits = dj.find("containerEdits");
    if (edits == dj.end() || edits->is_null()) return d.Error(p + ".containerEdits", "is required");
    BERTH_ASSIGN_OR_RETURN(dev.edits, d.Edits(*edits, p + ".containerEdits"));
    spec.devices.push_back(std::move(dev));
  }
  return spec;
}

absl::Status SplitCdiName(std::string_view qualified, std::string* kind, std::string* name) {
  size_t eq = qualified.find('=');
  if (eq == std::string_view::npos || !CheckKind(qualified.substr(0, eq)).ok() ||
      !ValidDeviceName(qualified.substr(eq + 1))) {
    return absl::InvalidArgumentError(
        Cat("must read vendor.com/class=name (like nvidia.com/gpu=0), got \"", qualified, "\""));
  }
  *kind = std::string(qualified.substr(0, eq));
  *name = std::string(qualified.substr(eq + 1));
  return absl::OkStatus();
}

void CdiRegistry::Add(CdiSpec spec) {
  const size_t index = specs_.size();
  for (size_t i = 0; i < spec.devices.size(); ++i) {
    devices_[Cat(spec.kind, "=", spec.devices[i].name)] = {index, i};
  }
  specs_.push_back(std::move(spec));
}

bool CdiRegistry::Has(std::string_view qualified) const {
  return devices_.find(qualified) != devices_.end();
}

std::vector<std::string> CdiRegistry::Devices(std::string_view kind) const {
  std::vector<std::string> out;
  for (const auto& [name, at] : devices_) {
    if (kind.empty() || specs_[at.first].kind == kind) out.push_back(name);
  }
  return out;
}

std::string CdiRegistry::SourceOf(std::string_view qualified) const {
  auto it = devices_.find(qualified);
  return it == devices_.end() ? "" : specs_[it->second.first].source;
}

absl::StatusOr<CdiEdits> CdiRegistry::Resolve(const std::vector<std::string>& names) const {
  CdiEdits out;
  std::set<size_t> specs_applied;
  for (const std::string& name : names) {
    auto it = devices_.find(name);
    if (it == devices_.end()) {
      return absl::NotFoundError(Cat("CDI device \"", name, "\" is in no spec on this host"));
    }
    const CdiSpec& spec = specs_[it->second.first];
    if (specs_applied.insert(it->second.first).second) out.Append(spec.edits);
    out.Append(spec.devices[it->second.second].edits);
  }
  return out;
}

absl::Status CompleteDeviceNodes(CdiEdits* edits) {
  for (CdiDeviceNode& n : edits->device_nodes) {
    if (!n.type.empty() && n.major >= 0 && n.minor >= 0 && n.file_mode >= 0) continue;
    const std::string& host = n.host_path.empty() ? n.path : n.host_path;
    struct stat st {};
    if (stat(host.c_str(), &st) != 0) {
      // A spec that says everything needs no host file; one that leaves gaps does.
      if (!n.type.empty() && n.major >= 0 && n.minor >= 0) {
        n.file_mode = 0666;
        continue;
      }
      return absl::FailedPreconditionError(
          Cat("CDI device node ", n.path, ": host file ", host, ": ", std::strerror(errno)));
    }
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
      return absl::FailedPreconditionError(
          Cat("CDI device node ", n.path, ": host file ", host, " is not a device"));
    }
    if (n.type.empty()) n.type = S_ISCHR(st.st_mode) ? "c" : "b";
    if (n.major < 0) n.major = major(st.st_rdev);
    if (n.minor < 0) n.minor = minor(st.st_rdev);
    if (n.file_mode < 0) n.file_mode = st.st_mode & 07777;
  }
  return absl::OkStatus();
}

}  // namespace berth::runtime
