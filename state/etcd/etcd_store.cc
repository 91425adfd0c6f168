#include "state/etcd/etcd_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "api/http/client.h"
#include "core/guard.h"
#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"
#include "nlohmann/json.hpp"

namespace berth::state {
namespace {

using json = nlohmann::json;

constexpr char kWhere[] = "store.etcd";

std::string B64(std::string_view s) {
  return absl::Base64Escape(absl::string_view(s.data(), s.size()));
}

// etcd's gateway writes int64 fields as JSON strings and leaves zero values out.
int64_t Int(const json& object, const char* field) {
  if (!object.is_object()) return 0;
  auto it = object.find(field);
  if (it == object.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  int64_t value = 0;
  if (it->is_string() && absl::SimpleAtoi(it->get_ref<const std::string&>(), &value)) return value;
  return 0;
}

bool Bool(const json& object, const char* field) {
  if (!object.is_object()) return false;
  auto it = object.find(field);
  return it != object.end() && it->is_boolean() && it->get<bool>();
}

const json& Field(const json& object, const char* field) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(field);
  return it == object.end() ? kNull : *it;
}

absl::StatusOr<std::string> Bytes(const json& object, const char* field) {
  const json& value = Field(object, field);
  if (value.is_null()) return std::string();
  std::string out;
  if (!value.is_string() ||
      !absl::Base64Unescape(absl::string_view(value.get_ref<const std::string&>()), &out)) {
    return absl::DataLossError(core::Cat("etcd: field ", field, " is not base64"));
  }
  return out;
}

// Store revisions are etcd revisions minus one; 0 (absent) and negatives stay as they are.
int64_t ToEtcdRevision(int64_t revision) { return revision > 0 ? revision + 1 : revision; }
int64_t FromEtcdRevision(int64_t revision) { return revision > 0 ? revision - 1 : 0; }

absl::StatusOr<KeyValue> ToKeyValue(const json& kv) {
  KeyValue out;
  BERTH_ASSIGN_OR_RETURN(out.key, Bytes(kv, "key"));
  BERTH_ASSIGN_OR_RETURN(out.value, Bytes(kv, "value"));
  out.create_revision = FromEtcdRevision(Int(kv, "create_revision"));
  out.mod_revision = FromEtcdRevision(Int(kv, "mod_revision"));
  out.version = Int(kv, "version");
  out.lease = Int(kv, "lease");
  return out;
}

absl::StatusOr<std::vector<KeyValue>> ToKeyValues(const json& kvs) {
  std::vector<KeyValue> out;
  if (!kvs.is_array()) return out;
  for (const json& kv : kvs) {
    BERTH_ASSIGN_OR_RETURN(KeyValue one, ToKeyValue(kv));
    out.push_back(std::move(one));
  }
  return out;
}

// The first key after every key that starts with `prefix`; "\0" (with key "\0": every key) for
// the empty prefix or one of only 0xff bytes.
std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

// A [key, range_end) pair in etcd's encoding for every key under `prefix`.
json PrefixRange(std::string_view prefix) {
  return json{{"key", B64(prefix.empty() ? std::string_view("\0", 1) : prefix)},
              {"range_end", B64(PrefixEnd(prefix))}};
}

absl::StatusCode CodeFromGrpc(int64_t code) {
  if (code <= 0 || code > 16) return absl::StatusCode::kUnknown;
  return static_cast<absl::StatusCode>(code);
}

// True when a transport error happened before the request could reach etcd, so that sending
// it elsewhere cannot apply it twice. Matches the HTTP client's wording for connect failures.
bool NotSent(const absl::Status& status) {
  std::string_view message(status.message().data(), status.message().size());
  return message.find("http client: connect to") != std::string_view::npos ||
         message.find("http client: cannot resolve") != std::string_view::npos;
}

absl::Status ValidateEndpoint(const std::string& endpoint) {
  std::string_view host = endpoint;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos || close + 1 >= host.size() || host[close + 1] != ':') {
      return absl::InvalidArgumentError(
          core::Cat("etcd endpoint \"", endpoint, "\": must be [IPV6]:PORT"));
    }
    port = host.substr(close + 2);
    host = host.substr(1, close - 1);
  } else {
    size_t colon = host.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          core::Cat("etcd endpoint \"", endpoint, "\": must be HOST:PORT"));
    }
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty() || host.find_first_of("/?#@ ,") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        core::Cat("etcd endpoint \"", endpoint, "\": host must not be empty or hold /?#@, "));
  }
  int port_number = 0;
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != port.npos ||
      !absl::SimpleAtoi(absl::string_view(port.data(), port.size()), &port_number) ||
      port_number < 1 || port_number > 65535) {
    return absl::InvalidArgumentError(
        core::Cat("etcd endpoint \"", endpoint, "\": port must be 1-65535, got \"", port, "\""));
  }
  return absl::OkStatus();
}

}  // namespace

// What the store and its watch handles share: the endpoints, idle HTTP connections, and the
// thread that runs watch callbacks.
class EtcdStore::Core {
 public:
  struct Watcher {
    std::string prefix;
    json range;  // key and range_end
    WatchCallback callback;
    // Read and written by the watch's reader thread only: the first revision not yet delivered.
    int64_t next_revision = 0;
    bool stream_created = false;  // the current stream was accepted by etcd; reader thread only
    api::StreamCanceller canceller;
    absl::Notification stopping;
    // The outcome of the first stream: OK once etcd created the watch.
    absl::Mutex mu;
    bool started ABSL_GUARDED_BY(mu) = false;
    absl::Status start_status ABSL_GUARDED_BY(mu);
    bool cancelled = false;  // guarded by Core::watch_mu_
  };

  Core(std::vector<std::string> endpoints, const EtcdStoreOptions& options)
      : endpoints_(std::move(endpoints)), options_(options), idle_(endpoints_.size()) {
    dispatcher_ = std::thread([this] {
      core::OkOrReport(kWhere, "watch dispatcher",
                       core::RunGuarded("etcd watch dispatcher", [this] { DispatchLoop(); }));
    });
  }

  ~Core() { Shutdown(); }

  const std::vector<std::string>& endpoints() const { return endpoints_; }
  const EtcdStoreOptions& options() const { return options_; }

