#include "api/http/server.h"

#include <sys/resource.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "api/http/metrics.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "core/strings.h"

namespace berth::api {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

namespace http_internal {
namespace {

std::string ToStd(beast::string_view s) { return std::string(s.data(), s.size()); }

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return std::chrono::hours(24 * 365);
  if (d < absl::ZeroDuration()) return std::chrono::nanoseconds(0);
  return absl::ToChronoNanoseconds(d);
}

// A bounded label value for the method, so odd methods cannot grow the metric series.
std::string MethodLabel(const std::string& method) {
  static const char* const kKnown[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
  for (const char* known : kKnown) {
    if (method == known) return method;
  }
  return "OTHER";
}

// True for statuses whose responses carry no body and no Content-Length.
bool BodylessStatus(int status) {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

std::string StatusLine(int version, int status) {
  beast::string_view reason = bhttp::obsolete_reason(bhttp::int_to_status(status));
  return core::Cat(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ", status, " ",
                   reason.empty() ? std::string("Unknown") : ToStd(reason), "\r\n");
}

// Framing fields come from the server; a handler's own copies would contradict them.
bool ReservedHeader(const std::string& name) {
  return beast::iequals(name, "Content-Length") || beast::iequals(name, "Transfer-Encoding") ||
         beast::iequals(name, "Connection");
}

void AppendHeaders(std::string& out, const HttpHeaders& headers) {
  for (const auto& [name, value] : headers.entries()) {
    if (ReservedHeader(name)) continue;
    // Header injection guard: a CR or LF would end the field early.
    if (name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      continue;
    }
    out += core::Cat(name, ": ", value, "\r\n");
  }
}

std::string ChunkSize(size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%zx\r\n", n);
  return buf;
}

}  // namespace

// Shared by Exchange and Connection: where one exchange stands, and who wants to hear of its end.
struct ExchangeState {
  enum class Phase { kOpen, kStreaming, kFinished, kCancelled };

  absl::Mutex mu;
  Phase phase ABSL_GUARDED_BY(mu) = Phase::kOpen;
  std::vector<std::function<void()>> on_cancel ABSL_GUARDED_BY(mu);
  std::vector<std::function<void(int)>> on_complete ABSL_GUARDED_BY(mu);
  std::atomic<size_t> pending_bytes{0};

  // Moves to kCancelled from kOpen or kStreaming; returns the callbacks to run, or nothing.
  bool Cancel(std::vector<std::function<void()>>* cancel_fns,
              std::vector<std::function<void(int)>>* complete_fns) {
    absl::MutexLock lock(&mu);
    if (phase != Phase::kOpen && phase != Phase::kStreaming) return false;
    phase = Phase::kCancelled;
    cancel_fns->swap(on_cancel);
    complete_fns->swap(on_complete);
    return true;
  }
  std::vector<std::function<void(int)>> TakeCompletions() {
    absl::MutexLock lock(&mu);
    std::vector<std::function<void(int)>> out;
    out.swap(on_complete);
    return out;
  }
};

// Whether posting into the io_context is still allowed. Stop flips it under the writer lock, so
// no thread posts into (or holds a connection of) a server being torn down.
struct ServerLife {
  absl::Mutex mu;
  bool running ABSL_GUARDED_BY(mu) = false;
};

class Connection;

// The shared core of the Responder copies of one exchange; owns the request.
class Exchange {
 public:
  Exchange(std::shared_ptr<ServerLife> life, std::weak_ptr<Connection> conn, uint64_t seq,
           HttpRequest request)
      : request(std::move(request)),
        state(std::make_shared<ExchangeState>()),
        life_(std::move(life)),
        conn_(std::move(conn)),
        seq_(seq) {}
  // An exchange without a connection: the whole response goes to `sink` (Responder::ToSink).
  explicit Exchange(std::function<void(HttpResponse)> sink)
      : state(std::make_shared<ExchangeState>()),
        life_(std::make_shared<ServerLife>()),
        seq_(0),
        sink_(std::move(sink)) {}
  ~Exchange();

  bool Send(HttpResponse response);
  bool StartStream(int status, HttpHeaders headers);
  bool Write(std::string_view chunk);
  void Finish();

  HttpRequest request;
  const std::shared_ptr<ExchangeState> state;

 private:
  // Runs `fn(connection)` on the connection's strand, if the connection and server live.
  bool PostToConnection(std::function<void(Connection&)> fn);

  // Sink exchanges: runs the completion callbacks, then hands `response` to the sink.
  void Deliver(HttpResponse response);

  const std::shared_ptr<ServerLife> life_;
  const std::weak_ptr<Connection> conn_;
  const uint64_t seq_;
  const std::function<void(HttpResponse)> sink_;
  HttpResponse streamed_ ABSL_GUARDED_BY(state->mu);  // sink exchanges: the stream so far
};

struct TimerImpl {
  explicit TimerImpl(net::io_context& ioc) : timer(ioc) {}
  net::steady_timer timer;
};

struct TimerState {
  std::atomic<bool> done{false};  // set by whichever of fire and Cancel comes first
  std::shared_ptr<ServerLife> life;
  std::weak_ptr<TimerImpl> impl;
  net::io_context* ioc = nullptr;
};

class ServerCore {
 public:
  ServerCore(const HttpServer::Options& options, HttpHandler handler)
      : options(options),
        handler(std::move(handler)),
        ioc(options.threads),
        acceptor(net::make_strand(ioc)),
        life(std::make_shared<ServerLife>()) {
    if (options.metrics != nullptr) {
      requests = &options.metrics->AddCounter("berth_http_requests_total",
                                              "HTTP requests answered, by method, route and code.");
      latency = &options.metrics->AddHistogram(
          "berth_http_request_duration_seconds",
          "Time from a request's dispatch to its response, by route.",
          MetricsRegistry::LatencyBuckets());
      open_gauge =
          &options.metrics
               ->AddGauge("berth_http_open_connections", "HTTP connections currently open.")
               .Default();
      in_flight_gauge = &options.metrics
                             ->AddGauge("berth_http_requests_in_flight",
                                        "HTTP requests dispatched but not answered.")
                             .Default();
    }
  }

  void Accept();
  void Register(const std::shared_ptr<Connection>& conn);
  void Unregister(Connection* conn);
  void RecordExchange(const std::string& method, const std::string& route, int status,
                      SteadyClock::duration latency);

  const HttpServer::Options options;
  const HttpHandler handler;
  net::io_context ioc;
  tcp::acceptor acceptor;
  std::shared_ptr<ServerLife> life;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::unique_ptr<net::steady_timer> accept_retry;

  absl::Mutex mu;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections ABSL_GUARDED_BY(mu);
  std::unordered_map<TimerState*, std::weak_ptr<TimerState>> timers ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;

  std::atomic<int64_t> open_connections{0};
  std::atomic<int64_t> in_flight{0};

  Family<Counter>* requests = nullptr;
  Family<Histogram>* latency = nullptr;
  Gauge* open_gauge = nullptr;
  Gauge* in_flight_gauge = nullptr;
};

// One accepted socket. Every member is touched only on the socket's strand. The connection
// keeps itself alive through its pending operations; exchanges reach it through a weak_ptr.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(ServerCore* core, tcp::socket socket)
      : core_(core), socket_(std::move(socket)), idle_timer_(socket_.get_executor()) {
    beast::error_code ec;
    tcp::endpoint peer = socket_.remote_endpoint(ec);
    if (!ec) {
      remote_address_ = peer.address().to_string();
      remote_port_ = peer.port();
    }
    socket_.set_option(tcp::no_delay(true), ec);
  }

  net::any_io_executor executor() { return socket_.get_executor(); }

  void Start() {
    core_->Register(shared_from_this());
    ArmIdle();
    DoRead();
  }

  // Closes the socket at once and cancels the exchange in flight.
  void Abort() {
    if (closed_) return;
    closed_ = true;
    DisarmIdle();
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    queue_.clear();
    out_.clear();
    if (busy_) {
      busy_ = false;
      std::vector<std::function<void()>> cancel_fns;
      std::vector<std::function<void(int)>> complete_fns;
      if (current_->Cancel(&cancel_fns, &complete_fns)) {
        EndExchange(499, std::move(complete_fns));
        for (auto& fn : cancel_fns) RunGuarded(fn);
      } else {
        EndExchange(499, current_->TakeCompletions());
      }
      current_.reset();
    }
    core_->Unregister(this);
    // Every caller holds its own reference, so this cannot destroy *this.
    self_while_busy_.reset();
  }

  void OnSend(uint64_t seq, HttpResponse response) {
    if (closed_ || !busy_ || seq != seq_) return;
    std::string out = StatusLine(current_version_, response.status);
    AppendHeaders(out, response.headers);
    if (!BodylessStatus(response.status)) {
      out += core::Cat("Content-Length: ", response.body.size(), "\r\n");
    }
    if (!current_keep_alive_) {
      out += "Connection: close\r\n";
    } else if (current_version_ == 10) {
      out += "Connection: keep-alive\r\n";
    }
    out += "\r\n";
    if (!current_head_ && !BodylessStatus(response.status)) out += response.body;
    Enqueue(std::move(out), 0);
    if (!current_keep_alive_) close_after_write_ = true;
    FinishExchange(response.status);
  }

  void OnStreamStart(uint64_t seq, int status, HttpHeaders headers) {
    if (closed_ || !busy_ || seq != seq_) return;
    current_status_ = status;
    // HTTP/1.0 has no chunked coding: the body runs to the close instead.
    streaming_chunked_ = current_version_ == 11;
    std::string out = StatusLine(current_version_, status);
    AppendHeaders(out, headers);
    if (streaming_chunked_) {
      out += "Transfer-Encoding: chunked\r\n";
      if (!current_keep_alive_) out += "Connection: close\r\n";
    } else {
      out += "Connection: close\r\n";
      current_keep_alive_ = false;
    }
    out += "\r\n";
    Enqueue(std::move(out), 0);
  }

  void OnStreamChunk(uint64_t seq, std::string chunk) {
    size_t n = chunk.size();
    if (closed_ || !busy_ || seq != seq_ || current_head_) {
      if (current_ && seq == seq_) current_->pending_bytes -= n;
      return;
    }
    if (streaming_chunked_) {
      Enqueue(core::Cat(ChunkSize(n), chunk, "\r\n"), n);
    } else {
      Enqueue(std::move(chunk), n);
    }
  }

  void OnStreamEnd(uint64_t seq) {
    if (closed_ || !busy_ || seq != seq_) return;
    if (streaming_chunked_ && !current_head_) Enqueue("0\r\n\r\n", 0);
    if (!current_keep_alive_) close_after_write_ = true;
    FinishExchange(current_status_);
  }

 private:
  struct Pending {
    HttpRequest request;
    std::optional<HttpResponse> error;  // answer without dispatching (bad request line, query)
    bool keep_alive = true;
  };
  struct OutItem {
    std::string bytes;
    size_t stream_payload = 0;  // body bytes of a stream chunk, for PendingBytes
    std::shared_ptr<ExchangeState> owner;
  };

  static void RunGuarded(const std::function<void()>& fn) {
    try {
      fn();
    } catch (...) {
      // Callbacks belong to handlers; one that throws must not take the I/O thread down.
    }
  }

  void ArmIdle() {
    uint64_t gen = ++idle_gen_;
    idle_timer_.expires_after(ToChrono(core_->options.idle_timeout));
    idle_timer_.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
      if (ec || gen != self->idle_gen_ || self->closed_) return;
      if (self->busy_) return;
      self->Abort();
    });
  }
  void DisarmIdle() {
    ++idle_gen_;
    idle_timer_.cancel();
  }

