// Test environments for the storage contract suite: a driver plus the test-only ways to write a
// volume's data, fingerprint it and make a base image, for the real driver and for the fake.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "runtime/storage/storage_driver.h"

namespace berth::runtime::storage {

class StorageTestEnv {
 public:
  virtual ~StorageTestEnv() = default;
  virtual StorageDriver& driver() = 0;
  // A scratch directory removed with the environment.
  virtual const std::string& dir() const = 0;
  // Replaces the first blocks of the volume with `data` (a few bytes, each becomes a block).
  virtual absl::Status Write(std::string_view pool, std::string_view volume,
                             std::string_view data) = 0;
  // Changes whenever the guest-visible data changes.
  virtual absl::StatusOr<std::string> Digest(std::string_view pool, std::string_view volume) = 0;
  // Makes a base image of `size_mib` holding some data and returns its path.
  virtual absl::StatusOr<std::string> MakeImage(std::string_view name, int64_t size_mib) = 0;
};

std::unique_ptr<StorageTestEnv> MakeQemuStorageEnv();
std::unique_ptr<StorageTestEnv> MakeFakeStorageEnv();
// A fresh scratch directory under TMPDIR or /tmp.
std::string MakeScratchDir();

}  // namespace berth::runtime::storage
