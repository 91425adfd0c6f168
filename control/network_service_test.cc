#include "control/network_service.h"

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::control {
namespace {

using core::Cat;
using core::Json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// A NetworkHost in memory: what it holds, every call in order as "Method arg", and any method
// made to fail by naming it in `fail`.
class FakeNetworkHost final : public NetworkHost {
 public:
  std::map<std::string, HostNetwork> networks;
  std::map<std::string, HostGroup> groups;
  std::map<std::string, HostForward> forwards;
  std::map<std::pair<std::string, std::string>, HostEndpointSpec> endpoints;
  std::vector<HostGroup> group_puts;  // every PutGroup, in order
  std::vector<HostKeep> cleanups;
  std::vector<std::string> calls;
  std::map<std::string, absl::Status> fail;  // method -> what it returns

  absl::StatusOr<std::string> EnsureNetwork(const HostNetwork& network) override {
    if (absl::Status s = Call("EnsureNetwork", network.name); !s.ok()) return s;
    networks[network.name] = network;
    return Cat("br-", network.name);
  }
  absl::Status DeleteNetwork(std::string_view name) override {
    if (absl::Status s = Call("DeleteNetwork", name); !s.ok()) return s;
    if (networks.erase(std::string(name)) == 0) return absl::NotFoundError("no such network");
    return absl::OkStatus();
  }
  absl::Status PutGroup(const HostGroup& group) override {
    if (absl::Status s = Call("PutGroup", group.name); !s.ok()) return s;
    group_puts.push_back(group);
    groups[group.name] = group;
    return absl::OkStatus();
  }
  absl::Status DeleteGroup(std::string_view name) override {
    if (absl::Status s = Call("DeleteGroup", name); !s.ok()) return s;
    if (groups.erase(std::string(name)) == 0) return absl::NotFoundError("no such group");
    return absl::OkStatus();
  }
  absl::Status AddForward(const HostForward& forward) override {
    if (absl::Status s = Call("AddForward", forward.id); !s.ok()) return s;
    // As the host's network model: a forward id is declared once.
    if (forwards.contains(forward.id)) return absl::AlreadyExistsError("forward exists");
    forwards[forward.id] = forward;
    return absl::OkStatus();
  }
  absl::Status RemoveForward(std::string_view id) override {
    if (absl::Status s = Call("RemoveForward", id); !s.ok()) return s;
    if (forwards.erase(std::string(id)) == 0) return absl::NotFoundError("no such forward");
    return absl::OkStatus();
  }
  absl::Status Cleanup(const HostKeep& keep) override {
    if (absl::Status s = Call("Cleanup", ""); !s.ok()) return s;
    cleanups.push_back(keep);
    return absl::OkStatus();
  }
  absl::StatusOr<HostEndpoint> AttachEndpoint(const HostEndpointSpec& spec) override {
    if (absl::Status s = Call("AttachEndpoint", Cat(spec.network, "/", spec.owner)); !s.ok()) {
      return s;
    }
    endpoints[{spec.network, spec.owner}] = spec;
    // Address, prefix and gateway are left for the service to fill in.
    return HostEndpoint{.host_ifname = Cat(spec.tap ? "tap-" : "veth-", spec.owner),
                        .mac = "02:00:00:00:00:01"};
  }
  absl::Status CheckPortFree(std::string_view protocol, int port) override {
    if (absl::Status s = Call("CheckPortFree", Cat(protocol, "/", port)); !s.ok()) return s;
    if (busy_ports.contains(Cat(protocol, "/", port))) {
      return absl::FailedPreconditionError("is in use on the host: a socket listens on it");
    }
    return absl::OkStatus();
  }
  std::set<std::string> busy_ports;  // "tcp/22": a socket holds it
  absl::Status DetachEndpoint(std::string_view network, std::string_view owner) override {
    if (absl::Status s = Call("DetachEndpoint", Cat(network, "/", owner)); !s.ok()) return s;
    if (endpoints.erase({std::string(network), std::string(owner)}) == 0) {
      return absl::NotFoundError("no such endpoint");
    }
    return absl::OkStatus();
  }

  // The endpoint the host holds for `owner` on `network`, or null.
  const HostEndpointSpec* Endpoint(std::string_view network, std::string_view owner) const {
    auto it = endpoints.find({std::string(network), std::string(owner)});
    return it == endpoints.end() ? nullptr : &it->second;
  }

  int CallsOf(std::string_view method) const {
    int n = 0;
    for (const auto& c : calls) n += c.starts_with(Cat(method, " ")) ? 1 : 0;
    return n;
  }

 private:
  absl::Status Call(std::string_view method, std::string_view arg) {
    calls.push_back(Cat(method, " ", arg));
    auto it = fail.find(std::string(method));
    return it == fail.end() ? absl::OkStatus() : it->second;
  }
};

class NetworkServiceTest : public ::testing::Test {
 protected:
  int64_t Revision() { return *store_.Revision(); }

  absl::StatusOr<Json> CreateNetwork(std::string name, std::string subnet,
                                     std::string gateway = "") {
    return nets_.CreateNetwork(NetworkCreateOptions{
        .name = std::move(name), .subnet = std::move(subnet), .gateway = std::move(gateway)});
  }

  // The allocations of the network's address management as stored: address -> owner.
  std::map<std::string, std::string> StoredAllocations(std::string_view network) {
    auto got = store_.Get(IpamKey(network));
    EXPECT_TRUE(got.ok() && got->kv) << "no IPAM object for " << network;
    std::map<std::string, std::string> out;
    if (!got.ok() || !got->kv) return out;
    Json j = Json::parse(got->kv->value);
    for (const auto& [addr, owner] : j["allocations"].items()) out[addr] = owner.get<std::string>();
    return out;
  }

  absl::StatusOr<HostEndpoint> Attach(std::string network, std::string workload,
                                      std::string address = "",
                                      std::vector<std::string> groups = {}) {
    WorkloadEndpointOptions o;
    o.network = std::move(network);
    o.workload = std::move(workload);
    o.address = std::move(address);
    o.netns = Cat("berth-", o.workload);
    o.security_groups = std::move(groups);
    return nets_.AttachWorkload(o);
  }

  absl::StatusOr<Json> AddRule(std::string_view group, std::string protocol, std::string ports,
                               std::string from_group = "") {
    RuleAddOptions o;
    o.protocol = std::move(protocol);
    o.ports = std::move(ports);
    o.from_group = std::move(from_group);
    return nets_.AddRule(group, o);
  }

  absl::StatusOr<Json> Forward(std::string workload, int host_port, int port,
                               std::string protocol = "tcp") {
    return nets_.AddPortForward(PortForwardOptions{.protocol = std::move(protocol),
                                                   .host_port = host_port,
                                                   .workload = std::move(workload),
                                                   .port = port});
  }

  core::ManualClock clock_;
  state::MemoryStore store_{
      state::StoreOptions{.clock = &clock_, .lease_tick_interval = absl::ZeroDuration()}};
  FakeNetworkHost host_;
  NetworkService nets_{&store_, &clock_, &host_};
};

// --- networks ---

TEST_F(NetworkServiceTest, CreateNetworkDeclaresTheBridgeAndStoresNetworkAndAddressing) {
  auto net = nets_.CreateNetwork(
      NetworkCreateOptions{.name = "n1", .subnet = "10.88.0.0/24", .nat = true});
  ASSERT_TRUE(net.ok()) << net.status();
  ASSERT_TRUE(host_.networks.contains("n1"));
  EXPECT_EQ(host_.networks["n1"].subnet, "10.88.0.0/24");
  EXPECT_EQ(host_.networks["n1"].gateway, "10.88.0.1");  // the first host address by default
  EXPECT_TRUE(host_.networks["n1"].nat);
  EXPECT_EQ((*net)["spec"]["subnet"], "10.88.0.0/24");
  EXPECT_EQ((*net)["spec"]["gateway"], "10.88.0.1");
  EXPECT_EQ((*net)["spec"]["nat"], true);
  EXPECT_EQ((*net)["status"]["bridge"], "br-n1");
  EXPECT_EQ((*net)["revision"], Revision());
  EXPECT_THAT(StoredAllocations("n1"), IsEmpty());

  auto got = nets_.GetNetwork("n1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["status"]["free_addresses"], 253);  // 254 hosts less the gateway
  EXPECT_EQ(nets_.ListNetworks()->size(), 1u);

  auto taken = CreateNetwork("n1", "10.99.0.0/24");
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(NetworkServiceTest, EveryNetworkGetsItsOwnTunnelIdAndOnesStoredWithoutGetThemAtStart) {
  auto blue = CreateNetwork("blue", "10.1.0.0/24");
  auto green = CreateNetwork("green", "10.2.0.0/24");
  ASSERT_TRUE(blue.ok() && green.ok());
  const int64_t vni = (*blue)["status"]["vni"].get<int64_t>();
  EXPECT_GE(vni, 1);
  EXPECT_LE(vni, core::kMaxVni);
  EXPECT_NE((*green)["status"]["vni"].get<int64_t>(), vni);
  EXPECT_EQ((*nets_.GetNetwork("blue"))["status"]["vni"], vni);  // stored, not computed

  // A network stored before ids were given: the next start gives it one no other network has.
  auto stored = store_.Get(NetworkKey("green"));
  ASSERT_TRUE(stored.ok() && stored->kv);
  Json old = Json::parse(stored->kv->value);
  old["status"].erase("vni");
  ASSERT_TRUE(store_.Put(NetworkKey("green"), old.dump()).ok());
  EXPECT_FALSE((*nets_.GetNetwork("green"))["status"].contains("vni"));
  ASSERT_TRUE(nets_.Start().ok());
  const int64_t given = (*nets_.GetNetwork("green"))["status"]["vni"].get<int64_t>();
  EXPECT_GE(given, 1);
  EXPECT_NE(given, vni);
  EXPECT_EQ((*nets_.GetNetwork("blue"))["status"]["vni"], vni);
}

TEST_F(NetworkServiceTest, CreateNetworkRefusesAnOverlappingSubnetNamingTheOtherNetwork) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/16").ok());
  const int64_t before = Revision();
  auto got = CreateNetwork("n2", "10.88.5.0/24");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(got.status()), HasSubstr("network \"n2\": subnet"));
  EXPECT_THAT(Msg(got.status()), HasSubstr("network \"n1\""));
  EXPECT_EQ(host_.CallsOf("EnsureNetwork"), 1);
  EXPECT_EQ(nets_.ListNetworks()->size(), 1u);
  EXPECT_EQ(Revision(), before);
  EXPECT_FALSE(store_.Get(IpamKey("n2"))->kv.has_value());
}

TEST_F(NetworkServiceTest, CreateNetworkRefusesAGatewayOutsideTheSubnet) {
  const int64_t before = Revision();
  auto got = CreateNetwork("n1", "10.88.0.0/24", "10.99.0.1");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(got.status()), HasSubstr("network \"n1\": gateway"));
  auto bad_subnet = CreateNetwork("n1", "10.88.0.1/24");
  EXPECT_EQ(bad_subnet.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(bad_subnet.status()), HasSubstr("subnet"));
  auto no_subnet = CreateNetwork("n1", "");
  EXPECT_THAT(Msg(no_subnet.status()), HasSubstr("network \"n1\": subnet is required"));
  EXPECT_THAT(host_.calls, IsEmpty());
  EXPECT_THAT(*nets_.ListNetworks(), IsEmpty());
  EXPECT_EQ(Revision(), before);
}

TEST_F(NetworkServiceTest, CreateNetworkStoresNothingWhenTheHostFails) {
  host_.fail["EnsureNetwork"] = absl::InternalError("bridge refused");
  const int64_t before = Revision();
  EXPECT_EQ(CreateNetwork("n1", "10.88.0.0/24").status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(*nets_.ListNetworks(), IsEmpty());
  EXPECT_FALSE(store_.Get(IpamKey("n1"))->kv.has_value());
  EXPECT_EQ(Revision(), before);
}

// --- addresses ---

TEST_F(NetworkServiceTest, AllocateAddressHandsOutDistinctAddressesOncePerOwner) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  auto a = nets_.AllocateAddress("n1", "a", "");
  auto b = nets_.AllocateAddress("n1", "b", "");
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_EQ(*a, "10.88.0.2");  // .1 is the gateway
  EXPECT_NE(*a, *b);
  EXPECT_EQ(*nets_.AllocateAddress("n1", "a", ""), *a);
  EXPECT_EQ(*nets_.AllocateAddress("n1", "a", *a), *a);

  auto wanted = nets_.AllocateAddress("n1", "c", "10.88.0.200");
  ASSERT_TRUE(wanted.ok()) << wanted.status();
  EXPECT_EQ(*wanted, "10.88.0.200");
  EXPECT_EQ(StoredAllocations("n1"),
            (std::map<std::string, std::string>{{*a, "a"}, {*b, "b"}, {"10.88.0.200", "c"}}));
  auto status = nets_.GetNetwork("n1");
  EXPECT_EQ((*status)["status"]["addresses"]["c"], "10.88.0.200");
}

TEST_F(NetworkServiceTest, AllocateAddressRefusesAddressesOutsideTheSubnetOrTaken) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  ASSERT_TRUE(nets_.AllocateAddress("n1", "a", "10.88.0.5").ok());
  const int64_t before = Revision();

  auto outside = nets_.AllocateAddress("n1", "b", "10.99.0.5");
  EXPECT_EQ(outside.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(outside.status()), HasSubstr("address 10.99.0.5 is outside subnet"));
  auto taken = nets_.AllocateAddress("n1", "b", "10.88.0.5");
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Msg(taken.status()), HasSubstr("in use by \"a\""));
  auto gateway = nets_.AllocateAddress("n1", "b", "10.88.0.1");
  EXPECT_EQ(gateway.status().code(), absl::StatusCode::kInvalidArgument);
  auto other = nets_.AllocateAddress("n1", "a", "10.88.0.6");  // a already holds .5
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(nets_.AllocateAddress("nope", "a", "").status().code(), absl::StatusCode::kNotFound);

  EXPECT_EQ(Revision(), before);
  EXPECT_EQ(StoredAllocations("n1"), (std::map<std::string, std::string>{{"10.88.0.5", "a"}}));
}

