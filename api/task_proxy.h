// The API server's relay to the task API of the host a workload runs on (`berth agent
// --task-api-listen`, api/task_api.h): logs, console, stats and exec of workloads placed on
// hosts other than the server's own. The target comes from the host's latest heartbeat to this
// server (control::ControlPlane::TaskApi): the heartbeat's peer address, the port and token the
// agent reported.
//
// Thread-safety: the functions may be called from any thread; each relay owns its connection.
#pragma once

#include <string>

#include "api/http/server.h"
#include "api/task_api.h"
#include "api/wire/wire.h"

namespace berth::api {

struct TaskApiTarget {
  std::string host;   // the host's name, for messages
  std::string url;    // "http://ADDRESS:PORT"
  std::string token;  // the bearer token its task API takes
};

// "http://ADDRESS:PORT", with an IPv6 address in brackets.
std::string TaskApiUrl(std::string_view address, uint16_t port);

// Relays GET `path_with_query` (under /v1/tasks/) to the target and answers with what it
// answered: status, Content-Type and body (at most kMaxTaskFileBytes and a little), on the
// calling thread. With `follow`, the body is streamed piece by piece on a thread of `calls`
// until either side ends: the client leaving ends the upstream read at once.
void RelayTaskGet(const TaskApiTarget& target, std::string path_with_query, bool follow,
                  Responder responder, BlockingCalls* calls);

// Relays an exec to the target on a thread of `calls` and answers with its reply.
void RelayTaskExec(const TaskApiTarget& target, std::string workload,
                   const wire::ExecRequest& request, Responder responder, BlockingCalls* calls);

// Asks the target's task API to save the warm state of `workload` under `key` and waits for
// the answer (the bytes written). Errors: the task API's, or Unavailable when it is unreachable.
absl::StatusOr<int64_t> SaveWarmStateAt(const TaskApiTarget& target, const std::string& workload,
                                        const std::string& key);

}  // namespace berth::api
