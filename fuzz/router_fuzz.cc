// Fuzzes the REST API from the router down: every route file (ApiServer's own routes, disks,
// networks, security groups, port forwards and host images, the latter ones when the build has
// them), authentication, body parsing, the decoders, the ControlPlane and the storage and
// network services over an in-memory store, with no sockets in between (Responder::ToSink).
// Disks and networks go to in-memory hosts that accept every operation; images go to a real
// catalog in a temporary directory, imports reading from an import directory holding one file.
// An input is one request:
//
//   METHOD TARGET [admin|agent|none]\n
//   body...
//
// Each run checks that the request is answered exactly once, never with a 500 (a 5xx for a
// client's mistake is a bug), always with a JSON body on /v1 routes; a scheduling pass and a
// liveness check then run over whatever the requests created.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "api/api_server.h"
#include "api/cluster_routes.h"
#include "api/routes_admin.h"
#include "api/routes_images.h"
#include "api/routes_jobs.h"
#include "api/routes_services.h"
#include "state/memory_store.h"
#ifdef BERTH_FUZZ_STORENET
#include "api/host_storage.h"
#include "api/storenet_routes.h"
#endif
#ifdef BERTH_FUZZ_IMAGES
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "api/local_images.h"
#endif

namespace {

using berth::api::HttpRequest;
using berth::api::HttpResponse;

constexpr char kAdmin[] = "fuzz-admin";
constexpr char kAgent[] = "fuzz-join";

#ifdef BERTH_FUZZ_STORENET
// A host whose storage does whatever it is asked, in memory.
class FuzzStorageHost final : public berth::control::StorageHost {
 public:
  absl::Status Prepare() override { return absl::OkStatus(); }
  absl::StatusOr<berth::control::HostVolume> Create(
      const berth::control::HostVolumeSpec& spec) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (volumes_.count(spec.name)) return absl::AlreadyExistsError("volume exists");
    berth::control::HostVolume v;
    v.format = spec.format;
    v.size_mib = spec.size_mib > 0 ? spec.size_mib : 1024;
    v.path = "/pool/" + spec.name;
    v.backing_file = spec.from_image;
    volumes_[spec.name] = v;
    return v;
  }
  absl::StatusOr<berth::control::HostVolume> Get(std::string_view name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = volumes_.find(std::string(name));
    if (it == volumes_.end()) return absl::NotFoundError("no such volume");
    return it->second;
  }
  absl::StatusOr<berth::control::HostVolume> Resize(std::string_view name, int64_t size_mib,
                                                    std::string_view) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = volumes_.find(std::string(name));
    if (it == volumes_.end()) return absl::NotFoundError("no such volume");
    it->second.size_mib = size_mib;
    return it->second;
  }
  absl::Status Snapshot(std::string_view, std::string_view) override { return absl::OkStatus(); }
  absl::Status Revert(std::string_view, std::string_view, std::string_view) override {
    return absl::OkStatus();
  }
  absl::Status DeleteSnapshot(std::string_view, std::string_view) override {
    return absl::OkStatus();
  }
  absl::StatusOr<berth::control::HostVolume> Clone(std::string_view, std::string_view,
                                                   std::string_view name,
                                                   std::string_view format) override {
    berth::control::HostVolumeSpec spec;
    spec.name = std::string(name);
    spec.format = std::string(format);
    return Create(spec);
  }
  absl::StatusOr<berth::control::HostBackup> Backup(
      std::string_view, const std::string& file,
      const berth::control::Progress& progress) override {
    if (progress) progress(1000);
    return berth::control::HostBackup{1, std::string(64, '0'), file};
  }
  absl::StatusOr<berth::control::HostVolume> Restore(
      const std::string&, std::string_view name, std::string_view format,
      const berth::control::Progress& progress) override {
    if (progress) progress(1000);
    berth::control::HostVolumeSpec spec;
    spec.name = std::string(name);
    spec.format = std::string(format);
    return Create(spec);
  }
  absl::Status Delete(std::string_view name, std::string_view) override {
    std::lock_guard<std::mutex> lock(mu_);
    volumes_.erase(std::string(name));
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<berth::control::HostPool>> Pools() override {
    berth::control::HostPool pool;
    pool.name = "default";
    pool.directory = "/pool";
    pool.capacity_mib = 1 << 20;
    pool.limit_mib = 1 << 20;
    pool.available_mib = 1 << 20;
    return std::vector<berth::control::HostPool>{pool};
  }

 private:
  std::mutex mu_;
  std::map<std::string, berth::control::HostVolume> volumes_;
};

