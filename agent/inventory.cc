#include "agent/inventory.h"

#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "api/body_parser.h"
#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"
#include "runtime/host/file.h"

namespace berth::agent {

using core::Cat;
using core::Json;

absl::StatusOr<AgentConfig> ParseAgentConfig(const Json& j) {
  AgentConfig c;
  core::JsonContext ctx{"agent config", ""};
  if (j.is_null()) return c;
  BERTH_RETURN_IF_ERROR(
      core::CheckObject(ctx, j, "",
                        {"name", "labels", "cpu", "memory", "disk", "gpus", "vm_accel", "cdi_dirs",
                         "nvidia_smi", "mps_control", "xid_log"}));
  c.name = j.value("name", "");
  if (auto it = j.find("cdi_dirs"); it != j.end()) {
    if (!it->is_array() || it->size() > 16) {
      return ctx.Error("cdi_dirs", "must be a list of at most 16 absolute directories");
    }
    c.cdi_dirs.clear();
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& d = (*it)[i];
      if (!d.is_string() || d.get_ref<const std::string&>().empty() ||
          d.get_ref<const std::string&>()[0] != '/') {
        return ctx.Error(Cat("cdi_dirs[", i, "]"),
                         Cat("must be an absolute directory, got ", d.dump()));
      }
      c.cdi_dirs.push_back(d.get<std::string>());
    }
  }
  if (auto it = j.find("nvidia_smi"); it != j.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty() ||
        it->get_ref<const std::string&>()[0] != '/') {
      return ctx.Error("nvidia_smi", Cat("must be an absolute path, got ", it->dump()));
    }
    c.nvidia_smi = it->get<std::string>();
  }
  if (auto it = j.find("mps_control"); it != j.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty() ||
        it->get_ref<const std::string&>()[0] != '/') {
      return ctx.Error("mps_control", Cat("must be an absolute path, got ", it->dump()));
    }
    c.mps_control = it->get<std::string>();
  }
  if (auto it = j.find("xid_log"); it != j.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty() ||
        it->get_ref<const std::string&>()[0] != '/') {
      return ctx.Error("xid_log", Cat("must be an absolute path, got ", it->dump()));
    }
    c.xid_log = it->get<std::string>();
  }
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

std::string NormalizePciAddress(std::string_view address) {
  std::string a = absl::AsciiStrToLower(core::AbslView(address));
  // nvidia-smi writes the domain with 8 digits ("00000000:3B:00.0"); sysfs and QEMU use 4.
  if (a.size() == 16 && a[8] == ':' && a.compare(0, 4, "0000") == 0) a = a.substr(4);
  return a;
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
    if (f.size() > 4) d.pci_address = NormalizePciAddress(f[4]);
    if (f.size() > 5) d.mig_enabled = f[5] == "Enabled";
    gpus.push_back(d);
  }
  return gpus;
}

void NameDeclaredGpus(std::string_view host, std::vector<core::GpuDevice>* gpus) {
  for (core::GpuDevice& d : *gpus) {
    if (d.uuid.empty()) d.uuid = core::DeclaredGpuUuid(host, d.index);
  }
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

}  // namespace

