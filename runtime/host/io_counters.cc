#include "runtime/host/io_counters.h"

#include <sys/stat.h>

#include <charconv>
#include <vector>

#include "core/strings.h"
#include "runtime/host/file.h"

namespace berth::runtime::host {
namespace {

// A whole non-negative decimal; nullopt otherwise.
std::optional<int64_t> Count(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

// The pieces of `text` between any of `delims`; empty pieces are dropped when `skip_empty`.
std::vector<std::string_view> Split(std::string_view text, std::string_view delims,
                                    bool skip_empty) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find_first_of(delims, start);
    if (end == std::string_view::npos) end = text.size();
    if (!skip_empty || end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::vector<std::string_view> Lines(std::string_view text) { return Split(text, "\n", true); }
std::vector<std::string_view> Words(std::string_view line) { return Split(line, " \t", true); }

std::optional<std::string> Read(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return std::nullopt;
  return *std::move(text);
}

}  // namespace

std::optional<DiskBytes> ParseProcIo(std::string_view text) {
  std::optional<int64_t> read, written;
  for (std::string_view line : Lines(text)) {
    std::vector<std::string_view> w = Words(line);
    if (w.size() != 2) continue;
    if (w[0] == "read_bytes:") read = Count(w[1]);
    if (w[0] == "write_bytes:") written = Count(w[1]);
  }
  if (!read || !written) return std::nullopt;
  return DiskBytes{.read = *read, .written = *written};
}

std::optional<DiskBytes> ReadProcessIo(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  std::optional<std::string> text = Read(core::Cat("/proc/", pid, "/io"));
  if (!text) return std::nullopt;
  return ParseProcIo(*text);
}

std::optional<std::map<std::string, NetDevBytes>> ParseNetDev(std::string_view text) {
  // Two header lines, then "  name: rx_bytes rx_packets ... (8 rx fields) tx_bytes ...".
  std::map<std::string, NetDevBytes> out;
  for (std::string_view line : Lines(text)) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::vector<std::string_view> name = Words(line.substr(0, colon));
    std::vector<std::string_view> f = Words(line.substr(colon + 1));
    if (name.size() != 1 || f.size() < 16) continue;
    std::optional<int64_t> rx = Count(f[0]), tx = Count(f[8]);
    if (!rx || !tx) return std::nullopt;
    out[std::string(name[0])] = NetDevBytes{.rx = *rx, .tx = *tx};
  }
  if (out.empty()) return std::nullopt;  // every namespace has lo
  return out;
}

std::optional<std::map<std::string, NetDevBytes>> ReadNetDev(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  std::optional<std::string> text = Read(core::Cat("/proc/", pid, "/net/dev"));
  if (!text) return std::nullopt;
  return ParseNetDev(*text);
}

std::optional<bool> OwnNetworkNamespace(pid_t pid) {
  struct stat theirs {};
  struct stat ours {};
  if (pid <= 0 || stat(core::Cat("/proc/", pid, "/ns/net").c_str(), &theirs) != 0 ||
      stat("/proc/self/ns/net", &ours) != 0) {
    return std::nullopt;
  }
  return theirs.st_ino != ours.st_ino || theirs.st_dev != ours.st_dev;
}

std::optional<DiskBytes> ParseIoStat(std::string_view text) {
  // "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0"; empty when no I/O yet.
  DiskBytes out;
  for (std::string_view line : Lines(text)) {
    std::vector<std::string_view> w = Words(line);
    for (size_t i = 1; i < w.size(); ++i) {
      size_t eq = w[i].find('=');
      if (eq == std::string_view::npos) return std::nullopt;
      std::string_view key = w[i].substr(0, eq);
      if (key != "rbytes" && key != "wbytes") continue;
      std::optional<int64_t> n = Count(w[i].substr(eq + 1));
      if (!n) return std::nullopt;
      (key == "rbytes" ? out.read : out.written) += *n;
    }
  }
  return out;
}

std::optional<DiskBytes> ReadCgroupDiskBytes(std::string_view path) {
  if (path.empty() || path.find("..") != std::string_view::npos) return std::nullopt;
  const std::string rel = path.front() == '/' ? std::string(path) : core::Cat("/", path);
  if (auto v2 = Read(core::Cat("/sys/fs/cgroup", rel, "/io.stat"))) return ParseIoStat(*v2);
  std::optional<std::string> procs = Read(core::Cat("/sys/fs/cgroup/pids", rel, "/cgroup.procs"));
  if (!procs) return std::nullopt;
  DiskBytes out;
  bool any = false;
  for (std::string_view line : Lines(*procs)) {
    std::optional<int64_t> pid = Count(line);
    if (!pid || *pid <= 0) continue;
    if (std::optional<DiskBytes> io = ReadProcessIo(static_cast<pid_t>(*pid))) {
      out.read += io->read;
      out.written += io->written;
      any = true;
    }
  }
  if (!any) return std::nullopt;
  return out;
}

}  // namespace berth::runtime::host
