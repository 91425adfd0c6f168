#include "runtime/storage/qemu_storage_driver.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "core/log.h"
#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"
#include "nlohmann/json.hpp"
#include "runtime/host/executor.h"
#include "runtime/storage/confined_path.h"
#include "runtime/storage/validation.h"

namespace berth::runtime::storage {
namespace {

namespace fs = std::filesystem;
using core::Cat;
using StepFn = std::function<absl::Status(std::string_view)>;

constexpr int64_t kMiB = 1024 * 1024;

// Runs a host tool (qemu-img, mkfs, sha256sum); its standard output, or an error quoting it.
absl::StatusOr<std::string> RunTool(const std::vector<std::string>& argv,
                                    const host::RunOptions& options = {}) {
  return host::RunOk(host::RealExecutor(), argv, options);
}

std::string VolumesDir(const PoolSpec& s) { return s.directory + "/volumes"; }
std::string TmpDir(const PoolSpec& s) {
  return s.instance.empty() ? s.directory + "/.tmp" : Cat(s.directory, "/.tmp/", s.instance);
}
std::string JournalDir(const PoolSpec& s) {
  return s.instance.empty() ? s.directory + "/.journal"
                            : Cat(s.directory, "/.journal/", s.instance);
}

std::string FinalPath(const PoolSpec& s, std::string_view name, VolumeFormat f) {
  return Cat(VolumesDir(s), "/", name, ".", FormatName(f));
}

int64_t AllocatedBytes(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_blocks) * 512;
}

// Virtual size without starting a process: a raw image is its file size; a qcow2 image stores
// it big-endian at byte 24 of its header.
int64_t VirtualBytes(const std::string& path) {
  if (path.ends_with(".raw")) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
  }
  std::ifstream in(path, std::ios::binary);
  unsigned char header[32] = {};
  in.read(reinterpret_cast<char*>(header), sizeof header);
  if (in.gcount() < 32 || header[0] != 'Q' || header[1] != 'F' || header[2] != 'I') return 0;
  int64_t size = 0;
  for (int i = 24; i < 32; ++i) size = (size << 8) | header[i];
  return size;
}

// The backing file named in a qcow2 header (offset at byte 8, length at byte 16), without
// starting a process; empty for raw images and images without one.
std::string BackingFileOf(const std::string& path) {
  if (!path.ends_with(".qcow2")) return "";
  std::ifstream in(path, std::ios::binary);
  unsigned char h[20] = {};
  in.read(reinterpret_cast<char*>(h), sizeof h);
  if (in.gcount() < 20 || h[0] != 'Q' || h[1] != 'F' || h[2] != 'I') return "";
  uint64_t offset = 0;
  for (int i = 8; i < 16; ++i) offset = (offset << 8) | h[i];
  uint32_t size =
      (uint32_t{h[16]} << 24) | (uint32_t{h[17]} << 16) | (uint32_t{h[18]} << 8) | h[19];
  if (offset == 0 || size == 0 || size > 4096) return "";
  std::string name(size, '\0');
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(name.data(), size);
  return in.gcount() == static_cast<std::streamsize>(size) ? name : "";
}

int64_t CeilMiB(int64_t bytes) { return (bytes + kMiB - 1) / kMiB; }

absl::StatusOr<nlohmann::json> ImageInfo(const std::string& path) {
  BERTH_ASSIGN_OR_RETURN(std::string out,
                         RunTool({"qemu-img", "info", "-U", "--output=json", path}));
  nlohmann::json j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InternalError(Cat("qemu-img info ", path, ": unreadable output"));
  }
  return j;
}

std::vector<SnapshotInfo> SnapshotsOf(const nlohmann::json& info) {
  std::vector<SnapshotInfo> out;
  if (!info.contains("snapshots") || !info["snapshots"].is_array()) return out;
  for (const auto& s : info["snapshots"]) {
    SnapshotInfo si;
    si.name = s.value("name", "");
    si.vm_state_bytes = s.value("vm-state-size", int64_t{0});
    si.created_unix = s.value("date-sec", int64_t{0});
    out.push_back(std::move(si));
  }
  return out;
}

absl::Status MakeSparseFile(const std::string& path, int64_t bytes) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(Cat("create ", path, ": ", std::strerror(errno)));
  int rc = ftruncate(fd, bytes);
  int err = errno;
  if (rc == 0) rc = fsync(fd);
  close(fd);
  if (rc != 0) return absl::InternalError(Cat("truncate ", path, ": ", std::strerror(err)));
  return absl::OkStatus();
}

