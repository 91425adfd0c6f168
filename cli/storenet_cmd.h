// `berth disk`, `berth net`, `berth secgroup` and `berth portfwd`: the storage and network
// objects of a Berth server, through its REST API (/v1/disks, /v1/networks, /v1/secgroups,
// /v1/portforwards). Every command takes --json and --help; failures exit 1 with the server's
// message (naming the wrong field), usage errors exit 2.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace berth::cli {

// True when `command` is one of disk, net, secgroup, portfwd (and their plurals).
bool IsStorenetCommand(const std::string& command);
// Runs `berth COMMAND ARGS...` (args exclude the command). Returns the exit code.
int RunStorenetCommand(const std::string& command, const std::vector<std::string>& args,
                       std::ostream& out, std::ostream& err);

}  // namespace berth::cli
