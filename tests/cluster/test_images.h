// The test images of the cluster suites that run containers and VMs (busybox, tiny-vm), built
// once per test binary by scripts/build-test-images.sh into BERTH_TEST_IMAGES_DIR, and why such a
// suite skips on this machine.
#pragma once

#include <unistd.h>

#include <string>

#include "absl/time/time.h"
#include "runtime/host/run.h"

namespace berth::cluster {

// The images' directory, or "" when they could not be built.
inline const std::string& ImagesDir() {
  static const std::string* dir = [] {
    std::string images = BERTH_TEST_IMAGES_DIR;
    auto r =
        runtime::host::RunCommand({BERTH_IMAGE_SCRIPT, images}, {.timeout = absl::Minutes(10)});
    if (!r.ok() || !r->ok()) return new std::string();
    return new std::string(images);
  }();
  return *dir;
}

// Why a suite that runs containers in the bed cannot run here; "" when it can.
inline std::string SkipReason() {
  if (geteuid() != 0) return "needs root (ip netns, runc)";
  auto runc = runtime::host::RunCommand({"runc", "--version"});
  if (!runc.ok() || !runc->ok()) return "runc missing";
  if (ImagesDir().empty()) return "the test images could not be built";
  return "";
}

}  // namespace berth::cluster