std::string FindNvidiaSmi(const std::string& configured) {
  if (!configured.empty()) {
    if (access(configured.c_str(), X_OK) == 0) return configured;
    core::LogWarn("nvidia_smi %s is not an executable file; GPUs come from the config", configured);
    return "";
  }
  const char* path = getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/usr/local/bin", ':')) {
    if (dir.empty()) continue;
    std::string candidate = Cat(std::string(dir), "/nvidia-smi");
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

absl::StatusOr<NvidiaSmiReport> QueryNvidiaSmi(runtime::host::Executor& executor,
                                               const std::string& binary,
                                               const NvidiaSmiOptions& options) {
  NvidiaSmiReport r;
  auto run = [&](std::vector<std::string> args) -> absl::StatusOr<std::string> {
    args.insert(args.begin(), binary);
    BERTH_ASSIGN_OR_RETURN(runtime::host::RunResult r,
                           runtime::host::RunTool(executor, args, {.timeout = options.timeout}));
    if (r.ok()) return r.out;
    // nvidia-smi says what went wrong on standard output.
    std::string said(absl::StripAsciiWhitespace(r.err.empty() ? r.out : r.err));
    if (said.size() > 400) said = said.substr(0, 400) + "...";
    return absl::UnavailableError(Cat("`", runtime::host::FormatArgv(args), "` ",
                                      runtime::host::DescribeExit(r), said.empty() ? "" : ": ",
                                      said));
  };
  BERTH_ASSIGN_OR_RETURN(
      std::string csv,
      run({"--query-gpu=index,uuid,name,memory.total,pci.bus_id,mig.mode.current,driver_version",
           "--format=csv,noheader,nounits"}));
  BERTH_ASSIGN_OR_RETURN(r.gpus, ParseNvidiaSmi(csv));
  for (absl::string_view line : absl::StrSplit(csv, '\n', absl::SkipWhitespace())) {
    std::vector<std::string> f = absl::StrSplit(line, ',');
    if (f.size() > 6) r.driver_version = std::string(absl::StripAsciiWhitespace(f[6]));
    break;
  }
  bool any_mig = false;
  for (const auto& g : r.gpus) any_mig |= g.mig_enabled;
  if (any_mig) {
    BERTH_ASSIGN_OR_RETURN(std::string list, run({"-L"}));
    BERTH_RETURN_IF_ERROR(ParseNvidiaSmiList(list, &r.gpus));
    // Where each instance starts; without it instances are matched by their order.
    auto lgi = run({"mig", "-lgi"});
    if (lgi.ok()) {
      ApplyMigPlacements(*lgi, &r.gpus);
    } else {
      r.warnings.push_back(Cat("nvidia-smi mig -lgi: ", lgi.status().message()));
    }
  }
  if (r.gpus.size() > 1) {
    auto topo = run({"topo", "-m"});
    if (topo.ok()) {
      ApplyNvidiaTopology(*topo, &r.gpus);
    } else {
      r.warnings.push_back(Cat("nvidia-smi topo -m: ", topo.status().message()));
    }
  }
  // The error counters: a GPU can answer the device query and still be unfit for work.
  if (auto q = run({"-q"}); q.ok()) {
    ApplyNvidiaSmiErrors(*q, &r.gpus);
  } else {
    r.warnings.push_back(Cat("nvidia-smi -q: ", q.status().message()));
  }
  return r;
}

std::map<std::string, std::string> ParseNvidiaSmiErrors(std::string_view text) {
  // The report nests "Name : value" fields in sections by indentation under one header per GPU
  // ("GPU 00000000:07:00.0", at the left margin):
  //     ECC Errors
  //         Volatile
  //             DRAM Uncorrectable    : 0        (older GPUs: Double Bit / Total)
  //     Retired Pages
  //         Pending Page Blacklist    : No
  //     Remapped Rows
  //         Pending                   : No
  //         Remapping Failure Occurred: No
  struct Faults {
    int64_t uncorrectable = 0;
    bool pages_pending = false;
    bool rows_pending = false;
    bool remap_failed = false;
  };
  std::map<std::string, Faults> by_gpu;
  Faults* gpu = nullptr;
  std::vector<std::pair<size_t, std::string>> sections;  // (indentation, name) from the GPU down
  for (absl::string_view raw : absl::StrSplit(core::AbslView(text), '\n', absl::SkipWhitespace())) {
    const size_t indent = raw.find_first_not_of(" \t");
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (indent == 0) {
      gpu = nullptr;
      sections.clear();
      if (absl::StartsWith(line, "GPU ")) {
        gpu = &by_gpu[NormalizePciAddress(std::string(absl::StripAsciiWhitespace(line.substr(4))))];
      }
      continue;
    }
    if (gpu == nullptr) continue;
    while (!sections.empty() && sections.back().first >= indent) sections.pop_back();
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) {
      sections.emplace_back(indent, std::string(line));
      continue;
    }
    const absl::string_view key = absl::StripAsciiWhitespace(line.substr(0, colon));
    const absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
    auto in = [&](std::initializer_list<std::string_view> path) {
      if (sections.size() < path.size()) return false;
      size_t i = 0;
      for (std::string_view name : path) {
        if (sections[i++].second != name) return false;
      }
      return true;
    };
    if (in({"ECC Errors", "Volatile"})) {
      const bool double_bit_total =
          sections.size() == 3 && sections[2].second == "Double Bit" && key == "Total";
      const bool uncorrectable = sections.size() == 2 && absl::StrContains(key, "Uncorrectable");
      int64_t n = 0;
      if ((double_bit_total || uncorrectable) && absl::SimpleAtoi(value, &n) && n > 0) {
        gpu->uncorrectable += n;
      }
    } else if (sections.size() == 1 && sections[0].second == "Retired Pages") {
      if (absl::StartsWith(key, "Pending") && value == "Yes") gpu->pages_pending = true;
    } else if (sections.size() == 1 && sections[0].second == "Remapped Rows") {
      if (key == "Pending" && value == "Yes") gpu->rows_pending = true;
      if (key == "Remapping Failure Occurred" && value == "Yes") gpu->remap_failed = true;
    }
  }
  std::map<std::string, std::string> out;
  for (const auto& [pci, f] : by_gpu) {
    std::vector<std::string> seen;
    if (f.uncorrectable > 0) {
      seen.push_back(Cat(f.uncorrectable, " uncorrectable ECC error",
                         f.uncorrectable == 1 ? "" : "s", " since the driver loaded"));
    }
    if (f.pages_pending) seen.push_back("memory pages pending retirement");
    if (f.rows_pending) seen.push_back("memory rows pending remapping");
    if (f.remap_failed) seen.push_back("a memory row remapping failed");
    if (seen.empty()) continue;
    std::string why = Cat("nvidia-smi -q: ", absl::StrJoin(seen, ", "));
    why += f.remap_failed ? " (replace the GPU)" : " (reset the GPU: nvidia-smi -r)";
    out[pci] = std::move(why);
  }
  return out;
}

