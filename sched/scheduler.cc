#include "sched/scheduler.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "core/status.h"
#include "core/strings.h"
#include "sched/cluster_index.h"
#include "sched/fgd.h"
#include "sched/fits.h"
#include "sched/ranker.h"

namespace berth::sched {

namespace {

using Kind = core::GpuRequest::Kind;

// Feasibility checkers, in the order they run. Static checks (the host's class) come first:
// they are answered once per distinct hardware and label set. Then capacity, cheapest first,
// then the GPU device search, then checks that look at other workloads on the host.
enum Reason {
  kNotSchedulable,  // cordoned or draining
  kLabels,          // host_selector does not match
  kNoGpu,           // GPU request, host has no GPU devices
  kGpuModel,        // no device of an allowed model
  kGpuMemory,       // no allowed device with enough device memory
  kMigProfile,      // no MIG-partitioned device offering the profile
  kQuotaModel,      // the tenant's quota for the device model is used up
  kCpu,
  kMemory,
  kDisk,
  kGpuCount,  // not enough idle whole devices
  kGpuShare,  // no device with enough free share and memory
  kMigSlot,   // no free MIG slot for the profile
  kAffinity,
  kAntiAffinity,
  kNumReasons,
};

constexpr const char* kReasonNames[kNumReasons] = {
    "host not schedulable",
    "host labels",
    "no gpus",
    "gpu model not allowed",
    "insufficient gpu memory",
    "mig profile not offered",
    "quota",
    "cpu",
    "memory",
    "disk",
    "insufficient gpus",
    "insufficient gpu share",
    "no free mig slot",
    "affinity",
    "anti-affinity",
};

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
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string_view part =
        text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    pos = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
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
    if (!out.empty()) out += ",";
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

// The per-request working state of one scheduling pass.
class Scheduler::Pass {
 public:
  Pass(Scheduler& s, const Request& r) : s_(s), x_(s.cluster_->index()), r_(r) {
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
      switch (ranker->summary_role(r)) {
        case SummaryRole::kVaries:
          summary_exact_ = false;
          break;
        case SummaryRole::kConstant:
          break;
        case SummaryRole::kPack:
          has_pack_ = true;
          break;
        case SummaryRole::kSpread:
          has_spread_ = true;
          break;
      }
    }
    total_milli_ = r.gpu.TotalMilli();
    mix_ = &s.mix();
    classes_.resize(x_.classes.size());
    class_done_.assign(x_.classes.size(), 0);
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
  // kMaybe when only the device search can tell, -1 when it surely fits.
  static constexpr int kMaybe = -2;
  int Precheck(const GroupSummary& g);
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
  std::vector<core::GpuAssignment> Assignments(int h, const Changes& changes) const;
  std::array<int64_t, kNumReasons> rejected{};

 private:
  struct ClassInfo {
    int reason = -1;
    absl::InlinedVector<DeviceFit, 8> gpu;
    uint32_t ok_mask = 0;  // devices that pass the static checks
    // twin[i]: the first device with device i's model and memory, so that comparing two
    // devices' hardware is one integer compare.
    absl::InlinedVector<int, 8> twin;
    int64_t req_pack = 0;  // PackKey of the request on this class
  };
  const ClassInfo& Class(int cls) {
    if (!class_done_[cls]) ComputeClass(cls);
    return classes_[cls];
  }
  void ComputeClass(int cls);
  // The policy's weighted sum for host `h` taking `changes`; `costs`, when set, holds each
  // term's DeviceCost of exactly these changes.
  int64_t Score(int h, const Changes& changes, const int64_t* costs);
  RankContext Context() { return RankContext{x_, r_, total_milli_, *mix_}; }
  // Binpack's utilization after placing (see PackKey).
  int64_t UtilAfter(const GroupSummary& g, const ClassInfo& ci) const {
    return g.pack_key + ci.req_pack;
  }

