// Fuzzes the REST API from the router down: ApiServer's routes, authentication, body parsing,
// the decoders and the ControlPlane over an in-memory store, with no sockets in between
// (Responder::ToSink). An input is one request:
//
//   METHOD TARGET [admin|agent|none]\n
//   body...
//
// Each run checks that the request is answered exactly once, never with a 500 (a 5xx for a
// client's mistake is a bug), always with a JSON body on /v1 routes; a scheduling pass and a
// liveness check then run over whatever the requests created.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "api/api_server.h"
#include "state/memory_store.h"

namespace {

using berth::api::HttpRequest;
using berth::api::HttpResponse;

constexpr char kAdmin[] = "fuzz-admin";
constexpr char kAgent[] = "fuzz-join";

// The API over a fresh store. Rebuilt now and then so that state stays small.
struct Stack {
  Stack() {
    control = std::make_unique<berth::control::ControlPlane>(&store,
                                                             berth::control::ControlPlaneOptions{});
    berth::api::ApiServerOptions o;
    o.admin_token = kAdmin;
    o.agent_tokens = {kAgent};
    o.max_wait = absl::Milliseconds(5);  // parked long-polls end quickly
    o.threads = 1;
    api = std::make_unique<berth::api::ApiServer>(o, control.get(), nullptr);
    auto port = api->Start();  // timers for long-polls; requests never use the socket
    if (!port.ok()) {
      std::fprintf(stderr, "router_fuzz: %s\n", port.status().ToString().c_str());
      std::abort();
    }
  }
  ~Stack() { api->Stop(); }

  berth::state::MemoryStore store;
  std::unique_ptr<berth::control::ControlPlane> control;
  std::unique_ptr<berth::api::ApiServer> api;
};

[[noreturn]] void Die(const std::string& what, const HttpRequest& req, const std::string& body) {
  std::fprintf(stderr, "router_fuzz: %s\nrequest: %s %s\nresponse: %s\n", what.c_str(),
               req.method.c_str(), req.target.c_str(), body.substr(0, 2000).c_str());
  std::abort();
}

// Splits the input into a request; false when it has no request line.
bool ToRequest(std::string_view in, HttpRequest* req, std::string* role) {
  size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  req->body = nl == std::string_view::npos ? std::string() : std::string(in.substr(nl + 1));
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0) return false;
  req->method = std::string(line.substr(0, sp));
  std::string_view rest = line.substr(sp + 1);
  size_t sp2 = rest.find(' ');
  req->target = std::string(rest.substr(0, sp2));
  *role = sp2 == std::string_view::npos ? "admin" : std::string(rest.substr(sp2 + 1));
  if (req->target.empty()) return false;
  size_t q = req->target.find('?');
  req->path = req->target.substr(0, q);
  if (q != std::string::npos) {
    auto query = berth::api::ParseQuery(std::string_view(req->target).substr(q + 1));
    if (!query.ok()) return false;  // the server answers 400 before routing
    req->query = std::move(*query);
  }
  if (*role == "admin") req->headers.Set("Authorization", std::string("Bearer ") + kAdmin);
  if (*role == "agent") req->headers.Set("Authorization", std::string("Bearer ") + kAgent);
  req->remote_address = "127.0.0.1";
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<Stack> stack;
  static int runs = 0;
  if (!stack || ++runs % 500 == 0) {
    stack.reset();
    stack = std::make_unique<Stack>();
  }
  HttpRequest req;
  std::string role;
  if (!ToRequest(std::string_view(reinterpret_cast<const char*>(data), size), &req, &role)) {
    return 0;
  }

  struct Answer {
    std::mutex mu;
    std::condition_variable cv;
    int count = 0;
    HttpResponse response;
  };
  auto answer = std::make_shared<Answer>();
  stack->api->router().Dispatch(req, berth::api::Responder::ToSink([answer](HttpResponse r) {
                                  std::lock_guard<std::mutex> lock(answer->mu);
                                  ++answer->count;
                                  answer->response = std::move(r);
                                  answer->cv.notify_all();
                                }));
  HttpResponse response;
  {
    std::unique_lock<std::mutex> lock(answer->mu);
    if (!answer->cv.wait_for(lock, std::chrono::seconds(20), [&] { return answer->count > 0; })) {
      Die("no answer within 20s", req, "");
    }
    response = answer->response;
  }
  if (response.status >= 500 && response.status != 501 && response.status != 503) {
    Die("5xx answer", req, response.body);
  }
  if (req.path.rfind("/v1/", 0) == 0 &&
      response.Header("Content-Type").value_or("").find("json") != std::string::npos) {
    berth::core::Json j = berth::core::Json::parse(response.body, nullptr, false);
    if (j.is_discarded()) Die("answer is not JSON", req, response.body);
  }
  // Whatever the requests stored must not trip the background passes either.
  auto placed = stack->control->ScheduleOnce();
  auto down = stack->control->CheckHostsOnce();
  if ((!placed.ok() && placed.status().code() == absl::StatusCode::kInternal) ||
      (!down.ok() && down.status().code() == absl::StatusCode::kInternal)) {
    Die("background pass failed", req,
        placed.ok() ? down.status().ToString() : placed.status().ToString());
  }
  return 0;
}
