#include "main/agent_disks.h"

#include <utility>

#include "api/host_storage.h"
#include "core/disk.h"
#include "core/status.h"
#include "core/strings.h"
#include "main/storenet_host.h"

namespace berth {

using core::Cat;

void AgentDisks::Wire(agent::AgentOptions& options) {
  auto next_attach = std::move(options.attach);
  auto next_detach = std::move(options.detach);
  options.attach = [this, next_attach](const core::WorkloadSpec& spec,
                                       runtime::TaskConfig* config) -> absl::Status {
    BERTH_RETURN_IF_ERROR(Attach(spec, config));
    if (!next_attach) return absl::OkStatus();
    absl::Status s = next_attach(spec, config);
    if (!s.ok()) Detach(spec.name);
    return s;
  };
  options.detach = [this, next_detach](std::string_view workload) {
    if (next_detach) next_detach(workload);
    Detach(workload);
  };
}

absl::Status AgentDisks::Attach(const core::WorkloadSpec& spec, runtime::TaskConfig* config) {
  const bool vm = spec.kind == core::WorkloadKind::kVm;
  if (spec.disks.empty() && !vm) return absl::OkStatus();
  BERTH_ASSIGN_OR_RETURN(std::vector<control::HostDisk> disks, options_.fetch(spec.name));
  std::vector<runtime::TaskDisk> given;
  for (const control::HostDisk& d : disks) {
    auto refuse = [&](const absl::Status& s) {
      Detach(spec.name);
      return absl::Status(s.code(), Cat("workload \"", spec.name, "\": disk \"", d.name,
                                        "\" on host ", options_.host, ": ", s.message()));
    };
    const std::string pool = d.pool.empty() ? std::string(api::kHostPool) : d.pool;
    auto it = options_.pools.find(pool);
    if (it == options_.pools.end()) {
      return refuse(absl::FailedPreconditionError(
          Cat("this host has no ", pool, " pool (start its agent with --shared-pool DIR)")));
    }
    absl::StatusOr<control::HostVolume> volume = it->second->Get(d.name);
    if (!volume.ok()) return refuse(volume.status());
    runtime::TaskDisk disk{.name = d.name,
                           .path = volume->path,
                           .format = d.format,
                           .read_only = d.read_only,
                           .mount_path = d.mount};
    if (!vm) {
      if (d.format != "raw" || d.filesystem.empty()) {
        return refuse(absl::InvalidArgumentError(
            Cat("a container mounts raw disks with a filesystem; this one is ", d.format,
                d.filesystem.empty() ? " without a filesystem" : "")));
      }
      absl::StatusOr<std::string> dir = options_.mount(spec.name, d, volume->path);
      if (!dir.ok()) return refuse(dir.status());
      disk.path = *dir;
    }
    given.push_back(std::move(disk));
  }
  for (runtime::TaskDisk& d : given) config->disks.push_back(std::move(d));
  return absl::OkStatus();
}

void AgentDisks::Detach(std::string_view workload) {
  if (options_.unmount) options_.unmount(workload);
}

AgentDisksOptions AgentDisksFor(
    std::function<absl::StatusOr<core::Json>(std::string_view method, const std::string& path,
                                             const core::Json* body)>
        call,
    const std::string& agent_dir, const std::string& host,
    std::map<std::string, control::StorageHost*> pools) {
  AgentDisksOptions o;
  o.host = host;
  o.pools = std::move(pools);
  o.fetch = [call = std::move(call),
             host](std::string_view workload) -> absl::StatusOr<std::vector<control::HostDisk>> {
    const core::Json body = {{"workload", std::string(workload)}};
    BERTH_ASSIGN_OR_RETURN(core::Json reply,
                           call("POST", Cat("/v1/hosts/", host, "/disk-attach"), &body));
    return api::DecodeHostDisks(host, reply);
  };
  const std::string mounts = agent_dir + "/mounts";
  o.mount = [mounts](std::string_view workload, const control::HostDisk& d,
                     const std::string& image) {
    return MountContainerDisk(mounts, workload, d.name, image, d.filesystem, d.read_only);
  };
  o.unmount = [mounts](std::string_view workload) { UnmountContainerDisks(mounts, workload); };
  return o;
}

}  // namespace berth
