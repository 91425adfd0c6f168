#include "sim/sim_command.h"

#include <filesystem>
#include <string_view>
#include <utility>

#include "core/strings.h"
#include "sim/args.h"
#include "sim/fill.h"
#include "sim/formats.h"
#include "sim/generate.h"
#include "sim/replay.h"
#include "sim/report.h"
#include "sim/runner.h"
#include "sim/sched_engine.h"

namespace berth::sim {
namespace {

using core::Cat;

constexpr int kOk = 0;
constexpr int kFailure = 1;
constexpr int kUsage = 2;

constexpr std::string_view kDefaultPolicies = "first-fit,binpack,spread,dotprod,gpu-packing,fgd";

constexpr std::string_view kTopHelp = R"(usage: berth sim COMMAND [FLAGS]

Trace-driven simulation of a GPU cluster with Berth's placement engine.

commands:
  generate  write a synthetic cluster and workload trace
  fill      fill the cluster with shuffled, padded requests; unallocated GPU % vs arrived load
  replay    replay arrivals and departures at the trace's times, with a queue

`berth sim COMMAND --help` describes each command's flags.
)";

constexpr std::string_view kGenerateHelp = R"(usage: berth sim generate --out DIR [FLAGS]

Writes a synthetic cluster and trace. Files: nodes.csv and pods.csv (alibaba-gpu-2023), or
cluster.EXT and trace.EXT (yaml, json, csv).

flags:
  --out DIR            directory to write into (created if missing)       (required)
  --format F           alibaba-gpu-2023 (default), yaml, json, csv, or all
  --hosts SHAPES       COUNT:GPUS:MODEL:CPU:MEMORY[:GPU_MEMORY],...
                       (default 500:8:A100:96:512Gi:80Gi,500:4:V100:64:256Gi:32Gi,200:0::32:128Gi)
  --requests N         number of requests (default 10000)
  --cpu-only PCT       % of requests asking for no GPU (default 20)
  --fractional PCT     % asking for a share of one GPU (default 35)
  --multi-gpu PCT      % asking for 2, 4 or 8 whole GPUs (default 5); the rest ask for one
  --constrained PCT    % of GPU requests limited to some GPU models (default 15)
  --high-priority PCT  % of requests with priority 1 instead of 0 (default 0)
  --mean-gap S         mean seconds between arrivals (default 20)
  --seed N             random seed (default 42)
)";

constexpr std::string_view kFillHelp = R"(usage: berth sim fill --cluster FILE --trace FILE [FLAGS]

Shuffles the trace's requests with each seed, pads the list by resampling until the GPU demand
reaches --target % of cluster GPU capacity, and offers the requests one at a time with no
departures. Reports unallocated GPU % at arrived = 100% and the curve from 75% to the target.

flags:
  --cluster FILE     hosts: Berth YAML/JSON/CSV or alibaba-gpu-2023 node list   (required)
  --trace FILE       requests: Berth YAML/JSON/CSV or alibaba-gpu-2023 pod list (required)
  --format F         auto (default), yaml, json, csv, alibaba-gpu-2023
  --policy LIST      comma-separated policies; '+' joins weighted terms (fgd:1+topology:0.2)
                     (default first-fit,binpack,spread,dotprod,gpu-packing,fgd)
  --seeds LIST       42..51, 1,5,9 or 42 (default 42)
  --target PCT       pad to this % of GPU capacity (default 130)
  --jobs N           worker threads (default: every core)
  --json             print the summary as one JSON object instead of the table
  --out DIR          also write summary.txt, summary.json, curves.csv, chart.svg there
  --csv FILE         write the curves as CSV
  --svg FILE         write the chart as SVG
  --no-timings       leave seconds out of every output, so reruns are byte-identical
  --quiet            no progress lines on stderr
)";

constexpr std::string_view kReplayHelp =
    R"(usage: berth sim replay --cluster FILE --trace FILE [FLAGS]

Replays arrivals and departures at the trace's times (creation_time, scheduled_time,
deletion_time) against the cluster; requests that do not fit wait in a queue. Reports GPU
utilization over time, queueing delay and completion-time percentiles.

