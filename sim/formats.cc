#include "sim/formats.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "core/quantity.h"
#include "core/status.h"
#include "core/strings.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace berth::sim {
namespace {

using core::Cat;
using Json = nlohmann::ordered_json;

// ---- CSV -------------------------------------------------------------------------------------

// Splits one CSV line into fields; double quotes may wrap a field and "" inside is a quote.
std::vector<std::string> SplitCsvLine(std::string_view line) {
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field.push_back(c);
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
    } else {
      field.push_back(c);
    }
  }
  fields.push_back(std::move(field));
  for (std::string& f : fields) {
    while (!f.empty() && (f.back() == ' ' || f.back() == '\t')) f.pop_back();
    size_t start = f.find_first_not_of(" \t");
    f.erase(0, start == std::string::npos ? f.size() : start);
  }
  return fields;
}

std::string CsvField(std::string_view s) {
  if (s.find_first_of(",\"\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// A CSV table whose columns are found by header name.
struct CsvTable {
  std::vector<std::string> header;
  struct Row {
    int line = 0;
    std::vector<std::string> cells;
  };
  std::vector<Row> rows;

  int Column(std::string_view name) const {
    for (size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name) return static_cast<int>(i);
    }
    return -1;
  }
};

// Reads CSV text. When the first line does not start with one of `header_markers`, the file has
// no header and `default_header` names its columns by position.
CsvTable ReadCsv(std::string_view text, const std::vector<std::string>& default_header,
                 std::string_view header_marker) {
  CsvTable table;
  int line_no = 0;
  bool first = true;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) {
      if (end == text.size()) break;
      continue;
    }
    std::vector<std::string> cells = SplitCsvLine(line);
    if (first) {
      first = false;
      if (!cells.empty() && !cells[0].empty() && cells[0].front() == '\xEF') {
        cells[0].erase(0, 3);  // UTF-8 byte order mark
      }
      if (!cells.empty() && cells[0] == header_marker) {
        table.header = std::move(cells);
        continue;
      }
      table.header = default_header;
    }
    table.rows.push_back({line_no, std::move(cells)});
    if (end == text.size()) break;
  }
  if (table.header.empty()) table.header = default_header;
  return table;
}

absl::StatusOr<int64_t> ParseInt(std::string_view text) {
  int64_t v = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, v);
  if (ec == std::errc() && ptr != end && *ptr == '.') {
    // Integral values written as decimals ("1200.0") are accepted; fractions are not.
    const char* p = ptr + 1;
    while (p != end && *p == '0') ++p;
    if (p == end && ptr + 1 != end) return v;
  }
  if (ec != std::errc() || ptr != end || text.empty()) {
    return absl::InvalidArgumentError(Cat("must be an integer, got \"", text, "\""));
  }
  return v;
}

// Context for error messages: `nodes.csv line 4: host "n1": `.
std::string Where(std::string_view source, int line) {
  if (line <= 0) return Cat(source, ": ");
  return Cat(source, " line ", line, ": ");
}

absl::Status Prefix(std::string_view prefix, const absl::Status& s) {
  return absl::Status(s.code(), Cat(prefix, std::string(s.message())));
}

absl::StatusOr<int64_t> IntField(std::string_view kind, std::string_view name,
                                 std::string_view field, std::string_view text) {
  auto v = ParseInt(text);
  if (!v.ok()) return core::FieldError(kind, name, field, std::string(v.status().message()));
  return *v;
}

// Optional integer: empty text gives `missing`.
absl::StatusOr<int64_t> OptIntField(std::string_view kind, std::string_view name,
                                    std::string_view field, std::string_view text,
                                    int64_t missing) {
  if (text.empty()) return missing;
  return IntField(kind, name, field, text);
}

std::vector<std::string> ModelSet(std::string_view spec) {
  std::vector<std::string> models;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t end = spec.find('|', pos);
    if (end == std::string_view::npos) end = spec.size();
    std::string m(spec.substr(pos, end - pos));
    while (!m.empty() && m.back() == ' ') m.pop_back();
    while (!m.empty() && m.front() == ' ') m.erase(0, 1);
    if (!m.empty()) models.push_back(std::move(m));
    pos = end + 1;
  }
  std::sort(models.begin(), models.end());
  models.erase(std::unique(models.begin(), models.end()), models.end());
  return models;
}

