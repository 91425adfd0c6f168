// Bounded parsing of request bodies: the one way a body (JSON or YAML) becomes a core::Json, so
// every spec is validated by the same strict decoders whichever format the user wrote. Limits
// are checked while parsing, before the value grows, so a small hostile body (deep nesting, an
// alias bomb, a lone ',') costs bounded memory and time, and a value that comes out always
// serializes: every string and key is valid UTF-8, every number finite and within int64 range.
//
// JSON goes through nlohmann's event (SAX) parser, which keeps its own nesting on the heap. YAML
// goes through libyaml's event parser (not a node tree): anchors, aliases and tags other than
// !!str are refused outright, so a document's value is never larger than its text. The HTTP
// server's max_body_bytes (1 MiB by default) bounds a request body before it gets here.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/json.h"

namespace berth::api {

struct BodyLimits {
  size_t max_bytes = 16 << 20;          // the whole text; a backstop behind the server's limit
  int max_depth = 64;                   // lists and maps inside each other
  size_t max_nodes = 100000;            // values of every kind, over all documents
  size_t max_string_bytes = 256 << 10;  // each string and each key
};

// A body that is JSON when its first non-blank byte is '{' or '[', YAML otherwise; exactly one
// document. Errors are InvalidArgument and read `<kind> "<name>": field "<path>": <problem>`,
// e.g. `workload "x": field "labels.rack": not valid UTF-8`. The name is ctx.name, or else the
// body's own top-level "name" when it was read before the problem; the field part is left out
// when the problem is not inside a field.
absl::StatusOr<core::Json> ParseBody(std::string_view text, const core::JsonContext& ctx,
                                     const BodyLimits& limits = {});

// Every document of a YAML stream (`---` separated; empty ones skipped), under the same rules.
// Plain scalars become numbers, booleans or null when they read as such; quoted and block
// scalars stay strings. A kind in ctx prefixes errors as above; without one they start with the
// field or with "malformed YAML at line L, column C".
absl::StatusOr<std::vector<core::Json>> ParseYamlDocuments(std::string_view text,
                                                           const core::JsonContext& ctx = {},
                                                           const BodyLimits& limits = {});

// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF).
bool IsValidUtf8(std::string_view text);
// The length of the longest well-formed UTF-8 prefix of `text` (text.size() when all of it is).
size_t ValidUtf8Prefix(std::string_view text);

}  // namespace berth::api
