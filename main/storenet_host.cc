#include "main/storenet_host.h"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "api/storenet_routes.h"
#include "control/control_plane.h"
#include "core/guard.h"
#include "core/log.h"
#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"
#include "runtime/host/executor.h"
#include "runtime/net/linux_network_driver.h"
#include "runtime/storage/confined_path.h"
#include "runtime/storage/qemu_storage_driver.h"

namespace berth {

namespace {

using core::Cat;
namespace rs = runtime::storage;
namespace rn = runtime::net;

control::HostVolume ToHost(const rs::VolumeInfo& v) {
  control::HostVolume h;
  h.format = std::string(rs::FormatName(v.format));
  h.size_mib = v.size_mib;
  h.allocated_bytes = v.allocated_bytes;
  h.path = v.path;
  h.backing_file = v.backing_file;
  for (const auto& s : v.snapshots) h.snapshots.push_back(s.name);
  return h;
}

// The status `s` with every mention of `from` replaced by `to` and `prefix` put before its
// message: the driver names files by the descriptor paths it was given, clients by their names.
absl::Status Reword(const absl::Status& s, const std::string& from, const std::string& to,
                    std::string_view prefix = "") {
  if (s.ok()) return s;
  std::string message(s.message());
  if (!from.empty()) {
    for (size_t at = message.find(from); at != std::string::npos;
         at = message.find(from, at + to.size())) {
      message.replace(at, from.size(), to);
    }
  }
  return absl::Status(s.code(), Cat(prefix, message));
}

// A refusal from ConfinedDir as the client's mistake about `field` of disk `name`. NotFound
// stays NotFound; anything else the directory refused is InvalidArgument.
absl::Status FieldRefused(std::string_view name, std::string_view field, const absl::Status& s) {
  if (absl::IsInvalidArgument(s)) {
    return core::FieldError("disk", name, field, std::string(s.message()));
  }
  return Reword(s, "", "", Cat("disk \"", name, "\": ", field, ": "));
}

// Every file a client names lies beneath a directory the operator configured, checked by
// ConfinedDir: backup files (written and restored) beneath the backup directory, the images
// disks are made from beneath the image catalog. The driver is handed "/proc/self/fd/N/LEAF"
// paths, N a descriptor of the directory opened beneath the root, so no name is resolved again
// between the check and the use; it opens LEAF itself without following a link.
class LocalStorageHost : public control::StorageHost {
 public:
  LocalStorageHost(std::string pool, std::string dir, std::string images_dir,
                   std::string backup_dir, std::string instance)
      : pool_(std::move(pool)),
        dir_(std::move(dir)),
        images_dir_(std::move(images_dir)),
        backup_dir_(std::move(backup_dir)),
        instance_(std::move(instance)) {}

  absl::Status Prepare() override {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    // Backups hold whole disks: only the server's user may read them.
    if (std::filesystem::create_directories(backup_dir_, ec)) chmod(backup_dir_.c_str(), 0700);
    if (!ec) std::filesystem::create_directories(images_dir_, ec);
    if (ec) return absl::FailedPreconditionError(Cat("storage directories: ", ec.message()));
    struct statvfs fs {};
    int64_t capacity_mib = 1 << 20;
    if (statvfs(dir_.c_str(), &fs) == 0) {
      capacity_mib = static_cast<int64_t>(fs.f_blocks) * fs.f_frsize / (1 << 20);
    }
    // Thin provisioning: volumes may promise up to four times the disk behind the pool.
    BERTH_RETURN_IF_ERROR(
        drv().EnsurePool(rs::PoolSpec{.name = pool_,
                                      .directory = dir_,
                                      .capacity_mib = std::max<int64_t>(capacity_mib, 1),
                                      .overcommit_permille = 4000,
                                      .instance = instance_}));
    return drv().Recover();
  }

