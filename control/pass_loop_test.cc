#include "control/pass_loop.h"

#include <atomic>
#include <stdexcept>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace berth::control {
namespace {

// Waits (bounded) until `done` holds; the bound is far above any pass here, so a slow machine
// does not fail the test, and a loop that never runs does.
template <typename F>
bool Eventually(F done) {
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (!done()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

TEST(PassLoopTest, APokeStartsAPassWithoutWaitingForThePeriod) {
  std::atomic<int> passes{0};
  PassLoop loop({.name = "test", .period = absl::Hours(1)}, [&] {
    ++passes;
    return absl::OkStatus();
  });
  loop.Start();
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(passes.load(), 0);  // the period is an hour: nothing runs unpoked
  loop.Poke();
  EXPECT_TRUE(Eventually([&] { return passes.load() == 1; }));
  loop.Poke();
  EXPECT_TRUE(Eventually([&] { return passes.load() == 2; }));
  loop.Stop();
  loop.Stop();  // a second Stop does nothing
  EXPECT_EQ(passes.load(), 2);
}

TEST(PassLoopTest, WhileNotActiveItRunsTheInactiveHookInsteadOfPasses) {
  std::atomic<bool> leads{false};
  std::atomic<int> passes{0}, inactive{0};
  PassLoop loop({.name = "test",
                 .period = absl::Milliseconds(5),
                 .active = [&] { return leads.load(); },
                 .while_inactive = [&] { ++inactive; }},
                [&] {
                  ++passes;
                  return absl::OkStatus();
                });
  loop.Start();
  EXPECT_TRUE(Eventually([&] { return inactive.load() >= 3; }));
  EXPECT_EQ(passes.load(), 0);
  leads = true;
  EXPECT_TRUE(Eventually([&] { return passes.load() >= 3; }));
  loop.Stop();
}

TEST(PassLoopTest, FailedPassesAndThrownExceptionsAreCounted) {
  std::atomic<int> calls{0};
  PassLoop loop({.name = "test", .period = absl::Milliseconds(5)}, [&]() -> absl::Status {
    int n = ++calls;
    if (n == 1) return absl::OkStatus();
    if (n == 2) throw std::runtime_error("boom");
    return absl::UnavailableError("store down");
  });
  loop.Start();
  EXPECT_TRUE(Eventually([&] { return calls.load() >= 4; }));
  loop.Stop();
  // Every call after the first failed: one by exception, the rest by status.
  EXPECT_EQ(loop.failures(), calls.load() - 1);
}

}  // namespace
}  // namespace berth::control
