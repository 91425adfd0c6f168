// bench/run fleet: a load generator for one `berth serve` (not --dev) on SQLite, with simulated
// agents, that reports what the control plane sustains at fleet scale. For each pair of
// --hosts and --workloads it starts a fresh server in a temporary directory and measures:
//   registration   hosts join with the join token and an inventory (64 CPUs, 512 GiB, 8
//                  declared GPUs): registrations/s and latency
//   idle           every host heartbeats on a timer (--heartbeat-interval, as agents do) and
//                  nothing is pending: the server's CPU, and the timer beats' rate and latency
//   quiet          the same time with the beats held: the server's background work alone
//   heartbeats     --clients threads send heartbeats as fast as the server answers them
//   create/place   --clients threads create the workloads (1 CPU / 1 GiB; 15 % one whole GPU,
//                  15 % a GPU share); a watcher follows the event log and takes a workload as
//                  placed when its "scheduled" event appears (the placement's commit). A pool of
//                  simulated agents polls the assignments of each host something was placed on
//                  and reports those workloads running, as an agent's long-poll would.
//   after          server RSS (and its peak), a 500-item workload list page (the whole list
//                  when the server ignores `limit`), an agent's assignments poll, GET /v1/hosts
//                  whole and a page of 500
//   restart        the server is signalled (--restart-signal) and started again on the same
//                  port: seconds until /v1/status answers and until a new workload is placed;
//                  the timer beats that failed meanwhile are counted apart from the others
// Baseline, measured in the same run: the placement engine alone (sched::Scheduler with the
// server's default policy) placing the same workloads on the same hosts, per CPU second.
// The bench's own CPU time is reported so it can be seen not to be the bottleneck. Progress goes
// to stderr; the figures of every run go to stdout as one JSON object on the last line.
// The server dies with the bench (PR_SET_PDEATHSIG), and an interrupt removes its directory.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/client/client.h"
#include "api/http/client.h"
#include "core/gpu.h"
#include "core/host.h"
#include "core/strings.h"
#include "core/workload.h"
#include "nlohmann/json.hpp"
#include "runtime/host/proc_stat.h"
#include "sched/fgd.h"
#include "sched/scheduler.h"
#include "sched/test_hosts.h"

namespace berth {
namespace {

using SteadyClock = std::chrono::steady_clock;
const SteadyClock::time_point kEpoch = SteadyClock::now();

// Seconds since the bench started, on the monotonic clock.
double Now() { return std::chrono::duration<double>(SteadyClock::now() - kEpoch).count(); }

void SleepSeconds(double s) {
  if (s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

// A progress line on stderr.
__attribute__((format(printf, 1, 2))) void Say(const char* fmt, ...) {
  std::va_list args;
  va_start(args, fmt);
  std::fprintf(stderr, "bench fleet: ");
  std::vfprintf(stderr, fmt, args);
  std::fprintf(stderr, "\n");
  va_end(args);
}

// CPU seconds this process has used (all threads).
double OwnCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// CPU seconds `pid` has used; 0 when it is gone.
double ProcessCpuSeconds(pid_t pid) {
  auto u = runtime::host::ReadProcessUsage(pid);
  return u ? absl::ToDoubleSeconds(u->user + u->system) : 0;
}

// Seconds the threads of `pid` have waited for a CPU while runnable (the sum over
// /proc/PID/task/*/schedstat): on a shared machine, how much of the server's time went to
// waiting for a core rather than to work or to I/O. Threads that ended are not counted.
double RunQueueWaitSeconds(pid_t pid) {
  double total = 0;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "schedstat");
    uint64_t run_ns = 0, wait_ns = 0;
    if (in >> run_ns >> wait_ns) total += static_cast<double>(wait_ns) * 1e-9;
  }
  return total;
}

// The machine's 1-minute load average, for reading figures taken on a shared machine.
double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double load = 0;
  in >> load;
  return load;
}

// A field of /proc/PID/status in bytes ("VmRSS", "VmHWM"); 0 when unreadable.
int64_t ProcStatusBytes(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atoll(line.c_str() + field.size() + 1) * 1024;
  }
  return 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string FirstLine(const std::string& path) {
  std::string line;
  std::ifstream in(path);
  std::getline(in, line);
  return line;
}

// What an interrupt must clean up: the running server and the run's directory.
std::atomic<pid_t> g_server_pid{-1};
absl::Mutex g_dir_mu;
std::string g_dir ABSL_GUARDED_BY(g_dir_mu);

// Blocks the stop signals in every thread; one thread waits for them, kills the server, removes
// the directory and exits.
void HandleInterrupts() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    sigwait(&set, &sig);
    pid_t pid = g_server_pid.load();
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    absl::MutexLock lock(&g_dir_mu);
    std::error_code ec;
    if (!g_dir.empty()) std::filesystem::remove_all(g_dir, ec);
    std::fprintf(stderr, "bench fleet: interrupted (signal %d), cleaned up\n", sig);
    _exit(128 + sig);
  }).detach();
}

// One `berth serve` process on the SQLite store in `dir`.
class ServerProcess {
 public:
  ServerProcess(std::string binary, std::string dir, std::string host_ttl)
      : binary_(std::move(binary)), dir_(std::move(dir)), host_ttl_(std::move(host_ttl)) {}
  ~ServerProcess() { Stop(SIGTERM); }