  void DoRead() {
    if (closed_ || reading_ || input_done_) return;
    if (queue_.size() >= core_->options.max_pipelined) return;  // resumes as the queue drains
    reading_ = true;
    parser_.emplace();
    parser_->body_limit(core_->options.max_body_bytes);
    parser_->header_limit(static_cast<uint32_t>(
        std::min<size_t>(core_->options.max_header_bytes, std::numeric_limits<uint32_t>::max())));
    bhttp::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (closed_) return;
    if (ec) {
      reading_ = false;
      OnReadError(ec);
      return;
    }
    const auto& req = parser_->get();
    auto expect = req.find(bhttp::field::expect);
    if (expect != req.end() && beast::iequals(expect->value(), "100-continue") && !busy_ &&
        queue_.empty() && out_.empty()) {
      Enqueue(StatusLine(req.version(), 100) + "\r\n", 0);
    }
    bhttp::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    reading_ = false;
    if (closed_) return;
    if (ec) {
      OnReadError(ec);
      return;
    }
    bhttp::request<bhttp::string_body> msg = parser_->release();
    parser_.reset();
    Pending pending;
    pending.keep_alive = msg.keep_alive();
    HttpRequest& r = pending.request;
    r.method = ToStd(msg.method_string());
    r.target = ToStd(msg.target());
    r.version = msg.version() == 10 ? 10 : 11;
    r.remote_address = remote_address_;
    r.remote_port = remote_port_;
    for (const auto& field : msg) r.headers.Add(ToStd(field.name_string()), ToStd(field.value()));
    r.body = std::move(msg.body());
    size_t q = r.target.find('?');
    r.path = r.target.substr(0, q);
    if (r.path.empty() || (r.path[0] != '/' && r.path != "*")) {
      pending.error = HttpResponse::Error(
          400, "bad_request", core::Cat("request target \"", r.target, "\" must start with '/'"));
    } else if (q != std::string::npos) {
      absl::StatusOr<std::vector<std::pair<std::string, std::string>>> query =
          ParseQuery(std::string_view(r.target).substr(q + 1));
      if (query.ok()) {
        r.query = std::move(*query);
      } else {
        pending.error =
            HttpResponse::Error(400, "bad_request", std::string(query.status().message()));
      }
    }
    if (!pending.keep_alive) input_done_ = true;
    queue_.push_back(std::move(pending));
    MaybeDispatch();
    DoRead();
  }

