#include "runtime/image/catalog.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"
#include "runtime/image/command.h"

namespace berth::runtime {
namespace {

namespace fs = std::filesystem;
using core::Cat;
using nlohmann::json;

constexpr std::string_view kIndexName = "index.json";

absl::Status ImageError(std::string_view name, std::string_view field, std::string_view msg) {
  return core::FieldError("image", name, field, msg);
}

// Holds an exclusive flock on the catalog's lock file for the life of the object.
class DirLock {
 public:
  explicit DirLock(const std::string& dir) {
    fd_ = open(Cat(dir, "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0) {
      while (flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
  }
  ~DirLock() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

int64_t TreeBytes(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return static_cast<int64_t>(fs::file_size(path, ec));
  int64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
      total += static_cast<int64_t>(it->file_size(ec));
    }
  }
  return total;
}

// A single-file source (kernel, initrd, disk) is copied through symbolic links, so the catalog
// holds the file's bytes: the source may be a link (/boot/vmlinuz) or a /proc/PID/fd/N path
// naming a file opened beforehand. A rootfs directory keeps its links as they are.
enum class Follow { kLinks, kNoLinks };

absl::Status Copy(std::string_view name, std::string_view field, const std::string& from,
                  const std::string& to, Follow follow) {
  std::vector<std::string> argv = {"cp", "-a", "--sparse=always", "--reflink=auto"};
  if (follow == Follow::kLinks) argv.push_back("--dereference");
  argv.push_back(from);
  argv.push_back(to);
  auto r = RunCommand(argv, {.timeout = absl::Minutes(30)});
  if (!r.ok()) return r.status();
  if (!r->ok()) return ImageError(name, field, Cat("cannot copy ", from, ": ", r->stderr_data));
  return absl::OkStatus();
}

std::string TimeText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

}  // namespace

std::string_view ImageKindName(ImageKind kind) {
  switch (kind) {
    case ImageKind::kKernel:
      return "kernel";
    case ImageKind::kDisk:
      return "disk";
    case ImageKind::kRootfs:
      return "rootfs";
  }
  return "unknown";
}

std::optional<ImageKind> ParseImageKind(std::string_view text) {
  if (text == "kernel") return ImageKind::kKernel;
  if (text == "disk") return ImageKind::kDisk;
  if (text == "rootfs") return ImageKind::kRootfs;
  return std::nullopt;
}

json ImageEntryToJson(const ImageEntry& e) {
  json j = {{"name", e.name},
            {"kind", std::string(ImageKindName(e.kind))},
            {"dir", e.dir},
            {"size_bytes", e.size_bytes},
            {"imported_at", TimeText(e.imported_at)}};
  auto put = [&](const char* key, const std::string& v) {
    if (!v.empty()) j[key] = v;
  };
  put("kernel", e.kernel);
  put("initrd", e.initrd);
  put("cmdline", e.cmdline);
  put("disk", e.disk);
  put("disk_format", e.disk_format);
  put("rootfs", e.rootfs);
  return j;
}

absl::StatusOr<ImageEntry> ImageEntryFromJson(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("image: entry must be an object");
  ImageEntry e;
  try {
    e.name = j.value("name", "");
    auto kind = ParseImageKind(j.value("kind", ""));
    if (!kind) return ImageError(e.name, "kind", Cat("unknown: ", j.value("kind", "")));
    e.kind = *kind;
    e.dir = j.value("dir", "");
    e.kernel = j.value("kernel", "");
    e.initrd = j.value("initrd", "");
    e.cmdline = j.value("cmdline", "");
    e.disk = j.value("disk", "");
    e.disk_format = j.value("disk_format", "");
    e.rootfs = j.value("rootfs", "");
    e.size_bytes = j.value("size_bytes", int64_t{0});
    std::string err;
    absl::Time t;
    if (absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", j.value("imported_at", ""), &t, &err)) {
      e.imported_at = t;
    }
  } catch (const json::exception& ex) {
    return absl::InvalidArgumentError(Cat("image: malformed entry: ", ex.what()));
  }
  return e;
}

absl::StatusOr<std::unique_ptr<ImageCatalog>> ImageCatalog::Open(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "images", ec);
  if (ec) return absl::InternalError(Cat("image catalog ", dir, ": ", ec.message()));
  std::string abs = fs::absolute(dir, ec).lexically_normal().string();
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  std::unique_ptr<ImageCatalog> catalog(new ImageCatalog(abs));
  absl::MutexLock lock(&catalog->mu_);
  BERTH_RETURN_IF_ERROR(catalog->LoadLocked());
  return catalog;
}

absl::Status ImageCatalog::LoadLocked() {
  auto text = ReadFileToString(Cat(dir_, "/", kIndexName));
  entries_.clear();
  if (absl::IsNotFound(text.status())) return absl::OkStatus();
  if (!text.ok()) return text.status();
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("images") || !j["images"].is_array()) {
    return absl::DataLossError(Cat("image catalog ", dir_, ": ", kIndexName, " is malformed"));
  }
  for (const auto& item : j["images"]) {
    BERTH_ASSIGN_OR_RETURN(ImageEntry e, ImageEntryFromJson(item));
    // Paths are stored relative to the entry directory so the catalog may be moved.
    e.dir = Cat(dir_, "/images/", e.name);
    auto abs = [&](std::string& p) {
      if (!p.empty()) p = Cat(e.dir, "/", p);
    };
    abs(e.kernel);
    abs(e.initrd);
    abs(e.disk);
    abs(e.rootfs);
    entries_.push_back(std::move(e));
  }
  std::sort(entries_.begin(), entries_.end(),
            [](const ImageEntry& a, const ImageEntry& b) { return a.name < b.name; });
  return absl::OkStatus();
}

absl::Status ImageCatalog::SaveLocked() {
  json arr = json::array();
  for (ImageEntry e : entries_) {
    auto rel = [&](std::string& p) {
      if (!p.empty()) p = fs::path(p).filename().string();
    };
    rel(e.kernel);
    rel(e.initrd);
    rel(e.disk);
    rel(e.rootfs);
    json item = ImageEntryToJson(e);
    item.erase("dir");
    arr.push_back(std::move(item));
  }
  json index = {{"version", 1}, {"images", std::move(arr)}};
  return WriteFileAtomically(Cat(dir_, "/", kIndexName), index.dump(2) + "\n");
}

absl::StatusOr<ImageEntry> ImageCatalog::Import(std::string_view name,
                                                const ImportOptions& options) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("image", name));
  const int sources = !options.kernel.empty() + !options.disk.empty() + !options.rootfs.empty();
  if (sources != 1) {
    return ImageError(name, "source",
                      Cat("must be exactly one of kernel, disk or rootfs, got ", sources));
  }
  if (!options.initrd.empty() && options.kernel.empty()) {
    return ImageError(name, "initrd", "needs a kernel");
  }
  std::error_code ec;
  for (auto [field, path] : {std::pair<const char*, const std::string*>{"kernel", &options.kernel},
                             {"initrd", &options.initrd},
                             {"disk", &options.disk},
                             {"rootfs", &options.rootfs}}) {
    if (!path->empty() && !fs::exists(*path, ec)) {
      return ImageError(name, field, Cat("no such file: ", *path));
    }
  }

  ImageEntry entry;
  entry.name = std::string(name);
  std::string disk_format;
  int64_t virtual_size = 0;
  if (!options.disk.empty()) {
    auto info = RunCommand({"qemu-img", "info", "--output=json", options.disk});
    if (!info.ok()) return info.status();
    if (!info->ok()) {
      return ImageError(name, "disk", Cat("qemu-img cannot read it: ", info->stderr_data));
    }
    json j = json::parse(info->stdout_data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return ImageError(name, "disk", "qemu-img info printed no JSON");
    }
    disk_format = j.value("format", "");
    virtual_size = j.value("virtual-size", int64_t{0});
    if (disk_format != "qcow2" && disk_format != "raw") {
      return ImageError(name, "disk",
                        Cat("format must be qcow2 or raw, got \"", disk_format, "\""));
    }
    if (j.contains("backing-filename")) {
      return ImageError(name, "disk", "must not have a backing file");
    }
  }

  absl::MutexLock lock(&mu_);
  DirLock dir_lock(dir_);
  if (!dir_lock.ok()) return absl::InternalError(Cat("image catalog ", dir_, ": cannot lock"));
  BERTH_RETURN_IF_ERROR(LoadLocked());
  auto existing = std::find_if(entries_.begin(), entries_.end(),
                               [&](const ImageEntry& e) { return e.name == name; });
  if (existing != entries_.end() && !options.replace) {
    return absl::AlreadyExistsError(Cat("image \"", name, "\" already exists"));
  }

  const std::string final_dir = Cat(dir_, "/images/", name);
  const std::string staging = Cat(dir_, "/images/.", name, ".importing");
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) return absl::InternalError(Cat("image \"", name, "\": ", ec.message()));
  auto fail = [&](absl::Status s) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    return s;
  };

  if (!options.kernel.empty()) {
    entry.kind = ImageKind::kKernel;
    if (auto s = Copy(name, "kernel", options.kernel, Cat(staging, "/vmlinuz"), Follow::kLinks);
        !s.ok()) {
      return fail(s);
    }
    entry.kernel = "vmlinuz";
    if (!options.initrd.empty()) {
      if (auto s =
              Copy(name, "initrd", options.initrd, Cat(staging, "/initrd.img"), Follow::kLinks);
          !s.ok()) {
        return fail(s);
      }
      entry.initrd = "initrd.img";
    }
    entry.cmdline = options.cmdline;
    entry.size_bytes = TreeBytes(staging);
  } else if (!options.disk.empty()) {
    entry.kind = ImageKind::kDisk;
    entry.disk = Cat("disk.", disk_format);
    entry.disk_format = disk_format;
    if (auto s = Copy(name, "disk", options.disk, Cat(staging, "/", entry.disk), Follow::kLinks);
        !s.ok()) {
      return fail(s);
    }
    entry.size_bytes = virtual_size;
  } else {
    entry.kind = ImageKind::kRootfs;
    entry.rootfs = "rootfs";
    const std::string target = Cat(staging, "/rootfs");
    if (fs::is_directory(options.rootfs, ec)) {
      if (auto s = Copy(name, "rootfs", options.rootfs, target, Follow::kNoLinks); !s.ok())
        return fail(s);
    } else {
      fs::create_directories(target, ec);
      auto r = RunCommand({"tar", "-xf", options.rootfs, "-C", target, "--numeric-owner"},
                          {.timeout = absl::Minutes(30)});
      if (!r.ok()) return fail(r.status());
      if (!r->ok()) {
        return fail(ImageError(name, "rootfs", Cat("not a readable tar: ", r->stderr_data)));
      }
    }
    entry.size_bytes = TreeBytes(target);
  }
  entry.imported_at = absl::FromUnixMillis(absl::ToUnixMillis(absl::Now()));

  // Swap the new files in, then record them; an entry never points at missing files.
  const std::string old_dir = Cat(dir_, "/images/.", name, ".old");
  fs::remove_all(old_dir, ec);
  if (fs::exists(final_dir, ec)) fs::rename(final_dir, old_dir, ec);
  fs::rename(staging, final_dir, ec);
  if (ec) return fail(absl::InternalError(Cat("image \"", name, "\": ", ec.message())));
  fs::remove_all(old_dir, ec);

  entry.dir = final_dir;
  auto abs = [&](std::string& p) {
    if (!p.empty()) p = Cat(final_dir, "/", p);
  };
  abs(entry.kernel);
  abs(entry.initrd);
  abs(entry.disk);
  abs(entry.rootfs);
  if (existing != entries_.end()) {
    *existing = entry;
  } else {
    entries_.push_back(entry);
    std::sort(entries_.begin(), entries_.end(),
              [](const ImageEntry& a, const ImageEntry& b) { return a.name < b.name; });
  }
  BERTH_RETURN_IF_ERROR(SaveLocked());
  return entry;
}