  // Starts the server listening on `listen` and waits until it wrote server.json.
  bool Start(const std::string& listen) {
    std::filesystem::remove(dir_ + "/server.json");
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
      // Dies with the bench, however the bench ends.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      FILE* log = std::fopen((dir_ + "/serve.log").c_str(), "a");
      if (log != nullptr) {
        dup2(fileno(log), 1);
        dup2(fileno(log), 2);
      }
      std::vector<std::string> args = {binary_,    "serve", "--data-dir", dir_,
                                       "--listen", listen,  "--host-ttl", host_ttl_};
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(binary_.c_str(), argv.data());
      _exit(127);
    }
    pid_ = pid;
    g_server_pid = pid;
    for (double deadline = Now() + 120; Now() < deadline; SleepSeconds(0.005)) {
      auto info = nlohmann::json::parse(ReadFile(dir_ + "/server.json"), nullptr, false);
      if (info.is_object() && info.value("pid", 0) == pid_) {
        url_ = info.value("url", "");
        admin_token_ = FirstLine(dir_ + "/admin.token");
        join_token_ = FirstLine(dir_ + "/join.token");
        return true;
      }
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) break;
    }
    std::fprintf(stderr, "bench fleet: the server did not start:\n%s\n",
                 ReadFile(dir_ + "/serve.log").c_str());
    return false;
  }

  // Signals the server and waits for it to exit.
  void Stop(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    g_server_pid = -1;
  }

  pid_t pid() const { return pid_; }
  const std::string& url() const { return url_; }
  std::string port() const { return url_.substr(url_.rfind(':') + 1); }
  const std::string& admin_token() const { return admin_token_; }
  const std::string& join_token() const { return join_token_; }

 private:
  const std::string binary_;
  const std::string dir_;
  const std::string host_ttl_;
  pid_t pid_ = -1;
  std::string url_;
  std::string admin_token_;
  std::string join_token_;
};

struct Options {
  std::vector<int> hosts = {1000};
  std::vector<int> workloads = {10000};
  int clients = 16;
  // 0: one per 20 hosts, from 8 to 512. Each thread has one request in flight, so enough of
  // them that the fleet's beats do not wait on the bench's own threads.
  int heartbeat_threads = 0;
  int agent_threads = 4;
  double heartbeat_interval = 3;
  double idle_seconds = 5;
  double saturate_seconds = 3;
  double stall_seconds = 60;  // give up on placements after this long without one
  double running_wait = 10;   // after the last placement, how long agents may catch up
  // The watcher's pause between reads of the event log: each read lists the whole log on the
  // server, so reading back to back would load it more than the agents do.
  double watch_interval = 0.1;
  std::string host_ttl = "30s";
  // The `berth` that serves: by default the one built with the bench; another build (an older
  // commit's) compares two servers under the same load.
  std::string server_binary = BERTH_BINARY;
  int restart_signal = SIGTERM;
};

constexpr int kGpusPerHost = 8;
constexpr int64_t kGpuMemoryMiB = 81920;
const char* const kGpuModel = "A100-SXM4-80GB";

std::string HostName(int i) { return "host-" + std::to_string(i); }
std::string WorkloadName(int i) { return "w-" + std::to_string(i); }

core::HostInventory Inventory(const std::string& host) {
  core::HostInventory inv;
  inv.capacity.cpu = core::MilliCpu(64000);
  inv.capacity.memory = core::MemoryMiB(512 * 1024);
  inv.capacity.disk = core::DiskMiB(4 * 1024 * 1024);
  for (int g = 0; g < kGpusPerHost; ++g) {
    core::GpuDevice d;
    d.index = g;
    d.uuid = core::DeclaredGpuUuid(host, g);
    d.model = kGpuModel;
    d.memory_mib = kGpuMemoryMiB;
    d.numa_node = g / 4;
    d.nvlink_island = g / 4;
    inv.gpus.push_back(d);
  }
  inv.drivers = {"process"};
  inv.labels = {{"zone", "zone-" + std::to_string(std::hash<std::string>{}(host) % 3)}};
  inv.os = "bench";
  return inv;
}

// Workload i's GPU request: 15 % one whole device, 15 % a quarter of one, the rest none
// (spread evenly through the sequence, so every prefix has the same mix).
core::GpuRequest GpuFor(int i) {
  core::GpuRequest g;
  switch (i % 20) {
    case 0:
    case 7:
    case 14:
      g.kind = core::GpuRequest::Kind::kWhole;
      g.count = 1;
      break;
    case 3:
    case 10:
    case 17:
      g.kind = core::GpuRequest::Kind::kShare;
      g.milli = 250;
      g.memory_mib = 16384;
      break;
    default:
      break;
  }
  return g;
}

core::WorkloadSpec Spec(const std::string& name, int i) {
  core::WorkloadSpec spec;
  spec.name = name;
  spec.kind = core::WorkloadKind::kProcess;
  spec.command = {"/bin/true"};
  spec.resources.cpu = core::MilliCpu(1000);
  spec.resources.memory = core::MemoryMiB(1024);
  spec.gpu = GpuFor(i);
  return spec;
}

core::HostUsage Usage() {
  core::HostUsage u;
  u.cpu = core::MilliCpu(12000);
  u.memory = core::MemoryMiB(100000);
  for (int g = 0; g < kGpusPerHost; ++g) {
    u.gpus.push_back({.index = g, .utilization_percent = 40, .memory_used_mib = 20000});
  }
  return u;
}

