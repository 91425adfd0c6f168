#include "api/body_parser.h"

#include <yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

#include "core/status.h"
#include "core/strings.h"

namespace berth::api {
namespace {

using core::Cat;
using core::Json;

// Floats past this magnitude do not convert to int64, which decoders may do.
constexpr double kMaxNumber = 9223372036854775807.0;
constexpr std::string_view kOutOfRange =
    "number is out of range (numbers must lie within +-9.2e18)";
// Field paths in messages are cut here: keys may be long, nesting deep.
constexpr size_t kMaxPathBytes = 200;

// Builds one value at a time from parse events, checking every limit as the value grows. The
// first failure is kept; every call after it returns false.
class TreeBuilder {
 public:
  TreeBuilder(const core::JsonContext& ctx, const BodyLimits& limits)
      : ctx_(ctx), limits_(limits) {}

  bool BeginContainer(bool object) {
    if (!Count()) return false;
    if (static_cast<int>(stack_.size()) >= limits_.max_depth) {
      return Fail(Cat("nests lists and maps more than ", limits_.max_depth, " deep"));
    }
    stack_.push_back(Frame{object ? Json::object() : Json::array(), {}, false});
    return true;
  }

  bool EndContainer() {
    Frame top = std::move(stack_.back());
    stack_.pop_back();
    return Insert(std::move(top.value));
  }

  // True while the innermost container is a map waiting for its next key.
  bool ExpectingKey() const {
    return !stack_.empty() && stack_.back().value.is_object() && !stack_.back().has_key;
  }

  bool Key(std::string key) {
    if (!CheckString(key, "key")) return false;
    Frame& top = stack_.back();
    if (top.value.contains(key)) return Fail(Cat("duplicate key \"", key, "\""));
    top.key = std::move(key);
    top.has_key = true;
    return true;
  }

  bool String(std::string s) {
    if (!CheckString(s, "string")) return false;
    if (!Count()) return false;
    return Insert(Json(std::move(s)));
  }

  bool Number(double d) {
    if (!std::isfinite(d) || std::fabs(d) > kMaxNumber) return Fail(kOutOfRange);
    if (!Count()) return false;
    return Insert(Json(d));
  }

  bool Scalar(Json v) {
    if (!Count()) return false;
    return Insert(std::move(v));
  }

  // Records `problem` at the current field and returns false.
  bool Fail(std::string_view problem) {
    if (error_.ok()) {
      std::string path = Path();
      std::string field = path.empty() ? std::string() : Cat("field \"", path, "\": ");
      error_ = absl::InvalidArgumentError(Cat(Prefix(), field, problem));
    }
    return false;
  }

  const absl::Status& error() const { return error_; }
  void ClearError() { error_ = absl::OkStatus(); }
  // The finished top-level value, once the parser closed it.
  std::optional<Json>& root() { return root_; }

 private:
  struct Frame {
    Json value;
    std::string key;  // objects: the key whose value is being read
    bool has_key;
  };

  bool Count() {
    if (++nodes_ > limits_.max_nodes) {
      return Fail(Cat("holds more than ", limits_.max_nodes, " values"));
    }
    return true;
  }

  bool CheckString(const std::string& s, std::string_view what) {
    if (s.size() > limits_.max_string_bytes) {
      return Fail(Cat("a ", what, " is longer than ", limits_.max_string_bytes, " bytes"));
    }
    if (!IsValidUtf8(s)) return Fail("not valid UTF-8");
    return true;
  }

  bool Insert(Json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return true;
    }
    Frame& top = stack_.back();
    if (top.value.is_object()) {
      if (stack_.size() == 1 && top.key == "name" && v.is_string() && name_.empty()) {
        const std::string& s = v.get_ref<const std::string&>();
        if (s.size() <= 253) name_ = s;
      }
      top.value[top.key] = std::move(v);
      top.has_key = false;
      top.key.clear();
    } else {
      top.value.push_back(std::move(v));
    }
    return true;
  }