TEST_F(NetworkServiceTest, ReleaseAddressFreesItForReuse) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  std::string a = *nets_.AllocateAddress("n1", "a", "");
  std::string b = *nets_.AllocateAddress("n1", "b", "");
  ASSERT_TRUE(nets_.ReleaseAddress("n1", "a").ok());
  EXPECT_EQ(StoredAllocations("n1"), (std::map<std::string, std::string>{{b, "b"}}));
  EXPECT_EQ(*nets_.AllocateAddress("n1", "c", ""), a);
  // Releasing what is not held is not an error and writes nothing.
  const int64_t before = Revision();
  EXPECT_TRUE(nets_.ReleaseAddress("n1", "a").ok());
  EXPECT_EQ(Revision(), before);
}

TEST_F(NetworkServiceTest, DeleteNetworkIsRefusedWhileAddressesAreHeld) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  ASSERT_TRUE(nets_.AllocateAddress("n1", "a", "").ok());
  absl::Status refused = nets_.DeleteNetwork("n1");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(refused), HasSubstr("address(es) in use (a)"));
  EXPECT_EQ(host_.CallsOf("DeleteNetwork"), 0);
  EXPECT_TRUE(nets_.GetNetwork("n1").ok());

  ASSERT_TRUE(nets_.ReleaseAddress("n1", "a").ok());
  ASSERT_TRUE(nets_.DeleteNetwork("n1").ok());
  EXPECT_FALSE(host_.networks.contains("n1"));
  EXPECT_EQ(nets_.GetNetwork("n1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(store_.Get(IpamKey("n1"))->kv.has_value());
  // The subnet is free again.
  EXPECT_TRUE(CreateNetwork("n2", "10.88.0.0/24").ok());
}

TEST_F(NetworkServiceTest, DeleteNetworkKeepsItWhenTheHostFails) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  host_.fail["DeleteNetwork"] = absl::InternalError("bridge busy");
  const int64_t before = Revision();
  EXPECT_EQ(nets_.DeleteNetwork("n1").code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(nets_.GetNetwork("n1").ok());
  EXPECT_EQ(Revision(), before);
}

// --- workloads on networks ---

TEST_F(NetworkServiceTest, AttachWorkloadAllocatesAndMakesTheInterface) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  ASSERT_TRUE(nets_.CreateGroup("web").ok());
  auto ep = Attach("n1", "w1", "", {"web"});
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_EQ(ep->address, "10.88.0.2");
  EXPECT_EQ(ep->prefix_length, 24);
  EXPECT_EQ(ep->gateway, "10.88.0.1");
  EXPECT_EQ(ep->host_ifname, "veth-w1");

  ASSERT_NE(host_.Endpoint("n1", "w1"), nullptr);
  const HostEndpointSpec& spec = *host_.Endpoint("n1", "w1");
  EXPECT_EQ(spec.address, "10.88.0.2");
  EXPECT_EQ(spec.netns, "berth-w1");
  EXPECT_FALSE(spec.tap);
  EXPECT_THAT(spec.groups, ElementsAre("web"));
  EXPECT_EQ(StoredAllocations("n1"), (std::map<std::string, std::string>{{"10.88.0.2", "w1"}}));

  // Attaching again keeps the address and writes nothing.
  const int64_t before = Revision();
  auto again = Attach("n1", "w1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->address, "10.88.0.2");
  EXPECT_EQ(Revision(), before);
}

TEST_F(NetworkServiceTest, AttachWorkloadHonorsARequestedAddressAndNamesTheField) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  auto ep = Attach("n1", "w1", "10.88.0.42");
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_EQ(ep->address, "10.88.0.42");
  ASSERT_NE(host_.Endpoint("n1", "w1"), nullptr);
  EXPECT_EQ(host_.Endpoint("n1", "w1")->address, "10.88.0.42");

  auto taken = Attach("n1", "w2", "10.88.0.42");
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Msg(taken.status()), HasSubstr("workload \"w2\": networks[n1].address"));
  auto outside = Attach("n1", "w2", "192.168.1.1");
  EXPECT_EQ(outside.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(outside.status()), HasSubstr("networks[n1].address"));
  EXPECT_EQ(host_.Endpoint("n1", "w2"), nullptr);
}