  Scheduler& s_;
  Cluster::Index& x_;
  const Request& r_;
  absl::InlinedVector<std::pair<Ranker*, int64_t>, 4> terms_;  // weight > 0 only
  DeviceOrder device_order_ = DeviceOrder::kLowestIndex;       // first-fit's for an empty policy
  bool costs_devices_ = false;
  bool summary_exact_ = true;
  bool has_pack_ = false;
  bool has_spread_ = false;
  int64_t total_milli_ = 0;
  const WorkloadMix* mix_;
  std::vector<ClassInfo> classes_;
  std::vector<char> class_done_;
};

void Scheduler::Pass::ComputeClass(int cls) {
  ClassInfo& info = classes_[cls];
  class_done_[cls] = 1;
  const HostClass& c = x_.classes[cls];
  info.req_pack = PackKey(c.capacity, int64_t(c.gpus.size()) * core::kWholeGpuMilli, r_.resources,
                          total_milli_);
  for (const LabelSelector& sel : r_.host_selector) {
    if (!sel.Matches(c.labels)) {
      info.reason = kLabels;
      return;
    }
  }
  if (r_.gpu.kind == Kind::kNone) return;
  if (c.gpus.empty()) {
    info.reason = kNoGpu;
    return;
  }
  bool model = false, memory = false, quota = false;
  info.gpu.resize(c.gpus.size());
  info.twin.resize(c.gpus.size());
  for (size_t i = 0; i < c.gpus.size(); ++i) {
    size_t j = 0;
    while (c.gpus[j].model != c.gpus[i].model || c.gpus[j].memory_mib != c.gpus[i].memory_mib) ++j;
    info.twin[i] = int(j);
  }
  const Quota* q = s_.cluster_->FindQuota(r_.tenant);
  for (size_t i = 0; i < c.gpus.size(); ++i) {
    const core::GpuDevice& d = c.gpus[i];
    if (!r_.gpu.AllowsModel(d.model)) continue;
    model = true;
    DeviceFit st = DeviceFitFor(d, r_.gpu);
    if (!st.ok()) continue;
    memory = true;
    if (q != nullptr && !q->gpu_milli_by_model.empty() &&
        !s_.cluster_->CheckQuota(r_, d.model).ok()) {
      continue;
    }
    quota = true;
    info.gpu[i] = st;
    if (i < 32) info.ok_mask |= 1u << i;
  }
  if (!model) {
    info.reason = kGpuModel;
  } else if (!memory) {
    info.reason = r_.gpu.kind == Kind::kMig ? kMigProfile : kGpuMemory;
  } else if (!quota) {
    info.reason = kQuotaModel;
  }
  return;
}

int Scheduler::Pass::Precheck(const GroupSummary& g) {
  if (!g.schedulable) return kNotSchedulable;
  const ClassInfo& ci = Class(g.cls);
  if (ci.reason >= 0) return ci.reason;
  if (g.free.cpu < r_.resources.cpu) return kCpu;
  if (g.free.memory < r_.resources.memory) return kMemory;
  if (g.free.disk < r_.resources.disk) return kDisk;
  switch (r_.gpu.kind) {
    case Kind::kNone:
      return -1;
    case Kind::kWhole:
      if (x_.classes[g.cls].gpus.size() > 32) return kMaybe;
      return std::popcount(g.idle_mask & ci.ok_mask) >= r_.gpu.count ? -1 : kGpuCount;
    case Kind::kShare:
      return g.max_share_free >= r_.gpu.milli ? kMaybe : kGpuShare;
    case Kind::kMig:
      return g.mig_free ? kMaybe : kMigSlot;
  }
  return kMaybe;
}

int64_t Scheduler::Pass::SummaryScore(const GroupSummary& g) {
  const ClassInfo& ci = Class(g.cls);
  const int64_t util_after = UtilAfter(g, ci);
  const RankContext ctx = Context();
  int64_t total = 0;
  for (const auto& [ranker, weight] : terms_) {
    total += weight * (ranker->SummaryScore(ctx, g, util_after) / 1000);
  }
  return total;
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
  int pre = Precheck(gsum);
  if (pre >= 0) {
    res.reason = pre;
    return res;
  }
  const ClassInfo& ci = Class(x_.host_class[h]);
  const HostState& host = x_.hosts[h];
  const auto& st = ci.gpu;
  // Each term's DeviceCost of the chosen share or MIG slice, kept for Score.
  absl::InlinedVector<int64_t, 4> costs;
  bool have_costs = false;
  switch (r_.gpu.kind) {
    case Kind::kNone:
      break;
    case Kind::kWhole: {
      absl::InlinedVector<int, 16> idle;
      for (size_t i = 0; i < host.gpus.size(); ++i) {
        if (Holds(st[i], r_.gpu, DeviceFree::Of(host.gpus[i]))) idle.push_back(int(i));
      }
      if (int(idle.size()) < r_.gpu.count) {
        res.reason = kGpuCount;
        return res;
      }
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
      for (size_t i = 0; i < host.gpus.size(); ++i) {
        const GpuState& g = host.gpus[i];
        if (!Holds(st[i], r_.gpu, DeviceFree::Of(g))) continue;
        // A device in the same state and of the same kind as one already tried scores the same
        // and has a higher index: skip it.
        bool seen = false;
        for (size_t j = 0; j < i && !seen; ++j) {
          const GpuState& o = host.gpus[j];
          seen = o.free_milli == g.free_milli && o.free_memory_mib == g.free_memory_mib &&
                 o.mig_slices_used == g.mig_slices_used && ci.twin[j] == ci.twin[i] &&
                 Holds(st[j], r_.gpu, DeviceFree::Of(o));
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
      if (best < 0) {
        res.reason = r_.gpu.kind == Kind::kShare ? kGpuShare : kMigSlot;
        return res;
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
}

Scheduler::~Scheduler() = default;

const WorkloadMix& Scheduler::mix() const { return options_.mix ? *options_.mix : tracker_.mix(); }

namespace {

std::vector<ReasonCount> SortedReasons(const std::array<int64_t, kNumReasons>& counts) {
  std::vector<ReasonCount> out;
  for (int i = 0; i < kNumReasons; ++i) {
    if (counts[i] > 0) out.push_back({kReasonNames[i], int(counts[i])});
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
  Pass pass(*this, r);

  // Constraints that look at other workloads need the host itself, not its group.
  bool per_host = only != nullptr || !r.affinity.empty() || !r.spread_key.empty();
  int best_host = -1;
  int64_t best_score = 0;
  int64_t best_spread = 0;
  auto consider = [&](int h, int64_t score, int64_t spread_count) {
    if (best_host < 0 || spread_count < best_spread ||
        (spread_count == best_spread &&
         (score > best_score || (score == best_score && h < best_host)))) {
      best_host = h;
      best_score = score;
      best_spread = spread_count;
    }
  };
  if (!per_host) {
    // One pass over the groups of identical hosts, each represented by its lowest-index host.
    // The summary rejects most groups at once; policies made only of summary-scored rankers
    // evaluate a group fully only when it could beat the best so far.
    bool exact = pass.summary_exact();
    int sid = -2;  // looked up on the first evaluation: summary-scored searches rarely need it
    if (cache_hosts_version_ != x.hosts_version) {
      cache_hosts_version_ = x.hosts_version;
      eval_cache_.clear();
    }
    if (eval_cache_.size() < x.groups.size()) eval_cache_.resize(x.groups.size());
    const uint64_t mix_version = mix().version();
    // Evaluate on the group's lowest host, through the cache when the shape has an id: most
    // groups keep their state from one request to the next.
    CachedEval uncached;
    auto evaluate = [&](int gid) -> const CachedEval& {
      const int h = x.summary[gid].min_host;
      if (sid == -2) sid = ShapeId(r);
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
    // Visits a group in an ordered search; true when it holds the request.
    auto try_group = [&](int gid, int64_t score) {
      const GroupSummary& g = x.summary[gid];
      int pre = pass.Precheck(g);
      if (pre >= 0) return false;
      if (pre == Pass::kMaybe && evaluate(gid).reason >= 0) return false;
      consider(g.min_host, score, 0);
      return true;
    };
    if (pass.binpack_order()) {
      // Per class and bucket, groups come fullest first: the first that fits is the bucket's
      // best, and a bucket whose next group cannot beat the best so far is done.
      for (int cls = 0; cls < int(x.pack.size()); ++cls) {
        if (pass.ClassReason(cls) >= 0) continue;
        for (const auto& [bucket, entries] : x.pack[cls]) {
          if (!pass.BucketMayFit(bucket)) continue;
          for (const PackEntry& e : entries) {
            int64_t score = pass.SummaryScore(x.summary[e.group]);
            if (best_host >= 0 &&
                (score < best_score || (score == best_score && e.min_host > best_host))) {
              break;
            }
            if (try_group(e.group, score)) break;
          }
        }
      }
    } else if (pass.first_fit_order()) {
      for (const auto& [min_host, gid] : x.by_min_host) {
        if (try_group(gid, pass.SummaryScore(x.summary[gid]))) break;
      }
    }
    for (int gid : x.live_groups) {
      if (pass.binpack_order() || pass.first_fit_order()) break;
      const GroupSummary& g = x.summary[gid];
      int pre = pass.Precheck(g);
      if (pre >= 0) continue;
      int h = g.min_host;
      if (exact) {
        int64_t score = pass.SummaryScore(g);
        if (best_host >= 0 && (score < best_score || (score == best_score && h > best_host))) {
          continue;
        }
        if (pre == -1) {
          consider(h, score, 0);
          continue;
        }
      }
      const CachedEval& ce = evaluate(gid);
      if (ce.reason < 0) consider(h, ce.score, 0);
    }
    if (best_host < 0 || options_.always_explain) {
      // Why each group was turned down: the summary answers for most (as Evaluate would, which
      // runs the same precheck first); the evaluation cache for many of the rest.
      for (int gid : x.live_groups) {
        const HostGroup& g = x.groups[gid];
        int reason = pass.Precheck(x.summary[gid]);
        if (reason < 0) reason = evaluate(gid).reason;
        if (reason >= 0) pass.rejected[reason] += int64_t(g.hosts.size());
      }
    }
  } else {
    // Hosts holding a workload that matches each affinity term, and spread counts per value.
    std::vector<absl::flat_hash_set<int>> matches(r.affinity.size());
    std::map<std::string, int64_t> spread;
    const std::string& group = r.SpreadGroup();
    for (int h = 0; h < int(x.hosts.size()); ++h) {
      for (const std::string& id : x.host_allocations[h]) {
        const Allocation& a = x.allocations.find(id)->second;
        for (size_t t = 0; t < r.affinity.size(); ++t) {
          auto it = a.request.labels.find(r.affinity[t].key);
          if (it != a.request.labels.end() && it->second == r.affinity[t].value) {
            matches[t].insert(h);
          }
        }
        if (!r.spread_key.empty() && a.request.SpreadGroup() == group) {
          auto lit = x.hosts[h].labels.find(r.spread_key);
          spread[lit == x.hosts[h].labels.end() ? std::string() : lit->second]++;
        }
      }
    }
    auto visit = [&](int h) {
      Pass::Result res = pass.Evaluate(h);
      if (res.reason < 0) {
        for (size_t t = 0; t < r.affinity.size(); ++t) {
          bool present = matches[t].contains(h);
          if (r.affinity[t].anti && present) {
            res.reason = kAntiAffinity;
            break;
          }
          if (!r.affinity[t].anti && !present) {
            res.reason = kAffinity;
            break;
          }
        }
      }
      if (res.reason >= 0) {
        pass.rejected[res.reason]++;
        return;
      }
      int64_t score = res.score;
      int64_t count = 0;
      if (!r.spread_key.empty()) {
        auto lit = x.hosts[h].labels.find(r.spread_key);
        auto sit = spread.find(lit == x.hosts[h].labels.end() ? std::string() : lit->second);
        count = sit == spread.end() ? 0 : sit->second;
      }
      consider(h, score, count);
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
  for (size_t i = 0; i < shapes_.size(); ++i) {
    if (shapes_[i].resources == r.resources && shapes_[i].gpu == r.gpu) return int(i);
  }
  if (shapes_.size() >= kMaxCachedShapes) return -1;
  shapes_.push_back(Shape::Of(r));
  return int(shapes_.size()) - 1;
}

absl::StatusOr<Decision> Scheduler::Schedule(const Request& r) {
  BERTH_RETURN_IF_ERROR(ValidateRequest(r));
  if (options_.mix == nullptr) tracker_.Observe(r);
  return ScheduleOn(r, nullptr);
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
    for (auto it = committed.rbegin(); it != committed.rend(); ++it) {
      absl::Status s = cluster_->Release(*it);
      (void)s;
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
    int64_t freed = 0;
    int host = -1;
    std::vector<std::string> victims;
    Placement placement;
  };
  std::optional<Choice> best;
  auto better = [](const Choice& a, const Choice& b) {
    return std::tie(a.max_priority, a.count, a.freed, a.host) <
           std::tie(b.max_priority, b.count, b.freed, b.host);
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
      for (const Allocation* a : set) {
        absl::Status s = cluster_->Release(a->request.id);
        (void)s;
      }
      std::vector<int> only = {h};
      absl::StatusOr<Decision> on = ScheduleOn(r, &only);
      for (const Allocation* a : set) {
        absl::Status s = cluster_->Commit(a->request, a->placement);
        (void)s;
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
          int64_t freed;
          uint32_t mask;
        };
        std::vector<Subset> subsets;
        for (uint32_t mask = 1; mask < (1u << eligible.size()); ++mask) {
          bool has_level = false;
          int64_t freed = 0;
          for (size_t i = 0; i < eligible.size(); ++i) {
            if (mask & (1u << i)) {
              has_level |= eligible[i]->request.priority == level;
              freed += size_of(eligible[i]);
            }
          }
          if (has_level) subsets.push_back({std::popcount(mask), freed, mask});
        }
        std::sort(subsets.begin(), subsets.end(), [](const Subset& a, const Subset& b) {
          return std::tie(a.count, a.freed, a.mask) < std::tie(b.count, b.freed, b.mask);
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
