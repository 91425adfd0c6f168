// The API's lists over loopback: `limit`/`continue` paging, the server-side filters, refusals of
// bad parameters, and blocking queries on filtered lists.
#include <map>
#include <set>
#include <string>
#include <thread>

#include "api/api_server.h"
#include "api/client/client.h"
#include "api/http/client.h"
#include "api/list_query.h"
#include "core/strings.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::api {
namespace {

using core::Cat;
using core::Json;

class ListRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    control_ = std::make_unique<control::ControlPlane>(&store_, control::ControlPlaneOptions{});
    ApiServerOptions o;
    o.admin_token = "admin-secret";
    server_ = std::make_unique<ApiServer>(o, control_.get(), nullptr);
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    url_ = "http://127.0.0.1:" + std::to_string(*port);
    client_ = std::make_unique<api::Client>(url_, ClientOptions{.token = "admin-secret"});
  }
  void Create(const std::string& name, const std::string& tenant = "default",
              const std::string& app = "web", const std::string& kind = "process") {
    Json spec = {{"name", name},     {"kind", kind},
                 {"tenant", tenant}, {"labels", {{"app", app}}},
                 {"image", "img"},   {"resources", {{"cpu", "100m"}, {"memory", "16Mi"}}}};
    if (kind == "process") {
      spec.erase("image");
      spec["command"] = {"/bin/true"};
    }
    auto w = client_->CreateWorkloadFromText(spec.dump());
    ASSERT_TRUE(w.ok()) << w.status();
  }
  // GET over raw HTTP: the status and the parsed body.
  std::pair<int, Json> Get(const std::string& target) {
    HttpClient raw(url_, HttpClient::Options{.bearer_token = "admin-secret"});
    auto r = raw.Get(target);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {0, Json()};
    return {r->status, Json::parse(r->body, nullptr, false)};
  }
  std::vector<std::string> Names(const ListRequest& request, size_t page_size = 4) {
    auto all = client_->ListAllWorkloads(request, page_size);
    EXPECT_TRUE(all.ok()) << all.status();
    std::vector<std::string> out;
    if (all.ok()) {
      for (const auto& w : all->items) out.push_back(w.spec.name);
    }
    return out;
  }

  state::MemoryStore store_;
  std::unique_ptr<control::ControlPlane> control_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<api::Client> client_;
  std::string url_;
};

TEST_F(ListRoutesTest, PagesCarryAContinueTokenUntilTheLast) {
  for (int i = 0; i < 11; ++i) Create(Cat("w", 10 + i));
  ListRequest request{.limit = 4};
  std::vector<std::string> names;
  int pages = 0;
  int64_t first_revision = 0;
  while (true) {
    Raw raw;
    auto page = client_->ListWorkloads(request, {}, &raw);
    ASSERT_TRUE(page.ok()) << page.status();
    if (pages == 0) first_revision = page->revision;
    ++pages;
    EXPECT_LE(page->items.size(), 4u);
    EXPECT_GT(raw.index, 0);
    for (const auto& w : page->items) names.push_back(w.spec.name);
    if (page->continue_token.empty()) break;
    request.continue_token = page->continue_token;
  }
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(names.size(), 11u);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), 11u);
  EXPECT_GT(first_revision, 0);
  // Without a limit the list is whole, as before paging existed, and has no token.
  auto all = client_->ListWorkloads();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->items.size(), 11u);
  EXPECT_TRUE(all->continue_token.empty());
  // The token names its list: a workloads token does not page hosts.
  auto [status, body] = Get("/v1/workloads?limit=2");
  ASSERT_EQ(status, 200);
  std::string token = body["continue"];
  auto [host_status, host_body] = Get(Cat("/v1/hosts?limit=2&continue=", token));
  EXPECT_EQ(host_status, 400);
  EXPECT_NE(host_body["error"]["message"].get<std::string>().find("continue"), std::string::npos);
}

TEST_F(ListRoutesTest, PagingSeesEveryLastingWorkloadOnceWhileOthersComeAndGo) {
  std::set<std::string> lasting;
  for (int i = 0; i < 30; ++i) {
    Create(Cat("keep-", 100 + i));
    lasting.insert(Cat("keep-", 100 + i));
    Create(Cat("keep-", 100 + i, "-tmp"));
  }
  ListRequest request{.limit = 6};
  std::map<std::string, int> seen;
  for (int page_no = 0;; ++page_no) {
    auto page = client_->ListWorkloads(request);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& w : page->items) ++seen[w.spec.name];
    if (page->continue_token.empty()) break;
    request.continue_token = page->continue_token;
    // Between pages: temporary workloads go (behind and ahead of the cursor), new ones come.
    ASSERT_TRUE(client_->DeleteWorkload(Cat("keep-", 100 + page_no, "-tmp")).ok());
    ASSERT_TRUE(client_->DeleteWorkload(Cat("keep-", 129 - page_no, "-tmp")).ok());
    Create(Cat("a-", page_no));
    Create(Cat("z-", page_no));
  }
  for (const auto& [name, count] : seen) EXPECT_EQ(count, 1) << name;
  for (const auto& name : lasting) EXPECT_EQ(seen.count(name), 1u) << name;
}

