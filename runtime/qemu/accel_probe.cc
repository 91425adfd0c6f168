#include "runtime/qemu/accel_probe.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "core/strings.h"
#include "runtime/host/file.h"

namespace berth::runtime {

namespace fs = std::filesystem;
using core::Cat;

namespace {

constexpr int kExitPort = 0xf4;
constexpr int kExitValue = 0x2a;
// isa-debug-exit turns a write of V into QEMU's exit status (V << 1) | 1.
constexpr int kProbeExitStatus = (kExitValue << 1) | 1;

// 64 KiB of firmware (QEMU wants a multiple of 64 KiB) whose last 16 bytes, where an x86 CPU
// starts after reset, hold: mov al, 0x2a; out 0xf4, al; hlt; jmp back to the hlt.
std::string ProbeFirmware() {
  std::string image(64 * 1024, '\0');
  const unsigned char code[] = {0xB0, kExitValue, 0xE6, kExitPort, 0xF4, 0xEB, 0xFD};
  std::memcpy(image.data() + 0xFFF0, code, sizeof code);
  return image;
}

// The first line of QEMU's stderr that says what went wrong, without the program name.
std::string FirstErrorLine(const std::string& stderr_data) {
  for (absl::string_view line : absl::StrSplit(stderr_data, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    if (auto colon = line.find(": "); colon != absl::string_view::npos &&
                                      line.substr(0, colon).find(' ') == absl::string_view::npos) {
      line.remove_prefix(colon + 2);
    }
    return std::string(line.substr(0, 200));
  }
  return "";
}

}  // namespace

absl::StatusOr<VmAccelMode> ParseVmAccelMode(std::string_view text) {
  if (text == "auto") return VmAccelMode::kAuto;
  if (text == "kvm") return VmAccelMode::kKvm;
  if (text == "tcg") return VmAccelMode::kTcg;
  return absl::InvalidArgumentError(Cat("vm accel must be auto, kvm or tcg, got \"", text, "\""));
}

std::string_view VmAccelModeName(VmAccelMode mode) {
  switch (mode) {
    case VmAccelMode::kAuto:
      return "auto";
    case VmAccelMode::kKvm:
      return "kvm";
    case VmAccelMode::kTcg:
      return "tcg";
  }
  return "auto";
}

std::string_view VmAccelName(VmAccel accel) { return accel == VmAccel::kKvm ? "kvm" : "tcg"; }

absl::Status RunProbeGuest(const AccelProbeOptions& options, VmAccel accel) {
  const char* tmp = getenv("TMPDIR");
  std::string templ = Cat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/berth-kvm-probe-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(
        Cat("kvm probe: cannot make a directory ", templ, ": ", std::strerror(errno)));
  }
  const std::string dir = templ;
  const std::string firmware = dir + "/probe.bin";
  absl::Status written = host::WriteFileAtomically(firmware, ProbeFirmware(), {.sync = false});
  absl::Status result = written;
  if (written.ok()) {
    std::vector<std::string> argv = {options.qemu_binary,
                                     "-machine",
                                     Cat(options.machine, ",accel=", VmAccelName(accel)),
                                     "-cpu",
                                     accel == VmAccel::kKvm ? "host" : "max",
                                     "-nodefaults",
                                     "-no-user-config",
                                     "-display",
                                     "none",
                                     "-m",
                                     "16",
                                     "-bios",
                                     firmware,
                                     "-device",
                                     Cat("isa-debug-exit,iobase=", kExitPort, ",iosize=0x04"),
                                     "-no-reboot"};
    auto run = host::ExecutorOr(options.executor).Run(argv, {.timeout = options.timeout});
    if (!run.ok()) {
      result = run.status();
    } else if (run->cause == host::ExitCause::kTimedOut) {
      result = absl::DeadlineExceededError(Cat("the probe guest did not finish within ",
                                               absl::FormatDuration(options.timeout),
                                               " (the guest hangs)"));
    } else if (run->cause == host::ExitCause::kStartFailed) {
      result = host::ResultStatus(argv, *run);
    } else if (run->cause == host::ExitCause::kSignaled || run->exit_code != kProbeExitStatus) {
      std::string why = FirstErrorLine(run->err);
      result = absl::FailedPreconditionError(
          run->cause == host::ExitCause::kSignaled
              ? Cat("qemu was killed by signal ", run->signal, why.empty() ? "" : ": ", why)
              : Cat("qemu exited with status ", run->exit_code, why.empty() ? "" : ": ", why));
    }
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return result;
}

AccelChoice ChooseAccel(VmAccelMode mode, const AccelProbeOptions& options) {
  switch (mode) {
    case VmAccelMode::kKvm:
      return {VmAccel::kKvm, "kvm set by the operator (--vm-accel kvm)", false};
    case VmAccelMode::kTcg:
      return {VmAccel::kTcg, "tcg set by the operator (--vm-accel tcg)", false};
    case VmAccelMode::kAuto:
      break;
  }
  int fd = open(options.kvm_device.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return {VmAccel::kTcg,
            Cat("cannot open ", options.kvm_device, ": ", std::strerror(errno), "; using tcg"),
            true};
  }
  close(fd);
  absl::Status probe = RunProbeGuest(options, VmAccel::kKvm);
  if (!probe.ok()) {
    return {VmAccel::kTcg, Cat("kvm probe failed: ", probe.message(), "; using tcg"), true};
  }
  return {VmAccel::kKvm, Cat("kvm probe guest ran under ", options.kvm_device), false};
}

AccelChoice DetectAccelOnce(const std::string& qemu_binary) {
  static absl::Mutex mu;
  static auto* cache = new std::map<std::string, AccelChoice>();
  absl::MutexLock lock(&mu);
  auto it = cache->find(qemu_binary);
  if (it == cache->end()) {
    AccelProbeOptions options;
    options.qemu_binary = qemu_binary;
    it = cache->emplace(qemu_binary, ChooseAccel(VmAccelMode::kAuto, options)).first;
  }
  return it->second;
}

}  // namespace berth::runtime
