// Test scaffolding for api/http: polling with a deadline, and a raw loopback connection that
// speaks bytes (for malformed requests, pipelining and disconnects the client never produces).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace berth::api::testing {

// Polls `done` until it holds or `limit` passes; true if it held. The deadline is generous on
// purpose: it only bounds a failing test, it never decides a passing one.
inline bool PollUntil(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(60)) {
  const absl::Time deadline = absl::Now() + limit;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A blocking loopback TCP connection to 127.0.0.1:port.
class RawConnection {
 public:
  RawConnection(boost::asio::io_context& ioc, uint16_t port) : socket_(ioc) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  }

  void Send(std::string_view bytes) {
    boost::asio::write(socket_, boost::asio::buffer(bytes.data(), bytes.size()));
  }

  // Reads one response; on failure returns a response with result 0 and sets `ec`.
  boost::beast::http::response<boost::beast::http::string_body> Read(
      boost::beast::error_code* ec = nullptr) {
    boost::beast::http::response_parser<boost::beast::http::string_body> parser;
    parser.body_limit(64 << 20);
    boost::beast::error_code local;
    boost::beast::http::read(socket_, buffer_, parser, local);
    if (ec != nullptr) *ec = local;
    if (local) return {};
    return parser.release();
  }

  // True when the server closed the connection: the next read sees end of stream.
  bool ReadsEof() {
    char byte;
    boost::beast::error_code ec;
    if (buffer_.size() > 0) return false;
    socket_.read_some(boost::asio::buffer(&byte, 1), ec);
    return ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset;
  }

  void Close() {
    boost::beast::error_code ec;
    socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  boost::asio::ip::tcp::socket& socket() { return socket_; }

 private:
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
};

inline std::string Get(std::string_view target, std::string_view extra = "") {
  return std::string("GET ") + std::string(target) + " HTTP/1.1\r\nHost: t\r\n" +
         std::string(extra) + "\r\n";
}

}  // namespace berth::api::testing
