#include "control/list_options.h"

#include <map>
#include <set>
#include <string>

#include "control/control_plane.h"
#include "core/strings.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::control {
namespace {

using Op = sched::LabelSelector::Op;

TEST(LabelSelectorTest, ParsesKubernetesRequirements) {
  auto s = ParseLabelSelector("app=web, tier==front,zone!=a,gpu,rack in (r1, r2),pool notin (x)");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->size(), 6u);
  EXPECT_EQ((*s)[0], (sched::LabelSelector{"app", Op::kEquals, {"web"}}));
  EXPECT_EQ((*s)[1], (sched::LabelSelector{"tier", Op::kEquals, {"front"}}));
  EXPECT_EQ((*s)[2], (sched::LabelSelector{"zone", Op::kNotIn, {"a"}}));
  EXPECT_EQ((*s)[3], (sched::LabelSelector{"gpu", Op::kExists, {}}));
  EXPECT_EQ((*s)[4], (sched::LabelSelector{"rack", Op::kIn, {"r1", "r2"}}));
  EXPECT_EQ((*s)[5], (sched::LabelSelector{"pool", Op::kNotIn, {"x"}}));
}

TEST(LabelSelectorTest, RefusesWhatDoesNotParseNamingTheRequirement) {
  for (const char* bad : {"", "app=web,", "a b=c", "app=we b", "rack in (r1", "rack in r1)",
                          "rack within (a)", "rack in ()", "=v"}) {
    auto s = ParseLabelSelector(bad);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseLabelSelector("app=ok,a b=c").status().message().find("\"a b=c\""),
            std::string_view::npos);
}

core::Workload WorkloadOf(core::WorkloadKind kind, std::string tenant, std::string host,
                          core::WorkloadState state, std::map<std::string, std::string> labels) {
  core::Workload w;
  w.spec.name = "w";
  w.spec.kind = kind;
  w.spec.tenant = std::move(tenant);
  w.spec.labels = std::move(labels);
  w.status.host = std::move(host);
  w.status.state = state;
  return w;
}

TEST(ListFilterTest, EachFilterNarrowsTheWorkloads) {
  core::Workload w = WorkloadOf(core::WorkloadKind::kContainer, "team-a", "h1",
                                core::WorkloadState::kRunning, {{"app", "web"}});
  EXPECT_TRUE(MatchesWorkload({}, w));
  EXPECT_TRUE(MatchesWorkload({.state = core::WorkloadState::kRunning}, w));
  EXPECT_FALSE(MatchesWorkload({.state = core::WorkloadState::kPending}, w));
  EXPECT_TRUE(MatchesWorkload({.host = "h1"}, w));
  EXPECT_FALSE(MatchesWorkload({.host = "h2"}, w));
  EXPECT_TRUE(MatchesWorkload({.kind = core::WorkloadKind::kContainer}, w));
  EXPECT_FALSE(MatchesWorkload({.kind = core::WorkloadKind::kVm}, w));
  EXPECT_TRUE(MatchesWorkload({.tenant = "team-a"}, w));
  EXPECT_FALSE(MatchesWorkload({.tenant = "team-b"}, w));
  EXPECT_TRUE(MatchesWorkload({.selector = *ParseLabelSelector("app=web")}, w));
  EXPECT_FALSE(MatchesWorkload({.selector = *ParseLabelSelector("app!=web")}, w));
  EXPECT_TRUE(MatchesWorkload({.selector = *ParseLabelSelector("tier!=db")}, w));
  EXPECT_FALSE(MatchesWorkload({.selector = *ParseLabelSelector("app=web,tier")}, w));
  EXPECT_TRUE(MatchesWorkload({.prefix = "w"}, w));
  EXPECT_FALSE(MatchesWorkload({.prefix = "wx"}, w));
}

core::WorkloadSpec Spec(const std::string& name, const std::string& tenant,
                        const std::string& app) {
  core::Json j = {{"name", name},
                  {"kind", "process"},
                  {"command", {"/bin/true"}},
                  {"tenant", tenant},
                  {"labels", {{"app", app}}},
                  {"resources", {{"cpu", "100m"}, {"memory", "16Mi"}}}};
  return *core::DecodeWorkloadSpec(j);
}

class ListPagingTest : public ::testing::Test {
 protected:
  ListPagingTest() : store_(state::StoreOptions{.clock = &clock_}), cp_(&store_, Options()) {}
  ControlPlaneOptions Options() {
    ControlPlaneOptions o;
    o.clock = &clock_;
    return o;
  }
  // Pages through the workloads `limit` at a time, calling `between` after each page.
  std::vector<std::string> PageAll(ListOptions options, const std::function<void(int)>& between,
                                   int* pages) {
    std::vector<std::string> names;
    *pages = 0;
    while (true) {
      ListPage page;
      auto list = cp_.ListWorkloads(options, &page);
      EXPECT_TRUE(list.ok()) << list.status();
      if (!list.ok()) return names;
      EXPECT_LE(list->size(), options.limit);
      for (const auto& w : *list) names.push_back(w.spec.name);
      ++*pages;
      if (page.next.empty()) return names;
      EXPECT_EQ(page.next, list->back().spec.name);
      options.after = page.next;
      between(*pages);
    }
  }
  core::ManualClock clock_;
  state::MemoryStore store_;
  ControlPlane cp_;
};

