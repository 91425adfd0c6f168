// Repository<T>: typed access to one kind of object stored as JSON under one key prefix
// (workloads under "/workloads/<name>", hosts under "/hosts/<name>"), so server code reads and
// writes objects with optimistic concurrency in one line each. T converts to and from
// nlohmann::json through `Codec`: by default the caller's to_json/from_json (found by
// argument-dependent lookup), whose exceptions are caught here and become statuses; a type with
// decoders that return statuses (core::DecodeDisk, ...) passes a codec of its own. Writes that
// must commit together with others (an object and the event that describes it) are built with
// the Add* methods into one TxnRequest.
//
// Ownership: the Store is not owned and must outlive the repository.
// Thread-safety: as thread-safe as the Store; the repository itself holds no mutable state.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/status.h"
#include "core/strings.h"
#include "nlohmann/json.hpp"
#include "state/store.h"

namespace berth::state {

struct MutateOptions {
  // Read-modify-write rounds tried before giving up with Aborted.
  int max_attempts = 16;
  PutOptions put_options;
};

// The default codec: nlohmann's to_json/from_json for T, with their exceptions as statuses.
// A codec is a type with `static absl::StatusOr<nlohmann::json> Encode(const T&)` and
// `static absl::StatusOr<T> Decode(const nlohmann::json&)`; messages need not name the object,
// the repository prefixes its kind and name.
template <typename T>
struct AdlJsonCodec {
  static absl::StatusOr<nlohmann::json> Encode(const T& value) {
    try {
      return nlohmann::json(value);
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(e.what());
    }
  }
  static absl::StatusOr<T> Decode(const nlohmann::json& json) {
    try {
      return json.template get<T>();
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(e.what());
    }
  }
};

// A codec from a pair of functions, such as core::EncodeWorkload and core::DecodeWorkload.
template <typename T, nlohmann::json (*EncodeFn)(const T&),
          absl::StatusOr<T> (*DecodeFn)(const nlohmann::json&)>
struct FunctionCodec {
  static absl::StatusOr<nlohmann::json> Encode(const T& value) { return EncodeFn(value); }
  static absl::StatusOr<T> Decode(const nlohmann::json& json) { return DecodeFn(json); }
};

template <typename T, typename Codec = AdlJsonCodec<T>>
class Repository {
 public:
  struct Item {
    std::string name;
    T value;
    int64_t mod_revision = 0;  // pass to Update/Delete to guard against concurrent writers
    int64_t create_revision = 0;
  };
  struct ListResult {
    std::vector<Item> items;  // in name order
    int64_t revision = 0;     // watch from revision + 1 to follow changes after this listing
  };

  // `kind` names objects in error messages ("workload"); `prefix` ends with '/'.
  Repository(Store* store, std::string kind, std::string prefix)
      : store_(store), kind_(std::move(kind)), prefix_(std::move(prefix)) {}

  const std::string& prefix() const { return prefix_; }
  std::string Key(std::string_view name) const { return core::Cat(prefix_, name); }
  // The object name of a key under prefix().
  std::string NameOf(std::string_view key) const {
    return std::string(key.substr(std::min(prefix_.size(), key.size())));
  }

  // NotFound when absent.
  [[nodiscard]] absl::StatusOr<Item> Get(std::string_view name) const {
    BERTH_ASSIGN_OR_RETURN(std::optional<Item> item, Find(name));
    if (!item.has_value()) return NotFound(name);
    return std::move(*item);
  }

  // Like Get, but an absent object is nullopt rather than an error.
  [[nodiscard]] absl::StatusOr<std::optional<Item>> Find(std::string_view name) const {
    BERTH_ASSIGN_OR_RETURN(GetResponse response, store_->Get(Key(name)));
    if (!response.kv.has_value()) return std::optional<Item>();
    BERTH_ASSIGN_OR_RETURN(Item item, Decode(*response.kv));
    return std::optional<Item>(std::move(item));
  }

