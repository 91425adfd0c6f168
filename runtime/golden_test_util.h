// Golden-file comparison for tests of pure translations (spec -> QEMU argv, spec -> OCI
// config.json): the expected output lives in a checked-in file; BERTH_UPDATE_GOLDENS=1 rewrites
// the file from the actual output instead of comparing.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace berth::runtime::golden {

// Compares `actual` with DIR/NAME.
inline void ExpectGolden(const std::string& dir, const std::string& name,
                         const std::string& actual) {
  const std::string path = dir + "/" + name;
  const char* update = std::getenv("BERTH_UPDATE_GOLDENS");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(path) << actual;
    return;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "missing golden " << path << "; run with BERTH_UPDATE_GOLDENS=1";
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), actual) << "golden " << path
                              << " differs; if intended, regenerate with BERTH_UPDATE_GOLDENS=1";
}

}  // namespace berth::runtime::golden
