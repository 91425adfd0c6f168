// Runs host tools (qemu-img, mkfs, ip, nft, dnsmasq) for the storage and network drivers: argv
// in, exit code and captured output out, never through a shell. Output is captured in memory
// files rather than pipes so a tool that leaves a daemon behind (dnsmasq) cannot hold the call
// open. An optional network namespace runs the tool through `ip netns exec`.
//
// Thread-safety: RunHostCommand may be called concurrently from any thread.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace berth::runtime::host {

struct HostCommandOptions {
  std::string stdin_data;  // written to the tool's standard input
  std::string netns;       // named network namespace (/run/netns/NAME); empty = the caller's
  // When set, standard output is read through a pipe as it is produced and each chunk is handed
  // to this callback (used for progress reports); the chunks are also kept in `out`.
  std::function<void(std::string_view chunk)> on_output;
};

struct HostCommandResult {
  int exit_code = -1;  // 128+signal when killed by a signal
  std::string out;
  std::string err;
};

// Runs argv[0] (looked up in PATH) and waits for it. Errors only when the tool cannot be
// started; a non-zero exit is reported in the result.
absl::StatusOr<HostCommandResult> RunHostCommand(const std::vector<std::string>& argv,
                                                 const HostCommandOptions& options = {});

// Like RunHostCommand, but a non-zero exit becomes an Internal error that quotes the command
// and the first lines of its standard error.
absl::StatusOr<std::string> RunHostCommandOk(const std::vector<std::string>& argv,
                                             const HostCommandOptions& options = {});

// Joins argv with spaces for messages.
std::string JoinArgv(const std::vector<std::string>& argv);

}  // namespace berth::runtime::host