  absl::StatusOr<control::HostVolume> Create(const control::HostVolumeSpec& spec) override {
    rs::CreateVolumeSpec s;
    s.pool = pool_;
    s.name = spec.name;
    BERTH_ASSIGN_OR_RETURN(s.format, rs::ParseVolumeFormat(spec.format));
    BERTH_ASSIGN_OR_RETURN(s.filesystem, rs::ParseFilesystem(spec.filesystem));
    s.size_mib = spec.size_mib;
    if (!spec.from_image.empty()) {
      BERTH_ASSIGN_OR_RETURN(s.backing_image, ImageFile(spec.name, spec.from_image));
    }
    BERTH_ASSIGN_OR_RETURN(rs::VolumeInfo v, drv().CreateVolume(s));
    return ToHost(v);
  }
  absl::StatusOr<std::vector<control::HostPool>> Pools() override {
    BERTH_ASSIGN_OR_RETURN(rs::PoolStatus p, drv().GetPool(pool_));
    return std::vector<control::HostPool>{{.name = p.spec.name,
                                           .directory = p.spec.directory,
                                           .capacity_mib = p.spec.capacity_mib,
                                           .overcommit_permille = p.spec.overcommit_permille,
                                           .volume_count = p.volume_count,
                                           .provisioned_mib = p.provisioned_mib,
                                           .allocated_bytes = p.allocated_bytes,
                                           .limit_mib = p.limit_mib,
                                           .available_mib = p.available_mib}};
  }
  absl::StatusOr<control::HostVolume> Get(std::string_view name) override {
    BERTH_ASSIGN_OR_RETURN(rs::VolumeInfo v, drv().GetVolume(pool_, name));
    return ToHost(v);
  }
  absl::StatusOr<control::HostVolume> Resize(std::string_view name, int64_t size_mib,
                                             std::string_view attached_to) override {
    rs::ResizeOptions o;
    o.attachment.attached_to = std::string(attached_to);
    BERTH_ASSIGN_OR_RETURN(rs::VolumeInfo v, drv().ResizeVolume(pool_, name, size_mib, o));
    return ToHost(v);
  }
  absl::Status Snapshot(std::string_view name, std::string_view snapshot) override {
    return drv().CreateSnapshot(pool_, name, snapshot);
  }
  absl::Status Revert(std::string_view name, std::string_view snapshot,
                      std::string_view attached_to) override {
    rs::SnapshotOptions o;
    o.attachment.attached_to = std::string(attached_to);
    return drv().RevertSnapshot(pool_, name, snapshot, o);
  }
  absl::Status DeleteSnapshot(std::string_view name, std::string_view snapshot) override {
    return drv().DeleteSnapshot(pool_, name, snapshot);
  }
  absl::StatusOr<control::HostVolume> Clone(std::string_view source, std::string_view snapshot,
                                            std::string_view name,
                                            std::string_view format) override {
    rs::CloneFromSnapshotSpec s;
    s.pool = pool_;
    s.source_volume = std::string(source);
    s.snapshot = std::string(snapshot);
    s.name = std::string(name);
    BERTH_ASSIGN_OR_RETURN(s.format, rs::ParseVolumeFormat(format));
    BERTH_ASSIGN_OR_RETURN(rs::VolumeInfo v, drv().CloneFromSnapshot(s));
    return ToHost(v);
  }
  absl::StatusOr<control::HostBackup> Backup(std::string_view name, const std::string& file,
                                             const control::Progress& progress) override {
    BERTH_ASSIGN_OR_RETURN(rs::ConfinedDir backups, Backups());
    auto parent = backups.OpenParent(file);
    if (!parent.ok()) return FieldRefused(name, "file", parent.status());
    const std::string via = Cat("/proc/self/fd/", parent->dir.get());
    const std::string real = parent->path.substr(0, parent->path.size() - parent->leaf.size() - 1);
    rs::BackupOptions o;
    o.destination = Cat(via, "/", parent->leaf);
    o.progress = progress;
    // The restore brings the disk back in its format (a raw disk stays mountable).
    BERTH_ASSIGN_OR_RETURN(rs::VolumeInfo volume, drv().GetVolume(pool_, name));
    o.labels["format"] = std::string(rs::FormatName(volume.format));
    auto b = drv().ExportBackup(pool_, name, o);
    if (!b.ok()) return Reword(b.status(), via, real);
    return control::HostBackup{b->bytes, b->sha256, parent->path};
  }
  absl::StatusOr<control::HostVolume> Restore(const std::string& file, std::string_view name,
                                              std::string_view format,
                                              const control::Progress& progress) override {
    rs::RestoreSpec s;
    s.pool = pool_;
    s.name = std::string(name);
    BERTH_ASSIGN_OR_RETURN(rs::ConfinedDir backups, Backups());
    // The file itself is checked first for a clear refusal (a link, a directory, a FIFO, a name
    // outside); the driver then opens it again through the descriptor of its directory.
    if (auto f = backups.OpenFile(file); !f.ok()) return FieldRefused(name, "file", f.status());
    // Unless told, the disk comes back in the format its backup's sidecar records (qcow2 when
    // there is none: a plain image import).
    std::string restored_format(format);
    if (restored_format.empty()) {
      restored_format = "qcow2";
      if (auto sidecar = backups.OpenFile(file + ".sha256"); sidecar.ok()) {
        char buf[4096];
        const ssize_t n = pread(sidecar->get(), buf, sizeof(buf), 0);
        if (n > 0) {
          rs::BackupSidecar parsed =
              rs::ParseBackupSidecar(std::string_view(buf, static_cast<size_t>(n)));
          if (auto it = parsed.labels.find("format"); it != parsed.labels.end()) {
            restored_format = it->second;
          }
        }
      }
    }
    BERTH_ASSIGN_OR_RETURN(s.format, rs::ParseVolumeFormat(restored_format));
    auto parent = backups.OpenParent(file);
    if (!parent.ok()) return FieldRefused(name, "file", parent.status());
    const std::string via = Cat("/proc/self/fd/", parent->dir.get());
    s.source = Cat(via, "/", parent->leaf);
    s.progress = progress;
    auto v = drv().RestoreBackup(s);
    if (!v.ok()) {
      return Reword(v.status(), s.source, parent->path);
    }
    control::HostVolume restored = ToHost(*v);
    if (s.format == rs::VolumeFormat::kRaw) restored.filesystem = FilesystemOf(v->path);
    return restored;
  }
  absl::Status Delete(std::string_view name, std::string_view attached_to) override {
    rs::DeleteVolumeOptions o;
    o.attachment.attached_to = std::string(attached_to);
    return drv().DeleteVolume(pool_, name, o);
  }

