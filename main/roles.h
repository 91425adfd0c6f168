// `berth serve` and `berth agent`: flag parsing and wiring of the long-running roles.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace berth {

int RunServe(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunAgent(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace berth
