#include "cli/rebalance_cmd.h"

#include <string>
#include <vector>

#include "api/client/client.h"
#include "cli/cli.h"
#include "cli/session.h"
#include "cli/table.h"
#include "core/json.h"
#include "core/milli.h"
#include "core/strings.h"

namespace berth::cli {

using core::Cat;
using core::Json;

namespace {

// "h2 [0,1]": a host and the device indices there.
std::string Where(const Json& host, const Json& gpus) {
  if (!host.is_string()) return "-";
  std::string out = host.get<std::string>();
  if (gpus.is_array() && !gpus.empty()) {
    std::string list;
    for (const Json& g : gpus) list += (list.empty() ? "" : ",") + Cat(g.get<int>());
    out += " [" + list + "]";
  }
  return out;
}

class Session : public CommandSession {
 public:
  using CommandSession::CommandSession;

  int Plan() {
    api::RebalanceQuery query;
    query.workload = inv_.String("workload");
    query.max_moves = static_cast<int>(inv_.Int("max-moves"));
    query.limit = static_cast<size_t>(inv_.Int("limit"));
    auto j = Do([&](api::Client& c, api::Raw* r) { return c.RebalancePlan(query, r).status(); });
    if (!j) return 1;
    if (json_) {
      out_ << j->dump() << "\n";
      return 0;
    }
    Print(*j);
    return 0;
  }

 private:
  void Print(const Json& j) {
    const Json& gpu = j.value("gpu", Json::object());
    out_ << "Dry run: nothing is moved (carrying a plan out is not implemented).\n";
    out_ << "Policy " << j.value("policy", "") << "; GPUs free "
         << core::MilliText(gpu.value("free_milli", int64_t{0})) << " of "
         << core::MilliText(gpu.value("capacity_milli", int64_t{0})) << ", stranded "
         << core::MilliText(gpu.value("stranded_milli", int64_t{0}))
         << " (free on partly used devices); pending workloads: " << j.value("pending", 0) << "\n";
    const Json& items = j["items"];
    if (items.empty()) {
      out_ << "No pending workload to plan for.\n";
      return;
    }
    std::vector<std::vector<std::string>> rows = {
        {"WORKLOAD", "GPUS", "OUTCOME", "GOES TO", "MOVES", "COST", "STRANDED AFTER"}};
    for (const Json& e : items) {
      const std::string outcome = e.value("outcome", "");
      const bool plan = outcome == "plan";
      rows.push_back(
          {e.value("workload", ""), core::MilliText(e.value("gpu_milli", int64_t{0})), outcome,
           Where(e.contains("host") ? e["host"] : Json(), e.value("gpus", Json())),
           plan ? Cat(e["moves"].size()) : "-", plan ? Cat(e.value("cost", int64_t{0})) : "-",
           plan ? core::MilliText(e.value("stranded_milli_after", int64_t{0})) : "-"});
    }
    PrintTable(out_, rows);
    for (const Json& e : items) {
      const std::string name = e.value("workload", "");
      const std::string outcome = e.value("outcome", "");
      if (outcome == "plan") {
        out_ << "\n" << name << ": move, in this order:\n";
        std::vector<std::vector<std::string>> moves = {{"WORKLOAD", "KIND", "FROM", "TO", "COST"}};
        for (const Json& m : e["moves"]) {
          moves.push_back({m.value("workload", ""), m.value("kind", ""), m.value("from", ""),
                           Where(m.contains("to") ? m["to"] : Json(), m.value("gpus", Json())),
                           Cat(m.value("cost", int64_t{0}))});
        }
        PrintTable(out_, moves);
      } else if (outcome == "preempts") {
        std::string victims;
        for (const Json& v : e.value("victims", Json::array())) {
          victims += (victims.empty() ? "" : ", ") + v.get<std::string>();
        }
        out_ << "\n"
             << name << ": the next scheduling pass places it by preempting " << victims << "\n";
      } else if (outcome == "no-plan") {
        out_ << "\n" << name << ": no plan: " << e.value("reason", "") << "\n";
      }
    }
    if (j.value("more", false)) {
      out_ << "\nMore pending workloads than --limit; raise it to see them.\n";
    }
  }
};

core::RunFn Run() {
  return [](core::Invocation& inv) {
    Session session(inv, {});
    return session.Plan();
  };
}

}  // namespace

core::Command RebalanceCommand() {
  core::Command g{
      .name = "rebalance",
      .section = "Cluster",
      .summary = "dry-run plans that move running workloads to make room for pending ones",
      .description =
          "For pending workloads that no host takes although the cluster has the GPUs free in\n"
          "total, which running workloads to move where so that one host takes them. A dry\n"
          "run: nothing is moved; carrying a plan out is not implemented. See\n"
          "docs/placement-study.md (defragmentation)."};
  g.flags = ServerFlags();
  g.subcommands = {core::Command{
      .name = "plan",
      .summary = "plan moves for pending workloads (a dry run: nothing is moved)",
      .description =
          "Asks the server (GET /v1/rebalance/plan) for a plan per pending workload, in\n"
          "placement order: \"fits\" (the next pass places it), \"preempts\" (the next pass\n"
          "preempts lower-priority workloads for it), \"plan\" (the moves, their cost and the\n"
          "stranded GPU after), or \"no-plan\" with the reason. Only running workloads that\n"
          "restart (restart: always or on-failure), are preemptible, have no disks and no\n"
          "higher priority move; a process costs 1, a container 2, a VM 4. Each plan is made\n"
          "alone against the cluster as it stands. Nothing is moved.",
      .flags = {{.name = "workload", .help = "only this pending workload", .value_name = "NAME"},
                {.name = "max-moves",
                 .type = core::FlagType::kInt,
                 .help = "moves per plan at most",
                 .default_value = "4",
                 .min = 1,
                 .max = 16},
                {.name = "limit",
                 .type = core::FlagType::kInt,
                 .help = "pending workloads planned for at most",
                 .default_value = "20",
                 .min = 1,
                 .max = 200}},
      .run = Run()}};
  return g;
}

}  // namespace berth::cli