 private:
  // Calls go through the interface, whose declarations carry the default options.
  rs::StorageDriver& drv() { return driver_; }

  // The filesystem a raw volume holds ("ext4", "xfs"), as blkid finds it in the image file;
  // empty for none or another kind (Berth makes only these two).
  static std::string FilesystemOf(const std::string& path) {
    auto type = runtime::host::RunOk(runtime::host::RealExecutor(),
                                     {"blkid", "-p", "-o", "value", "-s", "TYPE", path});
    if (!type.ok()) return "";
    const std::string t(absl::StripAsciiWhitespace(*type));
    return t == "ext4" || t == "xfs" ? t : "";
  }

  absl::StatusOr<rs::ConfinedDir> Backups() const {
    return rs::ConfinedDir::Open(backup_dir_, "the backup directory");
  }

  // The image file a disk made `from_image` is a copy-on-write clone of: a disk image of this
  // host's catalog, by name, or a file beneath the catalog directory. The path goes into the
  // new volume's qcow2 header, where QEMU reads it at every start, so it must be a real path
  // and not a descriptor's: it is root + the checked relative name. Between the check and
  // qemu-img's own open only the host's operator (`berth image import`) writes in the catalog.
  absl::StatusOr<std::string> ImageFile(std::string_view disk, const std::string& from_image) {
    BERTH_ASSIGN_OR_RETURN(rs::ConfinedDir catalog,
                           rs::ConfinedDir::Open(images_dir_, "the image catalog"));
    if (from_image.find('/') == std::string::npos) {
      if (core::ValidateName("image", from_image).ok()) {
        // The catalog's layout (runtime/image/catalog.h): images/NAME/disk.qcow2|disk.raw.
        for (const char* file : {"disk.qcow2", "disk.raw"}) {
          const std::string rel = Cat("images/", from_image, "/", file);
          if (catalog.OpenFile(rel).ok()) return Cat(catalog.root(), "/", rel);
        }
      }
      return core::FieldError(
          "disk", disk, "from_image",
          Cat("names image \"", from_image, "\", which is not a disk image in this host's ",
              "catalog ", catalog.root(), "; import it with `berth image import`"));
    }
    if (from_image[0] != '/') {
      return core::FieldError("disk", disk, "from_image",
                              Cat("must be an image name or an absolute path inside the image "
                                  "catalog ",
                                  catalog.root(), ", got \"", from_image, "\""));
    }
    auto f = catalog.OpenFile(from_image);
    if (!f.ok()) return FieldRefused(disk, "from_image", f.status());
    BERTH_ASSIGN_OR_RETURN(std::string rel, catalog.Relative(from_image));
    return Cat(catalog.root(), "/", rel);
  }