  // Every object under the prefix. An entry that does not decode fails the listing (DataLoss),
  // unless `undecodable` is given: then it is skipped and its status appended there, so one
  // damaged entry does not hide all the others.
  [[nodiscard]] absl::StatusOr<ListResult> List(
      std::vector<absl::Status>* undecodable = nullptr) const {
    BERTH_ASSIGN_OR_RETURN(ListResponse response, store_->List(prefix_));
    ListResult result;
    result.revision = response.revision;
    result.items.reserve(response.kvs.size());
    for (const KeyValue& kv : response.kvs) {
      absl::StatusOr<Item> item = Decode(kv);
      if (!item.ok()) {
        if (undecodable == nullptr) return item.status();
        undecodable->push_back(item.status());
        continue;
      }
      result.items.push_back(std::move(*item));
    }
    return result;
  }

  // Transaction building blocks: each adds its guard to `request->compares` and its write to
  // `request->then_ops`, so callers can commit several objects and their event atomically.
  // The transaction fails (succeeded == false) when a guard does not hold.

  // Guard: the name is free. Write: the new object.
  [[nodiscard]] absl::Status AddCreate(TxnRequest* request, std::string_view name, const T& value,
                                       const PutOptions& options = {}) const {
    BERTH_ASSIGN_OR_RETURN(std::string bytes, Encode(name, value));
    request->compares.push_back(Compare::Absent(Key(name)));
    request->then_ops.push_back(Op::Put(Key(name), std::move(bytes), options));
    return absl::OkStatus();
  }
  // Guard: the object is still at `expected_mod_revision`. Write: its new value.
  [[nodiscard]] absl::Status AddUpdate(TxnRequest* request, std::string_view name, const T& value,
                                       int64_t expected_mod_revision,
                                       const PutOptions& options = {}) const {
    BERTH_ASSIGN_OR_RETURN(std::string bytes, Encode(name, value));
    request->compares.push_back(Compare::ModRevision(Key(name), expected_mod_revision));
    request->then_ops.push_back(Op::Put(Key(name), std::move(bytes), options));
    return absl::OkStatus();
  }
  // AddCreate when `expected_mod_revision` is 0 (the object was absent when read), AddUpdate
  // otherwise: for records that come and go with what they describe.
  [[nodiscard]] absl::Status AddWrite(TxnRequest* request, std::string_view name, const T& value,
                                      int64_t expected_mod_revision,
                                      const PutOptions& options = {}) const {
    return expected_mod_revision == 0
               ? AddCreate(request, name, value, options)
               : AddUpdate(request, name, value, expected_mod_revision, options);
  }
  // Guard: the object is still at `expected_mod_revision` (> 0). Write: its deletion.
  void AddDelete(TxnRequest* request, std::string_view name, int64_t expected_mod_revision) const {
    request->compares.push_back(Compare::ModRevision(Key(name), expected_mod_revision));
    request->then_ops.push_back(Op::Delete(Key(name)));
  }

  // AlreadyExists when the name is taken. Returns the new mod_revision.
  [[nodiscard]] absl::StatusOr<int64_t> Create(std::string_view name, const T& value,
                                               const PutOptions& options = {}) {
    TxnRequest request;
    BERTH_RETURN_IF_ERROR(AddCreate(&request, name, value, options));
    BERTH_ASSIGN_OR_RETURN(TxnResponse response, store_->Txn(request));
    if (!response.succeeded) {
      return absl::AlreadyExistsError(core::Cat(kind_, " \"", name, "\": already exists"));
    }
    return response.revision;
  }

  // Writes only if the object is still at `expected_mod_revision`: Aborted if it changed,
  // NotFound if it is gone. Returns the new mod_revision.
  [[nodiscard]] absl::StatusOr<int64_t> Update(std::string_view name, const T& value,
                                               int64_t expected_mod_revision,
                                               const PutOptions& options = {}) {
    TxnRequest request;
    BERTH_RETURN_IF_ERROR(AddUpdate(&request, name, value, expected_mod_revision, options));
    BERTH_ASSIGN_OR_RETURN(TxnResponse response, store_->Txn(request));
    if (!response.succeeded) return Conflict(name, expected_mod_revision);
    return response.revision;
  }

