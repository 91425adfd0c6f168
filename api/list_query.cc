#include "api/list_query.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "api/route_util.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;
using core::Json;

namespace {

absl::Status Bad(std::string_view param, std::string_view why) {
  return absl::InvalidArgumentError(Cat("query: ", param, " ", why));
}

// What a client typed, shortened for an error message.
std::string Shown(std::string_view text) {
  return Cat("\"", text.substr(0, 64), text.size() > 64 ? "..." : "", "\"");
}

std::string Allowed(std::string_view list, std::initializer_list<std::string_view> filters) {
  std::string out = "limit, continue";
  for (std::string_view f : filters) out += Cat(", ", f);
  return Cat(list, " take ", out);
}

bool Offers(std::initializer_list<std::string_view> filters, std::string_view name) {
  return std::find(filters.begin(), filters.end(), name) != filters.end();
}

// The token's payload: "LIST:REVISION:NAME" (a name never holds ':' in front of the revision).
absl::Status DecodeContinue(std::string_view list, std::string_view token, ListQuery* query) {
  std::string raw;
  auto invalid = [&] {
    return Bad("continue", Cat("is not a token from a ", list,
                               " list of this server (pass the \"continue\" of the last page)"));
  };
  if (!absl::WebSafeBase64Unescape(std::string(token), &raw)) return invalid();
  size_t a = raw.find(':');
  if (a == std::string::npos || raw.substr(0, a) != list) return invalid();
  size_t b = raw.find(':', a + 1);
  if (b == std::string::npos) return invalid();
  int64_t revision = 0;
  if (!absl::SimpleAtoi(raw.substr(a + 1, b - a - 1), &revision) || revision < 0) {
    return invalid();
  }
  std::string name = raw.substr(b + 1);
  if (name.empty()) return invalid();
  query->first_revision = revision;
  query->options.after = std::move(name);
  return absl::OkStatus();
}

std::string StateNames(std::string_view list) {
  if (list == "hosts") return "ready, down";
  std::string out;
  for (core::WorkloadState s : {core::WorkloadState::kPending, core::WorkloadState::kScheduled,
                                core::WorkloadState::kStarting, core::WorkloadState::kRunning,
                                core::WorkloadState::kPaused, core::WorkloadState::kStopping,
                                core::WorkloadState::kStopped, core::WorkloadState::kFailed}) {
    out += Cat(out.empty() ? "" : ", ", core::WorkloadStateName(s));
  }
  return out;
}

}  // namespace

absl::StatusOr<ListQuery> ParseListQuery(const HttpRequest& request, std::string_view list,
                                         std::initializer_list<std::string_view> filters) {
  ListQuery query;
  bool seen_limit = false, seen_continue = false;
  for (const auto& [key, value] : request.query) {
    const bool filter = key == "state" || key == "host" || key == "kind" || key == "tenant" ||
                        key == "selector" || key == "label" || key == "prefix";
    if (filter && !Offers(filters, key == "label" ? "selector" : key)) {
      return Bad(key, Cat("is not a filter of ", list, "; ", Allowed(list, filters)));
    }
    if (key == "limit") {
      if (seen_limit) return Bad("limit", "is given twice");
      seen_limit = true;
      size_t limit = 0;
      if (!absl::SimpleAtoi(value, &limit) || limit == 0 || limit > kMaxListLimit) {
        return Bad("limit",
                   Cat("must be a number from 1 to ", kMaxListLimit, ", got ", Shown(value)));
      }
      query.options.limit = limit;
    } else if (key == "continue") {
      if (seen_continue) return Bad("continue", "is given twice");
      seen_continue = true;
      if (absl::Status s = DecodeContinue(list, value, &query); !s.ok()) return s;
    } else if (filter && value.empty()) {
      return Bad(key, "must not be empty");
    } else if (key == "state") {
      if (list == "hosts") {
        if (value != "ready" && value != "down") {
          return Bad("state", Cat("must be one of ", StateNames(list), ", got ", Shown(value)));
        }
        query.options.filter.host_state =
            value == "ready" ? core::HostState::kReady : core::HostState::kDown;
      } else {
        std::optional<core::WorkloadState> state = core::ParseWorkloadState(value);
        if (!state) {
          return Bad("state", Cat("must be one of ", StateNames(list), ", got ", Shown(value)));
        }
        query.options.filter.state = *state;
      }
    } else if (key == "kind") {
      std::optional<core::WorkloadKind> kind = core::ParseWorkloadKind(value);
      if (!kind) return Bad("kind", Cat("must be process, container or vm, got ", Shown(value)));
      query.options.filter.kind = *kind;
    } else if (key == "host") {
      query.options.filter.host = value;
    } else if (key == "tenant") {
      query.options.filter.tenant = value;
    } else if (key == "prefix") {
      query.options.filter.prefix = value;
    } else if (key == "selector" || key == "label") {
      absl::StatusOr<std::vector<sched::LabelSelector>> parsed = control::ParseLabelSelector(value);
      if (!parsed.ok()) return Bad(key, std::string(parsed.status().message()));
      for (auto& s : *parsed) query.options.filter.selector.push_back(std::move(s));
    }
  }
  return query;
}

