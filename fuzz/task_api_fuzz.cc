// Fuzzes the agent's task API (api/task_api.h) from its router down: the bearer token check, the
// routes under /v1/tasks/{name}/ (logs, console, stats, exec, warm-state), the warm states it
// serves other hosts (/v1/warm-states/KEY) and the host's disk pool under /v1/storage/
// (api/host_storage.h), their query and body parsing, and the reads and
// follows of task files. The tasks are an in-memory LocalHost whose
// log and console files lie in a temporary directory made once and removed at exit; its exec,
// stats and warm-state saves answer canned values or errors. Requests go to
// TaskApiServer::router() with no socket in between (Responder::ToSink); the server is started
// only for the timers that pace follows, on a loopback port nothing connects to.
// An input is one request, its header fields as on the wire:
//
//   METHOD TARGET\n
//   Field: value\n        ("$TOKEN" in a value stands for the server's token)
//   \n
//   body...
//
// Each run checks what the task API promises (api/task_api.h, docs/cluster.md,
// docs/drivers.md): 401 exactly when the request lacks the one right bearer token; with it, 400
// for a malformed name or stream, what the host said for the rest (404, 409, 503), never any
// other 5xx; a read (plain or followed) answers the whole file; and the host sees only workload
// names, streams, warm state keys and exec requests that are valid (a command and environment
// that execve can carry as given).
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "api/http/router.h"
#include "api/task_api.h"
#ifdef BERTH_FUZZ_STORAGE
#include "api/host_storage.h"
#endif
#include "core/names.h"
#include "core/status.h"

