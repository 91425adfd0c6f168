// `berth service`: replicated workloads (create from a spec file, list, show, scale, delete)
// through the REST API's typed client (api::Client's service methods). Every command takes
// --json and --help; failures exit 1 with the server's message (naming the wrong field), usage
// errors exit 2.
#pragma once

#include "core/flags.h"

namespace berth::cli {

core::Command ServiceCommand();

}  // namespace berth::cli
