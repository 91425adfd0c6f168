#include "agent/inventory.h"

#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "api/body_parser.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::agent {

using core::Cat;
using core::Json;

absl::StatusOr<AgentConfig> ParseAgentConfig(const Json& j) {
  AgentConfig c;
  core::JsonContext ctx{"agent config", ""};
  if (j.is_null()) return c;
  BERTH_RETURN_IF_ERROR(core::CheckObject(
      ctx, j, "", {"name", "labels", "cpu", "memory", "disk", "gpus", "vm_accel"}));
  c.name = j.value("name", "");
  if (auto it = j.find("vm_accel"); it != j.end()) {
    if (!it->is_string() || (*it != "auto" && *it != "kvm" && *it != "tcg")) {
      return ctx.Error("vm_accel", Cat("must be auto, kvm or tcg, got ", it->dump()));
    }
    c.vm_accel = it->get<std::string>();
  }
  Json inv = Json::object();
  inv["cpu"] = j.contains("cpu") ? j["cpu"] : Json("0");
  inv["memory"] = j.contains("memory") ? j["memory"] : Json("0");
  if (j.contains("disk")) inv["disk"] = j["disk"];
  if (j.contains("gpus")) inv["gpus"] = j["gpus"];
  if (j.contains("labels")) inv["labels"] = j["labels"];
  BERTH_ASSIGN_OR_RETURN(c.declared, core::DecodeHostInventory(c.name, inv));
  return c;
}

absl::StatusOr<AgentConfig> LoadAgentConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(Cat("agent config ", path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  auto docs = api::ParseYamlDocuments(ss.str());
  if (!docs.ok())
    return absl::InvalidArgumentError(Cat("agent config ", path, ": ", docs.status().message()));
  if (docs->empty()) return AgentConfig{};
  return ParseAgentConfig(docs->front());
}

absl::StatusOr<std::vector<core::GpuDevice>> ParseNvidiaSmi(std::string_view csv) {
  std::vector<core::GpuDevice> gpus;
  for (absl::string_view line : absl::StrSplit(core::AbslView(csv), '\n', absl::SkipWhitespace())) {
    std::vector<std::string> f;
    for (absl::string_view part : absl::StrSplit(line, ',')) {
      f.emplace_back(absl::StripAsciiWhitespace(part));
    }
    if (f.size() < 4) {
      return absl::InvalidArgumentError(
          Cat("nvidia-smi: unexpected line \"", std::string(line), "\""));
    }
    core::GpuDevice d;
    if (!absl::SimpleAtoi(f[0], &d.index)) {
      return absl::InvalidArgumentError(Cat("nvidia-smi: bad index \"", f[0], "\""));
    }
    d.uuid = f[1];
    d.model = f[2];
    std::replace(d.model.begin(), d.model.end(), ' ', '-');
    if (d.model.rfind("NVIDIA-", 0) == 0) d.model = d.model.substr(7);
    int64_t mib = 0;
    if (!absl::SimpleAtoi(f[3], &mib)) {
      return absl::InvalidArgumentError(Cat("nvidia-smi: bad memory \"", f[3], "\""));
    }
    d.memory_mib = mib;
    if (f.size() > 4) d.pci_address = f[4];
    gpus.push_back(d);
  }
  return gpus;
}

namespace {

int64_t OnlineCpus() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? n : 1;
}

int64_t MemTotalMiB() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemTotal:") return kb / 1024;
  }
  return 0;
}

int64_t DiskMiB(const std::string& dir) {
  struct statvfs st {};
  if (statvfs(dir.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize) / (1 << 20);
}

std::optional<std::string> RunNvidiaSmi() {
  if (access("/usr/bin/nvidia-smi", X_OK) != 0 && access("/usr/local/bin/nvidia-smi", X_OK) != 0) {
    return std::nullopt;
  }
  FILE* p = popen(
      "nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id "
      "--format=csv,noheader,nounits 2>/dev/null",
      "r");
  if (!p) return std::nullopt;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  if (pclose(p) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::string LocalHostName() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  std::string name;
  for (char c : std::string(buf)) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    name.push_back((std::isalnum(static_cast<unsigned char>(l)) || l == '-' || l == '.') ? l : '-');
  }
  while (!name.empty() && (name.back() == '-' || name.back() == '.')) name.pop_back();
  while (!name.empty() && (name.front() == '-' || name.front() == '.')) name.erase(0, 1);
  return name.empty() ? "localhost" : name;
}

absl::StatusOr<core::HostInventory> DetectInventory(const AgentConfig& config,
                                                    const std::string& data_dir) {
  core::HostInventory inv = config.declared;
  if (inv.capacity.cpu.value() == 0) inv.capacity.cpu = core::MilliCpu(OnlineCpus() * 1000);
  if (inv.capacity.memory.value() == 0) inv.capacity.memory = core::MemoryMiB(MemTotalMiB());
  if (inv.capacity.disk.value() == 0) inv.capacity.disk = core::DiskMiB(DiskMiB(data_dir));
  if (auto smi = RunNvidiaSmi()) {
    BERTH_ASSIGN_OR_RETURN(std::vector<core::GpuDevice> gpus, ParseNvidiaSmi(*smi));
    if (!gpus.empty()) inv.gpus = std::move(gpus);
  }
  struct utsname u {};
  if (uname(&u) == 0) inv.os = Cat(u.sysname, " ", u.release);
  return inv;
}

}  // namespace berth::agent
