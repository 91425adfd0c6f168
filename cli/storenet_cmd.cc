#include "cli/storenet_cmd.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "api/client/client.h"
#include "cli/cli.h"
#include "cli/session.h"
#include "cli/table.h"
#include "core/json.h"
#include "core/strings.h"

namespace berth::cli {

using core::Cat;
using core::Json;

namespace {

// A network's bridge as the CLI shows it: on a fleet the server makes none, each host's agent
// makes its own (joined by the network's VXLAN id).
std::string BridgeText(const Json& network) {
  const std::string bridge = network["status"].value("bridge", "");
  return bridge.empty() ? "(one per host)" : bridge;
}

// One run of a storage or network command. `words` name the command within its group ("create";
// "rule", "add"): Arg(0)... are they, then the command's own arguments.
// Backups and restores copy whole disks in one request, so requests may take hours.
class Session : public CommandSession {
 public:
  Session(core::Invocation& inv, std::vector<std::string> words)
      : CommandSession(inv, std::move(words), absl::Hours(6)) {}
  // 200704 -> "196Ki", 10737418240 -> "10.0Gi": for people, not for parsing.
  static std::string Bytes(int64_t bytes) {
    static constexpr const char* kUnits[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 5) {
      v /= 1024;
      ++u;
    }
    char buf[32];
    snprintf(buf, sizeof buf, u >= 3 ? "%.1f%s" : "%.0f%s", v, kUnits[u]);
    return buf;
  }
  // The value of the flag spelled `name` ("--size"), or "".
  std::string Flag(std::string_view name) const { return inv_.String(name.substr(2)); }

  // Prints the object as JSON or via `text`.
  int Print(const Json& j, const std::function<void(const Json&)>& text) {
    if (json_) {
      out_ << j.dump(2) << "\n";
    } else {
      text(j);
    }
    return 0;
  }

  void PrintDisk(const Json& d) {
    const Json& s = d["status"];
    out_ << "name:        " << d.value("name", "") << "\n"
         << "format:      " << d["spec"].value("format", "") << "\n"
         << "size:        " << s.value("size", "") << "\n"
         << "allocated:   " << s.value("allocated_bytes", int64_t{0}) << " bytes\n"
         << "filesystem:  " << d["spec"].value("filesystem", "") << "\n"
         << "state:       " << s.value("state", "") << "\n"
         << "attached to: " << s.value("attached_to", "") << "\n"
         << "path:        " << s.value("path", "") << "\n";
    std::string snaps;
    if (s.contains("snapshots")) {
      for (const auto& n : s["snapshots"])
        snaps += (snaps.empty() ? "" : ", ") + n.get<std::string>();
    }
    out_ << "snapshots:   " << snaps << "\n";
  }

  // Runs a long copy (backup or restore), relaying its progress to stderr; returns the result.
  std::optional<Json> Copy(
      const std::function<absl::StatusOr<Json>(api::Client&, const api::CopyProgress&)>& copy) {
    api::Client* c = Api();
    if (!c) return std::nullopt;
    auto result = copy(*c, [&](int p) {
      if (!json_) err_ << "\r" << p / 10 << "." << p % 10 << "%" << (p == 1000 ? "\n" : "");
    });
    if (!result.ok()) {
      FailCall(inv_, *c, result.status());
      return std::nullopt;
    }
    return *std::move(result);
  }

