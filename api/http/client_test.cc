#include "api/http/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>

#include "api/http/http_test_util.h"
#include "api/http/router.h"
#include "api/http/server.h"
#include "core/strings.h"
#include "gtest/gtest.h"

namespace berth::api {
namespace {

using testing::PollUntil;

class ClientTest : public ::testing::Test {
 protected:
  void Serve(HttpServer::Options options = {}) {
    router_.Handle("GET", "/hello", [this](const HttpRequest& r) {
      requests_++;
      return HttpResponse::Text(200, core::Cat("hello ", r.Header("Authorization").value_or("-")));
    });
    router_.Handle("PUT", "/echo", [](const HttpRequest& r) {
      HttpResponse out = HttpResponse::Text(200, r.body);
      out.headers.Set("X-Content-Type-Seen", r.Header("Content-Type").value_or(""));
      return out;
    });
    router_.Handle("GET", "/big", [](const HttpRequest&) {
      return HttpResponse::Text(200, std::string(3 << 20, 'b'));
    });
    router_.HandleAsync("GET", "/never", [this](const HttpRequest&, Responder r) {
      absl::MutexLock lock(&mu_);
      parked_.push_back(r);
    });
    router_.HandleAsync("GET", "/follow", [this](const HttpRequest& r, Responder responder) {
      int n = std::stoi(r.Query("n").value_or("3"));
      ResponseStream stream = responder.StartStream(200, {});
      // Chunks leave from a timer chain so the client sees them arrive over time.
      WriteChunks(stream, 0, n);
    });
    router_.HandleAsync("POST", "/watch", [this](const HttpRequest& r, Responder responder) {
      // Echoes the request body as the first piece, then keeps the stream open.
      ResponseStream stream = responder.StartStream(200, {});
      if (!stream.Write(r.body)) return;
      absl::MutexLock lock(&mu_);
      open_streams_.push_back(stream);
    });
    server_ = std::make_unique<HttpServer>(options, router_.AsHandler());
    absl::StatusOr<uint16_t> port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    base_url_ = core::Cat("http://127.0.0.1:", *port);
  }
  void WriteChunks(ResponseStream stream, int i, int n) {
    if (i == n) {
      stream.Finish();
      return;
    }
    if (!stream.Write(core::Cat("event ", i, "\n"))) return;  // the follower left
    server_->RunAfter(absl::Milliseconds(1),
                      [this, stream, i, n] { WriteChunks(stream, i + 1, n); });
  }
  void TearDown() override {
    {
      absl::MutexLock lock(&mu_);
      parked_.clear();
      open_streams_.clear();
    }
    if (server_) server_->Stop();
  }

