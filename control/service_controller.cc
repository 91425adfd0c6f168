#include "control/service_controller.h"

#include <algorithm>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "core/guard.h"
#include "core/log.h"
#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::control {

using core::Cat;
using core::Service;
using core::Workload;
using core::WorkloadState;

std::string ServiceKey(std::string_view name) { return Cat(kServicePrefix, name); }

namespace {

constexpr int kMaxCasAttempts = 16;
// Probes in flight at once in one pass.
constexpr size_t kMaxConcurrentProbes = 32;
// How often an autoscaled service's measured values are written to its stored status at most
// (its decision is written whenever it changes).
constexpr absl::Duration kAutoscaleRefresh = absl::Seconds(2);
// How long after a failed attempt to save a warm state the next one is made.
constexpr absl::Duration kWarmStateRetry = absl::Seconds(30);

std::string OwnerOf(const Workload& w) {
  auto it = w.spec.labels.find(std::string(core::kServiceLabel));
  return it == w.spec.labels.end() ? std::string() : it->second;
}

int PortOf(const Workload& w) {
  auto it = w.spec.labels.find(std::string(core::kPortLabel));
  int port = 0;
  if (it == w.spec.labels.end() || !absl::SimpleAtoi(it->second, &port)) return 0;
  return port;
}

// The template revision a replica was made from; replicas from before revisions were counted
// are of the first.
int64_t RevisionOf(const Workload& w) {
  auto it = w.spec.labels.find(std::string(core::kRevisionLabel));
  int64_t revision = 1;
  if (it == w.spec.labels.end() || !absl::SimpleAtoi(it->second, &revision)) return 1;
  return revision;
}

// The replica's index N from its name SERVICE-N; -1 when it has no such form.
int64_t IndexOf(std::string_view service, std::string_view workload) {
  int64_t n = -1;
  if (workload.size() <= service.size() + 1) return -1;
  std::string_view suffix = workload.substr(service.size() + 1);
  if (!absl::SimpleAtoi(absl::string_view(suffix.data(), suffix.size()), &n)) return -1;
  return n;
}

// Whether a replica of this template shares its host's network and so needs a host port.
bool NeedsHostPort(const core::ServiceSpec& spec) {
  return spec.port > 0 && spec.workload_template.networks.empty();
}

absl::Status NotFound(std::string_view name) {
  return absl::NotFoundError(Cat("service \"", name, "\" not found"));
}

}  // namespace

absl::StatusOr<std::vector<std::string>> UnwantedWarmStates(state::Store* store,
                                                            const std::vector<std::string>& keys) {
  using Repository =
      state::Repository<Service,
                        state::FunctionCodec<Service, core::EncodeService, core::DecodeService>>;
  const Repository services(store, "service", std::string(kServicePrefix));
  // Each service's wanted keys, read once; nullopt: gone. A service that does not decode wants
  // every key of its name (nothing can be said of them).
  std::map<std::string, std::optional<std::set<std::string>>> wanted;
  std::set<std::string> undecodable;
  std::vector<std::string> out;
  for (const std::string& key : keys) {
    std::optional<core::WarmStateKey> parsed = core::ParseWarmStateKey(key);
    if (!parsed) continue;  // not a warm state: nothing to say of it
    auto it = wanted.find(parsed->service);
    if (it == wanted.end()) {
      absl::StatusOr<std::optional<Repository::Item>> found = services.Find(parsed->service);
      std::optional<std::set<std::string>> keep;
      if (found.ok() && found->has_value()) {
        const core::ServiceStatus& st = (*found)->value.status;
        keep.emplace();
        keep->insert(Cat(parsed->service, ".r", st.rollout.revision));
        if (st.warm && !st.warm->key.empty()) keep->insert(st.warm->key);
      } else if (!found.ok()) {
        if (found.status().code() != absl::StatusCode::kDataLoss) return found.status();
        undecodable.insert(parsed->service);
      }
      it = wanted.emplace(parsed->service, std::move(keep)).first;
    }
    if (undecodable.contains(parsed->service)) continue;
    if (!it->second || !it->second->contains(key)) out.push_back(key);
  }
  return out;
}

// What one pass reads once and shares between services.
struct ServiceController::PassState {
  std::vector<Workload> workloads;
  std::map<std::string, std::string> host_address;  // host name -> where to probe it
  std::set<int> used_ports;                         // host ports of live replicas
  std::set<std::string> names;                      // every workload name
  // The hosts' latest usage reports, read once a pass when a service scales on utilization.
  std::optional<std::map<std::string, core::HostUsage>> usages;
};

ServiceController::ServiceController(ControlPlane* control, ServiceControllerOptions options)
    : control_(control),
      options_(std::move(options)),
      clock_(options_.clock ? options_.clock : control->clock()),
      events_(control->store(), clock_),
      services_(control->store(), "service", std::string(kServicePrefix)),
      loop_({.name = "service controller",
             .period = options_.period,
             .active = options_.active,
             // Endpoints follow the lead: a server that does not lead serves none.
             .while_inactive = [this] { CloseEndpoints({}); }},
            [this] { return ReconcileOnce().status(); }) {
  const int span = std::max(1, options_.port_max - options_.port_min + 1);
  {
    absl::MutexLock lock(&pass_mu_);
    port_cursor_ = options_.first_port_offset >= 0
                       ? options_.first_port_offset % span
                       : static_cast<int>(std::random_device{}() % span);
  }
  // A request held at an endpoint starts a pass at once: a service scaled to zero gets its
  // replica without waiting for the period.
  if (options_.endpoints != nullptr) {
    options_.endpoints->SetDemandHook([this](const std::string&) { Poke(); });
  }
}

ServiceController::~ServiceController() {
  if (options_.endpoints != nullptr) options_.endpoints->SetDemandHook(nullptr);
  Stop();
}

void ServiceController::Poke() { loop_.Poke(); }