std::string JoinModels(const std::vector<std::string>& models) {
  std::string out;
  for (size_t i = 0; i < models.size(); ++i) {
    if (i > 0) out.push_back('|');
    out += models[i];
  }
  return out;
}

std::string TimeCell(int64_t t) { return t == kNoTime ? "" : Cat(t); }

// ---- Alibaba GPU v2023 -----------------------------------------------------------------------

const std::vector<std::string>& AlibabaNodeColumns() {
  static const auto* cols =
      new std::vector<std::string>{"sn", "cpu_milli", "memory_mib", "gpu", "model"};
  return *cols;
}
const std::vector<std::string>& AlibabaPodColumns() {
  static const auto* cols = new std::vector<std::string>{
      "name", "cpu_milli", "memory_mib",    "num_gpu",       "gpu_milli",     "gpu_spec",
      "qos",  "pod_phase", "creation_time", "deletion_time", "scheduled_time"};
  return *cols;
}

// Cell `column` of `row`, or "" when the column or the cell is absent.
std::string_view Cell(const CsvTable& table, const CsvTable::Row& row, std::string_view column) {
  int c = table.Column(column);
  if (c < 0 || static_cast<size_t>(c) >= row.cells.size()) return {};
  return row.cells[c];
}

absl::Status RequireColumns(const CsvTable& table, const std::vector<std::string>& required,
                            std::string_view source) {
  for (const std::string& col : required) {
    if (table.Column(col) < 0) {
      return absl::InvalidArgumentError(Cat(source, ": missing column \"", col, "\""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<SimCluster> ParseAlibabaNodes(std::string_view text, std::string_view source) {
  CsvTable table = ReadCsv(text, AlibabaNodeColumns(), "sn");
  BERTH_RETURN_IF_ERROR(RequireColumns(table, {"sn", "cpu_milli", "memory_mib", "gpu"}, source));
  SimCluster cluster;
  for (const CsvTable::Row& row : table.rows) {
    std::string where = Where(source, row.line);
    SimHost h;
    h.name = std::string(Cell(table, row, "sn"));
    auto fill = [&]() -> absl::Status {
      BERTH_ASSIGN_OR_RETURN(h.cpu_milli,
                             IntField("host", h.name, "cpu_milli", Cell(table, row, "cpu_milli")));
      BERTH_ASSIGN_OR_RETURN(
          h.memory_mib, IntField("host", h.name, "memory_mib", Cell(table, row, "memory_mib")));
      BERTH_ASSIGN_OR_RETURN(int64_t gpus,
                             OptIntField("host", h.name, "gpu", Cell(table, row, "gpu"), 0));
      h.gpu_count = static_cast<int>(gpus);
      if (gpus > 1 << 20) return core::FieldError("host", h.name, "gpu", "is too large");
      h.gpu_model = std::string(Cell(table, row, "model"));
      return ValidateHost(h);
    };
    if (absl::Status s = fill(); !s.ok()) return Prefix(where, s);
    cluster.hosts.push_back(std::move(h));
  }
  return cluster;
}

absl::StatusOr<SimTrace> ParseAlibabaPods(std::string_view text, std::string_view source) {
  CsvTable table = ReadCsv(text, AlibabaPodColumns(), "name");
  BERTH_RETURN_IF_ERROR(
      RequireColumns(table, {"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"}, source));
  SimTrace trace;
  for (const CsvTable::Row& row : table.rows) {
    SimRequest r;
    r.name = std::string(Cell(table, row, "name"));
    auto fill = [&]() -> absl::Status {
      const std::string& n = r.name;
      BERTH_ASSIGN_OR_RETURN(r.cpu_milli,
                             IntField("pod", n, "cpu_milli", Cell(table, row, "cpu_milli")));
      BERTH_ASSIGN_OR_RETURN(r.memory_mib,
                             IntField("pod", n, "memory_mib", Cell(table, row, "memory_mib")));
      BERTH_ASSIGN_OR_RETURN(int64_t num_gpu,
                             OptIntField("pod", n, "num_gpu", Cell(table, row, "num_gpu"), 0));
      if (num_gpu > 1 << 20) return core::FieldError("pod", n, "num_gpu", "is too large");
      r.num_gpu = static_cast<int>(num_gpu);
      BERTH_ASSIGN_OR_RETURN(r.gpu_milli,
                             OptIntField("pod", n, "gpu_milli", Cell(table, row, "gpu_milli"), 0));
      // A pod that asks for no GPU carries no share, whatever the share column says.
      if (r.num_gpu == 0) r.gpu_milli = 0;
      r.gpu_models = ModelSet(Cell(table, row, "gpu_spec"));
      r.qos = std::string(Cell(table, row, "qos"));
      r.phase = std::string(Cell(table, row, "pod_phase"));
      BERTH_ASSIGN_OR_RETURN(
          r.creation_time,
          OptIntField("pod", n, "creation_time", Cell(table, row, "creation_time"), kNoTime));
      BERTH_ASSIGN_OR_RETURN(
          r.deletion_time,
          OptIntField("pod", n, "deletion_time", Cell(table, row, "deletion_time"), kNoTime));
      BERTH_ASSIGN_OR_RETURN(
          r.scheduled_time,
          OptIntField("pod", n, "scheduled_time", Cell(table, row, "scheduled_time"), kNoTime));
      return ValidateRequest(r);
    };
    if (absl::Status s = fill(); !s.ok()) return Prefix(Where(source, row.line), s);
    trace.requests.push_back(std::move(r));
  }
  return trace;
}

std::string FormatAlibabaNodes(const SimCluster& cluster) {
  std::string out = "sn,cpu_milli,memory_mib,gpu,model\n";
  for (const SimHost& h : cluster.hosts) {
    out += Cat(CsvField(h.name), ",", h.cpu_milli, ",", h.memory_mib, ",", h.gpu_count, ",",
               CsvField(h.gpu_model), "\n");
  }
  return out;
}

std::string FormatAlibabaPods(const SimTrace& trace) {
  std::string out =
      "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
      "deletion_time,scheduled_time\n";
  for (const SimRequest& r : trace.requests) {
    out += Cat(CsvField(r.name), ",", r.cpu_milli, ",", r.memory_mib, ",", r.num_gpu, ",",
               r.gpu_milli, ",", CsvField(JoinModels(r.gpu_models)), ",", CsvField(r.qos), ",",
               CsvField(r.phase), ",", TimeCell(r.creation_time), ",", TimeCell(r.deletion_time),
               ",", TimeCell(r.scheduled_time), "\n");
  }
  return out;
}

// ---- Berth's own formats ---------------------------------------------------------------------
// YAML and JSON share one reader: YAML is converted to JSON first (scalars become strings), and
// every field reader accepts a number or a string.

Json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence: {
      Json arr = Json::array();
      for (const auto& item : node) arr.push_back(YamlToJson(item));
      return arr;
    }
    case YAML::NodeType::Map: {
      Json obj = Json::object();
      for (const auto& kv : node) obj[kv.first.as<std::string>()] = YamlToJson(kv.second);
      return obj;
    }
    case YAML::NodeType::Scalar:
      return node.Scalar();
    default:
      return nullptr;
  }
}

absl::StatusOr<Json> ParseDocument(std::string_view text, TraceFormat format,
                                   std::string_view source) {
  if (format == TraceFormat::kBerthYaml) {
    try {
      return YamlToJson(YAML::Load(std::string(text)));
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(Cat(source, ": invalid YAML: ", e.what()));
    }
  }
  Json doc = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError(Cat(source, ": invalid JSON"));
  return doc;
}

// Scalar as text: strings as they are, numbers in their JSON spelling; nullopt when absent.
absl::StatusOr<std::optional<std::string>> ScalarText(const Json& obj, std::string_view key,
                                                      std::string_view kind,
                                                      std::string_view name) {
  auto it = obj.find(std::string(key));
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number() || it->is_boolean()) return it->dump();
  return core::FieldError(kind, name, key, "must be a scalar");
}

struct FieldReader {
  const Json& obj;
  std::string_view kind;
  std::string name;

  absl::StatusOr<std::optional<std::string>> Text(std::string_view key) const {
    return ScalarText(obj, key, kind, name);
  }
  absl::StatusOr<int64_t> Int(std::string_view key, int64_t missing) const {
    BERTH_ASSIGN_OR_RETURN(auto t, Text(key));
    if (!t || t->empty()) return missing;
    return IntField(kind, name, key, *t);
  }
  absl::StatusOr<int64_t> Cpu(std::string_view key) const {
    BERTH_ASSIGN_OR_RETURN(auto t, Text(key));
    if (!t) return 0;
    auto v = core::ParseCpu(*t);
    if (!v.ok()) return core::FieldError(kind, name, key, std::string(v.status().message()));
    return v->value();
  }
  absl::StatusOr<int64_t> Size(std::string_view key) const {
    BERTH_ASSIGN_OR_RETURN(auto t, Text(key));
    if (!t) return 0;
    auto v = core::ParseSizeMiB(*t);
    if (!v.ok()) return core::FieldError(kind, name, key, std::string(v.status().message()));
    return *v;
  }
  absl::StatusOr<std::string> String(std::string_view key) const {
    BERTH_ASSIGN_OR_RETURN(auto t, Text(key));
    return t ? *t : std::string();
  }
  // A list of strings, or one string with '|' between items.
  absl::StatusOr<std::vector<std::string>> Models(std::string_view key) const {
    auto it = obj.find(std::string(key));
    if (it == obj.end() || it->is_null()) return std::vector<std::string>{};
    if (it->is_string()) return ModelSet(it->get<std::string>());
    if (!it->is_array()) return core::FieldError(kind, name, key, "must be a list of GPU models");
    std::string joined;
    for (const Json& m : *it) {
      if (!m.is_string()) {
        return core::FieldError(kind, name, key, "must be a list of GPU models");
      }
      joined += m.get<std::string>() + "|";
    }
    return ModelSet(joined);
  }
};

absl::StatusOr<std::vector<SimHost>> ReadHost(const FieldReader& f) {
  SimHost h;
  h.name = f.name;
  BERTH_ASSIGN_OR_RETURN(h.cpu_milli, f.Cpu("cpu"));
  BERTH_ASSIGN_OR_RETURN(h.memory_mib, f.Size("memory"));
  BERTH_ASSIGN_OR_RETURN(int64_t gpus, f.Int("gpus", 0));
  if (gpus > 1 << 20) return core::FieldError("host", h.name, "gpus", "is too large");
  h.gpu_count = static_cast<int>(gpus);
  BERTH_ASSIGN_OR_RETURN(h.gpu_model, f.String("gpu_model"));
  BERTH_ASSIGN_OR_RETURN(h.gpu_memory_mib, f.Size("gpu_memory"));
  BERTH_ASSIGN_OR_RETURN(int64_t count, f.Int("count", 0));
  if (count < 0 || count > 1000000) {
    return core::FieldError("host", h.name, "count",
                            Cat("must be between 0 and 1000000, got ", count));
  }
  auto labels = f.obj.find("labels");
  if (labels != f.obj.end() && !labels->is_null()) {
    if (labels->is_string()) {
      // CSV spelling: "zone=a;rack=r1".
      std::string text = labels->get<std::string>();
      size_t pos = 0;
      while (pos < text.size()) {
        size_t end = text.find(';', pos);
        if (end == std::string::npos) end = text.size();
        std::string item = text.substr(pos, end - pos);
        size_t eq = item.find('=');
        if (eq == std::string::npos || eq == 0) {
          return core::FieldError(
              "host", h.name, "labels",
              Cat("must be key=value pairs separated by ';', got \"", text, "\""));
        }
        h.labels[item.substr(0, eq)] = item.substr(eq + 1);
        pos = end + 1;
      }
    } else if (labels->is_object()) {
      for (auto it = labels->begin(); it != labels->end(); ++it) {
        if (!it->is_string()) {
          return core::FieldError("host", h.name, Cat("labels.", it.key()), "must be a string");
        }
        h.labels[it.key()] = it->get<std::string>();
      }
    } else {
      return core::FieldError("host", h.name, "labels", "must be a map of strings");
    }
  }
  std::vector<SimHost> out;
  if (count == 0) {
    BERTH_RETURN_IF_ERROR(ValidateHost(h));
    out.push_back(std::move(h));
    return out;
  }
  // `count: N` stands for N identical hosts NAME-1 ... NAME-N.
  for (int64_t i = 1; i <= count; ++i) {
    SimHost copy = h;
    copy.name = Cat(h.name, "-", i);
    BERTH_RETURN_IF_ERROR(ValidateHost(copy));
    out.push_back(std::move(copy));
  }
  return out;
}

absl::StatusOr<SimRequest> ReadRequest(const FieldReader& f) {
  SimRequest r;
  r.name = f.name;
  BERTH_ASSIGN_OR_RETURN(r.cpu_milli, f.Cpu("cpu"));
  BERTH_ASSIGN_OR_RETURN(r.memory_mib, f.Size("memory"));
  BERTH_ASSIGN_OR_RETURN(int64_t gpus, f.Int("gpus", 0));
  if (gpus > 1 << 20) return core::FieldError("request", r.name, "gpus", "is too large");
  r.num_gpu = static_cast<int>(gpus);
  BERTH_ASSIGN_OR_RETURN(r.gpu_milli, f.Int("gpu_milli", r.num_gpu > 0 ? 1000 : 0));
  BERTH_ASSIGN_OR_RETURN(r.gpu_models, f.Models("gpu_models"));
  BERTH_ASSIGN_OR_RETURN(int64_t priority, f.Int("priority", 0));
  if (priority < -1000000 || priority > 1000000) {
    return core::FieldError("request", r.name, "priority",
                            Cat("must be between -1000000 and 1000000, got ", priority));
  }
  r.priority = static_cast<int>(priority);
  BERTH_ASSIGN_OR_RETURN(r.qos, f.String("qos"));
  BERTH_ASSIGN_OR_RETURN(r.creation_time, f.Int("arrival", kNoTime));
  BERTH_ASSIGN_OR_RETURN(r.scheduled_time, f.Int("start", kNoTime));
  BERTH_ASSIGN_OR_RETURN(r.deletion_time, f.Int("departure", kNoTime));
  BERTH_RETURN_IF_ERROR(ValidateRequest(r));
  return r;
}

// Berth CSV: each row becomes a JSON object of strings keyed by header, so the YAML/JSON field
// readers apply unchanged.
absl::StatusOr<std::vector<std::pair<int, Json>>> CsvObjects(std::string_view text,
                                                             std::string_view source) {
  CsvTable table = ReadCsv(text, {}, "name");
  if (table.header.empty() || table.header[0] != "name") {
    return absl::InvalidArgumentError(Cat(source,
                                          ": the first line must be a header starting "
                                          "with \"name\""));
  }
  std::vector<std::pair<int, Json>> out;
  for (const CsvTable::Row& row : table.rows) {
    if (row.cells.size() > table.header.size()) {
      return absl::InvalidArgumentError(Cat(Where(source, row.line), "has ", row.cells.size(),
                                            " fields, the header has ", table.header.size()));
    }
    Json obj = Json::object();
    for (size_t i = 0; i < row.cells.size(); ++i) {
      if (!row.cells[i].empty()) obj[table.header[i]] = row.cells[i];
    }
    out.emplace_back(row.line, std::move(obj));
  }
  return out;
}

// The list under `key` of a YAML/JSON document, each item with its position for messages.
absl::StatusOr<std::vector<std::pair<int, Json>>> DocumentItems(std::string_view text,
                                                                TraceFormat format,
                                                                std::string_view source,
                                                                std::string_view key) {
  if (format == TraceFormat::kBerthCsv) return CsvObjects(text, source);
  BERTH_ASSIGN_OR_RETURN(Json doc, ParseDocument(text, format, source));
  if (!doc.is_object() || !doc.contains(std::string(key)) || !doc[std::string(key)].is_array()) {
    return absl::InvalidArgumentError(
        Cat(source, ": the document must be a map with a list \"", key, "\""));
  }
  std::vector<std::pair<int, Json>> out;
  int i = 0;
  for (Json& item : doc[std::string(key)]) {
    if (!item.is_object()) {
      return absl::InvalidArgumentError(Cat(source, ": ", key, "[", i, "] must be a map"));
    }
    out.emplace_back(-i, std::move(item));
    ++i;
  }
  return out;
}

std::string ItemWhere(std::string_view source, std::string_view key, int pos) {
  if (pos > 0) return Where(source, pos);
  return Cat(source, ": ", key, "[", -pos, "]: ");
}

std::string YamlQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// Host or request as an ordered map of strings/numbers, the model for YAML, JSON and CSV output.
Json HostObject(const SimHost& h) {
  Json o = Json::object();
  o["name"] = h.name;
  o["cpu"] = core::FormatCpu(core::MilliCpu(h.cpu_milli));
  o["memory"] = core::FormatMiB(h.memory_mib);
  o["gpus"] = h.gpu_count;
  if (!h.gpu_model.empty()) o["gpu_model"] = h.gpu_model;
  if (h.gpu_memory_mib > 0) o["gpu_memory"] = core::FormatMiB(h.gpu_memory_mib);
  if (!h.labels.empty()) {
    Json labels = Json::object();
    for (const auto& [k, v] : h.labels) labels[k] = v;
    o["labels"] = labels;
  }
  return o;
}

Json RequestObject(const SimRequest& r) {
  Json o = Json::object();
  o["name"] = r.name;
  o["cpu"] = core::FormatCpu(core::MilliCpu(r.cpu_milli));
  o["memory"] = core::FormatMiB(r.memory_mib);
  o["gpus"] = r.num_gpu;
  if (r.num_gpu > 0) o["gpu_milli"] = r.gpu_milli;
  if (!r.gpu_models.empty()) o["gpu_models"] = r.gpu_models;
  if (r.priority != 0) o["priority"] = r.priority;
  if (!r.qos.empty()) o["qos"] = r.qos;
  if (r.creation_time != kNoTime) o["arrival"] = r.creation_time;
  if (r.scheduled_time != kNoTime) o["start"] = r.scheduled_time;
  if (r.deletion_time != kNoTime) o["departure"] = r.deletion_time;
  return o;
}

std::string YamlValue(const Json& v) {
  if (v.is_string()) return YamlQuote(v.get<std::string>());
  if (v.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) {
      if (i > 0) out += ", ";
      out += YamlValue(v[i]);
    }
    return out + "]";
  }
  if (v.is_object()) {
    std::string out = "{";
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!first) out += ", ";
      first = false;
      out += Cat(YamlQuote(it.key()), ": ", YamlValue(*it));
    }
    return out + "}";
  }
  return v.dump();
}