namespace {

using berth::api::HttpRequest;
using berth::api::HttpResponse;
using berth::core::Json;

// wire::kTaskApiTokenLength hex digits, like the agent's.
constexpr char kToken[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
constexpr absl::Duration kMaxWait = absl::Minutes(5);

std::filesystem::path& TempDir() {
  static std::filesystem::path dir;
  return dir;
}

void RemoveTempDir() {
  if (TempDir().empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(TempDir(), ec);
}

[[noreturn]] void Die(std::string_view what, std::string_view detail) {
  std::fprintf(stderr, "task_api_fuzz: %.*s\n%.*s\n", static_cast<int>(what.size()), what.data(),
               static_cast<int>(std::min<size_t>(detail.size(), 2000)), detail.data());
  RemoveTempDir();
  std::abort();
}

// What the tasks' files hold at the start of each run, by workload and then by stream
// ("console" for the console).
const std::map<std::string, std::map<std::string, std::string>>& Files() {
  // A console is raw bytes: escapes, a NUL, not UTF-8.
  static constexpr char kConsole[] = "SeaBIOS\r\n\x1b[2J\xff\xfe not UTF-8\0 login: ";
  static const auto* files = new std::map<std::string, std::map<std::string, std::string>>{
      {"web", {{"stdout", "listening on :8080\nGET / 200\n"}, {"stderr", ""}}},
      {"vm1", {{"stdout", "boot\n"}, {"console", std::string(kConsole, sizeof(kConsole) - 1)}}},
  };
  return *files;
}

std::filesystem::path FileOf(std::string_view workload, std::string_view stream) {
  return TempDir() / (std::string(workload) + "." + std::string(stream));
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// What "web" writes to its stdout when its stats are first asked in a run: a follow must pass
// on what a task writes while it is followed.
constexpr std::string_view kWebMore = "GET /health 200\n";

// The tasks of one host. "web" is a container and "vm1" a VM, both running until their stats
// have been asked once in a run (so a follow sees the task end; "web" writes kWebMore to its
// stdout then); "gone" had files that are gone and no task any more; "down" is a host whose
// agent is not running; any other name is no task.
class FuzzTasks final : public berth::agent::LocalHost {
 public:
  // Forgets what the last run asked, and what "web" wrote in it.
  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    if (web_wrote_) {
      std::ofstream out(FileOf("web", "stdout"), std::ios::binary | std::ios::trunc);
      out << Files().at("web").at("stdout");
      if (!out) Die("cannot rewrite the task file", FileOf("web", "stdout").string());
      web_wrote_ = false;
    }
    stats_calls_.clear();
    called_ = false;
    unavailable_ = false;
  }
  bool called() {
    std::lock_guard<std::mutex> lock(mu_);
    return called_;
  }
  bool said_unavailable() {
    std::lock_guard<std::mutex> lock(mu_);
    return unavailable_;
  }

  std::string HostName() override { return "fuzz-host"; }

  absl::StatusOr<std::string> LogPath(std::string_view workload, std::string_view stream) override {
    BERTH_RETURN_IF_ERROR(Enter(workload));
    if (stream != "stdout" && stream != "stderr") Die("the host was asked for a stream", stream);
    return FilePath(workload, stream);
  }
  absl::StatusOr<std::string> ConsolePath(std::string_view workload) override {
    BERTH_RETURN_IF_ERROR(Enter(workload));
    if (workload == "web") {
      return absl::FailedPreconditionError("workload \"web\": only vm workloads have a console");
    }
    return FilePath(workload, "console");
  }
  absl::StatusOr<berth::api::wire::ExecReply> Exec(
      std::string_view workload, const berth::api::wire::ExecRequest& request) override {
    BERTH_RETURN_IF_ERROR(Enter(workload));
    if (request.argv.empty()) Die("the host was asked to exec no command", "");
    if (request.timeout <= absl::ZeroDuration() || request.timeout > kMaxWait) {
      Die("the host was given an exec timeout out of bounds",
          absl::FormatDuration(request.timeout));
    }
    // A host hands argv and env to execve (or to runc's command line): a NUL would cut a
    // string short and a '=' in a name would set another variable, so the command run would
    // not be the one asked for.
    for (const std::string& a : request.argv) {
      if (a.find('\0') != std::string::npos) Die("the host was given argv with a NUL", a);
    }
    for (const auto& [k, v] : request.env) {
      if (k.empty() || k.find_first_of(std::string_view("=\0", 2)) != std::string::npos ||
          v.find('\0') != std::string::npos) {
        Die("the host was given an env it cannot set as asked", k + "=" + v);
      }
    }
    if (workload == "web") {
      std::string joined;
      for (const std::string& a : request.argv) joined += a + "\n";
      return berth::api::wire::ExecReply{.exit_code = 0, .stdout_data = joined};
    }
    if (workload == "vm1") {
      return absl::FailedPreconditionError("workload \"vm1\": exec runs in containers only");
    }
    return NoTask(workload);
  }
  absl::StatusOr<Json> Stats(std::string_view workload) override {
    BERTH_RETURN_IF_ERROR(Enter(workload));
    if (workload != "web" && workload != "vm1") return NoTask(workload);
    int calls = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls = ++stats_calls_[std::string(workload)];
      if (workload == "web" && calls == 1) {
        std::ofstream out(FileOf("web", "stdout"), std::ios::binary | std::ios::app);
        out << kWebMore;
        if (!out) Die("cannot write the task file", FileOf("web", "stdout").string());
        web_wrote_ = true;
      }
    }
    Json stats = {{"workload", std::string(workload)},
                  {"kind", workload == "web" ? "container" : "vm"},
                  {"state", calls == 1 ? "running" : "exited"},
                  {"pid", 4242},
                  {"cpu_user_ms", 17}};
    if (calls > 1) stats["exit_code"] = 0;
    if (workload == "vm1") stats["qmp_status"] = "running";
    return stats;
  }
  // vm1's saved state is kept (its bytes: vm1's console file); no other.
  absl::StatusOr<std::string> WarmStateFile(std::string_view key) override {
    if (!berth::agent::IsWarmStateKey(key)) Die("the host was asked for a warm state key", key);
    if (key == "vm1.r1") return FileOf("vm1", "console").string();
    return absl::NotFoundError(berth::core::Cat("warm state ", key, ": none kept"));
  }
  absl::StatusOr<int64_t> SaveWarmState(std::string_view workload, std::string_view key) override {
    BERTH_RETURN_IF_ERROR(Enter(workload));
    if (!berth::agent::IsWarmStateKey(key)) Die("the host was given a warm state key", key);
    if (workload == "vm1") return 4096;
    if (workload == "web") {
      return absl::FailedPreconditionError("workload \"web\": only VMs save a warm state");
    }
    return NoTask(workload);
  }

 private:
  // Checks the name the host was given and notes the call; Unavailable for "down".
  absl::Status Enter(std::string_view workload) {
    if (!berth::core::ValidateName("workload", workload).ok()) {
      Die("the host was given a workload name that is not one", std::string(workload));
    }
    std::lock_guard<std::mutex> lock(mu_);
    called_ = true;
    if (workload == "down") {
      unavailable_ = true;
      return absl::UnavailableError("the local agent is not running");
    }
    return absl::OkStatus();
  }
  static absl::Status NoTask(std::string_view workload) {
    return absl::NotFoundError("workload \"" + std::string(workload) + "\": no task on this host");
  }
  // The file of `workload`'s `stream`: in the directory for "web" and "vm1", a path that is
  // gone for "gone".
  static absl::StatusOr<std::string> FilePath(std::string_view workload, std::string_view stream) {
    auto task = Files().find(std::string(workload));
    if (task != Files().end() && task->second.count(std::string(stream)) > 0) {
      return FileOf(workload, stream).string();
    }
    if (workload == "gone") return FileOf("gone", stream).string();
    return NoTask(workload);
  }

  std::mutex mu_;
  std::map<std::string, int> stats_calls_;
  bool called_ = false;
  bool unavailable_ = false;
  bool web_wrote_ = false;
};

#ifdef BERTH_FUZZ_STORAGE
// The host's disk pool behind /v1/storage/default/OP (api/host_storage.h): it must only ever be
// given disk names (and workload names as holders); "gone" is not there, the rest is.
class FuzzPool : public berth::control::StorageHost {
 public:
  absl::Status Prepare() override { return absl::OkStatus(); }
  absl::StatusOr<berth::control::HostVolume> Create(
      const berth::control::HostVolumeSpec& spec) override {
    return Volume(spec.name);
  }
  absl::StatusOr<berth::control::HostVolume> Get(std::string_view name) override {
    return Volume(name);
  }
  absl::StatusOr<berth::control::HostVolume> Resize(std::string_view name, int64_t,
                                                    std::string_view attached_to) override {
    Holder(attached_to);
    return Volume(name);
  }
  absl::Status Snapshot(std::string_view name, std::string_view) override {
    return Volume(name).status();
  }
  absl::Status Revert(std::string_view name, std::string_view,
                      std::string_view attached_to) override {
    Holder(attached_to);
    return Volume(name).status();
  }
  absl::Status DeleteSnapshot(std::string_view name, std::string_view) override {
    return Volume(name).status();
  }
  absl::StatusOr<berth::control::HostVolume> Clone(std::string_view source, std::string_view,
                                                   std::string_view name,
                                                   std::string_view) override {
    BERTH_RETURN_IF_ERROR(Volume(source).status());
    return Volume(name);
  }
  absl::StatusOr<berth::control::HostBackup> Backup(std::string_view name, const std::string&,
                                                    const berth::control::Progress&) override {
    BERTH_RETURN_IF_ERROR(Volume(name).status());
    return berth::control::HostBackup{.bytes = 1};
  }
  absl::StatusOr<berth::control::HostVolume> Restore(const std::string&, std::string_view name,
                                                     std::string_view,
                                                     const berth::control::Progress&) override {
    return Volume(name);
  }
  absl::Status Delete(std::string_view name, std::string_view attached_to) override {
    Holder(attached_to);
    return Volume(name).status();
  }
  absl::StatusOr<std::vector<berth::control::HostPool>> Pools() override {
    return std::vector<berth::control::HostPool>{{.name = "default"}};
  }

 private:
  static absl::StatusOr<berth::control::HostVolume> Volume(std::string_view name) {
    if (!berth::core::ValidateName("disk", name).ok()) {
      Die("the pool was given a disk name that is not one", name);
    }
    if (name == "gone") return absl::NotFoundError("volume \"gone\" not found");
    return berth::control::HostVolume{.format = "qcow2", .size_mib = 8};
  }
  static void Holder(std::string_view workload) {
    if (!workload.empty() && !berth::core::ValidateName("workload", workload).ok()) {
      Die("the pool was given a holder that is not a workload name", workload);
    }
  }
};
#endif

// The temporary directory with the files, the tasks and their started server, made once and
// gone at exit.
struct Harness {
  Harness() {
    TempDir() = std::filesystem::temp_directory_path() /
                ("berth-task-api-fuzz-" + std::to_string(getpid()));
    std::filesystem::create_directories(TempDir());
    for (const auto& [workload, streams] : Files()) {
      for (const auto& [stream, content] : streams) {
        std::ofstream out(FileOf(workload, stream), std::ios::binary);
        out << content;
        if (!out) Die("cannot write the task files", TempDir().string());
      }
    }
    berth::api::TaskApiOptions options;
    options.host = "127.0.0.1";
    options.token = kToken;
    options.max_wait = kMaxWait;
    options.follow_poll = absl::Milliseconds(1);  // a followed task's end is seen at once
    server = std::make_unique<berth::api::TaskApiServer>(options, &tasks);
#ifdef BERTH_FUZZ_STORAGE
    berth::api::AddHostStorageRoutes(server->routes(), {{"default", &pool}});
#endif
    absl::StatusOr<uint16_t> port = server->Start();
    if (!port.ok()) Die("cannot start the task API", port.status().ToString());
  }
  ~Harness() {
    server->Stop();  // waits for the execs in flight, which use `tasks`
    RemoveTempDir();
  }

  FuzzTasks tasks;
#ifdef BERTH_FUZZ_STORAGE
  FuzzPool pool;
#endif
  std::unique_ptr<berth::api::TaskApiServer> server;
};

bool IsTokenChar(unsigned char c) {
  return std::isalnum(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// Splits the input into a request as the server's parser would hand it over; false when the
// parser would refuse it (or answer it 400 before routing).
bool ToRequest(std::string_view in, HttpRequest* req) {
  auto next_line = [&in]() -> std::optional<std::string_view> {
    if (in.empty()) return std::nullopt;
    size_t nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };
  std::optional<std::string_view> first = next_line();
  if (!first) return false;
  size_t sp = first->find(' ');
  if (sp == std::string_view::npos || sp == 0) return false;
  req->method = std::string(first->substr(0, sp));
  req->target = std::string(first->substr(sp + 1));
  for (unsigned char c : req->method) {
    if (!IsTokenChar(c)) return false;
  }
  for (unsigned char c : req->target) {
    if (c <= ' ' || c == 0x7f) return false;
  }
  if (req->target.empty() || req->target[0] != '/') return false;
  while (std::optional<std::string_view> line = next_line()) {
    if (line->empty()) break;
    size_t colon = line->find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    std::string_view name = line->substr(0, colon);
    for (unsigned char c : name) {
      if (!IsTokenChar(c)) return false;
    }
    std::string value(line->substr(colon + 1));
    for (unsigned char c : value) {
      if ((c < ' ' && c != '\t') || c == 0x7f) return false;
    }
    for (size_t at = value.find("$TOKEN"); at != std::string::npos;
         at = value.find("$TOKEN", at + sizeof(kToken) - 1)) {
      value.replace(at, 6, kToken);
    }
    // The parser drops the whitespace around a value.
    size_t begin = value.find_first_not_of(" \t");
    size_t end = value.find_last_not_of(" \t");
    value = begin == std::string::npos ? "" : value.substr(begin, end - begin + 1);
    req->headers.Add(std::string(name), std::move(value));
  }
  req->body = std::string(in);
  size_t q = req->target.find('?');
  req->path = req->target.substr(0, q);
  if (q != std::string::npos) {
    auto query = berth::api::ParseQuery(std::string_view(req->target).substr(q + 1));
    if (!query.ok()) return false;
    req->query = std::move(*query);
  }
  req->remote_address = "127.0.0.1";
  return true;
}

// Whether the request carries the one right token: exactly one Authorization field, "Bearer "
// and the token.
bool HasToken(const HttpRequest& req) {
  int fields = 0;
  bool right = false;
  for (const auto& [name, value] : req.headers.entries()) {
    if (!absl::EqualsIgnoreCase(name, "Authorization")) continue;
    ++fields;
    right = value == std::string("Bearer ") + kToken;
  }
  return fields == 1 && right;
}

// A request for one of the task routes, as the router will see it.
struct TaskCall {
  std::string name;
  std::string op;  // logs, console, stats, exec, warm-state
};

std::optional<TaskCall> RoutedTaskCall(const HttpRequest& req) {
  absl::StatusOr<std::vector<std::string>> segments = berth::api::SplitPath(req.path);
  if (!segments.ok() || segments->size() != 4 || (*segments)[0] != "v1" ||
      (*segments)[1] != "tasks") {
    return std::nullopt;
  }
  const std::string& op = (*segments)[3];
  const bool get = req.method == "GET" || req.method == "HEAD";
  if (((op == "logs" || op == "console" || op == "stats") && get) ||
      ((op == "exec" || op == "warm-state") && req.method == "POST")) {
    return TaskCall{(*segments)[2], op};
  }
  return std::nullopt;
}

// Runs `req` through the router and returns its one answer.
HttpResponse Answer(const berth::api::Router& router, HttpRequest req) {
  struct Sink {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<HttpResponse> response;
  };
  auto sink = std::make_shared<Sink>();
  const std::string what = req.method + " " + req.target;
  router.Dispatch(req, berth::api::Responder::ToSink([sink](HttpResponse r) {
                    std::lock_guard<std::mutex> lock(sink->mu);
                    sink->response = std::move(r);
                    sink->cv.notify_all();
                  }));
  std::unique_lock<std::mutex> lock(sink->mu);
  if (!sink->cv.wait_for(lock, std::chrono::seconds(20),
                         [&] { return sink->response.has_value(); })) {
    Die("no answer within 20s", what);
  }
  return *sink->response;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Harness harness;
  HttpRequest req;
  if (!ToRequest(std::string_view(reinterpret_cast<const char*>(data), size), &req)) return 0;
  harness.tasks.Reset();
  const bool token = HasToken(req);
  const std::optional<TaskCall> call = RoutedTaskCall(req);
  const std::optional<std::string> stream = req.Query("stream");
  const std::optional<std::string> follow = req.Query("follow");
  const std::string what = req.method + " " + req.target;

  HttpResponse response = Answer(harness.server->router(), req);
  const std::string seen = what + " -> " + std::to_string(response.status) + " " + response.body;

  if (!token) {
    if (response.status != 401) Die("answered without the token", seen);
    if (harness.tasks.called()) Die("the host was asked without the token", seen);
    return 0;
  }
  if (response.status == 401) Die("the right token was refused", seen);
  switch (response.status) {
    case 200:
    case 400:
    case 404:
    case 405:
    case 409:
      break;
    case 503:
      if (!harness.tasks.said_unavailable()) Die("503 that the host did not say", seen);
      break;
    default:
      Die("unexpected status", seen);
  }
  const std::string type = response.Header("Content-Type").value_or("");
  if (type.find("json") != std::string::npos) {
    Json body = Json::parse(response.body, nullptr, false);
    if (!body.is_object()) Die("answer is not a JSON object", seen);
    if (response.status != 200 && (!body.contains("error") || !body["error"].is_object() ||
                                   !body["error"].value("code", Json()).is_string() ||
                                   !body["error"].value("message", Json()).is_string())) {
      Die("error answer without error.code and error.message", seen);
    }
  } else if (response.status != 200) {
    Die("error answer that is not JSON", seen);
  }
#ifdef BERTH_FUZZ_STORAGE
  // The pool's routes: a bad name never reaches it (it checks), and what it answers is kept.
  if (absl::StartsWith(req.path, "/v1/storage/")) return 0;
#endif
  // The warm states served to other hosts: vm1.r1 whole, with its size (its bytes are vm1's
  // console file); any other key 400 or 404, asked of the host only when well formed (above).
  if (absl::StartsWith(req.path, "/v1/warm-states/") && response.status == 200) {
    const std::string& want = Files().at("vm1").at("console");
    if (response.body != want) Die("a warm state answer is not the whole file", seen);
    if (response.Header(berth::api::wire::kWarmStateSizeHeader) != std::to_string(want.size())) {
      Die("a warm state answer without its size", seen);
    }
    return 0;
  }
  if (!call) {
    if (response.status == 200) Die("200 for no task route", seen);
    return 0;
  }

  const bool name_ok = berth::core::ValidateName("workload", call->name).ok();
  const bool stream_ok =
      call->op != "logs" || !stream || *stream == "stdout" || *stream == "stderr";
  if (!name_ok || !stream_ok) {
    if (response.status != 400) Die("a malformed name or stream is not 400", seen);
    return 0;
  }
  if (call->op == "logs" || call->op == "console" || call->op == "stats") {
    if (!harness.tasks.called()) Die("a well-formed read did not reach the host", seen);
  }
  if (response.status == 400 && call->op != "exec" && call->op != "warm-state") {
    Die("400 for a well-formed read", seen);
  }
  if (response.status != 200) return 0;

  if (call->op == "logs" || call->op == "console") {
    auto task = Files().find(call->name);
    const std::string key = call->op == "console" ? "console" : stream.value_or("stdout");
    if (task == Files().end() || task->second.count(key) == 0) Die("200 for no file", seen);
    // The files are small: a plain read answers all the file held, a follow all it holds once
    // the task is over.
    if (response.body != ReadFile(FileOf(call->name, key))) {
      Die(std::string("answer is not the file") + (follow ? " (followed)" : ""), seen);
    }
    return 0;
  }
  Json body = Json::parse(response.body, nullptr, false);
  if (!body.is_object()) Die("answer is not a JSON object", seen);
  if (call->op == "stats" && body.value("workload", "") != call->name) {
    Die("stats of another workload", seen);
  }
  if (call->op == "exec" && !body.value("exit_code", Json()).is_number_integer()) {
    Die("exec answer without exit_code", seen);
  }
  if (call->op == "warm-state" &&
      (body.value("workload", "") != call->name || body.value("bytes", 0) != 4096 ||
       !berth::agent::IsWarmStateKey(body.value("key", "")))) {
    Die("warm state answer is not what the host saved", seen);
  }
  return 0;
}