void ApplyNvidiaSmiErrors(std::string_view text, std::vector<core::GpuDevice>* gpus) {
  const std::map<std::string, std::string> faults = ParseNvidiaSmiErrors(text);
  for (core::GpuDevice& g : *gpus) {
    auto it = faults.find(NormalizePciAddress(g.pci_address));
    if (g.pci_address.empty() || it == faults.end()) continue;
    g.healthy = false;
    g.health = it->second;
  }
}

absl::Status ParseNvidiaSmiList(std::string_view text, std::vector<core::GpuDevice>* gpus) {
  core::GpuDevice* current = nullptr;
  for (absl::string_view raw : absl::StrSplit(core::AbslView(text), '\n', absl::SkipWhitespace())) {
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    size_t uuid_at = line.find("(UUID: ");
    if (uuid_at == absl::string_view::npos || line.back() != ')') continue;
    std::string uuid(line.substr(uuid_at + 7, line.size() - uuid_at - 8));
    if (absl::StartsWith(line, "GPU ")) {
      int index = -1;
      absl::string_view num = line.substr(4, line.find(':') - 4);
      if (!absl::SimpleAtoi(num, &index)) {
        return absl::InvalidArgumentError(
            Cat("nvidia-smi -L: unexpected line \"", std::string(line), "\""));
      }
      current = nullptr;
      for (auto& g : *gpus) {
        if (g.index == index) current = &g;
      }
      if (current != nullptr && current->uuid.empty()) current->uuid = uuid;
      continue;
    }
    if (absl::StartsWith(line, "MIG ") && current != nullptr) {
      // "MIG 3g.40gb     Device  0: (UUID: MIG-...)"
      std::vector<absl::string_view> words =
          absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
      if (words.size() < 2 || !core::IsKnownMigProfile(std::string(words[1]))) {
        return absl::InvalidArgumentError(
            Cat("nvidia-smi -L: unknown MIG profile in \"", std::string(line), "\""));
      }
      current->mig_instances.push_back({.profile = std::string(words[1]), .uuid = uuid});
    }
  }
  return absl::OkStatus();
}