std::string FormatYaml(std::string_view key, const std::vector<Json>& items) {
  std::string out = Cat(key, ":\n");
  if (items.empty()) return Cat(key, ": []\n");
  for (const Json& item : items) {
    bool first = true;
    for (auto it = item.begin(); it != item.end(); ++it) {
      out += Cat(first ? "- " : "  ", it.key(), ": ", YamlValue(*it), "\n");
      first = false;
    }
  }
  return out;
}

std::string CsvCell(const Json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return CsvField(v.get<std::string>());
  if (v.is_array()) {
    std::vector<std::string> items;
    for (const Json& i : v) items.push_back(i.get<std::string>());
    return CsvField(JoinModels(items));
  }
  if (v.is_object()) {
    std::string out;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!out.empty()) out.push_back(';');
      out += Cat(it.key(), "=", it->get<std::string>());
    }
    return CsvField(out);
  }
  return v.dump();
}

std::string FormatCsv(const std::vector<std::string>& columns, const std::vector<Json>& items) {
  std::string out;
  for (size_t i = 0; i < columns.size(); ++i) out += Cat(i ? "," : "", columns[i]);
  out += "\n";
  for (const Json& item : items) {
    for (size_t i = 0; i < columns.size(); ++i) {
      auto it = item.find(columns[i]);
      out += Cat(i ? "," : "", it == item.end() ? std::string() : CsvCell(*it));
    }
    out += "\n";
  }
  return out;
}