TEST_F(NetworkServiceTest, AttachWorkloadRefusesUnknownNetworksAndGroups) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  const int64_t before = Revision();
  auto no_net = Attach("nope", "w1");
  EXPECT_EQ(no_net.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(no_net.status()), HasSubstr("workload \"w1\": networks[nope].network"));

  auto no_group = Attach("n1", "w1", "", {"ghost"});
  EXPECT_EQ(no_group.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(no_group.status()), HasSubstr("networks[n1].security_groups"));
  EXPECT_THAT(Msg(no_group.status()), HasSubstr("\"ghost\""));

  EXPECT_EQ(host_.CallsOf("AttachEndpoint"), 0);
  EXPECT_THAT(StoredAllocations("n1"), IsEmpty());
  EXPECT_EQ(Revision(), before);
}

TEST_F(NetworkServiceTest, AttachWorkloadGivesTheAddressBackWhenTheHostFails) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  host_.fail["AttachEndpoint"] = absl::InternalError("veth failed");
  auto got = Attach("n1", "w1");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Msg(got.status()), HasSubstr("networks[n1].network"));
  EXPECT_THAT(Msg(got.status()), HasSubstr("veth failed"));
  EXPECT_EQ(host_.CallsOf("AttachEndpoint"), 1);
  EXPECT_THAT(StoredAllocations("n1"), IsEmpty());
  EXPECT_THAT(*nets_.NetworksOf("w1"), IsEmpty());
}