// The placement engine alone on the same hosts and workloads: placements per CPU second of
// this thread, with the server's default policy.
double PurePlacementRate(int hosts, int workloads, int* placed) {
  sched::Cluster cluster;
  for (int i = 0; i < hosts; ++i) {
    sched::HostSpec h =
        sched::testing::GpuHost(HostName(i), kGpusPerHost, kGpuModel, kGpuMemoryMiB);
    h.capacity = sched::testing::Res(64000, 512 * 1024, 4 * 1024 * 1024);
    if (!cluster.AddHost(h).ok()) std::abort();
  }
  std::vector<sched::Request> requests;
  sched::WorkloadMix mix;
  for (int i = 0; i < workloads; ++i) {
    sched::Request r;
    r.id = WorkloadName(i);
    r.resources = sched::testing::Res(1000, 1024);
    r.gpu = GpuFor(i);
    mix.Add(sched::Shape::Of(r), 1);
    requests.push_back(std::move(r));
  }
  sched::SchedulerOptions o;
  o.policy = *sched::Policy::Parse(sched::kDefaultPolicy);
  o.mix = &mix;
  sched::Scheduler scheduler(&cluster, o);
  timespec t0{}, t1{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
  *placed = 0;
  for (const auto& r : requests) {
    auto d = scheduler.Place(r);
    if (d.ok() && d->scheduled) ++*placed;
  }
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
  double cpu = static_cast<double>(t1.tv_sec - t0.tv_sec) +
               static_cast<double>(t1.tv_nsec - t0.tv_nsec) * 1e-9;
  return cpu > 0 ? workloads / cpu : 0;
}

// Latency samples (ms) stamped with when they were taken, appended from many threads.
class TimedSamples {
 public:
  void Add(double t, double ms) {
    absl::MutexLock lock(&mu_);
    samples_.emplace_back(t, ms);
  }
  // Count, p50 and p99 of the samples taken in [t0, t1).
  struct Window {
    int64_t count = 0;
    double p50_ms = 0, p99_ms = 0, max_ms = 0;
  };
  Window Between(double t0, double t1) {
    std::vector<double> v;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [t, ms] : samples_) {
        if (t >= t0 && t < t1) v.push_back(ms);
      }
    }
    Window w;
    w.count = static_cast<int64_t>(v.size());
    w.p50_ms = Percentile(v, 0.5);
    w.p99_ms = Percentile(v, 0.99);
    if (!v.empty()) w.max_ms = *std::max_element(v.begin(), v.end());
    return w;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::pair<double, double>> samples_ ABSL_GUARDED_BY(mu_);
};

// The simulated fleet: each host's credential, set once it registered.
struct Fleet {
  explicit Fleet(int n) : credential(n), registered(n) {}
  std::vector<std::string> credential;
  std::vector<std::atomic<bool>> registered;  // release: the credential is written
};

// Hosts heartbeating on a timer: `threads` threads, each beating its share of the hosts at even
// spacing, every `interval`; a thread that falls behind sends at once (and the achieved rate
// shows it).
class Heartbeaters {
 public:
  Heartbeaters(const std::string& url, Fleet* fleet, int threads, double interval) : fleet_(fleet) {
    const int n = static_cast<int>(fleet->credential.size());
    threads = std::max(1, std::min(threads, n));
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, url, t, threads, n, interval] {
        api::Client client(url);
        std::vector<int> mine;
        for (int h = t; h < n; h += threads) mine.push_back(h);
        const double slot = interval / static_cast<double>(mine.size());
        const core::HostUsage usage = Usage();
        double due = Now() + slot * t / threads;
        std::vector<double> last(mine.size(), 0);  // when each host last beat
        for (size_t k = 0; !stop_; ++k) {
          const size_t j = k % mine.size();
          const int h = mine[j];
          while (!stop_ && (Now() < due || paused_)) {
            SleepSeconds(paused_ ? 0.05 : std::min(0.05, due - Now()));
          }
          if (stop_) break;
          // A thread that fell behind does not catch up in a burst: like an agent, which
          // sleeps the interval after each beat, its hosts' beats come further apart instead.
          due = std::max(due + slot, Now());
          if (!fleet_->registered[h].load(std::memory_order_acquire)) continue;
          client.SetToken(fleet_->credential[h]);
          const double t0 = Now();
          absl::Status s = client.Heartbeat(HostName(h), usage);
          if (s.ok()) {
            log_.Add(t0, (Now() - t0) * 1e3);
            if (last[j] > 0) lag_.Add(t0, (t0 - last[j] - interval) * 1e3);
            last[j] = t0;
          } else {
            errors_.Add(Now(), (Now() - t0) * 1e3);
            if (errors_logged_++ < 3) {
              Say("heartbeat of %s: %s", HostName(h).c_str(), s.ToString().c_str());
            }
            // A server that is away (restarting) is not hammered: the thread pauses.
            due = std::max(due, Now() + 0.1);
          }
        }
      });
    }
  }
  ~Heartbeaters() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  // While paused, no host beats (the quiet phase): each thread finishes the beat it is sending.
  void Pause(bool paused) { paused_ = paused; }
  TimedSamples& log() { return log_; }
  // How much further apart than the interval a host's beats came (ms): when the server answers
  // slowly, each thread's beats wait for the answers of the ones before.
  TimedSamples& lag() { return lag_; }
  // When each failed beat failed, and how long it took (ms).
  TimedSamples& errors() { return errors_; }

 private:
  Fleet* fleet_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> paused_{false};
  std::atomic<int64_t> errors_logged_{0};
  TimedSamples errors_;
  TimedSamples log_;
  TimedSamples lag_;
  std::vector<std::thread> threads_;
};

// Runs `body(thread, client)` on `threads` threads, each with its own keep-alive client.
void Parallel(const std::string& url, const std::string& token, int threads,
              const std::function<void(int, api::Client&)>& body) {
  std::vector<std::thread> all;
  for (int t = 0; t < threads; ++t) {
    all.emplace_back([&, t] {
      api::Client client(url, api::ClientOptions{.token = token});
      body(t, client);
    });
  }
  for (auto& t : all) t.join();
}

struct Latencies {
  absl::Mutex mu;
  std::vector<double> ms ABSL_GUARDED_BY(mu);
  void Add(const std::vector<double>& local) {
    absl::MutexLock lock(&mu);
    ms.insert(ms.end(), local.begin(), local.end());
  }
  std::vector<double> Take() {
    absl::MutexLock lock(&mu);
    return std::move(ms);
  }
};

// The create/place phase's shared state: when each workload's create was sent and when its
// placement was seen, the hosts agents should look at, and counters.
class Placements {
 public:
  explicit Placements(int n) : sent_(n, 0), placed_(n, 0), reported_(n) {}
  void Sent(int i, double t) { sent_[i] = t; }
  double sent(int i) const { return sent_[i]; }
  double placed(int i) const { return placed_[i]; }
  // Called by the one watcher thread.
  void Placed(int i, double t) {
    if (placed_[i] == 0) {
      placed_[i] = t;
      ++placed_count_;
    }
  }
  int placed_count() const { return placed_count_; }
  // Whether workload i still needs its "running" report (true once per workload: two agent
  // threads may poll the same host).
  bool ClaimReport(int i) { return !reported_[i].exchange(true); }
  std::atomic<int> running{0};

