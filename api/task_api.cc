#include "api/task_api.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "api/body_parser.h"
#include "core/guard.h"
#include "core/names.h"
#include "core/secret.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;
using core::Json;

namespace {

// A followed file is read at most this much per step, and not at all while this much written
// to the client is still waiting for the socket: a slow client never makes the server hold the
// whole file.
constexpr size_t kFollowStepBytes = 1 << 20;
constexpr size_t kFollowMaxPending = 4 << 20;

HttpResponse JsonAnswer(int status, const Json& body) {
  return HttpResponse::Json(status, body.dump(-1, ' ', false, Json::error_handler_t::replace));
}

// The file's size now, and where a plain read or a follow starts: the last kMaxTaskFileBytes.
std::pair<std::streamoff, std::streamoff> SizeAndTail(std::ifstream& in) {
  in.seekg(0, std::ios::end);
  const std::streamoff size = std::max<std::streamoff>(in.tellg(), 0);
  const auto max = static_cast<std::streamoff>(kMaxTaskFileBytes);
  return {size, size > max ? size - max : 0};
}

// Streams a growing file to a client until the client leaves, or the task is over and the file
// drained. Each step reschedules itself on the server's timers, so a follower holds no thread;
// the step itself (a file read and the `over` check) runs on a handler thread when there is a
// pool, never on an I/O thread.
class FileFollower : public std::enable_shared_from_this<FileFollower> {
 public:
  FileFollower(std::string path, std::streamoff offset, ResponseStream out, TaskFileFollow follow)
      : path_(std::move(path)), offset_(offset), out_(std::move(out)), follow_(std::move(follow)) {}

  void Step() {
    if (out_.Cancelled()) return;
    const bool behind = out_.PendingBytes() >= kFollowMaxPending;  // wait for the client
    bool more = false;     // a whole step was read: read on at once
    bool drained = false;  // the file had nothing more to give now
    if (!behind) {
      drained = true;
      std::ifstream in(path_, std::ios::binary);
      if (in) {
        const std::streamoff size = SizeAndTail(in).first;
        const auto step = static_cast<std::streamoff>(kFollowStepBytes);
        std::string chunk(static_cast<size_t>(std::clamp<std::streamoff>(size - offset_, 0, step)),
                          '\0');
        in.seekg(offset_);
        in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        chunk.resize(static_cast<size_t>(in.gcount()));
        if (!chunk.empty()) {
          offset_ += static_cast<std::streamoff>(chunk.size());
          more = chunk.size() == kFollowStepBytes;
          drained = !more;
          out_.Write(chunk);
        }
      }
    }
    // A file that no longer grows ends at its end; a log, once its task is over and a few looks
    // found nothing new.
    if (drained && follow_.over && follow_.over() && (follow_.whole || ++idle_steps_ > 2)) {
      out_.Finish();
      return;
    }
    const absl::Duration next = behind ? absl::Milliseconds(5)
                                : more ? absl::Milliseconds(1)
                                       : follow_.poll;
    follow_.server->RunAfter(next, [self = shared_from_this()] {
      // A stopped pool refuses the step, which ends the stream: the server is going away.
      if (self->follow_.pool == nullptr) {
        self->Step();
      } else if (!self->follow_.pool->Submit([self] { self->Step(); })) {
        self->out_.Finish();
      }
    });
  }

 private:
  const std::string path_;
  std::streamoff offset_;
  ResponseStream out_;
  const TaskFileFollow follow_;
  int idle_steps_ = 0;
};

}  // namespace

absl::StatusOr<std::string> LogStreamParam(const HttpRequest& request) {
  std::string stream = request.Query("stream").value_or("stdout");
  if (stream != "stdout" && stream != "stderr") {
    return absl::InvalidArgumentError(
        Cat("query: stream must be stdout or stderr, got \"", stream.substr(0, 64), "\""));
  }
  return stream;
}

bool FollowParam(const HttpRequest& request) {
  std::optional<std::string> follow = request.Query("follow");
  return follow == "true" || follow == "1";
}

absl::StatusOr<wire::ExecRequest> ExecParam(const HttpRequest& request, std::string_view workload,
                                            absl::Duration max_wait) {
  BERTH_ASSIGN_OR_RETURN(Json body,
                         ParseBody(request.body, {"workload exec", std::string(workload)}));
  BERTH_ASSIGN_OR_RETURN(wire::ExecRequest exec, wire::DecodeExecRequest(workload, body));
  exec.timeout = std::min(exec.timeout, max_wait);
  return exec;
}

void BlockingCalls::Run(std::string what, std::function<void()> body,
                        std::function<void(const absl::Status&)> on_error) {
  {
    absl::MutexLock lock(&mu_);
    ++running_;
  }
  std::thread([this, what = std::move(what), body = std::move(body),
               on_error = std::move(on_error)] {
    absl::Status guarded = core::RunGuarded(what, body);
    if (!guarded.ok() && on_error) on_error(guarded);
    absl::MutexLock lock(&mu_);
    --running_;
  }).detach();
}

void BlockingCalls::Wait() {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ == 0; };
  mu_.Await(absl::Condition(&idle));
}