  // Reads the object, applies `mutate` and writes it back, retrying when another writer got
  // there first. A non-OK status from `mutate` stops and is returned as is, writing nothing.
  [[nodiscard]] absl::StatusOr<Item> Mutate(std::string_view name,
                                            const std::function<absl::Status(T&)>& mutate,
                                            const MutateOptions& options = {}) {
    absl::Status last;
    for (int attempt = 0; attempt < options.max_attempts; ++attempt) {
      BERTH_ASSIGN_OR_RETURN(Item item, Get(name));
      BERTH_RETURN_IF_ERROR(mutate(item.value));
      absl::StatusOr<int64_t> revision =
          Update(name, item.value, item.mod_revision, options.put_options);
      if (revision.ok()) {
        item.mod_revision = *revision;
        return item;
      }
      if (revision.status().code() != absl::StatusCode::kAborted) return revision.status();
      last = revision.status();
    }
    return absl::AbortedError(core::Cat(kind_, " \"", name, "\": gave up after ",
                                        options.max_attempts,
                                        " conflicting updates: ", last.message()));
  }

  // Deletes the object; with expected_mod_revision != 0 only if it is still at that revision
  // (Aborted otherwise). NotFound when absent.
  [[nodiscard]] absl::Status Delete(std::string_view name, int64_t expected_mod_revision = 0) {
    TxnRequest request;
    request.compares.push_back(expected_mod_revision == 0
                                   ? Compare::Version(Key(name), 0)
                                   : Compare::ModRevision(Key(name), expected_mod_revision));
    if (expected_mod_revision == 0) {
      // Absent (version 0) takes the then branch, which deletes nothing.
      request.else_ops.push_back(Op::Delete(Key(name)));
    } else {
      request.then_ops.push_back(Op::Delete(Key(name)));
    }
    BERTH_ASSIGN_OR_RETURN(TxnResponse response, store_->Txn(request));
    if (expected_mod_revision == 0) {
      if (response.succeeded) return NotFound(name);
      return absl::OkStatus();
    }
    if (!response.succeeded) return Conflict(name, expected_mod_revision).status();
    return absl::OkStatus();
  }

  // Decodes one stored entry (say, from a watch event) under this repository's prefix.
  [[nodiscard]] absl::StatusOr<Item> Decode(const KeyValue& kv) const {
    std::string name = NameOf(kv.key);
    auto lost = [&](const std::string& why) {
      return absl::DataLossError(core::Cat(kind_, " \"", name, "\": stored value at revision ",
                                           kv.mod_revision, " does not decode: ", why));
    };
    nlohmann::json json = nlohmann::json::parse(kv.value, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded()) return lost("not JSON");
    absl::StatusOr<T> value = Codec::Decode(json);
    if (!value.ok()) return lost(std::string(value.status().message()));
    return Item{.name = name,
                .value = std::move(*value),
                .mod_revision = kv.mod_revision,
                .create_revision = kv.create_revision};
  }

 private:
  absl::StatusOr<std::string> Encode(std::string_view name, const T& value) const {
    absl::StatusOr<nlohmann::json> json = Codec::Encode(value);
    if (!json.ok()) {
      return absl::InvalidArgumentError(
          core::Cat(kind_, " \"", name,
                    "\": does not encode as JSON: ", std::string(json.status().message())));
    }
    // Text from clients may hold invalid UTF-8; it is replaced rather than refused.
    return json->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }

  absl::Status NotFound(std::string_view name) const {
    return absl::NotFoundError(core::Cat(kind_, " \"", name, "\": not found"));
  }

  absl::StatusOr<int64_t> Conflict(std::string_view name, int64_t expected) const {
    BERTH_ASSIGN_OR_RETURN(GetResponse current, store_->Get(Key(name)));
    if (!current.kv.has_value()) return NotFound(name);
    return absl::AbortedError(core::Cat(kind_, " \"", name, "\": changed since revision ", expected,
                                        " (now at ", current.kv->mod_revision,
                                        "); read it again and retry"));
  }

  Store* store_;
  std::string kind_;
  std::string prefix_;
};

}  // namespace berth::state
