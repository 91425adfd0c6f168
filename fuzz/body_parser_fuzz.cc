// Fuzzes the request body parser (api/body_parser.h) with arbitrary bytes. Beyond "no crash, no
// leak, no sanitizer report", it checks what the parser promises of every value it returns:
// within the depth limit, serializable without throwing, and read back the same as JSON.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/body_parser.h"

namespace {

using berth::core::Json;

int Depth(const Json& j) {
  if (!j.is_structured()) return 0;
  int deepest = 0;
  for (const Json& v : j) deepest = std::max(deepest, Depth(v));
  return deepest + 1;
}

[[noreturn]] void Die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "body_parser_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

void Check(const Json& v, const berth::api::BodyLimits& limits) {
  if (Depth(v) > limits.max_depth) Die("value deeper than the limit", std::to_string(Depth(v)));
  std::string text = v.dump();  // throws (and so aborts the fuzzer) on invalid UTF-8
  auto again = berth::api::ParseBody(v.is_structured() ? text : "[" + text + "]", {"fuzz", ""});
  if (!again.ok())
    Die("a value it produced does not parse back", std::string(again.status().message()));
  if (v.is_structured() ? *again != v : (*again)[0] != v) Die("round trip changed the value", text);
  std::string preview = berth::core::Preview(v);
  if (preview.size() > 64 + 3) Die("preview longer than promised", preview);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  berth::api::BodyLimits limits;
  limits.max_nodes = 20000;  // keeps each run fast; the limit logic is the same at any size
  auto body = berth::api::ParseBody(text, {"workload", ""}, limits);
  if (body.ok()) {
    Check(*body, limits);
  } else if (body.status().code() != absl::StatusCode::kInvalidArgument) {
    Die("unexpected error code", body.status().ToString());
  }
  auto docs = berth::api::ParseYamlDocuments(text, {}, limits);
  if (docs.ok()) {
    for (const Json& d : *docs) Check(d, limits);
  }
  return 0;
}
