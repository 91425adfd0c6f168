#include "api/http/client.h"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "absl/strings/cord.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "core/strings.h"

namespace berth::api {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

namespace http_internal {
namespace {

struct ParsedUrl {
  std::string host;
  std::string port;
  std::string prefix;  // path prefix without a trailing '/'
};

absl::StatusOr<ParsedUrl> ParseBaseUrl(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  std::string_view rest(url);
  if (rest.substr(0, kScheme.size()) != kScheme) {
    return absl::InvalidArgumentError(
        core::Cat("http client: base url \"", url, "\" must start with http://"));
  }
  rest.remove_prefix(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  ParsedUrl out;
  if (slash != std::string_view::npos) out.prefix = std::string(rest.substr(slash));
  while (!out.prefix.empty() && out.prefix.back() == '/') out.prefix.pop_back();
  std::string_view host = authority;
  std::string_view port = "80";
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(
          core::Cat("http client: base url \"", url, "\" has an unterminated IPv6 address"));
    }
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') {
        return absl::InvalidArgumentError(
            core::Cat("http client: base url \"", url, "\" has a malformed host"));
      }
      port = authority.substr(close + 2);
    }
  } else {
    size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(core::Cat("http client: base url \"", url, "\" has no host"));
  }
  if (port.empty() || port.find_first_not_of("0123456789") != std::string_view::npos ||
      port.size() > 5 || std::stoi(std::string(port)) > 65535) {
    return absl::InvalidArgumentError(
        core::Cat("http client: base url \"", url, "\": port must be 1-65535, got \"", port, "\""));
  }
  out.host = std::string(host);
  out.port = std::string(port);
  return out;
}

bool IsDroppedConnection(const beast::error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::error::connection_aborted || ec == bhttp::error::partial_message;
}

}  // namespace

// One kept-alive connection and the private io_context that drives it; each call runs the
// io_context until its operation completes or the stream's deadline cancels it.
class ClientConnection {
 public:
  explicit ClientConnection(ParsedUrl url) : url_(std::move(url)), stream_(ioc_) {}

  bool connected() const { return connected_; }
  const ParsedUrl& url() const { return url_; }

  // Whether the server closed (or wrote on) the idle kept-alive connection since the last
  // answer: nothing is readable on an idle HTTP/1.1 connection until a request is sent. Seen
  // before sending, a dead server is told apart from one that died after reading the request.
  bool PeerClosed() {
    if (!connected_) return false;
    pollfd p{};
    p.fd = stream_.socket().native_handle();
    p.events = POLLIN | POLLRDHUP;
    return ::poll(&p, 1, 0) != 0;
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
    connected_ = false;
    buffer_.clear();
  }

