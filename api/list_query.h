// The query parameters of the API's lists: `limit` and `continue` (paging) on every list, and
// the filters each list offers (`state`, `host`, `kind`, `tenant`, `selector`/`label`, `prefix`). A
// bad value is InvalidArgument naming the parameter; a filter a list does not offer is one too, so
// a typo never silently returns everything.
//
// `continue` tokens are opaque to clients: base64url of the list's name, the revision the first
// page was read at, and the last name of the page before. Pages are in name order and each
// resumes after that name (see control/list_options.h for what that promises).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "api/http/message.h"
#include "control/list_options.h"
#include "core/json.h"
#include "state/store.h"

namespace berth::api {

// The largest page a list serves; `limit` above it is refused, not silently cut.
inline constexpr size_t kMaxListLimit = 5000;

struct ListQuery {
  control::ListOptions options;
  // The revision carried by the `continue` token (0 on a first page): later pages keep
  // reporting where the listing began.
  int64_t first_revision = 0;
};

// Parses the paging parameters and the filters named in `filters` (any of "state", "host",
// "kind", "tenant", "selector", "prefix"; "selector" also admits `label=k=v`, repeatable) for the
// list `list` ("workloads", "hosts", ...). `state` is a workload state for workloads and ready/down
// for hosts.
absl::StatusOr<ListQuery> ParseListQuery(const HttpRequest& request, std::string_view list,
                                         std::initializer_list<std::string_view> filters);

// The token that resumes `list` after `last_name`, a listing that began at `first_revision`.
std::string EncodeContinue(std::string_view list, int64_t first_revision,
                           std::string_view last_name);

// Adds "continue" to a list body ({"items", "revision"}) when `next`, the last name of a page
// the limit cut short, is set.
void AddContinue(core::Json& body, const ListQuery& query, std::string_view list,
                 const std::string& next);

// Pages a list the server holds whole (disks, networks, services, tenants): sorts `items` by
// their `key` field ("name"; "id" for port forwards), keeps those after the query's cursor whose
// "labels" (an object; none when absent) pass its selector, and cuts the page. Sets `next` when
// the page was cut short.
std::vector<core::Json> PageJsonItems(std::vector<core::Json> items, const ListQuery& query,
                                      std::string* next, std::string_view key = "name");
// The same on a list body: its "items" become the page, with "continue" when cut short.
void PageListBody(core::Json& body, const ListQuery& query, std::string_view list,
                  std::string_view key = "name");
// The whole reply of such a list: `body` ({"items", ...}) paged by the request's `limit` and
// `continue` (no filters), or 400 naming the bad parameter.
HttpResponse PagedJsonReply(const HttpRequest& request, std::string_view list, core::Json body,
                            std::string_view key = "name");

// Tells which changes concern a blocking query parked on a filtered list: one that lists the
// keys `shown`, read at revision `shown_at`. A change at or before `shown_at` does (it came
// after the client's index, and what it replaced is no longer known), as does any change to a
// shown key, and any put of an object that passes the filter (`matches`).
class ListChangeFilter {
 public:
  ListChangeFilter(std::set<std::string> shown, int64_t shown_at,
                   std::function<bool(const state::KeyValue&)> matches)
      : shown_(std::move(shown)), shown_at_(shown_at), matches_(std::move(matches)) {}
  bool Concerns(const state::Event& event) const;

 private:
  std::set<std::string> shown_;
  int64_t shown_at_;
  std::function<bool(const state::KeyValue&)> matches_;
};

}  // namespace berth::api
