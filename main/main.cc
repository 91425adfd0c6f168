// The `berth` binary: the only code that knows every concrete type. Its command table below is
// the one list of what `berth` can do; `berth --help` is rendered from it.
#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "core/flags.h"
#include "main/roles.h"
#include "sim/sim_command.h"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<berth::core::Command> commands = {berth::ServeCommand(), berth::AgentCommand(),
                                                berth::sim::SimCommand()};
  for (berth::core::Command& c : berth::cli::ClientCommands()) commands.push_back(std::move(c));
  const berth::core::Command root = berth::cli::RootCommand(std::move(commands));
  return berth::core::Run(root, std::vector<std::string>(argv + 1, argv + argc), std::cout,
                          std::cerr);
}