flags:
  --cluster FILE     hosts (required)
  --trace FILE       requests with times (required)
  --format F         auto (default), yaml, json, csv, alibaba-gpu-2023
  --policy LIST      comma-separated policies (default first-fit,binpack,spread,dotprod,gpu-packing,fgd)
  --seeds LIST       seeds; a seed orders requests that arrive in the same second (default 42)
  --queue Q          backfill (default): later requests that fit may start first; fifo: strict
  --priorities B     on (default): higher priority first; off: arrival order only
  --preemption B     off (default); on: evict lower-priority requests to make room
  --jobs N           worker threads (default: every core)
  --json             print the summary as one JSON object instead of the table
  --out DIR          also write summary.txt, summary.json, timeline.csv, chart.svg there
  --csv FILE         write the utilization timeline as CSV
  --svg FILE         write the utilization chart as SVG
  --no-timings       leave seconds out of every output, so reruns are byte-identical
  --quiet            no progress lines on stderr
)";

// An error with the exit code it maps to.
struct Failure {
  int code = kFailure;
  std::string message;
};

bool WantsHelp(const std::vector<std::string>& args) {
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") return true;
  }
  return false;
}

int Report(std::ostream& err, std::string_view command, const Failure& f) {
  err << "berth sim " << command << ": " << f.message << "\n";
  if (f.code == kUsage) err << "run `berth sim " << command << " --help` for usage\n";
  return f.code;
}

std::optional<Failure> WriteOutput(const std::string& path, std::string_view contents) {
  absl::Status s = WriteFile(path, contents);
  if (!s.ok()) return Failure{kFailure, std::string(s.message())};
  return std::nullopt;
}

std::optional<Failure> MakeDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Failure{kFailure, Cat("cannot create directory \"", dir, "\": ", ec.message())};
  return std::nullopt;
}

// ---- generate --------------------------------------------------------------------------------

int Generate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto flags = ParseFlags(args, 1,
                          {{"out"},
                           {"format"},
                           {"hosts"},
                           {"requests"},
                           {"cpu-only"},
                           {"fractional"},
                           {"multi-gpu"},
                           {"constrained"},
                           {"high-priority"},
                           {"mean-gap"},
                           {"seed"}});
  auto usage = [&](const absl::Status& s) {
    return Report(err, "generate", Failure{kUsage, std::string(s.message())});
  };
  if (!flags.ok()) return usage(flags.status());
  if (!flags->Has("out")) return usage(absl::InvalidArgumentError("--out is required"));
  GenerateOptions o;
  if (flags->Has("hosts")) {
    auto shapes = ParseHostShapes(flags->Get("hosts"));
    if (!shapes.ok()) return usage(shapes.status());
    o.hosts = *std::move(shapes);
  }
  struct IntFlag {
    const char* name;
    int64_t* target;
    int64_t min, max;
  };
  int64_t seed = static_cast<int64_t>(o.seed);
  for (const IntFlag& f :
       {IntFlag{"requests", &o.requests, 0, 100000000},
        IntFlag{"mean-gap", &o.mean_gap_s, 0, 100000000}, IntFlag{"seed", &seed, 0, INT64_MAX}}) {
    if (!flags->Has(f.name)) continue;
    auto v = ParseIntFlag(f.name, flags->Get(f.name), f.min, f.max);
    if (!v.ok()) return usage(v.status());
    *f.target = *v;
  }
  o.seed = static_cast<uint64_t>(seed);
  struct PctFlag {
    const char* name;
    int64_t* target;
  };
  for (const PctFlag& f :
       {PctFlag{"cpu-only", &o.cpu_only_permille}, PctFlag{"fractional", &o.fractional_permille},
        PctFlag{"multi-gpu", &o.multi_gpu_permille},
        PctFlag{"constrained", &o.constrained_permille},
        PctFlag{"high-priority", &o.high_priority_permille}}) {
    if (!flags->Has(f.name)) continue;
    auto v = ParsePercentFlag(f.name, flags->Get(f.name));
    if (!v.ok()) return usage(v.status());
    *f.target = *v;
  }
  if (absl::Status s = ValidateGenerateOptions(o); !s.ok()) return usage(s);
  std::string format = flags->Get("format", "alibaba-gpu-2023");
  std::vector<TraceFormat> formats;
  if (format == "all") {
    formats = {TraceFormat::kAlibabaGpu2023, TraceFormat::kBerthYaml, TraceFormat::kBerthJson,
               TraceFormat::kBerthCsv};
  } else {
    auto f = ParseTraceFormat(format);
    if (!f.ok() || *f == TraceFormat::kAuto) {
      return usage(absl::InvalidArgumentError(
          Cat("--format must be alibaba-gpu-2023, yaml, json, csv or all, got \"", format, "\"")));
    }
    formats = {*f};
  }
  auto cluster = GenerateCluster(o);
  if (!cluster.ok()) return usage(cluster.status());
  auto trace = GenerateTrace(o, *cluster);
  if (!trace.ok()) return usage(trace.status());
  const std::string dir = flags->Get("out");
  if (auto f = MakeDir(dir)) return Report(err, "generate", *f);
  for (TraceFormat f : formats) {
    std::string cluster_name, trace_name;
    if (f == TraceFormat::kAlibabaGpu2023) {
      cluster_name = "nodes.csv";
      trace_name = "pods.csv";
    } else {
      cluster_name = Cat("cluster.", TraceFormatName(f));
      trace_name = Cat("trace.", TraceFormatName(f));
    }
    for (const auto& [name, text] : {std::pair{cluster_name, FormatCluster(*cluster, f)},
                                     std::pair{trace_name, FormatTrace(*trace, f)}}) {
      std::string path = (std::filesystem::path(dir) / name).string();
      if (auto failure = WriteOutput(path, text)) return Report(err, "generate", *failure);
      out << "wrote " << path << "\n";
    }
  }
  return kOk;
}

