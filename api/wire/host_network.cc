#include "api/wire/host_network.h"

#include <functional>
#include <initializer_list>

#include "core/object_json.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::api::wire {

using core::Cat;
using core::Json;
using core::JsonContext;

namespace {

// Calls `each` with every element of the list `obj[key]` (absent = empty), checked to be an
// object with only `allowed` keys; `path` is the element's field path ("networks[0]",
// "groups[1].rules[0]" within "groups[1]").
absl::Status ForEachObject(
    const JsonContext& ctx, const Json& obj, std::string_view within, const std::string& key,
    std::initializer_list<std::string_view> allowed,
    const std::function<absl::Status(const Json&, const std::string&)>& each) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  const std::string list = within.empty() ? key : Cat(within, ".", key);
  if (!it->is_array()) return ctx.Error(list, Cat("must be a list, got ", core::Preview(*it)));
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string path = Cat(list, "[", static_cast<int>(i), "]");
    BERTH_RETURN_IF_ERROR(core::CheckObject(ctx, (*it)[i], path, allowed));
    BERTH_RETURN_IF_ERROR(each((*it)[i], path));
  }
  return absl::OkStatus();
}

}  // namespace

Json EncodeHostNetworkPlan(const HostNetworkPlan& plan) {
  Json networks = Json::array();
  for (const PlannedNetwork& n : plan.networks) {
    networks.push_back({{"name", n.name},
                        {"subnet", n.subnet},
                        {"gateway", n.gateway},
                        {"nat", n.nat},
                        {"vni", n.vni},
                        {"peers", n.peers}});
  }
  Json groups = Json::array();
  for (const PlannedGroup& g : plan.groups) {
    Json rules = Json::array();
    for (const core::SecurityRule& r : g.rules) {
      rules.push_back({{"id", r.id},
                       {"protocol", r.protocol},
                       {"port_from", r.port_from},
                       {"port_to", r.port_to},
                       {"from", r.from},
                       {"from_group", r.from_group}});
    }
    groups.push_back({{"name", g.name}, {"rules", rules}, {"remote_members", g.remote_members}});
  }
  Json nics = Json::array();
  for (const PlannedNic& n : plan.nics) {
    nics.push_back({{"workload", n.workload},
                    {"network", n.network},
                    {"address", n.address},
                    {"prefix_length", n.prefix_length},
                    {"tap", n.tap},
                    {"ifname", n.ifname},
                    {"groups", n.groups}});
  }
  Json forwards = Json::array();
  for (const PlannedForward& f : plan.forwards) {
    Json e = {{"id", f.id},
              {"protocol", f.protocol},
              {"host_port", f.host_port},
              {"network", f.network},
              {"target_address", f.target_address},
              {"target_port", f.target_port}};
    if (!f.source_address.empty()) e["source_address"] = f.source_address;
    forwards.push_back(std::move(e));
  }
  return Json{{"local_address", plan.local_address},
              {"networks", networks},
              {"groups", groups},
              {"nics", nics},
              {"forwards", forwards}};
}