  const std::string pool_;
  const std::string dir_;
  const std::string images_dir_;
  const std::string backup_dir_;
  const std::string instance_;
  rs::QemuStorageDriver driver_;
};

absl::StatusOr<rn::Protocol> Proto(std::string_view text) { return rn::ParseProtocol(text); }

// Whether /proc/net/{tcp,udp}[6] text (read in the namespace it describes) holds a socket on
// `port`: listening for tcp, bound at all for udp.
bool SocketTableHolds(const std::string& table, bool tcp, int port) {
  for (absl::string_view line : absl::StrSplit(table, '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 4) continue;
    const size_t colon = f[1].rfind(':');
    int local = 0;
    if (colon == std::string::npos || !absl::SimpleHexAtoi(f[1].substr(colon + 1), &local) ||
        local != port) {
      continue;
    }
    if (!tcp || f[3] == "0A") return true;  // 0A: TCP_LISTEN
  }
  return false;
}

class LocalNetworkHost : public control::NetworkHost {
 public:
  explicit LocalNetworkHost(rn::LinuxNetworkDriver::Options o)
      : netns_(o.netns), driver_(std::move(o)) {}

  absl::Status CheckPortFree(std::string_view protocol, int port) override {
    return HostPortFree(netns_, protocol, port);
  }
  void HoldRules() override { driver_.HoldRules(); }
  absl::Status ReleaseRules() override { return driver_.ReleaseRules(); }

  absl::StatusOr<std::string> EnsureNetwork(const control::HostNetwork& n) override {
    rn::NetworkSpec s;
    s.name = n.name;
    s.subnet = n.subnet;
    s.gateway = n.gateway;
    s.nat = n.nat;
    // VMs take their addresses from static DHCP leases.
    s.dhcp = true;
    BERTH_ASSIGN_OR_RETURN(rn::NetworkInfo info, drv().EnsureNetwork(s));
    return info.bridge;
  }
  absl::Status DeleteNetwork(std::string_view name) override { return drv().DeleteNetwork(name); }
  absl::Status PutGroup(const control::HostGroup& g) override {
    rn::SecurityGroup group;
    group.name = g.name;
    for (const auto& r : g.rules) {
      rn::SecurityRule rule;
      BERTH_ASSIGN_OR_RETURN(rule.protocol, Proto(r.protocol));
      rule.port_from = r.port_from;
      rule.port_to = r.port_to;
      rule.source_cidr = r.source_cidr;
      rule.source_group = r.source_group;
      group.rules.push_back(std::move(rule));
    }
    return drv().PutSecurityGroup(group);
  }
  absl::Status DeleteGroup(std::string_view name) override {
    return drv().DeleteSecurityGroup(name);
  }
  absl::Status AddForward(const control::HostForward& f) override {
    rn::PortForward p;
    p.id = f.id;
    BERTH_ASSIGN_OR_RETURN(p.protocol, Proto(f.protocol));
    p.host_port = f.host_port;
    p.network = f.network;
    p.target_address = f.target_address;
    p.target_port = f.target_port;
    return drv().AddPortForward(p);
  }
  absl::Status RemoveForward(std::string_view id) override { return drv().RemovePortForward(id); }
  absl::StatusOr<control::HostEndpoint> AttachEndpoint(
      const control::HostEndpointSpec& spec) override {
    rn::EndpointSpec e;
    e.network = spec.network;
    e.id = spec.owner;
    e.kind = spec.tap ? rn::EndpointKind::kTap : rn::EndpointKind::kVeth;
    e.address = spec.address;
    e.netns = spec.netns;
    e.ifname = spec.ifname;
    e.security_groups = spec.groups;
    BERTH_ASSIGN_OR_RETURN(rn::EndpointInfo info, drv().AttachEndpoint(e));
    return control::HostEndpoint{.host_ifname = info.host_ifname, .mac = info.mac};
  }
  absl::Status DetachEndpoint(std::string_view network, std::string_view owner) override {
    return drv().DetachEndpoint(network, owner);
  }
  absl::Status Cleanup(const control::HostKeep& keep) override {
    rn::KeepSet k;
    k.networks = keep.networks;
    k.endpoints = keep.endpoints;
    k.security_groups = keep.groups;
    k.port_forwards = keep.forwards;
    return drv().Cleanup(k);
  }

 private:
  rn::NetworkDriver& drv() { return driver_; }

  const std::string netns_;
  rn::LinuxNetworkDriver driver_;
};

}  // namespace

std::unique_ptr<control::StorageHost> NewLocalStorageHost(const std::string& agent_dir,
                                                          const std::string& backup_dir) {
  // The catalog is a confinement root, which must be absolute like the pool's directory.
  std::error_code ec;
  const std::string dir = std::filesystem::absolute(agent_dir, ec).lexically_normal().string();
  return std::make_unique<LocalStorageHost>("default", dir + "/pools/default", dir + "/images",
                                            backup_dir, "");
}

std::unique_ptr<control::StorageHost> NewSharedStorageHost(const std::string& agent_dir,
                                                           const std::string& shared_dir,
                                                           const std::string& backup_dir,
                                                           const std::string& instance) {
  std::error_code ec;
  const std::string dir = std::filesystem::absolute(agent_dir, ec).lexically_normal().string();
  const std::string shared = std::filesystem::absolute(shared_dir, ec).lexically_normal().string();
  return std::make_unique<LocalStorageHost>(std::string(core::kSharedPool), shared, dir + "/images",
                                            backup_dir, instance);
}

absl::Status HostPortFree(const std::string& netns, std::string_view protocol, int port) {
  const bool tcp = protocol == "tcp";
  runtime::host::RunOptions in_ns;
  in_ns.netns = netns;
  in_ns.timeout = absl::Seconds(10);
  // /proc/net shows the sockets of the reader's own namespace: read where the forwards live.
  for (std::string_view v6 : {"", "6"}) {
    const std::string file = Cat("/proc/net/", tcp ? "tcp" : "udp", v6);
    auto table = runtime::host::RunOk(runtime::host::RealExecutor(), {"cat", file}, in_ns);
    if (!table.ok()) {
      if (v6.empty()) return table.status();
      continue;  // no IPv6 in this namespace
    }
    if (SocketTableHolds(*table, tcp, port)) {
      return absl::FailedPreconditionError(Cat("is in use on the host: a ", protocol, " socket ",
                                               tcp ? "listens on it" : "is bound to it"));
    }
  }
  return absl::OkStatus();
}

std::string NetworkInstanceId(const std::string& agent_dir) {
  return rn::InstanceIdForDir(agent_dir);
}

std::unique_ptr<control::NetworkHost> NewLocalNetworkHost(const std::string& agent_dir,
                                                          const std::string& netns) {
  rn::LinuxNetworkDriver::Options o;
  o.netns = netns;
  o.state_dir = agent_dir + "/net";
  std::error_code ec;
  std::filesystem::create_directories(o.state_dir, ec);
  o.instance = NetworkInstanceId(agent_dir);
  return std::make_unique<LocalNetworkHost>(std::move(o));
}

namespace {
std::string NetnsFromEnv() {
  const char* v = getenv("BERTH_NET_NETNS");
  return v ? v : "";
}
}  // namespace

LocalStorageNetwork::LocalStorageNetwork(state::Store* store, core::Clock* clock,
                                         const std::string& agent_dir,
                                         const std::string& backup_dir)
    : store_(store),
      netns_(NetnsFromEnv()),
      instance_(NetworkInstanceId(agent_dir)),
      mounts_dir_(agent_dir + "/mounts"),
      storage_host_(NewLocalStorageHost(agent_dir, backup_dir)),
      network_host_(NewLocalNetworkHost(agent_dir, netns_)),
      storage_(store, clock, storage_host_.get()),
      network_(store, clock, network_host_.get()) {}

LocalStorageNetwork::~LocalStorageNetwork() {
  watch_.reset();
  {
    absl::MutexLock lock(&release_mu_);
    stopping_ = true;
  }
  if (releaser_.joinable()) releaser_.join();
}

void LocalStorageNetwork::Start(std::ostream& err) {
  if (absl::Status s = storage_.Start(); !s.ok()) {
    err << "berth serve: storage: " << s.message() << "\n";
  }
  // The host keeps the rules it has until networks, groups, forwards and the running
  // workloads' interfaces are all declared again: no moment without the security groups.
  network_host_->HoldRules();
  absl::Cleanup release = [&] {
    if (absl::Status s = network_host_->ReleaseRules(); !s.ok()) {
      err << "berth serve: network rules: " << s.message() << "\n";
    }
  };
  if (absl::Status s = network_.Start(); !s.ok()) {
    err << "berth serve: network: " << s.message() << "\n";
  }
  auto listed = store_->List(control::kWorkloadPrefix);
  if (!listed.ok()) {
    err << "berth serve: workloads: " << listed.status().message() << "\n";
    return;
  }
  std::vector<core::Workload> workloads;
  for (const state::KeyValue& kv : listed->kvs) {
    auto w = core::DecodeWorkload(core::Json::parse(kv.value, nullptr, false));
    if (w.ok()) workloads.push_back(*std::move(w));
  }
  RedeclareEndpoints(workloads, err);
  std::move(release).Invoke();
  releaser_ = std::thread([this] {
    core::ReportError("storenet", "release loop",
                      core::RunGuarded("storenet release", [this] { ReleaseLoop(); }));
  });
  auto watch =
      store_->Watch(control::kWorkloadPrefix, listed->revision + 1, [this](const state::Event& e) {
        if (e.type != state::Event::Type::kDelete) return;
        // Only queued here: the watch's thread must not wait on host commands.
        absl::MutexLock lock(&release_mu_);
        to_release_.push_back(e.kv.key.substr(control::kWorkloadPrefix.size()));
      });
  if (!watch.ok()) {
    err << "berth serve: watching workloads: " << watch.status().message()
        << "; a deleted workload's addresses and disks stay held until released by hand\n";
    return;
  }
  watch_ = *std::move(watch);
}

void LocalStorageNetwork::ReleaseLoop() {
  for (;;) {
    std::string workload;
    {
      absl::MutexLock lock(&release_mu_);
      release_mu_.Await(absl::Condition(
          +[](LocalStorageNetwork* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->release_mu_) {
            return self->stopping_ || !self->to_release_.empty();
          },
          this));
      if (stopping_) return;
      workload = std::move(to_release_.front());
      to_release_.pop_front();
    }
    Detach(workload, /*release=*/true);
  }
}

void LocalStorageNetwork::RedeclareEndpoints(const std::vector<core::Workload>& workloads,
                                             std::ostream& err) {
  for (const core::Workload& w : workloads) {
    // Running or paused: the agent saved its task before saying so, and re-adopts it rather
    // than starting it (which would attach the interfaces itself).
    const core::WorkloadState state = w.status.state;
    if (w.spec.networks.empty() || w.status.host.empty() ||
        (state != core::WorkloadState::kRunning && state != core::WorkloadState::kPaused)) {
      continue;
    }
    const bool vm = w.spec.kind == core::WorkloadKind::kVm;
    for (size_t i = 0; i < w.spec.networks.size(); ++i) {
      control::WorkloadEndpointOptions o = EndpointOptions(w.spec, i);
      std::error_code ec;
      // A container whose namespace is gone has no task to protect; the agent reports it.
      if (!vm && !std::filesystem::exists("/run/netns/" + o.netns, ec)) continue;
      // The driver adopts the interface that survived and puts its address back into the
      // groups' sets and rules.
      auto adopted = network_.AttachWorkload(o);
      if (!adopted.ok()) {
        err << "berth serve: workload " << w.spec.name << ": " << adopted.status().message()
            << "\n";
      }
    }
  }
}

std::string ContainerNetns(std::string_view instance, std::string_view workload) {
  return Cat("berth-", instance, "-", workload);
}

absl::Status MakeNetns(const std::string& name) {
  std::error_code ec;
  if (std::filesystem::exists("/run/netns/" + name, ec)) return absl::OkStatus();
  return runtime::host::RunOk(runtime::host::RealExecutor(), {"ip", "netns", "add", name}).status();
}

namespace {}  // namespace

bool IsMountPoint(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() > 4 && f[4] == dir) return true;
  }
  return false;
}