TEST_F(NetworkServiceTest, AttachWorkloadKeepsAnAddressHeldBeforeWhenTheHostFails) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  ASSERT_TRUE(Attach("n1", "w1").ok());
  host_.fail["AttachEndpoint"] = absl::InternalError("veth failed");
  EXPECT_FALSE(Attach("n1", "w1").ok());
  EXPECT_EQ(StoredAllocations("n1"), (std::map<std::string, std::string>{{"10.88.0.2", "w1"}}));
}

TEST_F(NetworkServiceTest, DetachWorkloadRemovesTheInterfaceAndReleasesTheAddress) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  ASSERT_TRUE(Attach("n1", "w1").ok());
  ASSERT_TRUE(nets_.DetachWorkload("n1", "w1").ok());
  EXPECT_THAT(host_.calls, testing::Contains("DetachEndpoint n1/w1"));
  EXPECT_EQ(host_.Endpoint("n1", "w1"), nullptr);
  EXPECT_THAT(StoredAllocations("n1"), IsEmpty());

  // Detaching what is not there (or from a network that is gone) is a no-op.
  EXPECT_TRUE(nets_.DetachWorkload("n1", "w1").ok());
  EXPECT_TRUE(nets_.DetachWorkload("nope", "w1").ok());
}

TEST_F(NetworkServiceTest, UnplugWorkloadRemovesTheInterfaceButKeepsTheAddress) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  ASSERT_TRUE(Attach("n1", "w1").ok());
  ASSERT_TRUE(nets_.UnplugWorkload("n1", "w1").ok());
  EXPECT_EQ(host_.Endpoint("n1", "w1"), nullptr);
  EXPECT_EQ(StoredAllocations("n1"), (std::map<std::string, std::string>{{"10.88.0.2", "w1"}}));
  // Unplugged twice is fine; plugged again, it has the same address.
  EXPECT_TRUE(nets_.UnplugWorkload("n1", "w1").ok());
  ASSERT_TRUE(Attach("n1", "w2").ok());
  auto again = Attach("n1", "w1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->address, "10.88.0.2");
}

