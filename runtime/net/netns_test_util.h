// Test support for the network driver: network namespaces a test creates (and always deletes),
// and a TCP listener/client that run inside a namespace without any external tool.
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace berth::runtime::net::testing {

// Creates namespaces "berth-t-<random>-<suffix>" and deletes them (with every link inside and
// every process started in them through the returned names) on destruction.
class TestNamespaces {
 public:
  explicit TestNamespaces(const std::vector<std::string>& suffixes);
  ~TestNamespaces();
  const std::string& Name(const std::string& suffix) const;
  bool ok() const { return ok_; }

 private:
  std::vector<std::pair<std::string, std::string>> names_;
  bool ok_ = true;
};

// Runs a shell-free command inside a namespace; returns its exit code.
int RunIn(const std::string& netns, const std::vector<std::string>& argv,
          std::string* out = nullptr);

// A TCP server on 0.0.0.0:<ephemeral> inside `netns` that answers each connection with "ok".
class TcpServer {
 public:
  explicit TcpServer(const std::string& netns);
  ~TcpServer();
  int port() const { return port_; }

 private:
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> port_{0};
};

// Connects from inside `netns` to address:port and reads the server's reply; true when "ok"
// arrived within `timeout`.
bool TcpReachable(const std::string& netns, const std::string& address, int port,
                  absl::Duration timeout);

// A port free at the moment inside `netns`.
int FreePort(const std::string& netns);

}  // namespace berth::runtime::net::testing
