#include "main/admin_cmd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cli/cli.h"
#include "core/json.h"
#include "core/status.h"
#include "core/strings.h"
#include "runtime/host/run.h"
#include "state/copy.h"
#include "state/etcd/etcd_store.h"
#include "state/snapshot.h"
#include "state/sqlite_store.h"

namespace berth {

namespace fs = std::filesystem;
using core::Cat;
using core::Command;
using core::FlagDef;
using core::FlagType;
using core::Invocation;
using core::Json;

namespace {

std::string Mib(int64_t bytes) {
  return absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

// Progress of a long copy on stderr: a line at most every second (and the last one), as text or,
// with --json, as {"progress": {"what", "done", "total"}} objects.
class ProgressLine {
 public:
  ProgressLine(Invocation& inv, std::string what) : inv_(inv), what_(std::move(what)) {}

  void Report(int64_t done, int64_t total, std::string_view unit) {
    const absl::Time now = absl::Now();
    const bool last = total > 0 && done >= total;
    if (!last && now - last_ < absl::Seconds(1)) return;
    if (last && finished_) return;
    finished_ = last;
    last_ = now;
    if (inv_.json()) {
      inv_.err() << Json{{"progress", {{"what", what_}, {"done", done}, {"total", total}}}}.dump()
                 << "\n";
    } else if (unit == "bytes") {
      inv_.err() << "berth: " << what_ << ": " << Mib(done);
      if (total > 0) inv_.err() << " of " << Mib(total) << " (" << done * 100 / total << "%)";
      inv_.err() << "\n";
    } else {
      inv_.err() << "berth: " << what_ << ": " << done << " of " << total << " " << unit;
      if (total > 0) inv_.err() << " (" << done * 100 / total << "%)";
      inv_.err() << "\n";
    }
    inv_.err().flush();
  }

 private:
  Invocation& inv_;
  const std::string what_;
  absl::Time last_ = absl::InfinitePast();
  bool finished_ = false;
};

Json InfoJson(const state::SnapshotInfo& info) {
  return Json{{"format", std::string(state::SnapshotFormatName(info.format))},
              {"bytes", info.bytes},
              {"revision", info.revision},
              {"keys", info.keys}};
}

int64_t FileSize(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

bool NonEmptyDir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && !fs::is_empty(path, ec);
}

// The file a snapshot store URL names: sqlite://PATH.
std::optional<std::string> SqlitePath(std::string_view url) {
  if (!absl::StartsWith(core::AbslView(url), "sqlite://")) return std::nullopt;
  return std::string(url.substr(9));
}

absl::Status CheckStoreUrl(std::string_view v) {
  if (auto path = SqlitePath(v)) {
    if (path->empty()) return absl::InvalidArgumentError("sqlite:// needs a PATH: sqlite://PATH");
    return absl::OkStatus();
  }
  if (absl::StartsWith(core::AbslView(v), "etcd://")) return state::ParseEtcdUrl(v).status();
  return absl::InvalidArgumentError(Cat(
      "must be sqlite://PATH or etcd://HOST:PORT[,HOST:PORT...], got \"", v.substr(0, 64), "\""));
}

// Opens the store a URL names, for a command that runs while no server uses it.
absl::StatusOr<std::unique_ptr<state::Store>> OpenStore(std::string_view url, bool must_exist) {
  if (auto path = SqlitePath(url)) {
    if (must_exist && FileSize(*path) <= 0) {
      return absl::NotFoundError(Cat("store ", url, ": no SQLite store at ", *path));
    }
    absl::StatusOr<std::unique_ptr<state::SqliteStore>> store = state::SqliteStore::Open(*path);
    if (!store.ok()) {
      if (absl::IsFailedPrecondition(store.status())) {
        return absl::FailedPreconditionError(
            Cat(store.status().message(),
                "; a running server holds it: stop it first, or save a snapshot through the "
                "server (without --store)"));
      }
      return store.status();
    }
    return std::unique_ptr<state::Store>(std::move(*store));
  }
  BERTH_ASSIGN_OR_RETURN(std::vector<std::string> endpoints, state::ParseEtcdUrl(url));
  BERTH_ASSIGN_OR_RETURN(std::unique_ptr<state::EtcdStore> store,
                         state::EtcdStore::Open(std::move(endpoints)));
  return std::unique_ptr<state::Store>(std::move(store));
}

// Checks a downloaded or saved snapshot file: its format, and for SQLite that it is a whole
// Berth store.
absl::StatusOr<state::SnapshotInfo> CheckSnapshot(const std::string& path) {
  BERTH_ASSIGN_OR_RETURN(state::SnapshotFormat format, state::DetectSnapshotFormat(path));
  if (format == state::SnapshotFormat::kSqlite) return state::InspectSqliteSnapshot(path);
  return state::SnapshotInfo{.format = format, .bytes = FileSize(path)};
}

int PrintSaved(Invocation& inv, const std::string& file, const state::SnapshotInfo& info,
               absl::Duration took) {
  if (inv.json()) {
    Json out = InfoJson(info);
    out["file"] = file;
    out["seconds"] = absl::ToDoubleSeconds(took);
    inv.out() << out.dump() << "\n";
  } else {
    inv.out() << "saved " << state::SnapshotFormatName(info.format) << " snapshot " << file << ": "
              << info.keys << " keys at revision " << info.revision << ", " << Mib(info.bytes)
              << " in " << absl::StrFormat("%.1fs", absl::ToDoubleSeconds(took)) << "\n";
  }
  return core::kExitOk;
}

int RunSave(Invocation& inv) {
  const std::string file = inv.Arg("FILE");
  const absl::Time start = absl::Now();
  if (FileSize(file) >= 0 && !inv.Bool("force")) {
    return inv.Fail(Cat(file, " exists; pass --force to replace it"));
  }
  if (fs::is_directory(file)) return inv.Fail(Cat(file, " is a directory; name a file"));
  ProgressLine progress(inv, "snapshot");
  auto report = [&progress](int64_t done, int64_t total) { progress.Report(done, total, "bytes"); };

  if (inv.Given("store")) {
    // Straight from the store: etcd (which snapshots itself while it serves), or an SQLite
    // file no server holds.
    absl::StatusOr<std::unique_ptr<state::Store>> store =
        OpenStore(inv.String("store"), /*must_exist=*/true);
    if (!store.ok()) return inv.Fail(Cat("cannot open the store: ", store.status().message()));
    auto* source = dynamic_cast<state::Snapshotter*>(store->get());
    if (source == nullptr) return inv.Fail("this store cannot take snapshots");
    absl::StatusOr<state::SnapshotInfo> info = source->SaveSnapshot(file, report);
    if (!info.ok()) return inv.Fail(std::string(info.status().message()));
    return PrintSaved(inv, file, *info, absl::Now() - start);
  }

  // Through the server: it snapshots its own store while it serves and streams the file here.
  std::unique_ptr<api::Client> client = cli::MakeClient(inv, absl::Hours(1));
  if (!client) return core::kExitFailure;
  const std::string tmp = state::TempPathBeside(file);
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return inv.Fail(Cat("cannot create ", tmp, ": ", strerror(errno)));
  int64_t received = 0;
  std::string write_error;
  absl::StatusOr<api::SnapshotDownload> download =
      client->DownloadSnapshot([&](std::string_view chunk) {
        for (size_t off = 0; off < chunk.size();) {
          ssize_t w = write(fd, chunk.data() + off, chunk.size() - off);
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) {
            write_error = Cat("write ", tmp, ": ", strerror(errno));
            return false;
          }
          off += static_cast<size_t>(w);
        }
        received += static_cast<int64_t>(chunk.size());
        report(received, 0);
        return true;
      });
  close(fd);
  auto fail = [&](const std::string& message) {
    std::remove(tmp.c_str());
    return inv.Fail(message);
  };
  if (!write_error.empty()) return fail(write_error);
  if (!download.ok()) {
    std::remove(tmp.c_str());
    return cli::FailCall(inv, *client, download.status());
  }
  if (received != download->bytes) {
    return fail(Cat("the snapshot arrived incomplete (", received, " of ", download->bytes,
                    " bytes); try again"));
  }
  report(received, received);
  absl::StatusOr<state::SnapshotInfo> checked = CheckSnapshot(tmp);
  if (!checked.ok())
    return fail(Cat("the server sent a bad snapshot: ", checked.status().message()));
  absl::Status committed = state::CommitFile(tmp, file);
  if (!committed.ok()) return inv.Fail(std::string(committed.message()));
  state::SnapshotInfo info = *checked;
  info.bytes = received;
  info.revision = download->revision;
  info.keys = download->keys;
  return PrintSaved(inv, file, info, absl::Now() - start);
}

// `etcdctl snapshot status`: whether etcd can read the file, and its revision and key count.
absl::StatusOr<state::SnapshotInfo> InspectEtcdSnapshot(const std::string& file) {
  absl::StatusOr<runtime::host::RunResult> run = runtime::host::RunCommand(
      {"etcdctl", "snapshot", "status", file, "--write-out=json"}, {.timeout = absl::Minutes(5)});
  if (!run.ok()) return run.status();
  if (!run->ok()) {
    return absl::InvalidArgumentError(Cat("snapshot ", file,
                                          ": etcd cannot read it (etcdctl snapshot status ",
                                          runtime::host::DescribeExit(*run), ": ", run->err, ")"));
  }
  Json status = Json::parse(run->out, nullptr, false);
  state::SnapshotInfo info{.format = state::SnapshotFormat::kEtcd, .bytes = FileSize(file)};
  if (status.is_object()) {
    info.revision = std::max<int64_t>(status.value("revision", int64_t{0}) - 1, 0);
    info.keys = status.value("totalKey", int64_t{0});
  }
  return info;
}

int RestoreEtcd(Invocation& inv, const std::string& file, ProgressLine& progress) {
  if (!inv.Given("data-dir")) {
    return inv.UsageError(
        "an etcd snapshot restores into an etcd member's data directory: give --data-dir DIR");
  }
  const std::string dir = inv.String("data-dir");
  absl::StatusOr<state::SnapshotInfo> info = InspectEtcdSnapshot(file);
  if (!info.ok()) return inv.Fail(std::string(info.status().message()));
  const bool replace = NonEmptyDir(dir);
  if (replace && !inv.Bool("force")) {
    return inv.Fail(Cat("restore: ", dir,
                        " is not empty; restore into a new directory, or pass --force to replace "
                        "it (stop the etcd member that uses it first)"));
  }
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    return inv.Fail(Cat("restore: ", dir, " is not a directory"));
  }
  // etcdctl makes the data directory itself and refuses one that exists: restore beside it,
  // then swap.
  const std::string staging = Cat(dir, ".restoring-", getpid());
  fs::remove_all(staging, ec);
  progress.Report(0, info->bytes, "bytes");
  absl::StatusOr<runtime::host::RunResult> run = runtime::host::RunCommand(
      {"etcdctl", "snapshot", "restore", file, "--data-dir", staging, "--name",
       inv.String("etcd-name"), "--initial-cluster", inv.String("etcd-initial-cluster"),
       "--initial-advertise-peer-urls", inv.String("etcd-peer-url"), "--initial-cluster-token",
       inv.String("etcd-cluster-token")},
      {.timeout = absl::Minutes(30)});
  if (!run.ok() || !run->ok()) {
    fs::remove_all(staging, ec);
    return inv.Fail(Cat("restore: etcdctl snapshot restore ",
                        run.ok() ? Cat(runtime::host::DescribeExit(*run), ": ", run->err)
                                 : std::string(run.status().message())));
  }
  if (fs::exists(dir, ec)) {
    const std::string old = Cat(dir, ".replaced-", getpid());
    fs::rename(dir, old, ec);
    if (!ec) fs::rename(staging, dir, ec);
    if (ec) {
      fs::remove_all(staging, ec);
      return inv.Fail(Cat("restore: cannot move the restored data into ", dir, ": ", ec.message()));
    }
    fs::remove_all(old, ec);
  } else {
    fs::rename(staging, dir, ec);
    if (ec) {
      fs::remove_all(staging, ec);
      return inv.Fail(Cat("restore: cannot move the restored data into ", dir, ": ", ec.message()));
    }
  }
  progress.Report(info->bytes, info->bytes, "bytes");
  if (inv.json()) {
    Json out = InfoJson(*info);
    out["file"] = file;
    out["target"] = dir;
    inv.out() << out.dump() << "\n";
  } else {
    inv.out() << "restored etcd snapshot " << file << " (" << info->keys << " keys at revision "
              << info->revision << ") into etcd data directory " << dir
              << "; start the member with --data-dir " << dir << " and --name "
              << inv.String("etcd-name") << "\n";
  }
  return core::kExitOk;
}

int RunRestore(Invocation& inv) {
  const std::string file = inv.Arg("FILE");
  if (inv.Given("to") == inv.Given("data-dir")) {
    return inv.UsageError(
        "name where to restore, once: --data-dir DIR (a new server's data directory, the store "
        "becoming DIR/berth.db; or an etcd member's data directory) or --to sqlite://PATH");
  }
  absl::StatusOr<state::SnapshotFormat> format = state::DetectSnapshotFormat(file);
  if (!format.ok()) return inv.Fail(std::string(format.status().message()));
  ProgressLine progress(inv, "restore");
  if (*format == state::SnapshotFormat::kEtcd) {
    if (inv.Given("to")) {
      return inv.UsageError("--to names an SQLite store; an etcd snapshot takes --data-dir DIR");
    }
    return RestoreEtcd(inv, file, progress);
  }
  std::string target;
  if (inv.Given("to")) {
    std::optional<std::string> path = SqlitePath(inv.String("to"));
    if (!path) return inv.UsageError("--to must be sqlite://PATH for an SQLite snapshot");
    target = *path;
  } else {
    const std::string dir = inv.String("data-dir");
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return inv.Fail(Cat("cannot create data directory ", dir, ": ", ec.message()));
    target = dir + "/berth.db";
  }
  const absl::Time start = absl::Now();
  absl::StatusOr<state::SnapshotInfo> info = state::RestoreSqliteSnapshot(
      file, target,
      {.force = inv.Bool("force"), .progress = [&progress](int64_t done, int64_t total) {
         progress.Report(done, total, "bytes");
       }});
  if (!info.ok()) return inv.Fail(std::string(info.status().message()));
  if (inv.json()) {
    Json out = InfoJson(*info);
    out["file"] = file;
    out["target"] = target;
    out["seconds"] = absl::ToDoubleSeconds(absl::Now() - start);
    inv.out() << out.dump() << "\n";
  } else {
    inv.out() << "restored " << file << " (" << info->keys << " keys at revision " << info->revision
              << ") into " << target << " in "
              << absl::StrFormat("%.1fs", absl::ToDoubleSeconds(absl::Now() - start)) << "\n";
  }
  return core::kExitOk;
}

int RunMigrate(Invocation& inv) {
  const std::string from = inv.String("from");
  const std::string to = inv.String("to");
  if (from == to) return inv.UsageError("--from and --to name the same store");
  absl::StatusOr<std::unique_ptr<state::Store>> source = OpenStore(from, /*must_exist=*/true);
  if (!source.ok()) return inv.Fail(Cat("cannot open --from: ", source.status().message()));
  absl::StatusOr<std::unique_ptr<state::Store>> target = OpenStore(to, /*must_exist=*/false);
  if (!target.ok()) return inv.Fail(Cat("cannot open --to: ", target.status().message()));
  ProgressLine progress(inv, "migrate");
  const absl::Time start = absl::Now();
  absl::StatusOr<state::CopyResult> copied = state::CopyStore(
      **source, **target,
      {.force = inv.Bool("force"), .progress = [&progress](int64_t done, int64_t total) {
         progress.Report(done, total, "keys");
       }});
  if (!copied.ok()) return inv.Fail(std::string(copied.status().message()));
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (inv.json()) {
    inv.out() << Json{{"from", from},
                      {"to", to},
                      {"keys", copied->keys},
                      {"bytes", copied->bytes},
                      {"skipped_leased", copied->skipped_leased},
                      {"replaced", copied->replaced},
                      {"source_revision", copied->source_revision},
                      {"target_revision", copied->target_revision},
                      {"seconds", seconds}}
                     .dump()
              << "\n";
  } else {
    inv.out() << "migrated " << copied->keys << " keys (" << Mib(copied->bytes) << ") from " << from
              << " to " << to << " in " << absl::StrFormat("%.1fs", seconds)
              << "; the target holds exactly them";
    if (copied->skipped_leased > 0) {
      inv.out() << "; " << copied->skipped_leased
                << " keys held by leases were left out (their owners write them again)";
    }
    inv.out() << "\nstart the servers with --store " << to << "\n";
  }
  return core::kExitOk;
}

const FlagDef kForce = {.name = "force", .type = FlagType::kBool, .help = ""};

FlagDef Force(std::string help) {
  FlagDef f = kForce;
  f.help = std::move(help);
  return f;
}

Command SnapshotCommand() {
  std::vector<FlagDef> save_flags = cli::ServerFlags();
  save_flags.push_back(
      {.name = "store",
       .help = "save straight from this store instead of through the server: etcd://HOST:PORT\n"
               "(etcd snapshots itself while it serves) or sqlite://PATH (only while no server\n"
               "has it open)",
       .value_name = "URL",
       .check = CheckStoreUrl});
  save_flags.push_back(Force("replace FILE if it exists"));
  return Command{
      .name = "snapshot",
      .summary = "save and restore snapshots of the control plane's store",
      .subcommands = {
          Command{
              .name = "save",
              .summary = "save a consistent snapshot of the live control plane to FILE",
              .description =
                  "Asks the server (--server, BERTH_ADDR or the local dev server; the admin\n"
                  "token) for a snapshot of its whole store, taken while it serves: SQLite's\n"
                  "online backup API for an sqlite:// store, etcd's own snapshot for etcd://.\n"
                  "The file is written under a temporary name and renamed once it is whole and\n"
                  "checked. Progress goes to stderr. The tokens in the server's data directory\n"
                  "(admin.token, join.token) are not part of the store: keep copies of them too.",
              .flags = save_flags,
              .args = {{.name = "FILE", .help = "where the snapshot is written"}},
              .run = RunSave},
          Command{
              .name = "restore",
              .summary = "turn a snapshot into a new server's store or an etcd member's data",
              .synopsis = "FILE (--data-dir DIR | --to sqlite://PATH) [--force]",
              .description =
                  "An SQLite snapshot becomes the store of a server: DIR/berth.db with --data-dir\n"
                  "DIR (start `berth serve --data-dir DIR` after), or the file --to names. An\n"
                  "etcd snapshot becomes an etcd member's data directory (--data-dir DIR, through\n"
                  "`etcdctl snapshot restore`); restore it once per member of the new cluster,\n"
                  "with that member's --etcd-name, the same --etcd-initial-cluster, and start\n"
                  "each member on its directory. The file is checked first and a file that is\n"
                  "not a snapshot is refused, naming the problem. A target that holds data is\n"
                  "refused unless --force, and a store a running server holds always is.\n"
                  "After a restore the agents reconcile: work the restored store does not know\n"
                  "is stopped, work it knows is re-adopted.",
              .flags = {{.name = "data-dir",
                         .help = "the new server's data directory (SQLite), or the etcd member's",
                         .value_name = "DIR"},
                        {.name = "to",
                         .help = "the SQLite store file to restore into, as sqlite://PATH",
                         .value_name = "URL",
                         .check = CheckStoreUrl},
                        Force("replace a target that already holds data"),
                        {.name = "etcd-name",
                         .help = "etcd: the member's name (etcd --name)",
                         .default_value = "default",
                         .value_name = "NAME"},
                        {.name = "etcd-initial-cluster",
                         .help = "etcd: every member of the new cluster, NAME=PEER_URL,...",
                         .default_value = "default=http://localhost:2380",
                         .value_name = "MEMBERS"},
                        {.name = "etcd-peer-url",
                         .help =
                             "etcd: this member's peer URL (etcd --initial-advertise-peer-urls)",
                         .default_value = "http://localhost:2380",
                         .value_name = "URL"},
                        {.name = "etcd-cluster-token",
                         .help = "etcd: the new cluster's token (etcd --initial-cluster-token)",
                         .default_value = "etcd-cluster",
                         .value_name = "TOKEN"}},
              .args = {{.name = "FILE", .help = "a file written by `berth admin snapshot save`"}},
              .run = RunRestore}}};
}

Command MigrateCommand() {
  return Command{
      .name = "migrate",
      .summary = "copy every key of a stopped server's store into another (SQLite to etcd)",
      .synopsis = "--from sqlite://PATH --to etcd://HOST:PORT[,...] [--force]",
      .description =
          "Moves an embedded deployment to etcd: stop the server, migrate, then start the\n"
          "servers with --store set to the target. Every key is copied with its value, in\n"
          "transactions of at most 100 keys, with a progress line; then both stores are read\n"
          "back and compared key by key. Revisions start afresh in the target (agents pick up\n"
          "the new numbering on their next request). Keys held by a lease (a live process's\n"
          "session) are left out: their owners write them again on the new store. A target\n"
          "that holds any key is refused unless --force, which deletes what it holds first.",
      .flags = {{.name = "from",
                 .help = "the store to copy: sqlite://PATH (no server may hold it)",
                 .value_name = "URL",
                 .required = true,
                 .check = CheckStoreUrl},
                {.name = "to",
                 .help = "the store to fill: etcd://HOST:PORT[,HOST:PORT...] (or sqlite://PATH)",
                 .value_name = "URL",
                 .required = true,
                 .check = CheckStoreUrl},
                Force("replace what the target holds")},
      .run = RunMigrate};
}

absl::Status CheckEvery(std::string_view v) {
  absl::Duration d;
  if (!absl::ParseDuration(std::string(v), &d) || d < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        Cat("--snapshot-every must be a duration of at least 1s, like 1h, got \"", v.substr(0, 64),
            "\""));
  }
  return absl::OkStatus();
}

}  // namespace