  int Disk() {
    std::string sub = Arg(0), name = Arg(1);
    if (sub == "pools") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.ListPools(r).status(); });
      if (!j) return 1;
      return Print(*j, [&](const Json& list) {
        std::vector<std::vector<std::string>> rows = {
            {"POOL", "VOLUMES", "PROVISIONED", "ALLOCATED", "CAPACITY", "LIMIT", "AVAILABLE"}};
        for (const auto& p : list["items"]) {
          auto mib = [&](const char* key) { return Bytes(p.value(key, int64_t{0}) << 20); };
          rows.push_back({p.value("name", ""), Cat(p.value("volume_count", int64_t{0})),
                          mib("provisioned_mib"), Bytes(p.value("allocated_bytes", int64_t{0})),
                          mib("capacity_mib"), mib("limit_mib"), mib("available_mib")});
        }
        PrintTable(out_, rows);
      });
    }
    if (sub == "ls" || sub == "list") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.ListDisks(r).status(); });
      if (!j) return 1;
      return Print(*j, [&](const Json& list) {
        std::vector<std::vector<std::string>> rows = {
            {"NAME", "FORMAT", "SIZE", "STATE", "ATTACHED", "SNAPSHOTS", "WHERE"}};
        for (const auto& d : list["items"]) {
          const Json& s = d["status"];
          // A fleet's disks name their host or the shared pool; a dev server's, neither.
          const std::string pool = d["spec"].value("pool", "");
          const std::string host = d["spec"].value("host", "");
          rows.push_back({d.value("name", ""), d["spec"].value("format", ""), s.value("size", ""),
                          s.value("state", ""), s.value("attached_to", "") + "",
                          Cat(s.contains("snapshots") ? s["snapshots"].size() : 0),
                          !pool.empty()  ? Cat(pool, " pool")
                          : host.empty() ? "-"
                                         : host});
        }
        PrintTable(out_, rows);
      });
    }
    if (sub == "restore") {
      std::string file = Arg(1), target = Arg(2);
      if (file.empty() || target.empty()) return Usage("usage: berth disk restore FILE NAME");
      auto j = Copy([&](api::Client& c, const api::CopyProgress& p) {
        return c.RestoreDisk(file, target, p, Flag("--host"), Flag("--pool"));
      });
      if (!j) return 1;
      return Print(*j,
                   [&](const Json& d) { out_ << "disk " << d.value("name", "") << " restored\n"; });
    }
    if (name.empty()) return Usage(Cat("disk ", sub, " needs a disk NAME"));
    auto show = [&](std::optional<Json> j, std::string_view done) {
      if (!j) return 1;
      return Print(*j, [&](const Json& d) {
        if (done.empty()) {
          PrintDisk(d);
        } else {
          out_ << "disk " << d.value("name", "") << " " << done << "\n";
        }
      });
    };
    if (sub == "create") {
      api::wire::DiskCreate request{.name = name,
                                    .size = Flag("--size"),
                                    .format = Flag("--format"),
                                    .filesystem = Flag("--fs"),
                                    .from_image = Flag("--from-image"),
                                    .host = Flag("--host"),
                                    .pool = Flag("--pool")};
      return show(
          Do([&](api::Client& c, api::Raw* r) { return c.CreateDisk(request, r).status(); }),
          "created");
    }
    if (sub == "get")
      return show(Do([&](api::Client& c, api::Raw* r) { return c.GetDisk(name, r).status(); }), "");
    if (sub == "resize") {
      if (Flag("--size").empty()) return Usage("usage: berth disk resize NAME --size SIZE");
      return show(Do([&](api::Client& c, api::Raw* r) {
                    return c.ResizeDisk(name, Flag("--size"), r).status();
                  }),
                  "resized");
    }
    if (sub == "snapshot" || sub == "revert") {
      std::string snap = Arg(2);
      if (snap.empty()) return Usage(Cat("usage: berth disk ", sub, " NAME SNAP"));
      if (sub == "snapshot") {
        return show(
            Do([&](api::Client& c, api::Raw* r) { return c.SnapshotDisk(name, snap, r).status(); }),
            "snapshot taken");
      }
      return show(
          Do([&](api::Client& c, api::Raw* r) { return c.RevertDisk(name, snap, r).status(); }),
          "reverted");
    }
    if (sub == "clone") {
      std::string target = Arg(2), source = name, snap;
      if (target.empty()) return Usage("usage: berth disk clone SRC[@SNAP] NEW");
      if (auto at = source.find('@'); at != std::string::npos) {
        snap = source.substr(at + 1);
        source = source.substr(0, at);
      }
      return show(Do([&](api::Client& c, api::Raw* r) {
                    return c.CloneDisk(source, snap, target, r).status();
                  }),
                  "created");
    }
    if (sub == "attach") {
      if (Arg(2).empty()) return Usage("usage: berth disk attach NAME WORKLOAD");
      return show(
          Do([&](api::Client& c, api::Raw* r) { return c.AttachDisk(name, Arg(2), r).status(); }),
          "attached");
    }
    if (sub == "detach")
      return show(Do([&](api::Client& c, api::Raw* r) { return c.DetachDisk(name, r).status(); }),
                  "detached");
    if (sub == "backup") {
      std::string file = Arg(2);
      if (file.empty()) return Usage("usage: berth disk backup NAME FILE");
      auto j = Copy(
          [&](api::Client& c, const api::CopyProgress& p) { return c.BackupDisk(name, file, p); });
      if (!j) return 1;
      return Print(*j, [&](const Json& b) {
        out_ << "backup of " << name << " written to " << b.value("file", "") << " ("
             << b.value("bytes", int64_t{0}) << " bytes, sha256 " << b.value("sha256", "") << ")\n";
      });
    }
    if (sub == "rm" || sub == "delete") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.DeleteDisk(name, r); });
      if (!j) return 1;
      return Print(*j, [&](const Json&) { out_ << "disk " << name << " deleted\n"; });
    }
    return Usage(Cat("unknown disk command \"", sub, "\""));
  }

  int Net() {
    std::string sub = Arg(0), name = Arg(1);
    if (sub == "ls" || sub == "list") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.ListNetworks(r).status(); });
      if (!j) return 1;
      return Print(*j, [&](const Json& list) {
        std::vector<std::vector<std::string>> rows = {
            {"NAME", "SUBNET", "GATEWAY", "NAT", "BRIDGE", "VNI"}};
        for (const auto& n : list["items"]) {
          rows.push_back({n.value("name", ""), n["spec"].value("subnet", ""),
                          n["spec"].value("gateway", ""),
                          n["spec"].value("nat", false) ? "yes" : "no", BridgeText(n),
                          std::to_string(n["status"].value("vni", 0))});
        }
        PrintTable(out_, rows);
      });
    }
    if (name.empty()) return Usage(Cat("net ", sub, " needs a network NAME"));
    if (sub == "create") {
      api::wire::NetworkCreate request{
          .name = name, .subnet = Flag("--subnet"), .gateway = Flag("--gateway")};
      if (inv_.Bool("nat")) request.nat = true;
      auto j =
          Do([&](api::Client& c, api::Raw* r) { return c.CreateNetwork(request, r).status(); });
      if (!j) return 1;
      return Print(*j, [&](const Json& n) {
        out_ << "network " << name << " created: " << n["spec"].value("subnet", "") << " gateway "
             << n["spec"].value("gateway", "") << " bridge " << BridgeText(n) << "\n";
      });
    }
    if (sub == "get") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.GetNetwork(name, r).status(); });
      if (!j) return 1;
      return Print(*j, [&](const Json& n) {
        out_ << "name:     " << name << "\nsubnet:   " << n["spec"].value("subnet", "")
             << "\ngateway:  " << n["spec"].value("gateway", "")
             << "\nnat:      " << (n["spec"].value("nat", false) ? "yes" : "no")
             << "\nbridge:   " << BridgeText(n) << "\nvni:      " << n["status"].value("vni", 0)
             << "\naddresses:\n";
        if (n["status"].contains("addresses")) {
          for (auto it = n["status"]["addresses"].begin(); it != n["status"]["addresses"].end();
               ++it) {
            out_ << "  " << it.key() << "  " << it->get<std::string>() << "\n";
          }
        }
      });
    }
    if (sub == "rm" || sub == "delete") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.DeleteNetwork(name, r); });
      if (!j) return 1;
      return Print(*j, [&](const Json&) { out_ << "network " << name << " deleted\n"; });
    }
    return Usage(Cat("unknown net command \"", sub, "\""));
  }

  void PrintGroup(const Json& g) {
    out_ << "secgroup " << g.value("name", "") << "\n";
    std::vector<std::vector<std::string>> rows = {{"RULE", "PROTO", "PORTS", "FROM"}};
    for (const auto& r : g["spec"]["rules"]) {
      std::string from = r.value("from", "");
      if (!r.value("from_group", "").empty()) from = "group " + r.value("from_group", "");
      if (from.empty()) from = "anywhere";
      rows.push_back({r.value("id", ""), r.value("protocol", ""), r.value("ports", ""), from});
    }
    PrintTable(out_, rows);
  }

  int Secgroup() {
    std::string sub = Arg(0);
    if (sub == "ls" || sub == "list") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.ListSecurityGroups(r).status(); });
      if (!j) return 1;
      return Print(*j, [&](const Json& list) {
        std::vector<std::vector<std::string>> rows = {{"NAME", "RULES"}};
        for (const auto& g : list["items"]) {
          rows.push_back({g.value("name", ""), Cat(g["spec"]["rules"].size())});
        }
        PrintTable(out_, rows);
      });
    }
    if (sub == "rule") {
      std::string op = Arg(1), group = Arg(2);
      if (group.empty()) return Usage("usage: berth secgroup rule add|rm GROUP ...");
      if (op == "add") {
        api::wire::SecurityRule rule{.protocol = Flag("--proto").empty() ? "tcp" : Flag("--proto"),
                                     .ports = Flag("--ports"),
                                     .from_cidr = Flag("--from"),
                                     .from_group = Flag("--from-group")};
        auto j =
            Do([&](api::Client& c, api::Raw* r) { return c.AddRule(group, rule, r).status(); });
        if (!j) return 1;
        return Print(*j, [&](const Json& g) { PrintGroup(g); });
      }
      if (op == "rm" || op == "delete") {
        if (Arg(3).empty()) return Usage("usage: berth secgroup rule rm GROUP RULE_ID");
        auto j = Do(
            [&](api::Client& c, api::Raw* r) { return c.RemoveRule(group, Arg(3), r).status(); });
        if (!j) return 1;
        return Print(*j, [&](const Json& g) { PrintGroup(g); });
      }
      return Usage(Cat("unknown secgroup rule command \"", op, "\""));
    }
    std::string name = Arg(1);
    if (name.empty()) return Usage(Cat("secgroup ", sub, " needs a group NAME"));
    if (sub == "create") {
      auto j =
          Do([&](api::Client& c, api::Raw* r) { return c.CreateSecurityGroup(name, r).status(); });
      if (!j) return 1;
      return Print(*j, [&](const Json&) { out_ << "secgroup " << name << " created\n"; });
    }
    if (sub == "get") {
      auto j =
          Do([&](api::Client& c, api::Raw* r) { return c.GetSecurityGroup(name, r).status(); });
      if (!j) return 1;
      return Print(*j, [&](const Json& g) { PrintGroup(g); });
    }
    if (sub == "rm" || sub == "delete") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.DeleteSecurityGroup(name, r); });
      if (!j) return 1;
      return Print(*j, [&](const Json&) { out_ << "secgroup " << name << " deleted\n"; });
    }
    return Usage(Cat("unknown secgroup command \"", sub, "\""));
  }

  int Portfwd() {
    std::string sub = Arg(0);
    if (sub == "ls" || sub == "list") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.ListPortForwards(r).status(); });
      if (!j) return 1;
      return Print(*j, [&](const Json& list) {
        std::vector<std::vector<std::string>> rows = {
            {"ID", "PROTO", "HOST PORT", "WORKLOAD", "PORT", "TARGET", "AT"}};
        for (const auto& f : list["items"]) {
          const Json& s = f["spec"];
          rows.push_back({f.value("id", ""), s.value("protocol", ""), Cat(s.value("host_port", 0)),
                          s.value("workload", ""), Cat(s.value("port", 0)),
                          s.value("target_address", ""), s.value("host", "-")});
        }
        PrintTable(out_, rows);
      });
    }
    if (sub == "add") {
      api::wire::PortForwardCreate request{.protocol = Flag("--proto"),
                                           .host_port = static_cast<int>(inv_.Int("host-port")),
                                           .workload = Flag("--workload"),
                                           .port = static_cast<int>(inv_.Int("port")),
                                           .host = Flag("--host")};
      auto j =
          Do([&](api::Client& c, api::Raw* r) { return c.AddPortForward(request, r).status(); });
      if (!j) return 1;
      return Print(
          *j, [&](const Json& f) { out_ << "port forward " << f.value("id", "") << " added\n"; });
    }
    if (sub == "rm" || sub == "delete") {
      if (Arg(1).empty()) return Usage("usage: berth portfwd rm ID");
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.RemovePortForward(Arg(1), r); });
      if (!j) return 1;
      return Print(*j, [&](const Json&) { out_ << "port forward " << Arg(1) << " removed\n"; });
    }
    return Usage(Cat("unknown portfwd command \"", sub, "\""));
  }
};

