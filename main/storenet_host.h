// The local host's storage and network, as the server's services see them: StorageHost over a
// QemuStorageDriver with one directory pool (AGENT_DIR/pools/default), and NetworkHost over a
// LinuxNetworkDriver (dnsmasq state in AGENT_DIR/net). `berth serve --dev` uses them so the
// server carries out disk and network operations on its own machine.
//
// Ownership: each object owns its driver. Thread-safety: as the drivers (fully thread-safe).
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/agent.h"
#include "api/http/router.h"
#include "control/network_service.h"
#include "control/storage_service.h"
#include "core/workload.h"
#include "state/store.h"

namespace berth {

// The id every host-global network name of the agent in `agent_dir` carries (bridges, veths,
// taps, the nftables table, containers' namespaces): a stable hash of the directory, so two
// servers with different data directories never touch each other's objects.
std::string NetworkInstanceId(const std::string& agent_dir);

// The network namespace (under /run/netns) of a container on Berth networks. Namespace names are
// global to the host: the instance id keeps two agents' containers of the same name apart.
std::string ContainerNetns(std::string_view instance, std::string_view workload);
// FailedPrecondition saying what holds `port` when a socket of `protocol` ("tcp" listening, "udp"
// bound) has it in the network namespace `netns` ("" = this process's).
absl::Status HostPortFree(const std::string& netns, std::string_view protocol, int port);
// Makes the named network namespace unless it exists.
absl::Status MakeNetns(const std::string& name);

// `netns` empty = the server's own network namespace (BERTH_NET_NETNS overrides it in
// `serve --dev`, so tests keep every bridge and rule inside a namespace they made).
// Disks are made from images of the catalog in AGENT_DIR/images only; backups are written to and
// restored from `backup_dir` only (created at Prepare): names clients give are confined there.
std::unique_ptr<control::StorageHost> NewLocalStorageHost(const std::string& agent_dir,
                                                          const std::string& backup_dir);
// A fleet's shared pool as this host mounts it at `shared_dir` (`berth agent --shared-pool`):
// its volumes are every host's; what this host has in flight is kept apart under `instance`
// (its host name), so its recovery never touches another host's operations.
std::unique_ptr<control::StorageHost> NewSharedStorageHost(const std::string& agent_dir,
                                                           const std::string& shared_dir,
                                                           const std::string& backup_dir,
                                                           const std::string& instance);
// Whether `dir` is a mount point (/proc/self/mountinfo).
bool IsMountPoint(const std::string& dir);
// A container sees a disk's filesystem: the raw `image` loop-mounted (read-only when asked) at
// MOUNTS_DIR/WORKLOAD/DISK, which is answered and bound into the container. Mounting again
// what is mounted is a no-op.
absl::StatusOr<std::string> MountContainerDisk(const std::string& mounts_dir,
                                               std::string_view workload, std::string_view disk,
                                               const std::string& image,
                                               const std::string& filesystem, bool read_only);
// Unmounts the workload's disks under MOUNTS_DIR/WORKLOAD and removes that directory (kept, and
// said, while a disk will not unmount).
void UnmountContainerDisks(const std::string& mounts_dir, std::string_view workload);
std::unique_ptr<control::NetworkHost> NewLocalNetworkHost(const std::string& agent_dir,
                                                          const std::string& netns);

// What `serve --dev` runs for disks and networks: the local hosts, the services over the store
// and their REST routes. A workload keeps its addresses, the port forwards to it and its disks
// while it exists (stopped or failed included); they are released when it is deleted, which a
// watch of the store's workloads tells a thread of this object.
class LocalStorageNetwork {
 public:
  LocalStorageNetwork(state::Store* store, core::Clock* clock, const std::string& agent_dir,
                      const std::string& backup_dir);
  // Stops the watch and its thread.
  ~LocalStorageNetwork();
  // Re-declares the stored disks, networks, groups and forwards on this host and removes
  // leftovers, re-declares the interfaces of workloads whose tasks run (so their security
  // groups hold again), then follows workload deletions. Problems are reported on `err`; they
  // do not stop the server.
  void Start(std::ostream& err);
  // Registers /v1/disks, /v1/networks, /v1/secgroups and /v1/portforwards.
  void AddRoutes(api::Router& router);
  // The API's own TCP port, which no port forward may take.
  void ReserveApiPort(uint16_t port) { network_.ReserveHostPort(port, "Berth's API"); }
  // Gives the local agent's workloads their disks (a VM's virtio disks; a container's
  // loop-mounted filesystems) and network interfaces (veth into the container's namespace
  // berth-INSTANCE-NAME; a VM's tap), and takes them back when their tasks go.
  void WireAgent(agent::AgentOptions& options);
  // The agent that hot-plugs disks into running VMs (`berth disk attach|detach`); null while
  // there is none.
  void SetAgent(agent::Agent* agent) { agent_.store(agent); }
  // This host's disks, as the API sees them.
  control::StorageService& storage() { return storage_; }
  // Refuses a workload whose networks, security groups or disks do not exist (or a container
  // disk it cannot mount), naming the field: ControlPlane::SetReferenceCheck.
  absl::Status CheckReferences(const core::WorkloadSpec& spec);

 private:
  absl::Status Attach(const core::WorkloadSpec& spec, runtime::TaskConfig* config);
  // What the workload's i-th network attachment asks of the network service.
  control::WorkloadEndpointOptions EndpointOptions(const core::WorkloadSpec& spec, size_t i) const;
  // Takes back what Attach gave once the task is gone: interfaces, namespace and mounts always;
  // addresses, port forwards and disks only when `release` (the workload is deleted).
  void Detach(std::string_view workload, bool release);
  // Whether the workload is stored and not being deleted (a store error counts as kept: nothing
  // is released on a guess).
  bool Kept(std::string_view workload);
  // Re-declares the endpoints of the running and paused workloads, after a server restart.
  void RedeclareEndpoints(const std::vector<core::Workload>& workloads, std::ostream& err);
  // Releases what deleted workloads held (the watch's thread).
  void ReleaseLoop();

  state::Store* const store_;
  std::unique_ptr<state::WatchHandle> watch_;
  absl::Mutex release_mu_;
  std::deque<std::string> to_release_ ABSL_GUARDED_BY(release_mu_);
  bool stopping_ ABSL_GUARDED_BY(release_mu_) = false;
  std::thread releaser_;
  std::atomic<agent::Agent*> agent_{nullptr};
  const std::string netns_;
  const std::string instance_;  // NetworkInstanceId
  const std::string mounts_dir_;
  std::unique_ptr<control::StorageHost> storage_host_;
  std::unique_ptr<control::NetworkHost> network_host_;
  control::StorageService storage_;
  control::NetworkService network_;
};

}  // namespace berth
