#include "cli/cli.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iomanip>
#include <map>
#include <optional>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "api/body_parser.h"
#include "api/client/client.h"
#include "cli/image_cmd.h"
#include "cli/session.h"
#include "cli/storenet_cmd.h"
#include "cli/table.h"
#include "core/json.h"
#include "core/log.h"
#include "core/milli.h"
#include "core/quantity.h"
#include "core/strings.h"
#include "core/workload.h"

namespace berth::cli {

using core::Cat;
using core::Json;

namespace {

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

// Every device of a host, GPUs first: {class, id, healthy, health, holders}, from the host's
// inventory and what the placed workloads hold ("allocated"). A GPU may have several holders
// (shares, MIG slices); a device of another class at most one.
Json HostDevices(const Json& host) {
  const Json& inv = host["inventory"];
  const Json alloc = host.contains("allocated") ? host["allocated"] : Json::object();
  Json out = Json::array();
  auto add = [&](std::string cls, std::string id, const Json& d, Json holders) {
    out.push_back({{"class", std::move(cls)},
                   {"id", std::move(id)},
                   {"healthy", d.value("healthy", true)},
                   {"health", d.value("health", "")},
                   {"holders", std::move(holders)}});
  };
  for (const Json& g : inv.value("gpus", Json::array())) {
    Json holders = Json::array();
    for (const Json& a : alloc.value("gpus", Json::array())) {
      if (a.value("index", -1) == g.value("index", -2)) holders = a.value("holders", holders);
    }
    add("nvidia.com/gpu", g.value("uuid", ""), g, std::move(holders));
  }
  for (const Json& d : inv.value("devices", Json::array())) {
    Json holders = Json::array();
    for (const Json& a : alloc.value("devices", Json::array())) {
      if (a.value("class", "") == d.value("class", "") && a.value("id", "") == d.value("id", "") &&
          !a.value("holder", "").empty()) {
        holders.push_back(a["holder"]);
      }
    }
    add(d.value("class", ""), d.value("id", ""), d, std::move(holders));
  }
  return out;
}

// The rows `berth host ls` and `berth top` print: allocated/capacity per resource, then what
// the host's agent last measured in use.
std::vector<std::vector<std::string>> HostRows(const Json& items) {
  std::vector<std::vector<std::string>> rows = {{"NAME", "STATE", "CPU", "MEMORY", "DISK", "GPUS",
                                                 "USED CPU/MEM", "DRIVERS", "LAST HEARTBEAT"}};
  for (const Json& h : items) {
    const Json& inv = h["inventory"];
    const Json alloc = h.contains("allocated") ? h["allocated"] : Json::object();
    auto of = [&](const char* key) { return Cat(alloc.value(key, "0"), "/", inv.value(key, "-")); };
    std::string drivers;
    for (const auto& d : inv["drivers"]) {
      std::string name = d.get<std::string>();
      // "vm(tcg)": VMs here run without KVM; `berth host get` says why.
      if (name == "vm" && inv.contains("fingerprint") && inv["fingerprint"].contains("vm_accel")) {
        name += "(" + inv["fingerprint"]["vm_accel"].get<std::string>() + ")";
      }
      drivers += (drivers.empty() ? "" : ",") + name;
    }
    std::string gpus =
        Cat(core::MilliText(alloc.value("gpu_milli", int64_t{0})), "/", inv["gpus"].size());
    if (!inv["gpus"].empty()) gpus += " x " + inv["gpus"][0].value("model", "");
    std::string used = "-";
    if (h.contains("used") && h["used"].is_object()) {
      used = Cat(h["used"].value("cpu", "-"), "/", h["used"].value("memory", "-"));
    }
    std::string state = h["state"];
    if (h.value("cordoned", false)) {
      const bool draining = h.contains("drain") && h["drain"].value("active", false);
      state += draining ? ",draining" : ",cordoned";
    }
    rows.push_back({h["name"], state, of("cpu"), of("memory"), of("disk"), gpus, used, drivers,
                    Age(h["last_heartbeat"]) + " ago"});
  }
  return rows;
}

// One run of a client command: its parsed invocation, the connection to the server, and the
// ways it prints. `words` name the command within its group ("get"; "quota", "set"): Arg(0)...
// are they, then the command's own arguments.
class Cli : public CommandSession {
 public:
  using CommandSession::CommandSession;

