// Snapshots of SqliteStore (save while writers run, inspect, restore, refusals), snapshot format
// detection, and CopyStore between stores.
#include "state/snapshot.h"

#include <sqlite3.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "core/clock.h"
#include "core/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/copy.h"
#include "state/memory_store.h"
#include "state/sqlite_store.h"
#include "state/store_test_util.h"

namespace berth::state {
namespace {

using ::testing::HasSubstr;

std::string Key(int i) { return core::Cat("/k/", 100000 + i); }

class SqliteSnapshotTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteStore> Open(const std::string& path) {
    StoreOptions options;
    options.clock = &clock_;
    options.lease_tick_interval = absl::ZeroDuration();
    auto store = SqliteStore::Open(path, options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  void WriteFile(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary);
    out << data;
  }

  testing::ScratchDir dir_;
  std::string db_ = dir_.path() + "/berth.db";
  core::ManualClock clock_;
};

TEST_F(SqliteSnapshotTest, SavedWhileWritingHoldsOneRevisionAndRestores) {
  auto store = Open(db_);
  ASSERT_NE(store, nullptr);
  // Enough data for many backup steps, so writes land between them.
  const std::string big(4000, 'v');
  for (int first = 0; first < 2000; first += 100) {
    TxnRequest fill;
    for (int i = first; i < first + 100; ++i) {
      fill.then_ops.push_back(Op::Put(core::Cat("/bulk/", i), big));
    }
    ASSERT_TRUE(store->Txn(fill).ok());
  }
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  // One key per transaction, in order: a consistent snapshot holds exactly a prefix of them.
  std::thread writer([&] {
    for (int i = 0; !stop.load() && i < 100000; ++i) {
      if (!store->Put(Key(i), "x").ok()) break;
      written.store(i + 1);
    }
  });
  while (written.load() < 20) std::this_thread::yield();
  int64_t steps = 0;
  const std::string file = dir_.path() + "/snap.db";
  auto info = store->SaveSnapshot(file, [&](int64_t done, int64_t total) {
    ++steps;
    EXPECT_LE(done, total);
  });
  stop.store(true);
  writer.join();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_GT(steps, 1);
  EXPECT_EQ(info->format, SnapshotFormat::kSqlite);
  EXPECT_GT(info->bytes, 2000 * 4000);

  // No temporary file is left beside it, and it is one self-contained file.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    if (entry.path().filename().string().find("snap.db") != std::string::npos) ++files;
  }
  EXPECT_EQ(files, 1);

  auto inspected = InspectSqliteSnapshot(file);
  ASSERT_TRUE(inspected.ok()) << inspected.status();
  EXPECT_EQ(inspected->revision, info->revision);
  EXPECT_EQ(inspected->keys, info->keys);

  const std::string restored_path = dir_.path() + "/new/berth.db";
  std::filesystem::create_directories(dir_.path() + "/new");
  auto restored = RestoreSqliteSnapshot(file, restored_path, {});
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->revision, info->revision);
  auto copy = Open(restored_path);
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(copy->Revision().value(), info->revision);
  auto listed = copy->List("/k/");
  ASSERT_TRUE(listed.ok());
  const int64_t n = static_cast<int64_t>(listed->kvs.size());
  EXPECT_EQ(2000 + n, info->keys);
  // A prefix of the writer's keys, the last of them written at the snapshot's revision.
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(listed->kvs[i].key, Key(static_cast<int>(i)));
  }
  ASSERT_GT(n, 0);
  EXPECT_EQ(listed->kvs.back().mod_revision, info->revision);
  EXPECT_LT(n, written.load() + 1);
  EXPECT_EQ(copy->Get("/bulk/1999").value().kv->value, big);
  // The restored store goes on from the snapshot's revision.
  EXPECT_EQ(copy->Put("/after", "1").value(), info->revision + 1);
}

TEST_F(SqliteSnapshotTest, RestoreRefusesANonEmptyTargetUnlessForcedAndAStoreInUse) {
  const std::string file = dir_.path() + "/snap.db";
  {
    auto store = Open(db_);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put("/from-snapshot", "1").ok());
    ASSERT_TRUE(store->SaveSnapshot(file).ok());
  }
  const std::string target = dir_.path() + "/target.db";
  {
    auto other = Open(target);
    ASSERT_NE(other, nullptr);
    ASSERT_TRUE(other->Put("/other", "1").ok());
    // In use by a store: refused even with force, and left as it was.
    auto busy = RestoreSqliteSnapshot(file, target, {.force = true});
    EXPECT_EQ(busy.status().code(), absl::StatusCode::kFailedPrecondition) << busy.status();
    EXPECT_THAT(busy.status().message(), HasSubstr("another process"));
  }
  auto refused = RestoreSqliteSnapshot(file, target, {});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("--force"));
  {
    auto untouched = Open(target);
    ASSERT_NE(untouched, nullptr);
    EXPECT_TRUE(untouched->Get("/other").value().kv.has_value());
  }
  auto forced = RestoreSqliteSnapshot(file, target, {.force = true});
  ASSERT_TRUE(forced.ok()) << forced.status();
  auto replaced = Open(target);
  ASSERT_NE(replaced, nullptr);
  EXPECT_FALSE(replaced->Get("/other").value().kv.has_value());
  EXPECT_TRUE(replaced->Get("/from-snapshot").value().kv.has_value());
}