absl::StatusOr<Service> ServiceController::Create(const core::ServiceSpec& spec) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("service", spec.name));
  if (spec.replicas < 0 || spec.replicas > core::kMaxReplicas) {
    return core::FieldError(
        "service", spec.name, "replicas",
        Cat("must be between 0 and ", core::kMaxReplicas, ", got ", spec.replicas));
  }
  if (spec.health.type != core::HealthCheck::Type::kNone && options_.prober == nullptr) {
    return absl::FailedPreconditionError(
        Cat("service \"", spec.name, "\": this server cannot probe health checks"));
  }
  if (spec.endpoint.host_port != 0) BERTH_RETURN_IF_ERROR(OpenEndpoint(spec));
  if (spec.autoscale &&
      (spec.replicas < spec.autoscale->min || spec.replicas > spec.autoscale->max)) {
    return core::FieldError(
        "service", spec.name, "replicas",
        Cat("must be between autoscale.min and autoscale.max, got ", spec.replicas));
  }
  Service svc;
  svc.spec = spec;
  svc.status.message = "creating replicas";
  svc.created_at = svc.updated_at = clock_->Now();
  state::TxnRequest txn;
  BERTH_RETURN_IF_ERROR(services_.AddCreate(&txn, spec.name, svc));
  events_.Add(&txn.then_ops, "service", spec.name, "created",
              Cat("service created with ", spec.replicas, " replicas of a ",
                  core::WorkloadKindName(spec.workload_template.kind), " workload",
                  spec.autoscale ? Cat(", autoscaled between ", spec.autoscale->min, " and ",
                                       spec.autoscale->max)
                                 : std::string()));
  absl::StatusOr<state::TxnResponse> resp = control_->store()->Txn(txn);
  if (!resp.ok() || !resp->succeeded) {
    // OpenEndpoint refused a name that exists, so the endpoint just opened is this call's.
    if (spec.endpoint.host_port != 0) options_.endpoints->Close(spec.name);
    if (!resp.ok()) return resp.status();
    return absl::AlreadyExistsError(Cat("service \"", spec.name,
                                        "\": name is already taken; delete it first or pick "
                                        "another"));
  }
  svc.revision = resp->revision;
  return svc;
}

absl::Status ServiceController::OpenEndpoint(const core::ServiceSpec& spec, bool exists) {
  const int port = spec.endpoint.host_port;
  if (options_.endpoints == nullptr) {
    return absl::FailedPreconditionError(
        Cat("service \"", spec.name, "\": this server cannot open endpoints"));
  }
  if (port >= options_.port_min && port <= options_.port_max) {
    return core::FieldError("service", spec.name, "endpoint.host_port",
                            Cat("must be outside the range of replica ports (", options_.port_min,
                                "-", options_.port_max, "), got ", port));
  }
  BERTH_ASSIGN_OR_RETURN(std::vector<Service> all, List());
  for (const Service& other : all) {
    if (other.spec.name == spec.name) {
      if (exists) continue;
      return absl::AlreadyExistsError(Cat("service \"", spec.name,
                                          "\": name is already taken; delete it first or pick "
                                          "another"));
    }
    if (other.spec.endpoint.host_port == port) {
      return core::FieldError(
          "service", spec.name, "endpoint.host_port",
          Cat("port ", port, " is the endpoint of service \"", other.spec.name, "\""));
    }
  }
  absl::Status opened = options_.endpoints->Open(spec.name, port, spec.endpoint.wait_timeout);
  if (!opened.ok()) {
    return core::FieldError(
        "service", spec.name, "endpoint.host_port",
        Cat("port ", port, " cannot be used on the server's host: ", opened.message()));
  }
  return absl::OkStatus();
}

void ServiceController::CloseEndpoints(const std::set<std::string>& keep) {
  if (options_.endpoints == nullptr) return;
  for (const std::string& name : options_.endpoints->List()) {
    if (!keep.contains(name)) options_.endpoints->Close(name);
  }
}

absl::StatusOr<Service> ServiceController::Get(std::string_view name) {
  BERTH_ASSIGN_OR_RETURN(std::optional<ServiceRepository::Item> item, services_.Find(name));
  if (!item) return NotFound(name);
  item->value.revision = item->mod_revision;
  return std::move(item->value);
}

absl::StatusOr<std::vector<Service>> ServiceController::List(int64_t* revision) {
  std::vector<absl::Status> undecodable;
  BERTH_ASSIGN_OR_RETURN(ServiceRepository::ListResult list, services_.List(&undecodable));
  for (const absl::Status& s : undecodable) core::LogDebug("skipped: %s", s.ToString());
  std::vector<Service> out;
  for (auto& item : list.items) {
    item.value.revision = item.mod_revision;
    out.push_back(std::move(item.value));
  }
  if (revision) *revision = list.revision;
  return out;
}

absl::StatusOr<Service> ServiceController::Modify(std::string_view name, std::string_view doing,
                                                  const Change& change) {
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    BERTH_ASSIGN_OR_RETURN(std::optional<ServiceRepository::Item> item, services_.Find(name));
    if (!item) return NotFound(name);
    Service svc = item->value;
    if (svc.status.deleting) {
      return absl::FailedPreconditionError(
          Cat("service \"", name, "\": is being deleted and cannot be ", doing));
    }
    BERTH_ASSIGN_OR_RETURN(std::optional<Event> event, change(svc));
    if (!event) {
      svc.revision = item->mod_revision;
      return svc;
    }
    svc.updated_at = clock_->Now();
    state::TxnRequest txn;
    BERTH_RETURN_IF_ERROR(services_.AddUpdate(&txn, name, svc, item->mod_revision));
    events_.Add(&txn.then_ops, "service", name, event->first, event->second);
    BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, control_->store()->Txn(txn));
    if (resp.succeeded) {
      svc.revision = resp.revision;
      return svc;
    }
  }
  return absl::AbortedError(Cat("service \"", name, "\": too many concurrent updates, retry"));
}