  int Workload() {
    std::string sub = Arg(0);
    if (sub == "create" || sub == "apply") return Create();
    if (sub == "ls" || sub == "list") return ListWorkloads();
    std::string name = Arg(1);
    if (name.empty()) return Usage(Cat("workload ", sub, " needs a workload NAME"));
    if (sub == "get") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.GetWorkload(name, {}, r).status(); });
      if (!j) return 1;
      if (json_) {
        out_ << j->dump(2) << "\n";
      } else {
        PrintWorkload(*j);
      }
      return 0;
    }
    if (sub == "explain") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.Explain(name, r).status(); });
      if (!j) return 1;
      if (json_) {
        out_ << j->dump() << "\n";
      } else {
        out_ << (*j)["explanation"].get<std::string>() << "\n";
      }
      return 0;
    }
    if (sub == "start" || sub == "stop" || sub == "pause" || sub == "resume") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.Act(name, sub, r).status(); });
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
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.DeleteWorkload(name, r).status(); });
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
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.Stats(name, r).status(); });
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
    return CreateEach(
        "workload",
        [](api::Client& c, const std::string& body, api::Raw* r) {
          return c.CreateWorkloadFromText(body, "application/json", r).status();
        },
        [this](const Json& j) { out_ << "workload " << j.value("name", "") << " created\n"; });
  }

  // The list's filters from the command line (those the command declares).
  api::ListRequest ListFilters() {
    api::ListRequest request;
    auto take = [&](std::string_view flag, std::string* field) {
      if (inv_.Given(flag)) *field = inv_.String(flag);
    };
    take("state", &request.state);
    take("host", &request.host);
    take("kind", &request.kind);
    take("tenant", &request.tenant);
    take("selector", &request.selector);
    return request;
  }

  // Every item of a list, fetched a page at a time (`page(client, request, raw)` fetches one),
  // so that no reply grows with the fleet; nullopt after printing why a page failed.
  std::optional<Json> AllPages(
      api::ListRequest request,
      const std::function<absl::Status(api::Client&, const api::ListRequest&, api::Raw*)>& page) {
    request.limit = static_cast<size_t>(inv_.Int("page-size"));
    Json items = Json::array();
    while (true) {
      auto j = Do([&](api::Client& c, api::Raw* r) { return page(c, request, r); });
      if (!j) return std::nullopt;
      for (Json& item : (*j)["items"]) items.push_back(std::move(item));
      std::string next = j->value("continue", "");
      if (next.empty()) return items;
      request.continue_token = std::move(next);
    }
  }

  int ListWorkloads() {
    auto items =
        AllPages(ListFilters(), [](api::Client& c, const api::ListRequest& q, api::Raw* r) {
          return c.ListWorkloads(q, {}, r).status();
        });
    if (!items) return 1;
    if (json_) {
      out_ << items->dump() << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"NAME", "KIND", "STATE", "HOST", "CPU", "MEMORY", "GPU", "AGE", "REASON"}};
    for (const Json& w : *items) {
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
    api::Client* c = Api();
    if (!c) return 1;
    std::string stream = console ? "console" : inv_.Bool("stderr") ? "stderr" : "stdout";
    if (!inv_.Bool("follow")) {
      absl::StatusOr<std::string> text = console ? c->Console(name) : c->Logs(name, stream);
      if (!text.ok()) return FailCall(inv_, *c, text.status());
      if (json_) {
        out_ << Json{{"name", name}, {"stream", stream}, {"log", *text}}.dump() << "\n";
      } else {
        out_ << *text << std::flush;
      }
      return 0;
    }
    auto sink = [&](std::string_view chunk) {
      if (json_) {
        out_ << Json{{"name", name}, {"stream", stream}, {"chunk", std::string(chunk)}}.dump()
             << std::endl;
      } else {
        out_ << chunk << std::flush;
      }
      return true;
    };
    absl::Status s =
        console ? c->StreamConsole(name, true, sink) : c->StreamLogs(name, stream, true, sink);
    if (!s.ok()) return FailCall(inv_, *c, s);
    return 0;
  }

  // Runs a command inside the workload's task and exits with its exit code.
  int Exec(const std::string& name) {
    std::vector<std::string> argv = inv_.Rest();
    if (argv.empty())
      return Usage("workload exec needs a command: berth workload exec NAME -- CMD...");
    api::wire::ExecRequest request{.argv = argv};
    if (inv_.Given("timeout")) request.timeout = inv_.Duration("timeout");
    auto reply = Do([&](api::Client& c, api::Raw* r) { return c.Exec(name, request, r).status(); });
    if (!reply) return 1;
    const Json& j = *reply;
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
    if (sub == "ls" || sub == "list") {
      auto items = AllPages(ListFilters(), [](api::Client& c, const api::ListRequest& q,
                                              api::Raw* r) { return c.ListHosts(q, r).status(); });
      if (!items) return 1;
      if (json_) {
        out_ << items->dump() << "\n";
        return 0;
      }
      PrintTable(out_, HostRows(*items));
      return 0;
    }
    if (sub == "get") {
      if (Arg(1).empty()) return Usage("host get needs a host NAME");
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.GetHost(Arg(1), r).status(); });
      if (!j) return 1;
      (*j)["devices"] = HostDevices(*j);
      out_ << j->dump(json_ ? -1 : 2) << "\n";
      if (!json_ && !(*j)["devices"].empty()) {
        std::vector<std::vector<std::string>> rows = {{"CLASS", "ID", "HEALTH", "HOLDER"}};
        for (const Json& d : (*j)["devices"]) {
          std::string holders;
          for (const Json& h : d["holders"])
            holders += (holders.empty() ? "" : ",") + h.get<std::string>();
          rows.push_back({d["class"], d["id"],
                          d["healthy"].get<bool>() ? "healthy"
                                                   : "unhealthy: " + d["health"].get<std::string>(),
                          holders.empty() ? "-" : holders});
        }
        out_ << "\n";
        PrintTable(out_, rows);
      }
      return 0;
    }
    if (sub == "rm" || sub == "delete") {
      if (Arg(1).empty()) return Usage("host rm needs a host NAME");
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.DeleteHost(Arg(1), r); });
      if (!j) return 1;
      if (json_) {
        out_ << j->dump() << "\n";
      } else {
        out_ << "host " << Arg(1) << " removed; its credential is revoked\n";
      }
      return 0;
    }
    if (sub == "cordon" || sub == "uncordon" || sub == "drain") {
      if (Arg(1).empty()) return Usage(Cat("host ", sub, " needs a host NAME"));
      const std::string name = Arg(1);
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.HostAction(name, sub, r).status(); });
      if (!j) return 1;
      if (sub == "drain") return FollowDrain(name, *j);
      if (json_) {
        out_ << j->dump() << "\n";
      } else {
        out_ << "host " << name
             << (sub == "cordon" ? " cordoned: nothing new is placed there\n"
                                 : " uncordoned: open to new placements\n");
      }
      return 0;
    }
    return Usage(Cat("unknown host command \"", sub, "\""));
  }

  // Follows a drain until it ends, saying each workload it moves (with --json, one object per
  // step, the last with "done": true); the drain goes on in the server if this is interrupted.
  int FollowDrain(const std::string& name, Json host) {
    std::string said;
    while (true) {
      const Json drain = host.value("drain", Json::object());
      const bool active = drain.value("active", false);
      const std::string current = drain.value("current", "");
      const int moved = drain.value("moved", 0);
      std::string line = active ? (current.empty() ? Cat("draining ", name, ": ", moved, " moved")
                                                   : Cat("draining ", name, ": moving ", current,
                                                         " (", moved, " moved)"))
                                : Cat("host ", name, " drained: ", moved,
                                      " moved; it stays cordoned (berth host uncordon ", name, ")");
      if (line != said) {
        said = line;
        if (json_) {
          out_ << Json{{"host", name},
                       {"current", current},
                       {"moved", moved},
                       {"done", !active},
                       {"workloads", host.value("workloads", Json::array())}}
                      .dump()
               << std::endl;
        } else {
          out_ << line << std::endl;
        }
      }
      if (!active) return 0;
      absl::SleepFor(absl::Milliseconds(500));
      auto next = Do([&](api::Client& c, api::Raw* r) { return c.GetHost(name, r).status(); });
      if (!next) return 1;
      host = std::move(*next);
    }
  }

  int Tenant() {
    std::string sub = Arg(0);
    if (sub == "ls" || sub == "list") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.ListTenants(r).status(); });
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
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.DeleteQuota(name, r); });
      if (!j) return 1;
      out_ << (json_ ? j->dump() : Cat("tenant ", name, ": quota removed")) << "\n";
      return 0;
    }
    if (verb != "set") return Usage(Cat("unknown quota command \"", verb, "\""));
    Json quota = Json::object();
    for (const char* key : {"cpu", "memory", "disk", "gpu"}) {
      if (inv_.Given(key)) quota[key] = inv_.String(key);
    }
    if (inv_.Given("gpu-model")) {
      Json models = Json::object();
      std::stringstream ss(inv_.String("gpu-model"));
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
    auto j = Do([&](api::Client& c, api::Raw* r) { return c.SetQuota(name, quota, r).status(); });
    if (!j) return 1;
    out_ << (json_ ? j->dump() : Cat("tenant ", name, ": quota ", (*j)["quota"].dump())) << "\n";
    return 0;
  }

  // The cluster's totals (GET /v1/summary), the first page of hosts and the first page of
  // workloads, redrawn when a workload on that page changes (a blocking query) and at least every
  // --interval, until interrupted; --once (and --json) print one frame. No request grows with the
  // fleet: the counts come from the summary and each list is one page.
  int Top() {
    constexpr size_t kHostRows = 20;
    constexpr size_t kWorkloadRows = 40;
    const bool once = inv_.Bool("once") || json_;
    const absl::Duration interval = inv_.Duration("interval");
    int64_t index = 0;
    while (true) {
      auto summary = Do([&](api::Client& c, api::Raw* r) { return c.Summary(r).status(); });
      if (!summary) return 1;
      auto hosts = Do([&](api::Client& c, api::Raw* r) {
        return c.ListHosts(api::ListRequest{.limit = kHostRows}, r).status();
      });
      if (!hosts) return 1;
      int64_t next = index;
      auto workloads = Do([&](api::Client& c, api::Raw* r) {
        absl::Status s = c.ListWorkloads(api::ListRequest{.limit = kWorkloadRows},
                                         api::Watch{.index = index, .wait = interval}, r)
                             .status();
        if (r->index >= 0) next = r->index;
        return s;
      });
      if (!workloads) return 1;
      const Json& host_items = (*hosts)["items"];
      const Json& items = (*workloads)["items"];
      if (json_) {
        out_ << Json{{"summary", *summary}, {"hosts", host_items}, {"workloads", items}}.dump()
             << "\n";
        return 0;
      }
      const Json& counts = (*summary)["workloads"];
      const int64_t host_total = (*summary)["hosts"].value("total", int64_t{0});
      const int64_t workload_total = counts.value("total", int64_t{0});
      std::string states;
      if (counts.contains("by_state") && counts["by_state"].is_object()) {
        for (const auto& [state, n] : counts["by_state"].items()) {
          if (n.is_number_integer() && n.get<int64_t>() > 0) {
            states += Cat(states.empty() ? "" : ", ", n.get<int64_t>(), " ", state);
          }
        }
      }
      if (!once) out_ << "\033[H\033[2J";  // home and clear: a full-screen redraw
      out_ << "berth top: " << host_total << " hosts, " << workload_total << " workloads"
           << (states.empty() ? "" : " (" + states + ")") << "\n\n";
      PrintTable(out_, HostRows(host_items));
      if (host_total > static_cast<int64_t>(host_items.size())) {
        out_ << "... and " << host_total - static_cast<int64_t>(host_items.size())
             << " more (berth host ls)\n";
      }
      out_ << "\n";
      std::vector<std::vector<std::string>> rows = {
          {"NAME", "STATE", "HOST", "CPU", "MEMORY", "GPU", "AGE"}};
      for (const Json& w : items) {
        const Json& r = w["spec"]["resources"];
        std::string host = w["status"].value("host", "");
        rows.push_back({w["name"], w["status"]["state"], host.empty() ? "-" : host,
                        r.value("cpu", "-"), r.value("memory", "-"), GpuText(r),
                        Age(w["created_at"])});
      }
      PrintTable(out_, rows);
      if (workload_total > static_cast<int64_t>(items.size())) {
        out_ << "... and " << workload_total - static_cast<int64_t>(items.size())
             << " more (berth workload ls)\n";
      }
      out_ << std::flush;
      if (once) return 0;
      index = next;
    }
  }

  int Events() {
    bool follow = inv_.Bool("follow");
    int64_t index = 0;
    while (true) {
      api::EventQuery query{.index = index, .limit = 1000};
      if (index > 0) query.wait = absl::Seconds(60);
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.ListEvents(query, r).status(); });
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

  int Status() {
    auto j = Do([](api::Client& c, api::Raw* r) { return c.ClusterStatus(r).status(); });
    if (!j) return 1;
    if (json_) {
      out_ << j->dump() << "\n";
      return 0;
    }
    const Json& leader = (*j)["leader"];
    const Json& store = (*j)["store"];
    std::string endpoints;
    for (const Json& e : store.value("endpoints", Json::array())) {
      endpoints += (endpoints.empty() ? "" : ",") + e.get<std::string>();
    }
    out_ << "store:   " << store.value("kind", "") << " " << endpoints << "\n";
    if (leader.is_object()) {
      out_ << "leader:  " << leader.value("id", "") << " " << leader.value("address", "")
           << " (term " << leader.value("term", int64_t{0}) << ", since "
           << leader.value("since", "") << ")\n";
    } else {
      out_ << "leader:  none (an election is under way)\n";
    }
    std::vector<std::vector<std::string>> rows = {{"SERVER", "ADDRESS", "ROLE", "STARTED"}};
    for (const Json& m : (*j)["members"]) {
      const bool leads = leader.is_object() && leader.value("id", "") == m.value("id", "");
      rows.push_back({m.value("id", ""), m.value("address", ""), leads ? "leader" : "follower",
                      m.value("started_at", "")});
    }
    PrintTable(out_, rows);
    return 0;
  }
};

