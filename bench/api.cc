// bench/run api [SECONDS] [CLIENTS] [--etcd=URL] [--list-scale=N]: requests per second the REST API
// serves on this machine. A real ApiServer over a ControlPlane on a SqliteStore (durable commits)
// in a temporary directory; CLIENTS keep-alive typed clients (api::Client, so each figure includes
// decoding the reply) hammer one endpoint at a time for SECONDS:
//   healthz  the transport alone (the baseline: no auth, no store)
//   get      GET /v1/workloads/{name} of one of 200 workloads
//   list     GET /v1/workloads (200 workloads), decoded into typed workloads
//   list_json  the same request, its reply only parsed as JSON (the server's share of `list`)
//   create   POST /v1/workloads (each a durable SQLite commit)
// Each endpoint is measured twice: with handlers on the API's worker pool (what servers run),
// and with handlers on the I/O threads (ApiServerOptions::workers < 0, the baseline: how the
// API ran before the pool), each on a fresh store.
// Prints a table, each figure's ratio to healthz, and one JSON object as its last line. With
// --etcd=etcd://HOST:PORT (an empty cluster) the same again on EtcdStore, beside SQLite, with
// the ratio of etcd's creates to SQLite's. With --list-scale=N (say 100000), N workloads are
// written into a SQLite store and one client times the whole list against 500-item pages (the
// first, one from the middle, and one filtered by tenant), with the ratio of the whole list's
// latency to a page's.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "api/api_server.h"
#include "api/client/client.h"
#include "api/list_query.h"
#include "control/control_plane.h"
#include "core/strings.h"
#include "nlohmann/json.hpp"
#include "state/sqlite_store.h"
#ifdef BERTH_BENCH_ETCD
#include "state/etcd/etcd_store.h"
#endif

