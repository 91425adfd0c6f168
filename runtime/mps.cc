#include "runtime/mps.h"

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>

#include "core/status.h"
#include "core/strings.h"
#include "nlohmann/json.hpp"
#include "runtime/host/file.h"

namespace berth::runtime {

namespace fs = std::filesystem;
using core::Cat;
using nlohmann::json;

namespace {

// A GPU id as a directory name: the ids Berth hands out are letters, digits and '-'; anything
// else is replaced so an odd id never leaves the root.
std::string DirName(std::string_view id) {
  std::string out;
  for (char c : id)
    out.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_');
  return out.empty() ? "_" : out;
}

// Whether anyone holds the GPU of directory `dir` (a missing holders/ means no one does).
bool HasHolders(const std::string& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir + "/holders", ec);
  return !ec && it != fs::directory_iterator();
}

}  // namespace

MpsDaemons::MpsDaemons(MpsOptions options) : options_(std::move(options)) {}

std::string MpsDaemons::GpuDir(std::string_view device_id) const {
  return Cat(options_.root_dir, "/", DirName(device_id));
}

absl::Status MpsDaemons::Available() const {
  if (options_.control_binary.find('/') != std::string::npos &&
      access(options_.control_binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        Cat(options_.control_binary, " is not executable: GPU shares run without an MPS daemon"));
  }
  const char* path = getenv("PATH");
  auto found = host::ResolveExecutable(options_.control_binary,
                                       path ? path : "/usr/local/bin:/usr/bin:/bin");
  if (!found.ok()) {
    return absl::FailedPreconditionError(
        Cat(options_.control_binary, " not found: GPU shares run without an MPS daemon"));
  }
  return absl::OkStatus();
}

std::vector<std::string> MpsDaemons::Gpus() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(options_.root_dir, ec)) {
    if (e.is_directory(ec)) out.push_back(e.path().filename().string());
  }
  return out;
}

bool MpsDaemons::DaemonRunning(const std::string& device_id) {
  auto text = host::ReadFile(GpuDir(device_id) + "/daemon.json");
  if (!text.ok()) return false;
  json j = json::parse(*text, nullptr, false);
  if (!j.is_object()) return false;
  return host::IsRunning({.pid = j.value("pid", 0), .start_ticks = j.value("start", uint64_t{0})});
}

absl::Status MpsDaemons::EnsureRunning(const std::string& device_id) {
  if (DaemonRunning(device_id)) return absl::OkStatus();
  const std::string dir = GpuDir(device_id);
  std::error_code ec;
  fs::create_directories(dir + "/pipe", ec);
  fs::create_directories(dir + "/log", ec);
  if (ec)
    return absl::InternalError(Cat("MPS daemon for ", device_id, ": ", dir, ": ", ec.message()));
  const char* path = getenv("PATH");
  const std::string search = path ? path : "/usr/local/bin:/usr/bin:/bin";
  auto binary = host::ResolveExecutable(options_.control_binary, search);
  if (!binary.ok() || access(binary->c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        Cat("MPS daemon for ", device_id, ": ", options_.control_binary, " not found"));
  }
  host::SupervisedSpawnSpec spec;
  spec.spawn.executable = *binary;
  spec.spawn.argv = {options_.control_binary, "-f"};
  spec.spawn.env = {Cat("PATH=", search), Cat("CUDA_VISIBLE_DEVICES=", device_id),
                    Cat("CUDA_MPS_PIPE_DIRECTORY=", dir, "/pipe"),
                    Cat("CUDA_MPS_LOG_DIRECTORY=", dir, "/log")};
  spec.stdout_path = dir + "/log/daemon.out";
  spec.stderr_path = dir + "/log/daemon.out";
  spec.status_path = dir + "/exit.status";
  fs::remove(spec.status_path, ec);
  auto spawned = executor().SpawnSupervised(spec);
  if (!spawned.ok()) {
    return absl::FailedPreconditionError(
        Cat("MPS daemon for ", device_id, ": ", spawned.status().message()));
  }
  json state = {{"pid", spawned->workload.pid},
                {"start", spawned->workload.start_ticks},
                {"supervisor_pid", spawned->supervisor.pid},
                {"supervisor_start", spawned->supervisor.start_ticks}};
  return host::WriteFileAtomically(dir + "/daemon.json", state.dump());
}

