#include "core/host.h"

#include <array>
#include <set>
#include <utility>

#include "core/names.h"
#include "core/object_json.h"
#include "core/status.h"
#include "core/strings.h"
#include "core/workload.h"

namespace berth::core {

namespace {
constexpr size_t kMaxFingerprintEntries = 64;
constexpr size_t kMaxFingerprintValue = 1024;
constexpr size_t kMaxMigInstances = 7;  // a GPU has 7 compute slices
}  // namespace

std::string_view HostStateName(HostState s) { return s == HostState::kReady ? "ready" : "down"; }

absl::StatusOr<HostInventory> DecodeHostInventory(std::string_view host_name, const Json& j) {
  JsonContext ctx{"host", std::string(host_name)};
  BERTH_RETURN_IF_ERROR(CheckObject(ctx, j, "inventory",
                                    {"cpu", "memory", "disk", "gpus", "devices", "labels",
                                     "drivers", "address", "os", "fingerprint"}));
  HostInventory inv;
  auto quantity = [&](const char* key, auto parse, auto* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end()) return ctx.Error(Cat("inventory.", key), "is required");
    std::string text = it->is_string() ? it->get<std::string>() : Preview(*it);
    auto v = parse(text);
    if (!v.ok()) return ctx.Error(Cat("inventory.", key), std::string(v.status().message()));
    *out = *v;
    return absl::OkStatus();
  };
  BERTH_RETURN_IF_ERROR(quantity("cpu", ParseCpu, &inv.capacity.cpu));
  BERTH_RETURN_IF_ERROR(quantity("memory", ParseMemory, &inv.capacity.memory));
  if (j.contains("disk")) BERTH_RETURN_IF_ERROR(quantity("disk", ParseDisk, &inv.capacity.disk));
  if (auto it = j.find("gpus"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return ctx.Error("inventory.gpus", "must be a list");
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& g = (*it)[i];
      std::string path = Cat("inventory.gpus[", i, "]");
      BERTH_RETURN_IF_ERROR(
          CheckObject(ctx, g, path,
                      {"index", "uuid", "model", "memory", "numa_node", "nvlink_island",
                       "mig_enabled", "pci_address", "mig_instances", "healthy", "health"}));
      GpuDevice d;
      int64_t index = static_cast<int64_t>(i), numa = 0, island = 0;
      BERTH_RETURN_IF_ERROR(OptionalInt(ctx, g, path, "index", 0, 1 << 16, &index));
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, g, path, "uuid", &d.uuid));
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, g, path, "model", &d.model));
      if (d.model.empty()) return ctx.Error(path + ".model", "is required");
      if (auto m = g.find("memory"); m != g.end()) {
        auto mib = ParseSizeMiB(m->is_string() ? m->get<std::string>() : Preview(*m));
        if (!mib.ok()) return ctx.Error(path + ".memory", std::string(mib.status().message()));
        d.memory_mib = *mib;
      }
      BERTH_RETURN_IF_ERROR(OptionalInt(ctx, g, path, "numa_node", -1, 1 << 16, &numa));
      BERTH_RETURN_IF_ERROR(OptionalInt(ctx, g, path, "nvlink_island", -1, 1 << 16, &island));
      BERTH_RETURN_IF_ERROR(OptionalBool(ctx, g, path, "mig_enabled", &d.mig_enabled));
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, g, path, "pci_address", &d.pci_address));
      BERTH_RETURN_IF_ERROR(OptionalBool(ctx, g, path, "healthy", &d.healthy));
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, g, path, "health", &d.health));
      if (d.health.size() > kMaxFingerprintValue) {
        return ctx.Error(path + ".health", Cat("must be at most ", kMaxFingerprintValue, " bytes"));
      }
      if (auto m = g.find("mig_instances"); m != g.end() && !m->is_null()) {
        if (!m->is_array() || m->size() > kMaxMigInstances) {
          return ctx.Error(path + ".mig_instances",
                           Cat("must be a list of at most ", kMaxMigInstances, " instances"));
        }
        for (size_t k = 0; k < m->size(); ++k) {
          const Json& mj = (*m)[k];
          std::string mpath = Cat(path, ".mig_instances[", k, "]");
          BERTH_RETURN_IF_ERROR(CheckObject(ctx, mj, mpath, {"profile", "start_slice", "uuid"}));
          MigInstance mi;
          int64_t start = -1;
          BERTH_RETURN_IF_ERROR(OptionalString(ctx, mj, mpath, "profile", &mi.profile));
          BERTH_RETURN_IF_ERROR(OptionalInt(ctx, mj, mpath, "start_slice", -1, 7, &start));
          BERTH_RETURN_IF_ERROR(OptionalString(ctx, mj, mpath, "uuid", &mi.uuid));
          if (!IsKnownMigProfile(mi.profile)) {
            return ctx.Error(mpath + ".profile",
                             Cat("is not a known MIG profile, got \"", mi.profile, "\""));
          }
          mi.start_slice = static_cast<int>(start);
          d.mig_instances.push_back(std::move(mi));
        }
      }
      d.index = static_cast<int>(index);
      d.numa_node = static_cast<int>(numa);
      d.nvlink_island = static_cast<int>(island);
      inv.gpus.push_back(d);
    }
  }
  if (auto it = j.find("devices"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || it->size() > kMaxHostDevices) {
      return ctx.Error("inventory.devices",
                       Cat("must be a list of at most ", kMaxHostDevices, " devices"));
    }
    std::set<std::pair<std::string, std::string>> seen;
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& dj = (*it)[i];
      std::string path = Cat("inventory.devices[", i, "]");
      BERTH_RETURN_IF_ERROR(CheckObject(ctx, dj, path, {"class", "id", "healthy", "health"}));
      Device d;
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, dj, path, "class", &d.cls));
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, dj, path, "id", &d.id));
      BERTH_RETURN_IF_ERROR(OptionalBool(ctx, dj, path, "healthy", &d.healthy));
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, dj, path, "health", &d.health));
      if (absl::Status s = CheckDeviceClass(d.cls); !s.ok()) {
        return ctx.Error(path + ".class", std::string(s.message()));
      }
      if (absl::Status s = CheckDeviceId(d.id); !s.ok()) {
        return ctx.Error(path + ".id", std::string(s.message()));
      }
      if (d.health.size() > kMaxFingerprintValue) {
        return ctx.Error(path + ".health", Cat("must be at most ", kMaxFingerprintValue, " bytes"));
      }
      if (!seen.emplace(d.cls, d.id).second) {
        return ctx.Error(path + ".id", Cat("names ", d.cls, "=", d.id, " twice"));
      }
      inv.devices.push_back(std::move(d));
    }
  }
  if (auto it = j.find("labels"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return ctx.Error("inventory.labels", "must be a map of strings");
    for (auto kv = it->begin(); kv != it->end(); ++kv) {
      if (!kv->is_string())
        return ctx.Error(Cat("inventory.labels.", kv.key()), "must be a string");
      inv.labels[kv.key()] = kv->get<std::string>();
    }
  }
  if (auto it = j.find("drivers"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return ctx.Error("inventory.drivers", "must be a list of strings");
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& d = (*it)[i];
      if (!d.is_string()) return ctx.Error(Cat("inventory.drivers[", i, "]"), "must be a string");
      inv.drivers.push_back(d.get<std::string>());
    }
  }
  if (auto it = j.find("fingerprint"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return ctx.Error("inventory.fingerprint", "must be a map of strings");
    if (it->size() > kMaxFingerprintEntries) {
      return ctx.Error("inventory.fingerprint",
                       Cat("has ", it->size(), " entries; at most ", kMaxFingerprintEntries));
    }
    for (auto kv = it->begin(); kv != it->end(); ++kv) {
      if (!kv->is_string() || kv->get_ref<const std::string&>().size() > kMaxFingerprintValue) {
        return ctx.Error(Cat("inventory.fingerprint.", kv.key()),
                         Cat("must be a string of at most ", kMaxFingerprintValue, " bytes"));
      }
      inv.fingerprint[kv.key()] = kv->get<std::string>();
    }
  }
  BERTH_RETURN_IF_ERROR(OptionalString(ctx, j, "inventory", "address", &inv.address));
  BERTH_RETURN_IF_ERROR(OptionalString(ctx, j, "inventory", "os", &inv.os));
  return inv;
}

Json EncodeHostInventory(const HostInventory& inv) {
  Json j = Json::object();
  j["cpu"] = FormatCpu(inv.capacity.cpu);
  j["memory"] = FormatMiB(inv.capacity.memory.value());
  j["disk"] = FormatMiB(inv.capacity.disk.value());
  Json gpus = Json::array();
  for (const auto& g : inv.gpus) {
    Json gj = {{"index", g.index},
               {"uuid", g.uuid},
               {"model", g.model},
               {"memory", FormatMiB(g.memory_mib)},
               {"numa_node", g.numa_node},
               {"nvlink_island", g.nvlink_island},
               {"mig_enabled", g.mig_enabled},
               {"pci_address", g.pci_address},
               {"healthy", g.healthy}};
    if (!g.health.empty()) gj["health"] = g.health;
    if (!g.mig_instances.empty()) {
      Json mig = Json::array();
      for (const MigInstance& m : g.mig_instances) {
        mig.push_back({{"profile", m.profile}, {"start_slice", m.start_slice}, {"uuid", m.uuid}});
      }
      gj["mig_instances"] = mig;
    }
    gpus.push_back(gj);
  }
  j["gpus"] = gpus;
  Json devices = Json::array();
  for (const Device& d : inv.devices) {
    Json dj = {{"class", d.cls}, {"id", d.id}, {"healthy", d.healthy}};
    if (!d.health.empty()) dj["health"] = d.health;
    devices.push_back(std::move(dj));
  }
  j["devices"] = devices;
  j["labels"] = inv.labels;
  j["drivers"] = inv.drivers;
  j["address"] = inv.address;
  j["os"] = inv.os;
  j["fingerprint"] = inv.fingerprint;
  return j;
}

Json EncodeHost(const Host& h) {
  Json j = {{"name", h.name},
            {"inventory", EncodeHostInventory(h.inventory)},
            {"state", std::string(HostStateName(h.state))},
            {"last_heartbeat", EncodeTime(h.last_heartbeat)},
            {"registered_at", EncodeTime(h.registered_at)},
            {"revision", h.revision},
            {"cordoned", h.cordoned}};
  if (h.draining || h.drain_moved > 0 || !h.drain_current.empty()) {
    j["drain"] = {{"active", h.draining}, {"current", h.drain_current}, {"moved", h.drain_moved}};
  }
  return j;
}

absl::StatusOr<Host> DecodeHost(const Json& j) {
  Host h;
  h.name = j.value("name", "");
  if (!j.contains("inventory"))
    return absl::InvalidArgumentError("host: stored object lacks inventory");
  BERTH_ASSIGN_OR_RETURN(h.inventory, DecodeHostInventory(h.name, j["inventory"]));
  h.state = j.value("state", "ready") == "down" ? HostState::kDown : HostState::kReady;
  if (j.contains("last_heartbeat")) h.last_heartbeat = DecodeTime(j["last_heartbeat"]);
  if (j.contains("registered_at")) h.registered_at = DecodeTime(j["registered_at"]);
  h.revision = j.value("revision", int64_t{0});
  if (auto it = j.find("cordoned"); it != j.end() && it->is_boolean()) h.cordoned = it->get<bool>();
  if (auto it = j.find("drain"); it != j.end() && it->is_object()) {
    h.draining = it->value("active", false);
    h.drain_current = it->value("current", "");
    h.drain_moved = it->value("moved", 0);
  }
  return h;
}

Json EncodeHostAllocation(const HostAllocation& a) {
  Json devices = Json::array();
  for (const DeviceAllocation& d : a.devices) {
    devices.push_back({{"class", d.cls}, {"id", d.id}, {"holder", d.holder}});
  }
  Json gpus = Json::array();
  for (const GpuDeviceAllocation& g : a.gpus) {
    gpus.push_back({{"index", g.index},
                    {"milli", g.milli},
                    {"memory", FormatMiB(g.memory_mib)},
                    {"holders", g.holders}});
  }
  return {{"cpu", FormatCpu(a.resources.cpu)},
          {"memory", FormatMiB(a.resources.memory.value())},
          {"disk", FormatMiB(a.resources.disk.value())},
          {"gpu_milli", a.gpu_milli},
          {"workloads", a.workloads},
          {"gpus", gpus},
          {"devices", devices}};
}

namespace {

// A quantity field of `j` at `path` parsed with `parse`; absent is zero.
template <typename T, typename Parse>
absl::Status QuantityField(const JsonContext& ctx, const Json& j, std::string_view path,
                           const char* key, Parse parse, T* out) {
  auto it = j.find(key);
  if (it == j.end()) return absl::OkStatus();
  std::string text = it->is_string() ? it->get<std::string>() : Preview(*it);
  auto v = parse(text);
  if (!v.ok()) return ctx.Error(Cat(path, ".", key), std::string(v.status().message()));
  *out = T(*v);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HostAllocation> DecodeHostAllocation(std::string_view host_name, const Json& j) {
  JsonContext ctx{"host", std::string(host_name)};
  BERTH_RETURN_IF_ERROR(CheckObject(
      ctx, j, "allocated", {"cpu", "memory", "disk", "gpu_milli", "workloads", "gpus", "devices"}));
  HostAllocation a;
  BERTH_RETURN_IF_ERROR(QuantityField(ctx, j, "allocated", "cpu", ParseCpu, &a.resources.cpu));
  BERTH_RETURN_IF_ERROR(
      QuantityField(ctx, j, "allocated", "memory", ParseMemory, &a.resources.memory));
  BERTH_RETURN_IF_ERROR(QuantityField(ctx, j, "allocated", "disk", ParseDisk, &a.resources.disk));
  int64_t workloads = 0;
  BERTH_RETURN_IF_ERROR(
      OptionalInt(ctx, j, "allocated", "gpu_milli", 0, int64_t{1} << 40, &a.gpu_milli));
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, j, "allocated", "workloads", 0, 1 << 30, &workloads));
  a.workloads = int(workloads);
  if (auto it = j.find("gpus"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return ctx.Error("allocated.gpus", "must be a list");
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& g = (*it)[i];
      std::string path = Cat("allocated.gpus[", i, "]");
      BERTH_RETURN_IF_ERROR(CheckObject(ctx, g, path, {"index", "milli", "memory", "holders"}));
      GpuDeviceAllocation d;
      int64_t index = 0;
      BERTH_RETURN_IF_ERROR(OptionalInt(ctx, g, path, "index", 0, 1 << 16, &index));
      BERTH_RETURN_IF_ERROR(OptionalInt(ctx, g, path, "milli", 0, kWholeGpuMilli, &d.milli));
      BERTH_RETURN_IF_ERROR(QuantityField(ctx, g, path, "memory", ParseSizeMiB, &d.memory_mib));
      d.index = int(index);
      if (auto h = g.find("holders"); h != g.end() && !h->is_null()) {
        if (!h->is_array()) return ctx.Error(path + ".holders", "must be a list of names");
        for (const Json& n : *h) {
          if (!n.is_string()) return ctx.Error(path + ".holders", "must be a list of names");
          d.holders.push_back(n.get<std::string>());
        }
      }
      a.gpus.push_back(std::move(d));
    }
  }
  if (auto it = j.find("devices"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return ctx.Error("allocated.devices", "must be a list");
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& dj = (*it)[i];
      std::string path = Cat("allocated.devices[", i, "]");
      BERTH_RETURN_IF_ERROR(CheckObject(ctx, dj, path, {"class", "id", "holder"}));
      DeviceAllocation d;
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, dj, path, "class", &d.cls));
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, dj, path, "id", &d.id));
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, dj, path, "holder", &d.holder));
      a.devices.push_back(std::move(d));
    }
  }
  return a;
}