// A host whose networking does whatever it is asked.
class FuzzNetworkHost final : public berth::control::NetworkHost {
 public:
  absl::StatusOr<std::string> EnsureNetwork(const berth::control::HostNetwork& n) override {
    return "br-" + n.name;
  }
  absl::Status DeleteNetwork(std::string_view) override { return absl::OkStatus(); }
  absl::Status PutGroup(const berth::control::HostGroup&) override { return absl::OkStatus(); }
  absl::Status DeleteGroup(std::string_view) override { return absl::OkStatus(); }
  absl::Status AddForward(const berth::control::HostForward&) override { return absl::OkStatus(); }
  absl::Status RemoveForward(std::string_view) override { return absl::OkStatus(); }
  absl::Status Cleanup(const berth::control::HostKeep&) override { return absl::OkStatus(); }
  absl::StatusOr<berth::control::HostEndpoint> AttachEndpoint(
      const berth::control::HostEndpointSpec& spec) override {
    return berth::control::HostEndpoint{.host_ifname = "veth-fuzz", .address = spec.address};
  }
  absl::Status DetachEndpoint(std::string_view, std::string_view) override {
    return absl::OkStatus();
  }
};
#endif

#ifdef BERTH_FUZZ_IMAGES
// A temporary directory with an image catalog and an import directory holding "vmlinuz",
// removed when the process exits.
struct ImageDirs {
  ImageDirs() {
    root =
        std::filesystem::temp_directory_path() / ("berth-router-fuzz-" + std::to_string(getpid()));
    std::filesystem::create_directories(root / "imports");
    std::ofstream(root / "imports" / "vmlinuz") << "kernel";
    auto opened = berth::runtime::ImageCatalog::Open((root / "catalog").string());
    if (!opened.ok()) {
      std::fprintf(stderr, "router_fuzz: %s\n", opened.status().ToString().c_str());
      std::abort();
    }
    catalog = std::move(*opened);
  }
  ~ImageDirs() {
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }
  std::filesystem::path root;
  std::unique_ptr<berth::runtime::ImageCatalog> catalog;
};

ImageDirs& Images() {
  static ImageDirs dirs;
  return dirs;
}
#endif