// ---- fill and replay -------------------------------------------------------------------------

// What fill and replay share: inputs, policies, seeds and where output goes.
struct CompareSetup {
  SimCluster cluster;
  SimTrace trace;
  std::vector<std::string> policies;
  std::vector<uint64_t> seeds;
  int jobs = 0;
  bool json = false;
  bool timings = true;
  bool quiet = false;
  std::string out_dir, csv_path, svg_path;
};

std::vector<FlagSpec> CompareFlags(std::vector<FlagSpec> extra) {
  std::vector<FlagSpec> specs = {{"cluster"},
                                 {"trace"},
                                 {"format"},
                                 {"policy"},
                                 {"seeds"},
                                 {"jobs"},
                                 {"json", false},
                                 {"out"},
                                 {"csv"},
                                 {"svg"},
                                 {"no-timings", false},
                                 {"quiet", false}};
  for (FlagSpec& f : extra) specs.push_back(std::move(f));
  return specs;
}

std::optional<Failure> LoadSetup(const ParsedFlags& flags, const EngineFactory& factory,
                                 CompareSetup* setup) {
  auto usage = [](const absl::Status& s) { return Failure{kUsage, std::string(s.message())}; };
  for (const char* required : {"cluster", "trace"}) {
    if (!flags.Has(required)) {
      return usage(absl::InvalidArgumentError(Cat("--", required, " is required")));
    }
  }
  auto format = ParseTraceFormat(flags.Get("format", "auto"));
  if (!format.ok()) return usage(format.status());
  auto policies = ParsePolicies(flags.Get("policy", kDefaultPolicies));
  if (!policies.ok()) return usage(policies.status());
  setup->policies = *std::move(policies);
  auto seeds = ParseSeeds(flags.Get("seeds", "42"));
  if (!seeds.ok()) return usage(seeds.status());
  setup->seeds = *std::move(seeds);
  if (flags.Has("jobs")) {
    auto jobs = ParseIntFlag("jobs", flags.Get("jobs"), 1, 4096);
    if (!jobs.ok()) return usage(jobs.status());
    setup->jobs = static_cast<int>(*jobs);
  }
  setup->json = flags.Has("json");
  setup->timings = !flags.Has("no-timings");
  setup->quiet = flags.Has("quiet");
  setup->out_dir = flags.Get("out");
  setup->csv_path = flags.Get("csv");
  setup->svg_path = flags.Get("svg");
  // Reject unknown policies before loading anything large.
  SimCluster empty_cluster;
  for (const std::string& policy : setup->policies) {
    auto engine = factory(EngineConfig{&empty_cluster, policy, nullptr});
    if (!engine.ok()) {
      if (engine.status().code() == absl::StatusCode::kInvalidArgument) {
        return usage(engine.status());
      }
      return Failure{kFailure, std::string(engine.status().message())};
    }
  }
  auto cluster = LoadCluster(flags.Get("cluster"), *format);
  if (!cluster.ok()) return Failure{kFailure, std::string(cluster.status().message())};
  setup->cluster = *std::move(cluster);
  auto trace = LoadTrace(flags.Get("trace"), *format);
  if (!trace.ok()) return Failure{kFailure, std::string(trace.status().message())};
  setup->trace = *std::move(trace);
  return std::nullopt;
}