  api::HttpClient::Options ClientOptions() const {
    api::HttpClient::Options options;
    options.timeout = options_.request_timeout;
    options.connect_timeout = options_.connect_timeout;
    return options;
  }

  size_t preferred() const { return preferred_.load(); }
  std::string Url(size_t endpoint) const { return core::Cat("http://", endpoints_[endpoint]); }

  // POSTs `body` to `path` on the preferred endpoint, moving on to the next ones when an
  // endpoint cannot be reached (and, for `idempotent` calls, when its answer was lost or it has
  // no leader). `what` names the operation and its key for error messages.
  absl::StatusOr<json> Call(std::string_view what, std::string_view path, const json& body,
                            bool idempotent) {
    const std::string payload = body.dump();
    const size_t n = endpoints_.size();
    const size_t first = preferred_.load();
    absl::Status last;
    for (size_t i = 0; i < n; ++i) {
      const size_t endpoint = (first + i) % n;
      // A write goes out on a new connection: the client resends a request once when a kept-alive
      // connection turns out closed, and etcd may have applied it before it went away.
      std::unique_ptr<api::HttpClient> client =
          idempotent ? Acquire(endpoint)
                     : std::make_unique<api::HttpClient>(Url(endpoint), ClientOptions());
      absl::StatusOr<api::HttpResponse> response = client->Post(path, payload);
      if (!response.ok()) {
        last = response.status();
        if (idempotent || NotSent(last)) continue;
        return absl::UnavailableError(
            core::Cat("etcd ", endpoints_[endpoint], ": ", what,
                      ": outcome unknown, read again before retrying: ", last.message()));
      }
      Release(endpoint, std::move(client));
      json answer = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
      if (answer.is_discarded() || !answer.is_object()) {
        return absl::DataLossError(core::Cat("etcd ", endpoints_[endpoint], ": ", what,
                                             ": answer is not JSON (HTTP ", response->status, ")"));
      }
      if (response->status != 200) {
        const json& message = Field(answer, "message");
        absl::Status status(
            CodeFromGrpc(Int(answer, "code")),
            core::Cat("etcd ", endpoints_[endpoint], ": ", what, ": ",
                      message.is_string() ? message.get<std::string>() : response->body));
        if (idempotent && status.code() == absl::StatusCode::kUnavailable) {
          last = status;
          continue;
        }
        return status;
      }
      preferred_.store(endpoint);
      return answer;
    }
    preferred_.store((first + 1) % n);
    return absl::UnavailableError(core::Cat("etcd: ", what, ": no endpoint of ",
                                            absl::StrJoin(endpoints_, ","),
                                            " answered; last error: ", last.message()));
  }

  // Queues events for a watcher's callback, in order.
  void Deliver(const std::shared_ptr<Watcher>& watcher, std::vector<Event> events) {
    absl::MutexLock lock(&watch_mu_);
    if (watcher->cancelled || stop_) return;
    // etcd sends a revision's events in one response: mark all but the last of each.
    for (size_t i = 0; i + 1 < events.size(); ++i) {
      events[i].more_in_revision = events[i + 1].revision() == events[i].revision();
    }
    for (Event& event : events) queue_.emplace_back(watcher, std::move(event));
  }

  // After this returns, `watcher`'s callback never runs again (unless called from that callback,
  // which then finishes on its own).
  void Cancel(const std::shared_ptr<Watcher>& watcher) {
    absl::MutexLock lock(&watch_mu_);
    watcher->cancelled = true;
    if (std::this_thread::get_id() == dispatcher_id_) return;
    auto idle = [this, &watcher]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(watch_mu_) { return running_ != watcher.get(); };
    watch_mu_.Await(absl::Condition(&idle));
  }

  void Shutdown() {
    {
      absl::MutexLock lock(&watch_mu_);
      stop_ = true;
    }
    if (dispatcher_.joinable()) dispatcher_.join();
  }

  // The lowest revision etcd still holds history for (etcd numbering); 1 when never compacted.
  // Probes Range at a revision (which fails below the compaction point), starting from the
  // last point seen: compaction only moves forward, so one request answers the common case.
  absl::StatusOr<int64_t> EtcdCompactionPoint() {
    int64_t low = compaction_hint_.load();  // Range at low - 1 is known to fail
    auto compacted_at = [this](int64_t revision) -> absl::StatusOr<bool> {
      json request{{"key", B64(std::string_view("\0", 1))},
                   {"count_only", true},
                   {"revision", std::to_string(revision)}};
      absl::StatusOr<json> answer = Call("compaction probe", "/v3/kv/range", request, true);
      if (answer.ok()) return false;
      std::string_view message(answer.status().message().data(), answer.status().message().size());
      if (answer.status().code() == absl::StatusCode::kOutOfRange &&
          message.find("compacted") != std::string_view::npos) {
        return true;
      }
      return answer.status();
    };
    BERTH_ASSIGN_OR_RETURN(bool below, compacted_at(low));
    if (below) {
      json request{{"key", B64(std::string_view("\0", 1))}, {"count_only", true}};
      BERTH_ASSIGN_OR_RETURN(json answer, Call("revision", "/v3/kv/range", request, true));
      int64_t high = Int(Field(answer, "header"), "revision");  // never below the point
      // Invariant: compacted_at(low) and !compacted_at(high).
      while (high - low > 1) {
        int64_t mid = low + (high - low) / 2;
        BERTH_ASSIGN_OR_RETURN(bool mid_below, compacted_at(mid));
        (mid_below ? low : high) = mid;
      }
      low = high;
    }
    NoteCompactionPoint(low);
    return low;
  }

  void NoteCompactionPoint(int64_t point) {
    int64_t seen = compaction_hint_.load();
    while (point > seen && !compaction_hint_.compare_exchange_weak(seen, point)) {
    }
  }
  int64_t compaction_hint() const { return compaction_hint_.load(); }

  // Claims the right to run an automatic compaction; false while another one runs.
  bool TryStartCompaction() { return !compacting_.exchange(true); }
  void EndCompaction() { compacting_.store(false); }

 private:
  std::unique_ptr<api::HttpClient> Acquire(size_t endpoint) {
    {
      absl::MutexLock lock(&pool_mu_);
      if (!idle_[endpoint].empty()) {
        std::unique_ptr<api::HttpClient> client = std::move(idle_[endpoint].back());
        idle_[endpoint].pop_back();
        return client;
      }
    }
    return std::make_unique<api::HttpClient>(Url(endpoint), ClientOptions());
  }

