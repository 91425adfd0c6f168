// Choosing how VMs are accelerated on this host. A /dev/kvm that opens is not proof that KVM
// works: on some hosts QEMU with accel=kvm dies while setting up the vCPU ("failed to set MSR
// 0x10a") or hangs once the guest runs. So in `auto` mode the host boots a probe guest under KVM
// once, with a deadline, and falls back to TCG, with the reason, when it does not come back.
//
// The probe guest is a 64 KiB firmware image that goes from the reset vector through protected
// mode to long mode with paging, as a kernel does, and then writes 0x2a to an isa-debug-exit
// port, which makes QEMU exit with status (0x2a << 1) | 1 = 85: some hosts run real-mode code
// under KVM and hang at the switch to protected mode. It runs with the same machine type as real
// VMs, so it fails in the same ways they would.
//
// Thread-safety: every function is safe to call from any thread.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/host/executor.h"
#include "runtime/qemu/qemu_argv.h"

namespace berth::runtime {

// What the operator asked for: `auto` probes, `kvm` and `tcg` are used as given.
enum class VmAccelMode { kAuto, kKvm, kTcg };

// "auto", "kvm" or "tcg"; InvalidArgument naming the accepted values otherwise.
absl::StatusOr<VmAccelMode> ParseVmAccelMode(std::string_view text);
std::string_view VmAccelModeName(VmAccelMode mode);
std::string_view VmAccelName(VmAccel accel);  // "kvm" or "tcg"

struct AccelProbeOptions {
  std::string qemu_binary = "qemu-system-x86_64";
  std::string kvm_device = "/dev/kvm";
  std::string machine = "q35";
  // A probe guest that has not exited by then hangs. It exits within a fraction of a second
  // where KVM works; the deadline stays well under a host's TTL (10 s by default), since an
  // agent (or a dev server) starting again registers only after the probe.
  absl::Duration timeout = absl::Seconds(4);
  host::Executor* executor = nullptr;  // runs the probe; null = the host
};

// The accelerator VMs use here, and why.
struct AccelChoice {
  VmAccel accel = VmAccel::kTcg;
  std::string reason;     // "kvm probe guest ran", "kvm probe failed: ...; using tcg", ...
  bool fallback = false;  // auto mode wanted KVM and could not have it
};

// Boots the probe guest once with `accel`. OK when it reached its exit port; otherwise an error
// that says what happened (QEMU's own message, the exit status, or the deadline).
absl::Status RunProbeGuest(const AccelProbeOptions& options, VmAccel accel);

// Decides for `mode`: kvm/tcg are taken as given (kvm without a usable device is still kvm, so
// the VM's own start reports the problem); auto uses KVM only when the device opens and the
// probe guest runs under it.
AccelChoice ChooseAccel(VmAccelMode mode, const AccelProbeOptions& options);

// ChooseAccel(kAuto, defaults for `qemu_binary`), computed once per process and binary: the
// probe costs up to its timeout, and the answer does not change while the host runs.
AccelChoice DetectAccelOnce(const std::string& qemu_binary);

}  // namespace berth::runtime