using core::ArgDef;
using core::Command;
using core::FlagDef;
using core::FlagType;
using core::Invocation;

core::RunFn Do(std::vector<std::string> words, int (Session::*method)()) {
  return [words, method](Invocation& inv) {
    Session session(inv, words);
    return (session.*method)();
  };
}

// A group of this file: the server flags, then `commands`.
Command Group(Command g, std::vector<Command> commands) {
  g.section = "Disks and networks";
  g.flags = ServerFlags();
  g.subcommands = std::move(commands);
  return g;
}

}  // namespace

Command DiskCommand() {
  const ArgDef name = {.name = "NAME", .help = "the disk's name"};
  const ArgDef snap = {.name = "SNAP", .help = "the snapshot's name"};
  const FlagDef size = {
      .name = "size", .type = FlagType::kSize, .help = "the disk's virtual size, e.g. 1Gi"};
  const FlagDef place_host = {
      .name = "host",
      .help =
          "a fleet: the host whose pool holds the disk (default: the server picks the\n"
          "ready host with the fewest disks); a workload on it runs on that host",
      .value_name = "HOST"};
  const FlagDef place_pool = {
      .name = "pool",
      .help =
          "a fleet: shared puts the disk in the pool every host started with\n"
          "`berth agent --shared-pool DIR` mounts, so its workload can run on, and move\n"
          "to, any of them",
      .value_name = "POOL"};
  FlagDef resize = size;
  resize.required = true;
  resize.help = "the new, larger size";
  auto with = [&](std::string cmd, std::string summary, std::vector<ArgDef> args) {
    return Command{.name = cmd,
                   .summary = std::move(summary),
                   .args = std::move(args),
                   .run = Do({cmd}, &Session::Disk)};
  };
  Command rm = with("rm", "delete a disk; refused while attached", {name});
  rm.aliases = {"delete"};
  Command ls = with("ls", "list disks", {});
  ls.aliases = {"list"};
  return Group(
      Command{
          .name = "disk",
          .aliases = {"disks"},
          .summary = "virtual block devices in the hosts' pools",
          .description =
              "Disks are virtual block devices in a host's pool (qcow2 by default, "
              "thin-provisioned).\n"
              "A workload names them in its spec: `disks: [data]` gives a VM a virtio disk; a "
              "container needs\n"
              "a raw disk with a filesystem and a mount path: `disks: [{disk: data, mount: "
              "/data}]` with\n"
              "`berth disk create data --size 1Gi --format raw --fs ext4`. Snapshots of a disk "
              "a running VM\n"
              "holds are taken through QEMU; revert needs the disk detached.\n"
              "The server touches no host file outside its own directories: --from-image IMG "
              "names a disk\n"
              "image of its host's catalog (`berth image import`), and backup/restore FILEs are "
              "names in its\n"
              "backup directory (`berth serve --backup-dir`, default DATA_DIR/backups), or "
              "absolute paths\n"
              "inside it. On a fleet (`berth serve` without --dev) a disk lives in one host's "
              "pool (--host)\n"
              "or in the shared pool every `berth agent --shared-pool DIR` mounts (--pool "
              "shared); that host's\n"
              "agent makes it, backups go to its AGENT_DIR/backups, and a workload runs where "
              "its disks are."},
      {Command{.name = "create",
               .summary = "create a disk",
               .flags = {size,
                         {.name = "format",
                          .type = FlagType::kEnum,
                          .help = "the image format",
                          .default_value = "qcow2",
                          .choices = {"qcow2", "raw"}},
                         {.name = "fs",
                          .help = "make a filesystem on it (ext4, xfs); raw only",
                          .value_name = "FS"},
                         {.name = "from-image",
                          .help = "start from a disk image of the server host's catalog",
                          .value_name = "IMG"},
                         place_host,
                         place_pool},
               .args = {name},
               .run = Do({"create"}, &Session::Disk)},
       ls, with("get", "show one disk", {name}),
       with("pools",
            "the host's pools: provisioned (virtual) vs allocated bytes, capacity and the "
            "overcommit limit",
            {}),
       Command{.name = "resize",
               .summary = "grow a disk (never shrinks)",
               .flags = {resize},
               .args = {name},
               .run = Do({"resize"}, &Session::Disk)},
       with("snapshot", "take a snapshot of a disk", {name, snap}),
       with("revert", "revert a detached disk to a snapshot", {name, snap}),
       with("clone", "a new independent disk from SRC (or its snapshot)",
            {{.name = "SRC[@SNAP]", .help = "the source disk, optionally at a snapshot"},
             {.name = "NEW", .help = "the new disk's name"}}),
       with("attach",
            "a running VM gets the disk at once (PCIe hot-plug); otherwise the workload sees it "
            "at its next start",
            {name, {.name = "WORKLOAD", .help = "the workload to attach it to"}}),
       with("detach", "take a disk off its workload", {name}),
       with("backup",
            "compressed backup to FILE in the server's backup directory (progress on stderr); an "
            "existing FILE is never replaced",
            {name, {.name = "FILE", .help = "a file name in the server's backup directory"}}),
       Command{
           .name = "restore",
           .summary = "a new disk from a backup FILE in the server's backup directory",
           .flags = {place_host, place_pool},
           .args = {{.name = "FILE", .help = "a backup in the server's backup directory"}, name},
           .run = Do({"restore"}, &Session::Disk)},
       rm});
}