// The API over a fresh store. Rebuilt now and then so that state stays small.
struct Stack {
  Stack() {
    control = std::make_unique<berth::control::ControlPlane>(&store,
                                                             berth::control::ControlPlaneOptions{});
    berth::api::ApiServerOptions o;
    o.admin_token = kAdmin;
    o.agent_tokens = {kAgent};
    o.max_wait = absl::Milliseconds(5);  // parked long-polls end quickly
    o.threads = 1;
    api = std::make_unique<berth::api::ApiServer>(o, control.get(), nullptr);
    berth::api::HostImages* host_images = nullptr;
#ifdef BERTH_FUZZ_STORENET
    storage =
        std::make_unique<berth::control::StorageService>(&store, control->clock(), &storage_host);
    network =
        std::make_unique<berth::control::NetworkService>(&store, control->clock(), &network_host);
    berth::api::AddStorageRoutes(api->router(), storage.get());
    berth::api::AddNetworkRoutes(api->router(), network.get());
    // A host's part of a fleet's networks (its own store objects, the same control plane).
    fleet =
        std::make_unique<berth::control::FleetNetworks>(&store, control->clock(), control.get());
    if (absl::Status s = fleet->Start(); !s.ok()) {
      std::fprintf(stderr, "router_fuzz: fleet networks: %s\n", s.ToString().c_str());
      std::abort();
    }
    berth::api::AddFleetNetworkRoutes(api->router(), fleet.get());
    // And its disks' attach (the disk routes above are the dev server's).
    fleet_storage = std::make_unique<berth::control::FleetStorage>(
        &store, control->clock(), control.get(), [this](const std::string&, const std::string&) {
          return std::shared_ptr<berth::control::StorageHost>(
              std::shared_ptr<berth::control::StorageHost>(), &storage_host);
        });
    berth::api::AddFleetStorageRoutes(api->router(), fleet_storage.get());
#endif
#ifdef BERTH_FUZZ_IMAGES
    // Host "local" is the server's own: seeds register it first.
    images = std::make_unique<berth::api::LocalHostImages>((Images().root / "imports").string());
    images->Attach("local", Images().catalog.get());
    host_images = images.get();
#endif
    berth::api::AddImageRoutes(api->router(), control.get(), host_images);
    // The one server leads, so its writes are not forwarded; /v1/status answers.
    election = std::make_unique<berth::control::LeaderElection>(
        &store, berth::control::ServerInfo{.id = "fuzz"},
        berth::control::LeaderElectionOptions{.lease_ttl = absl::Minutes(10)});
    if (!election->Step().ok()) std::abort();
    berth::api::AddClusterRoutes(api->router(), election.get(), {.kind = "memory"});
    // Services with a prober that never probes: the fuzzer sends no traffic anywhere.
    services = std::make_unique<berth::control::ServiceController>(
        control.get(), berth::control::ServiceControllerOptions{.prober = &prober});
    berth::api::AddServiceRoutes(api->router(), services.get());
    // Jobs: MASTER_PORT is chosen without binding anything.
    jobs = std::make_unique<berth::control::JobController>(
        control.get(), berth::control::JobControllerOptions{.port_free = [](int) { return true; }});
    berth::api::AddJobRoutes(api->router(), jobs.get());
    // No snapshotter: the admin route answers without starting a snapshot.
    berth::api::AddAdminRoutes(api->router(), nullptr, "");
    auto port = api->Start();  // timers for long-polls; requests never use the socket
    if (!port.ok()) {
      std::fprintf(stderr, "router_fuzz: %s\n", port.status().ToString().c_str());
      std::abort();
    }
  }
  ~Stack() {
    api->Stop();
#ifdef BERTH_FUZZ_IMAGES
    images->Attach("", nullptr);  // waits for imports in flight
#endif
  }

  berth::state::MemoryStore store;
  std::unique_ptr<berth::control::ControlPlane> control;
  std::unique_ptr<berth::control::LeaderElection> election;
  struct NoProber final : berth::control::HealthProber {
    absl::Status Probe(const std::string&, int, const berth::core::HealthCheck&) override {
      return absl::UnavailableError("not probed");
    }
  } prober;
  std::unique_ptr<berth::control::ServiceController> services;
  std::unique_ptr<berth::control::JobController> jobs;
#ifdef BERTH_FUZZ_STORENET
  FuzzStorageHost storage_host;
  FuzzNetworkHost network_host;
  std::unique_ptr<berth::control::StorageService> storage;
  std::unique_ptr<berth::control::NetworkService> network;
  std::unique_ptr<berth::control::FleetNetworks> fleet;
  std::unique_ptr<berth::control::FleetStorage> fleet_storage;
#endif
#ifdef BERTH_FUZZ_IMAGES
  std::unique_ptr<berth::api::LocalHostImages> images;
#endif
  std::unique_ptr<berth::api::ApiServer> api;
};

[[noreturn]] void Die(const std::string& what, const HttpRequest& req, const std::string& body) {
  std::fprintf(stderr, "router_fuzz: %s\nrequest: %s %s\nresponse: %s\n", what.c_str(),
               req.method.c_str(), req.target.c_str(), body.substr(0, 2000).c_str());
  std::abort();
}

