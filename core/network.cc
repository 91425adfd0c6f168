#include "core/network.h"

#include "core/object_json.h"
#include "core/status.h"
#include "core/strings.h"
#include "core/workload.h"

namespace berth::core {

namespace {

// The envelope every stored object shares: kind, its name (under `name_key`), revision and
// times. Leaves ctx->name set for the errors that follow.
template <typename T>
absl::Status DecodeEnvelope(JsonContext* ctx, const Json& j, std::string_view kind,
                            const std::string& name_key, std::string* name, T* object,
                            std::initializer_list<std::string_view> allowed) {
  if (j.is_object()) {
    BERTH_RETURN_IF_ERROR(OptionalString(*ctx, j, "", name_key, name));
    ctx->name = *name;
  }
  BERTH_RETURN_IF_ERROR(CheckObject(*ctx, j, "", allowed));
  std::string stored_kind(kind);
  BERTH_RETURN_IF_ERROR(OptionalString(*ctx, j, "", "kind", &stored_kind));
  if (stored_kind != kind) {
    return ctx->Error("kind", Cat("must be \"", kind, "\", got \"", stored_kind, "\""));
  }
  BERTH_RETURN_IF_ERROR(OptionalInt(*ctx, j, "", "revision", 0, INT64_MAX, &object->revision));
  BERTH_RETURN_IF_ERROR(OptionalTime(*ctx, j, "", "created_at", &object->created_at));
  BERTH_RETURN_IF_ERROR(OptionalTime(*ctx, j, "", "updated_at", &object->updated_at));
  return absl::OkStatus();
}

// The object at `key`, or nullptr when absent or null.
const Json* Member(const Json& j, const std::string& key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::Status Port(const JsonContext& ctx, const Json& obj, std::string_view path,
                  const std::string& key, int min, int* out) {
  int64_t v = *out;
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, obj, path, key, min, 65535, &v));
  *out = static_cast<int>(v);
  return absl::OkStatus();
}

}  // namespace

std::string_view NetworkStateName(NetworkState state) {
  switch (state) {
    case NetworkState::kReady:
      return "ready";
  }
  return "unknown";
}

std::optional<NetworkState> ParseNetworkState(std::string_view text) {
  if (text == "ready") return NetworkState::kReady;
  return std::nullopt;
}

Json EncodeNetwork(const Network& n) {
  Json j = Json{
      {"kind", "network"},
      {"name", n.name},
      {"spec", {{"subnet", n.spec.subnet}, {"gateway", n.spec.gateway}, {"nat", n.spec.nat}}},
      {"status",
       {{"state", std::string(NetworkStateName(n.status.state))}, {"bridge", n.status.bridge}}},
      {"revision", n.revision},
      {"created_at", EncodeTime(n.created_at)},
      {"updated_at", EncodeTime(n.updated_at)}};
  // A network stored before tunnel ids has none until the server's next start gives it one.
  if (n.status.vni != 0) j["status"]["vni"] = n.status.vni;
  return j;
}

absl::StatusOr<Network> DecodeNetwork(const Json& j) {
  Network n;
  JsonContext ctx{"network", ""};
  BERTH_RETURN_IF_ERROR(
      DecodeEnvelope(&ctx, j, "network", "name", &n.name, &n,
                     {"kind", "name", "spec", "status", "revision", "created_at", "updated_at"}));
  if (const Json* spec = Member(j, "spec")) {
    BERTH_RETURN_IF_ERROR(CheckObject(ctx, *spec, "spec", {"subnet", "gateway", "nat"}));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *spec, "spec", "subnet", &n.spec.subnet));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *spec, "spec", "gateway", &n.spec.gateway));
    BERTH_RETURN_IF_ERROR(OptionalBool(ctx, *spec, "spec", "nat", &n.spec.nat));
  }
  if (const Json* status = Member(j, "status")) {
    BERTH_RETURN_IF_ERROR(CheckObject(ctx, *status, "status", {"state", "bridge", "vni"}));
    std::string state = "ready";
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *status, "status", "state", &state));
    auto parsed = ParseNetworkState(state);
    if (!parsed) return ctx.Error("status.state", Cat("must be ready, got \"", state, "\""));
    n.status.state = *parsed;
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *status, "status", "bridge", &n.status.bridge));
    BERTH_RETURN_IF_ERROR(OptionalInt(ctx, *status, "status", "vni", 0, kMaxVni, &n.status.vni));
  }
  return n;
}

Json EncodeSecurityGroup(const SecurityGroup& g) {
  Json rules = Json::array();
  for (const SecurityRule& r : g.spec.rules) {
    rules.push_back(Json{{"id", r.id},
                         {"protocol", r.protocol},
                         {"ports", r.ports},
                         {"port_from", r.port_from},
                         {"port_to", r.port_to},
                         {"from", r.from},
                         {"from_group", r.from_group}});
  }
  return Json{{"kind", "secgroup"},
              {"name", g.name},
              {"spec", {{"rules", std::move(rules)}}},
              {"status", {{"next_rule", g.status.next_rule}}},
              {"revision", g.revision},
              {"created_at", EncodeTime(g.created_at)},
              {"updated_at", EncodeTime(g.updated_at)}};
}