absl::StatusOr<Service> ServiceController::Scale(std::string_view name, int replicas) {
  if (replicas < 0 || replicas > core::kMaxReplicas) {
    return core::FieldError("service", name, "replicas",
                            Cat("must be between 0 and ", core::kMaxReplicas, ", got ", replicas));
  }
  return Modify(name, "scaled", [&](Service& svc) -> absl::StatusOr<std::optional<Event>> {
    if (svc.spec.autoscale) {
      return absl::FailedPreconditionError(
          Cat("service \"", name, "\": its replicas are set by its autoscaler (autoscale.min ",
              svc.spec.autoscale->min, ", autoscale.max ", svc.spec.autoscale->max,
              "); change those with `berth service update`, or remove autoscale"));
    }
    if (svc.spec.replicas == replicas) return std::nullopt;
    const int before = svc.spec.replicas;
    svc.spec.replicas = replicas;
    return Event{"scaled", Cat("replicas ", before, " -> ", replicas)};
  });
}

absl::StatusOr<Service> ServiceController::Update(const core::ServiceSpec& spec) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("service", spec.name));
  if (spec.health.type != core::HealthCheck::Type::kNone && options_.prober == nullptr) {
    return absl::FailedPreconditionError(
        Cat("service \"", spec.name, "\": this server cannot probe health checks"));
  }
  return Modify(spec.name, "updated", [&](Service& svc) -> absl::StatusOr<std::optional<Event>> {
    if (svc.spec == spec) return std::nullopt;
    if (spec.endpoint.host_port != 0 && spec.endpoint.host_port != svc.spec.endpoint.host_port) {
      BERTH_RETURN_IF_ERROR(OpenEndpoint(spec, /*exists=*/true));
    }
    std::vector<std::string> changes;
    core::RolloutStatus& rollout = svc.status.rollout;
    if (spec.workload_template != svc.spec.workload_template) {
      rollout.previous_template = svc.spec.workload_template;
      rollout.previous_revision = rollout.revision;
      rollout.revision = std::max(rollout.next_revision, rollout.revision + 1);
      rollout.next_revision = rollout.revision + 1;
      rollout.state = core::RolloutStatus::State::kProgressing;
      rollout.started_at = clock_->Now();
      rollout.message = Cat("replacing the replicas of revision ", rollout.previous_revision,
                            " with revision ", rollout.revision);
      changes.push_back(Cat("template: rollout to revision ", rollout.revision));
    }
    if (spec.replicas != svc.spec.replicas) {
      changes.push_back(Cat("replicas ", svc.spec.replicas, " -> ", spec.replicas));
    }
    if (spec.port != svc.spec.port) changes.push_back("port");
    if (spec.health != svc.spec.health) changes.push_back("health");
    if (spec.endpoint != svc.spec.endpoint) changes.push_back("endpoint");
    if (spec.update != svc.spec.update) changes.push_back("update");
    if (spec.autoscale != svc.spec.autoscale) changes.push_back("autoscale");
    svc.spec = spec;
    return Event{"updated", Cat("updated: ", absl::StrJoin(changes, ", "))};
  });
}

absl::StatusOr<Service> ServiceController::Undo(std::string_view name) {
  return Modify(name, "rolled back", [&](Service& svc) -> absl::StatusOr<std::optional<Event>> {
    core::RolloutStatus& rollout = svc.status.rollout;
    if (!rollout.previous_template) {
      return absl::FailedPreconditionError(
          Cat("service \"", name, "\": has no previous revision to go back to"));
    }
    const int64_t undone = rollout.revision;
    std::swap(svc.spec.workload_template, *rollout.previous_template);
    std::swap(rollout.revision, rollout.previous_revision);
    rollout.state = core::RolloutStatus::State::kProgressing;
    rollout.started_at = clock_->Now();
    rollout.message = Cat("undo: replacing the replicas of revision ", undone, " with revision ",
                          rollout.revision);
    return Event{"rollout-undo",
                 Cat("back from revision ", undone, " to revision ", rollout.revision)};
  });
}

absl::StatusOr<ServiceDeletion> ServiceController::Delete(std::string_view name) {
  for (int attempt = 0; attempt < kMaxCasAttempts; ++attempt) {
    BERTH_ASSIGN_OR_RETURN(std::optional<ServiceRepository::Item> item, services_.Find(name));
    if (!item) return NotFound(name);
    BERTH_ASSIGN_OR_RETURN(std::vector<Workload> all, control_->ListWorkloads());
    const bool owns =
        std::any_of(all.begin(), all.end(), [&](const Workload& w) { return OwnerOf(w) == name; });
    ServiceDeletion out;
    out.service = item->value;
    state::TxnRequest txn;
    if (!owns) {
      services_.AddDelete(&txn, name, item->mod_revision);
      events_.Add(&txn.then_ops, "service", name, "deleted", "service deleted");
    } else {
      if (out.service.status.deleting) {
        out.service.revision = item->mod_revision;
        return out;
      }
      out.service.status.deleting = true;
      out.service.status.message = "deleting: its replicas go first";
      out.service.updated_at = clock_->Now();
      BERTH_RETURN_IF_ERROR(services_.AddUpdate(&txn, name, out.service, item->mod_revision));
      events_.Add(&txn.then_ops, "service", name, "deleting", "deleting its replicas");
    }
    BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, control_->store()->Txn(txn));
    if (resp.succeeded) {
      out.deleted = !owns;
      out.service.revision = resp.revision;
      return out;
    }
  }
  return absl::AbortedError(Cat("service \"", name, "\": too many concurrent updates, retry"));
}

