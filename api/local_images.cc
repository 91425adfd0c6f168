#include "api/local_images.h"

#include <utility>

#include "absl/strings/str_replace.h"
#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"
#include "runtime/storage/confined_path.h"

namespace berth::api {

namespace rs = runtime::storage;
using core::Cat;
using core::Json;

namespace {

// `s` with the /proc/PID/fd/N paths the catalog was handed put back as the files' own names.
absl::Status Reworded(const absl::Status& s,
                      const std::vector<std::pair<std::string, std::string>>& paths) {
  return absl::Status(s.code(), absl::StrReplaceAll(s.message(), paths));
}

}  // namespace

void LocalHostImages::Attach(std::string host, runtime::ImageCatalog* catalog) {
  absl::WriterMutexLock lock(&mu_);
  host_ = std::move(host);
  catalog_ = catalog;
}

absl::StatusOr<runtime::ImageCatalog*> LocalHostImages::CatalogOf(std::string_view host) const {
  if (host_.empty()) {
    return absl::UnavailableError(
        Cat("host \"", host, "\": the local agent is not running, so no image catalog is open"));
  }
  if (host != host_) {
    return absl::FailedPreconditionError(
        Cat("host \"", host,
            "\": its image catalog is not reachable from this server, which reaches only its "
            "own host \"",
            host_, "\"; run `berth image` against the server on that host"));
  }
  if (catalog_ == nullptr) {
    return absl::FailedPreconditionError(
        Cat("host \"", host,
            "\": has no image catalog (it could not be opened at start; see "
            "the server's output)"));
  }
  return catalog_;
}

absl::StatusOr<std::vector<Json>> LocalHostImages::List(std::string_view host) {
  absl::ReaderMutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(runtime::ImageCatalog * catalog, CatalogOf(host));
  std::vector<Json> items;
  for (const auto& e : catalog->List()) items.push_back(runtime::ImageEntryToJson(e));
  return items;
}

absl::StatusOr<Json> LocalHostImages::Get(std::string_view host, std::string_view name) {
  absl::ReaderMutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(runtime::ImageCatalog * catalog, CatalogOf(host));
  BERTH_ASSIGN_OR_RETURN(runtime::ImageEntry entry, catalog->Get(name));
  return runtime::ImageEntryToJson(entry);
}

absl::Status LocalHostImages::Remove(std::string_view host, std::string_view name) {
  absl::ReaderMutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(runtime::ImageCatalog * catalog, CatalogOf(host));
  return catalog->Remove(name);
}

absl::StatusOr<Json> LocalHostImages::Import(std::string_view host,
                                             const ImageImportRequest& request) {
  absl::ReaderMutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(runtime::ImageCatalog * catalog, CatalogOf(host));
  const std::string& name = request.name;
  BERTH_RETURN_IF_ERROR(core::ValidateName("image", name));
  // The request's shape is checked before any file is opened.
  const int sources = !request.kernel.empty() + !request.disk.empty() + !request.rootfs.empty();
  if (sources != 1) {
    return core::FieldError("image", name, "source",
                            Cat("must be exactly one of kernel, disk or rootfs, got ", sources));
  }
  if (!request.initrd.empty() && request.kernel.empty()) {
    return core::FieldError("image", name, "initrd", "needs a kernel");
  }
  if (!request.cmdline.empty() && request.kernel.empty()) {
    return core::FieldError("image", name, "cmdline", "needs a kernel");
  }
  auto dir = rs::ConfinedDir::Open(import_dir_, "the image import directory");
  if (!dir.ok()) {
    return absl::Status(dir.status().code(),
                        Cat("image \"", name, "\": ", std::string(dir.status().message())));
  }

  // Each file is opened beneath the import directory and handed to the catalog as the open
  // descriptor's /proc path, so the catalog copies exactly the file that was checked.
  runtime::ImportOptions options;
  options.cmdline = request.cmdline;
  options.replace = request.replace;
  std::vector<rs::UniqueFd> opened;
  std::vector<std::pair<std::string, std::string>> shown;
  for (auto [field, from, to] : {std::tuple{"kernel", &request.kernel, &options.kernel},
                                 std::tuple{"initrd", &request.initrd, &options.initrd},
                                 std::tuple{"disk", &request.disk, &options.disk},
                                 std::tuple{"rootfs", &request.rootfs, &options.rootfs}}) {
    if (from->empty()) continue;
    auto fd = dir->OpenFile(*from);
    if (!fd.ok()) {
      if (absl::IsInvalidArgument(fd.status())) {
        return core::FieldError("image", name, field, std::string(fd.status().message()));
      }
      return absl::Status(fd.status().code(), Cat("image \"", name, "\": ", field, " ",
                                                  std::string(fd.status().message())));
    }
    *to = rs::FdPath(fd->get());
    shown.emplace_back(*to, *from);
    opened.push_back(std::move(*fd));
  }
  auto entry = catalog->Import(name, options);
  if (!entry.ok()) return Reworded(entry.status(), shown);
  return runtime::ImageEntryToJson(*entry);
}

}  // namespace berth::api
