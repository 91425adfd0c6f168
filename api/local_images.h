// LocalHostImages: the HostImages of a server with a local agent (`serve --dev`): that host's
// image catalog, and imports only from files beneath one directory the server owns (its import
// directory, e.g. DATA_DIR/imports). Each file is opened through ConfinedDir (no "..", no
// absolute path elsewhere, no symbolic link on the way, regular files only) and the catalog
// copies the open file, so nothing a client names is looked up again after the check.
//
// Ownership: the catalog is borrowed between Attach and the next Attach. Thread-safety: all
// methods are thread-safe; Attach waits for the calls in flight (an import included) to end.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "api/routes_images.h"
#include "runtime/image/catalog.h"

namespace berth::api {

class LocalHostImages : public HostImages {
 public:
  // `import_dir`: the absolute directory imports read from; it must exist when an import runs.
  explicit LocalHostImages(std::string import_dir) : import_dir_(std::move(import_dir)) {}

  // Serves `catalog` as host `host`'s; a null catalog serves none (before the local agent runs
  // and after it stops).
  void Attach(std::string host, runtime::ImageCatalog* catalog);

  const std::string& import_dir() const { return import_dir_; }

  absl::StatusOr<std::vector<core::Json>> List(std::string_view host) override;
  absl::StatusOr<core::Json> Get(std::string_view host, std::string_view name) override;
  absl::Status Remove(std::string_view host, std::string_view name) override;
  absl::StatusOr<core::Json> Import(std::string_view host,
                                    const ImageImportRequest& request) override;

 private:
  // The catalog of `host`, or FailedPrecondition/Unavailable saying why there is none.
  absl::StatusOr<runtime::ImageCatalog*> CatalogOf(std::string_view host) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const std::string import_dir_;
  mutable absl::Mutex mu_;  // held shared by every call, exclusively by Attach
  std::string host_ ABSL_GUARDED_BY(mu_);
  runtime::ImageCatalog* catalog_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace berth::api
