// A service endpoint's cost: requests per second and per-request latency through EndpointProxy
// (control/endpoint_proxy.h) to two replicas, against the same requests sent straight to one
// replica in the same run. Replicas are HttpServers answering GET / with "ok".
//
// Usage: bench_endpoint [--clients=N] [--seconds=S]
// Prints figures, the ratios against the direct baseline, and one JSON object as its last line.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
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
#include "api/http/router.h"
#include "api/http/server.h"
#include "control/endpoint_proxy.h"

namespace berth {
namespace {

struct Config {
  int clients = 4;
  double seconds = 2;
};

// One request on a fresh connection ("Connection: close"), as a client without a pool sends it.
bool FreshRequest(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  static constexpr char kReq[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ok = ok && send(fd, kReq, sizeof kReq - 1, MSG_NOSIGNAL) == sizeof kReq - 1;
  std::string got;
  char buf[1024];
  while (ok) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return ok && got.rfind("HTTP/1.1 200", 0) == 0;
}

struct Figures {
  double rps = 0;
  double p50_us = 0;
  double p99_us = 0;
  int failures = 0;
};

// `clients` threads calling `one()` for `seconds`.
template <typename Make>
Figures Measure(const Config& config, Make make) {
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::vector<double>> lat(config.clients);
  std::vector<std::thread> threads;
  for (int c = 0; c < config.clients; ++c) {
    threads.emplace_back([&, c] {
      auto one = make();
      while (!stop.load(std::memory_order_relaxed)) {
        auto t0 = std::chrono::steady_clock::now();
        if (!one()) {
          failures++;
          continue;
        }
        lat[c].push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count());
      }
    });
  }
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(config.seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  Figures f;
  f.failures = failures.load();
  f.rps = all.size() / elapsed;
  if (!all.empty()) {
    f.p50_us = all[all.size() / 2];
    f.p99_us = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  return f;
}

int Main(int argc, char** argv) {
  Config config;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--clients=", 0) == 0) config.clients = std::atoi(a.c_str() + 10);
    if (a.rfind("--seconds=", 0) == 0) config.seconds = std::atof(a.c_str() + 10);
  }
  api::Router router;
  router.Handle("GET", "/",
                [](const api::HttpRequest&) { return api::HttpResponse::Text(200, "ok"); });
  std::vector<std::unique_ptr<api::HttpServer>> replicas;
  std::vector<control::EndpointBackend> backends;
  for (int i = 0; i < 2; ++i) {
    replicas.push_back(
        std::make_unique<api::HttpServer>(api::HttpServer::Options{}, router.AsHandler()));
    auto port = replicas.back()->Start();
    if (!port.ok()) {
      std::fprintf(stderr, "%s\n", port.status().ToString().c_str());
      return 1;
    }
    backends.push_back({"127.0.0.1", *port});
  }
  auto proxy = control::EndpointProxy::Start({.listen_address = "127.0.0.1"});
  if (!proxy.ok()) {
    std::fprintf(stderr, "%s\n", proxy.status().ToString().c_str());
    return 1;
  }
  (*proxy)->SetBackends(backends);
  const int direct_port = backends[0].port;
  const int endpoint_port = (*proxy)->port();
  auto keepalive = [](int port) {
    return [port] {
      auto client = std::make_shared<api::HttpClient>("http://127.0.0.1:" + std::to_string(port));
      return [client] {
        auto r = client->Get("/");
        return r.ok() && r->status == 200;
      };
    };
  };
  auto fresh = [](int port) { return [port] { return [port] { return FreshRequest(port); }; }; };
  Figures direct_ka = Measure(config, keepalive(direct_port));
  Figures proxy_ka = Measure(config, keepalive(endpoint_port));
  Figures direct_new = Measure(config, fresh(direct_port));
  Figures proxy_new = Measure(config, fresh(endpoint_port));
  auto line = [](const char* what, const Figures& f) {
    std::printf("%-34s %10.0f req/s  p50 %7.0f us  p99 %7.0f us  failures %d\n", what, f.rps,
                f.p50_us, f.p99_us, f.failures);
  };
  std::printf("clients=%d seconds=%.1f replicas=2\n", config.clients, config.seconds);
  line("direct, keep-alive (baseline)", direct_ka);
  line("endpoint, keep-alive", proxy_ka);
  line("direct, connection per request", direct_new);
  line("endpoint, connection per request", proxy_new);
  const double ka_ratio = direct_ka.rps > 0 ? proxy_ka.rps / direct_ka.rps : 0;
  const double new_ratio = direct_new.rps > 0 ? proxy_new.rps / direct_new.rps : 0;
  std::printf("ratio endpoint/direct: keep-alive %.3f, connection per request %.3f\n", ka_ratio,
              new_ratio);
  std::printf(
      "{\"bench\":\"endpoint\",\"clients\":%d,\"direct_keepalive_rps\":%.0f,"
      "\"endpoint_keepalive_rps\":%.0f,\"direct_fresh_rps\":%.0f,\"endpoint_fresh_rps\":%.0f,"
      "\"endpoint_fresh_p50_us\":%.0f,\"direct_fresh_p50_us\":%.0f,\"keepalive_ratio\":%.3f,"
      "\"fresh_ratio\":%.3f,\"failures\":%d}\n",
      config.clients, direct_ka.rps, proxy_ka.rps, direct_new.rps, proxy_new.rps, proxy_new.p50_us,
      direct_new.p50_us, ka_ratio, new_ratio,
      direct_ka.failures + proxy_ka.failures + direct_new.failures + proxy_new.failures);
  (*proxy)->Stop();
  return 0;
}

}  // namespace
}  // namespace berth

int main(int argc, char** argv) { return berth::Main(argc, argv); }