  absl::Status Connect(std::chrono::steady_clock::time_point deadline) {
    Close();
    buffer_.clear();
    tcp::resolver resolver(ioc_);
    beast::error_code ec;
    tcp::resolver::results_type results;
    // The resolver has no deadline of its own: a timer cancels it.
    net::steady_timer timer(ioc_);
    timer.expires_at(deadline);
    timer.async_wait([&](beast::error_code e) {
      if (!e) resolver.cancel();
    });
    resolver.async_resolve(url_.host, url_.port,
                           [&](beast::error_code e, tcp::resolver::results_type r) {
                             ec = e;
                             results = std::move(r);
                             timer.cancel();
                           });
    Run();
    if (ec) {
      return absl::UnavailableError(
          core::Cat("http client: cannot resolve ", url_.host, ": ", ec.message()));
    }
    stream_.expires_at(deadline);
    stream_.async_connect(results, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    Run();
    if (ec) return TransportError("connect to", ec);
    beast::error_code opt_ec;
    stream_.socket().set_option(tcp::no_delay(true), opt_ec);
    connected_ = true;
    return absl::OkStatus();
  }

  template <typename Message>
  beast::error_code Write(Message& msg, std::chrono::steady_clock::time_point deadline) {
    beast::error_code ec;
    stream_.expires_at(deadline);
    bhttp::async_write(stream_, msg, [&](beast::error_code e, size_t) { ec = e; });
    Run();
    return ec;
  }

  template <typename Parser>
  beast::error_code ReadHeader(Parser& parser, std::chrono::steady_clock::time_point deadline) {
    beast::error_code ec;
    stream_.expires_at(deadline);
    bhttp::async_read_header(stream_, buffer_, parser,
                             [&](beast::error_code e, size_t) { ec = e; });
    Run();
    return ec;
  }

  // Reads the whole message (`some` false) or whatever arrives next (`some` true).
  template <typename Parser>
  beast::error_code Read(Parser& parser,
                         std::optional<std::chrono::steady_clock::time_point> deadline,
                         bool some = false) {
    beast::error_code ec;
    if (deadline) {
      stream_.expires_at(*deadline);
    } else {
      stream_.expires_never();
    }
    auto done = [&](beast::error_code e, size_t) { ec = e; };
    if (some) {
      bhttp::async_read_some(stream_, buffer_, parser, done);
    } else {
      bhttp::async_read(stream_, buffer_, parser, done);
    }
    Run();
    return ec;
  }

  // Cancels the pending operation; safe from any thread (it runs on the io_context).
  std::function<void()> Interrupter() {
    return [this] { net::post(ioc_, [this] { stream_.cancel(); }); };
  }
  // Runs interrupts posted after the last operation finished, so none reaches a later one.
  void DropPostedInterrupts() {
    ioc_.restart();
    ioc_.poll();
  }

  absl::Status TransportError(std::string_view what, const beast::error_code& ec) const {
    std::string where = core::Cat(what, " ", url_.host, ":", url_.port);
    if (ec == beast::error::timeout) {
      return absl::DeadlineExceededError(core::Cat("http client: ", where, ": timed out"));
    }
    return absl::UnavailableError(core::Cat("http client: ", where, ": ", ec.message()));
  }

 private:
  void Run() {
    ioc_.restart();
    ioc_.run();
  }

  const ParsedUrl url_;
  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  bool connected_ = false;

  friend class ::berth::api::HttpClient;
};

}  // namespace http_internal

namespace {

std::string ToStdString(beast::string_view s) { return std::string(s.data(), s.size()); }

// When connecting must end: connect_timeout from now, within the request's deadline.
std::chrono::steady_clock::time_point ConnectDeadline(
    const HttpClientOptions& options, std::chrono::steady_clock::time_point request_deadline) {
  return std::min(request_deadline, std::chrono::steady_clock::now() +
                                        absl::ToChronoNanoseconds(options.connect_timeout));
}

HttpResponse ToResponse(const bhttp::response_header<>& header) {
  HttpResponse out;
  out.status = static_cast<int>(header.result_int());
  for (const auto& field : header) {
    out.headers.Add(ToStdString(field.name_string()), ToStdString(field.value()));
  }
  return out;
}

}  // namespace

void StreamCanceller::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  if (interrupt_) interrupt_();
}

