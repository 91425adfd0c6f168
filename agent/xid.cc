#include "agent/xid.h"

#include <sys/stat.h>

#include <cctype>
#include <fstream>

#include "agent/inventory.h"

namespace berth::agent {
namespace {

int64_t FileSize(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_size);
}

// The bus part of a PCI address: everything before the function's '.'.
std::string_view BusOf(std::string_view address) { return address.substr(0, address.rfind('.')); }

}  // namespace

std::optional<XidEvent> ParseXidLine(std::string_view line) {
  constexpr std::string_view kMark = "NVRM: Xid (";
  const size_t at = line.find(kMark);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = line.substr(at + kMark.size());
  const size_t close = rest.find("):");
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view bus = rest.substr(0, close);
  if (bus.substr(0, 4) == "PCI:") bus.remove_prefix(4);
  rest.remove_prefix(close + 2);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  XidEvent e;
  size_t digits = 0;
  while (digits < rest.size() && digits < 6 &&
         std::isdigit(static_cast<unsigned char>(rest[digits]))) {
    e.xid = e.xid * 10 + (rest[digits] - '0');
    ++digits;
  }
  if (digits == 0 || bus.empty()) return std::nullopt;
  // Add a function so the address normalizes like a device's, then drop it again.
  e.pci_bus = std::string(BusOf(NormalizePciAddress(std::string(bus) + ".0")));
  rest.remove_prefix(digits);
  // ", pid=1234, name=python, <message>": the driver's own words are what is left.
  for (std::string_view field : {std::string_view(", pid="), std::string_view(", name=")}) {
    if (rest.substr(0, field.size()) != field) continue;
    const size_t next = rest.find(", ", field.size());
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next);
  }
  if (rest.substr(0, 2) == ", ") rest.remove_prefix(2);
  while (!rest.empty() && (rest.back() == '\r' || rest.back() == ' ')) rest.remove_suffix(1);
  e.message = std::string(rest.substr(0, 200));
  return e;
}

bool XidIsDeviceFault(int xid) {
  switch (xid) {
    case 13:
    case 31:
    case 43:
    case 45:
    case 68:
    case 109:
      return false;
    default:
      return true;
  }
}

bool XidNamesDevice(const XidEvent& event, std::string_view pci_address) {
  if (pci_address.empty()) return false;
  return BusOf(NormalizePciAddress(pci_address)) == event.pci_bus;
}

XidLog::XidLog(std::string path) : path_(std::move(path)) {
  offset_ = std::max<int64_t>(0, FileSize(path_));
}

std::vector<XidEvent> XidLog::ReadNew() {
  std::vector<XidEvent> out;
  const int64_t size = FileSize(path_);
  if (size < 0) return out;
  if (size < offset_) {
    offset_ = 0;
    partial_.clear();
  }
  if (size == offset_) return out;
  std::ifstream in(path_, std::ios::binary);
  if (!in) return out;
  in.seekg(offset_);
  std::string chunk(static_cast<size_t>(std::min(size - offset_, kMaxReadBytes)), '\0');
  in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  chunk.resize(static_cast<size_t>(in.gcount()));
  offset_ += static_cast<int64_t>(chunk.size());
  std::string text = partial_ + chunk;
  const size_t last = text.rfind('\n');
  if (last == std::string::npos) {
    // A line longer than any Xid report is dropped rather than kept growing.
    partial_ = text.size() < 4096 ? text : std::string();
    return out;
  }
  partial_ = text.substr(last + 1);
  if (partial_.size() >= 4096) partial_.clear();
  std::string_view all(text.data(), last);
  size_t start = 0;
  while (start <= all.size()) {
    size_t end = all.find('\n', start);
    if (end == std::string_view::npos) end = all.size();
    if (auto e = ParseXidLine(all.substr(start, end - start))) out.push_back(std::move(*e));
    start = end + 1;
  }
  return out;
}

}  // namespace berth::agent
