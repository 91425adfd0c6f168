// Crash safety of EtcdStore: a forked writer commits numbered keys through EtcdStore and reports
// each acknowledged commit over a pipe; the test SIGKILLs the writer, or the etcd member itself,
// at varying points, and checks that every acknowledged commit is in etcd, whole. EtcdStore must
// acknowledge only what etcd acknowledged (and etcd only what it made durable).
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "state/etcd/etcd_store.h"
#include "state/etcd/etcd_test_util.h"

namespace berth::state {
namespace {

struct Ack {
  int64_t n;
  int64_t revision;
};

std::string Key(const char* prefix, int64_t n) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%08lld", static_cast<long long>(n));
  return std::string(prefix) + buf;
}

EtcdStoreOptions Options() {
  EtcdStoreOptions options;
  options.request_timeout = absl::Seconds(60);
  return options;
}

// Runs in the forked child: writes keys first, first+1, ... until killed (or until etcd goes
// away). Each commit puts a key and its mirror in one transaction.
[[noreturn]] void Writer(const std::vector<std::string>& endpoints, int64_t first, int fd) {
  auto store = EtcdStore::Open(endpoints, Options());
  if (!store.ok()) _exit(2);
  for (int64_t n = first;; ++n) {
    std::string value = "value-" + std::to_string(n) + std::string(64 + n % 200, 'x');
    TxnRequest txn;
    txn.then_ops = {Op::Put(Key("/crash/", n), value), Op::Put(Key("/mirror/", n), value)};
    absl::StatusOr<TxnResponse> response = (*store)->Txn(txn);
    if (!response.ok()) _exit(3);
    Ack ack{n, response->revision};
    if (write(fd, &ack, sizeof(ack)) != sizeof(ack)) _exit(4);
  }
}

TEST(EtcdCrashTest, AcknowledgedWritesSurviveSigkill) {
  auto cluster = testing::EtcdCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::vector<std::string> endpoints = (*cluster)->endpoints();
  int64_t next = 0;  // the first key number the next writer writes
  // Kill points, in acknowledged commits; odd rounds kill etcd instead of the writer.
  const std::vector<int> kill_points = {0, 1, 7, 40, 113, 3, 60};
  for (size_t round = 0; round < kill_points.size(); ++round) {
    const int kill_after = kill_points[round];
    const bool kill_etcd = round % 2 == 1;
    SCOPED_TRACE("kill " + std::string(kill_etcd ? "etcd" : "the writer") + " after " +
                 std::to_string(kill_after) + " acks");
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      Writer(endpoints, next, fds[1]);
    }
    close(fds[1]);
    std::vector<Ack> acks;
    auto read_ack = [&]() {
      Ack ack;
      size_t got = 0;
      while (got < sizeof(ack)) {
        ssize_t r = read(fds[0], reinterpret_cast<char*>(&ack) + got, sizeof(ack) - got);
        if (r <= 0) return false;
        got += static_cast<size_t>(r);
      }
      acks.push_back(ack);
      return true;
    };
    bool early_death = false;
    while (static_cast<int>(acks.size()) < kill_after) {
      if (!read_ack()) {
        early_death = true;
        break;
      }
    }
    // When etcd dies the writer goes too, at once: left alone it would retry the dead member
    // until its request timeout. A commit etcd made whose ack the writer never sent is the one
    // commit beyond the last ack that the checks below allow.
    if (kill_etcd) ASSERT_TRUE((*cluster)->Kill(0).ok());
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    // Acks already in the pipe were acknowledged before the kill.
    while (read_ack()) {
    }
    close(fds[0]);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    ASSERT_FALSE(early_death && WIFEXITED(wstatus))
        << "writer died early with " << WEXITSTATUS(wstatus);
    if (kill_etcd) ASSERT_TRUE((*cluster)->Restart(0).ok());

    auto store = EtcdStore::Open(endpoints, Options());
    ASSERT_TRUE(store.ok()) << store.status();
    for (size_t i = 0; i < acks.size(); ++i) {
      ASSERT_EQ(acks[i].n, next + static_cast<int64_t>(i));
      absl::StatusOr<GetResponse> got = (*store)->Get(Key("/crash/", acks[i].n));
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_TRUE(got->kv.has_value()) << "acknowledged key " << acks[i].n << " is missing";
      EXPECT_EQ(got->kv->mod_revision, acks[i].revision);
      EXPECT_EQ(got->kv->value.substr(0, 6), "value-");
    }
    absl::StatusOr<ListResponse> keys = (*store)->List("/crash/");
    absl::StatusOr<ListResponse> mirrors = (*store)->List("/mirror/");
    ASSERT_TRUE(keys.ok() && mirrors.ok());
    // Numbers are contiguous from 0; at most one commit beyond the last ack reached etcd.
    ASSERT_EQ(keys->kvs.size(), mirrors->kvs.size()) << "a transaction was torn";
    int64_t count = static_cast<int64_t>(keys->kvs.size());
    EXPECT_GE(count, next + static_cast<int64_t>(acks.size()));
    EXPECT_LE(count, next + static_cast<int64_t>(acks.size()) + 1);
    for (int64_t i = 0; i < count; ++i) {
      ASSERT_EQ(keys->kvs[i].key, Key("/crash/", i));
      ASSERT_EQ(mirrors->kvs[i].key, Key("/mirror/", i));
      ASSERT_EQ(keys->kvs[i].value, mirrors->kvs[i].value);
      ASSERT_EQ(keys->kvs[i].mod_revision, mirrors->kvs[i].mod_revision);
    }
    next = count;
  }
}

}  // namespace
}  // namespace berth::state