Command NetCommand() {
  const ArgDef name = {.name = "NAME", .help = "the network's name"};
  return Group(
      Command{.name = "net",
              .aliases = {"network", "networks"},
              .summary = "networks: a subnet, a gateway, optional NAT",
              .description =
                  "A workload joins with `networks: [NAME]` or `networks: [{network: NAME, "
                  "address: IP,\n"
                  "security_groups: [G]}]`: a container gets a veth with a static address, a VM "
                  "a tap and its\n"
                  "address by DHCP. Addresses are held in the store and released when the "
                  "workload goes."},
      {Command{.name = "create",
               .summary = "a bridge with the gateway address; subnets may not overlap",
               .flags = {{.name = "subnet",
                          .help = "the network's subnet",
                          .value_name = "CIDR",
                          .required = true},
                         {.name = "gateway",
                          .help = "the gateway's address (default: the "
                                  "subnet's first)",
                          .value_name = "IP"},
                         {.name = "nat",
                          .type = FlagType::kBool,
                          .help = "masquerade traffic leaving the subnet"}},
               .args = {name},
               .run = Do({"create"}, &Session::Net)},
       Command{.name = "ls",
               .aliases = {"list"},
               .summary = "list networks",
               .run = Do({"ls"}, &Session::Net)},
       Command{.name = "get",
               .summary = "show a network and the addresses handed out",
               .args = {name},
               .run = Do({"get"}, &Session::Net)},
       Command{.name = "rm",
               .aliases = {"delete"},
               .summary = "refused while workloads or port forwards use it",
               .args = {name},
               .run = Do({"rm"}, &Session::Net)}});
}