namespace {

using Clock = std::chrono::steady_clock;

struct Figure {
  std::string name;
  double per_second = 0;
  int64_t errors = 0;
};

Figure Measure(
    const std::string& name, const std::string& url, const std::string& token, int clients,
    double seconds,
    const std::function<absl::Status(berth::api::Client&, int client, int64_t i)>& call) {
  std::atomic<int64_t> done{0}, errors{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  auto start = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      berth::api::Client client(url, berth::api::ClientOptions{.token = token});
      for (int64_t i = 0; !stop; ++i) {
        if (!call(client, c, i).ok()) {
          ++errors;
        } else {
          ++done;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return Figure{name, done.load() / elapsed, errors.load()};
}

berth::core::WorkloadSpec Spec(const std::string& name) {
  berth::core::WorkloadSpec spec;
  spec.name = name;
  spec.kind = berth::core::WorkloadKind::kProcess;
  spec.command = {"/bin/true"};
  return spec;
}

// Serves the API over `store` and measures each endpoint; empty on a setup failure (said).
std::vector<Figure> MeasureOn(berth::state::Store* store, double seconds, int clients,
                              int workers) {
  berth::control::ControlPlane control(store, {});
  berth::api::ApiServerOptions o;
  o.admin_token = "bench-token";
  o.workers = workers;
  berth::api::ApiServer server(o, &control, nullptr);
  auto port = server.Start();
  if (!port.ok()) {
    std::cerr << port.status() << "\n";
    return {};
  }
  std::string url = "http://127.0.0.1:" + std::to_string(*port);
  {
    berth::api::Client c(url, berth::api::ClientOptions{.token = o.admin_token});
    for (int i = 0; i < 200; ++i) {
      berth::core::WorkloadSpec spec = Spec("seed-" + std::to_string(i));
      spec.resources.cpu = berth::core::MilliCpu(100);
      spec.resources.memory = berth::core::MemoryMiB(64);
      auto created = c.CreateWorkload(spec);
      if (!created.ok()) {
        std::cerr << "seeding failed: " << created.status() << "\n";
        return {};
      }
    }
  }
  std::vector<Figure> figures;
  figures.push_back(Measure("healthz", url, o.admin_token, clients, seconds,
                            [](auto& c, int, int64_t) { return c.Health(); }));
  figures.push_back(
      Measure("get", url, o.admin_token, clients, seconds, [](auto& c, int, int64_t i) {
        return c.GetWorkload("seed-" + std::to_string(i % 200)).status();
      }));
  figures.push_back(Measure("list", url, o.admin_token, clients, seconds,
                            [](auto& c, int, int64_t) { return c.ListWorkloads().status(); }));
  figures.push_back(
      Measure("list_json", url, o.admin_token, clients, seconds,
              [](auto& c, int, int64_t) { return c.Call("GET", "/v1/workloads").status(); }));
  figures.push_back(
      Measure("create", url, o.admin_token, clients, seconds, [](auto& c, int client, int64_t i) {
        return c.CreateWorkload(Spec("c" + std::to_string(client) + "-" + std::to_string(i)))
            .status();
      }));
  server.Stop();
  return figures;
}

// Prints one store's table and adds its figures to `out` under `prefix`.
void Report(const std::string& store, const std::vector<Figure>& figures, nlohmann::json& out,
            const std::string& prefix) {
  double base = figures[0].per_second;
  std::printf("store: %s\n%-10s %14s %10s %8s\n", store.c_str(), "endpoint", "requests/s",
              "vs healthz", "errors");
  for (const auto& f : figures) {
    std::printf("%-10s %14.0f %10.3f %8lld\n", f.name.c_str(), f.per_second,
                base > 0 ? f.per_second / base : 0.0, static_cast<long long>(f.errors));
    out[prefix + f.name + "_per_s"] = static_cast<int64_t>(f.per_second);
    out[prefix + f.name + "_ratio_to_healthz"] = base > 0 ? f.per_second / base : 0.0;
    if (f.errors) out[prefix + f.name + "_errors"] = f.errors;
  }
}

// Milliseconds per call of `call`, over `times` calls one after another.
double TimeMs(int times, const std::function<absl::Status()>& call, int64_t* errors) {
  auto start = Clock::now();
  for (int i = 0; i < times; ++i) {
    if (!call().ok()) ++*errors;
  }
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count() / times;
}

// Writes `n` pending workloads (one in ten of tenant "gold") into `store` as the control plane
// stores them, then times the whole list against 500-item pages; adds the figures to `out`.
bool MeasureListScale(berth::state::Store* store, int n, nlohmann::json& out) {
  constexpr int kBatch = 500;
  for (int start = 0; start < n; start += kBatch) {
    berth::state::TxnRequest txn;
    for (int i = start; i < std::min(n, start + kBatch); ++i) {
      berth::core::Workload w;
      w.spec = Spec(berth::core::Cat("w", 1000000 + i));
      w.spec.tenant = i % 10 == 0 ? "gold" : "default";
      w.spec.labels = {{"app", i % 2 == 0 ? "web" : "db"}};
      txn.then_ops.push_back(berth::state::Op::Put(berth::control::WorkloadKey(w.spec.name),
                                                   berth::core::EncodeWorkload(w).dump()));
    }
    if (auto r = store->Txn(txn); !r.ok()) {
      std::cerr << "bench api: writing workloads failed: " << r.status() << "\n";
      return false;
    }
  }
  berth::control::ControlPlane control(store, {});
  berth::api::ApiServerOptions o;
  o.admin_token = "bench-token";
  berth::api::ApiServer server(o, &control, nullptr);
  auto port = server.Start();
  if (!port.ok()) {
    std::cerr << port.status() << "\n";
    return false;
  }
  berth::api::Client c("http://127.0.0.1:" + std::to_string(*port),
                       berth::api::ClientOptions{.token = o.admin_token});
  auto revision = store->Revision();
  const std::string middle = berth::api::EncodeContinue("workloads", revision.ok() ? *revision : 0,
                                                        berth::core::Cat("w", 1000000 + n / 2));
  int64_t errors = 0;
  auto get = [&](const std::string& path) {
    return [&c, path] { return c.Call("GET", path).status(); };
  };
  double whole = TimeMs(3, get("/v1/workloads"), &errors);
  double first = TimeMs(50, get("/v1/workloads?limit=500"), &errors);
  double deep = TimeMs(50, get("/v1/workloads?limit=500&continue=" + middle), &errors);
  double gold = TimeMs(20, get("/v1/workloads?limit=500&tenant=gold"), &errors);
  double web = TimeMs(20, get("/v1/workloads?limit=500&selector=app%3Dweb"), &errors);
  server.Stop();
  std::printf("lists at %d workloads (ms per request, one client)\n", n);
  std::printf("%-24s %10.1f\n%-24s %10.1f\n%-24s %10.1f\n%-24s %10.1f\n%-24s %10.1f\n",
              "whole list", whole, "page of 500, first", first, "page of 500, middle", deep,
              "page of 500, tenant=gold", gold, "page of 500, app=web", web);
  std::printf("whole list / first page: %.1f\n", first > 0 ? whole / first : 0.0);
  out["scale_workloads"] = n;
  out["scale_whole_list_ms"] = whole;
  out["scale_page_first_ms"] = first;
  out["scale_page_middle_ms"] = deep;
  out["scale_page_tenant_ms"] = gold;
  out["scale_page_selector_ms"] = web;
  out["scale_whole_to_page_ratio"] = first > 0 ? whole / first : 0.0;
  if (errors) out["scale_errors"] = errors;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  std::string etcd_url;
  int list_scale = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--etcd=", 0) == 0) {
      etcd_url = arg.substr(7);
    } else if (arg.rfind("--list-scale=", 0) == 0) {
      list_scale = std::atoi(arg.c_str() + 13);
    } else {
      positional.push_back(arg);
    }
  }
  double seconds = positional.size() > 0 ? std::atof(positional[0].c_str()) : 3.0;
  int clients = positional.size() > 1 ? std::atoi(positional[1].c_str()) : 8;
  std::string dir =
      std::filesystem::temp_directory_path() / ("berth-bench-api-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::cerr << "bench api: " << clients << " clients, " << seconds << " s per endpoint\n";
  std::vector<Figure> sqlite_figures, inline_figures;
  nlohmann::json out = {{"benchmark", "api"}, {"clients", clients}, {"seconds", seconds}};
  bool scaled = true;
  {
    auto store = berth::state::SqliteStore::Open(dir + "/berth.db");
    auto baseline = berth::state::SqliteStore::Open(dir + "/inline.db");
    if (!store.ok() || !baseline.ok()) {
      std::cerr << (store.ok() ? baseline.status() : store.status()) << "\n";
      std::filesystem::remove_all(dir);
      return 1;
    }
    sqlite_figures = MeasureOn(store->get(), seconds, clients, /*workers=*/0);
    inline_figures = MeasureOn(baseline->get(), seconds, clients, /*workers=*/-1);
    if (list_scale > 0) {
      auto big = berth::state::SqliteStore::Open(dir + "/scale.db");
      scaled = big.ok() && MeasureListScale(big->get(), list_scale, out);
    }
  }
  std::filesystem::remove_all(dir);
  if (sqlite_figures.empty() || inline_figures.empty() || !scaled) return 1;
  std::printf("handlers on the worker pool (%d workers)\n",
              berth::api::WorkPool::ResolveThreads(0));
  Report("sqlite", sqlite_figures, out, "");
  std::printf("handlers on the I/O threads (the baseline)\n");
  Report("sqlite", inline_figures, out, "inline_");
  for (size_t i = 0; i < sqlite_figures.size(); ++i) {
    const Figure& pooled = sqlite_figures[i];
    const Figure& base = inline_figures[i];
    double ratio = base.per_second > 0 ? pooled.per_second / base.per_second : 0.0;
    std::printf("%-10s pool / I/O threads: %.2f\n", pooled.name.c_str(), ratio);
    out[pooled.name + "_pool_to_inline_ratio"] = ratio;
  }
  if (!etcd_url.empty()) {
#ifdef BERTH_BENCH_ETCD
    // The same on etcd: creates are etcd transactions through the JSON gateway. The cluster
    // must hold no keys (the bench removes everything it wrote, which is then everything).
    auto etcd = berth::state::OpenEtcdStore(etcd_url, {});
    if (!etcd.ok()) {
      std::cerr << "bench api: " << etcd.status() << "\n";
      return 1;
    }
    auto existing = (*etcd)->List("/");
    if (!existing.ok() || !existing->kvs.empty()) {
      std::cerr << "bench api: the etcd cluster at " << etcd_url
                << " must be empty (it holds keys, or cannot be listed)\n";
      return 1;
    }
    std::vector<Figure> etcd_figures = MeasureOn(etcd->get(), seconds, clients, /*workers=*/0);
    if (!(*etcd)->DeletePrefix("/").ok()) std::cerr << "bench api: cleanup of etcd failed\n";
    if (etcd_figures.empty()) return 1;
    Report("etcd", etcd_figures, out, "etcd_");
    out["etcd_create_ratio_to_sqlite"] =
        sqlite_figures[4].per_second > 0 ? etcd_figures[4].per_second / sqlite_figures[4].per_second
                                         : 0.0;
#else
    std::cerr << "bench api: built without EtcdStore\n";
    return 1;
#endif
  }
  std::cout << out.dump() << std::endl;
  return 0;
}
