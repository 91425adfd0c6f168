// The `berth` command line for users: hosts, workloads, events and images, all through the
// REST API. Every command that prints takes --json; failures exit non-zero with the server's
// message. The server address and token come from --server/--token, BERTH_ADDR/BERTH_TOKEN, or
// the local dev server's data directory (BERTH_DATA_DIR or ~/.berth).
#pragma once

#include <iostream>
#include <string>
#include <vector>

namespace berth::cli {

// Runs `berth ARGS...` (args exclude the program name). Returns the exit code.
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The top-level help text.
std::string Usage();

// ~/.berth, or BERTH_DATA_DIR when set.
std::string DefaultDataDir();

}  // namespace berth::cli