  void Release(size_t endpoint, std::unique_ptr<api::HttpClient> client) {
    absl::MutexLock lock(&pool_mu_);
    // Enough for the callers that run at once; beyond that, connections close.
    if (idle_[endpoint].size() < 16) idle_[endpoint].push_back(std::move(client));
  }

  void DispatchLoop() {
    {
      absl::MutexLock lock(&watch_mu_);
      dispatcher_id_ = std::this_thread::get_id();
    }
    for (;;) {
      std::shared_ptr<Watcher> watcher;
      Event event;
      {
        absl::MutexLock lock(&watch_mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(watch_mu_) {
          return stop_ || !queue_.empty();
        };
        watch_mu_.Await(absl::Condition(&ready));
        if (stop_) return;
        watcher = std::move(queue_.front().first);
        event = std::move(queue_.front().second);
        queue_.pop_front();
        if (watcher->cancelled) continue;
        running_ = watcher.get();
      }
      watcher->callback(event);
      absl::MutexLock lock(&watch_mu_);
      running_ = nullptr;
    }
  }

  const std::vector<std::string> endpoints_;
  const EtcdStoreOptions options_;
  std::atomic<size_t> preferred_{0};
  std::atomic<int64_t> compaction_hint_{1};
  std::atomic<bool> compacting_{false};

  absl::Mutex pool_mu_;
  std::vector<std::vector<std::unique_ptr<api::HttpClient>>> idle_ ABSL_GUARDED_BY(pool_mu_);

  absl::Mutex watch_mu_;
  std::deque<std::pair<std::shared_ptr<Watcher>, Event>> queue_ ABSL_GUARDED_BY(watch_mu_);
  Watcher* running_ ABSL_GUARDED_BY(watch_mu_) = nullptr;
  bool stop_ ABSL_GUARDED_BY(watch_mu_) = false;
  std::thread::id dispatcher_id_ ABSL_GUARDED_BY(watch_mu_);
  std::thread dispatcher_;
};

namespace {

using Core = EtcdStore::Core;
using Watcher = Core::Watcher;

void FinishStart(Watcher& watcher, absl::Status status) {
  absl::MutexLock lock(&watcher.mu);
  if (watcher.started) return;
  watcher.started = true;
  watcher.start_status = std::move(status);
}

bool Started(Watcher& watcher) {
  absl::MutexLock lock(&watcher.mu);
  return watcher.started;
}

// What one line of a watch stream asks the reader to do next.
enum class LineResult { kContinue, kReconnect, kEnd };

// Handles one WatchResponse; `end_status` is set when the watch must end.
LineResult HandleWatchLine(Core& core, const std::shared_ptr<Watcher>& watcher,
                           std::string_view line, absl::Status& end_status) {
  json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded()) return LineResult::kReconnect;
  if (const json& error = Field(message, "error"); !error.is_null()) {
    const json& text = Field(error, "message");
    absl::Status status(CodeFromGrpc(Int(error, "code")),
                        core::Cat("etcd: watch \"", watcher->prefix, "\": ",
                                  text.is_string() ? text.get<std::string>() : error.dump()));
    if (status.code() == absl::StatusCode::kUnavailable) return LineResult::kReconnect;
    end_status = status;
    return LineResult::kEnd;
  }
  const json& result = Field(message, "result");
  if (Bool(result, "created")) {
    watcher->stream_created = true;
    FinishStart(*watcher, absl::OkStatus());
  }
  if (int64_t compacted = Int(result, "compact_revision"); compacted > 0) {
    core.NoteCompactionPoint(compacted);
    end_status = CompactedError(watcher->next_revision, FromEtcdRevision(compacted));
    return LineResult::kEnd;
  }
  if (Bool(result, "canceled")) return LineResult::kReconnect;
  const json& events = Field(result, "events");
  if (!events.is_array() || events.empty()) return LineResult::kContinue;
  std::vector<Event> batch;
  for (const json& item : events) {
    absl::StatusOr<KeyValue> kv = ToKeyValue(Field(item, "kv"));
    if (!kv.ok()) {
      end_status = kv.status();
      return LineResult::kEnd;
    }
    Event event{.type = Field(item, "type") == "DELETE" ? Event::Type::kDelete : Event::Type::kPut,
                .kv = std::move(*kv)};
    // A stream resumed after a reconnect may repeat what an earlier one delivered.
    if (event.revision() < watcher->next_revision) continue;
    batch.push_back(std::move(event));
  }
  if (batch.empty()) return LineResult::kContinue;
  // etcd never splits one revision's events across responses, so everything up to the last
  // revision here has been seen.
  watcher->next_revision = batch.back().revision() + 1;
  core.Deliver(watcher, std::move(batch));
  return LineResult::kContinue;
}

// The body of a watch's reader thread: streams from etcd, reconnecting until cancelled.
void ReadWatch(std::shared_ptr<Core> core, std::shared_ptr<Watcher> watcher) {
  const size_t n = core->endpoints().size();
  size_t endpoint = core->preferred();
  size_t failures_before_start = 0;
  absl::Duration backoff = absl::Milliseconds(50);
  bool reconnecting = false;
  while (!watcher->stopping.HasBeenNotified()) {
    if (reconnecting) {
      // etcd accepts a start at its compaction point although a delete there may be gone; the
      // Store promises an error instead, as at creation.
      absl::StatusOr<int64_t> point = core->EtcdCompactionPoint();
      if (point.ok() && ToEtcdRevision(watcher->next_revision) <= *point) {
        core::ReportError(kWhere, core::Cat("watch \"", watcher->prefix, "\": resume"),
                          CompactedError(watcher->next_revision, FromEtcdRevision(*point)));
        return;
      }
    }
    reconnecting = true;
    api::HttpClient client(core->Url(endpoint), core->ClientOptions());
    json create = watcher->range;
    create["start_revision"] = std::to_string(ToEtcdRevision(watcher->next_revision));
    std::string pending;
    watcher->stream_created = false;
    LineResult outcome = LineResult::kReconnect;
    absl::Status end_status;
    absl::StatusOr<api::HttpResponse> response = client.Stream(
        "/v3/watch",
        [&](std::string_view chunk) {
          pending.append(chunk);
          for (size_t newline; (newline = pending.find('\n')) != std::string::npos;) {
            outcome = HandleWatchLine(*core, watcher, std::string_view(pending).substr(0, newline),
                                      end_status);
            pending.erase(0, newline + 1);
            if (outcome != LineResult::kContinue) return false;
          }
          outcome = LineResult::kReconnect;  // if the stream ends here, etcd went away
          return true;
        },
        api::HttpClient::StreamOptions{.method = "POST",
                                       .body = json{{"create_request", create}}.dump(),
                                       .canceller = &watcher->canceller});
    if (watcher->stopping.HasBeenNotified()) return;
    if (response.ok() && response->status != 200) {
      json error = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
      end_status = absl::Status(
          CodeFromGrpc(Int(error, "code")),
          core::Cat("etcd ", core->endpoints()[endpoint], ": watch \"", watcher->prefix,
                    "\": HTTP ", response->status, ": ", response->body));
      outcome = end_status.code() == absl::StatusCode::kUnavailable ? LineResult::kReconnect
                                                                    : LineResult::kEnd;
    }
    if (outcome == LineResult::kEnd) {
      if (Started(*watcher)) {
        core::ReportError(kWhere, core::Cat("watch \"", watcher->prefix, "\": ended"), end_status);
      }
      FinishStart(*watcher, end_status);
      return;
    }
    if (Started(*watcher)) {
      failures_before_start = 0;
    } else if (++failures_before_start >= n) {
      FinishStart(*watcher, absl::UnavailableError(core::Cat(
                                "etcd: watch \"", watcher->prefix, "\": no endpoint of ",
                                absl::StrJoin(core->endpoints(), ","), " answered: ",
                                response.ok() ? "stream ended" : response.status().message())));
      return;
    }
    // The stream broke: the next endpoint, after a pause that grows while nothing answers.
    endpoint = (endpoint + 1) % n;
    if (watcher->stream_created) backoff = absl::Milliseconds(50);
    if (watcher->stopping.WaitForNotificationWithTimeout(backoff)) return;
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

class EtcdWatchHandle final : public WatchHandle {
 public:
  EtcdWatchHandle(std::shared_ptr<Core> core, std::shared_ptr<Watcher> watcher, std::thread reader)
      : core_(std::move(core)), watcher_(std::move(watcher)), reader_(std::move(reader)) {}
  ~EtcdWatchHandle() override {
    core_->Cancel(watcher_);
    watcher_->stopping.Notify();
    watcher_->canceller.Cancel();
    if (reader_.joinable()) reader_.join();
  }

 private:
  std::shared_ptr<Core> core_;
  std::shared_ptr<Watcher> watcher_;
  std::thread reader_;
};

}  // namespace

EtcdStore::EtcdStore(std::shared_ptr<Core> core, size_t max_txn_ops)
    : core_(std::move(core)), max_txn_ops_(max_txn_ops) {}

EtcdStore::~EtcdStore() { core_->Shutdown(); }

const std::vector<std::string>& EtcdStore::endpoints() const { return core_->endpoints(); }

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::Open(std::vector<std::string> endpoints,
                                                           const EtcdStoreOptions& options) {
  if (endpoints.empty()) {
    return absl::InvalidArgumentError("etcd: at least one endpoint (HOST:PORT) is needed");
  }
  for (const std::string& endpoint : endpoints) BERTH_RETURN_IF_ERROR(ValidateEndpoint(endpoint));
  std::unique_ptr<EtcdStore> store(
      new EtcdStore(std::make_shared<Core>(std::move(endpoints), options), options.max_txn_ops));
  // One read proves that some endpoint is an etcd with a leader.
  BERTH_RETURN_IF_ERROR(store->Revision().status());
  return store;
}

absl::StatusOr<GetResponse> EtcdStore::Get(std::string_view key) {
  GetResponse response;
  if (key.empty()) {  // etcd has no empty key
    BERTH_ASSIGN_OR_RETURN(response.revision, Revision());
    return response;
  }
  BERTH_ASSIGN_OR_RETURN(json answer, core_->Call(core::Cat("get \"", key, "\""), "/v3/kv/range",
                                                  json{{"key", B64(key)}}, true));
  response.revision = FromEtcdRevision(Int(Field(answer, "header"), "revision"));
  BERTH_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, ToKeyValues(Field(answer, "kvs")));
  if (!kvs.empty()) response.kv = std::move(kvs.front());
  return response;
}

absl::StatusOr<ListResponse> EtcdStore::List(std::string_view prefix, const ListOptions& options) {
  if (options.limit < 0) {
    return core::FieldError("list", "", "limit", core::Cat("must be >= 0, got ", options.limit));
  }
  json request = PrefixRange(prefix);
  if (!options.start_after.empty() && options.start_after >= prefix) {
    std::string start = options.start_after + std::string(1, '\0');
    std::string end = PrefixEnd(prefix);
    if (end != std::string(1, '\0') && start >= end) {
      ListResponse empty;
      BERTH_ASSIGN_OR_RETURN(empty.revision, Revision());
      return empty;
    }
    request["key"] = B64(start);
  }
  // etcd applies a limit before its revision filter: with both, the filter is applied here.
  const bool filter_here = options.min_mod_revision > 0 && options.limit > 0;
  if (options.limit > 0) request["limit"] = std::to_string(options.limit);
  if (options.min_mod_revision > 0 && !filter_here) {
    request["min_mod_revision"] = std::to_string(ToEtcdRevision(options.min_mod_revision));
  }
  BERTH_ASSIGN_OR_RETURN(
      json answer, core_->Call(core::Cat("list \"", prefix, "\""), "/v3/kv/range", request, true));
  ListResponse response;
  response.revision = FromEtcdRevision(Int(Field(answer, "header"), "revision"));
  BERTH_ASSIGN_OR_RETURN(response.kvs, ToKeyValues(Field(answer, "kvs")));
  response.more = Bool(answer, "more");
  if (filter_here) {
    std::erase_if(response.kvs,
                  [&](const KeyValue& kv) { return kv.mod_revision < options.min_mod_revision; });
  }
  return response;
}

absl::StatusOr<int64_t> EtcdStore::Revision() {
  json request{{"key", B64(std::string_view("\0", 1))}, {"count_only", true}};
  BERTH_ASSIGN_OR_RETURN(json answer, core_->Call("revision", "/v3/kv/range", request, true));
  return FromEtcdRevision(Int(Field(answer, "header"), "revision"));
}

namespace {

absl::Status ValidateBranch(const std::vector<Op>& ops, std::string_view branch) {
  std::map<std::string, size_t> puts;
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    if (op.type != Op::Type::kDeletePrefix && op.key.empty()) {
      return core::FieldError("txn", "", core::Cat(branch, "[", i, "].key"), "must not be empty");
    }
    if (op.type == Op::Type::kPut) {
      auto [it, inserted] = puts.emplace(op.key, i);
      if (!inserted) {
        return core::FieldError("txn", "", core::Cat(branch, "[", i, "].key"),
                                core::Cat("\"", op.key, "\" is also written by ", branch, "[",
                                          it->second, "]; etcd allows one write per key"));
      }
    }
  }
  // A put may not fall inside any delete of the same branch, whichever comes first.
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    if (op.type == Op::Type::kPut) continue;
    for (const auto& [key, index] : puts) {
      bool covered = op.type == Op::Type::kDelete ? key == op.key : key.starts_with(op.key);
      if (covered) {
        return core::FieldError("txn", "", core::Cat(branch, "[", index, "].key"),
                                core::Cat("\"", key, "\" is also deleted by ", branch, "[", i,
                                          "]; etcd allows one write per key"));
      }
    }
  }
  return absl::OkStatus();
}