using core::ArgDef;
using core::Command;
using core::FlagDef;
using core::FlagType;
using core::Invocation;

// A command of a group whose body is the Cli method `method`, given `words` as Arg(0)...
core::RunFn CliRun(std::vector<std::string> words, int (Cli::*method)()) {
  return [words, method](Invocation& inv) {
    Cli cli(inv, words);
    return (cli.*method)();
  };
}

}  // namespace

namespace {
const ArgDef kWorkloadName = {.name = "NAME", .help = "the workload's name"};
const FlagDef kFollow = {.name = "follow",
                         .type = FlagType::kBool,
                         .help = "keep printing as more arrives",
                         .short_name = 'f'};
const FlagDef kSelector = {.name = "selector",
                           .help =
                               "only objects whose labels match, e.g. app=web,tier!=db "
                               "(also: key, key in (a,b), key notin (a,b))",
                           .value_name = "SELECTOR",
                           .short_name = 'l'};
const FlagDef kPageSize = {.name = "page-size",
                           .type = FlagType::kInt,
                           .help = "items fetched per request",
                           .default_value = "500",
                           .min = 1,
                           .max = 5000};
}  // namespace

Command WorkloadCommand() {
  Command g{.name = "workload",
            .aliases = {"workloads", "wl"},
            .section = "Workloads",
            .summary = "create, inspect and control workloads",
            .description =
                "A workload file holds one or more specs separated by ---, e.g.\n"
                "  name: hello\n  kind: process\n"
                "  command: [\"/bin/sh\", \"-c\", \"echo hello; sleep 3600\"]\n"
                "  resources: {cpu: 500m, memory: 64Mi}\n"};
  g.flags = ServerFlags();
  auto named = [](std::string name, std::string summary, std::vector<std::string> aliases = {}) {
    return Command{.name = name,
                   .aliases = std::move(aliases),
                   .summary = std::move(summary),
                   .args = {kWorkloadName},
                   .run = CliRun({name}, &Cli::Workload)};
  };
  g.subcommands = {
      Command{.name = "create",
              .aliases = {"apply"},
              .summary = "create the workloads in a YAML or JSON file (--- separates several)",
              .synopsis = "-f FILE",
              .flags = {SpecFileFlag()},
              .run = CliRun({"create"}, &Cli::Workload)},
      Command{
          .name = "ls",
          .aliases = {"list"},
          .summary = "list workloads (filtered by the server, fetched a page at a time)",
          .description =
              "Filters combine: --state running --host gpu-3 --selector app=web lists the\n"
              "running web workloads on gpu-3. The server applies them; the list is fetched\n"
              "--page-size workloads at a time until done.",
          .flags =
              {{.name = "state",
                .type = FlagType::kEnum,
                .help = "only workloads in this state",
                .choices = {"pending", "scheduled", "starting", "running", "paused", "stopping",
                            "stopped", "failed"}},
               {.name = "host", .help = "only workloads placed on this host", .value_name = "HOST"},
               {.name = "kind",
                .type = FlagType::kEnum,
                .help = "only workloads of this kind",
                .choices = {"process", "container", "vm"}},
               {.name = "tenant", .help = "only workloads of this tenant", .value_name = "TENANT"},
               kSelector,
               kPageSize},
          .run = CliRun({"ls"}, &Cli::Workload)},
      named("get", "show one workload, with its status"),
      Command{.name = "explain",
              .summary = "why a workload is pending, with figures and what would make it fit",
              .description =
                  "Prints every check the workload fails, with what it asks and what the best\n"
                  "host offers (cpu: asks 64, best host has 2 free of 2 (host-a)), the tenant's\n"
                  "quota as quota, and what would make it fit. --json adds each check's figures.",
              .args = {kWorkloadName},
              .run = CliRun({"explain"}, &Cli::Workload)},
      named("start", "start a stopped workload"),
      named("stop", "stop a workload"),
      named("pause", "pause a running workload"),
      named("resume", "resume a paused workload"),
      named("delete", "stop and remove a workload", {"rm"}),
      Command{.name = "logs",
              .summary = "print (and follow) its output",
              .flags = {kFollow,
                        {.name = "stderr",
                         .type = FlagType::kBool,
                         .help = "the standard error stream instead of standard output"}},
              .args = {kWorkloadName},
              .run = CliRun({"logs"}, &Cli::Workload)},
      Command{.name = "console",
              .summary = "print (and follow) a VM's serial console (also: vm console NAME)",
              .flags = {kFollow},
              .args = {kWorkloadName},
              .run = CliRun({"console"}, &Cli::Workload)},
      Command{.name = "exec",
              .summary = "run a command inside a running container; exits with its exit code",
              .synopsis = "NAME [--timeout 30s] [--] CMD...",
              .description = "Everything after NAME belongs to the command, flags included, "
                             "unless `--` or a flag of\nberth comes first.",
              .flags = {{.name = "timeout",
                         .type = FlagType::kDuration,
                         .help = "give up on the command after this long"}},
              .args = {kWorkloadName,
                       {.name = "CMD", .help = "the command and its arguments", .rest = true}},
              .verbatim_rest = true,
              .run = CliRun({"exec"}, &Cli::Workload)},
      named("stats", "live counters of its task (CPU, memory; guest CPU for VMs)"),
  };
  return g;
}