TEST_F(SqliteSnapshotTest, WhatIsNotASnapshotIsNamedAndRefused) {
  const std::string target = dir_.path() + "/target.db";
  auto refused = [&](const std::string& file) {
    auto restored = RestoreSqliteSnapshot(file, target, {});
    EXPECT_FALSE(std::filesystem::exists(target)) << file;
    return restored.status();
  };
  EXPECT_EQ(refused(dir_.path() + "/absent").code(), absl::StatusCode::kNotFound);

  const std::string text = dir_.path() + "/notes.txt";
  WriteFile(text, "these are not the droids\n");
  absl::Status s = refused(text);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("not a snapshot"));
  EXPECT_THAT(s.message(), HasSubstr(text));

  const std::string empty = dir_.path() + "/empty";
  WriteFile(empty, "");
  EXPECT_THAT(refused(empty).message(), HasSubstr("the file is empty"));

  // An SQLite database, but not a Berth store.
  const std::string foreign = dir_.path() + "/foreign.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(foreign.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(
        sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1);", nullptr, nullptr, nullptr),
        SQLITE_OK);
    sqlite3_close(db);
  }
  s = refused(foreign);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("not a Berth store snapshot"));

  // A snapshot cut short.
  const std::string file = dir_.path() + "/snap.db";
  {
    auto store = Open(db_);
    ASSERT_NE(store, nullptr);
    const std::string big(4000, 'v');
    for (int i = 0; i < 300; ++i) ASSERT_TRUE(store->Put(core::Cat("/bulk/", i), big).ok());
    ASSERT_TRUE(store->SaveSnapshot(file).ok());
  }
  std::filesystem::resize_file(file, std::filesystem::file_size(file) / 2);
  s = refused(file);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr(file));
}

TEST(SnapshotFormatTest, TellsSqliteFromEtcdByTheirFirstBytes) {
  testing::ScratchDir dir;
  const std::string etcd = dir.path() + "/etcd.snapshot";
  {
    // A bbolt meta page: page id 0, flags 0x04 at offset 8, magic 0xED0CDAED at offset 16.
    std::string page(4096, '\0');
    page[8] = 0x04;
    page[16] = static_cast<char>(0xED);
    page[17] = static_cast<char>(0xDA);
    page[18] = static_cast<char>(0x0C);
    page[19] = static_cast<char>(0xED);
    std::ofstream(etcd, std::ios::binary) << page;
  }
  EXPECT_EQ(DetectSnapshotFormat(etcd).value(), SnapshotFormat::kEtcd);
  const std::string sqlite = dir.path() + "/store.db";
  {
    auto store = SqliteStore::Open(sqlite);
    ASSERT_TRUE(store.ok());
  }
  EXPECT_EQ(DetectSnapshotFormat(sqlite).value(), SnapshotFormat::kSqlite);
  auto inspected = InspectSqliteSnapshot(etcd);
  EXPECT_THAT(inspected.status().message(), HasSubstr("etcd snapshot"));
}

TEST(CopyStoreTest, CopiesEveryKeyButLeasedOnesAndChecksTheTarget) {
  MemoryStore from, to;
  // More keys than one page of the copy's listings (500).
  for (int i = 0; i < 1250; ++i) ASSERT_TRUE(from.Put(Key(i), core::Cat("value-", i)).ok());
  ASSERT_TRUE(from.Put("/bin", std::string("\0\xff", 2)).ok());
  LeaseId lease = from.Grant(absl::Seconds(30)).value();
  ASSERT_TRUE(from.Put("/live/server-1", "me", PutOptions{.lease = lease}).ok());
  std::vector<std::pair<int64_t, int64_t>> reports;
  auto copied =
      CopyStore(from, to, {.batch_keys = 40, .progress = [&](int64_t done, int64_t total) {
                             reports.emplace_back(done, total);
                           }});
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(copied->keys, 1251);
  EXPECT_EQ(copied->skipped_leased, 1);
  EXPECT_EQ(copied->source_revision, from.Revision().value());
  EXPECT_EQ(to.List("").value().kvs.size(), 1251u);
  EXPECT_EQ(to.Get("/bin").value().kv->value, std::string("\0\xff", 2));
  EXPECT_FALSE(to.Get("/live/server-1").value().kv.has_value());
  // In batches of at most 40 keys, each reported.
  ASSERT_EQ(reports.size(), 32u);
  EXPECT_EQ(reports.back(), std::make_pair(int64_t{1251}, int64_t{1251}));
  EXPECT_EQ(to.Revision().value(), 32);

  // A target with keys is refused and left alone; --force replaces what it holds.
  ASSERT_TRUE(to.Put("/stray", "1").ok());
  auto refused = CopyStore(from, to, {});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("--force"));
  EXPECT_TRUE(to.Get("/stray").value().kv.has_value());
  auto forced = CopyStore(from, to, {.force = true});
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_EQ(forced->replaced, 1252);
  EXPECT_FALSE(to.Get("/stray").value().kv.has_value());
  EXPECT_EQ(to.List("").value().kvs.size(), 1251u);
}

TEST(CopyStoreTest, AnEmptySourceCopiesNothing) {
  MemoryStore from, to;
  auto copied = CopyStore(from, to, {});
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(copied->keys, 0);
  EXPECT_TRUE(to.List("").value().kvs.empty());
}

}  // namespace
}  // namespace berth::state