int BlockingCalls::running() {
  absl::MutexLock lock(&mu_);
  return running_;
}

void ServeTaskFile(const HttpRequest& request, Responder responder,
                   const absl::StatusOr<std::string>& path, const TaskFileFollow& follow) {
  if (!path.ok()) {
    responder.Send(HttpResponse::FromStatus(path.status()));
    return;
  }
  std::ifstream in(*path, std::ios::binary);
  if (!in) {
    responder.Send(HttpResponse::FromStatus(
        absl::NotFoundError(Cat("task file ", *path, " cannot be read (gone since)"))));
    return;
  }
  const auto [size, start] = SizeAndTail(in);
  if (!FollowParam(request)) {
    in.seekg(start);
    // What the file held when asked; a writer adds more only to the next read.
    std::string body(static_cast<size_t>(size - start), '\0');
    in.read(body.data(), static_cast<std::streamsize>(body.size()));
    body.resize(static_cast<size_t>(in.gcount()));
    responder.Send(HttpResponse::Text(200, std::move(body)));
    return;
  }
  HttpHeaders headers;
  headers.Set("Content-Type", "text/plain; charset=utf-8");
  auto follower =
      std::make_shared<FileFollower>(*path, start, responder.StartStream(200, headers), follow);
  follower->Step();
}

absl::StatusOr<std::string> WarmStateKeyParam(const HttpRequest& request,
                                              std::string_view workload) {
  BERTH_ASSIGN_OR_RETURN(Json body,
                         ParseBody(request.body, {"workload warm state", std::string(workload)}));
  const core::JsonContext ctx{"workload warm state", std::string(workload)};
  BERTH_RETURN_IF_ERROR(core::CheckObject(ctx, body, "", {"key"}));
  auto it = body.find("key");
  if (it == body.end() || !it->is_string() || !agent::IsWarmStateKey(it->get<std::string>())) {
    return ctx.Error("key", "is required: SERVICE.rREVISION (web.r3)");
  }
  return it->get<std::string>();
}

void RunExec(BlockingCalls* calls, agent::LocalHost* tasks, std::string workload,
             wire::ExecRequest request, Responder responder) {
  calls->Run(
      "workload exec",
      [tasks, workload = std::move(workload), request = std::move(request), responder] {
        absl::StatusOr<wire::ExecReply> r = tasks->Exec(workload, request);
        responder.Send(r.ok() ? JsonAnswer(200, wire::EncodeExecReply(*r))
                              : HttpResponse::FromStatus(r.status()));
      },
      // No-op when already answered.
      [responder](const absl::Status& s) { responder.Send(HttpResponse::FromStatus(s)); });
}

absl::StatusOr<std::string> NewTaskApiToken() {
  return core::RandomHexToken(wire::kTaskApiTokenLength / 2);
}

