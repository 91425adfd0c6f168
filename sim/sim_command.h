// `berth sim`: trace-driven simulation of a GPU cluster with Berth's placement engine, and
// side-by-side comparison of placement policies. Subcommands:
//   generate  write a synthetic cluster and trace (Berth YAML/JSON/CSV or Alibaba v2023 CSV)
//   fill      the fragmentation literature's fill method: unallocated GPU % vs arrived workload
//   replay    arrivals and departures at the trace's times, with a queue
// See docs/sim.md for formats, flags and outputs.
//
// Thread-safety: each call is independent; a call runs its simulations on worker threads and
// writes to `out` and `err` only from the calling thread, except progress lines, which are
// serialized.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "core/flags.h"
#include "sim/engine.h"

namespace berth::sim {

// `args` is what follows `berth sim`, e.g. {"fill", "--cluster", "n.csv", ...}. Writes results
// to `out`, progress and errors to `err`. Returns the exit code: 0 success, 2 usage error (the
// message names the flag), 1 any other failure.
int RunSimCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

struct SimCommandOptions {
  // Builds the engine of each run; empty means Berth's scheduler (SchedEngineFactory()).
  EngineFactory engine_factory;
};
int RunSimCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                  const SimCommandOptions& options);

// The `sim` group of the command table, its flags declared for core::Run.
core::Command SimCommand(const SimCommandOptions& options = {});

}  // namespace berth::sim