json EncodeOp(const Op& op) {
  switch (op.type) {
    case Op::Type::kPut: {
      json put{{"key", B64(op.key)}, {"value", B64(op.value)}, {"prev_kv", true}};
      if (op.put_options.lease != 0) put["lease"] = std::to_string(op.put_options.lease);
      return json{{"request_put", put}};
    }
    case Op::Type::kDelete:
      return json{{"request_delete_range", json{{"key", B64(op.key)}, {"prev_kv", true}}}};
    case Op::Type::kDeletePrefix: {
      json range = PrefixRange(op.key);
      range["prev_kv"] = true;
      return json{{"request_delete_range", range}};
    }
  }
  return json::object();
}

json EncodeCompare(const Compare& compare) {
  json out{{"key", B64(compare.key)}, {"result", "EQUAL"}};
  switch (compare.target) {
    case Compare::Target::kModRevision:
      out["target"] = "MOD";
      out["mod_revision"] = std::to_string(ToEtcdRevision(compare.number));
      break;
    case Compare::Target::kCreateRevision:
      out["target"] = "CREATE";
      out["create_revision"] = std::to_string(ToEtcdRevision(compare.number));
      break;
    case Compare::Target::kVersion:
      out["target"] = "VERSION";
      out["version"] = std::to_string(compare.number);
      break;
    case Compare::Target::kValue:
      out["target"] = "VALUE";
      out["value"] = B64(compare.value);
      break;
  }
  return out;
}