std::string EncodeContinue(std::string_view list, int64_t first_revision,
                           std::string_view last_name) {
  return absl::WebSafeBase64Escape(std::string(Cat(list, ":", first_revision, ":", last_name)));
}

void AddContinue(Json& body, const ListQuery& query, std::string_view list,
                 const std::string& next) {
  if (next.empty()) return;
  int64_t first =
      query.options.after.empty() ? body.value("revision", int64_t{0}) : query.first_revision;
  body["continue"] = EncodeContinue(list, first, next);
}

std::vector<Json> PageJsonItems(std::vector<Json> items, const ListQuery& query, std::string* next,
                                std::string_view key) {
  auto name_of = [key](const Json& j) {
    if (!j.is_object()) return std::string();
    auto it = j.find(key);
    if (it == j.end()) return std::string();
    return it->is_string() ? it->get<std::string>() : it->dump();
  };
  std::sort(items.begin(), items.end(),
            [&](const Json& a, const Json& b) { return name_of(a) < name_of(b); });
  const control::ListFilter& filter = query.options.filter;
  std::vector<Json> out;
  for (size_t i = 0; i < items.size(); ++i) {
    std::string name = name_of(items[i]);
    if (!query.options.after.empty() && name <= query.options.after) continue;
    if (!filter.selector.empty()) {
      sched::Labels labels;
      if (auto it = items[i].find("labels"); it != items[i].end() && it->is_object()) {
        for (const auto& [k, v] : it->items()) {
          if (v.is_string()) labels[k] = v.get<std::string>();
        }
      }
      bool match = std::all_of(filter.selector.begin(), filter.selector.end(),
                               [&](const sched::LabelSelector& s) { return s.Matches(labels); });
      if (!match) continue;
    }
    if (query.options.limit > 0 && out.size() == query.options.limit) {
      *next = name_of(out.back());
      return out;
    }
    out.push_back(std::move(items[i]));
  }
  return out;
}

void PageListBody(Json& body, const ListQuery& query, std::string_view list, std::string_view key) {
  std::vector<Json> items;
  if (auto it = body.find("items"); it != body.end() && it->is_array()) {
    items.reserve(it->size());
    for (Json& item : *it) items.push_back(std::move(item));
  }
  std::string next;
  Json page = Json::array();
  for (Json& item : PageJsonItems(std::move(items), query, &next, key)) {
    page.push_back(std::move(item));
  }
  body["items"] = std::move(page);
  AddContinue(body, query, list, next);
}

HttpResponse PagedJsonReply(const HttpRequest& request, std::string_view list, Json body,
                            std::string_view key) {
  absl::StatusOr<ListQuery> query = ParseListQuery(request, list, {});
  if (!query.ok()) return Fail(query.status());
  PageListBody(body, *query, list, key);
  return JsonOk(200, body, body.value("revision", int64_t{-1}));
}

bool ListChangeFilter::Concerns(const state::Event& event) const {
  if (event.revision() <= shown_at_ || shown_.contains(event.kv.key)) return true;
  return event.type == state::Event::Type::kPut && matches_ && matches_(event.kv);
}

}  // namespace berth::api