Command VmCommand() {
  Command g{.name = "vm", .section = "Workloads", .summary = "VM workloads' serial consoles"};
  g.flags = ServerFlags();
  g.subcommands = {Command{.name = "console",
                           .summary = "print (and follow) a VM's serial console",
                           .flags = {kFollow},
                           .args = {kWorkloadName},
                           .run = [](Invocation& inv) {
                             Cli cli(inv, {});
                             return cli.Logs(inv.Arg("NAME"), true);
                           }}};
  return g;
}

Command HostCommand() {
  Command g{.name = "host",
            .aliases = {"hosts"},
            .section = "Cluster",
            .summary = "hosts, their capacity and state",
            .description =
                "rm removes a host that is down (no heartbeats for the server's --host-ttl) and\n"
                "revokes its credential; a live host is refused. Its agent, if it comes back,\n"
                "joins as a new host with the join token. cordon keeps new placements off a\n"
                "host, drain also moves its restartable workloads elsewhere (docs/cluster.md)."};
  g.flags = ServerFlags();
  const ArgDef name = {.name = "NAME", .help = "the host's name"};
  g.subcommands = {
      Command{.name = "ls",
              .aliases = {"list"},
              .summary = "list hosts: allocated/capacity per resource, and what is in use",
              .description =
                  "CPU, MEMORY, DISK and GPUS read allocated/capacity: what the placed workloads\n"
                  "hold against what the host offers. USED CPU/MEM is what the host's agent last\n"
                  "measured (- until it reports). --json prints each host with its \"allocated\"\n"
                  "and \"used\" objects. The list is fetched --page-size hosts at a time.",
              .flags = {{.name = "state",
                         .type = FlagType::kEnum,
                         .help = "only hosts in this state",
                         .choices = {"ready", "down"}},
                        kSelector,
                        kPageSize},
              .run = CliRun({"ls"}, &Cli::Host)},
      Command{.name = "get",
              .summary = "show one host's inventory and state, and every device with its holder",
              .description =
                  "Prints the host as JSON, with \"devices\": every GPU (class nvidia.com/gpu,\n"
                  "id its UUID) and every device of another class, each with its health and\n"
                  "the workloads holding it; without --json a table of the devices follows.",
              .args = {name},
              .run = CliRun({"get"}, &Cli::Host)},
      Command{.name = "rm",
              .aliases = {"delete"},
              .summary = "remove a host that is down and revoke its credential",
              .args = {name},
              .run = CliRun({"rm"}, &Cli::Host)},
      Command{.name = "cordon",
              .summary = "place nothing new on a host (what runs there stays)",
              .args = {name},
              .run = CliRun({"cordon"}, &Cli::Host)},
      Command{.name = "uncordon",
              .summary = "open a cordoned host to new placements again (ends a drain)",
              .args = {name},
              .run = CliRun({"uncordon"}, &Cli::Host)},
      Command{.name = "drain",
              .summary = "cordon a host and move its restartable workloads elsewhere",
              .description =
                  "Cordons the host, then moves its workloads whose restart policy is always or\n"
                  "on-failure to other hosts one at a time: each is stopped here and started\n"
                  "elsewhere, and the next waits until it runs there. Prints each step until the\n"
                  "drain ends (--json: one object per step, the last with \"done\": true).\n"
                  "Workloads with restart policy never stay. The host stays cordoned.",
              .args = {name},
              .run = CliRun({"drain"}, &Cli::Host)},
  };
  return g;
}

