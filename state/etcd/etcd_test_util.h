// A throwaway etcd cluster for tests: real etcd members (/usr/bin/etcd, or $BERTH_ETCD) on
// loopback ports the kernel picked, with their data in a scratch directory. The destructor kills
// every member and removes the directory; members also die with the thread that started them,
// so a crashed test leaves no etcd behind.
//
// Thread-safety: not thread-safe; one test thread drives it.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace berth::state::testing {

class EtcdCluster {
 public:
  // Starts `members` members and waits until each serves with a leader. FailedPrecondition when
  // the etcd binary is missing.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(int members = 1);
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  // "127.0.0.1:PORT" client addresses, one per member.
  std::vector<std::string> endpoints() const;
  const std::string& endpoint(int member) const { return members_[member].client; }
  int size() const { return static_cast<int>(members_.size()); }
  // A member's name ("m0"), data directory, and peer URL ("http://127.0.0.1:PORT"), and the
  // NAME=PEER_URL list of every member, for restoring a member's data from a snapshot.
  const std::string& name(int member) const { return members_[member].name; }
  std::string data_dir(int member) const;
  std::string peer_url(int member) const { return "http://" + members_[member].peer; }
  const std::string& initial_cluster() const { return initial_cluster_; }

  // SIGKILLs a member and reaps it.
  [[nodiscard]] absl::Status Kill(int member);
  // Starts a killed member again on its ports and data, and waits until it serves.
  [[nodiscard]] absl::Status Restart(int member);

 private:
  struct Member {
    std::string name;
    std::string client;  // 127.0.0.1:PORT
    std::string peer;
    pid_t pid = -1;
  };

  EtcdCluster() = default;
  absl::Status Launch(int member);
  absl::Status WaitServing(int member);
  std::string LogTail(int member) const;

  std::string binary_;
  std::string dir_;
  std::string initial_cluster_;
  std::vector<Member> members_;
};

}  // namespace berth::state::testing
