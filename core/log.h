// Logging and error accounting for every Berth process.
//
// One line per event, written to stderr and, when configured, appended to a file:
//   2026-12-02T03:04:05.123Z warn  workload train-1: start failed: ...
// Callers name the object the line is about. The level is set once at start-up from
// `--log-level` (debug|info|warn|error|off); lines below it cost one atomic load.
//
// Errors that code cannot return to a caller (a loop body, a clean-up on a failure path, a
// best-effort refresh) go through ReportError: it logs the error and counts it under a short,
// stable component name (`where`), and the server exposes the counts as
// `berth_errors_total{where="..."}` in /metrics. Nothing is discarded silently.
//
// Thread-safety: every function may be called from any thread. Before InitLogging, lines go to
// stderr at level info.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"

namespace berth::core {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

// "debug", "info", "warn", "error" or "off"; InvalidArgument names the accepted values.
absl::StatusOr<LogLevel> ParseLogLevel(std::string_view text);
std::string_view LogLevelName(LogLevel level);

// Sets the level and, when `file` is not empty, also appends every line to `file` (created
// with mode 0640 if missing). Fails, changing nothing, when the file cannot be opened.
// May be called again to change either.
absl::Status InitLogging(LogLevel level, const std::string& file = "");

// Whether a line at `level` would be written.
bool LogEnabled(LogLevel level);

// Writes one line at `level` (a newline in `message` is escaped, so one event stays one line).
void Log(LogLevel level, std::string_view message);

// absl::StrFormat syntax. Abseil here has its own string_view, so pass a std::string_view
// argument through core::AbslView (core/strings.h) or as std::string.
template <typename... A>
void LogDebug(const absl::FormatSpec<A...>& format, const A&... args) {
  if (LogEnabled(LogLevel::kDebug)) Log(LogLevel::kDebug, absl::StrFormat(format, args...));
}
template <typename... A>
void LogInfo(const absl::FormatSpec<A...>& format, const A&... args) {
  if (LogEnabled(LogLevel::kInfo)) Log(LogLevel::kInfo, absl::StrFormat(format, args...));
}
template <typename... A>
void LogWarn(const absl::FormatSpec<A...>& format, const A&... args) {
  if (LogEnabled(LogLevel::kWarn)) Log(LogLevel::kWarn, absl::StrFormat(format, args...));
}
template <typename... A>
void LogError(const absl::FormatSpec<A...>& format, const A&... args) {
  if (LogEnabled(LogLevel::kError)) Log(LogLevel::kError, absl::StrFormat(format, args...));
}

// Logs "<where>: <what>: <status>" at error level and adds one to the count of `where`.
// `where` is a short stable component name ("agent", "control.loop", "net"); `what` names the
// object and the step ("workload train-1: stop"). An OK status is neither logged nor counted.
void ReportError(std::string_view where, std::string_view what, const absl::Status& status);

// Returns status.ok(); otherwise ReportError and false.
bool OkOrReport(std::string_view where, std::string_view what, const absl::Status& status);

// The counts ReportError has made in this process, by `where`.
std::map<std::string, int64_t> ErrorCounts();

}  // namespace berth::core
