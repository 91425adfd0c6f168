#include "runtime/qemu/accel_probe.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
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

// 64 KiB of firmware (QEMU wants a multiple of 64 KiB, and maps it to end at 1 MiB) that takes
// the CPU the way a kernel does, from real mode through 32-bit protected mode to 64-bit long
// mode with paging, and only then writes 0x2a to the exit port. Some hosts run real-mode code
// under KVM and hang at the switch to protected mode (a Linux guest stops right after "Probing
// EDD"), so a probe that never leaves real mode would pass there.
std::string ProbeFirmware() {
  std::string image(64 * 1024, '\0');
  auto put = [&image](size_t offset, std::initializer_list<unsigned char> bytes) {
    std::copy(bytes.begin(), bytes.end(), image.begin() + offset);
  };
  // The image's offset 0 is physical 0xF0000. Real mode, from the reset vector:
  // cli; lgdt cs:[0x130]; mov eax, cr0; or al, 1; mov cr0, eax; jmp dword 0x08:0xF0040.
  put(0x0000, {0xFA, 0x2E, 0x0F, 0x01, 0x16, 0x30, 0x01, 0x0F, 0x20, 0xC0, 0x0C, 0x01,
               0x0F, 0x22, 0xC0, 0x66, 0xEA, 0x40, 0x00, 0x0F, 0x00, 0x08, 0x00});
  // 32-bit protected mode: data segments; zero three page tables at 0x1000 and map the first
  // 2 MiB (PML4 -> PDPT -> a 2 MiB page); PAE, CR3, EFER.LME, paging; jmp 0x18:0xF00C0.
  put(0x0040, {0x66, 0xB8, 0x10, 0x00, 0x8E, 0xD8, 0x8E, 0xC0, 0x8E, 0xD0,  // ds, es, ss = 0x10
               0xBF, 0x00, 0x10, 0x00, 0x00, 0x31, 0xC0, 0xB9, 0x00, 0x0C, 0x00, 0x00, 0xF3,
               0xAB,                                                        // rep stosd
               0xC7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x00, 0x00,  // [0x1000] = 0x2003
               0xC7, 0x05, 0x00, 0x20, 0x00, 0x00, 0x03, 0x30, 0x00, 0x00,  // [0x2000] = 0x3003
               0xC7, 0x05, 0x00, 0x30, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00,  // [0x3000] = 0x83
               0x0F, 0x20, 0xE0, 0x83, 0xC8, 0x20, 0x0F, 0x22, 0xE0,        // cr4 |= PAE
               0xB8, 0x00, 0x10, 0x00, 0x00, 0x0F, 0x22, 0xD8,              // cr3 = 0x1000
               0xB9, 0x80, 0x00, 0x00, 0xC0, 0x0F, 0x32, 0x0D, 0x00, 0x01, 0x00, 0x00, 0x0F,
               0x30,                                                              // EFER |= LME
               0x0F, 0x20, 0xC0, 0x0D, 0x00, 0x00, 0x00, 0x80, 0x0F, 0x22, 0xC0,  // cr0 |= PG
               0xEA, 0xC0, 0x00, 0x0F, 0x00, 0x18, 0x00});
  // 64-bit long mode: mov al, 0x2a; out 0xf4, al; hlt; jmp back to the hlt.
  put(0x00C0, {0xB0, kExitValue, 0xE6, kExitPort, 0xF4, 0xEB, 0xFD});
  // The GDT at 0xF0100: null, 32-bit code (0x08), data (0x10), 64-bit code (0x18); its
  // descriptor at 0xF0130.
  put(0x0100, {0,    0,    0, 0, 0, 0,    0,    0, 0xFF, 0xFF, 0, 0, 0, 0x9A, 0xCF, 0,
               0xFF, 0xFF, 0, 0, 0, 0x92, 0xCF, 0, 0xFF, 0xFF, 0, 0, 0, 0x9A, 0xAF, 0});
  put(0x0130, {0x1F, 0x00, 0x00, 0x01, 0x0F, 0x00});
  // The reset vector (0xFFFF0): jmp 0xF000:0x0000.
  put(0xFFF0, {0xEA, 0x00, 0x00, 0x00, 0xF0});
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
    // A guest that hangs ignores everything but the deadline; killed with this thread, the
    // probe never outlives a caller that is itself killed while it waits.
    host::RunOptions run_options{.timeout = options.timeout};
    run_options.setup.parent_pid = getpid();
    auto run = host::ExecutorOr(options.executor).Run(argv, run_options);
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
