#include "state/etcd/etcd_test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/http/client.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::state::testing {
namespace {

// Ports the kernel hands out for port 0, all distinct: every socket stays bound until all are
// picked. etcd binds them a moment later; a rare clash makes the member exit and Start retry.
absl::StatusOr<std::vector<int>> FreePorts(int count) {
  std::vector<int> fds;
  std::vector<int> ports;
  absl::Status status;
  for (int i = 0; i < count && status.ok(); ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      status = absl::InternalError(core::Cat("socket: ", strerror(errno)));
      break;
    }
    fds.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      status = absl::InternalError(core::Cat("bind a loopback port: ", strerror(errno)));
      break;
    }
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) close(fd);
  if (!status.ok()) return status;
  return ports;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(int members) {
  const char* override_binary = getenv("BERTH_ETCD");
  std::string binary = override_binary != nullptr ? override_binary : "/usr/bin/etcd";
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        core::Cat("etcd binary ", binary,
                  " is missing: scripts/setup.sh installs it (Debian package etcd-server)"));
  }
  absl::Status last;
  // A port taken between picking and binding fails one attempt; fresh ports fix it.
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::unique_ptr<EtcdCluster> cluster(new EtcdCluster());
    cluster->binary_ = binary;
    const char* base = getenv("TEST_TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/berth-etcd-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      return absl::InternalError(core::Cat("mkdtemp ", pattern, ": ", strerror(errno)));
    }
    cluster->dir_ = pattern;
    BERTH_ASSIGN_OR_RETURN(std::vector<int> ports, FreePorts(2 * members));
    for (int i = 0; i < members; ++i) {
      Member member;
      member.name = core::Cat("m", i);
      member.client = core::Cat("127.0.0.1:", ports[2 * i]);
      member.peer = core::Cat("127.0.0.1:", ports[2 * i + 1]);
      cluster->initial_cluster_ +=
          core::Cat(i == 0 ? "" : ",", member.name, "=http://", member.peer);
      cluster->members_.push_back(std::move(member));
    }
    last = absl::OkStatus();
    for (int i = 0; i < members && last.ok(); ++i) last = cluster->Launch(i);
    for (int i = 0; i < members && last.ok(); ++i) last = cluster->WaitServing(i);
    if (last.ok()) return cluster;
  }
  return last;
}

EtcdCluster::~EtcdCluster() {
  for (int i = 0; i < size(); ++i) {
    if (members_[i].pid > 0) {
      absl::Status killed = Kill(i);
      if (!killed.ok()) fprintf(stderr, "etcd test cluster: %s\n", killed.ToString().c_str());
    }
  }
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  if (ec) fprintf(stderr, "etcd test cluster: remove %s: %s\n", dir_.c_str(), ec.message().c_str());
}

std::vector<std::string> EtcdCluster::endpoints() const {
  std::vector<std::string> out;
  for (const Member& member : members_) out.push_back(member.client);
  return out;
}

std::string EtcdCluster::data_dir(int member) const {
  return core::Cat(dir_, "/", members_[member].name, ".etcd");
}

absl::Status EtcdCluster::Launch(int i) {
  Member& member = members_[i];
  const bool alone = members_.size() == 1;
  std::vector<std::string> args = {
      binary_,
      "--name=" + member.name,
      "--data-dir=" + data_dir(i),
      "--listen-client-urls=http://" + member.client,
      "--advertise-client-urls=http://" + member.client,
      "--listen-peer-urls=http://" + member.peer,
      "--initial-advertise-peer-urls=http://" + member.peer,
      "--initial-cluster=" + initial_cluster_,
      "--initial-cluster-state=new",
      core::Cat("--initial-cluster-token=berth-test-", getpid()),
      "--logger=zap",
      "--log-outputs=stderr",
      "--log-level=warn",
  };
  if (!alone) {
    // Slow, shared test machines delay heartbeats; patient timeouts avoid needless elections.
    args.push_back("--heartbeat-interval=250");
    args.push_back("--election-timeout=2500");
  }
  std::string log = core::Cat(dir_, "/", member.name, ".log");
  // Everything the child needs is allocated before fork: it may only make system calls.
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError(core::Cat("fork etcd: ", strerror(errno)));
  if (pid == 0) {
    // The member dies with the test, however the test ends.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  member.pid = pid;
  return absl::OkStatus();
}

absl::Status EtcdCluster::WaitServing(int i) {
  Member& member = members_[i];
  api::HttpClient client(
      core::Cat("http://", member.client),
      api::HttpClientOptions{.timeout = absl::Seconds(5), .connect_timeout = absl::Seconds(5)});
  // Generous: it bounds a failing start, never a passing one.
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  std::string last = "no answer yet";
  while (absl::Now() < deadline) {
    int wstatus = 0;
    if (waitpid(member.pid, &wstatus, WNOHANG) == member.pid) {
      member.pid = -1;
      return absl::UnavailableError(core::Cat("etcd member ", member.name, " exited (status ",
                                              wstatus, "); log:\n", LogTail(i)));
    }
    absl::StatusOr<api::HttpResponse> health = client.Get("/health");
    if (health.ok() && health->status == 200 &&
        health->body.find("\"true\"") != std::string::npos) {
      return absl::OkStatus();
    }
    last = health.ok() ? core::Cat("HTTP ", health->status, " ", health->body)
                       : std::string(health.status().message());
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(core::Cat("etcd member ", member.name, " at ", member.client,
                                               " not healthy within 120s (", last, "); log:\n",
                                               LogTail(i)));
}

std::string EtcdCluster::LogTail(int i) const {
  std::ifstream in(core::Cat(dir_, "/", members_[i].name, ".log"));
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
}

absl::Status EtcdCluster::Kill(int i) {
  Member& member = members_[i];
  if (member.pid <= 0) return absl::OkStatus();
  if (kill(member.pid, SIGKILL) != 0 && errno != ESRCH) {
    return absl::InternalError(core::Cat("kill etcd ", member.name, ": ", strerror(errno)));
  }
  int wstatus = 0;
  while (waitpid(member.pid, &wstatus, 0) < 0) {
    if (errno != EINTR) {
      return absl::InternalError(core::Cat("reap etcd ", member.name, ": ", strerror(errno)));
    }
  }
  member.pid = -1;
  return absl::OkStatus();
}

absl::Status EtcdCluster::Restart(int i) {
  BERTH_RETURN_IF_ERROR(Kill(i));
  BERTH_RETURN_IF_ERROR(Launch(i));
  return WaitServing(i);
}

}  // namespace berth::state::testing
