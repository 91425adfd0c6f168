#include "sim/sim_command.h"

#include <filesystem>
#include <string_view>
#include <utility>

#include "core/flags.h"
#include "core/strings.h"
#include "nlohmann/json.hpp"
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

// An error with the exit code it maps to.
struct Failure {
  int code = kFailure;
  std::string message;
};

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

int Generate(core::Invocation& flags) {
  std::ostream& out = flags.out();
  std::ostream& err = flags.err();
  auto usage = [&](const absl::Status& s) {
    return Report(err, "generate", Failure{kUsage, std::string(s.message())});
  };
  auto profile = ProfileOptions(flags.String("profile"));
  if (!profile.ok()) return usage(profile.status());
  GenerateOptions o = *std::move(profile);
  if (flags.Given("cpu-scale")) o.cpu_scale_pct = flags.Int("cpu-scale");
  if (flags.Given("hosts")) {
    auto shapes = ParseHostShapes(flags.String("hosts"));
    if (!shapes.ok()) return usage(shapes.status());
    o.hosts = *std::move(shapes);
  }
  if (flags.Given("requests")) o.requests = flags.Int("requests");
  if (flags.Given("mean-gap")) o.mean_gap_s = flags.Int("mean-gap");
  if (flags.Given("seed")) o.seed = static_cast<uint64_t>(flags.Int("seed"));
  struct PctFlag {
    const char* name;
    int64_t* target;
  };
  for (const PctFlag& f :
       {PctFlag{"cpu-only", &o.cpu_only_permille}, PctFlag{"fractional", &o.fractional_permille},
        PctFlag{"multi-gpu", &o.multi_gpu_permille},
        PctFlag{"constrained", &o.constrained_permille},
        PctFlag{"high-priority", &o.high_priority_permille}}) {
    if (!flags.Given(f.name)) continue;
    auto v = ParsePercentFlag(f.name, flags.String(f.name));
    if (!v.ok()) return usage(v.status());
    *f.target = *v;
  }
  if (absl::Status s = ValidateGenerateOptions(o); !s.ok()) return usage(s);
  std::string format = flags.String("format");
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
  const std::string dir = flags.String("out");
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
      if (flags.json()) {
        out << nlohmann::json{{"wrote", path}}.dump() << "\n";
      } else {
        out << "wrote " << path << "\n";
      }
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
  bool shuffle_hosts = true;
  std::string out_dir, csv_path, svg_path;
};