// "txn on "/a", "/b"": the keys a transaction touches, for error messages.
std::string DescribeTxn(const TxnRequest& request) {
  std::set<std::string> keys;
  for (const Compare& compare : request.compares) keys.insert(compare.key);
  for (const Op& op : request.then_ops) keys.insert(op.key);
  for (const Op& op : request.else_ops) keys.insert(op.key);
  std::string out = "txn on";
  int shown = 0;
  for (const std::string& key : keys) {
    if (++shown > 4) {
      out += " ...";
      break;
    }
    out += core::Cat(shown == 1 ? " \"" : ", \"", key, "\"");
  }
  return out;
}

}  // namespace

absl::StatusOr<TxnResponse> EtcdStore::Txn(const TxnRequest& request) {
  BERTH_RETURN_IF_ERROR(ValidateTxn(request));
  // A transaction whose outcome is unknown (its answer was lost, or etcd timed it out while a
  // member was lost or a leader changed) is resolved here, so the callers' compare-and-set
  // loops see only definite answers: read back whether its puts landed, and send it again
  // (its compares make a second copy harmless) until an answer is definite or the request
  // timeout has passed.
  const absl::Time deadline = absl::Now() + core_->options().request_timeout;
  absl::Duration pause = absl::Milliseconds(100);
  bool ambiguous = false;
  for (;;) {
    absl::StatusOr<TxnResponse> response = TxnOnce(request);
    if (response.ok()) {
      if (!ambiguous || response->succeeded) return response;
      // Refused now, perhaps because an earlier copy applied and moved the compared keys: only
      // a read tells, so it is read until it answers.
      for (;;) {
        absl::StatusOr<std::optional<TxnResponse>> landed = Landed(request);
        if (landed.ok()) return landed->has_value() ? **landed : *response;
        if (absl::Now() + pause > deadline) {
          return absl::UnavailableError(core::Cat(
              "etcd: ", DescribeTxn(request),
              ": outcome unknown, read again before retrying: ", landed.status().message()));
        }
        absl::SleepFor(pause);
        pause = std::min(pause * 2, absl::Seconds(1));
      }
    }
    if (response.status().code() != absl::StatusCode::kUnavailable) return response;
    ambiguous = true;
    if (absl::Now() + pause > deadline) return response;
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Seconds(1));
    absl::StatusOr<std::optional<TxnResponse>> landed = Landed(request);
    if (landed.ok() && landed->has_value()) return **landed;
  }
}