absl::StatusOr<std::string> MpsDaemons::Acquire(std::string_view device_id,
                                                std::string_view holder) {
  absl::MutexLock lock(&mu_);
  const std::string id(device_id);
  const std::string holders = GpuDir(id) + "/holders";
  std::error_code ec;
  fs::create_directories(holders, ec);
  if (ec) return absl::InternalError(Cat("MPS daemon for ", id, ": ", holders, ": ", ec.message()));
  if (absl::Status s = EnsureRunning(id); !s.ok()) {
    // Nobody holds a GPU whose daemon never started.
    if (!HasHolders(GpuDir(id))) fs::remove_all(GpuDir(id), ec);
    return s;
  }
  BERTH_RETURN_IF_ERROR(host::WriteFileAtomically(Cat(holders, "/", DirName(holder)), ""));
  return GpuDir(id) + "/pipe";
}

absl::Status MpsDaemons::Release(std::string_view holder) {
  absl::MutexLock lock(&mu_);
  absl::Status first;
  for (const std::string& gpu : Gpus()) {
    const std::string dir = Cat(options_.root_dir, "/", gpu);
    std::error_code ec;
    if (!fs::remove(Cat(dir, "/holders/", DirName(holder)), ec)) continue;
    if (HasHolders(dir)) continue;
    absl::Status s = StopDaemon(gpu);
    if (s.ok()) {
      fs::remove_all(dir, ec);
    } else if (first.ok()) {
      first = s;
    }
  }
  return first;
}

absl::Status MpsDaemons::StopDaemon(const std::string& gpu) {
  const std::string dir = Cat(options_.root_dir, "/", gpu);
  auto text = host::ReadFile(dir + "/daemon.json");
  if (!text.ok()) return absl::OkStatus();
  json j = json::parse(*text, nullptr, false);
  if (!j.is_object()) return absl::OkStatus();
  const host::ProcessIdentity daemon{.pid = j.value("pid", 0),
                                     .start_ticks = j.value("start", uint64_t{0})};
  const host::ProcessIdentity supervisor{.pid = j.value("supervisor_pid", 0),
                                         .start_ticks = j.value("supervisor_start", uint64_t{0})};
  // The supervisor writes the daemon's exit status into the GPU's directory as it goes: wait
  // for it, so the directory can be removed after.
  auto supervisor_gone = [&] { return host::WaitForProcessExit(supervisor, absl::Seconds(10)); };
  if (!host::IsRunning(daemon)) {
    supervisor_gone();
    return absl::OkStatus();
  }
  // `quit` on the control pipe lets the daemon end its clients' sessions cleanly.
  const char* path = getenv("PATH");
  auto quit = executor().Run(
      {options_.control_binary},
      {.timeout = absl::Seconds(30),
       .stdin_data = "quit\n",
       .env = std::vector<std::string>{Cat("PATH=", path ? path : "/usr/bin:/bin"),
                                       Cat("CUDA_MPS_PIPE_DIRECTORY=", dir, "/pipe"),
                                       Cat("CUDA_MPS_LOG_DIRECTORY=", dir, "/log")}});
  if (quit.ok() && quit->ok() && host::WaitForProcessExit(daemon, options_.stop_grace)) {
    supervisor_gone();
    return absl::OkStatus();
  }
  absl::Status killed = host::SignalProcessGroup(daemon, SIGKILL);
  if (!killed.ok() && !absl::IsNotFound(killed)) {
    return absl::InternalError(Cat("MPS daemon for ", gpu, ": ", killed.message()));
  }
  if (!host::WaitForProcessExit(daemon, absl::Seconds(30))) {
    return absl::InternalError(
        Cat("MPS daemon for ", gpu, " (pid ", daemon.pid, ") outlived SIGKILL"));
  }
  supervisor_gone();
  return absl::OkStatus();
}

std::vector<std::string> MpsDaemons::Check() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> restarted;
  for (const std::string& gpu : Gpus()) {
    std::error_code ec;
    const std::string dir = Cat(options_.root_dir, "/", gpu);
    if (!HasHolders(dir) || DaemonRunning(gpu)) continue;
    if (EnsureRunning(gpu).ok()) restarted.push_back(gpu);
  }
  return restarted;
}

std::vector<std::string> MpsDaemons::Running() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const std::string& gpu : Gpus()) {
    if (DaemonRunning(gpu)) out.push_back(gpu);
  }
  return out;
}

}  // namespace berth::runtime