std::optional<Failure> LoadSetup(const core::Invocation& flags, const EngineFactory& factory,
                                 CompareSetup* setup) {
  auto usage = [](const absl::Status& s) { return Failure{kUsage, std::string(s.message())}; };
  auto format = ParseTraceFormat(flags.String("format"));
  if (!format.ok()) return usage(format.status());
  auto policies = ParsePolicies(flags.String("policy"));
  if (!policies.ok()) return usage(policies.status());
  setup->policies = *std::move(policies);
  auto seeds = ParseSeeds(flags.String("seeds"));
  if (!seeds.ok()) return usage(seeds.status());
  setup->seeds = *std::move(seeds);
  if (flags.Given("jobs")) setup->jobs = static_cast<int>(flags.Int("jobs"));
  setup->json = flags.json();
  setup->timings = !flags.Bool("no-timings");
  setup->quiet = flags.Bool("quiet");
  setup->shuffle_hosts = flags.String("host-order") == "random";
  setup->out_dir = flags.String("out");
  setup->csv_path = flags.String("csv");
  setup->svg_path = flags.String("svg");
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
  auto cluster = LoadCluster(flags.String("cluster"), *format);
  if (!cluster.ok()) return Failure{kFailure, std::string(cluster.status().message())};
  setup->cluster = *std::move(cluster);
  auto trace = LoadTrace(flags.String("trace"), *format);
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

int Fill(core::Invocation& flags, const EngineFactory& factory) {
  std::ostream& out = flags.out();
  std::ostream& err = flags.err();
  CompareSetup setup;
  const int64_t target = flags.Int("target");
  if (auto f = LoadSetup(flags, factory, &setup)) return Report(err, "fill", *f);
  if (setup.cluster.TotalGpus() == 0) {
    return Report(err, "fill",
                  {kFailure, Cat(flags.String("cluster"), ": the cluster has no GPUs")});
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
               options.shuffle_hosts = setup.shuffle_hosts;
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

int Replay(core::Invocation& flags, const EngineFactory& factory) {
  std::ostream& out = flags.out();
  std::ostream& err = flags.err();
  ReplayOptions base;
  base.backfill = flags.String("queue") == "backfill";
  base.defrag = flags.Bool("defrag");
  if (flags.Given("migration-cost")) base.migration_cost_s = flags.Int("migration-cost");
  for (auto [name, target] :
       {std::pair{"priorities", &base.priorities}, std::pair{"preemption", &base.preemption}}) {
    if (!flags.Given(name)) continue;
    auto v = ParseOnOff(name, flags.String(name));  // checked when parsed
    if (v.ok()) *target = *v;
  }
  CompareSetup setup;
  if (auto f = LoadSetup(flags, factory, &setup)) return Report(err, "replay", *f);
  ReplayReport report;
  report.policies = setup.policies;
  report.seeds = setup.seeds;
  report.hosts = static_cast<int64_t>(setup.cluster.hosts.size());
  report.gpus = setup.cluster.TotalGpus();
  report.requests = static_cast<int64_t>(setup.trace.requests.size());
  report.backfill = base.backfill;
  report.priorities = base.priorities;
  report.preemption = base.preemption;
  report.defrag = base.defrag;
  report.migration_cost_s = base.migration_cost_s;
  report.runs.resize(setup.policies.size() * setup.seeds.size());
  auto failure =
      RunAll(setup, err,
             [&](const std::string& policy, uint64_t seed, size_t slot) -> absl::StatusOr<double> {
               ReplayOptions options = base;
               options.policy = policy;
               options.seed = seed;
               options.shuffle_hosts = setup.shuffle_hosts;
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

using core::FlagDef;
using core::FlagType;

// A percentage flag of `generate`.
FlagDef PercentFlag(std::string name, std::string help, std::string fallback) {
  return FlagDef{
      .name = name,
      .help = std::move(help),
      .default_value = std::move(fallback),
      .value_name = "PCT",
      .check = [name](std::string_view v) { return ParsePercentFlag(name, v).status(); }};
}

// The flags fill and replay share, then `extra`.
std::vector<FlagDef> CompareFlags(std::string_view what, std::vector<FlagDef> extra) {
  std::vector<FlagDef> flags = {
      {.name = "cluster",
       .help = "hosts: Berth YAML/JSON/CSV or alibaba-gpu-2023 node list",
       .value_name = "FILE",
       .required = true},
      {.name = "trace",
       .help = Cat("requests", what, ": Berth YAML/JSON/CSV or alibaba-gpu-2023 pod list"),
       .value_name = "FILE",
       .required = true},
      {.name = "format",
       .type = FlagType::kEnum,
       .help = "the input files' format",
       .default_value = "auto",
       .choices = {"auto", "berth", "yaml", "json", "csv", "alibaba-gpu-2023"}},
      {.name = "policy",
       .help = "comma-separated policies, each spelled as for berth serve --policy: a ranker,\n"
               "'+'-joined weighted terms (fgd:1+topology:0.2) or default",
       .default_value = std::string(kDefaultPolicies),
       .value_name = "LIST",
       .check = [](std::string_view v) { return ParsePolicies(v).status(); }},
      {.name = "seeds",
       .help = "42..51, 1,5,9 or 42",
       .default_value = "42",
       .value_name = "LIST",
       .check = [](std::string_view v) { return ParseSeeds(v).status(); }},
      {.name = "jobs",
       .type = FlagType::kInt,
       .help = "worker threads (default: every core)",
       .min = 1,
       .max = 4096},
      {.name = "out",
       .help = "also write the summary, CSV and chart files there",
       .value_name = "DIR"},
      {.name = "csv", .help = "write the CSV there", .value_name = "FILE"},
      {.name = "svg", .help = "write the chart as SVG there", .value_name = "FILE"},
      {.name = "no-timings",
       .type = FlagType::kBool,
       .help = "leave seconds out of every output, so reruns are byte-identical"},
      {.name = "quiet", .type = FlagType::kBool, .help = "no progress lines on stderr"},
      {.name = "host-order",
       .type = FlagType::kEnum,
       .help = "order in which equally scored hosts are preferred: random (drawn per seed,\n"
               "as in the fragmentation literature) or input (the cluster file's order)",
       .default_value = "random",
       .choices = {"random", "input"}},
  };
  for (FlagDef& f : extra) flags.push_back(std::move(f));
  return flags;
}

absl::Status CheckOnOff(std::string_view name, std::string_view v) {
  return ParseOnOff(name, v).status();
}

}  // namespace

core::Command SimCommand(const SimCommandOptions& options) {
  EngineFactory factory = options.engine_factory ? options.engine_factory : SchedEngineFactory();
  return core::Command{
      .name = "sim",
      .section = "Server and agents",
      .summary = "simulate a cluster: compare placement policies on a workload trace",
      .description =
          "Trace-driven simulation of a GPU cluster with Berth's placement engine. "
          "See docs/sim.md.",
      .subcommands = {
          core::Command{
              .name = "generate",
              .summary = "write a synthetic cluster and workload trace",
              .description = "Files: nodes.csv and pods.csv (alibaba-gpu-2023), or cluster.EXT "
                             "and trace.EXT (yaml, json,\ncsv). With --json each file written is "
                             "a JSON line.",
              .flags = {{.name = "out",
                         .help = "directory to write into (created if missing)",
                         .value_name = "DIR",
                         .required = true},
                        {.name = "format",
                         .type = FlagType::kEnum,
                         .help = "the files' format",
                         .default_value = "alibaba-gpu-2023",
                         .choices = {"alibaba-gpu-2023", "yaml", "json", "csv", "all"}},
                        {.name = "profile",
                         .help = "start from a named set of the values below, which flags given "
                                 "with it\noverride: default, openb (the 2023 Alibaba GPU "
                                 "trace's shape) and its\nvariants (docs/sim.md lists them)",
                         .default_value = "default",
                         .value_name = "NAME",
                         .check = [](std::string_view v) { return ProfileOptions(v).status(); }},
                        {.name = "hosts",
                         .help = "COUNT:GPUS:MODEL:CPU:MEMORY[:GPU_MEMORY],...\n(default "
                                 "500:8:A100:96:512Gi:80Gi,500:4:V100:64:256Gi:32Gi,"
                                 "200:0::32:128Gi)",
                         .value_name = "SHAPES"},
                        {.name = "requests",
                         .type = FlagType::kInt,
                         .help = "number of requests",
                         .default_value = "10000",
                         .min = 0,
                         .max = 100000000},
                        PercentFlag("cpu-only", "% of requests asking for no GPU", "20"),
                        PercentFlag("fractional", "% asking for a share of one GPU", "35"),
                        PercentFlag("multi-gpu",
                                    "% asking for 2, 4 or 8 whole GPUs; the rest ask for one", "5"),
                        PercentFlag("constrained", "% of GPU requests limited to some GPU models",
                                    "15"),
                        PercentFlag("high-priority", "% of requests with priority 1 instead of 0",
                                    "0"),
                        {.name = "cpu-scale",
                         .type = FlagType::kInt,
                         .help = "CPU each request asks for, % of the drawn size (capped to fit "
                                 "a host)",
                         .default_value = "100",
                         .value_name = "PCT",
                         .min = 1,
                         .max = 1000},
                        {.name = "mean-gap",
                         .type = FlagType::kInt,
                         .help = "mean seconds between arrivals",
                         .default_value = "20",
                         .value_name = "S",
                         .min = 0,
                         .max = 100000000},
                        {.name = "seed",
                         .type = FlagType::kInt,
                         .help = "random seed",
                         .default_value = "42",
                         .min = 0}},
              .run = [](core::Invocation& inv) { return Generate(inv); }},
          core::Command{
              .name = "fill",
              .summary = "fill the cluster with shuffled, padded requests; unallocated GPU % vs "
                         "arrived load",
              .description =
                  "Shuffles the trace's requests with each seed, pads the list by resampling "
                  "until the GPU demand\nreaches --target % of cluster GPU capacity, and offers "
                  "the requests one at a time with no\ndepartures. Reports unallocated GPU % at "
                  "arrived = 100% and the curve from 75% to the target.\nWith --json the summary "
                  "is one JSON object instead of the table.",
              .flags = CompareFlags("", {{.name = "target",
                                          .type = FlagType::kInt,
                                          .help = "pad to this % of GPU capacity",
                                          .default_value = "130",
                                          .value_name = "PCT",
                                          .min = 1,
                                          .max = 10000}}),
              .run = [factory](core::Invocation& inv) { return Fill(inv, factory); }},
          core::Command{
              .name = "replay",
              .summary = "replay arrivals and departures at the trace's times, with a queue",
              .description =
                  "Replays arrivals and departures at the trace's times (creation_time, "
                  "scheduled_time,\ndeletion_time) against the cluster; requests that do not fit "
                  "wait in a queue. Reports GPU\nutilization over time, queueing delay and "
                  "completion-time percentiles. With --json the summary\nis one JSON object.",
              .flags = CompareFlags(
                  " with times",
                  {{.name = "queue",
                    .type = FlagType::kEnum,
                    .help = "backfill: later requests that fit may start first; fifo: strict",
                    .default_value = "backfill",
                    .choices = {"backfill", "fifo"}},
                   {.name = "priorities",
                    .help = "on: higher priority first; off: arrival order",
                    .default_value = "on",
                    .value_name = "on|off",
                    .check = [](std::string_view v) { return CheckOnOff("priorities", v); }},
                   {.name = "preemption",
                    .help = "on: evict lower-priority requests to make room",
                    .default_value = "off",
                    .value_name = "on|off",
                    .check = [](std::string_view v) { return CheckOnOff("preemption", v); }},
                   {.name = "defrag",
                    .type = FlagType::kBool,
                    .help = "move running requests to make room for one that fits nowhere "
                            "although enough GPU is free (not tried with --preemption on)"},
                   {.name = "migration-cost",
                    .type = FlagType::kInt,
                    .help = "seconds of progress a moved request loses (with --defrag)",
                    .default_value = "60",
                    .value_name = "S",
                    .min = 0,
                    .max = 100000000}}),
              .run = [factory](core::Invocation& inv) { return Replay(inv, factory); }}}};
}

int RunSimCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return RunSimCommand(args, out, err, SimCommandOptions{});
}

int RunSimCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                  const SimCommandOptions& options) {
  core::Command root{
      .name = "berth", .flags = core::GlobalFlags(), .subcommands = {SimCommand(options)}};
  std::vector<std::string> full = {"sim"};
  full.insert(full.end(), args.begin(), args.end());
  return core::Run(root, full, out, err);
}

}  // namespace berth::sim