absl::StatusOr<std::optional<TxnResponse>> EtcdStore::Landed(const TxnRequest& request) {
  // The then-branch landed at revision R when, read as of R, every key it puts held the value it
  // put, written at R, and R is newer than every revision the compares name. Later writes may
  // have changed those keys since (a new workload is placed at once), so R is looked for among
  // the revisions the keys were created or last written at, and each candidate is read as of
  // itself. A branch without puts leaves no trace to tell by: such a transaction is sent again.
  std::vector<const Op*> puts;
  for (const Op& op : request.then_ops) {
    if (op.type == Op::Type::kPut) puts.push_back(&op);
  }
  if (puts.empty()) return std::optional<TxnResponse>();
  int64_t floor = 0;
  for (const Compare& compare : request.compares) {
    if (compare.target == Compare::Target::kModRevision ||
        compare.target == Compare::Target::kCreateRevision) {
      floor = std::max(floor, compare.number);
    }
  }
  const std::string what = core::Cat("read back ", DescribeTxn(request));
  // Every put key in one read, as of `revision` (0: now).
  auto read = [&](int64_t revision) -> absl::StatusOr<std::vector<std::optional<KeyValue>>> {
    json body{{"compare", json::array()}, {"success", json::array()}, {"failure", json::array()}};
    for (const Op* op : puts) {
      json range{{"key", B64(op->key)}};
      if (revision > 0) range["revision"] = std::to_string(ToEtcdRevision(revision));
      body["success"].push_back(json{{"request_range", range}});
    }
    BERTH_ASSIGN_OR_RETURN(json answer, core_->Call(what, "/v3/kv/txn", body, true));
    const json& responses = Field(answer, "responses");
    if (!responses.is_array() || responses.size() != puts.size()) {
      return absl::DataLossError(core::Cat("etcd: ", what, ": ", puts.size(), " reads but ",
                                           responses.size(), " answers"));
    }
    std::vector<std::optional<KeyValue>> kvs;
    for (const json& item : responses) {
      BERTH_ASSIGN_OR_RETURN(std::vector<KeyValue> found,
                             ToKeyValues(Field(Field(item, "response_range"), "kvs")));
      kvs.push_back(found.empty() ? std::nullopt : std::optional<KeyValue>(found.front()));
    }
    return kvs;
  };
  BERTH_ASSIGN_OR_RETURN(std::vector<std::optional<KeyValue>> now, read(0));
  std::set<int64_t> candidates;
  for (const std::optional<KeyValue>& kv : now) {
    if (!kv) continue;
    for (int64_t r : {kv->create_revision, kv->mod_revision}) {
      if (r > floor) candidates.insert(r);
    }
  }
  for (int64_t at : candidates) {
    BERTH_ASSIGN_OR_RETURN(std::vector<std::optional<KeyValue>> then, read(at));
    bool all = true;
    for (size_t i = 0; i < puts.size() && all; ++i) {
      all = then[i] && then[i]->mod_revision == at && then[i]->value == puts[i]->value &&
            then[i]->lease == puts[i]->put_options.lease;
    }
    if (!all) continue;
    // What the ops found before they ran is gone with the lost answer; a put reports none.
    TxnResponse response;
    response.succeeded = true;
    response.revision = at;
    response.responses.resize(request.then_ops.size());
    return std::optional<TxnResponse>(std::move(response));
  }
  return std::optional<TxnResponse>();
}

absl::Status EtcdStore::ValidateTxn(const TxnRequest& request) {
  for (size_t i = 0; i < request.compares.size(); ++i) {
    if (request.compares[i].key.empty()) {
      return core::FieldError("txn", "", core::Cat("compares[", i, "].key"), "must not be empty");
    }
  }
  BERTH_RETURN_IF_ERROR(ValidateBranch(request.then_ops, "then_ops"));
  return ValidateBranch(request.else_ops, "else_ops");
}

absl::StatusOr<TxnResponse> EtcdStore::TxnOnce(const TxnRequest& request) {
  json body = json::object();
  body["compare"] = json::array();
  body["success"] = json::array();
  body["failure"] = json::array();
  for (const Compare& compare : request.compares) body["compare"].push_back(EncodeCompare(compare));
  for (const Op& op : request.then_ops) body["success"].push_back(EncodeOp(op));
  for (const Op& op : request.else_ops) body["failure"].push_back(EncodeOp(op));
  const std::string what = DescribeTxn(request);
  absl::StatusOr<json> answer = core_->Call(what, "/v3/kv/txn", body, /*idempotent=*/false);
  if (!answer.ok()) {
    if (answer.status().code() != absl::StatusCode::kNotFound) return answer.status();
    // The one NotFound a transaction gets: a put names a lease that has ended.
    std::string leases;
    for (const std::vector<Op>* ops : {&request.then_ops, &request.else_ops}) {
      for (const Op& op : *ops) {
        if (op.type == Op::Type::kPut && op.put_options.lease != 0) {
          leases += core::Cat(leases.empty() ? "" : ", ", "key \"", op.key, "\" lease ",
                              op.put_options.lease);
        }
      }
    }
    return absl::NotFoundError(
        core::Cat(leases, ": lease not found (expired or revoked): ", answer.status().message()));
  }
  TxnResponse response;
  response.succeeded = Bool(*answer, "succeeded");
  response.revision = FromEtcdRevision(Int(Field(*answer, "header"), "revision"));
  const std::vector<Op>& ops = response.succeeded ? request.then_ops : request.else_ops;
  const json& responses = Field(*answer, "responses");
  if (ops.size() != (responses.is_array() ? responses.size() : 0)) {
    return absl::DataLossError(
        core::Cat("etcd: ", what, ": ", ops.size(), " ops but ", responses.size(), " responses"));
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    OpResponse& op_response = response.responses.emplace_back();
    const json& item = responses[i];
    if (ops[i].type == Op::Type::kPut) {
      const json& prev = Field(Field(item, "response_put"), "prev_kv");
      if (!prev.is_null()) {
        BERTH_ASSIGN_OR_RETURN(KeyValue kv, ToKeyValue(prev));
        op_response.prev_kvs.push_back(std::move(kv));
      }
    } else {
      BERTH_ASSIGN_OR_RETURN(op_response.prev_kvs,
                             ToKeyValues(Field(Field(item, "response_delete_range"), "prev_kvs")));
    }
  }
  MaybeCompact(response.revision);
  return response;
}

void EtcdStore::MaybeCompact(int64_t revision) {
  const int64_t limit = core_->options().store.history_limit;
  if (limit <= 0) return;
  const int64_t compacted = FromEtcdRevision(core_->compaction_hint());
  // In steps of a quarter of the limit, as the in-process stores do.
  if (revision - compacted <= limit + std::max<int64_t>(limit / 4, 1)) return;
  if (!core_->TryStartCompaction()) return;
  core::OkOrReport(kWhere, core::Cat("compact history to revision ", revision - limit),
                   Compact(revision - limit));
  core_->EndCompaction();
}