  std::string Path() const {
    std::string path;
    for (const Frame& f : stack_) {
      if (f.value.is_object()) {
        if (!f.has_key) break;
        path = core::JoinPath(path, f.key);
      } else {
        path += Cat("[", f.value.size(), "]");
      }
      if (path.size() > kMaxPathBytes) {
        path.resize(kMaxPathBytes);
        while (!path.empty() && (static_cast<unsigned char>(path.back()) & 0xC0) == 0x80) {
          path.pop_back();  // never cut a character in two
        }
        if (!path.empty()) path.pop_back();
        return path + "...";
      }
    }
    return path;
  }

  std::string Prefix() const {
    std::string name = ctx_.name.empty() ? name_ : ctx_.name;
    if (ctx_.kind.empty()) return "";
    if (name.empty()) return Cat(ctx_.kind, ": ");
    return Cat(ctx_.kind, " \"", name, "\": ");
  }

  const core::JsonContext& ctx_;
  const BodyLimits& limits_;
  std::vector<Frame> stack_;
  std::optional<Json> root_;
  size_t nodes_ = 0;
  std::string name_;  // the top-level "name" once read
  absl::Status error_;
};

// nlohmann's SAX events into a TreeBuilder.
class JsonEvents : public nlohmann::json_sax<Json> {
 public:
  explicit JsonEvents(TreeBuilder* b) : b_(b) {}

  bool null() override { return b_->Scalar(Json(nullptr)); }
  bool boolean(bool v) override { return b_->Scalar(Json(v)); }
  bool number_integer(number_integer_t v) override { return b_->Scalar(Json(v)); }
  bool number_unsigned(number_unsigned_t v) override {
    if (v > static_cast<number_unsigned_t>(INT64_MAX)) {
      return b_->Fail(kOutOfRange);
    }
    return b_->Scalar(Json(static_cast<int64_t>(v)));
  }
  bool number_float(number_float_t v, const string_t&) override { return b_->Number(v); }
  bool string(string_t& s) override { return b_->String(std::move(s)); }
  bool binary(binary_t&) override { return b_->Fail("binary values are not JSON"); }
  bool start_object(std::size_t) override { return b_->BeginContainer(true); }
  bool key(string_t& k) override { return b_->Key(std::move(k)); }
  bool end_object() override { return b_->EndContainer(); }
  bool start_array(std::size_t) override { return b_->BeginContainer(false); }
  bool end_array() override { return b_->EndContainer(); }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    // what() reads "[json.exception.parse_error.101] parse error at line 1, column 9: ...".
    std::string_view what = ex.what();
    if (size_t end = what.find("] "); end != std::string_view::npos) what.remove_prefix(end + 2);
    if (what.find("number overflow") != std::string_view::npos) {
      return b_->Fail(kOutOfRange);
    }
    if (what.find("UTF-8") != std::string_view::npos ||
        what.find("surrogate") != std::string_view::npos) {
      return b_->Fail(Cat("not valid UTF-8 (", what, ")"));
    }
    return b_->Fail(Cat("malformed JSON: ", what));
  }

 private:
  TreeBuilder* b_;
};

absl::StatusOr<Json> ParseJsonText(std::string_view text, TreeBuilder& b) {
  JsonEvents events(&b);
  bool ok = false;
  try {
    ok = Json::sax_parse(text.begin(), text.end(), &events);
  } catch (const std::exception& e) {
    // The parser reports through parse_error; anything thrown is a bug in it or in us.
    return absl::InternalError(Cat("JSON parser failed: ", e.what()));
  }
  if (!b.error().ok()) return b.error();
  if (!ok || !b.root()) return absl::InternalError("JSON parser stopped without a reason");
  return std::move(*b.root());
}