  void Dirty(const std::string& host) {
    absl::MutexLock lock(&mu_);
    if (queued_.insert(host).second) queue_.push_back(host);
  }
  // The next host to poll, or "" once `stop` is set (hosts still queued are left).
  std::string NextDirty(const std::atomic<bool>& stop) {
    absl::MutexLock lock(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || stop; };
    while (!ready()) mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(100));
    if (stop) return "";
    std::string h = std::move(queue_.front());
    queue_.pop_front();
    queued_.erase(h);
    return h;
  }

 private:
  std::vector<double> sent_;
  std::vector<double> placed_;
  std::vector<std::atomic<bool>> reported_;
  std::atomic<int> placed_count_{0};
  absl::Mutex mu_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> queued_ ABSL_GUARDED_BY(mu_);
};

// "w-123" -> 123; -1 for another name.
int WorkloadIndex(const std::string& name) {
  if (name.rfind("w-", 0) != 0) return -1;
  int i = std::atoi(name.c_str() + 2);
  return WorkloadName(i) == name ? i : -1;
}

// The host of a "scheduled" event's message "placed on HOST[ gpus ...]".
std::string PlacedHost(const std::string& message) {
  const std::string prefix = "placed on ";
  if (message.rfind(prefix, 0) != 0) return "";
  std::string rest = message.substr(prefix.size());
  return rest.substr(0, rest.find(' '));
}

using Json = nlohmann::json;

