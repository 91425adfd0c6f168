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
#include "api/http/client.h"
#include "cli/cli.h"
#include "cli/table.h"
#include "core/json.h"
#include "core/strings.h"

namespace berth::cli {

using core::Cat;
using core::Json;

namespace {

constexpr char kDiskUsage[] =
    R"(Usage: berth disk COMMAND [--json]
  create NAME --size 1Gi [--format qcow2|raw] [--fs ext4|xfs] [--from-image IMG]
  ls | get NAME
  pools                            the host's pools: provisioned (virtual) vs allocated bytes,
                                   capacity and the overcommit limit
  resize NAME --size SIZE          grow a disk (never shrinks)
  snapshot NAME SNAP | revert NAME SNAP
  clone SRC[@SNAP] NEW             a new independent disk from SRC (or its snapshot)
  attach NAME WORKLOAD | detach NAME
                                   a running VM gets (or loses) the disk at once (PCIe hot-plug);
                                   otherwise the workload sees it at its next start
  backup NAME FILE                 compressed backup to FILE in the server's backup directory
                                   (progress on stderr); an existing FILE is never replaced
  restore FILE NAME                a new disk from a backup FILE in the server's backup directory
  rm NAME                          refused while attached

Disks are virtual block devices in the server host's pool (qcow2 by default, thin-provisioned).
A workload names them in its spec: `disks: [data]` gives a VM a virtio disk; a container needs
a raw disk with a filesystem and a mount path: `disks: [{disk: data, mount: /data}]` with
`berth disk create data --size 1Gi --format raw --fs ext4`. Snapshots of a disk a running VM
holds are taken through QEMU; revert needs the disk detached.
The server touches no host file outside its own directories: --from-image IMG names a disk
image of its host's catalog (`berth image import`), and backup/restore FILEs are names in its
backup directory (`berth serve --backup-dir`, default DATA_DIR/backups), or absolute paths
inside it.
)";
constexpr char kNetUsage[] =
    R"(Usage: berth net COMMAND [--json]
  create NAME --subnet CIDR [--gateway IP] [--nat]
                                   a bridge with the gateway address; --nat masquerades traffic
                                   leaving the subnet; subnets may not overlap
  ls | get NAME                    get shows the addresses handed out
  rm NAME                          refused while workloads or port forwards use it

A workload joins with `networks: [NAME]` or `networks: [{network: NAME, address: IP,
security_groups: [G]}]`: a container gets a veth with a static address, a VM a tap and its
address by DHCP. Addresses are held in the store and released when the workload goes.
)";
constexpr char kSecgroupUsage[] =
    R"(Usage: berth secgroup COMMAND [--json]
  create NAME | ls | get NAME | rm NAME
  rule add GROUP --proto tcp|udp|icmp|any [--ports 80[-90]] [--from CIDR | --from-group G]
  rule rm GROUP RULE_ID

A workload whose network attachment names groups accepts only the ingress their rules allow
(--from-group: traffic from the members of another group); without groups, all ingress.
Rules apply at once to running workloads.
)";
constexpr char kPortfwdUsage[] =
    R"(Usage: berth portfwd COMMAND [--json]
  add --host-port P --workload W --port P [--proto tcp|udp]
  ls | rm ID

Forwards a port of the server's host to a workload's address on its first network (nftables
DNAT, from outside and from the host itself). A forward goes with its workload.
)";

