// Helpers for end-to-end tests that run the real `berth` binary: a dev server in its own data
// directory on a free port, and CLI invocations with their exit code and output.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api/client/client.h"
#include "nlohmann/json.hpp"

namespace berth::e2e {

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Polls `done` every 50 ms until it holds or `seconds` pass (generous: tests never fail
// because the machine is slow, only because something never happens).
inline bool Eventually(const std::function<bool()>& done, int seconds = 60) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the binary with `args` and BERTH_DATA_DIR=data_dir, feeding `input` on stdin.
inline Result Run(const std::string& data_dir, const std::vector<std::string>& args,
                  const std::string& input = "") {
  std::string base =
      std::filesystem::temp_directory_path() / ("berth-e2e-" + std::to_string(getpid()));
  std::string out_path = base + ".out", err_path = base + ".err", in_path = base + ".in";
  {
    std::ofstream in(in_path);
    in << input;
  }
  pid_t pid = fork();
  if (pid == 0) {
    setenv("BERTH_DATA_DIR", data_dir.c_str(), 1);
    unsetenv("BERTH_ADDR");
    unsetenv("BERTH_TOKEN");
    int in = open(in_path.c_str(), O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(BERTH_BINARY));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(BERTH_BINARY, argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  Result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFile(out_path);
  r.err = ReadFile(err_path);
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  std::filesystem::remove(in_path);
  return r;
}

// A `berth serve --dev` process in its own data directory.
// The replica ports of a server a test starts: 100 of 20000-32699, picked by the test process's
// pid, so that the servers of tests running side by side rarely hand out the same ports (one's
// replica would answer the other's probes).
inline std::string ServicePortsOfThisProcess() {
  const int base = 20000 + static_cast<int>(getpid() % 127) * 100;
  return std::to_string(base) + "-" + std::to_string(base + 99);
}

// A free port for a service's endpoint: outside the range servers give replicas (20000-32767),
// and free at the time of the call.
inline int FreeEndpointPort() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port = ntohs(a.sin_port);
    }
    close(fd);
    if (port > 32767 || (port >= 1024 && port < 20000)) return port;
  }
  return 0;
}

// A job "ft" of one busybox container task whose checkpoint lives on disk `disk`, mounted at
// /ckpt: the first attempt writes 7 there and fails (exit 3); a retry prints resumed-7, read from
// BERTH_RESUME_FROM, and succeeds.
inline nlohmann::json CheckpointDiskJob(const std::string& disk, const std::string& backoff) {
  const std::string script =
      "if [ -n \"$BERTH_RESUME_FROM\" ]; then echo resumed-$(cat \"$BERTH_RESUME_FROM/step\"); "
      "exit 0; fi; echo 7 > \"$BERTH_CHECKPOINT_DIR/step\" && sync && exit 3";
  return {{"name", "ft"},
          {"parallelism", 1},
          {"restart", {{"max_retries", 1}, {"backoff", backoff}}},
          {"checkpoint", {{"dir", "/ckpt"}, {"disk", disk}, {"grace", "10s"}}},
          {"template",
           {{"kind", "container"},
            {"image", "busybox"},
            {"command", {"/bin/sh", "-c", script}},
            {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}}}}};
}

// Waits (up to `seconds`) until job `name` has finished: its state's name ("succeeded",
// "failed"), or the last state seen when it did not finish; `message` gets the job's message.
inline std::string WaitForJobEnd(api::Client& client, const std::string& name, int seconds,
                                 std::string* message) {
  std::string state;
  Eventually(
      [&] {
        auto j = client.GetJob(name);
        if (!j.ok()) return false;
        state = std::string(core::JobStateName(j->status.state));
        *message = j->status.message;
        return core::IsJobFinished(j->status.state);
      },
      seconds);
  return state;
}

class DevServer {
 public:
  explicit DevServer(std::string data_dir, std::vector<std::string> extra_args = {"--dev"})
      : data_dir_(std::move(data_dir)), extra_args_(std::move(extra_args)) {}
  ~DevServer() { Kill(SIGTERM); }

