// Storage driver overhead: each phase times QemuStorageDriver against the bare qemu-img command
// it wraps (the baseline, measured in the same run) and prints the ratio. The last line is JSON.
//
// usage: bench_disk [--count=N]   (creates and snapshots per phase; default 20)
#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/strings.h"
#include "runtime/host/executor.h"
#include "runtime/storage/qemu_storage_driver.h"

namespace berth::runtime::storage {
namespace {

using core::Cat;

double MillisPerOp(int n, const std::function<bool(int)>& op) {
  absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) {
    if (!op(i)) {
      std::fprintf(stderr, "bench_disk: operation %d failed\n", i);
      std::exit(1);
    }
  }
  return absl::ToDoubleMilliseconds(absl::Now() - start) / n;
}

bool Ok(const std::vector<std::string>& argv) {
  return host::RunOk(host::RealExecutor(), argv).ok();
}

int Main(int argc, char** argv) {
  int count = 20;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--count=", 8) == 0) count = std::max(1, std::atoi(argv[i] + 8));
  }
  char tmpl[] = "/tmp/berth-bench-disk-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  const std::string dir = tmpl;
  const std::string bare = dir + "/bare";
  std::filesystem::create_directories(bare);
  QemuStorageDriver impl;
  StorageDriver& driver = impl;
  if (!driver.EnsurePool({.name = "p", .directory = dir + "/pool", .capacity_mib = 1 << 20}).ok()) {
    return 1;
  }

  double create_base = MillisPerOp(count, [&](int i) {
    return Ok({"qemu-img", "create", "-q", "-f", "qcow2", Cat(bare, "/v", i, ".qcow2"), "1024M"});
  });
  double create_driver = MillisPerOp(count, [&](int i) {
    return driver.CreateVolume({.pool = "p", .name = Cat("v", i), .size_mib = 1024}).ok();
  });

  double snap_base = MillisPerOp(count, [&](int i) {
    return Ok({"qemu-img", "snapshot", "-q", "-c", Cat("s", i), bare + "/v0.qcow2"});
  });
  double snap_driver =
      MillisPerOp(count, [&](int i) { return driver.CreateSnapshot("p", "v0", Cat("s", i)).ok(); });

  // 64 MiB of data to back up.
  const std::string pool_v1 = dir + "/pool/volumes/v1.qcow2";
  if (!Ok({"qemu-io", "-f", "qcow2", "-c", "write -q -P 5 0 64M", bare + "/v1.qcow2"}) ||
      !Ok({"qemu-io", "-f", "qcow2", "-c", "write -q -P 5 0 64M", pool_v1})) {
    return 1;
  }
  const int backups = std::max(1, count / 5);
  double backup_base = MillisPerOp(backups, [&](int i) {
    return Ok({"qemu-img", "convert", "-c", "-O", "qcow2", bare + "/v1.qcow2",
               Cat(bare, "/b", i, ".qcow2")});
  });
  double backup_driver = MillisPerOp(backups, [&](int i) {
    return driver.ExportBackup("p", "v1", {.destination = Cat(dir, "/b", i, ".backup")}).ok();
  });
  std::filesystem::remove_all(dir);

  std::printf("create qcow2 1Gi: driver %.2f ms, qemu-img %.2f ms, ratio %.2f\n", create_driver,
              create_base, create_driver / create_base);
  std::printf("snapshot:         driver %.2f ms, qemu-img %.2f ms, ratio %.2f\n", snap_driver,
              snap_base, snap_driver / snap_base);
  std::printf("backup 64Mi:      driver %.2f ms, qemu-img %.2f ms, ratio %.2f\n", backup_driver,
              backup_base, backup_driver / backup_base);
  std::printf(
      "{\"bench\":\"disk\",\"count\":%d,\"create_ms\":%.3f,\"create_baseline_ms\":%.3f,"
      "\"create_ratio\":%.3f,\"snapshot_ms\":%.3f,\"snapshot_baseline_ms\":%.3f,"
      "\"snapshot_ratio\":%.3f,\"backup_ms\":%.3f,\"backup_baseline_ms\":%.3f,"
      "\"backup_ratio\":%.3f}\n",
      count, create_driver, create_base, create_driver / create_base, snap_driver, snap_base,
      snap_driver / snap_base, backup_driver, backup_base, backup_driver / backup_base);
  return 0;
}

}  // namespace
}  // namespace berth::runtime::storage

int main(int argc, char** argv) { return berth::runtime::storage::Main(argc, argv); }
