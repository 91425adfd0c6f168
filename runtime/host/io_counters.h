// Per-task disk and network byte counters, read from the kernel: /proc/PID/io (storage I/O a
// process caused), /proc/PID/net/dev (the interfaces of the network namespace PID lives in) and
// a cgroup's (v2 io.stat, or its processes' /proc/PID/io under v1). Parsers are
// pure functions of the file's text; readers return nullopt when the file cannot be read.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace berth::runtime::host {

struct DiskBytes {
  int64_t read = 0;
  int64_t written = 0;
  bool operator==(const DiskBytes&) const = default;
};

// Counters of one interface as the namespace that holds it counts them.
struct NetDevBytes {
  int64_t rx = 0;
  int64_t tx = 0;
  bool operator==(const NetDevBytes&) const = default;
};

// read_bytes and write_bytes of /proc/PID/io (what reached or will reach storage).
std::optional<DiskBytes> ParseProcIo(std::string_view text);
std::optional<DiskBytes> ReadProcessIo(pid_t pid);

// Every interface of /proc/PID/net/dev by name.
std::optional<std::map<std::string, NetDevBytes>> ParseNetDev(std::string_view text);
std::optional<std::map<std::string, NetDevBytes>> ReadNetDev(pid_t pid);

// True when `pid` lives in a network namespace other than the caller's; nullopt when unreadable.
std::optional<bool> OwnNetworkNamespace(pid_t pid);

// rbytes and wbytes of cgroup v2 io.stat, summed over devices.
std::optional<DiskBytes> ParseIoStat(std::string_view text);
// The storage I/O of the cgroup at `path` (as runc's cgroupsPath: "/berth/x"): its v2 io.stat,
// which charges write-back to the cgroup that dirtied the pages; under cgroup v1, whose blkio
// charges buffered writes to the flusher, the sum of /proc/PID/io over the cgroup's live
// processes (from the pids controller).
std::optional<DiskBytes> ReadCgroupDiskBytes(std::string_view path);

}  // namespace berth::runtime::host