  void OnReadError(beast::error_code ec) {
    int status = 0;
    std::string message;
    if (ec == bhttp::error::body_limit) {
      status = 413;
      message =
          core::Cat("request body exceeds the limit of ", core_->options.max_body_bytes, " bytes");
    } else if (ec == bhttp::error::header_limit) {
      status = 431;
      message = core::Cat("request header exceeds the limit of ", core_->options.max_header_bytes,
                          " bytes");
    } else if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
               ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
      status = 400;
      message = core::Cat("malformed request: ", ec.message());
    }
    if (status == 0) {
      // The peer closed or reset the connection (or Stop cancelled the read).
      Abort();
      return;
    }
    input_done_ = true;
    Pending pending;
    pending.error = HttpResponse::Error(status, ErrorCodeForHttpStatus(status), message);
    pending.keep_alive = false;
    pending.request.method = parser_ && parser_->is_header_done()
                                 ? ToStd(parser_->get().method_string())
                                 : std::string("OTHER");
    queue_.push_back(std::move(pending));
    MaybeDispatch();
  }

  void MaybeDispatch() {
    while (!closed_ && !busy_ && !queue_.empty()) {
      Pending pending = std::move(queue_.front());
      queue_.pop_front();
      Dispatch(std::move(pending));
    }
  }

  void Dispatch(Pending pending) {
    DisarmIdle();
    busy_ = true;
    // With reading paused (a full pipeline) nothing else may hold the connection while the
    // exchange is parked; exchanges only hold it weakly.
    self_while_busy_ = shared_from_this();
    ++seq_;
    current_keep_alive_ = pending.keep_alive;
    current_version_ = pending.request.version;
    current_head_ = pending.request.method == "HEAD";
    current_method_ = pending.request.method;
    current_route_.clear();
    current_status_ = 200;
    streaming_chunked_ = false;
    current_start_ = SteadyClock::now();
    core_->in_flight++;
    if (core_->in_flight_gauge) core_->in_flight_gauge->Add(1);
    auto exchange =
        std::make_shared<Exchange>(core_->life, weak_from_this(), seq_, std::move(pending.request));
    current_ = exchange->state;
    if (pending.error) {
      exchange->Send(std::move(*pending.error));
      return;
    }
    // A handler that throws is a Berth bug: log it and answer 500 (a no-op if it answered).
    std::optional<std::string> failure;
    try {
      core_->handler(exchange->request, Responder(exchange));
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "unknown exception";
    }
    if (failure) {
      std::string what = core::Cat(
          MethodLabel(exchange->request.method), " ",
          exchange->request.route.empty() ? std::string("(unrouted)") : exchange->request.route,
          ": handler failed: ", *failure);
      std::fprintf(stderr, "berth: bug: %s\n", what.c_str());
      exchange->Send(HttpResponse::Error(500, "internal", what));
    }
    current_route_ = exchange->request.route;
  }

  // The exchange in flight has its whole response queued: account for it and move on.
  void FinishExchange(int status) {
    busy_ = false;
    // The caller (a posted handler) holds its own reference, so this cannot destroy *this.
    self_while_busy_.reset();
    std::shared_ptr<ExchangeState> state = std::move(current_);
    EndExchange(status, state->TakeCompletions());
    if (close_after_write_) {
      input_done_ = true;
      queue_.clear();
    }
    MaybeDispatch();
    if (!busy_) {
      DoRead();
      if (out_.empty()) AfterDrained();
    }
  }

  void EndExchange(int status, std::vector<std::function<void(int)>> complete_fns) {
    core_->in_flight--;
    if (core_->in_flight_gauge) core_->in_flight_gauge->Add(-1);
    core_->RecordExchange(current_method_, current_route_, status,
                          SteadyClock::now() - current_start_);
    for (auto& fn : complete_fns) {
      try {
        fn(status);
      } catch (...) {
      }
    }
  }

  void Enqueue(std::string bytes, size_t stream_payload) {
    out_.push_back(OutItem{std::move(bytes), stream_payload, stream_payload ? current_ : nullptr});
    if (!writing_) DoWrite();
  }

  void DoWrite() {
    if (closed_ || out_.empty()) return;
    writing_ = true;
    write_buffers_.clear();
    size_t n = std::min<size_t>(out_.size(), 64);
    for (size_t i = 0; i < n; ++i) write_buffers_.push_back(net::buffer(out_[i].bytes));
    net::async_write(
        socket_, write_buffers_,
        [self = shared_from_this(), n](beast::error_code ec, size_t) { self->OnWrite(ec, n); });
  }

  void OnWrite(beast::error_code ec, size_t items) {
    writing_ = false;
    if (closed_) return;
    if (ec) {
      Abort();
      return;
    }
    for (size_t i = 0; i < items && !out_.empty(); ++i) {
      if (out_.front().owner) out_.front().owner->pending_bytes -= out_.front().stream_payload;
      out_.pop_front();
    }
    if (!out_.empty()) {
      DoWrite();
      return;
    }
    AfterDrained();
  }

  // Everything queued is written: close if the last response asked for it, else wait idle.
  void AfterDrained() {
    if (busy_ || closed_) return;
    if (close_after_write_) {
      LingerAndClose();
      return;
    }
    if (queue_.empty()) ArmIdle();
  }

  // Half-closes and reads what the client still sends (the rest of an oversized body), so the
  // client sees our response instead of a reset; gives up after a short while.
  void LingerAndClose() {
    if (lingering_) return;
    lingering_ = true;
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    uint64_t gen = ++idle_gen_;
    idle_timer_.expires_after(std::min(ToChrono(core_->options.idle_timeout),
                                       SteadyClock::duration(std::chrono::seconds(5))));
    idle_timer_.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
      if (!ec && gen == self->idle_gen_) self->Abort();
    });
    if (!reading_) DrainRead();
  }
  void DrainRead() {
    if (closed_) return;
    drain_.resize(16 << 10);
    socket_.async_read_some(net::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) {
                                self->Abort();
                              } else {
                                self->DrainRead();
                              }
                            });
  }

  ServerCore* const core_;
  tcp::socket socket_;
  net::steady_timer idle_timer_;
  uint64_t idle_gen_ = 0;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::string remote_address_;
  uint16_t remote_port_ = 0;

  std::deque<Pending> queue_;
  bool reading_ = false;
  bool input_done_ = false;  // no more requests will be read
  bool closed_ = false;
  bool lingering_ = false;
  std::string drain_;

  bool busy_ = false;  // an exchange is in flight
  std::shared_ptr<Connection> self_while_busy_;
  uint64_t seq_ = 0;
  std::shared_ptr<ExchangeState> current_;
  bool current_keep_alive_ = true;
  bool current_head_ = false;
  int current_version_ = 11;
  int current_status_ = 200;
  bool streaming_chunked_ = false;
  std::string current_method_;
  std::string current_route_;
  SteadyClock::time_point current_start_;

  std::deque<OutItem> out_;
  std::vector<net::const_buffer> write_buffers_;
  bool writing_ = false;
  bool close_after_write_ = false;
};

