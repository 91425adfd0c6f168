#include "api/http/work_pool.h"

#include <atomic>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>

#include "absl/synchronization/notification.h"
#include "api/http/client.h"
#include "api/http/router.h"
#include "api/http/server.h"
#include "core/strings.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace berth::api {
namespace {

TEST(WorkPoolTest, SizesItselfToTheMachineWithAFloorOfFour) {
  EXPECT_GE(WorkPool::ResolveThreads(0), 4);
  EXPECT_GE(WorkPool::ResolveThreads(0), static_cast<int>(std::thread::hardware_concurrency()));
  EXPECT_EQ(WorkPool::ResolveThreads(3), 3);
  WorkPool pool({.threads = 2});
  EXPECT_EQ(pool.threads(), 2);
}

TEST(WorkPoolTest, RefusesPastTheBoundButAdmittedWorkPasses) {
  WorkPool pool({.threads = 1, .max_queued = 2});
  absl::Notification running, release;
  std::atomic<int> ran{0};
  ASSERT_TRUE(pool.TrySubmit([&] {
    running.Notify();
    release.WaitForNotification();
    ++ran;
  }));
  running.WaitForNotification();
  EXPECT_TRUE(pool.TrySubmit([&] { ++ran; }));
  EXPECT_TRUE(pool.TrySubmit([&] { ++ran; }));
  EXPECT_FALSE(pool.TrySubmit([&] { ++ran; }));
  EXPECT_EQ(pool.rejected(), 1);
  EXPECT_EQ(pool.queued(), 2u);
  EXPECT_TRUE(pool.Submit([&] { ++ran; }));  // admitted work is not bounded
  EXPECT_EQ(pool.queued(), 3u);
  release.Notify();
  pool.Stop();  // drains the queue first
  EXPECT_EQ(ran.load(), 4);
  EXPECT_FALSE(pool.Submit([] {}));
  EXPECT_FALSE(pool.TrySubmit([] {}));
}

TEST(WorkPoolTest, ATaskThatThrowsLeavesTheWorkerRunning) {
  WorkPool pool({.threads = 1});
  absl::Notification after;
  ASSERT_TRUE(pool.TrySubmit([] { throw std::runtime_error("boom"); }));
  ASSERT_TRUE(pool.TrySubmit([&] { after.Notify(); }));
  after.WaitForNotification();
  EXPECT_TRUE(after.HasBeenNotified());
}

// A router whose handlers run on a pool: "/slow" holds its worker until released.
class PooledRouterTest : public ::testing::Test {
 protected:
  void Routes() {
    router_.Handle("GET", "/slow", [this](const HttpRequest&) {
      slow_running_.Notify();
      release_.WaitForNotification();
      return HttpResponse::Text(200, "slow");
    });
    router_.Handle("GET", "/fast",
                   [](const HttpRequest&) { return HttpResponse::Text(200, "fast"); });
    router_.Handle("POST", "/echo",
                   [](const HttpRequest& r) { return HttpResponse::Text(200, r.body); });
    router_.RunOn(pool_.get());
  }
  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    if (server_) server_->Stop();
    pool_->Stop();
  }

  // Dispatches without a socket; the answer lands in `*out`, `done` notified.
  void DispatchTo(std::string method, std::string path, std::optional<HttpResponse>* out,
                  absl::Notification* done, std::string body = "") {
    HttpRequest req;
    req.method = std::move(method);
    req.path = std::move(path);
    req.target = req.path;
    req.body = std::move(body);
    router_.Dispatch(req, Responder::ToSink([out, done](HttpResponse r) {
                       *out = std::move(r);
                       done->Notify();
                     }));
  }

  std::unique_ptr<WorkPool> pool_;
  Router router_;
  std::unique_ptr<HttpServer> server_;
  absl::Notification slow_running_, release_;
};

TEST_F(PooledRouterTest, ASlowHandlerDoesNotHoldTheIoThreadOrAFastRequest) {
  pool_ = std::make_unique<WorkPool>(WorkPool::Options{.threads = 2});
  Routes();
  // One I/O thread: were the slow handler run on it, the fast request could not be read.
  server_ = std::make_unique<HttpServer>(HttpServer::Options{.threads = 1}, router_.AsHandler());
  absl::StatusOr<uint16_t> port = server_->Start();
  ASSERT_TRUE(port.ok()) << port.status();
  const std::string url = core::Cat("http://127.0.0.1:", *port);
  absl::StatusOr<HttpResponse> slow;
  std::thread slow_client([&] { slow = HttpClient(url).Get("/slow"); });
  slow_running_.WaitForNotification();
  absl::StatusOr<HttpResponse> fast = HttpClient(url).Get("/fast");
  ASSERT_TRUE(fast.ok()) << fast.status();
  EXPECT_EQ(fast->status, 200);
  EXPECT_EQ(fast->body, "fast");
  EXPECT_FALSE(release_.HasBeenNotified());  // answered while the slow one still ran
  release_.Notify();
  slow_client.join();
  ASSERT_TRUE(slow.ok()) << slow.status();
  EXPECT_EQ(slow->body, "slow");
}

TEST_F(PooledRouterTest, AFullQueueAnswers503WithRetryAfter) {
  pool_ = std::make_unique<WorkPool>(WorkPool::Options{.threads = 1, .max_queued = 1});
  Routes();
  std::optional<HttpResponse> first, second, third;
  absl::Notification first_done, second_done, third_done;
  DispatchTo("GET", "/slow", &first, &first_done);
  slow_running_.WaitForNotification();                                // the only worker is busy
  DispatchTo("POST", "/echo", &second, &second_done, "queued body");  // fills the queue
  DispatchTo("GET", "/fast", &third, &third_done);
  ASSERT_TRUE(third_done.HasBeenNotified());  // refused at once, on the dispatching thread
  EXPECT_EQ(third->status, 503);
  EXPECT_EQ(third->headers.Get("Retry-After").value_or(""), "1");
  EXPECT_EQ(nlohmann::json::parse(third->body)["error"]["code"], "unavailable");
  EXPECT_EQ(pool_->rejected(), 1);
  release_.Notify();
  first_done.WaitForNotification();
  second_done.WaitForNotification();
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(second->body, "queued body");  // the worker owns the request it was handed
}

TEST_F(PooledRouterTest, AHandlerThatThrowsOnAWorkerAnswers500) {
  pool_ = std::make_unique<WorkPool>(WorkPool::Options{.threads = 1});
  router_.Handle("GET", "/throw", [](const HttpRequest&) -> HttpResponse {
    throw std::runtime_error("broken handler");
  });
  Routes();
  std::optional<HttpResponse> out;
  absl::Notification done;
  DispatchTo("GET", "/throw", &out, &done);
  done.WaitForNotification();
  EXPECT_EQ(out->status, 500);
  EXPECT_NE(out->body.find("broken handler"), std::string::npos);
}

TEST_F(PooledRouterTest, UnknownRoutesStillGet404And405FromAWorker) {
  pool_ = std::make_unique<WorkPool>(WorkPool::Options{.threads = 1});
  Routes();
  std::optional<HttpResponse> missing, wrong_method;
  absl::Notification d1, d2;
  DispatchTo("GET", "/nowhere", &missing, &d1);
  DispatchTo("DELETE", "/fast", &wrong_method, &d2);
  d1.WaitForNotification();
  d2.WaitForNotification();
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(wrong_method->status, 405);
  EXPECT_EQ(wrong_method->headers.Get("Allow").value_or(""), "GET, HEAD");
}

}  // namespace
}  // namespace berth::api