absl::StatusOr<int> ServiceController::ReconcileOnce() {
  absl::MutexLock lock(&pass_mu_);
  std::vector<absl::Status> undecodable;
  BERTH_ASSIGN_OR_RETURN(ServiceRepository::ListResult list, services_.List(&undecodable));
  for (const absl::Status& s : undecodable) core::LogDebug("skipped: %s", s.ToString());
  std::set<std::string> with_endpoint;
  for (const ServiceRepository::Item& item : list.items) {
    const Service& svc = item.value;
    if (svc.spec.endpoint.host_port != 0 && !svc.status.deleting) {
      with_endpoint.insert(svc.spec.name);
    }
  }
  CloseEndpoints(with_endpoint);
  if (list.items.empty()) {
    // Nothing to keep: no need to read every workload and host.
    health_.clear();
    draining_.clear();
    autoscalers_.clear();
    return 0;
  }
  PassState pass;
  BERTH_ASSIGN_OR_RETURN(pass.workloads, control_->ListWorkloads());
  BERTH_ASSIGN_OR_RETURN(std::vector<core::Host> hosts, control_->ListHosts());
  for (const core::Host& h : hosts) {
    pass.host_address[h.name] = control_->ReachableAddress(h, "127.0.0.1");
  }
  std::set<std::string> live_replicas;
  for (const Workload& w : pass.workloads) {
    pass.names.insert(w.spec.name);
    if (OwnerOf(w).empty()) continue;
    if (!core::IsTerminal(w.status.state)) {
      if (int port = PortOf(w); port > 0) pass.used_ports.insert(port);
    }
    live_replicas.insert(w.spec.name);
  }
  // Health records of replicas that are gone.
  for (auto it = health_.begin(); it != health_.end();) {
    it = live_replicas.contains(it->first) ? std::next(it) : health_.erase(it);
  }
  for (auto it = draining_.begin(); it != draining_.end();) {
    it = live_replicas.contains(it->first) ? std::next(it) : draining_.erase(it);
  }
  std::set<std::string> autoscaled;
  for (const ServiceRepository::Item& item : list.items) {
    if (item.value.spec.autoscale && !item.value.status.deleting) {
      autoscaled.insert(item.value.spec.name);
    }
  }
  for (auto it = autoscalers_.begin(); it != autoscalers_.end();) {
    it = autoscaled.contains(it->first) ? std::next(it) : autoscalers_.erase(it);
  }
  int actions = 0;
  absl::Status first_error;
  for (const ServiceRepository::Item& item : list.items) {
    absl::StatusOr<int> n = ReconcileService(item, pass);
    if (n.ok()) {
      actions += *n;
    } else if (first_error.ok()) {
      first_error = n.status();
    }
  }
  if (!first_error.ok()) return first_error;
  return actions;
}