absl::StatusOr<std::string> MountContainerDisk(const std::string& mounts_dir,
                                               std::string_view workload, std::string_view disk,
                                               const std::string& image,
                                               const std::string& filesystem, bool read_only) {
  const std::string dir = Cat(mounts_dir, "/", workload, "/", disk);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (!IsMountPoint(dir)) {
    BERTH_RETURN_IF_ERROR(runtime::host::RunOk(runtime::host::RealExecutor(),
                                               {"mount", "-t", filesystem, "-o",
                                                read_only ? "loop,ro" : "loop", image, dir})
                              .status());
  }
  return dir;
}

void UnmountContainerDisks(const std::string& mounts_dir, std::string_view workload) {
  const std::string dir = Cat(mounts_dir, "/", workload);
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return;
  bool still_mounted = false;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (IsMountPoint(e.path().string())) {
      core::ReportError(
          "storenet", Cat("workload ", workload, ": unmount ", e.path().string()),
          runtime::host::RunOk(runtime::host::RealExecutor(), {"umount", e.path().string()})
              .status());
      still_mounted |= IsMountPoint(e.path().string());
    }
  }
  // Removing the tree beneath a disk still mounted would delete the disk's files: it stays,
  // said in the log, for the next detach to try again.
  if (still_mounted) {
    core::LogError("storenet: workload %s: %s keeps a mounted disk; not removed",
                   std::string(workload), dir);
  } else {
    std::filesystem::remove_all(dir, ec);
  }
}

