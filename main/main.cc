// The `berth` binary: the only code that knows every concrete type. It wires the store, the
// control plane, the API server, the agent and its drivers for `serve` and `agent`, hands
// `sim` to the simulator, and everything else to the CLI.
#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "main/roles.h"
#ifdef BERTH_WITH_SIM
#include "sim/sim_command.h"
#endif

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty()) {
    const std::string cmd = args[0];
    std::vector<std::string> rest(args.begin() + 1, args.end());
    if (cmd == "serve") return berth::RunServe(rest, std::cout, std::cerr);
    if (cmd == "agent") return berth::RunAgent(rest, std::cout, std::cerr);
    if (cmd == "sim") {
#ifdef BERTH_WITH_SIM
      return berth::sim::RunSimCommand(rest, std::cout, std::cerr);
#else
      std::cerr << "berth: this build has no simulator\n";
      return 1;
#endif
    }
  }
  return berth::cli::RunCli(args, std::cout, std::cerr);
}