// A plain YAML scalar as JSON: null, booleans and numbers when it reads as one, else text.
bool PlainScalar(const std::string& text, TreeBuilder& b) {
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return b.Scalar(Json(nullptr));
  }
  if (text == "true" || text == "True" || text == "TRUE") return b.Scalar(Json(true));
  if (text == "false" || text == "False" || text == "FALSE") return b.Scalar(Json(false));
  // Integers and decimals as JSON numbers; anything else ("500m", "64Mi") stays text.
  const char* begin = text.c_str();
  const char* const finish = begin + text.size();
  char* end = nullptr;
  errno = 0;
  long long i = std::strtoll(begin, &end, 10);
  if (errno == 0 && end == finish) return b.Scalar(Json(static_cast<int64_t>(i)));
  if (text.find_first_of("0123456789") != std::string::npos &&
      text.find_first_not_of("0123456789.-+eE") == std::string::npos) {
    double d = std::strtod(begin, &end);
    if (end == finish) return b.Number(d);
  }
  return b.String(text);
}

const char* const kStrTag = "tag:yaml.org,2002:str";

// A libyaml event, freed when it goes out of scope.
struct YamlEvent {
  yaml_event_t e{};
  ~YamlEvent() { yaml_event_delete(&e); }
};

struct YamlParser {
  yaml_parser_t p;
  YamlParser() { yaml_parser_initialize(&p); }
  ~YamlParser() { yaml_parser_delete(&p); }
};

bool HasText(const yaml_char_t* s) { return s != nullptr && *s != 0; }
std::string Text(const yaml_char_t* s) { return reinterpret_cast<const char*>(s); }

// Feeds one event to the builder. False stops the parse (the builder holds why).
bool OnYamlEvent(const yaml_event_t& e, TreeBuilder& b, std::vector<Json>* docs) {
  auto refuse_anchor = [&](const yaml_char_t* anchor) {
    if (!HasText(anchor)) return true;
    return b.Fail(Cat("YAML anchors (&", Text(anchor),
                      ") and aliases are not supported; "
                      "write the value out"));
  };
  switch (e.type) {
    case YAML_ALIAS_EVENT:
      return b.Fail(Cat("YAML aliases (*", Text(e.data.alias.anchor),
                        ") are not supported; write the value out"));
    case YAML_SCALAR_EVENT: {
      if (!refuse_anchor(e.data.scalar.anchor)) return false;
      std::string text(reinterpret_cast<const char*>(e.data.scalar.value), e.data.scalar.length);
      bool plain = e.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
      if (HasText(e.data.scalar.tag)) {
        std::string tag = Text(e.data.scalar.tag);
        if (tag != "!" && tag != kStrTag) {
          return b.Fail(Cat("YAML tags (", tag, ") are not supported"));
        }
        plain = false;
      }
      if (b.ExpectingKey()) return b.Key(std::move(text));
      if (!plain) return b.String(std::move(text));
      return PlainScalar(text, b);
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
      bool map = e.type == YAML_MAPPING_START_EVENT;
      const yaml_char_t* anchor = map ? e.data.mapping_start.anchor : e.data.sequence_start.anchor;
      const yaml_char_t* tag = map ? e.data.mapping_start.tag : e.data.sequence_start.tag;
      if (!refuse_anchor(anchor)) return false;
      if (HasText(tag) && Text(tag) != (map ? "tag:yaml.org,2002:map" : "tag:yaml.org,2002:seq")) {
        return b.Fail(Cat("YAML tags (", Text(tag), ") are not supported"));
      }
      if (b.ExpectingKey()) return b.Fail("keys must be plain text, not lists or maps");
      return b.BeginContainer(map);
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      return b.EndContainer();
    case YAML_DOCUMENT_END_EVENT:
      if (b.root()) {
        if (!b.root()->is_null()) docs->push_back(std::move(*b.root()));  // skip empty documents
        b.root().reset();
      }
      return true;
    default:
      return true;  // stream and document starts carry nothing
  }
}

// Parses `text` event by event into `b`; *parser_error tells whether a failure came from libyaml
// (rather than from a limit or a refused construct).
absl::StatusOr<std::vector<Json>> ParseYamlEvents(std::string_view text, TreeBuilder& b,
                                                  bool* parser_error);

absl::StatusOr<std::vector<Json>> ParseYamlText(std::string_view text, TreeBuilder& b) {
  // libyaml checks the encoding of a whole chunk before parsing any of it, which would lose the
  // field. So parse the well-formed part first: where it ends is where the bad byte sits.
  bool parser_error = false;
  if (size_t good = ValidUtf8Prefix(text); good < text.size()) {
    auto prefix = ParseYamlEvents(text.substr(0, good), b, &parser_error);
    if (!prefix.ok() && !parser_error) return prefix.status();  // a limit came first
    b.ClearError();
    b.Fail(Cat("not valid UTF-8 (at byte ", good, ")"));
    return b.error();
  }
  return ParseYamlEvents(text, b, &parser_error);
}

absl::StatusOr<std::vector<Json>> ParseYamlEvents(std::string_view text, TreeBuilder& b,
                                                  bool* parser_error) {
  std::vector<Json> docs;
  YamlParser parser;
  yaml_parser_set_encoding(&parser.p, YAML_UTF8_ENCODING);
  yaml_parser_set_input_string(&parser.p, reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  for (;;) {
    YamlEvent event;
    if (!yaml_parser_parse(&parser.p, &event.e)) {
      // The event is untouched on failure; make its destructor harmless.
      event.e.type = YAML_NO_EVENT;
      *parser_error = true;
      const yaml_parser_t& p = parser.p;
      std::string problem = p.problem ? p.problem : "unknown error";
      if (p.error == YAML_READER_ERROR) {
        if (problem.find("UTF-8") != std::string::npos ||
            problem.find("Unicode") != std::string::npos) {
          b.Fail(Cat("not valid UTF-8 (at byte ", p.problem_offset, ")"));
        } else {
          b.Fail(Cat("malformed YAML at byte ", p.problem_offset, ": ", problem));
        }
      } else if (p.error == YAML_MEMORY_ERROR) {
        b.Fail("malformed YAML: the parser ran out of memory");
      } else {
        std::string context = p.context ? Cat(p.context, ": ") : std::string();
        b.Fail(Cat("malformed YAML at line ", p.problem_mark.line + 1, ", column ",
                   p.problem_mark.column + 1, ": ", context, problem));
      }
      return b.error();
    }
    if (!OnYamlEvent(event.e, b, &docs)) return b.error();
    if (event.e.type == YAML_STREAM_END_EVENT) break;
  }
  return docs;
}

}  // namespace

size_t ValidUtf8Prefix(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;  // a continuation byte, an overlong lead (C0, C1) or past U+10FFFF
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return i;
    }
    i += len;
  }
  return n;
}