absl::StatusOr<HostNetworkPlan> DecodeHostNetworkPlan(std::string_view host, const Json& j) {
  JsonContext ctx{"host network plan", std::string(host)};
  BERTH_RETURN_IF_ERROR(
      core::CheckObject(ctx, j, "", {"local_address", "networks", "groups", "nics", "forwards"}));
  HostNetworkPlan plan;
  BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, j, "", "local_address", &plan.local_address));
  BERTH_RETURN_IF_ERROR(ForEachObject(
      ctx, j, "", "networks", {"name", "subnet", "gateway", "nat", "vni", "peers"},
      [&](const Json& e, const std::string& path) -> absl::Status {
        PlannedNetwork n;
        BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, e, path, "name", &n.name));
        BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, e, path, "subnet", &n.subnet));
        BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, e, path, "gateway", &n.gateway));
        BERTH_RETURN_IF_ERROR(core::OptionalBool(ctx, e, path, "nat", &n.nat));
        BERTH_RETURN_IF_ERROR(core::OptionalInt(ctx, e, path, "vni", 1, core::kMaxVni, &n.vni));
        if (n.vni == 0) return ctx.Error(Cat(path, ".vni"), "is required");
        BERTH_RETURN_IF_ERROR(core::OptionalStringList(ctx, e, path, "peers", &n.peers));
        plan.networks.push_back(std::move(n));
        return absl::OkStatus();
      }));
  BERTH_RETURN_IF_ERROR(ForEachObject(
      ctx, j, "", "groups", {"name", "rules", "remote_members"},
      [&](const Json& e, const std::string& path) -> absl::Status {
        PlannedGroup g;
        BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, e, path, "name", &g.name));
        BERTH_RETURN_IF_ERROR(
            core::OptionalStringList(ctx, e, path, "remote_members", &g.remote_members));
        BERTH_RETURN_IF_ERROR(ForEachObject(
            ctx, e, path, "rules", {"id", "protocol", "port_from", "port_to", "from", "from_group"},
            [&](const Json& r, const std::string& at) -> absl::Status {
              core::SecurityRule rule;
              int64_t from = 0, to = 0;
              BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, r, at, "id", &rule.id));
              BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, r, at, "protocol", &rule.protocol));
              BERTH_RETURN_IF_ERROR(core::OptionalInt(ctx, r, at, "port_from", 0, 65535, &from));
              BERTH_RETURN_IF_ERROR(core::OptionalInt(ctx, r, at, "port_to", 0, 65535, &to));
              BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, r, at, "from", &rule.from));
              BERTH_RETURN_IF_ERROR(
                  core::OptionalString(ctx, r, at, "from_group", &rule.from_group));
              rule.port_from = static_cast<int>(from);
              rule.port_to = static_cast<int>(to);
              g.rules.push_back(std::move(rule));
              return absl::OkStatus();
            }));
        plan.groups.push_back(std::move(g));
        return absl::OkStatus();
      }));
  BERTH_RETURN_IF_ERROR(ForEachObject(
      ctx, j, "", "nics",
      {"workload", "network", "address", "prefix_length", "tap", "ifname", "groups"},
      [&](const Json& e, const std::string& path) -> absl::Status {
        PlannedNic n;
        int64_t prefix = 0;
        BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, e, path, "workload", &n.workload));
        BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, e, path, "network", &n.network));
        BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, e, path, "address", &n.address));
        BERTH_RETURN_IF_ERROR(core::OptionalInt(ctx, e, path, "prefix_length", 8, 30, &prefix));
        n.prefix_length = static_cast<int>(prefix);
        BERTH_RETURN_IF_ERROR(core::OptionalBool(ctx, e, path, "tap", &n.tap));
        BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, e, path, "ifname", &n.ifname));
        BERTH_RETURN_IF_ERROR(core::OptionalStringList(ctx, e, path, "groups", &n.groups));
        plan.nics.push_back(std::move(n));
        return absl::OkStatus();
      }));
  BERTH_RETURN_IF_ERROR(ForEachObject(
      ctx, j, "", "forwards",
      {"id", "protocol", "host_port", "network", "target_address", "target_port", "source_address"},
      [&](const Json& e, const std::string& path) -> absl::Status {
        PlannedForward f;
        int64_t host_port = 0, target_port = 0;
        BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, e, path, "id", &f.id));
        BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, e, path, "protocol", &f.protocol));
        BERTH_RETURN_IF_ERROR(core::OptionalInt(ctx, e, path, "host_port", 1, 65535, &host_port));
        BERTH_RETURN_IF_ERROR(core::OptionalString(ctx, e, path, "network", &f.network));
        BERTH_RETURN_IF_ERROR(
            core::OptionalString(ctx, e, path, "target_address", &f.target_address));
        BERTH_RETURN_IF_ERROR(
            core::OptionalInt(ctx, e, path, "target_port", 1, 65535, &target_port));
        BERTH_RETURN_IF_ERROR(
            core::OptionalString(ctx, e, path, "source_address", &f.source_address));
        f.host_port = static_cast<int>(host_port);
        f.target_port = static_cast<int>(target_port);
        plan.forwards.push_back(std::move(f));
        return absl::OkStatus();
      }));
  return plan;
}

}  // namespace berth::api::wire