Command SecgroupCommand() {
  const ArgDef name = {.name = "NAME", .help = "the group's name"};
  const ArgDef group = {.name = "GROUP", .help = "the security group"};
  return Group(
      Command{.name = "secgroup",
              .aliases = {"secgroups"},
              .summary = "security groups: ingress rules for workloads",
              .description =
                  "A workload whose network attachment names groups accepts only the ingress "
                  "their rules allow\n"
                  "(--from-group: traffic from the members of another group); without groups, "
                  "all ingress.\n"
                  "Rules apply at once to running workloads."},
      {Command{.name = "create",
               .summary = "create an empty group",
               .args = {name},
               .run = Do({"create"}, &Session::Secgroup)},
       Command{.name = "ls",
               .aliases = {"list"},
               .summary = "list groups",
               .run = Do({"ls"}, &Session::Secgroup)},
       Command{.name = "get",
               .summary = "show a group's rules",
               .args = {name},
               .run = Do({"get"}, &Session::Secgroup)},
       Command{.name = "rm",
               .aliases = {"delete"},
               .summary = "delete a group",
               .args = {name},
               .run = Do({"rm"}, &Session::Secgroup)},
       Command{
           .name = "rule",
           .summary = "add or remove a group's rules",
           .subcommands = {Command{.name = "add",
                                   .summary = "allow ingress",
                                   .flags = {{.name = "proto",
                                              .help = "tcp, udp, icmp or any",
                                              .default_value = "tcp",
                                              .value_name = "PROTO"},
                                             {.name = "ports",
                                              .help = "a port or a range: 80 or 80-90",
                                              .value_name = "PORTS"},
                                             {.name = "from",
                                              .help = "allow only this source subnet",
                                              .value_name = "CIDR"},
                                             {.name = "from-group",
                                              .help = "allow only the members of group G",
                                              .value_name = "G"}},
                                   .args = {group},
                                   .run = Do({"rule", "add"}, &Session::Secgroup)},
                           Command{.name = "rm",
                                   .aliases = {"delete"},
                                   .summary = "remove a rule",
                                   .args = {group, {.name = "RULE_ID", .help = "the rule's id"}},
                                   .run = Do({"rule", "rm"}, &Session::Secgroup)}}}});
}