// Writes the summary to `out` and the files the flags ask for.
std::optional<Failure> Emit(const CompareSetup& setup, std::ostream& out, const std::string& table,
                            const std::string& json, const std::string& csv,
                            std::string_view csv_name, const std::string& svg) {
  out << (setup.json ? json : table);
  if (!setup.out_dir.empty()) {
    if (auto f = MakeDir(setup.out_dir)) return f;
    std::filesystem::path dir(setup.out_dir);
    for (const auto& [name, text] :
         {std::pair<std::string_view, const std::string*>{"summary.txt", &table},
          {"summary.json", &json},
          {csv_name, &csv},
          {"chart.svg", &svg}}) {
      if (auto f = WriteOutput((dir / name).string(), *text)) return f;
    }
  }
  if (!setup.csv_path.empty()) {
    if (auto f = WriteOutput(setup.csv_path, csv)) return f;
  }
  if (!setup.svg_path.empty()) {
    if (auto f = WriteOutput(setup.svg_path, svg)) return f;
  }
  return std::nullopt;
}

// Runs `run(policy, seed, slot)` for every pair on the worker threads; the first error (in task
// order, so the message is deterministic) wins.
template <typename RunFn>
std::optional<Failure> RunAll(const CompareSetup& setup, std::ostream& err, RunFn run) {
  const size_t k = setup.seeds.size();
  const size_t count = setup.policies.size() * k;
  std::vector<absl::Status> statuses(count);
  ParallelOptions parallel;
  parallel.jobs = setup.jobs;
  parallel.progress = setup.quiet ? nullptr : &err;
  RunParallel(
      count,
      [&](size_t i) {
        const std::string& policy = setup.policies[i / k];
        uint64_t seed = setup.seeds[i % k];
        absl::StatusOr<double> seconds = run(policy, seed, i);
        if (!seconds.ok()) {
          statuses[i] = seconds.status();
          return Cat(policy, " seed ", seed, " failed");
        }
        return Cat(policy, " seed ", seed, ", ", FormatFixed(*seconds, 2), " s");
      },
      parallel);
  for (const absl::Status& s : statuses) {
    if (!s.ok()) {
      return Failure{s.code() == absl::StatusCode::kInvalidArgument ? kUsage : kFailure,
                     std::string(s.message())};
    }
  }
  return std::nullopt;
}

int Fill(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
         const EngineFactory& factory) {
  auto flags = ParseFlags(args, 1, CompareFlags({{"target"}}));
  if (!flags.ok()) return Report(err, "fill", {kUsage, std::string(flags.status().message())});
  CompareSetup setup;
  int64_t target = 130;
  if (flags->Has("target")) {
    auto t = ParseIntFlag("target", flags->Get("target"), 1, 10000);
    if (!t.ok()) return Report(err, "fill", {kUsage, std::string(t.status().message())});
    target = *t;
  }
  if (auto f = LoadSetup(*flags, factory, &setup)) return Report(err, "fill", *f);
  if (setup.cluster.TotalGpus() == 0) {
    return Report(err, "fill", {kFailure, Cat(flags->Get("cluster"), ": the cluster has no GPUs")});
  }
  FillReport report;
  report.policies = setup.policies;
  report.seeds = setup.seeds;
  report.hosts = static_cast<int64_t>(setup.cluster.hosts.size());
  report.gpus = setup.cluster.TotalGpus();
  report.requests = static_cast<int64_t>(setup.trace.requests.size());
  report.target_pct = target;
  report.runs.resize(setup.policies.size() * setup.seeds.size());
  auto failure =
      RunAll(setup, err,
             [&](const std::string& policy, uint64_t seed, size_t slot) -> absl::StatusOr<double> {
               FillOptions options;
               options.policy = policy;
               options.seed = seed;
               options.target_pct = target;
               auto result = RunFill(setup.cluster, setup.trace, options, factory);
               if (!result.ok()) return result.status();
               report.runs[slot] = *std::move(result);
               return report.runs[slot].seconds;
             });
  if (failure) return Report(err, "fill", *failure);
  if (auto f = Emit(setup, out, FillTable(report, setup.timings), FillJson(report, setup.timings),
                    FillCurvesCsv(report), "curves.csv", FillChartSvg(report))) {
    return Report(err, "fill", *f);
  }
  return kOk;
}