Command TenantCommand() {
  Command g{.name = "tenant",
            .aliases = {"tenants"},
            .section = "Cluster",
            .summary = "tenants' use against their quotas",
            .description =
                "A workload whose tenant would go over its quota stays pending with "
                "the reason quota."};
  g.flags = ServerFlags();
  const ArgDef name = {.name = "NAME", .help = "the tenant's name"};
  g.subcommands = {
      Command{.name = "ls",
              .aliases = {"list"},
              .summary = "tenants' use and quotas",
              .run = CliRun({"ls"}, &Cli::Tenant)},
      Command{
          .name = "quota",
          .summary = "set or remove a tenant's quota",
          .subcommands =
              {Command{
                   .name = "set",
                   .summary = "set a tenant's quota (at least one flag)",
                   .flags =
                       {{.name = "cpu",
                         .help = "CPUs, e.g. 64 or 500m",
                         .value_name = "CPU",
                         .check = [](std::string_view v) { return core::ParseCpu(v).status(); }},
                        {.name = "memory", .type = FlagType::kSize, .help = "memory, e.g. 512Gi"},
                        {.name = "disk", .type = FlagType::kSize, .help = "disk space, e.g. 2Ti"},
                        {.name = "gpu", .help = "GPUs, e.g. 8", .value_name = "N"},
                        {.name = "gpu-model",
                         .help = "GPUs per model, e.g. A100-SXM4-80GB=4,H100=2",
                         .value_name = "MODEL=N,..."}},
                   .args = {name},
                   .run = CliRun({"quota", "set"}, &Cli::Tenant)},
               Command{.name = "rm",
                       .aliases = {"delete"},
                       .summary = "remove a tenant's quota",
                       .args = {name},
                       .run = CliRun({"quota", "rm"}, &Cli::Tenant)}}},
  };
  return g;
}