Command PortfwdCommand() {
  return Group(
      Command{.name = "portfwd",
              .aliases = {"portforward"},
              .summary = "host port -> workload port",
              .description =
                  "Forwards a host port to a workload's address on its first network (nftables "
                  "DNAT, from\n"
                  "outside and from the host itself, 127.0.0.1 included). serve --dev forwards "
                  "at its own host.\n"
                  "On a fleet, the forward is made at the host the workload runs on and moves "
                  "with it, or,\n"
                  "with --host H, at host H wherever the workload runs: H sends the connections "
                  "on across\n"
                  "the network from its own address there (the workload sees that address as "
                  "the client's).\n"
                  "Deleting the workload removes its forwards."},
      {Command{.name = "add",
               .summary = "forward a host port",
               .flags = {{.name = "host-port",
                          .type = FlagType::kInt,
                          .help = "the port on the host",
                          .value_name = "P",
                          .required = true},
                         {.name = "workload",
                          .help = "the workload to forward to",
                          .value_name = "W",
                          .required = true},
                         {.name = "port",
                          .type = FlagType::kInt,
                          .help = "the workload's port",
                          .value_name = "P",
                          .required = true},
                         {.name = "proto", .help = "tcp (default) or udp", .value_name = "PROTO"},
                         {.name = "host",
                          .help = "a fleet's host that takes the connections (default: the "
                                  "workload's host)",
                          .value_name = "H"}},
               .run = Do({"add"}, &Session::Portfwd)},
       Command{.name = "ls",
               .aliases = {"list"},
               .summary = "list forwards",
               .run = Do({"ls"}, &Session::Portfwd)},
       Command{.name = "rm",
               .aliases = {"delete"},
               .summary = "remove a forward",
               .args = {{.name = "ID", .help = "the forward's id"}},
               .run = Do({"rm"}, &Session::Portfwd)}});
}

}  // namespace berth::cli