namespace {

// The throughput fields of a workload's usage by their JSON names.
template <typename W>
auto WorkloadRates(W& w) {
  using Field = decltype(&w.disk_read_per_second);
  return std::array<std::pair<std::string_view, Field>, 4>{{
      {"disk_read_per_second", &w.disk_read_per_second},
      {"disk_write_per_second", &w.disk_write_per_second},
      {"net_rx_per_second", &w.net_rx_per_second},
      {"net_tx_per_second", &w.net_tx_per_second},
  }};
}

}  // namespace

Json EncodeHostUsage(const HostUsage& u) {
  Json gpus = Json::array();
  for (const GpuDeviceUsage& g : u.gpus) {
    gpus.push_back({{"index", g.index},
                    {"utilization_percent", g.utilization_percent},
                    {"memory_used", FormatMiB(g.memory_used_mib)}});
  }
  Json j = {{"cpu", FormatCpu(u.cpu)}, {"memory", FormatMiB(u.memory.value())}, {"gpus", gpus}};
  if (!u.workloads.empty()) {
    Json workloads = Json::array();
    for (const WorkloadUsage& w : u.workloads) {
      Json one = {
          {"name", w.name}, {"cpu", FormatCpu(w.cpu)}, {"memory", FormatMiB(w.memory.value())}};
      if (w.gpu_memory.value() > 0) one["gpu_memory"] = FormatMiB(w.gpu_memory.value());
      for (const auto& [key, value] : WorkloadRates(w)) {
        if (value->has_value()) one[std::string(key)] = **value;
      }
      if (w.checkpoint_at) one["checkpoint_at"] = EncodeTime(*w.checkpoint_at);
      workloads.push_back(std::move(one));
    }
    j["workloads"] = std::move(workloads);
  }
  return j;
}

