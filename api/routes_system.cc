// Routes of the server itself: health (unauthenticated) and Prometheus metrics.
#include <map>
#include <string>
#include <string_view>

#include "api/api_server.h"
#include "api/route_util.h"
#include "core/log.h"

namespace berth::api {

void ApiServer::SystemRoutes() {
  router_.Handle("GET", "/healthz", [](const HttpRequest&) {
    return JsonOk(200, {{"status", "ok"}});
  });
  router_.Handle("GET", "/metrics", [this](const HttpRequest&) { return Metrics(); });
}

HttpResponse ApiServer::Metrics() {
  static constexpr std::string_view kStates[] = {"pending", "scheduled", "starting", "running",
                                                 "paused",  "stopping",  "stopped",  "failed"};
  auto& workloads = metrics_.AddGauge("berth_workloads", "Workloads by state.");
  auto& hosts = metrics_.AddGauge("berth_hosts", "Hosts by state.");
  auto& capacity = metrics_.AddGauge("berth_capacity", "Capacity of ready hosts by resource.");
  auto& allocated =
      metrics_.AddGauge("berth_allocated", "Resources allocated to placed workloads.");
  std::map<std::string, int> by_state;
  for (auto s : kStates) by_state[std::string(s)] = 0;
  auto list = control_->ListWorkloads();
  double cpu = 0, mem = 0, disk = 0, gpu = 0;
  core::OkOrReport("api.metrics", "list workloads", list.status());
  if (list.ok()) {
    for (const auto& w : *list) {
      by_state[std::string(core::WorkloadStateName(w.status.state))]++;
      if (!w.status.host.empty() && !core::IsTerminal(w.status.state)) {
        cpu += w.spec.resources.cpu.value() / 1000.0;
        mem += w.spec.resources.memory.value() * 1048576.0;
        disk += w.spec.resources.disk.value() * 1048576.0;
        gpu += w.spec.gpu.TotalMilli() / 1000.0;
      }
    }
  }
  for (const auto& [state, n] : by_state) workloads.WithLabels({{"state", state}}).Set(n);
  int ready = 0, down = 0;
  double cap_cpu = 0, cap_mem = 0, cap_disk = 0, cap_gpu = 0;
  auto hs = control_->ListHosts();
  core::OkOrReport("api.metrics", "list hosts", hs.status());
  if (hs.ok()) {
    for (const auto& h : *hs) {
      if (h.state != core::HostState::kReady) {
        ++down;
        continue;
      }
      ++ready;
      cap_cpu += h.inventory.capacity.cpu.value() / 1000.0;
      cap_mem += h.inventory.capacity.memory.value() * 1048576.0;
      cap_disk += h.inventory.capacity.disk.value() * 1048576.0;
      cap_gpu += h.inventory.gpus.size();
    }
  }
  hosts.WithLabels({{"state", "ready"}}).Set(ready);
  hosts.WithLabels({{"state", "down"}}).Set(down);
  capacity.WithLabels({{"resource", "cpu"}}).Set(cap_cpu);
  capacity.WithLabels({{"resource", "memory_bytes"}}).Set(cap_mem);
  capacity.WithLabels({{"resource", "disk_bytes"}}).Set(cap_disk);
  capacity.WithLabels({{"resource", "gpu"}}).Set(cap_gpu);
  allocated.WithLabels({{"resource", "cpu"}}).Set(cpu);
  allocated.WithLabels({{"resource", "memory_bytes"}}).Set(mem);
  allocated.WithLabels({{"resource", "disk_bytes"}}).Set(disk);
  allocated.WithLabels({{"resource", "gpu"}}).Set(gpu);
  // Errors this process logged and counted instead of returning (core::ReportError).
  auto& errors = metrics_.AddCounter(
      "berth_errors_total",
      "Errors logged and counted where they could not be returned, by component.");
  for (const auto& [where, count] : core::ErrorCounts()) {
    Counter& c = errors.WithLabels({{"where", where}});
    c.Increment(static_cast<double>(count) - c.Value());
  }
  HttpResponse r = HttpResponse::Text(200, metrics_.Render());
  r.headers.Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  return r;
}

}  // namespace berth::api