TEST_F(NetworkServiceTest, DetachWorkloadKeepsTheAddressWhenTheHostFails) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  ASSERT_TRUE(Attach("n1", "w1").ok());
  host_.fail["DetachEndpoint"] = absl::InternalError("busy");
  EXPECT_EQ(nets_.DetachWorkload("n1", "w1").code(), absl::StatusCode::kInternal);
  EXPECT_EQ(StoredAllocations("n1"), (std::map<std::string, std::string>{{"10.88.0.2", "w1"}}));
}

TEST_F(NetworkServiceTest, NetworksOfListsTheNetworksAWorkloadIsOn) {
  ASSERT_TRUE(CreateNetwork("front", "10.1.0.0/24").ok());
  ASSERT_TRUE(CreateNetwork("back", "10.2.0.0/24").ok());
  ASSERT_TRUE(CreateNetwork("idle", "10.3.0.0/24").ok());
  ASSERT_TRUE(Attach("front", "w1").ok());
  ASSERT_TRUE(Attach("back", "w1").ok());
  ASSERT_TRUE(Attach("back", "w2").ok());
  EXPECT_THAT(*nets_.NetworksOf("w1"), UnorderedElementsAre("front", "back"));
  EXPECT_THAT(*nets_.NetworksOf("w2"), ElementsAre("back"));
  EXPECT_THAT(*nets_.NetworksOf("w3"), IsEmpty());
  ASSERT_TRUE(nets_.DetachWorkload("front", "w1").ok());
  EXPECT_THAT(*nets_.NetworksOf("w1"), ElementsAre("back"));
}

// --- security groups ---

TEST_F(NetworkServiceTest, AddRuleRefusesBadPortRangesNamingPorts) {
  ASSERT_TRUE(nets_.CreateGroup("web").ok());
  const Json before = *nets_.GetGroup("web");
  const int puts = host_.CallsOf("PutGroup");
  for (const char* ports : {"90-80", "0", "70000", "http", "", "80-", "-80", "1-65536"}) {
    auto got = AddRule("web", "tcp", ports);
    ASSERT_FALSE(got.ok()) << ports;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << ports;
    EXPECT_THAT(Msg(got.status()), HasSubstr("secgroup \"web\": ports")) << ports;
  }
  auto icmp = AddRule("web", "icmp", "80");
  EXPECT_THAT(Msg(icmp.status()), HasSubstr("secgroup \"web\": ports must be empty for icmp"));
  auto proto = AddRule("web", "sctp", "80");
  EXPECT_THAT(Msg(proto.status()), HasSubstr("secgroup \"web\": proto"));
  RuleAddOptions both;
  both.ports = "80";
  both.from_cidr = "10.0.0.0/8";
  both.from_group = "web";
  EXPECT_THAT(Msg(nets_.AddRule("web", both).status()), HasSubstr("secgroup \"web\": from"));
  RuleAddOptions cidr;
  cidr.ports = "80";
  cidr.from_cidr = "10.0.0.300";
  EXPECT_THAT(Msg(nets_.AddRule("web", cidr).status()), HasSubstr("secgroup \"web\": from"));
  auto unknown = AddRule("web", "tcp", "80", "ghost");
  EXPECT_THAT(Msg(unknown.status()), HasSubstr("secgroup \"web\": from_group"));

  EXPECT_EQ(*nets_.GetGroup("web"), before);
  EXPECT_EQ(host_.CallsOf("PutGroup"), puts);
}

