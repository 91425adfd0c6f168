#include "cli/cli.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <map>
#include <optional>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "api/body_parser.h"
#include "api/http/client.h"
#include "cli/image_cmd.h"
#include "cli/storenet_cmd.h"
#include "cli/table.h"
#include "core/json.h"
#include "core/strings.h"
#include "core/workload.h"

namespace berth::cli {

using core::Cat;
using core::Json;

namespace {

constexpr char kUsage[] =
    R"(berth: run AI workloads as VMs, containers and processes on a pool of GPU hosts.

Usage: berth COMMAND [ARGS] [--json] [--server URL] [--token TOKEN]

Server and agents:
  serve [--dev] [--data-dir DIR] [--listen HOST:PORT]   run the API server (--dev: with a local agent)
  agent --server URL --join-token-file F [--config F]   run the agent for this host
  sim generate|fill|replay ...                          simulate a cluster (see berth sim --help)

Workloads:
  workload create -f FILE       create the workloads in a YAML or JSON file (--- separates several)
  workload ls                   list workloads
  workload get NAME             show one workload, with its status
  workload explain NAME         why a workload is pending
  workload start|stop|pause|resume NAME
  workload delete NAME          stop and remove a workload
  workload logs NAME [-f] [--stderr]   print (and follow) its output
  workload console NAME [-f]    print (and follow) a VM's serial console (also: vm console NAME)
  workload exec NAME -- CMD...  run a command inside a running container
  workload stats NAME           live counters of its task (CPU, memory; guest CPU for VMs)

Images (this host's catalog):
  image import NAME (--kernel F [--initrd F] [--cmdline S] | --disk F | --rootfs DIR|TAR)
  image ls | image rm NAME

Disks and networks (see `berth disk --help`, `berth net --help`, ...):
  disk create|ls|get|resize|snapshot|revert|clone|attach|detach|backup|restore|rm
  net create|ls|get|rm            networks: a subnet, a gateway, optional NAT
  secgroup create|ls|get|rm | secgroup rule add|rm   ingress rules for workloads
  portfwd add|ls|rm               host port -> workload port

Cluster:
  host ls | host get NAME       hosts, their capacity and state
  host rm NAME                  remove a host that is down and revoke its credential
  tenant ls                     tenants' use against their quotas
  tenant quota set NAME --cpu N --memory M --gpu G [--gpu-model MODEL=G,...] | tenant quota rm NAME
  events [-f]                   the event log (follow with -f)

The server and token come from --server/--token, BERTH_ADDR/BERTH_TOKEN, or the local
`berth serve --dev` data directory (BERTH_DATA_DIR, default ~/.berth).
Every command that prints accepts --json.
)";

struct Flags {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;
  std::map<std::string, bool> switches;
};

// Flags that take a value; everything else starting with '-' is a switch.
// -f names a file for `create` and means "follow" everywhere else.
bool TakesValue(const std::string& flag, bool f_is_file) {
  if (flag == "-f") return f_is_file;
  static const char* kValued[] = {"--server", "--token",   "--file",     "--data-dir",
                                  "--tail",   "--timeout", "--cpu",      "--memory",
                                  "--disk",   "--gpu",     "--gpu-model"};
  for (const char* v : kValued) {
    if (flag == v) return true;
  }
  return false;
}

// The switches (flags without a value) some command of this file reads; any other is refused,
// so a mistyped flag is an error rather than silently ignored.
bool IsKnownSwitch(const std::string& flag) {
  static const char* kSwitches[] = {"--json", "--help", "-h", "-f", "--follow", "--stderr"};
  for (const char* s : kSwitches) {
    if (flag == s) return true;
  }
  return false;
}

// With verbatim_after > 0, once that many positional arguments are in, the first one that is
// not a flag starts the verbatim rest (a command line for `workload exec`).
std::optional<std::string> ParseFlags(const std::vector<std::string>& args, size_t from,
                                      bool f_is_file, Flags* flags, size_t verbatim_after = 0) {
  for (size_t i = from; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (verbatim_after > 0 && flags->positional.size() >= verbatim_after && a != "--" &&
        !(a.size() > 1 && a[0] == '-')) {
      for (; i < args.size(); ++i) flags->positional.push_back(args[i]);
      break;
    }
    if (a == "--") {
      for (++i; i < args.size(); ++i) flags->positional.push_back(args[i]);
      break;
    }
    if (a.size() > 1 && a[0] == '-') {
      std::string name = a, value;
      bool has_value = false;
      if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        has_value = true;
      }
      if (TakesValue(name, f_is_file)) {
        if (!has_value) {
          if (i + 1 >= args.size()) return Cat("flag ", name, " needs a value");
          value = args[++i];
        }
        flags->values[name] = value;
      } else if (IsKnownSwitch(name)) {
        flags->switches[name] = true;
      } else {
        return Cat("unknown flag ", name,
                   " (a command's own arguments go after --, e.g. `workload exec NAME -- CMD`)");
      }
      continue;
    }
    flags->positional.push_back(a);
  }
  return std::nullopt;
}

std::string ReadFile(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  *ok = static_cast<bool>(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

struct Target {
  std::string url;
  std::string token;
};

std::optional<Target> FindServer(const Flags& f, std::string* why) {
  Target t;
  if (auto it = f.values.find("--server"); it != f.values.end()) t.url = it->second;
  if (t.url.empty() && getenv("BERTH_ADDR")) t.url = getenv("BERTH_ADDR");
  if (auto it = f.values.find("--token"); it != f.values.end()) t.token = it->second;
  if (t.token.empty() && getenv("BERTH_TOKEN")) t.token = getenv("BERTH_TOKEN");
  std::string dir = DefaultDataDir();
  if (t.url.empty()) {
    bool ok = false;
    Json server = Json::parse(ReadFile(dir + "/server.json", &ok), nullptr, false);
    if (ok && server.is_object()) t.url = server.value("url", "");
  }
  if (t.token.empty()) {
    bool ok = false;
    t.token = Trim(ReadFile(dir + "/admin.token", &ok));
  }
  if (t.url.empty()) {
    *why =
        Cat("no server to talk to: pass --server URL or set BERTH_ADDR, or start one with "
            "`berth serve --dev` (looked in ",
            dir, "/server.json)");
    return std::nullopt;
  }
  if (t.url.rfind("http://", 0) != 0) t.url = "http://" + t.url;
  return t;
}

std::string ErrorMessage(const api::HttpResponse& r) {
  Json j = Json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error")) {
    return j["error"].value("message", r.body);
  }
  return Cat("HTTP ", r.status, ": ", r.body);
}

std::string Age(const Json& time_field) {
  absl::Time t = core::DecodeTime(time_field);
  if (t == absl::InfinitePast()) return "-";
  absl::Duration d = absl::Now() - t;
  int64_t s = absl::ToInt64Seconds(d);
  if (s < 0) s = 0;
  if (s < 120) return Cat(s, "s");
  if (s < 7200) return Cat(s / 60, "m");
  if (s < 172800) return Cat(s / 3600, "h");
  return Cat(s / 86400, "d");
}

std::string GpuText(const Json& spec_resources) {
  if (!spec_resources.contains("gpu") || spec_resources["gpu"].is_null()) return "-";
  const Json& g = spec_resources["gpu"];
  if (g.contains("count")) return Cat(g["count"].get<int>());
  if (g.contains("share")) return g["share"].get<std::string>();
  if (g.contains("mig")) return g["mig"].get<std::string>();
  return "-";
}

class Cli {
 public:
  Cli(std::ostream& out, std::ostream& err) : out_(out), err_(err) {}

  int Run(const std::vector<std::string>& args) {
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
      out_ << kUsage;
      return args.empty() ? 2 : 0;
    }
    bool create = args.size() > 1 && (args[1] == "create" || args[1] == "apply");
    const std::string& cmd = args[0];
    if (IsStorenetCommand(cmd)) {
      return RunStorenetCommand(cmd, std::vector<std::string>(args.begin() + 1, args.end()), out_,
                                err_);
    }
    if (cmd == "image" || cmd == "images") {
      return RunImageCommand(std::vector<std::string>(args.begin() + 1, args.end()), out_, err_);
    }
    bool exec = args.size() > 2 && (cmd == "workload" || cmd == "workloads" || cmd == "wl") &&
                args[1] == "exec";
    // Everything after `exec NAME` belongs to the command, flags included, unless `--` or a
    // flag of ours comes first: `berth workload exec NAME [--json] [--] CMD...`.
    if (auto bad = ParseFlags(args, 1, create, &flags_, exec ? 2 : 0)) return Usage(*bad);
    json_ = flags_.switches.count("--json") > 0;
    help_ = flags_.switches.count("--help") > 0 || flags_.switches.count("-h") > 0;
    if (cmd == "workload" || cmd == "workloads" || cmd == "wl") return Workload();
    if (cmd == "vm" && Arg(0) == "console" && !Arg(1).empty()) return Logs(Arg(1), true);
    if (cmd == "vm") return Usage("usage: berth vm console NAME [-f]");
    if (cmd == "host" || cmd == "hosts") return Host();
    if (cmd == "events") return Events();
    if (cmd == "tenant" || cmd == "tenants") return Tenant();
    if (cmd == "version") {
      if (json_) {
        out_ << Json{{"version", "0.1.0"}}.dump() << "\n";
      } else {
        out_ << "berth 0.1.0\n";
      }
      return 0;
    }
    return Usage(Cat("unknown command \"", cmd, "\""));
  }

 private:
  int Usage(std::string_view problem) {
    err_ << "berth: " << problem << "\nRun `berth --help` for the commands.\n";
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

  api::HttpClient* Client() {
    if (client_) return client_.get();
    std::string why;
    auto target = FindServer(flags_, &why);
    if (!target) {
      Fail(why);
      return nullptr;
    }
    client_ = std::make_unique<api::HttpClient>(
        target->url, api::HttpClient::Options{.bearer_token = target->token,
                                              .connect_timeout = kConnectTimeout});
    return client_.get();
  }

  // Sends a request; on failure prints the server's message and returns nullopt.
  std::optional<Json> Call(std::string_view method, const std::string& path,
                           std::string_view body = {},
                           std::string_view content_type = "application/json") {
    api::HttpClient* c = Client();
    if (!c) return std::nullopt;
    auto r = c->Request(method, path, body, content_type);
    if (!r.ok()) {
      Fail(UnreachableMessage(c->base_url(), r.status()));
      return std::nullopt;
    }
    if (r->status < 200 || r->status >= 300) {
      Fail(ErrorMessage(*r));
      return std::nullopt;
    }
    last_index_ = r->Header("X-Berth-Index").value_or("0");
    return Json::parse(r->body, nullptr, false);
  }

  std::string Arg(size_t i) const {
    return i < flags_.positional.size() ? flags_.positional[i] : std::string();
  }

  int Workload() {
    std::string sub = Arg(0);
    if (help_ || sub.empty()) {
      out_ << "Usage: berth workload create -f FILE | ls | get NAME | explain NAME | "
              "start|stop|pause|resume NAME | delete NAME | logs NAME [-f] [--stderr] | "
              "console NAME [-f] | exec NAME [--timeout 30s] -- CMD... | stats NAME\n"
              "A workload file holds one or more specs separated by ---, e.g.\n"
              "  name: hello\n  kind: process\n"
              "  command: [\"/bin/sh\", \"-c\", \"echo hello; sleep 3600\"]\n"
              "  resources: {cpu: 500m, memory: 64Mi}\n";
      return sub.empty() && !help_ ? 2 : 0;
    }
    if (sub == "create" || sub == "apply") return Create();
    if (sub == "ls" || sub == "list") return ListWorkloads();
    std::string name = Arg(1);
    if (name.empty()) return Usage(Cat("workload ", sub, " needs a workload NAME"));
    if (sub == "get") {
      auto j = Call("GET", Cat("/v1/workloads/", name));
      if (!j) return 1;
      if (json_) {
        out_ << j->dump(2) << "\n";
      } else {
        PrintWorkload(*j);
      }
      return 0;
    }
    if (sub == "explain") {
      auto j = Call("GET", Cat("/v1/workloads/", name, "/explain"));
      if (!j) return 1;
      if (json_) {
        out_ << j->dump() << "\n";
      } else {
        out_ << (*j)["explanation"].get<std::string>() << "\n";
      }
      return 0;
    }
    if (sub == "start" || sub == "stop" || sub == "pause" || sub == "resume") {
      auto j = Call("POST", Cat("/v1/workloads/", name, "/actions/", sub));
      if (!j) return 1;
      if (json_) {
        out_ << j->dump() << "\n";
      } else {
        out_ << "workload " << name << ": " << sub << " requested (state "
             << (*j)["status"]["state"].get<std::string>() << ")\n";
      }
      return 0;
    }
    if (sub == "delete" || sub == "rm") {
      auto j = Call("DELETE", Cat("/v1/workloads/", name));
      if (!j) return 1;
      if (json_) {
        out_ << j->dump() << "\n";
      } else {
        out_ << "workload " << name
             << ((*j).value("deleted", false) ? " deleted\n" : " deleting (stopping it first)\n");
      }
      return 0;
    }
    if (sub == "logs") return Logs(name, false);
    if (sub == "console") return Logs(name, true);
    if (sub == "exec") return Exec(name);
    if (sub == "stats") {
      auto j = Call("GET", Cat("/v1/workloads/", name, "/stats"));
      if (!j) return 1;
      if (json_) {
        out_ << j->dump() << "\n";
      } else {
        for (const auto& [k, v] : j->items()) {
          out_ << k << ": " << (v.is_string() ? v.get<std::string>() : v.dump()) << "\n";
        }
      }
      return 0;
    }
    return Usage(Cat("unknown workload command \"", sub, "\""));
  }

  int Create() {
    auto file = flags_.values.find("-f");
    if (file == flags_.values.end()) file = flags_.values.find("--file");
    if (file == flags_.values.end()) return Usage("workload create needs -f FILE (- for stdin)");
    std::string text;
    if (file->second == "-") {
      std::stringstream ss;
      ss << std::cin.rdbuf();
      text = ss.str();
    } else {
      bool ok = false;
      text = ReadFile(file->second, &ok);
      if (!ok) return Fail(Cat("cannot read ", file->second));
    }
    auto docs = api::ParseYamlDocuments(text);
    if (!docs.ok()) return Fail(Cat(file->second, ": ", docs.status().message()));
    if (docs->empty()) return Fail(Cat(file->second, ": holds no workload spec"));
    Json created = Json::array();
    for (const Json& doc : *docs) {
      auto j = Call("POST", "/v1/workloads", doc.dump());
      if (!j) return 1;
      created.push_back(*j);
      if (!json_) out_ << "workload " << (*j)["name"].get<std::string>() << " created\n";
    }
    if (json_) out_ << (created.size() == 1 ? created[0] : created).dump() << "\n";
    return 0;
  }

  int ListWorkloads() {
    auto j = Call("GET", "/v1/workloads");
    if (!j) return 1;
    if (json_) {
      out_ << (*j)["items"].dump() << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"NAME", "KIND", "STATE", "HOST", "CPU", "MEMORY", "GPU", "AGE", "REASON"}};
    for (const Json& w : (*j)["items"]) {
      const Json& r = w["spec"]["resources"];
      rows.push_back({w["name"], w["kind"], w["status"]["state"],
                      w["status"]["host"].get<std::string>().empty() ? "-" : w["status"]["host"],
                      r.value("cpu", "-"), r.value("memory", "-"), GpuText(r), Age(w["created_at"]),
                      w["status"].value("reason", "")});
    }
    PrintTable(out_, rows);
    return 0;
  }

  void PrintWorkload(const Json& w) {
    const Json& s = w["status"];
    out_ << "name:      " << w["name"].get<std::string>() << "\n"
         << "kind:      " << w["kind"].get<std::string>() << "\n"
         << "state:     " << s["state"].get<std::string>() << " (desired "
         << s["desired"].get<std::string>() << ")\n"
         << "reason:    " << s.value("reason", "") << "\n"
         << "host:      "
         << (s["host"].get<std::string>().empty() ? "-" : s["host"].get<std::string>()) << "\n";
    if (s.contains("explanation"))
      out_ << "pending:   " << s["explanation"].get<std::string>() << "\n";
    if (s.contains("exit_code") && !s["exit_code"].is_null()) {
      out_ << "exit code: " << s["exit_code"].get<int>()
           << (s.value("oom_killed", false) ? " (OOM-killed)" : "") << "\n";
    }
    if (!s["gpus"].empty()) out_ << "gpus:      " << s["gpus"].dump() << "\n";
    out_ << "resources: " << w["spec"]["resources"].dump() << "\n"
         << "created:   " << w["created_at"].dump() << "\n"
         << "revision:  " << w["revision"].dump() << "\n";
  }

  // Prints (with -f follows) a workload's log, or with `console` a VM's serial console.
  int Logs(const std::string& name, bool console) {
    api::HttpClient* c = Client();
    if (!c) return 1;
    std::string stream = console                             ? "console"
                         : flags_.switches.count("--stderr") ? "stderr"
                                                             : "stdout";
    bool follow = flags_.switches.count("-f") || flags_.switches.count("--follow");
    std::string path = console ? Cat("/v1/workloads/", name, "/console?stream=console")
                               : Cat("/v1/workloads/", name, "/logs?stream=", stream);
    if (!follow) {
      auto r = c->Get(path);
      if (!r.ok()) return Fail(UnreachableMessage(c->base_url(), r.status()));
      if (r->status != 200) return Fail(ErrorMessage(*r));
      if (json_) {
        out_ << Json{{"name", name}, {"stream", stream}, {"log", r->body}}.dump() << "\n";
      } else {
        out_ << r->body << std::flush;
      }
      return 0;
    }
    auto r = c->Stream(path + "&follow=true", [&](std::string_view chunk) {
      if (json_) {
        out_ << Json{{"name", name}, {"stream", stream}, {"chunk", std::string(chunk)}}.dump()
             << std::endl;
      } else {
        out_ << chunk << std::flush;
      }
      return true;
    });
    if (!r.ok()) return Fail(UnreachableMessage(c->base_url(), r.status()));
    if (r->status != 200) return Fail(ErrorMessage(*r));
    return 0;
  }

  // Runs a command inside the workload's task and exits with its exit code.
  int Exec(const std::string& name) {
    std::vector<std::string> argv(
        flags_.positional.begin() + std::min<size_t>(2, flags_.positional.size()),
        flags_.positional.end());
    if (argv.empty())
      return Usage("workload exec needs a command: berth workload exec NAME -- CMD...");
    Json body = {{"argv", argv}};
    if (auto t = flags_.values.find("--timeout"); t != flags_.values.end())
      body["timeout"] = t->second;
    api::HttpClient* c = Client();
    if (!c) return 1;
    auto r = c->Post(Cat("/v1/workloads/", name, "/exec"), body.dump());
    if (!r.ok()) return Fail(UnreachableMessage(c->base_url(), r.status()));
    if (r->status != 200) return Fail(ErrorMessage(*r));
    Json j = Json::parse(r->body, nullptr, false);
    if (!j.is_object()) return Fail("malformed exec reply from the server");
    if (json_) {
      out_ << j.dump() << "\n";
    } else {
      out_ << j.value("stdout", "") << std::flush;
      err_ << j.value("stderr", "") << std::flush;
    }
    return j.value("exit_code", 1);
  }

  int Host() {
    std::string sub = Arg(0);
    if (help_ || sub.empty()) {
      out_ << "Usage: berth host ls | berth host get NAME | berth host rm NAME [--json]\n"
              "  rm: removes a host that is down (no heartbeats for the server's --host-ttl) and\n"
              "      revokes its credential; a live host is refused. Its agent, if it comes\n"
              "      back, joins as a new host with the join token.\n";
      return sub.empty() && !help_ ? 2 : 0;
    }
    if (sub == "ls" || sub == "list") {
      auto j = Call("GET", "/v1/hosts");
      if (!j) return 1;
      if (json_) {
        out_ << (*j)["items"].dump() << "\n";
        return 0;
      }
      std::vector<std::vector<std::string>> rows = {
          {"NAME", "STATE", "CPU", "MEMORY", "GPUS", "DRIVERS", "LAST HEARTBEAT"}};
      for (const Json& h : (*j)["items"]) {
        const Json& inv = h["inventory"];
        std::string drivers;
        for (const auto& d : inv["drivers"]) {
          std::string name = d.get<std::string>();
          // "vm(tcg)": VMs here run without KVM; `berth host get` says why.
          if (name == "vm" && inv.contains("fingerprint") &&
              inv["fingerprint"].contains("vm_accel")) {
            name += "(" + inv["fingerprint"]["vm_accel"].get<std::string>() + ")";
          }
          drivers += (drivers.empty() ? "" : ",") + name;
        }
        std::string gpus = Cat(inv["gpus"].size());
        if (!inv["gpus"].empty()) gpus += " x " + inv["gpus"][0].value("model", "");
        rows.push_back({h["name"], h["state"], inv.value("cpu", "-"), inv.value("memory", "-"),
                        gpus, drivers, Age(h["last_heartbeat"]) + " ago"});
      }
      PrintTable(out_, rows);
      return 0;
    }
    if (sub == "get") {
      if (Arg(1).empty()) return Usage("host get needs a host NAME");
      auto j = Call("GET", Cat("/v1/hosts/", Arg(1)));
      if (!j) return 1;
      out_ << j->dump(json_ ? -1 : 2) << "\n";
      return 0;
    }
    if (sub == "rm" || sub == "delete") {
      if (Arg(1).empty()) return Usage("host rm needs a host NAME");
      auto j = Call("DELETE", Cat("/v1/hosts/", Arg(1)));
      if (!j) return 1;
      if (json_) {
        out_ << j->dump() << "\n";
      } else {
        out_ << "host " << Arg(1) << " removed; its credential is revoked\n";
      }
      return 0;
    }
    return Usage(Cat("unknown host command \"", sub, "\""));
  }

  int Tenant() {
    std::string sub = Arg(0);
    if (help_ || sub.empty()) {
      out_ << "Usage: berth tenant ls\n"
              "       berth tenant quota set NAME [--cpu 64] [--memory 512Gi] [--disk 2Ti] [--gpu "
              "8]\n"
              "                                   [--gpu-model A100-SXM4-80GB=4,H100=2]\n"
              "       berth tenant quota rm NAME\n"
              "A workload whose tenant would go over its quota stays pending with the reason "
              "quota.\n";
      return sub.empty() && !help_ ? 2 : 0;
    }
    if (sub == "ls" || sub == "list") {
      auto j = Call("GET", "/v1/tenants");
      if (!j) return 1;
      if (json_) {
        out_ << (*j)["items"].dump() << "\n";
        return 0;
      }
      auto pair = [](const Json& used, const Json& quota, const char* key) {
        std::string u = used.value(key, "0");
        std::string q =
            quota.is_object() && quota.contains(key) ? quota[key].get<std::string>() : "-";
        return u + " / " + q;
      };
      std::vector<std::vector<std::string>> rows = {{"TENANT", "CPU", "MEMORY", "DISK", "GPU"}};
      for (const Json& t : (*j)["items"]) {
        rows.push_back({t["name"], pair(t["used"], t["quota"], "cpu"),
                        pair(t["used"], t["quota"], "memory"), pair(t["used"], t["quota"], "disk"),
                        pair(t["used"], t["quota"], "gpu")});
      }
      PrintTable(out_, rows);
      return 0;
    }
    if (sub != "quota") return Usage(Cat("unknown tenant command \"", sub, "\""));
    std::string verb = Arg(1), name = Arg(2);
    if (name.empty()) return Usage("tenant quota set|rm needs a tenant NAME");
    if (verb == "rm" || verb == "delete") {
      auto j = Call("DELETE", Cat("/v1/tenants/", name, "/quota"));
      if (!j) return 1;
      out_ << (json_ ? j->dump() : Cat("tenant ", name, ": quota removed")) << "\n";
      return 0;
    }
    if (verb != "set") return Usage(Cat("unknown quota command \"", verb, "\""));
    Json quota = Json::object();
    for (const char* key : {"cpu", "memory", "disk", "gpu"}) {
      if (auto it = flags_.values.find(Cat("--", key)); it != flags_.values.end()) {
        quota[key] = it->second;
      }
    }
    if (auto it = flags_.values.find("--gpu-model"); it != flags_.values.end()) {
      Json models = Json::object();
      std::stringstream ss(it->second);
      std::string item;
      while (std::getline(ss, item, ',')) {
        auto eq = item.find('=');
        if (eq == std::string::npos) return Usage("--gpu-model takes MODEL=GPUS[,MODEL=GPUS]");
        models[item.substr(0, eq)] = item.substr(eq + 1);
      }
      quota["gpu_by_model"] = models;
    }
    if (quota.empty()) {
      return Usage(
          "tenant quota set needs at least one of --cpu --memory --disk --gpu --gpu-model");
    }
    auto j = Call("PUT", Cat("/v1/tenants/", name, "/quota"), quota.dump());
    if (!j) return 1;
    out_ << (json_ ? j->dump() : Cat("tenant ", name, ": quota ", (*j)["quota"].dump())) << "\n";
    return 0;
  }

  int Events() {
    if (help_) {
      out_ << "Usage: berth events [-f]   print the event log; -f follows new events\n";
      return 0;
    }
    bool follow = flags_.switches.count("-f") || flags_.switches.count("--follow");
    int64_t index = 0;
    while (true) {
      std::string path = Cat("/v1/events?limit=1000");
      if (index > 0) path = Cat("/v1/events?index=", index, "&wait=60s");
      auto j = Call("GET", path);
      if (!j) return 1;
      for (const Json& e : (*j)["items"]) {
        if (json_) {
          out_ << e.dump() << "\n";
        } else {
          out_ << e.value("time", "") << "  " << e.value("kind", "") << " " << e.value("object", "")
               << "  " << e.value("type", "") << ": " << e.value("message", "") << "\n";
        }
        index = std::max<int64_t>(index, e.value("revision", int64_t{0}));
      }
      out_ << std::flush;
      if (!follow) return 0;
      index = std::max<int64_t>(index, (*j).value("revision", int64_t{0}));
    }
  }

  std::ostream& out_;
  std::ostream& err_;
  Flags flags_;
  bool json_ = false;
  bool help_ = false;
  std::string last_index_;
  std::unique_ptr<api::HttpClient> client_;
};

}  // namespace

std::string Usage() { return kUsage; }

std::string DefaultDataDir() {
  if (const char* d = getenv("BERTH_DATA_DIR"); d && *d) return d;
  const char* home = getenv("HOME");
  return Cat(home && *home ? home : "/root", "/.berth");
}

std::string UnreachableMessage(std::string_view url, const absl::Status& why) {
  return Cat("cannot reach the server at ", url, " (", why.message(),
             "); is it running there? Name another with --server URL or BERTH_ADDR");
}

std::string ImagesDir(const std::string& agent_dir) { return agent_dir + "/images"; }

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Cli cli(out, err);
  return cli.Run(args);
}

}  // namespace berth::cli