absl::StatusOr<std::unique_ptr<WatchHandle>> EtcdStore::Watch(std::string_view prefix,
                                                              int64_t from_revision,
                                                              WatchCallback callback) {
  if (from_revision < 0) {
    return core::FieldError("watch", "", "from_revision",
                            core::Cat("must be >= 0, got ", from_revision));
  }
  if (!callback) return core::FieldError("watch", "", "callback", "must be set");
  if (from_revision == 0) {
    // Pinning "now" to a revision lets a reconnect resume from it.
    BERTH_ASSIGN_OR_RETURN(int64_t revision, Revision());
    from_revision = revision + 1;
  } else {
    BERTH_ASSIGN_OR_RETURN(int64_t compacted, CompactedRevision());
    if (from_revision <= compacted) return CompactedError(from_revision, compacted);
  }
  auto watcher = std::make_shared<Watcher>();
  watcher->prefix = std::string(prefix);
  watcher->range = PrefixRange(prefix);
  watcher->callback = std::move(callback);
  watcher->next_revision = from_revision;
  std::thread reader([core = core_, watcher] {
    core::OkOrReport(kWhere, core::Cat("watch \"", watcher->prefix, "\""),
                     core::RunGuarded("etcd watch reader", [&] { ReadWatch(core, watcher); }));
    FinishStart(*watcher, absl::InternalError("etcd: watch reader ended"));
  });
  absl::Status start_status;
  {
    absl::MutexLock lock(&watcher->mu);
    auto started = [&watcher]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(watcher->mu) { return watcher->started; };
    // Every endpoint gets its connect and request timeouts before the reader gives up.
    absl::Duration limit = (core_->options().request_timeout + core_->options().connect_timeout) *
                           static_cast<int64_t>(core_->endpoints().size());
    if (!watcher->mu.AwaitWithTimeout(absl::Condition(&started), limit)) {
      start_status = absl::DeadlineExceededError(core::Cat(
          "etcd: watch \"", prefix, "\": not created within ", absl::FormatDuration(limit)));
    } else {
      start_status = watcher->start_status;
    }
  }
  auto handle = std::make_unique<EtcdWatchHandle>(core_, watcher, std::move(reader));
  if (!start_status.ok()) return start_status;  // the handle stops and joins the reader
  return handle;
}

absl::Status EtcdStore::Compact(int64_t revision) {
  if (revision <= 0) return absl::OkStatus();
  absl::StatusOr<json> answer =
      core_->Call(core::Cat("compact to revision ", revision), "/v3/kv/compaction",
                  json{{"revision", std::to_string(ToEtcdRevision(revision))}}, true);
  if (answer.ok()) {
    core_->NoteCompactionPoint(ToEtcdRevision(revision));
    return absl::OkStatus();
  }
  std::string_view message(answer.status().message().data(), answer.status().message().size());
  if (answer.status().code() == absl::StatusCode::kOutOfRange) {
    if (message.find("compacted") != std::string_view::npos) {
      return absl::OkStatus();  // already compacted at or beyond it
    }
    if (message.find("future revision") != std::string_view::npos) {
      BERTH_ASSIGN_OR_RETURN(int64_t current, Revision());
      return absl::OutOfRangeError(
          core::Cat("compact: revision ", revision, " is beyond the current revision ", current));
    }
  }
  return answer.status();
}

absl::StatusOr<int64_t> EtcdStore::CompactedRevision() {
  BERTH_ASSIGN_OR_RETURN(int64_t point, core_->EtcdCompactionPoint());
  return FromEtcdRevision(point);
}

absl::StatusOr<LeaseId> EtcdStore::Grant(absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration()) {
    return core::FieldError("lease", "", "ttl",
                            core::Cat("must be positive, got ", absl::FormatDuration(ttl)));
  }
  const int64_t seconds = absl::ToInt64Seconds(absl::Ceil(ttl, absl::Seconds(1)));
  // Not idempotent, but a lease granted twice costs only an unused lease until its ttl ends.
  BERTH_ASSIGN_OR_RETURN(
      json answer, core_->Call(core::Cat("grant lease (ttl ", seconds, "s)"), "/v3/lease/grant",
                               json{{"TTL", std::to_string(seconds)}}, true));
  LeaseId id = Int(answer, "ID");
  if (id == 0) {
    return absl::DataLossError(core::Cat("etcd: grant lease: no lease id in ", answer.dump()));
  }
  return id;
}

absl::Status EtcdStore::KeepAlive(LeaseId id) {
  // The gateway runs the streaming KeepAlive RPC for the one request in the body.
  BERTH_ASSIGN_OR_RETURN(json answer,
                         core_->Call(core::Cat("keep lease ", id, " alive"), "/v3/lease/keepalive",
                                     json{{"ID", std::to_string(id)}}, true));
  if (Int(Field(answer, "result"), "TTL") <= 0) {
    return absl::NotFoundError(core::Cat("lease ", id, ": not found (expired or revoked)"));
  }
  return absl::OkStatus();
}

absl::Status EtcdStore::Revoke(LeaseId id) {
  absl::StatusOr<json> answer = core_->Call(core::Cat("revoke lease ", id), "/v3/lease/revoke",
                                            json{{"ID", std::to_string(id)}}, false);
  if (answer.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(core::Cat("lease ", id, ": not found (expired or revoked)"));
  }
  return answer.status();
}

absl::StatusOr<LeaseInfo> EtcdStore::GetLease(LeaseId id) {
  BERTH_ASSIGN_OR_RETURN(json answer,
                         core_->Call(core::Cat("get lease ", id), "/v3/lease/timetolive",
                                     json{{"ID", std::to_string(id)}, {"keys", true}}, true));
  const int64_t remaining = Int(answer, "TTL");
  if (remaining < 0) {
    return absl::NotFoundError(core::Cat("lease ", id, ": not found (expired or revoked)"));
  }
  LeaseInfo info{.id = id,
                 .ttl = absl::Seconds(Int(answer, "grantedTTL")),
                 .remaining = absl::Seconds(remaining),
                 .keys = {}};
  const json& keys = Field(answer, "keys");
  if (keys.is_array()) {
    for (const json& key : keys) {
      std::string decoded;
      if (!key.is_string() ||
          !absl::Base64Unescape(absl::string_view(key.get_ref<const std::string&>()), &decoded)) {
        return absl::DataLossError(core::Cat("etcd: lease ", id, ": a key is not base64"));
      }
      info.keys.push_back(std::move(decoded));
    }
  }
  std::sort(info.keys.begin(), info.keys.end());
  return info;
}