absl::StatusOr<int> ServiceController::ReconcileService(const ServiceRepository::Item& item,
                                                        PassState& pass) {
  // What the pass leaves: its status, and its template after a rollback.
  Service next = item.value;
  const Service& svc = next;
  const std::string& name = svc.spec.name;
  const absl::Time now = clock_->Now();
  std::vector<const Workload*> owned;
  for (const Workload& w : pass.workloads) {
    if (OwnerOf(w) == name) owned.push_back(&w);
  }
  std::vector<std::pair<std::string, std::string>> events;  // type, message
  int actions = 0;
  core::ServiceStatus status = svc.status;

  if (svc.status.deleting) {
    if (owned.empty()) {
      state::TxnRequest txn;
      services_.AddDelete(&txn, name, item.mod_revision);
      events_.Add(&txn.then_ops, "service", name, "deleted", "service deleted");
      BERTH_RETURN_IF_ERROR(control_->store()->Txn(txn).status());
      return 0;
    }
    for (const Workload* w : owned) {
      if (w->status.desired == core::DesiredState::kDeleted) continue;
      absl::StatusOr<Workload> d = control_->DeleteWorkload(w->spec.name);
      if (!d.ok() && d.status().code() != absl::StatusCode::kNotFound) return d.status();
      ++actions;
    }
    return actions;
  }

  // The endpoint is (re)opened every pass: after a restart, or once its port is free again.
  const bool has_endpoint = svc.spec.endpoint.host_port != 0 && options_.endpoints != nullptr;
  status.endpoint = {};
  if (has_endpoint) {
    absl::Status opened =
        options_.endpoints->Open(name, svc.spec.endpoint.host_port, svc.spec.endpoint.wait_timeout);
    status.endpoint.address = options_.endpoints->Address(name);
    status.endpoint.serving = opened.ok();
    if (!opened.ok()) status.endpoint.message = std::string(opened.message());
    if (status.endpoint.address.empty()) {
      status.endpoint.address = Cat(":", svc.spec.endpoint.host_port);
    }
  }

  // How many replicas: the spec's, or the autoscaler's decision.
  int want = svc.spec.replicas;
  if (svc.spec.autoscale && has_endpoint) {
    want = Autoscale(svc, owned, now, status, events, pass);
  } else {
    status.autoscale.reset();
    autoscalers_.erase(name);
  }

  // A rollout that did not finish in time goes back to the revision before.
  core::RolloutStatus& rollout = status.rollout;
  if (rollout.state == core::RolloutStatus::State::kProgressing && rollout.previous_template &&
      now - rollout.started_at >= svc.spec.update.progress_deadline) {
    const int64_t failed = rollout.revision;
    std::swap(next.spec.workload_template, *rollout.previous_template);
    std::swap(rollout.revision, rollout.previous_revision);
    rollout.state = core::RolloutStatus::State::kRolledBack;
    rollout.message =
        Cat("revision ", failed, " was not ready within ",
            absl::FormatDuration(svc.spec.update.progress_deadline), " (", rollout.updated_ready,
            " of ", want, " replicas ready); rolled back to revision ", rollout.revision);
    events.emplace_back("rolled-back", rollout.message);
  }
  const int64_t current = std::max<int64_t>(1, rollout.revision);
  auto backend_of = [&](const Workload* w) {
    auto addr = pass.host_address.find(w->status.host);
    return EndpointBackend{addr == pass.host_address.end() ? "" : addr->second,
                           NeedsHostPort(svc.spec) ? PortOf(*w) : svc.spec.port};
  };
  auto remove = [&](const Workload* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_) -> absl::Status {
    absl::StatusOr<Workload> d = control_->DeleteWorkload(w->spec.name);
    if (!d.ok() && d.status().code() != absl::StatusCode::kNotFound) return d.status();
    health_.erase(w->spec.name);
    draining_.erase(w->spec.name);
    ++actions;
    return absl::OkStatus();
  };
  // A replica leaving the service: with an endpoint, a running one leaves the endpoint now and
  // is deleted by a later pass once drained; else it is deleted at once.
  auto retire = [&](const Workload* w, std::string type, std::string why)
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_) -> absl::Status {
    if (has_endpoint && w->status.state == WorkloadState::kRunning) {
      draining_[w->spec.name] = {now + svc.spec.endpoint.drain_timeout, backend_of(w)};
      events.emplace_back(std::move(type), Cat(why, "; draining its connections first"));
      return absl::OkStatus();
    }
    events.emplace_back(std::move(type), std::move(why));
    return remove(w);
  };

  // Replicas that ended make room for new ones; those draining are deleted once drained.
  std::vector<const Workload*> live;
  std::vector<const Workload*> leaving;
  for (const Workload* w : owned) {
    if (w->status.desired == core::DesiredState::kDeleted) continue;
    if (core::IsTerminal(w->status.state) || w->status.desired == core::DesiredState::kStopped) {
      if (draining_.contains(w->spec.name)) {
        BERTH_RETURN_IF_ERROR(remove(w));  // it was leaving anyway
        continue;
      }
      events.emplace_back(
          "replica-replaced",
          Cat("replica ", w->spec.name, " ", core::WorkloadStateName(w->status.state),
              w->status.reason.empty() ? "" : Cat(": ", w->status.reason),
              w->status.exit_code ? Cat(" (exit code ", *w->status.exit_code, ")") : "",
              "; replacing it"));
      BERTH_RETURN_IF_ERROR(remove(w));
      continue;
    }
    if (auto d = draining_.find(w->spec.name); d != draining_.end()) {
      const int open = has_endpoint ? options_.endpoints->Active(name, d->second.backend) : 0;
      if (open == 0 || now >= d->second.deadline) {
        events.emplace_back("replica-drained",
                            open == 0 ? Cat("replica ", w->spec.name, " drained; stopping it")
                                      : Cat("replica ", w->spec.name, " still had ", open,
                                            " connections at its drain deadline; stopping it"));
        BERTH_RETURN_IF_ERROR(remove(w));
      } else {
        leaving.push_back(w);
      }
      continue;
    }
    live.push_back(w);
  }

  // Health: probe the running replicas that are due, all at once.
  const core::HealthCheck& check = svc.spec.health;
  if (check.type != core::HealthCheck::Type::kNone && options_.prober != nullptr) {
    struct Due {
      const Workload* w;
      std::string address;
      int port;
      absl::Status result;
      bool regular;  // at the check's interval; the others' failures do not count
    };
    // While requests wait for a first ready replica, replicas never ready yet are probed every
    // pass, so that one serves as soon as it answers.
    const bool activating =
        status.autoscale && (status.autoscale->waiting > 0 ||
                             status.autoscale->activating_since != absl::InfinitePast());
    std::vector<Due> due;
    for (const Workload* w : live) {
      ReplicaHealth& h = health_[w->spec.name];
      if (w->status.state != WorkloadState::kRunning) continue;
      const bool regular = now >= h.next_probe;
      if (!regular && !(activating && !h.ever_ready)) continue;
      const int port = NeedsHostPort(svc.spec) ? PortOf(*w) : svc.spec.port;
      auto addr = pass.host_address.find(w->status.host);
      if (port <= 0 || addr == pass.host_address.end()) continue;
      due.push_back({w, addr->second, port, absl::OkStatus(), regular});
      if (regular) h.next_probe = now + check.interval;
    }
    for (size_t start = 0; start < due.size(); start += kMaxConcurrentProbes) {
      std::vector<std::thread> probes;
      const size_t end = std::min(due.size(), start + kMaxConcurrentProbes);
      for (size_t i = start; i < end; ++i) {
        probes.emplace_back([&, i] {
          absl::Status guarded = core::RunGuarded("health probe", [&] {
            due[i].result = options_.prober->Probe(due[i].address, due[i].port, check);
          });
          if (!guarded.ok()) due[i].result = guarded;
        });
      }
      for (std::thread& t : probes) t.join();
    }
    std::set<const Workload*> unhealthy;
    for (const Due& d : due) {
      ReplicaHealth& h = health_[d.w->spec.name];
      if (d.result.ok()) {
        h.failures = 0;
        h.ready = true;
        h.ever_ready = true;
        h.last_error.clear();
        continue;
      }
      if (!d.regular) {
        h.last_error = std::string(d.result.message());
        continue;
      }
      h.failures++;
      h.last_error = std::string(d.result.message());
      if (h.failures >= check.failure_threshold) h.ready = false;
      const bool starting = !h.ever_ready && d.w->status.started_at != absl::InfinitePast() &&
                            now - d.w->status.started_at < check.start_period;
      if (h.failures >= check.failure_threshold && !starting) unhealthy.insert(d.w);
    }
    for (const Workload* w : unhealthy) {
      const ReplicaHealth& h = health_[w->spec.name];
      std::string why = Cat("replica ", w->spec.name, " failed ", h.failures,
                            " health checks in a row (", h.last_error, "); replacing it");
      BERTH_RETURN_IF_ERROR(retire(w, "replica-unhealthy", std::move(why)));
      live.erase(std::find(live.begin(), live.end(), w));
      if (draining_.contains(w->spec.name)) leaving.push_back(w);
    }
  }
  auto ready = [&](const Workload* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_) {
    if (w->status.state != WorkloadState::kRunning) return false;
    if (check.type == core::HealthCheck::Type::kNone) return true;
    auto it = health_.find(w->spec.name);
    return it != health_.end() && it->second.ready;
  };

  // Warm starts: once a replica of the current revision is ready (it loaded its model), its
  // state is saved on its host, once per revision; replicas made after that carry the state's
  // key, and those placed on that host resume from it.
  std::string warm_key;
  if (svc.spec.warm_start == core::ServiceSpec::WarmStart::kSnapshot) {
    if ((!status.warm || status.warm->revision != current) && options_.save_warm_state) {
      core::WarmStateStatus& warm = status.warm ? *status.warm : status.warm.emplace();
      const Workload* source = nullptr;
      for (const Workload* w : live) {
        if (RevisionOf(*w) == current && ready(w)) {
          source = w;
          break;
        }
      }
      if (source != nullptr && now >= warm.retry_at) {
        const std::string key = Cat(name, ".r", current);
        const absl::Time started = absl::Now();  // how long the replica pauses, in real time
        absl::StatusOr<int64_t> bytes = options_.save_warm_state(source->spec.name, key);
        if (bytes.ok()) {
          control_->NoteWarmState(source->status.host, key);
          const int64_t restores = warm.revision == current ? warm.restores : 0;
          warm = {.revision = current,
                  .key = key,
                  .host = source->status.host,
                  .replica = source->spec.name,
                  .bytes = *bytes,
                  .took = absl::Now() - started,
                  .taken_at = now,
                  .restores = restores};
          events.emplace_back(
              "warm-state-saved",
              Cat("replica ", source->spec.name, " saved as warm state ", key, " on host ",
                  warm.host, ": ", *bytes >> 20, " MiB, paused ", absl::FormatDuration(warm.took)));
        } else {
          warm.error = Cat("saving replica ", source->spec.name, " on host ", source->status.host,
                           ": ", bytes.status().message());
          warm.retry_at = now + kWarmStateRetry;
          events.emplace_back("warm-state-failed",
                              Cat(warm.error, "; new replicas boot; tried again in ",
                                  absl::FormatDuration(kWarmStateRetry)));
        }
      }
    }
    if (!options_.save_warm_state) {
      if (!status.warm) status.warm.emplace();
      status.warm->error = "this server cannot save replicas' state; every replica boots";
    }
    if (status.warm && status.warm->revision == current) warm_key = status.warm->key;
  }

  // Scale and roll out. Replicas of an older revision go as far as availability allows (the
  // unready ones always; ready ones while want - max_unavailable others stay ready); replicas of
  // the current one are made up to `replicas`, during a rollout at most max_surge above it.
  // Surplus replicas of the current revision lose the unready first, then the newest.
  std::string message;
  int64_t next_index = status.next_index;
  for (const Workload* w : owned)
    next_index = std::max(next_index, IndexOf(name, w->spec.name) + 1);
  auto unready_then_newest =
      [&](std::vector<const Workload*> v) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_) {
        std::stable_sort(v.begin(), v.end(),
                         [&](const Workload* a, const Workload* b)
                             ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_) {
                               if (ready(a) != ready(b)) return !ready(a);
                               return IndexOf(name, a->spec.name) > IndexOf(name, b->spec.name);
                             });
        return v;
      };
  auto leave = [&](const Workload* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_) {
    live.erase(std::find(live.begin(), live.end(), w));
    if (draining_.contains(w->spec.name)) leaving.push_back(w);
  };
  std::vector<const Workload*> fresh, old;
  for (const Workload* w : live) (RevisionOf(*w) == current ? fresh : old).push_back(w);
  int ready_now = 0;
  for (const Workload* w : live) ready_now += ready(w) ? 1 : 0;
  const int min_ready = want - svc.spec.update.max_unavailable;
  std::vector<const Workload*> old_left;
  for (const Workload* w : unready_then_newest(old)) {
    if (ready(w)) {
      if (ready_now - 1 < min_ready) {
        old_left.push_back(w);
        continue;
      }
      --ready_now;
    }
    BERTH_RETURN_IF_ERROR(retire(w, "replica-updated",
                                 Cat("replica ", w->spec.name, " of revision ", RevisionOf(*w),
                                     " replaced by revision ", current)));
    leave(w);
  }
  if (static_cast<int>(fresh.size()) > want) {
    std::vector<const Workload*> order = unready_then_newest(fresh);
    const size_t surplus = fresh.size() - static_cast<size_t>(want);
    for (size_t k = 0; k < surplus; ++k) {
      const Workload* w = order[k];
      BERTH_RETURN_IF_ERROR(
          retire(w, "replica-removed", Cat("replica ", w->spec.name, " removed (scale down)")));
      leave(w);
      fresh.erase(std::find(fresh.begin(), fresh.end(), w));
    }
  }
  int to_create = want - static_cast<int>(fresh.size());
  if (!old_left.empty()) {
    to_create =
        std::min(to_create, want + svc.spec.update.max_surge - static_cast<int>(live.size()));
  }
  std::vector<std::string> created;
  for (int i = 0; i < to_create; ++i) {
    absl::StatusOr<std::string> made = CreateReplica(svc, current, warm_key, &next_index, pass);
    if (!made.ok()) {
      message = Cat("cannot create a replica: ", made.status().message());
      break;
    }
    created.push_back(*made);
    if (warm_key.empty()) {
      events.emplace_back("replica-created", Cat("replica ", *made, " created"));
    } else {
      ++status.warm->restores;
      events.emplace_back("replica-created",
                          Cat("replica ", *made, " created, to resume from warm state ", warm_key,
                              " where placed on host ", status.warm->host));
    }
    ++actions;
  }
  rollout.updated = static_cast<int>(fresh.size() + created.size());
  rollout.updated_ready = 0;
  for (const Workload* w : fresh) rollout.updated_ready += ready(w) ? 1 : 0;
  if (rollout.state == core::RolloutStatus::State::kProgressing && old_left.empty() &&
      rollout.updated_ready >= want) {
    rollout.state = core::RolloutStatus::State::kComplete;
    rollout.message =
        Cat("revision ", current, ": ", rollout.updated_ready, " of ", want, " replicas ready");
    events.emplace_back("rollout-complete", rollout.message);
  }

  // The endpoint forwards to the ready replicas, and to no leaving one.
  if (has_endpoint) {
    std::vector<EndpointBackend> backends;
    for (const Workload* w : live) {
      EndpointBackend b = backend_of(w);
      if (ready(w) && !b.address.empty() && b.port > 0) backends.push_back(std::move(b));
    }
    status.endpoint.backends = static_cast<int>(backends.size());
    options_.endpoints->SetBackends(name, std::move(backends));
  }

  status.next_index = next_index;
  status.replicas.clear();
  status.ready = 0;
  auto replica_status = [&](const Workload* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_) {
    core::ReplicaStatus r;
    r.workload = w->spec.name;
    r.revision = RevisionOf(*w);
    r.host = w->status.host;
    r.port = NeedsHostPort(svc.spec) ? PortOf(*w) : svc.spec.port;
    r.state = std::string(core::WorkloadStateName(w->status.state));
    auto h = health_.find(w->spec.name);
    r.failures = h == health_.end() ? 0 : h->second.failures;
    r.reason = h != health_.end() && !h->second.last_error.empty() ? h->second.last_error
                                                                   : w->status.reason;
    return r;
  };
  for (const Workload* w : live) {
    core::ReplicaStatus r = replica_status(w);
    r.ready = ready(w);
    status.ready += r.ready ? 1 : 0;
    status.replicas.push_back(std::move(r));
  }
  for (const Workload* w : leaving) {
    core::ReplicaStatus r = replica_status(w);
    r.draining = true;
    r.reason = "draining: out of the endpoint, stopped once its connections end";
    status.replicas.push_back(std::move(r));
  }
  for (const std::string& n : created) {
    status.replicas.push_back(
        {.workload = n, .state = "pending", .reason = "just created", .revision = current});
  }
  std::sort(status.replicas.begin(), status.replicas.end(),
            [&](const core::ReplicaStatus& a, const core::ReplicaStatus& b) {
              return IndexOf(name, a.workload) < IndexOf(name, b.workload);
            });
  if (status.autoscale && status.autoscale->activating_since != absl::InfinitePast() &&
      status.ready > 0) {
    core::AutoscaleStatus& a = *status.autoscale;
    a.last_activation = now - a.activating_since;
    a.activating_since = absl::InfinitePast();
    ++a.activations;
    events.emplace_back("scaled-from-zero",
                        Cat("a replica was ready ", absl::FormatDuration(a.last_activation),
                            " after a request found none"));
  }
  if (message.empty() && want == 0 && svc.spec.autoscale) {
    message = status.replicas.empty()
                  ? "scaled to zero: the endpoint holds the next request while a replica starts"
                  : "scaling to zero";
  }
  if (message.empty()) {
    message = status.ready >= want
                  ? Cat(status.ready, " of ", want, " replicas ready")
                  : Cat("waiting: ", status.ready, " of ", want, " replicas ready");
  }
  if (has_endpoint && !status.endpoint.serving) {
    message = Cat(message, "; endpoint not serving: ", status.endpoint.message);
  }
  status.message = std::move(message);
  next.status = std::move(status);
  BERTH_RETURN_IF_ERROR(WriteService(item, std::move(next), events));
  return actions;
}

