#include "api/routes_sim.h"

#include <set>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "api/body_parser.h"
#include "api/route_util.h"
#include "core/strings.h"
#include "sim/args.h"
#include "sim/formats.h"
#include "sim/generate.h"

namespace berth::api {

using core::Cat;
using core::Json;

namespace {

constexpr size_t kMaxHosts = 20000;
constexpr int64_t kMaxRequests = 100000;
constexpr size_t kMaxPolicies = 8;
constexpr size_t kMaxSeeds = 20;
// Each text; the server's limit on a request body (1 MiB by default) comes first.
constexpr size_t kMaxText = 16 << 20;

absl::Status Bad(std::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(Cat("sim fill: field \"", field, "\": ", problem));
}

// An object whose keys all lie in `allowed`; `field` names it in errors.
absl::Status OnlyKeys(const Json& j, std::string_view field, std::set<std::string> allowed) {
  if (!j.is_object()) return Bad(field, "must be an object");
  for (const auto& [key, value] : j.items()) {
    if (!allowed.count(key)) {
      return Bad(Cat(field, field.empty() ? "" : ".", key),
                 Cat("unknown field; known: ", absl::StrJoin(allowed, ", ")));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> StringField(const Json& j, std::string_view parent,
                                        std::string_view key) {
  const std::string field = Cat(parent, ".", key);
  const Json& v = j.at(std::string(key));
  if (!v.is_string()) return Bad(field, "must be a string");
  return v.get<std::string>();
}

absl::StatusOr<sim::TraceFormat> FormatField(const Json& j, std::string_view parent) {
  if (!j.contains("format")) return sim::TraceFormat::kAuto;
  auto text = StringField(j, parent, "format");
  if (!text.ok()) return text.status();
  auto format = sim::ParseTraceFormat(*text);
  if (!format.ok()) return Bad(Cat(parent, ".format"), format.status().message());
  return *format;
}

absl::StatusOr<std::string> TextField(const Json& j, std::string_view parent) {
  auto text = StringField(j, parent, "text");
  if (!text.ok()) return text.status();
  if (text->size() > kMaxText) {
    return Bad(Cat(parent, ".text"), Cat("is ", text->size(), " bytes; at most ", kMaxText));
  }
  return text;
}

absl::StatusOr<sim::GenerateOptions> ProfileField(const Json& j, std::string_view parent) {
  auto name = StringField(j, parent, "profile");
  if (!name.ok()) return name.status();
  auto options = sim::ProfileOptions(*name);
  if (!options.ok()) return Bad(Cat(parent, ".profile"), options.status().message());
  return options;
}

// The live cluster's ready hosts as the simulator sees them (a host's first GPU model stands
// for all its GPUs).
absl::StatusOr<sim::SimCluster> LiveCluster(control::ControlPlane* control) {
  auto hosts = control->ListHosts();
  if (!hosts.ok()) return hosts.status();
  sim::SimCluster cluster;
  for (const core::Host& h : *hosts) {
    if (h.state != core::HostState::kReady) continue;
    sim::SimHost s;
    s.name = h.name;
    s.cpu_milli = h.inventory.capacity.cpu.value();
    s.memory_mib = h.inventory.capacity.memory.value();
    s.labels = h.inventory.labels;
    for (const core::GpuDevice& g : h.inventory.gpus) {
      if (!g.healthy) continue;
      if (s.gpu_count == 0) {
        s.gpu_model = g.model;
        s.gpu_memory_mib = g.memory_mib;
      }
      ++s.gpu_count;
    }
    cluster.hosts.push_back(std::move(s));
  }
  return cluster;
}

absl::StatusOr<sim::FillRunRequest> DecodeFill(const Json& body, control::ControlPlane* control) {
  absl::Status keys = OnlyKeys(body, "", {"cluster", "trace", "policies", "seeds", "target_pct"});
  if (!keys.ok()) return keys;
  sim::FillRunRequest request;
  // The cluster.
  if (!body.contains("cluster")) return Bad("cluster", "is required");
  const Json& cluster = body["cluster"];
  if (auto s = OnlyKeys(cluster, "cluster", {"profile", "live", "text", "format"}); !s.ok()) {
    return s;
  }
  const int sources =
      cluster.contains("profile") + cluster.contains("live") + cluster.contains("text");
  if (sources != 1) return Bad("cluster", "give exactly one of profile, live, text");
  if (cluster.contains("profile")) {
    auto options = ProfileField(cluster, "cluster");
    if (!options.ok()) return options.status();
    auto generated = sim::GenerateCluster(*options);
    if (!generated.ok()) return Bad("cluster.profile", generated.status().message());
    request.cluster = *std::move(generated);
    request.cluster_source = Cat("profile ", cluster["profile"].get<std::string>());
  } else if (cluster.contains("live")) {
    if (cluster["live"] != true) return Bad("cluster.live", "must be true");
    auto live = LiveCluster(control);
    if (!live.ok()) return live.status();
    request.cluster = *std::move(live);
    request.cluster_source = "live";
  } else {
    auto text = TextField(cluster, "cluster");
    if (!text.ok()) return text.status();
    auto format = FormatField(cluster, "cluster");
    if (!format.ok()) return format.status();
    sim::TraceFormat resolved = sim::DetectFormat("cluster", *text, *format);
    auto parsed = sim::ParseCluster(*text, resolved, "cluster.text");
    if (!parsed.ok()) return Bad("cluster.text", parsed.status().message());
    request.cluster = *std::move(parsed);
    request.cluster_source = "uploaded";
  }
  if (request.cluster.hosts.size() > kMaxHosts) {
    return Bad("cluster", Cat("has ", request.cluster.hosts.size(), " hosts; at most ", kMaxHosts));
  }
  // The trace.
  if (!body.contains("trace")) return Bad("trace", "is required");
  const Json& trace = body["trace"];
  if (auto s = OnlyKeys(trace, "trace", {"profile", "requests", "text", "format"}); !s.ok()) {
    return s;
  }
  if (trace.contains("profile") == trace.contains("text")) {
    return Bad("trace", "give exactly one of profile, text");
  }
  if (trace.contains("profile")) {
    auto options = ProfileField(trace, "trace");
    if (!options.ok()) return options.status();
    if (trace.contains("requests")) {
      const Json& n = trace["requests"];
      if (!n.is_number_integer() || n.get<int64_t>() < 1 || n.get<int64_t>() > kMaxRequests) {
        return Bad("trace.requests", Cat("must be a whole number from 1 to ", kMaxRequests));
      }
      options->requests = n.get<int64_t>();
    }
    if (options->requests > kMaxRequests) options->requests = kMaxRequests;
    auto generated = sim::GenerateTrace(*options, request.cluster);
    if (!generated.ok()) return Bad("trace.profile", generated.status().message());
    request.trace = *std::move(generated);
    request.trace_source = Cat("profile ", trace["profile"].get<std::string>());
  } else {
    if (trace.contains("requests")) return Bad("trace.requests", "goes with profile only");
    auto text = TextField(trace, "trace");
    if (!text.ok()) return text.status();
    auto format = FormatField(trace, "trace");
    if (!format.ok()) return format.status();
    sim::TraceFormat resolved = sim::DetectFormat("trace", *text, *format);
    auto parsed = sim::ParseTrace(*text, resolved, "trace.text");
    if (!parsed.ok()) return Bad("trace.text", parsed.status().message());
    request.trace = *std::move(parsed);
    request.trace_source = "uploaded";
  }
  if (static_cast<int64_t>(request.trace.requests.size()) > kMaxRequests) {
    return Bad("trace",
               Cat("has ", request.trace.requests.size(), " requests; at most ", kMaxRequests));
  }
  // Policies, seeds, target.
  if (body.contains("policies")) {
    const Json& p = body["policies"];
    if (!p.is_array() || p.empty() || p.size() > kMaxPolicies) {
      return Bad("policies", Cat("must be a list of 1 to ", kMaxPolicies, " policy names"));
    }
    for (size_t i = 0; i < p.size(); ++i) {
      if (!p[i].is_string() || p[i].get<std::string>().empty()) {
        return Bad(Cat("policies[", i, "]"), "must be a policy name");
      }
      request.policies.push_back(p[i].get<std::string>());
    }
  } else {
    request.policies = {"default"};
  }
  std::string seeds = "42..46";
  if (body.contains("seeds")) {
    if (!body["seeds"].is_string()) return Bad("seeds", "must be a string such as \"42..46\"");
    seeds = body["seeds"].get<std::string>();
  }
  auto parsed_seeds = sim::ParseSeeds(seeds);
  if (!parsed_seeds.ok()) return Bad("seeds", parsed_seeds.status().message());
  if (parsed_seeds->size() > kMaxSeeds) {
    return Bad("seeds", Cat("names ", parsed_seeds->size(), " seeds; at most ", kMaxSeeds));
  }
  request.seeds = *std::move(parsed_seeds);
  if (body.contains("target_pct")) {
    const Json& t = body["target_pct"];
    if (!t.is_number_integer() || t.get<int64_t>() < 100 || t.get<int64_t>() > 300) {
      return Bad("target_pct", "must be a whole number from 100 to 300");
    }
    request.target_pct = t.get<int64_t>();
  }
  return request;
}

}  // namespace

void AddSimRoutes(Router& router, sim::FillRuns* runs, control::ControlPlane* control) {
  router.Handle("GET", "/v1/sim/profiles", [](const HttpRequest&) {
    Json items = Json::array();
    for (const sim::GenerateProfile& p : sim::GenerateProfiles()) {
      items.push_back({{"name", p.name}, {"doc", p.doc}});
    }
    return JsonOk(200, Json{{"items", items}});
  });
  router.Handle("POST", "/v1/sim/fill", [runs, control](const HttpRequest& req) {
    BodyLimits limits;
    limits.max_string_bytes = kMaxText + 1;  // so that the size check below can name the field
    auto body = ParseBody(req.body, {"sim fill", ""}, limits);
    if (!body.ok()) return Fail(body.status());
    auto request = DecodeFill(*body, control);
    if (!request.ok()) return Fail(request.status());
    auto id = runs->Start(*std::move(request));
    if (!id.ok()) {
      if (absl::IsFailedPrecondition(id.status())) {
        return HttpResponse::Error(409, "conflict", std::string(id.status().message()));
      }
      return Fail(id.status());
    }
    auto run = runs->Get(*id);
    if (!run.ok()) return Fail(run.status());
    return JsonOk(202, *run);
  });
  router.Handle("GET", "/v1/sim/fill", [runs](const HttpRequest&) {
    return JsonOk(200, Json{{"items", runs->List()}});
  });
  router.Handle("GET", "/v1/sim/fill/{id}", [runs](const HttpRequest& req) {
    int64_t id = 0;
    if (!absl::SimpleAtoi(req.Param("id"), &id) || id < 1) {
      return Fail(absl::InvalidArgumentError(Cat("sim fill: id \"", req.Param("id").substr(0, 64),
                                                 "\": must be a whole number >= 1")));
    }
    auto run = runs->Get(id);
    if (!run.ok()) return Fail(run.status());
    return JsonOk(200, *run);
  });
}

}  // namespace berth::api