  // Starts the server and waits until it answers; false if it never does.
  bool Start() {
    std::filesystem::create_directories(data_dir_);
    std::filesystem::remove(data_dir_ + "/server.json");
    const std::string service_ports =
        ServicePortsOfThisProcess();  // the test's pid, not the child's
    pid_ = fork();
    if (pid_ == 0) {
      setsid();
      int log = open((data_dir_ + "/serve.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(log, 1);
      dup2(log, 2);
      std::vector<std::string> args = {BERTH_BINARY, "serve",    "--data-dir",
                                       data_dir_,    "--listen", listen_};
      bool ttl = false, ports = false;
      for (const auto& a : extra_args_) {
        ttl |= a == "--host-ttl";
        ports |= a == "--service-ports";
      }
      if (!ttl) args.insert(args.end(), {"--host-ttl", "30s"});
      if (!ports) args.insert(args.end(), {"--service-ports", service_ports});
      args.insert(args.end(), extra_args_.begin(), extra_args_.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(BERTH_BINARY, argv.data());
      _exit(127);
    }
    bool up = Eventually([&] {
      auto info = nlohmann::json::parse(ReadFile(data_dir_ + "/server.json"), nullptr, false);
      if (!info.is_object() || info.value("pid", 0) != pid_) return false;
      url_ = info.value("url", "");
      return true;
    });
    if (!up) return false;
    token_ = ReadFile(data_dir_ + "/admin.token");
    while (!token_.empty() && token_.back() == '\n') token_.pop_back();
    client_ = std::make_unique<api::Client>(url_, api::ClientOptions{.token = token_});
    return true;
  }

  // Where the next Start() listens (default 127.0.0.1:0, a free port).
  void SetListen(std::string listen) { listen_ = std::move(listen); }

  void Kill(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    client_.reset();
  }

  // The server's typed client, with the admin token.
  api::Client& client() { return *client_; }
  const std::string& url() const { return url_; }
  const std::string& token() const { return token_; }
  const std::string& data_dir() const { return data_dir_; }
  pid_t pid() const { return pid_; }

  // A plain HTTP client with the admin token, for tests whose point is a malformed request.
  std::unique_ptr<api::HttpClient> RawClient() const {
    return std::make_unique<api::HttpClient>(url_,
                                             api::HttpClient::Options{.bearer_token = token_});
  }
  // The workload's state ("running", ...), or "" when it cannot be read.
  std::string State(const std::string& workload) {
    auto w = client_->GetWorkload(workload);
    return w.ok() ? std::string(core::WorkloadStateName(w->status.state)) : "";
  }
  // The workload as the server encodes it, or null when it cannot be read (for messages).
  nlohmann::json Dump(const std::string& workload) {
    api::Raw raw;
    return client_->GetWorkload(workload, {}, &raw).ok() ? raw.body : nlohmann::json();
  }

 private:
  std::string data_dir_;
  std::vector<std::string> extra_args_;
  std::string listen_ = "127.0.0.1:0";
  pid_t pid_ = -1;
  std::string url_;
  std::string token_;
  std::unique_ptr<api::Client> client_;
};

// Starts the program `argv[0]` (looked up in PATH) in its own session with output to `log`;
// returns its pid.
inline pid_t SpawnProgram(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<std::string> copy = argv;
    std::vector<char*> args;
    for (auto& a : copy) args.push_back(a.data());
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// Starts `berth ARGS...` in its own session with output to `log`; returns its pid.
inline pid_t Spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv = {BERTH_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return SpawnProgram(argv, log);
}

inline void KillAndReap(pid_t pid, int sig) {
  if (pid <= 0) return;
  kill(pid, sig);
  int status = 0;
  waitpid(pid, &status, 0);
}

// True while some process's command line contains `marker`.
inline bool ProcessWithArg(const std::string& marker) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string cmdline = ReadFile(entry.path().string() + "/cmdline");
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find(marker) != std::string::npos) return true;
  }
  return false;
}

inline std::string TempDir(const std::string& name) {
  std::string dir = std::filesystem::temp_directory_path() /
                    ("berth-" + name + "-" + std::to_string(getpid()) + "-" +
                     std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::filesystem::create_directories(dir);
  return dir;
}

// Deletes every workload and waits (up to a minute) until they are gone. Workloads outlive a
// stopped server (its next start re-adopts them), so tests delete theirs before stopping it.
// The mount points at or below `dir` (a container's root filesystem, a loop-mounted disk),
// deepest first.
inline std::vector<std::string> MountsBelow(const std::string& dir) {
  std::ifstream mounts("/proc/mounts");
  std::string device, point, rest;
  std::vector<std::string> out;
  while (mounts >> device >> point && std::getline(mounts, rest)) {
    if (point == dir || point.rfind(dir + "/", 0) == 0) out.push_back(point);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

// Detaches every mount at or below `dir`, so the directory can be removed (what a killed agent
// left: its tasks' mounts outlive it).
inline void UnmountBelow(const std::string& dir) {
  for (const std::string& point : MountsBelow(dir)) {
    if (umount2(point.c_str(), MNT_DETACH) != 0) {
      std::fprintf(stderr, "umount %s: %s\n", point.c_str(), strerror(errno));
    }
  }
}

inline void DeleteAllWorkloads(DevServer& server) {
  auto list = server.client().ListWorkloads();
  if (!list.ok()) return;
  for (const auto& w : list->items) {
    auto deleted = server.client().DeleteWorkload(w.spec.name);
    if (!deleted.ok() && !absl::IsNotFound(deleted.status())) {
      std::fprintf(stderr, "workload %s: delete failed: %s\n", w.spec.name.c_str(),
                   deleted.status().ToString().c_str());
    }
  }
  Eventually(
      [&] {
        auto now = server.client().ListWorkloads();
        return !now.ok() || now->items.empty();
      },
      60);
  // A deleted workload leaves the list before its agent has taken its task down: its mounts
  // (a container's root filesystem) go a moment later.
  Eventually([&] { return MountsBelow(server.data_dir()).empty(); }, 30);
}

}  // namespace berth::e2e
