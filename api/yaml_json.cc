#include "api/yaml_json.h"

#include <cerrno>
#include <cstdlib>

#include "core/strings.h"
#include "yaml-cpp/yaml.h"

namespace berth::api {
namespace {

using core::Cat;
using core::Json;

Json ScalarToJson(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return text;  // quoted: always a string
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return nullptr;
  }
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  // Integers and decimals as JSON numbers; anything else ("500m", "64Mi") stays text.
  errno = 0;
  char* end = nullptr;
  long long i = std::strtoll(text.c_str(), &end, 10);
  if (errno == 0 && end == text.c_str() + text.size()) return static_cast<int64_t>(i);
  errno = 0;
  double d = std::strtod(text.c_str(), &end);
  if (errno == 0 && end == text.c_str() + text.size() &&
      text.find_first_of("0123456789") != std::string::npos &&
      text.find_first_not_of("0123456789.-+eE") == std::string::npos) {
    return d;
  }
  return text;
}

absl::StatusOr<Json> NodeToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return Json(nullptr);
    case YAML::NodeType::Scalar:
      return ScalarToJson(node);
    case YAML::NodeType::Sequence: {
      Json arr = Json::array();
      for (const auto& item : node) {
        auto v = NodeToJson(item);
        if (!v.ok()) return v.status();
        arr.push_back(std::move(*v));
      }
      return arr;
    }
    case YAML::NodeType::Map: {
      Json obj = Json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          return absl::InvalidArgumentError(Cat("malformed YAML at line ", kv.first.Mark().line + 1,
                                                ": keys must be plain text"));
        }
        const std::string& key = kv.first.Scalar();
        if (obj.contains(key)) {
          return absl::InvalidArgumentError(Cat("malformed YAML at line ", kv.first.Mark().line + 1,
                                                ": duplicate key \"", key, "\""));
        }
        auto v = NodeToJson(kv.second);
        if (!v.ok()) return v.status();
        obj[key] = std::move(*v);
      }
      return obj;
    }
  }
  return Json(nullptr);
}

}  // namespace

absl::StatusOr<std::vector<Json>> ParseYamlDocuments(std::string_view text) {
  std::vector<Json> out;
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(std::string(text));
    for (const auto& doc : docs) {
      if (doc.IsNull()) continue;  // empty documents between separators
      auto v = NodeToJson(doc);
      if (!v.ok()) return v.status();
      out.push_back(std::move(*v));
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(Cat("malformed YAML at line ", e.mark.line + 1, ", column ",
                                          e.mark.column + 1, ": ", e.msg));
  }
  return out;
}

absl::StatusOr<Json> ParseBody(std::string_view text) {
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) {
    return absl::InvalidArgumentError("request body is empty; send a JSON or YAML object");
  }
  if (text[first] == '{' || text[first] == '[') {
    Json j;
    absl::Status s = core::ParseJson(text, &j);
    if (!s.ok()) return s;
    return j;
  }
  auto docs = ParseYamlDocuments(text);
  if (!docs.ok()) return docs.status();
  if (docs->size() != 1) {
    return absl::InvalidArgumentError(
        Cat("request body holds ", docs->size(), " YAML documents; send exactly one"));
  }
  return std::move(docs->front());
}

}  // namespace berth::api
