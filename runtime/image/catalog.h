// The image catalog of one host: named images that workloads refer to by name. Three kinds:
// a VM kernel + initrd pair (direct kernel boot), a VM disk image (qcow2 or raw, checked with
// `qemu-img info`), and a container root filesystem (imported from a directory or a tar).
//
// Layout under the catalog directory:
//   index.json               every entry, rewritten atomically on each change
//   images/NAME/             the entry's files: vmlinuz + initrd.img, disk.qcow2|disk.raw,
//                            or rootfs/
// Imported files are copied in, so the catalog owns everything under its directory.
//
// Thread-safety: all methods are thread-safe. Mutations also take an flock on the directory, so
// two processes (the agent and `berth image import`) may share one catalog.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace berth::runtime {

enum class ImageKind { kKernel, kDisk, kRootfs };
std::string_view ImageKindName(ImageKind kind);  // "kernel", "disk", "rootfs"
std::optional<ImageKind> ParseImageKind(std::string_view text);

struct ImageEntry {
  std::string name;
  ImageKind kind = ImageKind::kKernel;
  std::string dir;          // absolute directory holding the files below
  std::string kernel;       // kKernel: absolute path of the kernel
  std::string initrd;       // kKernel: absolute path of the initrd (may be empty)
  std::string cmdline;      // kKernel: default kernel command line
  std::string disk;         // kDisk: absolute path of the disk image
  std::string disk_format;  // kDisk: "qcow2" or "raw"
  std::string rootfs;       // kRootfs: absolute path of the root filesystem directory
  int64_t size_bytes = 0;   // bytes on disk (virtual size for disks)
  absl::Time imported_at = absl::InfinitePast();
};

nlohmann::json ImageEntryToJson(const ImageEntry& entry);
absl::StatusOr<ImageEntry> ImageEntryFromJson(const nlohmann::json& j);

// Exactly one source: kernel (+ optional initrd), disk, or rootfs.
struct ImportOptions {
  std::string kernel;    // path of a kernel image
  std::string initrd;    // path of an initrd (with kernel)
  std::string cmdline;   // default kernel command line (with kernel)
  std::string disk;      // path of a qcow2 or raw disk image
  std::string rootfs;    // a directory or a tar archive (.tar, .tar.gz, ...) holding a rootfs
  bool replace = false;  // replace an existing image of that name instead of AlreadyExists
};

struct RemoveOptions {
  bool missing_ok = false;  // OK instead of NotFound when there is no such image
};

class ImageCatalog {
 public:
  // Opens (creating if needed) the catalog in `dir` and loads its index.
  static absl::StatusOr<std::unique_ptr<ImageCatalog>> Open(const std::string& dir);

  // Imports an image under `name` (a DNS-label name). InvalidArgument naming the field for bad
  // options or an unusable source (a disk qemu-img does not recognise as qcow2/raw);
  // AlreadyExists when the name is taken and !options.replace. A failed import leaves nothing.
  absl::StatusOr<ImageEntry> Import(std::string_view name, const ImportOptions& options);
  // Entries sorted by name.
  std::vector<ImageEntry> List() const;
  // NotFound when there is no such image.
  absl::StatusOr<ImageEntry> Get(std::string_view name) const;
  // Removes the entry and its files.
  absl::Status Remove(std::string_view name, const RemoveOptions& options = {});

  const std::string& dir() const { return dir_; }

 private:
  explicit ImageCatalog(std::string dir) : dir_(std::move(dir)) {}
  absl::Status LoadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SaveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string dir_;
  mutable absl::Mutex mu_;
  std::vector<ImageEntry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace berth::runtime
