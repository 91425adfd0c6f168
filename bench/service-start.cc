// bench_service-start: how much sooner a VM replica of a service answers its first request when
// it is restored from a snapshot than when it boots. The guest "loads a model" (writes MODEL_MIB
// of random bytes to a file in its RAM and hashes them), then serves HTTP on port 8080 with
// busybox httpd; GET /healthz answers the model's checksum. Each round, through QemuDriver:
//   cold  Start -> the first 200 from /healthz on the forwarded loopback port (the baseline)
//   save  Snapshot(resume = true) of that VM (the pause its clients see) and the file's size
//   warm  Restore into a new task on another loopback port, the source VM still running idle ->
//         the first 200, whose checksum must be the cold VM's: a guest that booted again would
//         have drawn other random bytes, so the answer comes from the restored memory
// With --example-model the replica is the example model server's VM image instead
// (examples/build-images.py: a disk that boots Debian's kernel, then Python loads PyTorch and the
// model): the answer is its POST /predict, and the restored VM must not have booted (no boot
// marker on its console).
// Prints each round, then median and max of each figure and cold/warm; progress goes to stderr
// and the last line of stdout is one JSON object.
// Usage: bench_service-start [ROUNDS] [--model-mib=N] [--memory-mib=N] [--example-model]
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/http/client.h"
#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"
#include "nlohmann/json.hpp"
#include "runtime/host/executor.h"
#include "runtime/host/file.h"
#include "runtime/qemu/accel_probe.h"
#include "runtime/qemu/qemu_driver.h"

namespace berth::runtime {
namespace {

namespace fs = std::filesystem;
using core::Cat;

constexpr int kGuestPort = 8080;
constexpr char kQemuBinary[] = "qemu-system-x86_64";
// A cold boot under TCG with a large model takes minutes; past this the round has failed.
constexpr absl::Duration kAnswerDeadline = absl::Minutes(10);

struct Options {
  int rounds = 3;
  int model_mib = 64;
  int memory_mib = 512;
  bool example_model = false;
  std::string model_disk;  // with example_model: the image's disk
};

struct Round {
  double cold_ms = 0;        // Start -> first answer
  double start_call_ms = 0;  // of which Start() itself
  double save_ms = 0;        // Snapshot(resume = true)
  double snapshot_mib = 0;
  double warm_ms = 0;          // Restore -> first answer
  double restore_call_ms = 0;  // of which Restore() itself
};

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

struct Summary {
  double median = 0;
  double max = 0;
};

Summary Summarize(const std::vector<Round>& rounds, double Round::*field) {
  std::vector<double> v;
  for (const Round& r : rounds) v.push_back(r.*field);
  std::sort(v.begin(), v.end());
  if (v.empty()) return {};
  return {.median = v[v.size() / 2], .max = v.back()};
}

absl::StatusOr<Options> ParseOptions(int argc, char** argv) {
  Options o;
  bool rounds_seen = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    int* target = nullptr;
    std::string value;
    if (arg == "--example-model") {
      o.example_model = true;
      continue;
    }
    if (arg.rfind("--model-mib=", 0) == 0) {
      target = &o.model_mib;
      value = arg.substr(12);
    } else if (arg.rfind("--memory-mib=", 0) == 0) {
      target = &o.memory_mib;
      value = arg.substr(13);
    } else if (!rounds_seen && arg.rfind("--", 0) != 0) {
      target = &o.rounds;
      value = arg;
      rounds_seen = true;
    } else {
      return absl::InvalidArgumentError(Cat("unknown argument ", arg));
    }
    if (!absl::SimpleAtoi(value, target) || *target <= 0) {
      return absl::InvalidArgumentError(Cat(arg, ": want a positive integer"));
    }
  }
  // The example loads PyTorch: it needs a GiB.
  if (o.example_model) o.memory_mib = std::max(o.memory_mib, 1024);
  // The model stays in the guest's RAM (tmpfs, no swap): the kernel, the initramfs and busybox
  // need room beside it.
  if (!o.example_model && o.memory_mib < o.model_mib + 128) {
    return absl::InvalidArgumentError(Cat("--memory-mib must be at least --model-mib + 128, got ",
                                          o.memory_mib, " for a ", o.model_mib, " MiB model"));
  }
  return o;
}

// `count` distinct loopback ports free at the time of the call. QEMU binds them afterwards, so
// another process could take one in between; the VM's start then fails and says which port.
absl::StatusOr<std::vector<int>> FreeLoopbackPorts(int count) {
  std::vector<int> fds, ports;
  absl::Status status;
  for (int i = 0; i < count && status.ok(); ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      status = absl::InternalError(Cat("socket: ", strerror(errno)));
      break;
    }
    fds.push_back(fd);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      status = absl::InternalError(Cat("bind 127.0.0.1:0: ", strerror(errno)));
      break;
    }
    ports.push_back(ntohs(a.sin_port));
  }
  for (int fd : fds) close(fd);
  if (!status.ok()) return status;
  return ports;
}