void ApplyMigPlacements(std::string_view text, std::vector<core::GpuDevice>* gpus) {
  // Rows "|   0  MIG 3g.40gb          9        1          4:4     |": GPU, profile, profile id,
  // instance id, start:size. nvidia-smi -L lists a GPU's MIG devices by instance id, so the
  // n-th of them (by id) is the n-th row of that GPU sorted by instance id.
  std::map<int, std::map<int, std::pair<std::string, int>>> rows;  // gpu -> id -> (profile, start)
  for (absl::string_view raw : absl::StrSplit(core::AbslView(text), '\n', absl::SkipWhitespace())) {
    std::vector<absl::string_view> w =
        absl::StrSplit(raw, absl::ByAnyChar(" \t|"), absl::SkipEmpty());
    if (w.size() < 6 || w[1] != "MIG") continue;
    int gpu = 0, id = 0, start = 0;
    size_t colon = w[5].find(':');
    if (!absl::SimpleAtoi(w[0], &gpu) || !absl::SimpleAtoi(w[4], &id) ||
        colon == absl::string_view::npos || !absl::SimpleAtoi(w[5].substr(0, colon), &start)) {
      continue;
    }
    rows[gpu][id] = {std::string(w[2]), start};
  }
  for (auto& g : *gpus) {
    auto it = rows.find(g.index);
    if (it == rows.end() || it->second.size() != g.mig_instances.size()) continue;
    size_t n = 0;
    bool same = true;
    for (const auto& [id, row] : it->second) same &= row.first == g.mig_instances[n++].profile;
    if (!same) continue;
    n = 0;
    for (const auto& [id, row] : it->second) g.mig_instances[n++].start_slice = row.second;
  }
}

namespace {
// "GPU0", "GPU12": a GPU's column in `nvidia-smi topo -m` (not "GPU" of "GPU NUMA ID").
bool IsGpuColumn(const std::string& cell) {
  return cell.size() > 3 && absl::StartsWith(cell, "GPU") &&
         std::all_of(cell.begin() + 3, cell.end(), [](char c) { return std::isdigit(c) != 0; });
}
}  // namespace