absl::Status LocalStorageNetwork::Attach(const core::WorkloadSpec& spec,
                                         runtime::TaskConfig* config) {
  const bool vm = spec.kind == core::WorkloadKind::kVm;
  auto field = [&](std::string_view f, const std::string& message) {
    return Cat("workload \"", spec.name, "\": ", f, ": ", message);
  };
  // Disks first: they are cheap to give back if a network refuses.
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const core::DiskAttachment& d = spec.disks[i];
    const std::string f = Cat("disks[", static_cast<int>(i), "].disk");
    auto attached = storage_.Attach(d.disk, spec.name);
    if (!attached.ok()) {
      return absl::Status(attached.status().code(),
                          field(f, std::string(attached.status().message())));
    }
    const core::Json& st = (*attached)["status"];
    const std::string format = (*attached)["spec"].value("format", "qcow2");
    runtime::TaskDisk disk{.name = d.disk,
                           .path = st.value("path", ""),
                           .format = format,
                           .read_only = d.read_only,
                           .mount_path = d.mount};
    if (!vm) {
      // A container sees the disk's filesystem: loop-mount the raw image on the host and bind
      // that directory into the container.
      const std::string fs_type = (*attached)["spec"].value("filesystem", "");
      if (format != "raw" || fs_type.empty()) {
        return absl::InvalidArgumentError(field(
            f,
            Cat("disk \"", d.disk, "\" is ", format, fs_type.empty() ? " without a filesystem" : "",
                "; a container mounts raw disks with a filesystem (berth disk create ", d.disk,
                " --format raw --filesystem ext4)")));
      }
      auto dir =
          MountContainerDisk(mounts_dir_, spec.name, d.disk, disk.path, fs_type, d.read_only);
      if (!dir.ok()) {
        return absl::Status(dir.status().code(), field(f, std::string(dir.status().message())));
      }
      disk.path = *dir;
    }
    config->disks.push_back(std::move(disk));
  }
  if (vm) {
    // Disks attached with `berth disk attach` while the VM was not running come along too.
    auto disks = storage_.List();
    if (!disks.ok()) return disks.status();
    for (const auto& d : *disks) {
      const std::string name = d.value("name", "");
      if (!d.contains("status") || d["status"].value("attached_to", "") != spec.name) continue;
      bool named = false;
      for (const auto& a : spec.disks) named |= a.disk == name;
      if (named) continue;
      config->disks.push_back({.name = name,
                               .path = d["status"].value("path", ""),
                               .format = d["spec"].value("format", "qcow2")});
    }
  }
  for (size_t i = 0; i < spec.networks.size(); ++i) {
    control::WorkloadEndpointOptions o = EndpointOptions(spec, i);
    if (!vm) {
      if (absl::Status s = MakeNetns(o.netns); !s.ok()) {
        return absl::Status(s.code(), field(Cat("networks[", static_cast<int>(i), "]"),
                                            Cat("network namespace: ", std::string(s.message()))));
      }
    }
    BERTH_ASSIGN_OR_RETURN(control::HostEndpoint ep, network_.AttachWorkload(o));
    runtime::TaskNic nic{.name = o.ifname, .host_ifname = ep.host_ifname, .mac = ep.mac};
    if (vm) {
      // QEMU opens the tap where the bridge lives.
      if (!netns_.empty()) nic.netns_path = netns_.find('/') == 0 ? netns_ : "/run/netns/" + netns_;
    } else {
      nic.netns_path = "/run/netns/" + o.netns;
    }
    nic.addresses.push_back(Cat(ep.address, "/", ep.prefix_length));
    config->nics.push_back(std::move(nic));
  }
  return absl::OkStatus();
}