bool StreamCanceller::cancelled() {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

void StreamCanceller::SetInterrupt(std::function<void()> interrupt) {
  absl::MutexLock lock(&mu_);
  interrupt_ = std::move(interrupt);
}

HttpClient::HttpClient(std::string base_url, Options options)
    : base_url_(std::move(base_url)), options_(std::move(options)) {
  bearer_token_ = options_.bearer_token;
}

HttpClient::~HttpClient() = default;

void HttpClient::Close() {
  absl::MutexLock lock(&mu_);
  if (conn_) conn_->Close();
}

void HttpClient::SetBearerToken(std::string token) {
  absl::MutexLock lock(&mu_);
  bearer_token_ = std::move(token);
}

namespace {

bhttp::request<bhttp::string_body> BuildRequest(
    const http_internal::ParsedUrl& url, std::string_view bearer_token, std::string_view method,
    std::string_view path_with_query, std::string_view body, std::string_view content_type,
    const HttpHeaders& extra_headers) {
  bhttp::request<bhttp::string_body> req;
  req.version(11);
  req.method_string(beast::string_view(method.data(), method.size()));
  std::string target = core::Cat(url.prefix, path_with_query);
  if (target.empty() || target[0] != '/') target = core::Cat("/", target);
  req.target(target);
  req.set(bhttp::field::host, core::Cat(url.host, ":", url.port));
  req.set(bhttp::field::user_agent, "berth");
  if (!bearer_token.empty()) {
    req.set(bhttp::field::authorization, core::Cat("Bearer ", bearer_token));
  }
  if (!body.empty() && !content_type.empty()) {
    req.set(bhttp::field::content_type, std::string(content_type));
  }
  for (const auto& [name, value] : extra_headers.entries()) req.set(name, value);
  req.body() = std::string(body);
  req.keep_alive(true);
  req.prepare_payload();
  return req;
}

}  // namespace

namespace {

constexpr absl::string_view kNotSentPayload = "berth.http/not-sent";

absl::Status MarkNotSent(absl::Status status) {
  status.SetPayload(kNotSentPayload, absl::Cord("1"));
  return status;
}

}  // namespace

bool RequestNotSent(const absl::Status& status) {
  return status.GetPayload(kNotSentPayload).has_value();
}

absl::StatusOr<HttpResponse> HttpClient::Request(std::string_view method,
                                                 std::string_view path_with_query,
                                                 std::string_view body,
                                                 std::string_view content_type,
                                                 const HttpHeaders& extra_headers) {
  absl::MutexLock lock(&mu_);
  if (!conn_) {
    absl::StatusOr<http_internal::ParsedUrl> url = http_internal::ParseBaseUrl(base_url_);
    if (!url.ok()) return url.status();
    conn_ = std::make_unique<http_internal::ClientConnection>(std::move(*url));
  }
  const auto deadline =
      std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(options_.timeout);
  bhttp::request<bhttp::string_body> req = BuildRequest(
      conn_->url(), bearer_token_, method, path_with_query, body, content_type, extra_headers);

  for (int attempt = 0;; ++attempt) {
    if (attempt == 0 && conn_->PeerClosed()) conn_->Close();
    const bool reused = conn_->connected();
    if (!reused) {
      absl::Status connected = conn_->Connect(ConnectDeadline(options_, deadline));
      // A retry's failed connect does not prove the first try never reached the server.
      if (!connected.ok()) return attempt == 0 ? MarkNotSent(std::move(connected)) : connected;
    }
    beast::error_code ec = conn_->Write(req, deadline);
    if (ec) {
      conn_->Close();
      // The server may have closed an idle kept-alive connection: one fresh try.
      if (reused && attempt == 0 && ec != beast::error::timeout) continue;
      return conn_->TransportError(core::Cat("send ", method, " ", path_with_query, " to"), ec);
    }
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(options_.max_body_bytes);
    if (method == "HEAD") parser.skip(true);  // a HEAD response has framing but no body
    ec = conn_->ReadHeader(parser, deadline);
    // Beast 1.74 does not apply body_limit to a response's Content-Length: check it here.
    if (!ec && parser.content_length() && *parser.content_length() > options_.max_body_bytes) {
      ec = bhttp::error::body_limit;
    }
    if (!ec) ec = conn_->Read(parser, deadline);
    if (!ec && parser.get().body().size() > options_.max_body_bytes) ec = bhttp::error::body_limit;
    if (ec) {
      const bool nothing_read = !parser.got_some();
      conn_->Close();
      if (reused && attempt == 0 && nothing_read && http_internal::IsDroppedConnection(ec)) {
        continue;
      }
      if (ec == bhttp::error::body_limit) {
        return absl::ResourceExhaustedError(core::Cat("http client: response to ", method, " ",
                                                      path_with_query, " exceeds ",
                                                      options_.max_body_bytes, " bytes"));
      }
      return conn_->TransportError(
          core::Cat("read response to ", method, " ", path_with_query, " from"), ec);
    }
    bhttp::response<bhttp::string_body> msg = parser.release();
    HttpResponse out = ToResponse(msg.base());
    out.body = std::move(msg.body());
    if (!msg.keep_alive()) conn_->Close();
    return out;
  }
}

absl::StatusOr<HttpResponse> HttpClient::Stream(
    std::string_view path_with_query, const std::function<bool(std::string_view chunk)>& on_chunk,
    const StreamOptions& stream_options) {
  absl::MutexLock lock(&mu_);
  if (!conn_) {
    absl::StatusOr<http_internal::ParsedUrl> url = http_internal::ParseBaseUrl(base_url_);
    if (!url.ok()) return url.status();
    conn_ = std::make_unique<http_internal::ClientConnection>(std::move(*url));
  }
  const auto deadline =
      std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(options_.timeout);
  const std::string& method = stream_options.method;
  bhttp::request<bhttp::string_body> req =
      BuildRequest(conn_->url(), bearer_token_, method, path_with_query, stream_options.body,
                   "application/json", {});
  StreamCanceller* canceller = stream_options.canceller;
  auto cancelled_error = [&] {
    return absl::CancelledError(
        core::Cat("http client: stream ", method, " ", path_with_query, ": cancelled"));
  };
  if (canceller != nullptr) {
    if (canceller->cancelled()) return cancelled_error();
    // The flag is set before the interrupt is posted, and checked before every read: a cancel
    // that lands between reads is seen at the next check, one during a read cancels it.
    canceller->SetInterrupt(conn_->Interrupter());
  }
  struct ClearInterrupt {
    StreamCanceller* canceller;
    http_internal::ClientConnection* conn;
    ~ClearInterrupt() {
      if (canceller == nullptr) return;
      canceller->SetInterrupt(nullptr);
      conn->DropPostedInterrupts();
    }
  } clear_interrupt{canceller, conn_.get()};
  auto is_cancelled = [&] { return canceller != nullptr && canceller->cancelled(); };

  std::optional<bhttp::response_parser<bhttp::buffer_body>> parser;
  for (int attempt = 0;; ++attempt) {
    if (attempt == 0 && conn_->PeerClosed()) conn_->Close();
    const bool reused = conn_->connected();
    if (!reused) {
      absl::Status connected = conn_->Connect(ConnectDeadline(options_, deadline));
      // A retry's failed connect does not prove the first try never reached the server.
      if (!connected.ok()) return attempt == 0 ? MarkNotSent(std::move(connected)) : connected;
    }
    parser.emplace();
    if (is_cancelled()) {
      conn_->Close();
      return cancelled_error();
    }
    beast::error_code ec = conn_->Write(req, deadline);
    if (!ec) ec = conn_->ReadHeader(*parser, deadline);
    if (!ec) break;
    const bool nothing_read = !parser->got_some();
    conn_->Close();
    if (is_cancelled()) return cancelled_error();
    // The server may have closed an idle kept-alive connection: one fresh try.
    if (reused && attempt == 0 && nothing_read && ec != beast::error::timeout) continue;
    return conn_->TransportError(core::Cat("stream ", method, " ", path_with_query, " from"), ec);
  }
  parser->body_limit(boost::none);
  HttpResponse out = ToResponse(parser->get().base());
  const bool success = out.status >= 200 && out.status < 300;
  if (stream_options.on_head) stream_options.on_head(out);
  std::optional<std::chrono::steady_clock::time_point> idle_deadline;
  char buf[16 << 10];
  while (!parser->is_done()) {
    parser->get().body().data = buf;
    parser->get().body().size = sizeof(buf);
    if (stream_options.idle_timeout == absl::InfiniteDuration()) {
      idle_deadline.reset();
    } else {
      idle_deadline =
          std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(stream_options.idle_timeout);
    }
    if (is_cancelled()) {
      conn_->Close();
      return cancelled_error();
    }
    beast::error_code ec = conn_->Read(*parser, success ? idle_deadline : deadline, /*some=*/true);
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) {
      conn_->Close();
      if (is_cancelled()) return cancelled_error();
      return conn_->TransportError(core::Cat("stream ", method, " ", path_with_query, " from"), ec);
    }
    size_t n = sizeof(buf) - parser->get().body().size;
    if (n == 0) continue;
    if (!success) {
      if (out.body.size() + n > options_.max_body_bytes) {
        conn_->Close();
        return absl::ResourceExhaustedError(core::Cat("http client: response to ", method, " ",
                                                      path_with_query, " exceeds ",
                                                      options_.max_body_bytes, " bytes"));
      }
      out.body.append(buf, n);
      continue;
    }
    if (!on_chunk(std::string_view(buf, n))) {
      conn_->Close();
      return out;
    }
  }
  if (!parser->get().keep_alive()) conn_->Close();
  return out;
}

}  // namespace berth::api
