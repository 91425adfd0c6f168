#include "api/http/server.h"

#include <atomic>
#include <memory>
#include <thread>

#include "api/http/client.h"
#include "api/http/http_test_util.h"
#include "api/http/metrics.h"
#include "api/http/router.h"
#include "core/strings.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace berth::api {
namespace {

namespace net = boost::asio;
namespace bhttp = boost::beast::http;
using testing::Get;
using testing::PollUntil;
using testing::RawConnection;

// Parked exchanges a test answers later, from its own thread.
struct Parking {
  absl::Mutex mu;
  std::vector<Responder> parked ABSL_GUARDED_BY(mu);
  size_t size() {
    absl::MutexLock lock(&mu);
    return parked.size();
  }
  std::vector<Responder> TakeAll() {
    absl::MutexLock lock(&mu);
    return std::move(parked);
  }
};

class ServerTest : public ::testing::Test {
 protected:
  void Serve(HttpServer::Options options = {}) {
    router_.Handle("GET", "/echo", [](const HttpRequest& r) {
      return HttpResponse::Text(200, core::Cat(r.method, " ", r.target));
    });
    router_.Handle("POST", "/echo", [](const HttpRequest& r) {
      return HttpResponse::Text(200, core::Cat("len=", r.body.size()));
    });
    router_.HandleAsync("GET", "/park", [this](const HttpRequest& r, Responder responder) {
      responder.OnCancel([this] { cancelled_++; });
      absl::MutexLock lock(&parking_.mu);
      parking_.parked.push_back(std::move(responder));
    });
    options.metrics = &metrics_;
    server_ = std::make_unique<HttpServer>(options, router_.AsHandler());
    absl::StatusOr<uint16_t> port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    port_ = *port;
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }
  std::string BaseUrl() const { return core::Cat("http://127.0.0.1:", port_); }

  net::io_context ioc_;
  MetricsRegistry metrics_;
  Router router_;
  Parking parking_;
  std::atomic<int> cancelled_{0};
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

TEST_F(ServerTest, StartBindsAnEphemeralPort) {
  Serve();
  EXPECT_NE(port_, 0);
  EXPECT_EQ(server_->port(), port_);
}

TEST_F(ServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  Serve();
  RawConnection conn(ioc_, port_);
  for (int i = 0; i < 200; ++i) {
    conn.Send(Get(core::Cat("/echo?i=", i)));
    auto r = conn.Read();
    ASSERT_EQ(r.result_int(), 200u);
    ASSERT_EQ(r.body(), core::Cat("GET /echo?i=", i));
    ASSERT_TRUE(r.keep_alive());
  }
  EXPECT_EQ(server_->open_connections(), 1);
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Serve();
  RawConnection conn(ioc_, port_);
  // A parked request first: the ones behind it must wait for it, not overtake it.
  std::string batch = Get("/park");
  for (int i = 0; i < 40; ++i) batch += Get(core::Cat("/echo?i=", i));
  conn.Send(batch);
  ASSERT_TRUE(PollUntil([&] { return parking_.size() == 1; }));
  for (Responder& r : parking_.TakeAll()) r.Send(HttpResponse::Text(200, "parked"));
  boost::beast::error_code read_ec;
  EXPECT_EQ(conn.Read(&read_ec).body(), "parked") << read_ec.message();
  for (int i = 0; i < 40; ++i) ASSERT_EQ(conn.Read().body(), core::Cat("GET /echo?i=", i));
}

TEST_F(ServerTest, ConnectionCloseIsHonoured) {
  Serve();
  RawConnection conn(ioc_, port_);
  conn.Send(Get("/echo", "Connection: close\r\n"));
  auto r = conn.Read();
  EXPECT_EQ(r.result_int(), 200u);
  EXPECT_FALSE(r.keep_alive());
  EXPECT_TRUE(conn.ReadsEof());
}

TEST_F(ServerTest, Http10GetsAnAnswerAndAClose) {
  Serve();
  RawConnection conn(ioc_, port_);
  conn.Send("GET /echo HTTP/1.0\r\n\r\n");
  auto r = conn.Read();
  EXPECT_EQ(r.result_int(), 200u);
  EXPECT_EQ(r.version(), 10u);
  EXPECT_EQ(r.body(), "GET /echo");
  EXPECT_TRUE(conn.ReadsEof());
}

TEST_F(ServerTest, OversizedBodyGets413WithJsonError) {
  HttpServer::Options options;
  options.max_body_bytes = 1024;
  Serve(options);
  HttpClient client(BaseUrl());
  auto ok = client.Post("/echo", std::string(1024, 'x'));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->body, "len=1024");

