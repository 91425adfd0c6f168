// The stored objects of the storage and network services, typed: disks (/disks/NAME),
// networks (/networks/NAME), their address management (/ipam/NAME), security groups
// (/secgroups/NAME) and port forwards (/portforwards/ID), each read and written through a
// state::Repository with the codecs of core/disk.h and core/network.h. A change and its event
// commit in one compare-and-set transaction, so a concurrent writer never overwrites a change it
// has not seen and the event log matches the objects.
//
// Thread-safety: the repositories are as thread-safe as the Store.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/clock.h"
#include "core/disk.h"
#include "core/json.h"
#include "core/network.h"
#include "runtime/net/ipam.h"
#include "state/repository.h"
#include "state/store.h"

namespace berth::control {

inline constexpr std::string_view kDiskPrefix = "/disks/";
inline constexpr std::string_view kNetworkPrefix = "/networks/";
inline constexpr std::string_view kIpamPrefix = "/ipam/";
inline constexpr std::string_view kSecGroupPrefix = "/secgroups/";
inline constexpr std::string_view kPortForwardPrefix = "/portforwards/";

// Stores an object as its core encoder writes it, less the revision (the store keeps that).
template <typename T, core::Json (*EncodeFn)(const T&),
          absl::StatusOr<T> (*DecodeFn)(const core::Json&)>
struct StoredCodec {
  static absl::StatusOr<core::Json> Encode(const T& value) {
    core::Json json = EncodeFn(value);
    json.erase("revision");
    return json;
  }
  static absl::StatusOr<T> Decode(const core::Json& json) { return DecodeFn(json); }
};

struct IpamCodec {
  static absl::StatusOr<core::Json> Encode(const runtime::net::NetworkAddressing& a) {
    return a.ToJson();
  }
  static absl::StatusOr<runtime::net::NetworkAddressing> Decode(const core::Json& json) {
    return runtime::net::NetworkAddressing::FromJson(json);
  }
};

using DiskRepository =
    state::Repository<core::Disk, StoredCodec<core::Disk, core::EncodeDisk, core::DecodeDisk>>;
using NetworkRepository =
    state::Repository<core::Network,
                      StoredCodec<core::Network, core::EncodeNetwork, core::DecodeNetwork>>;
using IpamRepository = state::Repository<runtime::net::NetworkAddressing, IpamCodec>;
using SecurityGroupRepository = state::Repository<
    core::SecurityGroup,
    StoredCodec<core::SecurityGroup, core::EncodeSecurityGroup, core::DecodeSecurityGroup>>;
using PortForwardRepository =
    state::Repository<core::PortForward, StoredCodec<core::PortForward, core::EncodePortForward,
                                                     core::DecodePortForward>>;

// Commits `txn` (object writes built with a repository's Add* and their event). Returns the new
// store revision, or Aborted naming `kind "object"` when a guard failed: another request
// changed one of the objects first.
absl::StatusOr<int64_t> CommitChange(state::Store* store, const state::TxnRequest& txn,
                                     std::string_view kind, std::string_view object);

// Sets updated_at (and created_at for a new object) to now.
template <typename T>
void Touch(T* object, core::Clock* clock, bool created) {
  absl::Time now = clock->Now();
  if (created || object->created_at == absl::InfinitePast()) object->created_at = now;
  object->updated_at = now;
}

// The item's value with its store revision, as the API shows it.
template <typename Item>
auto WithRevision(Item item) {
  item.value.revision = item.mod_revision;
  return std::move(item.value);
}

}  // namespace berth::control