TaskApiServer::TaskApiServer(TaskApiOptions options, agent::LocalHost* tasks)
    : options_(std::move(options)), tasks_(tasks) {
  // One bearer token, the one the agent sent the API server with its heartbeats.
  router_.Before([this](HttpRequest& req) -> std::optional<HttpResponse> {
    int authorizations = 0;
    std::string token;
    for (const auto& [field, value] : req.headers.entries()) {
      if (!absl::EqualsIgnoreCase(field, "Authorization")) continue;
      ++authorizations;
      if (value.rfind("Bearer ", 0) == 0) token = value.substr(7);
    }
    if (authorizations == 1 && !token.empty() && !options_.token.empty() &&
        core::ConstantTimeEquals(token, options_.token)) {
      return std::nullopt;
    }
    return HttpResponse::Error(
        401, "unauthenticated",
        "task API: missing or wrong bearer token; it takes only the token this agent sends its "
        "server with each heartbeat (ask the API server: berth workload logs|console|stats|exec)");
  });
  // The name builds paths on this host: it must be a workload name, whatever the caller.
  auto name_of = [](const HttpRequest& req) -> absl::StatusOr<std::string> {
    std::string name = req.Param("name");
    BERTH_RETURN_IF_ERROR(core::ValidateName("workload", name));
    return name;
  };
  auto over = [this](std::string name) {
    return [tasks = tasks_, name = std::move(name)] {
      absl::StatusOr<Json> stats = tasks->Stats(name);
      return !stats.ok() || stats->contains("exit_code");
    };
  };
  router_.HandleAsync(
      "GET", "/v1/tasks/{name}/logs", [this, name_of, over](const HttpRequest& req, Responder r) {
        absl::StatusOr<std::string> name = name_of(req);
        absl::StatusOr<std::string> stream = LogStreamParam(req);
        if (!name.ok() || !stream.ok()) {
          r.Send(HttpResponse::FromStatus(!name.ok() ? name.status() : stream.status()));
          return;
        }
        ServeTaskFile(req, std::move(r), tasks_->LogPath(*name, *stream),
                      {server_.get(), pool_.get(), over(*name), options_.follow_poll});
      });
  router_.HandleAsync("GET", "/v1/tasks/{name}/console",
                      [this, name_of, over](const HttpRequest& req, Responder r) {
                        absl::StatusOr<std::string> name = name_of(req);
                        if (!name.ok()) {
                          r.Send(HttpResponse::FromStatus(name.status()));
                          return;
                        }
                        ServeTaskFile(
                            req, std::move(r), tasks_->ConsolePath(*name),
                            {server_.get(), pool_.get(), over(*name), options_.follow_poll});
                      });
  router_.Handle("GET", "/v1/tasks/{name}/stats", [this, name_of](const HttpRequest& req) {
    absl::StatusOr<std::string> name = name_of(req);
    if (!name.ok()) return HttpResponse::FromStatus(name.status());
    absl::StatusOr<Json> stats = tasks_->Stats(*name);
    if (!stats.ok()) return HttpResponse::FromStatus(stats.status());
    return JsonAnswer(200, *stats);
  });
  router_.HandleAsync(
      "POST", "/v1/tasks/{name}/exec", [this, name_of](const HttpRequest& req, Responder r) {
        absl::StatusOr<std::string> name = name_of(req);
        if (!name.ok()) {
          r.Send(HttpResponse::FromStatus(name.status()));
          return;
        }
        absl::StatusOr<wire::ExecRequest> exec = ExecParam(req, *name, options_.max_wait);
        if (!exec.ok()) {
          r.Send(HttpResponse::FromStatus(exec.status()));
          return;
        }
        RunExec(&calls_, tasks_, *name, *std::move(exec), std::move(r));
      });
  // A warm state this host keeps, whole, for another host to resume its replicas from (through
  // the API server: GET /v1/hosts/NAME/warm-states/KEY). Streamed at the pace the reader takes
  // it, its size in wire::kWarmStateSizeHeader.
  router_.HandleAsync("GET", "/v1/warm-states/{key}", [this](const HttpRequest& req, Responder r) {
    const std::string key = req.Param("key");
    if (!agent::IsWarmStateKey(key)) {
      r.Send(HttpResponse::Error(400, "invalid_argument",
                                 Cat("warm state: key must be SERVICE.rREVISION (web.r3), got \"",
                                     key.substr(0, 64), "\"")));
      return;
    }
    absl::StatusOr<std::string> path = tasks_->WarmStateFile(key);
    std::error_code ec;
    const uintmax_t size = path.ok() ? std::filesystem::file_size(*path, ec) : 0;
    if (!path.ok() || ec) {
      r.Send(HttpResponse::FromStatus(
          path.ok()
              ? absl::NotFoundError(Cat("warm state ", key, ": gone since (", ec.message(), ")"))
              : path.status()));
      return;
    }
    HttpHeaders headers;
    headers.Set("Content-Type", "application/octet-stream");
    headers.Set(std::string(wire::kWarmStateSizeHeader), Cat(static_cast<int64_t>(size)));
    // A file that is not growing: the follow ends once it has sent it all.
    auto follower = std::make_shared<FileFollower>(*path, 0, r.StartStream(200, headers),
                                                   TaskFileFollow{.server = server_.get(),
                                                                  .pool = pool_.get(),
                                                                  .over = [] { return true; },
                                                                  .poll = options_.follow_poll,
                                                                  .whole = true});
    follower->Step();
  });
  // Saving a VM's state pauses it for as long as its memory takes to write: off the handlers.
  router_.HandleAsync(
      "POST", "/v1/tasks/{name}/warm-state", [this, name_of](const HttpRequest& req, Responder r) {
        absl::StatusOr<std::string> name = name_of(req);
        if (!name.ok()) {
          r.Send(HttpResponse::FromStatus(name.status()));
          return;
        }
        absl::StatusOr<std::string> key = WarmStateKeyParam(req, *name);
        if (!key.ok()) {
          r.Send(HttpResponse::FromStatus(key.status()));
          return;
        }
        calls_.Run(
            "warm state",
            [tasks = tasks_, name = *name, key = *key, r] {
              absl::StatusOr<int64_t> bytes = tasks->SaveWarmState(name, key);
              r.Send(bytes.ok()
                         ? JsonAnswer(200, {{"workload", name}, {"key", key}, {"bytes", *bytes}})
                         : HttpResponse::FromStatus(bytes.status()));
            },
            [r](const absl::Status& s) { r.Send(HttpResponse::FromStatus(s)); });
      });
  pool_ = std::make_unique<WorkPool>(
      WorkPool::Options{.threads = std::max(1, options_.workers), .max_queued = 256});
  router_.RunOn(pool_.get());
  HttpServer::Options http;
  http.host = options_.host;
  http.port = options_.port;
  http.threads = std::max(1, options_.threads);
  http.max_body_bytes = options_.max_body_bytes;
  http.raise_fd_limit = false;
  server_ = std::make_unique<HttpServer>(http, router_.AsHandler());
}

TaskApiServer::~TaskApiServer() { Stop(); }

absl::StatusOr<uint16_t> TaskApiServer::Start() { return server_->Start(); }

void TaskApiServer::Stop() {
  server_->Stop();
  pool_->Stop();
  calls_.Wait();
}

uint16_t TaskApiServer::port() const { return server_->port(); }

}  // namespace berth::api