Command EventsCommand() {
  Command c{.name = "events",
            .section = "Cluster",
            .summary = "the event log (follow with -f)",
            .flags = ServerFlags(),
            .run = CliRun({}, &Cli::Events)};
  c.flags.push_back(kFollow);
  return c;
}

Command StatusCommand() {
  return Command{.name = "status",
                 .section = "Cluster",
                 .summary = "the servers, which one leads, and their store",
                 .description =
                     "Asks a server (any of them) which server leads, which servers run (each "
                     "keeps a key on its\nlease in the store), and which store they share. "
                     "With --json: the reply of GET /v1/status.",
                 .flags = ServerFlags(),
                 .run = CliRun({}, &Cli::Status)};
}

Command TopCommand() {
  Command c{.name = "top",
            .section = "Cluster",
            .summary = "hosts and workloads, live",
            .description =
                "Redraws the cluster's counts, the first 20 hosts (allocated/capacity per\n"
                "resource, and what is in use) and the first 40 workloads whenever one of those\n"
                "workloads changes, and at least every --interval, until interrupted; the rest\n"
                "are counted (berth host ls and berth workload ls list them all). --once prints\n"
                "one frame; --json prints {\"summary\", \"hosts\", \"workloads\"} once, the\n"
                "summary as GET /v1/summary answers it.",
            .flags = ServerFlags(),
            .run = CliRun({}, &Cli::Top)};
  c.flags.push_back({.name = "once", .type = FlagType::kBool, .help = "print one frame and exit"});
  c.flags.push_back({.name = "interval",
                     .type = FlagType::kDuration,
                     .help = "redraw at least this often",
                     .default_value = "5s",
                     .check = [](std::string_view v) {
                       absl::Duration d;
                       if (!absl::ParseDuration(std::string(v), &d) || d < absl::Seconds(1) ||
                           d > absl::Seconds(50)) {
                         return absl::InvalidArgumentError(
                             Cat("--interval must be a duration from 1s to 50s, got \"", v, "\""));
                       }
                       return absl::OkStatus();
                     }});
  return c;
}

