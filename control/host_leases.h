// HostLeases: the in-memory leases of hosts, the time each one last heartbeat, indexed by that
// time as well as by name, so that finding the hosts whose lease ran out costs what it finds,
// not the size of the fleet: the liveness check runs every second, and at ten thousand hosts a
// walk over all of them each second is most of what an idle server does.
//
// A lease is armed while the host is watched for expiry. TakeExpired disarms what it returns (a
// host marked down is not reported again every second); a renewal arms it again, and so does
// Rearm, for a caller that could not act on an expiry and wants it reported at the next check.
//
// Thread-compatible: the caller serializes access (ControlPlane holds its mutex).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace berth::control {

class HostLeases {
 public:
  struct Expired {
    std::string name;
    absl::Time last;  // when the lease was last renewed
  };

  // Renews `name`'s lease at `at`, and arms it.
  void Renew(std::string_view name, absl::Time at);
  // Starts `name`'s lease at `at`, armed, unless the host has one already (armed or not).
  void TrackIfUnknown(std::string_view name, absl::Time at);
  // Arms `name`'s lease again with the time it has; nothing for a host without one.
  void Rearm(std::string_view name);
  // Drops `name`'s lease entirely (the host was removed).
  void Forget(std::string_view name);
  void Clear();

  // When `name`'s lease was last renewed (armed or not); nullopt when it has none.
  std::optional<absl::Time> Last(std::string_view name) const;
  // Disarms and returns every armed lease last renewed before `deadline`, oldest first. The
  // cost follows what it returns (plus a logarithm of the fleet).
  std::vector<Expired> TakeExpired(absl::Time deadline);

  size_t size() const { return leases_.size(); }
  size_t armed() const { return by_time_.size(); }

 private:
  struct Lease {
    absl::Time last;
    bool armed = false;
  };
  using Map = std::map<std::string, Lease, std::less<>>;
  // By time, then name; the name points at the map's key, which a std::map never moves.
  struct Earlier {
    bool operator()(const std::pair<absl::Time, const std::string*>& a,
                    const std::pair<absl::Time, const std::string*>& b) const {
      if (a.first != b.first) return a.first < b.first;
      return *a.second < *b.second;
    }
  };

  void Disarm(Map::iterator it);
  void Arm(Map::iterator it);

  Map leases_;
  std::set<std::pair<absl::Time, const std::string*>, Earlier> by_time_;  // the armed ones
};

}  // namespace berth::control
