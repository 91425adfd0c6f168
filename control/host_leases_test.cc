#include "control/host_leases.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/strings.h"
#include "gtest/gtest.h"

namespace berth::control {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'000'000);

std::vector<std::string> Names(const std::vector<HostLeases::Expired>& expired) {
  std::vector<std::string> out;
  for (const auto& e : expired) out.push_back(e.name);
  return out;
}

TEST(HostLeasesTest, ExpiresExactlyTheLeasesRenewedBeforeTheDeadlineOldestFirst) {
  HostLeases leases;
  leases.Renew("c", kT0 + absl::Seconds(3));
  leases.Renew("a", kT0 + absl::Seconds(1));
  leases.Renew("b", kT0 + absl::Seconds(2));
  leases.Renew("d", kT0 + absl::Seconds(4));
  // Strictly before: a lease renewed at the deadline itself is still good.
  std::vector<HostLeases::Expired> expired = leases.TakeExpired(kT0 + absl::Seconds(3));
  EXPECT_EQ(Names(expired), (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(expired.size(), 2u);
  EXPECT_EQ(expired[0].last, kT0 + absl::Seconds(1));
  EXPECT_EQ(expired[1].last, kT0 + absl::Seconds(2));
  // Taken once: disarmed until renewed, but the time is still known.
  EXPECT_TRUE(leases.TakeExpired(kT0 + absl::Seconds(3)).empty());
  EXPECT_EQ(leases.Last("a"), kT0 + absl::Seconds(1));
  EXPECT_EQ(leases.size(), 4u);
  EXPECT_EQ(leases.armed(), 2u);
  EXPECT_EQ(Names(leases.TakeExpired(kT0 + absl::Seconds(10))),
            (std::vector<std::string>{"c", "d"}));
}

TEST(HostLeasesTest, RenewalMovesALeaseAndArmsItAgain) {
  HostLeases leases;
  leases.Renew("a", kT0);
  leases.Renew("b", kT0 + absl::Seconds(1));
  leases.Renew("a", kT0 + absl::Seconds(5));  // a heartbeat: "a" is now the newest
  EXPECT_EQ(Names(leases.TakeExpired(kT0 + absl::Seconds(2))), (std::vector<std::string>{"b"}));
  EXPECT_EQ(leases.armed(), 1u);  // only the renewed one, counted once
  // An expired host that heartbeats again is watched again.
  leases.Renew("b", kT0 + absl::Seconds(6));
  EXPECT_EQ(Names(leases.TakeExpired(kT0 + absl::Seconds(7))),
            (std::vector<std::string>{"a", "b"}));
}

TEST(HostLeasesTest, RearmReportsAnExpiryAgainWithItsOldTime) {
  HostLeases leases;
  leases.Renew("a", kT0);
  ASSERT_EQ(leases.TakeExpired(kT0 + absl::Seconds(1)).size(), 1u);
  leases.Rearm("a");
  leases.Rearm("a");  // twice is once
  leases.Rearm("unknown");
  std::vector<HostLeases::Expired> again = leases.TakeExpired(kT0 + absl::Seconds(1));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].name, "a");
  EXPECT_EQ(again[0].last, kT0);
  EXPECT_EQ(leases.size(), 1u);
}

TEST(HostLeasesTest, TrackIfUnknownKeepsAKnownLeaseAndForgetDropsIt) {
  HostLeases leases;
  leases.Renew("a", kT0 + absl::Seconds(5));
  ASSERT_TRUE(leases.TakeExpired(kT0 + absl::Seconds(6)).size() == 1);
  // Known (though disarmed): left as it is, so a host already found expired is not re-armed.
  leases.TrackIfUnknown("a", kT0);
  leases.TrackIfUnknown("b", kT0);
  EXPECT_EQ(leases.Last("a"), kT0 + absl::Seconds(5));
  EXPECT_EQ(Names(leases.TakeExpired(kT0 + absl::Seconds(6))), (std::vector<std::string>{"b"}));
  leases.Renew("c", kT0);
  leases.Forget("c");
  leases.Forget("c");
  EXPECT_FALSE(leases.Last("c").has_value());
  EXPECT_TRUE(leases.TakeExpired(kT0 + absl::Hours(1)).empty());
  leases.Clear();
  EXPECT_EQ(leases.size(), 0u);
  EXPECT_EQ(leases.armed(), 0u);
}

// Many hosts renewing in an arbitrary order: what expires is exactly what a walk over every
// host would find, and each expiry is reported once.
TEST(HostLeasesTest, AgreesWithAWalkOverEveryHost) {
  HostLeases leases;
  std::map<std::string, absl::Time> last;
  uint64_t seed = 12345;
  auto next = [&seed] {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return seed >> 33;
  };
  absl::Time now = kT0;
  std::set<std::string> reported;  // expired and not renewed since
  size_t expiries = 0;
  for (int step = 0; step < 20000; ++step) {
    now += absl::Milliseconds(next() % 30);
    const std::string name = core::Cat("h", next() % 500);
    if (next() % 10 != 0) {
      leases.Renew(name, now);
      last[name] = now;
      reported.erase(name);
    }
    if (step % 100 == 0) {
      const absl::Time deadline = now - absl::Seconds(10);
      std::set<std::string> want;
      for (const auto& [n, t] : last) {
        if (t < deadline && !reported.contains(n)) want.insert(n);
      }
      std::set<std::string> got;
      for (const auto& e : leases.TakeExpired(deadline)) {
        EXPECT_EQ(e.last, last[e.name]) << e.name;
        EXPECT_TRUE(got.insert(e.name).second) << e.name << " reported twice";
      }
      EXPECT_EQ(got, want) << "step " << step;
      expiries += got.size();
      reported.insert(got.begin(), got.end());
    }
  }
  EXPECT_GT(expiries, 100u);  // the walk above had something to compare
}

}  // namespace
}  // namespace berth::control
