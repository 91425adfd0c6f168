#include "cli/service_cmd.h"

#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "api/body_parser.h"
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

// The replicas a service keeps now: its autoscaler's decision, or its spec's.
int Wanted(const Json& s) {
  const Json& st = s["status"];
  if (s["spec"].contains("autoscale") && st.contains("autoscale") && st["autoscale"].is_object()) {
    return st["autoscale"].value("desired", 0);
  }
  return s["spec"].value("replicas", 0);
}

class Session : public CommandSession {
 public:
  using CommandSession::CommandSession;

  int Service() {
    const std::string sub = Arg(0);
    if (sub == "create") return Create();
    if (sub == "update") return Update();
    if (sub == "ls") return List();
    if (sub == "rollout") return Rollout(Arg(1), Arg(2));
    const std::string name = Arg(1);
    if (sub == "get") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.GetService(name, r).status(); });
      if (!j) return 1;
      if (json_) {
        out_ << j->dump(2) << "\n";
      } else {
        PrintService(*j);
      }
      return 0;
    }
    if (sub == "scale") {
      int replicas = 0;
      if (!absl::SimpleAtoi(Arg(2), &replicas)) {
        return Usage(Cat("REPLICAS must be a whole number like 3, got \"", Arg(2), "\""));
      }
      auto j = Do(
          [&](api::Client& c, api::Raw* r) { return c.ScaleService(name, replicas, r).status(); });
      if (!j) return 1;
      if (json_) {
        out_ << j->dump() << "\n";
      } else {
        out_ << "service " << name << " scaled to " << replicas << " replicas\n";
      }
      return 0;
    }
    if (sub == "delete") {
      auto j = Do([&](api::Client& c, api::Raw* r) { return c.DeleteService(name, r).status(); });
      if (!j) return 1;
      if (json_) {
        out_ << j->dump() << "\n";
      } else {
        out_ << "service " << name
             << (j->value("deleted", false) ? " deleted\n"
                                            : " deleting (its replicas are stopped first)\n");
      }
      return 0;
    }
    return Usage(Cat("unknown service command \"", sub, "\""));
  }

 private:
  int Update() {
    return CreateEach(
        "service",
        [](api::Client& c, const std::string& body, api::Raw* r) {
          const Json doc = Json::parse(body, nullptr, false);
          const std::string name =
              doc.is_object() && doc.contains("name") && doc["name"].is_string()
                  ? doc["name"].get<std::string>()
                  : std::string();
          if (name.empty()) {
            return absl::InvalidArgumentError("service: name is required (the service to update)");
          }
          return c.UpdateServiceFromText(name, body, "application/json", r).status();
        },
        [this](const Json& j) {
          const Json& rollout = j["status"]["rollout"];
          out_ << "service " << j.value("name", "") << " updated";
          if (rollout.value("state", "") == "progressing") {
            out_ << "; rolling out revision " << rollout.value("revision", 0)
                 << " (`berth service rollout status " << j.value("name", "") << "`)";
          }
          out_ << "\n";
        });
  }

  int Rollout(const std::string& what, const std::string& name) {
    if (what == "undo") {
      auto j =
          Do([&](api::Client& c, api::Raw* r) { return c.UndoServiceRollout(name, r).status(); });
      if (!j) return 1;
      if (json_) {
        out_ << j->dump() << "\n";
      } else {
        out_ << "service " << name << ": rolling back to revision "
             << (*j)["status"]["rollout"].value("revision", 0) << "\n";
      }
      return 0;
    }
    auto j = Do([&](api::Client& c, api::Raw* r) { return c.GetService(name, r).status(); });
    if (!j) return 1;
    const Json& rollout = (*j)["status"]["rollout"];
    if (json_) {
      out_ << rollout.dump() << "\n";
      return 0;
    }
    out_ << "revision:  " << rollout.value("revision", 0) << " (" << rollout.value("state", "")
         << ")\n"
         << "updated:   " << rollout.value("updated_ready", 0) << " ready of "
         << rollout.value("updated", 0) << " replicas of this revision; "
         << (*j)["spec"].value("replicas", 0) << " wanted\n";
    if (rollout.value("previous_revision", 0) > 0) {
      out_ << "previous:  revision " << rollout.value("previous_revision", 0)
           << " (`berth service rollout undo " << name << "` goes back to it)\n";
    }
    out_ << "status:    " << rollout.value("message", "") << "\n";
    return 0;
  }

  int Create() {
    return CreateEach(
        "service",
        [](api::Client& c, const std::string& body, api::Raw* r) {
          return c.CreateServiceFromText(body, "application/json", r).status();
        },
        [this](const Json& j) {
          out_ << "service " << j.value("name", "") << " created; `berth service get "
               << j.value("name", "") << "` shows its replicas\n";
        });
  }

  int List() {
    auto j = Do([&](api::Client& c, api::Raw* r) { return c.ListServices(r).status(); });
    if (!j) return 1;
    if (json_) {
      out_ << (*j)["items"].dump() << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"NAME", "KIND", "READY", "PORT", "ENDPOINT", "STATUS"}};
    for (const Json& s : (*j)["items"]) {
      const Json& spec = s["spec"];
      const Json& st = s["status"];
      std::string endpoint = "-";
      if (spec.contains("endpoint") && st.contains("endpoint")) {
        endpoint = st["endpoint"].value("address", "");
        if (endpoint.empty()) endpoint = Cat(":", spec["endpoint"].value("host_port", 0));
      }
      rows.push_back({s.value("name", ""), spec["template"].value("kind", ""),
                      Cat(st.value("ready", 0), "/", Wanted(s)),
                      spec.contains("port") ? Cat(spec["port"].get<int>()) : "-", endpoint,
                      st.value("message", "")});
    }
    PrintTable(out_, rows);
    return 0;
  }

  void PrintAutoscale(const Json& a, const Json& st) {
    const std::string metric = a.value("metric", "concurrency");
    std::string unit = " open connections";
    if (metric == "rps") unit = " requests/s";
    if (metric == "cpu") unit = " of its requested CPU";
    if (metric == "gpu") unit = " utilization of its GPUs";
    out_ << "autoscale: " << metric << ", target " << absl::StrFormat("%g", a.value("target", 0.0))
         << unit << " per replica, " << a.value("min", 0) << " to " << a.value("max", 0)
         << " replicas (stable window " << a.value("stable_window", "") << ", panic window "
         << a.value("panic_window", "") << ", scale-down delay " << a.value("scale_down_delay", "");
    if (a.value("min", 1) == 0)
      out_ << ", to zero after " << a.value("idle_to_zero", "") << " idle";
    out_ << ")\n";
    if (!st.contains("autoscale") || !st["autoscale"].is_object()) {
      out_ << "decision:  none yet\n";
      return;
    }
    const Json& d = st["autoscale"];
    auto value = [](const Json& v) {
      return v.is_number() ? absl::StrFormat("%.2f", v.get<double>()) : std::string("-");
    };
    out_ << "measured:  " << metric << " " << value(d["stable_value"])
         << " over the stable window, " << value(d["panic_value"]) << " over the panic window"
         << (d.value("panic", false) ? " (panic: only scaling up)" : "");
    if (d.value("waiting", 0) > 0) out_ << "; " << d.value("waiting", 0) << " requests held";
    if (d.contains("last_request_at") && d["last_request_at"].is_string()) {
      out_ << "; last request " << d["last_request_at"].get<std::string>();
    }
    out_ << "\n"
         << "decision:  " << d.value("desired", 0) << " replicas: " << d.value("decision", "")
         << "\n";
    if (d.value("activations", 0) > 0) {
      out_ << "from zero: " << d.value("activations", 0) << " times; the last ready "
           << d.value("last_activation", "") << " after the request that woke it\n";
    }
  }

  void PrintService(const Json& s) {
    const Json& spec = s["spec"];
    const Json& st = s["status"];
    out_ << "name:      " << s.value("name", "") << "\n"
         << "kind:      " << spec["template"].value("kind", "") << " replicas\n"
         << "replicas:  " << st.value("ready", 0) << " ready of " << Wanted(s)
         << (spec.contains("autoscale") ? " (autoscaled)" : "") << "\n"
         << "port:      " << (spec.contains("port") ? Cat(spec["port"].get<int>()) : "-") << "\n";
    if (spec.contains("health")) {
      const Json& h = spec["health"];
      out_ << "health:    "
           << (h.contains("http") ? Cat("GET ", h["http"].get<std::string>()) : "tcp connect")
           << " every " << h.value("interval", "") << ", " << h.value("failure_threshold", 0)
           << " failures in a row replace a replica\n";
    }
    if (spec.contains("endpoint")) {
      const Json& e = st.contains("endpoint") ? st["endpoint"] : Json::object();
      const std::string address = e.value("address", "");
      out_ << "endpoint:  "
           << (address.empty() ? Cat(":", spec["endpoint"].value("host_port", 0)) : address);
      if (e.value("serving", false)) {
        out_ << ", serving, forwarding to " << e.value("backends", 0) << " ready replicas";
      } else {
        out_ << ", not serving" << (e.value("message", "").empty() ? "" : ": ")
             << e.value("message", "");
      }
      out_ << " (leaving replicas drain up to " << spec["endpoint"].value("drain_timeout", "")
           << ")\n";
    }
    if (spec.contains("autoscale")) PrintAutoscale(spec["autoscale"], st);
    if (spec.value("warm_start", "none") == "snapshot") {
      const Json w = st.contains("warm") && st["warm"].is_object() ? st["warm"] : Json::object();
      out_ << "warm:      ";
      if (w.value("revision", 0) > 0) {
        out_ << "state " << w.value("key", "") << " of replica " << w.value("replica", "")
             << " on host " << w.value("host", "") << " (" << (w.value("bytes", int64_t{0}) >> 20)
             << " MiB, paused " << w.value("took", "") << "); " << w.value("restores", 0)
             << " replicas made since resume from it where placed on that host";
      } else {
        out_ << "no state saved yet (once a replica of the revision is ready)";
      }
      if (!w.value("error", "").empty()) out_ << "; last failure: " << w.value("error", "");
      out_ << "\n";
    }
    if (st.contains("rollout")) {
      const Json& r = st["rollout"];
      out_ << "revision:  " << r.value("revision", 0) << " (rollout " << r.value("state", "")
           << (r.value("message", "").empty() ? "" : ": ") << r.value("message", "") << ")\n";
    }
    out_ << "status:    " << st.value("message", "") << "\n\n";
    std::vector<std::vector<std::string>> rows = {
        {"REPLICA", "REVISION", "STATE", "READY", "HOST", "PORT", "FAILURES", "REASON"}};
    for (const Json& r : st["replicas"]) {
      const std::string host = r.value("host", "");
      const int port = r.value("port", 0);
      rows.push_back({r.value("workload", ""), Cat(r.value("revision", 0)), r.value("state", ""),
                      r.value("draining", false) ? "draining"
                      : r.value("ready", false)  ? "yes"
                                                 : "no",
                      host.empty() ? "-" : host, port == 0 ? "-" : Cat(port),
                      Cat(r.value("failures", 0)), r.value("reason", "")});
    }
    PrintTable(out_, rows);
  }
};