  auto big = client.Post("/echo", std::string(64 << 10, 'x'));
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(nlohmann::json::parse(big->body)["error"]["code"], "payload_too_large");

  // The client reconnects; the server keeps serving.
  auto after = client.Get("/echo");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->status, 200);
}

TEST_F(ServerTest, OversizedChunkedBodyGets413) {
  HttpServer::Options options;
  options.max_body_bytes = 100;
  Serve(options);
  RawConnection conn(ioc_, port_);
  conn.Send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "40\r\n" +
      std::string(64, 'a') + "\r\n40\r\n" + std::string(64, 'b') + "\r\n0\r\n\r\n");
  auto r = conn.Read();
  EXPECT_EQ(r.result_int(), 413u);
  EXPECT_FALSE(r.keep_alive());
}

TEST_F(ServerTest, MalformedRequestsGet400) {
  Serve();
  const std::string bad[] = {
      "GARBAGE\r\n\r\n",
      "GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: nope\r\n\r\n",
      "GET /echo HTTP/9.9\r\nHost: t\r\n\r\n",
      "GET /echo HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
      "GET echo HTTP/1.1\r\nHost: t\r\n\r\n",
  };
  for (const std::string& request : bad) {
    RawConnection conn(ioc_, port_);
    conn.Send(request);
    boost::beast::error_code ec;
    auto r = conn.Read(&ec);
    ASSERT_FALSE(ec) << ec.message() << " for " << request;
    EXPECT_EQ(r.result_int(), 400u) << request;
    EXPECT_TRUE(nlohmann::json::accept(r.body())) << r.body();
  }
}

TEST_F(ServerTest, OversizedHeaderGets431) {
  HttpServer::Options options;
  options.max_header_bytes = 1024;
  Serve(options);
  RawConnection conn(ioc_, port_);
  conn.Send(Get("/echo", core::Cat("X-Big: ", std::string(4096, 'h'), "\r\n")));
  auto r = conn.Read();
  EXPECT_EQ(r.result_int(), 431u);
}

TEST_F(ServerTest, DeferredResponderAnsweredFromAnotherThread) {
  Serve();
  HttpClient client(BaseUrl());
  absl::StatusOr<HttpResponse> result;
  std::thread caller([&] { result = client.Get("/park"); });
  ASSERT_TRUE(PollUntil([&] { return parking_.size() == 1; }));
  std::vector<Responder> parked = parking_.TakeAll();
  EXPECT_FALSE(parked[0].Answered());
  std::thread answerer([r = parked[0]] { r.Send(HttpResponse::Text(202, "later")); });
  answerer.join();
  caller.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, 202);
  EXPECT_EQ(result->body, "later");
  // Exactly once: the second answer is refused.
  EXPECT_TRUE(parked[0].Answered());
  EXPECT_FALSE(parked[0].Send(HttpResponse::Text(200, "again")));
  EXPECT_FALSE(parked[0].Cancelled());
  EXPECT_EQ(cancelled_.load(), 0);
}