control::WorkloadEndpointOptions LocalStorageNetwork::EndpointOptions(
    const core::WorkloadSpec& spec, size_t i) const {
  const core::NetworkAttachment& n = spec.networks[i];
  const bool vm = spec.kind == core::WorkloadKind::kVm;
  return control::WorkloadEndpointOptions{
      .network = n.network,
      .workload = spec.name,
      .tap = vm,
      .address = n.address,
      .netns = vm ? std::string() : ContainerNetns(instance_, spec.name),
      .ifname = Cat("eth", static_cast<int>(i)),
      .security_groups = n.security_groups};
}

bool LocalStorageNetwork::Kept(std::string_view workload) {
  auto got = store_->Get(Cat(control::kWorkloadPrefix, workload));
  if (!got.ok()) {
    core::ReportError("storenet", Cat("workload ", workload, ": read it"), got.status());
    return true;
  }
  if (!got->kv) return false;
  auto w = core::DecodeWorkload(core::Json::parse(got->kv->value, nullptr, false));
  return !w.ok() || w->status.desired != core::DesiredState::kDeleted;
}

void LocalStorageNetwork::Detach(std::string_view workload, bool release) {
  if (release) {
    // Port forwards to the workload go with it: no nftables rule outlives its target.
    if (auto forwards = network_.ListPortForwards(); forwards.ok()) {
      for (const auto& f : *forwards) {
        if (f.contains("spec") && f["spec"].value("workload", "") == workload) {
          core::ReportError("storenet", Cat("workload ", workload, ": remove its port forward"),
                            network_.RemovePortForward(f.value("id", "")));
        }
      }
    }
  }
  if (auto nets = network_.NetworksOf(workload); nets.ok()) {
    for (const auto& n : *nets) {
      core::ReportError(
          "storenet", Cat("workload ", workload, ": detach from network ", n),
          release ? network_.DetachWorkload(n, workload) : network_.UnplugWorkload(n, workload));
    }
  }
  const std::string ns = ContainerNetns(instance_, workload);
  std::error_code ec;
  if (std::filesystem::exists("/run/netns/" + ns, ec)) {
    core::ReportError(
        "storenet", Cat("workload ", workload, ": delete network namespace ", ns),
        runtime::host::RunOk(runtime::host::RealExecutor(), {"ip", "netns", "del", ns}).status());
  }
  UnmountContainerDisks(mounts_dir_, workload);
  if (!release) return;
  if (auto disks = storage_.List(); disks.ok()) {
    for (const auto& d : *disks) {
      if (d.contains("status") && d["status"].value("attached_to", "") == workload) {
        core::ReportError("storenet",
                          Cat("workload ", workload, ": release disk ", d.value("name", "")),
                          storage_.Release(d.value("name", ""), workload));
      }
    }
  }
}