Exchange::~Exchange() {
  ExchangeState::Phase phase;
  {
    absl::MutexLock lock(&state->mu);
    phase = state->phase;
    if (phase == ExchangeState::Phase::kOpen || phase == ExchangeState::Phase::kStreaming) {
      state->phase = ExchangeState::Phase::kFinished;
    }
  }
  uint64_t seq = seq_;
  if (sink_) {
    if (phase == ExchangeState::Phase::kOpen) {
      Deliver(HttpResponse::Error(500, "internal", "the handler dropped the request"));
    } else if (phase == ExchangeState::Phase::kStreaming) {
      HttpResponse r;
      {
        absl::MutexLock lock(&state->mu);
        r = std::move(streamed_);
      }
      Deliver(std::move(r));
    }
    return;
  }
  if (phase == ExchangeState::Phase::kOpen) {
    PostToConnection([seq](Connection& c) {
      c.OnSend(seq, HttpResponse::Error(500, "internal", "the handler dropped the request"));
    });
  } else if (phase == ExchangeState::Phase::kStreaming) {
    PostToConnection([seq](Connection& c) { c.OnStreamEnd(seq); });
  }
}

bool Exchange::PostToConnection(std::function<void(Connection&)> fn) {
  absl::ReaderMutexLock lock(&life_->mu);
  if (!life_->running) return false;
  std::shared_ptr<Connection> conn = conn_.lock();
  if (!conn) return false;
  net::any_io_executor ex = conn->executor();
  net::post(ex, [conn = std::move(conn), fn = std::move(fn)]() { fn(*conn); });
  return true;
}

