// Routes of the server itself: health (unauthenticated) and Prometheus metrics.
#include <map>
#include <string>
#include <string_view>

#include "api/api_server.h"
#include "api/route_util.h"
#include "core/log.h"
#include "core/strings.h"

namespace berth::api {

void ApiServer::SystemRoutes() {
  router_.Handle("GET", "/healthz", [](const HttpRequest&) {
    return JsonOk(200, {{"status", "ok"}});
  });
  router_.Handle("GET", "/metrics", [this](const HttpRequest&) { return Metrics(); });
}

namespace {

// Series of one gauge family written straight into the exposition: per-host series are made
// afresh on each scrape, so a removed host leaves no stale series behind.
class GaugeText {
 public:
  GaugeText(std::string name, std::string_view help) : name_(std::move(name)) {
    out_ = core::Cat("# HELP ", name_, " ", help, "\n# TYPE ", name_, " gauge\n");
  }
  void Add(const Labels& labels, double value) {
    out_ += name_;
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      out_ +=
          core::Cat(i ? "," : "", labels[i].first, "=\"", EscapeLabelValue(labels[i].second), "\"");
    }
    out_ += core::Cat("} ", FormatSampleValue(value), "\n");
    ++series_;
  }
  std::string Take() { return series_ ? std::move(out_) : std::string(); }

 private:
  std::string name_;
  std::string out_;
  int series_ = 0;
};

constexpr double kBytesPerMiB = 1048576.0;

}  // namespace

std::string ApiServer::HostSeries() {
  auto hosts = control_->ListHosts();
  core::OkOrReport("api.metrics", "list hosts", hosts.status());
  if (!hosts.ok()) return "";
  auto allocations = control_->HostAllocations();
  core::OkOrReport("api.metrics", "host allocations", allocations.status());
  std::map<std::string, core::HostUsage> usage = control_->HostUsages();
  GaugeText up("berth_host_up", "1 when the host is ready, 0 when it is down.");
  GaugeText capacity("berth_host_capacity",
                     "Capacity of each host by resource (cpu in cores, bytes, gpu in devices).");
  GaugeText allocated("berth_host_allocated",
                      "Resources the placed workloads hold on each host, by resource.");
  GaugeText used("berth_host_used",
                 "Resources in use on each host as its agent last measured them, by resource.");
  GaugeText gpu_allocated("berth_host_gpu_allocated",
                          "Share of each GPU device allocated (1 = the whole device).");
  GaugeText gpu_util("berth_host_gpu_utilization",
                     "Utilization of each GPU device as its agent last measured it (0..1).");
  GaugeText gpu_memory("berth_host_gpu_memory_used_bytes",
                       "Device memory in use on each GPU as its agent last measured it.");
  for (const core::Host& h : *hosts) {
    const Labels host = {{"host", h.name}};
    up.Add(host, h.state == core::HostState::kReady ? 1 : 0);
    const core::Resources& cap = h.inventory.capacity;
    auto by = [&](std::string_view resource) {
      return Labels{{"host", h.name}, {"resource", std::string(resource)}};
    };
    capacity.Add(by("cpu"), cap.cpu.value() / 1000.0);
    capacity.Add(by("memory_bytes"), cap.memory.value() * kBytesPerMiB);
    capacity.Add(by("disk_bytes"), cap.disk.value() * kBytesPerMiB);
    capacity.Add(by("gpu"), double(h.inventory.gpus.size()));
    if (allocations.ok()) {
      auto it = allocations->find(h.name);
      const core::HostAllocation a = it != allocations->end() ? it->second : core::HostAllocation{};
      allocated.Add(by("cpu"), a.resources.cpu.value() / 1000.0);
      allocated.Add(by("memory_bytes"), a.resources.memory.value() * kBytesPerMiB);
      allocated.Add(by("disk_bytes"), a.resources.disk.value() * kBytesPerMiB);
      allocated.Add(by("gpu"), a.gpu_milli / 1000.0);
      for (const core::GpuDeviceAllocation& g : a.gpus) {
        gpu_allocated.Add({{"host", h.name}, {"gpu", core::Cat(g.index)}}, g.milli / 1000.0);
      }
    }
    if (auto u = usage.find(h.name); u != usage.end()) {
      used.Add(by("cpu"), u->second.cpu.value() / 1000.0);
      used.Add(by("memory_bytes"), u->second.memory.value() * kBytesPerMiB);
      for (const core::GpuDeviceUsage& g : u->second.gpus) {
        const Labels dev = {{"host", h.name}, {"gpu", core::Cat(g.index)}};
        gpu_util.Add(dev, g.utilization_percent / 100.0);
        gpu_memory.Add(dev, g.memory_used_mib * kBytesPerMiB);
      }
    }
  }
  return up.Take() + capacity.Take() + allocated.Take() + used.Take() + gpu_allocated.Take() +
         gpu_util.Take() + gpu_memory.Take();
}