  Router router_;
  std::unique_ptr<HttpServer> server_;
  std::string base_url_;
  std::atomic<int> requests_{0};
  absl::Mutex mu_;
  std::vector<Responder> parked_ ABSL_GUARDED_BY(mu_);
  std::vector<ResponseStream> open_streams_ ABSL_GUARDED_BY(mu_);
};

TEST_F(ClientTest, SendsBodyContentTypeAndBearerToken) {
  Serve();
  HttpClient client(base_url_, HttpClientOptions{.bearer_token = "tok"});
  auto hello = client.Get("/hello");
  ASSERT_TRUE(hello.ok()) << hello.status();
  EXPECT_EQ(hello->body, "hello Bearer tok");
  auto echo = client.Request("PUT", "/echo", "{\"a\":1}", "application/json");
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(echo->body, "{\"a\":1}");
  EXPECT_EQ(echo->Header("X-Content-Type-Seen"), "application/json");
}

TEST_F(ClientTest, ReusesOneConnection) {
  Serve();
  HttpClient client(base_url_);
  for (int i = 0; i < 50; ++i) ASSERT_EQ(client.Get("/hello")->status, 200);
  EXPECT_EQ(server_->open_connections(), 1);
}

TEST_F(ClientTest, ReconnectsAfterTheServerDroppedTheConnection) {
  HttpServer::Options options;
  options.idle_timeout = absl::Milliseconds(30);
  Serve(options);
  HttpClient client(base_url_);
  ASSERT_EQ(client.Get("/hello")->status, 200);
  // The server closes the idle connection; the client does not know yet.
  ASSERT_TRUE(PollUntil([&] { return server_->open_connections() == 0; }));
  auto again = client.Get("/hello");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(requests_.load(), 2);
}

TEST_F(ClientTest, ReconnectsAfterAServerRestartOnTheSamePort) {
  Serve();
  HttpClient client(base_url_);
  ASSERT_EQ(client.Get("/hello")->status, 200);
  const uint16_t port = server_->port();
  server_->Stop();
  auto down = client.Get("/hello");
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();

  HttpServer::Options options;
  options.port = port;
  server_ = std::make_unique<HttpServer>(options, router_.AsHandler());
  if (!server_->Start().ok()) GTEST_SKIP() << "port " << port << " was taken meanwhile";
  auto up = client.Get("/hello");
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(up->status, 200);
}

TEST_F(ClientTest, TimesOutWithDeadlineExceeded) {
  Serve();
  HttpClient client(base_url_, HttpClientOptions{.timeout = absl::Milliseconds(100)});
  auto r = client.Get("/never");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  // The next request gets a fresh connection and works.
  auto next = client.Get("/hello");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->status, 200);
}

TEST_F(ClientTest, ConnectionRefusedIsUnavailable) {
  Serve();
  std::string url = base_url_;
  server_->Stop();
  server_.reset();
  HttpClient client(url, HttpClientOptions{.timeout = absl::Seconds(5)});
  EXPECT_EQ(client.Get("/hello").status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ClientTest, BadBaseUrlIsInvalidArgument) {
  for (const char* url :
       {"ftp://x", "http://", "http://h:notaport", "http://h:99999", "http://[::1"}) {
    HttpClient client(url);
    EXPECT_EQ(client.Get("/").status().code(), absl::StatusCode::kInvalidArgument) << url;
  }
}

TEST_F(ClientTest, ResponseLargerThanTheLimitIsResourceExhausted) {
  Serve();
  HttpClient client(base_url_, HttpClientOptions{.max_body_bytes = 1 << 20});
  auto limited = client.Get("/big");
  EXPECT_EQ(limited.status().code(), absl::StatusCode::kResourceExhausted)
      << limited.status() << " " << (limited.ok() ? limited->body.size() : 0);
  HttpClient roomy(base_url_);
  auto big = roomy.Get("/big");
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->body.size(), 3u << 20);
}

TEST_F(ClientTest, StreamDeliversChunksThenReturns) {
  Serve();
  HttpClient client(base_url_);
  std::string body;
  int calls = 0;
  auto r = client.Stream("/follow?n=20", [&](std::string_view chunk) {
    body.append(chunk);
    ++calls;
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  std::string want;
  for (int i = 0; i < 20; ++i) want += core::Cat("event ", i, "\n");
  EXPECT_EQ(body, want);
  EXPECT_GE(calls, 2);  // pieces arrived as they were written, not at the end
  // The connection is reused afterwards.
  EXPECT_EQ(client.Get("/hello")->status, 200);
  EXPECT_EQ(server_->open_connections(), 1);
}

TEST_F(ClientTest, StreamStopsWhenTheCallbackSaysSo) {
  Serve();
  HttpClient client(base_url_);
  std::string body;
  auto r = client.Stream("/follow?n=100000", [&](std::string_view chunk) {
    body.append(chunk);
    return body.find("event 3\n") == std::string::npos;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(body.find("event 3\n"), std::string::npos);
  EXPECT_EQ(client.Get("/hello")->status, 200);
}

TEST_F(ClientTest, StreamPostsABodyAndIsCancelledFromAnotherThread) {
  Serve();
  HttpClient client(base_url_);
  StreamCanceller canceller;
  absl::Mutex mu;
  std::string body;
  std::thread canceller_thread([&] {
    absl::MutexLock lock(&mu);
    auto echoed = [&body]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !body.empty(); };
    mu.AwaitWithTimeout(absl::Condition(&echoed), absl::Seconds(60));
    canceller.Cancel();
  });
  auto r = client.Stream(
      "/watch",
      [&](std::string_view chunk) {
        absl::MutexLock lock(&mu);
        body.append(chunk);
        return true;
      },
      HttpClient::StreamOptions{.method = "POST", .body = "{\"x\":1}", .canceller = &canceller});
  canceller_thread.join();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(body, "{\"x\":1}");
  }
  // The cancel does not leak into the next request on the same client.
  EXPECT_EQ(client.Get("/hello")->status, 200);
  EXPECT_EQ(client.Get("/hello")->status, 200);
  // A cancelled canceller ends a later stream before it sends anything.
  int before = requests_.load();
  auto again = client.Stream(
      "/hello", [](std::string_view) { return true; },
      HttpClient::StreamOptions{.canceller = &canceller});
  EXPECT_EQ(again.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(requests_.load(), before);
}

TEST_F(ClientTest, StreamOfAnErrorCollectsTheBody) {
  Serve();
  HttpClient client(base_url_);
  bool called = false;
  auto r = client.Stream("/missing", [&](std::string_view) {
    called = true;
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
  EXPECT_FALSE(called);
  EXPECT_EQ(StatusFromResponse(r->status, r->body).code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientTest, ConcurrentCallsOnOneClientAreSerialized) {
  Serve();
  HttpClient client(base_url_);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        auto r = client.Get("/hello");
        if (r.ok() && r->status == 200) ok++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 100);
}

}  // namespace
}  // namespace berth::api

namespace berth::api {
namespace {

// A loopback port with nothing listening on it.
uint16_t ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(ClientConnectTest, AClosedPortFailsAtOnceNamingTheAddress) {
  const uint16_t port = ClosedPort();
  HttpClient c(core::Cat("http://127.0.0.1:", port));
  auto r = c.Get("/hello");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_NE(r.status().message().find(core::Cat("127.0.0.1:", port)), std::string::npos)
      << r.status();
}

// A listener whose accept queue is full and never drained: the kernel drops further SYNs, so a
// connect hangs as it would towards a host that does not answer.
TEST(ClientConnectTest, AServerThatNeverAcceptsFailsAfterTheConnectTimeout) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(listen(listener, 0), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(filler, reinterpret_cast<sockaddr*>(&addr), len), 0);

  HttpClient c(core::Cat("http://127.0.0.1:", ntohs(addr.sin_port)),
               HttpClient::Options{.timeout = absl::Seconds(120),
                                   .connect_timeout = absl::Milliseconds(300)});
  const absl::Time start = absl::Now();
  auto r = c.Get("/hello");
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_NE(r.status().message().find("connect to 127.0.0.1"), std::string::npos) << r.status();
  EXPECT_GE(took, absl::Milliseconds(250));
  EXPECT_LT(took, absl::Seconds(60));  // the request's timeout is 120 s: connecting stopped first
  close(filler);
  close(listener);
}

}  // namespace
}  // namespace berth::api