std::string FormatBerth(std::string_view key, const std::vector<Json>& items, TraceFormat format,
                        const std::vector<std::string>& csv_columns) {
  switch (format) {
    case TraceFormat::kBerthYaml:
      return FormatYaml(key, items);
    case TraceFormat::kBerthCsv:
      return FormatCsv(csv_columns, items);
    default: {
      Json doc = Json::object();
      doc[std::string(key)] = items;
      return doc.dump(2) + "\n";
    }
  }
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

int64_t SimCluster::TotalGpuMilli() const { return TotalGpus() * 1000; }

int64_t SimCluster::TotalGpus() const {
  int64_t total = 0;
  for (const SimHost& h : hosts) total += h.gpu_count;
  return total;
}

absl::StatusOr<TraceFormat> ParseTraceFormat(std::string_view text) {
  if (text == "auto" || text == "berth") return TraceFormat::kAuto;
  if (text == "yaml") return TraceFormat::kBerthYaml;
  if (text == "json") return TraceFormat::kBerthJson;
  if (text == "csv") return TraceFormat::kBerthCsv;
  if (text == "alibaba-gpu-2023") return TraceFormat::kAlibabaGpu2023;
  return absl::InvalidArgumentError(
      Cat("--format must be one of auto, yaml, json, csv, alibaba-gpu-2023, got \"", text, "\""));
}

std::string_view TraceFormatName(TraceFormat format) {
  switch (format) {
    case TraceFormat::kAuto:
      return "auto";
    case TraceFormat::kBerthYaml:
      return "yaml";
    case TraceFormat::kBerthJson:
      return "json";
    case TraceFormat::kBerthCsv:
      return "csv";
    case TraceFormat::kAlibabaGpu2023:
      return "alibaba-gpu-2023";
  }
  return "auto";
}

TraceFormat DetectFormat(std::string_view path, std::string_view contents, TraceFormat requested) {
  if (requested != TraceFormat::kAuto) return requested;
  if (EndsWith(path, ".yaml") || EndsWith(path, ".yml")) return TraceFormat::kBerthYaml;
  if (EndsWith(path, ".json")) return TraceFormat::kBerthJson;
  std::string_view first = contents.substr(0, contents.find('\n'));
  if (first.find("cpu_milli") != std::string_view::npos) return TraceFormat::kAlibabaGpu2023;
  size_t lead = contents.find_first_not_of(" \t\r\n");
  if (lead != std::string_view::npos && (contents[lead] == '{' || contents[lead] == '[')) {
    return TraceFormat::kBerthJson;
  }
  if (first.find(',') != std::string_view::npos) return TraceFormat::kBerthCsv;
  return TraceFormat::kBerthYaml;
}

absl::Status ValidateHost(const SimHost& h) {
  if (h.name.empty()) return absl::InvalidArgumentError("host: name must not be empty");
  if (h.cpu_milli < 0) {
    return core::FieldError("host", h.name, "cpu", Cat("must be >= 0, got ", h.cpu_milli));
  }
  if (h.memory_mib < 0) {
    return core::FieldError("host", h.name, "memory", Cat("must be >= 0, got ", h.memory_mib));
  }
  if (h.gpu_count < 0) {
    return core::FieldError("host", h.name, "gpus", Cat("must be >= 0, got ", h.gpu_count));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequest(const SimRequest& r) {
  if (r.name.empty()) return absl::InvalidArgumentError("request: name must not be empty");
  if (r.cpu_milli < 0) {
    return core::FieldError("request", r.name, "cpu", Cat("must be >= 0, got ", r.cpu_milli));
  }
  if (r.memory_mib < 0) {
    return core::FieldError("request", r.name, "memory", Cat("must be >= 0, got ", r.memory_mib));
  }
  if (r.num_gpu < 0) {
    return core::FieldError("request", r.name, "num_gpu", Cat("must be >= 0, got ", r.num_gpu));
  }
  if (r.num_gpu > 0 && (r.gpu_milli < 1 || r.gpu_milli > 1000)) {
    return core::FieldError("request", r.name, "gpu_milli",
                            Cat("must be between 1 and 1000 when num_gpu > 0, got ", r.gpu_milli));
  }
  if (r.num_gpu > 1 && r.gpu_milli != 1000) {
    return core::FieldError(
        "request", r.name, "gpu_milli",
        Cat("must be 1000 when num_gpu > 1 (only single-GPU requests share a device), got ",
            r.gpu_milli));
  }
  if (r.creation_time != kNoTime && r.deletion_time != kNoTime &&
      r.deletion_time < r.creation_time) {
    return core::FieldError(
        "request", r.name, "deletion_time",
        Cat("must not be before creation_time ", r.creation_time, ", got ", r.deletion_time));
  }
  return absl::OkStatus();
}

absl::StatusOr<SimCluster> ParseCluster(std::string_view text, TraceFormat format,
                                        std::string_view source) {
  format = DetectFormat(source, text, format);
  if (format == TraceFormat::kAlibabaGpu2023) return ParseAlibabaNodes(text, source);
  BERTH_ASSIGN_OR_RETURN(auto items, DocumentItems(text, format, source, "hosts"));
  SimCluster cluster;
  for (const auto& [pos, obj] : items) {
    auto name = ScalarText(obj, "name", "host", "");
    if (!name.ok()) return Prefix(ItemWhere(source, "hosts", pos), name.status());
    auto hosts = ReadHost(FieldReader{obj, "host", name->value_or("")});
    if (!hosts.ok()) return Prefix(ItemWhere(source, "hosts", pos), hosts.status());
    for (SimHost& h : *hosts) cluster.hosts.push_back(std::move(h));
  }
  return cluster;
}

absl::StatusOr<SimTrace> ParseTrace(std::string_view text, TraceFormat format,
                                    std::string_view source) {
  format = DetectFormat(source, text, format);
  if (format == TraceFormat::kAlibabaGpu2023) return ParseAlibabaPods(text, source);
  BERTH_ASSIGN_OR_RETURN(auto items, DocumentItems(text, format, source, "requests"));
  SimTrace trace;
  for (const auto& [pos, obj] : items) {
    auto name = ScalarText(obj, "name", "request", "");
    if (!name.ok()) return Prefix(ItemWhere(source, "requests", pos), name.status());
    auto r = ReadRequest(FieldReader{obj, "request", name->value_or("")});
    if (!r.ok()) return Prefix(ItemWhere(source, "requests", pos), r.status());
    trace.requests.push_back(std::move(*r));
  }
  return trace;
}

absl::StatusOr<SimCluster> LoadCluster(const std::string& path, TraceFormat format) {
  BERTH_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseCluster(text, format, path);
}

absl::StatusOr<SimTrace> LoadTrace(const std::string& path, TraceFormat format) {
  BERTH_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseTrace(text, format, path);
}

std::string FormatCluster(const SimCluster& cluster, TraceFormat format) {
  if (format == TraceFormat::kAlibabaGpu2023) return FormatAlibabaNodes(cluster);
  std::vector<Json> items;
  for (const SimHost& h : cluster.hosts) items.push_back(HostObject(h));
  return FormatBerth("hosts", items, format,
                     {"name", "cpu", "memory", "gpus", "gpu_model", "gpu_memory", "labels"});
}

std::string FormatTrace(const SimTrace& trace, TraceFormat format) {
  if (format == TraceFormat::kAlibabaGpu2023) return FormatAlibabaPods(trace);
  std::vector<Json> items;
  for (const SimRequest& r : trace.requests) items.push_back(RequestObject(r));
  return FormatBerth("requests", items, format,
                     {"name", "cpu", "memory", "gpus", "gpu_milli", "gpu_models", "priority", "qos",
                      "arrival", "start", "departure"});
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(Cat("cannot open \"", path, "\""));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(Cat("cannot read \"", path, "\""));
  return ss.str();
}

absl::Status WriteFile(const std::string& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::PermissionDeniedError(Cat("cannot create \"", path, "\""));
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) return absl::DataLossError(Cat("cannot write \"", path, "\""));
  return absl::OkStatus();
}

}  // namespace berth::sim