std::string ApiServer::WorkloadSeries(const std::vector<core::Workload>& workloads) {
  // Label sets stay bounded: workload names are bounded, and past kMaxWorkloadSeries placed
  // workloads the rest are counted, not shown.
  constexpr size_t kMaxWorkloadSeries = 10000;
  std::map<std::string, core::HostUsage> usage = control_->HostUsages();
  // What each host's agent measured, by workload; a host speaks only for its own workloads.
  std::map<std::pair<std::string, std::string>, const core::WorkloadUsage*> measured;
  for (const auto& [host, u] : usage) {
    for (const core::WorkloadUsage& w : u.workloads) measured[{host, w.name}] = &w;
  }
  GaugeText allocated("berth_workload_allocated",
                      "Resources each placed workload holds, by resource (cpu in cores, bytes, gpu "
                      "in devices).");
  GaugeText used("berth_workload_used",
                 "Resources each placed workload uses as its host's agent last measured them.");
  size_t shown = 0, omitted = 0;
  for (const core::Workload& w : workloads) {
    if (w.status.host.empty() || core::IsTerminal(w.status.state)) continue;
    if (shown == kMaxWorkloadSeries) {
      ++omitted;
      continue;
    }
    ++shown;
    auto by = [&](std::string_view resource) {
      return Labels{
          {"workload", w.spec.name}, {"host", w.status.host}, {"resource", std::string(resource)}};
    };
    allocated.Add(by("cpu"), w.spec.resources.cpu.value() / 1000.0);
    allocated.Add(by("memory_bytes"), w.spec.resources.memory.value() * kBytesPerMiB);
    allocated.Add(by("gpu"), w.spec.gpu.TotalMilli() / 1000.0);
    if (auto it = measured.find({w.status.host, w.spec.name}); it != measured.end()) {
      used.Add(by("cpu"), it->second->cpu.value() / 1000.0);
      used.Add(by("memory_bytes"), it->second->memory.value() * kBytesPerMiB);
      // Device memory for the workloads that hold GPUs (or use one they were not granted).
      if (w.spec.gpu.TotalMilli() > 0 || it->second->gpu_memory.value() > 0) {
        used.Add(by("gpu_memory_bytes"), it->second->gpu_memory.value() * kBytesPerMiB);
      }
      // Throughput where the workload's driver counts it.
      const core::WorkloadUsage& m = *it->second;
      for (const auto& [resource, value] :
           {std::pair{"disk_read_bytes_per_second", m.disk_read_per_second},
            std::pair{"disk_write_bytes_per_second", m.disk_write_per_second},
            std::pair{"net_rx_bytes_per_second", m.net_rx_per_second},
            std::pair{"net_tx_bytes_per_second", m.net_tx_per_second}}) {
        if (value) used.Add(by(resource), double(*value));
      }
    }
  }
  GaugeText omitted_series("berth_workload_series_omitted",
                           "Placed workloads left out of the per-workload series (at most 10000 "
                           "are shown).");
  omitted_series.Add({}, double(omitted));
  return allocated.Take() + used.Take() + omitted_series.Take();
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
  // The handler pool: how big, how much waits, and how much was turned away with 503.
  if (pool_) {
    metrics_.AddGauge("berth_api_workers", "Threads that run API handlers.")
        .Default()
        .Set(pool_->threads());
    metrics_.AddGauge("berth_api_queued", "API requests waiting for a handler thread.")
        .Default()
        .Set(static_cast<double>(pool_->queued()));
    Counter& rejected =
        metrics_
            .AddCounter("berth_api_rejected_total",
                        "API requests answered 503 because every handler thread was busy and "
                        "the queue was full.")
            .Default();
    rejected.Increment(static_cast<double>(pool_->rejected()) - rejected.Value());
  }
  HttpResponse r = HttpResponse::Text(
      200, metrics_.Render() + HostSeries() + (list.ok() ? WorkloadSeries(*list) : std::string()));
  r.headers.Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  return r;
}

}  // namespace berth::api
