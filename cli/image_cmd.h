// `berth image import|ls|rm`: a host's image catalog, through the server's image routes
// (api::Client's ListImages/GetImage/ImportImage/RemoveImage). Images are per host, like a
// container runtime's image store; --host NAME picks the host, else the only one there is.
// Import file names are relative to the server's image import directory (serve's
// --image-import-dir, default DATA_DIR/imports). The agent resolves a workload's `image:` there.
#pragma once

#include "core/flags.h"

namespace berth::cli {

// The `image` group.
core::Command ImageCommand();

}  // namespace berth::cli
