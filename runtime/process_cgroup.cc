#include "runtime/process_cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/strings.h"

namespace berth::runtime {
namespace {

using core::Cat;

// The v1 hierarchies a task joins; memory first, as it holds the OOM count and the process list.
constexpr std::string_view kV1Controllers[] = {"memory", "cpu", "pids"};

constexpr int64_t kCpuPeriodUs = 100000;

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Cgroup files take one write(2) per value; an ofstream could split or buffer it past the error.
absl::Status WriteValue(const std::string& path, std::string_view value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(Cat("opening ", path, ": ", strerror(errno)));
  ssize_t n = write(fd, value.data(), value.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    return absl::InternalError(
        Cat("writing \"", value, "\" to ", path, ": ", n < 0 ? strerror(err) : "short write"));
  }
  return absl::OkStatus();
}

// mkdir -p for cgroup directories; the kernel populates each one's control files.
absl::Status MakeDirs(const std::string& base, const std::string& path) {
  std::string dir = base;
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) {
      dir += "/" + path.substr(start, end - start);
      if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        return absl::InternalError(Cat("creating cgroup ", dir, ": ", strerror(errno)));
      }
    }
    start = end + 1;
  }
  return absl::OkStatus();
}

// Parent directories of `path` within the hierarchy, outermost first, root included ("").
std::vector<std::string> Ancestors(const std::string& path) {
  std::vector<std::string> out = {""};
  for (size_t at = path.find('/', 1); at != std::string::npos; at = path.find('/', at + 1)) {
    out.push_back(path.substr(0, at));
  }
  return out;
}

}  // namespace

std::string_view CgroupModeName(CgroupMode mode) {
  switch (mode) {
    case CgroupMode::kV1:
      return "v1";
    case CgroupMode::kV2:
      return "v2";
    case CgroupMode::kNone:
      break;
  }
  return "none";
}

CgroupMode ParseCgroupMode(std::string_view text) {
  if (text == "v1") return CgroupMode::kV1;
  if (text == "v2") return CgroupMode::kV2;
  return CgroupMode::kNone;
}

CgroupMode DetectCgroupMode(const std::string& root) {
  const std::string v1_memory = root + "/memory";
  if (Exists(v1_memory + "/cgroup.procs") && Exists(v1_memory + "/memory.limit_in_bytes")) {
    return access(v1_memory.c_str(), W_OK) == 0 ? CgroupMode::kV1 : CgroupMode::kNone;
  }
  std::string controllers = ReadSmallFile(root + "/cgroup.controllers");
  if (controllers.find("memory") != std::string::npos && access(root.c_str(), W_OK) == 0) {
    return CgroupMode::kV2;
  }
  return CgroupMode::kNone;
}

TaskCgroup::TaskCgroup(std::string root, CgroupMode mode, std::string path)
    : root_(std::move(root)), mode_(mode), path_(std::move(path)) {}

std::vector<std::string> TaskCgroup::Dirs() const {
  std::vector<std::string> dirs;
  if (mode_ == CgroupMode::kV2) {
    dirs.push_back(root_ + path_);
  } else if (mode_ == CgroupMode::kV1) {
    for (std::string_view c : kV1Controllers) {
      // A controller that is not mounted (pids on old kernels) is simply not used.
      if (Exists(Cat(root_, "/", c))) dirs.push_back(Cat(root_, "/", c, path_));
    }
  }
  return dirs;
}

std::string TaskCgroup::MemoryDir() const {
  return mode_ == CgroupMode::kV2 ? root_ + path_ : Cat(root_, "/memory", path_);
}