TEST_F(NetworkServiceTest, ParsePortRangeAcceptsPortsAndRanges) {
  EXPECT_EQ(*ParsePortRange("g", "80"), (std::pair<int, int>(80, 80)));
  EXPECT_EQ(*ParsePortRange("g", "8000-8080"), (std::pair<int, int>(8000, 8080)));
  EXPECT_EQ(*ParsePortRange("g", "1-65535"), (std::pair<int, int>(1, 65535)));
  EXPECT_FALSE(ParsePortRange("g", "80-90-100").ok());
}

TEST_F(NetworkServiceTest, RulesAreNumberedAndDeclaredOnTheHost) {
  ASSERT_TRUE(nets_.CreateGroup("web").ok());
  EXPECT_TRUE(host_.groups.contains("web"));
  auto r1 = AddRule("web", "tcp", "80-90");
  ASSERT_TRUE(r1.ok()) << r1.status();
  auto r2 = AddRule("web", "icmp", "");
  ASSERT_TRUE(r2.ok()) << r2.status();
  const Json& rules = (*r2)["spec"]["rules"];
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0]["id"], "r1");
  EXPECT_EQ(rules[0]["port_from"], 80);
  EXPECT_EQ(rules[0]["port_to"], 90);
  EXPECT_EQ(rules[1]["id"], "r2");

  ASSERT_EQ(host_.groups["web"].rules.size(), 2u);
  EXPECT_EQ(host_.groups["web"].rules[0].protocol, "tcp");
  EXPECT_EQ(host_.groups["web"].rules[0].port_from, 80);
  EXPECT_EQ(host_.groups["web"].rules[0].port_to, 90);
  EXPECT_EQ(host_.groups["web"].rules[1].protocol, "icmp");

  auto removed = nets_.RemoveRule("web", "r1");
  ASSERT_TRUE(removed.ok()) << removed.status();
  ASSERT_EQ(host_.groups["web"].rules.size(), 1u);
  EXPECT_EQ(host_.groups["web"].rules[0].protocol, "icmp");
  EXPECT_EQ(nets_.RemoveRule("web", "r1").status().code(), absl::StatusCode::kNotFound);
  // Ids are not reused after a removal.
  EXPECT_EQ((*AddRule("web", "udp", "53"))["spec"]["rules"][1]["id"], "r3");
}

TEST_F(NetworkServiceTest, AGroupNamedByAnotherGroupsRuleCannotBeDeleted) {
  ASSERT_TRUE(nets_.CreateGroup("db").ok());
  ASSERT_TRUE(nets_.CreateGroup("app").ok());
  auto rule = AddRule("db", "tcp", "5432", "app");
  ASSERT_TRUE(rule.ok()) << rule.status();
  EXPECT_EQ(host_.groups["db"].rules[0].source_group, "app");

  absl::Status refused = nets_.DeleteGroup("app");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(refused), HasSubstr("rule r1 of secgroup \"db\""));
  EXPECT_EQ(host_.CallsOf("DeleteGroup"), 0);
  EXPECT_TRUE(nets_.GetGroup("app").ok());

  ASSERT_TRUE(nets_.RemoveRule("db", "r1").ok());
  ASSERT_TRUE(nets_.DeleteGroup("app").ok());
  EXPECT_FALSE(host_.groups.contains("app"));
  EXPECT_EQ(nets_.GetGroup("app").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(NetworkServiceTest, AGroupIsUnchangedWhenTheHostRefusesIt) {
  ASSERT_TRUE(nets_.CreateGroup("web").ok());
  ASSERT_TRUE(AddRule("web", "tcp", "80").ok());
  const Json before = *nets_.GetGroup("web");
  const int64_t rev = Revision();
  host_.fail["PutGroup"] = absl::InternalError("nft failed");

  EXPECT_EQ(AddRule("web", "tcp", "443").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(nets_.RemoveRule("web", "r1").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(nets_.CreateGroup("db").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(*nets_.GetGroup("web"), before);
  EXPECT_EQ(nets_.GetGroup("db").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Revision(), rev);
  ASSERT_EQ(host_.groups["web"].rules.size(), 1u);
}

// --- port forwards ---

TEST_F(NetworkServiceTest, PortForwardNeedsAWorkloadWithAnAddress) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  const int64_t before = Revision();
  auto got = Forward("w1", 8080, 80);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(got.status()), HasSubstr("workload \"w1\" has no address"));
  EXPECT_THAT(Msg(Forward("w1", 0, 80).status()), HasSubstr("host_port"));
  EXPECT_THAT(Msg(Forward("w1", 8080, 70000).status()), HasSubstr("port must lie"));
  EXPECT_THAT(Msg(Forward("w1", 8080, 80, "icmp").status()), HasSubstr("proto"));
  EXPECT_EQ(host_.CallsOf("AddForward"), 0);
  EXPECT_EQ(Revision(), before);
}

TEST_F(NetworkServiceTest, OneHostRefusesAForwardThatNamesAHost) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  ASSERT_TRUE(Attach("n1", "w1", "10.88.0.7").ok());
  const int64_t before = Revision();
  auto got = nets_.AddPortForward({.host_port = 8080, .workload = "w1", .port = 80, .host = "h2"});
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(got.status()),
              HasSubstr("portforward \"tcp-8080\": host names a host of a fleet"));
  EXPECT_THAT(Msg(got.status()), HasSubstr("leave it out"));
  EXPECT_EQ(host_.CallsOf("AddForward"), 0);
  EXPECT_EQ(Revision(), before);
}

