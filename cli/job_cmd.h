// `berth job`: gang-scheduled training jobs (create from a spec file, list, show, print a task's
// logs, cancel) through the REST API's typed client (api::Client's job methods). Every command
// takes --json and --help; failures exit 1 with the server's message (naming the wrong field),
// usage errors exit 2.
#pragma once

#include "core/flags.h"

namespace berth::cli {

core::Command JobCommand();

}  // namespace berth::cli