// The guest's command: load the model, publish its checksum (and the boot's id) as /healthz,
// serve. The model gets a tmpfs of its own: the guest's root tmpfs holds at most half its RAM.
// Any failure ends the command, and the guest powers off.
std::string GuestScript(int model_mib) {
  return Cat("set -e; mkdir -p /srv /models; mount -t tmpfs -o size=", model_mib + 1,
             "m models /models; head -c ", static_cast<int64_t>(model_mib) << 20,
             " /dev/urandom > /models/model; "
             "sum=$(sha256sum /models/model | cut -d' ' -f1); "
             "printf 'model-sha256 %s\\nboot-id %s\\n' \"$sum\" "
             "\"$(cat /proc/sys/kernel/random/boot_id)\" > /srv/healthz; "
             "exec httpd -f -p ",
             kGuestPort, " -h /srv");
}

TaskConfig Replica(const Options& o, const std::string& images, const std::string& dir,
                   const std::string& task_id, int host_port) {
  TaskConfig c{.task_id = task_id,
               .workload = "bench-service",
               .kind = "vm",
               .command = "sh",
               .args = {"-c", GuestScript(o.model_mib)},
               .image_path = images + "/tiny-vm"};
  if (o.example_model) {
    c.command.clear();
    c.args.clear();
    c.image_path = o.model_disk;
  }
  c.resources.cpu = core::MilliCpu(1000);
  c.resources.memory = core::MemoryMiB(o.memory_mib);
  c.task_dir = Cat(dir, "/", task_id);
  c.ports = {{.name = "http", .host_port = host_port, .task_port = kGuestPort}};
  return c;
}

// The last lines of a VM's console, for a message about a guest that went wrong.
std::string ConsoleTail(QemuDriver& driver, std::string_view task_id) {
  auto path = driver.ConsolePath(task_id);
  if (!path.ok()) return "";
  auto text = host::ReadFile(*path);
  if (!text.ok()) return "";
  return text->substr(text->size() > 2000 ? text->size() - 2000 : 0);
}