bool Exchange::Send(HttpResponse response) {
  // Cancel callbacks can never fire once answered; dropping them breaks the cycle a callback
  // holding its own Responder would make. They are destroyed outside the lock.
  std::vector<std::function<void()>> dropped;
  {
    absl::MutexLock lock(&state->mu);
    if (state->phase != ExchangeState::Phase::kOpen) return false;
    state->phase = ExchangeState::Phase::kFinished;
    dropped.swap(state->on_cancel);
  }
  if (sink_) {
    Deliver(std::move(response));
    return true;
  }
  uint64_t seq = seq_;
  return PostToConnection([seq, response = std::move(response)](Connection& c) mutable {
    c.OnSend(seq, std::move(response));
  });
}

bool Exchange::StartStream(int status, HttpHeaders headers) {
  {
    absl::MutexLock lock(&state->mu);
    if (state->phase != ExchangeState::Phase::kOpen) return false;
    state->phase = ExchangeState::Phase::kStreaming;
    if (sink_) {
      streamed_.status = status;
      streamed_.headers = std::move(headers);
      return true;
    }
  }
  uint64_t seq = seq_;
  return PostToConnection([seq, status, headers = std::move(headers)](Connection& c) mutable {
    c.OnStreamStart(seq, status, std::move(headers));
  });
}