int Replay(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
           const EngineFactory& factory) {
  auto flags = ParseFlags(args, 1, CompareFlags({{"queue"}, {"priorities"}, {"preemption"}}));
  if (!flags.ok()) return Report(err, "replay", {kUsage, std::string(flags.status().message())});
  ReplayOptions base;
  std::string queue = flags->Get("queue", "backfill");
  if (queue != "backfill" && queue != "fifo") {
    return Report(err, "replay",
                  {kUsage, Cat("--queue must be backfill or fifo, got \"", queue, "\"")});
  }
  base.backfill = queue == "backfill";
  for (auto [name, target] :
       {std::pair{"priorities", &base.priorities}, std::pair{"preemption", &base.preemption}}) {
    if (!flags->Has(name)) continue;
    auto v = ParseOnOff(name, flags->Get(name));
    if (!v.ok()) return Report(err, "replay", {kUsage, std::string(v.status().message())});
    *target = *v;
  }
  CompareSetup setup;
  if (auto f = LoadSetup(*flags, factory, &setup)) return Report(err, "replay", *f);
  ReplayReport report;
  report.policies = setup.policies;
  report.seeds = setup.seeds;
  report.hosts = static_cast<int64_t>(setup.cluster.hosts.size());
  report.gpus = setup.cluster.TotalGpus();
  report.requests = static_cast<int64_t>(setup.trace.requests.size());
  report.backfill = base.backfill;
  report.priorities = base.priorities;
  report.preemption = base.preemption;
  report.runs.resize(setup.policies.size() * setup.seeds.size());
  auto failure =
      RunAll(setup, err,
             [&](const std::string& policy, uint64_t seed, size_t slot) -> absl::StatusOr<double> {
               ReplayOptions options = base;
               options.policy = policy;
               options.seed = seed;
               auto result = RunReplay(setup.cluster, setup.trace, options, factory);
               if (!result.ok()) return result.status();
               report.runs[slot] = *std::move(result);
               return report.runs[slot].seconds;
             });
  if (failure) return Report(err, "replay", *failure);
  if (auto f =
          Emit(setup, out, ReplayTable(report, setup.timings), ReplayJson(report, setup.timings),
               ReplayTimelineCsv(report), "timeline.csv", ReplayChartSvg(report))) {
    return Report(err, "replay", *f);
  }
  return kOk;
}

}  // namespace

int RunSimCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return RunSimCommand(args, out, err, SimCommandOptions{});
}

int RunSimCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                  const SimCommandOptions& options) {
  EngineFactory factory = options.engine_factory ? options.engine_factory : SchedEngineFactory();
  if (args.empty()) {
    err << kTopHelp;
    return kUsage;
  }
  const std::string& command = args[0];
  if (command == "--help" || command == "-h" || command == "help") {
    out << kTopHelp;
    return kOk;
  }
  if (command == "generate") {
    if (WantsHelp(args)) return out << kGenerateHelp, kOk;
    return Generate(args, out, err);
  }
  if (command == "fill") {
    if (WantsHelp(args)) return out << kFillHelp, kOk;
    return Fill(args, out, err, factory);
  }
  if (command == "replay") {
    if (WantsHelp(args)) return out << kReplayHelp, kOk;
    return Replay(args, out, err, factory);
  }
  err << "berth sim: unknown command \"" << command << "\"\n" << kTopHelp;
  return kUsage;
}

}  // namespace berth::sim
