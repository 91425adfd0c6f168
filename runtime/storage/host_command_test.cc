#include "runtime/storage/host_command.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::runtime::host {
namespace {

using ::testing::HasSubstr;

TEST(HostCommandTest, CapturesOutputExitCodeAndStdin) {
  auto r = RunHostCommand({"sh", "-c", "cat; echo err >&2; exit 3"}, {.stdin_data = "hello"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "hello");
  EXPECT_EQ(r->err, "err\n");
}

TEST(HostCommandTest, StreamsOutputToCallback) {
  std::string seen;
  HostCommandOptions opts;
  opts.on_output = [&](std::string_view chunk) { seen.append(chunk); };
  auto r = RunHostCommand({"sh", "-c", "printf a; printf b"}, opts);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(seen, "ab");
  EXPECT_EQ(r->out, "ab");
}

TEST(HostCommandTest, NonZeroExitIsAnErrorQuotingTheCommand) {
  auto r = RunHostCommandOk({"sh", "-c", "echo boom >&2; exit 1"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(r.status().message(), HasSubstr("boom"));
  auto missing = RunHostCommand({"/nonexistent/tool"});
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->exit_code, 127);
}

TEST(HostCommandTest, DaemonHoldingOutputDoesNotBlock) {
  // The grandchild keeps stdout open after its parent exits.
  auto r = RunHostCommand({"sh", "-c", "(sleep 3 &) ; echo started"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "started\n");
}

}  // namespace
}  // namespace berth::runtime::host