int ServiceController::Autoscale(const Service& svc, const std::vector<const Workload*>& replicas,
                                 absl::Time now, core::ServiceStatus& status,
                                 std::vector<Event>& events, PassState& pass) {
  const core::AutoscaleSpec& spec = *svc.spec.autoscale;
  const std::string& name = svc.spec.name;
  core::AutoscaleStatus a = status.autoscale.value_or(core::AutoscaleStatus{});
  if (!status.autoscale) a.desired = svc.spec.replicas;
  // After a change of min or max the last decision is brought within them.
  const int current = std::clamp(a.desired, spec.min, spec.max);
  // Running replicas count as recent use (after a restart they get idle_to_zero before they
  // go); a service at zero has had none.
  AutoscaleMemory& m =
      autoscalers_.try_emplace(name, current > 0 ? now : absl::InfinitePast()).first->second;
  const EndpointStats stats = options_.endpoints->Stats(name);
  AutoscaleSample sample{.at = now};
  // Counters that went back belong to an endpoint opened again: this pass starts over.
  const bool comparable = m.last_at != absl::InfinitePast() && now > m.last_at &&
                          stats.accepted >= m.last.accepted &&
                          stats.busy_seconds >= m.last.busy_seconds;
  if (comparable) {
    sample.span = now - m.last_at;
    const double seconds = absl::ToDoubleSeconds(sample.span);
    sample.concurrency = (stats.busy_seconds - m.last.busy_seconds) / seconds;
    sample.rps = static_cast<double>(stats.accepted - m.last.accepted) / seconds;
    if (spec.metric == core::AutoscaleSpec::Metric::kCpu ||
        spec.metric == core::AutoscaleSpec::Metric::kGpu) {
      if (!pass.usages) pass.usages = control_->HostUsages();
      sample.utilization = Utilization(spec.metric, replicas, *pass.usages);
    }
  }
  sample.active = stats.open > 0 || (comparable && stats.accepted > m.last.accepted);
  m.kpa.Record(sample);
  m.last = stats;
  m.last_at = now;
  const AutoscaleDecision d = m.kpa.Decide(spec, now, current, status.ready);
  if (d.desired != current) {
    events.emplace_back("autoscaled", Cat("replicas ", current, " -> ", d.desired, ": ", d.reason));
    if (current == 0) a.activating_since = now;
  }
  if (d.desired == 0) a.activating_since = absl::InfinitePast();
  const bool changed = d.desired != a.desired || d.panic != a.panic || stats.waiting != a.waiting;
  a.desired = d.desired;
  a.panic = d.panic;
  a.waiting = stats.waiting;
  // What was measured goes to the store when the decision changed, or every few seconds while
  // it moves; an idle service is not written at all.
  if (sample.active) m.last_request = now;
  const bool moved = a.decision != d.reason || std::abs(a.stable_value - d.stable_value) >= 0.005 ||
                     std::abs(a.panic_value - d.panic_value) >= 0.005 ||
                     m.last_request > a.last_request_at;
  if (changed || a.decision.empty() || (moved && now - a.observed_at >= kAutoscaleRefresh)) {
    a.stable_value = d.stable_value;
    a.panic_value = d.panic_value;
    a.decision = d.reason;
    a.observed_at = now;
    a.last_request_at = std::max(a.last_request_at, m.last_request);
  }
  status.autoscale = a;
  return d.desired;
}

