#include "api/http/message.h"

#include <algorithm>
#include <cctype>

#include "core/strings.h"
#include "nlohmann/json.hpp"

namespace berth::api {
namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct CodeRow {
  absl::StatusCode code;
  const char* name;
  int http_status;
};

constexpr CodeRow kCodes[] = {
    {absl::StatusCode::kCancelled, "cancelled", 499},
    {absl::StatusCode::kUnknown, "unknown", 500},
    {absl::StatusCode::kInvalidArgument, "invalid_argument", 400},
    {absl::StatusCode::kDeadlineExceeded, "deadline_exceeded", 504},
    {absl::StatusCode::kNotFound, "not_found", 404},
    {absl::StatusCode::kAlreadyExists, "already_exists", 409},
    {absl::StatusCode::kPermissionDenied, "permission_denied", 403},
    {absl::StatusCode::kResourceExhausted, "resource_exhausted", 429},
    {absl::StatusCode::kFailedPrecondition, "failed_precondition", 409},
    {absl::StatusCode::kAborted, "aborted", 409},
    {absl::StatusCode::kOutOfRange, "out_of_range", 400},
    {absl::StatusCode::kUnimplemented, "unimplemented", 501},
    {absl::StatusCode::kInternal, "internal", 500},
    {absl::StatusCode::kUnavailable, "unavailable", 503},
    {absl::StatusCode::kDataLoss, "data_loss", 500},
    {absl::StatusCode::kUnauthenticated, "unauthenticated", 401},
};

// The canonical code a client reads from a bare HTTP status.
absl::StatusCode CodeForHttpStatus(int http_status) {
  switch (http_status) {
    case 400:
    case 405:
    case 411:
    case 414:
    case 415:
    case 422:
    case 431:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 408:
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    case 409:
      return absl::StatusCode::kAborted;
    case 412:
      return absl::StatusCode::kFailedPrecondition;
    case 413:
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 499:
      return absl::StatusCode::kCancelled;
    case 501:
      return absl::StatusCode::kUnimplemented;
    case 502:
    case 503:
      return absl::StatusCode::kUnavailable;
    default:
      return http_status >= 500 ? absl::StatusCode::kInternal : absl::StatusCode::kUnknown;
  }
}

}  // namespace

void HttpHeaders::Add(std::string name, std::string value) {
  entries_.emplace_back(std::move(name), std::move(value));
}

void HttpHeaders::Set(std::string name, std::string value) {
  Remove(name);
  Add(std::move(name), std::move(value));
}

void HttpHeaders::Remove(std::string_view name) {
  std::erase_if(entries_, [&](const Entry& e) { return EqualsIgnoreCase(e.first, name); });
}

std::optional<std::string> HttpHeaders::Get(std::string_view name) const {
  for (const Entry& e : entries_) {
    if (EqualsIgnoreCase(e.first, name)) return e.second;
  }
  return std::nullopt;
}

std::optional<std::string> HttpRequest::Query(std::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) return value;
  }
  return std::nullopt;
}

std::string HttpRequest::Param(std::string_view name) const {
  auto it = params.find(std::string(name));
  return it == params.end() ? std::string() : it->second;
}

HttpResponse HttpResponse::Json(int status, std::string json_body) {
  HttpResponse r;
  r.status = status;
  r.headers.Set("Content-Type", "application/json");
  r.body = std::move(json_body);
  return r;
}

HttpResponse HttpResponse::Text(int status, std::string text_body) {
  HttpResponse r;
  r.status = status;
  r.headers.Set("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(text_body);
  return r;
}

HttpResponse HttpResponse::Error(int status, std::string_view code, std::string_view message) {
  nlohmann::json body = {
      {"error", {{"code", std::string(code)}, {"message", std::string(message)}}}};
  // Replace invalid UTF-8 rather than throwing: messages may quote raw client input.
  return Json(status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

HttpResponse HttpResponse::FromStatus(const absl::Status& status) {
  if (status.ok()) return Json(200, "{}");
  return Error(HttpStatusFor(status.code()), ErrorCodeName(status.code()),
               std::string(status.message()));
}

int HttpStatusFor(absl::StatusCode code) {
  if (code == absl::StatusCode::kOk) return 200;
  for (const CodeRow& row : kCodes) {
    if (row.code == code) return row.http_status;
  }
  return 500;
}

std::string ErrorCodeName(absl::StatusCode code) {
  if (code == absl::StatusCode::kOk) return "ok";
  for (const CodeRow& row : kCodes) {
    if (row.code == code) return row.name;
  }
  return "unknown";
}

std::string ErrorCodeForHttpStatus(int http_status) {
  switch (http_status) {
    case 400:
      return "bad_request";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 408:
      return "request_timeout";
    case 413:
      return "payload_too_large";
    case 431:
      return "header_fields_too_large";
    default:
      return ErrorCodeName(CodeForHttpStatus(http_status));
  }
}

absl::Status StatusFromResponse(int http_status, std::string_view body) {
  if (http_status < 400) return absl::OkStatus();
  absl::StatusCode code = CodeForHttpStatus(http_status);
  std::string message;
  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object()) {
    const nlohmann::json& error = parsed["error"];
    if (error.contains("message") && error["message"].is_string()) {
      message = error["message"].get<std::string>();
    }
    if (error.contains("code") && error["code"].is_string()) {
      const std::string name = error["code"].get<std::string>();
      for (const CodeRow& row : kCodes) {
        if (name == row.name) code = row.code;
      }
    }
  }
  if (message.empty()) {
    message = body.empty() ? core::Cat("HTTP status ", http_status)
                           : core::Cat("HTTP status ", http_status, ": ", body.substr(0, 512));
  }
  return absl::Status(code, message);
}

absl::StatusOr<std::string> PercentDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      int hi = i + 2 < in.size() ? HexValue(in[i + 1]) : -1;
      int lo = i + 2 < in.size() ? HexValue(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return absl::InvalidArgumentError(
            core::Cat("malformed percent-escape at offset ", i, " in \"", in, "\""));
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string PercentEncode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseQuery(
    std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string_view key = part.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
    absl::StatusOr<std::string> k = PercentDecode(key, true);
    if (!k.ok()) return absl::InvalidArgumentError(core::Cat("query: ", k.status().message()));
    absl::StatusOr<std::string> v = PercentDecode(value, true);
    if (!v.ok()) {
      return absl::InvalidArgumentError(
          core::Cat("query parameter \"", *k, "\": ", v.status().message()));
    }
    out.emplace_back(std::move(*k), std::move(*v));
  }
  return out;
}

}  // namespace berth::api