const std::set<std::string>& ValuedFlags() {
  static const std::set<std::string> kFlags = {
      "--server",     "--token",      "--size",      "--format",   "--fs",
      "--from-image", "--subnet",     "--gateway",   "--proto",    "--ports",
      "--from",       "--from-group", "--host-port", "--workload", "--port"};
  return kFlags;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class Command {
 public:
  Command(std::ostream& out, std::ostream& err) : out_(out), err_(err) {}

  int Run(const std::string& cmd, const std::vector<std::string>& args) {
    for (size_t i = 0; i < args.size(); ++i) {
      std::string a = args[i];
      if (a.size() > 1 && a[0] == '-') {
        std::string value;
        bool has = false;
        if (auto eq = a.find('='); eq != std::string::npos) {
          value = a.substr(eq + 1);
          a = a.substr(0, eq);
          has = true;
        }
        if (ValuedFlags().count(a)) {
          if (!has) {
            if (i + 1 >= args.size()) return Usage(Cat("flag ", a, " needs a value"));
            value = args[++i];
          }
          values_[a] = value;
        } else if (a == "--json" || a == "--help" || a == "-h" || a == "--nat") {
          switches_.insert(a);
        } else {
          return Usage(Cat("unknown flag ", a));
        }
        continue;
      }
      pos_.push_back(a);
    }
    json_ = switches_.count("--json") > 0;
    bool help = switches_.count("--help") || switches_.count("-h");
    if (cmd == "disk" || cmd == "disks")
      return help || pos_.empty() ? Help(kDiskUsage, help) : Disk();
    if (cmd == "net" || cmd == "network" || cmd == "networks") {
      return help || pos_.empty() ? Help(kNetUsage, help) : Net();
    }
    if (cmd == "secgroup" || cmd == "secgroups") {
      return help || pos_.empty() ? Help(kSecgroupUsage, help) : Secgroup();
    }
    return help || pos_.empty() ? Help(kPortfwdUsage, help) : Portfwd();
  }

 private:
  int Help(const char* text, bool asked) {
    out_ << text;
    return asked ? 0 : 2;
  }
  int Usage(std::string_view problem) {
    err_ << "berth: " << problem << "\nRun the command with --help for its usage.\n";
    return 2;
  }
  int Fail(std::string_view message) {
    if (json_) {
      err_ << Json{{"error", std::string(message)}}.dump() << "\n";
    } else {
      err_ << "berth: " << message << "\n";
    }
    return 1;
  }
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
  std::string Arg(size_t i) const { return i < pos_.size() ? pos_[i] : std::string(); }
  std::string Flag(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() ? std::string() : it->second;
  }

  api::HttpClient* Client() {
    if (client_) return client_.get();
    std::string url = Flag("--server"), token = Flag("--token");
    if (url.empty() && getenv("BERTH_ADDR")) url = getenv("BERTH_ADDR");
    if (token.empty() && getenv("BERTH_TOKEN")) token = getenv("BERTH_TOKEN");
    std::string dir = DefaultDataDir();
    if (url.empty()) {
      Json server = Json::parse(ReadText(dir + "/server.json"), nullptr, false);
      if (server.is_object()) url = server.value("url", "");
    }
    if (token.empty()) token = ReadText(dir + "/admin.token");
    if (url.empty()) {
      Fail(
          Cat("no server to talk to: pass --server URL or set BERTH_ADDR, or start one with "
              "`berth serve --dev` (looked in ",
              dir, "/server.json)"));
      return nullptr;
    }
    if (url.rfind("http://", 0) != 0) url = "http://" + url;
    // Backups and restores copy whole disks in one request.
    client_ = std::make_unique<api::HttpClient>(
        url,
        api::HttpClient::Options{
            .bearer_token = token, .timeout = absl::Hours(6), .connect_timeout = kConnectTimeout});
    return client_.get();
  }

  std::optional<Json> Call(std::string_view method, const std::string& path,
                           const Json& body = nullptr) {
    api::HttpClient* c = Client();
    if (!c) return std::nullopt;
    auto r = c->Request(method, path, body.is_null() ? std::string() : body.dump());
    if (!r.ok()) {
      Fail(UnreachableMessage(c->base_url(), r.status()));
      return std::nullopt;
    }
    Json j = Json::parse(r->body, nullptr, false);
    if (r->status < 200 || r->status >= 300) {
      if (j.is_object() && j.contains("error")) {
        Fail(j["error"].value("message", r->body));
      } else {
        Fail(Cat("HTTP ", r->status, ": ", r->body));
      }
      return std::nullopt;
    }
    return j;
  }

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

  // Posts a long copy and relays its progress lines to stderr; returns the final result.
  std::optional<Json> Copy(const std::string& path, const Json& body) {
    api::HttpClient* c = Client();
    if (!c) return std::nullopt;
    auto r = c->Request("POST", path, body.dump());
    if (!r.ok()) {
      Fail(UnreachableMessage(c->base_url(), r.status()));
      return std::nullopt;
    }
    if (r->status < 200 || r->status >= 300) {
      Json j = Json::parse(r->body, nullptr, false);
      Fail(j.is_object() && j.contains("error") ? j["error"].value("message", r->body) : r->body);
      return std::nullopt;
    }
    std::istringstream lines(r->body);
    std::string line;
    while (std::getline(lines, line)) {
      Json j = Json::parse(line, nullptr, false);
      if (!j.is_object()) continue;
      if (j.contains("progress")) {
        int p = j["progress"].get<int>();
        if (!json_) err_ << "\r" << p / 10 << "." << p % 10 << "%" << (p == 1000 ? "\n" : "");
      } else if (j.contains("error")) {
        Fail(j["error"].value("message", line));
        return std::nullopt;
      } else if (j.contains("result")) {
        return j["result"];
      }
    }
    Fail("the server ended the copy without a result");
    return std::nullopt;
  }

  int Disk() {
    std::string sub = Arg(0), name = Arg(1);
    if (sub == "pools") {
      auto j = Call("GET", "/v1/pools");
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
      auto j = Call("GET", "/v1/disks");
      if (!j) return 1;
      return Print(*j, [&](const Json& list) {
        std::vector<std::vector<std::string>> rows = {
            {"NAME", "FORMAT", "SIZE", "STATE", "ATTACHED", "SNAPSHOTS"}};
        for (const auto& d : list["items"]) {
          const Json& s = d["status"];
          rows.push_back({d.value("name", ""), d["spec"].value("format", ""), s.value("size", ""),
                          s.value("state", ""), s.value("attached_to", "") + "",
                          Cat(s.contains("snapshots") ? s["snapshots"].size() : 0)});
        }
        PrintTable(out_, rows);
      });
    }
    if (sub == "restore") {
      std::string file = Arg(1), target = Arg(2);
      if (file.empty() || target.empty()) return Usage("usage: berth disk restore FILE NAME");
      auto j = Copy("/v1/disks/restore", Json{{"file", file}, {"name", target}});
      if (!j) return 1;
      return Print(*j,
                   [&](const Json& d) { out_ << "disk " << d.value("name", "") << " restored\n"; });
    }
    if (name.empty()) return Usage(Cat("disk ", sub, " needs a disk NAME"));
    std::string base = Cat("/v1/disks/", name);
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
      Json body = {{"name", name}};
      if (!Flag("--size").empty()) body["size"] = Flag("--size");
      if (!Flag("--format").empty()) body["format"] = Flag("--format");
      if (!Flag("--fs").empty()) body["filesystem"] = Flag("--fs");
      if (!Flag("--from-image").empty()) body["from_image"] = Flag("--from-image");
      return show(Call("POST", "/v1/disks", body), "created");
    }
    if (sub == "get") return show(Call("GET", base), "");
    if (sub == "resize") {
      if (Flag("--size").empty()) return Usage("usage: berth disk resize NAME --size SIZE");
      return show(Call("POST", base + "/resize", Json{{"size", Flag("--size")}}), "resized");
    }
    if (sub == "snapshot" || sub == "revert") {
      std::string snap = Arg(2);
      if (snap.empty()) return Usage(Cat("usage: berth disk ", sub, " NAME SNAP"));
      if (sub == "snapshot") {
        return show(Call("POST", base + "/snapshots", Json{{"name", snap}}), "snapshot taken");
      }
      return show(Call("POST", base + "/revert", Json{{"snapshot", snap}}), "reverted");
    }
    if (sub == "clone") {
      std::string target = Arg(2), source = name, snap;
      if (target.empty()) return Usage("usage: berth disk clone SRC[@SNAP] NEW");
      if (auto at = source.find('@'); at != std::string::npos) {
        snap = source.substr(at + 1);
        source = source.substr(0, at);
      }
      Json body = {{"name", target}};
      if (!snap.empty()) body["snapshot"] = snap;
      return show(Call("POST", Cat("/v1/disks/", source, "/clone"), body), "created");
    }
    if (sub == "attach") {
      if (Arg(2).empty()) return Usage("usage: berth disk attach NAME WORKLOAD");
      return show(Call("POST", base + "/attach", Json{{"workload", Arg(2)}}), "attached");
    }
    if (sub == "detach") return show(Call("POST", base + "/detach", Json::object()), "detached");
    if (sub == "backup") {
      std::string file = Arg(2);
      if (file.empty()) return Usage("usage: berth disk backup NAME FILE");
      auto j = Copy(base + "/backup", Json{{"file", file}});
      if (!j) return 1;
      return Print(*j, [&](const Json& b) {
        out_ << "backup of " << name << " written to " << b.value("file", "") << " ("
             << b.value("bytes", int64_t{0}) << " bytes, sha256 " << b.value("sha256", "") << ")\n";
      });
    }
    if (sub == "rm" || sub == "delete") {
      auto j = Call("DELETE", base);
      if (!j) return 1;
      return Print(*j, [&](const Json&) { out_ << "disk " << name << " deleted\n"; });
    }
    return Usage(Cat("unknown disk command \"", sub, "\""));
  }

  int Net() {
    std::string sub = Arg(0), name = Arg(1);
    if (sub == "ls" || sub == "list") {
      auto j = Call("GET", "/v1/networks");
      if (!j) return 1;
      return Print(*j, [&](const Json& list) {
        std::vector<std::vector<std::string>> rows = {
            {"NAME", "SUBNET", "GATEWAY", "NAT", "BRIDGE"}};
        for (const auto& n : list["items"]) {
          rows.push_back(
              {n.value("name", ""), n["spec"].value("subnet", ""), n["spec"].value("gateway", ""),
               n["spec"].value("nat", false) ? "yes" : "no", n["status"].value("bridge", "")});
        }
        PrintTable(out_, rows);
      });
    }
    if (name.empty()) return Usage(Cat("net ", sub, " needs a network NAME"));
    if (sub == "create") {
      Json body = {{"name", name}, {"subnet", Flag("--subnet")}};
      if (!Flag("--gateway").empty()) body["gateway"] = Flag("--gateway");
      if (switches_.count("--nat")) body["nat"] = true;
      auto j = Call("POST", "/v1/networks", body);
      if (!j) return 1;
      return Print(*j, [&](const Json& n) {
        out_ << "network " << name << " created: " << n["spec"].value("subnet", "") << " gateway "
             << n["spec"].value("gateway", "") << " bridge " << n["status"].value("bridge", "")
             << "\n";
      });
    }
    if (sub == "get") {
      auto j = Call("GET", Cat("/v1/networks/", name));
      if (!j) return 1;
      return Print(*j, [&](const Json& n) {
        out_ << "name:     " << name << "\nsubnet:   " << n["spec"].value("subnet", "")
             << "\ngateway:  " << n["spec"].value("gateway", "")
             << "\nnat:      " << (n["spec"].value("nat", false) ? "yes" : "no")
             << "\nbridge:   " << n["status"].value("bridge", "") << "\naddresses:\n";
        if (n["status"].contains("addresses")) {
          for (auto it = n["status"]["addresses"].begin(); it != n["status"]["addresses"].end();
               ++it) {
            out_ << "  " << it.key() << "  " << it->get<std::string>() << "\n";
          }
        }
      });
    }
    if (sub == "rm" || sub == "delete") {
      auto j = Call("DELETE", Cat("/v1/networks/", name));
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
      auto j = Call("GET", "/v1/secgroups");
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
        Json body = {{"proto", Flag("--proto").empty() ? "tcp" : Flag("--proto")}};
        if (!Flag("--ports").empty()) body["ports"] = Flag("--ports");
        if (!Flag("--from").empty()) body["from"] = Flag("--from");
        if (!Flag("--from-group").empty()) body["from_group"] = Flag("--from-group");
        auto j = Call("POST", Cat("/v1/secgroups/", group, "/rules"), body);
        if (!j) return 1;
        return Print(*j, [&](const Json& g) { PrintGroup(g); });
      }
      if (op == "rm" || op == "delete") {
        if (Arg(3).empty()) return Usage("usage: berth secgroup rule rm GROUP RULE_ID");
        auto j = Call("DELETE", Cat("/v1/secgroups/", group, "/rules/", Arg(3)));
        if (!j) return 1;
        return Print(*j, [&](const Json& g) { PrintGroup(g); });
      }
      return Usage(Cat("unknown secgroup rule command \"", op, "\""));
    }
    std::string name = Arg(1);
    if (name.empty()) return Usage(Cat("secgroup ", sub, " needs a group NAME"));
    if (sub == "create") {
      auto j = Call("POST", "/v1/secgroups", Json{{"name", name}});
      if (!j) return 1;
      return Print(*j, [&](const Json&) { out_ << "secgroup " << name << " created\n"; });
    }
    if (sub == "get") {
      auto j = Call("GET", Cat("/v1/secgroups/", name));
      if (!j) return 1;
      return Print(*j, [&](const Json& g) { PrintGroup(g); });
    }
    if (sub == "rm" || sub == "delete") {
      auto j = Call("DELETE", Cat("/v1/secgroups/", name));
      if (!j) return 1;
      return Print(*j, [&](const Json&) { out_ << "secgroup " << name << " deleted\n"; });
    }
    return Usage(Cat("unknown secgroup command \"", sub, "\""));
  }

  int Portfwd() {
    std::string sub = Arg(0);
    if (sub == "ls" || sub == "list") {
      auto j = Call("GET", "/v1/portforwards");
      if (!j) return 1;
      return Print(*j, [&](const Json& list) {
        std::vector<std::vector<std::string>> rows = {
            {"ID", "PROTO", "HOST PORT", "WORKLOAD", "PORT", "TARGET"}};
        for (const auto& f : list["items"]) {
          const Json& s = f["spec"];
          rows.push_back({f.value("id", ""), s.value("protocol", ""), Cat(s.value("host_port", 0)),
                          s.value("workload", ""), Cat(s.value("port", 0)),
                          s.value("target_address", "")});
        }
        PrintTable(out_, rows);
      });
    }
    if (sub == "add") {
      int host_port = 0, port = 0;
      if (!absl::SimpleAtoi(Flag("--host-port"), &host_port) ||
          !absl::SimpleAtoi(Flag("--port"), &port) || Flag("--workload").empty()) {
        return Usage("usage: berth portfwd add --host-port P --workload W --port P [--proto udp]");
      }
      Json body = {{"host_port", host_port}, {"port", port}, {"workload", Flag("--workload")}};
      if (!Flag("--proto").empty()) body["proto"] = Flag("--proto");
      auto j = Call("POST", "/v1/portforwards", body);
      if (!j) return 1;
      return Print(
          *j, [&](const Json& f) { out_ << "port forward " << f.value("id", "") << " added\n"; });
    }
    if (sub == "rm" || sub == "delete") {
      if (Arg(1).empty()) return Usage("usage: berth portfwd rm ID");
      auto j = Call("DELETE", Cat("/v1/portforwards/", Arg(1)));
      if (!j) return 1;
      return Print(*j, [&](const Json&) { out_ << "port forward " << Arg(1) << " removed\n"; });
    }
    return Usage(Cat("unknown portfwd command \"", sub, "\""));
  }

  std::ostream& out_;
  std::ostream& err_;
  std::vector<std::string> pos_;
  std::map<std::string, std::string> values_;
  std::set<std::string> switches_;
  bool json_ = false;
  std::unique_ptr<api::HttpClient> client_;
};

}  // namespace

bool IsStorenetCommand(const std::string& command) {
  static const std::set<std::string> kCommands = {"disk",      "disks",    "net",
                                                  "network",   "networks", "secgroup",
                                                  "secgroups", "portfwd",  "portforward"};
  return kCommands.count(command) > 0;
}

int RunStorenetCommand(const std::string& command, const std::vector<std::string>& args,
                       std::ostream& out, std::ostream& err) {
  return Command(out, err).Run(command, args);
}

}  // namespace berth::cli