absl::StatusOr<HostUsage> DecodeHostUsage(std::string_view host_name, const Json& j) {
  JsonContext ctx{"host", std::string(host_name)};
  BERTH_RETURN_IF_ERROR(CheckObject(ctx, j, "usage", {"cpu", "memory", "gpus", "workloads"}));
  HostUsage u;
  BERTH_RETURN_IF_ERROR(QuantityField(ctx, j, "usage", "cpu", ParseCpu, &u.cpu));
  BERTH_RETURN_IF_ERROR(QuantityField(ctx, j, "usage", "memory", ParseMemory, &u.memory));
  if (auto it = j.find("gpus"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return ctx.Error("usage.gpus", "must be a list");
    if (it->size() > kMaxUsageGpus) {
      return ctx.Error("usage.gpus", Cat("has ", it->size(), " devices; at most ", kMaxUsageGpus));
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& g = (*it)[i];
      std::string path = Cat("usage.gpus[", i, "]");
      BERTH_RETURN_IF_ERROR(
          CheckObject(ctx, g, path, {"index", "utilization_percent", "memory_used"}));
      GpuDeviceUsage d;
      int64_t index = 0, util = 0;
      BERTH_RETURN_IF_ERROR(OptionalInt(ctx, g, path, "index", 0, 1 << 16, &index));
      BERTH_RETURN_IF_ERROR(OptionalInt(ctx, g, path, "utilization_percent", 0, 100, &util));
      BERTH_RETURN_IF_ERROR(
          QuantityField(ctx, g, path, "memory_used", ParseSizeMiB, &d.memory_used_mib));
      d.index = int(index);
      d.utilization_percent = int(util);
      u.gpus.push_back(d);
    }
  }
  if (auto it = j.find("workloads"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return ctx.Error("usage.workloads", "must be a list");
    if (it->size() > kMaxUsageWorkloads) {
      return ctx.Error("usage.workloads",
                       Cat("has ", it->size(), " workloads; at most ", kMaxUsageWorkloads));
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& w = (*it)[i];
      std::string path = Cat("usage.workloads[", i, "]");
      BERTH_RETURN_IF_ERROR(CheckObject(
          ctx, w, path,
          {"name", "cpu", "memory", "gpu_memory", "disk_read_per_second", "disk_write_per_second",
           "net_rx_per_second", "net_tx_per_second", "checkpoint_at"}));
      WorkloadUsage d;
      for (const auto& [key, value] : WorkloadRates(d)) {
        if (!w.contains(key) || w.at(std::string(key)).is_null()) continue;
        int64_t rate = 0;
        BERTH_RETURN_IF_ERROR(
            OptionalInt(ctx, w, path, std::string(key), 0, kMaxUsageBytesPerSecond, &rate));
        *value = rate;
      }
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, w, path, "name", &d.name));
      if (absl::Status named = ValidateName("workload", d.name); !named.ok()) {
        return ctx.Error(Cat(path, ".name"), std::string(named.message()));
      }
      BERTH_RETURN_IF_ERROR(QuantityField(ctx, w, path, "cpu", ParseCpu, &d.cpu));
      BERTH_RETURN_IF_ERROR(QuantityField(ctx, w, path, "memory", ParseMemory, &d.memory));
      BERTH_RETURN_IF_ERROR(QuantityField(ctx, w, path, "gpu_memory", ParseMemory, &d.gpu_memory));
      if (w.contains("checkpoint_at") && !w["checkpoint_at"].is_null()) {
        absl::Time at;
        BERTH_RETURN_IF_ERROR(OptionalTime(ctx, w, path, "checkpoint_at", &at));
        d.checkpoint_at = at;
      }
      u.workloads.push_back(std::move(d));
    }
  }
  return u;
}

Json EncodeEvent(const Event& e) {
  return {{"revision", e.revision}, {"time", EncodeTime(e.time)},
          {"kind", e.kind},         {"object", e.object},
          {"type", e.type},         {"message", e.message}};
}

Event DecodeEvent(const Json& j) {
  Event e;
  e.revision = j.value("revision", int64_t{0});
  if (j.contains("time")) e.time = DecodeTime(j["time"]);
  e.kind = j.value("kind", "");
  e.object = j.value("object", "");
  e.type = j.value("type", "");
  e.message = j.value("message", "");
  return e;
}

}  // namespace berth::core