TEST_F(ServerTest, ClientDisconnectCancelsTheParkedExchange) {
  Serve();
  RawConnection conn(ioc_, port_);
  conn.Send(Get("/park"));
  ASSERT_TRUE(PollUntil([&] { return parking_.size() == 1; }));
  EXPECT_EQ(server_->in_flight(), 1);
  conn.Close();
  ASSERT_TRUE(PollUntil([&] { return cancelled_.load() == 1; }));
  std::vector<Responder> parked = parking_.TakeAll();
  EXPECT_TRUE(parked[0].Cancelled());
  EXPECT_FALSE(parked[0].Send(HttpResponse::Text(200, "too late")));  // harmless
  bool late_callback = false;
  parked[0].OnCancel([&] { late_callback = true; });  // runs at once: already cancelled
  EXPECT_TRUE(late_callback);
  ASSERT_TRUE(PollUntil([&] { return server_->in_flight() == 0; }));
  ASSERT_TRUE(PollUntil([&] { return server_->open_connections() == 0; }));
}

TEST_F(ServerTest, DroppedResponderAnswers500) {
  router_.HandleAsync("GET", "/drop", [](const HttpRequest&, Responder) {});
  Serve();
  HttpClient client(BaseUrl());
  auto r = client.Get("/drop");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 500);
}

TEST_F(ServerTest, ThrowingHandlerAnswers500AndKeepsServing) {
  router_.Handle("GET", "/throw",
                 [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); });
  Serve();
  HttpClient client(BaseUrl());
  auto r = client.Get("/throw");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(client.Get("/echo")->status, 200);
}

TEST_F(ServerTest, TwoThousandIdleLongPollsOnTwoThreads) {
  constexpr int kConnections = 2000;
  HttpServer::Options options;
  options.threads = 2;
  Serve(options);
  std::vector<std::unique_ptr<RawConnection>> conns;
  conns.reserve(kConnections);
  for (int i = 0; i < kConnections; ++i) {
    conns.push_back(std::make_unique<RawConnection>(ioc_, port_));
    conns.back()->Send(Get(core::Cat("/park?i=", i)));
  }
  ASSERT_TRUE(PollUntil([&] { return parking_.size() == kConnections; }))
      << "parked " << parking_.size();
  EXPECT_EQ(server_->in_flight(), kConnections);
  EXPECT_EQ(server_->open_connections(), kConnections);
  // The server still answers other requests while all of them wait.
  HttpClient client(BaseUrl());
  EXPECT_EQ(client.Get("/echo")->status, 200);

  std::vector<Responder> parked = parking_.TakeAll();
  std::thread answerer([&] {
    for (size_t i = 0; i < parked.size(); ++i) {
      parked[i].Send(HttpResponse::Text(200, "released"));
    }
  });
  for (auto& conn : conns) {
    boost::beast::error_code ec;
    auto r = conn->Read(&ec);
    ASSERT_FALSE(ec) << ec.message();
    ASSERT_EQ(r.body(), "released");
  }
  answerer.join();
  EXPECT_EQ(cancelled_.load(), 0);
  ASSERT_TRUE(PollUntil([&] { return server_->in_flight() == 0; }));
}

TEST_F(ServerTest, LongPollWithServerTimer) {
  router_.HandleAsync("GET", "/wait", [this](const HttpRequest& r, Responder responder) {
    absl::Duration wait;
    if (!absl::ParseDuration(r.Query("wait").value_or("0s"), &wait)) {
      responder.SendError(400, "invalid_argument", "wait: not a duration");
      return;
    }
    TimerHandle timer = server_->RunAfter(
        wait, [responder] { responder.Send(HttpResponse::Text(200, "timeout")); });
    responder.OnCancel([timer] { timer.Cancel(); });
  });
  Serve();
  HttpClient client(BaseUrl());
  auto r = client.Get("/wait?wait=20ms");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "timeout");
}

TEST_F(ServerTest, TimerCancelStopsTheCallback) {
  Serve();
  std::atomic<bool> ran{false};
  TimerHandle cancelled = server_->RunAfter(absl::Hours(1), [&] { ran = true; });
  EXPECT_TRUE(cancelled.Cancel());
  EXPECT_FALSE(cancelled.Cancel());
  std::atomic<bool> fired{false};
  TimerHandle quick = server_->RunAfter(absl::Milliseconds(1), [&] { fired = true; });
  ASSERT_TRUE(PollUntil([&] { return fired.load(); }));
  EXPECT_FALSE(quick.Cancel());
  EXPECT_FALSE(ran.load());
  EXPECT_FALSE(TimerHandle().Cancel());
}

