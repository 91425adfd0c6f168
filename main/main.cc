// The `berth` binary: the only code that knows every concrete type. Its command table below is
// the one list of what `berth` can do; `berth --help` is rendered from it, in this order.
#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/image_cmd.h"
#include "cli/job_cmd.h"
#include "cli/rebalance_cmd.h"
#include "cli/service_cmd.h"
#include "cli/storenet_cmd.h"
#include "core/flags.h"
#include "main/admin_cmd.h"
#include "main/roles.h"
#include "sim/sim_command.h"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  using namespace berth;
  const core::Command root = cli::RootCommand({
      // Server and agents.
      ServeCommand(),
      AgentCommand(),
      AdminCommand(),
      sim::SimCommand(),
      // Workloads and images.
      cli::WorkloadCommand(),
      cli::ServiceCommand(),
      cli::JobCommand(),
      cli::VmCommand(),
      cli::ImageCommand(),
      // Disks and networks.
      cli::DiskCommand(),
      cli::NetCommand(),
      cli::SecgroupCommand(),
      cli::PortfwdCommand(),
      // Cluster.
      cli::HostCommand(),
      cli::TenantCommand(),
      cli::RebalanceCommand(),
      cli::EventsCommand(),
      cli::StatusCommand(),
      cli::TopCommand(),
      cli::VersionCommand(),
  });
  return core::Run(root, std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