TEST_F(ListRoutesTest, EachFilterIsAppliedByTheServer) {
  Create("a1", "gold", "web");
  Create("a2", "gold", "db");
  Create("a3", "basic", "web");
  Create("c1", "basic", "web", "container");
  Create("v1", "gold", "web", "vm");
  using V = std::vector<std::string>;
  EXPECT_EQ(Names({.tenant = "gold"}), (V{"a1", "a2", "v1"}));
  EXPECT_EQ(Names({.kind = "container"}), (V{"c1"}));
  EXPECT_EQ(Names({.kind = "vm", .tenant = "gold"}), (V{"v1"}));
  EXPECT_EQ(Names({.selector = "app=web"}), (V{"a1", "a3", "c1", "v1"}));
  EXPECT_EQ(Names({.selector = "app!=web"}), (V{"a2"}));
  EXPECT_EQ(Names({.selector = "app in (db,cache)"}), (V{"a2"}));
  EXPECT_EQ(Names({.tenant = "gold", .selector = "app=web"}, 1), (V{"a1", "v1"}));
  EXPECT_EQ(Names({.state = "pending"}).size(), 5u);  // no host yet: all pending
  EXPECT_TRUE(Names({.state = "running"}).empty());
  EXPECT_TRUE(Names({.host = "h1"}).empty());
  // `label=k=v` is a selector too.
  auto [status, body] = Get("/v1/workloads?label=app%3Ddb");
  ASSERT_EQ(status, 200);
  ASSERT_EQ(body["items"].size(), 1u);
  EXPECT_EQ(body["items"][0]["name"], "a2");
  // Placed on a host: the host filter finds it.
  core::HostInventory inv;
  inv.capacity.cpu = core::MilliCpu(8000);
  inv.capacity.memory = core::MemoryMiB(8192);
  inv.drivers = {"process"};
  ASSERT_TRUE(client_->RegisterHost({.name = "h1", .inventory = inv}).ok());
  ASSERT_TRUE(control_->ScheduleOnce().ok());
  EXPECT_EQ(Names({.host = "h1"}), (V{"a1", "a2", "a3"}));
  EXPECT_EQ(Names({.state = "scheduled"}), (V{"a1", "a2", "a3"}));
  // Hosts: by state and by label.
  auto ready = client_->ListHosts(ListRequest{.state = "ready"});
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(ready->items.size(), 1u);
  auto down = client_->ListHosts(ListRequest{.state = "down"});
  ASSERT_TRUE(down.ok());
  EXPECT_TRUE(down->items.empty());
  auto all_hosts = client_->ListAllHosts({}, 1);
  ASSERT_TRUE(all_hosts.ok());
  EXPECT_EQ(all_hosts->items.size(), 1u);
  // By the start of the name, with the other filters and across pages.
  auto names_of = [&](const std::string& target) {
    auto [status, body] = Get(target);
    EXPECT_EQ(status, 200) << target << ": " << body.dump();
    V out;
    for (const Json& item : body["items"]) out.push_back(item["name"]);
    return std::pair{out, body.contains("continue")};
  };
  EXPECT_EQ(names_of("/v1/workloads?prefix=a").first, (V{"a1", "a2", "a3"}));
  EXPECT_EQ(names_of("/v1/workloads?prefix=a&tenant=basic").first, (V{"a3"}));
  auto [first, more] = names_of("/v1/workloads?prefix=a&limit=2");
  EXPECT_EQ(first, (V{"a1", "a2"}));
  EXPECT_TRUE(more);
  EXPECT_EQ(names_of("/v1/workloads?prefix=zz").first, V{});
  EXPECT_EQ(names_of("/v1/hosts?prefix=h").first, (V{"h1"}));
  EXPECT_EQ(names_of("/v1/hosts?prefix=x").first, V{});
}