absl::Status LocalStorageNetwork::CheckReferences(const core::WorkloadSpec& spec) {
  BERTH_RETURN_IF_ERROR(network_.CheckReferences(spec));
  return control::CheckWorkloadDisks(storage_, spec).status();
}

void LocalStorageNetwork::WireAgent(agent::AgentOptions& options) {
  storage_.SetLiveDisks(control::LiveDisks{
      .attach = [this](std::string_view workload, const core::Json& disk) -> absl::Status {
        agent::Agent* a = agent_.load();
        if (a == nullptr) return absl::NotFoundError("no local agent");
        return a->AttachDisk(workload,
                             runtime::TaskDisk{.name = disk.value("name", ""),
                                               .path = disk["status"].value("path", ""),
                                               .format = disk["spec"].value("format", "")});
      },
      .detach = [this](std::string_view workload, std::string_view disk) -> absl::Status {
        agent::Agent* a = agent_.load();
        if (a == nullptr) return absl::NotFoundError("no local agent");
        absl::Status s = a->DetachDisk(workload, disk);
        // A container holds only the disks mounted for it at start; one attached later waits
        // for its next start, so it may go without the task noticing.
        if (absl::IsUnimplemented(s) && !IsMountPoint(Cat(mounts_dir_, "/", workload, "/", disk))) {
          return absl::NotFoundError(Cat("workload \"", workload, "\" has not mounted it"));
        }
        return s;
      },
      .snapshot = [this](std::string_view workload, std::string_view disk,
                         std::string_view snapshot) -> absl::Status {
        agent::Agent* a = agent_.load();
        if (a == nullptr) return absl::NotFoundError("no local agent");
        return a->SnapshotDisk(workload, disk, snapshot);
      }});
  options.attach = [this](const core::WorkloadSpec& spec, runtime::TaskConfig* config) {
    return Attach(spec, config);
  };
  // A task goes when its workload stops, fails, is placed anew or is deleted; only a deleted
  // workload gives back its addresses, forwards and disks (the watch also sees the delete).
  options.detach = [this](std::string_view workload) { Detach(workload, !Kept(workload)); };
}

void LocalStorageNetwork::AddRoutes(api::Router& router) {
  api::AddStorageRoutes(router, &storage_);
  api::AddNetworkRoutes(router, &network_);
}

}  // namespace berth