// Sends GET /healthz to 127.0.0.1:PORT until it answers 200 and returns the body. Before the guest
// has its address a request hangs in QEMU's user-mode network, hence the short timeouts; once it
// has one, a request fails at once until httpd listens.
absl::StatusOr<std::string> WaitForAnswer(QemuDriver& driver, std::string_view task_id, int port,
                                          bool example_model) {
  const absl::Time deadline = absl::Now() + kAnswerDeadline;
  absl::Status last = absl::UnavailableError("no request sent");
  while (absl::Now() < deadline) {
    api::HttpClient client(
        Cat("http://127.0.0.1:", port),
        {.timeout = absl::Seconds(1), .connect_timeout = absl::Seconds(1), .max_body_bytes = 4096});
    // The example model server's answer: a prediction and its process id.
    auto r = example_model ? client.Post("/predict", R"({"inputs": [[1,1,1,1,1,1,1,1]]})")
                           : client.Get("/healthz");
    if (r.ok() && r->status == 200) return r->body;
    last = r.ok() ? absl::UnavailableError(Cat("HTTP ", r->status)) : r.status();
    BERTH_ASSIGN_OR_RETURN(TaskStatus st, driver.Inspect(task_id));
    if (st.state == TaskState::kExited) {
      return absl::FailedPreconditionError(
          Cat("vm \"", task_id, "\" exited before answering: ", ConsoleTail(driver, task_id)));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(Cat("vm \"", task_id, "\" did not answer on port ", port,
                                         " within ", absl::FormatDuration(kAnswerDeadline),
                                         " (last: ", last.ToString(),
                                         "); console: ", ConsoleTail(driver, task_id)));
}

// The driver, the working directory and the VMs started in it: destroyed and removed when the
// benchmark ends, however it ends.
class Bench {
 public:
  Bench(Options options, std::string images, std::string dir)
      : options_(options), images_(std::move(images)), dir_(std::move(dir)) {}
  ~Bench() {
    for (const std::string& id : driver_.Tasks()) {
      core::ReportError("bench", Cat("destroy vm ", id), driver_.Destroy(id, {.force = true}));
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
    if (ec) core::LogWarn("bench: remove %s: %s", dir_, ec.message());
  }

  absl::StatusOr<Round> RunRound(int i) {
    Round round;
    BERTH_ASSIGN_OR_RETURN(std::vector<int> ports, FreeLoopbackPorts(2));
    const std::string cold_id = Cat("cold-", i), warm_id = Cat("warm-", i);
    const std::string snapshot = Cat(dir_, "/replica-", i, ".state");

    std::fprintf(stderr, "round %d: cold boot, %s, on 127.0.0.1:%d\n", i,
                 options_.example_model ? "the example model server"
                                        : Cat(options_.model_mib, " MiB model").c_str(),
                 ports[0]);
    absl::Time t0 = absl::Now();
    BERTH_RETURN_IF_ERROR(driver_.Start(Replica(options_, images_, dir_, cold_id, ports[0])));
    round.start_call_ms = Ms(absl::Now() - t0);
    BERTH_ASSIGN_OR_RETURN(std::string cold_answer,
                           WaitForAnswer(driver_, cold_id, ports[0], options_.example_model));
    round.cold_ms = Ms(absl::Now() - t0);

    std::fprintf(stderr, "round %d: snapshot\n", i);
    t0 = absl::Now();
    BERTH_RETURN_IF_ERROR(driver_.Snapshot(cold_id, {.path = snapshot, .resume = true}));
    round.save_ms = Ms(absl::Now() - t0);
    std::error_code ec;
    const uintmax_t bytes = fs::file_size(snapshot, ec);
    if (ec) return absl::InternalError(Cat("size of ", snapshot, ": ", ec.message()));
    round.snapshot_mib = static_cast<double>(bytes) / (1 << 20);
    // The source resumed: it answers as before.
    BERTH_ASSIGN_OR_RETURN(std::string resumed_answer,
                           WaitForAnswer(driver_, cold_id, ports[0], options_.example_model));
    if (resumed_answer != cold_answer) {
      return absl::InternalError(Cat("vm \"", cold_id, "\" answers \"", resumed_answer,
                                     "\" after its snapshot, \"", cold_answer, "\" before"));
    }

    std::fprintf(stderr, "round %d: restore on 127.0.0.1:%d\n", i, ports[1]);
    t0 = absl::Now();
    BERTH_RETURN_IF_ERROR(driver_.Restore(Replica(options_, images_, dir_, warm_id, ports[1]),
                                          {.snapshot_path = snapshot}));
    round.restore_call_ms = Ms(absl::Now() - t0);
    BERTH_ASSIGN_OR_RETURN(std::string warm_answer,
                           WaitForAnswer(driver_, warm_id, ports[1], options_.example_model));
    round.warm_ms = Ms(absl::Now() - t0);
    if (warm_answer != cold_answer) {
      return absl::InternalError(Cat("restored vm \"", warm_id, "\" answers \"", warm_answer,
                                     "\", the snapshot's source \"", cold_answer, "\""));
    }
    // A guest that booted would have printed its boot marker (the example's answer is the same
    // from a booted guest).
    if (ConsoleTail(driver_, warm_id).find("BERTH-GUEST-READY") != std::string::npos) {
      return absl::InternalError(Cat("restored vm \"", warm_id, "\" booted instead"));
    }

    BERTH_RETURN_IF_ERROR(driver_.Destroy(warm_id, {.force = true}));
    BERTH_RETURN_IF_ERROR(driver_.Destroy(cold_id, {.force = true}));
    fs::remove(snapshot, ec);
    if (ec) return absl::InternalError(Cat("remove ", snapshot, ": ", ec.message()));
    return round;
  }

 private:
  const Options options_;
  const std::string images_;
  const std::string dir_;
  QemuDriver driver_;
};

int Main(int argc, char** argv) {
  auto options = ParseOptions(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr,
                 "bench_service-start: %s\n"
                 "usage: bench_service-start [ROUNDS] [--model-mib=N] [--memory-mib=N] "
                 "[--example-model]\n",
                 std::string(options.status().message()).c_str());
    return 2;
  }
  const std::string images = BERTH_TEST_IMAGES_DIR;
  auto built = host::RunCommand({BERTH_IMAGE_SCRIPT, images}, {.timeout = absl::Minutes(10)});
  if (!built.ok() || !built->ok()) {
    std::fprintf(stderr, "bench_service-start: cannot build the test images in %s\n",
                 images.c_str());
    return 1;
  }
  if (options->example_model) {
    std::fprintf(stderr, "building the example model server's images (a minute the first time)\n");
    auto model =
        host::RunCommand({"/usr/bin/python3", BERTH_MODEL_IMAGES_SCRIPT, BERTH_MODEL_IMAGES_DIR},
                         {.timeout = absl::Minutes(15)});
    if (!model.ok() || !model->ok()) {
      std::fprintf(stderr, "bench_service-start: examples/build-images.py failed: %s\n",
                   model.ok() ? model->err.c_str() : model.status().ToString().c_str());
      return 1;
    }
    options->model_disk = Cat(BERTH_MODEL_IMAGES_DIR, "/model-server-vm/disk.raw");
  }
  const AccelChoice accel = DetectAccelOnce(kQemuBinary);
  std::string dir_template = Cat(BERTH_BENCH_WORK_DIR, "/service-start.XXXXXX");
  if (mkdtemp(dir_template.data()) == nullptr) {
    std::fprintf(stderr, "bench_service-start: mkdtemp %s: %s\n", dir_template.c_str(),
                 strerror(errno));
    return 1;
  }

  std::vector<Round> rounds;
  {
    Bench bench(*options, images, dir_template);
    for (int i = 1; i <= options->rounds; ++i) {
      auto round = bench.RunRound(i);
      if (!round.ok()) {
        std::fprintf(stderr, "bench_service-start: round %d: %s\n", i,
                     round.status().ToString().c_str());
        return 1;
      }
      const Round& r = *round;
      std::printf(
          "round %d: cold %.0f ms (Start %.0f), save %.0f ms, snapshot %.1f MiB, warm %.0f ms "
          "(Restore %.0f), cold/warm %.1f\n",
          i, r.cold_ms, r.start_call_ms, r.save_ms, r.snapshot_mib, r.warm_ms, r.restore_call_ms,
          r.warm_ms > 0 ? r.cold_ms / r.warm_ms : 0);
      std::fflush(stdout);
      rounds.push_back(r);
    }
  }

  const Summary cold = Summarize(rounds, &Round::cold_ms);
  const Summary warm = Summarize(rounds, &Round::warm_ms);
  const Summary save = Summarize(rounds, &Round::save_ms);
  const Summary size = Summarize(rounds, &Round::snapshot_mib);
  const double ratio = warm.median > 0 ? cold.median / warm.median : 0;
  const std::string accel_name(VmAccelName(accel.accel));
  std::printf("accelerator: %s (%s)\n", accel_name.c_str(), accel.reason.c_str());
  if (options->example_model) {
    std::printf(
        "replica: the example model server's VM image (PyTorch), %d MiB memory, %d rounds\n",
        options->memory_mib, options->rounds);
  } else {
    std::printf("replica: %d MiB model, %d MiB memory, %d rounds\n", options->model_mib,
                options->memory_mib, options->rounds);
  }
  std::printf("cold boot -> first answer:    median %.0f ms, max %.0f ms (baseline)\n", cold.median,
              cold.max);
  std::printf("snapshot (source paused):     median %.0f ms, max %.0f ms\n", save.median, save.max);
  std::printf("snapshot size:                median %.1f MiB, max %.1f MiB\n", size.median,
              size.max);
  std::printf("warm restore -> first answer: median %.0f ms, max %.0f ms\n", warm.median, warm.max);
  std::printf("cold/warm (medians): %.1f\n", ratio);
  nlohmann::json out = {{"bench", "service-start"},
                        {"accel", accel_name},
                        {"rounds", options->rounds},
                        {"model", options->example_model ? "example" : "random"},
                        {"model_mib", options->example_model ? 0 : options->model_mib},
                        {"memory_mib", options->memory_mib},
                        {"cold_ms_median", cold.median},
                        {"cold_ms_max", cold.max},
                        {"save_ms_median", save.median},
                        {"save_ms_max", save.max},
                        {"snapshot_mib_median", size.median},
                        {"snapshot_mib_max", size.max},
                        {"warm_ms_median", warm.median},
                        {"warm_ms_max", warm.max},
                        {"cold_over_warm", ratio}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace berth::runtime

int main(int argc, char** argv) { return berth::runtime::Main(argc, argv); }
