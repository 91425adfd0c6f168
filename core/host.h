// Hosts (machines an agent runs on) and events. A host registers its inventory (CPU, memory,
// disk, GPUs, labels); the server keeps its liveness (heartbeats) and what is allocated on it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/gpu.h"
#include "core/json.h"
#include "core/resources.h"

namespace berth::core {

// What an agent reports about its machine.
struct HostInventory {
  Resources capacity;
  std::vector<GpuDevice> gpus;
  std::map<std::string, std::string> labels;
  std::vector<std::string> drivers;  // compute drivers usable here: "process", "vm", ...
  std::string address;               // where the agent can be reached, informational
  std::string os;                    // kernel release
  // What the host's drivers found out about it, e.g. {"vm_accel": "tcg", "vm_accel_reason":
  // "kvm probe failed: ...; using tcg"}. Informational; the scheduler does not read it.
  std::map<std::string, std::string> fingerprint;
};

enum class HostState { kReady, kDown };
std::string_view HostStateName(HostState s);

struct Host {
  std::string name;
  HostInventory inventory;
  HostState state = HostState::kReady;
  absl::Time last_heartbeat = absl::InfinitePast();
  absl::Time registered_at = absl::InfinitePast();
  int64_t revision = 0;
};

absl::StatusOr<HostInventory> DecodeHostInventory(std::string_view host_name, const Json& j);
Json EncodeHostInventory(const HostInventory& inv);
Json EncodeHost(const Host& h);
absl::StatusOr<Host> DecodeHost(const Json& j);

// Something that happened to an object: "workload hello: scheduled on host-1".
struct Event {
  int64_t revision = 0;  // the store revision it was written at; events are ordered by it
  absl::Time time = absl::InfinitePast();
  std::string kind;    // "workload", "host"
  std::string object;  // the object's name
  std::string type;    // "created", "scheduled", "running", "stopped", "failed", "down", ...
  std::string message;
};

Json EncodeEvent(const Event& e);
Event DecodeEvent(const Json& j);

}  // namespace berth::core