Command VersionCommand() {
  return Command{.name = "version",
                 .section = "Cluster",
                 .summary = "this binary's version",
                 .run = [](Invocation& inv) {
                   if (inv.json()) {
                     inv.out() << Json{{"version", "0.1.0"}}.dump() << "\n";
                   } else {
                     inv.out() << "berth 0.1.0\n";
                   }
                   return core::kExitOk;
                 }};
}

std::vector<FlagDef> ServerFlags() {
  return {
      {.name = "server",
       .help = "the server's URL (default: BERTH_ADDR, else the local dev server's); several\n"
               "servers' URLs comma-separated: a request goes to the next when one cannot be\n"
               "reached",
       .value_name = "URL"},
      {.name = "addr", .help = "the same as --server", .value_name = "URL"},
      {.name = "token",
       .help = "the bearer token (default: BERTH_TOKEN, else the dev server's admin.token)",
       .value_name = "TOKEN"},
  };
}

absl::StatusOr<ServerTarget> FindServer(const Invocation& inv) {
  ServerTarget t;
  t.url = inv.String("server");
  if (t.url.empty()) t.url = inv.String("addr");
  if (t.url.empty() && getenv("BERTH_ADDR")) t.url = getenv("BERTH_ADDR");
  t.token = inv.String("token");
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
    return absl::FailedPreconditionError(
        Cat("no server to talk to: pass --server URL or set BERTH_ADDR, or start one with "
            "`berth serve --dev` (looked in ",
            dir, "/server.json)"));
  }
  // Several servers, comma-separated: each gets its scheme.
  std::string urls;
  for (absl::string_view part : absl::StrSplit(t.url, ',', absl::SkipWhitespace())) {
    std::string url(absl::StripAsciiWhitespace(part));
    if (url.rfind("http://", 0) != 0) url = "http://" + url;
    urls += (urls.empty() ? "" : ",") + url;
  }
  t.url = urls;
  return t;
}