TEST_F(ServerTest, StopCancelsParkedExchangesAndPendingTimers) {
  Serve();
  RawConnection conn(ioc_, port_);
  conn.Send(Get("/park"));
  ASSERT_TRUE(PollUntil([&] { return parking_.size() == 1; }));
  std::atomic<bool> ran{false};
  server_->RunAfter(absl::Hours(1), [&] { ran = true; });
  server_->Stop();
  EXPECT_EQ(cancelled_.load(), 1);
  EXPECT_FALSE(ran.load());
  std::vector<Responder> parked = parking_.TakeAll();
  EXPECT_FALSE(parked[0].Send(HttpResponse::Text(200, "after stop")));
  EXPECT_FALSE(server_->RunAfter(absl::Milliseconds(1), [] {}).Cancel());
}

TEST_F(ServerTest, StreamingResponseSendsChunksAsTheyAreWritten) {
  std::atomic<bool> stream_cancelled{false};
  absl::Mutex mu;
  ResponseStream stream;
  router_.HandleAsync("GET", "/follow", [&](const HttpRequest&, Responder responder) {
    HttpHeaders headers;
    headers.Set("Content-Type", "text/plain");
    absl::MutexLock lock(&mu);
    stream = responder.StartStream(200, headers);
    stream.OnCancel([&] { stream_cancelled = true; });
    stream.Write("line 1\n");
  });
  Serve();

  RawConnection conn(ioc_, port_);
  conn.Send(Get("/follow"));
  // Read the header and the first chunk while the stream is still open.
  bhttp::response_parser<bhttp::string_body> parser;
  boost::beast::flat_buffer buffer;
  bhttp::read_header(conn.socket(), buffer, parser);
  EXPECT_EQ(parser.get().result_int(), 200u);
  EXPECT_TRUE(parser.get().chunked());
  std::string seen;
  auto on_chunk = [&](std::uint64_t, boost::beast::string_view body, boost::beast::error_code&) {
    seen.append(body.data(), body.size());
    return body.size();
  };
  parser.on_chunk_body(on_chunk);
  while (seen.size() < 7) bhttp::read_some(conn.socket(), buffer, parser);
  EXPECT_EQ(seen, "line 1\n");
  {
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(stream.Write("line 2\n"));
    EXPECT_TRUE(stream.Write(""));  // an empty write must not end the stream
    EXPECT_TRUE(stream.Write("line 3\n"));
    stream.Finish();
    EXPECT_FALSE(stream.Write("after finish"));
  }
  bhttp::read(conn.socket(), buffer, parser);
  EXPECT_EQ(seen, "line 1\nline 2\nline 3\n");
  EXPECT_TRUE(parser.is_done());
  EXPECT_FALSE(stream_cancelled.load());

  // The connection is reusable after the stream.
  conn.Send(Get("/echo"));
  bhttp::response<bhttp::string_body> next;
  bhttp::read(conn.socket(), buffer, next);
  EXPECT_EQ(next.body(), "GET /echo");
}

TEST_F(ServerTest, StreamIsCancelledWhenTheFollowerLeaves) {
  std::atomic<bool> stream_cancelled{false};
  absl::Mutex mu;
  ResponseStream stream;
  router_.HandleAsync("GET", "/follow", [&](const HttpRequest&, Responder responder) {
    absl::MutexLock lock(&mu);
    stream = responder.StartStream(200, {});
    stream.OnCancel([&] { stream_cancelled = true; });
  });
  Serve();
  RawConnection conn(ioc_, port_);
  conn.Send(Get("/follow"));
  bhttp::response_parser<bhttp::empty_body> parser;
  boost::beast::flat_buffer buffer;
  bhttp::read_header(conn.socket(), buffer, parser);
  conn.Close();
  ASSERT_TRUE(PollUntil([&] { return stream_cancelled.load(); }));
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(stream.Cancelled());
  EXPECT_FALSE(stream.Write("nobody listens"));
}