TEST_F(NetworkServiceTest, PortForwardTargetsTheWorkloadsAddress) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  ASSERT_TRUE(Attach("n1", "w1", "10.88.0.7").ok());
  auto fwd = Forward("w1", 8080, 80);
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  EXPECT_EQ((*fwd)["id"], "tcp-8080");
  ASSERT_TRUE(host_.forwards.contains("tcp-8080"));
  const HostForward& f = host_.forwards["tcp-8080"];
  EXPECT_EQ(f.protocol, "tcp");
  EXPECT_EQ(f.host_port, 8080);
  EXPECT_EQ(f.network, "n1");
  EXPECT_EQ(f.target_address, "10.88.0.7");
  EXPECT_EQ(f.target_port, 80);
  EXPECT_EQ(nets_.ListPortForwards()->size(), 1u);

  const int64_t before = Revision();
  auto dup = Forward("w1", 8080, 81);
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Msg(dup.status()), HasSubstr("host_port 8080/tcp"));
  EXPECT_EQ(host_.CallsOf("AddForward"), 1);
  EXPECT_EQ(Revision(), before);
  // The same port number over udp is another forward.
  EXPECT_TRUE(Forward("w1", 8080, 80, "udp").ok());

  // The network cannot go while a forward uses it, even once the workload has left.
  ASSERT_TRUE(nets_.DetachWorkload("n1", "w1").ok());
  absl::Status refused = nets_.DeleteNetwork("n1");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(refused), HasSubstr("port forward"));

  ASSERT_TRUE(nets_.RemovePortForward("tcp-8080").ok());
  ASSERT_TRUE(nets_.RemovePortForward("udp-8080").ok());
  EXPECT_THAT(host_.forwards, IsEmpty());
  EXPECT_THAT(*nets_.ListPortForwards(), IsEmpty());
  EXPECT_TRUE(nets_.DeleteNetwork("n1").ok());
}

TEST_F(NetworkServiceTest, PortForwardRefusesTheApisOwnPortOverTcp) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  ASSERT_TRUE(Attach("n1", "w1").ok());
  nets_.ReserveHostPort(7070, "Berth's API");
  const int64_t before = Revision();
  auto refused = Forward("w1", 7070, 80);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(refused.status()), HasSubstr("host_port 7070 is taken by Berth's API"));
  EXPECT_EQ(host_.CallsOf("AddForward"), 0);
  EXPECT_EQ(Revision(), before);
  // The API listens on TCP only; the other ports stay free.
  EXPECT_TRUE(Forward("w1", 7070, 80, "udp").ok());
  EXPECT_TRUE(Forward("w1", 7071, 80).ok());
}

TEST_F(NetworkServiceTest, PortForwardRefusesAPortASocketHoldsOnTheHost) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  ASSERT_TRUE(Attach("n1", "w1").ok());
  host_.busy_ports = {"tcp/22"};
  const int64_t before = Revision();
  auto refused = Forward("w1", 22, 80);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(refused.status()), HasSubstr("portforward \"22\": host_port 22/tcp is in use"));
  EXPECT_EQ(host_.CallsOf("AddForward"), 0);
  EXPECT_EQ(Revision(), before);
  // The check is per protocol.
  EXPECT_TRUE(Forward("w1", 22, 80, "udp").ok());
  EXPECT_THAT(host_.calls, testing::Contains("CheckPortFree udp/22"));
}

