// Input checks and pool arithmetic shared by every StorageDriver implementation, so the real
// driver and the fake refuse the same input with the same message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "runtime/storage/storage_driver.h"

namespace berth::runtime::storage {

absl::Status ValidatePoolSpec(const PoolSpec& spec);
absl::Status ValidateCreateSpec(const CreateVolumeSpec& spec);
absl::Status ValidateSnapshotName(std::string_view volume, std::string_view snapshot);

// ResourceExhausted when adding `extra_mib` of virtual size would pass the pool's limit.
absl::Status CheckOvercommit(const PoolStatus& pool, std::string_view volume, int64_t extra_mib);
// Fills limit_mib and available_mib from spec and provisioned_mib.
void FinishPoolStatus(PoolStatus& status);

absl::Status PoolNotFound(std::string_view pool);
absl::Status VolumeNotFound(std::string_view pool, std::string_view volume);
absl::Status VolumeExists(std::string_view pool, std::string_view volume);
absl::Status SnapshotNotFound(std::string_view volume, std::string_view snapshot);
absl::Status NeedsQcow2(std::string_view volume, std::string_view what);
absl::Status RefuseAttached(std::string_view volume, std::string_view action,
                            const AttachmentOptions& attachment);
absl::Status RefuseShrink(std::string_view volume, int64_t current_mib, int64_t new_mib);

}  // namespace berth::runtime::storage
