#include "runtime/net/linux_network_driver.h"

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"
#include "nlohmann/json.hpp"
#include "runtime/host/file.h"
#include "runtime/host/process.h"
#include "runtime/net/fake_network_driver.h"

namespace berth::runtime::net {
namespace {

namespace fs = std::filesystem;
using core::Cat;

std::string NetnsPath(const std::string& netns) {
  return netns.find('/') == std::string::npos ? "/run/netns/" + netns : netns;
}

int ReadPid(const std::string& path) {
  std::ifstream in(path);
  int pid = 0;
  in >> pid;
  return pid;
}

// True when `pid` runs (not a zombie: nobody may reap a daemon's exit in a container) and is the
// dnsmasq started with `pid_file`.
bool IsDnsmasqOf(pid_t pid, const std::string& pid_file) {
  if (!host::IsRunning({.pid = pid})) return false;
  const std::string flag = "--pid-file=" + pid_file;
  for (const std::string& arg : host::ProcessCmdline(pid)) {
    if (arg == flag) return true;
  }
  return false;
}

}  // namespace

std::string InstanceIdForDir(const std::string& dir) {
  std::error_code ec;
  fs::path path = fs::absolute(dir, ec);
  if (ec) path = dir;
  fs::path resolved = fs::weakly_canonical(path, ec);
  if (!ec) path = resolved;
  std::string text = path.lexically_normal().string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return InstanceIdOf(text);
}

namespace {

LinuxNetworkDriver::Options WithInstance(LinuxNetworkDriver::Options o) {
  if (o.instance.empty()) o.instance = InstanceIdForDir(o.state_dir);
  if (!ValidInstanceId(o.instance)) {
    std::fprintf(stderr, "LinuxNetworkDriver: instance must be %zu hex digits, got \"%s\"\n",
                 kInstanceIdLength, o.instance.c_str());
    std::abort();
  }
  return o;
}

}  // namespace

LinuxNetworkDriver::LinuxNetworkDriver(Options options)
    : options_(WithInstance(std::move(options))), model_(options_.instance) {}

std::string LinuxNetworkDriver::DhcpDir(std::string_view network) const {
  return Cat(options_.state_dir, "/dnsmasq/", network);
}

absl::StatusOr<std::string> LinuxNetworkDriver::Run(const std::vector<std::string>& argv,
                                                    const std::string& stdin_data) const {
  host::RunOptions opts;
  opts.netns = options_.netns;
  opts.stdin_data = stdin_data;
  return host::RunOk(host::ExecutorOr(options_.executor), argv, opts);
}

pid_t LinuxNetworkDriver::DhcpPid(std::string_view network) const {
  const std::string pid_file = DhcpDir(network) + "/pid";
  pid_t pid = ReadPid(pid_file);
  return pid > 0 && IsDnsmasqOf(pid, pid_file) ? pid : 0;
}

absl::Status LinuxNetworkDriver::IpBatch(const std::string& commands) const {
  return Run({"ip", "-batch", "-"}, commands).status();
}

absl::StatusOr<std::map<std::string, std::string>> LinuxNetworkDriver::Links() const {
  BERTH_ASSIGN_OR_RETURN(std::string out, Run({"ip", "-j", "link", "show"}));
  nlohmann::json j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return absl::InternalError("ip -j link show: unreadable output");
  std::map<std::string, std::string> links;
  for (const auto& link : j) {
    if (!link.is_object() || !link.contains("ifname") || !link["ifname"].is_string()) continue;
    std::string alias;
    if (link.contains("ifalias") && link["ifalias"].is_string()) {
      alias = link["ifalias"].get<std::string>();
    }
    links[link["ifname"].get<std::string>()] = std::move(alias);
  }
  return links;
}

absl::Status LinuxNetworkDriver::CheckNotForeign(const std::map<std::string, std::string>& links,
                                                 const std::string& name) const {
  auto it = links.find(name);
  ParsedLinkAlias alias;
  if (it == links.end() || !ParseLinkAlias(it->second, &alias) ||
      alias.instance == options_.instance) {
    return absl::OkStatus();
  }
  // Only a clash of the short ids in two data directories' names gets here.
  return absl::FailedPreconditionError(
      Cat("link ", name, " belongs to another Berth instance (", alias.instance, ", ", alias.kind,
          " of network \"", alias.network, "\"); this instance is ", options_.instance,
          ": start it with another data directory"));
}

absl::Status LinuxNetworkDriver::DeleteLink(const std::string& name) const {
  BERTH_ASSIGN_OR_RETURN(auto links, Links());
  if (!links.contains(name)) return absl::OkStatus();
  BERTH_RETURN_IF_ERROR(CheckNotForeign(links, name));
  return Run({"ip", "link", "del", "dev", name}).status();
}

absl::Status LinuxNetworkDriver::SyncFloodPeers(const std::string& vxlan,
                                                const std::vector<std::string>& peers) const {
  constexpr std::string_view kFlood = "00:00:00:00:00:00";
  BERTH_ASSIGN_OR_RETURN(std::string shown, Run({"bridge", "-j", "fdb", "show", "dev", vxlan}));
  std::set<std::string> have;
  if (!absl::StripAsciiWhitespace(shown).empty()) {
    nlohmann::json entries = nlohmann::json::parse(shown, nullptr, /*allow_exceptions=*/false);
    if (!entries.is_array()) {
      return absl::InternalError(Cat("tunnel ", vxlan, ": bridge fdb show printed no JSON list"));
    }
    for (const nlohmann::json& e : entries) {
      if (e.is_object() && e.value("mac", "") == kFlood && e.contains("dst") &&
          e["dst"].is_string()) {
        have.insert(e["dst"].get<std::string>());
      }
    }
  }
  const std::set<std::string> want(peers.begin(), peers.end());
  for (const std::string& gone : have) {
    if (want.contains(gone)) continue;
    BERTH_RETURN_IF_ERROR(
        Run({"bridge", "fdb", "del", std::string(kFlood), "dev", vxlan, "dst", gone}).status());
  }
  for (const std::string& peer : want) {
    if (have.contains(peer)) continue;
    BERTH_RETURN_IF_ERROR(
        Run({"bridge", "fdb", "append", std::string(kFlood), "dev", vxlan, "dst", peer}).status());
  }
  return absl::OkStatus();
}

absl::Status LinuxNetworkDriver::ApplyRules(const NetworkModel& model) const {
  return Run({"nft", "-f", "-"}, RenderNftRuleset(model)).status();
}

absl::Status LinuxNetworkDriver::StartDhcp(const NetworkRecord& net,
                                           const NetworkModel& model) const {
  std::string dir = DhcpDir(net.spec.name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(Cat("network \"", net.spec.name, "\": mkdir ", dir));
  if (DhcpPid(net.spec.name) != 0) return ReloadDhcp(model, net.spec.name);
  if (absl::Status s =
          host::WriteFileAtomically(dir + "/hosts", RenderDhcpHosts(model, net.spec.name));
      !s.ok()) {
    return absl::Status(s.code(), Cat("network \"", net.spec.name, "\": ", s.message()));
  }
  fs::remove(dir + "/pid", ec);
  const auto& a = net.addressing;
  std::vector<std::string> argv = {
      "dnsmasq",
      "--conf-file=/dev/null",
      "--port=0",
      "--pid-file=" + dir + "/pid",
      "--dhcp-leasefile=" + dir + "/leases",
      "--dhcp-hostsfile=" + dir + "/hosts",
      "--log-facility=" + dir + "/log",
      "--interface=" + net.bridge,
      "--bind-interfaces",
      "--except-interface=lo",
      "--user=root",
      Cat("--dhcp-range=", FormatIpv4(a.subnet.network), ",static,", a.subnet.MaskString(), ",1h"),
      "--dhcp-option=option:router," + FormatIpv4(a.gateway)};
  // Across hosts every host's dnsmasq hears every VM's broadcasts but knows only its own VMs:
  // it must stay silent for the others instead of refusing them as an authoritative server.
  if (!net.spec.vxlan) argv.push_back("--dhcp-authoritative");
  if (net.spec.mtu > 0) argv.push_back(Cat("--dhcp-option=option:mtu,", net.spec.mtu));
  BERTH_RETURN_IF_ERROR(Run(argv));
  absl::Time deadline = absl::Now() + options_.process_deadline;
  while (DhcpPid(net.spec.name) == 0) {
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          Cat("network \"", net.spec.name, "\": dnsmasq did not start (see ", dir, "/log)"));
    }
    absl::SleepFor(absl::Milliseconds(10));  // polling a pid file the daemon writes
  }
  return absl::OkStatus();
}

