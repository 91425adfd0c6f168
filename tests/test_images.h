// The images the end-to-end suites run (busybox, tiny-vm, ...), built once per test binary by
// scripts/build-test-images.sh into BERTH_TEST_IMAGES_DIR (each suite's build defines it and
// BERTH_IMAGE_SCRIPT).
#pragma once

#include <string>

#include "absl/time/time.h"
#include "runtime/host/run.h"

namespace berth::e2e {

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

}  // namespace berth::e2e