std::vector<ImageEntry> ImageCatalog::List() const {
  absl::MutexLock lock(&mu_);
  // Another process may have changed the index since we loaded it.
  const_cast<ImageCatalog*>(this)->LoadLocked().IgnoreError();
  return entries_;
}

absl::StatusOr<ImageEntry> ImageCatalog::Get(std::string_view name) const {
  absl::MutexLock lock(&mu_);
  // Another process (`berth image import|rm`) may have changed the index since we loaded it.
  const_cast<ImageCatalog*>(this)->LoadLocked().IgnoreError();
  for (const auto& e : entries_) {
    if (e.name == name) return e;
  }
  return absl::NotFoundError(Cat("image \"", name, "\" not found"));
}

absl::Status ImageCatalog::Remove(std::string_view name, const RemoveOptions& options) {
  absl::MutexLock lock(&mu_);
  DirLock dir_lock(dir_);
  BERTH_RETURN_IF_ERROR(LoadLocked());
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const ImageEntry& e) { return e.name == name; });
  if (it == entries_.end()) {
    if (options.missing_ok) return absl::OkStatus();
    return absl::NotFoundError(Cat("image \"", name, "\" not found"));
  }
  std::string entry_dir = it->dir;
  entries_.erase(it);
  BERTH_RETURN_IF_ERROR(SaveLocked());
  std::error_code ec;
  fs::remove_all(entry_dir, ec);
  return absl::OkStatus();
}

}  // namespace berth::runtime