Json RunOne(const Options& opt, int hosts, int workloads) {
  Json out = {{"hosts", hosts}, {"workloads", workloads}, {"clients", opt.clients}};
  const double cpu_start = OwnCpuSeconds();

  // Baseline: the placement engine alone.
  {
    int placed = 0;
    double rate = PurePlacementRate(hosts, workloads, &placed);
    out["pure_placements_per_s"] = static_cast<int64_t>(rate);
    out["pure_placed"] = placed;
    Say("%d hosts, %d workloads: placement engine alone %.0f placements/s (%d placed)", hosts,
        workloads, rate, placed);
  }

  const std::string dir = std::filesystem::temp_directory_path() /
                          ("berth-bench-fleet-" + std::to_string(getpid()) + "-" +
                           std::to_string(hosts) + "-" + std::to_string(workloads));
  {
    absl::MutexLock lock(&g_dir_mu);
    g_dir = dir;
  }
  std::filesystem::create_directories(dir);
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
  auto cleanup = [&] {
    absl::MutexLock lock(&g_dir_mu);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    g_dir.clear();
  };
  auto server = std::make_unique<ServerProcess>(opt.server_binary, dir, opt.host_ttl);
  if (!server->Start("127.0.0.1:0")) {
    server.reset();
    cleanup();
    out["error"] = "the server did not start";
    return out;
  }
  const std::string url = server->url();
  const std::string admin = server->admin_token();
  out["server_rss_start_bytes"] = ProcStatusBytes(server->pid(), "VmRSS");

  // Registration; hosts start heartbeating on their timer as soon as they joined.
  Fleet fleet(hosts);
  const int beat_threads =
      opt.heartbeat_threads > 0 ? opt.heartbeat_threads : std::clamp(hosts / 20, 8, 512);
  out["heartbeat_threads"] = beat_threads;
  Heartbeaters beats(url, &fleet, beat_threads, opt.heartbeat_interval);
  {
    Latencies lat;
    std::atomic<int> errors{0}, done{0};
    const double t0 = Now();
    std::atomic<bool> finished{false};
    std::thread progress([&] {
      while (!finished) {
        for (int i = 0; i < 40 && !finished; ++i) SleepSeconds(0.05);
        if (!finished) Say("registered %d/%d hosts", done.load(), hosts);
      }
    });
    Parallel(url, server->join_token(), opt.clients, [&](int t, api::Client& c) {
      std::vector<double> local;
      for (int h = t; h < hosts; h += opt.clients) {
        api::wire::HostRegistration reg{.name = HostName(h), .inventory = Inventory(HostName(h))};
        const double s = Now();
        auto reply = c.RegisterHost(reg);
        if (!reply.ok()) {
          if (errors++ < 3)
            Say("registration of %s: %s", reg.name.c_str(), reply.status().ToString().c_str());
          continue;
        }
        local.push_back((Now() - s) * 1e3);
        fleet.credential[h] = reply->credential;
        fleet.registered[h].store(true, std::memory_order_release);
        ++done;
      }
      lat.Add(local);
    });
    finished = true;
    progress.join();
    const double took = Now() - t0;
    std::vector<double> ms = lat.Take();
    out["registrations_per_s"] = static_cast<int64_t>(done / took);
    out["registration_p50_ms"] = Percentile(ms, 0.5);
    out["registration_p99_ms"] = Percentile(ms, 0.99);
    out["registration_errors"] = errors.load();
    Say("%d hosts registered in %.1f s: %.0f/s, p99 %.1f ms", done.load(), took, done / took,
        Percentile(ms, 0.99));
  }

  // Idle: agents beat on their timer, nothing to place.
  {
    SleepSeconds(std::min(2.0, opt.heartbeat_interval));
    const pid_t pid = server->pid();
    const double t0 = Now(), c0 = ProcessCpuSeconds(pid);
    SleepSeconds(opt.idle_seconds);
    const double t1 = Now(), c1 = ProcessCpuSeconds(pid);
    auto w = beats.log().Between(t0, t1);
    out["idle_cpu_percent"] = 100 * (c1 - c0) / (t1 - t0);
    out["timer_heartbeats_target_per_s"] = hosts / opt.heartbeat_interval;
    out["timer_heartbeats_idle_per_s"] = w.count / (t1 - t0);
    out["timer_heartbeat_idle_p99_ms"] = w.p99_ms;
    out["server_rss_hosts_bytes"] = ProcStatusBytes(pid, "VmRSS");
    Say("idle: server %.1f %% of a core; %.0f timer heartbeats/s (target %.0f), p99 %.1f ms",
        100 * (c1 - c0) / (t1 - t0), w.count / (t1 - t0), hosts / opt.heartbeat_interval, w.p99_ms);
  }

  // Quiet: the agents hold their beats for as long (well under the host TTL), so what the server
  // burns is its own background work alone: liveness, drains, the scheduling loop.
  {
    beats.Pause(true);
    SleepSeconds(0.5);  // beats in flight end
    const pid_t pid = server->pid();
    const double t0 = Now(), c0 = ProcessCpuSeconds(pid);
    SleepSeconds(opt.idle_seconds);
    const double t1 = Now(), c1 = ProcessCpuSeconds(pid);
    beats.Pause(false);
    out["quiet_cpu_percent"] = 100 * (c1 - c0) / (t1 - t0);
    Say("quiet (no heartbeats): server %.1f %% of a core", 100 * (c1 - c0) / (t1 - t0));
  }

  // Heartbeats as fast as the server answers them (beside the timer's).
  {
    Latencies lat;
    std::atomic<bool> stop{false};
    const double t0 = Now();
    std::thread timer([&] {
      SleepSeconds(opt.saturate_seconds);
      stop = true;
    });
    const core::HostUsage usage = Usage();
    std::atomic<int64_t> errors{0};
    Parallel(url, "", opt.clients, [&](int t, api::Client& c) {
      std::vector<double> local;
      for (int h = t % hosts; !stop; h = (h + opt.clients) % hosts) {
        if (!fleet.registered[h].load(std::memory_order_acquire)) continue;
        c.SetToken(fleet.credential[h]);
        const double s = Now();
        if (c.Heartbeat(HostName(h), usage).ok()) {
          local.push_back((Now() - s) * 1e3);
        } else {
          ++errors;
        }
      }
      lat.Add(local);
    });
    timer.join();
    const double took = Now() - t0;
    std::vector<double> ms = lat.Take();
    out["heartbeats_per_s"] = static_cast<int64_t>(static_cast<double>(ms.size()) / took);
    out["heartbeat_p50_ms"] = Percentile(ms, 0.5);
    out["heartbeat_p99_ms"] = Percentile(ms, 0.99);
    out["heartbeat_errors"] = errors.load();
    // With the timer's beats, which went on meanwhile.
    const double all = static_cast<double>(ms.size() + beats.log().Between(t0, t0 + took).count);
    out["heartbeats_with_timer_per_s"] = static_cast<int64_t>(all / took);
    Say("heartbeats flat out: %.0f/s, p99 %.1f ms (%.0f/s with the timer's)",
        static_cast<double>(ms.size()) / took, Percentile(ms, 0.99), all / took);
  }

  // Create and place.
  Placements placements(workloads);
  {
    std::atomic<bool> stop{false};
    // The watcher: the event log from now on.
    int64_t index = 0;
    {
      api::Client c(url, api::ClientOptions{.token = admin});
      auto first = c.ListEvents(api::EventQuery{.index = 0, .limit = 1});
      if (first.ok()) index = first->revision;
    }
    std::atomic<int64_t> watch_errors{0};
    std::thread watcher([&, index]() mutable {
      api::Client c(url, api::ClientOptions{.token = admin});
      for (double next = 0; !stop; next += opt.watch_interval) {
        SleepSeconds(next - Now());
        next = Now();
        auto list = c.ListEvents(
            api::EventQuery{.index = index, .limit = size_t{1} << 30, .wait = absl::Seconds(1)});
        if (!list.ok()) {
          ++watch_errors;
          SleepSeconds(0.05);
          continue;
        }
        const double t = Now();
        for (const core::Event& e : list->items) {
          if (e.kind != "workload") continue;
          const int i = WorkloadIndex(e.object);
          if (i < 0 || i >= workloads) continue;
          if (e.type == "scheduled") {
            placements.Placed(i, t);
            std::string host = PlacedHost(e.message);
            if (!host.empty()) placements.Dirty(host);
          }
        }
        index = std::max(index, list->revision);
      }
    });
    // The agents: poll the assignments of a host something was placed on; report new ones
    // running.
    std::vector<std::thread> agents;
    std::atomic<int64_t> agent_polls{0}, agent_errors{0};
    std::map<std::string, int> host_index;
    for (int h = 0; h < hosts; ++h) host_index[HostName(h)] = h;
    for (int a = 0; a < opt.agent_threads; ++a) {
      agents.emplace_back([&] {
        api::Client c(url);
        for (std::string host = placements.NextDirty(stop); !host.empty();
             host = placements.NextDirty(stop)) {
          auto it = host_index.find(host);
          if (it == host_index.end()) continue;
          c.SetToken(fleet.credential[it->second]);
          auto assigned = c.Assignments(host);
          ++agent_polls;
          if (!assigned.ok()) {
            if (agent_errors++ < 3) {
              Say("assignments of %s: %s", host.c_str(), assigned.status().ToString().c_str());
            }
            continue;
          }
          for (const core::Workload& w : assigned->items) {
            const int i = WorkloadIndex(w.spec.name);
            if (w.status.state != core::WorkloadState::kScheduled || i < 0 || i >= workloads ||
                !placements.ClaimReport(i)) {
              continue;
            }
            api::wire::StatusReport report{.host = host,
                                           .generation = w.status.generation,
                                           .state = core::WorkloadState::kRunning};
            auto reported = c.ReportStatus(w.spec.name, report);
            if (reported.ok()) {
              ++placements.running;
            } else if (agent_errors++ < 3) {
              Say("report of %s: %s", w.spec.name.c_str(), reported.status().ToString().c_str());
            }
          }
        }
      });
    }

    const pid_t pid = server->pid();
    const double t0 = Now(), c0 = ProcessCpuSeconds(pid), own0 = OwnCpuSeconds();
    const double q0 = RunQueueWaitSeconds(pid);
    Latencies lat;
    std::atomic<int> created{0}, create_errors{0};
    std::atomic<bool> creating{true};
    std::thread creators([&] {
      Parallel(url, admin, opt.clients, [&](int t, api::Client& c) {
        std::vector<double> local;
        for (int i = t; i < workloads; i += opt.clients) {
          const double s = Now();
          placements.Sent(i, s);
          auto w = c.CreateWorkload(Spec(WorkloadName(i), i));
          if (!w.ok()) {
            if (create_errors++ < 3)
              Say("create %s: %s", WorkloadName(i).c_str(), w.status().ToString().c_str());
            continue;
          }
          local.push_back((Now() - s) * 1e3);
          ++created;
        }
        lat.Add(local);
      });
      creating = false;
    });
    double creates_done = 0;
    int placed_while_creating = 0;
    double last_progress = Now(), last_print = Now();
    int last_placed = 0;
    while (true) {
      SleepSeconds(0.02);
      const int placed = placements.placed_count();
      if (creates_done == 0 && !creating) {
        creates_done = Now();
        placed_while_creating = placed;
      }
      if (placed != last_placed) {
        last_placed = placed;
        last_progress = Now();
      }
      if (Now() - last_print >= 2) {
        last_print = Now();
        Say("created %d/%d, placed %d, running %d", created.load(), workloads, placed,
            placements.running.load());
      }
      if (!creating && placed >= created) break;
      if (Now() - last_progress > opt.stall_seconds) {
        Say("no placement seen for %.0f s; giving up with %d of %d placed", opt.stall_seconds,
            placed, created.load());
        // Whether the server placed them and the event log did not say so, or did not.
        api::Client c(url, api::ClientOptions{.token = admin});
        if (auto all = c.ListWorkloads(); all.ok()) {
          int on_hosts = 0;
          for (const core::Workload& w : all->items) on_hosts += !w.status.host.empty();
          out["placed_by_list"] = on_hosts;
          Say("the workload list says %d are placed", on_hosts);
        }
        break;
      }
    }
    creators.join();
    const double placed_done = Now();
    const double c1 = ProcessCpuSeconds(pid), own1 = OwnCpuSeconds();
    const double q1 = RunQueueWaitSeconds(pid);
    // Agents catch up (bounded), then everything stops.
    while (opt.agent_threads > 0 && placements.running < placements.placed_count() &&
           Now() - placed_done < opt.running_wait) {
      SleepSeconds(0.05);
    }
    stop = true;
    watcher.join();
    for (auto& a : agents) a.join();

    std::vector<double> create_ms = lat.Take();
    std::vector<double> to_placed;
    double last = t0;
    for (int i = 0; i < workloads; ++i) {
      if (placements.placed(i) > 0 && placements.sent(i) > 0) {
        to_placed.push_back((placements.placed(i) - placements.sent(i)) * 1e3);
        last = std::max(last, placements.placed(i));
      }
    }
    const double create_s = (creates_done > 0 ? creates_done : placed_done) - t0;
    const double place_s = last - t0;
    const int placed = placements.placed_count();
    auto hb = beats.log().Between(t0, placed_done);
    out["created"] = created.load();
    out["create_errors"] = create_errors.load();
    out["creates_per_s"] = static_cast<int64_t>(created / create_s);
    out["create_p99_ms"] = Percentile(create_ms, 0.99);
    out["placed"] = placed;
    out["placed_per_s"] = static_cast<int64_t>(place_s > 0 ? placed / place_s : 0);
    out["placed_while_creating_per_s"] = static_cast<int64_t>(placed_while_creating / create_s);
    out["create_to_placed_p50_ms"] = Percentile(to_placed, 0.5);
    out["create_to_placed_p99_ms"] = Percentile(to_placed, 0.99);
    out["running_reported"] = placements.running.load();
    out["agent_polls"] = agent_polls.load();
    out["agent_errors"] = agent_errors.load();
    out["watch_errors"] = watch_errors.load();
    out["timer_heartbeats_busy_per_s"] = hb.count / (placed_done - t0);
    out["timer_heartbeat_busy_p99_ms"] = hb.p99_ms;
    out["timer_heartbeat_busy_max_lag_s"] = beats.lag().Between(t0, placed_done).max_ms / 1e3;
    out["server_cpu_cores_busy"] = (c1 - c0) / (placed_done - t0);
    out["bench_cpu_cores_busy"] = (own1 - own0) / (placed_done - t0);
    out["server_cpu_wait_cores_busy"] = (q1 - q0) / (placed_done - t0);
    out["load_average"] = LoadAverage();
    out["ratio_placed_to_pure"] =
        out["pure_placements_per_s"].get<int64_t>() > 0
            ? out["placed_per_s"].get<double>() / out["pure_placements_per_s"].get<double>()
            : 0.0;
    Say("%d created in %.1f s (%.0f/s); %d placed in %.1f s (%.0f/s end to end, %.0f/s while "
        "creates arrived); create->placed p50 %.0f ms p99 %.0f ms; %d reported running",
        created.load(), create_s, created / create_s, placed, place_s,
        place_s > 0 ? placed / place_s : 0, placed_while_creating / create_s,
        Percentile(to_placed, 0.5), Percentile(to_placed, 0.99), placements.running.load());
    Say("while placing: server %.2f cores (and %.2f waiting for one), bench %.2f cores, load "
        "average %.1f; timer heartbeats %.0f/s p99 %.1f ms, up to %.1f s late",
        (c1 - c0) / (placed_done - t0), (q1 - q0) / (placed_done - t0),
        (own1 - own0) / (placed_done - t0), LoadAverage(), hb.count / (placed_done - t0), hb.p99_ms,
        out["timer_heartbeat_busy_max_lag_s"].get<double>());
  }

  // After: memory, a list page, an assignments poll, the host list.
  {
    const pid_t pid = server->pid();
    out["server_rss_bytes"] = ProcStatusBytes(pid, "VmRSS");
    out["server_rss_peak_bytes"] = ProcStatusBytes(pid, "VmHWM");
    api::HttpClient http(url, api::HttpClient::Options{.bearer_token = admin});
    // A list page of 500; a server without `limit` answers the whole list.
    std::vector<double> ms;
    size_t items = 0, bytes = 0;
    for (int k = 0; k < 5; ++k) {
      const double s = Now();
      auto r = http.Get("/v1/workloads?limit=500");
      if (!r.ok() || r->status != 200) break;
      ms.push_back((Now() - s) * 1e3);
      bytes = r->body.size();
      if (k == 0) {
        auto j = Json::parse(r->body, nullptr, false);
        if (j.is_object() && j["items"].is_array()) items = j["items"].size();
      }
    }
    // Paged only if it answered fewer items than there are (with 500 or fewer workloads the
    // page is the whole list either way).
    const bool paged = items > 0 && items <= 500 && items < out["created"].get<size_t>();
    out["list_limit_supported"] = paged;
    out[paged ? "list_page_500_ms" : "list_full_ms"] = Percentile(ms, 0.5);
    out["list_items"] = items;
    out["list_bytes"] = bytes;
    Say("GET /v1/workloads?limit=500: %zu items, %zu bytes, %.1f ms (median of %zu)%s", items,
        bytes, Percentile(ms, 0.5), ms.size(),
        paged ? "" : " - the server ignores limit: the whole list");
    // An agent's assignments poll (no wait), on hosts spread over the fleet: the whole set, then
    // what changed since that answer (as an agent polls once it has its set).
    std::vector<double> poll_ms, since_ms, poll_bytes, since_bytes;
    for (int k = 0; k < 20; ++k) {
      const int h = static_cast<int>((static_cast<int64_t>(k) * hosts) / 20);
      if (!fleet.registered[h].load()) continue;
      http.SetBearerToken(fleet.credential[h]);
      double s = Now();
      auto r = http.Get("/v1/hosts/" + HostName(h) + "/assignments");
      if (!r.ok() || r->status != 200) continue;
      poll_ms.push_back((Now() - s) * 1e3);
      poll_bytes.push_back(static_cast<double>(r->body.size()));
      Json whole = Json::parse(r->body, nullptr, false);
      if (!whole.is_object() || !whole["revision"].is_number_integer()) continue;
      s = Now();
      r = http.Get(core::Cat("/v1/hosts/", HostName(h),
                             "/assignments?since=", whole["revision"].get<int64_t>()));
      if (!r.ok() || r->status != 200) continue;
      since_ms.push_back((Now() - s) * 1e3);
      since_bytes.push_back(static_cast<double>(r->body.size()));
    }
    out["assignments_poll_p50_ms"] = Percentile(poll_ms, 0.5);
    out["assignments_poll_max_ms"] =
        poll_ms.empty() ? 0.0 : *std::max_element(poll_ms.begin(), poll_ms.end());
    out["assignments_poll_bytes_p50"] = Percentile(poll_bytes, 0.5);
    out["assignments_since_poll_p50_ms"] = Percentile(since_ms, 0.5);
    out["assignments_since_poll_bytes_p50"] = Percentile(since_bytes, 0.5);
    http.SetBearerToken(admin);
    std::vector<double> host_ms;
    for (int k = 0; k < 3; ++k) {
      const double s = Now();
      auto r = http.Get("/v1/hosts");
      if (r.ok() && r->status == 200) host_ms.push_back((Now() - s) * 1e3);
    }
    out["list_hosts_ms"] = Percentile(host_ms, 0.5);
    // A page of 500 hosts, with what is allocated on each and its usage, as a paging client
    // (the CLI, the dashboard) reads them.
    std::vector<double> host_page_ms;
    size_t host_page_items = 0;
    for (int k = 0; k < 5; ++k) {
      const double s = Now();
      auto r = http.Get("/v1/hosts?limit=500");
      if (!r.ok() || r->status != 200) {
        Say("GET /v1/hosts?limit=500: %s",
            r.ok() ? r->body.substr(0, 200).c_str() : r.status().ToString().c_str());
        break;
      }
      host_page_ms.push_back((Now() - s) * 1e3);
      if (k == 0) {
        auto j = Json::parse(r->body, nullptr, false);
        if (j.is_object() && j["items"].is_array()) host_page_items = j["items"].size();
      }
    }
    out["list_hosts_page_500_ms"] = Percentile(host_page_ms, 0.5);
    out["list_hosts_page_items"] = host_page_items;
    Say("assignments poll p50 %.1f ms (%.0f bytes), max %.1f ms; since its answer %.1f ms "
        "(%.0f bytes); GET /v1/hosts %.1f ms; a page of %zu hosts %.1f ms",
        Percentile(poll_ms, 0.5), Percentile(poll_bytes, 0.5),
        out["assignments_poll_max_ms"].get<double>(), Percentile(since_ms, 0.5),
        Percentile(since_bytes, 0.5), Percentile(host_ms, 0.5), host_page_items,
        Percentile(host_page_ms, 0.5));
  }

  // Restart: signal, start again on the same port, until /v1/status answers and a new
  // workload is placed. The agents' beats fail while no server listens; they are counted apart.
  double restart_begin = 0, restart_end = 0;
  {
    const std::string port = server->port();
    const double t0 = Now();
    restart_begin = t0;
    server->Stop(opt.restart_signal);
    const double stopped = Now();
    bool up = server->Start("127.0.0.1:" + port);
    double status_at = 0, placed_at = 0;
    if (up) {
      api::Client c(url, api::ClientOptions{.token = server->admin_token(),
                                            .timeout = absl::Seconds(10),
                                            .connect_timeout = absl::Seconds(1)});
      for (double deadline = Now() + 120; Now() < deadline; SleepSeconds(0.005)) {
        if (c.ClusterStatus().ok()) {
          status_at = Now();
          break;
        }
      }
      core::WorkloadSpec spec = Spec("restart-probe", 1);
      bool created = false;
      for (double deadline = Now() + 120; status_at > 0 && Now() < deadline; SleepSeconds(0.005)) {
        if (!created) {
          auto w = c.CreateWorkload(spec);
          created = w.ok() || absl::IsAlreadyExists(w.status());
          if (w.ok() && !w->status.host.empty()) {
            placed_at = Now();
            break;
          }
          continue;
        }
        auto w = c.GetWorkload(spec.name);
        if (w.ok() && !w->status.host.empty()) {
          placed_at = Now();
          break;
        }
      }
    }
    restart_end = status_at > 0 ? status_at : Now();
    out["restart_signal"] = opt.restart_signal == SIGKILL ? "KILL" : "TERM";
    out["restart_stop_s"] = stopped - t0;
    if (status_at > 0) out["restart_to_status_s"] = status_at - t0;
    if (placed_at > 0) out["restart_to_placed_s"] = placed_at - t0;
    Say("restart (SIG%s): stopped in %.2f s; /v1/status after %.2f s; placed after %.2f s",
        opt.restart_signal == SIGKILL ? "KILL" : "TERM", stopped - t0,
        status_at > 0 ? status_at - t0 : -1.0, placed_at > 0 ? placed_at - t0 : -1.0);
  }

  beats.Stop();
  const double end = Now() + 1;
  const int64_t before = beats.errors().Between(0, restart_begin).count;
  const int64_t during = beats.errors().Between(restart_begin, restart_end).count;
  const int64_t after = beats.errors().Between(restart_end, end).count;
  out["timer_heartbeat_errors"] = before + after;
  out["timer_heartbeat_errors_restart"] = during;
  Say("timer heartbeat errors: %lld while a server listened (%lld after the restart), %lld "
      "while it restarted",
      static_cast<long long>(before + after), static_cast<long long>(after),
      static_cast<long long>(during));
  server->Stop(SIGTERM);
  server.reset();
  cleanup();
  out["bench_cpu_s"] = OwnCpuSeconds() - cpu_start;
  return out;
}

