// Reads YAML (or JSON, which is YAML too) into JSON values, so every spec is validated by the
// same strict JSON decoders whichever format the user wrote. Multi-document streams (`---`)
// give one value per document.
#pragma once

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/json.h"

namespace berth::api {

// Plain scalars become numbers, booleans or null when they read as such; quoted scalars stay
// strings. Errors are InvalidArgument with the line and column.
absl::StatusOr<std::vector<core::Json>> ParseYamlDocuments(std::string_view text);

// A body that is JSON when it starts with '{' or '[', YAML otherwise; exactly one document.
absl::StatusOr<core::Json> ParseBody(std::string_view text);

}  // namespace berth::api
