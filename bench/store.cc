// Store throughput: puts/s (one writer and several concurrent writers) and gets/s of
// SqliteStore, with MemoryStore measured in the same run as the baseline. With --etcd, EtcdStore
// on that cluster is measured too, against SqliteStore. The last line is JSON.
//
// usage: bench_store [--seconds=S] [--etcd=etcd://HOST:PORT]   (each phase runs about S seconds;
//        default 2; the etcd cluster gets keys under /bench/)
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "state/memory_store.h"
#include "state/sqlite_store.h"
#ifdef BERTH_BENCH_ETCD
#include "state/etcd/etcd_store.h"
#endif

namespace berth::state {
namespace {

constexpr int kKeys = 1000;

std::string KeyFor(int i) { return "/bench/workloads/w-" + std::to_string(i % kKeys); }

// Runs `threads` loops of `op` for about `seconds`; returns operations per second.
template <typename Op>
double Rate(int threads, double seconds, Op op) {
  std::atomic<bool> stop{false};
  std::atomic<int64_t> total{0};
  std::vector<std::thread> workers;
  absl::Time start = absl::Now();
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      int64_t n = 0;
      for (int i = t * 7919; !stop.load(std::memory_order_relaxed); ++i) {
        if (!op(i)) {
          fprintf(stderr, "bench_store: operation failed\n");
          exit(1);
        }
        ++n;
      }
      total += n;
    });
  }
  while (absl::Now() - start < absl::Seconds(seconds)) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  stop = true;
  for (std::thread& w : workers) w.join();
  return static_cast<double>(total.load()) / absl::ToDoubleSeconds(absl::Now() - start);
}

struct Figures {
  double puts = 0;
  double puts_concurrent = 0;
  double gets = 0;
};

Figures Measure(Store& store, double seconds, int writers) {
  const std::string value(512, 'v');
  Figures f;
  f.puts = Rate(1, seconds, [&](int i) { return store.Put(KeyFor(i), value).ok(); });
  f.puts_concurrent =
      Rate(writers, seconds, [&](int i) { return store.Put(KeyFor(i), value).ok(); });
  // Gets read keys that all exist.
  // In transactions of 100: etcd takes at most 128 ops in one.
  for (int first = 0; first < kKeys; first += 100) {
    TxnRequest fill;
    for (int i = first; i < std::min(kKeys, first + 100); ++i) {
      fill.then_ops.push_back(Op::Put(KeyFor(i), value));
    }
    if (!store.Txn(fill).ok()) exit(1);
  }
  f.gets = Rate(1, seconds, [&](int i) {
    auto r = store.Get(KeyFor(i));
    return r.ok() && r->kv.has_value();
  });
  return f;
}

int Main(int argc, char** argv) {
  double seconds = 2;
  std::string etcd_url;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--seconds=", 0) == 0) seconds = std::stod(arg.substr(10));
    if (arg.rfind("--etcd=", 0) == 0) etcd_url = arg.substr(7);
  }
  constexpr int kWriters = 8;
  StoreOptions options;
  options.lease_tick_interval = absl::ZeroDuration();

  MemoryStore memory(options);
  Figures mem = Measure(memory, seconds, kWriters);

  std::string dir = (std::filesystem::temp_directory_path() / "berth-bench-store-XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) {
    perror("mkdtemp");
    return 1;
  }
  Figures sql;
  {
    auto sqlite = SqliteStore::Open(dir + "/state.db", options);
    if (!sqlite.ok()) {
      fprintf(stderr, "bench_store: %s\n", sqlite.status().ToString().c_str());
      return 1;
    }
    sql = Measure(**sqlite, seconds, kWriters);
  }
  std::filesystem::remove_all(dir);

  printf("%-12s %14s %22s %14s\n", "store", "puts/s (1)", "puts/s (8 writers)", "gets/s");
  printf("%-12s %14.0f %22.0f %14.0f\n", "memory", mem.puts, mem.puts_concurrent, mem.gets);
  printf("%-12s %14.0f %22.0f %14.0f\n", "sqlite", sql.puts, sql.puts_concurrent, sql.gets);
  printf("ratio sqlite/memory: puts %.4f, concurrent puts %.4f, gets %.3f\n", sql.puts / mem.puts,
         sql.puts_concurrent / mem.puts_concurrent, sql.gets / mem.gets);
  if (!etcd_url.empty()) {
#ifdef BERTH_BENCH_ETCD
    auto etcd = OpenEtcdStore(etcd_url, EtcdStoreOptions{.store = options});
    if (!etcd.ok()) {
      fprintf(stderr, "bench_store: %s\n", etcd.status().ToString().c_str());
      return 1;
    }
    Figures e = Measure(**etcd, seconds, kWriters);
    if (!(*etcd)->DeletePrefix("/bench/").ok()) return 1;
    printf("%-12s %14.0f %22.0f %14.0f\n", "etcd", e.puts, e.puts_concurrent, e.gets);
    printf("ratio etcd/sqlite: puts %.4f, concurrent puts %.4f, gets %.3f\n", e.puts / sql.puts,
           e.puts_concurrent / sql.puts_concurrent, e.gets / sql.gets);
#else
    fprintf(stderr, "bench_store: built without EtcdStore\n");
    return 1;
#endif
  }
  printf(
      "{\"bench\":\"store\",\"memory_puts_per_s\":%.0f,\"memory_concurrent_puts_per_s\":%.0f,"
      "\"memory_gets_per_s\":%.0f,\"sqlite_puts_per_s\":%.0f,\"sqlite_concurrent_puts_per_s\":%.0f,"
      "\"sqlite_gets_per_s\":%.0f,\"ratio_puts\":%.5f,\"ratio_concurrent_puts\":%.5f,"
      "\"ratio_gets\":%.4f}\n",
      mem.puts, mem.puts_concurrent, mem.gets, sql.puts, sql.puts_concurrent, sql.gets,
      sql.puts / mem.puts, sql.puts_concurrent / mem.puts_concurrent, sql.gets / mem.gets);
  return 0;
}

}  // namespace
}  // namespace berth::state

int main(int argc, char** argv) { return berth::state::Main(argc, argv); }