TEST_F(ListPagingTest, PagesCoverTheListOnceInNameOrder) {
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(cp_.CreateWorkload(Spec(core::Cat("w", 100 + i), "t", "a")).ok());
  }
  int pages = 0;
  std::vector<std::string> names = PageAll(
      {.limit = 10}, [](int) {}, &pages);
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(names.size(), 25u);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), 25u);
  // A limit that divides the list exactly ends without an empty page.
  EXPECT_EQ(PageAll(
                {.limit = 5}, [](int) {}, &pages)
                .size(),
            25u);
  EXPECT_EQ(pages, 5);
  // No limit: everything at once, and no next page.
  ListPage page;
  auto all = cp_.ListWorkloads(ListOptions{}, &page);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 25u);
  EXPECT_TRUE(page.next.empty());
  EXPECT_EQ(page.revision, *store_.Revision());
}

TEST_F(ListPagingTest, ObjectsThatLiveThroughoutAppearOnceWhileOthersComeAndGo) {
  std::set<std::string> stable;
  for (int i = 0; i < 40; ++i) {
    std::string name = core::Cat("s", 100 + i);
    ASSERT_TRUE(cp_.CreateWorkload(Spec(name, "t", "a")).ok());
    stable.insert(name);
  }
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(cp_.CreateWorkload(Spec(core::Cat("s", 100 + i, "x"), "t", "a")).ok());
  }
  // Between pages: delete a transient object on either side of the cursor, and create new
  // ones before and after it.
  int pages = 0;
  std::vector<std::string> names = PageAll(
      {.limit = 7},
      [&](int page) {
        ASSERT_TRUE(cp_.DeleteWorkload(core::Cat("s", 100 + page, "x")).ok());
        ASSERT_TRUE(cp_.DeleteWorkload(core::Cat("s", 119 - page, "x")).ok());
        ASSERT_TRUE(cp_.CreateWorkload(Spec(core::Cat("a-new", page), "t", "a")).ok());
        ASSERT_TRUE(cp_.CreateWorkload(Spec(core::Cat("z-new", page), "t", "a")).ok());
      },
      &pages);
  std::map<std::string, int> seen;
  for (const auto& n : names) ++seen[n];
  for (const auto& [name, count] : seen) EXPECT_EQ(count, 1) << name;
  for (const auto& name : stable) EXPECT_EQ(seen.count(name), 1u) << name;
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_GT(pages, 5);
}

TEST_F(ListPagingTest, FiltersApplyBeforeThePageIsCut) {
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(cp_.CreateWorkload(Spec(core::Cat("w", 100 + i), i % 3 == 0 ? "gold" : "basic",
                                        i % 2 == 0 ? "web" : "db"))
                    .ok());
  }
  int pages = 0;
  std::vector<std::string> gold = PageAll(
      {.filter = {.tenant = "gold"}, .limit = 4}, [](int) {}, &pages);
  EXPECT_EQ(gold.size(), 10u);
  for (const auto& n : gold) EXPECT_EQ((std::stoi(n.substr(1)) - 100) % 3, 0) << n;
  std::vector<std::string> gold_web = PageAll(
      {.filter = {.tenant = "gold", .selector = *ParseLabelSelector("app=web")}, .limit = 2},
      [](int) {}, &pages);
  EXPECT_EQ(gold_web.size(), 5u);  // i in {0, 6, 12, 18, 24}
  std::vector<std::string> pending = PageAll(
      {.filter = {.state = core::WorkloadState::kPending}, .limit = 100}, [](int) {}, &pages);
  EXPECT_EQ(pending.size(), 30u);  // no host: all pending
  EXPECT_EQ(pages, 1);
  EXPECT_TRUE(PageAll(
                  {.filter = {.host = "nowhere"}, .limit = 3}, [](int) {}, &pages)
                  .empty());
}

TEST_F(ListPagingTest, HostsPageAndFilterByStateAndLabels) {
  for (int i = 0; i < 6; ++i) {
    core::HostInventory inv;
    inv.capacity.cpu = *core::ParseCpu("2");
    inv.capacity.memory = *core::ParseMemory("1Gi");
    inv.drivers = {"process"};
    inv.labels = {{"zone", i < 2 ? "a" : "b"}};
    ASSERT_TRUE(cp_.RegisterHost(core::Cat("h", i), inv).ok());
  }
  ListPage page;
  auto first = cp_.ListHosts({.limit = 4}, &page);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->size(), 4u);
  EXPECT_EQ(page.next, "h3");
  ListPage rest_page;
  auto rest = cp_.ListHosts({.limit = 4, .after = page.next}, &rest_page);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 2u);
  EXPECT_EQ((*rest)[0].name, "h4");
  EXPECT_TRUE(rest_page.next.empty());
  auto zone_a = cp_.ListHosts({.filter = {.selector = *ParseLabelSelector("zone=a")}}, nullptr);
  ASSERT_TRUE(zone_a.ok());
  EXPECT_EQ(zone_a->size(), 2u);
  auto down = cp_.ListHosts({.filter = {.host_state = core::HostState::kDown}}, nullptr);
  ASSERT_TRUE(down.ok());
  EXPECT_TRUE(down->empty());
  auto ready = cp_.ListHosts({.filter = {.host_state = core::HostState::kReady}}, nullptr);
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->size(), 6u);
}

}  // namespace
}  // namespace berth::control