double ServiceController::Utilization(core::AutoscaleSpec::Metric metric,
                                      const std::vector<const Workload*>& replicas,
                                      const std::map<std::string, core::HostUsage>& usages) {
  double sum = 0;
  for (const Workload* w : replicas) {
    if (w->status.state != WorkloadState::kRunning) continue;
    auto host = usages.find(w->status.host);
    if (host == usages.end()) continue;
    const core::HostUsage& usage = host->second;
    if (metric == core::AutoscaleSpec::Metric::kCpu) {
      // A replica that requested no CPU counts against one CPU.
      const double requested = w->spec.resources.cpu.value() > 0
                                   ? static_cast<double>(w->spec.resources.cpu.value())
                                   : 1000.0;
      for (const core::WorkloadUsage& u : usage.workloads) {
        if (u.name == w->spec.name) sum += static_cast<double>(u.cpu.value()) / requested;
      }
      continue;
    }
    // gpu: the mean utilization of the devices the replica holds (a shared device counts whole:
    // the device does not tell its tenants apart).
    double held = 0;
    int devices = 0;
    for (const core::GpuAssignment& g : w->status.gpus) {
      for (const core::GpuDeviceUsage& d : usage.gpus) {
        if (d.index != g.index) continue;
        held += d.utilization_percent / 100.0;
        ++devices;
      }
    }
    if (devices > 0) sum += held / devices;
  }
  return sum;
}

