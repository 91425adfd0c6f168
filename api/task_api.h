// The task API: what a host serves about the tasks it runs (log files, a VM's serial console,
// live stats, exec, saving a VM replica's warm state). One implementation, used twice: by the API
// server's workload routes for the tasks of its own host (dev mode), and by the small server a
// `berth agent` runs
// (`--task-api-listen`), which the API server reaches for workloads placed on that agent's host.
// So both answer with the same semantics, within the same bounds.
//
// The agent's server takes one bearer token, made at random when the agent starts and sent to
// the API server with each heartbeat; anything else is 401. It is plain HTTP, like the API.
//
// Thread-safety: the free functions from any thread; TaskApiServer's Start/Stop from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/local_host.h"
#include "api/http/router.h"
#include "api/http/server.h"
#include "api/http/work_pool.h"
#include "api/wire/wire.h"

namespace berth::api {

// A plain (not followed) read of a log or console returns at most the file's last this many
// bytes; a followed one starts there.
inline constexpr size_t kMaxTaskFileBytes = 64 << 20;

// The `stream` query of a logs request: "stdout" (the default) or "stderr"; InvalidArgument
// naming the query otherwise.
absl::StatusOr<std::string> LogStreamParam(const HttpRequest& request);
// Whether the request asks to follow the file (?follow=true or ?follow=1).
bool FollowParam(const HttpRequest& request);
// The exec request in the body, its timeout capped at `max_wait`; errors name the field.
absl::StatusOr<wire::ExecRequest> ExecParam(const HttpRequest& request, std::string_view workload,
                                            absl::Duration max_wait);

// The warm state key in the body of a warm-state request ({"key": "SERVICE.rREVISION"});
// InvalidArgument naming the field.
absl::StatusOr<std::string> WarmStateKeyParam(const HttpRequest& request,
                                              std::string_view workload);

// Calls that may block for long (exec, a relayed stream) run on threads of their own, counted
// here, so that whoever owns them can wait for the last one before going away.
class BlockingCalls {
 public:
  BlockingCalls() = default;
  ~BlockingCalls() { Wait(); }
  BlockingCalls(const BlockingCalls&) = delete;
  BlockingCalls& operator=(const BlockingCalls&) = delete;

  // Runs `body` on a new thread, under RunGuarded (`what` names it in the log); `on_error`
  // (optional) gets the status of a body that threw.
  void Run(std::string what, std::function<void()> body,
           std::function<void(const absl::Status&)> on_error = nullptr);
  // Blocks until every call started so far has returned.
  void Wait();
  int running();

 private:
  absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
};

// How a task file is followed: the server whose timers pace the steps, the pool they run on
// (null: on the I/O thread), and when the task is over (then the stream ends once the file is
// drained).
struct TaskFileFollow {
  HttpServer* server = nullptr;
  WorkPool* pool = nullptr;
  std::function<bool()> over;
  // How long a follow that has read all the file holds waits before it looks again.
  absl::Duration poll = absl::Milliseconds(200);
  // The file is complete (over() must say so too): the stream ends as soon as it is all sent.
  bool whole = false;
};

// Answers with the file at `path` (a log or a console): its content (the last
// kMaxTaskFileBytes at most), or with ?follow=true a chunked stream of what it holds and what is
// written to it after, until the client leaves or `follow.over()` holds and the rest is sent.
// A failed `path` is answered as its status.
void ServeTaskFile(const HttpRequest& request, Responder responder,
                   const absl::StatusOr<std::string>& path, const TaskFileFollow& follow);

// Runs `request` in the workload's task through `tasks`, on a thread of `calls`, and answers
// the exec reply (or the error).
void RunExec(BlockingCalls* calls, agent::LocalHost* tasks, std::string workload,
             wire::ExecRequest request, Responder responder);

struct TaskApiOptions {
  std::string host = "0.0.0.0";
  uint16_t port = 0;  // 0: a free port; Start returns it
  // The one bearer token accepted (wire::kTaskApiTokenLength hex digits; see NewTaskApiToken).
  std::string token;
  int threads = 1;                             // I/O threads
  int workers = 2;                             // handler threads
  absl::Duration max_wait = absl::Minutes(5);  // cap on an exec's timeout
  size_t max_body_bytes = 1 << 20;
  absl::Duration follow_poll = absl::Milliseconds(200);  // TaskFileFollow::poll of its follows
};

// A fresh random token for a task API: wire::kTaskApiTokenLength lower-case hex digits.
absl::StatusOr<std::string> NewTaskApiToken();

// The agent's task API server: the task routes under /v1/tasks/{name}/ for the tasks of one
// host, behind its bearer token.
class TaskApiServer {
 public:
  // `tasks` (not owned) must outlive the server.
  TaskApiServer(TaskApiOptions options, agent::LocalHost* tasks);
  ~TaskApiServer();
  TaskApiServer(const TaskApiServer&) = delete;
  TaskApiServer& operator=(const TaskApiServer&) = delete;

  // Binds and serves; returns the bound port.
  absl::StatusOr<uint16_t> Start();
  // Closes every connection (ending follows), then waits for running execs. Idempotent.
  void Stop();
  uint16_t port() const;
  // The router the server dispatches to, for driving the routes without a socket (the fuzzer
  // does). A follow's later steps run on the server's timers: only once it has started.
  const Router& router() const { return router_; }
  // To add routes (a host's disk pools, api/host_storage.h) before Start; they sit behind the
  // same token.
  Router& routes() { return router_; }

 private:
  const TaskApiOptions options_;
  agent::LocalHost* const tasks_;
  BlockingCalls calls_;
  Router router_;
  std::unique_ptr<WorkPool> pool_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace berth::api
