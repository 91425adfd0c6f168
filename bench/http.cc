// Requests per second of HttpServer + HttpClient on a trivial handler over keep-alive loopback
// connections from N client threads, against a baseline measured in the same run: a raw TCP
// echo server on the same number of I/O threads, bouncing the same request bytes back.
//
// Usage: bench_http [--clients=N] [--seconds=S] [--server_threads=T]
// Prints figures, the ratio against the baseline, and one JSON object as its last line.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "api/http/client.h"
#include "api/http/server.h"
#include "boost/asio.hpp"
#include "core/strings.h"

namespace berth::api {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

struct Config {
  int clients = 4;
  double seconds = 2;
  int server_threads = 2;
};

// A tiny echo server: every byte a connection sends comes straight back.
class EchoServer {
 public:
  explicit EchoServer(int threads) : acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), 0}) {
    Accept();
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
  }
  ~EchoServer() {
    ioc_.stop();
    for (auto& t : threads_) t.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  struct Session : std::enable_shared_from_this<Session> {
    explicit Session(tcp::socket s) : socket(std::move(s)) {}
    void Read() {
      socket.async_read_some(net::buffer(data),
                             [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                               if (ec) return;
                               net::async_write(self->socket, net::buffer(self->data, n),
                                                [self](boost::system::error_code ec, size_t) {
                                                  if (!ec) self->Read();
                                                });
                             });
    }
    tcp::socket socket;
    char data[16 << 10];
  };
  void Accept() {
    acceptor_.async_accept(net::make_strand(ioc_),
                           [this](boost::system::error_code ec, tcp::socket socket) {
                             if (ec) return;
                             socket.set_option(tcp::no_delay(true));
                             std::make_shared<Session>(std::move(socket))->Read();
                             Accept();
                           });
  }
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
};

// Runs `clients` threads for `seconds`, each calling `one()` (made per thread by `make`) in a
// loop; returns completed calls per second.
template <typename Make>
double Measure(const Config& config, Make make) {
  std::atomic<bool> stop{false};
  std::atomic<int64_t> total{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < config.clients; ++c) {
    threads.emplace_back([&] {
      auto one = make();
      int64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (!one()) {
          failures++;
          break;
        }
        ++n;
      }
      total += n;
    });
  }
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(config.seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (failures.load() > 0) std::fprintf(stderr, "%d client threads failed\n", failures.load());
  return static_cast<double>(total.load()) / elapsed;
}

int Main(int argc, char** argv) {
  Config config;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--clients=", 10) == 0) config.clients = std::atoi(argv[i] + 10);
    if (std::strncmp(argv[i], "--seconds=", 10) == 0) config.seconds = std::atof(argv[i] + 10);
    if (std::strncmp(argv[i], "--server_threads=", 17) == 0) {
      config.server_threads = std::atoi(argv[i] + 17);
    }
  }

  HttpServer::Options options;
  options.threads = config.server_threads;
  HttpServer server(options, [](HttpRequest&, Responder responder) {
    responder.Send(HttpResponse::Text(200, "ok"));
  });
  absl::StatusOr<uint16_t> port = server.Start();
  if (!port.ok()) {
    std::fprintf(stderr, "%s\n", port.status().ToString().c_str());
    return 1;
  }
  const std::string base = core::Cat("http://127.0.0.1:", *port);
  const double http_rps = Measure(config, [&] {
    auto client = std::make_shared<HttpClient>(base);
    return [client] {
      absl::StatusOr<HttpResponse> r = client->Get("/ping");
      return r.ok() && r->status == 200;
    };
  });
  server.Stop();

  // The same request bytes the client sends, echoed back over a raw socket.
  const std::string request = core::Cat("GET /ping HTTP/1.1\r\nHost: 127.0.0.1:", *port,
                                        "\r\nUser-Agent: berth\r\nConnection: keep-alive\r\n\r\n");
  EchoServer echo(config.server_threads);
  const uint16_t echo_port = echo.port();
  const double echo_rps = Measure(config, [&] {
    auto ioc = std::make_shared<net::io_context>();
    auto socket = std::make_shared<tcp::socket>(*ioc);
    socket->connect({net::ip::make_address("127.0.0.1"), echo_port});
    socket->set_option(tcp::no_delay(true));
    auto buf = std::make_shared<std::string>(request.size(), '\0');
    return [ioc, socket, buf, &request] {
      boost::system::error_code ec;
      net::write(*socket, net::buffer(request), ec);
      if (ec) return false;
      net::read(*socket, net::buffer(*buf), ec);
      return !ec;
    };
  });

  const double ratio = echo_rps > 0 ? http_rps / echo_rps : 0;
  std::printf("clients=%d server_threads=%d seconds=%.1f\n", config.clients, config.server_threads,
              config.seconds);
  std::printf("http keep-alive GET:   %12.0f req/s\n", http_rps);
  std::printf("raw TCP echo baseline: %12.0f round trips/s\n", echo_rps);
  std::printf("ratio http/echo:       %12.3f\n", ratio);
  std::printf(
      "{\"bench\":\"http\",\"clients\":%d,\"server_threads\":%d,\"http_rps\":%.0f,"
      "\"echo_rps\":%.0f,\"ratio\":%.3f}\n",
      config.clients, config.server_threads, http_rps, echo_rps, ratio);
  return 0;
}

}  // namespace
}  // namespace berth::api

int main(int argc, char** argv) { return berth::api::Main(argc, argv); }