Command RootCommand(std::vector<Command> commands) {
  Command root{
      .name = "berth",
      .summary = "Runs AI workloads as VMs, containers and processes on a pool of GPU hosts.",
      .description =
          "Client commands find the server and token through --server/--token,\n"
          "BERTH_ADDR/BERTH_TOKEN, or the local `berth serve --dev` data directory\n"
          "(BERTH_DATA_DIR, default ~/.berth).",
      .flags = core::GlobalFlags(),
      .subcommands = std::move(commands),
      // Logging is set up once, from the global flags, before any command runs.
      .before_run = [](Invocation& inv) {
        auto level = core::ParseLogLevel(inv.String("log-level"));
        if (!level.ok()) return inv.UsageError(std::string(level.status().message()));
        absl::Status s = core::InitLogging(*level, inv.String("log-file"));
        if (!s.ok()) return inv.Fail(std::string(s.message()));
        return core::kExitOk;
      }};
  return root;
}

std::string DefaultDataDir() {
  if (const char* d = getenv("BERTH_DATA_DIR"); d && *d) return d;
  const char* home = getenv("HOME");
  return Cat(home && *home ? home : "/root", "/.berth");
}

std::string UnreachableMessage(std::string_view url, const absl::Status& why) {
  return Cat("cannot reach the server at ", url, " (", why.message(),
             "); is it running there? Name another with --server URL or BERTH_ADDR");
}

std::unique_ptr<api::Client> MakeClient(Invocation& inv, absl::Duration timeout) {
  auto target = FindServer(inv);
  if (!target.ok()) {
    inv.Fail(std::string(target.status().message()));
    return nullptr;
  }
  return std::make_unique<api::Client>(
      target->url,
      api::ClientOptions{
          .token = target->token, .timeout = timeout, .connect_timeout = kConnectTimeout});
}

int FailCall(Invocation& inv, api::Client& client, const absl::Status& status) {
  // A server that answered names the problem itself. A request that got no answer fails in the
  // HTTP client (Unavailable or DeadlineExceeded, "http client: ..."); a server's own 503 is
  // Unavailable too but carries the server's message.
  if ((absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status)) &&
      absl::StartsWith(status.message(), "http client: ")) {
    return inv.Fail(UnreachableMessage(client.base_url(), status));
  }
  return inv.Fail(std::string(status.message()));
}

std::string ImagesDir(const std::string& agent_dir) { return agent_dir + "/images"; }

}  // namespace berth::cli
