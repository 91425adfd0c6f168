// Aligned text tables for the CLI's human-readable output.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace berth::cli {

// Prints rows (the first one usually the header) as columns separated by two spaces, each
// as wide as its widest cell; the last column is not padded.
void PrintTable(std::ostream& out, const std::vector<std::vector<std::string>>& rows);

}  // namespace berth::cli
