#include "core/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/strings.h"
#include "spdlog/logger.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/basic_file_sink.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace berth::core {
namespace {

spdlog::level::level_enum ToSpd(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
    case LogLevel::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

std::shared_ptr<spdlog::logger> MakeLogger(std::shared_ptr<spdlog::sinks::sink> file_sink) {
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (file_sink != nullptr) sinks.push_back(std::move(file_sink));
  auto logger = std::make_shared<spdlog::logger>("berth", sinks.begin(), sinks.end());
  // UTC timestamps, the level padded to one width, then the message.
  logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
      "%Y-%m-%dT%H:%M:%S.%eZ %-7l %v", spdlog::pattern_time_type::utc));
  logger->set_level(spdlog::level::trace);  // the level check is LogEnabled's
  logger->flush_on(spdlog::level::trace);   // a crash loses no line
  return logger;
}

struct State {
  absl::Mutex mu;
  std::shared_ptr<spdlog::logger> logger ABSL_GUARDED_BY(mu);
  std::map<std::string, int64_t> errors ABSL_GUARDED_BY(mu);
};

State& GetState() {
  static State* state = [] {
    auto* s = new State;
    absl::MutexLock lock(&s->mu);
    s->logger = MakeLogger(nullptr);
    return s;
  }();
  return *state;
}

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

}  // namespace

absl::StatusOr<LogLevel> ParseLogLevel(std::string_view text) {
  for (LogLevel level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError,
                         LogLevel::kOff}) {
    if (text == LogLevelName(level)) return level;
  }
  return absl::InvalidArgumentError(
      Cat("log level \"", text.substr(0, 32),
                   "\" is not one of debug, info, warn, error, off"));
}

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
    case LogLevel::kOff:
      return "off";
  }
  return "info";
}

absl::Status InitLogging(LogLevel level, const std::string& file) {
  std::shared_ptr<spdlog::sinks::sink> file_sink;
  if (!file.empty()) {
    // Create it with restrictive permissions first; spdlog would use the umask's.
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
      return absl::InvalidArgumentError(
          Cat("log file ", file, ": cannot open: ", std::strerror(errno)));
    }
    ::close(fd);
    try {
      file_sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, /*truncate=*/false);
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(Cat("log file ", file, ": ", e.what()));
    }
  }
  std::shared_ptr<spdlog::logger> logger = MakeLogger(std::move(file_sink));
  State& state = GetState();
  {
    absl::MutexLock lock(&state.mu);
    state.logger = std::move(logger);
  }
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
  return absl::OkStatus();
}

bool LogEnabled(LogLevel level) {
  return level != LogLevel::kOff &&
         static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void Log(LogLevel level, std::string_view message) {
  if (!LogEnabled(level)) return;
  std::shared_ptr<spdlog::logger> logger;
  {
    State& state = GetState();
    absl::MutexLock lock(&state.mu);
    logger = state.logger;
  }
  std::string line;
  line.reserve(message.size());
  for (char c : message) {
    if (c == '\n') {
      line += "\\n";
    } else if (c == '\r') {
      line += "\\r";
    } else {
      line += c;
    }
  }
  try {
    logger->log(ToSpd(level), "{}", line);
  } catch (...) {
    // A log line that cannot be written has nowhere else to go.
  }
}

void ReportError(std::string_view where, std::string_view what, const absl::Status& status) {
  if (status.ok()) return;
  {
    State& state = GetState();
    absl::MutexLock lock(&state.mu);
    ++state.errors[std::string(where)];
  }
  if (LogEnabled(LogLevel::kError)) {
    Log(LogLevel::kError, Cat(where, ": ", what, ": ", status.ToString()));
  }
}

bool OkOrReport(std::string_view where, std::string_view what, const absl::Status& status) {
  if (status.ok()) return true;
  ReportError(where, what, status);
  return false;
}

std::map<std::string, int64_t> ErrorCounts() {
  State& state = GetState();
  absl::MutexLock lock(&state.mu);
  return state.errors;
}

}  // namespace berth::core
