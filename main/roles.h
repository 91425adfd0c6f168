// `berth serve` and `berth agent`: their flags and the wiring of the long-running roles.
#pragma once

#include "core/flags.h"

namespace berth {

// The `serve` command: the API server, with a local agent in --dev mode.
core::Command ServeCommand();
// The `agent` command: the agent of this host, joining a server.
core::Command AgentCommand();

}  // namespace berth