int ServiceController::AllocatePort(PassState& pass) {
  const int span = options_.port_max - options_.port_min + 1;
  for (int k = 0; k < span; ++k) {
    const int port = options_.port_min + (port_cursor_ + k) % span;
    if (pass.used_ports.contains(port)) continue;
    // The next replica starts looking past this one, so a port just freed is not reused at once.
    port_cursor_ = (port_cursor_ + k + 1) % span;
    pass.used_ports.insert(port);
    return port;
  }
  return 0;
}

absl::StatusOr<std::string> ServiceController::CreateReplica(const Service& svc, int64_t revision,
                                                             const std::string& warm_key,
                                                             int64_t* next_index, PassState& pass) {
  core::WorkloadSpec spec = svc.spec.workload_template;
  spec.labels[std::string(core::kServiceLabel)] = svc.spec.name;
  spec.labels[std::string(core::kRevisionLabel)] = Cat(revision);
  if (!warm_key.empty()) spec.labels[std::string(core::kWarmStateLabel)] = warm_key;
  if (svc.spec.port > 0) {
    std::string inside = Cat(svc.spec.port);
    if (NeedsHostPort(svc.spec)) {
      const int port = AllocatePort(pass);
      if (port == 0) {
        return absl::ResourceExhaustedError(
            Cat("no free host port in ", options_.port_min, "-", options_.port_max));
      }
      spec.labels[std::string(core::kPortLabel)] = Cat(port);
      spec.env["BERTH_PORT"] = Cat(port);
      if (spec.kind == core::WorkloadKind::kVm) {
        spec.ports.push_back({.host_port = port, .guest_port = svc.spec.port});
      } else {
        // A process, or a container (which shares its host's network to have ports), listens
        // on the host port itself.
        inside = Cat(port);
        if (spec.kind == core::WorkloadKind::kContainer) {
          spec.ports.push_back({.host_port = port, .guest_port = port});
        }
      }
    } else {
      spec.env["BERTH_PORT"] = inside;
    }
    spec.env["PORT"] = inside;
  }
  for (int attempt = 0; attempt < 1000; ++attempt) {
    spec.name = Cat(svc.spec.name, "-", (*next_index)++);
    if (pass.names.contains(spec.name)) continue;
    absl::StatusOr<Workload> w = control_->CreateWorkload(spec);
    if (w.ok()) {
      pass.names.insert(spec.name);
      return spec.name;
    }
    if (w.status().code() != absl::StatusCode::kAlreadyExists) return w.status();
    pass.names.insert(spec.name);
  }
  return absl::ResourceExhaustedError("no free replica name");
}

absl::Status ServiceController::WriteService(
    const ServiceRepository::Item& item, Service svc,
    const std::vector<std::pair<std::string, std::string>>& events) {
  if (svc.status == item.value.status && svc.spec == item.value.spec && events.empty()) {
    return absl::OkStatus();
  }
  svc.updated_at = clock_->Now();
  state::TxnRequest txn;
  BERTH_RETURN_IF_ERROR(services_.AddUpdate(&txn, svc.spec.name, svc, item.mod_revision));
  for (const auto& [type, message] : events) {
    events_.Add(&txn.then_ops, "service", svc.spec.name, type, message);
  }
  BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, control_->store()->Txn(txn));
  if (!resp.succeeded) {
    // The service changed under the pass (scaled, deleted): the next pass reads it again. The
    // replicas it created or deleted are already recorded as workloads.
    core::LogDebug("service %s: status write lost a race; the next pass writes it", svc.spec.name);
  }
  return absl::OkStatus();
}

void ServiceController::Start() { loop_.Start(); }

void ServiceController::Stop() { loop_.Stop(); }

}  // namespace berth::control
