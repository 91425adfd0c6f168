// The `berth` command line for users: hosts, workloads, events and images, all through the
// REST API. Every command that prints takes --json; failures exit non-zero with the server's
// message. The server address and token come from --server/--token, BERTH_ADDR/BERTH_TOKEN, or
// the local dev server's data directory (BERTH_DATA_DIR or ~/.berth).
#pragma once

#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace berth::cli {

// Runs `berth ARGS...` (args exclude the program name). Returns the exit code.
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// How long a command waits to connect before it says the server cannot be reached.
inline constexpr absl::Duration kConnectTimeout = absl::Seconds(3);

// What a command says when its request to `url` never got an answer: the address it tried and
// how to name another.
std::string UnreachableMessage(std::string_view url, const absl::Status& why);

// The top-level help text.
std::string Usage();

// ~/.berth, or BERTH_DATA_DIR when set.
std::string DefaultDataDir();

// The image catalog of the agent whose data directory is `agent_dir`: AGENT_DIR/images. Images
// are per host, like a container runtime's image store; `berth image` acts on this host's
// catalog (DefaultDataDir()/agent/images unless --images DIR says otherwise).
std::string ImagesDir(const std::string& agent_dir);

}  // namespace berth::cli
