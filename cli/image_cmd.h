// `berth image import|ls|rm`: the image catalog of this host. Images are per host, like a
// container runtime's image store: the command acts on the catalog of the agent on the machine
// it runs on (in dev mode, the server's machine), found at BERTH_DATA_DIR/agent/images (default
// ~/.berth/agent/images) or --images DIR. The agent resolves a workload's `image:` there.
#pragma once

#include "core/flags.h"

namespace berth::cli {

// The `image` group.
core::Command ImageCommand();

}  // namespace berth::cli
