#include "sched/scheduler.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>

#include "absl/container/inlined_vector.h"
#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"
#include "sched/checker.h"
#include "sched/cluster_index.h"
#include "sched/fgd.h"
#include "sched/fits.h"
#include "sched/ranker.h"

namespace berth::sched {

namespace {

using Kind = core::GpuRequest::Kind;

// The spread domain `host` belongs to under `key`: the value of that label, or the host itself
// for kSpreadByHost.
std::string SpreadDomain(const HostState& host, const std::string& key) {
  if (key == kSpreadByHost) return host.name;
  auto it = host.labels.find(key);
  return it == host.labels.end() ? std::string() : it->second;
}

// The devices of other classes a request gets among a host's `devices`, which the checkers found
// free: the first free ones of each class, in the host's order.
std::vector<core::DeviceAssignment> PickDevices(const HostDevices& devices, const Request& r) {
  std::vector<core::DeviceAssignment> out;
  for (const core::DeviceRequest& want : r.devices) {
    int left = want.count;
    for (const DeviceClassState& d : devices) {
      if (d.cls != want.cls) continue;
      for (size_t i = 0; i < d.ids.size() && left > 0; ++i) {
        if (d.used[i]) continue;
        out.push_back({.cls = d.cls, .id = d.ids[i]});
        --left;
      }
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> RankerNames() {
  std::vector<std::string> names;
  for (const RankerEntry& e : RankerTable()) names.emplace_back(e.name);
  return names;
}

absl::StatusOr<Policy> Policy::Parse(std::string_view text) {
  Policy policy;
  if (text.empty()) {
    return core::FieldError("policy", "", "name", "must not be empty (e.g. \"fgd\")");
  }
  if (text == kDefaultPolicyName) text = kDefaultPolicy;
  if (text.find(',') != std::string_view::npos) {
    // One spelling everywhere: a comma separates policies in `berth sim --policy` lists, so it
    // cannot also join the terms of one policy.
    std::string plus(text);
    std::replace(plus.begin(), plus.end(), ',', '+');
    return core::FieldError("policy", text, "terms",
                            core::Cat("are joined with '+', not ',': write \"", plus, "\""));
  }
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t sep = text.find('+', pos);
    std::string_view part =
        text.substr(pos, sep == std::string_view::npos ? std::string_view::npos : sep - pos);
    pos = sep == std::string_view::npos ? text.size() + 1 : sep + 1;
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    Term term;
    size_t colon = part.find(':');
    std::string_view name = part.substr(0, colon);
    if (!FindRanker(name)) {
      std::string known;
      for (const RankerEntry& e : RankerTable()) {
        known += core::Cat(known.empty() ? "" : ", ", e.name);
      }
      return core::FieldError("policy", text, "ranker",
                              core::Cat("must be one of ", known, ", got \"", name, "\""));
    }
    term.ranker = std::string(name);
    if (colon != std::string_view::npos) {
      std::string_view w = part.substr(colon + 1);
      int64_t whole = 0, frac = 0, frac_digits = 0;
      bool dot = false, any = false, bad = w.empty();
      for (char c : w) {
        if (c == '.' && !dot) {
          dot = true;
        } else if (c >= '0' && c <= '9') {
          any = true;
          if (dot) {
            if (++frac_digits > 3) bad = true;
            frac = frac * 10 + (c - '0');
          } else {
            whole = whole * 10 + (c - '0');
            if (whole > 1'000'000) bad = true;
          }
        } else {
          bad = true;
        }
      }
      if (bad || !any) {
        return core::FieldError("policy", text, core::Cat("weight of ", name),
                                core::Cat("must be a decimal like 0.5 with at most three places, "
                                          "got \"",
                                          w, "\""));
      }
      while (frac_digits < 3) {
        frac *= 10;
        ++frac_digits;
      }
      term.weight_milli = whole * 1000 + frac;
    }
    for (const Term& t : policy.terms) {
      if (t.ranker == term.ranker) {
        return core::FieldError("policy", text, "ranker", core::Cat("\"", name, "\" named twice"));
      }
    }
    policy.terms.push_back(std::move(term));
  }
  return policy;
}

std::string Policy::ToString() const {
  std::string out;
  for (const Term& t : terms) {
    if (!out.empty()) out += "+";
    out += t.ranker;
    if (terms.size() > 1 || t.weight_milli != 1000) {
      out += core::Cat(":", t.weight_milli / 1000);
      int64_t frac = t.weight_milli % 1000;
      if (frac != 0) {
        std::string f = core::Cat(1000 + frac).substr(1);
        while (!f.empty() && f.back() == '0') f.pop_back();
        out += "." + f;
      }
    }
  }
  return out;
}

bool Policy::Uses(std::string_view ranker) const {
  for (const Term& t : terms) {
    if (t.ranker == ranker && t.weight_milli > 0) return true;
  }
  return false;
}

std::string Decision::Explain() const {
  if (scheduled) {
    std::string out = core::Cat("scheduled on ", plan.placement.host_name);
    if (!plan.victims.empty()) {
      out += core::Cat(" after evicting ", int64_t(plan.victims.size()), " workloads");
    }
    return out;
  }
  return FormatReasons(reasons);
}

// What the class-scope checkers decided for one host class and one request shape.
struct Scheduler::ClassInfo {
  int reason = kFeasible;
  int failed_at = -1;  // position in checks_ of the class checker that gave `reason`
  ClassCheck check;    // the devices that pass the static checks, with their fits
  // twin[i]: the first device with device i's model and memory, so that comparing two
  // devices' hardware is one integer compare.
  absl::InlinedVector<int, 8> twin;
  int64_t req_pack = 0;  // PackKey of the request on this class
};

// The per-request working state of one scheduling pass.
class Scheduler::Pass {
 public:
  // `sid`: the request's shape id (ShapeId), or -1 when its class verdicts are not to be kept.
  Pass(Scheduler& s, const Request& r, int sid)
      : s_(s), x_(s.cluster_->index()), r_(r), check_ctx_{*s.cluster_, x_, r}, sid_(sid) {
    // The checkers this request asks something of, in the table's order.
    for (const std::unique_ptr<Checker>& c : s.checkers_) {
      if (!c->Prepare(check_ctx_)) continue;
      checks_.push_back({c.get(), c->scope()});
      has_host_checks_ |= c->scope() == CheckScope::kHost;
    }
    // The policy's rankers by weight; the heaviest (the first of equals) orders shared devices.
    int64_t best_weight = -1;
    summary_exact_ = true;
    for (const auto& [ranker, w] : s.rankers_) {
      if (w <= 0) continue;
      terms_.push_back({ranker.get(), w});
      if (w > best_weight) {
        best_weight = w;
        device_order_ = ranker->device_order();
      }
      costs_devices_ |= ranker->costs_devices();
      if (ranker->has_cluster_score(r)) {
        cluster_terms_.push_back({ranker.get(), w});
        // The summary orders would miss the part that changes with the cluster.
        summary_exact_ = false;
      }
      switch (ranker->summary_role(r)) {
        case SummaryRole::kVaries:
          summary_exact_ = false;
          break;
        case SummaryRole::kConstant:
          break;
        case SummaryRole::kPack:
          has_pack_ = true;
          pack_weight_ += w;
          break;
        case SummaryRole::kSpread:
          has_spread_ = true;
          spread_weight_ += w;
          break;
      }
    }
    total_milli_ = r.gpu.TotalMilli();
    mix_ = &s.mix();
    class_ptr_.assign(x_.classes.size(), nullptr);
  }

  using Changes = GpuChanges;
  struct Result {
    int reason = -1;  // -1: feasible
    int64_t score = 0;
    Changes changes;
  };

  // Runs every checker and ranker for host `h` in its current state.
  Result Evaluate(int h);
  // The first pass over a group, from its summary alone: a reason when the group surely fails,
  // kMaybe when only a host check can tell, kFeasible when it surely fits.
  int Precheck(const GroupSummary& g);
  // Precheck for each of `gids` into `out`, one checker at a time over all of them.
  void PrecheckAll(const int* gids, size_t n, int* out);
  // Whether a checker needs each host on its own (its answer differs between hosts of a group).
  bool has_host_checks() const { return has_host_checks_; }
  // Whether every ranker of the policy can be scored from a group summary.
  bool summary_exact() const { return summary_exact_; }
  // Search orders that give the same answer as a full pass: binpack's (the policy is binpack,
  // possibly with rankers constant for this request) and first-fit's (lowest host first).
  bool binpack_order() const { return summary_exact_ && has_pack_ && !has_spread_; }
  bool first_fit_order() const { return summary_exact_ && !has_pack_ && !has_spread_; }
  int ClassReason(int cls) { return Class(cls).reason; }
  // Whether a group in `bucket` (see GroupSummary::bucket) can hold the request's GPUs.
  bool BucketMayFit(int bucket) const {
    int idle = bucket / 5, level = bucket % 5;
    switch (r_.gpu.kind) {
      case Kind::kWhole:
        return idle >= std::min(r_.gpu.count, kMaxIdleBucket);
      case Kind::kShare:
        return idle > 0 || level >= r_.gpu.milli / kShareLevel;
      default:
        return true;
    }
  }
  int64_t SummaryScore(const GroupSummary& g);
  // The cluster-wide part of host `h`'s score (Ranker::ClusterScore), 0 when no ranker has one.
  int64_t ClusterScore(int h);
  std::vector<core::GpuAssignment> Assignments(int h, const Changes& changes) const;
  std::array<int64_t, kNumReasons> rejected{};

 private:
  const ClassInfo& Class(int cls) {
    const ClassInfo* ci = class_ptr_[cls];
    return ci != nullptr ? *ci : ComputeClass(cls);
  }
  // The class verdicts of `cls` for this request: kept by the scheduler per shape, so that
  // the next request of the same shape finds them computed.
  const ClassInfo& ComputeClass(int cls);
  // The policy's weighted sum for host `h` taking `changes`; `costs`, when set, holds each
  // term's DeviceCost of exactly these changes.
  int64_t Score(int h, const Changes& changes, const int64_t* costs);
  RankContext Context() { return RankContext{x_, r_, total_milli_, *mix_}; }
  // Binpack's utilization after placing (see PackKey).
  int64_t UtilAfter(const GroupSummary& g, const ClassInfo& ci) const {
    return g.pack_key + ci.req_pack;
  }

  struct ActiveCheck {
    Checker* checker;
    CheckScope scope;
  };

  Scheduler& s_;
  Cluster::Index& x_;
  const Request& r_;
  CheckContext check_ctx_;
  absl::InlinedVector<ActiveCheck, 8> checks_;
  bool has_host_checks_ = false;
  absl::InlinedVector<std::pair<Ranker*, int64_t>, 4> terms_;          // weight > 0 only
  absl::InlinedVector<std::pair<Ranker*, int64_t>, 2> cluster_terms_;  // with a ClusterScore
  std::vector<int64_t> cluster_score_;  // by host class; kUnknown until asked
  static constexpr int64_t kUnknown = -1;
  DeviceOrder device_order_ = DeviceOrder::kLowestIndex;  // first-fit's for an empty policy
  bool costs_devices_ = false;
  bool summary_exact_ = true;
  bool has_pack_ = false;
  bool has_spread_ = false;
  // SummaryScore's parts: Σ weight of the pack and of the spread terms, and the constant terms'
  // weighted sum once known.
  int64_t pack_weight_ = 0;
  int64_t spread_weight_ = 0;
  bool summary_constant_known_ = false;
  int64_t summary_constant_ = 0;
  int64_t total_milli_ = 0;
  const WorkloadMix* mix_;
  const int sid_;
  std::vector<const ClassInfo*> class_ptr_;              // by class; null until computed
  std::vector<std::unique_ptr<ClassInfo>> own_classes_;  // when the shape is not cached
};

const Scheduler::ClassInfo& Scheduler::Pass::ComputeClass(int cls) {
  std::unique_ptr<ClassInfo>* slot;
  if (sid_ >= 0) {
    auto& row = s_.class_cache_;
    if (row.size() <= size_t(sid_)) row.resize(sid_ + 1);
    std::vector<std::unique_ptr<ClassInfo>>& by_class = row[sid_];
    if (by_class.size() < x_.classes.size()) by_class.resize(x_.classes.size());
    slot = &by_class[cls];
  } else {
    if (own_classes_.size() < x_.classes.size()) own_classes_.resize(x_.classes.size());
    slot = &own_classes_[cls];
  }
  if (*slot != nullptr) return *(class_ptr_[cls] = slot->get());
  *slot = std::make_unique<ClassInfo>();
  ClassInfo& info = **slot;
  class_ptr_[cls] = &info;
  const HostClass& c = x_.classes[cls];
  info.req_pack = PackKey(c.capacity, int64_t(c.gpus.size()) * core::kWholeGpuMilli, r_.resources,
                          total_milli_);
  for (int i = 0; i < int(checks_.size()); ++i) {
    if (checks_[i].scope != CheckScope::kClass) continue;
    int reason = checks_[i].checker->CheckClass(check_ctx_, cls, info.check);
    if (reason >= 0) {
      info.reason = reason;
      info.failed_at = i;
      return info;
    }
  }
  if (r_.gpu.kind == Kind::kNone) return info;
  info.twin.resize(c.gpus.size());
  for (size_t i = 0; i < c.gpus.size(); ++i) {
    size_t j = 0;
    while (c.gpus[j].model != c.gpus[i].model || c.gpus[j].memory_mib != c.gpus[i].memory_mib) ++j;
    info.twin[i] = int(j);
  }
  return info;
}

// The checkers in order on a group's summary. A class checker's answer was computed once for
// the class; a kMaybe (or a host checker) leaves the group open, and then a later rejection
// cannot name the reason either: the host check of the earlier checker comes first.
int Scheduler::Pass::Precheck(const GroupSummary& g) {
  const ClassInfo* ci = nullptr;
  bool maybe = false;
  for (int i = 0; i < int(checks_.size()); ++i) {
    const ActiveCheck& c = checks_[i];
    switch (c.scope) {
      case CheckScope::kClass:
        if (ci == nullptr) ci = &Class(g.cls);
        if (ci->failed_at == i) return maybe ? kMaybe : ci->reason;
        break;
      case CheckScope::kGroup: {
        if (ci == nullptr) ci = &Class(g.cls);
        int v = c.checker->CheckGroup(check_ctx_, g, ci->check);
        if (v >= 0) return maybe ? kMaybe : v;
        maybe |= v == kMaybe;
        break;
      }
      case CheckScope::kHost:
        maybe = true;
        break;
    }
  }
  return maybe ? kMaybe : kFeasible;
}

void Scheduler::Pass::PrecheckAll(const int* gids, size_t n, int* out) {
  std::fill(out, out + n, kFeasible);
  std::vector<const ClassCheck*>& by_class = s_.batch_classes_;
  by_class.resize(x_.classes.size());
  for (size_t k = 0; k < n; ++k) {
    const int cls = x_.summary[gids[k]].cls;
    by_class[cls] = &Class(cls).check;
  }
  const GroupBatch batch{gids, x_.summary.data(), by_class.data(), out, n};
  for (int i = 0; i < int(checks_.size()); ++i) {
    switch (checks_[i].scope) {
      case CheckScope::kClass:
        for (size_t k = 0; k < n; ++k) {
          const ClassInfo& ci = *class_ptr_[batch.group(k).cls];
          if (ci.failed_at == i && VerdictOpen(out[k])) FoldVerdict(out[k], ci.reason);
        }
        break;
      case CheckScope::kGroup:
        checks_[i].checker->CheckGroups(check_ctx_, batch);
        break;
      case CheckScope::kHost:
        for (size_t k = 0; k < n; ++k) {
          if (VerdictOpen(out[k])) out[k] = kMaybe;
        }
        break;
    }
  }
  for (size_t k = 0; k < n; ++k) {
    if (out[k] == kSettledMaybe) out[k] = kMaybe;
  }
}

// The policy's sum, Σ weight * (score / 1000), with the terms gathered by role: the pack terms
// share util_after / 1000, the spread terms (kScoreMax - util_after) / 1000, and the constant
// terms are asked once.
int64_t Scheduler::Pass::SummaryScore(const GroupSummary& g) {
  const int64_t util_after = UtilAfter(g, Class(g.cls));
  if (!summary_constant_known_) {
    summary_constant_known_ = true;
    const RankContext ctx = Context();
    for (const auto& [ranker, weight] : terms_) {
      if (ranker->summary_role(r_) == SummaryRole::kConstant) {
        summary_constant_ += weight * (ranker->SummaryScore(ctx, g, util_after) / 1000);
      }
    }
  }
  return summary_constant_ + pack_weight_ * (util_after / 1000) +
         spread_weight_ * ((kScoreMax - util_after) / 1000);
}

int64_t Scheduler::Pass::ClusterScore(int h) {
  if (cluster_terms_.empty()) return 0;
  const int cls = x_.host_class[h];
  if (cluster_score_.size() < x_.classes.size()) cluster_score_.resize(x_.classes.size(), kUnknown);
  int64_t& v = cluster_score_[cls];
  if (v == kUnknown) {
    RankContext ctx = Context();
    v = 0;
    for (const auto& [ranker, weight] : cluster_terms_) {
      v += weight * (ranker->ClusterScore(ctx, cls) / 1000);
    }
  }
  return v;
}

int64_t Scheduler::Pass::Score(int h, const Changes& changes, const int64_t* costs) {
  const GroupSummary& gsum = x_.summary[x_.host_group[h]];
  RankContext ctx = Context();
  Candidate c{h, gsum, UtilAfter(gsum, Class(x_.host_class[h])), changes.data(), changes.size()};
  int64_t total = 0;
  for (size_t t = 0; t < terms_.size(); ++t) {
    c.device_cost = costs != nullptr && terms_[t].first->costs_devices() ? &costs[t] : nullptr;
    total += terms_[t].second * (terms_[t].first->Score(ctx, c) / 1000);
  }
  return total;
}

std::vector<core::GpuAssignment> Scheduler::Pass::Assignments(int h, const Changes& changes) const {
  std::vector<core::GpuAssignment> out;
  for (const GpuChange& c : changes) {
    const GpuState& g = x_.hosts[h].gpus[c.pos];
    core::GpuAssignment a;
    a.index = g.device.index;
    a.milli = c.milli;
    if (r_.gpu.kind == Kind::kShare) a.memory_mib = c.memory_mib;
    if (r_.gpu.kind == Kind::kMig) {
      a.mig_profile = r_.gpu.mig_profile;
      a.mig_start_slice = std::countr_zero(unsigned(c.mig_mask));
    }
    out.push_back(std::move(a));
  }
  return out;
}

Scheduler::Pass::Result Scheduler::Pass::Evaluate(int h) {
  Result res;
  const GroupSummary& gsum = x_.summary[x_.host_group[h]];
  const ClassInfo& ci = Class(gsum.cls);
  // The checkers in order, each with the host check after its group check.
  HostCheck hc;
  for (int i = 0; i < int(checks_.size()); ++i) {
    const ActiveCheck& c = checks_[i];
    int v = kFeasible;
    switch (c.scope) {
      case CheckScope::kClass:
        if (ci.failed_at == i) v = ci.reason;
        break;
      case CheckScope::kGroup:
        v = c.checker->CheckGroup(check_ctx_, gsum, ci.check);
        if (v < 0) v = c.checker->CheckHost(check_ctx_, h, ci.check, hc);
        break;
      case CheckScope::kHost:
        v = c.checker->CheckHost(check_ctx_, h, ci.check, hc);
        break;
    }
    if (v >= 0) {
      res.reason = v;
      return res;
    }
  }
  // The device search: the gpu-capacity checker listed the devices that hold the request; the
  // rankers choose among them.
  const HostState& host = x_.hosts[h];
  const auto& st = ci.check.gpu;
  // Each term's DeviceCost of the chosen share or MIG slice, kept for Score.
  absl::InlinedVector<int64_t, 4> costs;
  bool have_costs = false;
  switch (r_.gpu.kind) {
    case Kind::kNone:
      break;
    case Kind::kWhole: {
      const absl::InlinedVector<int, 16>& idle = hc.holding;
      absl::InlinedVector<int, 16> chosen(idle.begin(), idle.begin() + r_.gpu.count);
      if (r_.gpu.count >= 2) {
        const RankContext ctx = Context();
        for (const auto& [ranker, weight] : terms_) {
          if (ranker->ChooseWholeDevices(ctx, h, idle, r_.gpu.count, chosen.data())) break;
        }
      }
      for (int i : chosen) res.changes.push_back({i, core::kWholeGpuMilli, 0, 0});
      break;
    }
    case Kind::kShare:
    case Kind::kMig: {
      int best = -1;
      int64_t best_key = 0, best_key2 = 0;
      GpuChange best_change{};
      absl::InlinedVector<int64_t, 4> c_costs(terms_.size(), 0);
      RankContext ctx = Context();
      for (size_t k = 0; k < hc.holding.size(); ++k) {
        const int i = hc.holding[k];
        const GpuState& g = host.gpus[i];
        // A device in the same state and of the same kind as one already tried scores the same
        // and has a higher index: skip it.
        bool seen = false;
        for (size_t l = 0; l < k && !seen; ++l) {
          const int j = hc.holding[l];
          const GpuState& o = host.gpus[j];
          seen = o.free_milli == g.free_milli && o.free_memory_mib == g.free_memory_mib &&
                 o.mig_slices_used == g.mig_slices_used && ci.twin[j] == ci.twin[i];
        }
        if (seen) continue;
        GpuChange c{int(i), 0, 0, 0};
        if (r_.gpu.kind == Kind::kShare) {
          c.milli = r_.gpu.milli;
          c.memory_mib = r_.gpu.memory_mib;
        } else {
          c.milli = st[i].mig_milli;
          c.mig_mask = MigRunAt(st[i], FreeMigStart(st[i], g.mig_slices_used));
        }
        // Lower keys win: the device costs of the policy's rankers first (FGD's growth), then
        // the heaviest ranker's order: tightest fit, loosest (spread) or lowest index.
        int64_t key = 0, key2 = 0;
        if (costs_devices_) {
          for (size_t t = 0; t < terms_.size(); ++t) {
            if (!terms_[t].first->costs_devices()) continue;
            c_costs[t] = terms_[t].first->DeviceCost(ctx, h, &c, 1);
            key += c_costs[t];
          }
        }
        if (device_order_ == DeviceOrder::kLoosest) {
          key2 = -(g.free_milli - c.milli);
        } else if (device_order_ == DeviceOrder::kTightest) {
          key2 = g.free_milli - c.milli;
        }
        if (best < 0 || key < best_key || (key == best_key && key2 < best_key2)) {
          best = int(i);
          best_key = key;
          best_key2 = key2;
          best_change = c;
          if (costs_devices_) costs = c_costs;
        }
      }
      res.changes.push_back(best_change);
      have_costs = costs_devices_;
      break;
    }
  }
  res.score = Score(h, res.changes, have_costs ? costs.data() : nullptr);
  return res;
}

Scheduler::Scheduler(Cluster* cluster, SchedulerOptions options)
    : cluster_(cluster), options_(std::move(options)), tracker_(options_.tracker) {
  for (const Policy::Term& t : options_.policy.terms) {
    const RankerEntry* entry = FindRanker(t.ranker);
    // Policy::Parse admits only names of the table; a policy built by hand must do the same.
    if (entry == nullptr) std::abort();
    rankers_.emplace_back(entry->make(), t.weight_milli);
  }
  for (const CheckerEntry& e : CheckerTable()) checkers_.push_back(e.make());
}

Scheduler::~Scheduler() = default;

const WorkloadMix& Scheduler::mix() const { return options_.mix ? *options_.mix : tracker_.mix(); }

namespace {

std::vector<ReasonCount> SortedReasons(const std::array<int64_t, kNumReasons>& counts) {
  std::vector<ReasonCount> out;
  for (int i = 0; i < kNumReasons; ++i) {
    if (counts[i] > 0) out.push_back({std::string(ReasonName(i)), int(counts[i])});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const ReasonCount& a, const ReasonCount& b) { return a.hosts > b.hosts; });
  return out;
}

}  // namespace

absl::StatusOr<Decision> Scheduler::ScheduleOn(const Request& r, const std::vector<int>* only) {
  Cluster::Index& x = cluster_->index();
  Decision d;
  d.plan.request_id = r.id;
  if (absl::Status q = cluster_->CheckQuota(r, ""); !q.ok()) {
    d.reasons.push_back({"quota", cluster_->num_hosts()});
    return d;
  }
  // Class verdicts hold for as long as the hosts (and so the classes) stay the same.
  if (class_cache_version_ != x.hosts_version) {
    class_cache_version_ = x.hosts_version;
    class_cache_.clear();
  }
  // Host names the request names: only those hosts are looked at, one by one.
  std::vector<int> named;
  int64_t unnamed = 0;
  if (!r.only_hosts.empty() || !r.not_hosts.empty()) {
    std::set<int> in;
    if (!r.only_hosts.empty()) {
      for (const std::string& name : r.only_hosts) {
        if (std::optional<int> h = cluster_->FindHost(name)) in.insert(*h);
      }
    } else {
      for (int h = 0; h < cluster_->num_hosts(); ++h) in.insert(h);
    }
    for (const std::string& name : r.not_hosts) {
      if (std::optional<int> h = cluster_->FindHost(name)) in.erase(*h);
    }
    if (only != nullptr) {
      for (int h : *only) {
        if (in.contains(h)) named.push_back(h);
      }
      unnamed = int64_t(only->size()) - int64_t(named.size());
    } else {
      named.assign(in.begin(), in.end());
      unnamed = cluster_->num_hosts() - int64_t(named.size());
    }
    only = &named;
  }
  const int sid = ShapeId(r);
  Pass pass(*this, r, sid);
  pass.rejected[kLabels] += unnamed;

  // Constraints that look at other workloads, and a saved state some hosts hold, need the host
  // itself, not its group.
  const bool wants_warm = !r.warm_state.empty() && options_.holds_warm_state != nullptr;
  bool per_host = only != nullptr || pass.has_host_checks() || !r.spread_key.empty() || wants_warm;
  int best_host = -1;
  int64_t best_score = 0;
  int64_t best_spread = 0;
  bool best_warm = false;
  // The order among feasible hosts: fewest of the spread group first (spreading is the
  // service's availability), then a host holding the request's warm state (it resumes there
  // instead of booting, worth more than any difference of the policy's scores), then the
  // policy's score, then the lowest index.
  auto consider = [&](int h, int64_t score, int64_t spread_count, bool warm) {
    if (best_host < 0 || spread_count < best_spread ||
        (spread_count == best_spread &&
         (warm > best_warm ||
          (warm == best_warm && (score > best_score || (score == best_score && h < best_host)))))) {
      best_host = h;
      best_score = score;
      best_spread = spread_count;
      best_warm = warm;
    }
  };
  if (!per_host) {
    // One pass over the groups of identical hosts, each represented by its lowest-index host.
    // The summary rejects most groups at once; policies made only of summary-scored rankers
    // evaluate a group fully only when it could beat the best so far.
    bool exact = pass.summary_exact();
    if (cache_hosts_version_ != x.hosts_version) {
      cache_hosts_version_ = x.hosts_version;
      eval_cache_.clear();
    }
    if (eval_cache_.size() < x.groups.size()) eval_cache_.resize(x.groups.size());
    const uint64_t mix_version = mix().version();
    // Evaluate on the group's lowest host, through the cache when the shape has an id: most
    // groups keep their state from one request to the next.
    CachedEval uncached;
    // The cache entry of group `gid` for this request's shape when it still holds, else null.
    auto cached = [&](int gid) -> const CachedEval* {
      if (sid < 0) return nullptr;
      const std::vector<CachedEval>& row = eval_cache_[gid];
      if (row.size() <= size_t(sid)) return nullptr;
      const CachedEval& ce = row[sid];
      return ce.gen == x.groups[gid].gen && ce.mix_version == mix_version ? &ce : nullptr;
    };
    // Remembers that the group checks turned group `gid` down for this shape with `reason`.
    auto remember_rejection = [&](int gid, int reason) {
      if (sid < 0) return;
      std::vector<CachedEval>& row = eval_cache_[gid];
      if (row.size() <= size_t(sid)) row.resize(sid + 1);
      row[sid] = CachedEval{x.groups[gid].gen, mix_version, reason, 0};
    };
    auto evaluate = [&](int gid) -> const CachedEval& {
      const int h = x.summary[gid].min_host;
      if (sid < 0) {
        Pass::Result res = pass.Evaluate(h);
        uncached = CachedEval{0, 0, res.reason, res.score};
        return uncached;
      }
      std::vector<CachedEval>& row = eval_cache_[gid];
      if (row.size() <= size_t(sid)) row.resize(sid + 1);
      CachedEval& ce = row[sid];
      const uint64_t gen = x.groups[gid].gen;
      if (ce.gen != gen || ce.mix_version != mix_version) {
        Pass::Result res = pass.Evaluate(h);
        ce = CachedEval{gen, mix_version, res.reason, res.score};
      }
      return ce;
    };
    // Ordered searches visit groups in order until one holds the request. The group checks run
    // on chunks of the order that double in size, so a long run of full groups costs a batch
    // per chunk, not calls per group. Takes the first group of `chunk` that holds the request.
    std::vector<int> chunk;
    std::vector<int> chunk_verdicts;
    size_t chunk_limit = 0;
    auto try_chunk = [&]() {
      chunk_verdicts.resize(chunk.size());
      pass.PrecheckAll(chunk.data(), chunk.size(), chunk_verdicts.data());
      bool found = false;
      for (size_t k = 0; k < chunk.size() && !found; ++k) {
        const int pre = chunk_verdicts[k];
        if (pre >= 0) {
          remember_rejection(chunk[k], pre);
          continue;
        }
        if (pre == kMaybe && evaluate(chunk[k]).reason >= 0) continue;
        const GroupSummary& g = x.summary[chunk[k]];
        consider(g.min_host, pass.SummaryScore(g), 0, false);
        found = true;
      }
      chunk.clear();
      chunk_limit = std::min<size_t>(chunk_limit * 2, 256);
      return found;
    };
    // Adds a group to the chunk; true when a full chunk held the request. A group known to turn
    // this shape down is passed over without a check.
    auto visit_in_order = [&](int gid) {
      if (const CachedEval* ce = cached(gid); ce != nullptr && ce->reason >= 0) return false;
      chunk.push_back(gid);
      return chunk.size() >= chunk_limit && try_chunk();
    };
    if (pass.binpack_order()) {
      // Per class and bucket, groups come fullest first: the first that fits is the bucket's
      // best, and a bucket whose next group cannot beat the best so far is done.
      for (int cls = 0; cls < int(x.pack.size()); ++cls) {
        if (pass.ClassReason(cls) >= 0) continue;
        for (const auto& [bucket, entries] : x.pack[cls]) {
          if (!pass.BucketMayFit(bucket)) continue;
          // The best so far changes only when a group of this bucket holds the request, which
          // ends the bucket: the cut below is the one a group-by-group visit would make.
          chunk_limit = 4;
          bool found = false;
          for (const PackEntry& e : entries) {
            int64_t score = pass.SummaryScore(x.summary[e.group]);
            if (best_host >= 0 &&
                (score < best_score || (score == best_score && e.min_host > best_host))) {
              break;
            }
            if (visit_in_order(e.group)) {
              found = true;
              break;
            }
          }
          if (!found && !chunk.empty()) try_chunk();
          chunk.clear();
        }
      }
    } else if (pass.first_fit_order()) {
      chunk_limit = 4;
      bool found = false;
      for (const auto& [min_host, gid] : x.by_min_host) {
        if (visit_in_order(gid)) {
          found = true;
          break;
        }
      }
      if (!found && !chunk.empty()) try_chunk();
    }
    // The group checks for every live group at once, for the full pass and the explanation.
    // Groups with a cached answer for this shape are not checked again: a cached rejection is
    // their verdict, and a cached evaluation is found again by `evaluate`.
    bool checked_all = false;
    auto check_all = [&]() -> const std::vector<int>& {
      if (!checked_all) {
        const size_t n = x.live_groups.size();
        verdicts_.resize(n);
        unchecked_.clear();
        for (size_t k = 0; k < n; ++k) {
          const CachedEval* ce = cached(x.live_groups[k]);
          if (ce == nullptr) {
            unchecked_.push_back(x.live_groups[k]);
            verdicts_[k] = kMaybe;  // replaced below
          } else {
            verdicts_[k] = ce->reason >= 0 ? ce->reason : kMaybe;
          }
        }
        unchecked_verdicts_.resize(unchecked_.size());
        pass.PrecheckAll(unchecked_.data(), unchecked_.size(), unchecked_verdicts_.data());
        for (size_t k = 0, j = 0; k < n && j < unchecked_.size(); ++k) {
          if (x.live_groups[k] != unchecked_[j]) continue;
          verdicts_[k] = unchecked_verdicts_[j];
          if (verdicts_[k] >= 0) remember_rejection(unchecked_[j], verdicts_[k]);
          ++j;
        }
      }
      checked_all = true;
      return verdicts_;
    };
    if (pass.binpack_order() || pass.first_fit_order()) {
      // Searched above.
    } else if (exact) {
      // Scores first: the checkers then look only at groups that would beat the best so far.
      for (int gid : x.live_groups) {
        const GroupSummary& g = x.summary[gid];
        const int h = g.min_host;
        const int64_t score = pass.SummaryScore(g);
        if (best_host >= 0 && (score < best_score || (score == best_score && h > best_host))) {
          continue;
        }
        const int pre = pass.Precheck(g);
        if (pre >= 0) continue;
        if (pre == kFeasible) {
          consider(h, score, 0, false);
        } else if (const CachedEval& ce = evaluate(gid); ce.reason < 0) {
          consider(h, ce.score, 0, false);
        }
      }
    } else {
      const std::vector<int>& verdicts = check_all();
      for (size_t k = 0; k < x.live_groups.size(); ++k) {
        if (verdicts[k] >= 0) continue;
        const int gid = x.live_groups[k];
        const CachedEval& ce = evaluate(gid);
        const int h = x.summary[gid].min_host;
        if (ce.reason < 0) consider(h, ce.score + pass.ClusterScore(h), 0, false);
      }
    }
    if (best_host < 0 || options_.always_explain) {
      // Why each group was turned down: the summary answers for most (as Evaluate would, which
      // runs the same precheck first); the evaluation cache for many of the rest.
      const std::vector<int>& verdicts = check_all();
      for (size_t k = 0; k < x.live_groups.size(); ++k) {
        const int gid = x.live_groups[k];
        const HostGroup& g = x.groups[gid];
        int reason = verdicts[k];
        if (reason < 0) reason = evaluate(gid).reason;
        if (reason >= 0) pass.rejected[reason] += int64_t(g.hosts.size());
      }
    }
  } else {
    // How many of the request's spread group run under each value of the spread label.
    std::map<std::string, int64_t> spread;
    if (!r.spread_key.empty()) {
      const std::string& group = r.SpreadGroup();
      for (int h = 0; h < int(x.hosts.size()); ++h) {
        for (const std::string& id : x.host_allocations[h]) {
          if (x.allocations.find(id)->second.request.SpreadGroup() != group) continue;
          spread[SpreadDomain(x.hosts[h], r.spread_key)]++;
        }
      }
    }
    auto visit = [&](int h) {
      Pass::Result res = pass.Evaluate(h);
      if (res.reason >= 0) {
        pass.rejected[res.reason]++;
        return;
      }
      int64_t score = res.score + pass.ClusterScore(h);
      int64_t count = 0;
      if (!r.spread_key.empty()) {
        auto sit = spread.find(SpreadDomain(x.hosts[h], r.spread_key));
        count = sit == spread.end() ? 0 : sit->second;
      }
      consider(h, score, count,
               wants_warm && options_.holds_warm_state(x.hosts[h].name, r.warm_state));
    };
    if (only != nullptr) {
      for (int h : *only) visit(h);
    } else {
      for (int h = 0; h < int(x.hosts.size()); ++h) visit(h);
    }
  }
  if (best_host < 0) {
    d.reasons = SortedReasons(pass.rejected);
    return d;
  }
  d.scheduled = true;
  d.plan.placement.host = best_host;
  d.plan.placement.host_name = x.hosts[best_host].name;
  Pass::Result chosen = pass.Evaluate(best_host);
  d.plan.placement.gpus = pass.Assignments(best_host, chosen.changes);
  d.plan.placement.devices = PickDevices(x.host_devices[best_host], r);
  if (options_.always_explain) d.reasons = SortedReasons(pass.rejected);
  return d;
}

// Request shapes the evaluation cache remembers; a cache row holds one CachedEval per shape, so
// this bounds it at a few kilobytes per group. Real mixes (round CPU, memory and GPU sizes) have
// a few hundred shapes at most.
constexpr size_t kMaxCachedShapes = 512;

int Scheduler::ShapeId(const Request& r) {
  // A per-model quota changes which devices a tenant may use, so those requests are not cached.
  const Quota* q = cluster_->FindQuota(r.tenant);
  if (q != nullptr && !q->gpu_milli_by_model.empty()) return -1;
  // Shapes leave devices of other classes out; such requests are rare enough to go uncached.
  if (!r.devices.empty()) return -1;
  for (size_t i = 0; i < shapes_.size(); ++i) {
    const CachedShape& c = shapes_[i];
    if (c.shape.resources == r.resources && c.shape.gpu == r.gpu &&
        c.host_selector == r.host_selector) {
      return int(i);
    }
  }
  if (shapes_.size() >= kMaxCachedShapes) return -1;
  shapes_.push_back(CachedShape{Shape::Of(r), r.host_selector});
  return int(shapes_.size()) - 1;
}

absl::StatusOr<Decision> Scheduler::Schedule(const Request& r) {
  BERTH_RETURN_IF_ERROR(ValidateRequest(r));
  if (options_.mix == nullptr) tracker_.Observe(r);
  return ScheduleOn(r, nullptr);
}

absl::StatusOr<Decision> Scheduler::ScheduleWithoutLearning(const Request& r) {
  BERTH_RETURN_IF_ERROR(ValidateRequest(r));
  return ScheduleOn(r, nullptr);
}

absl::StatusOr<Decision> Scheduler::ScheduleOnHosts(const Request& r,
                                                    const std::vector<int>& hosts) {
  BERTH_RETURN_IF_ERROR(ValidateRequest(r));
  return ScheduleOn(r, &hosts);
}

absl::StatusOr<Decision> Scheduler::Place(const Request& r) {
  BERTH_ASSIGN_OR_RETURN(Decision d, Schedule(r));
  if (d.scheduled) BERTH_RETURN_IF_ERROR(cluster_->Commit(r, d.plan.placement));
  return d;
}

absl::StatusOr<GangDecision> Scheduler::ScheduleGang(const std::vector<Request>& members) {
  for (const Request& m : members) BERTH_RETURN_IF_ERROR(ValidateRequest(m));
  GangDecision gd;
  std::vector<std::string> committed;
  std::vector<int> used_hosts;
  auto rollback = [&]() {
    // Each member was committed just before: a failed release is a bug in the model.
    for (auto it = committed.rbegin(); it != committed.rend(); ++it) {
      core::OkOrReport("sched", core::Cat("gang member ", *it, ": trial release"),
                       cluster_->Release(*it));
    }
  };
  for (const Request& m : members) {
    if (options_.mix == nullptr) tracker_.Observe(m);
    Decision d;
    bool done = false;
    if (m.spread_key.empty() && !used_hosts.empty()) {
      // Packing: hosts the gang already uses come first, so it spans as few hosts as possible.
      absl::StatusOr<Decision> on_used = ScheduleOn(m, &used_hosts);
      if (!on_used.ok()) {
        rollback();
        return on_used.status();
      }
      if (on_used->scheduled) {
        d = std::move(*on_used);
        done = true;
      }
    }
    if (!done) {
      absl::StatusOr<Decision> any = ScheduleOn(m, nullptr);
      if (!any.ok()) {
        rollback();
        return any.status();
      }
      d = std::move(*any);
    }
    if (!d.scheduled) {
      rollback();
      gd.plans.clear();
      gd.reasons = std::move(d.reasons);
      gd.failed_member = m.id;
      return gd;
    }
    if (absl::Status s = cluster_->Commit(m, d.plan.placement); !s.ok()) {
      rollback();
      return s;
    }
    committed.push_back(m.id);
    if (std::find(used_hosts.begin(), used_hosts.end(), d.plan.placement.host) ==
        used_hosts.end()) {
      used_hosts.push_back(d.plan.placement.host);
    }
    gd.plans.push_back(std::move(d.plan));
  }
  rollback();
  gd.scheduled = true;
  return gd;
}

absl::StatusOr<Decision> Scheduler::ScheduleWithPreemption(const Request& r) {
  BERTH_ASSIGN_OR_RETURN(Decision d, Schedule(r));
  if (d.scheduled) return d;
  if (!cluster_->CheckQuota(r, "").ok()) return d;
  Cluster::Index& x = cluster_->index();

  struct Choice {
    int max_priority = 0;
    int count = 0;
    int64_t lost = 0;  // seconds of work the victims lose
    int64_t freed = 0;
    int host = -1;
    std::vector<std::string> victims;
    Placement placement;
  };
  std::optional<Choice> best;
  auto better = [](const Choice& a, const Choice& b) {
    return std::tie(a.max_priority, a.count, a.lost, a.freed, a.host) <
           std::tie(b.max_priority, b.count, b.lost, b.freed, b.host);
  };

  for (int h = 0; h < int(x.hosts.size()); ++h) {
    if (!x.schedulable[h]) continue;
    const HostState& host = x.hosts[h];
    // Copies: trying a victim set releases and recommits allocations, which moves them.
    std::vector<Allocation> candidates;
    for (const std::string& id : x.host_allocations[h]) {
      const Allocation& a = x.allocations.find(id)->second;
      if (a.request.preemptible && a.request.priority < r.priority) candidates.push_back(a);
    }
    std::vector<const Allocation*> pool;
    for (const Allocation& a : candidates) pool.push_back(&a);
    if (pool.empty()) continue;
    std::map<const Allocation*, int64_t> lost_of;
    for (const Allocation* a : pool) {
      lost_of[a] = options_.lost_work ? std::max<int64_t>(0, options_.lost_work(a->request.id)) : 0;
    }
    // Normalized size of what each candidate holds, so "resources freed" compares across
    // dimensions.
    auto size_of = [&](const Allocation* a) {
      int64_t s = Util(a->request.resources.cpu.value(), host.capacity.cpu.value()) +
                  Util(a->request.resources.memory.value(), host.capacity.memory.value()) +
                  Util(a->request.resources.disk.value(), host.capacity.disk.value());
      int64_t milli = 0;
      for (const core::GpuAssignment& g : a->placement.gpus) milli += g.milli;
      return s + 2 * Util(milli, host.GpuCapacityMilli());
    };
    std::sort(pool.begin(), pool.end(), [&](const Allocation* a, const Allocation* b) {
      return std::make_tuple(a->request.priority, -size_of(a), a->request.id) <
             std::make_tuple(b->request.priority, -size_of(b), b->request.id);
    });
    std::vector<std::string> saved_order = x.host_allocations[h];
    // Tries evicting `set`: releases it, asks for a plan on this host alone, restores it.
    auto try_set = [&](const std::vector<const Allocation*>& set) -> std::optional<Placement> {
      // The victims are live allocations of this host, released and restored on the model
      // only: a failure is a bug in the model, reported rather than hidden.
      for (const Allocation* a : set) {
        core::OkOrReport("sched", core::Cat("workload ", a->request.id, ": trial eviction"),
                         cluster_->Release(a->request.id));
      }
      std::vector<int> only = {h};
      absl::StatusOr<Decision> on = ScheduleOn(r, &only);
      for (const Allocation* a : set) {
        core::OkOrReport("sched", core::Cat("workload ", a->request.id, ": restore after trial"),
                         cluster_->Commit(a->request, a->placement));
      }
      x.host_allocations[h] = saved_order;
      if (on.ok() && on->scheduled) return on->plan.placement;
      return std::nullopt;
    };
    // The lowest priority level whose candidates, all evicted, make room.
    std::vector<int> levels;
    for (const Allocation* a : pool) {
      if (levels.empty() || levels.back() != a->request.priority) {
        levels.push_back(a->request.priority);
      }
    }
    for (int level : levels) {
      if (best && level > best->max_priority) break;
      std::vector<const Allocation*> eligible;
      for (const Allocation* a : pool) {
        if (a->request.priority <= level) eligible.push_back(a);
      }
      if (!try_set(eligible)) continue;
      // Fewest victims, then least freed: exhaustive over small pools, greedy pruning beyond.
      std::vector<const Allocation*> chosen;
      std::optional<Placement> placement;
      if (eligible.size() <= 10) {
        struct Subset {
          int count;
          int64_t lost;
          int64_t freed;
          uint32_t mask;
        };
        std::vector<Subset> subsets;
        for (uint32_t mask = 1; mask < (1u << eligible.size()); ++mask) {
          bool has_level = false;
          int64_t freed = 0, lost = 0;
          for (size_t i = 0; i < eligible.size(); ++i) {
            if (mask & (1u << i)) {
              has_level |= eligible[i]->request.priority == level;
              freed += size_of(eligible[i]);
              lost += lost_of[eligible[i]];
            }
          }
          if (has_level) subsets.push_back({std::popcount(mask), lost, freed, mask});
        }
        std::sort(subsets.begin(), subsets.end(), [](const Subset& a, const Subset& b) {
          return std::tie(a.count, a.lost, a.freed, a.mask) <
                 std::tie(b.count, b.lost, b.freed, b.mask);
        });
        for (const Subset& s : subsets) {
          std::vector<const Allocation*> set;
          for (size_t i = 0; i < eligible.size(); ++i) {
            if (s.mask & (1u << i)) set.push_back(eligible[i]);
          }
          placement = try_set(set);
          if (placement) {
            chosen = std::move(set);
            break;
          }
        }
      } else {
        chosen = eligible;
        // Drop the smallest first: what remains tends to be few, large victims.
        for (size_t i = chosen.size(); i-- > 0;) {
          std::vector<const Allocation*> without = chosen;
          without.erase(without.begin() + i);
          if (!without.empty() && try_set(without)) chosen = std::move(without);
        }
        placement = try_set(chosen);
      }
      if (!placement) break;
      Choice c;
      c.host = h;
      c.count = int(chosen.size());
      for (const Allocation* a : chosen) {
        c.max_priority = std::max(c.max_priority, a->request.priority);
        c.lost += lost_of[a];
        c.freed += size_of(a);
        c.victims.push_back(a->request.id);
      }
      c.max_priority = level;
      c.placement = std::move(*placement);
      if (!best || better(c, *best)) best = std::move(c);
      break;
    }
  }
  if (!best) return d;
  d.scheduled = true;
  d.plan.placement = std::move(best->placement);
  d.plan.victims = std::move(best->victims);
  d.reasons.clear();
  return d;
}

}  // namespace berth::sched
