// The dashboard's static files under /ui/ (embedded in the binary: web/assets.h), and `/`, which
// sends a browser there. They need no token (authentication in api_server.cc lets GETs of these
// paths through): the page holds no data and asks for a token before it calls the API.
//
// Also GET /v1/summary (a token needed, as for all of /v1): the cluster's totals, summed by the
// server so that the Cluster view never lists every host and workload, and its GPU fragmentation
// measured as `berth sim fill` measures it. It costs a pass over every host and workload and an
// FGD evaluation, so one answer serves every caller for a second (summary_max_age).
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "api/api_server.h"
#include "api/route_util.h"
#include "control/cluster_model.h"
#include "core/gpu.h"
#include "core/host.h"
#include "core/strings.h"
#include "core/workload.h"
#include "sched/cluster.h"
#include "sched/mix.h"
#include "web/assets.h"

namespace berth::api {

namespace {

HttpResponse Redirect(std::string_view to) {
  HttpResponse r = HttpResponse::Text(302, core::Cat("see ", to, "\n"));
  r.headers.Set("Location", std::string(to));
  return r;
}

HttpResponse Serve(const web::Asset& a) {
  HttpResponse r = HttpResponse::Text(200, std::string(a.body));
  r.headers.Set("Content-Type", std::string(a.content_type));
  // The page reads a token into the browser's session storage: no other origin may frame it,
  // and it runs only its own scripts.
  r.headers.Set("X-Frame-Options", "DENY");
  r.headers.Set("X-Content-Type-Options", "nosniff");
  r.headers.Set("Referrer-Policy", "no-referrer");
  r.headers.Set("Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                "frame-ancestors 'none'");
  r.headers.Set("Cache-Control", "no-cache");
  return r;
}

// FGD's fragmentation of the live cluster (sched/fgd.h), as `berth sim fill` measures a simulated
// one: the ready hosts with every placed workload committed, against the mix of the shapes of
// every workload the server holds (the trace of the live cluster), each weighing one.
core::Json LiveFragmentation(const std::vector<core::Host>& hosts,
                             const std::vector<core::Workload>& workloads) {
  sched::Cluster cluster;
  std::map<std::string, int> index;
  int64_t skipped = 0;  // hosts or placements the model refuses (a host's inventory shrank)
  for (const core::Host& h : hosts) {
    if (h.state != core::HostState::kReady) continue;
    auto i = cluster.AddHost(control::SchedulerHostSpec(h));
    if (!i.ok()) {
      ++skipped;
      continue;
    }
    index[h.name] = *i;
  }
  sched::WorkloadMix mix;
  for (const core::Workload& w : workloads) {
    const sched::Request request = control::WorkloadRequest(w);
    mix.Add(sched::Shape::Of(request), 1);
    if (w.status.host.empty() || core::IsTerminal(w.status.state)) continue;
    auto host = index.find(w.status.host);
    if (host == index.end()) continue;
    sched::Placement p;
    p.host = host->second;
    p.host_name = w.status.host;
    p.gpus = w.status.gpus;
    p.devices = w.status.devices;
    if (!cluster.Commit(request, p).ok()) ++skipped;
  }
  const sched::FragmentationReport report = cluster.Fragmentation(mix);
  const int64_t capacity = cluster.Totals().gpu_milli_capacity;
  return {
      {"fragmented_milli", report.fragmented_milli},
      {"fragmented_pct", capacity > 0 ? 100.0 * report.fragmented_milli / double(capacity) : 0.0},
      {"ratio_pct", 100.0 * report.ratio()},
      {"mix_shapes", int64_t(mix.entries().size())},
      {"skipped", skipped}};
}

// The Cluster view's figures. Capacity, allocated and used count ready hosts only; "used" sums
// what the agents that report usage last sent. A GPU's free share is stranded when the device is
// partly allocated: a request for a whole device cannot use it.
absl::StatusOr<core::Json> Summary(control::ControlPlane* control) {
  int64_t revision = 0;
  auto workloads = control->ListWorkloads(&revision);
  if (!workloads.ok()) return workloads.status();
  auto hosts = control->ListHosts();
  if (!hosts.ok()) return hosts.status();
  auto allocations = control->HostAllocations();
  if (!allocations.ok()) return allocations.status();
  const std::map<std::string, core::HostUsage> usage = control->HostUsages();

  std::map<std::string, int64_t> by_state;
  for (core::WorkloadState s : {core::WorkloadState::kPending, core::WorkloadState::kScheduled,
                                core::WorkloadState::kStarting, core::WorkloadState::kRunning,
                                core::WorkloadState::kPaused, core::WorkloadState::kStopping,
                                core::WorkloadState::kStopped, core::WorkloadState::kFailed}) {
    by_state[std::string(core::WorkloadStateName(s))] = 0;
  }
  for (const core::Workload& w : *workloads) {
    ++by_state[std::string(core::WorkloadStateName(w.status.state))];
  }

  int64_t ready = 0, down = 0, cordoned = 0, reporting = 0, gpus_reporting = 0;
  core::Resources capacity, allocated, used;
  int64_t gpus = 0, gpu_milli_allocated = 0, gpu_memory = 0, gpu_memory_allocated = 0;
  int64_t gpu_memory_used = 0, utilization_sum = 0, free_milli = 0, stranded_milli = 0;
  int64_t whole_free = 0;
  for (const core::Host& h : *hosts) {
    if (h.cordoned) ++cordoned;
    if (h.state != core::HostState::kReady) {
      ++down;
      continue;
    }
    ++ready;
    capacity += h.inventory.capacity;
    std::map<int, const core::GpuDeviceAllocation*> held;
    if (auto a = allocations->find(h.name); a != allocations->end()) {
      allocated += a->second.resources;
      for (const core::GpuDeviceAllocation& g : a->second.gpus) held[g.index] = &g;
    }
    for (const core::GpuDevice& d : h.inventory.gpus) {
      ++gpus;
      gpu_memory += d.memory_mib;
      auto g = held.find(d.index);
      const int64_t milli = g != held.end() ? g->second->milli : 0;
      gpu_milli_allocated += milli;
      // A whole device holds all its memory; a share holds what it reserved.
      if (milli >= core::kWholeGpuMilli) {
        gpu_memory_allocated += d.memory_mib;
      } else if (g != held.end()) {
        gpu_memory_allocated += g->second->memory_mib;
      }
      free_milli += core::kWholeGpuMilli - std::min(milli, core::kWholeGpuMilli);
      if (milli == 0) ++whole_free;
      if (milli > 0 && milli < core::kWholeGpuMilli) stranded_milli += core::kWholeGpuMilli - milli;
    }
    if (auto u = usage.find(h.name); u != usage.end()) {
      ++reporting;
      used.cpu += u->second.cpu;
      used.memory += u->second.memory;
      for (const core::GpuDeviceUsage& g : u->second.gpus) {
        ++gpus_reporting;
        gpu_memory_used += g.memory_used_mib;
        utilization_sum += g.utilization_percent;
      }
    }
  }
  core::Json body;
  body["revision"] = revision;
  body["hosts"] = {
      {"total", ready + down}, {"ready", ready}, {"down", down}, {"cordoned", cordoned}};
  body["workloads"] = {{"total", int64_t(workloads->size())}, {"by_state", by_state}};
  body["capacity"] = {{"cpu", core::FormatCpu(capacity.cpu)},
                      {"memory", core::FormatMiB(capacity.memory.value())},
                      {"disk", core::FormatMiB(capacity.disk.value())},
                      {"gpus", gpus},
                      {"gpu_memory", core::FormatMiB(gpu_memory)}};
  body["allocated"] = {{"cpu", core::FormatCpu(allocated.cpu)},
                       {"memory", core::FormatMiB(allocated.memory.value())},
                       {"disk", core::FormatMiB(allocated.disk.value())},
                       {"gpu_milli", gpu_milli_allocated},
                       {"gpu_memory", core::FormatMiB(gpu_memory_allocated)}};
  body["used"] = {{"hosts_reporting", reporting},
                  {"cpu", core::FormatCpu(used.cpu)},
                  {"memory", core::FormatMiB(used.memory.value())},
                  {"gpus_reporting", gpus_reporting},
                  {"gpu_memory", core::FormatMiB(gpu_memory_used)},
                  {"gpu_utilization_percent",
                   gpus_reporting > 0 ? double(utilization_sum) / double(gpus_reporting) : 0.0}};
  body["gpu_fragmentation"] = {
      {"free_milli", free_milli},
      {"stranded_milli", stranded_milli},
      {"whole_free_gpus", whole_free},
      {"stranded_pct", free_milli > 0 ? 100.0 * double(stranded_milli) / double(free_milli) : 0.0},
      {"fgd", LiveFragmentation(*hosts, *workloads)}};
  return body;
}

}  // namespace

void ApiServer::UiRoutes() {
  router_.Handle("GET", "/v1/summary", [this](const HttpRequest&) {
    auto fresh = [this]() -> std::optional<core::Json> {
      absl::MutexLock lock(&summary_mu_);
      if (summary_ && absl::Now() - summary_at_ < options_.summary_max_age) return summary_;
      return std::nullopt;
    };
    std::optional<core::Json> body = fresh();
    if (!body) {
      absl::MutexLock computing(&summary_compute_mu_);
      body = fresh();  // computed by the caller this one waited for
      if (!body) {
        auto computed = Summary(control_);
        if (!computed.ok()) return Fail(computed.status());
        absl::MutexLock lock(&summary_mu_);
        summary_ = *computed;
        summary_at_ = absl::Now();
        body = std::move(*computed);
      }
    }
    return JsonOk(200, *body, body->value("revision", int64_t{-1}));
  });
  router_.Handle("GET", "/", [](const HttpRequest&) { return Redirect("/ui/"); });
  // "/ui" and "/ui/" route alike; the page's relative links need the slash.
  router_.Handle("GET", "/ui", [](const HttpRequest& req) {
    if (req.path != "/ui/") return Redirect("/ui/");
    const web::Asset* index = web::FindAsset("index.html");
    return index ? Serve(*index) : HttpResponse::Error(404, "not_found", "dashboard: not built");
  });
  router_.Handle("GET", "/ui/{file}", [](const HttpRequest& req) {
    std::string file = req.Param("file");
    const web::Asset* a = web::FindAsset(file);
    if (a == nullptr) {
      return HttpResponse::Error(404, "not_found",
                                 core::Cat("dashboard: no file \"", file.substr(0, 64), "\""));
    }
    return Serve(*a);
  });
}

}  // namespace berth::api