bool IsValidUtf8(std::string_view text) { return ValidUtf8Prefix(text) == text.size(); }

absl::StatusOr<std::vector<Json>> ParseYamlDocuments(std::string_view text,
                                                     const core::JsonContext& ctx,
                                                     const BodyLimits& limits) {
  TreeBuilder b(ctx, limits);
  if (text.size() > limits.max_bytes) {
    b.Fail(Cat("is larger than ", limits.max_bytes, " bytes"));
    return b.error();
  }
  return ParseYamlText(text, b);
}

absl::StatusOr<Json> ParseBody(std::string_view text, const core::JsonContext& ctx,
                               const BodyLimits& limits) {
  TreeBuilder b(ctx, limits);
  if (text.size() > limits.max_bytes) {
    b.Fail(Cat("the request body is larger than ", limits.max_bytes, " bytes"));
    return b.error();
  }
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) {
    b.Fail("the request body is empty; send a JSON or YAML object");
    return b.error();
  }
  if (text[first] == '{' || text[first] == '[') return ParseJsonText(text, b);
  BERTH_ASSIGN_OR_RETURN(std::vector<Json> docs, ParseYamlText(text, b));
  if (docs.size() != 1) {
    b.Fail(Cat("the request body holds ", docs.size(), " YAML documents; send exactly one"));
    return b.error();
  }
  return std::move(docs.front());
}

}  // namespace berth::api
