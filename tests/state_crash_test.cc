// Crash safety of SqliteStore: a forked writer commits numbered keys and reports each
// acknowledged commit over a pipe; the parent SIGKILLs it at varying points, reopens the store
// and checks that every acknowledged commit is there, whole, and that the store accepts writes.
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "state/sqlite_store.h"
#include "state/store_test_util.h"

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

StoreOptions Options() {
  StoreOptions options;
  options.lease_tick_interval = absl::ZeroDuration();
  return options;
}

// Runs in the forked child: writes keys first, first+1, ... until killed. Each commit puts a
// key and its mirror in one transaction, so a torn transaction would show as a lone key.
[[noreturn]] void Writer(const std::string& path, int64_t first, int fd) {
  auto store = SqliteStore::Open(path, Options());
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

TEST(StateCrashTest, AcknowledgedWritesSurviveSigkill) {
  testing::ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.path() + "/state.db";
  int64_t next = 0;    // the first key number the next writer writes
  int64_t probes = 0;  // revisions taken by the checks after each reopen
  // Kill points, in acknowledged commits: 0 may land while the store is still opening.
  for (int kill_after : {0, 1, 7, 40, 113, 3, 250}) {
    SCOPED_TRACE("kill after " + std::to_string(kill_after) + " acks");
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      Writer(path, next, fds[1]);
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
    while (static_cast<int>(acks.size()) < kill_after) {
      ASSERT_TRUE(read_ack()) << "writer died early";
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "writer exited with " << WEXITSTATUS(wstatus);
    // Acks already in the pipe were acknowledged before the kill.
    while (read_ack()) {
    }
    close(fds[0]);

    auto store = SqliteStore::Open(path, Options());
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
    // Numbers are contiguous from 0; at most one commit beyond the last ack made it to disk.
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
    EXPECT_EQ((*store)->Revision().value(), count + probes);

    // The reopened store takes writes and keeps its history consistent.
    absl::StatusOr<int64_t> revision = (*store)->Put("/after-crash", std::to_string(kill_after));
    ASSERT_TRUE(revision.ok()) << revision.status();
    EXPECT_EQ(*revision, count + probes + 1);
    ASSERT_TRUE((*store)->Delete("/after-crash").ok());
    probes += 2;
    next = count;
    store->reset();
  }
}

}  // namespace
}  // namespace berth::state