absl::Status LinuxNetworkDriver::ReloadDhcp(const NetworkModel& model,
                                            std::string_view network) const {
  std::string dir = DhcpDir(network);
  const std::string pid_file = dir + "/pid";
  pid_t pid = DhcpPid(network);
  if (pid == 0) return absl::OkStatus();
  std::string hosts = RenderDhcpHosts(model, network);
  if (host::ReadFile(dir + "/hosts").value_or("") == hosts) return absl::OkStatus();
  if (absl::Status s = host::WriteFileAtomically(dir + "/hosts", hosts); !s.ok()) {
    return absl::Status(s.code(), Cat("network \"", network, "\": ", s.message()));
  }
  // dnsmasq re-reads --dhcp-hostsfile. Gone meanwhile: the next start reads the new file.
  absl::Status s =
      host::SignalProcessIf(pid, SIGHUP, [&](pid_t p) { return IsDnsmasqOf(p, pid_file); });
  if (!s.ok() && !absl::IsNotFound(s)) {
    return absl::Status(s.code(), Cat("network \"", network, "\": reload dnsmasq: ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status LinuxNetworkDriver::StopDhcp(std::string_view network) const {
  std::string dir = DhcpDir(network);
  std::error_code ec;
  if (!fs::exists(dir, ec)) return absl::OkStatus();
  const std::string pid_file = dir + "/pid";
  // Checked before every signal: the pid in the file may have been reused by now.
  auto ours = [&pid_file](pid_t p) { return IsDnsmasqOf(p, pid_file); };
  pid_t pid = ReadPid(pid_file);
  absl::Status signalled = host::SignalProcessIf(pid, SIGTERM, ours);
  if (signalled.ok()) {
    absl::Time deadline = absl::Now() + options_.process_deadline;
    while (ours(pid)) {
      if (absl::Now() > deadline) {
        signalled = host::SignalProcessIf(pid, SIGKILL, ours);
        if (!signalled.ok() && !absl::IsNotFound(signalled)) {
          return absl::Status(signalled.code(), Cat("network \"", network,
                                                    "\": stop dnsmasq: ", signalled.message()));
        }
        deadline = absl::Now() + options_.process_deadline;
      }
      absl::SleepFor(absl::Milliseconds(5));  // waiting for another process to exit
    }
  } else if (!absl::IsNotFound(signalled)) {
    return absl::Status(signalled.code(),
                        Cat("network \"", network, "\": stop dnsmasq: ", signalled.message()));
  }
  fs::remove_all(dir, ec);
  if (ec) return absl::InternalError(Cat("network \"", network, "\": remove ", dir));
  return absl::OkStatus();
}

void LinuxNetworkDriver::HoldRules() {
  absl::MutexLock lock(&mu_);
  hold_rules_ = true;
}

absl::Status LinuxNetworkDriver::ReleaseRules() {
  absl::MutexLock lock(&mu_);
  if (!hold_rules_) return absl::OkStatus();
  hold_rules_ = false;
  return Commit(model_);
}

absl::Status LinuxNetworkDriver::Commit(NetworkModel next) {
  if (hold_rules_) {
    model_ = std::move(next);
    return absl::OkStatus();
  }
  bool any_protected = false;
  for (const auto& [_, e] : next.endpoints()) any_protected |= !e.spec.security_groups.empty();
  if (any_protected) {
    // Bridged traffic between endpoints bypasses the inet hooks unless br_netfilter passes it.
    auto on = Run({"sysctl", "-n", "net.bridge.bridge-nf-call-iptables"});
    if (!on.ok() || on->substr(0, 1) != "1") {
      return absl::FailedPreconditionError(
          "security_groups need bridged traffic filtered: load br_netfilter and set "
          "net.bridge.bridge-nf-call-iptables=1");
    }
  }
  BERTH_RETURN_IF_ERROR(SyncLegs(next));
  // Loopback routing through a bridge is turned off before its guard goes, and on after the
  // guard is in (see LocalnetBridges).
  std::map<std::string, bool> localnet;
  for (const auto& [_, net] : next.networks()) localnet[net.bridge] = false;
  for (const std::string& bridge : LocalnetBridges(next)) localnet[bridge] = true;
  for (const auto& [bridge, on] : localnet) {
    if (!on) SetRouteLocalnet(bridge, false);
  }
  BERTH_RETURN_IF_ERROR(ApplyRules(next));
  for (const auto& [bridge, on] : localnet) {
    if (on) SetRouteLocalnet(bridge, true);
  }
  for (auto it = localnet_.begin(); it != localnet_.end();) {
    it = localnet.contains(it->first) ? std::next(it) : localnet_.erase(it);
  }
  for (const auto& [name, net] : next.networks()) {
    if (net.spec.dhcp) BERTH_RETURN_IF_ERROR(ReloadDhcp(next, name));
  }
  model_ = std::move(next);
  return absl::OkStatus();
}

absl::Status LinuxNetworkDriver::SyncLegs(const NetworkModel& next) {
  const std::map<std::string, Leg> wanted = Legs(next);
  for (auto it = legs_.begin(); it != legs_.end();) {
    if (wanted.contains(it->first)) {
      ++it;
      continue;
    }
    BERTH_RETURN_IF_ERROR(DeleteLink(it->second.link));  // its peer in the bridge goes with it
    it = legs_.erase(it);
  }
  if (wanted.empty()) return absl::OkStatus();
  BERTH_ASSIGN_OR_RETURN(auto links, Links());
  for (const auto& entry : wanted) {
    const std::string& network = entry.first;
    const Leg& leg = entry.second;
    auto known = legs_.find(network);
    const bool there = links.contains(leg.link);
    if (there && known != legs_.end() && known->second == leg) continue;
    const NetworkRecord* net = next.FindNetwork(network);
    if (net == nullptr) {
      return absl::FailedPreconditionError(
          Cat("network \"", network, "\": not on this host, so it has no leg"));
    }
    BERTH_RETURN_IF_ERROR(CheckNotForeign(links, leg.link));
    absl::Status made =
        MakeLeg(network, leg, *net, known == legs_.end() ? nullptr : &known->second, there);
    if (!made.ok()) {
      legs_.erase(network);
      return absl::Status(made.code(), Cat("network \"", network, "\": the host's leg ", leg.link,
                                           ": ", made.message()));
    }
    legs_[network] = leg;
  }
  return absl::OkStatus();
}

absl::Status LinuxNetworkDriver::MakeLeg(const std::string& network, const Leg& leg,
                                         const NetworkRecord& net, const Leg* known,
                                         bool there) const {
  const std::string& inst = options_.instance;
  const std::string mtu = net.spec.mtu > 0 ? Cat(" mtu ", net.spec.mtu) : "";
  // A leg made by an earlier run (or with another address) starts over from a bare link; one
  // this run made changes only its routes.
  const bool fresh = !there || known == nullptr || known->address != leg.address;
  if (!there) {
    BERTH_RETURN_IF_ERROR(IpBatch(Cat("link add ", leg.link, mtu, " type veth peer name ",
                                      LegPeerName(inst, network), mtu, "\n")));
  }
  if (fresh) {
    // The leg answers ARP only for its own address (never for the gateway, which the bridge
    // answers), and asks from it; the bridge answers only for the gateway (its MAC is every
    // host's gateway MAC: an answer for the leg's address from it would not come back).
    BERTH_RETURN_IF_ERROR(Run({"sysctl", "-qw", Cat("net.ipv4.conf.", leg.link, ".arp_ignore=1"),
                               Cat("net.ipv4.conf.", leg.link, ".arp_announce=2"),
                               Cat("net.ipv4.conf.", net.bridge, ".arp_ignore=1")})
                              .status());
  }
  std::string batch;
  std::set<std::string> had;
  if (fresh) {
    batch += Cat("link set ", LegPeerName(inst, network), " alias ",
                 LinkAlias(inst, "leg", network, "bridge"), " master ", net.bridge, mtu, " up\n");
    batch +=
        Cat("link set ", leg.link, " alias ", LinkAlias(inst, "leg", network, ""), mtu, " up\n");
    batch += Cat("addr flush dev ", leg.link, "\n", "route flush dev ", leg.link, "\n");
    batch += Cat("addr add ", leg.address, "/32 dev ", leg.link, "\n");
  } else {
    had = known->targets;
  }
  for (const std::string& t : had) {
    if (!leg.targets.contains(t)) batch += Cat("route del ", t, "/32 dev ", leg.link, "\n");
  }
  for (const std::string& t : leg.targets) {
    if (!had.contains(t)) {
      batch += Cat("route replace ", t, "/32 dev ", leg.link, " src ", leg.address, "\n");
    }
  }
  return IpBatch(batch);
}

void LinuxNetworkDriver::SetRouteLocalnet(const std::string& bridge, bool on) {
  auto known = localnet_.find(bridge);
  if (known != localnet_.end() && known->second == on) return;
  absl::Status s =
      Run({"sysctl", "-qw", Cat("net.ipv4.conf.", bridge, ".route_localnet=", on ? 1 : 0)})
          .status();
  // Without it only forwards reached at 127.0.0.1 fail; every other path works.
  core::ReportError("net", Cat("bridge ", bridge, ": route_localnet"), s);
  if (s.ok()) {
    localnet_[bridge] = on;
  } else {
    localnet_.erase(bridge);
  }
}

absl::StatusOr<NetworkInfo> LinuxNetworkDriver::EnsureNetwork(const NetworkSpec& spec,
                                                              const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(NetworkRecord rec, model_.PrepareNetwork(spec));
  BERTH_ASSIGN_OR_RETURN(auto links, Links());
  auto has = [&](const std::string& n) { return links.contains(n); };
  const std::string& br = rec.bridge;
  const std::string vx = VxlanName(options_.instance, spec.name);
  BERTH_RETURN_IF_ERROR(CheckNotForeign(links, br));
  BERTH_RETURN_IF_ERROR(CheckNotForeign(links, vx));
  std::vector<std::string> created;
  auto fail = [&](absl::Status s) {
    for (auto it = created.rbegin(); it != created.rend(); ++it) {
      core::ReportError("net",
                        Cat("network ", spec.name, ": remove link ", *it, " after a failure"),
                        DeleteLink(*it));
    }
    return s;
  };

  std::string batch;
  if (!has(br)) {
    batch += Cat("link add ", br, " type bridge\n");
    created.push_back(br);
  }
  batch +=
      Cat("link set ", br, " alias ", LinkAlias(options_.instance, "net", spec.name, ""), "\n");
  batch += Cat("addr replace ", FormatIpv4(rec.addressing.gateway), "/",
               rec.addressing.subnet.length, " dev ", br, "\n");
  if (spec.mtu > 0) batch += Cat("link set ", br, " mtu ", spec.mtu, "\n");
  // Every host's bridge answers for the gateway with the same MAC (see GatewayMac).
  if (spec.vxlan) batch += Cat("link set ", br, " address ", GatewayMac(spec.name), "\n");
  batch += Cat("link set ", br, " up\n");
  // A changed or removed tunnel is rebuilt from scratch; a change of peers only is not.
  const NetworkRecord* old = model_.FindNetwork(spec.name);
  auto same_tunnel = [](const VxlanSpec& a, const VxlanSpec& b) {
    return a.vni == b.vni && a.local_address == b.local_address && a.port == b.port &&
           a.underlay_device == b.underlay_device;
  };
  if (has(vx) && (!spec.vxlan || (old != nullptr && old->spec.vxlan &&
                                  !same_tunnel(*old->spec.vxlan, *spec.vxlan)))) {
    BERTH_RETURN_IF_ERROR(DeleteLink(vx));
    links.erase(vx);
  }
  if (spec.vxlan && !has(vx)) {
    const VxlanSpec& v = *spec.vxlan;
    batch += Cat("link add ", vx, spec.mtu > 0 ? Cat(" mtu ", spec.mtu) : "", " type vxlan id ",
                 v.vni, " local ", v.local_address, " dstport ", v.port,
                 v.underlay_device.empty() ? "" : Cat(" dev ", v.underlay_device), "\n");
    batch += Cat("link set ", vx, " alias ", LinkAlias(options_.instance, "vx", spec.name, ""),
                 " master ", br, " up\n");
    created.push_back(vx);
  } else if (spec.vxlan && spec.mtu > 0) {
    batch += Cat("link set ", vx, " mtu ", spec.mtu, "\n");
  }
  if (absl::Status s = IpBatch(batch); !s.ok()) return fail(s);
  if (spec.vxlan) {
    // Head-end replication: broadcast and unknown frames go to every peer.
    if (absl::Status s = SyncFloodPeers(vx, spec.vxlan->peers); !s.ok()) return fail(s);
  }
  // Routing for NAT and port forwards; bridged IPv4 through netfilter for security groups. The
  // second needs br_netfilter: without it only group enforcement on bridged traffic is lost.
  if (absl::Status s = Run({"sysctl", "-qw", "net.ipv4.ip_forward=1"}).status(); !s.ok()) {
    return fail(s);
  }
  if (absl::Status s = Run({"sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"}).status();
      !s.ok()) {
    core::LogWarn("network %s: bridged traffic bypasses security groups (no br_netfilter): %s",
                  spec.name, s.ToString());
  }

  NetworkModel next = model_;
  next.CommitNetwork(rec);
  if (spec.dhcp) {
    if (absl::Status s = StartDhcp(rec, next); !s.ok()) return fail(s);
  } else {
    core::ReportError("net", Cat("network ", spec.name, ": stop dhcp"), StopDhcp(spec.name));
  }
  if (absl::Status s = Commit(std::move(next)); !s.ok()) {
    if (spec.dhcp && model_.FindNetwork(spec.name) == nullptr) {
      core::ReportError("net", Cat("network ", spec.name, ": stop dhcp after a failure"),
                        StopDhcp(spec.name));
    }
    return fail(s);
  }
  return InfoOf(model_, *model_.FindNetwork(spec.name));
}

absl::Status LinuxNetworkDriver::DeleteNetwork(std::string_view name,
                                               const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  const NetworkRecord* rec = model_.FindNetwork(name);
  if (rec == nullptr) return absl::NotFoundError(Cat("network \"", name, "\" not found"));
  std::string bridge = rec->bridge;
  std::vector<std::string> endpoint_links;
  for (const auto& [key, e] : model_.endpoints()) {
    if (key.first == name) endpoint_links.push_back(e.host_ifname);
  }
  NetworkModel next = model_;
  next.RemoveNetwork(name);
  BERTH_RETURN_IF_ERROR(Commit(std::move(next)));
  // Tear down everything even if one step fails; report the first failure.
  absl::Status first;
  auto note = [&](absl::Status s) {
    if (first.ok() && !s.ok()) first = s;
  };
  for (const auto& link : endpoint_links) note(DeleteLink(link));
  note(StopDhcp(name));
  note(DeleteLink(VxlanName(options_.instance, name)));
  note(DeleteLink(bridge));
  return first;
}

std::vector<NetworkInfo> LinuxNetworkDriver::ListNetworks() {
  absl::MutexLock lock(&mu_);
  return ListNetworksOf(model_);
}

absl::StatusOr<EndpointInfo> LinuxNetworkDriver::AttachEndpoint(const EndpointSpec& spec,
                                                                const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(EndpointRecord rec, model_.PrepareEndpoint(spec));
  const NetworkRecord& net = *model_.FindNetwork(spec.network);
  const std::string alias = LinkAlias(options_.instance, "ep", spec.network, spec.id);
  BERTH_ASSIGN_OR_RETURN(auto links, Links());
  BERTH_RETURN_IF_ERROR(CheckNotForeign(links, rec.host_ifname));
  const std::string mtu = net.spec.mtu > 0 ? Cat(" mtu ", net.spec.mtu) : "";
  if (links.contains(rec.host_ifname)) {
    // Re-declared after an agent restart: adopt the link that survived.
    BERTH_RETURN_IF_ERROR(IpBatch(
        Cat("link set ", rec.host_ifname, " alias ", alias, " master ", net.bridge, mtu, " up\n")));
  } else if (spec.kind == EndpointKind::kVeth) {
    std::string ns_path = NetnsPath(spec.netns);
    if (!fs::exists(ns_path)) {
      return core::FieldError("endpoint", spec.id, "netns",
                              Cat("names no network namespace: ", ns_path));
    }
    const std::string peer = PeerName(options_.instance, spec.network, spec.id);
    absl::Status s =
        IpBatch(Cat("link add ", rec.host_ifname, mtu, " type veth peer name ", peer, mtu, "\n",
                    "link set ", rec.host_ifname, " alias ", alias, " master ", net.bridge, " up\n",
                    "link set ", peer, " netns ", ns_path, "\n"));
    if (s.ok()) {
      host::RunOptions in_container;
      in_container.netns = ns_path;
      in_container.stdin_data = Cat(
          "link set ", peer, " name ", spec.ifname, "\n", "link set ", spec.ifname, " address ",
          rec.mac, "\n", "addr add ", FormatIpv4(rec.address), "/", net.addressing.subnet.length,
          " dev ", spec.ifname, "\n", "link set ", spec.ifname, " up\n", "link set lo up\n",
          "route replace default via ", FormatIpv4(net.addressing.gateway), "\n");
      s = host::RunOk(host::ExecutorOr(options_.executor), {"ip", "-batch", "-"}, in_container)
              .status();
    }
    if (!s.ok()) {
      // The host end takes the peer with it wherever it is.
      core::ReportError("net", Cat("endpoint ", spec.id, ": remove link ", rec.host_ifname),
                        DeleteLink(rec.host_ifname));
      core::ReportError("net", Cat("endpoint ", spec.id, ": remove link ", peer), DeleteLink(peer));
      return s;
    }
  } else {
    BERTH_RETURN_IF_ERROR(
        IpBatch(Cat("tuntap add dev ", rec.host_ifname, " mode tap\n", "link set ", rec.host_ifname,
                    " alias ", alias, " master ", net.bridge, mtu, " up\n")));
  }
  EndpointInfo info = InfoOf(rec);
  NetworkModel next = model_;
  next.CommitEndpoint(std::move(rec));
  if (absl::Status s = Commit(std::move(next)); !s.ok()) {
    core::ReportError("net", Cat("endpoint ", spec.id, ": remove link ", info.host_ifname),
                      DeleteLink(info.host_ifname));
    return s;
  }
  return info;
}

absl::Status LinuxNetworkDriver::DetachEndpoint(std::string_view network, std::string_view id,
                                                const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  const EndpointRecord* rec = model_.FindEndpoint(network, id);
  if (rec == nullptr) {
    return absl::NotFoundError(Cat("endpoint \"", id, "\" not found on network \"", network, "\""));
  }
  std::string link = rec->host_ifname;
  NetworkModel next = model_;
  next.RemoveEndpoint(network, id);
  BERTH_RETURN_IF_ERROR(Commit(std::move(next)));
  return DeleteLink(link);
}

std::vector<EndpointInfo> LinuxNetworkDriver::ListEndpoints(std::string_view network) {
  absl::MutexLock lock(&mu_);
  return ListEndpointsOf(model_, network);
}

absl::Status LinuxNetworkDriver::SetEndpointGroups(std::string_view network, std::string_view id,
                                                   const std::vector<std::string>& groups,
                                                   const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  NetworkModel next = model_;
  BERTH_RETURN_IF_ERROR(next.SetEndpointGroups(network, id, groups));
  return Commit(std::move(next));
}

absl::Status LinuxNetworkDriver::PutSecurityGroup(const SecurityGroup& group,
                                                  const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  BERTH_RETURN_IF_ERROR(model_.PrepareGroup(group));
  NetworkModel next = model_;
  next.CommitGroup(group);
  return Commit(std::move(next));
}

absl::Status LinuxNetworkDriver::DeleteSecurityGroup(std::string_view name,
                                                     const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  BERTH_RETURN_IF_ERROR(model_.CheckGroupUnused(name));
  NetworkModel next = model_;
  next.RemoveGroup(name);
  return Commit(std::move(next));
}

absl::Status LinuxNetworkDriver::AddPortForward(const PortForward& forward,
                                                const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  BERTH_RETURN_IF_ERROR(model_.PrepareForward(forward));
  NetworkModel next = model_;
  next.CommitForward(forward);
  return Commit(std::move(next));
}

absl::Status LinuxNetworkDriver::RemovePortForward(std::string_view id,
                                                   const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  if (!model_.forwards().contains(std::string(id))) {
    return absl::NotFoundError(Cat("port forward \"", id, "\" not found"));
  }
  NetworkModel next = model_;
  next.RemoveForward(id);
  return Commit(std::move(next));
}

std::vector<PortForward> LinuxNetworkDriver::ListPortForwards() {
  absl::MutexLock lock(&mu_);
  return ListForwardsOf(model_);
}

absl::Status LinuxNetworkDriver::Cleanup(const KeepSet& keep) {
  absl::MutexLock lock(&mu_);
  NetworkModel next = KeepOnly(model_, keep);
  // What the keep set names survives even if it was not re-declared yet.
  const std::string& inst = options_.instance;
  std::set<std::string> wanted;
  for (const auto& name : keep.networks) {
    wanted.insert(BridgeName(inst, name));
    wanted.insert(VxlanName(inst, name));
  }
  for (const auto& [network, id] : keep.endpoints) {
    wanted.insert(VethName(inst, network, id));
    wanted.insert(TapName(inst, network, id));
  }
  for (const auto& [name, net] : next.networks()) {
    wanted.insert(net.bridge);
    if (net.spec.vxlan) wanted.insert(VxlanName(inst, name));
  }
  for (const auto& [_, e] : next.endpoints()) wanted.insert(e.host_ifname);
  for (const auto& [network, leg] : Legs(next)) {
    wanted.insert(leg.link);
    wanted.insert(LegPeerName(inst, network));
  }
  BERTH_RETURN_IF_ERROR(Commit(std::move(next)));

  absl::Status first;
  auto note = [&](absl::Status s) {
    if (first.ok() && !s.ok()) first = s;
  };
  // Only this instance's links: its short id in the name, and its full id in the alias (or no
  // alias, as a crash between creating a link and naming it leaves). Other instances' links,
  // even with a colliding short id, stay.
  BERTH_ASSIGN_OR_RETURN(auto links, Links());
  std::vector<std::string> doomed;
  for (const auto& [name, alias] : links) {
    ParsedLinkAlias owner;
    if (!IsInstanceLinkName(inst, name) || wanted.contains(name)) continue;
    if (!alias.empty() && (!ParseLinkAlias(alias, &owner) || owner.instance != inst)) continue;
    doomed.push_back(name);
  }
  // Endpoint links first: deleting a bridge would only detach them.
  std::stable_partition(doomed.begin(), doomed.end(),
                        [](const std::string& name) { return name[1] != 'b'; });
  for (const auto& link : doomed) note(DeleteLink(link));
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.state_dir + "/dnsmasq", ec)) {
    std::string network = entry.path().filename().string();
    const NetworkRecord* rec = model_.FindNetwork(network);
    if (rec == nullptr || !rec->spec.dhcp) note(StopDhcp(network));
  }
  return first;
}

}  // namespace berth::runtime::net