absl::Status SyncFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(Cat("open ", path, ": ", std::strerror(errno)));
  int rc = fsync(fd);
  close(fd);
  if (rc != 0) return absl::InternalError(Cat("fsync ", path, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

// Parses qemu-img's "-p" output ("    (12.34/100%)\r") into permille and reports changes.
class ProgressParser {
 public:
  explicit ProgressParser(ProgressFn fn) : fn_(std::move(fn)) {}
  void Feed(std::string_view chunk) {
    buffer_.append(chunk);
    size_t end = buffer_.rfind("/100%)");
    if (end == std::string::npos) return;
    size_t open = buffer_.rfind('(', end);
    if (open != std::string::npos) {
      double pct = std::strtod(buffer_.substr(open + 1, end - open - 1).c_str(), nullptr);
      Report(static_cast<int>(pct * 10));
    }
    buffer_.erase(0, end + 6);
  }
  void Report(int permille) {
    permille = std::clamp(permille, 0, 1000);
    if (fn_ && permille != last_) fn_(permille);
    last_ = permille;
  }

 private:
  ProgressFn fn_;
  std::string buffer_;
  int last_ = -1;
};

absl::Status ConvertWithProgress(std::vector<std::string> argv, ProgressFn progress) {
  ProgressParser parser(std::move(progress));
  host::RunOptions opts;
  opts.on_output = [&](std::string_view chunk) { parser.Feed(chunk); };
  parser.Report(0);
  BERTH_RETURN_IF_ERROR(RunTool(argv, opts));
  parser.Report(1000);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Sha256Of(const std::string& path) {
  BERTH_ASSIGN_OR_RETURN(std::string out, RunTool({"sha256sum", "-b", path}));
  size_t sp = out.find(' ');
  if (sp != 64) return absl::InternalError(Cat("sha256sum ", path, ": unreadable output"));
  return out.substr(0, 64);
}

// A qcow2 image whose data lives in another (external) file names that file in its header.
bool HasDataFile(const nlohmann::json& info) {
  auto it = info.find("format-specific");
  if (it == info.end() || !it->is_object()) return false;
  auto data = it->find("data");
  return data != it->end() && data->is_object() && data->contains("data-file");
}

absl::Status BackupExists(std::string_view volume, const std::string& path) {
  return absl::AlreadyExistsError(Cat("backup of volume \"", volume, "\": ", path,
                                      " already exists; a backup never replaces a file"));
}

// A file being written in a directory: anonymous (O_TMPFILE) where the filesystem allows, so
// nothing is left behind by any failure or crash; elsewhere under a hidden temporary name that
// the destructor removes unless Publish linked it. Publish gives it its final name with
// linkat, which fails with EEXIST rather than replace anything.
class PendingFile {
 public:
  static absl::StatusOr<PendingFile> Create(int dirfd, const std::string& leaf) {
    PendingFile f(dirfd, leaf);
    f.fd_ = UniqueFd(openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!f.fd_.valid() && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
      f.temp_ = Cat(".", leaf, ".tmp-", core::NewId());
      f.fd_ = UniqueFd(
          openat(dirfd, f.temp_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!f.fd_.valid()) f.temp_.clear();
    }
    if (!f.fd_.valid()) {
      return absl::InternalError(Cat("create a file beside ", leaf, ": ", std::strerror(errno)));
    }
    return f;
  }
  PendingFile(PendingFile&& other) noexcept
      : dirfd_(other.dirfd_),
        leaf_(std::move(other.leaf_)),
        temp_(std::exchange(other.temp_, std::string())),
        fd_(std::move(other.fd_)) {}
  PendingFile& operator=(PendingFile&&) = delete;
  ~PendingFile() {
    if (!temp_.empty() && unlinkat(dirfd_, temp_.c_str(), 0) != 0 && errno != ENOENT) {
      std::fprintf(stderr, "berth: storage: remove %s: %s\n", temp_.c_str(), std::strerror(errno));
    }
  }

  int fd() const { return fd_.get(); }
  // What the tools open to write or read this very file.
  std::string path() const { return FdPath(fd_.get()); }

  absl::Status Write(const std::string& text) {
    if (pwrite(fd_.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
      return absl::InternalError(Cat("write beside ", leaf_, ": ", std::strerror(errno)));
    }
    return absl::OkStatus();
  }
  absl::Status Sync() {
    if (fsync(fd_.get()) != 0) {
      return absl::InternalError(Cat("fsync beside ", leaf_, ": ", std::strerror(errno)));
    }
    return absl::OkStatus();
  }
  absl::Status Publish() {
    const int rc = temp_.empty() ? linkat(AT_FDCWD, Cat("/proc/self/fd/", fd_.get()).c_str(),
                                          dirfd_, leaf_.c_str(), AT_SYMLINK_FOLLOW)
                                 : linkat(dirfd_, temp_.c_str(), dirfd_, leaf_.c_str(), 0);
    if (rc == 0) return absl::OkStatus();
    if (errno == EEXIST) return absl::AlreadyExistsError(Cat(leaf_, " already exists"));
    return absl::InternalError(Cat("link ", leaf_, ": ", std::strerror(errno)));
  }

 private:
  PendingFile(int dirfd, std::string leaf) : dirfd_(dirfd), leaf_(std::move(leaf)) {}

  int dirfd_;  // borrowed: outlives this object
  std::string leaf_;
  std::string temp_;  // the temporary name, when the filesystem has no O_TMPFILE
  UniqueFd fd_;
};

}  // namespace

// Runs one journaled operation: record, build temporaries, commit, renames, forget the record.
class QemuStorageDriver::Operation {
 public:
  Operation(const QemuStorageDriver& driver, const PoolSpec& pool, std::string op,
            std::string volume)
      : driver_(driver), journal_(JournalDir(pool)), tmp_dir_(TmpDir(pool)) {
    record_.id = core::NewId();
    record_.operation = std::move(op);
    record_.volume = std::move(volume);
  }

  // A temporary path in the pool (same filesystem as the volumes, so renames are atomic),
  // journaled before the caller creates it.
  absl::StatusOr<std::string> Temp(std::string_view suffix) {
    return AddTemp(Cat(tmp_dir_, "/", record_.volume, ".", record_.id, ".", suffix));
  }
  void RenameAtCommit(std::string from, std::string to) {
    record_.renames.emplace_back(std::move(from), std::move(to));
  }

  // Fault-injection point; a failure here leaves things exactly as a crash would.
  absl::Status Step(std::string_view name) {
    if (!driver_.options_.fault_hook) return absl::OkStatus();
    absl::Status s = driver_.options_.fault_hook(name);
    if (!s.ok()) crashed_ = true;
    return s;
  }

  absl::Status Run(const std::function<absl::Status(Operation&)>& build) {
    std::error_code ec;
    fs::create_directories(tmp_dir_, ec);
    if (ec) return absl::InternalError(Cat("mkdir ", tmp_dir_, ": ", ec.message()));
    BERTH_RETURN_IF_ERROR(journal_.Write(record_));
    BERTH_RETURN_IF_ERROR(Step("journal"));
    absl::Status s = build(*this);
    if (!s.ok()) {
      if (!crashed_) {  // roll back now; what is left is rolled back by Recover()
        core::ReportError("storage",
                          Cat("volume ", record_.volume, ": roll back ", record_.operation),
                          journal_.Resolve(record_));
      }
      return s;
    }
    BERTH_RETURN_IF_ERROR(Step("built"));
    record_.committed = true;
    if (s = journal_.Write(record_); !s.ok()) {
      record_.committed = false;
      core::ReportError("storage",
                        Cat("volume ", record_.volume, ": roll back ", record_.operation),
                        journal_.Resolve(record_));
      return s;
    }
    BERTH_RETURN_IF_ERROR(Step("commit"));
    for (const auto& [from, to] : record_.renames) {
      fs::rename(from, to, ec);
      if (ec) return absl::InternalError(Cat("rename ", from, ": ", ec.message()));  // Recover
      BERTH_RETURN_IF_ERROR(Step("rename"));
    }
    return journal_.Remove(record_);
  }

 private:
  absl::StatusOr<std::string> AddTemp(std::string path) {
    record_.temp_paths.push_back(path);
    BERTH_RETURN_IF_ERROR(journal_.Write(record_));
    return path;
  }

  const QemuStorageDriver& driver_;
  Journal journal_;
  std::string tmp_dir_;
  JournalRecord record_;
  bool crashed_ = false;
};

absl::Status QemuStorageDriver::Step(std::string_view step) {
  if (!options_.fault_hook) return absl::OkStatus();
  return options_.fault_hook(step);
}

absl::Status QemuStorageDriver::EnsurePool(const PoolSpec& spec) {
  BERTH_RETURN_IF_ERROR(ValidatePoolSpec(spec));
  std::error_code ec;
  for (const auto& dir : {VolumesDir(spec), TmpDir(spec), JournalDir(spec)}) {
    fs::create_directories(dir, ec);
    if (ec) {
      return core::FieldError("pool", spec.name, "directory",
                              Cat("cannot be created: ", dir, ": ", ec.message()));
    }
  }
  absl::MutexLock lock(&mu_);
  auto& pool = pools_[spec.name];
  if (pool == nullptr) pool = std::make_shared<Pool>();
  absl::MutexLock pool_lock(&pool->mu);
  pool->spec = spec;
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<QemuStorageDriver::Pool>> QemuStorageDriver::FindPool(
    std::string_view name) {
  absl::MutexLock lock(&mu_);
  auto it = pools_.find(name);
  if (it == pools_.end()) return PoolNotFound(name);
  return it->second;
}

absl::StatusOr<std::string> QemuStorageDriver::VolumeFile(const Pool& pool, std::string_view name) {
  for (VolumeFormat f : {VolumeFormat::kQcow2, VolumeFormat::kRaw}) {
    std::string p = FinalPath(pool.spec, name, f);
    if (access(p.c_str(), F_OK) == 0) return p;
  }
  return VolumeNotFound(pool.spec.name, name);
}

absl::StatusOr<PoolStatus> QemuStorageDriver::Account(const Pool& pool) {
  PoolStatus status;
  status.spec = pool.spec;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(VolumesDir(pool.spec), ec)) {
    std::string p = entry.path().string();
    if (!p.ends_with(".qcow2") && !p.ends_with(".raw")) continue;
    ++status.volume_count;
    status.provisioned_mib += CeilMiB(VirtualBytes(p));
    status.allocated_bytes += AllocatedBytes(p);
  }
  if (ec) return absl::InternalError(Cat("pool \"", pool.spec.name, "\": ", ec.message()));
  FinishPoolStatus(status);
  return status;
}

absl::StatusOr<PoolStatus> QemuStorageDriver::GetPool(std::string_view name) {
  BERTH_ASSIGN_OR_RETURN(auto pool, FindPool(name));
  return Account(*pool);
}

absl::Status QemuStorageDriver::Recover() {
  std::vector<std::shared_ptr<Pool>> pools;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [_, p] : pools_) pools.push_back(p);
  }
  for (auto& pool : pools) {
    absl::MutexLock lock(&pool->mu);
    Journal journal(JournalDir(pool->spec));
    BERTH_ASSIGN_OR_RETURN(auto pending, journal.Pending());
    for (const auto& record : pending) BERTH_RETURN_IF_ERROR(journal.Resolve(record));
    // Anything left in .tmp belongs to no journaled operation: a crash before its record was
    // durable, or after the record was removed.
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(TmpDir(pool->spec), ec)) {
      fs::remove(entry.path(), ec);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<VolumeInfo> QemuStorageDriver::Inspect(const Pool& pool, std::string_view name) {
  BERTH_ASSIGN_OR_RETURN(std::string path, VolumeFile(pool, name));
  VolumeInfo v;
  v.pool = pool.spec.name;
  v.name = std::string(name);
  v.path = path;
  v.format = path.ends_with(".raw") ? VolumeFormat::kRaw : VolumeFormat::kQcow2;
  v.allocated_bytes = AllocatedBytes(path);
  if (v.format == VolumeFormat::kRaw) {
    v.size_mib = CeilMiB(VirtualBytes(path));
    return v;
  }
  BERTH_ASSIGN_OR_RETURN(nlohmann::json info, ImageInfo(path));
  v.size_mib = CeilMiB(info.value("virtual-size", int64_t{0}));
  v.backing_file = info.value("full-backing-filename", info.value("backing-filename", ""));
  v.snapshots = SnapshotsOf(info);
  return v;
}

absl::StatusOr<std::vector<VolumeInfo>> QemuStorageDriver::ListVolumes(std::string_view pool_name) {
  BERTH_ASSIGN_OR_RETURN(auto pool, FindPool(pool_name));
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(VolumesDir(pool->spec), ec)) {
    std::string file = entry.path().filename().string();
    size_t dot = file.rfind('.');
    if (dot == std::string::npos) continue;
    std::string ext = file.substr(dot + 1);
    if (ext == "qcow2" || ext == "raw") names.push_back(file.substr(0, dot));
  }
  std::sort(names.begin(), names.end());
  std::vector<VolumeInfo> out;
  for (const auto& n : names) {
    auto v = Inspect(*pool, n);
    if (v.ok()) out.push_back(*std::move(v));  // deleted meanwhile: skip
  }
  return out;
}

absl::StatusOr<VolumeInfo> QemuStorageDriver::GetVolume(std::string_view pool_name,
                                                        std::string_view name) {
  BERTH_ASSIGN_OR_RETURN(auto pool, FindPool(pool_name));
  return Inspect(*pool, name);
}

absl::StatusOr<VolumeInfo> QemuStorageDriver::CreateVolume(const CreateVolumeSpec& spec,
                                                           const CreateOptions& options) {
  BERTH_RETURN_IF_ERROR(ValidateCreateSpec(spec));
  BERTH_ASSIGN_OR_RETURN(auto pool, FindPool(spec.pool));
  absl::MutexLock lock(&pool->mu);
  if (VolumeFile(*pool, spec.name).ok()) return VolumeExists(spec.pool, spec.name);

  int64_t size_mib = spec.size_mib;
  std::string backing_format;
  if (!spec.backing_image.empty()) {
    if (access(spec.backing_image.c_str(), R_OK) != 0) {
      return core::FieldError("volume", spec.name, "backing_image",
                              Cat("cannot be read: ", spec.backing_image));
    }
    BERTH_ASSIGN_OR_RETURN(nlohmann::json info, ImageInfo(spec.backing_image));
    backing_format = info.value("format", "raw");
    int64_t base_mib = CeilMiB(info.value("virtual-size", int64_t{0}));
    if (size_mib == 0) size_mib = base_mib;
    if (size_mib < base_mib) {
      return core::FieldError("volume", spec.name, "size_mib",
                              Cat("must be >= the backing image's ", base_mib, ", got ", size_mib));
    }
  }
  BERTH_ASSIGN_OR_RETURN(PoolStatus status, Account(*pool));
  BERTH_RETURN_IF_ERROR(CheckOvercommit(status, spec.name, size_mib));

  const std::string final_path = FinalPath(pool->spec, spec.name, spec.format);
  const std::string fmt(FormatName(spec.format));
  Operation op(*this, pool->spec, "create", spec.name);
  BERTH_RETURN_IF_ERROR(op.Run([&](Operation& op) -> absl::Status {
    BERTH_ASSIGN_OR_RETURN(std::string tmp, op.Temp(fmt));
    std::string size_arg = Cat(size_mib, "M");
    if (spec.filesystem != Filesystem::kNone) {
      std::string raw = tmp;
      if (spec.format != VolumeFormat::kRaw) {
        BERTH_ASSIGN_OR_RETURN(raw, op.Temp("fs.raw"));
      }
      BERTH_RETURN_IF_ERROR(MakeSparseFile(raw, size_mib * kMiB));
      BERTH_RETURN_IF_ERROR(op.Step("allocated"));
      if (spec.filesystem == Filesystem::kExt4) {
        BERTH_RETURN_IF_ERROR(RunTool(
            {"mkfs.ext4", "-F", "-q", "-E", "lazy_itable_init=1,lazy_journal_init=1", raw}));
      } else {
        BERTH_RETURN_IF_ERROR(RunTool({"mkfs.xfs", "-f", "-q", raw}));
      }
      BERTH_RETURN_IF_ERROR(op.Step("formatted"));
      if (raw != tmp) {
        BERTH_RETURN_IF_ERROR(
            RunTool({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, tmp}));
        BERTH_RETURN_IF_ERROR(op.Step("converted"));
        std::error_code ec;
        fs::remove(raw, ec);
      }
    } else if (!spec.backing_image.empty()) {
      BERTH_RETURN_IF_ERROR(RunTool({"qemu-img", "create", "-q", "-f", "qcow2", "-b",
                                     spec.backing_image, "-F", backing_format, tmp, size_arg}));
    } else if (spec.format == VolumeFormat::kRaw) {
      BERTH_RETURN_IF_ERROR(MakeSparseFile(tmp, size_mib * kMiB));
    } else {
      BERTH_RETURN_IF_ERROR(RunTool({"qemu-img", "create", "-q", "-f", "qcow2", tmp, size_arg}));
    }
    BERTH_RETURN_IF_ERROR(SyncFile(tmp));
    op.RenameAtCommit(tmp, final_path);
    return absl::OkStatus();
  }));
  return Inspect(*pool, spec.name);
}

absl::StatusOr<VolumeInfo> QemuStorageDriver::CloneFromSnapshot(const CloneFromSnapshotSpec& spec,
                                                                const CreateOptions& options) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("volume", spec.name));
  BERTH_RETURN_IF_ERROR(ValidateSnapshotName(spec.source_volume, spec.snapshot));
  BERTH_ASSIGN_OR_RETURN(auto pool, FindPool(spec.pool));
  absl::MutexLock lock(&pool->mu);
  BERTH_ASSIGN_OR_RETURN(VolumeInfo source, Inspect(*pool, spec.source_volume));
  if (source.format != VolumeFormat::kQcow2) return NeedsQcow2(source.name, "snapshots");
  if (std::none_of(source.snapshots.begin(), source.snapshots.end(),
                   [&](const SnapshotInfo& s) { return s.name == spec.snapshot; })) {
    return SnapshotNotFound(source.name, spec.snapshot);
  }
  if (VolumeFile(*pool, spec.name).ok()) return VolumeExists(spec.pool, spec.name);
  BERTH_ASSIGN_OR_RETURN(PoolStatus status, Account(*pool));
  BERTH_RETURN_IF_ERROR(CheckOvercommit(status, spec.name, source.size_mib));

  const std::string fmt(FormatName(spec.format));
  Operation op(*this, pool->spec, "clone", spec.name);
  BERTH_RETURN_IF_ERROR(op.Run([&](Operation& op) -> absl::Status {
    BERTH_ASSIGN_OR_RETURN(std::string tmp, op.Temp(fmt));
    BERTH_RETURN_IF_ERROR(RunTool({"qemu-img", "convert", "-U", "-f", "qcow2", "-O", fmt, "-l",
                                   Cat("snapshot.name=", spec.snapshot), source.path, tmp}));
    BERTH_RETURN_IF_ERROR(op.Step("converted"));
    BERTH_RETURN_IF_ERROR(SyncFile(tmp));
    op.RenameAtCommit(tmp, FinalPath(pool->spec, spec.name, spec.format));
    return absl::OkStatus();
  }));
  return Inspect(*pool, spec.name);
}

absl::StatusOr<VolumeInfo> QemuStorageDriver::ResizeVolume(std::string_view pool_name,
                                                           std::string_view name,
                                                           int64_t new_size_mib,
                                                           const ResizeOptions& options) {
  BERTH_ASSIGN_OR_RETURN(auto pool, FindPool(pool_name));
  absl::MutexLock lock(&pool->mu);
  BERTH_ASSIGN_OR_RETURN(VolumeInfo v, Inspect(*pool, name));
  if (new_size_mib < v.size_mib) return RefuseShrink(name, v.size_mib, new_size_mib);
  if (new_size_mib == v.size_mib) return v;
  BERTH_ASSIGN_OR_RETURN(PoolStatus status, Account(*pool));
  BERTH_RETURN_IF_ERROR(CheckOvercommit(status, name, new_size_mib - v.size_mib));
  // qemu-img grows a raw file by truncation and a qcow2 image by a header update; neither
  // leaves a half state a journal could improve on.
  BERTH_RETURN_IF_ERROR(
      RunTool({"qemu-img", "resize", "-q", "-f", std::string(FormatName(v.format)), v.path,
               Cat(new_size_mib, "M")}));
  return Inspect(*pool, name);
}

absl::Status QemuStorageDriver::CreateSnapshot(std::string_view pool_name, std::string_view volume,
                                               std::string_view snapshot,
                                               const SnapshotOptions& options) {
  BERTH_RETURN_IF_ERROR(ValidateSnapshotName(volume, snapshot));
  BERTH_RETURN_IF_ERROR(RefuseAttached(volume, "snapshot with qemu-img", options.attachment));
  BERTH_ASSIGN_OR_RETURN(auto pool, FindPool(pool_name));
  absl::MutexLock lock(&pool->mu);
  BERTH_ASSIGN_OR_RETURN(VolumeInfo v, Inspect(*pool, volume));
  if (v.format != VolumeFormat::kQcow2) return NeedsQcow2(volume, "snapshots");
  for (const auto& s : v.snapshots) {
    if (s.name == snapshot) {
      return absl::AlreadyExistsError(
          Cat("volume \"", volume, "\": snapshot \"", snapshot, "\" already exists"));
    }
  }
  return RunTool({"qemu-img", "snapshot", "-q", "-c", std::string(snapshot), v.path}).status();
}

absl::StatusOr<std::vector<SnapshotInfo>> QemuStorageDriver::ListSnapshots(
    std::string_view pool_name, std::string_view volume) {
  BERTH_ASSIGN_OR_RETURN(VolumeInfo v, GetVolume(pool_name, volume));
  return v.snapshots;
}

absl::Status QemuStorageDriver::RevertSnapshot(std::string_view pool_name, std::string_view volume,
                                               std::string_view snapshot,
                                               const SnapshotOptions& options) {
  BERTH_RETURN_IF_ERROR(RefuseAttached(volume, "revert", options.attachment));
  BERTH_ASSIGN_OR_RETURN(auto pool, FindPool(pool_name));
  absl::MutexLock lock(&pool->mu);
  BERTH_ASSIGN_OR_RETURN(VolumeInfo v, Inspect(*pool, volume));
  if (v.format != VolumeFormat::kQcow2) return NeedsQcow2(volume, "snapshots");
  if (std::none_of(v.snapshots.begin(), v.snapshots.end(),
                   [&](const SnapshotInfo& s) { return s.name == snapshot; })) {
    return SnapshotNotFound(volume, snapshot);
  }
  return RunTool({"qemu-img", "snapshot", "-q", "-a", std::string(snapshot), v.path}).status();
}

absl::Status QemuStorageDriver::DeleteSnapshot(std::string_view pool_name, std::string_view volume,
                                               std::string_view snapshot,
                                               const SnapshotOptions& options) {
  BERTH_RETURN_IF_ERROR(
      RefuseAttached(volume, "delete a snapshot with qemu-img", options.attachment));
  BERTH_ASSIGN_OR_RETURN(auto pool, FindPool(pool_name));
  absl::MutexLock lock(&pool->mu);
  BERTH_ASSIGN_OR_RETURN(VolumeInfo v, Inspect(*pool, volume));
  if (v.format != VolumeFormat::kQcow2) return NeedsQcow2(volume, "snapshots");
  if (std::none_of(v.snapshots.begin(), v.snapshots.end(),
                   [&](const SnapshotInfo& s) { return s.name == snapshot; })) {
    return SnapshotNotFound(volume, snapshot);
  }
  return RunTool({"qemu-img", "snapshot", "-q", "-d", std::string(snapshot), v.path}).status();
}

absl::StatusOr<BackupInfo> QemuStorageDriver::ExportBackup(std::string_view pool_name,
                                                           std::string_view volume,
                                                           const BackupOptions& options) {
  auto refuse = [&](std::string_view why) {
    return absl::InvalidArgumentError(Cat("backup of volume \"", volume, "\": destination ", why,
                                          ", got \"", options.destination, "\""));
  };
  if (options.destination.empty() || options.destination[0] != '/') {
    return refuse("must be an absolute path");
  }
  const fs::path destination(options.destination);
  const std::string leaf = destination.filename().string();
  if (leaf.empty() || leaf == "." || leaf == "..") return refuse("must name a file");
  const std::string sum_leaf = leaf + ".sha256";
  std::string labels;  // the sidecar's lines after the checksum
  for (const auto& [key, value] : options.labels) {
    if (key.empty() || key.find_first_of(" \n") != std::string::npos ||
        value.find('\n') != std::string::npos) {
      return core::FieldError("backup of volume", volume, "labels",
                              Cat("must be words with one-line values, got \"", key, "\""));
    }
    labels += Cat(key, " ", value, "\n");
  }
  BERTH_ASSIGN_OR_RETURN(auto pool, FindPool(pool_name));
  absl::MutexLock lock(&pool->mu);
  BERTH_ASSIGN_OR_RETURN(VolumeInfo v, Inspect(*pool, volume));
  // The directory is opened once; every later step names files relative to that descriptor.
  const std::string dir_path = destination.parent_path().string();
  UniqueFd dir(open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) {
    return refuse(Cat("must be in an existing directory (", std::strerror(errno), ")"));
  }
  for (const std::string& name : {leaf, sum_leaf}) {
    struct stat st;
    if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT) {
      return BackupExists(volume, Cat(dir_path, "/", name));
    }
  }
  BackupInfo backup;
  backup.path = options.destination;
  BERTH_ASSIGN_OR_RETURN(PendingFile data, PendingFile::Create(dir.get(), leaf));
  BERTH_ASSIGN_OR_RETURN(PendingFile sum, PendingFile::Create(dir.get(), sum_leaf));
  BERTH_RETURN_IF_ERROR(Step("created"));
  BERTH_RETURN_IF_ERROR(
      ConvertWithProgress({"qemu-img", "convert", "-U", "-p", "-c", "-f",
                           std::string(FormatName(v.format)), "-O", "qcow2", v.path, data.path()},
                          options.progress));
  BERTH_RETURN_IF_ERROR(Step("converted"));
  BERTH_ASSIGN_OR_RETURN(backup.sha256, Sha256Of(data.path()));
  struct stat st;
  if (fstat(data.fd(), &st) != 0) {
    return absl::InternalError(Cat("backup of volume \"", volume, "\": ", std::strerror(errno)));
  }
  backup.bytes = static_cast<int64_t>(st.st_size);
  BERTH_RETURN_IF_ERROR(sum.Write(backup.sha256 + "\n" + labels));
  BERTH_RETURN_IF_ERROR(data.Sync());
  BERTH_RETURN_IF_ERROR(sum.Sync());
  BERTH_RETURN_IF_ERROR(Step("summed"));
  // The backup first, then its checksum: a crash in between leaves a complete backup that
  // restores without a check, never a checksum without its file.
  if (absl::Status s = data.Publish(); !s.ok()) {
    if (absl::IsAlreadyExists(s)) return BackupExists(volume, options.destination);
    return s;
  }
  if (absl::Status s = sum.Publish(); !s.ok()) {
    // Someone made the sidecar meanwhile: take back the backup this call just linked.
    if (unlinkat(dir.get(), leaf.c_str(), 0) != 0) {
      return absl::InternalError(Cat("backup of volume \"", volume, "\": remove ",
                                     options.destination, ": ", std::strerror(errno)));
    }
    if (absl::IsAlreadyExists(s)) return BackupExists(volume, options.destination + ".sha256");
    return s;
  }
  if (fsync(dir.get()) != 0) {
    return absl::InternalError(Cat("fsync ", dir_path, ": ", std::strerror(errno)));
  }
  return backup;
}

