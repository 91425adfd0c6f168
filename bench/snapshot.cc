// Snapshot cost: for stores holding N workloads (a workload record of about 1.5 KiB and its
// event each), the seconds SqliteStore::SaveSnapshot (SQLite's online backup API) and
// RestoreSqliteSnapshot take, against copying the same file with copy_file in the same run
// (the baseline). With --etcd, CopyStore from that SQLite store into the (empty) etcd cluster
// (what `berth admin migrate` does) and EtcdStore::SaveSnapshot are timed too; the cluster's
// keys are deleted afterwards. The last line is JSON.
//
// usage: bench_snapshot [--workloads=N[,N...]] [--etcd=etcd://HOST:PORT]
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "state/copy.h"
#include "state/sqlite_store.h"
#ifdef BERTH_BENCH_ETCD
#include "state/etcd/etcd_store.h"
#endif

namespace berth::state {
namespace {

struct Row {
  int workloads = 0;
  int64_t bytes = 0;
  double save_s = 0, restore_s = 0, copy_s = 0;
  double migrate_s = -1, etcd_save_s = -1;
};

template <typename F>
double Seconds(F f) {
  absl::Time start = absl::Now();
  f();
  return absl::ToDoubleSeconds(absl::Now() - start);
}

[[noreturn]] void Die(const absl::Status& s) {
  fprintf(stderr, "bench_snapshot: %s\n", s.ToString().c_str());
  exit(1);
}

int Main(int argc, char** argv) {
  std::vector<int> sizes = {1000, 10000};
  std::string etcd_url;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--workloads=", 0) == 0) {
      sizes.clear();
      for (absl::string_view part : absl::StrSplit(arg.substr(12), ',')) {
        int n = 0;
        if (!absl::SimpleAtoi(part, &n) || n <= 0) {
          fprintf(stderr, "bench_snapshot: --workloads: want N[,N...], got %s\n", arg.c_str());
          return 2;
        }
        sizes.push_back(n);
      }
    }
    if (arg.rfind("--etcd=", 0) == 0) etcd_url = arg.substr(7);
  }
  std::string dir =
      (std::filesystem::temp_directory_path() / "berth-bench-snapshot-XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) {
    perror("mkdtemp");
    return 1;
  }
  StoreOptions options;
  options.lease_tick_interval = absl::ZeroDuration();
  const std::string record(1500, 'w');
  const std::string event(300, 'e');
  std::vector<Row> rows;
  for (int n : sizes) {
    Row row{.workloads = n};
    const std::string db = dir + "/berth.db", snap = dir + "/snap.db";
    const std::string restored = dir + "/restored.db", copied = dir + "/copied.db";
    {
      auto store = SqliteStore::Open(db, options);
      if (!store.ok()) Die(store.status());
      for (int first = 0; first < n; first += 50) {
        TxnRequest fill;
        for (int i = first; i < std::min(n, first + 50); ++i) {
          fill.then_ops.push_back(Op::Put("/workloads/w-" + std::to_string(i), record));
          fill.then_ops.push_back(Op::Put("/events/" + std::to_string(1000000 + i), event));
        }
        if (auto r = (*store)->Txn(fill); !r.ok()) Die(r.status());
      }
      row.save_s = Seconds([&] {
        auto info = (*store)->SaveSnapshot(snap);
        if (!info.ok()) Die(info.status());
        row.bytes = info->bytes;
      });
#ifdef BERTH_BENCH_ETCD
      if (!etcd_url.empty()) {
        auto etcd = OpenEtcdStore(etcd_url);
        if (!etcd.ok()) Die(etcd.status());
        row.migrate_s = Seconds([&] {
          auto copied_keys = CopyStore(**store, **etcd, {});
          if (!copied_keys.ok()) Die(copied_keys.status());
        });
        auto* snapshotter = dynamic_cast<Snapshotter*>(etcd->get());
        row.etcd_save_s = Seconds([&] {
          auto info = snapshotter->SaveSnapshot(dir + "/etcd.snap");
          if (!info.ok()) Die(info.status());
        });
        if (auto d = (*etcd)->DeletePrefix(""); !d.ok()) Die(d.status());
      }
#endif
    }
    row.restore_s = Seconds([&] {
      auto info = RestoreSqliteSnapshot(snap, restored, {});
      if (!info.ok()) Die(info.status());
    });
    row.copy_s = Seconds([&] { std::filesystem::copy_file(snap, copied); });
    rows.push_back(row);
    for (const char* f : {"/berth.db", "/berth.db-wal", "/berth.db-shm", "/snap.db", "/restored.db",
                          "/restored.db-wal", "/restored.db-shm", "/copied.db", "/etcd.snap"}) {
      std::filesystem::remove(dir + f);
    }
  }
  std::filesystem::remove_all(dir);

  printf("%10s %10s %10s %11s %10s %12s %14s %10s %10s\n", "workloads", "MiB", "save s",
         "restore s", "copy s", "save/copy", "restore/copy", "migrate s", "etcd save s");
  std::string json = "{\"bench\":\"snapshot\",\"rows\":[";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    const double copy = std::max(r.copy_s, 1e-6);
    printf("%10d %10.1f %10.3f %11.3f %10.4f %12.1f %14.1f %10.3f %10.3f\n", r.workloads,
           static_cast<double>(r.bytes) / (1 << 20), r.save_s, r.restore_s, r.copy_s,
           r.save_s / copy, r.restore_s / copy, r.migrate_s, r.etcd_save_s);
    char line[512];
    snprintf(line, sizeof line,
             "%s{\"workloads\":%d,\"bytes\":%lld,\"save_s\":%.4f,\"restore_s\":%.4f,"
             "\"copy_s\":%.5f,\"ratio_save_copy\":%.2f,\"ratio_restore_copy\":%.2f,"
             "\"migrate_s\":%.4f,\"etcd_save_s\":%.4f}",
             i == 0 ? "" : ",", r.workloads, static_cast<long long>(r.bytes), r.save_s, r.restore_s,
             r.copy_s, r.save_s / copy, r.restore_s / copy, r.migrate_s, r.etcd_save_s);
    json += line;
  }
  json += "]}";
  printf("(migrate and etcd save are -1 without --etcd)\n%s\n", json.c_str());
  return 0;
}

}  // namespace
}  // namespace berth::state

int main(int argc, char** argv) { return berth::state::Main(argc, argv); }
