// The Container Device Interface (CDI): vendor-written specs that say what a container needs to
// use a device (its device nodes, the driver files to mount, environment, hooks), the standard
// that `nvidia-ctk cdi generate` and other vendors' tools write into /etc/cdi and /var/run/cdi.
// A device is named "vendor.com/class=name" (e.g. "nvidia.com/gpu=GPU-4d5e...", "xilinx.com/
// fpga=u250-0"). This file holds the spec model, its strict decoder, and the registry that
// resolves names to the edits a container gets; reading spec files from disk is the agent's and
// applying edits to an OCI config is runtime/oci's.
//
// Thread-safety: values; a CdiRegistry is safe to read from many threads once filled.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace berth::runtime {

struct CdiDeviceNode {
  std::string path;         // inside the container
  std::string host_path;    // on the host; empty = same as path
  std::string type;         // "c" or "b"; empty = from the host file
  int64_t major = -1;       // -1 = from the host file
  int64_t minor = -1;       // -1 = from the host file
  int64_t file_mode = -1;   // -1 = from the host file, else 0666
  int64_t uid = -1;         // -1 = 0
  int64_t gid = -1;         // -1 = 0
  std::string permissions;  // cgroup access, "rwm" when empty
  bool operator==(const CdiDeviceNode&) const = default;
};

struct CdiMount {
  std::string host_path;
  std::string container_path;
  std::string type;  // empty = bind
  std::vector<std::string> options;
  bool operator==(const CdiMount&) const = default;
};

struct CdiHook {
  std::string hook_name;  // the OCI hook point: "createRuntime", "prestart", "poststop", ...
  std::string path;
  std::vector<std::string> args;
  std::vector<std::string> env;
  int64_t timeout = -1;  // seconds; -1 = none
  bool operator==(const CdiHook&) const = default;
};

// What a container gets for a set of devices.
struct CdiEdits {
  std::vector<std::string> env;  // "KEY=value"
  std::vector<CdiDeviceNode> device_nodes;
  std::vector<CdiMount> mounts;
  std::vector<CdiHook> hooks;
  bool empty() const {
    return env.empty() && device_nodes.empty() && mounts.empty() && hooks.empty();
  }
  void Append(const CdiEdits& more);
  bool operator==(const CdiEdits&) const = default;
};

struct CdiDevice {
  std::string name;  // unique within its spec: "0", "GPU-...", "all", "u250-0"
  CdiEdits edits;
};

struct CdiSpec {
  std::string version;  // cdiVersion, "0.3.0" .. "0.8.0"
  std::string kind;     // "vendor.com/class"
  std::vector<CdiDevice> devices;
  CdiEdits edits;      // applied once to any container given a device of this spec
  std::string source;  // the file it came from, for messages
};

// The hook points a CDI hook may name (OCI runtime spec 1.1).
bool IsCdiHookName(std::string_view name);

// Decodes one spec document. InvalidArgument naming the source and the field:
// `CDI spec "/etc/cdi/x.yaml": devices[0].containerEdits.deviceNodes[1].path must be absolute`.
absl::StatusOr<CdiSpec> DecodeCdiSpec(const nlohmann::json& doc, std::string_view source);

// Splits "vendor.com/class=name" into kind and name; InvalidArgument when malformed.
absl::Status SplitCdiName(std::string_view qualified, std::string* kind, std::string* name);

// Every device of a set of specs by its qualified name.
class CdiRegistry {
 public:
  // Adds a spec. A device named again by a later spec replaces the earlier one (a later spec
  // directory takes precedence, as CDI specifies).
  void Add(CdiSpec spec);
  bool Has(std::string_view qualified) const;
  // The qualified names of every device, sorted; of one kind when `kind` is set.
  std::vector<std::string> Devices(std::string_view kind = "") const;
  // The edits for `names`: each device's own and, once per spec, its spec's. NotFound naming
  // the first unknown device.
  absl::StatusOr<CdiEdits> Resolve(const std::vector<std::string>& names) const;
  // The spec file a device comes from ("" when unknown).
  std::string SourceOf(std::string_view qualified) const;

 private:
  std::vector<CdiSpec> specs_;
  std::map<std::string, std::pair<size_t, size_t>, std::less<>> devices_;  // -> (spec, device)
};

// Fills each device node's type, major, minor and file mode from its host file (host_path, else
// path) where the spec leaves them out. FailedPrecondition naming the node when the file is
// missing or not a device.
absl::Status CompleteDeviceNodes(CdiEdits* edits);

}  // namespace berth::runtime
