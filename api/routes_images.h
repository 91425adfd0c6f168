// Routes for the image catalogs of hosts: /v1/hosts/{host}/images (list, import) and
// /v1/hosts/{host}/images/{name} (get, remove). A host's catalog lives on that host; HostImages
// says which catalogs this server reaches (today: its own host's in dev mode, LocalHostImages).
// A host it does not know is 404; a known host whose catalog it cannot reach is 409, so a
// catalog reached through a remote agent can be added behind the same routes later.
//
// Ownership: `control` and `images` are borrowed and must outlive the server; `images` may be
// null (no catalog reachable: every known host answers 409). Thread-safety: handlers run on the
// server's threads and imports on threads of their own; HostImages must be thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/http/router.h"
#include "control/control_plane.h"
#include "core/json.h"

namespace berth::api {

// An import: exactly one source (kernel with an optional initrd, disk, or rootfs as a tar
// archive), each a file named relative to (or absolutely beneath) the directory the server
// imports from. No other host file may be named.
struct ImageImportRequest {
  std::string name;
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  std::string disk;
  std::string rootfs;
  bool replace = false;  // replace an image of that name instead of 409
};

// The image catalogs this server reaches, by host name. Entries are JSON as the catalog encodes
// them (runtime::ImageEntryToJson). Every method answers FailedPrecondition for a host whose
// catalog is out of reach, and changes nothing on an error.
class HostImages {
 public:
  virtual ~HostImages() = default;
  // Entries sorted by name.
  virtual absl::StatusOr<std::vector<core::Json>> List(std::string_view host) = 0;
  // NotFound when the host's catalog has no such image.
  virtual absl::StatusOr<core::Json> Get(std::string_view host, std::string_view name) = 0;
  virtual absl::Status Remove(std::string_view host, std::string_view name) = 0;
  // Copies the named files into the catalog; may take minutes. InvalidArgument naming the field
  // for a bad request or a file name refused (outside the import directory, through a link, not
  // a regular file); NotFound for a missing file; AlreadyExists when the name is taken and not
  // `replace`.
  virtual absl::StatusOr<core::Json> Import(std::string_view host,
                                            const ImageImportRequest& request) = 0;
};

void AddImageRoutes(Router& router, control::ControlPlane* control, HostImages* images);

}  // namespace berth::api