absl::StatusOr<int> EtcdStore::ExpireLeases() { return 0; }

absl::StatusOr<SnapshotInfo> EtcdStore::SaveSnapshot(const std::string& path,
                                                     const SnapshotProgress& progress) {
  const std::string tmp = TempPathBeside(path);
  const size_t n = core_->endpoints().size();
  const size_t first = core_->preferred();
  SnapshotInfo info{.format = SnapshotFormat::kEtcd};
  // etcd 3.4 leaves the header out of snapshot messages: the revision when the snapshot began
  // stands in (the snapshot holds at least it).
  BERTH_ASSIGN_OR_RETURN(const int64_t started_at, Revision());
  absl::Status last;
  for (size_t i = 0; i < n; ++i) {
    const size_t endpoint = (first + i) % n;
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
      return absl::InternalError(
          core::Cat("save etcd snapshot: create ", tmp, ": ", strerror(errno)));
    }
    int64_t written = 0;
    int64_t header_revision = 0;
    std::string pending;
    absl::Status stream_status;
    api::HttpClient client(core_->Url(endpoint), core_->ClientOptions());
    // One line of JSON per SnapshotResponse: a base64 blob and the bytes still to come.
    auto handle_line = [&](std::string_view line) -> bool {
      json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (message.is_discarded()) {
        stream_status = absl::DataLossError("a snapshot message is not JSON");
        return false;
      }
      if (const json& error = Field(message, "error"); !error.is_null()) {
        const json& text = Field(error, "message");
        stream_status = absl::Status(CodeFromGrpc(Int(error, "code")),
                                     text.is_string() ? text.get<std::string>() : error.dump());
        return false;
      }
      const json& result = Field(message, "result");
      if (header_revision == 0) header_revision = Int(Field(result, "header"), "revision");
      absl::StatusOr<std::string> blob = Bytes(result, "blob");
      if (!blob.ok()) {
        stream_status = blob.status();
        return false;
      }
      for (size_t off = 0; off < blob->size();) {
        ssize_t w = write(fd, blob->data() + off, blob->size() - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          stream_status = absl::InternalError(core::Cat("write ", tmp, ": ", strerror(errno)));
          return false;
        }
        off += static_cast<size_t>(w);
      }
      written += static_cast<int64_t>(blob->size());
      if (progress) progress(written, written + Int(result, "remaining_bytes"));
      return true;
    };
    absl::StatusOr<api::HttpResponse> response = client.Stream(
        "/v3/maintenance/snapshot",
        [&](std::string_view chunk) {
          pending.append(chunk);
          for (size_t newline; (newline = pending.find('\n')) != std::string::npos;) {
            bool more = handle_line(std::string_view(pending).substr(0, newline));
            pending.erase(0, newline + 1);
            if (!more) return false;
          }
          return true;
        },
        api::HttpClient::StreamOptions{
            .idle_timeout = core_->options().request_timeout, .method = "POST", .body = "{}"});
    if (stream_status.ok() && !pending.empty()) handle_line(pending);
    close(fd);
    if (!response.ok()) {
      last = response.status();
    } else if (response->status != 200) {
      last = absl::UnavailableError(core::Cat("HTTP ", response->status, ": ", response->body));
    } else if (!stream_status.ok()) {
      last = stream_status;
    } else if (written == 0) {
      last = absl::DataLossError("the snapshot stream ended without data");
    } else {
      info.bytes = written;
      if (header_revision == 0) header_revision = ToEtcdRevision(started_at);
      info.revision = FromEtcdRevision(header_revision);
      json count{{"key", B64(std::string_view("\0", 1))},
                 {"range_end", B64(std::string_view("\0", 1))},
                 {"count_only", true}};
      if (header_revision > 0) count["revision"] = std::to_string(header_revision);
      absl::StatusOr<json> counted = core_->Call("count keys", "/v3/kv/range", count, true);
      if (counted.ok()) info.keys = Int(*counted, "count");
      absl::Status committed = CommitFile(tmp, path);
      if (!committed.ok()) return committed;
      return info;
    }
    if (last.code() != absl::StatusCode::kUnavailable) break;
  }
  std::remove(tmp.c_str());
  return absl::Status(last.code(),
                      core::Cat("save etcd snapshot from ", absl::StrJoin(core_->endpoints(), ","),
                                " to ", path, ": ", last.message()));
}

absl::StatusOr<std::vector<std::string>> ParseEtcdUrl(std::string_view url) {
  constexpr std::string_view kScheme = "etcd://";
  if (!url.starts_with(kScheme)) {
    return absl::InvalidArgumentError(
        core::Cat("store url \"", url, "\": must be etcd://HOST:PORT[,HOST:PORT...]"));
  }
  std::string_view rest = url.substr(kScheme.size());
  if (rest.empty()) {
    return absl::InvalidArgumentError(
        core::Cat("store url \"", url, "\": names no endpoint; want etcd://HOST:PORT[,...]"));
  }
  std::vector<std::string> endpoints;
  for (size_t start = 0;;) {
    size_t comma = rest.find(',', start);
    std::string endpoint(
        rest.substr(start, comma == std::string_view::npos ? rest.npos : comma - start));
    absl::Status valid = endpoint.empty()
                             ? absl::InvalidArgumentError("etcd endpoint \"\": must be HOST:PORT")
                             : ValidateEndpoint(endpoint);
    if (!valid.ok()) {
      return absl::InvalidArgumentError(core::Cat("store url \"", url, "\": endpoint ",
                                                  endpoints.size() + 1, ": ", valid.message()));
    }
    endpoints.push_back(std::move(endpoint));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return endpoints;
}

absl::StatusOr<std::unique_ptr<Store>> OpenEtcdStore(std::string_view url,
                                                     const EtcdStoreOptions& options) {
  BERTH_ASSIGN_OR_RETURN(std::vector<std::string> endpoints, ParseEtcdUrl(url));
  BERTH_ASSIGN_OR_RETURN(std::unique_ptr<EtcdStore> store,
                         EtcdStore::Open(std::move(endpoints), options));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace berth::state
