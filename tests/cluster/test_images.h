// The test images of the cluster suites that run containers and VMs (busybox, tiny-vm), and why
// such a suite skips on this machine.
#pragma once

#include <unistd.h>

#include <string>

#include "runtime/host/run.h"
#include "tests/test_images.h"

namespace berth::cluster {

using e2e::ImagesDir;

// Why a suite that runs containers in the bed cannot run here; "" when it can.
inline std::string SkipReason() {
  if (geteuid() != 0) return "needs root (ip netns, runc)";
  auto runc = runtime::host::RunCommand({"runc", "--version"});
  if (!runc.ok() || !runc->ok()) return "runc missing";
  if (ImagesDir().empty()) return "the test images could not be built";
  return "";
}

}  // namespace berth::cluster
