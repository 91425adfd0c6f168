#include "runtime/qemu/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/status.h"
#include "core/strings.h"

namespace berth::runtime {
namespace {

using core::Cat;
using nlohmann::json;

absl::Status ErrorFromQmp(const json& error) {
  std::string cls = error.is_object() ? error.value("class", "") : "";
  std::string desc = error.is_object() ? error.value("desc", "") : "";
  std::string msg = Cat(cls, ": ", desc);
  if (cls == "CommandNotFound") return absl::UnimplementedError(msg);
  if (cls == "DeviceNotFound") return absl::NotFoundError(msg);
  return absl::FailedPreconditionError(msg);
}

}  // namespace

QmpClient::QmpClient(int fd, QmpOptions options) : fd_(fd), options_(std::move(options)) {}

QmpClient::~QmpClient() {
  // Wakes the reader (blocked in poll/read) and ends the connection; QEMU keeps running.
  shutdown(fd_, SHUT_RDWR);
  if (reader_.joinable()) reader_.join();
  close(fd_);
}

absl::StatusOr<std::unique_ptr<QmpClient>> QmpClient::Connect(const std::string& socket_path,
                                                              QmpOptions options) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(Cat("QMP socket: ", std::strerror(errno)));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    close(fd);
    return absl::InvalidArgumentError(Cat("QMP socket path too long: ", socket_path));
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(Cat("QMP connect ", socket_path, ": ", std::strerror(err)));
  }
  return Adopt(fd, std::move(options));
}

absl::StatusOr<std::unique_ptr<QmpClient>> QmpClient::Adopt(int fd, QmpOptions options) {
  std::unique_ptr<QmpClient> client(new QmpClient(fd, std::move(options)));
  absl::Status s = client->Handshake();
  if (!s.ok()) return s;
  return client;
}

absl::StatusOr<std::string> QmpClient::ReadLineBlocking(absl::Time deadline) {
  while (true) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return absl::DeadlineExceededError("QMP: no greeting from QEMU");
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
    if (r < 0 && errno != EINTR) return absl::UnavailableError("QMP: poll failed");
    if (r <= 0) continue;
    char buf[4096];
    ssize_t n = read(fd_, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return absl::UnavailableError("QMP: connection closed during handshake");
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

absl::Status QmpClient::Handshake() {
  const absl::Time deadline = absl::Now() + options_.handshake_timeout;
  BERTH_ASSIGN_OR_RETURN(std::string greeting, ReadLineBlocking(deadline));
  json g = json::parse(greeting, nullptr, false);
  if (g.is_discarded() || !g.contains("QMP")) {
    return absl::UnavailableError(Cat("QMP: unexpected greeting: ", greeting));
  }
  const json& v = g["QMP"]["version"]["qemu"];
  if (v.is_object()) {
    version_ = Cat(v.value("major", 0), ".", v.value("minor", 0), ".", v.value("micro", 0));
  }
  reader_ = std::thread([this] { ReaderLoop(); });
  auto caps =
      Execute("qmp_capabilities", nullptr, std::max(absl::Seconds(1), deadline - absl::Now()));
  if (!caps.ok()) return caps.status();
  return absl::OkStatus();
}

absl::Status QmpClient::WriteLine(const std::string& line) {
  absl::MutexLock lock(&write_mu_);
  size_t off = 0;
  while (off < line.size()) {
    ssize_t w = send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(Cat("QMP write: ", std::strerror(errno)));
    }
    off += static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

absl::StatusOr<json> QmpClient::Execute(std::string_view command, const json& arguments,
                                        absl::Duration timeout) {
  Pending pending;
  int64_t id;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return absl::UnavailableError(Cat("QMP ", command, ": connection closed"));
    id = next_id_++;
    pending_[id] = &pending;
  }
  json msg = {{"execute", std::string(command)}, {"id", id}};
  if (!arguments.is_null()) msg["arguments"] = arguments;
  absl::Status w = WriteLine(msg.dump() + "\n");
  absl::MutexLock lock(&mu_);
  if (!w.ok()) {
    pending_.erase(id);
    return w;
  }
  auto ready = [&pending]() { return pending.done; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  pending_.erase(id);
  if (!pending.done) {
    return absl::DeadlineExceededError(
        Cat("QMP ", command, ": no answer in ", absl::FormatDuration(timeout)));
  }
  if (!pending.result.ok()) {
    return absl::Status(pending.result.status().code(),
                        Cat("QMP ", command, ": ", pending.result.status().message()));
  }
  return std::move(pending.result);
}

void QmpClient::Dispatch(const std::string& line) {
  json msg = json::parse(line, nullptr, false);
  if (msg.is_discarded() || !msg.is_object()) return;
  if (msg.contains("event")) {
    QmpEvent ev;
    ev.name = msg.value("event", "");
    if (msg.contains("data")) ev.data = msg["data"];
    if (msg.contains("timestamp")) {
      const json& ts = msg["timestamp"];
      ev.time = absl::FromUnixSeconds(ts.value("seconds", int64_t{0})) +
                absl::Microseconds(ts.value("microseconds", int64_t{0}));
    }
    if (options_.on_event) options_.on_event(ev);
    return;
  }
  if (!msg.contains("id") || !msg["id"].is_number_integer()) return;
  int64_t id = msg["id"].get<int64_t>();
  absl::MutexLock lock(&mu_);
  auto it = pending_.find(id);
  if (it == pending_.end()) return;  // its caller gave up waiting
  if (msg.contains("error")) {
    it->second->result = ErrorFromQmp(msg["error"]);
  } else {
    it->second->result = msg.contains("return") ? msg["return"] : json::object();
  }
  it->second->done = true;
}

void QmpClient::ReaderLoop() {
  while (true) {
    size_t nl;
    while ((nl = buffer_.find('\n')) != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      Dispatch(line);
    }
    char buf[8192];
    ssize_t n = read(fd_, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    buffer_.append(buf, static_cast<size_t>(n));
  }
  // on_close runs before closed() turns true, so a caller that saw closed() knows it has run.
  if (options_.on_close) options_.on_close();
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (auto& [id, p] : pending_) {
    if (p->done) continue;  // answered just before the end; its caller has not woken yet
    p->result = absl::UnavailableError("connection closed");
    p->done = true;
  }
}

bool QmpClient::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

bool QmpClient::WaitClosed(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto is_closed = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_; };
  return mu_.AwaitWithTimeout(absl::Condition(&is_closed), timeout);
}

}  // namespace berth::runtime