TEST_F(ServerTest, IdleConnectionsAreClosed) {
  HttpServer::Options options;
  options.idle_timeout = absl::Milliseconds(50);
  Serve(options);
  RawConnection conn(ioc_, port_);
  conn.Send(Get("/echo"));
  EXPECT_EQ(conn.Read().result_int(), 200u);
  EXPECT_TRUE(conn.ReadsEof());
  ASSERT_TRUE(PollUntil([&] { return server_->open_connections() == 0; }));
}

TEST_F(ServerTest, ParkedRequestsAreNotIdle) {
  HttpServer::Options options;
  options.idle_timeout = absl::Milliseconds(20);
  Serve(options);
  RawConnection conn(ioc_, port_);
  conn.Send(Get("/park"));
  ASSERT_TRUE(PollUntil([&] { return parking_.size() == 1; }));
  // Wait well past the idle timeout, measured by a server timer rather than a sleep.
  std::atomic<bool> waited{false};
  server_->RunAfter(absl::Milliseconds(200), [&] { waited = true; });
  ASSERT_TRUE(PollUntil([&] { return waited.load(); }));
  EXPECT_EQ(cancelled_.load(), 0);
  for (Responder& r : parking_.TakeAll()) r.Send(HttpResponse::Text(200, "still here"));
  EXPECT_EQ(conn.Read().body(), "still here");
}

TEST_F(ServerTest, MetricsRecordRequestsByRouteAndCode) {
  router_.Handle("GET", "/v1/workloads/{name}",
                 [](const HttpRequest&) { return HttpResponse::Text(200, "w"); });
  Serve();
  HttpClient client(BaseUrl());
  ASSERT_EQ(client.Get("/v1/workloads/a")->status, 200);
  ASSERT_EQ(client.Get("/v1/workloads/b")->status, 200);
  ASSERT_EQ(client.Get("/nope")->status, 404);
  auto& requests = metrics_.AddCounter("berth_http_requests_total", "");
  ASSERT_TRUE(PollUntil([&] {
    return requests.WithLabels(
                       {{"method", "GET"}, {"route", "/v1/workloads/{name}"}, {"code", "200"}})
                   .Value() == 2 &&
           requests.WithLabels({{"method", "GET"}, {"route", "unmatched"}, {"code", "404"}})
                   .Value() == 1;
  }));
  std::string text = metrics_.Render();
  EXPECT_NE(text.find("# TYPE berth_http_requests_total counter"), std::string::npos);
  EXPECT_NE(text.find("berth_http_request_duration_seconds_count{route=\"/v1/workloads/{name}\"} "
                      "2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("berth_http_open_connections 1"), std::string::npos) << text;
}

TEST_F(ServerTest, MetricsRecordDisconnectsAs499) {
  Serve();
  RawConnection conn(ioc_, port_);
  conn.Send(Get("/park"));
  ASSERT_TRUE(PollUntil([&] { return parking_.size() == 1; }));
  conn.Close();
  auto& requests = metrics_.AddCounter("berth_http_requests_total", "");
  ASSERT_TRUE(PollUntil([&] {
    return requests.WithLabels({{"method", "GET"}, {"route", "/park"}, {"code", "499"}}).Value() ==
           1;
  }));
}

TEST_F(ServerTest, ExpectContinueGetsAnInterimResponse) {
  Serve();
  RawConnection conn(ioc_, port_);
  conn.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  std::string interim(25, '\0');
  net::read(conn.socket(), net::buffer(interim));
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  conn.Send("hello");
  EXPECT_EQ(conn.Read().body(), "len=5");
}

TEST_F(ServerTest, StartFailsOnABadAddress) {
  HttpServer::Options options;
  options.host = "not-an-ip";
  HttpServer server(options, [](HttpRequest&, Responder r) {});
  EXPECT_FALSE(server.Start().ok());
}

}  // namespace
}  // namespace berth::api