absl::StatusOr<SecurityGroup> DecodeSecurityGroup(const Json& j) {
  SecurityGroup g;
  JsonContext ctx{"secgroup", ""};
  BERTH_RETURN_IF_ERROR(
      DecodeEnvelope(&ctx, j, "secgroup", "name", &g.name, &g,
                     {"kind", "name", "spec", "status", "revision", "created_at", "updated_at"}));
  if (const Json* spec = Member(j, "spec")) {
    BERTH_RETURN_IF_ERROR(CheckObject(ctx, *spec, "spec", {"rules"}));
    if (const Json* rules = Member(*spec, "rules")) {
      if (!rules->is_array()) {
        return ctx.Error("spec.rules", Cat("must be a list, got ", Preview(*rules)));
      }
      for (size_t i = 0; i < rules->size(); ++i) {
        const Json& r = (*rules)[i];
        const std::string path = Cat("spec.rules[", i, "]");
        BERTH_RETURN_IF_ERROR(
            CheckObject(ctx, r, path,
                        {"id", "protocol", "ports", "port_from", "port_to", "from", "from_group"}));
        SecurityRule rule;
        rule.protocol = "tcp";
        BERTH_RETURN_IF_ERROR(OptionalString(ctx, r, path, "id", &rule.id));
        BERTH_RETURN_IF_ERROR(OptionalString(ctx, r, path, "protocol", &rule.protocol));
        if (rule.protocol != "tcp" && rule.protocol != "udp" && rule.protocol != "icmp" &&
            rule.protocol != "any") {
          return ctx.Error(JoinPath(path, "protocol"),
                           Cat("must be tcp, udp, icmp or any, got \"", rule.protocol, "\""));
        }
        BERTH_RETURN_IF_ERROR(OptionalString(ctx, r, path, "ports", &rule.ports));
        BERTH_RETURN_IF_ERROR(Port(ctx, r, path, "port_from", 0, &rule.port_from));
        BERTH_RETURN_IF_ERROR(Port(ctx, r, path, "port_to", 0, &rule.port_to));
        BERTH_RETURN_IF_ERROR(OptionalString(ctx, r, path, "from", &rule.from));
        BERTH_RETURN_IF_ERROR(OptionalString(ctx, r, path, "from_group", &rule.from_group));
        g.spec.rules.push_back(std::move(rule));
      }
    }
  }
  if (const Json* status = Member(j, "status")) {
    BERTH_RETURN_IF_ERROR(CheckObject(ctx, *status, "status", {"next_rule"}));
    BERTH_RETURN_IF_ERROR(
        OptionalInt(ctx, *status, "status", "next_rule", 1, INT64_MAX, &g.status.next_rule));
  }
  return g;
}

Json EncodePortForward(const PortForward& f) {
  Json j = Json{{"kind", "portforward"},
                {"id", f.id},
                {"spec",
                 {{"protocol", f.spec.protocol},
                  {"host_port", f.spec.host_port},
                  {"workload", f.spec.workload},
                  {"port", f.spec.port},
                  {"network", f.spec.network},
                  {"target_address", f.spec.target_address}}},
                {"revision", f.revision},
                {"created_at", EncodeTime(f.created_at)},
                {"updated_at", EncodeTime(f.updated_at)}};
  if (!f.spec.host.empty()) j["spec"]["host"] = f.spec.host;
  return j;
}

absl::StatusOr<PortForward> DecodePortForward(const Json& j) {
  PortForward f;
  JsonContext ctx{"portforward", ""};
  BERTH_RETURN_IF_ERROR(
      DecodeEnvelope(&ctx, j, "portforward", "id", &f.id, &f,
                     {"kind", "id", "spec", "revision", "created_at", "updated_at"}));
  if (const Json* spec = Member(j, "spec")) {
    BERTH_RETURN_IF_ERROR(CheckObject(
        ctx, *spec, "spec",
        {"protocol", "host_port", "workload", "port", "network", "target_address", "host"}));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *spec, "spec", "protocol", &f.spec.protocol));
    if (f.spec.protocol != "tcp" && f.spec.protocol != "udp") {
      return ctx.Error("spec.protocol", Cat("must be tcp or udp, got \"", f.spec.protocol, "\""));
    }
    BERTH_RETURN_IF_ERROR(Port(ctx, *spec, "spec", "host_port", 1, &f.spec.host_port));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *spec, "spec", "workload", &f.spec.workload));
    BERTH_RETURN_IF_ERROR(Port(ctx, *spec, "spec", "port", 1, &f.spec.port));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *spec, "spec", "network", &f.spec.network));
    BERTH_RETURN_IF_ERROR(
        OptionalString(ctx, *spec, "spec", "target_address", &f.spec.target_address));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *spec, "spec", "host", &f.spec.host));
  }
  return f;
}

}  // namespace berth::core
