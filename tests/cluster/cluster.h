// A three-host test bed on one machine: one `berth serve` and N `berth agent`s, each agent in its
// own network namespace with its own data directory and host name, joined by a bridge in the
// root namespace that plays the datacenter network (the server listens on the bridge's address).
// A test can SIGKILL a host (its agent and every process in its namespace, i.e. its workloads),
// cut its link and restore it, and bring a host back. Everything it made (namespaces, links,
// processes, directories) goes in the destructor, also when a test fails half-way.
//
// Needs root (ip netns, ip link). Not thread-safe: one test thread drives it; the process scans
// (MarkerProcesses) may run on any thread.
#pragma once

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/image/catalog.h"
#include "runtime/net/linux_network_driver.h"
#include "tests/e2e_util.h"

namespace berth::cluster {

struct ClusterOptions {
  int hosts = 3;
  // The server's --host-ttl and --failover-grace: short so tests take seconds (the failover
  // benchmark passes the defaults). Empty: the flag is not passed.
  std::string host_ttl = "3s";
  std::string failover_grace = "2s";
  // Images (name -> what to import) put into every agent's catalog before it starts: an
  // agent's catalog is read at its start and cannot be imported to through the server yet.
  std::map<std::string, runtime::ImportOptions> images;
  // Every agent mounts one directory as the fleet's shared disk pool (SharedPoolDir()), as
  // hosts would mount one NFS export.
  bool shared_pool = false;
};

// Runs `argv` (no shell) and returns its exit code; output goes to `log` when given.
inline int RunTool(const std::vector<std::string>& argv, const std::string& log = "") {
  int status = 0;
  waitpid(e2e::SpawnProgram(argv, log.empty() ? "/dev/null" : log), &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class Cluster {
 public:
  explicit Cluster(ClusterOptions options = {}) : options_(std::move(options)) {
    const unsigned id = static_cast<unsigned>(getpid());
    tag_ = std::to_string(id % 1000000);
    // A /24 per test process, so tests running side by side never share a subnet.
    subnet_ = "10." + std::to_string(128 + (id >> 8) % 120) + "." + std::to_string(id % 256);
    bridge_ = "bcb" + tag_;
    dir_ = e2e::TempDir("cluster");
  }
  ~Cluster() { Cleanup(); }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Makes the network, starts the server and every agent, and waits until all hosts are ready.
  // An empty string on success, else what went wrong.
  std::string Start() {
    if (geteuid() != 0) return "needs root (ip netns)";
    if (!Ip({"link", "add", bridge_, "type", "bridge"}) ||
        !Ip({"addr", "add", ServerAddress() + "/24", "dev", bridge_}) ||
        !Ip({"link", "set", bridge_, "up"})) {
      return "cannot make bridge " + bridge_ + ": " + e2e::ReadFile(dir_ + "/ip.log");
    }
    for (int i = 0; i < options_.hosts; ++i) {
      const std::string ns = Namespace(i), veth = Veth(i);
      if (!Ip({"netns", "add", ns})) return "cannot add namespace " + ns;
      namespaces_.push_back(ns);
      if (!Ip({"link", "add", veth, "type", "veth", "peer", "name", veth + "p"}) ||
          !Ip({"link", "set", veth + "p", "netns", ns}) ||
          !Ip({"link", "set", veth, "master", bridge_}) || !Ip({"link", "set", veth, "up"}) ||
          !Ip({"-n", ns, "link", "set", "lo", "up"}) ||
          !Ip({"-n", ns, "link", "set", veth + "p", "name", "eth0"}) ||
          !Ip({"-n", ns, "addr", "add", HostAddress(i) + "/24", "dev", "eth0"}) ||
          !Ip({"-n", ns, "link", "set", "eth0", "up"})) {
        return "cannot wire namespace " + ns + ": " + e2e::ReadFile(dir_ + "/ip.log");
      }
    }
    std::vector<std::string> flags;
    if (!options_.host_ttl.empty()) flags.insert(flags.end(), {"--host-ttl", options_.host_ttl});
    if (!options_.failover_grace.empty()) {
      flags.insert(flags.end(), {"--failover-grace", options_.failover_grace});
    }
    server_ = std::make_unique<e2e::DevServer>(dir_ + "/server", flags);
    server_->SetListen(ServerAddress() + ":0");
    if (!server_->Start()) return "server did not start: " + e2e::ReadFile(ServerLog());
    agents_.assign(options_.hosts, -1);
    for (int i = 0; i < options_.hosts; ++i) {
      for (const auto& [name, source] : options_.images) {
        auto catalog = runtime::ImageCatalog::Open(AgentDir(i) + "/images");
        if (!catalog.ok())
          return "image catalog of " + HostName(i) + ": " + catalog.status().ToString();
        auto imported = (*catalog)->Import(name, source);
        if (!imported.ok()) return "import " + name + ": " + imported.status().ToString();
      }
      StartAgent(i);
    }
    for (int i = 0; i < options_.hosts; ++i) {
      if (!e2e::Eventually([&] { return HostState(i) == "ready"; })) {
        return "host " + HostName(i) + " never became ready: " + e2e::ReadFile(AgentLog(i));
      }
    }
    return "";
  }

  e2e::DevServer& server() { return *server_; }
  api::Client& client() { return server_->client(); }
  int hosts() const { return options_.hosts; }
  static std::string HostName(int i) { return "host-" + std::to_string(i + 1); }
  // The index of the host named `name`, or -1.
  int IndexOf(const std::string& name) const {
    for (int i = 0; i < options_.hosts; ++i) {
      if (HostName(i) == name) return i;
    }
    return -1;
  }
  std::string AgentDir(int i) const { return dir_ + "/agent-" + std::to_string(i + 1); }
  std::string AgentLog(int i) const { return dir_ + "/agent-" + std::to_string(i + 1) + ".log"; }
  std::string SharedPoolDir() const { return dir_ + "/shared-pool"; }
  std::string ServerLog() const { return dir_ + "/server/serve.log"; }
  const std::string& dir() const { return dir_; }

  // "ready", "down", or "" when the server does not say.
  std::string HostState(int i) {
    auto h = client().GetHost(HostName(i));
    return h.ok() ? std::string(core::HostStateName(h->host.state)) : "";
  }

  // Starts host i's agent in its namespace (again, after KillHost: it re-registers with the
  // credential in its data directory).
  void StartAgent(int i) {
    // nsenter enters only the network namespace (`ip netns exec` would also remount /sys, which
    // hides the cgroup mounts runc needs) and execs the agent: this pid is the agent's.
    const std::vector<std::string> argv = {"nsenter",
                                           "--net=/run/netns/" + Namespace(i),
                                           BERTH_BINARY,
                                           "agent",
                                           "--server",
                                           server_->url(),
                                           "--join-token-file",
                                           dir_ + "/server/join.token",
                                           "--data-dir",
                                           AgentDir(i),
                                           "--name",
                                           HostName(i)};
    std::vector<std::string> args = argv;
    if (options_.shared_pool) {
      std::error_code ec;
      std::filesystem::create_directories(SharedPoolDir(), ec);
      args.insert(args.end(), {"--shared-pool", SharedPoolDir()});
    }
    agents_[i] = e2e::SpawnProgram(args, AgentLog(i));
  }

  // SIGKILLs host i's agent and every process in its namespace: the host dies with its work.
  void KillHost(int i) {
    if (agents_[i] > 0) {
      kill(agents_[i], SIGKILL);
      waitpid(agents_[i], nullptr, 0);
      agents_[i] = -1;
    }
    KillNamespace(Namespace(i));
    // Containers on Berth networks live in namespaces of their own that the agent made
    // (berth-INSTANCE-NAME): they die with the host too.
    const std::string prefix = "berth-" + runtime::net::InstanceIdForDir(AgentDir(i)) + "-";
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
      const std::string ns = e.path().filename().string();
      if (ns.rfind(prefix, 0) != 0) continue;
      KillNamespace(ns);
      Ip({"netns", "del", ns});
    }
    // A dead machine holds no mounts: its containers' disks (loop mounts of images another host
    // may mount next) go with it.
    e2e::UnmountBelow(AgentDir(i) + "/mounts");
  }
  // Stops host i's agent with SIGTERM (its workloads keep running, as after any agent stop).
  void StopAgent(int i) {
    if (agents_[i] <= 0) return;
    e2e::KillAndReap(agents_[i], SIGTERM);
    agents_[i] = -1;
  }

  // Cuts host i off the datacenter network (its link goes down) and brings it back.
  bool CutLink(int i) { return Ip({"link", "set", Veth(i), "down"}); }
  bool RestoreLink(int i) { return Ip({"link", "set", Veth(i), "up"}); }

  // The host indexes whose namespaces hold a process whose command line contains `marker`, one
  // entry per such process (so a workload running twice shows up twice).
  std::vector<int> MarkerProcesses(const std::string& marker) const {
    std::vector<int> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
      std::string cmdline = e2e::ReadFile(entry.path().string() + "/cmdline");
      for (char& c : cmdline) {
        if (c == '\0') c = ' ';
      }
      if (cmdline.find(marker) == std::string::npos) continue;
      struct stat st {};
      if (stat((entry.path().string() + "/ns/net").c_str(), &st) != 0) continue;
      for (int i = 0; i < options_.hosts; ++i) {
        struct stat ns {};
        if (stat(("/run/netns/" + Namespace(i)).c_str(), &ns) == 0 && ns.st_ino == st.st_ino) {
          out.push_back(i);
        }
      }
    }
    return out;
  }

  // Deletes every workload and waits until none is listed (their hosts then drop what they
  // made for them); false when some stay.
  bool DeleteAllWorkloads() {
    auto list = client().ListWorkloads();
    if (!list.ok()) return false;
    bool deleted = true;
    for (const auto& w : list->items) deleted &= client().DeleteWorkload(w.spec.name).ok();
    return e2e::Eventually([&] {
             auto left = client().ListWorkloads();
             return left.ok() && left->items.empty();
           }) &&
           deleted;
  }

  // Removes everything: processes, server, namespaces, links, directories. Idempotent.
  void Cleanup() {
    for (int i = 0; i < static_cast<int>(agents_.size()); ++i) KillHost(i);
    agents_.clear();
    for (const std::string& ns : namespaces_) KillNamespace(ns);
    if (server_) {
      server_->Kill(SIGTERM);
      server_.reset();
    }
    for (const std::string& ns : namespaces_) Ip({"netns", "del", ns});
    namespaces_.clear();
    // Deleting a namespace deletes its veth end, which takes the peer on the bridge with it.
    for (int i = 0; i < options_.hosts; ++i) RunTool({"ip", "link", "del", Veth(i)});
    RunTool({"ip", "link", "del", bridge_});
    std::error_code ec;
    if (!dir_.empty()) {
      // A killed agent leaves its containers' root filesystems mounted in its directory.
      e2e::UnmountBelow(dir_);
      std::filesystem::remove_all(dir_, ec);
    }
    dir_.clear();
  }

  std::string Namespace(int i) const { return "bc" + tag_ + "-" + std::to_string(i + 1); }
  std::string ServerAddress() const { return subnet_ + ".1"; }
  std::string HostAddress(int i) const { return subnet_ + "." + std::to_string(i + 2); }

 private:
  std::string Veth(int i) const { return "bcv" + tag_ + "-" + std::to_string(i + 1); }
  bool Ip(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"ip"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunTool(argv, dir_.empty() ? "" : dir_ + "/ip.log") == 0;
  }
  // SIGKILLs every process in namespace `ns` until none is left.
  void KillNamespace(const std::string& ns) {
    struct stat target {};
    if (stat(("/run/netns/" + ns).c_str(), &target) != 0) return;
    for (int round = 0; round < 50; ++round) {
      int found = 0;
      std::error_code ec;
      for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        struct stat st {};
        if (stat((entry.path().string() + "/ns/net").c_str(), &st) != 0) continue;
        if (st.st_ino != target.st_ino || st.st_dev != target.st_dev) continue;
        ++found;
        kill(std::stoi(name), SIGKILL);
      }
      if (found == 0) return;
      usleep(20000);
    }
  }

  ClusterOptions options_;
  std::string tag_, subnet_, bridge_, dir_;
  std::vector<std::string> namespaces_;
  std::unique_ptr<e2e::DevServer> server_;
  std::vector<pid_t> agents_;
};

}  // namespace berth::cluster