bool Exchange::Write(std::string_view chunk) {
  if (chunk.empty()) {
    absl::MutexLock lock(&state->mu);
    return state->phase == ExchangeState::Phase::kStreaming;
  }
  {
    // Held across the post so that a concurrent Finish cannot overtake this chunk.
    absl::MutexLock lock(&state->mu);
    if (state->phase != ExchangeState::Phase::kStreaming) return false;
    if (sink_) {
      streamed_.body.append(chunk);
      return true;
    }
    state->pending_bytes += chunk.size();
    uint64_t seq = seq_;
    if (!PostToConnection([seq, data = std::string(chunk)](Connection& c) mutable {
          c.OnStreamChunk(seq, std::move(data));
        })) {
      state->pending_bytes -= chunk.size();
      return false;
    }
  }
  return true;
}

void Exchange::Finish() {
  std::vector<std::function<void()>> dropped;
  absl::ReleasableMutexLock lock(&state->mu);
  if (state->phase != ExchangeState::Phase::kStreaming) return;
  state->phase = ExchangeState::Phase::kFinished;
  dropped.swap(state->on_cancel);
  if (sink_) {
    HttpResponse r = std::move(streamed_);
    lock.Release();
    Deliver(std::move(r));
    return;
  }
  uint64_t seq = seq_;
  PostToConnection([seq](Connection& c) { c.OnStreamEnd(seq); });
}

void Exchange::Deliver(HttpResponse response) {
  for (auto& fn : state->TakeCompletions()) {
    try {
      fn(response.status);
    } catch (...) {
    }
  }
  sink_(std::move(response));
}

void ServerCore::Register(const std::shared_ptr<Connection>& conn) {
  absl::MutexLock lock(&mu);
  connections.emplace(conn.get(), conn);
  open_connections++;
  if (open_gauge) open_gauge->Add(1);
}

void ServerCore::Unregister(Connection* conn) {
  absl::MutexLock lock(&mu);
  if (connections.erase(conn) > 0) {
    open_connections--;
    if (open_gauge) open_gauge->Add(-1);
  }
}

void ServerCore::RecordExchange(const std::string& method, const std::string& route, int status,
                                SteadyClock::duration latency_time) {
  if (requests == nullptr) return;
  const std::string route_label = route.empty() ? "unmatched" : route;
  requests
      ->WithLabels({{"method", MethodLabel(method)},
                    {"route", route_label},
                    {"code", std::to_string(status)}})
      .Increment();
  latency->WithLabels({{"route", route_label}})
      .Observe(std::chrono::duration<double>(latency_time).count());
}