// Splits the input into a request; false when it has no request line.
bool ToRequest(std::string_view in, HttpRequest* req, std::string* role) {
  size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  req->body = nl == std::string_view::npos ? std::string() : std::string(in.substr(nl + 1));
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0) return false;
  req->method = std::string(line.substr(0, sp));
  std::string_view rest = line.substr(sp + 1);
  size_t sp2 = rest.find(' ');
  req->target = std::string(rest.substr(0, sp2));
  *role = sp2 == std::string_view::npos ? "admin" : std::string(rest.substr(sp2 + 1));
  if (req->target.empty()) return false;
  size_t q = req->target.find('?');
  req->path = req->target.substr(0, q);
  if (q != std::string::npos) {
    auto query = berth::api::ParseQuery(std::string_view(req->target).substr(q + 1));
    if (!query.ok()) return false;  // the server answers 400 before routing
    req->query = std::move(*query);
  }
  if (*role == "admin") req->headers.Set("Authorization", std::string("Bearer ") + kAdmin);
  if (*role == "agent") req->headers.Set("Authorization", std::string("Bearer ") + kAgent);
  req->remote_address = "127.0.0.1";
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<Stack> stack;
  static int runs = 0;
  if (!stack || ++runs % 500 == 0) {
    stack.reset();
    stack = std::make_unique<Stack>();
  }
  HttpRequest req;
  std::string role;
  if (!ToRequest(std::string_view(reinterpret_cast<const char*>(data), size), &req, &role)) {
    return 0;
  }

  struct Answer {
    std::mutex mu;
    std::condition_variable cv;
    int count = 0;
    HttpResponse response;
  };
  auto answer = std::make_shared<Answer>();
  stack->api->router().Dispatch(req, berth::api::Responder::ToSink([answer](HttpResponse r) {
                                  std::lock_guard<std::mutex> lock(answer->mu);
                                  ++answer->count;
                                  answer->response = std::move(r);
                                  answer->cv.notify_all();
                                }));
  HttpResponse response;
  {
    std::unique_lock<std::mutex> lock(answer->mu);
    if (!answer->cv.wait_for(lock, std::chrono::seconds(20), [&] { return answer->count > 0; })) {
      Die("no answer within 20s", req, "");
    }
    response = answer->response;
  }
  if (response.status >= 500 && response.status != 501 && response.status != 503) {
    Die("5xx answer", req, response.body);
  }
  // A JSON answer is one document; a streamed one (application/x-ndjson: a disk copy's
  // progress) is one document per line.
  const std::string type = response.Header("Content-Type").value_or("");
  if (req.path.rfind("/v1/", 0) == 0 && type.find("ndjson") != std::string::npos) {
    std::string_view rest = response.body;
    if (rest.empty() || rest.back() != '\n') Die("stream does not end a line", req, response.body);
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view one = rest.substr(0, nl);
      rest.remove_prefix(nl + 1);
      berth::core::Json j = berth::core::Json::parse(one, nullptr, false);
      if (!j.is_object()) Die("a streamed line is not a JSON object", req, response.body);
    }
  } else if (req.path.rfind("/v1/", 0) == 0 && type.find("json") != std::string::npos) {
    berth::core::Json j = berth::core::Json::parse(response.body, nullptr, false);
    if (j.is_discarded()) Die("answer is not JSON", req, response.body);
  }
  // Whatever the requests stored must not trip the background passes either.
  auto tasks = stack->jobs->ReconcileOnce();
  auto placed = stack->control->ScheduleOnce();
  auto down = stack->control->CheckHostsOnce();
  if ((!placed.ok() && placed.status().code() == absl::StatusCode::kInternal) ||
      (!down.ok() && down.status().code() == absl::StatusCode::kInternal)) {
    Die("background pass failed", req,
        placed.ok() ? down.status().ToString() : placed.status().ToString());
  }
  if (!tasks.ok() && tasks.status().code() == absl::StatusCode::kInternal) {
    Die("job pass failed", req, tasks.status().ToString());
  }
  return 0;
}
