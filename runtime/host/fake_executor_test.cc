#include "runtime/host/fake_executor.h"

#include <signal.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::runtime::host {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(FakeExecutorTest, RecordsArgvAndAnswersFromTheScript) {
  FakeExecutor fake;
  fake.Script({"ip", "link"}, FakeExecutor::Exited(0, "links\n"));
  fake.Script({"nft"}, FakeExecutor::Exited(1, "", "syntax error"));
  fake.Script({"qemu-img", "convert"}, FakeExecutor::Signaled(SIGKILL));
  Executor& ex = fake;

  auto links = RunOk(ex, {"ip", "link", "show"}, {.netns = "ns1"});
  ASSERT_TRUE(links.ok());
  EXPECT_EQ(*links, "links\n");
  absl::Status nft = RunOk(ex, {"nft", "-f", "-"}, {.stdin_data = "flush ruleset"}).status();
  EXPECT_EQ(nft.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(nft.message(), HasSubstr("`nft -f -` exited with code 1: syntax error"));
  auto killed = ex.Run({"qemu-img", "convert", "a", "b"});
  ASSERT_TRUE(killed.ok());
  EXPECT_EQ(killed->cause, ExitCause::kSignaled);
  EXPECT_TRUE(ex.Run({"true"})->ok());  // unscripted

  EXPECT_THAT(fake.Commands(),
              ElementsAre(ElementsAre("ip", "link", "show"), ElementsAre("nft", "-f", "-"),
                          ElementsAre("qemu-img", "convert", "a", "b"), ElementsAre("true")));
  std::vector<FakeExecutor::Call> calls = fake.Calls();
  EXPECT_EQ(calls[0].netns, "ns1");
  EXPECT_EQ(calls[1].stdin_data, "flush ruleset");
}

TEST(FakeExecutorTest, LatestMatchingScriptWinsAndErrorsPassThrough) {
  FakeExecutor fake;
  fake.Script({"runc"}, FakeExecutor::Exited(0));
  fake.ScriptError({"runc", "state"}, absl::UnavailableError("no runc"));
  EXPECT_EQ(fake.Run({"runc", "state", "x"}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(fake.Run({"runc", "list"}).ok());
  auto spawned = fake.Spawn({"sh", "-c", "x"}, {});
  ASSERT_TRUE(spawned.ok());
  EXPECT_THAT(fake.Spawned(), ElementsAre(ElementsAre("sh", "-c", "x")));
}

}  // namespace
}  // namespace berth::runtime::host