void ServerCore::Accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      // Out of descriptors or a transient failure: back off briefly instead of spinning.
      if (!accept_retry)
        accept_retry = std::make_unique<net::steady_timer>(acceptor.get_executor());
      accept_retry->expires_after(std::chrono::milliseconds(50));
      accept_retry->async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec && acceptor.is_open()) Accept();
      });
      return;
    }
    {
      absl::MutexLock lock(&mu);
      if (stopping) return;
    }
    std::make_shared<Connection>(this, std::move(socket))->Start();
    Accept();
  });
}

}  // namespace http_internal

using http_internal::Exchange;
using http_internal::ExchangeState;

Responder::Responder(std::shared_ptr<Exchange> exchange) : exchange_(std::move(exchange)) {}

Responder Responder::ToSink(std::function<void(HttpResponse)> sink) {
  return Responder(std::make_shared<Exchange>(std::move(sink)));
}

bool Responder::Send(HttpResponse response) const {
  return exchange_ && exchange_->Send(std::move(response));
}

struct ResponseStream::Handle {
  std::shared_ptr<Exchange> exchange;
};

ResponseStream Responder::StartStream(int status, HttpHeaders headers) const {
  if (!exchange_ || !exchange_->StartStream(status, std::move(headers))) return ResponseStream();
  return ResponseStream(
      std::make_shared<ResponseStream::Handle>(ResponseStream::Handle{exchange_}));
}

bool Responder::Cancelled() const {
  if (!exchange_) return true;
  absl::MutexLock lock(&exchange_->state->mu);
  return exchange_->state->phase == ExchangeState::Phase::kCancelled;
}

bool Responder::Answered() const {
  if (!exchange_) return true;
  absl::MutexLock lock(&exchange_->state->mu);
  return exchange_->state->phase != ExchangeState::Phase::kOpen;
}

void Responder::OnCancel(std::function<void()> fn) const {
  if (!exchange_) return;
  bool run_now = false;
  {
    absl::MutexLock lock(&exchange_->state->mu);
    switch (exchange_->state->phase) {
      case ExchangeState::Phase::kCancelled:
        run_now = true;
        break;
      case ExchangeState::Phase::kFinished:
        break;  // can never fire; fn is destroyed below, outside the lock
      default:
        exchange_->state->on_cancel.push_back(std::move(fn));
        return;
    }
  }
  if (run_now) fn();
}

void Responder::OnComplete(std::function<void(int status)> fn) const {
  if (!exchange_) return;
  absl::MutexLock lock(&exchange_->state->mu);
  exchange_->state->on_complete.push_back(std::move(fn));
}

bool ResponseStream::Write(std::string_view chunk) const {
  return handle_ && handle_->exchange->Write(chunk);
}

void ResponseStream::Finish() const {
  if (handle_) handle_->exchange->Finish();
}

bool ResponseStream::Cancelled() const {
  if (!handle_) return true;
  absl::MutexLock lock(&handle_->exchange->state->mu);
  return handle_->exchange->state->phase == ExchangeState::Phase::kCancelled;
}

void ResponseStream::OnCancel(std::function<void()> fn) const {
  if (!handle_) {
    fn();
    return;
  }
  Responder(handle_->exchange).OnCancel(std::move(fn));
}

size_t ResponseStream::PendingBytes() const {
  return handle_ ? handle_->exchange->state->pending_bytes.load() : 0;
}

bool TimerHandle::Cancel() const {
  if (!state_ || state_->done.exchange(true)) return false;
  absl::ReaderMutexLock lock(&state_->life->mu);
  if (state_->life->running) {
    std::weak_ptr<http_internal::TimerImpl> weak = state_->impl;
    net::post(*state_->ioc, [weak] {
      if (auto impl = weak.lock()) impl->timer.cancel();
    });
  }
  return true;
}