core::RunFn Run(std::vector<std::string> words) {
  return [words](core::Invocation& inv) {
    Session session(inv, words);
    return session.Service();
  };
}

}  // namespace

core::Command ServiceCommand() {
  const core::ArgDef name = {.name = "NAME", .help = "the service's name"};
  core::Command g{
      .name = "service",
      .aliases = {"services", "svc"},
      .section = "Workloads",
      .summary = "replicated workloads: create, inspect, scale, update, roll back, delete services",
      .description =
          "A service keeps `replicas` copies of a workload template running, spread across\n"
          "hosts, replaces any that end or fail their health check, and gives each replica\n"
          "that shares its host's network a free host port in PORT and BERTH_PORT, e.g.\n"
          "  name: web\n  kind: service\n  replicas: 2\n  port: 8080\n"
          "  health: {http: /healthz, interval: 2s, timeout: 1s, failure_threshold: 3}\n"
          "  endpoint: {host_port: 18080}   # one port for clients, across ready replicas\n"
          "  update: {max_surge: 1, max_unavailable: 0, progress_deadline: 10m}\n"
          "  # or replicas set by the load at the endpoint, to zero when idle:\n"
          "  # autoscale: {min: 0, max: 8, metric: concurrency, target: 4, idle_to_zero: 2m}\n"
          "  template:\n    kind: process\n"
          "    command: [\"/usr/bin/python3\", \"/srv/serve.py\"]   # listens on $PORT\n"
          "    resources: {cpu: 500m, memory: 128Mi}\n"
          "See docs/services.md."};
  g.flags = ServerFlags();
  g.subcommands = {
      core::Command{.name = "create",
                    .aliases = {"apply"},
                    .summary = "create the services in a YAML or JSON file (--- separates several)",
                    .synopsis = "-f FILE",
                    .flags = {SpecFileFlag()},
                    .run = Run({"create"})},
      core::Command{.name = "update",
                    .summary = "replace services' specs from a file; a changed template rolls out",
                    .synopsis = "-f FILE",
                    .flags = {SpecFileFlag()},
                    .run = Run({"update"})},
      core::Command{
          .name = "rollout",
          .summary = "follow or undo a template's rollout",
          .subcommands = {core::Command{
                              .name = "status",
                              .summary = "show the rollout: revision, state, updated replicas",
                              .args = {name},
                              .run = Run({"rollout", "status"})},
                          core::Command{
                              .name = "undo",
                              .summary = "roll the template back to the previous revision",
                              .args = {name},
                              .run = Run({"rollout", "undo"})}}},
      core::Command{.name = "ls",
                    .aliases = {"list"},
                    .summary = "list services with their ready replicas",
                    .run = Run({"ls"})},
      core::Command{.name = "get",
                    .summary = "show a service: its endpoint, its autoscaler's measure and "
                               "decision, its replicas, their hosts, ports, readiness",
                    .args = {name},
                    .run = Run({"get"})},
      core::Command{.name = "scale",
                    .summary = "set the number of replicas (0 to 100; not with autoscale)",
                    .args = {name, {.name = "REPLICAS", .help = "how many replicas to keep"}},
                    .run = Run({"scale"})},
      core::Command{.name = "delete",
                    .aliases = {"rm"},
                    .summary = "delete a service: its replicas are stopped, then it goes",
                    .args = {name},
                    .run = Run({"delete"})},
  };
  return g;
}

}  // namespace berth::cli