Command AdminCommand() {
  return Command{.name = "admin",
                 .section = "Server and agents",
                 .summary = "back up, restore and move the control plane's store",
                 .subcommands = {SnapshotCommand(), MigrateCommand()}};
}

std::vector<FlagDef> SnapshotScheduleFlags() {
  return {{.name = "snapshot-every",
           .type = FlagType::kDuration,
           .help = "save a snapshot of the store this often (e.g. 1h); the first when none is\n"
                   "kept yet, then every interval after the newest one; with several servers on\n"
                   "one store, only the leader takes them",
           .check = CheckEvery},
          {.name = "snapshot-keep",
           .type = FlagType::kInt,
           .help = "how many scheduled snapshots to keep; the oldest are deleted",
           .default_value = "24",
           .min = 1,
           .max = 100000},
          {.name = "snapshot-dir",
           .help = "where scheduled snapshots go, as berth-YYYYMMDDTHHMMSSZ.snapshot (default\n"
                   "DIR/snapshots)",
           .value_name = "DIR"}};
}

absl::StatusOr<std::unique_ptr<control::SnapshotSchedule>> StartSnapshotSchedule(
    const Invocation& flags, state::Store* store, const std::string& data_dir, core::Clock* clock,
    std::function<bool()> active) {
  if (!flags.Given("snapshot-every")) return nullptr;
  auto* source = dynamic_cast<state::Snapshotter*>(store);
  if (source == nullptr) {
    return absl::FailedPreconditionError("--snapshot-every: this store cannot take snapshots");
  }
  control::SnapshotScheduleOptions options{
      .dir = flags.Given("snapshot-dir") ? flags.String("snapshot-dir") : data_dir + "/snapshots",
      .every = flags.Duration("snapshot-every"),
      .keep = static_cast<int>(flags.Int("snapshot-keep")),
      .clock = clock,
      .active = std::move(active)};
  auto schedule = std::make_unique<control::SnapshotSchedule>(source, options);
  BERTH_RETURN_IF_ERROR(schedule->Start());
  return schedule;
}

}  // namespace berth