absl::StatusOr<VolumeInfo> QemuStorageDriver::RestoreBackup(const RestoreSpec& spec) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("volume", spec.name));
  BERTH_ASSIGN_OR_RETURN(auto pool, FindPool(spec.pool));
  // Opened once, without following a final symbolic link and without waiting on a FIFO; the
  // tools below read the opened file through FdPath, never the name again.
  UniqueFd source(
      open(spec.source.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!source.valid()) {
    if (errno == ENOENT) {
      return absl::NotFoundError(
          Cat("volume \"", spec.name, "\": source cannot be read: ", spec.source));
    }
    return core::FieldError("volume", spec.name, "source",
                            Cat("cannot be opened (", std::strerror(errno), "): ", spec.source));
  }
  struct stat st;
  if (fstat(source.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return core::FieldError("volume", spec.name, "source",
                            Cat("must be a regular file: ", spec.source));
  }
  const std::string source_path = FdPath(source.get());
  std::string expected = spec.expected_sha256;
  if (expected.empty()) {
    UniqueFd sidecar(open((spec.source + ".sha256").c_str(),
                          O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    struct stat sst;
    if (sidecar.valid() && fstat(sidecar.get(), &sst) == 0 && S_ISREG(sst.st_mode)) {
      char buf[65] = {};
      ssize_t n = pread(sidecar.get(), buf, 64, 0);
      if (n > 0) expected.assign(buf, static_cast<size_t>(n));
    }
  }
  if (!expected.empty()) {
    BERTH_ASSIGN_OR_RETURN(std::string actual, Sha256Of(source_path));
    if (actual != expected) {
      return absl::DataLossError(Cat("volume \"", spec.name, "\": source ", spec.source,
                                     " has sha256 ", actual, ", expected ", expected));
    }
  }
  absl::MutexLock lock(&pool->mu);
  if (VolumeFile(*pool, spec.name).ok()) return VolumeExists(spec.pool, spec.name);
  BERTH_ASSIGN_OR_RETURN(nlohmann::json info, ImageInfo(source_path));
  // A backing or external data file is a reference to another host file that the copy would
  // read: a restore takes only self-contained images.
  if (info.contains("backing-filename") || info.contains("full-backing-filename") ||
      HasDataFile(info)) {
    return core::FieldError(
        "volume", spec.name, "source",
        Cat("must not refer to other files (a backing or data file): ", spec.source));
  }
  std::string source_format = info.value("format", "raw");
  int64_t size_mib = CeilMiB(info.value("virtual-size", int64_t{0}));
  BERTH_ASSIGN_OR_RETURN(PoolStatus status, Account(*pool));
  BERTH_RETURN_IF_ERROR(CheckOvercommit(status, spec.name, size_mib));

  const std::string fmt(FormatName(spec.format));
  Operation op(*this, pool->spec, "restore", spec.name);
  BERTH_RETURN_IF_ERROR(op.Run([&](Operation& op) -> absl::Status {
    BERTH_ASSIGN_OR_RETURN(std::string tmp, op.Temp(fmt));
    BERTH_RETURN_IF_ERROR(ConvertWithProgress(
        {"qemu-img", "convert", "-p", "-f", source_format, "-O", fmt, source_path, tmp},
        spec.progress));
    BERTH_RETURN_IF_ERROR(op.Step("converted"));
    BERTH_RETURN_IF_ERROR(SyncFile(tmp));
    op.RenameAtCommit(tmp, FinalPath(pool->spec, spec.name, spec.format));
    return absl::OkStatus();
  }));
  return Inspect(*pool, spec.name);
}

absl::Status QemuStorageDriver::DeleteVolume(std::string_view pool_name, std::string_view name,
                                             const DeleteVolumeOptions& options) {
  BERTH_ASSIGN_OR_RETURN(auto pool, FindPool(pool_name));
  absl::MutexLock lock(&pool->mu);
  BERTH_ASSIGN_OR_RETURN(std::string path, VolumeFile(*pool, name));
  BERTH_RETURN_IF_ERROR(RefuseAttached(name, "delete", options.attachment));
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(VolumesDir(pool->spec), ec)) {
    std::string other = entry.path().string();
    if (other != path && BackingFileOf(other) == path) {
      std::string file = entry.path().filename().string();
      return absl::FailedPreconditionError(
          Cat("volume \"", name, "\": cannot delete while volume \"",
              file.substr(0, file.rfind('.')), "\" uses it as its backing_image"));
    }
  }
  fs::remove(path, ec);
  if (ec)
    return absl::InternalError(Cat("volume \"", name, "\": remove ", path, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace berth::runtime::storage
