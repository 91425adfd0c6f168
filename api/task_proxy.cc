#include "api/task_proxy.h"

#include <memory>
#include <optional>
#include <utility>

#include "api/http/client.h"
#include "api/http/message.h"
#include "core/json.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;

namespace {

// How long the relay waits for a task API to accept a connection, and to answer a plain GET.
constexpr absl::Duration kConnectTimeout = absl::Seconds(5);
constexpr absl::Duration kAnswerTimeout = absl::Seconds(60);
// A followed relay stops reading upstream while this much waits for the client's socket.
constexpr size_t kRelayMaxPending = 8 << 20;

HttpResponse Unreachable(const TaskApiTarget& target, const absl::Status& status) {
  return HttpResponse::Error(
      503, "unavailable",
      Cat("host \"", target.host, "\": its agent's task API at ", target.url,
          " cannot be reached (", status.message(),
          "); check that the agent runs and that this server can reach the address its "
          "--task-api-listen serves on"));
}

// The task API's answer as this server's: its status, Content-Type and body. A 401 means the
// token is stale (the agent restarted and made a new one): that is this server's problem, not
// the client's, and passes once the agent's next heartbeat brings the new one.
HttpResponse Relayed(const TaskApiTarget& target, HttpResponse upstream) {
  if (upstream.status == 401) {
    return HttpResponse::Error(
        503, "unavailable",
        Cat("host \"", target.host,
            "\": its agent's task API refused the token of its latest heartbeat (the agent "
            "restarted?); try again after its next heartbeat"));
  }
  HttpResponse out;
  out.status = upstream.status;
  out.body = std::move(upstream.body);
  if (auto type = upstream.Header("Content-Type")) out.headers.Set("Content-Type", *type);
  return out;
}

}  // namespace

std::string TaskApiUrl(std::string_view address, uint16_t port) {
  if (address.find(':') != std::string_view::npos) return Cat("http://[", address, "]:", port);
  return Cat("http://", address, ":", port);
}

void RelayTaskGet(const TaskApiTarget& target, std::string path_with_query, bool follow,
                  Responder responder, BlockingCalls* calls) {
  if (!follow) {
    HttpClient http(target.url,
                    HttpClientOptions{.bearer_token = target.token,
                                      .timeout = kAnswerTimeout,
                                      .connect_timeout = kConnectTimeout,
                                      .max_body_bytes = kMaxTaskFileBytes + (64 << 10)});
    absl::StatusOr<HttpResponse> answer = http.Get(path_with_query);
    responder.Send(answer.ok() ? Relayed(target, *std::move(answer))
                               : Unreachable(target, answer.status()));
    return;
  }
  calls->Run("task API relay", [target, path = std::move(path_with_query), responder] {
    // The client leaving cancels the upstream read, wherever it waits.
    auto canceller = std::make_shared<StreamCanceller>();
    responder.OnCancel([canceller] { canceller->Cancel(); });
    HttpClient http(target.url, HttpClientOptions{.bearer_token = target.token,
                                                  .timeout = kAnswerTimeout,
                                                  .connect_timeout = kConnectTimeout,
                                                  .max_body_bytes = 1 << 20});
    std::optional<ResponseStream> out;  // this thread's alone
    HttpClient::StreamOptions options;
    options.canceller = canceller.get();
    options.on_head = [&](const HttpResponse& head) {
      if (head.status < 200 || head.status >= 300) return;  // its body comes back whole
      HttpHeaders headers;
      headers.Set("Content-Type", head.Header("Content-Type").value_or("text/plain"));
      if (auto size = head.Header(wire::kWarmStateSizeHeader)) {
        headers.Set(std::string(wire::kWarmStateSizeHeader), *size);
      }
      out = responder.StartStream(head.status, headers);
      out->OnCancel([canceller] { canceller->Cancel(); });
    };
    // Read upstream no faster than the client takes it: a slow client never makes this server
    // hold a whole file.
    absl::StatusOr<HttpResponse> answer = http.Stream(
        path,
        [&](std::string_view chunk) {
          if (!out.has_value() || !out->Write(chunk)) return false;
          while (out->PendingBytes() > kRelayMaxPending && !out->Cancelled()) {
            absl::SleepFor(absl::Milliseconds(5));
          }
          return !out->Cancelled();
        },
        options);
    if (out.has_value()) {
      out->Finish();  // either side ended it; a no-op when the client left
      return;
    }
    if (!answer.ok()) {
      if (!absl::IsCancelled(answer.status())) responder.Send(Unreachable(target, answer.status()));
      return;
    }
    responder.Send(Relayed(target, *std::move(answer)));
  });
}

void RelayTaskExec(const TaskApiTarget& target, std::string workload,
                   const wire::ExecRequest& request, Responder responder, BlockingCalls* calls) {
  calls->Run(
      "workload exec relay",
      [target, workload = std::move(workload), request, responder] {
        // The command runs up to its timeout over there; the answer comes after.
        HttpClient http(target.url, HttpClientOptions{.bearer_token = target.token,
                                                      .timeout = request.timeout + kAnswerTimeout,
                                                      .connect_timeout = kConnectTimeout,
                                                      .max_body_bytes = 256 << 20});
        absl::StatusOr<HttpResponse> answer =
            http.Post(Cat("/v1/tasks/", PercentEncode(workload), "/exec"),
                      wire::EncodeExecRequest(request).dump());
        responder.Send(answer.ok() ? Relayed(target, *std::move(answer))
                                   : Unreachable(target, answer.status()));
      },
      [responder](const absl::Status& s) { responder.Send(HttpResponse::FromStatus(s)); });
}

absl::StatusOr<int64_t> SaveWarmStateAt(const TaskApiTarget& target, const std::string& workload,
                                        const std::string& key) {
  // The VM pauses while its memory is written: minutes at most for a large guest.
  HttpClient http(target.url, HttpClientOptions{.bearer_token = target.token,
                                                .timeout = absl::Minutes(5) + kAnswerTimeout,
                                                .connect_timeout = kConnectTimeout,
                                                .max_body_bytes = 1 << 20});
  absl::StatusOr<HttpResponse> answer = http.Post(
      Cat("/v1/tasks/", PercentEncode(workload), "/warm-state"), core::Json{{"key", key}}.dump());
  if (!answer.ok()) {
    return absl::UnavailableError(Cat("host \"", target.host, "\": its agent's task API at ",
                                      target.url,
                                      " cannot be reached: ", answer.status().message()));
  }
  if (absl::Status s = StatusFromResponse(answer->status, answer->body); !s.ok()) {
    return absl::Status(s.code(), Cat("host \"", target.host, "\": ", s.message()));
  }
  const core::Json body = core::Json::parse(answer->body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object() || !body.contains("bytes") || !body["bytes"].is_number_integer()) {
    return absl::InternalError(Cat("host \"", target.host, "\": malformed warm state answer"));
  }
  return body["bytes"].get<int64_t>();
}

}  // namespace berth::api
