#include "agent/cdi_specs.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/body_parser.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::agent {

namespace fs = std::filesystem;
using core::Cat;

std::vector<std::string> DefaultCdiDirs() { return {"/etc/cdi", "/var/run/cdi"}; }

namespace {

absl::StatusOr<std::vector<core::Json>> ReadSpecFile(const fs::path& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return absl::NotFoundError(ec.message());
  if (size > kMaxCdiSpecBytes) {
    return absl::InvalidArgumentError(
        Cat("is ", size, " bytes; a CDI spec may have at most ", kMaxCdiSpecBytes));
  }
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  const core::JsonContext ctx{"CDI spec", path.string()};
  if (path.extension() == ".json") {
    BERTH_ASSIGN_OR_RETURN(core::Json doc, api::ParseBody(ss.str(), ctx));
    return std::vector<core::Json>{std::move(doc)};
  }
  return api::ParseYamlDocuments(ss.str(), ctx);
}

}  // namespace

CdiSpecs LoadCdiSpecs(const std::vector<std::string>& dirs) {
  CdiSpecs out;
  for (const std::string& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string ext = entry.path().extension().string();
      if ((ext == ".json" || ext == ".yaml" || ext == ".yml") && entry.is_regular_file(ec)) {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    if (files.size() > kMaxCdiSpecFiles) {
      out.problems.push_back(
          Cat(dir, ": holds ", files.size(), " spec files; read the first ", kMaxCdiSpecFiles));
      files.resize(kMaxCdiSpecFiles);
    }
    for (const fs::path& file : files) {
      auto docs = ReadSpecFile(file);
      if (!docs.ok()) {
        out.problems.push_back(Cat(file.string(), ": ", docs.status().message()));
        continue;
      }
      if (docs->size() != 1) {
        out.problems.push_back(
            Cat(file.string(), ": holds ", docs->size(), " documents; a CDI spec is one"));
        continue;
      }
      auto spec = runtime::DecodeCdiSpec(docs->front(), file.string());
      if (!spec.ok()) {
        out.problems.push_back(std::string(spec.status().message()));
        continue;
      }
      out.registry.Add(std::move(*spec));
      out.files.push_back(file.string());
    }
  }
  return out;
}

std::vector<core::Device> CdiClassDevices(const runtime::CdiRegistry& registry) {
  std::vector<core::Device> out;
  for (const std::string& qualified : registry.Devices()) {
    core::Device d;
    if (!runtime::SplitCdiName(qualified, &d.cls, &d.id).ok()) continue;
    if (d.cls == kNvidiaGpuKind || d.id == "all") continue;
    absl::StatusOr<runtime::CdiEdits> edits = registry.Resolve({qualified});
    if (!edits.ok()) continue;
    for (const runtime::CdiDeviceNode& n : edits->device_nodes) {
      const std::string& host = n.host_path.empty() ? n.path : n.host_path;
      struct stat st {};
      if (stat(host.c_str(), &st) != 0) {
        d.health = Cat("device node ", host, ": ", std::strerror(errno));
      } else if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
        d.health = Cat("device node ", host, " is not a device");
      }
      if (!d.health.empty()) {
        d.healthy = false;
        break;
      }
    }
    out.push_back(std::move(d));
    if (out.size() >= core::kMaxHostDevices) break;
  }
  return out;
}

std::string CdiNameForGpu(const runtime::CdiRegistry& registry, const core::GpuAssignment& gpu,
                          std::string_view device_id) {
  std::string by_id = Cat(kNvidiaGpuKind, "=", device_id);
  if (!device_id.empty() && registry.Has(by_id)) return by_id;
  if (gpu.mig_profile.empty()) {
    std::string by_index = Cat(kNvidiaGpuKind, "=", gpu.index);
    if (registry.Has(by_index)) return by_index;
  }
  return "";
}

}  // namespace berth::agent