TEST_F(ListRoutesTest, BadParametersAre400NamingTheParameter) {
  Create("w1");
  struct Case {
    std::string target;
    std::string names;
  };
  for (const Case& c : std::vector<Case>{
           {"/v1/workloads?limit=0", "limit"},
           {"/v1/workloads?limit=5001", "limit"},
           {"/v1/workloads?limit=ten", "limit"},
           {"/v1/workloads?limit=1&limit=2", "limit"},
           {"/v1/workloads?continue=bm90IGEgdG9rZW4", "continue"},
           {"/v1/workloads?continue=%25%25", "continue"},
           {"/v1/workloads?state=sleeping", "state"},
           {"/v1/workloads?kind=unikernel", "kind"},
           {"/v1/workloads?host=", "host"},
           {"/v1/workloads?tenant=", "tenant"},
           {"/v1/workloads?selector=a%20b%3Dc", "selector"},
           {"/v1/workloads?selector=rack%20in%20(a", "selector"},
           {"/v1/workloads?label=%3Dv", "label"},
           {"/v1/hosts?state=running", "state"},
           {"/v1/hosts?tenant=gold", "tenant"},
           {"/v1/hosts?kind=vm", "kind"},
           {"/v1/hosts?prefix=", "prefix"},
           {"/v1/tenants?prefix=a", "prefix"},
           {"/v1/tenants?limit=0", "limit"},
           {"/v1/tenants?state=ready", "state"},
           {"/v1/events?kind=", "kind"},
       }) {
    auto [status, body] = Get(c.target);
    EXPECT_EQ(status, 400) << c.target;
    EXPECT_EQ(body["error"]["code"], "invalid_argument") << c.target;
    EXPECT_NE(body["error"]["message"].get<std::string>().find(Cat("query: ", c.names)),
              std::string::npos)
        << c.target << ": " << body.dump();
  }
}

TEST_F(ListRoutesTest, TenantsAndEventsFilterAndPage) {
  Create("w1", "gold");
  Create("w2", "basic");
  // Tenants are listed when they have a quota (or placed workloads).
  for (const char* tenant : {"gold", "basic", "cyan"}) {
    ASSERT_TRUE(client_->SetQuota(tenant, Json{{"cpu", "8"}}).ok());
  }
  auto [status, body] = Get("/v1/tenants?limit=2");
  ASSERT_EQ(status, 200);
  ASSERT_EQ(body["items"].size(), 2u);
  EXPECT_EQ(body["items"][0]["name"], "basic");
  ASSERT_TRUE(body.contains("continue"));
  auto [status2, body2] =
      Get(Cat("/v1/tenants?limit=2&continue=", body["continue"].get<std::string>()));
  ASSERT_EQ(status2, 200);
  ASSERT_EQ(body2["items"].size(), 1u);
  EXPECT_EQ(body2["items"][0]["name"], "gold");
  EXPECT_FALSE(body2.contains("continue"));
  // Events of one object only.
  auto [es, events] = Get("/v1/events?kind=workload&object=w2");
  ASSERT_EQ(es, 200);
  ASSERT_FALSE(events["items"].empty());
  for (const Json& e : events["items"]) EXPECT_EQ(e["object"], "w2");
}

TEST_F(ListRoutesTest, ABlockingQueryOnAFilteredListWakesForWhatItShows) {
  Create("basic-1", "basic");
  Raw raw;
  ASSERT_TRUE(client_->ListWorkloads(ListRequest{.tenant = "gold"}, {}, &raw).ok());
  const int64_t index = raw.index;
  ASSERT_GT(index, 0);
  std::thread writer([&] {
    api::Client w(url_, ClientOptions{.token = "admin-secret"});
    Json spec = {
        {"name", "gold-1"}, {"kind", "process"}, {"tenant", "gold"}, {"command", {"/bin/true"}}};
    ASSERT_TRUE(w.CreateWorkloadFromText(spec.dump()).ok());
  });
  auto waited = client_->ListWorkloads(ListRequest{.tenant = "gold"},
                                       {.index = index, .wait = absl::Seconds(60)}, &raw);
  writer.join();
  ASSERT_TRUE(waited.ok()) << waited.status();
  ASSERT_EQ(waited->items.size(), 1u);
  EXPECT_EQ(waited->items[0].spec.name, "gold-1");
  EXPECT_GT(raw.index, index);
}

state::Event Put(std::string key, int64_t revision, std::string value = "{}") {
  state::Event e;
  e.type = state::Event::Type::kPut;
  e.kv.key = std::move(key);
  e.kv.value = std::move(value);
  e.kv.mod_revision = revision;
  return e;
}

TEST(ListChangeFilterTest, OnlyChangesToWhatTheListShowsOrWouldShowConcernIt) {
  ListChangeFilter filter({"/workloads/a"}, 10, [](const state::KeyValue& kv) {
    return kv.value.find("gold") != std::string::npos;
  });
  EXPECT_TRUE(filter.Concerns(Put("/workloads/zzz", 9)));         // before the listing: unknown
  EXPECT_TRUE(filter.Concerns(Put("/workloads/a", 11)));          // a shown item changed
  EXPECT_TRUE(filter.Concerns(Put("/workloads/b", 11, "gold")));  // now passes the filter
  EXPECT_FALSE(filter.Concerns(Put("/workloads/b", 11, "basic")));
  state::Event gone = Put("/workloads/a", 12, "");
  gone.type = state::Event::Type::kDelete;
  EXPECT_TRUE(filter.Concerns(gone));
  gone.kv.key = "/workloads/c";
  EXPECT_FALSE(filter.Concerns(gone));  // never shown, and gone
}

}  // namespace
}  // namespace berth::api
