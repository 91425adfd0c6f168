#include "control/list_options.h"

#include "absl/strings/ascii.h"
#include "core/strings.h"

namespace berth::control {

using core::Cat;

bool MatchesWorkload(const ListFilter& filter, const core::Workload& w) {
  if (!w.spec.name.starts_with(filter.prefix)) return false;
  if (filter.state && w.status.state != *filter.state) return false;
  if (!filter.host.empty() && w.status.host != filter.host) return false;
  if (filter.kind && w.spec.kind != *filter.kind) return false;
  if (!filter.tenant.empty() && w.spec.tenant != filter.tenant) return false;
  for (const sched::LabelSelector& s : filter.selector) {
    if (!s.Matches(w.spec.labels)) return false;
  }
  return true;
}

bool MatchesHost(const ListFilter& filter, const core::Host& h) {
  if (!h.name.starts_with(filter.prefix)) return false;
  if (filter.host_state && h.state != *filter.host_state) return false;
  for (const sched::LabelSelector& s : filter.selector) {
    if (!s.Matches(h.inventory.labels)) return false;
  }
  return true;
}

namespace {

std::string_view Trim(std::string_view text) {
  while (!text.empty() && absl::ascii_isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && absl::ascii_isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

// `text` cut at every `sep`, each piece trimmed.
std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    size_t at = text.find(sep);
    out.push_back(Trim(text.substr(0, at)));
    if (at == std::string_view::npos) return out;
    text.remove_prefix(at + 1);
  }
}

// Label keys and values: what Kubernetes allows in either (letters, digits, '-', '_', '.', and
// '/' for a key's prefix), so a selector never carries spaces, commas or operators by mistake.
bool IsLabelText(std::string_view text, bool key) {
  if (text.empty()) return !key;
  for (char c : text) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') {
      continue;
    }
    if (key && c == '/') continue;
    return false;
  }
  return true;
}

// Splits at commas outside parentheses: "a in (x,y),b" -> {"a in (x,y)", "b"}.
std::vector<std::string_view> SplitRequirements(std::string_view text, bool* balanced) {
  std::vector<std::string_view> out;
  int depth = 0;
  size_t start = 0;
  *balanced = true;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || (text[i] == ',' && depth == 0)) {
      out.push_back(text.substr(start, i - start));
      start = i + 1;
      continue;
    }
    if (text[i] == '(') ++depth;
    if (text[i] == ')' && --depth < 0) *balanced = false;
  }
  if (depth != 0) *balanced = false;
  return out;
}

absl::StatusOr<sched::LabelSelector> ParseRequirement(std::string_view req) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(Cat("requirement \"", req, "\" ", why));
  };
  std::string_view r = Trim(req);
  if (r.empty()) return bad("is empty");
  sched::LabelSelector s;
  // Set-based: `key in (a,b)`, `key notin (a,b)`.
  if (size_t open = r.find('('); open != std::string_view::npos) {
    if (r.back() != ')') return bad("must end with ')'");
    std::string_view head = Trim(r.substr(0, open));
    std::vector<std::string_view> words = Split(head, ' ');
    std::erase_if(words, [](std::string_view w) { return w.empty(); });
    if (words.size() != 2 || (words[1] != "in" && words[1] != "notin")) {
      return bad("must read `key in (a,b)` or `key notin (a,b)`");
    }
    s.key = std::string(words[0]);
    s.op = words[1] == "in" ? sched::LabelSelector::Op::kIn : sched::LabelSelector::Op::kNotIn;
    std::string_view inside = r.substr(open + 1, r.size() - open - 2);
    for (std::string_view v : Split(inside, ',')) {
      if (v.empty() || !IsLabelText(v, false)) return bad(Cat("has a bad value \"", v, "\""));
      s.values.emplace_back(v);
    }
  } else if (size_t ne = r.find("!="); ne != std::string_view::npos) {
    s.key = std::string(Trim(r.substr(0, ne)));
    s.op = sched::LabelSelector::Op::kNotIn;
    s.values.emplace_back(Trim(r.substr(ne + 2)));
  } else if (size_t eq = r.find('='); eq != std::string_view::npos) {
    s.key = std::string(Trim(r.substr(0, eq)));
    std::string_view value = r.substr(eq + 1);
    if (!value.empty() && value.front() == '=') value.remove_prefix(1);  // `key==value`
    s.op = sched::LabelSelector::Op::kEquals;
    s.values.emplace_back(Trim(value));
  } else {
    s.key = std::string(r);
    s.op = sched::LabelSelector::Op::kExists;
  }
  if (!IsLabelText(s.key, true)) return bad(Cat("has a bad key \"", s.key, "\""));
  for (const std::string& v : s.values) {
    if (!IsLabelText(v, false)) return bad(Cat("has a bad value \"", v, "\""));
  }
  return s;
}

}  // namespace

absl::StatusOr<std::vector<sched::LabelSelector>> ParseLabelSelector(std::string_view text) {
  std::vector<sched::LabelSelector> out;
  bool balanced = true;
  std::vector<std::string_view> reqs = SplitRequirements(text, &balanced);
  if (!balanced) {
    return absl::InvalidArgumentError(Cat("\"", text, "\" has unbalanced parentheses"));
  }
  for (std::string_view req : reqs) {
    absl::StatusOr<sched::LabelSelector> s = ParseRequirement(req);
    if (!s.ok()) return s.status();
    out.push_back(std::move(*s));
  }
  return out;
}

}  // namespace berth::control