HttpServer::HttpServer(Options options, HttpHandler handler)
    : options_(std::move(options)),
      core_(std::make_shared<http_internal::ServerCore>(options_, std::move(handler))) {}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<uint16_t> HttpServer::Start() {
  if (started_) return absl::FailedPreconditionError("http server: already started");
  if (options_.threads < 1) {
    return absl::InvalidArgumentError(
        core::Cat("http server: threads must be >= 1, got ", options_.threads));
  }
  if (options_.raise_fd_limit) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
      limit.rlim_cur = limit.rlim_max;
      setrlimit(RLIMIT_NOFILE, &limit);  // best effort: a lower limit still serves
    }
  }
  http_internal::ServerCore& core = *core_;
  try {
    net::ip::address address = net::ip::make_address(options_.host);
    tcp::endpoint endpoint(address, options_.port);
    core.acceptor.open(endpoint.protocol());
    core.acceptor.set_option(net::socket_base::reuse_address(true));
    core.acceptor.bind(endpoint);
    core.acceptor.listen(net::socket_base::max_listen_connections);
    port_ = core.acceptor.local_endpoint().port();
  } catch (const std::exception& e) {
    beast::error_code ec;
    core.acceptor.close(ec);
    return absl::UnavailableError(core::Cat("http server: cannot listen on ", options_.host, ":",
                                            options_.port, ": ", e.what()));
  }
  {
    absl::MutexLock lock(&core.life->mu);
    core.life->running = true;
  }
  started_ = true;
  core.work.emplace(core.ioc.get_executor());
  net::post(core.acceptor.get_executor(), [&core] { core.Accept(); });
  for (int i = 0; i < options_.threads; ++i) {
    threads_.emplace_back([&core] {
      for (;;) {
        try {
          core.ioc.run();
          return;
        } catch (...) {
          // A handler threw past its guard; keep serving.
        }
      }
    });
  }
  return port_;
}

void HttpServer::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  http_internal::ServerCore& core = *core_;
  std::vector<std::shared_ptr<http_internal::Connection>> conns;
  std::vector<std::shared_ptr<http_internal::TimerState>> timers;
  {
    absl::MutexLock lock(&core.mu);
    core.stopping = true;
    for (auto& [ptr, weak] : core.connections) {
      if (auto c = weak.lock()) conns.push_back(std::move(c));
    }
    for (auto& [ptr, weak] : core.timers) {
      if (auto t = weak.lock()) timers.push_back(std::move(t));
    }
  }
  net::post(core.acceptor.get_executor(), [&core] {
    beast::error_code ec;
    core.acceptor.close(ec);
    if (core.accept_retry) core.accept_retry->cancel();
  });
  for (auto& c : conns) {
    net::any_io_executor ex = c->executor();
    net::post(ex, [c] { c->Abort(); });
  }
  conns.clear();
  for (auto& t : timers) TimerHandle(t).Cancel();
  timers.clear();
  core.work.reset();

  // Everything was told to finish; give it a moment, then stop the loop regardless so a
  // callback that keeps posting work cannot hold Stop forever.
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lock(done_mu);
    if (!done_cv.wait_for(lock, std::chrono::seconds(5), [&] { return done; })) core.ioc.stop();
  });
  for (auto& t : threads_) t.join();
  {
    std::lock_guard<std::mutex> lock(done_mu);
    done = true;
  }
  done_cv.notify_all();
  watchdog.join();
  threads_.clear();
  {
    absl::MutexLock lock(&core.life->mu);
    core.life->running = false;
  }
}

TimerHandle HttpServer::RunAfter(absl::Duration delay, std::function<void()> fn) {
  http_internal::ServerCore& core = *core_;
  auto state = std::make_shared<http_internal::TimerState>();
  state->life = core.life;
  state->ioc = &core.ioc;
  auto impl = std::make_shared<http_internal::TimerImpl>(core.ioc);
  state->impl = impl;
  {
    absl::MutexLock lock(&core.mu);
    if (core.stopping) {
      state->done = true;
      return TimerHandle(state);
    }
    core.timers.emplace(state.get(), state);
  }
  impl->timer.expires_after(http_internal::ToChrono(delay));
  http_internal::ServerCore* core_ptr = core_.get();
  impl->timer.async_wait([impl, state, core_ptr, fn = std::move(fn)](beast::error_code ec) {
    {
      absl::MutexLock lock(&core_ptr->mu);
      core_ptr->timers.erase(state.get());
    }
    if (state->done.exchange(true)) return;
    try {
      fn();
    } catch (...) {
    }
  });
  return TimerHandle(state);
}

void HttpServer::Post(std::function<void()> fn) {
  absl::ReaderMutexLock lock(&core_->life->mu);
  if (!core_->life->running) return;
  net::post(core_->ioc, [fn = std::move(fn)] {
    try {
      fn();
    } catch (...) {
    }
  });
}

int64_t HttpServer::open_connections() const { return core_->open_connections.load(); }
int64_t HttpServer::in_flight() const { return core_->in_flight.load(); }

}  // namespace berth::api