TEST_F(NetworkServiceTest, AllocateAddressRefusesAnOwnerThatIsNoWorkloadName) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  const int64_t before = Revision();
  const std::vector<std::string> owners = {"",      "a\nb", "x; rm -rf /",       "$(reboot)",
                                           "Upper", "-x",   std::string(64, 'a')};
  for (const std::string& owner : owners) {
    auto got = nets_.AllocateAddress("n1", owner, "");
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << owner;
    EXPECT_THAT(Msg(got.status()), HasSubstr("network \"n1\": owner")) << owner;
  }
  EXPECT_EQ(Revision(), before);
  EXPECT_THAT(StoredAllocations("n1"), IsEmpty());
  EXPECT_TRUE(nets_.AllocateAddress("n1", "train-7", "").ok());
}

TEST_F(NetworkServiceTest, PortForwardStoresNothingWhenTheHostFails) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  ASSERT_TRUE(Attach("n1", "w1").ok());
  host_.fail["AddForward"] = absl::InternalError("nft failed");
  const int64_t before = Revision();
  EXPECT_EQ(Forward("w1", 8080, 80).status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(*nets_.ListPortForwards(), IsEmpty());
  EXPECT_EQ(Revision(), before);
}

// --- restart ---

TEST_F(NetworkServiceTest, StartRedeclaresEverythingOnAFreshHostAndKeepsOnlyThat) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  ASSERT_TRUE(CreateNetwork("n2", "10.89.0.0/24").ok());
  ASSERT_TRUE(nets_.CreateGroup("app").ok());
  ASSERT_TRUE(nets_.CreateGroup("db").ok());
  ASSERT_TRUE(AddRule("db", "tcp", "5432", "app").ok());
  ASSERT_TRUE(Attach("n1", "w1", "", {"app"}).ok());
  ASSERT_TRUE(Attach("n2", "w2").ok());
  ASSERT_TRUE(Forward("w1", 8080, 80).ok());

  // A restarted server: the same store, a host that remembers nothing.
  FakeNetworkHost fresh;
  NetworkService restarted(&store_, &clock_, &fresh);
  const int64_t before = Revision();
  ASSERT_TRUE(restarted.Start().ok());

  ASSERT_EQ(fresh.networks.size(), 2u);
  EXPECT_EQ(fresh.networks["n1"].subnet, "10.88.0.0/24");
  EXPECT_EQ(fresh.networks["n2"].gateway, "10.89.0.1");
  ASSERT_TRUE(fresh.groups.contains("app"));
  ASSERT_EQ(fresh.groups["db"].rules.size(), 1u);
  EXPECT_EQ(fresh.groups["db"].rules[0].source_group, "app");
  EXPECT_EQ(fresh.groups["db"].rules[0].port_from, 5432);
  // Groups are declared bare before any rule can name one of them.
  ASSERT_EQ(fresh.group_puts.size(), 4u);
  EXPECT_THAT(fresh.group_puts[0].rules, IsEmpty());
  EXPECT_THAT(fresh.group_puts[1].rules, IsEmpty());
  ASSERT_TRUE(fresh.forwards.contains("tcp-8080"));
  EXPECT_EQ(fresh.forwards["tcp-8080"].target_address, "10.88.0.2");
  EXPECT_EQ(fresh.forwards["tcp-8080"].target_port, 80);

  ASSERT_EQ(fresh.cleanups.size(), 1u);
  const HostKeep& keep = fresh.cleanups[0];
  EXPECT_EQ(keep.networks, (std::set<std::string>{"n1", "n2"}));
  const std::set<std::pair<std::string, std::string>> endpoints = {{"n1", "w1"}, {"n2", "w2"}};
  EXPECT_EQ(keep.endpoints, endpoints);
  EXPECT_EQ(keep.groups, (std::set<std::string>{"app", "db"}));
  EXPECT_EQ(keep.forwards, (std::set<std::string>{"tcp-8080"}));
  EXPECT_EQ(fresh.calls.back(), "Cleanup ");  // after everything was declared
  EXPECT_EQ(Revision(), before);              // the store is only read
}

TEST_F(NetworkServiceTest, StartReportsAHostFailureAndStillCleansUp) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  FakeNetworkHost fresh;
  fresh.fail["EnsureNetwork"] = absl::InternalError("no bridge");
  NetworkService restarted(&store_, &clock_, &fresh);
  absl::Status s = restarted.Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  ASSERT_EQ(fresh.cleanups.size(), 1u);
  EXPECT_THAT(fresh.cleanups[0].networks, IsEmpty());
}

TEST_F(NetworkServiceTest, StartOnAHostThatKeptItsForwardsIsClean) {
  ASSERT_TRUE(CreateNetwork("n1", "10.88.0.0/24").ok());
  ASSERT_TRUE(Attach("n1", "w1").ok());
  ASSERT_TRUE(Forward("w1", 8080, 80).ok());
  // The same host (its forward still there) after a server restart.
  NetworkService restarted(&store_, &clock_, &host_);
  EXPECT_TRUE(restarted.Start().ok());
  ASSERT_FALSE(host_.cleanups.empty());
  EXPECT_EQ(host_.cleanups.back().forwards, (std::set<std::string>{"tcp-8080"}));
}

}  // namespace
}  // namespace berth::control