absl::StatusOr<TaskCgroup> TaskCgroup::Create(std::string root, CgroupMode mode, std::string path,
                                              const CgroupLimits& limits) {
  if (mode == CgroupMode::kNone) return absl::FailedPreconditionError("no cgroup hierarchy");
  if (path.empty() || path.front() != '/' || path.find("..") != std::string::npos) {
    return absl::InvalidArgumentError(Cat("cgroup path \"", path, "\" must be absolute"));
  }
  TaskCgroup cg(std::move(root), mode, std::move(path));
  if (Exists(cg.MemoryDir())) {
    // Left by a task of the same id that ended while no agent ran; start clean.
    if (absl::Status s = cg.Destroy(); !s.ok()) return s;
  }
  if (mode == CgroupMode::kV2) {
    // Each ancestor must hand the controllers down; "cpu" and "pids" may be missing (threaded
    // or restricted hierarchies), "memory" may not.
    for (const std::string& dir : Ancestors(cg.path_)) {
      if (absl::Status s = MakeDirs(cg.root_, dir); !s.ok()) return s;
      const std::string control = cg.root_ + dir + "/cgroup.subtree_control";
      for (std::string_view c : {"+memory", "+cpu", "+pids"}) {
        absl::Status s = WriteValue(control, c);
        if (!s.ok() && c == "+memory") return s;
      }
    }
  }
  for (const std::string& dir : cg.Dirs()) {
    if (absl::Status s = MakeDirs("", dir); !s.ok()) return s;
  }
  auto fail = [&cg](absl::Status s) {
    if (absl::Status d = cg.Destroy(0); !d.ok()) {
      return absl::Status(s.code(), Cat(s.message(), "; removing the cgroup: ", d.message()));
    }
    return s;
  };
  const std::string mem = cg.MemoryDir();
  if (mode == CgroupMode::kV1) {
    const std::string cpu = Cat(cg.root_, "/cpu", cg.path_);
    const std::string pids = Cat(cg.root_, "/pids", cg.path_);
    if (limits.memory_bytes > 0) {
      std::string v = std::to_string(limits.memory_bytes);
      if (absl::Status s = WriteValue(mem + "/memory.limit_in_bytes", v); !s.ok()) return fail(s);
      // memory+swap: only where swap accounting is on; it must follow limit_in_bytes.
      if (Exists(mem + "/memory.memsw.limit_in_bytes")) {
        if (absl::Status s = WriteValue(mem + "/memory.memsw.limit_in_bytes", v); !s.ok()) {
          return fail(s);
        }
      }
    }
    if (limits.cpu_millis > 0) {
      if (!Exists(cpu)) return fail(absl::InternalError("the v1 cpu controller is not mounted"));
      absl::Status s = WriteValue(cpu + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUs));
      if (s.ok()) {
        s = WriteValue(cpu + "/cpu.cfs_quota_us",
                       std::to_string(limits.cpu_millis * kCpuPeriodUs / 1000));
      }
      if (!s.ok()) return fail(s);
    }
    if (limits.pids > 0 && Exists(pids)) {
      if (absl::Status s = WriteValue(pids + "/pids.max", std::to_string(limits.pids)); !s.ok()) {
        return fail(s);
      }
    }
  } else {
    if (limits.memory_bytes > 0) {
      absl::Status s = WriteValue(mem + "/memory.max", std::to_string(limits.memory_bytes));
      if (s.ok() && Exists(mem + "/memory.swap.max")) s = WriteValue(mem + "/memory.swap.max", "0");
      if (!s.ok()) return fail(s);
    }
    if (limits.cpu_millis > 0) {
      absl::Status s = WriteValue(mem + "/cpu.max",
                                  Cat(limits.cpu_millis * kCpuPeriodUs / 1000, " ", kCpuPeriodUs));
      if (!s.ok()) return fail(s);
    }
    if (limits.pids > 0 && Exists(mem + "/pids.max")) {
      if (absl::Status s = WriteValue(mem + "/pids.max", std::to_string(limits.pids)); !s.ok()) {
        return fail(s);
      }
    }
  }
  return cg;
}

std::vector<std::string> TaskCgroup::ProcsFiles() const {
  std::vector<std::string> files;
  for (const std::string& dir : Dirs()) files.push_back(dir + "/cgroup.procs");
  return files;
}

int64_t TaskCgroup::OomKills() const {
  const std::string dir = MemoryDir();
  std::string text =
      ReadSmallFile(dir + (mode_ == CgroupMode::kV2 ? "/memory.events" : "/memory.oom_control"));
  size_t at = text.find("oom_kill ");
  return at == std::string::npos ? 0 : std::atoll(text.c_str() + at + 9);
}

std::vector<pid_t> TaskCgroup::Pids() const {
  std::vector<pid_t> pids;
  std::istringstream in(ReadSmallFile(MemoryDir() + "/cgroup.procs"));
  for (pid_t p; in >> p;) pids.push_back(p);
  return pids;
}

int64_t TaskCgroup::MemoryLimit() const {
  std::string text = ReadSmallFile(
      MemoryDir() + (mode_ == CgroupMode::kV2 ? "/memory.max" : "/memory.limit_in_bytes"));
  if (text.empty() || text.starts_with("max")) return -1;
  int64_t v = std::atoll(text.c_str());
  // v1 reports "unlimited" as the largest page-aligned value.
  return v >= (int64_t{1} << 62) ? -1 : v;
}

bool TaskCgroup::RemoveIfEmpty() const {
  bool gone = true;
  for (const std::string& dir : Dirs()) {
    if (rmdir(dir.c_str()) != 0 && errno != ENOENT) gone = false;
  }
  return gone;
}

absl::Status TaskCgroup::Destroy(int wait_ms) const {
  if (mode_ == CgroupMode::kNone) return absl::OkStatus();
  const absl::Time deadline = absl::Now() + absl::Milliseconds(wait_ms);
  std::vector<std::string> dirs = Dirs();
  while (true) {
    std::vector<pid_t> left = Pids();
    for (pid_t p : left) kill(p, SIGKILL);
    bool all_gone = true;
    int last_error = 0;
    // Innermost is the leaf itself; parents are shared and stay.
    for (const std::string& dir : dirs) {
      if (rmdir(dir.c_str()) != 0 && errno != ENOENT) {
        all_gone = false;
        last_error = errno;
      }
    }
    if (all_gone) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(Cat("removing cgroup ", path_, ": ", strerror(last_error), " (",
                                        left.size(), " processes left)"));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

}  // namespace berth::runtime