void ApplyNvidiaTopology(std::string_view text, std::vector<core::GpuDevice>* gpus) {
  // A matrix: a header of "GPU0 GPU1 ... CPU Affinity NUMA Affinity ...", then one row per GPU
  // whose cells say how it reaches each other GPU: "X" itself, "NV<n>" over n NVLinks, "PIX",
  // "PXB", "PHB", "NODE", "SYS" over PCIe and the CPUs.
  std::vector<std::vector<std::string>> rows;
  size_t columns = 0;
  int numa_column = -1;
  for (absl::string_view raw : absl::StrSplit(core::AbslView(text), '\n', absl::SkipWhitespace())) {
    std::vector<std::string> cells =
        absl::StrSplit(absl::StripAsciiWhitespace(raw), absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (cells.empty()) continue;
    if (columns == 0 && IsGpuColumn(cells[0])) {
      for (const std::string& c : cells) columns += IsGpuColumn(c) ? 1 : 0;
      // Rows start with their GPU's name, which the header lacks, and hold "CPU Affinity" in one
      // cell where the header has two words: the NUMA cell sits at the header's index.
      for (size_t i = 0; i + 1 < cells.size(); ++i) {
        if (cells[i] == "NUMA" && cells[i + 1] == "Affinity") numa_column = static_cast<int>(i);
      }
      continue;
    }
    if (columns > 0 && absl::StartsWith(cells[0], "GPU") && cells.size() > columns) {
      rows.push_back(cells);
      if (rows.size() == columns) break;
    }
  }
  if (rows.size() != columns || columns != gpus->size()) return;
  std::vector<int> island(columns);
  for (size_t i = 0; i < columns; ++i) island[i] = static_cast<int>(i);
  std::function<int(int)> root = [&](int i) {
    return island[i] == i ? i : island[i] = root(island[i]);
  };
  for (size_t i = 0; i < columns; ++i) {
    for (size_t j = 0; j < columns; ++j) {
      if (absl::StartsWith(rows[i][j + 1], "NV")) island[root(i)] = root(j);
    }
  }
  std::map<int, int> numbered;
  for (size_t i = 0; i < columns; ++i) {
    auto [it, fresh] = numbered.emplace(root(i), static_cast<int>(numbered.size()));
    (*gpus)[i].nvlink_island = it->second;
    int numa = 0;
    if (numa_column >= 0 && rows[i].size() > static_cast<size_t>(numa_column) &&
        absl::SimpleAtoi(rows[i][numa_column], &numa)) {
      (*gpus)[i].numa_node = numa;
    }
  }
}

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

std::string LastKnownGpusPath(const std::string& data_dir) { return Cat(data_dir, "/gpus.json"); }

namespace {
// The GPUs a successful query listed last (empty when none was kept or it cannot be read).
std::vector<core::GpuDevice> ReadLastKnownGpus(const std::string& path) {
  auto text = runtime::host::ReadFile(path);
  if (!text.ok()) return {};
  Json j = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  auto inv = j.is_discarded() ? absl::InvalidArgumentError("not JSON")
                              : core::DecodeHostInventory("last known GPUs", j);
  if (!inv.ok()) {
    core::LogWarn("GPUs: %s: %s; ignored", path, inv.status().message());
    return {};
  }
  return inv->gpus;
}
}  // namespace

absl::StatusOr<core::HostInventory> DetectInventory(const AgentConfig& config,
                                                    const std::string& data_dir) {
  core::HostInventory inv = config.declared;
  if (inv.capacity.cpu.value() == 0) inv.capacity.cpu = core::MilliCpu(OnlineCpus() * 1000);
  if (inv.capacity.memory.value() == 0) inv.capacity.memory = core::MemoryMiB(MemTotalMiB());
  if (inv.capacity.disk.value() == 0) inv.capacity.disk = core::DiskMiB(DiskMiB(data_dir));
  if (std::string smi = FindNvidiaSmi(config.nvidia_smi); !smi.empty()) {
    auto report = QueryNvidiaSmi(runtime::host::RealExecutor(), smi);
    const std::string last_known = LastKnownGpusPath(data_dir);
    if (!report.ok()) {
      // A driver that cannot answer offers no working GPUs: declared ones would not work either.
      // The GPUs it listed last are shown unhealthy with the reason, so the host's page says
      // what is wrong with which device, and they are healthy again once it answers.
      const std::string why = std::string(report.status().message()).substr(0, 512);
      inv.gpus = ReadLastKnownGpus(last_known);
      for (core::GpuDevice& g : inv.gpus) {
        g.healthy = false;
        g.health = why;
      }
      inv.fingerprint["gpu_error"] = why;
      core::LogWarn("GPUs: %s; this host offers none", report.status().message());
    } else {
      if (!report->gpus.empty()) {
        inv.gpus = std::move(report->gpus);
        core::HostInventory listed;
        listed.gpus = inv.gpus;
        absl::Status kept = runtime::host::WriteFileAtomically(
            last_known, core::EncodeHostInventory(listed).dump(), {.mode = 0600});
        core::ReportError("agent.inventory", "keep the GPUs nvidia-smi listed", kept);
      }
      if (!report->driver_version.empty()) inv.fingerprint["gpu_driver"] = report->driver_version;
      for (const std::string& w : report->warnings) core::LogWarn("GPUs: %s", w);
    }
  }
  NameDeclaredGpus(config.name, &inv.gpus);
  struct utsname u {};
  if (uname(&u) == 0) inv.os = Cat(u.sysname, " ", u.release);
  return inv;
}

}  // namespace berth::agent