// "1000,10000" -> {1000, 10000}; empty on a malformed list.
std::vector<int> IntList(const std::string& text) {
  std::vector<int> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string part = text.substr(start, comma == std::string::npos ? comma : comma - start);
    char* end = nullptr;
    long v = std::strtol(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || v <= 0 || v > 10'000'000) return {};
    out.push_back(static_cast<int>(v));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

int UsageError(const char* why) {
  std::fprintf(stderr,
               "bench fleet: %s\n"
               "usage: bench/run fleet [--hosts N[,N...]] [--workloads N[,N...]] [--clients C]\n"
               "  [--heartbeat-threads T] [--agent-threads A] [--heartbeat-interval S]\n"
               "  [--idle-seconds S] [--saturate-seconds S] [--stall-seconds S]\n"
               "  [--running-wait S] [--watch-interval S] [--host-ttl DURATION] [--restart-signal "
               "TERM|KILL]\n"
               "  [--server-binary PATH]\n",
               why);
  return 2;
}

int Main(int argc, char** argv) {
  Options opt;
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) return UsageError(("unexpected argument " + arg).c_str());
    std::string value;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return UsageError((arg + " needs a value").c_str());
    }
    flags[arg.substr(2)] = value;
  }
  for (const auto& [name, value] : flags) {
    auto number = [&](double lo, double hi) {
      char* end = nullptr;
      double v = std::strtod(value.c_str(), &end);
      return (*end == '\0' && v >= lo && v <= hi) ? v : -1;
    };
    double v = 0;
    if (name == "hosts" || name == "workloads") {
      auto list = IntList(value);
      if (list.empty())
        return UsageError(("--" + name + ": not a list of counts: " + value).c_str());
      (name == "hosts" ? opt.hosts : opt.workloads) = list;
    } else if (name == "clients" && (v = number(1, 1024)) > 0) {
      opt.clients = static_cast<int>(v);
    } else if (name == "heartbeat-threads" && (v = number(0, 4096)) >= 0) {
      opt.heartbeat_threads = static_cast<int>(v);
    } else if (name == "agent-threads" && (v = number(0, 1024)) >= 0) {
      opt.agent_threads = static_cast<int>(v);
    } else if (name == "heartbeat-interval" && (v = number(0.01, 600)) > 0) {
      opt.heartbeat_interval = v;
    } else if (name == "idle-seconds" && (v = number(0.1, 3600)) > 0) {
      opt.idle_seconds = v;
    } else if (name == "saturate-seconds" && (v = number(0.1, 3600)) > 0) {
      opt.saturate_seconds = v;
    } else if (name == "stall-seconds" && (v = number(1, 3600)) > 0) {
      opt.stall_seconds = v;
    } else if (name == "running-wait" && (v = number(0, 3600)) >= 0) {
      opt.running_wait = v;
    } else if (name == "watch-interval" && (v = number(0, 60)) >= 0) {
      opt.watch_interval = v;
    } else if (name == "host-ttl") {
      opt.host_ttl = value;
    } else if (name == "server-binary" && !value.empty()) {
      opt.server_binary = value;
    } else if (name == "restart-signal" && (value == "TERM" || value == "KILL")) {
      opt.restart_signal = value == "KILL" ? SIGKILL : SIGTERM;
    } else {
      return UsageError(("bad flag --" + name + "=" + value).c_str());
    }
  }
  HandleInterrupts();
  Json runs = Json::array();
  int rc = 0;
  for (int h : opt.hosts) {
    for (int w : opt.workloads) {
      Json r = RunOne(opt, h, w);
      if (r.contains("error")) rc = 1;
      std::printf("%d hosts, %d workloads: %s\n", h, w, r.dump().c_str());
      std::fflush(stdout);
      runs.push_back(std::move(r));
    }
  }
  std::printf("%s\n", Json{{"benchmark", "fleet"}, {"runs", runs}}.dump().c_str());
  return rc;
}

}  // namespace
}  // namespace berth

int main(int argc, char** argv) { return berth::Main(argc, argv); }
