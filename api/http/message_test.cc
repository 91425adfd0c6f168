#include "api/http/message.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace berth::api {
namespace {

TEST(PercentDecodeTest, DecodesEscapesAndOptionallyPlus) {
  EXPECT_EQ(*PercentDecode("a%20b%2Fc"), "a b/c");
  EXPECT_EQ(*PercentDecode("a+b"), "a+b");
  EXPECT_EQ(*PercentDecode("a+b", /*plus_is_space=*/true), "a b");
  EXPECT_EQ(*PercentDecode("%e2%9C%93"), "\xe2\x9c\x93");
}

TEST(PercentDecodeTest, RejectsMalformedEscapes) {
  EXPECT_FALSE(PercentDecode("%").ok());
  EXPECT_FALSE(PercentDecode("abc%2").ok());
  EXPECT_FALSE(PercentDecode("%zz").ok());
  EXPECT_EQ(PercentDecode("x%g1").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PercentEncodeTest, RoundTripsThroughDecode) {
  const std::string raw = "name with/slash&amp=1~._-\xff";
  std::string encoded = PercentEncode(raw);
  EXPECT_EQ(encoded.find_first_of(" /&="), std::string::npos) << encoded;
  EXPECT_EQ(*PercentDecode(encoded), raw);
  EXPECT_EQ(PercentEncode("abc-XYZ_0.9~"), "abc-XYZ_0.9~");
}

TEST(ParseQueryTest, SplitsAndDecodesInOrder) {
  auto q = ParseQuery("index=5&wait=30s&label=a%3Db&empty=&flag&x=1+2&&");
  ASSERT_TRUE(q.ok()) << q.status();
  std::vector<std::pair<std::string, std::string>> want = {
      {"index", "5"}, {"wait", "30s"}, {"label", "a=b"}, {"empty", ""}, {"flag", ""}, {"x", "1 2"}};
  EXPECT_EQ(*q, want);
  EXPECT_TRUE(ParseQuery("")->empty());
}

TEST(ParseQueryTest, MalformedEscapeNamesTheParameter) {
  auto q = ParseQuery("ok=1&wait=3%zs");
  ASSERT_FALSE(q.ok());
  EXPECT_NE(std::string(q.status().message()).find("\"wait\""), std::string::npos) << q.status();
}

TEST(HttpHeadersTest, NamesAreCaseInsensitive) {
  HttpHeaders h;
  h.Add("Content-Type", "application/json");
  h.Add("X-Thing", "1");
  h.Add("x-thing", "2");
  EXPECT_EQ(h.Get("content-type"), "application/json");
  EXPECT_EQ(h.Get("X-THING"), "1");
  h.Set("X-Thing", "3");
  EXPECT_EQ(h.Get("x-thing"), "3");
  EXPECT_EQ(h.entries().size(), 2u);
  h.Remove("CONTENT-TYPE");
  EXPECT_FALSE(h.Has("Content-Type"));
}

TEST(HttpRequestTest, QueryAndParamAccessors) {
  HttpRequest r;
  r.query = {{"a", "1"}, {"a", "2"}};
  r.params["name"] = "train-7";
  EXPECT_EQ(r.Query("a"), "1");
  EXPECT_FALSE(r.Query("b").has_value());
  EXPECT_EQ(r.Param("name"), "train-7");
  EXPECT_EQ(r.Param("missing"), "");
}

TEST(HttpResponseTest, ErrorBodyShape) {
  HttpResponse r = HttpResponse::Error(404, "not_found", "workload \"a\" \"quoted\" not found");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Header("content-type"), "application/json");
  nlohmann::json body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["error"]["code"], "not_found");
  EXPECT_EQ(body["error"]["message"], "workload \"a\" \"quoted\" not found");
}

TEST(HttpResponseTest, ErrorBodyToleratesInvalidUtf8) {
  HttpResponse r = HttpResponse::Error(400, "bad_request", "bad \xff byte");
  EXPECT_TRUE(nlohmann::json::accept(r.body)) << r.body;
}

TEST(StatusMappingTest, CanonicalCodesMapToHttpAndBack) {
  const absl::Status cases[] = {
      absl::InvalidArgumentError("workload \"x\": gpu.count must be >= 0, got -2"),
      absl::NotFoundError("no workload \"x\""),
      absl::AlreadyExistsError("workload \"x\" exists"),
      absl::FailedPreconditionError("host draining"),
      absl::UnauthenticatedError("missing bearer token"),
      absl::PermissionDeniedError("read-only token"),
      absl::ResourceExhaustedError("quota"),
      absl::UnavailableError("no leader"),
      absl::InternalError("boom"),
  };
  for (const absl::Status& s : cases) {
    HttpResponse r = HttpResponse::FromStatus(s);
    EXPECT_EQ(r.status, HttpStatusFor(s.code()));
    absl::Status back = StatusFromResponse(r.status, r.body);
    EXPECT_EQ(back, s) << r.body;
  }
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kAlreadyExists), 409);
}

TEST(StatusMappingTest, NonJsonBodiesFallBackToTheHttpStatus) {
  absl::Status s = StatusFromResponse(503, "upstream down");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(s.message()).find("upstream down"), std::string::npos);
  EXPECT_TRUE(StatusFromResponse(204, "").ok());
  EXPECT_EQ(StatusFromResponse(404, "").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrorCodeForHttpStatus(405), "method_not_allowed");
  EXPECT_EQ(ErrorCodeForHttpStatus(413), "payload_too_large");
}

}  // namespace
}  // namespace berth::api
