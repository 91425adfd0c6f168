// The `berth` command line for users: hosts, workloads, events and images, all through the
// REST API's typed client (api::Client), declared as commands of the one framework in core/flags.h.
// Every command takes
// --json; failures exit 1 with the server's message, usage errors exit 2. The server address
// and token come from --server/--token, BERTH_ADDR/BERTH_TOKEN, or the local dev server's data
// directory (BERTH_DATA_DIR or ~/.berth).
#pragma once

#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/client/client.h"
#include "core/flags.h"

namespace berth::cli {

// The root of the command tree: the program's description and its global flags (--json,
// --log-level, --log-file), with `commands` below it in the order given.
core::Command RootCommand(std::vector<core::Command> commands);

// The client command groups; main/main.cc's command table lists them.
core::Command WorkloadCommand();
core::Command VmCommand();
core::Command HostCommand();
core::Command TenantCommand();
core::Command EventsCommand();
core::Command StatusCommand();
core::Command TopCommand();
core::Command VersionCommand();

// The flags of every command that talks to a server: --server (or --addr) and --token.
std::vector<core::FlagDef> ServerFlags();

// How long a command waits to connect before it says the server cannot be reached.
inline constexpr absl::Duration kConnectTimeout = absl::Seconds(3);

// What a command says when its request to `url` never got an answer: the address it tried and
// how to name another.
std::string UnreachableMessage(std::string_view url, const absl::Status& why);

// The API client of a client command: the server and token of FindServer(inv), kConnectTimeout
// to connect and `timeout` per request. nullptr after printing why there is none.
std::unique_ptr<api::Client> MakeClient(core::Invocation& inv,
                                        absl::Duration timeout = absl::Seconds(60));

// Prints why a call failed and returns exit code 1: the server's message (the Status message)
// when the server answered, else UnreachableMessage (no connection, or no answer in time).
int FailCall(core::Invocation& inv, api::Client& client, const absl::Status& status);

// ~/.berth, or BERTH_DATA_DIR when set.
std::string DefaultDataDir();

// The server a client command talks to: --server/--addr, else BERTH_ADDR, else the local dev
// server's DATA_DIR/server.json; the token from --token, BERTH_TOKEN or DATA_DIR/admin.token.
struct ServerTarget {
  std::string url;  // always with its http:// scheme; several servers: comma-separated URLs
  std::string token;
};
absl::StatusOr<ServerTarget> FindServer(const core::Invocation& inv);

// The image catalog of the agent whose data directory is `agent_dir`: AGENT_DIR/images. Images
// are per host, like a container runtime's image store; `berth image` reaches a host's catalog
// through the server.
std::string ImagesDir(const std::string& agent_dir);

}  // namespace berth::cli
