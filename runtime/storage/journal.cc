#include "runtime/storage/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/strings.h"
#include "nlohmann/json.hpp"
#include "runtime/host/file.h"

namespace berth::runtime::storage {
namespace {

namespace fs = std::filesystem;
using core::Cat;

absl::Status SyncPath(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(Cat("journal: open ", path, ": ", std::strerror(errno)));
  int rc = fsync(fd);
  close(fd);
  if (rc != 0) return absl::InternalError(Cat("journal: fsync ", path, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

nlohmann::json ToJson(const JournalRecord& r) {
  nlohmann::json renames = nlohmann::json::array();
  for (const auto& [from, to] : r.renames) renames.push_back({{"from", from}, {"to", to}});
  return {{"id", r.id},           {"operation", r.operation}, {"volume", r.volume},
          {"temp", r.temp_paths}, {"renames", renames},       {"committed", r.committed}};
}

}  // namespace

std::string Journal::PathOf(const JournalRecord& record) const {
  return Cat(directory_, "/", record.id, ".json");
}

absl::Status Journal::Write(const JournalRecord& record) const {
  std::error_code ec;
  fs::create_directories(directory_, ec);
  if (ec) return absl::InternalError(Cat("journal: mkdir ", directory_, ": ", ec.message()));
  absl::Status written = host::WriteFileAtomically(PathOf(record), ToJson(record).dump());
  if (!written.ok()) {
    return absl::Status(written.code(), Cat("journal: ", std::string(written.message())));
  }
  return absl::OkStatus();
}

absl::Status Journal::Remove(const JournalRecord& record) const {
  std::error_code ec;
  fs::remove(PathOf(record), ec);
  if (ec) return absl::InternalError(Cat("journal: remove ", PathOf(record), ": ", ec.message()));
  return SyncPath(directory_, O_RDONLY | O_DIRECTORY);
}

absl::StatusOr<std::vector<JournalRecord>> Journal::Pending() const {
  std::vector<JournalRecord> out;
  std::error_code ec;
  if (!fs::exists(directory_, ec)) return out;
  for (const auto& entry : fs::directory_iterator(directory_, ec)) {
    std::string name = entry.path().filename().string();
    // ".json.tmp.XXXXXX": a temporary file of host::WriteFileAtomically; ".json.tmp" from older
    // versions.
    if (name.ends_with(".json.tmp") || name.find(".json.tmp.") != std::string::npos) {
      // A record that never became durable: its operation had not started any step.
      fs::remove(entry.path(), ec);
      continue;
    }
    if (!name.ends_with(".json")) continue;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::DataLossError(Cat("journal: record ", entry.path().string(), " is corrupt"));
    }
    JournalRecord r;
    r.id = j.value("id", "");
    r.operation = j.value("operation", "");
    r.volume = j.value("volume", "");
    r.committed = j.value("committed", false);
    if (j.contains("temp") && j["temp"].is_array()) {
      for (const auto& t : j["temp"]) {
        if (t.is_string()) r.temp_paths.push_back(t.get<std::string>());
      }
    }
    if (j.contains("renames") && j["renames"].is_array()) {
      for (const auto& rn : j["renames"]) {
        if (rn.is_object()) r.renames.emplace_back(rn.value("from", ""), rn.value("to", ""));
      }
    }
    if (r.id.empty()) r.id = name.substr(0, name.size() - 5);
    out.push_back(std::move(r));
  }
  return out;
}

absl::Status Journal::Resolve(const JournalRecord& record) const {
  std::error_code ec;
  if (record.committed) {
    for (const auto& [from, to] : record.renames) {
      if (fs::exists(from, ec)) {
        fs::rename(from, to, ec);
        if (ec)
          return absl::InternalError(Cat("journal: finish rename ", from, ": ", ec.message()));
      }
    }
  }
  for (const auto& t : record.temp_paths) {
    fs::remove(t, ec);
    if (ec) return absl::InternalError(Cat("journal: remove ", t, ": ", ec.message()));
  }
  return Remove(record);
}

}  // namespace berth::runtime::storage
